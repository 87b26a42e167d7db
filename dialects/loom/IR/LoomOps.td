//===- LoomOps.td - Loom dialect ops -----------------------*- tablegen -*-===//
//
// This file defines the ops of the `loom` dialect. Ops whose result type
// follows from their operands and attributes implement InferTypeOpInterface;
// the inference doubles as the shape verifier, so a malformed op is reported
// with the shapes involved.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_OPS_TD
#define LOOM_OPS_TD

include "dialects/loom/IR/LoomBase.td"
include "mlir/IR/OpBase.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

//===----------------------------------------------------------------------===//
// Constants and index generators
//===----------------------------------------------------------------------===//

def Loom_ConstantOp : Loom_Op<"constant",
    [ConstantLike, Pure, InferTypeOpAdaptor]> {
  let summary = "a tensor constant";
  let description = [{
    Materializes a dense tensor constant. Scalars written in a `.loom` file
    become rank-0 constants that broadcast against any shape.

    ```mlir
    %c = loom.constant dense<5.000000e-01> : tensor<f32>
    ```
  }];
  let arguments = (ins ElementsAttr:$value);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "attr-dict $value";
  let hasFolder = 1;
}

def Loom_IotaOp : Loom_Op<"iota", [Pure]> {
  let summary = "indices along one axis";
  let description = [{
    Returns a tensor whose every element is its own index along `axis`. The
    shape comes from the result type; when it has symbolic dimensions, the
    optional operand `like` (a tensor of the same shape, any element type)
    supplies them at run time.

    ```mlir
    %pos = loom.iota like %x : tensor<?x?x64xf32> {axis = 1 : i64}
        -> tensor<?x?x64xi64>
    %r = loom.iota {axis = 0 : i64} -> tensor<8xi64>
    ```
  }];
  let arguments = (ins Optional<AnyRankedTensor>:$like, I64Attr:$axis);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    (`like` $like^ `:` type($like))? attr-dict `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Elementwise ops
//===----------------------------------------------------------------------===//

class Loom_BinaryOp<string mnemonic, string desc, list<Trait> traits = []>
    : Loom_Op<mnemonic, !listconcat(traits, [Pure, InferTypeOpAdaptor])> {
  let summary = "elementwise " # desc # " with broadcasting";
  let description = [{
    Applies the operation elementwise after broadcasting both operands to a
    common shape (the dialect's broadcasting rule). Both operands have the
    same element type, which is the result's.

    ```mlir
    %r = loom.}] # mnemonic # [{ %a, %b : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$lhs, AnyRankedTensor:$rhs);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
}

def Loom_AddOp : Loom_BinaryOp<"add", "addition", [Commutative]> {
  let hasFolder = 1;
}
def Loom_SubOp : Loom_BinaryOp<"sub", "subtraction"> { let hasFolder = 1; }
def Loom_MulOp : Loom_BinaryOp<"mul", "multiplication", [Commutative]> {
  let hasFolder = 1;
}
def Loom_DivOp : Loom_BinaryOp<"div", "division (integers truncate toward "
                                      "zero; x / 0 is 0 and MIN / -1 is MIN)"> {
  let hasFolder = 1;
}
def Loom_MaxOp : Loom_BinaryOp<"max", "maximum", [Commutative]>;
def Loom_MinOp : Loom_BinaryOp<"min", "minimum", [Commutative]>;
def Loom_PowOp : Loom_BinaryOp<"pow", "power (floats only)">;
def Loom_AndOp : Loom_BinaryOp<"and", "logical and (bool only)", [Commutative]>;
def Loom_OrOp : Loom_BinaryOp<"or", "logical or (bool only)", [Commutative]>;

def Loom_CmpOp : Loom_Op<"cmp", [Pure, InferTypeOpAdaptor]> {
  let summary = "elementwise comparison with broadcasting";
  let description = [{
    Compares two tensors of the same element type elementwise after
    broadcasting and returns a tensor of `i1`. `predicate` is one of `eq`,
    `ne`, `lt`, `le`, `gt`, `ge`; float comparisons are ordered (NaN compares
    false except under `ne`).

    ```mlir
    %m = loom.cmp "lt" %a, %b : tensor<?xi64>, tensor<?xi64> -> tensor<?xi1>
    ```
  }];
  let arguments = (ins StrAttr:$predicate, AnyRankedTensor:$lhs,
                   AnyRankedTensor:$rhs);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $predicate $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->`
    type($result)
  }];
}

def Loom_SelectOp : Loom_Op<"select", [Pure, InferTypeOpAdaptor]> {
  let summary = "elementwise choice between two tensors";
  let description = [{
    Returns `on_true` where `cond` (an `i1` tensor) holds and `on_false`
    elsewhere; the three operands broadcast together.

    ```mlir
    %r = loom.select %c, %a, %b
        : tensor<?x?xi1>, tensor<?x?xf32>, tensor<f32> -> tensor<?x?xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$cond, AnyRankedTensor:$on_true,
                   AnyRankedTensor:$on_false);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $cond `,` $on_true `,` $on_false attr-dict `:` type($cond) `,`
    type($on_true) `,` type($on_false) `->` type($result)
  }];
}

class Loom_UnaryOp<string mnemonic, string desc, list<Trait> traits = []>
    : Loom_Op<mnemonic, !listconcat(traits, [Pure, InferTypeOpAdaptor])> {
  let summary = "elementwise " # desc;
  let description = [{
    Applies the function to every element; the result has the operand's
    type.

    ```mlir
    %r = loom.}] # mnemonic # [{ %x : tensor<?x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$operand);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$operand attr-dict `:` type($operand) `->` type($result)";
}

def Loom_NegOp : Loom_UnaryOp<"neg", "negation"> { let hasFolder = 1; }
def Loom_AbsOp : Loom_UnaryOp<"abs", "absolute value">;
def Loom_ExpOp : Loom_UnaryOp<"exp", "exponential (floats)">;
def Loom_LogOp : Loom_UnaryOp<"log", "natural logarithm (floats)">;
def Loom_TanhOp : Loom_UnaryOp<"tanh", "hyperbolic tangent (floats)">;
def Loom_SigmoidOp : Loom_UnaryOp<"sigmoid", "logistic sigmoid 1/(1+exp(-x)) (floats)">;
def Loom_SiluOp : Loom_UnaryOp<"silu", "SiLU x*sigmoid(x) (floats)">;
def Loom_GeluOp : Loom_UnaryOp<"gelu", "GELU with the exact erf form (floats)">;
def Loom_RsqrtOp : Loom_UnaryOp<"rsqrt", "reciprocal square root (floats)">;
def Loom_SqrtOp : Loom_UnaryOp<"sqrt", "square root (floats)">;
def Loom_SinOp : Loom_UnaryOp<"sin", "sine of radians (floats)">;
def Loom_CosOp : Loom_UnaryOp<"cos", "cosine of radians (floats)">;
def Loom_NotOp : Loom_UnaryOp<"not", "logical negation (bool)">;

def Loom_CastOp : Loom_Op<"cast", [Pure]> {
  let summary = "elementwise element type conversion";
  let description = [{
    Converts every element to the result's element type: float to integer
    truncates toward zero, integer to bool is `!= 0`, bool to number is 0/1.
    Shapes are equal.

    ```mlir
    %r = loom.cast %x : tensor<?xi64> -> tensor<?xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$operand);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$operand attr-dict `:` type($operand) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

//===----------------------------------------------------------------------===//
// Reductions and normalizations
//===----------------------------------------------------------------------===//

class Loom_ReduceOp<string mnemonic, string desc>
    : Loom_Op<mnemonic, [Pure, InferTypeOpAdaptor]> {
  let summary = desc # " over axes";
  let description = [{
    Reduces over the listed `axes` (distinct, in range). With `keepdim` the
    reduced dimensions stay as size 1; without it they are removed. An empty
    axes list reduces nothing. Over an empty dimension the result is the
    identity: 0 for sums, -inf / +inf (or the integer extremes) for maximum
    and minimum, NaN for a mean.

    ```mlir
    %r = loom.}] # mnemonic # [{ %x {axes = array<i64: 1>, keepdim = true}
        : tensor<?x64xf32> -> tensor<?x1xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$operand, DenseI64ArrayAttr:$axes,
                   DefaultValuedAttr<BoolAttr, "false">:$keepdim);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$operand attr-dict `:` type($operand) `->` type($result)";
}

def Loom_SumOp : Loom_ReduceOp<"sum", "sum">;
def Loom_MeanOp : Loom_ReduceOp<"mean", "arithmetic mean (floats)">;
def Loom_ReduceMaxOp : Loom_ReduceOp<"reduce_max", "maximum">;
def Loom_ReduceMinOp : Loom_ReduceOp<"reduce_min", "minimum">;

class Loom_AxisOp<string mnemonic, string desc>
    : Loom_Op<mnemonic, [Pure, InferTypeOpAdaptor]> {
  let summary = desc;
  let description = [{
    Normalizes along `axis` (floats); the result has the operand's type.
    Computed stably (the maximum is subtracted first).

    ```mlir
    %p = loom.}] # mnemonic # [{ %x {axis = 1 : i64} : tensor<?x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$operand, I64Attr:$axis);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$operand attr-dict `:` type($operand) `->` type($result)";
}

def Loom_SoftmaxOp : Loom_AxisOp<"softmax", "softmax along one axis">;
def Loom_LogSoftmaxOp : Loom_AxisOp<"log_softmax", "log-softmax along one axis">;

def Loom_TokenLogprobOp : Loom_Op<"token_logprob",
                                  [Pure, InferTypeOpAdaptor]> {
  let summary = "log-probability of each token id under its logits";
  let description = [{
    `result[i...] = log_softmax(logits[i..., :] / temperature)[ids[i...]]`:
    without `weight`, `input` is the float tensor of logits `[..., V]`;
    with `weight` (the lm-head `[V, d]`), `input` is the hidden states
    `[..., d]` and `logits = input @ weight^T`, which the fused lowering
    never materializes (`fuse.token_logprob`). `ids` is an `i32` or `i64`
    tensor with the leading shape `[...]` of `input`, and the result has the
    shape of `ids` and the element type of `input`. `temperature` must be
    > 0 (TRL's `selective_log_softmax` on logits divided by the
    temperature). Computed stably (the row maximum is subtracted first).
    The canonicalizer folds `token_logprob(linear(x, w), ids)` into the
    form with `weight` when the linear has no bias and no other use.

    An id outside `[0, V)` is an error in the interpreter; compiled code
    never reads out of bounds: it clamps the index and gives NaN for that
    token. With `V = 0` no id is valid, and when dynamic leading dimensions
    of `input` and `ids` differ at run time no row can be read: compiled
    code gives NaN for every token then.

    ```mlir
    %lp = loom.token_logprob %logits, %ids {temperature = 7.0e-01 : f64}
        : tensor<?x?x32000xf32>, tensor<?x?xi64> -> tensor<?x?xf32>
    %lq = loom.token_logprob %hidden, %ids weight %w
        : tensor<?x?x64xf32>, tensor<?x?xi64>, tensor<32000x64xf32>
        -> tensor<?x?xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$ids,
                   Optional<AnyRankedTensor>:$weight,
                   DefaultValuedAttr<F64Attr, "1.0">:$temperature);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $input `,` $ids (`weight` $weight^)? attr-dict `:` type($input) `,`
    type($ids) (`,` type($weight)^)? `->` type($result)
  }];
  let hasCanonicalizer = 1;
}

def Loom_TokenLogprobGradOp : Loom_Op<"token_logprob_grad",
                                      [Pure, InferTypeOpAdaptor]> {
  let summary = "backward of token_logprob";
  let description = [{
    Given `grad = dL/dresult` of a `loom.token_logprob` with the same
    `input`, `ids`, optional `weight` and `temperature`, returns
    `dL/dinput` and, with `weight`, `dL/dweight`:

    ```
    dlogits[i..., v] = grad[i...] / T * ([v == ids[i...]] - softmax(logits[i...] / T)[v])
    input_grad  = dlogits                       (no weight)
    input_grad  = dlogits @ weight              (with weight)  [..., d]
    weight_grad = sum over i... of dlogits^T @ input           [V, d]
    ```

    The reverse-mode pass `loom-autodiff` writes it; the fused lowering
    (`fuse.token_logprob_grad`) walks the vocabulary in chunks.

    ```mlir
    %dx, %dw = loom.token_logprob_grad %x, %ids, %g weight %w
        : tensor<?x64xf32>, tensor<?xi64>, tensor<?xf32>, tensor<100x64xf32>
        -> tensor<?x64xf32>, tensor<100x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$ids,
                   AnyRankedTensor:$grad, Optional<AnyRankedTensor>:$weight,
                   DefaultValuedAttr<F64Attr, "1.0">:$temperature);
  let results = (outs AnyRankedTensor:$input_grad,
                 Optional<AnyRankedTensor>:$weight_grad);
  let assemblyFormat = [{
    $input `,` $ids `,` $grad (`weight` $weight^)? attr-dict `:`
    type($input) `,` type($ids) `,` type($grad) (`,` type($weight)^)? `->`
    type($input_grad) (`,` type($weight_grad)^)?
  }];
}

//===----------------------------------------------------------------------===//
// Differentiation and RL objectives
//===----------------------------------------------------------------------===//

def Loom_GradOp : Loom_Op<"grad", [Pure]> {
  let summary = "gradient of a scalar with respect to values (reverse mode)";
  let description = [{
    `dL/dwrt` for the rank-0 float `loss` and each value of `wrt` (float
    tensors defined in the same function: arguments or op results); each
    result has the type of its `wrt`. The pass `loom-autodiff` replaces the
    op with the adjoint computation, built from the derivative rule of
    every op on a path from a `wrt` value to `loss`; a value that does not
    reach `loss` gets a zero gradient, and `loom.stop_gradient` cuts paths.

    ```mlir
    %g:2 = loom.grad %loss, %x, %w : (tensor<f32>, tensor<?x4xf32>,
        tensor<8x4xf32>) -> (tensor<?x4xf32>, tensor<8x4xf32>)
    ```
  }];
  let arguments = (ins AnyRankedTensor:$loss, Variadic<AnyRankedTensor>:$wrt);
  let results = (outs Variadic<AnyRankedTensor>:$gradients);
  let assemblyFormat = [{
    $loss (`,` $wrt^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Loom_StopGradientOp : Loom_UnaryOp<"stop_gradient",
    "identity whose gradient is zero (torch's detach)">;

def Loom_KlOp : Loom_Op<"kl", [Pure, InferTypeOpAdaptor]> {
  let summary = "per-sample KL estimator of the policy against a reference";
  let description = [{
    With `x = logp - ref` (broadcast, floats), `estimator` selects
    J. Schulman's estimator of KL(policy || reference) from samples of the
    policy: `k1 = x`, `k2 = x^2 / 2`, `k3 = exp(-x) + x - 1` (TRL's GRPO
    `per_token_kl`). See docs/objectives.md.

    ```mlir
    %kl = loom.kl %logp, %ref {estimator = "k3"}
        : tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$logp, AnyRankedTensor:$ref,
                   StrAttr:$estimator);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $logp `,` $ref attr-dict `:` type($logp) `,` type($ref) `->`
    type($result)
  }];
}

def Loom_GaeOp : Loom_Op<"gae", [Pure, InferTypeOpAdaptor]> {
  let summary = "generalized advantage estimation over masked rows";
  let description = [{
    `rewards`, `values` and `mask` are float tensors `[B, T]` of one type;
    the result is the advantages `[B, T]`. Per row, over the positions
    whose mask is not 0, in order (ReFT's rollout; the value after the last
    valid position is 0; "next" is the next valid position):

    ```
    delta_t = rewards_t + gamma * values_next - values_t
    A_t     = delta_t + gamma * lam * A_next        (0 after the last)
    ```

    Positions whose mask is 0 get 0. The op has no derivative rule: its
    inputs are constants of the loss (ReFT computes them without
    gradient).

    ```mlir
    %adv = loom.gae %r, %v, %m {gamma = 1.0 : f64, lam = 9.5e-01 : f64}
        : tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$rewards, AnyRankedTensor:$values,
                   AnyRankedTensor:$mask, F64Attr:$gamma, F64Attr:$lam);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $rewards `,` $values `,` $mask attr-dict `:` type($rewards) `,`
    type($values) `,` type($mask) `->` type($result)
  }];
}

def Loom_RmsNormOp : Loom_Op<"rms_norm", [Pure, InferTypeOpAdaptor]> {
  let summary = "RMSNorm over the last dimension";
  let description = [{
    `x * rsqrt(mean(x^2, last axis) + eps) * weight`, where `weight` is a
    vector as long as the last dimension of `x` (Zhang & Sennrich 2019; the
    form DeepSeek-V3 and LLaMA use).

    ```mlir
    %y = loom.rms_norm %x, %w {eps = 1.0e-06 : f64}
        : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$operand, AnyRankedTensor:$weight,
                   F64Attr:$eps);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $operand `,` $weight attr-dict `:` type($operand) `,` type($weight) `->`
    type($result)
  }];
}

//===----------------------------------------------------------------------===//
// Matrix products
//===----------------------------------------------------------------------===//

def Loom_MatmulOp : Loom_Op<"matmul", [Pure, InferTypeOpAdaptor]> {
  let summary = "batched matrix product";
  let description = [{
    `op(a) @ op(b)` where `op` transposes the two trailing dimensions when the
    flag is set. Both operands have rank >= 2; leading (batch) dimensions
    broadcast. The contraction dimensions must be equal.

    ```mlir
    %c = loom.matmul %a, %b {transpose_b = true}
        : tensor<?x?x64xf32>, tensor<?x128x64xf32> -> tensor<?x?x128xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$lhs, AnyRankedTensor:$rhs,
                   DefaultValuedAttr<BoolAttr, "false">:$transpose_a,
                   DefaultValuedAttr<BoolAttr, "false">:$transpose_b);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
}

def Loom_LinearOp : Loom_Op<"linear", [Pure, InferTypeOpAdaptor]> {
  let summary = "x @ weight^T + bias, as torch.nn.functional.linear";
  let description = [{
    `x` has shape `[..., in]`, `weight` is `[out, in]` and the optional
    `bias` is `[out]`; the result is `[..., out]`.

    ```mlir
    %y = loom.linear %x, %w : tensor<?x64xf32>, tensor<256x64xf32> -> tensor<?x256xf32>
    %z = loom.linear %x, %w, %b
        : tensor<?x64xf32>, tensor<256x64xf32>, tensor<256xf32> -> tensor<?x256xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$operand, AnyRankedTensor:$weight,
                   Optional<AnyRankedTensor>:$bias);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $operand `,` $weight (`,` $bias^)? attr-dict `:` type($operand) `,`
    type($weight) (`,` type($bias)^)? `->` type($result)
  }];
}

//===----------------------------------------------------------------------===//
// Data movement
//===----------------------------------------------------------------------===//

def Loom_ReshapeOp : Loom_Op<"reshape", [Pure, InferTypeOpAdaptor]> {
  let summary = "reshape with ONNX conventions";
  let description = [{
    Reinterprets the elements in row-major order with a new shape. Each entry
    of `shape` is a size >= 1, `0` (copy the operand's dimension at the same
    index, which may be symbolic) or `-1` (inferred from the element count; at
    most one).

    ```mlir
    %r = loom.reshape %x {shape = array<i64: 0, 0, 8, -1>}
        : tensor<?x?x512xf32> -> tensor<?x?x8x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$operand, DenseI64ArrayAttr:$shape);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$operand attr-dict `:` type($operand) `->` type($result)";
  let hasFolder = 1;
}

def Loom_TransposeOp : Loom_Op<"transpose", [Pure, InferTypeOpAdaptor]> {
  let summary = "permutation of dimensions";
  let description = [{
    Result dimension `i` is operand dimension `permutation[i]`.

    ```mlir
    %t = loom.transpose %x {permutation = array<i64: 0, 2, 1, 3>}
        : tensor<?x?x8x64xf32> -> tensor<?x8x?x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$operand,
                   DenseI64ArrayAttr:$permutation);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$operand attr-dict `:` type($operand) `->` type($result)";
  let hasFolder = 1;
}

def Loom_SliceOp : Loom_Op<"slice", [Pure, InferTypeOpAdaptor]> {
  let summary = "a strided range of one axis";
  let description = [{
    Keeps indices `start, start + step, ...` below `end` along `axis`, with
    Python's conventions: negative `start`/`end` count from the end, and both
    are clamped to the dimension. `step` is positive.

    ```mlir
    %q = loom.slice %x {axis = 2 : i64, start = 0 : i64, end = 128 : i64, step = 1 : i64}
        : tensor<?x?x192xf32> -> tensor<?x?x128xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$operand, I64Attr:$axis, I64Attr:$start,
                   I64Attr:$end, DefaultValuedAttr<I64Attr, "1">:$step);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$operand attr-dict `:` type($operand) `->` type($result)";
}

def Loom_ConcatOp : Loom_Op<"concat", [Pure, InferTypeOpAdaptor]> {
  let summary = "concatenation along one axis";
  let description = [{
    Joins operands of equal rank and element type along `axis`; the other
    dimensions must match.

    ```mlir
    %c = loom.concat %a, %b {axis = 2 : i64}
        : tensor<?x?x128xf32>, tensor<?x?x64xf32> -> tensor<?x?x192xf32>
    ```
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$inputs, I64Attr:$axis);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $inputs attr-dict `:` type($inputs) `->` type($result)
  }];
}

def Loom_DynamicSliceOp : Loom_Op<"dynamic_slice",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "a range of one axis that starts at a run-time position";
  let description = [{
    Keeps `operand[..., start : start + length, ...]` along `axis`, where
    `start` is a run-time value: a rank-0 `i32` or `i64` tensor. The length
    comes in one of two forms, never both:

    - a run-time `length` operand (a rank-0 `i32` or `i64` tensor): the
      result has `?` along `axis`. `start` is clamped to `[0, dim]` and then
      `length` to `[0, dim - start]`, so the result may be shorter than asked
      (even empty) but never reads out of bounds.
    - a static `size` attribute (>= 0): the result has `size` along `axis`.
      The operand's dimension along `axis` must be static and at least
      `size`; `start` is clamped to `[0, dim - size]` (XLA's rule), so the
      result always has exactly `size` in-bounds elements.

    ```mlir
    %rows = loom.dynamic_slice %x, %start, %len {axis = 1 : i64}
        : tensor<?x16x8xf32>, tensor<i64>, tensor<i64> -> tensor<?x?x8xf32>
    %four = loom.dynamic_slice %x, %start {axis = 1 : i64, size = 4 : i64}
        : tensor<?x16x8xf32>, tensor<i64> -> tensor<?x4x8xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$operand, AnyRankedTensor:$start,
                   Optional<AnyRankedTensor>:$length, I64Attr:$axis,
                   OptionalAttr<I64Attr>:$size);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $operand `,` $start (`,` $length^)? attr-dict `:` type($operand) `,`
    type($start) (`,` type($length)^)? `->` type($result)
  }];
}

def Loom_DynamicUpdateSliceOp : Loom_Op<"dynamic_update_slice",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "overwrite a range of one axis at a run-time position";
  let description = [{
    Returns `target` with `update` written at `[start, start + n)` along
    `axis`, where `start` is a run-time rank-0 `i32` or `i64` tensor and `n`
    is the update's extent along `axis`. The operands have the same rank and
    element type; the result has the target's type (value semantics: the
    target itself is not modified).

    Where the types are static, the update's dimensions must not exceed the
    target's; outside `axis` the update is written at offset 0 (rows
    `[0, B)` of a `[max_batch, ...]` cache). Dimensions
    that are `?` are not checked before run time, where nothing is ever
    written out of bounds: along every dimension only the first
    `min(update dim, target dim)` elements of the update are written, and
    `start` is clamped to `[0, dim - n]` with `n` that written extent along
    `axis` (XLA's rule), so an update that fits is always written whole.

    ```mlir
    %cache2 = loom.dynamic_update_slice %cache, %k, %pos {axis = 1 : i64}
        : tensor<4x16x8xf32>, tensor<?x?x8xf32>, tensor<i64>
        -> tensor<4x16x8xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$target, AnyRankedTensor:$update,
                   AnyRankedTensor:$start, I64Attr:$axis);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $target `,` $update `,` $start attr-dict `:` type($target) `,`
    type($update) `,` type($start) `->` type($result)
  }];
}

def Loom_GatherOp : Loom_Op<"gather", [Pure, InferTypeOpAdaptor]> {
  let summary = "index_select / numpy take along one axis";
  let description = [{
    `result[i..., j..., k...] = operand[i..., indices[j...], k...]` with
    `axis` the position of the indexed dimension; `indices` is an `i32` or
    `i64` tensor. The result shape is `operand.shape[:axis] + indices.shape +
    operand.shape[axis+1:]`. Out-of-range indices are clamped; gathering
    from an empty dimension gives zeros.

    ```mlir
    %e = loom.gather %table, %ids {axis = 0 : i64}
        : tensor<1000x64xf32>, tensor<?x?xi64> -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$operand, AnyRankedTensor:$indices,
                   I64Attr:$axis);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $operand `,` $indices attr-dict `:` type($operand) `,` type($indices) `->`
    type($result)
  }];
}

def Loom_BroadcastOp : Loom_Op<"broadcast", [Pure, InferTypeOpAdaptor]> {
  let summary = "broadcast to a shape";
  let description = [{
    Stretches the operand to the shape of `like` (any element type) or, with
    no `like`, to the static `shape` attribute, following the dialect's
    broadcasting rule. The element type is the operand's.

    ```mlir
    %b = loom.broadcast %bias like %x : tensor<64xf32>, tensor<?x64xf32> -> tensor<?x64xf32>
    %c = loom.broadcast %s {shape = array<i64: 4, 8>} : tensor<f32> -> tensor<4x8xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$operand,
                   Optional<AnyRankedTensor>:$like,
                   OptionalAttr<DenseI64ArrayAttr>:$shape);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $operand (`like` $like^)? attr-dict `:` type($operand) (`,` type($like)^)?
    `->` type($result)
  }];
  let hasFolder = 1;
}

def Loom_MlaAttentionOp : Loom_Op<"mla_attention", [Pure, InferTypeOpAdaptor]> {
  let summary = "DeepSeek-V3 multi-head latent attention with its KV cache";
  let description = [{
    The attention core of DeepSeek-V3's `MLA` layer (`inference/model.py`),
    from the projected queries and the compressed key-value latent to the
    per-head attention output, with the cache update. The projections
    around it (`wq`/`wq_a`-`q_norm`-`wq_b`, `wkv_a`, `kv_norm`, RoPE, `wo`)
    are ordinary ops. Operands, with `B` rows of `S` new tokens, `H` heads,
    `Dn = qk_nope_head_dim`, `R = qk_rope_head_dim`, `Dv = v_head_dim`,
    `C = kv_lora_rank`, `MB = max_batch_size`, `T = max_seq_len`:

    | operand | shape | meaning |
    |---|---|---|
    | `q_nope` | `[B, S, H, Dn]` | query part without position |
    | `q_pe` | `[B, S, H, R]` | rotated query part |
    | `kv` | `[B, S, C]` | normalized latent (`kv_norm(wkv_a(x)[..., :C])`) |
    | `k_pe` | `[B, S, R]` | rotated rope key, shared by all heads |
    | `wkv_b` | `[H * (Dn + Dv), C]` | the up-projection `wkv_b.weight` |
    | `k_cache` | `[MB, T, H, Dn + R]` | per-head keys (naive layout) |
    | `v_cache` | `[MB, T, H, Dv]` | per-head values |
    | `start_pos` | rank-0 `i32`/`i64` | position of the first new token |

    Semantics (DeepSeek's `attn_impl = "naive"`): `k_nope, v = split(kv @
    wkv_bᵀ per head)`, `k = concat(k_nope, k_pe broadcast over heads)`;
    the caches get `k` and `v` at rows `[0, B)`, positions `[start_pos,
    start_pos + S)` (written like `loom.dynamic_update_slice` along axis 1);
    query `(b, s, h)` attends to the cached keys `t <= start_pos + s`
    (causal inside the chunk) with scores `scale * q . k`, and the result
    `out[b, s, h] = softmax(scores) @ v`. Results: `out` `[B, S, H, Dv]` and
    the two updated caches.

    The op exists so that graph passes can choose the cache layout:
    `loom-mla-absorb` caches only the latent and the rope key and attends in
    the latent space (`attn_impl = "absorb"`), `loom-mla-expand` writes the
    computation above with elementary ops.

    ```mlir
    %o, %kc, %vc = loom.mla_attention %qn, %qp, %kv, %kpe, %w, %kcache, %vcache, %pos
        {scale = 0.0722 : f64}
        : tensor<?x?x16x128xf32>, tensor<?x?x16x64xf32>, tensor<?x?x512xf32>,
          tensor<?x?x64xf32>, tensor<4096x512xf32>, tensor<8x4096x16x192xf32>,
          tensor<8x4096x16x128xf32>, tensor<i64>
        -> tensor<?x?x16x128xf32>, tensor<8x4096x16x192xf32>, tensor<8x4096x16x128xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$q_nope, AnyRankedTensor:$q_pe,
                   AnyRankedTensor:$kv, AnyRankedTensor:$k_pe,
                   AnyRankedTensor:$wkv_b, AnyRankedTensor:$k_cache,
                   AnyRankedTensor:$v_cache, AnyRankedTensor:$start_pos,
                   F64Attr:$scale);
  let results = (outs AnyRankedTensor:$out, AnyRankedTensor:$new_k_cache,
                 AnyRankedTensor:$new_v_cache);
  let assemblyFormat = [{
    $q_nope `,` $q_pe `,` $kv `,` $k_pe `,` $wkv_b `,` $k_cache `,` $v_cache
    `,` $start_pos attr-dict `:` type($q_nope) `,` type($q_pe) `,` type($kv)
    `,` type($k_pe) `,` type($wkv_b) `,` type($k_cache) `,` type($v_cache)
    `,` type($start_pos) `->` type($out) `,` type($new_k_cache) `,`
    type($new_v_cache)
  }];
}

//===----------------------------------------------------------------------===//
// Attention with a mask and a score modifier
//===----------------------------------------------------------------------===//

def Loom_AttentionOp : Loom_Op<"attention", [Pure, IsolatedFromAbove,
    InferTypeOpAdaptor]> {
  let summary = "scaled dot-product attention with a mask and score regions";
  let description = [{
    `softmax(score(scale * q . k) over visible keys) . v` per query, the MLIR
    form of FlexAttention's `mask_mod` and `score_mod`. With `B` batch rows,
    `Hq` query heads, `Hkv` key/value heads (`Hq` a multiple of `Hkv`: MHA,
    GQA and MQA), `Sq` queries, `Skv` keys, head dims `Dk` and `Dv`:

    | operand | shape | meaning |
    |---|---|---|
    | `q` | `[B, Hq, Sq, Dk]` | queries |
    | `k` | `[B, Hkv, Skv, Dk]` | keys; query head `h` reads head `h / (Hq / Hkv)` |
    | `v` | `[B, Hkv, Skv, Dv]` | values |
    | `captures` | any | index tensors the regions read (intervals, CSR edges, bias) |

    The `mask` region (optional; none means every key is visible) has the
    block arguments `(b, h, i, j: index, captures...)` and yields an `i1`:
    whether key `j` is visible to query `i` of batch row `b` and query head
    `h`. The `score` region (optional) has the arguments `(b, h, i, j:
    index, s: element type, captures...)` and yields the new score; it is
    applied before the mask. Both regions hold scalar code only (`arith`,
    `math`, `tensor.extract` of a capture, `loom.csr_contains`) and end in
    `loom.yield`.

    Results: `out` `[B, Hq, Sq, Dv]` and the log-sum-exp of the visible
    scores `lse` `[B, Hq, Sq]`. A query with no visible key gets `out` 0
    and `lse` -inf.

    ```mlir
    %o, %lse = loom.attention %q, %k, %v captures(%tin, %tout : tensor<?xi32>, tensor<?xi32>)
        {scale = 0.125 : f64}
        : tensor<?x8x?x64xf32>, tensor<?x8x?x64xf32>, tensor<?x8x?x64xf32>
        -> tensor<?x8x?x64xf32>, tensor<?x8x?xf32>
      mask {
      ^bb0(%b: index, %h: index, %i: index, %j: index, %a: tensor<?xi32>, %z: tensor<?xi32>):
        %c = arith.cmpi ule, %j, %i : index
        loom.yield %c : i1
      }
    ```
  }];
  let arguments = (ins AnyRankedTensor:$q, AnyRankedTensor:$k,
                   AnyRankedTensor:$v, Variadic<AnyRankedTensor>:$captures,
                   F64Attr:$scale);
  let results = (outs AnyRankedTensor:$out, AnyRankedTensor:$lse);
  let regions = (region AnyRegion:$mask, AnyRegion:$score);
  let assemblyFormat = [{
    $q `,` $k `,` $v (`captures` `(` $captures^ `:` type($captures) `)`)?
    attr-dict `:` type($q) `,` type($k) `,` type($v) `->` type($out) `,`
    type($lse) (`mask` $mask^)? (`score` $score^)?
  }];
  let hasVerifier = 1;
}

def Loom_YieldOp : Loom_Op<"yield", [Pure, Terminator, ReturnLike,
    ParentOneOf<["AttentionOp"]>]> {
  let summary = "the value of a mask or score region";
  let arguments = (ins AnyType:$value);
  let assemblyFormat = "$value attr-dict `:` type($value)";
}

def Loom_CsrContainsOp : Loom_Op<"csr_contains", [Pure]> {
  let summary = "whether row `i` of a CSR adjacency lists column `j`";
  let description = [{
    A scalar op for mask regions: true when `j` is one of `indices[p]` for
    `p` in `[indptr[i], indptr[i + 1])`. `indptr` has one more element than
    there are rows; each row's columns are sorted ascending (the op may
    stop at the first column greater than `j`). A row index outside
    `[0, rows)` or a `p` outside `indices` reads as no edge.

    ```mlir
    %e = loom.csr_contains %indptr, %indices, %i, %j : tensor<?xi32>, tensor<?xi32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$indptr, AnyRankedTensor:$indices,
                   Index:$row, Index:$column);
  let results = (outs I1:$result);
  let assemblyFormat = [{
    $indptr `,` $indices `,` $row `,` $column attr-dict `:` type($indptr) `,`
    type($indices)
  }];
  let hasVerifier = 1;
}

#endif // LOOM_OPS_TD
