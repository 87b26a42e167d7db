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
    - both are state arguments (`loom.role = "state"`), f32 (with
      `low-precision` also f16 or bf16), used by exactly
      one `loom.mla_attention` (or only passed through unchanged);
    - the op's updated caches are returned as those states' new values and
      used by nothing else.
    Otherwise the ops stay, and `loom-mla-expand` writes them naively. The
    new states are named after the old ones: a K-cache binding ending in
    `k_cache` becomes `kv_cache` and `pe_cache` with the same prefix,
    anything else gets `.latent` and `.pe` appended.

    `low-precision` is for targets whose `fuse.mla_decode` kernel reads
    f16 and bf16 (CUDA); the CPU kernel reads f32.
  }];
  let options = [
    Option<"lowPrecision", "low-precision", "bool", /*default=*/"false",
           "Also absorb MLA on f16 and bf16">,
  ];
  let dependentDialects = [
    "::mlir::fuse::FuseDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::arith::ArithDialect",
  ];
}

def AttentionFusePass : Pass<"loom-fuse-attention", "ModuleOp"> {
  let summary = "Forms fuse.attention from loom.attention and the softmax "
                "attention composite";
  let description = [{
    Replaces attention by one flash-attention kernel, `fuse.attention`:

    - `loom.attention` keeps its operands, scale and regions; the outputs
      get `tensor.empty` inits, `loom.yield` becomes `fuse.yield` and every
      `loom.csr_contains` is expanded into a binary search over the row's
      sorted columns (`scf.while`, `tensor.extract`, `arith`), the scalar
      code the kernel generators compile.
    - The composite `softmax(q @ k^T * s + m, axis=-1) @ v` written with
      `loom` ops on `[B, H, S, D]` (or `[B*H, S, D]`) operands: `k^T` is
      `transpose_b` or a `loom.transpose` of the last two axes, the scale
      `s` is an optional `loom.mul`/`loom.div` by a scalar constant on the
      scores or on q, and `m` is optional: `loom.select(mask, 0, -inf)`
      added to the scores or `loom.select(mask, scores, -inf)` becomes a
      mask region that reads `mask` as a capture; any other tensor added to
      the scores becomes a score region that adds it (broadcast dimensions
      read index 0). Keys and values may have one head for all query heads.
      The composite is left alone when an intermediate (the scores, the
      softmax) has another use, the softmax is over another axis, the
      transpose moves other axes, the scale is not a constant, `m` does not
      broadcast to the scores, or the type is not a float.

    ```mlir
    %kt = loom.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : ...
    %s = loom.matmul %q, %kt : ...
    %t = loom.mul %s, %c : ...            // %c = loom.constant dense<0.125>
    %p = loom.softmax %t {axis = 3 : i64} : ...
    %o = loom.matmul %p, %v : ...
    ```

    becomes

    ```mlir
    %o, %lse = fuse.attention ins(%q, %k, %v : ...) outs(%oi, %li : ...)
        {scale = 1.250000e-01 : f64} -> ...
    ```

    With `gpu-kernel-only`, attention is fused only where the CUDA
    kernel (`loom-cuda-attention`) compiles it: f16 or bf16, head dims
    that are static multiples of 16 up to 128; the rest
    is left to the linalg lowering.
  }];
  let options = [
    Option<"gpuKernelOnly", "gpu-kernel-only", "bool", /*default=*/"false",
           "Fuse only what the CUDA attention kernel compiles">,
  ];
  let dependentDialects = [
    "::mlir::fuse::FuseDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::arith::ArithDialect",
    "::mlir::scf::SCFDialect",
  ];
}

def TokenLogprobFusePass : Pass<"loom-fuse-token-logprob", "ModuleOp"> {
  let summary = "Forms fuse.token_logprob(_grad) from the lm-head forms of "
                "token_logprob";
  let description = [{
    Replaces `loom.token_logprob` and `loom.token_logprob_grad` with an
    lm-head `weight` (what the canonicalizer makes of `token_logprob(linear(
    x, w), ids)`) by the chunked kernels `fuse.token_logprob` and
    `fuse.token_logprob_grad`, so that the `[tokens, vocabulary]` logits are
    never stored. The kernels work on flattened tokens: the leading
    dimensions of the hidden states `[..., d]`, the ids and the upstream
    gradient are reshaped to `N` tokens with `loom.reshape`
    (`tensor.collapse_shape` when the hidden size is not static), `i32` ids
    are cast to `i64`, and the results are reshaped back (`tensor.reshape`
    with the sizes of the operand when more than one dimension is dynamic).
    One token (hidden `[d]`, rank-0 ids) is a batch of one.

    The backward needs the forward's log-sum-exp: a backward takes the one
    of a `loom.token_logprob` in the same function with the same input, ids,
    weight and temperature that dominates it, and otherwise gets a forward
    kernel of its own (whose log-probs go unused).

    A weight gradient whose only use is a `loom.add` with a value of its own
    type that dominates the backward (a gradient summed into a state, `acc =
    acc + grad(...)`) is summed by the kernel: the value becomes
    `grad_weight`'s destination, the op gets `accumulate`, and the add goes.
    With a state, bufferization then writes the gradient into the state's
    buffer, with no `[vocabulary, d]` temporary.

    Only f32 is fused (the kernels' type); other types, and the form
    without `weight` (logits given), stay for the linalg lowering.

    ```mlir
    %lp = loom.token_logprob %h, %ids weight %w {temperature = 7.0e-01 : f64}
        : tensor<?x?x16xf32>, tensor<?x?xi64>, tensor<40x16xf32>
        -> tensor<?x?xf32>
    ```

    becomes

    ```mlir
    %h2 = loom.reshape %h {shape = array<i64: -1, 16>}
        : tensor<?x?x16xf32> -> tensor<?x16xf32>
    %ids1 = loom.reshape %ids {shape = array<i64: -1>}
        : tensor<?x?xi64> -> tensor<?xi64>
    %lp1, %lse = fuse.token_logprob ins(%h2, %w, %ids1 : ...)
        outs(%e0, %e1 : tensor<?xf32>, tensor<?xf32>)
        {temperature = 7.0e-01 : f64} -> tensor<?xf32>, tensor<?xf32>
    %lp = tensor.reshape %lp1(%shape) : ... -> tensor<?x?xf32>
    ```
  }];
  let dependentDialects = [
    "::mlir::fuse::FuseDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def TokenLogprobRowsPass : Pass<"loom-fuse-token-logprob-rows", "ModuleOp"> {
  let summary = "Forms the single-pass lm-head loss: blocks of tokens over "
                "the whole vocabulary";
  let description = [{
    Where the gradient that `fuse.token_logprob_grad` takes, `g = dL/dlogp`,
    is computed from the log-probs of its `fuse.token_logprob` token by
    token (`g[n]` reads `logp[n]` and no other log-prob: elementwise `loom`
    ops and reshapes, with anything that does not depend on the log-probs
    broadcast in), both ops become one loop over blocks of `R` tokens:

    ```mlir
    %r:5 = scf.for %n0 = %c0 to max(N, 1) step %R
        iter_args(%lp = 0, %lse, %dh, %dw, %s : ...) {
      %lp1, %lse1, %s1 = fuse.token_logprob_rows ... offset(%n0)
          outs(%lp, %lse, %s)
      %g = <the ops computing g, on %lp1>
      %dh1, %dw1, %s2 = fuse.token_logprob_rows_grad ins(..., %lse1, %g)
          offset(%n0) outs(%dh, %dw, %s1)
      scf.yield %lp1, %lse1, %dh1, %dw1, %s2
    }
    ```

    Each block's products with the lm head (`scratch`, `[R, V]`) serve its
    log-sum-exp, its log-probs and its gradient: three products of the lm
    head per token instead of the four of the vocabulary-chunked pair (which
    computes them again in the backward). The ops computing `g` run on the
    whole `[N]` vector in each step (their cost is O(N) per step); the rows
    not yet computed hold 0 and their `g` is not read. What `g` reads that
    does not depend on the log-probs is moved above the loop. A gradient
    that mixes tokens (a sequence-level ratio, DPO's sums) keeps the
    two-pass kernels.

    `R` is the `rows` option, or by default the largest count whose scratch
    stays near 32 MiB (`8M / V`, in [128, 4096]); never more than N.
  }];
  let options = [
    Option<"rows", "rows", "int64_t", /*default=*/"0",
           "Tokens per block (0: 8M / V, in [128, 4096])">,
  ];
  let dependentDialects = [
    "::mlir::fuse::FuseDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::scf::SCFDialect",
  ];
}

#endif // FUSE_TRANSFORMS_PASSES_TD
