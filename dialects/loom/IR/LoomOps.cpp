//===- LoomOps.cpp - Loom dialect ops ---------------------------*- C++ -*-===//
//
// This file implements the ops of the `loom` dialect: result type inference,
// which is also where shapes and element types are checked, verifiers of the
// ops with explicit result types, and folders.
//
//===----------------------------------------------------------------------===//

#include "dialects/loom/IR/LoomOps.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/TypeUtilities.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>

using namespace mlir;
using namespace mlir::loom;

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

bool mlir::loom::isSupportedElementType(Type type) {
  if (type.isF32() || type.isF64() || type.isF16() || type.isBF16())
    return true;
  if (auto intType = dyn_cast<IntegerType>(type))
    return intType.isSignless() &&
           llvm::is_contained({1u, 32u, 64u}, intType.getWidth());
  return false;
}

static bool isBool(Type type) { return type.isInteger(1); }
static bool isNumber(Type type) { return !isBool(type); }

/// Prints a shape as `[?, 64]`.
static std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string result;
  llvm::raw_string_ostream os(result);
  os << '[';
  llvm::interleaveComma(shape, os, [&](int64_t d) {
    if (ShapedType::isDynamic(d))
      os << '?';
    else
      os << d;
  });
  os << ']';
  return result;
}

static std::string typeStr(Type type) {
  std::string result;
  llvm::raw_string_ostream os(result);
  os << type;
  return result;
}

FailureOr<SmallVector<int64_t>>
mlir::loom::broadcastShapes(ArrayRef<int64_t> lhs, ArrayRef<int64_t> rhs) {
  size_t rank = std::max(lhs.size(), rhs.size());
  SmallVector<int64_t> result(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t l = i < rank - lhs.size() ? 1 : lhs[i - (rank - lhs.size())];
    int64_t r = i < rank - rhs.size() ? 1 : rhs[i - (rank - rhs.size())];
    if (l == r)
      result[i] = l;
    else if (l == 1)
      result[i] = r;
    else if (r == 1)
      result[i] = l;
    else
      return failure();
  }
  return result;
}

static RankedTensorType tensorOf(Value value) {
  return cast<RankedTensorType>(value.getType());
}

/// Checks that `type` is an allowed element type for `op` given the `kind`
/// of elements it accepts.
enum class ElementKind { Any, Number, Float, Bool };

static LogicalResult checkElement(std::optional<Location> loc, StringRef op,
                                  StringRef what, Type type, ElementKind kind) {
  if (!isSupportedElementType(type))
    return emitOptionalError(loc, "'loom.", op, "' op ", what,
                             " has unsupported element type ", type);
  bool ok = true;
  switch (kind) {
  case ElementKind::Any:
    break;
  case ElementKind::Number:
    ok = isNumber(type);
    break;
  case ElementKind::Float:
    ok = isa<FloatType>(type);
    break;
  case ElementKind::Bool:
    ok = isBool(type);
    break;
  }
  if (ok)
    return success();
  StringRef expected = kind == ElementKind::Number  ? "a number type"
                       : kind == ElementKind::Float ? "a float type"
                                                    : "i1 (bool)";
  return emitOptionalError(loc, "'loom.", op, "' op ", what, " must have ",
                           expected, " elements, got ", type);
}

/// Infers the broadcast result of `operands` with element type `elementType`.
static LogicalResult inferBroadcast(std::optional<Location> loc, StringRef op,
                                    ValueRange operands, Type elementType,
                                    SmallVectorImpl<Type> &results) {
  SmallVector<int64_t> shape(tensorOf(operands[0]).getShape());
  for (Value operand : operands.drop_front()) {
    ArrayRef<int64_t> other = tensorOf(operand).getShape();
    FailureOr<SmallVector<int64_t>> joined = broadcastShapes(shape, other);
    if (failed(joined))
      return emitOptionalError(loc, "'loom.", op,
                               "' op operands are not broadcast-compatible: ",
                               shapeStr(shape), " vs ", shapeStr(other));
    shape = std::move(*joined);
  }
  results.push_back(RankedTensorType::get(shape, elementType));
  return success();
}

static LogicalResult inferBinary(std::optional<Location> loc, StringRef op,
                                 Value lhs, Value rhs, ElementKind kind,
                                 SmallVectorImpl<Type> &results) {
  Type l = tensorOf(lhs).getElementType(), r = tensorOf(rhs).getElementType();
  if (l != r)
    return emitOptionalError(
        loc, "'loom.", op, "' op operand element types differ: ", l, " vs ", r);
  if (failed(checkElement(loc, op, "operand", l, kind)))
    return failure();
  return inferBroadcast(loc, op, {lhs, rhs}, l, results);
}

static LogicalResult inferUnary(std::optional<Location> loc, StringRef op,
                                Value operand, ElementKind kind,
                                SmallVectorImpl<Type> &results) {
  if (failed(checkElement(loc, op, "operand",
                          tensorOf(operand).getElementType(), kind)))
    return failure();
  results.push_back(operand.getType());
  return success();
}

/// Normalizes and checks an axis of a tensor of rank `rank`.
static LogicalResult checkAxis(std::optional<Location> loc, StringRef op,
                               int64_t axis, int64_t rank) {
  if (axis < 0 || axis >= rank)
    return emitOptionalError(loc, "'loom.", op, "' op axis ", axis,
                             " is out of range for rank ", rank);
  return success();
}

//===----------------------------------------------------------------------===//
// createChecked
//===----------------------------------------------------------------------===//

FailureOr<Operation *> mlir::loom::createChecked(OpBuilder &builder,
                                                 OperationState &state) {
  std::optional<RegisteredOperationName> name = state.name.getRegisteredInfo();
  if (!name)
    return emitError(state.location, "unregistered op '")
           << state.name.getStringRef() << "'";
  if (state.types.empty()) {
    if (auto *infer = name->getInterface<InferTypeOpInterface>()) {
      // Inherent attributes live in properties: build them from the
      // attribute dictionary first, as the generic parser does.
      MLIRContext *ctx = builder.getContext();
      DictionaryAttr attrs = state.attributes.getDictionary(ctx);
      bool hasProps = name->getOpPropertyByteSize() > 0;
      SmallVector<char, 64> storage(name->getOpPropertyByteSize() + 16);
      OpaqueProperties props(hasProps
                                 ? reinterpret_cast<void *>(llvm::alignAddr(
                                       storage.data(), llvm::Align(16)))
                                 : nullptr);
      if (hasProps)
        name->initOpProperties(props, nullptr);
      auto emit = [&]() { return emitError(state.location); };
      bool ok = !hasProps || succeeded(name->setOpPropertiesFromAttribute(
                                 *name, props, attrs, emit));
      SmallVector<Type> types;
      if (ok)
        ok = succeeded(
            infer->inferReturnTypes(ctx, state.location, state.operands, attrs,
                                    props, RegionRange(state.regions), types));
      if (hasProps)
        name->destroyOpProperties(props);
      if (!ok)
        return failure();
      state.addTypes(types);
    }
  }
  Operation *op = builder.create(state);
  if (failed(mlir::verify(op, /*verifyRecursively=*/false))) {
    op->erase();
    return failure();
  }
  return op;
}

//===----------------------------------------------------------------------===//
// ConstantOp
//===----------------------------------------------------------------------===//

LogicalResult ConstantOp::inferReturnTypes(MLIRContext *,
                                           std::optional<Location> loc,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &results) {
  auto type = dyn_cast<RankedTensorType>(adaptor.getValue().getType());
  if (!type || !type.hasStaticShape())
    return emitOptionalError(loc, "'loom.constant' op value must be a "
                                  "statically shaped tensor");
  if (failed(checkElement(loc, "constant", "value", type.getElementType(),
                          ElementKind::Any)))
    return failure();
  results.push_back(type);
  return success();
}

OpFoldResult ConstantOp::fold(FoldAdaptor) { return getValue(); }

//===----------------------------------------------------------------------===//
// IotaOp
//===----------------------------------------------------------------------===//

LogicalResult IotaOp::verify() {
  RankedTensorType type = getType();
  if (!isNumber(type.getElementType()) ||
      !isSupportedElementType(type.getElementType()))
    return emitOpError("result must have number elements, got ")
           << type.getElementType();
  if (failed(checkAxis(getLoc(), "iota", getAxis(), type.getRank())))
    return failure();
  if (Value like = getLike()) {
    if (tensorOf(like).getShape() != type.getShape())
      return emitOpError("result shape ")
             << shapeStr(type.getShape()) << " differs from the shape "
             << shapeStr(tensorOf(like).getShape()) << " of 'like'";
  } else if (!type.hasStaticShape()) {
    return emitOpError("result shape ")
           << shapeStr(type.getShape())
           << " has symbolic dimensions: give a 'like' operand";
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Elementwise ops
//===----------------------------------------------------------------------===//

#define LOOM_BINARY_INFER(OP, NAME, KIND)                                      \
  LogicalResult OP::inferReturnTypes(                                          \
      MLIRContext *, std::optional<Location> loc, Adaptor adaptor,             \
      SmallVectorImpl<Type> &results) {                                        \
    return inferBinary(loc, NAME, adaptor.getLhs(), adaptor.getRhs(), KIND,    \
                       results);                                               \
  }

LOOM_BINARY_INFER(AddOp, "add", ElementKind::Number)
LOOM_BINARY_INFER(SubOp, "sub", ElementKind::Number)
LOOM_BINARY_INFER(MulOp, "mul", ElementKind::Number)
LOOM_BINARY_INFER(DivOp, "div", ElementKind::Number)
LOOM_BINARY_INFER(MaxOp, "max", ElementKind::Number)
LOOM_BINARY_INFER(MinOp, "min", ElementKind::Number)
LOOM_BINARY_INFER(PowOp, "pow", ElementKind::Float)
LOOM_BINARY_INFER(AndOp, "and", ElementKind::Bool)
LOOM_BINARY_INFER(OrOp, "or", ElementKind::Bool)
#undef LOOM_BINARY_INFER

#define LOOM_UNARY_INFER(OP, NAME, KIND)                                       \
  LogicalResult OP::inferReturnTypes(                                          \
      MLIRContext *, std::optional<Location> loc, Adaptor adaptor,             \
      SmallVectorImpl<Type> &results) {                                        \
    return inferUnary(loc, NAME, adaptor.getOperand(), KIND, results);         \
  }

LOOM_UNARY_INFER(NegOp, "neg", ElementKind::Number)
LOOM_UNARY_INFER(AbsOp, "abs", ElementKind::Number)
LOOM_UNARY_INFER(ExpOp, "exp", ElementKind::Float)
LOOM_UNARY_INFER(LogOp, "log", ElementKind::Float)
LOOM_UNARY_INFER(TanhOp, "tanh", ElementKind::Float)
LOOM_UNARY_INFER(SigmoidOp, "sigmoid", ElementKind::Float)
LOOM_UNARY_INFER(SiluOp, "silu", ElementKind::Float)
LOOM_UNARY_INFER(GeluOp, "gelu", ElementKind::Float)
LOOM_UNARY_INFER(RsqrtOp, "rsqrt", ElementKind::Float)
LOOM_UNARY_INFER(SqrtOp, "sqrt", ElementKind::Float)
LOOM_UNARY_INFER(SinOp, "sin", ElementKind::Float)
LOOM_UNARY_INFER(CosOp, "cos", ElementKind::Float)
LOOM_UNARY_INFER(NotOp, "not", ElementKind::Bool)
#undef LOOM_UNARY_INFER

LogicalResult CmpOp::inferReturnTypes(MLIRContext *ctx,
                                      std::optional<Location> loc,
                                      Adaptor adaptor,
                                      SmallVectorImpl<Type> &results) {
  StringRef pred = adaptor.getPredicate();
  if (!llvm::is_contained({"eq", "ne", "lt", "le", "gt", "ge"}, pred))
    return emitOptionalError(loc, "'loom.cmp' op unknown predicate '", pred,
                             "' (expected eq, ne, lt, le, gt or ge)");
  Type l = tensorOf(adaptor.getLhs()).getElementType();
  Type r = tensorOf(adaptor.getRhs()).getElementType();
  if (l != r)
    return emitOptionalError(
        loc, "'loom.cmp' op operand element types differ: ", l, " vs ", r);
  if (failed(checkElement(loc, "cmp", "operand", l, ElementKind::Any)))
    return failure();
  return inferBroadcast(loc, "cmp", {adaptor.getLhs(), adaptor.getRhs()},
                        IntegerType::get(ctx, 1), results);
}

LogicalResult SelectOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &results) {
  if (!isBool(tensorOf(adaptor.getCond()).getElementType()))
    return emitOptionalError(loc,
                             "'loom.select' op condition must have i1 "
                             "elements, got ",
                             tensorOf(adaptor.getCond()).getElementType());
  Type t = tensorOf(adaptor.getOnTrue()).getElementType();
  Type f = tensorOf(adaptor.getOnFalse()).getElementType();
  if (t != f)
    return emitOptionalError(
        loc, "'loom.select' op branch element types differ: ", t, " vs ", f);
  if (failed(checkElement(loc, "select", "branch", t, ElementKind::Any)))
    return failure();
  return inferBroadcast(
      loc, "select",
      {adaptor.getCond(), adaptor.getOnTrue(), adaptor.getOnFalse()}, t,
      results);
}

LogicalResult CastOp::verify() {
  RankedTensorType in = tensorOf(getOperand()), out = getType();
  if (in.getShape() != out.getShape())
    return emitOpError("result shape ")
           << shapeStr(out.getShape()) << " differs from operand shape "
           << shapeStr(in.getShape());
  if (!isSupportedElementType(in.getElementType()) ||
      !isSupportedElementType(out.getElementType()))
    return emitOpError("unsupported element types ")
           << in.getElementType() << " -> " << out.getElementType();
  return success();
}

//===----------------------------------------------------------------------===//
// Reductions and normalizations
//===----------------------------------------------------------------------===//

static LogicalResult inferReduce(std::optional<Location> loc, StringRef op,
                                 Value operand, ArrayRef<int64_t> axes,
                                 bool keepdim, ElementKind kind,
                                 SmallVectorImpl<Type> &results) {
  RankedTensorType type = tensorOf(operand);
  if (failed(checkElement(loc, op, "operand", type.getElementType(), kind)))
    return failure();
  llvm::SmallBitVector seen(type.getRank());
  for (int64_t axis : axes) {
    if (failed(checkAxis(loc, op, axis, type.getRank())))
      return failure();
    if (seen.test(axis))
      return emitOptionalError(loc, "'loom.", op, "' op axis ", axis,
                               " is listed twice");
    seen.set(axis);
  }
  SmallVector<int64_t> shape;
  for (auto [i, d] : llvm::enumerate(type.getShape())) {
    if (!seen.test(i))
      shape.push_back(d);
    else if (keepdim)
      shape.push_back(1);
  }
  results.push_back(RankedTensorType::get(shape, type.getElementType()));
  return success();
}

#define LOOM_REDUCE_INFER(OP, NAME, KIND)                                      \
  LogicalResult OP::inferReturnTypes(                                          \
      MLIRContext *, std::optional<Location> loc, Adaptor adaptor,             \
      SmallVectorImpl<Type> &results) {                                        \
    return inferReduce(loc, NAME, adaptor.getOperand(), adaptor.getAxes(),     \
                       adaptor.getKeepdim(), KIND, results);                   \
  }

LOOM_REDUCE_INFER(SumOp, "sum", ElementKind::Number)
LOOM_REDUCE_INFER(MeanOp, "mean", ElementKind::Float)
LOOM_REDUCE_INFER(ReduceMaxOp, "reduce_max", ElementKind::Number)
LOOM_REDUCE_INFER(ReduceMinOp, "reduce_min", ElementKind::Number)
#undef LOOM_REDUCE_INFER

#define LOOM_AXIS_INFER(OP, NAME)                                              \
  LogicalResult OP::inferReturnTypes(                                          \
      MLIRContext *, std::optional<Location> loc, Adaptor adaptor,             \
      SmallVectorImpl<Type> &results) {                                        \
    RankedTensorType type = tensorOf(adaptor.getOperand());                    \
    if (failed(checkElement(loc, NAME, "operand", type.getElementType(),       \
                            ElementKind::Float)) ||                            \
        failed(checkAxis(loc, NAME, adaptor.getAxis(), type.getRank())))       \
      return failure();                                                        \
    results.push_back(type);                                                   \
    return success();                                                          \
  }

LOOM_AXIS_INFER(SoftmaxOp, "softmax")
LOOM_AXIS_INFER(LogSoftmaxOp, "log_softmax")
#undef LOOM_AXIS_INFER

/// Checks the operands shared by token_logprob and its backward and returns
/// the shape of ids (the per-token shape).
static LogicalResult checkTokenLogprob(std::optional<Location> loc,
                                       StringRef op, Value inputValue,
                                       Value idsValue, Value weightValue,
                                       double temperature) {
  RankedTensorType input = tensorOf(inputValue);
  RankedTensorType ids = tensorOf(idsValue);
  StringRef what = weightValue ? "input" : "logits";
  if (failed(checkElement(loc, op, what, input.getElementType(),
                          ElementKind::Float)))
    return failure();
  if (!ids.getElementType().isInteger(32) &&
      !ids.getElementType().isInteger(64))
    return emitOptionalError(loc, "'loom.", op, "' op ids must be i32 or i64, got ",
                             ids.getElementType());
  if (input.getRank() < 1)
    return emitOptionalError(
        loc, "'loom.", op, "' op ", what, " must have rank >= 1 (a ",
        weightValue ? "hidden" : "vocabulary", " dimension), got ",
        typeStr(input));
  if (ids.getRank() != input.getRank() - 1)
    return emitOptionalError(
        loc, "'loom.", op, "' op ids must have rank ", input.getRank() - 1,
        " (the leading dimensions of ", what, " ", shapeStr(input.getShape()),
        "), got ", shapeStr(ids.getShape()));
  for (int64_t d = 0; d < ids.getRank(); ++d) {
    int64_t i = ids.getDimSize(d), l = input.getDimSize(d);
    if (!ShapedType::isDynamic(i) && !ShapedType::isDynamic(l) && i != l)
      return emitOptionalError(loc, "'loom.", op, "' op ids dimension ", d,
                               " is ", i, " but ", what, " dimension ", d,
                               " is ", l, ": ids ", shapeStr(ids.getShape()),
                               " vs ", what, " ", shapeStr(input.getShape()));
  }
  if (weightValue) {
    RankedTensorType weight = tensorOf(weightValue);
    if (weight.getElementType() != input.getElementType())
      return emitOptionalError(loc, "'loom.", op,
                               "' op weight element type ",
                               weight.getElementType(), " differs from ",
                               input.getElementType());
    if (weight.getRank() != 2)
      return emitOptionalError(loc, "'loom.", op,
                               "' op weight must be [V, d], got ",
                               typeStr(weight));
    int64_t d = input.getDimSize(input.getRank() - 1), wd = weight.getDimSize(1);
    if (!ShapedType::isDynamic(d) && !ShapedType::isDynamic(wd) && d != wd)
      return emitOptionalError(loc, "'loom.", op, "' op weight ",
                               shapeStr(weight.getShape()),
                               " does not match the hidden size ", d,
                               " of input ", shapeStr(input.getShape()));
  }
  if (!(temperature > 0.0) || std::isinf(temperature))
    return emitOptionalError(loc, "'loom.", op,
                             "' op temperature must be finite and > 0, got ",
                             temperature);
  return success();
}

LogicalResult TokenLogprobOp::inferReturnTypes(MLIRContext *,
                                               std::optional<Location> loc,
                                               Adaptor adaptor,
                                               SmallVectorImpl<Type> &results) {
  if (failed(checkTokenLogprob(loc, "token_logprob", adaptor.getInput(),
                               adaptor.getIds(), adaptor.getWeight(),
                               adaptor.getTemperature().convertToDouble())))
    return failure();
  results.push_back(
      RankedTensorType::get(tensorOf(adaptor.getIds()).getShape(),
                            tensorOf(adaptor.getInput()).getElementType()));
  return success();
}

namespace {
/// token_logprob(linear(x, w), ids) -> token_logprob(x, ids, weight = w)
/// when the linear has no bias and no other use, so that the logits need
/// not exist (the fused lowering chunks the lm-head over the vocabulary).
struct FoldLmHead : OpRewritePattern<TokenLogprobOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(TokenLogprobOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getWeight())
      return failure();
    auto linear = op.getInput().getDefiningOp<LinearOp>();
    if (!linear || linear.getBias() || !linear->hasOneUse())
      return failure();
    Value x = linear.getOperand(), w = linear.getWeight();
    if (tensorOf(w).getRank() != 2)
      return failure();
    rewriter.replaceOpWithNewOp<TokenLogprobOp>(
        op, op.getType(), x, op.getIds(), w, op.getTemperatureAttr());
    return success();
  }
};
} // namespace

void TokenLogprobOp::getCanonicalizationPatterns(RewritePatternSet &patterns,
                                                 MLIRContext *ctx) {
  patterns.add<FoldLmHead>(ctx);
}

LogicalResult TokenLogprobGradOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &results) {
  if (failed(checkTokenLogprob(loc, "token_logprob_grad", adaptor.getInput(),
                               adaptor.getIds(), adaptor.getWeight(),
                               adaptor.getTemperature().convertToDouble())))
    return failure();
  RankedTensorType ids = tensorOf(adaptor.getIds());
  RankedTensorType grad = tensorOf(adaptor.getGrad());
  RankedTensorType input = tensorOf(adaptor.getInput());
  if (grad.getElementType() != input.getElementType() ||
      grad.getRank() != ids.getRank() ||
      failed(verifyCompatibleShape(grad.getShape(), ids.getShape())))
    return emitOptionalError(loc,
                             "'loom.token_logprob_grad' op grad must be ",
                             typeStr(RankedTensorType::get(
                                 ids.getShape(), input.getElementType())),
                             " (one value per token), got ", typeStr(grad));
  results.push_back(input);
  if (Value w = adaptor.getWeight())
    results.push_back(w.getType());
  return success();
}

//===----------------------------------------------------------------------===//
// Differentiation and RL objectives
//===----------------------------------------------------------------------===//

LogicalResult GradOp::verify() {
  auto loss = tensorOf(getLoss());
  if (loss.getRank() != 0 || !isa<FloatType>(loss.getElementType()))
    return emitOpError("loss must be a rank-0 float tensor, got ")
           << typeStr(loss);
  if (getWrt().size() != getGradients().size())
    return emitOpError("has ") << getWrt().size() << " values to differentiate "
                               << "by but " << getGradients().size()
                               << " results";
  for (auto [i, pair] : llvm::enumerate(llvm::zip(getWrt(), getGradients()))) {
    auto [wrt, grad] = pair;
    if (!isa<FloatType>(tensorOf(wrt).getElementType()))
      return emitOpError("can only differentiate by float tensors, but "
                         "operand ")
             << i + 1 << " is " << typeStr(tensorOf(wrt));
    if (wrt.getType() != grad.getType())
      return emitOpError("result ")
             << i << " must have the type of its value, "
             << typeStr(tensorOf(wrt)) << ", got " << typeStr(tensorOf(grad));
  }
  return success();
}

LogicalResult StopGradientOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &results) {
  return inferUnary(loc, "stop_gradient", adaptor.getOperand(),
                    ElementKind::Any, results);
}

LogicalResult KlOp::inferReturnTypes(MLIRContext *,
                                     std::optional<Location> loc,
                                     Adaptor adaptor,
                                     SmallVectorImpl<Type> &results) {
  StringRef e = adaptor.getEstimator();
  if (e != "k1" && e != "k2" && e != "k3")
    return emitOptionalError(loc, "'loom.kl' op estimator must be \"k1\", "
                                  "\"k2\" or \"k3\", got \"",
                             e, "\"");
  return inferBinary(loc, "kl", adaptor.getLogp(), adaptor.getRef(),
                     ElementKind::Float, results);
}

LogicalResult GaeOp::inferReturnTypes(MLIRContext *,
                                      std::optional<Location> loc,
                                      Adaptor adaptor,
                                      SmallVectorImpl<Type> &results) {
  RankedTensorType rewards = tensorOf(adaptor.getRewards());
  if (failed(checkElement(loc, "gae", "rewards", rewards.getElementType(),
                          ElementKind::Float)))
    return failure();
  if (rewards.getRank() != 2)
    return emitOptionalError(loc, "'loom.gae' op rewards must be [B, T], got ",
                             typeStr(rewards));
  for (auto [name, value] : {std::pair<StringRef, Value>{"values",
                                                         adaptor.getValues()},
                             {"mask", adaptor.getMask()}}) {
    RankedTensorType t = tensorOf(value);
    if (t.getElementType() != rewards.getElementType() ||
        failed(verifyCompatibleShape(t.getShape(), rewards.getShape())))
      return emitOptionalError(loc, "'loom.gae' op ", name, " must be ",
                               typeStr(rewards), " like rewards, got ",
                               typeStr(t));
  }
  double gamma = adaptor.getGamma().convertToDouble();
  double lam = adaptor.getLam().convertToDouble();
  if (!std::isfinite(gamma) || !std::isfinite(lam))
    return emitOptionalError(loc, "'loom.gae' op gamma and lam must be finite, "
                                  "got ",
                             gamma, " and ", lam);
  results.push_back(rewards);
  return success();
}

LogicalResult RmsNormOp::inferReturnTypes(MLIRContext *,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &results) {
  RankedTensorType x = tensorOf(adaptor.getOperand());
  RankedTensorType w = tensorOf(adaptor.getWeight());
  if (failed(checkElement(loc, "rms_norm", "operand", x.getElementType(),
                          ElementKind::Float)))
    return failure();
  if (w.getElementType() != x.getElementType())
    return emitOptionalError(loc, "'loom.rms_norm' op weight element type ",
                             w.getElementType(), " differs from operand's ",
                             x.getElementType());
  if (x.getRank() < 1)
    return emitOptionalError(loc, "'loom.rms_norm' op operand must have rank "
                                  ">= 1");
  if (w.getRank() != 1 || w.getDimSize(0) != x.getShape().back())
    return emitOptionalError(loc, "'loom.rms_norm' op weight shape ",
                             shapeStr(w.getShape()),
                             " must be [last dimension of operand] = ",
                             shapeStr(x.getShape().back()));
  if (adaptor.getEps().isNegative())
    return emitOptionalError(loc, "'loom.rms_norm' op eps must be >= 0");
  results.push_back(x);
  return success();
}

//===----------------------------------------------------------------------===//
// Matrix products
//===----------------------------------------------------------------------===//

LogicalResult MatmulOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &results) {
  RankedTensorType a = tensorOf(adaptor.getLhs()),
                   b = tensorOf(adaptor.getRhs());
  if (a.getElementType() != b.getElementType())
    return emitOptionalError(loc,
                             "'loom.matmul' op operand element types "
                             "differ: ",
                             a.getElementType(), " vs ", b.getElementType());
  if (failed(checkElement(loc, "matmul", "operand", a.getElementType(),
                          ElementKind::Number)))
    return failure();
  if (a.getRank() < 2 || b.getRank() < 2)
    return emitOptionalError(loc,
                             "'loom.matmul' op operands must have rank "
                             ">= 2, got ",
                             shapeStr(a.getShape()), " and ",
                             shapeStr(b.getShape()));
  ArrayRef<int64_t> as = a.getShape(), bs = b.getShape();
  int64_t m = as[as.size() - 2], ka = as.back();
  if (adaptor.getTransposeA())
    std::swap(m, ka);
  int64_t kb = bs[bs.size() - 2], n = bs.back();
  if (adaptor.getTransposeB())
    std::swap(kb, n);
  if (ka != kb)
    return emitOptionalError(loc,
                             "'loom.matmul' op contraction dimensions "
                             "differ: ",
                             shapeStr(as), " @ ", shapeStr(bs),
                             adaptor.getTransposeA() ? " (lhs transposed)" : "",
                             adaptor.getTransposeB() ? " (rhs transposed)"
                                                     : "");
  FailureOr<SmallVector<int64_t>> batch =
      broadcastShapes(as.drop_back(2), bs.drop_back(2));
  if (failed(batch))
    return emitOptionalError(loc,
                             "'loom.matmul' op batch dimensions are not "
                             "broadcast-compatible: ",
                             shapeStr(as.drop_back(2)), " vs ",
                             shapeStr(bs.drop_back(2)));
  SmallVector<int64_t> shape = *batch;
  shape.push_back(m);
  shape.push_back(n);
  results.push_back(RankedTensorType::get(shape, a.getElementType()));
  return success();
}

LogicalResult LinearOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &results) {
  RankedTensorType x = tensorOf(adaptor.getOperand());
  RankedTensorType w = tensorOf(adaptor.getWeight());
  if (x.getElementType() != w.getElementType())
    return emitOptionalError(loc, "'loom.linear' op weight element type ",
                             w.getElementType(), " differs from operand's ",
                             x.getElementType());
  if (failed(checkElement(loc, "linear", "operand", x.getElementType(),
                          ElementKind::Number)))
    return failure();
  if (x.getRank() < 1 || w.getRank() != 2)
    return emitOptionalError(loc,
                             "'loom.linear' op expects operand [..., in] "
                             "and weight [out, in], got ",
                             shapeStr(x.getShape()), " and ",
                             shapeStr(w.getShape()));
  if (x.getShape().back() != w.getDimSize(1))
    return emitOptionalError(loc,
                             "'loom.linear' op input features differ: "
                             "operand ",
                             shapeStr(x.getShape()), " vs weight ",
                             shapeStr(w.getShape()));
  if (Value bias = adaptor.getBias()) {
    RankedTensorType b = tensorOf(bias);
    if (b.getElementType() != x.getElementType() || b.getRank() != 1 ||
        b.getDimSize(0) != w.getDimSize(0))
      return emitOptionalError(loc, "'loom.linear' op bias ", typeStr(b),
                               " must be a vector of ", w.getDimSize(0), " ",
                               x.getElementType());
  }
  SmallVector<int64_t> shape(x.getShape().drop_back());
  shape.push_back(w.getDimSize(0));
  results.push_back(RankedTensorType::get(shape, x.getElementType()));
  return success();
}

//===----------------------------------------------------------------------===//
// Data movement
//===----------------------------------------------------------------------===//

LogicalResult ReshapeOp::inferReturnTypes(MLIRContext *,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &results) {
  RankedTensorType type = tensorOf(adaptor.getOperand());
  ArrayRef<int64_t> in = type.getShape();
  SmallVector<int64_t> shape;
  int64_t inferred = -1;
  for (auto [i, d] : llvm::enumerate(adaptor.getShape())) {
    if (d == 0) {
      if (i >= in.size())
        return emitOptionalError(loc, "'loom.reshape' op shape entry ", i,
                                 " copies a dimension the operand (rank ",
                                 in.size(), ") does not have");
      shape.push_back(in[i]);
    } else if (d == -1) {
      if (inferred >= 0)
        return emitOptionalError(loc, "'loom.reshape' op at most one shape "
                                      "entry may be -1");
      inferred = i;
      shape.push_back(ShapedType::kDynamic);
    } else if (d < -1) {
      return emitOptionalError(loc, "'loom.reshape' op invalid shape entry ",
                               d);
    } else {
      shape.push_back(d);
    }
  }
  // Dimensions copied with 0 cancel out; compare (or infer from) the static
  // products of the rest.
  ArrayRef<int64_t> spec = adaptor.getShape();
  auto isCopied = [&](size_t i) { return i < spec.size() && spec[i] == 0; };
  int64_t inProduct = 1, outProduct = 1;
  bool inStatic = true;
  for (auto [i, d] : llvm::enumerate(in)) {
    if (isCopied(i))
      continue;
    if (ShapedType::isDynamic(d))
      inStatic = false;
    else
      inProduct *= d;
  }
  for (auto [i, d] : llvm::enumerate(shape))
    if (!isCopied(i) && static_cast<int64_t>(i) != inferred)
      outProduct *= d;
  if (inStatic) {
    if (inferred >= 0) {
      if (outProduct == 0 || inProduct % outProduct != 0)
        return emitOptionalError(loc, "'loom.reshape' op cannot reshape ",
                                 shapeStr(in), " to ", shapeStr(spec));
      shape[inferred] = inProduct / outProduct;
    } else if (inProduct != outProduct) {
      return emitOptionalError(loc, "'loom.reshape' op cannot reshape ",
                               shapeStr(in), " (", inProduct,
                               " elements outside copied dimensions) to ",
                               shapeStr(spec), " (", outProduct, ")");
    }
  } else if (inferred < 0) {
    return emitOptionalError(
        loc, "'loom.reshape' op operand ", shapeStr(in),
        " has a symbolic dimension that the shape neither copies (0) nor "
        "infers (-1)");
  }
  results.push_back(RankedTensorType::get(shape, type.getElementType()));
  return success();
}

OpFoldResult ReshapeOp::fold(FoldAdaptor) {
  if (getOperand().getType() == getType() && getType().hasStaticShape())
    return getOperand();
  // reshape(reshape(x)) -> reshape(x) when this shape copies nothing.
  if (auto inner = getOperand().getDefiningOp<ReshapeOp>()) {
    if (!llvm::is_contained(getShape(), 0)) {
      getOperandMutable().assign(inner.getOperand());
      return getResult();
    }
  }
  return {};
}

LogicalResult TransposeOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &results) {
  RankedTensorType type = tensorOf(adaptor.getOperand());
  ArrayRef<int64_t> perm = adaptor.getPermutation();
  if (static_cast<int64_t>(perm.size()) != type.getRank())
    return emitOptionalError(loc, "'loom.transpose' op permutation has ",
                             perm.size(), " entries for rank ", type.getRank());
  llvm::SmallBitVector seen(perm.size());
  SmallVector<int64_t> shape;
  for (int64_t p : perm) {
    if (p < 0 || p >= type.getRank() || seen.test(p))
      return emitOptionalError(loc, "'loom.transpose' op permutation ",
                               shapeStr(perm), " is not a permutation");
    seen.set(p);
    shape.push_back(type.getDimSize(p));
  }
  results.push_back(RankedTensorType::get(shape, type.getElementType()));
  return success();
}

OpFoldResult TransposeOp::fold(FoldAdaptor) {
  ArrayRef<int64_t> perm = getPermutation();
  bool identity = true;
  for (auto [i, p] : llvm::enumerate(perm))
    identity &= static_cast<int64_t>(i) == p;
  if (identity)
    return getOperand();
  // transpose(transpose(x, p1), p2) -> transpose(x, p1[p2]).
  if (auto inner = getOperand().getDefiningOp<TransposeOp>()) {
    ArrayRef<int64_t> innerPerm = inner.getPermutation();
    SmallVector<int64_t> composed;
    for (int64_t p : perm)
      composed.push_back(innerPerm[p]);
    setPermutation(composed);
    getOperandMutable().assign(inner.getOperand());
    return getResult();
  }
  return {};
}

LogicalResult SliceOp::inferReturnTypes(MLIRContext *,
                                        std::optional<Location> loc,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &results) {
  RankedTensorType type = tensorOf(adaptor.getOperand());
  int64_t axis = adaptor.getAxis();
  if (failed(checkAxis(loc, "slice", axis, type.getRank())))
    return failure();
  int64_t step = adaptor.getStep();
  if (step < 1)
    return emitOptionalError(loc, "'loom.slice' op step must be >= 1, got ",
                             step);
  SmallVector<int64_t> shape(type.getShape());
  int64_t dim = shape[axis];
  if (!ShapedType::isDynamic(dim)) {
    auto clamp = [&](int64_t v) {
      if (v < 0)
        v += dim;
      return std::clamp<int64_t>(v, 0, dim);
    };
    int64_t start = clamp(adaptor.getStart()), end = clamp(adaptor.getEnd());
    shape[axis] = end > start ? (end - start + step - 1) / step : 0;
  } else {
    shape[axis] = ShapedType::kDynamic;
  }
  results.push_back(RankedTensorType::get(shape, type.getElementType()));
  return success();
}

LogicalResult ConcatOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &results) {
  ValueRange inputs = adaptor.getInputs();
  if (inputs.empty())
    return emitOptionalError(loc, "'loom.concat' op needs at least one "
                                  "operand");
  RankedTensorType first = tensorOf(inputs[0]);
  int64_t axis = adaptor.getAxis();
  if (failed(checkAxis(loc, "concat", axis, first.getRank())))
    return failure();
  SmallVector<int64_t> shape(first.getShape());
  for (auto [i, input] : llvm::enumerate(inputs.drop_front())) {
    RankedTensorType type = tensorOf(input);
    if (type.getElementType() != first.getElementType() ||
        type.getRank() != first.getRank())
      return emitOptionalError(loc, "'loom.concat' op operand ", i + 1, " ",
                               typeStr(type), " does not match operand 0 ",
                               typeStr(first), " in rank and element type");
    for (int64_t d = 0; d < type.getRank(); ++d) {
      if (d == axis) {
        if (ShapedType::isDynamic(shape[d]) ||
            ShapedType::isDynamic(type.getDimSize(d)))
          shape[d] = ShapedType::kDynamic;
        else
          shape[d] += type.getDimSize(d);
      } else if (type.getDimSize(d) != shape[d]) {
        return emitOptionalError(
            loc, "'loom.concat' op operand ", i + 1, " has shape ",
            shapeStr(type.getShape()), ", which differs from ",
            shapeStr(first.getShape()), " outside axis ", axis);
      }
    }
  }
  results.push_back(RankedTensorType::get(shape, first.getElementType()));
  return success();
}

/// Checks that `value`, the `what` operand of `op`, is a rank-0 i32 or i64
/// tensor: a run-time position or length.
static LogicalResult checkRunTimeIndex(std::optional<Location> loc,
                                       StringRef op, StringRef what,
                                       Value value) {
  RankedTensorType type = tensorOf(value);
  Type element = type.getElementType();
  if (type.getRank() != 0 || (!element.isInteger(32) && !element.isInteger(64)))
    return emitOptionalError(loc, "'loom.", op, "' op ", what,
                             " must be a rank-0 tensor of i32 or i64, got ",
                             typeStr(type));
  return success();
}

LogicalResult DynamicSliceOp::inferReturnTypes(MLIRContext *,
                                               std::optional<Location> loc,
                                               Adaptor adaptor,
                                               SmallVectorImpl<Type> &results) {
  RankedTensorType type = tensorOf(adaptor.getOperand());
  int64_t axis = adaptor.getAxis();
  if (failed(checkAxis(loc, "dynamic_slice", axis, type.getRank())) ||
      failed(
          checkRunTimeIndex(loc, "dynamic_slice", "start", adaptor.getStart())))
    return failure();
  SmallVector<int64_t> shape(type.getShape());
  std::optional<int64_t> size = adaptor.getSize();
  if (Value length = adaptor.getLength()) {
    if (size)
      return emitOptionalError(loc, "'loom.dynamic_slice' op takes either a "
                                    "'length' operand or a 'size' attribute, "
                                    "not both");
    if (failed(checkRunTimeIndex(loc, "dynamic_slice", "length", length)))
      return failure();
    shape[axis] = ShapedType::kDynamic;
  } else if (size) {
    if (*size < 0)
      return emitOptionalError(loc,
                               "'loom.dynamic_slice' op size must be "
                               ">= 0, got ",
                               *size);
    // A static size is only safe when the dimension is known to hold it;
    // a `length` operand is clamped at run time instead.
    if (ShapedType::isDynamic(shape[axis]) || shape[axis] < *size)
      return emitOptionalError(
          loc, "'loom.dynamic_slice' op size ", *size,
          " needs a static dimension of at least that along axis ", axis,
          ", got ", shapeStr(type.getShape()),
          " (use a 'length' operand for a run-time length)");
    shape[axis] = *size;
  } else {
    return emitOptionalError(loc, "'loom.dynamic_slice' op needs a 'length' "
                                  "operand or a 'size' attribute");
  }
  results.push_back(RankedTensorType::get(shape, type.getElementType()));
  return success();
}

LogicalResult DynamicUpdateSliceOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &results) {
  RankedTensorType target = tensorOf(adaptor.getTarget());
  RankedTensorType update = tensorOf(adaptor.getUpdate());
  int64_t axis = adaptor.getAxis();
  if (failed(checkAxis(loc, "dynamic_update_slice", axis, target.getRank())) ||
      failed(checkRunTimeIndex(loc, "dynamic_update_slice", "start",
                               adaptor.getStart())))
    return failure();
  if (update.getElementType() != target.getElementType() ||
      update.getRank() != target.getRank())
    return emitOptionalError(loc, "'loom.dynamic_update_slice' op update ",
                             typeStr(update), " does not match target ",
                             typeStr(target), " in rank and element type");
  for (int64_t d = 0; d < target.getRank(); ++d) {
    int64_t t = target.getDimSize(d), u = update.getDimSize(d);
    if (ShapedType::isDynamic(t) || ShapedType::isDynamic(u))
      continue;
    if (u > t)
      return emitOptionalError(
          loc, "'loom.dynamic_update_slice' op update ",
          shapeStr(update.getShape()), " does not fit target ",
          shapeStr(target.getShape()), ": dimension ", d, " is ", u,
          ", more than ", t);
  }
  results.push_back(target);
  return success();
}

LogicalResult GatherOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &results) {
  RankedTensorType type = tensorOf(adaptor.getOperand());
  RankedTensorType indices = tensorOf(adaptor.getIndices());
  int64_t axis = adaptor.getAxis();
  if (failed(checkAxis(loc, "gather", axis, type.getRank())))
    return failure();
  if (!indices.getElementType().isInteger(32) &&
      !indices.getElementType().isInteger(64))
    return emitOptionalError(loc,
                             "'loom.gather' op indices must be i32 or "
                             "i64, got ",
                             indices.getElementType());
  SmallVector<int64_t> shape(type.getShape().take_front(axis));
  llvm::append_range(shape, indices.getShape());
  llvm::append_range(shape, type.getShape().drop_front(axis + 1));
  results.push_back(RankedTensorType::get(shape, type.getElementType()));
  return success();
}

LogicalResult BroadcastOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &results) {
  RankedTensorType type = tensorOf(adaptor.getOperand());
  SmallVector<int64_t> target;
  if (Value like = adaptor.getLike()) {
    if (adaptor.getShape())
      return emitOptionalError(loc, "'loom.broadcast' op takes either 'like' "
                                    "or 'shape', not both");
    target.assign(tensorOf(like).getShape().begin(),
                  tensorOf(like).getShape().end());
  } else if (std::optional<ArrayRef<int64_t>> shape = adaptor.getShape()) {
    if (llvm::any_of(*shape, [](int64_t d) { return d < 0; }))
      return emitOptionalError(loc, "'loom.broadcast' op shape ",
                               shapeStr(*shape), " must be static");
    target.assign(shape->begin(), shape->end());
  } else {
    return emitOptionalError(loc, "'loom.broadcast' op needs 'like' or "
                                  "'shape'");
  }
  FailureOr<SmallVector<int64_t>> joined =
      broadcastShapes(type.getShape(), target);
  if (failed(joined) || ArrayRef<int64_t>(*joined) != ArrayRef(target))
    return emitOptionalError(loc, "'loom.broadcast' op cannot broadcast ",
                             shapeStr(type.getShape()), " to ",
                             shapeStr(target));
  results.push_back(RankedTensorType::get(target, type.getElementType()));
  return success();
}

OpFoldResult BroadcastOp::fold(FoldAdaptor) {
  if (getOperand().getType() == getType())
    return getOperand();
  return {};
}

//===----------------------------------------------------------------------===//
// Folders of arithmetic identities
//===----------------------------------------------------------------------===//

/// Returns true when `attr` is a splat constant equal to `value`.
static bool isSplatOf(Attribute attr, double value) {
  auto splat = dyn_cast_or_null<SplatElementsAttr>(attr);
  if (!splat)
    return false;
  Type type = splat.getElementType();
  if (isa<FloatType>(type))
    return splat.getSplatValue<APFloat>().convertToDouble() == value;
  if (type.isInteger(32) || type.isInteger(64))
    return splat.getSplatValue<APInt>().getSExtValue() ==
           static_cast<int64_t>(value);
  return false;
}

/// `x op c` folds to `x` when c is the identity and does not broadcast `x`.
template <typename OpTy>
static OpFoldResult foldRightIdentity(OpTy op, Attribute rhs, double id) {
  if (isSplatOf(rhs, id) && op.getLhs().getType() == op.getType())
    return op.getLhs();
  return {};
}

/// Folds two splat float constants with `fn`.
template <typename Fn>
static Attribute foldSplats(Type resultType, Attribute lhs, Attribute rhs,
                            Fn fn) {
  auto l = dyn_cast_or_null<SplatElementsAttr>(lhs);
  auto r = dyn_cast_or_null<SplatElementsAttr>(rhs);
  auto type = dyn_cast<RankedTensorType>(resultType);
  if (!l || !r || !type || !type.hasStaticShape() ||
      !isa<FloatType>(type.getElementType()))
    return {};
  APFloat a = l.getSplatValue<APFloat>(), b = r.getSplatValue<APFloat>();
  return DenseElementsAttr::get(type, fn(a, b));
}

OpFoldResult AddOp::fold(FoldAdaptor adaptor) {
  if (Attribute c = foldSplats(getType(), adaptor.getLhs(), adaptor.getRhs(),
                               [](APFloat a, const APFloat &b) {
                                 a.add(b, APFloat::rmNearestTiesToEven);
                                 return a;
                               }))
    return c;
  return foldRightIdentity(*this, adaptor.getRhs(), 0.0);
}

OpFoldResult SubOp::fold(FoldAdaptor adaptor) {
  if (Attribute c = foldSplats(getType(), adaptor.getLhs(), adaptor.getRhs(),
                               [](APFloat a, const APFloat &b) {
                                 a.subtract(b, APFloat::rmNearestTiesToEven);
                                 return a;
                               }))
    return c;
  return foldRightIdentity(*this, adaptor.getRhs(), 0.0);
}

OpFoldResult MulOp::fold(FoldAdaptor adaptor) {
  if (Attribute c = foldSplats(getType(), adaptor.getLhs(), adaptor.getRhs(),
                               [](APFloat a, const APFloat &b) {
                                 a.multiply(b, APFloat::rmNearestTiesToEven);
                                 return a;
                               }))
    return c;
  return foldRightIdentity(*this, adaptor.getRhs(), 1.0);
}

OpFoldResult DivOp::fold(FoldAdaptor adaptor) {
  return foldRightIdentity(*this, adaptor.getRhs(), 1.0);
}

OpFoldResult NegOp::fold(FoldAdaptor) {
  if (auto inner = getOperand().getDefiningOp<NegOp>())
    return inner.getOperand();
  return {};
}

OpFoldResult CastOp::fold(FoldAdaptor) {
  if (getOperand().getType() == getType())
    return getOperand();
  return {};
}

#define GET_OP_CLASSES
#include "dialects/loom/IR/LoomOps.cpp.inc"

FailureOr<Value> mlir::loom::buildChecked(OpBuilder &builder, Location loc,
                                         StringRef name, ValueRange operands,
                                         ArrayRef<NamedAttribute> attrs,
                                         Type resultType) {
  OperationState state(loc, name);
  state.addOperands(operands);
  state.addAttributes(attrs);
  if (resultType)
    state.addTypes(resultType);
  FailureOr<Operation *> op = createChecked(builder, state);
  if (failed(op))
    return failure();
  return (*op)->getResult(0);
}

//===----------------------------------------------------------------------===//
// mla_attention
//===----------------------------------------------------------------------===//

LogicalResult MlaAttentionOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &results) {
  auto fail = [&](const Twine &message) {
    return emitOptionalError(loc, "'loom.mla_attention' op ", message);
  };
  if (failed(checkRunTimeIndex(loc, "mla_attention", "start_pos",
                               adaptor.getStartPos())))
    return failure();
  struct Operand {
    StringRef name;
    RankedTensorType type;
    int64_t rank;
  };
  Operand operands[] = {
      {"q_nope", tensorOf(adaptor.getQNope()), 4},
      {"q_pe", tensorOf(adaptor.getQPe()), 4},
      {"kv", tensorOf(adaptor.getKv()), 3},
      {"k_pe", tensorOf(adaptor.getKPe()), 3},
      {"wkv_b", tensorOf(adaptor.getWkvB()), 2},
      {"k_cache", tensorOf(adaptor.getKCache()), 4},
      {"v_cache", tensorOf(adaptor.getVCache()), 4},
  };
  Type element = operands[0].type.getElementType();
  if (!isa<FloatType>(element))
    return fail("operands must be floats, got " + typeStr(element));
  for (const Operand &op : operands) {
    if (op.type.getRank() != op.rank)
      return fail(op.name + " must have rank " + Twine(op.rank) + ", got " +
                  typeStr(op.type));
    if (op.type.getElementType() != element)
      return fail(op.name + " has element type " +
                  typeStr(op.type.getElementType()) + ", not " +
                  typeStr(element) + " like q_nope");
  }
  // Sizes that several operands share must agree where both are static.
  struct Use {
    unsigned operand;
    int64_t dim;
  };
  auto size = [&](Use u) { return operands[u.operand].type.getDimSize(u.dim); };
  auto agree = [&](StringRef what, std::initializer_list<Use> uses,
                   int64_t *known = nullptr) -> LogicalResult {
    int64_t value = ShapedType::kDynamic;
    const Use *first = nullptr;
    for (const Use &u : uses) {
      int64_t s = size(u);
      if (ShapedType::isDynamic(s))
        continue;
      if (!first) {
        value = s;
        first = &u;
        continue;
      }
      if (s != value)
        return fail(what + " is " + Twine(value) + " in " +
                    operands[first->operand].name + " (dimension " +
                    Twine(first->dim) + ") but " + Twine(s) + " in " +
                    operands[u.operand].name + " (dimension " + Twine(u.dim) +
                    ")");
    }
    if (known)
      *known = value;
    return success();
  };
  int64_t heads, nope, rope, latent, value;
  if (failed(agree("the batch", {{0, 0}, {1, 0}, {2, 0}, {3, 0}})) ||
      failed(agree("the token count", {{0, 1}, {1, 1}, {2, 1}, {3, 1}})) ||
      failed(agree("the head count", {{0, 2}, {1, 2}, {5, 2}, {6, 2}},
                   &heads)) ||
      failed(agree("the rope head dim", {{1, 3}, {3, 2}}, &rope)) ||
      failed(agree("the latent rank", {{2, 2}, {4, 1}}, &latent)) ||
      failed(agree("the cache batch", {{5, 0}, {6, 0}})) ||
      failed(agree("the cache length", {{5, 1}, {6, 1}})))
    return failure();
  (void)latent;
  nope = size({0, 3});
  value = size({6, 3});
  int64_t kHead = size({5, 3});
  if (!ShapedType::isDynamic(nope) && !ShapedType::isDynamic(rope) &&
      !ShapedType::isDynamic(kHead) && kHead != nope + rope)
    return fail("k_cache holds " + Twine(kHead) +
                " values per head, not qk_nope_head_dim + qk_rope_head_dim = " +
                Twine(nope + rope));
  int64_t rows = size({4, 0});
  if (!ShapedType::isDynamic(heads) && !ShapedType::isDynamic(nope) &&
      !ShapedType::isDynamic(value) && !ShapedType::isDynamic(rows) &&
      rows != heads * (nope + value))
    return fail("wkv_b has " + Twine(rows) +
                " rows, not n_heads * (qk_nope_head_dim + v_head_dim) = " +
                Twine(heads * (nope + value)));
  SmallVector<int64_t> out = {size({0, 0}), size({0, 1}), size({0, 2}),
                              value};
  results.push_back(RankedTensorType::get(out, element));
  results.push_back(operands[5].type);
  results.push_back(operands[6].type);
  return success();
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &results) {
  auto fail = [&](const Twine &message) {
    return emitOptionalError(loc, "'loom.attention' op ", message);
  };
  struct Operand {
    StringRef name;
    RankedTensorType type;
  };
  Operand operands[] = {{"q", tensorOf(adaptor.getQ())},
                        {"k", tensorOf(adaptor.getK())},
                        {"v", tensorOf(adaptor.getV())}};
  Type element = operands[0].type.getElementType();
  if (!isa<FloatType>(element))
    return fail("q must hold floats, got " + typeStr(operands[0].type));
  for (const Operand &op : operands) {
    if (op.type.getRank() != 4)
      return fail(op.name + " must have rank 4 ([batch, heads, positions, " +
                  "head dim]), got " + typeStr(op.type));
    if (op.type.getElementType() != element)
      return fail(op.name + " has element type " +
                  typeStr(op.type.getElementType()) + ", not " +
                  typeStr(element) + " like q");
  }
  auto size = [&](unsigned operand, unsigned dim) {
    return operands[operand].type.getDimSize(dim);
  };
  auto agree = [&](StringRef what, unsigned a, unsigned da, unsigned b,
                   unsigned db) -> LogicalResult {
    int64_t x = size(a, da), y = size(b, db);
    if (ShapedType::isDynamic(x) || ShapedType::isDynamic(y) || x == y)
      return success();
    return fail(what + " is " + Twine(x) + " in " + operands[a].name +
                " (dimension " + Twine(da) + ") but " + Twine(y) + " in " +
                operands[b].name + " (dimension " + Twine(db) + ")");
  };
  if (failed(agree("the batch", 0, 0, 1, 0)) ||
      failed(agree("the batch", 0, 0, 2, 0)) ||
      failed(agree("the key/value head count", 1, 1, 2, 1)) ||
      failed(agree("the key count", 1, 2, 2, 2)) ||
      failed(agree("the query/key head dim", 0, 3, 1, 3)))
    return failure();
  int64_t hq = size(0, 1), hkv = size(1, 1);
  if (!ShapedType::isDynamic(hq) && !ShapedType::isDynamic(hkv) &&
      (hkv == 0 || hq % hkv != 0))
    return fail("the query head count " + Twine(hq) +
                " is not a multiple of the key/value head count " +
                Twine(hkv));
  int64_t batch = size(0, 0);
  if (ShapedType::isDynamic(batch))
    batch = size(1, 0);
  results.push_back(
      RankedTensorType::get({batch, hq, size(0, 2), size(2, 3)}, element));
  results.push_back(RankedTensorType::get({batch, hq, size(0, 2)}, element));
  return success();
}

LogicalResult AttentionOp::verify() {
  return verifyAttentionRegions(*this, getMask(), getScore(),
                                getQ().getType().getElementType(),
                                getCaptures().getTypes());
}

LogicalResult mlir::loom::verifyAttentionRegions(Operation *op, Region &mask,
                                                 Region &score, Type element,
                                                 TypeRange captures) {
  auto check = [&](Region &region, StringRef name, bool withScore,
                   Type yielded) -> LogicalResult {
    if (region.empty())
      return success();
    if (!region.hasOneBlock())
      return op->emitOpError() << "the " << name << " region must have one "
                               << "block";
    Block &block = region.front();
    SmallVector<Type> expected(4, IndexType::get(op->getContext()));
    if (withScore)
      expected.push_back(element);
    llvm::append_range(expected, captures);
    if (block.getArgumentTypes() != TypeRange(expected)) {
      std::string want;
      llvm::raw_string_ostream os(want);
      llvm::interleaveComma(expected, os);
      return op->emitOpError()
             << "the " << name << " region must take (b, h, i, j: index"
             << (withScore ? ", s: score" : "") << ", captures...) = (" << want
             << "), got " << block.getNumArguments() << " arguments";
    }
    Operation *terminator = block.empty() ? nullptr : &block.back();
    if (!terminator || terminator->getName().getStringRef() !=
                           op->getDialect()->getNamespace().str() + ".yield" ||
        terminator->getNumOperands() != 1 ||
        terminator->getOperand(0).getType() != yielded)
      return op->emitOpError() << "the " << name << " region must end in "
                               << op->getDialect()->getNamespace()
                               << ".yield of one " << yielded;
    return success();
  };
  Builder b(op->getContext());
  if (failed(check(mask, "mask", false, b.getI1Type())) ||
      failed(check(score, "score", true, element)))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// CsrContainsOp
//===----------------------------------------------------------------------===//

LogicalResult CsrContainsOp::verify() {
  for (auto [name, value] : {std::pair<StringRef, Value>{"indptr", getIndptr()},
                             {"indices", getIndices()}}) {
    auto type = cast<RankedTensorType>(value.getType());
    if (type.getRank() != 1 || !type.getElementType().isSignlessInteger() ||
        type.getElementType().isInteger(1))
      return emitOpError() << name << " must be a rank-1 integer tensor, got "
                           << type;
  }
  return success();
}
