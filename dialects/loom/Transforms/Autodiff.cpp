//===- Autodiff.cpp - Reverse-mode differentiation of loom ------*- C++ -*-===//
//
// This file implements loom-autodiff: every `loom.grad` becomes the adjoint
// computation of its loss with respect to its values, built from one
// derivative rule per op (`buildAdjoints` below). Rules are written with
// `loom` ops, so the adjoint graph goes through the same fusion and
// lowering as the forward one (for instance, the backward of an lm-head
// token log-prob becomes one `loom.token_logprob_grad`, which the fused
// lowering chunks over the vocabulary).
//
// Tie rules follow PyTorch's autograd, which the RL objectives are checked
// against: max/min give half the gradient to each operand on a tie, abs has
// gradient 0 at 0, select passes the gradient to the branch it took.
//
//===----------------------------------------------------------------------===//

#include "dialects/loom/IR/LoomBuilder.h"
#include "dialects/loom/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/TypeSwitch.h"

#include <algorithm>
#include <limits>

namespace mlir::loom {
#define GEN_PASS_DEF_AUTODIFFPASS
#include "dialects/loom/Transforms/Passes.h.inc"
} // namespace mlir::loom

using namespace mlir;
using namespace mlir::loom;

namespace {

static RankedTensorType tensorOf(Value v) {
  return cast<RankedTensorType>(v.getType());
}

static bool isFloatTensor(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t && isa<FloatType>(t.getElementType());
}

/// Writes the adjoint ops of one `loom.grad`, all before it.
class AdjointBuilder {
public:
  AdjointBuilder(OpBuilder &b, Location loc) : L(b, loc) {}

  LoomBuilder L;

  Value scalar(Value like, double v) {
    return L.scalar(tensorOf(like).getElementType(), v);
  }
  Value add(Value a, Value b) { return L.op("loom.add", {a, b}); }
  Value sub(Value a, Value b) { return L.op("loom.sub", {a, b}); }
  Value mul(Value a, Value b) { return L.op("loom.mul", {a, b}); }
  Value div(Value a, Value b) { return L.op("loom.div", {a, b}); }
  Value neg(Value a) { return L.op("loom.neg", {a}); }
  Value cmp(StringRef pred, Value a, Value b) {
    return L.op("loom.cmp", {a, b},
                {L.attr("predicate", L.b.getStringAttr(pred))});
  }
  Value select(Value c, Value a, Value b) {
    return L.op("loom.select", {c, a, b});
  }
  Value broadcastLike(Value x, Value like) {
    return L.op("loom.broadcast", {x, like});
  }
  Value zerosLike(Value like) { return broadcastLike(scalar(like, 0), like); }
  Value sum(Value x, ArrayRef<int64_t> axes, bool keepdim) {
    return L.op("loom.sum", x,
                {L.i64s("axes", axes),
                 L.attr("keepdim", L.b.getBoolAttr(keepdim))});
  }

  /// Sums `g` (of the broadcast result's shape) back to the shape of
  /// `operand`, which was broadcast to it.
  Value unbroadcast(Value g, Value operand) {
    if (!g)
      return g;
    RankedTensorType gt = tensorOf(g), ot = tensorOf(operand);
    if (gt.getShape() == ot.getShape())
      return g;
    int64_t extra = gt.getRank() - ot.getRank();
    if (extra > 0) {
      SmallVector<int64_t> axes;
      for (int64_t i = 0; i < extra; ++i)
        axes.push_back(i);
      g = sum(g, axes, false);
      gt = tensorOf(g);
    }
    SmallVector<int64_t> ones;
    for (int64_t i = 0; i < ot.getRank(); ++i)
      if (ot.getDimSize(i) == 1 && gt.getDimSize(i) != 1)
        ones.push_back(i);
    if (!ones.empty())
      g = sum(g, ones, true);
    return g;
  }

  /// A `loom.reshape` shape list for `target`'s shape, to be applied to a
  /// value whose dimension `i` equals target dimension `i` wherever
  /// `same[i]` is set (copied with 0); other symbolic dimensions are
  /// inferred (-1, at most one). Returns failure when it cannot be written.
  FailureOr<SmallVector<int64_t>> shapeList(RankedTensorType target,
                                            ArrayRef<bool> same) {
    SmallVector<int64_t> shape;
    bool inferred = false;
    for (int64_t i = 0; i < target.getRank(); ++i) {
      int64_t d = target.getDimSize(i);
      if (!ShapedType::isDynamic(d)) {
        shape.push_back(d);
      } else if (i < int64_t(same.size()) && same[i]) {
        shape.push_back(0);
      } else {
        if (inferred)
          return failure();
        inferred = true;
        shape.push_back(-1);
      }
    }
    return shape;
  }

  /// Stretches `g`, the adjoint of a reduction of `x` over `axes` (kept or
  /// removed), back to the shape of `x`.
  FailureOr<Value> unreduce(Value g, Value x, ArrayRef<int64_t> axes,
                            bool keepdim) {
    RankedTensorType xt = tensorOf(x);
    if (!keepdim) {
      // The keepdim shape: reduced axes are 1, the others are g's dims.
      SmallVector<int64_t> keep;
      SmallVector<bool> same;
      int64_t j = 0;
      for (int64_t i = 0; i < xt.getRank(); ++i) {
        if (llvm::is_contained(axes, i)) {
          keep.push_back(1);
          same.push_back(false);
        } else {
          keep.push_back(xt.getDimSize(i));
          same.push_back(i == j);
          ++j;
        }
      }
      FailureOr<SmallVector<int64_t>> shape =
          shapeList(RankedTensorType::get(keep, xt.getElementType()), same);
      if (failed(shape))
        return failure();
      g = L.reshape(g, *shape);
    }
    return broadcastLike(g, x);
  }

  /// 1 where `a` wins a max (`pred` "gt") or min ("lt") against `b`, 1/2 on
  /// a tie, 0 elsewhere.
  Value winnerWeight(StringRef pred, Value a, Value b, Value result) {
    Value one = scalar(result, 1), half = scalar(result, 0.5),
          zero = scalar(result, 0);
    return select(cmp(pred, a, b), one, select(cmp("eq", a, b), half, zero));
  }
};

/// The derivative rule of `op`: given the adjoints of its results (null
/// for a result whose adjoint is zero), sets `grads[i]` to the adjoint of
/// operand `i` for every operand with `active[i]`. Returns failure, with a
/// diagnostic, for an op without a rule.
LogicalResult buildAdjoints(Operation *op, ArrayRef<Value> resultGrads,
                            ArrayRef<bool> active, AdjointBuilder &A,
                            SmallVectorImpl<Value> &grads) {
  grads.assign(op->getNumOperands(), Value());
  Value g = resultGrads.empty() ? Value() : resultGrads[0];
  Value r = op->getNumResults() ? op->getResult(0) : Value();
  auto set = [&](unsigned i, Value v) {
    if (active[i])
      grads[i] = A.unbroadcast(v, op->getOperand(i));
  };
  auto x = [&](unsigned i) { return op->getOperand(i); };

  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      // Elementwise binary ops.
      .Case<AddOp>([&](auto) {
        set(0, g);
        set(1, g);
        return success();
      })
      .Case<SubOp>([&](auto) {
        set(0, g);
        if (active[1])
          set(1, A.neg(g));
        return success();
      })
      .Case<MulOp>([&](auto) {
        if (active[0])
          set(0, A.mul(g, x(1)));
        if (active[1])
          set(1, A.mul(g, x(0)));
        return success();
      })
      .Case<DivOp>([&](auto) {
        if (active[0])
          set(0, A.div(g, x(1)));
        if (active[1])
          set(1, A.neg(A.div(A.mul(g, r), x(1))));
        return success();
      })
      .Case<MaxOp, MinOp>([&](auto) {
        StringRef win = isa<MaxOp>(op) ? "gt" : "lt";
        StringRef lose = isa<MaxOp>(op) ? "lt" : "gt";
        if (active[0])
          set(0, A.mul(g, A.winnerWeight(win, x(0), x(1), r)));
        if (active[1])
          set(1, A.mul(g, A.winnerWeight(lose, x(0), x(1), r)));
        return success();
      })
      .Case<PowOp>([&](auto) {
        if (active[0]) {
          Value e = A.sub(x(1), A.scalar(r, 1));
          set(0, A.mul(g, A.mul(x(1), A.L.op("loom.pow", {x(0), e}))));
        }
        if (active[1])
          set(1, A.mul(g, A.mul(r, A.L.op("loom.log", {x(0)}))));
        return success();
      })
      // Elementwise unary ops.
      .Case<NegOp>([&](auto) {
        set(0, A.neg(g));
        return success();
      })
      .Case<AbsOp>([&](auto) {
        Value sign = A.select(A.cmp("gt", x(0), A.scalar(r, 0)),
                              A.scalar(r, 1),
                              A.select(A.cmp("lt", x(0), A.scalar(r, 0)),
                                       A.scalar(r, -1), A.scalar(r, 0)));
        set(0, A.mul(g, sign));
        return success();
      })
      .Case<ExpOp>([&](auto) {
        set(0, A.mul(g, r));
        return success();
      })
      .Case<LogOp>([&](auto) {
        set(0, A.div(g, x(0)));
        return success();
      })
      .Case<TanhOp>([&](auto) {
        set(0, A.mul(g, A.sub(A.scalar(r, 1), A.mul(r, r))));
        return success();
      })
      .Case<SigmoidOp>([&](auto) {
        set(0, A.mul(g, A.mul(r, A.sub(A.scalar(r, 1), r))));
        return success();
      })
      .Case<SiluOp>([&](auto) {
        // d(x s)/dx = s + x s (1 - s) with s = sigmoid(x).
        Value s = A.L.op("loom.sigmoid", {x(0)});
        Value d = A.add(s, A.mul(A.mul(x(0), s), A.sub(A.scalar(r, 1), s)));
        set(0, A.mul(g, d));
        return success();
      })
      .Case<SqrtOp>([&](auto) {
        set(0, A.div(A.mul(g, A.scalar(r, 0.5)), r));
        return success();
      })
      .Case<RsqrtOp>([&](auto) {
        set(0, A.mul(g, A.mul(A.scalar(r, -0.5), A.mul(r, A.mul(r, r)))));
        return success();
      })
      .Case<SinOp>([&](auto) {
        set(0, A.mul(g, A.L.op("loom.cos", {x(0)})));
        return success();
      })
      .Case<CosOp>([&](auto) {
        set(0, A.neg(A.mul(g, A.L.op("loom.sin", {x(0)}))));
        return success();
      })
      .Case<SelectOp>([&](auto) {
        if (active[1])
          set(1, A.select(x(0), g, A.scalar(r, 0)));
        if (active[2])
          set(2, A.select(x(0), A.scalar(r, 0), g));
        return success();
      })
      .Case<CastOp>([&](auto) {
        set(0, A.L.op("loom.cast", {g}, {}, x(0).getType()));
        return success();
      })
      .Case<BroadcastOp>([&](auto) {
        set(0, g);
        return success();
      })
      // Reductions and normalizations.
      .Case<SumOp, MeanOp>([&](auto reduce) -> LogicalResult {
        SmallVector<int64_t> axes(reduce.getAxes());
        Value gg = g;
        if (isa<MeanOp>(op)) {
          // g / n with n the number of reduced elements, counted at run
          // time (dimensions may be symbolic).
          Value ones = A.broadcastLike(A.scalar(r, 1), x(0));
          gg = A.div(g, A.sum(ones, axes, reduce.getKeepdim()));
        }
        FailureOr<Value> v = A.unreduce(gg, x(0), axes, reduce.getKeepdim());
        if (failed(v))
          return op->emitOpError("loom-autodiff: cannot write the backward "
                                 "of this reduction (more than one symbolic "
                                 "dimension moves)");
        set(0, *v);
        return success();
      })
      .Case<ReduceMaxOp, ReduceMinOp>([&](auto reduce) -> LogicalResult {
        // Split evenly among the elements equal to the extremum.
        SmallVector<int64_t> axes(reduce.getAxes());
        bool keep = reduce.getKeepdim();
        FailureOr<Value> rb = A.unreduce(r, x(0), axes, keep);
        if (failed(rb))
          return op->emitOpError("loom-autodiff: cannot write the backward "
                                 "of this reduction");
        Value hit = A.L.op("loom.cast", {A.cmp("eq", x(0), *rb)}, {},
                           RankedTensorType::get(tensorOf(x(0)).getShape(),
                                                 tensorOf(r).getElementType()));
        Value count = A.sum(hit, axes, keep);
        FailureOr<Value> gb = A.unreduce(A.div(g, count), x(0), axes, keep);
        if (failed(gb))
          return failure();
        set(0, A.mul(*gb, hit));
        return success();
      })
      .Case<SoftmaxOp>([&](SoftmaxOp s) {
        int64_t axis = s.getAxis();
        Value dot = A.sum(A.mul(g, r), {axis}, true);
        set(0, A.mul(r, A.sub(g, dot)));
        return success();
      })
      .Case<LogSoftmaxOp>([&](LogSoftmaxOp s) {
        int64_t axis = s.getAxis();
        Value total = A.sum(g, {axis}, true);
        set(0, A.sub(g, A.mul(A.L.op("loom.exp", {r}), total)));
        return success();
      })
      // Matrix products.
      .Case<MatmulOp>([&](MatmulOp m) {
        bool ta = m.getTransposeA(), tb = m.getTransposeB();
        auto mm = [&](Value a, Value b, bool t0, bool t1) {
          return A.L.op("loom.matmul", {a, b},
                        {A.L.attr("transpose_a", A.L.b.getBoolAttr(t0)),
                         A.L.attr("transpose_b", A.L.b.getBoolAttr(t1))});
        };
        // C = op(A) op(B): d op(A) = G op(B)^T, d op(B) = op(A)^T G.
        if (active[0])
          set(0, ta ? mm(x(1), g, tb, true) : mm(g, x(1), false, !tb));
        if (active[1])
          set(1, tb ? mm(g, x(0), true, ta) : mm(x(0), g, !ta, false));
        return success();
      })
      .Case<LinearOp>([&](LinearOp lin) {
        // y = x w^T + b.
        Value in = lin.getOperand(), w = lin.getWeight();
        if (active[0])
          set(0, A.L.op("loom.matmul", {g, w}));
        if (active[1]) {
          RankedTensorType xt = tensorOf(in), gt = tensorOf(g);
          int64_t rank = xt.getRank();
          int64_t inDim = xt.getDimSize(rank - 1);
          int64_t outDim = gt.getDimSize(rank - 1);
          Value gw;
          auto tA = A.L.attr("transpose_a", A.L.b.getBoolAttr(true));
          if (rank == 1) {
            gw = A.L.op("loom.matmul",
                        {A.L.reshape(g, {-1, 1}), A.L.reshape(in, {1, -1})});
          } else if (rank == 2) {
            gw = A.L.op("loom.matmul", {g, in}, {tA});
          } else if (!ShapedType::isDynamic(inDim) &&
                     !ShapedType::isDynamic(outDim)) {
            gw = A.L.op("loom.matmul", {A.L.reshape(g, {-1, outDim}),
                                        A.L.reshape(in, {-1, inDim})},
                        {tA});
          } else {
            gw = A.L.op("loom.matmul", {g, in}, {tA});
          }
          set(1, gw);
        }
        if (lin.getBias() && active[2])
          set(2, g);
        return success();
      })
      // Data movement.
      .Case<ReshapeOp>([&](ReshapeOp rs) -> LogicalResult {
        RankedTensorType xt = tensorOf(x(0));
        SmallVector<bool> same;
        for (int64_t s : rs.getShape())
          same.push_back(s == 0);
        FailureOr<SmallVector<int64_t>> shape = A.shapeList(xt, same);
        if (failed(shape))
          return op->emitOpError("loom-autodiff: cannot write the backward "
                                 "of this reshape (more than one symbolic "
                                 "dimension to restore)");
        set(0, A.L.reshape(g, *shape));
        return success();
      })
      .Case<TransposeOp>([&](TransposeOp t) {
        ArrayRef<int64_t> perm = t.getPermutation();
        SmallVector<int64_t> inverse(perm.size());
        for (auto [i, p] : llvm::enumerate(perm))
          inverse[p] = i;
        set(0, A.L.transpose(g, inverse));
        return success();
      })
      .Case<SliceOp>([&](SliceOp s) -> LogicalResult {
        // The slice's gradient between zeros for the parts cut off, which
        // are slices of the operand (so symbolic dims need no sizes).
        if (s.getStep() != 1)
          return op->emitOpError("loom-autodiff: the backward of a slice "
                                 "with step > 1 is not supported");
        int64_t axis = s.getAxis();
        int64_t dim = tensorOf(x(0)).getDimSize(axis);
        int64_t start = s.getStart(), end = s.getEnd();
        if (ShapedType::isDynamic(dim) && (start < 0 || end < 0))
          return op->emitOpError("loom-autodiff: the backward of a slice "
                                 "with negative bounds needs a static dim");
        if (!ShapedType::isDynamic(dim)) {
          start = std::clamp(start < 0 ? start + dim : start, int64_t(0), dim);
          end = std::clamp(end < 0 ? end + dim : end, start, dim);
        }
        SmallVector<Value> parts;
        if (start != 0)
          parts.push_back(A.zerosLike(A.L.slice(x(0), axis, 0, start)));
        parts.push_back(g);
        if (end != dim) {
          Value tail = A.L.slice(x(0), axis, end,
                                 std::numeric_limits<int64_t>::max());
          parts.push_back(A.zerosLike(tail));
        }
        set(0, parts.size() == 1
                   ? g
                   : A.L.op("loom.concat", parts, {A.L.i64("axis", axis)}));
        return success();
      })
      .Case<ConcatOp>([&](ConcatOp c) -> LogicalResult {
        int64_t axis = c.getAxis(), offset = 0;
        for (auto [i, operand] : llvm::enumerate(op->getOperands())) {
          int64_t size = tensorOf(operand).getDimSize(axis);
          if (ShapedType::isDynamic(size))
            return op->emitOpError("loom-autodiff: the backward of a concat "
                                   "needs static sizes along its axis");
          if (active[i])
            set(i, A.L.slice(g, axis, offset, offset + size));
          offset += size;
        }
        return success();
      })
      // RL objectives.
      .Case<TokenLogprobOp>([&](TokenLogprobOp t) {
        SmallVector<Value> operands = {t.getInput(), t.getIds(), g};
        SmallVector<Type> types = {t.getInput().getType()};
        if (Value w = t.getWeight()) {
          operands.push_back(w);
          types.push_back(w.getType());
        }
        OperationState state(op->getLoc(), "loom.token_logprob_grad");
        state.addOperands(operands);
        state.addAttribute("temperature", t.getTemperatureAttr());
        state.addTypes(types);
        FailureOr<Operation *> grad = createChecked(A.L.b, state);
        if (failed(grad))
          return failure();
        set(0, (*grad)->getResult(0));
        if (t.getWeight() && active[2])
          set(2, (*grad)->getResult(1));
        return success();
      })
      .Case<KlOp>([&](KlOp k) {
        // d k / d logp with u = logp - ref; d k / d ref is its negation.
        Value u = A.sub(x(0), x(1));
        Value d;
        StringRef e = k.getEstimator();
        if (e == "k1")
          d = g;
        else if (e == "k2")
          d = A.mul(g, u);
        else
          d = A.mul(g, A.sub(A.scalar(r, 1),
                             A.L.op("loom.exp", {A.neg(u)})));
        if (active[0])
          set(0, d);
        if (active[1])
          set(1, A.neg(d));
        return success();
      })
      .Default([&](Operation *) {
        return op->emitOpError("has no derivative rule, but it is on a path "
                               "from a value of 'grad' to its loss (detach "
                               "its inputs to cut the path)");
      });
}

/// Expands one `loom.grad`.
LogicalResult expandGrad(GradOp gradOp) {
  Block *block = gradOp->getBlock();
  Value loss = gradOp.getLoss();

  // Forward: values that depend on a differentiated value.
  llvm::DenseSet<Value> reach(gradOp.getWrt().begin(), gradOp.getWrt().end());
  for (Operation &op : *block) {
    if (&op == gradOp.getOperation())
      break;
    if (isa<StopGradientOp>(op))
      continue;
    if (llvm::any_of(op.getOperands(),
                     [&](Value v) { return reach.contains(v); }))
      for (Value res : op.getResults())
        if (isFloatTensor(res))
          reach.insert(res);
  }
  if (!reach.contains(loss)) {
    OpBuilder b(gradOp);
    AdjointBuilder A(b, gradOp.getLoc());
    SmallVector<Value> zeros;
    for (Value w : gradOp.getWrt())
      zeros.push_back(A.zerosLike(w));
    if (A.L.failed)
      return failure();
    gradOp.replaceAllUsesWith(zeros);
    gradOp.erase();
    return success();
  }

  // Backward: the ops between the differentiated values and the loss.
  llvm::DenseSet<Operation *> onPath;
  SmallVector<Value> work = {loss};
  llvm::DenseSet<Value> seen = {loss};
  while (!work.empty()) {
    Value v = work.pop_back_val();
    Operation *def = v.getDefiningOp();
    if (!def || def->getBlock() != block || !reach.contains(v))
      continue;
    onPath.insert(def);
    for (Value operand : def->getOperands())
      if (reach.contains(operand) && seen.insert(operand).second)
        work.push_back(operand);
  }

  OpBuilder b(gradOp);
  AdjointBuilder A(b, gradOp.getLoc());
  llvm::DenseMap<Value, Value> adjoint;
  auto accumulate = [&](Value v, Value g) {
    if (!g)
      return;
    Value &slot = adjoint[v];
    slot = slot ? A.add(slot, g) : g;
  };
  accumulate(loss, A.scalar(loss, 1));

  SmallVector<Operation *> ops;
  for (Operation &op : *block) {
    if (&op == gradOp.getOperation())
      break;
    if (onPath.contains(&op))
      ops.push_back(&op);
  }
  for (Operation *op : llvm::reverse(ops)) {
    SmallVector<Value> resultGrads;
    bool any = false;
    for (Value res : op->getResults()) {
      Value g = adjoint.lookup(res);
      any |= bool(g);
      resultGrads.push_back(g);
    }
    if (!any)
      continue;
    // A rule sees zeros for results without an adjoint.
    for (auto [res, g] : llvm::zip(op->getResults(), resultGrads))
      if (!g && isFloatTensor(res))
        g = A.zerosLike(res);
    SmallVector<bool> active;
    for (Value operand : op->getOperands())
      active.push_back(reach.contains(operand) && isFloatTensor(operand));
    A.L.loc = op->getLoc();
    SmallVector<Value> grads;
    if (failed(buildAdjoints(op, resultGrads, active, A, grads)) || A.L.failed)
      return failure();
    for (auto [operand, g] : llvm::zip(op->getOperands(), grads))
      accumulate(operand, g);
  }

  A.L.loc = gradOp.getLoc();
  SmallVector<Value> results;
  for (Value w : gradOp.getWrt()) {
    Value g = adjoint.lookup(w);
    results.push_back(g ? g : A.zerosLike(w));
  }
  if (A.L.failed)
    return failure();
  gradOp.replaceAllUsesWith(results);
  gradOp.erase();
  return success();
}

struct AutodiffPass : loom::impl::AutodiffPassBase<AutodiffPass> {
  void runOnOperation() override {
    SmallVector<GradOp> grads;
    getOperation()->walk([&](GradOp op) { grads.push_back(op); });
    for (GradOp op : grads)
      if (failed(expandGrad(op)))
        return signalPassFailure();
    SmallVector<StopGradientOp> stops;
    getOperation()->walk([&](StopGradientOp op) { stops.push_back(op); });
    for (StopGradientOp op : stops) {
      op.replaceAllUsesWith(op.getOperand());
      op.erase();
    }
  }
};

} // namespace
