//===- LoomToLinalg.cpp - Lower loom to linalg ------------------*- C++ -*-===//
//
// This file implements the lowering of every `loom` op to linalg, tensor,
// arith and math ops on tensors. Broadcasting is expressed with indexing maps
// (a static 1 that stretches reads index 0), symbolic dimensions are read at
// run time with `tensor.dim`, and matrix products stay named
// `linalg.matmul`/`linalg.batch_matmul` ops on a zero-filled init so that a
// later pass can hand them to a library.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/LoomToLinalg/LoomToLinalg.h"

#include "dialects/fuse/Transforms/Transforms.h"
#include "dialects/loom/IR/LoomOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Transforms/DialectConversion.h"
#include "llvm/ADT/SmallBitVector.h"

#include <cmath>
#include <limits>

namespace mlir::loom {
#define GEN_PASS_DEF_CONVERTLOOMTOLINALGPASS
#include "compiler/Conversion/Passes.h.inc"
} // namespace mlir::loom

using namespace mlir;

//===----------------------------------------------------------------------===//
// Shape helpers
//===----------------------------------------------------------------------===//

static RankedTensorType tensorType(Value value) {
  return cast<RankedTensorType>(value.getType());
}

static Value toIndex(OpBuilder &b, Location loc, OpFoldResult ofr) {
  return getValueOrCreateConstantIndexOp(b, loc, ofr);
}

/// Returns dimension `dim` of `value`: an attribute when static, a
/// `tensor.dim` otherwise.
static OpFoldResult dimOf(OpBuilder &b, Location loc, Value value,
                          int64_t dim) {
  return tensor::getMixedSize(b, loc, value, dim);
}

static OpFoldResult addSizes(OpBuilder &b, Location loc, OpFoldResult x,
                             OpFoldResult y) {
  std::optional<int64_t> cx = getConstantIntValue(x);
  std::optional<int64_t> cy = getConstantIntValue(y);
  if (cx && cy)
    return b.getIndexAttr(*cx + *cy);
  return arith::AddIOp::create(b, loc, toIndex(b, loc, x), toIndex(b, loc, y))
      .getResult();
}

static OpFoldResult mulSizes(OpBuilder &b, Location loc, OpFoldResult x,
                             OpFoldResult y) {
  std::optional<int64_t> cx = getConstantIntValue(x);
  std::optional<int64_t> cy = getConstantIntValue(y);
  if (cx && cy)
    return b.getIndexAttr(*cx * *cy);
  if (cx == 1)
    return y;
  if (cy == 1)
    return x;
  return arith::MulIOp::create(b, loc, toIndex(b, loc, x), toIndex(b, loc, y))
      .getResult();
}

/// Returns `sizes` with the static dimensions of `type` as attributes and its
/// dynamic ones as values, the form reshapes and inits of `type` expect.
static SmallVector<OpFoldResult> sizesFor(OpBuilder &b, Location loc,
                                          RankedTensorType type,
                                          ArrayRef<OpFoldResult> sizes) {
  SmallVector<OpFoldResult> result;
  for (auto [i, d] : llvm::enumerate(type.getShape()))
    result.push_back(ShapedType::isDynamic(d)
                         ? OpFoldResult(toIndex(b, loc, sizes[i]))
                         : OpFoldResult(b.getIndexAttr(d)));
  return result;
}

/// Creates a `tensor.empty` of `type`; `sizes` has one entry per dimension and
/// only the dynamic ones are read.
static Value createEmpty(OpBuilder &b, Location loc, RankedTensorType type,
                         ArrayRef<OpFoldResult> sizes) {
  SmallVector<Value> dynamic;
  for (auto [i, d] : llvm::enumerate(type.getShape()))
    if (ShapedType::isDynamic(d))
      dynamic.push_back(toIndex(b, loc, sizes[i]));
  return tensor::EmptyOp::create(b, loc, type.getShape(), type.getElementType(),
                                 dynamic);
}

/// Creates a `tensor.empty` of `type` filled with `value`.
static Value createFilled(OpBuilder &b, Location loc, RankedTensorType type,
                          ArrayRef<OpFoldResult> sizes, TypedAttr value) {
  Value init = createEmpty(b, loc, type, sizes);
  Value scalar = arith::ConstantOp::create(b, loc, value);
  return linalg::FillOp::create(b, loc, ValueRange{scalar}, ValueRange{init})
      .getResult(0);
}

/// Expands `src` into `type` along `reassociation`; `sizes` gives every
/// dimension of `type`. A group that splits into two or more dynamic
/// dimensions becomes a `tensor.reshape` with a shape tensor instead:
/// `expand-strided-metadata` of MLIR 22.1 crashes on such a
/// `memref.expand_shape`.
static Value expandTo(OpBuilder &b, Location loc, Value src,
                      RankedTensorType type,
                      ArrayRef<ReassociationIndices> reassociation,
                      ArrayRef<OpFoldResult> sizes) {
  SmallVector<OpFoldResult> shape = sizesFor(b, loc, type, sizes);
  bool splitsDynamic = llvm::any_of(reassociation, [&](const auto &group) {
    return llvm::count_if(group,
                          [&](int64_t d) { return type.isDynamicDim(d); }) > 1;
  });
  if (!splitsDynamic)
    return tensor::ExpandShapeOp::create(b, loc, type, src, reassociation,
                                         shape);
  SmallVector<Value> shapeValues;
  for (OpFoldResult size : shape)
    shapeValues.push_back(toIndex(b, loc, size));
  Value shapeTensor = tensor::FromElementsOp::create(b, loc, shapeValues);
  return tensor::ReshapeOp::create(b, loc, type, src, shapeTensor);
}

/// Returns the reassociation that groups dimensions [0, split) into one and
/// keeps each of [split, rank) alone.
static SmallVector<ReassociationIndices> leadingGroup(int64_t split,
                                                      int64_t rank) {
  SmallVector<ReassociationIndices> groups(1);
  for (int64_t i = 0; i < split; ++i)
    groups[0].push_back(i);
  for (int64_t i = split; i < rank; ++i)
    groups.push_back({i});
  return groups;
}

/// Finds, for every dynamic dimension of `resultShape` (the broadcast of
/// `operands`' leading `shapeRank - trailing` dims), an operand and dimension
/// that has its size. Operand dims align at position `rank - trailing`, and a
/// `?` never stretches, so any aligned dimension that is not a static 1 has
/// the result's size. Fails without creating IR when one is missing.
static LogicalResult
findBroadcastSources(ArrayRef<int64_t> resultShape, ValueRange operands,
                     int64_t trailing,
                     SmallVectorImpl<std::pair<Value, int64_t>> &sources) {
  int64_t rank = resultShape.size();
  for (int64_t i = 0; i < rank; ++i) {
    sources.push_back({Value(), 0});
    if (!ShapedType::isDynamic(resultShape[i]))
      continue;
    for (Value operand : operands) {
      RankedTensorType type = tensorType(operand);
      int64_t j = i - (rank - (type.getRank() - trailing));
      if (j >= 0 && type.getDimSize(j) != 1) {
        sources.back() = {operand, j};
        break;
      }
    }
    if (!sources.back().first)
      return failure();
  }
  return success();
}

/// Returns the sizes of `resultShape` from sources found by
/// findBroadcastSources.
static SmallVector<OpFoldResult>
sizesFromSources(OpBuilder &b, Location loc, ArrayRef<int64_t> resultShape,
                 ArrayRef<std::pair<Value, int64_t>> sources) {
  SmallVector<OpFoldResult> sizes;
  for (auto [d, source] : llvm::zip(resultShape, sources))
    sizes.push_back(ShapedType::isDynamic(d)
                        ? dimOf(b, loc, source.first, source.second)
                        : OpFoldResult(b.getIndexAttr(d)));
  return sizes;
}

/// Returns the map that reads an operand of `operandType` inside loops over
/// `resultShape`: trailing dimensions align and a static 1 facing a larger
/// dimension reads index 0.
static AffineMap broadcastMap(MLIRContext *ctx, RankedTensorType operandType,
                              ArrayRef<int64_t> resultShape) {
  int64_t rank = resultShape.size();
  int64_t offset = rank - operandType.getRank();
  SmallVector<AffineExpr> exprs;
  for (int64_t j = 0; j < operandType.getRank(); ++j) {
    if (operandType.getDimSize(j) == 1 && resultShape[j + offset] != 1)
      exprs.push_back(getAffineConstantExpr(0, ctx));
    else
      exprs.push_back(getAffineDimExpr(j + offset, ctx));
  }
  return AffineMap::get(rank, 0, exprs, ctx);
}

//===----------------------------------------------------------------------===//
// linalg.generic builders
//===----------------------------------------------------------------------===//

/// Computes a scalar from the block arguments of the inputs.
using ScalarFn = function_ref<Value(OpBuilder &, Location, ValueRange)>;

/// Builds a `linalg.generic` with one output of `resultType` (identity map,
/// all-parallel loops) over `inputs` read through `inputMaps`.
static Value buildParallel(OpBuilder &b, Location loc,
                           RankedTensorType resultType,
                           ArrayRef<OpFoldResult> sizes, ValueRange inputs,
                           ArrayRef<AffineMap> inputMaps, ScalarFn body) {
  int64_t rank = resultType.getRank();
  SmallVector<AffineMap> maps(inputMaps);
  maps.push_back(b.getMultiDimIdentityMap(rank));
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::parallel);
  Value init = createEmpty(b, loc, resultType, sizes);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{resultType}, inputs, ValueRange{init}, maps, iterators,
      [&](OpBuilder &nested, Location nestedLoc, ValueRange args) {
        Value value = body(nested, nestedLoc, args.drop_back());
        linalg::YieldOp::create(nested, nestedLoc, value);
      });
  return generic.getResult(0);
}

/// Builds an elementwise `linalg.generic` over `operands` broadcast to
/// `resultType`.
static Value buildElementwise(OpBuilder &b, Location loc,
                              RankedTensorType resultType,
                              ArrayRef<OpFoldResult> sizes, ValueRange operands,
                              ScalarFn body) {
  SmallVector<AffineMap> maps;
  for (Value operand : operands)
    maps.push_back(broadcastMap(b.getContext(), tensorType(operand),
                                resultType.getShape()));
  return buildParallel(b, loc, resultType, sizes, operands, maps, body);
}

/// Combines the block arguments of the inputs with the accumulator.
using CombineFn =
    function_ref<Value(OpBuilder &, Location, ValueRange, Value acc)>;

/// Builds a `linalg.generic` that reduces `input` over the dimensions set in
/// `reduced` into an init filled with `identity`. `reducedInputs` have the
/// shape of the result and are read at the output's position.
static Value buildReduction(OpBuilder &b, Location loc, Value input,
                            ValueRange reducedInputs,
                            const llvm::SmallBitVector &reduced,
                            TypedAttr identity, CombineFn combine) {
  MLIRContext *ctx = b.getContext();
  RankedTensorType type = tensorType(input);
  int64_t rank = type.getRank();
  SmallVector<int64_t> shape;
  SmallVector<OpFoldResult> sizes;
  SmallVector<AffineExpr> exprs;
  SmallVector<utils::IteratorType> iterators;
  for (int64_t i = 0; i < rank; ++i) {
    if (reduced.test(i)) {
      iterators.push_back(utils::IteratorType::reduction);
      continue;
    }
    iterators.push_back(utils::IteratorType::parallel);
    shape.push_back(type.getDimSize(i));
    sizes.push_back(dimOf(b, loc, input, i));
    exprs.push_back(getAffineDimExpr(i, ctx));
  }
  auto resultType = RankedTensorType::get(shape, type.getElementType());
  Value init = createFilled(b, loc, resultType, sizes, identity);
  AffineMap outMap = AffineMap::get(rank, 0, exprs, ctx);
  SmallVector<AffineMap> maps = {b.getMultiDimIdentityMap(rank)};
  SmallVector<Value> inputs = {input};
  for (Value v : reducedInputs) {
    maps.push_back(outMap);
    inputs.push_back(v);
  }
  maps.push_back(outMap);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{resultType}, inputs, ValueRange{init}, maps, iterators,
      [&](OpBuilder &nested, Location nestedLoc, ValueRange args) {
        Value value = combine(nested, nestedLoc, args.drop_back(), args.back());
        linalg::YieldOp::create(nested, nestedLoc, value);
      });
  return generic.getResult(0);
}

//===----------------------------------------------------------------------===//
// Scalar computations
//===----------------------------------------------------------------------===//

static bool isFloat(Value value) { return isa<FloatType>(value.getType()); }

static Value floatConst(OpBuilder &b, Location loc, Type type, double value) {
  return arith::ConstantOp::create(b, loc, b.getFloatAttr(type, value));
}

template <typename FloatOp, typename IntOp>
static Value floatOrInt(OpBuilder &b, Location loc, ValueRange args) {
  if (isFloat(args[0]))
    return FloatOp::create(b, loc, args[0], args[1]);
  return IntOp::create(b, loc, args[0], args[1]);
}

static Value sigmoid(OpBuilder &b, Location loc, Value x) {
  Value one = floatConst(b, loc, x.getType(), 1.0);
  Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, x));
  return arith::DivFOp::create(b, loc, one,
                               arith::AddFOp::create(b, loc, one, e));
}

/// Converts `in` to `to` with the semantics of `loom.cast`: float to integer
/// truncates toward zero, number to bool is `!= 0`, bool to number is 0/1.
static Value castScalar(OpBuilder &b, Location loc, Value in, Type to) {
  Type from = in.getType();
  if (from == to)
    return in;
  auto fromFloat = dyn_cast<FloatType>(from);
  auto toFloat = dyn_cast<FloatType>(to);
  auto fromInt = dyn_cast<IntegerType>(from);
  auto toInt = dyn_cast<IntegerType>(to);
  if (fromFloat && toFloat) {
    if (fromFloat.getWidth() < toFloat.getWidth())
      return arith::ExtFOp::create(b, loc, to, in);
    if (fromFloat.getWidth() > toFloat.getWidth())
      return arith::TruncFOp::create(b, loc, to, in);
    // f16 <-> bf16: f32 holds both exactly.
    Value wide = arith::ExtFOp::create(b, loc, b.getF32Type(), in);
    return arith::TruncFOp::create(b, loc, to, wide);
  }
  if (fromFloat && toInt) {
    if (toInt.getWidth() == 1) {
      // Unordered: NaN is truthy, as in Python.
      Value zero = floatConst(b, loc, from, 0.0);
      return arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNE, in, zero);
    }
    return arith::FPToSIOp::create(b, loc, to, in);
  }
  if (fromInt && toFloat) {
    if (fromInt.getWidth() == 1)
      return arith::UIToFPOp::create(b, loc, to, in);
    return arith::SIToFPOp::create(b, loc, to, in);
  }
  if (fromInt && toInt) {
    if (toInt.getWidth() == 1) {
      Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(from));
      return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, in, zero);
    }
    if (fromInt.getWidth() == 1)
      return arith::ExtUIOp::create(b, loc, to, in);
    if (fromInt.getWidth() < toInt.getWidth())
      return arith::ExtSIOp::create(b, loc, to, in);
    return arith::TruncIOp::create(b, loc, to, in);
  }
  return {};
}

// One overload per elementwise op; `args` are the broadcast operands.

static Value scalarOf(loom::AddOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  return floatOrInt<arith::AddFOp, arith::AddIOp>(b, loc, args);
}
static Value scalarOf(loom::SubOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  return floatOrInt<arith::SubFOp, arith::SubIOp>(b, loc, args);
}
static Value scalarOf(loom::MulOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  return floatOrInt<arith::MulFOp, arith::MulIOp>(b, loc, args);
}
/// Integer division never traps: x / 0 is 0 (as NumPy gives) and
/// MIN / -1 wraps to MIN, so no input can crash the generated code.
static Value scalarOf(loom::DivOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  if (isFloat(args[0]))
    return arith::DivFOp::create(b, loc, args[0], args[1]);
  Type type = args[0].getType();
  auto constant = [&](int64_t v) {
    return arith::ConstantOp::create(b, loc, b.getIntegerAttr(type, v));
  };
  Value zero = constant(0), one = constant(1), minusOne = constant(-1);
  Value isZero =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, args[1], zero);
  Value isMinusOne = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                           args[1], minusOne);
  Value special = arith::OrIOp::create(b, loc, isZero, isMinusOne);
  Value divisor = arith::SelectOp::create(b, loc, special, one, args[1]);
  Value quotient = arith::DivSIOp::create(b, loc, args[0], divisor);
  Value negated = arith::SubIOp::create(b, loc, zero, args[0]);
  Value result = arith::SelectOp::create(b, loc, isMinusOne, negated, quotient);
  return arith::SelectOp::create(b, loc, isZero, zero, result);
}
// max/min propagate NaN (arith.maximumf/minimumf), as torch.maximum and
// torch.minimum do; reduce_max/reduce_min below do the same.
static Value scalarOf(loom::MaxOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  return floatOrInt<arith::MaximumFOp, arith::MaxSIOp>(b, loc, args);
}
static Value scalarOf(loom::MinOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  return floatOrInt<arith::MinimumFOp, arith::MinSIOp>(b, loc, args);
}
static Value scalarOf(loom::PowOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  return math::PowFOp::create(b, loc, args[0], args[1]);
}
static Value scalarOf(loom::AndOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  return arith::AndIOp::create(b, loc, args[0], args[1]);
}
static Value scalarOf(loom::OrOp, OpBuilder &b, Location loc, ValueRange args) {
  return arith::OrIOp::create(b, loc, args[0], args[1]);
}

static Value scalarOf(loom::CmpOp op, OpBuilder &b, Location loc,
                      ValueRange args) {
  StringRef pred = op.getPredicate();
  if (isFloat(args[0])) {
    // Ordered, except `ne`, which holds for NaN.
    auto predicate = llvm::StringSwitch<arith::CmpFPredicate>(pred)
                         .Case("eq", arith::CmpFPredicate::OEQ)
                         .Case("ne", arith::CmpFPredicate::UNE)
                         .Case("lt", arith::CmpFPredicate::OLT)
                         .Case("le", arith::CmpFPredicate::OLE)
                         .Case("gt", arith::CmpFPredicate::OGT)
                         .Default(arith::CmpFPredicate::OGE);
    return arith::CmpFOp::create(b, loc, predicate, args[0], args[1]);
  }
  // Bools order false < true, so they compare unsigned.
  bool isBool = args[0].getType().isInteger(1);
  auto predicate = llvm::StringSwitch<arith::CmpIPredicate>(pred)
                       .Case("eq", arith::CmpIPredicate::eq)
                       .Case("ne", arith::CmpIPredicate::ne)
                       .Case("lt", isBool ? arith::CmpIPredicate::ult
                                          : arith::CmpIPredicate::slt)
                       .Case("le", isBool ? arith::CmpIPredicate::ule
                                          : arith::CmpIPredicate::sle)
                       .Case("gt", isBool ? arith::CmpIPredicate::ugt
                                          : arith::CmpIPredicate::sgt)
                       .Default(isBool ? arith::CmpIPredicate::uge
                                       : arith::CmpIPredicate::sge);
  return arith::CmpIOp::create(b, loc, predicate, args[0], args[1]);
}

static Value scalarOf(loom::SelectOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  return arith::SelectOp::create(b, loc, args[0], args[1], args[2]);
}

static Value scalarOf(loom::NegOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  if (isFloat(args[0]))
    return arith::NegFOp::create(b, loc, args[0]);
  Value zero =
      arith::ConstantOp::create(b, loc, b.getZeroAttr(args[0].getType()));
  return arith::SubIOp::create(b, loc, zero, args[0]);
}
static Value scalarOf(loom::AbsOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  if (isFloat(args[0]))
    return math::AbsFOp::create(b, loc, args[0]);
  return math::AbsIOp::create(b, loc, args[0]);
}
static Value scalarOf(loom::ExpOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  return math::ExpOp::create(b, loc, args[0]);
}
static Value scalarOf(loom::SinOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  return math::SinOp::create(b, loc, args[0]);
}
static Value scalarOf(loom::CosOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  return math::CosOp::create(b, loc, args[0]);
}
static Value scalarOf(loom::LogOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  return math::LogOp::create(b, loc, args[0]);
}
static Value scalarOf(loom::TanhOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  return math::TanhOp::create(b, loc, args[0]);
}
static Value scalarOf(loom::SigmoidOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  return sigmoid(b, loc, args[0]);
}
static Value scalarOf(loom::SiluOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  return arith::MulFOp::create(b, loc, args[0], sigmoid(b, loc, args[0]));
}
static Value scalarOf(loom::GeluOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  // 0.5 * x * (1 + erf(x / sqrt(2))).
  Value x = args[0];
  Type type = x.getType();
  Value scaled =
      arith::MulFOp::create(b, loc, x, floatConst(b, loc, type, M_SQRT1_2));
  Value erf = math::ErfOp::create(b, loc, scaled);
  Value onePlus =
      arith::AddFOp::create(b, loc, floatConst(b, loc, type, 1.0), erf);
  Value half = arith::MulFOp::create(b, loc, floatConst(b, loc, type, 0.5), x);
  return arith::MulFOp::create(b, loc, half, onePlus);
}
static Value scalarOf(loom::RsqrtOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  return math::RsqrtOp::create(b, loc, args[0]);
}
static Value scalarOf(loom::SqrtOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  return math::SqrtOp::create(b, loc, args[0]);
}
static Value scalarOf(loom::NotOp, OpBuilder &b, Location loc,
                      ValueRange args) {
  Value one = arith::ConstantOp::create(b, loc, b.getBoolAttr(true));
  return arith::XOrIOp::create(b, loc, args[0], one);
}
static Value scalarOf(loom::CastOp op, OpBuilder &b, Location loc,
                      ValueRange args) {
  return castScalar(b, loc, args[0], op.getType().getElementType());
}

/// Schulman's estimators of KL(policy || reference) on x = logp - ref:
/// k1 = x, k2 = x^2 / 2, k3 = exp(-x) + x - 1.
static Value scalarOf(loom::KlOp op, OpBuilder &b, Location loc,
                      ValueRange args) {
  Value x = arith::SubFOp::create(b, loc, args[0], args[1]);
  StringRef estimator = op.getEstimator();
  if (estimator == "k2")
    return arith::MulFOp::create(b, loc, floatConst(b, loc, x.getType(), 0.5),
                                 arith::MulFOp::create(b, loc, x, x));
  if (estimator == "k3") {
    Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, x));
    return arith::SubFOp::create(b, loc, arith::AddFOp::create(b, loc, e, x),
                                 floatConst(b, loc, x.getType(), 1.0));
  }
  return x;
}

static bool isCastSupported(Type from, Type to) {
  auto isNumeric = [](Type t) { return isa<FloatType, IntegerType>(t); };
  return isNumeric(from) && isNumeric(to);
}

//===----------------------------------------------------------------------===//
// Reductions and contractions
//===----------------------------------------------------------------------===//

namespace {
enum class ReduceKind { Sum, Mean, Max, Min };
} // namespace

/// Returns the identity of a reduction over `type` elements.
static TypedAttr reductionIdentity(OpBuilder &b, ReduceKind kind, Type type) {
  if (kind == ReduceKind::Sum || kind == ReduceKind::Mean)
    return b.getZeroAttr(type);
  bool isMax = kind == ReduceKind::Max;
  if (auto floatType = dyn_cast<FloatType>(type))
    return b.getFloatAttr(
        type, APFloat::getInf(floatType.getFloatSemantics(), isMax));
  unsigned width = type.getIntOrFloatBitWidth();
  return b.getIntegerAttr(type, isMax ? APInt::getSignedMinValue(width)
                                      : APInt::getSignedMaxValue(width));
}

static Value combineScalar(OpBuilder &b, Location loc, ReduceKind kind,
                           Value acc, Value x) {
  SmallVector<Value, 2> args = {acc, x};
  switch (kind) {
  case ReduceKind::Sum:
  case ReduceKind::Mean:
    return floatOrInt<arith::AddFOp, arith::AddIOp>(b, loc, args);
  case ReduceKind::Max:
    return floatOrInt<arith::MaximumFOp, arith::MaxSIOp>(b, loc, args);
  case ReduceKind::Min:
    return floatOrInt<arith::MinimumFOp, arith::MinSIOp>(b, loc, args);
  }
  return {};
}

/// The maximum of the float tensor `x` over the dimensions set in `reduced`.
static Value buildMax(OpBuilder &b, Location loc, Value x,
                      const llvm::SmallBitVector &reduced) {
  return buildReduction(
      b, loc, x, ValueRange{}, reduced,
      reductionIdentity(b, ReduceKind::Max, tensorType(x).getElementType()),
      [](OpBuilder &nb, Location nl, ValueRange args, Value acc) -> Value {
        return arith::MaximumFOp::create(nb, nl, acc, args[0]);
      });
}

/// sum exp((x - max) / divisor) over the dimensions set in `reduced`, with
/// `max` of the reduced shape; no division when `divisor` is null. The sum
/// of a softmax's (or log-softmax's) denominator.
static Value buildShiftedExpSum(OpBuilder &b, Location loc, Value x, Value max,
                                const llvm::SmallBitVector &reduced,
                                Value divisor = {}) {
  return buildReduction(
      b, loc, x, ValueRange{max}, reduced,
      b.getZeroAttr(tensorType(x).getElementType()),
      [&](OpBuilder &nb, Location nl, ValueRange args, Value acc) -> Value {
        Value shifted = arith::SubFOp::create(nb, nl, args[0], args[1]);
        if (divisor)
          shifted = arith::DivFOp::create(nb, nl, shifted, divisor);
        return arith::AddFOp::create(nb, nl, acc,
                                     math::ExpOp::create(nb, nl, shifted));
      });
}

/// Returns the product of `value`'s dimensions in `dims` as a float of `type`.
static Value countAsFloat(OpBuilder &b, Location loc, Value value,
                          ArrayRef<int64_t> dims, Type type) {
  OpFoldResult count = b.getIndexAttr(1);
  for (int64_t d : dims)
    count = mulSizes(b, loc, count, dimOf(b, loc, value, d));
  if (std::optional<int64_t> c = getConstantIntValue(count))
    return floatConst(b, loc, type, static_cast<double>(*c));
  Value wide = arith::IndexCastOp::create(b, loc, b.getI64Type(),
                                          toIndex(b, loc, count));
  return arith::SIToFPOp::create(b, loc, type, wide);
}

/// Creates `linalg.matmul` (rank 2) or `linalg.batch_matmul` (rank 3) of
/// `lhs` and `rhs` into a zero-filled init of `resultType`, or into `sum`
/// (the product added to it; f32 and f64 only). A transposed operand is
/// expressed by the op's `indexing_maps`; without transposes the default
/// maps are kept. Products of f16 or bf16 accumulate in f32 (the op extends
/// each element) and are rounded to the result type once, at the end, as
/// tensor-core and library GEMMs do.
static Value buildContraction(OpBuilder &b, Location loc, Value lhs, Value rhs,
                              bool transposeA, bool transposeB,
                              RankedTensorType resultType,
                              ArrayRef<OpFoldResult> sizes, Value sum = {}) {
  MLIRContext *ctx = b.getContext();
  Type elementType = resultType.getElementType();
  if (isa<Float16Type, BFloat16Type>(elementType)) {
    assert(!sum && "a 16-bit product is rounded once, not added to");
    auto wideType = resultType.clone(b.getF32Type());
    Value wide = buildContraction(b, loc, lhs, rhs, transposeA, transposeB,
                                  wideType, sizes);
    return buildElementwise(
        b, loc, resultType, sizes, ValueRange{wide},
        [&](OpBuilder &nb, Location nestedLoc, ValueRange args) -> Value {
          return arith::TruncFOp::create(nb, nestedLoc, elementType, args[0]);
        });
  }
  Value init = sum ? sum
                   : createFilled(b, loc, resultType, sizes,
                                  b.getZeroAttr(resultType.getElementType()));
  bool batched = resultType.getRank() == 3;
  int64_t numDims = batched ? 4 : 3;
  // Loops: [batch,] m, n, k.
  SmallVector<AffineExpr> batch;
  if (batched)
    batch.push_back(getAffineDimExpr(0, ctx));
  AffineExpr m = getAffineDimExpr(numDims - 3, ctx);
  AffineExpr n = getAffineDimExpr(numDims - 2, ctx);
  AffineExpr k = getAffineDimExpr(numDims - 1, ctx);
  auto map = [&](AffineExpr row, AffineExpr col) {
    SmallVector<AffineExpr> exprs(batch);
    exprs.push_back(row);
    exprs.push_back(col);
    return AffineMap::get(numDims, 0, exprs, ctx);
  };
  ArrayAttr maps;
  if (transposeA || transposeB)
    maps = b.getAffineMapArrayAttr({transposeA ? map(k, m) : map(m, k),
                                    transposeB ? map(n, k) : map(k, n),
                                    map(m, n)});
  if (batched) {
    auto op = linalg::BatchMatmulOp::create(
        b, loc, TypeRange{resultType}, ValueRange{lhs, rhs}, ValueRange{init});
    if (maps)
      op.setIndexingMapsAttr(maps);
    return op.getResult(0);
  }
  auto op = linalg::MatmulOp::create(b, loc, TypeRange{resultType},
                                     ValueRange{lhs, rhs}, ValueRange{init});
  if (maps)
    op.setIndexingMapsAttr(maps);
  return op.getResult(0);
}

/// Collapses all dimensions of `value` but the last `keep` into one.
static Value collapseLeading(OpBuilder &b, Location loc, Value value,
                             int64_t keep) {
  int64_t rank = tensorType(value).getRank();
  if (rank == keep + 1)
    return value;
  return tensor::CollapseShapeOp::create(b, loc, value,
                                         leadingGroup(rank - keep, rank));
}

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

namespace {

/// Lowers an elementwise op (binary, unary, cmp, select, cast) to one
/// `linalg.generic` with broadcasting indexing maps.
template <typename OpTy>
struct ElementwiseLowering : public OpConversionPattern<OpTy> {
  using OpConversionPattern<OpTy>::OpConversionPattern;

  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto resultType = cast<RankedTensorType>(op.getType());
    ValueRange operands = adaptor.getOperands();
    if constexpr (std::is_same_v<OpTy, loom::CastOp>) {
      if (!isCastSupported(tensorType(operands[0]).getElementType(),
                           resultType.getElementType()))
        return rewriter.notifyMatchFailure(op, "unsupported cast");
    }
    SmallVector<std::pair<Value, int64_t>> sources;
    if (failed(findBroadcastSources(resultType.getShape(), operands,
                                    /*trailing=*/0, sources)))
      return rewriter.notifyMatchFailure(op, "no operand gives the size of a "
                                             "dynamic result dimension");
    SmallVector<OpFoldResult> sizes =
        sizesFromSources(rewriter, loc, resultType.getShape(), sources);
    Value result = buildElementwise(
        rewriter, loc, resultType, sizes, operands,
        [&](OpBuilder &b, Location nestedLoc, ValueRange args) {
          return scalarOf(op, b, nestedLoc, args);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct ConstantLowering : public OpConversionPattern<loom::ConstantOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::ConstantOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto value = dyn_cast<TypedAttr>(op.getValue());
    if (!value)
      return rewriter.notifyMatchFailure(op, "value is not a typed attribute");
    rewriter.replaceOp(op, arith::ConstantOp::create(rewriter, op.getLoc(),
                                                     op.getType(), value));
    return success();
  }
};

/// Lowers `loom.iota` to a `linalg.generic` that writes `linalg.index`.
struct IotaLowering : public OpConversionPattern<loom::IotaOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::IotaOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType type = op.getType();
    if (!type.hasStaticShape() && !adaptor.getLike())
      return rewriter.notifyMatchFailure(op, "dynamic shape without 'like'");
    SmallVector<OpFoldResult> sizes;
    for (int64_t i = 0; i < type.getRank(); ++i)
      sizes.push_back(
          type.isDynamicDim(i)
              ? dimOf(rewriter, loc, adaptor.getLike(), i)
              : OpFoldResult(rewriter.getIndexAttr(type.getDimSize(i))));
    int64_t axis = op.getAxis();
    Type elementType = type.getElementType();
    Value result = buildParallel(
        rewriter, loc, type, sizes, ValueRange{}, {},
        [&](OpBuilder &b, Location nestedLoc, ValueRange) -> Value {
          Value index = linalg::IndexOp::create(b, nestedLoc, axis);
          if (isa<IntegerType>(elementType))
            return arith::IndexCastOp::create(b, nestedLoc, elementType, index);
          Value wide =
              arith::IndexCastOp::create(b, nestedLoc, b.getI64Type(), index);
          return arith::SIToFPOp::create(b, nestedLoc, elementType, wide);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

/// Lowers sum, mean, reduce_max and reduce_min to a `linalg.generic` with
/// reduction iterators; mean divides by the element count afterwards and
/// keepdim re-inserts unit dimensions with `tensor.expand_shape`.
template <typename OpTy, ReduceKind Kind>
struct ReduceLowering : public OpConversionPattern<OpTy> {
  using OpConversionPattern<OpTy>::OpConversionPattern;

  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value input = adaptor.getOperand();
    RankedTensorType inputType = tensorType(input);
    RankedTensorType resultType = op.getType();
    ArrayRef<int64_t> axes = op.getAxes();
    if (axes.empty()) {
      rewriter.replaceOp(op, input);
      return success();
    }
    int64_t rank = inputType.getRank();
    llvm::SmallBitVector reduced(rank);
    for (int64_t axis : axes)
      reduced.set(axis);
    Type elementType = inputType.getElementType();
    Value result = buildReduction(
        rewriter, loc, input, ValueRange{}, reduced,
        reductionIdentity(rewriter, Kind, elementType),
        [&](OpBuilder &b, Location nestedLoc, ValueRange args, Value acc) {
          return combineScalar(b, nestedLoc, Kind, acc, args[0]);
        });
    if constexpr (Kind == ReduceKind::Mean) {
      Value count = countAsFloat(rewriter, loc, input, axes, elementType);
      RankedTensorType sumType = tensorType(result);
      result = buildElementwise(
          rewriter, loc, sumType, tensor::getMixedSizes(rewriter, loc, result),
          ValueRange{result},
          [&](OpBuilder &b, Location nestedLoc, ValueRange args) -> Value {
            return arith::DivFOp::create(b, nestedLoc, args[0], count);
          });
    }
    if (op.getKeepdim()) {
      // Each unit dimension joins the group of the next kept dimension, or
      // of the last one when it trails.
      int64_t kept = rank - reduced.count();
      SmallVector<ReassociationIndices> groups(kept);
      SmallVector<OpFoldResult> sizes;
      int64_t group = 0;
      for (int64_t i = 0; i < rank; ++i) {
        if (kept > 0)
          groups[std::min(group, kept - 1)].push_back(i);
        if (reduced.test(i)) {
          sizes.push_back(rewriter.getIndexAttr(1));
        } else {
          sizes.push_back(dimOf(rewriter, loc, input, i));
          ++group;
        }
      }
      result = expandTo(rewriter, loc, result, resultType, groups, sizes);
    }
    rewriter.replaceOp(op, result);
    return success();
  }
};

/// Lowers softmax and log_softmax stably: m = max(x), s = sum(exp(x - m)),
/// then exp(x - m) / s or (x - m) - log(s).
template <typename OpTy, bool IsLog>
struct SoftmaxLowering : public OpConversionPattern<OpTy> {
  using OpConversionPattern<OpTy>::OpConversionPattern;

  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value x = adaptor.getOperand();
    RankedTensorType type = tensorType(x);
    int64_t rank = type.getRank();
    int64_t axis = op.getAxis();
    llvm::SmallBitVector reduced(rank);
    reduced.set(axis);
    Value max = buildMax(rewriter, loc, x, reduced);
    Value sum = buildShiftedExpSum(rewriter, loc, x, max, reduced);
    SmallVector<AffineExpr> exprs;
    for (int64_t i = 0; i < rank; ++i)
      if (i != axis)
        exprs.push_back(getAffineDimExpr(i, ctx));
    AffineMap rowMap = AffineMap::get(rank, 0, exprs, ctx);
    SmallVector<AffineMap> maps = {rewriter.getMultiDimIdentityMap(rank),
                                   rowMap, rowMap};
    Value result = buildParallel(
        rewriter, loc, type, tensor::getMixedSizes(rewriter, loc, x),
        ValueRange{x, max, sum}, maps,
        [&](OpBuilder &b, Location nestedLoc, ValueRange args) -> Value {
          Value shifted = arith::SubFOp::create(b, nestedLoc, args[0], args[1]);
          if (IsLog)
            return arith::SubFOp::create(
                b, nestedLoc, shifted,
                math::LogOp::create(b, nestedLoc, args[2]));
          return arith::DivFOp::create(
              b, nestedLoc, math::ExpOp::create(b, nestedLoc, shifted),
              args[2]);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

/// Lowers rms_norm: s = sum(x^2) over the last dimension, then
/// x * rsqrt(s / n + eps) * w.
struct RmsNormLowering : public OpConversionPattern<loom::RmsNormOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::RmsNormOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value x = adaptor.getOperand();
    Value w = adaptor.getWeight();
    RankedTensorType type = tensorType(x);
    int64_t rank = type.getRank();
    Type elementType = type.getElementType();
    llvm::SmallBitVector reduced(rank);
    reduced.set(rank - 1);
    Value sumSquares = buildReduction(
        rewriter, loc, x, ValueRange{}, reduced,
        rewriter.getZeroAttr(elementType),
        [&](OpBuilder &b, Location nestedLoc, ValueRange args, Value acc) {
          Value square = arith::MulFOp::create(b, nestedLoc, args[0], args[0]);
          return arith::AddFOp::create(b, nestedLoc, acc, square);
        });
    Value count = countAsFloat(rewriter, loc, x, {rank - 1}, elementType);
    Value eps =
        floatConst(rewriter, loc, elementType, op.getEps().convertToDouble());
    // x is read whole, the sum per row, the weight along the last dim.
    SmallVector<AffineExpr> rowExprs;
    for (int64_t i = 0; i < rank - 1; ++i)
      rowExprs.push_back(getAffineDimExpr(i, ctx));
    SmallVector<AffineMap> maps = {
        rewriter.getMultiDimIdentityMap(rank),
        AffineMap::get(rank, 0, rowExprs, ctx),
        AffineMap::get(rank, 0, getAffineDimExpr(rank - 1, ctx))};
    Value result = buildParallel(
        rewriter, loc, type, tensor::getMixedSizes(rewriter, loc, x),
        ValueRange{x, sumSquares, w}, maps,
        [&](OpBuilder &b, Location nestedLoc, ValueRange args) -> Value {
          Value mean = arith::DivFOp::create(b, nestedLoc, args[1], count);
          Value scale = math::RsqrtOp::create(
              b, nestedLoc, arith::AddFOp::create(b, nestedLoc, mean, eps));
          Value normed = arith::MulFOp::create(b, nestedLoc, args[0], scale);
          return arith::MulFOp::create(b, nestedLoc, normed, args[2]);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

/// Lowers `loom.matmul`. Batch dimensions broadcast (materialized with a copy
/// when an operand stretches) and are collapsed into the single batch
/// dimension of `linalg.batch_matmul`; when the rhs has no batch of its own
/// and the lhs is not transposed, the lhs batch folds into M instead and a
/// plain `linalg.matmul` is used.
struct MatmulLowering : public OpConversionPattern<loom::MatmulOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::MatmulOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value lhs = adaptor.getLhs(), rhs = adaptor.getRhs();
    bool ta = op.getTransposeA(), tb = op.getTransposeB();
    RankedTensorType resultType = op.getType();
    RankedTensorType lhsType = tensorType(lhs), rhsType = tensorType(rhs);
    int64_t rank = resultType.getRank(), numBatch = rank - 2;
    int64_t lhsRank = lhsType.getRank(), rhsRank = rhsType.getRank();

    // Result sizes: broadcast batch, then M from lhs and N from rhs.
    ArrayRef<int64_t> batchShape = resultType.getShape().drop_back(2);
    SmallVector<std::pair<Value, int64_t>> sources;
    if (failed(findBroadcastSources(batchShape, ValueRange{lhs, rhs},
                                    /*trailing=*/2, sources)))
      return rewriter.notifyMatchFailure(op, "unknown batch size");
    SmallVector<OpFoldResult> sizes =
        sizesFromSources(rewriter, loc, batchShape, sources);
    sizes.push_back(dimOf(rewriter, loc, lhs, ta ? lhsRank - 1 : lhsRank - 2));
    sizes.push_back(dimOf(rewriter, loc, rhs, tb ? rhsRank - 2 : rhsRank - 1));
    Type elementType = resultType.getElementType();

    if (numBatch == 0) {
      rewriter.replaceOp(op, buildContraction(rewriter, loc, lhs, rhs, ta, tb,
                                              resultType, sizes));
      return success();
    }

    bool rhsShared = llvm::all_of(rhsType.getShape().drop_back(2),
                                  [](int64_t d) { return d == 1; });
    if (rhsShared && !ta) {
      // [batch..., M, K] -> [batch * M, K]; rhs [1..., K, N] -> [K, N].
      Value lhs2 = collapseLeading(rewriter, loc, lhs, 1);
      Value rhs2 = collapseLeading(rewriter, loc, rhs, 1);
      int64_t rows = tensorType(lhs2).getDimSize(0);
      auto flatType = RankedTensorType::get(
          {rows, resultType.getDimSize(rank - 1)}, elementType);
      Value product =
          buildContraction(rewriter, loc, lhs2, rhs2, false, tb, flatType,
                           {dimOf(rewriter, loc, lhs2, 0), sizes.back()});
      rewriter.replaceOp(op, expandTo(rewriter, loc, product, resultType,
                                      leadingGroup(rank - 1, rank), sizes));
      return success();
    }

    // Broadcast each operand to the full batch shape where it stretches,
    // then collapse the batch into one dimension.
    auto fullBatch = [&](Value v) -> Value {
      RankedTensorType t = tensorType(v);
      SmallVector<int64_t> shape(resultType.getShape().drop_back(2));
      shape.push_back(t.getDimSize(t.getRank() - 2));
      shape.push_back(t.getDimSize(t.getRank() - 1));
      if (ArrayRef<int64_t>(shape) == t.getShape())
        return v;
      auto fullType = RankedTensorType::get(shape, elementType);
      SmallVector<OpFoldResult> fullSizes(ArrayRef(sizes).drop_back(2));
      fullSizes.push_back(dimOf(rewriter, loc, v, t.getRank() - 2));
      fullSizes.push_back(dimOf(rewriter, loc, v, t.getRank() - 1));
      return buildElementwise(
          rewriter, loc, fullType, fullSizes, ValueRange{v},
          [](OpBuilder &, Location, ValueRange args) { return args[0]; });
    };
    Value lhs3 = collapseLeading(rewriter, loc, fullBatch(lhs), 2);
    Value rhs3 = collapseLeading(rewriter, loc, fullBatch(rhs), 2);
    auto batchedType = RankedTensorType::get({tensorType(lhs3).getDimSize(0),
                                              resultType.getDimSize(rank - 2),
                                              resultType.getDimSize(rank - 1)},
                                             elementType);
    Value product = buildContraction(
        rewriter, loc, lhs3, rhs3, ta, tb, batchedType,
        {dimOf(rewriter, loc, lhs3, 0), sizes[rank - 2], sizes[rank - 1]});
    if (numBatch > 1)
      product = expandTo(rewriter, loc, product, resultType,
                         leadingGroup(numBatch, rank), sizes);
    rewriter.replaceOp(op, product);
    return success();
  }
};

/// Lowers `loom.linear` to `linalg.matmul` with a transposed weight on x
/// flattened to [M, in], then adds the bias and restores x's leading dims.
struct LinearLowering : public OpConversionPattern<loom::LinearOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::LinearOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = adaptor.getOperand(), w = adaptor.getWeight();
    RankedTensorType resultType = op.getType();
    Type elementType = resultType.getElementType();
    int64_t rank = tensorType(x).getRank();
    SmallVector<OpFoldResult> sizes;
    for (int64_t i = 0; i + 1 < rank; ++i)
      sizes.push_back(dimOf(rewriter, loc, x, i));
    sizes.push_back(dimOf(rewriter, loc, w, 0));

    Value x2;
    if (rank == 1) {
      auto rowType =
          RankedTensorType::get({1, tensorType(x).getDimSize(0)}, elementType);
      x2 = expandTo(rewriter, loc, x, rowType, {{0, 1}},
                    {rewriter.getIndexAttr(1), dimOf(rewriter, loc, x, 0)});
    } else {
      x2 = collapseLeading(rewriter, loc, x, 1);
    }
    auto flatType = RankedTensorType::get(
        {tensorType(x2).getDimSize(0), resultType.getDimSize(rank - 1)},
        elementType);
    SmallVector<OpFoldResult> flatSizes = {dimOf(rewriter, loc, x2, 0),
                                           sizes.back()};
    Value result = buildContraction(rewriter, loc, x2, w, false, true, flatType,
                                    flatSizes);
    if (Value bias = adaptor.getBias())
      result = buildElementwise(
          rewriter, loc, flatType, flatSizes, ValueRange{result, bias},
          [](OpBuilder &b, Location nestedLoc, ValueRange args) {
            return floatOrInt<arith::AddFOp, arith::AddIOp>(b, nestedLoc, args);
          });
    if (rank == 1)
      result = tensor::CollapseShapeOp::create(
          rewriter, loc, resultType, result,
          ArrayRef<ReassociationIndices>{{0, 1}});
    else if (rank > 2)
      result = expandTo(rewriter, loc, result, resultType,
                        leadingGroup(rank - 1, rank), sizes);
    rewriter.replaceOp(op, result);
    return success();
  }
};

/// Lowers `loom.reshape` by collapsing to 1-D and expanding to the result
/// with sizes computed at run time (0 copies, -1 is the remaining count).
struct ReshapeLowering : public OpConversionPattern<loom::ReshapeOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::ReshapeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value input = adaptor.getOperand();
    RankedTensorType inType = tensorType(input);
    RankedTensorType outType = op.getType();
    if (inType == outType && inType.hasStaticShape()) {
      rewriter.replaceOp(op, input);
      return success();
    }
    int64_t inRank = inType.getRank(), outRank = outType.getRank();
    if (inRank == 0) {
      SmallVector<OpFoldResult> ones(outRank, rewriter.getIndexAttr(1));
      rewriter.replaceOp(op, expandTo(rewriter, loc, input, outType, {}, ones));
      return success();
    }
    if (outRank == 0) {
      rewriter.replaceOp(op, tensor::CollapseShapeOp::create(
                                 rewriter, loc, outType, input,
                                 ArrayRef<ReassociationIndices>{}));
      return success();
    }

    ArrayRef<int64_t> spec = op.getShape();
    SmallVector<OpFoldResult> sizes(outRank);
    OpFoldResult known = rewriter.getIndexAttr(1);
    int64_t inferred = -1;
    for (auto [i, s] : llvm::enumerate(spec)) {
      if (s == -1) {
        inferred = i;
        continue;
      }
      sizes[i] = s == 0 ? dimOf(rewriter, loc, input, i)
                        : OpFoldResult(rewriter.getIndexAttr(s));
      known = mulSizes(rewriter, loc, known, sizes[i]);
    }
    if (inferred >= 0 && !outType.isDynamicDim(inferred)) {
      sizes[inferred] = rewriter.getIndexAttr(outType.getDimSize(inferred));
    } else if (inferred >= 0) {
      OpFoldResult total = rewriter.getIndexAttr(1);
      for (int64_t i = 0; i < inRank; ++i)
        total = mulSizes(rewriter, loc, total, dimOf(rewriter, loc, input, i));
      std::optional<int64_t> t = getConstantIntValue(total);
      std::optional<int64_t> k = getConstantIntValue(known);
      if (t && k && *k != 0)
        sizes[inferred] = rewriter.getIndexAttr(*t / *k);
      else
        sizes[inferred] =
            arith::DivUIOp::create(rewriter, loc, toIndex(rewriter, loc, total),
                                   toIndex(rewriter, loc, known))
                .getResult();
    }

    Value flat = input;
    if (inRank > 1) {
      ReassociationIndices all = llvm::to_vector(llvm::seq<int64_t>(0, inRank));
      flat = tensor::CollapseShapeOp::create(
          rewriter, loc, input, ArrayRef<ReassociationIndices>{all});
    }
    // A dynamic flat size may meet a static result: cast it first.
    int64_t outCount = ShapedType::kDynamic;
    if (outType.hasStaticShape())
      outCount = outType.getNumElements();
    auto flatType = RankedTensorType::get({outCount}, outType.getElementType());
    if (tensorType(flat) != flatType)
      flat = tensor::CastOp::create(rewriter, loc, flatType, flat);
    if (outRank == 1) {
      rewriter.replaceOp(op, flat);
      return success();
    }
    ReassociationIndices all = llvm::to_vector(llvm::seq<int64_t>(0, outRank));
    rewriter.replaceOp(op,
                       expandTo(rewriter, loc, flat, outType, {all}, sizes));
    return success();
  }
};

struct TransposeLowering : public OpConversionPattern<loom::TransposeOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::TransposeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value input = adaptor.getOperand();
    ArrayRef<int64_t> perm = op.getPermutation();
    SmallVector<OpFoldResult> sizes;
    for (int64_t p : perm)
      sizes.push_back(dimOf(rewriter, loc, input, p));
    Value init = createEmpty(rewriter, loc, op.getType(), sizes);
    auto transpose =
        linalg::TransposeOp::create(rewriter, loc, input, init, perm);
    rewriter.replaceOp(op, transpose.getResult()[0]);
    return success();
  }
};

/// Lowers `loom.slice` to `tensor.extract_slice`; start and end are clamped
/// with Python's rules, at run time when the dimension is symbolic.
struct SliceLowering : public OpConversionPattern<loom::SliceOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::SliceOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value input = adaptor.getOperand();
    RankedTensorType type = tensorType(input);
    int64_t axis = op.getAxis(), step = op.getStep();
    int64_t start = op.getStart(), end = op.getEnd();
    SmallVector<OpFoldResult> offsets(type.getRank(), rewriter.getIndexAttr(0));
    SmallVector<OpFoldResult> strides(type.getRank(), rewriter.getIndexAttr(1));
    SmallVector<OpFoldResult> sizes =
        tensor::getMixedSizes(rewriter, loc, input);
    strides[axis] = rewriter.getIndexAttr(step);
    int64_t dim = type.getDimSize(axis);
    if (!ShapedType::isDynamic(dim)) {
      auto clamp = [&](int64_t v) {
        if (v < 0)
          v += dim;
        return std::clamp<int64_t>(v, 0, dim);
      };
      int64_t s = clamp(start), e = clamp(end);
      offsets[axis] = rewriter.getIndexAttr(s);
      sizes[axis] =
          rewriter.getIndexAttr(e > s ? (e - s + step - 1) / step : 0);
    } else {
      Value size = toIndex(rewriter, loc, sizes[axis]);
      Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
      auto clamp = [&](int64_t v) -> Value {
        Value c = arith::ConstantIndexOp::create(rewriter, loc, v);
        if (v >= 0)
          return arith::MinSIOp::create(rewriter, loc, c, size);
        Value fromEnd = arith::AddIOp::create(rewriter, loc, size, c);
        return arith::MaxSIOp::create(rewriter, loc, fromEnd, zero);
      };
      Value s = clamp(start), e = clamp(end);
      Value length = arith::MaxSIOp::create(
          rewriter, loc, arith::SubIOp::create(rewriter, loc, e, s), zero);
      if (step > 1) {
        Value bump = arith::ConstantIndexOp::create(rewriter, loc, step - 1);
        Value stepValue = arith::ConstantIndexOp::create(rewriter, loc, step);
        length = arith::DivUIOp::create(
            rewriter, loc, arith::AddIOp::create(rewriter, loc, length, bump),
            stepValue);
      }
      offsets[axis] = s;
      sizes[axis] = length;
    }
    rewriter.replaceOp(
        op, tensor::ExtractSliceOp::create(rewriter, loc, op.getType(), input,
                                           offsets, sizes, strides));
    return success();
  }
};

/// Lowers `loom.concat` to a chain of `tensor.insert_slice` into a
/// `tensor.empty`.
struct ConcatLowering : public OpConversionPattern<loom::ConcatOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::ConcatOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    ValueRange inputs = adaptor.getInputs();
    if (inputs.size() == 1) {
      rewriter.replaceOp(op, inputs[0]);
      return success();
    }
    int64_t axis = op.getAxis();
    SmallVector<OpFoldResult> sizes =
        tensor::getMixedSizes(rewriter, loc, inputs[0]);
    SmallVector<OpFoldResult> offsets;
    OpFoldResult offset = rewriter.getIndexAttr(0);
    for (Value input : inputs) {
      offsets.push_back(offset);
      offset =
          addSizes(rewriter, loc, offset, dimOf(rewriter, loc, input, axis));
    }
    sizes[axis] = offset;
    Value result = createEmpty(rewriter, loc, op.getType(), sizes);
    int64_t rank = op.getType().getRank();
    for (auto [input, inputOffset] : llvm::zip(inputs, offsets)) {
      SmallVector<OpFoldResult> at(rank, rewriter.getIndexAttr(0));
      at[axis] = inputOffset;
      SmallVector<OpFoldResult> strides(rank, rewriter.getIndexAttr(1));
      result = tensor::InsertSliceOp::create(
          rewriter, loc, input, result, at,
          tensor::getMixedSizes(rewriter, loc, input), strides);
    }
    rewriter.replaceOp(op, result);
    return success();
  }
};

/// Lowers `loom.gather` to a `linalg.generic` over the result that reads the
/// index, clamps it to [0, dim - 1] and extracts from the operand.
struct GatherLowering : public OpConversionPattern<loom::GatherOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::GatherOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value table = adaptor.getOperand(), indices = adaptor.getIndices();
    RankedTensorType tableType = tensorType(table);
    int64_t axis = op.getAxis();
    int64_t indexRank = tensorType(indices).getRank();
    RankedTensorType resultType = op.getType();
    int64_t rank = resultType.getRank();

    SmallVector<OpFoldResult> sizes;
    for (int64_t i = 0; i < axis; ++i)
      sizes.push_back(dimOf(rewriter, loc, table, i));
    for (int64_t i = 0; i < indexRank; ++i)
      sizes.push_back(dimOf(rewriter, loc, indices, i));
    for (int64_t i = axis + 1; i < tableType.getRank(); ++i)
      sizes.push_back(dimOf(rewriter, loc, table, i));

    Value extent = toIndex(rewriter, loc, dimOf(rewriter, loc, table, axis));
    Value last =
        arith::SubIOp::create(rewriter, loc, extent,
                              arith::ConstantIndexOp::create(rewriter, loc, 1));
    Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
    SmallVector<AffineExpr> exprs;
    for (int64_t i = 0; i < indexRank; ++i)
      exprs.push_back(getAffineDimExpr(axis + i, ctx));
    AffineMap indexMap = AffineMap::get(rank, 0, exprs, ctx);
    // An empty gathered dimension has nothing to clamp to: the result is
    // zeros then, and the table is never read.
    Value nonEmpty = arith::CmpIOp::create(
        rewriter, loc, arith::CmpIPredicate::sgt, extent, zero);
    auto branch = scf::IfOp::create(rewriter, loc, TypeRange{resultType},
                                    nonEmpty, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPointToStart(&branch.getElseRegion().front());
    Value empty = tensor::EmptyOp::create(rewriter, loc, sizes,
                                          resultType.getElementType());
    Value zeros = linalg::FillOp::create(
                      rewriter, loc,
                      ValueRange{arith::ConstantOp::create(
                          rewriter, loc,
                          rewriter.getZeroAttr(resultType.getElementType()))},
                      ValueRange{empty})
                      .getResult(0);
    scf::YieldOp::create(rewriter, loc, zeros);
    rewriter.setInsertionPointToStart(&branch.getThenRegion().front());
    Value gathered = buildParallel(
        rewriter, loc, resultType, sizes, ValueRange{indices}, {indexMap},
        [&](OpBuilder &b, Location nestedLoc, ValueRange args) -> Value {
          Value index = arith::IndexCastOp::create(b, nestedLoc,
                                                   b.getIndexType(), args[0]);
          index = arith::MaxSIOp::create(b, nestedLoc, index, zero);
          index = arith::MinSIOp::create(b, nestedLoc, index, last);
          SmallVector<Value> at;
          for (int64_t i = 0; i < axis; ++i)
            at.push_back(linalg::IndexOp::create(b, nestedLoc, i));
          at.push_back(index);
          for (int64_t i = axis + 1; i < tableType.getRank(); ++i)
            at.push_back(
                linalg::IndexOp::create(b, nestedLoc, i - 1 + indexRank));
          return tensor::ExtractOp::create(b, nestedLoc, table, at);
        });
    scf::YieldOp::create(rewriter, loc, gathered);
    rewriter.replaceOp(op, branch.getResults());
    return success();
  }
};

/// Reads a rank-0 integer tensor as an `index`.
static Value extractIndex(OpBuilder &b, Location loc, Value scalar) {
  Value element = tensor::ExtractOp::create(b, loc, scalar, ValueRange{});
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), element);
}

/// Returns `v` clamped to `[lo, hi]`; callers ensure `lo <= hi`.
static Value clampIndex(OpBuilder &b, Location loc, Value v, Value lo,
                        Value hi) {
  return arith::MinSIOp::create(b, loc, arith::MaxSIOp::create(b, loc, v, lo),
                                hi);
}

/// Flattens the leading (token) dimensions of `value` into one and keeps the
/// last `keep`; a value with no leading dimension gets a unit one. Two or
/// more dynamic leading dimensions become a `tensor.reshape` rather than a
/// `tensor.collapse_shape`: elementwise fusion would otherwise propagate the
/// collapse into the consumers as an `expand_shape` that splits a dynamic
/// size, which `expand-strided-metadata` of MLIR 22.1 cannot lower.
static Value flattenTokens(OpBuilder &b, Location loc, Value value,
                           int64_t keep) {
  RankedTensorType type = tensorType(value);
  int64_t rank = type.getRank();
  if (rank > keep) {
    int64_t split = rank - keep;
    if (llvm::count_if(type.getShape().take_front(split),
                       ShapedType::isDynamic) < 2)
      return collapseLeading(b, loc, value, keep);
    OpFoldResult tokens = b.getIndexAttr(1);
    for (int64_t i = 0; i < split; ++i)
      tokens = mulSizes(b, loc, tokens, dimOf(b, loc, value, i));
    SmallVector<int64_t> shape = {ShapedType::kDynamic};
    SmallVector<Value> shapeValues = {toIndex(b, loc, tokens)};
    for (int64_t i = split; i < rank; ++i) {
      shape.push_back(type.getDimSize(i));
      shapeValues.push_back(toIndex(b, loc, dimOf(b, loc, value, i)));
    }
    Value shapeTensor = tensor::FromElementsOp::create(b, loc, shapeValues);
    return tensor::ReshapeOp::create(
        b, loc, RankedTensorType::get(shape, type.getElementType()), value,
        shapeTensor);
  }
  SmallVector<int64_t> shape = {1};
  llvm::append_range(shape, type.getShape());
  SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1)};
  SmallVector<ReassociationIndices> groups;
  for (int64_t i = 0; i < keep; ++i) {
    sizes.push_back(dimOf(b, loc, value, i));
    groups.push_back(i == 0 ? ReassociationIndices{0, 1}
                            : ReassociationIndices{i + 1});
  }
  return expandTo(b, loc, value,
                  RankedTensorType::get(shape, type.getElementType()), groups,
                  sizes);
}

/// Undoes flattenTokens: reshapes `flat` `[N, keep...]` to `type`, whose
/// dimensions are `sizes`.
static Value unflattenTokens(OpBuilder &b, Location loc, Value flat,
                             RankedTensorType type,
                             ArrayRef<OpFoldResult> sizes, int64_t keep) {
  int64_t rank = type.getRank();
  if (rank == keep + 1)
    return flat;
  if (rank > keep + 1)
    return expandTo(b, loc, flat, type, leadingGroup(rank - keep, rank), sizes);
  SmallVector<ReassociationIndices> groups;
  for (int64_t i = 0; i < keep; ++i)
    groups.push_back(i == 0 ? ReassociationIndices{0, 1}
                            : ReassociationIndices{i + 1});
  return tensor::CollapseShapeOp::create(b, loc, type, flat, groups);
}

/// Returns the logits `[N, V]` of the tokens of `flatInput` `[N, d]` under
/// the lm-head `weight` `[V, d]`: one `linalg.matmul` with a transposed rhs,
/// which loom-cpu-matmul-to-runtime sends to the runtime's GEMM for f32.
static Value buildLmHeadLogits(OpBuilder &b, Location loc, Value flatInput,
                               Value weight) {
  RankedTensorType inputType = tensorType(flatInput);
  auto type = RankedTensorType::get(
      {inputType.getDimSize(0), tensorType(weight).getDimSize(0)},
      inputType.getElementType());
  SmallVector<OpFoldResult> sizes = {dimOf(b, loc, flatInput, 0),
                                     dimOf(b, loc, weight, 0)};
  return buildContraction(b, loc, flatInput, weight, /*transposeA=*/false,
                          /*transposeB=*/true, type, sizes);
}

/// Returns the i1 that holds when a token_logprob (or its backward) of
/// `input`, `ids`, optional `weight` and `perToken` values (shaped like ids)
/// can read its operands: the vocabulary is not empty, the leading
/// dimensions of `input` and each per-token value equal those of `ids`, and
/// the hidden size of `input` is the one of `weight`. Only dimensions that
/// are dynamic on one side are compared; the verifier checked the others.
static Value buildTokenShapesValid(OpBuilder &b, Location loc, Value input,
                                   Value ids, Value weight,
                                   ValueRange perToken) {
  RankedTensorType inputType = tensorType(input);
  RankedTensorType idsType = tensorType(ids);
  int64_t rows = idsType.getRank();
  Value vocab = toIndex(
      b, loc, weight ? dimOf(b, loc, weight, 0) : dimOf(b, loc, input, rows));
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value valid =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sgt, vocab, zero);
  auto requireEqual = [&](Value x, int64_t dx, Value y, int64_t dy) {
    if (!tensorType(x).isDynamicDim(dx) && !tensorType(y).isDynamicDim(dy))
      return;
    Value same = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                       toIndex(b, loc, dimOf(b, loc, x, dx)),
                                       toIndex(b, loc, dimOf(b, loc, y, dy)));
    valid = arith::AndIOp::create(b, loc, valid, same);
  };
  for (int64_t d = 0; d < rows; ++d) {
    requireEqual(input, d, ids, d);
    for (Value v : perToken)
      requireEqual(v, d, ids, d);
  }
  if (weight)
    requireEqual(input, inputType.getRank() - 1, weight, 1);
  return valid;
}

/// Emits the log-probability of every token of `ids` under `logits`
/// `[..., V]` (V > 0 and leading dimensions that match, checked by the
/// caller): m = max(x) and s = sum(exp((x - m) / T)) over V, then the logit
/// of each token's id read with `tensor.extract` gives (x[id] - m) / T -
/// log(s). The id is clamped into `[0, V)` for the read and an id outside
/// that range gives NaN.
static Value buildTokenLogprob(OpBuilder &b, Location loc, Value logits,
                               Value ids, double temperatureValue,
                               RankedTensorType resultType) {
  RankedTensorType logitsType = tensorType(logits);
  Type elementType = logitsType.getElementType();
  int64_t rank = logitsType.getRank();
  int64_t rows = rank - 1;
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, ids);
  Value vocab = toIndex(b, loc, dimOf(b, loc, logits, rows));
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value nan =
      floatConst(b, loc, elementType, std::numeric_limits<double>::quiet_NaN());
  Value temperature = floatConst(b, loc, elementType, temperatureValue);
  llvm::SmallBitVector reduced(rank);
  reduced.set(rows);
  // max(x / T) = max(x) / T for T > 0, so the maximum is taken unscaled.
  Value max = buildMax(b, loc, logits, reduced);
  Value sum = buildShiftedExpSum(b, loc, logits, max, reduced, temperature);
  Value last = arith::SubIOp::create(b, loc, vocab,
                                     arith::ConstantIndexOp::create(b, loc, 1));
  AffineMap identity = b.getMultiDimIdentityMap(rows);
  return buildParallel(
      b, loc, resultType, sizes, ValueRange{ids, max, sum},
      {identity, identity, identity},
      [&](OpBuilder &nb, Location nestedLoc, ValueRange args) -> Value {
        Value id = arith::IndexCastOp::create(nb, nestedLoc, nb.getIndexType(),
                                              args[0]);
        Value inRange = arith::AndIOp::create(
            nb, nestedLoc,
            arith::CmpIOp::create(nb, nestedLoc, arith::CmpIPredicate::sge, id,
                                  zero),
            arith::CmpIOp::create(nb, nestedLoc, arith::CmpIPredicate::slt, id,
                                  vocab));
        Value clamped = clampIndex(nb, nestedLoc, id, zero, last);
        SmallVector<Value> at;
        for (int64_t i = 0; i < rows; ++i)
          at.push_back(linalg::IndexOp::create(nb, nestedLoc, i));
        at.push_back(clamped);
        Value x = tensor::ExtractOp::create(nb, nestedLoc, logits, at);
        Value shifted = arith::SubFOp::create(nb, nestedLoc, x, args[1]);
        Value scaled =
            arith::DivFOp::create(nb, nestedLoc, shifted, temperature);
        Value value = arith::SubFOp::create(
            nb, nestedLoc, scaled, math::LogOp::create(nb, nestedLoc, args[2]));
        return arith::SelectOp::create(nb, nestedLoc, inRange, value, nan);
      });
}

/// Lowers `loom.token_logprob` (see buildTokenLogprob). With a `weight`, the
/// tokens are flattened to `[N, d]` and the logits `[N, V]` materialized by
/// a matmul first (the unfused path; the fused one never builds them). With
/// V = 0, leading dimensions of the input and ids that differ at run time,
/// or a hidden size that differs from the weight's, nothing is read and
/// every token is NaN.
struct TokenLogprobLowering : public OpConversionPattern<loom::TokenLogprobOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::TokenLogprobOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value input = adaptor.getInput(), ids = adaptor.getIds();
    Value weight = adaptor.getWeight();
    RankedTensorType resultType = op.getType();
    Type elementType = resultType.getElementType();
    SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(rewriter, loc, ids);
    Value valid =
        buildTokenShapesValid(rewriter, loc, input, ids, weight, ValueRange{});
    auto branch = scf::IfOp::create(rewriter, loc, TypeRange{resultType}, valid,
                                    /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(rewriter);
    // No vocabulary, or shapes that do not match: no id can be read.
    rewriter.setInsertionPointToStart(&branch.getElseRegion().front());
    Value nan = floatConst(rewriter, loc, elementType,
                           std::numeric_limits<double>::quiet_NaN());
    Value empty = createEmpty(rewriter, loc, resultType, sizes);
    Value nans = linalg::FillOp::create(rewriter, loc, ValueRange{nan},
                                        ValueRange{empty})
                     .getResult(0);
    scf::YieldOp::create(rewriter, loc, nans);

    rewriter.setInsertionPointToStart(&branch.getThenRegion().front());
    double temperature = op.getTemperature().convertToDouble();
    Value logp;
    if (!weight) {
      logp =
          buildTokenLogprob(rewriter, loc, input, ids, temperature, resultType);
    } else {
      Value flatInput = flattenTokens(rewriter, loc, input, 1);
      Value flatIds = flattenTokens(rewriter, loc, ids, 0);
      Value logits = buildLmHeadLogits(rewriter, loc, flatInput, weight);
      auto flatType = RankedTensorType::get({tensorType(flatIds).getDimSize(0)},
                                            elementType);
      Value flat = buildTokenLogprob(rewriter, loc, logits, flatIds,
                                     temperature, flatType);
      logp = unflattenTokens(rewriter, loc, flat, resultType, sizes, 0);
    }
    scf::YieldOp::create(rewriter, loc, logp);
    rewriter.replaceOp(op, branch.getResults());
    return success();
  }
};

/// Lowers `loom.token_logprob_grad` on the tokens flattened to `[N, ...]`:
/// the logits `[N, V]` (the input, or a matmul with the weight) give
/// m = max(x) and s = sum(exp((x - m) / T)), then
/// dlogits = g / T * ([v == id] - exp((x - m) / T) / s) is materialized; the
/// row of a token whose id is outside `[0, V)` is NaN (no id is ever used
/// to read). With a weight, input_grad = dlogits @ weight and weight_grad =
/// dlogits^T @ input are two matmuls (the second with a transposed lhs), both
/// in the form loom-cpu-matmul-to-runtime recognizes. Shapes that do not
/// match at run time (as for token_logprob) or an empty vocabulary give NaN
/// gradients. A weight gradient summed into a state (fuse::accumulatingAdd)
/// is added by its product to the value it is summed into, and replaces
/// that `loom.add`: the fused kernels' `accumulate`, here.
struct TokenLogprobGradLowering
    : public OpConversionPattern<loom::TokenLogprobGradOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::TokenLogprobGradOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value input = adaptor.getInput(), ids = adaptor.getIds();
    Value grad = adaptor.getGrad(), weight = adaptor.getWeight();
    RankedTensorType inputType = tensorType(input);
    Type elementType = inputType.getElementType();
    SmallVector<Type> resultTypes(op->getResultTypes());
    SmallVector<SmallVector<OpFoldResult>> resultSizes = {
        tensor::getMixedSizes(rewriter, loc, input)};
    if (weight)
      resultSizes.push_back(tensor::getMixedSizes(rewriter, loc, weight));

    // The value the weight gradient is summed into, if any.
    loom::AddOp add;
    if (weight && isa<Float32Type, Float64Type>(elementType)) {
      DominanceInfo dominance(op->getParentOfType<FunctionOpInterface>());
      add = fuse::accumulatingAdd(op, dominance);
    }
    Value accumulator;
    if (add)
      accumulator = rewriter.getRemappedValue(
          add->getOperand(add->getOperand(0) == op.getWeightGrad() ? 1 : 0));

    Value valid = buildTokenShapesValid(rewriter, loc, input, ids, weight,
                                        ValueRange{grad});
    Value nan = floatConst(rewriter, loc, elementType,
                           std::numeric_limits<double>::quiet_NaN());
    auto branch = scf::IfOp::create(rewriter, loc, resultTypes, valid,
                                    /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPointToStart(&branch.getElseRegion().front());
    SmallVector<Value> nans;
    for (auto [i, type, sizes] : llvm::enumerate(resultTypes, resultSizes)) {
      // NaN plus the accumulator is NaN, written in its place.
      Value empty =
          i == 1 && accumulator
              ? accumulator
              : createEmpty(rewriter, loc, cast<RankedTensorType>(type), sizes);
      nans.push_back(linalg::FillOp::create(rewriter, loc, ValueRange{nan},
                                            ValueRange{empty})
                         .getResult(0));
    }
    scf::YieldOp::create(rewriter, loc, nans);

    rewriter.setInsertionPointToStart(&branch.getThenRegion().front());
    Value flatInput = flattenTokens(rewriter, loc, input, 1);
    Value flatIds = flattenTokens(rewriter, loc, ids, 0);
    Value flatGrad = flattenTokens(rewriter, loc, grad, 0);
    Value logits = weight ? buildLmHeadLogits(rewriter, loc, flatInput, weight)
                          : flatInput;
    RankedTensorType logitsType = tensorType(logits);
    SmallVector<OpFoldResult> logitsSizes =
        tensor::getMixedSizes(rewriter, loc, logits);
    Value vocab = toIndex(rewriter, loc, logitsSizes[1]);
    Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
    Value temperature = floatConst(rewriter, loc, elementType,
                                   op.getTemperature().convertToDouble());
    llvm::SmallBitVector reduced(2);
    reduced.set(1);
    Value max = buildMax(rewriter, loc, logits, reduced);
    Value sum =
        buildShiftedExpSum(rewriter, loc, logits, max, reduced, temperature);
    MLIRContext *ctx = rewriter.getContext();
    AffineMap identity = rewriter.getMultiDimIdentityMap(2);
    AffineMap perToken = AffineMap::get(2, 0, getAffineDimExpr(0, ctx));
    Value dlogits = buildParallel(
        rewriter, loc, logitsType, logitsSizes,
        ValueRange{logits, flatIds, flatGrad, max, sum},
        {identity, perToken, perToken, perToken, perToken},
        [&](OpBuilder &b, Location nestedLoc, ValueRange args) -> Value {
          Value id = arith::IndexCastOp::create(b, nestedLoc, b.getIndexType(),
                                                args[1]);
          Value inRange = arith::AndIOp::create(
              b, nestedLoc,
              arith::CmpIOp::create(b, nestedLoc, arith::CmpIPredicate::sge, id,
                                    zero),
              arith::CmpIOp::create(b, nestedLoc, arith::CmpIPredicate::slt, id,
                                    vocab));
          Value v = linalg::IndexOp::create(b, nestedLoc, 1);
          Value isId = arith::CmpIOp::create(b, nestedLoc,
                                             arith::CmpIPredicate::eq, v, id);
          Value shifted = arith::SubFOp::create(b, nestedLoc, args[0], args[3]);
          Value scaled =
              arith::DivFOp::create(b, nestedLoc, shifted, temperature);
          Value prob = arith::DivFOp::create(
              b, nestedLoc, math::ExpOp::create(b, nestedLoc, scaled), args[4]);
          Value oneHot = arith::SelectOp::create(
              b, nestedLoc, isId, floatConst(b, nestedLoc, elementType, 1.0),
              floatConst(b, nestedLoc, elementType, 0.0));
          Value scale =
              arith::DivFOp::create(b, nestedLoc, args[2], temperature);
          Value value = arith::MulFOp::create(
              b, nestedLoc, scale,
              arith::SubFOp::create(b, nestedLoc, oneHot, prob));
          return arith::SelectOp::create(b, nestedLoc, inRange, value, nan);
        });

    SmallVector<Value> results;
    if (!weight) {
      results.push_back(unflattenTokens(rewriter, loc, dlogits, inputType,
                                        resultSizes[0], 1));
    } else {
      RankedTensorType flatType = tensorType(flatInput);
      SmallVector<OpFoldResult> flatSizes =
          tensor::getMixedSizes(rewriter, loc, flatInput);
      Value flatInputGrad =
          buildContraction(rewriter, loc, dlogits, weight, /*transposeA=*/false,
                           /*transposeB=*/false, flatType, flatSizes);
      results.push_back(unflattenTokens(rewriter, loc, flatInputGrad, inputType,
                                        resultSizes[0], 1));
      results.push_back(buildContraction(
          rewriter, loc, dlogits, flatInput, /*transposeA=*/true,
          /*transposeB=*/false, cast<RankedTensorType>(resultTypes[1]),
          resultSizes[1], accumulator));
    }
    scf::YieldOp::create(rewriter, loc, results);
    if (add)
      rewriter.replaceOp(add, branch.getResult(1));
    rewriter.replaceOp(op, branch.getResults());
    return success();
  }
};

/// Lowers `loom.stop_gradient` to its operand: it only matters to
/// loom-autodiff.
struct StopGradientLowering : public OpConversionPattern<loom::StopGradientOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::StopGradientOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    rewriter.replaceOp(op, adaptor.getOperand());
    return success();
  }
};

/// Lowers `loom.gae` to two `scf.for` loops on tensors: over the rows, and
/// over each row's positions from the last to the first, carrying the value
/// and the advantage of the next valid position (0 after the last one) and
/// inserting every position's advantage (0 where the mask is 0). Rows of
/// values or mask whose dynamic sizes differ from those of rewards at run
/// time give NaN everywhere instead of reading out of bounds.
struct GaeLowering : public OpConversionPattern<loom::GaeOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::GaeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value rewards = adaptor.getRewards(), values = adaptor.getValues();
    Value mask = adaptor.getMask();
    RankedTensorType resultType = op.getType();
    Type elementType = resultType.getElementType();
    SmallVector<OpFoldResult> sizes =
        tensor::getMixedSizes(rewriter, loc, rewards);
    Value valid = arith::ConstantIntOp::create(rewriter, loc, 1, 1);
    for (Value other : {values, mask})
      for (int64_t d = 0; d < 2; ++d) {
        if (!tensorType(other).isDynamicDim(d) &&
            !tensorType(rewards).isDynamicDim(d))
          continue;
        Value same = arith::CmpIOp::create(
            rewriter, loc, arith::CmpIPredicate::eq,
            toIndex(rewriter, loc, sizes[d]),
            toIndex(rewriter, loc, dimOf(rewriter, loc, other, d)));
        valid = arith::AndIOp::create(rewriter, loc, valid, same);
      }
    auto branch = scf::IfOp::create(rewriter, loc, TypeRange{resultType}, valid,
                                    /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPointToStart(&branch.getElseRegion().front());
    Value nan = floatConst(rewriter, loc, elementType,
                           std::numeric_limits<double>::quiet_NaN());
    Value nans = linalg::FillOp::create(
                     rewriter, loc, ValueRange{nan},
                     ValueRange{createEmpty(rewriter, loc, resultType, sizes)})
                     .getResult(0);
    scf::YieldOp::create(rewriter, loc, nans);

    rewriter.setInsertionPointToStart(&branch.getThenRegion().front());
    Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
    Value one = arith::ConstantIndexOp::create(rewriter, loc, 1);
    Value rows = toIndex(rewriter, loc, sizes[0]);
    Value steps = toIndex(rewriter, loc, sizes[1]);
    Value last = arith::SubIOp::create(rewriter, loc, steps, one);
    Value fzero = floatConst(rewriter, loc, elementType, 0.0);
    Value gamma =
        floatConst(rewriter, loc, elementType, op.getGamma().convertToDouble());
    Value gammaLam = floatConst(rewriter, loc, elementType,
                                op.getGamma().convertToDouble() *
                                    op.getLam().convertToDouble());
    Value init = createEmpty(rewriter, loc, resultType, sizes);
    auto rowLoop = scf::ForOp::create(
        rewriter, loc, zero, rows, one, ValueRange{init},
        [&](OpBuilder &b, Location rowLoc, Value row, ValueRange rowArgs) {
          auto stepLoop = scf::ForOp::create(
              b, rowLoc, zero, steps, one, ValueRange{rowArgs[0], fzero, fzero},
              [&](OpBuilder &nb, Location l, Value i, ValueRange args) {
                Value t = arith::SubIOp::create(nb, l, last, i);
                SmallVector<Value, 2> at = {row, t};
                Value m = tensor::ExtractOp::create(nb, l, mask, at);
                Value r = tensor::ExtractOp::create(nb, l, rewards, at);
                Value v = tensor::ExtractOp::create(nb, l, values, at);
                Value isValid = arith::CmpFOp::create(
                    nb, l, arith::CmpFPredicate::UNE, m, fzero);
                // delta = r + gamma * V_next - V; A = delta + gamma lam A_next.
                Value delta = arith::SubFOp::create(
                    nb, l,
                    arith::AddFOp::create(
                        nb, l, r, arith::MulFOp::create(nb, l, gamma, args[1])),
                    v);
                Value advantage = arith::AddFOp::create(
                    nb, l, delta,
                    arith::MulFOp::create(nb, l, gammaLam, args[2]));
                Value written =
                    arith::SelectOp::create(nb, l, isValid, advantage, fzero);
                Value updated =
                    tensor::InsertOp::create(nb, l, written, args[0], at);
                Value nextValue =
                    arith::SelectOp::create(nb, l, isValid, v, args[1]);
                Value nextAdvantage =
                    arith::SelectOp::create(nb, l, isValid, advantage, args[2]);
                scf::YieldOp::create(
                    nb, l, ValueRange{updated, nextValue, nextAdvantage});
              });
          scf::YieldOp::create(b, rowLoc, stepLoop.getResult(0));
        });
    scf::YieldOp::create(rewriter, loc, rowLoop.getResult(0));
    rewriter.replaceOp(op, branch.getResults());
    return success();
  }
};

/// Lowers `loom.dynamic_slice` to a `tensor.extract_slice` whose offset (and,
/// with a `length` operand, size) along the axis is read and clamped at run
/// time.
struct DynamicSliceLowering : public OpConversionPattern<loom::DynamicSliceOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::DynamicSliceOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value input = adaptor.getOperand();
    int64_t rank = tensorType(input).getRank();
    int64_t axis = op.getAxis();
    SmallVector<OpFoldResult> offsets(rank, rewriter.getIndexAttr(0));
    SmallVector<OpFoldResult> strides(rank, rewriter.getIndexAttr(1));
    SmallVector<OpFoldResult> sizes =
        tensor::getMixedSizes(rewriter, loc, input);
    Value dim = toIndex(rewriter, loc, sizes[axis]);
    Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
    Value start = extractIndex(rewriter, loc, adaptor.getStart());
    if (Value lengthTensor = adaptor.getLength()) {
      start = clampIndex(rewriter, loc, start, zero, dim);
      Value room = arith::SubIOp::create(rewriter, loc, dim, start);
      Value length = extractIndex(rewriter, loc, lengthTensor);
      sizes[axis] = clampIndex(rewriter, loc, length, zero, room);
    } else {
      // The verifier checked that the static dimension holds `size`.
      int64_t size = *op.getSize();
      Value last = arith::SubIOp::create(
          rewriter, loc, dim,
          arith::ConstantIndexOp::create(rewriter, loc, size));
      start = clampIndex(rewriter, loc, start, zero, last);
      sizes[axis] = rewriter.getIndexAttr(size);
    }
    offsets[axis] = start;
    rewriter.replaceOp(
        op, tensor::ExtractSliceOp::create(rewriter, loc, op.getType(), input,
                                           offsets, sizes, strides));
    return success();
  }
};

/// Lowers `loom.dynamic_update_slice` to a `tensor.insert_slice` at a clamped
/// run-time offset. Where a dimension of the update is symbolic, only the
/// part that fits the target is inserted, so no input writes out of bounds.
struct DynamicUpdateSliceLowering
    : public OpConversionPattern<loom::DynamicUpdateSliceOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::DynamicUpdateSliceOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value target = adaptor.getTarget(), update = adaptor.getUpdate();
    RankedTensorType targetType = tensorType(target);
    RankedTensorType updateType = tensorType(update);
    int64_t rank = targetType.getRank();
    int64_t axis = op.getAxis();
    // The written extent of every dimension: min(update, target), folded
    // where both are static (the verifier checked update <= target there).
    SmallVector<OpFoldResult> extents;
    SmallVector<int64_t> extentShape;
    bool wholeUpdate = true;
    for (int64_t d = 0; d < rank; ++d) {
      int64_t t = targetType.getDimSize(d), u = updateType.getDimSize(d);
      if (!ShapedType::isDynamic(u) && !ShapedType::isDynamic(t)) {
        extents.push_back(rewriter.getIndexAttr(std::min(u, t)));
        extentShape.push_back(std::min(u, t));
        wholeUpdate &= u <= t;
        continue;
      }
      Value ud = toIndex(rewriter, loc, dimOf(rewriter, loc, update, d));
      Value td = toIndex(rewriter, loc, dimOf(rewriter, loc, target, d));
      extents.push_back(
          arith::MinSIOp::create(rewriter, loc, ud, td).getResult());
      extentShape.push_back(ShapedType::kDynamic);
      wholeUpdate = false;
    }
    SmallVector<OpFoldResult> zeros(rank, rewriter.getIndexAttr(0));
    SmallVector<OpFoldResult> strides(rank, rewriter.getIndexAttr(1));
    Value source = update;
    if (!wholeUpdate)
      source = tensor::ExtractSliceOp::create(
          rewriter, loc,
          RankedTensorType::get(extentShape, updateType.getElementType()),
          update, zeros, extents, strides);
    Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
    Value last = arith::SubIOp::create(
        rewriter, loc,
        toIndex(rewriter, loc, dimOf(rewriter, loc, target, axis)),
        toIndex(rewriter, loc, extents[axis]));
    Value start = extractIndex(rewriter, loc, adaptor.getStart());
    SmallVector<OpFoldResult> offsets = zeros;
    offsets[axis] = clampIndex(rewriter, loc, start, zero, last);
    rewriter.replaceOp(op, tensor::InsertSliceOp::create(rewriter, loc, source,
                                                         target, offsets,
                                                         extents, strides));
    return success();
  }
};

/// Lowers `loom.broadcast` to a copying `linalg.generic` whose input map
/// stretches the static unit dimensions.
struct BroadcastLowering : public OpConversionPattern<loom::BroadcastOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::BroadcastOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType type = op.getType();
    if (!type.hasStaticShape() && !adaptor.getLike())
      return rewriter.notifyMatchFailure(op, "dynamic shape without 'like'");
    SmallVector<OpFoldResult> sizes;
    for (int64_t i = 0; i < type.getRank(); ++i)
      sizes.push_back(
          type.isDynamicDim(i)
              ? dimOf(rewriter, loc, adaptor.getLike(), i)
              : OpFoldResult(rewriter.getIndexAttr(type.getDimSize(i))));
    rewriter.replaceOp(
        op,
        buildElementwise(
            rewriter, loc, type, sizes, ValueRange{adaptor.getOperand()},
            [](OpBuilder &, Location, ValueRange args) { return args[0]; }));
    return success();
  }
};

/// Returns `x / y` for sizes (exact: the verifier checked divisibility).
static OpFoldResult divSizes(OpBuilder &b, Location loc, OpFoldResult x,
                             OpFoldResult y) {
  std::optional<int64_t> cx = getConstantIntValue(x);
  std::optional<int64_t> cy = getConstantIntValue(y);
  if (cx && cy && *cy != 0)
    return b.getIndexAttr(*cx / *cy);
  if (cy == 1)
    return x;
  return arith::DivUIOp::create(b, loc, toIndex(b, loc, x), toIndex(b, loc, y))
      .getResult();
}

/// The static shape that `sizes` describe, `?` where a size is a value.
static SmallVector<int64_t> staticShape(ArrayRef<OpFoldResult> sizes) {
  SmallVector<int64_t> shape;
  for (OpFoldResult size : sizes)
    shape.push_back(getConstantIntValue(size).value_or(ShapedType::kDynamic));
  return shape;
}

/// Reinterprets the contiguous tensor `value` with the shape `sizes`.
static Value reshapeTo(OpBuilder &b, Location loc, Value value,
                       ArrayRef<OpFoldResult> sizes) {
  auto type = RankedTensorType::get(staticShape(sizes),
                                    tensorType(value).getElementType());
  if (type == value.getType())
    return value;
  SmallVector<Value> shape;
  for (OpFoldResult size : sizes)
    shape.push_back(toIndex(b, loc, size));
  Value shapeTensor = tensor::FromElementsOp::create(b, loc, shape);
  return tensor::ReshapeOp::create(b, loc, type, value, shapeTensor);
}

/// Writes the body of the one-block `region` (a mask or score region of
/// `loom.attention`) at the builder's insertion point with its block
/// arguments bound to `args`, expanding `loom.csr_contains`; returns the
/// yielded value.
static Value inlineScalarRegion(OpBuilder &b, Region &region, ValueRange args) {
  Block &block = region.front();
  IRMapping map;
  map.map(block.getArguments(), args);
  for (Operation &op : block.without_terminator()) {
    if (auto csr = dyn_cast<loom::CsrContainsOp>(op)) {
      map.map(csr.getResult(),
              fuse::buildCsrContains(b, csr.getLoc(),
                                     map.lookupOrDefault(csr.getIndptr()),
                                     map.lookupOrDefault(csr.getIndices()),
                                     map.lookupOrDefault(csr.getRow()),
                                     map.lookupOrDefault(csr.getColumn())));
      continue;
    }
    b.clone(op, map);
  }
  return map.lookupOrDefault(block.getTerminator()->getOperand(0));
}

/// Lowers `loom.attention` the textbook way, materializing the scores: with
/// G = Hq / Hkv query heads per key/value head, q is read as [B * Hkv,
/// G * Sq, Dk] so that one batched product gives the scores [B, Hq, Sq,
/// Skv] of every query head against its own key/value head; one
/// `linalg.generic` scales them and applies the score and mask regions (-inf
/// where hidden), then the row maximum, exp, row sum, log-sum-exp, the
/// product with v and the normalization follow. A row with no visible key
/// (maximum -inf) gets output 0 and lse -inf.
struct AttentionLowering : public OpConversionPattern<loom::AttentionOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(loom::AttentionOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value q = adaptor.getQ(), k = adaptor.getK(), v = adaptor.getV();
    ValueRange captures = adaptor.getCaptures();
    for (Region *region : {&op.getMask(), &op.getScore()})
      if (!region->empty() && !region->hasOneBlock())
        return rewriter.notifyMatchFailure(op, "region with several blocks");
    RankedTensorType outType = tensorType(op.getOut());
    RankedTensorType lseType = tensorType(op.getLse());
    Type element = outType.getElementType();
    auto floatType = cast<FloatType>(element);

    auto fromType = [&](RankedTensorType type, int64_t d, Value source,
                        int64_t sd) -> OpFoldResult {
      if (!type.isDynamicDim(d))
        return rewriter.getIndexAttr(type.getDimSize(d));
      return dimOf(rewriter, loc, source, sd);
    };
    OpFoldResult batch = fromType(outType, 0, q, 0);
    OpFoldResult hq = fromType(outType, 1, q, 1);
    OpFoldResult sq = fromType(outType, 2, q, 2);
    OpFoldResult dv = fromType(outType, 3, v, 3);
    OpFoldResult dk = dimOf(rewriter, loc, q, 3);
    OpFoldResult hkv = dimOf(rewriter, loc, k, 1);
    OpFoldResult skv = dimOf(rewriter, loc, k, 2);
    OpFoldResult groups = divSizes(rewriter, loc, hq, hkv);
    OpFoldResult rows = mulSizes(rewriter, loc, batch, hkv);
    OpFoldResult queries = mulSizes(rewriter, loc, groups, sq);

    // Raw scores q . k^T as [B * Hkv, G * Sq, Skv] = [B, Hq, Sq, Skv].
    Value q3 = reshapeTo(rewriter, loc, q, {rows, queries, dk});
    Value k3 = reshapeTo(rewriter, loc, k, {rows, skv, dk});
    Value v3 = reshapeTo(rewriter, loc, v, {rows, skv, dv});
    SmallVector<OpFoldResult> flatSizes = {rows, queries, skv};
    auto flatType = RankedTensorType::get(staticShape(flatSizes), element);
    Value raw = buildContraction(rewriter, loc, q3, k3, false, true, flatType,
                                 flatSizes);
    SmallVector<OpFoldResult> scoreSizes = {batch, hq, sq, skv};
    Value scores = reshapeTo(rewriter, loc, raw, scoreSizes);
    auto scoreType = tensorType(scores);

    // scale, score region, mask region: -inf where hidden.
    Value scale =
        floatConst(rewriter, loc, element, op.getScale().convertToDouble());
    Value negInf = arith::ConstantOp::create(
        rewriter, loc,
        rewriter.getFloatAttr(
            element, APFloat::getInf(floatType.getFloatSemantics(), true)));
    Region &maskRegion = op.getMask(), &scoreRegion = op.getScore();
    Value masked = buildParallel(
        rewriter, loc, scoreType, scoreSizes, ValueRange{scores},
        {rewriter.getMultiDimIdentityMap(4)},
        [&](OpBuilder &b, Location nl, ValueRange args) -> Value {
          Value s = arith::MulFOp::create(b, nl, args[0], scale);
          SmallVector<Value> idx;
          for (int64_t d = 0; d < 4; ++d)
            idx.push_back(linalg::IndexOp::create(b, nl, d));
          if (!scoreRegion.empty()) {
            SmallVector<Value> regionArgs(idx);
            regionArgs.push_back(s);
            llvm::append_range(regionArgs, captures);
            s = inlineScalarRegion(b, scoreRegion, regionArgs);
          }
          if (!maskRegion.empty()) {
            SmallVector<Value> regionArgs(idx);
            llvm::append_range(regionArgs, captures);
            Value visible = inlineScalarRegion(b, maskRegion, regionArgs);
            s = arith::SelectOp::create(b, nl, visible, s, negInf);
          }
          return s;
        });

    // Row maximum; a fully hidden row (-inf) shifts by 0 instead, so that
    // every exp is exp(-inf) = 0 and no NaN appears.
    llvm::SmallBitVector lastAxis(4);
    lastAxis.set(3);
    Value max = buildMax(rewriter, loc, masked, lastAxis);
    Value zero = floatConst(rewriter, loc, element, 0.0);
    SmallVector<OpFoldResult> rowSizes = {batch, hq, sq};
    Value shift = buildElementwise(
        rewriter, loc, lseType, rowSizes, ValueRange{max},
        [&](OpBuilder &b, Location nl, ValueRange args) -> Value {
          Value hidden = arith::CmpFOp::create(b, nl, arith::CmpFPredicate::OEQ,
                                               args[0], negInf);
          return arith::SelectOp::create(b, nl, hidden, zero, args[0]);
        });
    AffineMap rowMap =
        AffineMap::get(4, 0,
                       {getAffineDimExpr(0, ctx), getAffineDimExpr(1, ctx),
                        getAffineDimExpr(2, ctx)},
                       ctx);
    Value probs = buildParallel(
        rewriter, loc, scoreType, scoreSizes, ValueRange{masked, shift},
        {rewriter.getMultiDimIdentityMap(4), rowMap},
        [&](OpBuilder &b, Location nl, ValueRange args) -> Value {
          return math::ExpOp::create(
              b, nl, arith::SubFOp::create(b, nl, args[0], args[1]));
        });
    Value sum = buildReduction(
        rewriter, loc, probs, ValueRange{}, lastAxis,
        rewriter.getZeroAttr(element),
        [&](OpBuilder &b, Location nl, ValueRange args, Value acc) {
          return arith::AddFOp::create(b, nl, acc, args[0]);
        });
    Value lse = buildElementwise(
        rewriter, loc, lseType, rowSizes, ValueRange{max, shift, sum},
        [&](OpBuilder &b, Location nl, ValueRange args) -> Value {
          Value hidden = arith::CmpFOp::create(b, nl, arith::CmpFPredicate::OEQ,
                                               args[0], negInf);
          Value log = arith::AddFOp::create(
              b, nl, args[1], math::LogOp::create(b, nl, args[2]));
          return arith::SelectOp::create(b, nl, hidden, negInf, log);
        });

    // Unnormalized output exp(s - m) . v, then divided by the row sum (0
    // for a fully hidden row).
    Value p3 = reshapeTo(rewriter, loc, probs, flatSizes);
    SmallVector<OpFoldResult> flatOutSizes = {rows, queries, dv};
    auto flatOutType =
        RankedTensorType::get(staticShape(flatOutSizes), element);
    Value product = buildContraction(rewriter, loc, p3, v3, false, false,
                                     flatOutType, flatOutSizes);
    SmallVector<OpFoldResult> outSizes = {batch, hq, sq, dv};
    Value unnormalized = reshapeTo(rewriter, loc, product, outSizes);
    Value out = buildParallel(
        rewriter, loc, outType, outSizes, ValueRange{unnormalized, sum},
        {rewriter.getMultiDimIdentityMap(4), rowMap},
        [&](OpBuilder &b, Location nl, ValueRange args) -> Value {
          Value seen = arith::CmpFOp::create(b, nl, arith::CmpFPredicate::OGT,
                                             args[1], zero);
          Value ratio = arith::DivFOp::create(b, nl, args[0], args[1]);
          return arith::SelectOp::create(b, nl, seen, ratio, zero);
        });
    rewriter.replaceOp(op, ValueRange{out, lse});
    return success();
  }
};

struct ConvertLoomToLinalgPass
    : public loom::impl::ConvertLoomToLinalgPassBase<ConvertLoomToLinalgPass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    ConversionTarget target(*ctx);
    target.addIllegalDialect<loom::LoomDialect>();
    target.addLegalDialect<arith::ArithDialect, linalg::LinalgDialect,
                           math::MathDialect, scf::SCFDialect,
                           tensor::TensorDialect>();
    RewritePatternSet patterns(ctx);
    loom::populateLoomToLinalgPatterns(patterns);
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::loom::populateLoomToLinalgPatterns(RewritePatternSet &patterns) {
  MLIRContext *ctx = patterns.getContext();
  using namespace mlir::loom;
  patterns.add<ElementwiseLowering<AddOp>, ElementwiseLowering<SubOp>,
               ElementwiseLowering<MulOp>, ElementwiseLowering<DivOp>,
               ElementwiseLowering<MaxOp>, ElementwiseLowering<MinOp>,
               ElementwiseLowering<PowOp>, ElementwiseLowering<AndOp>,
               ElementwiseLowering<OrOp>, ElementwiseLowering<CmpOp>,
               ElementwiseLowering<SelectOp>, ElementwiseLowering<NegOp>,
               ElementwiseLowering<AbsOp>, ElementwiseLowering<ExpOp>,
               ElementwiseLowering<LogOp>, ElementwiseLowering<TanhOp>,
               ElementwiseLowering<SigmoidOp>, ElementwiseLowering<SiluOp>,
               ElementwiseLowering<GeluOp>, ElementwiseLowering<RsqrtOp>,
               ElementwiseLowering<SqrtOp>, ElementwiseLowering<SinOp>,
               ElementwiseLowering<CosOp>, ElementwiseLowering<NotOp>,
               ElementwiseLowering<CastOp>, ElementwiseLowering<KlOp>>(ctx);
  patterns.add<ReduceLowering<SumOp, ReduceKind::Sum>,
               ReduceLowering<MeanOp, ReduceKind::Mean>,
               ReduceLowering<ReduceMaxOp, ReduceKind::Max>,
               ReduceLowering<ReduceMinOp, ReduceKind::Min>,
               SoftmaxLowering<SoftmaxOp, /*IsLog=*/false>,
               SoftmaxLowering<LogSoftmaxOp, /*IsLog=*/true>>(ctx);
  patterns
      .add<ConstantLowering, IotaLowering, RmsNormLowering, MatmulLowering,
           LinearLowering, ReshapeLowering, TransposeLowering, SliceLowering,
           ConcatLowering, GatherLowering, TokenLogprobLowering,
           TokenLogprobGradLowering, StopGradientLowering, GaeLowering,
           BroadcastLowering, DynamicSliceLowering, DynamicUpdateSliceLowering,
           AttentionLowering>(ctx);
}
