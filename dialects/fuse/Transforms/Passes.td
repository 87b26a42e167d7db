//===- Passes.td - Passes that form fused kernels ----------*- tablegen -*-===//
//
// This file declares the graph passes that produce `fuse` ops.
//
//===----------------------------------------------------------------------===//

#ifndef FUSE_TRANSFORMS_PASSES_TD
#define FUSE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MlaAbsorbPass : Pass<"loom-mla-absorb", "ModuleOp"> {
  let summary = "Absorbs MLA's up-projections and caches only the latent";
  let description = [{
    Rewrites `loom.mla_attention` into DeepSeek-V3's absorbed form
    (`attn_impl = "absorb"`): the session caches become the normalized
    latent `[MB, T, kv_lora_rank]` and the rotated rope key `[MB, T,
    qk_rope_head_dim]` instead of per-head K `[MB, T, H, Dn + R]` and V
    `[MB, T, H, Dv]`; the key up-projection `W_UK` moves into the queries
    (`q_lat = q_nope @ W_UK` per head), attention runs on the compressed
    cache as one `fuse.mla_decode` kernel, and the value up-projection
    `W_UV` is applied to its latent-space output.

    Changing a cache's layout changes the meaning of a session-wide state,
    so the pass applies to a pair of K/V caches only when, in every
    function of the module that has either state:
    - both are state arguments (`loom.role = "state"`), f32, used by exactly
      one `loom.mla_attention` (or only passed through unchanged);
    - the op's updated caches are returned as those states' new values and
      used by nothing else.
    Otherwise the ops stay, and `loom-mla-expand` writes them naively. The
    new states are named after the old ones: a K-cache binding ending in
    `k_cache` becomes `kv_cache` and `pe_cache` with the same prefix,
    anything else gets `.latent` and `.pe` appended.
  }];
  let dependentDialects = [
    "::mlir::fuse::FuseDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::arith::ArithDialect",
  ];
}

#endif // FUSE_TRANSFORMS_PASSES_TD
