//===- Passes.td - Loom dialect passes ---------------------*- tablegen -*-===//
//
// This file declares the passes over the `loom` dialect.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TRANSFORMS_PASSES_TD
#define LOOM_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def VerifyShapesPass : Pass<"loom-verify-shapes", "ModuleOp"> {
  let summary = "Checks symbolic dimensions across a graph";
  let description = [{
    Types only say `?` for a symbolic dimension; the graph's signature names
    it (`loom.dims` on arguments and results, e.g. `["B", 64]`). This pass
    propagates those names through every op of every function and reports
    where two different symbols meet where the op needs equal sizes (an
    elementwise op on `[B, 64]` and `[S, 64]`, a matmul contracting `K` with
    `N`), and where a result's computed dimensions differ from the declared
    ones. Nothing is rewritten; a result whose symbolic dimensions the graph
    computes without naming them (a slice of a symbolic dimension, a `-1` in
    a reshape) gets `loom.unproven_dims`, the list of those dimensions, which
    the CPU entry ABI compares with the allocated output at run time.

    ```mlir
    func.func @f(%x: tensor<?x64xf32> {loom.dims = ["B", 64]},
                 %y: tensor<?x64xf32> {loom.dims = ["S", 64]}) -> tensor<?x64xf32> {
      // error: 'loom.add' op dimension 0 is B on one operand and S on the other
      %0 = loom.add %x, %y : tensor<?x64xf32>, tensor<?x64xf32> -> tensor<?x64xf32>
      return %0 : tensor<?x64xf32>
    }
    ```
  }];
}

def MlaExpandPass : Pass<"loom-mla-expand", "ModuleOp"> {
  let summary = "Writes loom.mla_attention with elementary ops (naive MLA)";
  let description = [{
    Replaces every `loom.mla_attention` by DeepSeek-V3's naive computation:
    `kv @ wkv_bᵀ` split into per-head `k_nope` and `v`, the rope key
    broadcast to every head, both written into the per-head K and V caches
    at `start_pos` (`loom.dynamic_update_slice`), and softmax attention of
    the queries over rows `[0, B)` of the whole cache with keys past
    `start_pos + s` masked. The caches keep their `[MB, T, H, D]` layout.
    Runs after `loom-mla-absorb`, which leaves the ops it cannot absorb.
  }];
}

def PromoteLowPrecisionPass : Pass<"loom-promote-low-precision", "ModuleOp"> {
  let summary = "Computes reductions of f16 and bf16 tensors in f32";
  let dependentDialects = ["::mlir::arith::ArithDialect"];
  let description = [{
    Sums, means, softmax and log_softmax, rms_norm, token log-probs and
    their backward, KL estimators, GAE and attention of f16 or bf16 tensors
    read their operands as f32 and round their results back: their
    accumulations run in f32, as the libraries Loom is compared with do.
    Attention's captures keep their types, and its score region computes
    as written: it takes the f32 score rounded to its type and its result
    is widened back. Matrix products need no promotion: their
    lowering accumulates in f32 without widening the operands. Elementwise
    ops keep the element type (one correctly rounded operation either way).
    Runs at the start of the fuse pipeline and again after
    `loom-mla-expand`; ops already in f32 are left alone.

    ```mlir
    %s = loom.sum %x {axes = array<i64: 1>} : tensor<?x64xbf16> -> tensor<?xbf16>
    // becomes
    %w = loom.cast %x : tensor<?x64xbf16> -> tensor<?x64xf32>
    %t = loom.sum %w {axes = array<i64: 1>} : tensor<?x64xf32> -> tensor<?xf32>
    %s = loom.cast %t : tensor<?xf32> -> tensor<?xbf16>
    ```
  }];
}

def AutodiffPass : Pass<"loom-autodiff", "ModuleOp"> {
  let summary = "Expands loom.grad by reverse-mode differentiation";
  let description = [{
    Replaces every `loom.grad %loss, %x...` by the adjoint computation: the
    ops on a path from a differentiated value to the loss are visited in
    reverse order, and each op's derivative rule turns the adjoints of its
    results into adjoints of its operands (summed where a value has several
    uses; operands that were broadcast are summed back to their shape). A
    value with no path to the loss gets zeros, `loom.stop_gradient` cuts
    paths, and an op on a path without a derivative rule is an error at
    its location. Afterwards every `loom.stop_gradient` is replaced by its
    operand. The rules are listed in docs/compiler.md.

    Before:
    ```mlir
    %y = loom.exp %x : tensor<4xf32> -> tensor<4xf32>
    %l = loom.sum %y {axes = array<i64: 0>} : tensor<4xf32> -> tensor<f32>
    %g = loom.grad %l, %x : (tensor<f32>, tensor<4xf32>) -> tensor<4xf32>
    ```
    After (`d sum / d y` is the broadcast 1, `d exp / d x` is `exp(x)`):
    ```mlir
    %one = loom.constant dense<1.0> : tensor<f32>
    %r = loom.reshape %one {shape = array<i64: 1>} : tensor<f32> -> tensor<1xf32>
    %b = loom.broadcast %r like %y : ...
    %g = loom.mul %b, %y : ...
    ```
  }];
}

#endif // LOOM_TRANSFORMS_PASSES_TD
