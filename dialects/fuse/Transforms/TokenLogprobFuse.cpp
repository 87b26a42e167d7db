//===- TokenLogprobFuse.cpp - Token log-probs without logits ----*- C++ -*-===//
//
// This file implements loom-fuse-token-logprob (see Passes.td): the lm-head
// forms of `loom.token_logprob` and `loom.token_logprob_grad` become
// `fuse.token_logprob` and `fuse.token_logprob_grad` on flattened tokens,
// and a backward reuses the log-sum-exp of its forward when the function
// computes one.
//
//===----------------------------------------------------------------------===//

#include "dialects/fuse/IR/FuseOps.h"
#include "dialects/fuse/Transforms/Passes.h"
#include "dialects/fuse/Transforms/Transforms.h"
#include "dialects/loom/IR/LoomBuilder.h"
#include "dialects/loom/IR/LoomOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Dominance.h"
#include "llvm/ADT/DenseMap.h"

namespace mlir::fuse {
#define GEN_PASS_DEF_TOKENLOGPROBFUSEPASS
#include "dialects/fuse/Transforms/Passes.h.inc"
} // namespace mlir::fuse

using namespace mlir;

namespace {

RankedTensorType tensorOf(Value value) {
  return cast<RankedTensorType>(value.getType());
}

/// The kernels exist for f32 hidden states and lm-heads only; other types
/// stay for the linalg lowering.
bool fusable(Value input, Value weight) {
  return weight && tensorOf(input).getElementType().isF32() &&
         tensorOf(weight).getElementType().isF32();
}

/// The size of the hidden dimension, from the input or else the lm-head.
int64_t hiddenSize(Value input, Value weight) {
  int64_t d = tensorOf(input).getShape().back();
  return ShapedType::isDynamic(d) ? tensorOf(weight).getDimSize(1) : d;
}

/// Builds the flattened operands of one op at one location.
class Flattener {
public:
  Flattener(OpBuilder &b, Location loc) : b(b), loc(loc), s(b, loc) {}

  /// `[..., d]` hidden states as `[N, d]`.
  Value hidden(Value input, Value weight) {
    auto type = tensorOf(input);
    if (type.getRank() == 2)
      return input;
    if (type.getRank() == 1)
      return s.reshape(input, {1, -1});
    int64_t d = hiddenSize(input, weight);
    if (!ShapedType::isDynamic(d))
      return s.reshape(input, {-1, d});
    SmallVector<ReassociationIndices> groups(2);
    for (int64_t i = 0; i + 1 < type.getRank(); ++i)
      groups[0].push_back(i);
    groups[1].push_back(type.getRank() - 1);
    return tensor::CollapseShapeOp::create(b, loc, input, groups);
  }

  /// A per-token tensor `[...]` as `[N]`.
  Value tokens(Value x) {
    if (tensorOf(x).getRank() == 1)
      return x;
    return s.reshape(x, {-1});
  }

  /// Token ids as `[N]` i64.
  Value ids(Value x) {
    Value flat = tokens(x);
    if (!flat || tensorOf(flat).getElementType().isInteger(64))
      return flat;
    return s.op(
        "loom.cast", {flat}, {},
        RankedTensorType::get(tensorOf(flat).getShape(), b.getI64Type()));
  }

  /// `flat` (leading dimension N) reshaped to `type`, whose dimensions are
  /// those of `like` (a tensor of `type`'s shape). One dynamic dimension is
  /// inferred by `loom.reshape`; with more, `tensor.reshape` reads the sizes
  /// of `like`.
  Value unflatten(Value flat, RankedTensorType type, Value like) {
    if (!flat || tensorOf(flat) == type)
      return flat;
    ArrayRef<int64_t> shape = type.getShape();
    if (llvm::count_if(shape, ShapedType::isDynamic) <= 1) {
      SmallVector<int64_t> spec(shape);
      for (int64_t &size : spec)
        if (ShapedType::isDynamic(size))
          size = -1;
      Value reshaped = s.reshape(flat, spec);
      if (reshaped && reshaped.getType() != type)
        reshaped = tensor::CastOp::create(b, loc, type, reshaped);
      return reshaped;
    }
    SmallVector<Value> sizes;
    for (int64_t d = 0; d < type.getRank(); ++d)
      sizes.push_back(tensor::DimOp::create(b, loc, like, d));
    Value shapeTensor = tensor::FromElementsOp::create(b, loc, sizes);
    return tensor::ReshapeOp::create(b, loc, type, flat, shapeTensor);
  }

  /// A `tensor.empty` of `shape` (f32) whose dynamic sizes are those of
  /// `like`'s dimensions `dims`.
  Value empty(ArrayRef<std::pair<Value, int64_t>> dims) {
    SmallVector<int64_t> shape;
    SmallVector<Value> dynamic;
    for (auto [value, d] : dims) {
      int64_t size = tensorOf(value).getDimSize(d);
      shape.push_back(size);
      if (ShapedType::isDynamic(size))
        dynamic.push_back(tensor::DimOp::create(b, loc, value, d));
    }
    return tensor::EmptyOp::create(b, loc, shape, b.getF32Type(), dynamic);
  }

  /// The forward kernel on flattened operands.
  fuse::TokenLogprobOp forward(Value hidden, Value weight, Value ids,
                               FloatAttr temperature) {
    Value logpInit = empty({{hidden, 0}});
    Value lseInit = empty({{hidden, 0}});
    Type type = logpInit.getType();
    return fuse::TokenLogprobOp::create(b, loc, TypeRange{type, type}, hidden,
                                        weight, ids, logpInit, lseInit,
                                        temperature);
  }

  bool failed() const { return s.failed; }

private:
  OpBuilder &b;
  Location loc;
  loom::LoomBuilder s;
};

/// Replaces a forward op; returns the flattened log-sum-exp.
FailureOr<Value> fuseForward(RewriterBase &rewriter, loom::TokenLogprobOp op) {
  rewriter.setInsertionPoint(op);
  Flattener f(rewriter, op.getLoc());
  Value weight = op.getWeight();
  Value hidden = f.hidden(op.getInput(), weight);
  Value ids = f.ids(op.getIds());
  if (f.failed() || !hidden || !ids)
    return failure();
  auto fused = f.forward(hidden, weight, ids, op.getTemperatureAttr());
  Value logp = f.unflatten(fused.getResult(0), op.getType(), op.getIds());
  if (f.failed() || !logp)
    return failure();
  rewriter.replaceOp(op, logp);
  return fused.getResult(1);
}

/// Replaces a backward op, with the forward's flattened log-sum-exp `lse`
/// or, when null, a forward kernel that computes it. With `add` (see
/// fuse::accumulatingAdd), the kernel accumulates the weight gradient into the
/// add's other operand and replaces the add.
LogicalResult fuseBackward(RewriterBase &rewriter, loom::TokenLogprobGradOp op,
                           Value lse, loom::AddOp add) {
  rewriter.setInsertionPoint(op);
  Flattener f(rewriter, op.getLoc());
  Value weight = op.getWeight();
  Value hidden = f.hidden(op.getInput(), weight);
  Value ids = f.ids(op.getIds());
  Value grad = f.tokens(op.getGrad());
  if (f.failed() || !hidden || !ids || !grad)
    return failure();
  if (!lse)
    lse = f.forward(hidden, weight, ids, op.getTemperatureAttr()).getResult(1);
  Value hiddenInit = f.empty({{hidden, 0}, {hidden, 1}});
  Value weightInit = f.empty({{weight, 0}, {weight, 1}});
  if (add) {
    Value sum = add->getOperand(add->getOperand(0) == op.getWeightGrad());
    if (sum.getType() != weightInit.getType())
      sum = tensor::CastOp::create(rewriter, op.getLoc(), weightInit.getType(),
                                   sum);
    weightInit = sum;
  }
  auto fused = fuse::TokenLogprobGradOp::create(
      rewriter, op.getLoc(),
      TypeRange{hiddenInit.getType(), weightInit.getType()}, hidden, weight,
      ids, lse, grad, hiddenInit, weightInit, op.getTemperatureAttr(),
      add ? rewriter.getUnitAttr() : UnitAttr());
  Value inputGrad = f.unflatten(fused.getResult(0), tensorOf(op.getInputGrad()),
                                op.getInput());
  Value weightGrad = fused.getResult(1);
  if (weightGrad.getType() != op.getWeightGrad().getType())
    weightGrad = tensor::CastOp::create(
        rewriter, op.getLoc(), op.getWeightGrad().getType(), weightGrad);
  if (f.failed() || !inputGrad)
    return failure();
  if (add)
    rewriter.replaceOp(add, weightGrad);
  rewriter.replaceOp(op, ValueRange{inputGrad, weightGrad});
  return success();
}

/// Whether `forward` computes the log-probs that `grad` differentiates.
bool sameForward(loom::TokenLogprobOp forward, loom::TokenLogprobGradOp grad) {
  return forward.getInput() == grad.getInput() &&
         forward.getIds() == grad.getIds() &&
         forward.getWeight() == grad.getWeight() &&
         forward.getTemperature() == grad.getTemperature();
}

struct TokenLogprobFusePass
    : public fuse::impl::TokenLogprobFusePassBase<TokenLogprobFusePass> {
  void runOnOperation() override {
    IRRewriter rewriter(&getContext());
    for (auto func : getOperation().getOps<func::FuncOp>())
      if (failed(fuse::fuseTokenLogprobs(rewriter, func)))
        return signalPassFailure();
  }
};

} // namespace

LogicalResult fuse::fuseTokenLogprobs(RewriterBase &rewriter,
                                      Operation *scope) {
  SmallVector<loom::TokenLogprobOp> forwards;
  SmallVector<loom::TokenLogprobGradOp> grads;
  scope->walk([&](Operation *op) {
    if (auto forward = dyn_cast<loom::TokenLogprobOp>(op)) {
      if (fusable(forward.getInput(), forward.getWeight()))
        forwards.push_back(forward);
    } else if (auto grad = dyn_cast<loom::TokenLogprobGradOp>(op)) {
      if (fusable(grad.getInput(), grad.getWeight()))
        grads.push_back(grad);
    }
  });
  if (forwards.empty() && grads.empty())
    return success();

  // Each backward's forward, chosen before anything is rewritten: the first
  // one (in walk order) that dominates it.
  DominanceInfo dominance(scope);
  DenseMap<Operation *, Operation *> forwardOf;
  for (loom::TokenLogprobGradOp grad : grads)
    for (loom::TokenLogprobOp forward : forwards)
      if (sameForward(forward, grad) &&
          dominance.properlyDominates(forward.getOperation(), grad)) {
        forwardOf[grad] = forward;
        break;
      }

  // Weight gradients summed into a value that exists before the backward.
  DenseMap<Operation *, loom::AddOp> addOf;
  for (loom::TokenLogprobGradOp grad : grads)
    if (loom::AddOp add = fuse::accumulatingAdd(grad, dominance))
      addOf[grad] = add;

  DenseMap<Operation *, Value> lseOf;
  for (loom::TokenLogprobOp forward : forwards) {
    Operation *key = forward;
    FailureOr<Value> lse = fuseForward(rewriter, forward);
    if (failed(lse))
      return failure();
    lseOf[key] = *lse;
  }
  for (loom::TokenLogprobGradOp grad : grads) {
    Operation *forward = forwardOf.lookup(grad);
    loom::AddOp add = addOf.lookup(grad);
    if (failed(fuseBackward(rewriter, grad,
                            forward ? lseOf.lookup(forward) : Value(), add)))
      return failure();
  }
  return success();
}

loom::AddOp fuse::accumulatingAdd(loom::TokenLogprobGradOp op,
                                  DominanceInfo &dominance) {
  Value weightGrad = op.getWeightGrad();
  if (!weightGrad || !weightGrad.hasOneUse())
    return {};
  auto add = dyn_cast<loom::AddOp>(*weightGrad.getUsers().begin());
  if (!add || add->getNumOperands() != 2 ||
      add->getResult(0).getType() != weightGrad.getType())
    return {};
  Value other = add->getOperand(add->getOperand(0) == weightGrad ? 1 : 0);
  if (other == weightGrad || other.getType() != weightGrad.getType() ||
      !dominance.properlyDominates(other, op))
    return {};
  return add;
}
