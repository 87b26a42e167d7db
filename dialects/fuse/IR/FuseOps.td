//===- FuseOps.td - Fused-kernel dialect ------------------*- tablegen -*-===//
//
// This file defines the `fuse` dialect: one op per generated kernel, the
// stage between the graph passes and code generation.
//
//===----------------------------------------------------------------------===//

#ifndef FUSE_OPS_TD
#define FUSE_OPS_TD

include "mlir/IR/OpBase.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Fuse_Dialect : Dialect {
  let name = "fuse";
  let cppNamespace = "::mlir::fuse";
  let summary = "Fused kernels of Loom models";
  let description = [{
    Each `fuse` op is one kernel that the code generators emit whole: the
    graph passes (`loom-mla-absorb`, ...) recognize a composite in the
    `loom` dialect and replace it by a `fuse` op, whose semantics are
    written so that a kernel can compute it without materializing the
    intermediate tensors of the composite.

    The ops are in destination-passing style: they take an `outs` operand
    that the kernel overwrites. On tensors they return the result; after
    bufferization the same op works on memrefs and returns nothing.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

def AnyRankedTensorOrMemRef : AnyTypeOf<[AnyRankedTensor, AnyMemRef]>;

class Fuse_Op<string mnemonic, list<Trait> traits = []>
    : Op<Fuse_Dialect, mnemonic, traits>;

def Fuse_MlaDecodeOp : Fuse_Op<"mla_decode", [
    DestinationStyleOpInterface,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "multi-head latent attention on the compressed cache";
  let description = [{
    DeepSeek-V3's MLA attention with absorbed weights (`attn_impl =
    "absorb"`), the part between the absorbed queries and the value
    up-projection. With `B` rows of `S` new tokens, `H` heads, `C =
    kv_lora_rank`, `R = qk_rope_head_dim`, `T` cached positions:

    | operand | shape | meaning |
    |---|---|---|
    | `q_lat` | `[B, S, H, C]` | `q_nope` times `W_UK` of its head |
    | `q_pe` | `[B, S, H, R]` | rotated query rope part |
    | `kv_cache` | `[MB, T, C]` | normalized latents, rows `[0, B)` read |
    | `pe_cache` | `[MB, T, R]` | rotated rope keys |
    | `start_pos` | `i64` | position of the first new token |
    | `outs` | `[B, S, H, C]` | overwritten with the result |

    For query `(b, s, h)` and keys `t < min(T, start_pos + s + 1)`:
    `p_t = softmax_t(scale * (q_lat . kv_cache[b, t] + q_pe .
    pe_cache[b, t]))` and the result is `sum_t p_t kv_cache[b, t]`, still in
    the latent space (the caller multiplies by `W_UV`). A query with no
    visible key gets 0. The CPU kernel reads every cached row once for all
    heads and queries of its batch row, with an online softmax; nothing of
    size `[S, H, T]` is stored.

    ```mlir
    %o = fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%init) {scale = 0.07 : f64}
        : tensor<?x?x16x512xf32>, tensor<?x?x16x64xf32>, tensor<8x4096x512xf32>,
          tensor<8x4096x64xf32>, tensor<?x?x16x512xf32> -> tensor<?x?x16x512xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensorOrMemRef:$q_lat,
                   AnyRankedTensorOrMemRef:$q_pe,
                   AnyRankedTensorOrMemRef:$kv_cache,
                   AnyRankedTensorOrMemRef:$pe_cache, I64:$start_pos,
                   AnyRankedTensorOrMemRef:$init, F64Attr:$scale);
  let results = (outs Optional<AnyRankedTensor>:$result);
  let assemblyFormat = [{
    $q_lat `,` $q_pe `,` $kv_cache `,` $pe_cache `,` $start_pos
    `outs` `(` $init `)` attr-dict `:` type($q_lat) `,` type($q_pe) `,`
    type($kv_cache) `,` type($pe_cache) `,` type($init)
    (`->` type($result)^)?
  }];
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return getInitMutable();
    }
  }];
  let hasVerifier = 1;
}

def Fuse_AttentionOp : Fuse_Op<"attention", [
    DestinationStyleOpInterface, IsolatedFromAbove,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "flash attention with a mask region and a score region";
  let description = [{
    The kernel form of `loom.attention`: `softmax(score(scale * q . k) over
    visible keys) . v` per query, with the same operands, regions and
    semantics (see `loom.attention`), in destination-passing style: `outs`
    are the output `[B, Hq, Sq, Dv]` and the log-sum-exp `[B, Hq, Sq]`,
    both overwritten. A query with no visible key gets 0 and -inf.

    The `mask` region `(b, h, i, j: index, captures...) -> i1` and the
    `score` region `(b, h, i, j: index, s, captures...) -> s'` hold scalar
    code (`arith`, `math`, `scf`, and `tensor.extract` of a capture, or
    `memref.load` after bufferization, when the captures are memrefs) and
    end in `fuse.yield`. The CPU code generator compiles the mask region
    twice: element by element for a row of keys, and as an interval
    analysis that classifies a block of (query, key) pairs as all hidden,
    all visible or mixed, so that the kernel skips hidden blocks and does
    no mask work on visible ones.

    ```mlir
    %o, %l = fuse.attention ins(%q, %k, %v : tensor<?x8x?x64xf32>,
        tensor<?x8x?x64xf32>, tensor<?x8x?x64xf32>)
        outs(%oi, %li : tensor<?x8x?x64xf32>, tensor<?x8x?xf32>)
        {scale = 0.125 : f64} -> tensor<?x8x?x64xf32>, tensor<?x8x?xf32>
      mask {
      ^bb0(%b: index, %h: index, %i: index, %j: index):
        %c = arith.cmpi ule, %j, %i : index
        fuse.yield %c : i1
      }
    ```
  }];
  let arguments = (ins AnyRankedTensorOrMemRef:$q, AnyRankedTensorOrMemRef:$k,
                   AnyRankedTensorOrMemRef:$v,
                   Variadic<AnyRankedTensorOrMemRef>:$captures,
                   AnyRankedTensorOrMemRef:$out_init,
                   AnyRankedTensorOrMemRef:$lse_init, F64Attr:$scale);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let regions = (region AnyRegion:$mask, AnyRegion:$score);
  let assemblyFormat = [{
    `ins` `(` $q `,` $k `,` $v `:` type($q) `,` type($k) `,` type($v) `)`
    (`captures` `(` $captures^ `:` type($captures) `)`)?
    `outs` `(` $out_init `,` $lse_init `:` type($out_init) `,`
    type($lse_init) `)` attr-dict (`->` type($results)^)?
    (`mask` $mask^)? (`score` $score^)?
  }];
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return ::mlir::MutableOperandRange(getOperation(),
                                         3 + getCaptures().size(), 2);
    }
  }];
  let hasVerifier = 1;
}

def Fuse_TokenLogprobOp : Fuse_Op<"token_logprob", [
    DestinationStyleOpInterface,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "lm-head, log-softmax and gather without the logits";
  let description = [{
    The kernel form of `loom.token_logprob` with a `weight`, on flattened
    tokens. With `N` tokens, hidden size `d` and vocabulary `V`:

    | operand | shape | meaning |
    |---|---|---|
    | `hidden` | `[N, d]` | the hidden state of each token |
    | `weight` | `[V, d]` | the lm-head, one row per vocabulary entry |
    | `ids` | `[N]`, `i64` | the token whose log-probability is wanted |
    | `outs` | `[N]`, `[N]` | overwritten with `logp` and `lse` |

    With `t = temperature` and `logits[n, v] = (hidden[n] . weight[v]) / t`:
    `lse[n] = log sum_v exp(logits[n, v])` and `logp[n] = logits[n, ids[n]]
    - lse[n]`. The kernel walks the vocabulary in chunks, so the `[N, V]`
    logits never exist in memory; `lse` is what the backward
    (`fuse.token_logprob_grad`) needs from the forward. An id outside `[0,
    V)` gives NaN for its token (nothing is read out of bounds).

    ```mlir
    %lp, %lse = fuse.token_logprob ins(%h, %w, %ids : tensor<?x64xf32>,
        tensor<32000x64xf32>, tensor<?xi64>)
        outs(%lpi, %lsei : tensor<?xf32>, tensor<?xf32>)
        {temperature = 7.000000e-01 : f64} -> tensor<?xf32>, tensor<?xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensorOrMemRef:$hidden,
                   AnyRankedTensorOrMemRef:$weight,
                   AnyRankedTensorOrMemRef:$ids,
                   AnyRankedTensorOrMemRef:$logp_init,
                   AnyRankedTensorOrMemRef:$lse_init, F64Attr:$temperature);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    `ins` `(` $hidden `,` $weight `,` $ids `:` type($hidden) `,`
    type($weight) `,` type($ids) `)`
    `outs` `(` $logp_init `,` $lse_init `:` type($logp_init) `,`
    type($lse_init) `)` attr-dict (`->` type($results)^)?
  }];
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return ::mlir::MutableOperandRange(getOperation(), 3, 2);
    }
  }];
  let hasVerifier = 1;
}

def Fuse_TokenLogprobGradOp : Fuse_Op<"token_logprob_grad", [
    DestinationStyleOpInterface,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "backward of fuse.token_logprob";
  let description = [{
    The kernel form of `loom.token_logprob_grad` with a `weight`, on
    flattened tokens: `hidden [N, d]`, `weight [V, d]`, `ids [N]` (`i64`)
    and `temperature` as in `fuse.token_logprob`, `lse [N]` the forward's
    log-sum-exp and `g [N] = dL/dlogp`. With `p[n, v] = exp(logits[n, v] -
    lse[n])`:

    ```
    dlogits[n, v] = g[n] / t * ([v == ids[n]] - p[n, v])
    grad_hidden   = dlogits . weight          [N, d]
    grad_weight   = dlogits^T . hidden        [V, d]
    ```

    Both `outs` are overwritten whole, except that with `accumulate` the
    product is added to `grad_weight`'s contents (`grad_weight +=
    dlogits^T . hidden`: a gradient summed into a buffer that holds it
    across calls, such as a state). The kernel recomputes the logits chunk
    by chunk of the vocabulary from `lse`, so nothing of size `[N, V]` is
    stored. An id outside `[0, V)` makes its `grad_hidden` row and all of
    `grad_weight` NaN.

    ```mlir
    %dh, %dw = fuse.token_logprob_grad ins(%h, %w, %ids, %lse, %g :
        tensor<?x64xf32>, tensor<32000x64xf32>, tensor<?xi64>,
        tensor<?xf32>, tensor<?xf32>)
        outs(%dhi, %dwi : tensor<?x64xf32>, tensor<32000x64xf32>)
        {temperature = 1.000000e+00 : f64}
        -> tensor<?x64xf32>, tensor<32000x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensorOrMemRef:$hidden,
                   AnyRankedTensorOrMemRef:$weight,
                   AnyRankedTensorOrMemRef:$ids,
                   AnyRankedTensorOrMemRef:$lse,
                   AnyRankedTensorOrMemRef:$grad,
                   AnyRankedTensorOrMemRef:$grad_hidden_init,
                   AnyRankedTensorOrMemRef:$grad_weight_init,
                   F64Attr:$temperature, UnitAttr:$accumulate);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    `ins` `(` $hidden `,` $weight `,` $ids `,` $lse `,` $grad `:`
    type($hidden) `,` type($weight) `,` type($ids) `,` type($lse) `,`
    type($grad) `)`
    `outs` `(` $grad_hidden_init `,` $grad_weight_init `:`
    type($grad_hidden_init) `,` type($grad_weight_init) `)` attr-dict
    (`->` type($results)^)?
  }];
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return ::mlir::MutableOperandRange(getOperation(), 5, 2);
    }
  }];
  let hasVerifier = 1;
}

def Fuse_TokenLogprobRowsOp : Fuse_Op<"token_logprob_rows", [
    DestinationStyleOpInterface,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "token log-probs of a block of tokens, keeping their logits";
  let description = [{
    One step of the single-pass lm-head loss: the forward of
    `fuse.token_logprob` for the tokens `[offset, offset + c)`, where `c =
    min(R, N - offset)` and `R` is the row count of `scratch`, with their
    products over the whole vocabulary left in `scratch`:

    ```
    scratch[r, v] = hidden[offset + r] . weight[v]        r < c
    lse[n]  = log sum_v exp(scratch[n - offset, v] / t)   n in the block
    logp[n] = scratch[n - offset, ids[n]] / t - lse[n]
    ```

    Every other element of `logp`, `lse` and `scratch` keeps its value (the
    outs are read as well as written). `fuse.token_logprob_rows_grad` takes
    the scratch next, for the same block. An id outside `[0, V)` gives NaN
    for its token.

    ```mlir
    %lp1, %lse1, %s1 = fuse.token_logprob_rows ins(%h, %w, %ids :
        tensor<?x64xf32>, tensor<32000x64xf32>, tensor<?xi64>) offset(%n0)
        outs(%lp, %lse, %s : tensor<?xf32>, tensor<?xf32>, tensor<?x32000xf32>)
        {temperature = 1.000000e+00 : f64}
        -> tensor<?xf32>, tensor<?xf32>, tensor<?x32000xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensorOrMemRef:$hidden,
                   AnyRankedTensorOrMemRef:$weight,
                   AnyRankedTensorOrMemRef:$ids, Index:$offset,
                   AnyRankedTensorOrMemRef:$logp_init,
                   AnyRankedTensorOrMemRef:$lse_init,
                   AnyRankedTensorOrMemRef:$scratch_init,
                   F64Attr:$temperature);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    `ins` `(` $hidden `,` $weight `,` $ids `:` type($hidden) `,`
    type($weight) `,` type($ids) `)` `offset` `(` $offset `)`
    `outs` `(` $logp_init `,` $lse_init `,` $scratch_init `:`
    type($logp_init) `,` type($lse_init) `,` type($scratch_init) `)`
    attr-dict (`->` type($results)^)?
  }];
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return ::mlir::MutableOperandRange(getOperation(), 4, 3);
    }
  }];
  let hasVerifier = 1;
}

def Fuse_TokenLogprobRowsGradOp : Fuse_Op<"token_logprob_rows_grad", [
    DestinationStyleOpInterface,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "backward of fuse.token_logprob_rows for its block of tokens";
  let description = [{
    The second half of a step of the single-pass lm-head loss, for the block
    of tokens `[offset, offset + c)` of the `fuse.token_logprob_rows` that
    wrote `scratch` (same operands, offset and temperature) and its `lse`,
    with `g [N] = dL/dlogp`:

    ```
    dlogits[r, v] = g[n] / t * ([v == ids[n]] - exp(scratch[r, v] / t - lse[n]))
    grad_hidden[n] = dlogits[r] . weight                    n = offset + r
    grad_weight    = (offset == 0 ? 0 : grad_weight) + dlogits^T . hidden[block]
    ```

    With `accumulate`, the block at offset 0 adds to `grad_weight` too, so
    the loop leaves `grad_weight`'s old contents plus the gradient (the
    `accumulate` form of `fuse.token_logprob_grad`).

    Rows of `grad_hidden` outside the block keep their values; `scratch` is
    clobbered. A loop over the blocks from offset 0 therefore leaves the
    whole gradients of `fuse.token_logprob_grad` with three products of the
    lm head per token instead of four. A token with g = 0 is left out of the
    products (its `grad_hidden` row is 0). An id outside `[0, V)` with g != 0
    makes its row and `grad_weight` NaN.

    ```mlir
    %dh1, %dw1, %s2 = fuse.token_logprob_rows_grad ins(%h, %w, %ids, %lse, %g
        : tensor<?x64xf32>, tensor<32000x64xf32>, tensor<?xi64>,
        tensor<?xf32>, tensor<?xf32>) offset(%n0)
        outs(%dh, %dw, %s1 : tensor<?x64xf32>, tensor<32000x64xf32>,
        tensor<?x32000xf32>) {temperature = 1.000000e+00 : f64}
        -> tensor<?x64xf32>, tensor<32000x64xf32>, tensor<?x32000xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensorOrMemRef:$hidden,
                   AnyRankedTensorOrMemRef:$weight,
                   AnyRankedTensorOrMemRef:$ids,
                   AnyRankedTensorOrMemRef:$lse,
                   AnyRankedTensorOrMemRef:$grad, Index:$offset,
                   AnyRankedTensorOrMemRef:$grad_hidden_init,
                   AnyRankedTensorOrMemRef:$grad_weight_init,
                   AnyRankedTensorOrMemRef:$scratch_init,
                   F64Attr:$temperature, UnitAttr:$accumulate);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    `ins` `(` $hidden `,` $weight `,` $ids `,` $lse `,` $grad `:`
    type($hidden) `,` type($weight) `,` type($ids) `,` type($lse) `,`
    type($grad) `)` `offset` `(` $offset `)`
    `outs` `(` $grad_hidden_init `,` $grad_weight_init `,` $scratch_init `:`
    type($grad_hidden_init) `,` type($grad_weight_init) `,`
    type($scratch_init) `)` attr-dict (`->` type($results)^)?
  }];
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return ::mlir::MutableOperandRange(getOperation(), 6, 3);
    }
  }];
  let hasVerifier = 1;
}

def Fuse_YieldOp : Fuse_Op<"yield", [Pure, Terminator, ReturnLike,
    ParentOneOf<["AttentionOp"]>]> {
  let summary = "the value of a mask or score region";
  let arguments = (ins AnyType:$value);
  let assemblyFormat = "$value attr-dict `:` type($value)";
}

#endif // FUSE_OPS_TD
