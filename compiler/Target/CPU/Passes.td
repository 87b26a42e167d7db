//===- Passes.td - CPU target passes -----------------------*- tablegen -*-===//
//
// This file declares the passes that shape a lowered graph for the CPU
// artifact ABI and route large kernels to the runtime's host functions.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TARGET_CPU_PASSES_TD
#define LOOM_TARGET_CPU_PASSES_TD

include "mlir/Pass/PassBase.td"

def CpuEntryAbiPass : Pass<"loom-cpu-entry-abi", "ModuleOp"> {
  let summary = "Rewrites entry graphs into destination-passing memref functions";
  let description = [{
    Every public function with a `loom.role` signature becomes the artifact
    entry body: one memref argument per input, param and state, then one per
    output, in that order (the order of `runtime/include/loom/abi.h`). Inputs
    are read through `bufferization.to_tensor`; outputs are written with
    `bufferization.materialize_in_destination`, so one-shot bufferization can
    compute them in place in the runtime's buffers; a state's new value is
    copied back into the state's buffer after everything else. The entry
    returns an i32: 0, or `LOOM_ENTRY_ERROR_OUTPUT_SIZE` when an output with
    `loom.unproven_dims` was computed with another size than the buffer the
    runtime allocated (that output is then not written).

    ```mlir
    // before
    func.func @main(%x: tensor<?x4xf32> {loom.role = "input", ...}) -> (tensor<?x4xf32> {loom.role = "output", ...})
    // after
    func.func @main(%x: memref<?x4xf32> {...}, %y: memref<?x4xf32> {loom.role = "output", ...}) -> i32
        attributes {llvm.emit_c_interface} {
      %t = bufferization.to_tensor %x restrict : memref<?x4xf32> to tensor<?x4xf32>
      ...
      bufferization.materialize_in_destination %r in restrict writable %y : (tensor<?x4xf32>, memref<?x4xf32>) -> ()
      return %c0_i32 : i32
    }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::bufferization::BufferizationDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

def CpuFuseToRuntimePass : Pass<"loom-cpu-fuse-to-runtime", "ModuleOp"> {
  let summary = "Calls the runtime's CPU kernels for bufferized fuse ops";
  let description = [{
    Rewrites `fuse.mla_decode` on f32 memrefs into a call of the host
    function `loom_rt_mla_decode_f32` (abi.h), which the artifact imports
    through a slot the runtime fills. Operands are cast to fully dynamic
    strided memrefs, so any layout the bufferization chose is passed as is.

    `fuse.attention` on f32 memrefs becomes a call of
    `__loom_attention_launch_N(q, k, v, out, lse, scale, flags, captures...)`,
    a declaration the CPU object emitter defines: it packs the captures and
    calls `loom_rt_attention_f32` with a `loom_attention_mods_t` whose
    functions are compiled from the regions here:
    `__loom_attention_mask_row_N` (the mask over a row of keys),
    `__loom_attention_mask_block_N` (an interval analysis of the mask over a
    block of queries and keys: NONE, ALL or SOME) and
    `__loom_attention_score_row_N` (the score modifier over a row, in place).

    `fuse.token_logprob` and `fuse.token_logprob_grad` on f32 memrefs become
    calls of `loom_rt_token_logprob_f32` and `loom_rt_token_logprob_grad_f32`
    (the vocabulary-chunked kernels; chunk 0 lets the kernel choose), the
    temperature passed as f32. `fuse.token_logprob_rows` and
    `fuse.token_logprob_rows_grad` (a block of tokens of the single-pass
    loss) become calls of `loom_rt_token_logprob_rows_f32` and
    `loom_rt_token_logprob_rows_grad_f32`, their offset passed as i64. The
    backwards' last argument is their flags (i64):
    `LOOM_TOKEN_LOGPROB_ACCUMULATE` for `accumulate`, else 0.

    ```mlir
    fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%o) {scale = 0.07 : f64}
        : memref<1x1x16x512xf32>, ..., memref<1x1x16x512xf32>
    // becomes
    call @loom_rt_mla_decode_f32(%ql_cast, %qp_cast, %kv_cast, %pe_cast,
                                 %o_cast, %pos, %scale) : (...) -> ()
    ```
  }];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::scf::SCFDialect"];
}

def CpuMatmulToRuntimePass : Pass<"loom-cpu-matmul-to-runtime", "ModuleOp"> {
  let summary = "Calls the runtime's GEMM for f32 matrix products on memrefs";
  let description = [{
    Rewrites `linalg.matmul` and `linalg.batch_matmul` on f32 memrefs into
    calls of the host functions `loom_rt_matmul_f32` and
    `loom_rt_batch_matmul_f32` (oneDNN's sgemm where the runtime has it),
    passing transposition through flags. Products smaller than
    `min-flops` (2*M*N*K, known statically) stay as loops.

    ```mlir
    linalg.matmul ins(%a, %b : memref<?x64xf32>, memref<64x?xf32>) outs(%c : memref<?x?xf32>)
    // becomes
    %fa = memref.cast %a : memref<?x64xf32> to memref<?x?xf32, strided<[?, ?], offset: ?>>
    ...
    call @loom_rt_matmul_f32(%fa, %fb, %fc, %flags) : (...) -> ()
    ```
  }];
  let options = [
    Option<"minFlops", "min-flops", "int64_t", /*default=*/"0",
           "Statically known products below this many flops stay as loops">,
    Option<"halfPrecision", "half-precision", "bool", /*default=*/"false",
           "Also f16 and bf16 products accumulated in f32, through "
           "loom_rt_[batch_]matmul_{f16,bf16}_f32 (the CUDA runtime has them), "
           "or loom_rt_[batch_]matmul_{f16,bf16} when the f32 result is only "
           "rounded to the operands' type">,
  ];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect"];
}

def CpuFoldTransposesPass : Pass<"loom-cpu-fold-transposes", "ModuleOp"> {
  let summary = "Folds transposes around ops that take strided operands into their views";
  let description = [{
    The runtime's GEMM calls take any row and batch strides, and
    `fuse.attention`'s CPU and GPU kernels read q, k and v and write their
    output through strides. A `linalg.transpose` into a fresh buffer that is
    only (reshaped and) passed to such an op as an input becomes a strided
    view of the transpose's source; a fresh buffer that such an op
    overwrites and that is then only (reshaped and) transposed into another
    buffer becomes a strided view of that buffer, which the op writes
    directly. Each fold needs the merged dimensions to be contiguous in the
    other buffer, the source unchanged until the op (or the destination
    untouched until the transpose), and no aliasing between what the op
    reads and what it writes. MLA's absorbed per-head projections over
    [B, S, H, D] activations and attention over heads split from [B, S, H * D]
    then copy nothing:

    ```mlir
    linalg.transpose ins(%x : memref<?x?x8x16xf32>) outs(%t : memref<8x?x?x16xf32>) permutation = [2, 0, 1, 3]
    %m = memref.collapse_shape %t [[0], [1, 2], [3]] : memref<8x?x?x16xf32> into memref<8x?x16xf32>
    %a = memref.cast %m : ... to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
    call @loom_rt_batch_matmul_f32(%a, %b, %c, %flags)
    // becomes
    %base, %offset, %sizes:4, %strides:4 = memref.extract_strided_metadata %x
    %a = memref.reinterpret_cast %base to offset: [%offset], sizes: [8, %bs, 16], strides: [%strides#2, %strides#1, %strides#3]
    call @loom_rt_batch_matmul_f32(%a, %b, %c, %flags)
    ```
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect"];
}

def CpuParallelOutlinePass : Pass<"loom-cpu-parallel-outline", "ModuleOp"> {
  let summary = "Runs the outermost parallel loops on the runtime's threads";
  let description = [{
    Every outermost `scf.parallel` without reductions is split along its
    first dimension: the body becomes a private function
    `__loom_parallel_body_<n>(begin, end, captured...)` looping over
    `[begin, end)` of that dimension, and the loop becomes a call of
    `__loom_parallel_launch_<n>(trip_count, captured...)`. When the LLVM IR
    is built, each launch function packs its captured values into a context
    and calls the runtime's `loom_rt_parallel_for` with a trampoline that
    unpacks them and calls the body for a range. Loops whose statically
    known work (iterations times ops) is below `min-work` stay serial.

    ```mlir
    scf.parallel (%i, %j) = (%c0, %c0) to (%n, %c64) step (%c1, %c1) { ... }
    // becomes
    func.call @__loom_parallel_launch_0(%trips, %buf, %n) : (index, memref<?x64xf32>, index) -> ()
    func.func private @__loom_parallel_body_0(%begin: index, %end: index,
                                              %buf: memref<?x64xf32>, %n: index) {
      scf.for %k = %begin to %end step %c1 {
        scf.parallel (%j) = (%c0) to (%c64) step (%c1) { ... }
      }
    }
    ```
  }];
  let options = [
    Option<"minWork", "min-work", "int64_t", /*default=*/"16384",
           "Loops with less statically known work stay serial">,
  ];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::arith::ArithDialect"];
}

def CpuCopyToLinalgPass : Pass<"loom-cpu-copy-to-linalg", "ModuleOp"> {
  let summary = "Turns memref.copy into linalg.copy";
  let description = [{
    Bufferization copies buffers with `memref.copy`, which the LLVM lowering
    turns into a call of MLIR's `memrefCopy` runtime helper when a side is
    strided. Artifacts link no MLIR runtime library, so every copy becomes a
    `linalg.copy`, lowered to (parallel, vectorizable) loops like any other
    linalg op. A copy of a buffer onto itself goes. `scf.for` loops are
    canonicalized first: a result that every step passes through unchanged
    (a destination updated in place, such as the gradients of the
    single-pass lm-head loss) becomes the buffer it started from, so its
    copy back into that buffer is such a copy and goes too.

    ```mlir
    memref.copy %a, %b : memref<?x4xf32, strided<[8, 1]>> to memref<?x4xf32>
    // becomes
    linalg.copy ins(%a : memref<?x4xf32, strided<[8, 1]>>) outs(%b : memref<?x4xf32>)
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def CpuMathApproximationPass : Pass<"loom-cpu-math-approximation", "ModuleOp"> {
  let summary = "Replaces f32 transcendental functions by polynomials";
  let description = [{
    `math.exp`, `math.expm1`, `math.log`, `math.log1p`, `math.log2`,
    `math.tanh` and `math.erf` on f32 become MLIR's polynomial approximations
    (arithmetic only), so LLVM vectorizes the loops around them instead of
    calling the C library's scalar functions once per element. Other types
    and functions are left to the C library.

    ```mlir
    %y = math.exp %x : f32
    // becomes range reduction + a polynomial in arith ops (no call)
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect"];
}

def CpuSplitSharedFillsPass : Pass<"loom-cpu-split-shared-fills", "ModuleOp"> {
  let summary = "Gives every consumer of a filled tensor its own fill";
  let description = [{
    CSE merges identical `linalg.fill` ops on tensors (e.g. the zero
    accumulators of every matrix product of a model). Bufferization then
    fills one buffer and copies it for each consumer that writes into it.
    This pass clones the fill (and its `tensor.empty`) right before each use,
    so each consumer fills its own buffer in place, and a product can drop
    its zero fill altogether.

    ```mlir
    %z = linalg.fill ins(%c0 : f32) outs(%e : tensor<?x64xf32>) -> tensor<?x64xf32>
    %a = linalg.matmul ins(...) outs(%z : tensor<?x64xf32>) -> tensor<?x64xf32>
    %b = linalg.matmul ins(...) outs(%z : tensor<?x64xf32>) -> tensor<?x64xf32>
    // becomes: one tensor.empty + linalg.fill right before each product
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

#endif // LOOM_TARGET_CPU_PASSES_TD
