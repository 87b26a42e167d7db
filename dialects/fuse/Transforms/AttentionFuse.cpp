//===- AttentionFuse.cpp - Attention as one fused kernel --------*- C++ -*-===//
//
// This file implements loom-fuse-attention (see Passes.td): `loom.attention`
// and the attention composite written with elementary `loom` ops become
// `fuse.attention`, whose regions hold only scalar code (`loom.csr_contains`
// is expanded into a binary search).
//
//===----------------------------------------------------------------------===//

#include "dialects/fuse/IR/FuseOps.h"
#include "dialects/fuse/Transforms/Passes.h"
#include "dialects/fuse/Transforms/Transforms.h"
#include "dialects/loom/IR/LoomOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>

namespace mlir::fuse {
#define GEN_PASS_DEF_ATTENTIONFUSEPASS
#include "dialects/fuse/Transforms/Passes.h.inc"
} // namespace mlir::fuse

using namespace mlir;

//===----------------------------------------------------------------------===//
// loom.csr_contains as scalar code
//===----------------------------------------------------------------------===//

Value fuse::buildCsrContains(OpBuilder &b, Location loc, Value indptr,
                             Value indices, Value row, Value column) {
  Type indexType = b.getIndexType();
  Value c0 = arith::ConstantIndexOp::create(b, loc, 0);
  Value c1 = arith::ConstantIndexOp::create(b, loc, 1);
  Value rows1 = tensor::DimOp::create(b, loc, indptr, c0);
  Value edges = tensor::DimOp::create(b, loc, indices, c0);
  Value next = arith::AddIOp::create(b, loc, row, c1);
  // 0 <= row and row + 1 < dim(indptr): both reads of indptr are in bounds.
  Value rowOk = arith::AndIOp::create(
      b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, row, c0),
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, next, rows1));
  auto ifOp = scf::IfOp::create(b, loc, TypeRange{b.getI1Type()}, rowOk,
                                /*withElseRegion=*/true);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    auto load = [&](Value tensor, Value position) -> Value {
      Value x = tensor::ExtractOp::create(b, loc, tensor, position);
      return arith::IndexCastOp::create(b, loc, indexType, x);
    };
    // The row's positions, clamped to the indices tensor.
    Value lo = arith::MaxSIOp::create(b, loc, load(indptr, row), c0);
    Value hi = arith::MinSIOp::create(b, loc, load(indptr, next), edges);
    Value notFound = arith::ConstantIntOp::create(b, loc, b.getI1Type(), 0);
    // Binary search of the sorted columns [lo, hi); stops when found.
    auto search = scf::WhileOp::create(
        b, loc, TypeRange{indexType, indexType, b.getI1Type()},
        ValueRange{lo, hi, notFound},
        [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value open = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::slt,
                                             args[0], args[1]);
          Value missing = arith::XOrIOp::create(
              nb, nl, args[2],
              arith::ConstantIntOp::create(nb, nl, nb.getI1Type(), 1));
          Value go = arith::AndIOp::create(nb, nl, open, missing);
          scf::ConditionOp::create(nb, nl, go, args);
        },
        [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value lo = args[0], hi = args[1];
          Value half = arith::ShRUIOp::create(
              nb, nl, arith::SubIOp::create(nb, nl, hi, lo),
              arith::ConstantIndexOp::create(nb, nl, 1));
          Value mid = arith::AddIOp::create(nb, nl, lo, half);
          Value x = tensor::ExtractOp::create(nb, nl, indices, mid);
          x = arith::IndexCastOp::create(nb, nl, nb.getIndexType(), x);
          Value eq = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq, x,
                                           column);
          Value lt = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::slt, x,
                                           column);
          Value one = arith::ConstantIndexOp::create(nb, nl, 1);
          Value newLo = arith::SelectOp::create(
              nb, nl, lt, arith::AddIOp::create(nb, nl, mid, one), lo);
          Value newHi = arith::SelectOp::create(nb, nl, lt, hi, mid);
          scf::YieldOp::create(nb, nl, ValueRange{newLo, newHi, eq});
        });
    scf::YieldOp::create(b, loc, search.getResult(2));
  }
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getElseRegion().front());
    scf::YieldOp::create(
        b, loc,
        ValueRange{arith::ConstantIntOp::create(b, loc, b.getI1Type(), 0)});
  }
  return ifOp.getResult(0);
}

void fuse::expandCsrContains(RewriterBase &rewriter, Region &region) {
  SmallVector<loom::CsrContainsOp> ops;
  region.walk([&](loom::CsrContainsOp op) { ops.push_back(op); });
  for (loom::CsrContainsOp op : ops) {
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPoint(op);
    Value result =
        buildCsrContains(rewriter, op.getLoc(), op.getIndptr(), op.getIndices(),
                         op.getRow(), op.getColumn());
    rewriter.replaceOp(op, result);
  }
}

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

namespace {

RankedTensorType tensorOf(Value value) {
  return cast<RankedTensorType>(value.getType());
}

/// A `tensor.empty` of `type` whose dynamic dimension `d` is dimension
/// `sources[d].second` of `sources[d].first`.
Value emptyLike(OpBuilder &b, Location loc, RankedTensorType type,
                ArrayRef<std::pair<Value, int64_t>> sources) {
  SmallVector<Value> dynamic;
  for (auto [d, size] : llvm::enumerate(type.getShape()))
    if (ShapedType::isDynamic(size))
      dynamic.push_back(
          tensor::DimOp::create(b, loc, sources[d].first, sources[d].second));
  return tensor::EmptyOp::create(b, loc, type.getShape(), type.getElementType(),
                                 dynamic);
}

/// Creates `fuse.attention` on rank-4 q, k, v with inits shaped after q and
/// v; `outType` and `lseType` are the result types.
fuse::AttentionOp createFused(OpBuilder &b, Location loc, Value q, Value k,
                              Value v, ValueRange captures,
                              RankedTensorType outType,
                              RankedTensorType lseType, FloatAttr scale) {
  Value outInit = emptyLike(b, loc, outType, {{q, 0}, {q, 1}, {q, 2}, {v, 3}});
  Value lseInit = emptyLike(b, loc, lseType, {{q, 0}, {q, 1}, {q, 2}});
  return fuse::AttentionOp::create(b, loc, TypeRange{outType, lseType}, q, k, v,
                                   captures, outInit, lseInit, scale);
}

/// Rewrites every `loom.yield` terminator of `region` into `fuse.yield`.
void retargetYields(RewriterBase &rewriter, Region &region) {
  for (Block &block : region) {
    auto yield = dyn_cast<loom::YieldOp>(block.getTerminator());
    if (!yield)
      continue;
    rewriter.setInsertionPoint(yield);
    rewriter.replaceOpWithNewOp<fuse::YieldOp>(yield, yield.getValue());
  }
}

//===----------------------------------------------------------------------===//
// loom.attention
//===----------------------------------------------------------------------===//

/// `loom.attention` becomes `fuse.attention` with the same regions.
struct AttentionOpToFusePattern : public OpRewritePattern<loom::AttentionOp> {
  AttentionOpToFusePattern(MLIRContext *ctx, bool gpuKernelOnly)
      : OpRewritePattern(ctx), gpuKernelOnly(gpuKernelOnly) {}

  LogicalResult matchAndRewrite(loom::AttentionOp op,
                                PatternRewriter &rewriter) const override {
    if (gpuKernelOnly &&
        !fuse::gpuAttentionUnsupported(
             tensorOf(op.getQ()).getElementType(),
             tensorOf(op.getQ()).getDimSize(3),
             tensorOf(op.getV()).getDimSize(3))
             .empty())
      return rewriter.notifyMatchFailure(op, "not for the GPU kernel");
    auto fused = createFused(rewriter, op.getLoc(), op.getQ(), op.getK(),
                             op.getV(), op.getCaptures(), tensorOf(op.getOut()),
                             tensorOf(op.getLse()), op.getScaleAttr());
    for (auto [from, to] : {std::pair(&op.getMask(), &fused.getMask()),
                            std::pair(&op.getScore(), &fused.getScore())}) {
      rewriter.inlineRegionBefore(*from, *to, to->end());
      retargetYields(rewriter, *to);
      fuse::expandCsrContains(rewriter, *to);
    }
    rewriter.replaceOp(op, fused.getResults());
    return success();
  }

  bool gpuKernelOnly;
};

//===----------------------------------------------------------------------===//
// The composite softmax(q . k^T * s + m) . v
//===----------------------------------------------------------------------===//

/// The value of a splat float constant, or nothing.
std::optional<double> splatFloat(Value value) {
  auto constant = value.getDefiningOp<loom::ConstantOp>();
  if (!constant)
    return std::nullopt;
  auto dense = dyn_cast<DenseFPElementsAttr>(constant.getValue());
  if (!dense || !dense.isSplat())
    return std::nullopt;
  return dense.getSplatValue<APFloat>().convertToDouble();
}

/// Matches `x * c`, `c * x` or `x / c` with `c` a splat float constant that
/// does not change `x`'s shape; returns x and the factor.
std::optional<std::pair<Value, double>> peelScale(Value value) {
  Operation *def = value.getDefiningOp();
  if (!def || !isa<loom::MulOp, loom::DivOp>(def))
    return std::nullopt;
  Value lhs = def->getOperand(0), rhs = def->getOperand(1);
  auto scaled = [&](Value x, Value c,
                    bool divide) -> std::optional<std::pair<Value, double>> {
    std::optional<double> factor = splatFloat(c);
    if (!factor || x.getType() != value.getType() || (divide && *factor == 0.0))
      return std::nullopt;
    return std::pair(x, divide ? 1.0 / *factor : *factor);
  };
  if (isa<loom::DivOp>(def))
    return scaled(lhs, rhs, true);
  if (auto r = scaled(lhs, rhs, false))
    return r;
  return scaled(rhs, lhs, false);
}

/// What the composite computes, in the terms of `fuse.attention`.
struct Composite {
  Value q, k, v;
  double scale = 1.0;
  /// An `i1` tensor: where false, the key is hidden.
  Value boolMask;
  /// A float tensor added to the scaled scores.
  Value additive;
};

/// Matches `q' @ k^T` (transpose_b, or a loom.transpose of the last two axes
/// of k) with q' optionally scaled by a constant, into `c`.
LogicalResult matchScores(Value scores, Composite &c) {
  double factor = 1.0;
  if (auto peeled = peelScale(scores)) {
    if (!peeled->first.hasOneUse())
      return failure();
    scores = peeled->first;
    factor = peeled->second;
  }
  auto matmul = scores.getDefiningOp<loom::MatmulOp>();
  if (!matmul || matmul.getTransposeA())
    return failure();
  int64_t rank = tensorOf(scores).getRank();
  Value k = matmul.getRhs();
  if (!matmul.getTransposeB()) {
    auto transpose = k.getDefiningOp<loom::TransposeOp>();
    if (!transpose)
      return failure();
    SmallVector<int64_t> swapLast;
    for (int64_t i = 0; i < rank; ++i)
      swapLast.push_back(i);
    std::swap(swapLast[rank - 1], swapLast[rank - 2]);
    if (transpose.getPermutation() != ArrayRef<int64_t>(swapLast))
      return failure();
    k = transpose.getOperand();
  }
  Value q = matmul.getLhs();
  if (auto peeled = peelScale(q)) {
    q = peeled->first;
    factor *= peeled->second;
  }
  c.q = q;
  c.k = k;
  c.scale = factor;
  return success();
}

/// The mask `select(b, 0, -inf)`: returns b.
Value selectMask(Value value) {
  auto select = value.getDefiningOp<loom::SelectOp>();
  if (!select)
    return {};
  std::optional<double> zero = splatFloat(select.getOnTrue());
  std::optional<double> hidden = splatFloat(select.getOnFalse());
  if (!zero || *zero != 0.0 || !hidden || !std::isinf(*hidden) || *hidden > 0)
    return {};
  return select.getCond();
}

/// Matches the whole composite ending in `pv`; fails without changing IR.
LogicalResult matchComposite(loom::MatmulOp pv, Composite &c) {
  if (pv.getTransposeA() || pv.getTransposeB())
    return failure();
  auto type = tensorOf(pv.getResult());
  int64_t rank = type.getRank();
  if ((rank != 3 && rank != 4) || !isa<FloatType>(type.getElementType()))
    return failure();
  auto softmax = pv.getLhs().getDefiningOp<loom::SoftmaxOp>();
  if (!softmax || !softmax->hasOneUse() ||
      static_cast<int64_t>(softmax.getAxis()) != rank - 1)
    return failure();
  Value x = softmax.getOperand();
  RankedTensorType scoresType = tensorOf(x);
  if (!x.hasOneUse())
    return failure();

  // Peel the mask; what is left must be the scaled product.
  Value scores = x;
  if (auto add = x.getDefiningOp<loom::AddOp>()) {
    Composite attempt = c;
    for (auto [chain, m] : {std::pair(add.getLhs(), add.getRhs()),
                            std::pair(add.getRhs(), add.getLhs())}) {
      if (chain.getType() != scoresType || !chain.hasOneUse() ||
          failed(matchScores(chain, attempt)))
        continue;
      scores = chain;
      if (Value b = selectMask(m))
        attempt.boolMask = b;
      else
        attempt.additive = m;
      break;
    }
    if (scores == x)
      return failure();
    c = attempt;
  } else if (auto select = x.getDefiningOp<loom::SelectOp>()) {
    std::optional<double> hidden = splatFloat(select.getOnFalse());
    Value chain = select.getOnTrue();
    if (!hidden || !std::isinf(*hidden) || *hidden > 0 ||
        chain.getType() != scoresType || !chain.hasOneUse() ||
        failed(matchScores(chain, c)))
      return failure();
    c.boolMask = select.getCond();
  } else if (failed(matchScores(x, c))) {
    return failure();
  }
  c.v = pv.getRhs();

  // fuse.attention's operand shapes: equal batch, key/value heads equal to
  // the query heads or 1 (rank 4); for rank 3 the leading dimension is the
  // heads of one batch row.
  RankedTensorType q = tensorOf(c.q), k = tensorOf(c.k), v = tensorOf(c.v);
  if (q.getRank() != rank || k.getRank() != rank || v.getRank() != rank ||
      k.getElementType() != type.getElementType() ||
      q.getElementType() != type.getElementType())
    return failure();
  int64_t heads = rank - 3;
  if (k.getDimSize(heads) != v.getDimSize(heads) ||
      (k.getDimSize(heads) != q.getDimSize(heads) && k.getDimSize(heads) != 1))
    return failure();
  if (rank == 4 && (k.getDimSize(0) != q.getDimSize(0) ||
                    v.getDimSize(0) != q.getDimSize(0)))
    return failure();
  if (k.getDimSize(rank - 2) != v.getDimSize(rank - 2))
    return failure();
  // The scores must be exactly q . k^T, not a broadcast of it.
  SmallVector<int64_t> expected(q.getShape().drop_back());
  expected.push_back(k.getDimSize(rank - 2));
  if (scoresType.getShape() != ArrayRef<int64_t>(expected))
    return failure();
  return success();
}

/// Indices of a tensor of `type` read at logical position `idx` of the
/// scores (`shape`): trailing dimensions align, a static 1 facing a larger
/// dimension reads 0.
SmallVector<Value> broadcastIndices(OpBuilder &b, Location loc,
                                    RankedTensorType type,
                                    ArrayRef<int64_t> shape, ValueRange idx) {
  int64_t offset = shape.size() - type.getRank();
  SmallVector<Value> result;
  Value zero;
  for (int64_t d = 0; d < type.getRank(); ++d) {
    if (type.getDimSize(d) == 1 && shape[d + offset] != 1) {
      if (!zero)
        zero = arith::ConstantIndexOp::create(b, loc, 0);
      result.push_back(zero);
    } else {
      result.push_back(idx[d + offset]);
    }
  }
  return result;
}

/// `softmax(q . k^T * s + m, axis=-1) . v` becomes `fuse.attention`.
struct CompositeToFusePattern : public OpRewritePattern<loom::MatmulOp> {
  CompositeToFusePattern(MLIRContext *ctx, bool gpuKernelOnly)
      : OpRewritePattern(ctx), gpuKernelOnly(gpuKernelOnly) {}

  bool gpuKernelOnly;

  LogicalResult matchAndRewrite(loom::MatmulOp op,
                                PatternRewriter &rewriter) const override {
    Composite c;
    if (failed(matchComposite(op, c)))
      return rewriter.notifyMatchFailure(op, "not an attention composite");
    if (gpuKernelOnly &&
        !fuse::gpuAttentionUnsupported(
             op.getType().getElementType(),
             tensorOf(c.q).getShape().back(), tensorOf(c.v).getShape().back())
             .empty())
      return rewriter.notifyMatchFailure(op, "not for the GPU kernel");
    Location loc = op.getLoc();
    RankedTensorType type = op.getType();
    int64_t rank = type.getRank();
    Type element = type.getElementType();
    auto scoresShape = tensorOf(op.getLhs()).getShape();

    Value q = c.q, k = c.k, v = c.v;
    RankedTensorType outType = type;
    if (rank == 3) {
      // [N, S, D] is [1, N, S, D]: one batch row of N heads.
      auto unsqueeze = [&](Value x) -> Value {
        RankedTensorType t = tensorOf(x);
        SmallVector<int64_t> shape = {1};
        llvm::append_range(shape, t.getShape());
        SmallVector<OpFoldResult> sizes = {rewriter.getIndexAttr(1)};
        for (int64_t d = 0; d < 3; ++d)
          sizes.push_back(tensor::getMixedSize(rewriter, loc, x, d));
        return tensor::ExpandShapeOp::create(
            rewriter, loc, RankedTensorType::get(shape, element), x,
            SmallVector<ReassociationIndices>{{0, 1}, {2}, {3}}, sizes);
      };
      q = unsqueeze(q);
      k = unsqueeze(k);
      v = unsqueeze(v);
      SmallVector<int64_t> shape = {1};
      llvm::append_range(shape, type.getShape());
      outType = RankedTensorType::get(shape, element);
    }
    auto outShape = outType.getShape();
    auto lseType = RankedTensorType::get(outShape.drop_back(), element);
    SmallVector<Value> captures;
    if (c.boolMask)
      captures.push_back(c.boolMask);
    if (c.additive)
      captures.push_back(c.additive);
    auto fused = createFused(rewriter, loc, q, k, v, captures, outType, lseType,
                             rewriter.getF64FloatAttr(c.scale));

    // The region reads the capture at the scores' position: (b, h, i, j)
    // for rank 4, (h, i, j) for rank 3.
    Type indexType = rewriter.getIndexType();
    auto makeBlock = [&](Region &region, bool withScore) {
      Block *block = rewriter.createBlock(&region);
      SmallVector<Type> types(4, indexType);
      if (withScore)
        types.push_back(element);
      for (Value capture : captures)
        types.push_back(capture.getType());
      for (Type t : types)
        block->addArgument(t, loc);
      rewriter.setInsertionPointToStart(block);
      return block;
    };
    auto read = [&](Block *block, unsigned captureArg) -> Value {
      Value capture = block->getArgument(captureArg);
      ValueRange idx = block->getArguments().take_front(4).drop_front(4 - rank);
      return tensor::ExtractOp::create(
          rewriter, loc, capture,
          broadcastIndices(rewriter, loc, tensorOf(capture), scoresShape, idx));
    };
    if (c.boolMask) {
      Block *block = makeBlock(fused.getMask(), false);
      fuse::YieldOp::create(rewriter, loc, read(block, 4));
    }
    if (c.additive) {
      Block *block = makeBlock(fused.getScore(), true);
      Value m = read(block, 5);
      Value s = arith::AddFOp::create(rewriter, loc, block->getArgument(4), m);
      fuse::YieldOp::create(rewriter, loc, s);
    }
    rewriter.setInsertionPointAfter(fused);
    Value out = fused.getResult(0);
    if (rank == 3)
      out = tensor::CollapseShapeOp::create(
          rewriter, loc, type, out,
          SmallVector<ReassociationIndices>{{0, 1}, {2}, {3}});
    rewriter.replaceOp(op, out);
    return success();
  }
};

struct AttentionFusePass
    : public fuse::impl::AttentionFusePassBase<AttentionFusePass> {
  using AttentionFusePassBase::AttentionFusePassBase;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    fuse::populateAttentionFusePatterns(patterns, gpuKernelOnly);
    // Folding and region simplification are left to the canonicalizer
    // that follows in the pipeline.
    GreedyRewriteConfig config;
    config.enableFolding(false);
    config.setRegionSimplificationLevel(GreedySimplifyRegionLevel::Disabled);
    if (failed(
            applyPatternsGreedily(getOperation(), std::move(patterns), config)))
      return signalPassFailure();
  }
};

} // namespace

void fuse::populateAttentionFusePatterns(RewritePatternSet &patterns,
                                         bool gpuKernelOnly) {
  patterns.add<AttentionOpToFusePattern, CompositeToFusePattern>(
      patterns.getContext(), gpuKernelOnly);
}

std::string fuse::gpuAttentionUnsupported(Type element, int64_t d,
                                          int64_t dv) {
  if (!isa<Float16Type, BFloat16Type>(element)) {
    std::string name;
    llvm::raw_string_ostream os(name);
    element.print(os);
    return "reads " + name +
           "; the GPU attention kernel reads f16 or bf16 (compile with "
           "--attention=unfused, or give the model f16 or bf16 q, k, v)";
  }
  for (int64_t size : {d, dv})
    if (ShapedType::isDynamic(size) || size % 16 != 0 || size > 128)
      return "has head dims " +
             (ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d)) +
             " and " +
             (ShapedType::isDynamic(dv) ? std::string("?")
                                        : std::to_string(dv)) +
             "; the GPU attention kernel needs static multiples of 16 up "
             "to 128 (compile with --attention=unfused)";
  return "";
}
