//===- Passes.td - CUDA target passes ----------------------*- tablegen -*-===//
//
// This file defines the passes that take bufferized host functions to the
// `gpu` dialect for the CUDA target.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TARGET_CUDA_PASSES_TD
#define LOOM_TARGET_CUDA_PASSES_TD

include "mlir/Pass/PassBase.td"

def CudaMapToGpuPass : Pass<"loom-cuda-map-to-gpu", "ModuleOp"> {
  let summary = "Runs every loop nest of the entry functions as a GPU kernel";
  let description = [{
    On the CUDA target the arguments of an entry are device buffers, so the
    host function may only compute sizes and launch kernels. This pass:

    - turns every outermost `scf.parallel` into a `gpu.launch` over its
      iteration space flattened to one dimension (`block-size` threads per
      block, one iteration per thread, guarded against the tail; an empty
      space launches one block, since CUDA refuses empty grids);
    - wraps every other host operation that reads or writes memory (the
      sequential loops of scans and full reductions) in a one-thread
      `gpu.launch`;
    - allocates temporaries with `gpu.alloc` / `gpu.dealloc` and copies with
      `gpu.memcpy`; integer scalars that the host needs (positions that
      decide offsets) are copied to host memory first;
    - chains the GPU work of each block on one stream in program order
      (async tokens from one `gpu.wait async`), waited for before the host
      reads a copied scalar, before a host region holding GPU work (whose
      blocks get chains of their own) and before the terminator.

    Any other host use of a value read from device memory is an error.

    ```mlir
    scf.parallel (%i, %j) = (%c0, %c0) to (%n, %c64) step (%c1, %c1) {
      memref.store %cst, %buf[%i, %j] : memref<?x64xf32>
      scf.reduce
    }
    // becomes, with %total = %n * 64 and %blocks = max(ceil(%total / 256), 1)
    %t0 = gpu.wait async
    %t1 = gpu.launch async [%t0] blocks(%bx, %by, %bz) in (%gx = %blocks, ...)
               threads(%tx, %ty, %tz) in (%sx = %c256, ...) {
      %id = <%bx * 256 + %tx>
      scf.if <%id < %total> {
        %i = <%id / 64>
        %j = <%id mod 64>
        memref.store %cst, %buf[%i, %j] : memref<?x64xf32>
      }
      gpu.terminator
    }
    ...
    gpu.wait [%tn]
    ```
  }];
  let options = [
    Option<"blockSize", "block-size", "int64_t", /*default=*/"256",
           "Threads per block of the kernels made from parallel loops">,
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::arith::ArithDialect"];
}

def CudaAttentionPass : Pass<"loom-cuda-attention", "ModuleOp"> {
  let summary = "Compiles fuse.attention on f16 or bf16 to a flash-attention kernel";
  let description = [{
    Replaces every bufferized `fuse.attention` by the launch of a
    flash-attention kernel in the style of FlashAttention-2: blocks of 4
    warps own 64 queries of one (batch, head); keys go by tiles of 64
    through shared memory (rows padded; the mma fragments of K and V are
    read with `nvgpu.ldmatrix`, V's transposed);
    `q k^T` and `P v` are tensor-core products (`nvvm.mma.sync` m16n8k16
    with f32 accumulators); the softmax is online in base 2. The mask
    region is cloned into the kernel and evaluated for every (query, key)
    pair a thread holds; a tile no pair of the block sees is skipped (an
    or-reducing barrier decides). The score region is cloned likewise and
    applied to every scaled score, in the model's type. Grouped heads (Hq a
    multiple of Hkv), different query and key counts and empty problems are
    handled.

    q, k and v must be f16 or bf16 with static head dims that are
    multiples of 16 up to 128; any other `fuse.attention` is an error that
    says so.

    Runs before the deallocation passes, which do not know
    `fuse.attention`. The kernel is a `gpu.func` of its own `gpu.module`;
    the op becomes the call of a declaration marked `loom.cuda.launch`
    (grid as the first three operands), which `loom-cuda-map-to-gpu` turns
    into a `gpu.launch_func` on the entry's stream.

    With `wgmma` (sm_90a only), `q k^T` is Hopper's warpgroup MMA
    (`wgmma.mma_async` m64n64k16, the q fragments from registers, K in
    shared memory as the core matrices of its descriptor); `P v` stays
    `mma.sync`.
  }];
  let options = [
    Option<"wgmma", "wgmma", "bool", /*default=*/"false",
           "q k^T through wgmma.mma_async (sm_90a)">,
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::vector::VectorDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::LLVM::LLVMDialect",
                           "::mlir::NVVM::NVVMDialect",
                           "::mlir::nvgpu::NVGPUDialect"];
}

def CudaMlaDecodePass : Pass<"loom-cuda-mla-decode", "ModuleOp"> {
  let summary = "Compiles fuse.mla_decode on f16 or bf16 to split-K tensor-core kernels";
  let description = [{
    Replaces every bufferized `fuse.mla_decode` (absorbed multi-head latent
    attention) by two kernels in a `gpu.module` of its own, in the style of
    flash decoding and FlashMLA:

    - `partial`: blocks of 8 warps own 64 query rows (the (token, head)
      pairs of one batch row, which all read the same latent cache) and one
      split of the visible cache positions. The rows `[q_lat | q_pe]` stay
      in shared memory; the cache goes by tiles of 32 positions
      `[kv | pe]`, double-buffered with `cp.async`. Scores and the output
      are `nvvm.mma.sync` m16n8k16 products with f32 accumulators (the
      first `C` columns of a cache tile are its values); the two warps that
      share 16 rows split the tile's keys for the scores and the latent
      columns for the output, exchanging row maxima and P through shared
      memory. Each split writes its normalized output and log-sum-exp to
      f32 temporaries.
    - `combine`: merges the splits of every output element.

    The host chooses the number of splits from the batch, the rows and the
    visible length (`min(T, start_pos + S)`), for about 128 blocks.

    q_lat, q_pe and the caches must be f16 or bf16, with a static head
    count, a latent rank that is a multiple of 32 up to 512 and a rope dim
    that is a nonzero multiple of 16; any other `fuse.mla_decode` is an
    error that says so. The partial kernel takes 152 KB of dynamic shared
    memory at DeepSeek-V3's dims (rank 512, rope 64): sm_80 and sm_90 have
    it, sm_86 and sm_89 do not.

    With `wgmma` (sm_90a only), the partial kernel's blocks are two
    warpgroups and its tiles 64 positions, held with the query rows and P
    in shared memory as the core matrices of unswizzled wgmma descriptors
    (224.5 KB at DeepSeek-V3's dims). Warpgroup h scores the rows against
    keys [32h, 32h + 32) with `wgmma.mma_async` m64n32k16 (both operands
    K-major from shared memory); the two exchange their row maxima and
    write P to shared memory; each adds P times its half of the latent
    columns with m64n128k16, the same tile read MN-major as V. With
    `wgmma-keys=32`, or where tiles of 64 do not fit in shared memory, the
    tiles are 32 positions, three of them in shared memory; where those do
    not fit either, the mma.sync kernel is used.
    With `p-registers`, each warpgroup scores all of a tile's keys (the
    scores are computed twice): the softmax needs no exchange, and P v
    takes P from registers (`wgmma` with A in registers). A tile then has
    one block barrier instead of three.
    With `p-split` (FlashMLA's split of the work), the first warpgroup
    scores all of a tile's keys (m64n64k16), takes the softmax of whole
    rows, writes its P registers and the rows' rescaling factors to shared
    memory for the second (named barrier 1: it arrives, the second waits)
    and adds P times the first half of the latent columns; the second
    issues the next tile's copies while the first scores, then rescales
    its accumulators and adds the same P (loaded into the same registers)
    times the other half. The block barrier of each tile stays, so the
    second's P v overlaps the first's P v of the same tile, not the next
    tile's scores. With `overlap` too (and `tma`), it does not: the stages
    go back to the loader through "empty" mbarriers (every thread arrives
    when done with its tile), the first warpgroup zeroes a tile's tail and
    meets itself at named barrier 2, and waits at named barrier 3 until
    the second has read the previous P before writing the next; so the
    first scores tile i + 1 while the second multiplies tile i's P.
    With `tma`, one warp loads each cache tile with bulk tensor copies
    (`cp.async.bulk.tensor`, an mbarrier per stage) of boxes of 8 columns
    by the tile's positions, on tensor maps of the two caches that the host
    gets from the runtime (`loom_rt_cuda_tensor_map_*`); the tile is then
    column-chunk-major in shared memory. With `tma-swizzle`, the boxes
    are 64 columns wide in the 128-byte swizzled layout, which the wgmma
    descriptors then name.
  }];
  let options = [
    Option<"wgmma", "wgmma", "bool", /*default=*/"false",
           "the partial kernel through wgmma.mma_async (sm_90a)">,
    Option<"wgmmaKeys", "wgmma-keys", "unsigned", /*default=*/"64",
           "cache positions of a tile of the wgmma kernel: 64 (two tiles "
           "in shared memory) or 32 (three)">,
    Option<"stages", "stages", "unsigned", /*default=*/"0",
           "tiles of the wgmma kernel in shared memory, 2 to 4 (0: 2 of "
           "64 positions, 3 of 32)">,
    Option<"targetBlocks", "target-blocks", "unsigned", /*default=*/"128",
           "blocks the splits of the cache aim for (one wave of a "
           "132-multiprocessor GPU)">,
    Option<"pRegisters", "p-registers", "bool", /*default=*/"false",
           "each warpgroup of the wgmma kernel scores all of a tile's keys "
           "and keeps P in registers for P v">,
    Option<"pSplit", "p-split", "bool", /*default=*/"false",
           "the first warpgroup of the wgmma kernel scores each tile and "
           "hands P to the second, which loads the tiles (FlashMLA's "
           "split)">,
    Option<"overlap", "overlap", "bool", /*default=*/"false",
           "with p-split and tma, no block barrier between tiles: the "
           "first warpgroup scores the next tile while the second "
           "multiplies this one's P">,
    Option<"tma", "tma", "bool", /*default=*/"false",
           "the wgmma kernel loads the cache tiles with bulk tensor copies "
           "(TMA) on tensor maps the host encodes">,
    Option<"swizzle", "swizzle", "bool", /*default=*/"false",
           "the cache tiles in shared memory as rows of 64 columns swizzled "
           "by 128 bytes (where the rank is a multiple of 128 and the rope "
           "dim of 64): with tma, boxes of 64 columns instead of 8; else "
           "cp.async copies of whole 128-byte lines">,
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::vector::VectorDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::LLVM::LLVMDialect",
                           "::mlir::NVVM::NVVMDialect",
                           "::mlir::nvgpu::NVGPUDialect"];
}

def CudaTokenLogprobPass : Pass<"loom-cuda-token-logprob", "ModuleOp"> {
  let summary = "Compiles f32 fuse.token_logprob and its backward to vocabulary-chunked GPU code";
  let description = [{
    Replaces every bufferized f32 `fuse.token_logprob` and
    `fuse.token_logprob_grad` by a host loop over chunks of 4096
    vocabulary entries, so that the logits exist one [tokens x 4096] block
    at a time (the layout of Liger-Kernel's fused linear cross-entropy):

    - forward: the block of logits is a matrix product (`linalg.matmul`
      with W's rows transposed, which `loom-cpu-matmul-to-runtime` turns
      into the runtime's GEMM: cuBLAS on the GPU); a kernel of its own
      (`rows`, one block of 256 threads per token, shuffles and shared
      memory for the reductions) folds each row into the token's running
      maximum and sum of exp and picks the id's logit; after the loop,
      `lse = max + log(sum)` and `logp = picked - lse`;
    - backward: the block is recomputed, turned in place into
      `g / t ([v == id] - exp(L / t - lse))`, and two products add it into
      `grad_hidden` and write `grad_weight`'s rows of the chunk (add to
      them, without the zero fill, when the op has `accumulate`).

    Ids outside the vocabulary give NaN, as in the op's definition. Runs
    before `loom-cpu-matmul-to-runtime` and the deallocation passes.
    Other element types are an error (the promotion of f16 and bf16 makes
    these ops f32).

    With `row-kernel=false` the rows are reduced by `linalg.generic` ops
    instead of the `rows` kernel, and nothing is GPU-specific: the CPU
    pipeline runs that form for `loom-compile --logprob=chunked`, which
    tests this lowering on machines without a GPU.
  }];
  let options = [
    Option<"rowKernel", "row-kernel", "bool", /*default=*/"true",
           "Reduce each row of logits with a GPU kernel of its own">,
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::memref::MemRefDialect"];
}

def CudaExternSharedPass : Pass<"loom-cuda-extern-shared", "::mlir::gpu::GPUModuleOp"> {
  let summary = "Declares the dynamic shared memory base as an external array";
  let description = [{
    `convert-gpu-to-nvvm` lowers `gpu.dynamic_shared_memory` to an internal
    zero-sized global in the shared address space, which the NVPTX backend
    demotes into the kernel as a static one-byte `.shared` variable: the
    dynamic window then starts after it and the kernel's offsets only work
    because nothing else is static. This pass makes the global external,
    so that the PTX declares it as CUDA does (`.extern .shared .align 16
    .b8 __dynamic_shmem__0[]`, at module scope): the base of the dynamic
    window, after any static shared memory of the kernel.

    ```mlir
    llvm.mlir.global internal @__dynamic_shmem__0() {addr_space = 3 : i32, alignment = 16 : i64} : !llvm.array<0 x i8>
    // becomes
    llvm.mlir.global external @__dynamic_shmem__0() {addr_space = 3 : i32, alignment = 16 : i64} : !llvm.array<0 x i8>
    ```
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

def CudaNativeMathPass : Pass<"loom-cuda-native-math", "::mlir::gpu::GPUModuleOp"> {
  let summary = "Replaces libdevice calls that PTX has instructions for by LLVM intrinsics";
  let description = [{
    `convert-gpu-to-nvvm` turns every `math` op into a call of libdevice
    (`__nv_fmaf`, ...), which exists only where the CUDA toolkit is
    installed. After it, this pass replaces the calls whose function is one
    PTX instruction by the LLVM intrinsic the NVPTX backend selects to it,
    so that kernels without sin, cos or pow need no libdevice: `__nv_fma(f)`
    (fma.rn), `__nv_fabs(f)`, `__nv_floor(f)`, `__nv_sqrt(f)` (sqrt.rn) and
    `__nv_rsqrt(f)` (1 / sqrt.rn, correctly rounded like the CPU path).
    Declarations left without callers are erased.

    ```mlir
    %y = llvm.call @__nv_fmaf(%a, %b, %c) : (f32, f32, f32) -> f32
    // becomes
    %y = llvm.intr.fma(%a, %b, %c) : (f32, f32, f32) -> f32
    ```
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

#endif // LOOM_TARGET_CUDA_PASSES_TD
