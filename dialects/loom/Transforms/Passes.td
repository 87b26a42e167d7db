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

#endif // LOOM_TRANSFORMS_PASSES_TD
