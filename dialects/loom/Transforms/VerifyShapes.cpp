//===- VerifyShapes.cpp - Symbolic-shape verification -----------*- C++ -*-===//
//
// This file implements the loom-verify-shapes pass: it names every dimension
// of every value after the symbols of the graph's signature and reports where
// two different symbols must be equal.
//
//===----------------------------------------------------------------------===//

#include "dialects/loom/IR/LoomOps.h"
#include "dialects/loom/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"

namespace mlir::loom {
#define GEN_PASS_DEF_VERIFYSHAPESPASS
#include "dialects/loom/Transforms/Passes.h.inc"
} // namespace mlir::loom

using namespace mlir;
using namespace mlir::loom;

namespace {
/// A dimension: a static size, a named symbol, or unknown (a `?` the pass
/// cannot name, e.g. the length of a concatenation of symbolic parts).
struct Dim {
  int64_t size = ShapedType::kDynamic;
  StringAttr symbol;
  bool isStatic() const { return !ShapedType::isDynamic(size); }
  bool operator==(const Dim &o) const {
    return size == o.size && symbol == o.symbol;
  }
  std::string str() const {
    if (isStatic())
      return std::to_string(size);
    return symbol ? symbol.getValue().str() : std::string("?");
  }
};
using Dims = SmallVector<Dim>;

class ShapeChecker {
public:
  explicit ShapeChecker(func::FuncOp func) : func(func) {}

  LogicalResult run() {
    for (auto [i, arg] : llvm::enumerate(func.getArguments()))
      dims[arg] = fromSignature(
          arg.getType(), func.getArgAttrOfType<ArrayAttr>(i, "loom.dims"));
    WalkResult result = func.walk([&](Operation *op) {
      return failed(visit(op)) ? WalkResult::interrupt()
                               : WalkResult::advance();
    });
    return failure(result.wasInterrupted());
  }

private:
  /// Dims of a value, falling back to its type.
  Dims get(Value value) {
    auto it = dims.find(value);
    if (it != dims.end())
      return it->second;
    return fromSignature(value.getType(), nullptr);
  }

  static Dims fromSignature(Type type, ArrayAttr names) {
    Dims result;
    auto tensor = dyn_cast<RankedTensorType>(type);
    if (!tensor)
      return result;
    for (auto [i, size] : llvm::enumerate(tensor.getShape())) {
      Dim d;
      d.size = size;
      if (ShapedType::isDynamic(size) && names && i < names.size())
        d.symbol = dyn_cast<StringAttr>(names[i]);
      result.push_back(d);
    }
    return result;
  }

  /// Joins two dimensions that must be equal (or broadcast when `allowOne`).
  FailureOr<Dim> join(Operation *op, StringRef what, Dim a, Dim b,
                      bool allowOne) {
    if (allowOne && a.isStatic() && a.size == 1)
      return b;
    if (allowOne && b.isStatic() && b.size == 1)
      return a;
    if (a.symbol && b.symbol && a.symbol != b.symbol) {
      op->emitOpError() << what << " is " << a.str() << " on one operand and "
                        << b.str() << " on the other";
      return failure();
    }
    return a.symbol ? a : b;
  }

  FailureOr<Dims> broadcast(Operation *op, ValueRange operands) {
    Dims result = get(operands[0]);
    for (Value operand : operands.drop_front()) {
      Dims other = get(operand);
      size_t rank = std::max(result.size(), other.size());
      Dims joined(rank);
      for (size_t i = 0; i < rank; ++i) {
        Dim one;
        one.size = 1;
        Dim a =
            i < rank - result.size() ? one : result[i - (rank - result.size())];
        Dim b =
            i < rank - other.size() ? one : other[i - (rank - other.size())];
        FailureOr<Dim> d =
            join(op, "dimension " + std::to_string(i), a, b, true);
        if (failed(d))
          return failure();
        joined[i] = *d;
      }
      result = std::move(joined);
    }
    return result;
  }

  LogicalResult visit(Operation *op) {
    if (auto ret = dyn_cast<func::ReturnOp>(op))
      return checkReturn(ret);
    if (auto mla = dyn_cast<MlaAttentionOp>(op))
      return visitMla(mla);
    if (auto attention = dyn_cast<AttentionOp>(op))
      return visitAttention(attention);
    if (auto logprob = dyn_cast<TokenLogprobOp>(op))
      return visitTokenLogprob(logprob);
    if (auto logprobGrad = dyn_cast<TokenLogprobGradOp>(op))
      return visitTokenLogprobGrad(logprobGrad);
    if (auto gae = dyn_cast<GaeOp>(op))
      return visitGae(gae);
    // Each gradient has the dims of the value it is taken by.
    if (auto grad = dyn_cast<GradOp>(op)) {
      for (auto [wrt, result] : llvm::zip(grad.getWrt(), grad.getGradients()))
        dims[result] = get(wrt);
      return success();
    }
    if (op->getNumResults() != 1 || !isa<LoomDialect>(op->getDialect()))
      return success();
    Value result = op->getResult(0);
    FailureOr<Dims> computed =
        llvm::TypeSwitch<Operation *, FailureOr<Dims>>(op)
            .Case<AddOp, SubOp, MulOp, DivOp, MaxOp, MinOp, PowOp, AndOp, OrOp,
                  CmpOp, SelectOp, KlOp>(
                [&](Operation *op) { return broadcast(op, op->getOperands()); })
            .Case<NegOp, AbsOp, ExpOp, LogOp, TanhOp, SigmoidOp, SiluOp, GeluOp,
                  RsqrtOp, SqrtOp, SinOp, CosOp, NotOp, CastOp, SoftmaxOp,
                  LogSoftmaxOp, StopGradientOp>(
                [&](Operation *op) -> FailureOr<Dims> {
                  return get(op->getOperand(0));
                })
            .Case<RmsNormOp>([&](RmsNormOp op) -> FailureOr<Dims> {
              Dims x = get(op.getOperand()), w = get(op.getWeight());
              if (!x.empty() && !w.empty() &&
                  failed(join(op, "the normalized dimension", x.back(),
                              w.back(), false)))
                return failure();
              return x;
            })
            .Case<SumOp, MeanOp, ReduceMaxOp, ReduceMinOp>(
                [&](Operation *op) -> FailureOr<Dims> {
                  Dims x = get(op->getOperand(0)), out;
                  auto axes =
                      op->getAttrOfType<DenseI64ArrayAttr>("axes").asArrayRef();
                  bool keep = false;
                  if (auto k = op->getAttrOfType<BoolAttr>("keepdim"))
                    keep = k.getValue();
                  for (auto [i, d] : llvm::enumerate(x)) {
                    if (!llvm::is_contained(axes, static_cast<int64_t>(i)))
                      out.push_back(d);
                    else if (keep)
                      out.push_back(Dim{1, {}});
                  }
                  return out;
                })
            .Case<MatmulOp>([&](MatmulOp op) -> FailureOr<Dims> {
              Dims a = get(op.getLhs()), b = get(op.getRhs());
              Dim m = a[a.size() - 2], ka = a.back();
              if (op.getTransposeA())
                std::swap(m, ka);
              Dim kb = b[b.size() - 2], n = b.back();
              if (op.getTransposeB())
                std::swap(kb, n);
              if (failed(join(op, "the contraction dimension", ka, kb, false)))
                return failure();
              Dims out;
              size_t batch = std::max(a.size(), b.size()) - 2;
              for (size_t i = 0; i < batch; ++i) {
                Dim one{1, {}};
                Dim x = i < batch - (a.size() - 2)
                            ? one
                            : a[i - (batch - (a.size() - 2))];
                Dim y = i < batch - (b.size() - 2)
                            ? one
                            : b[i - (batch - (b.size() - 2))];
                FailureOr<Dim> d = join(
                    op, "batch dimension " + std::to_string(i), x, y, true);
                if (failed(d))
                  return failure();
                out.push_back(*d);
              }
              out.push_back(m);
              out.push_back(n);
              return out;
            })
            .Case<LinearOp>([&](LinearOp op) -> FailureOr<Dims> {
              Dims x = get(op.getOperand()), w = get(op.getWeight());
              if (failed(join(op, "the input-feature dimension", x.back(),
                              w.back(), false)))
                return failure();
              x.back() = w.front();
              return x;
            })
            .Case<ReshapeOp>([&](ReshapeOp op) -> FailureOr<Dims> {
              Dims x = get(op.getOperand()), out;
              for (auto [i, s] : llvm::enumerate(op.getShape())) {
                if (s == 0)
                  out.push_back(x[i]);
                else
                  out.push_back(Dim{op.getType().getDimSize(i), {}});
              }
              return out;
            })
            .Case<TransposeOp>([&](TransposeOp op) -> FailureOr<Dims> {
              Dims x = get(op.getOperand()), out;
              for (int64_t p : op.getPermutation())
                out.push_back(x[p]);
              return out;
            })
            .Case<GatherOp>([&](GatherOp op) -> FailureOr<Dims> {
              Dims x = get(op.getOperand()), idx = get(op.getIndices()), out;
              int64_t axis = op.getAxis();
              out.append(x.begin(), x.begin() + axis);
              out.append(idx.begin(), idx.end());
              out.append(x.begin() + axis + 1, x.end());
              return out;
            })
            // The sliced dimension is computed (unnamed unless static);
            // the others keep their symbols.
            .Case<SliceOp>([&](SliceOp op) -> FailureOr<Dims> {
              Dims out = get(op.getOperand());
              int64_t axis = op.getAxis();
              out[axis] = Dim{op.getType().getDimSize(axis), {}};
              return out;
            })
            .Case<ConcatOp>([&](ConcatOp op) -> FailureOr<Dims> {
              Dims out = get(op.getInputs()[0]);
              int64_t axis = op.getAxis();
              for (Value input : op.getInputs().drop_front()) {
                Dims x = get(input);
                for (size_t i = 0; i < out.size(); ++i) {
                  if (static_cast<int64_t>(i) == axis)
                    continue;
                  FailureOr<Dim> d = join(op, "dimension " + std::to_string(i),
                                          out[i], x[i], false);
                  if (failed(d))
                    return failure();
                  out[i] = *d;
                }
              }
              out[axis] = Dim{op.getType().getDimSize(axis), {}};
              return out;
            })
            .Case<DynamicSliceOp>([&](DynamicSliceOp op) -> FailureOr<Dims> {
              Dims out = get(op.getOperand());
              int64_t axis = op.getAxis();
              out[axis] = Dim{op.getType().getDimSize(axis), {}};
              return out;
            })
            // The update is cut to the target at run time, so its dims need
            // not be the target's symbols.
            .Case<DynamicUpdateSliceOp>(
                [&](DynamicUpdateSliceOp op) -> FailureOr<Dims> {
                  return get(op.getTarget());
                })
            .Case<BroadcastOp>([&](BroadcastOp op) -> FailureOr<Dims> {
              if (Value like = op.getLike())
                return get(like);
              return fromSignature(op.getType(), nullptr);
            })
            .Case<IotaOp>([&](IotaOp op) -> FailureOr<Dims> {
              if (Value like = op.getLike())
                return get(like);
              return fromSignature(op.getType(), nullptr);
            })
            .Default([&](Operation *op) -> FailureOr<Dims> {
              return fromSignature(op->getResult(0).getType(), nullptr);
            });
    if (failed(computed))
      return failure();
    dims[result] = std::move(*computed);
    return success();
  }

  /// The new tokens' batch and count agree across the four per-token
  /// operands; the output has them with the heads and the value head dim.
  LogicalResult visitMla(MlaAttentionOp op) {
    Dims q = get(op.getQNope()), qp = get(op.getQPe());
    Dims kv = get(op.getKv()), kpe = get(op.getKPe());
    const char *names[] = {"the batch", "the token count"};
    for (size_t i = 0; i < 2; ++i) {
      const char *what = names[i];
      FailureOr<Dim> d = join(op, what, q[i], qp[i], false);
      if (succeeded(d))
        d = join(op, what, *d, kv[i], false);
      if (succeeded(d))
        d = join(op, what, *d, kpe[i], false);
      if (failed(d))
        return failure();
      q[i] = *d;
    }
    Dims out = {q[0], q[1], q[2], get(op.getVCache())[3]};
    dims[op.getOut()] = std::move(out);
    dims[op.getNewKCache()] = get(op.getKCache());
    dims[op.getNewVCache()] = get(op.getVCache());
    return success();
  }

  /// Joins the per-token dimensions of a token_logprob or its backward:
  /// `ids` and the leading dimensions of `input` (and `grad`, when given)
  /// agree, and with a `weight` the hidden size of `input` is the weight's
  /// second dimension. `input`, `ids`, `grad` and `weight` receive the
  /// joined dims.
  LogicalResult joinTokens(Operation *op, Dims &input, Dims &ids, Dims *grad,
                           Dims *weight) {
    if (input.size() != ids.size() + 1)
      return success();
    for (size_t d = 0; d < ids.size(); ++d) {
      std::string what = "dimension " + std::to_string(d);
      FailureOr<Dim> joined = join(op, what, input[d], ids[d], false);
      if (failed(joined))
        return failure();
      if (grad && grad->size() == ids.size()) {
        joined = join(op, what, *joined, (*grad)[d], false);
        if (failed(joined))
          return failure();
        (*grad)[d] = *joined;
      }
      ids[d] = input[d] = *joined;
    }
    if (weight && weight->size() == 2) {
      FailureOr<Dim> hidden =
          join(op, "the hidden dimension", input.back(), (*weight)[1], false);
      if (failed(hidden))
        return failure();
      input.back() = (*weight)[1] = *hidden;
    }
    return success();
  }

  /// ids and the leading dimensions of the input (logits, or hidden states
  /// with a weight) agree; the result has the ids' dims.
  LogicalResult visitTokenLogprob(TokenLogprobOp op) {
    Dims input = get(op.getInput()), ids = get(op.getIds()), weight;
    if (op.getWeight())
      weight = get(op.getWeight());
    if (failed(joinTokens(op, input, ids, nullptr,
                          op.getWeight() ? &weight : nullptr)))
      return failure();
    dims[op.getResult()] = ids;
    return success();
  }

  /// As token_logprob, with grad shaped like ids; the gradients have the
  /// joined dims of the input and the weight.
  LogicalResult visitTokenLogprobGrad(TokenLogprobGradOp op) {
    Dims input = get(op.getInput()), ids = get(op.getIds());
    Dims grad = get(op.getGrad()), weight;
    if (op.getWeight())
      weight = get(op.getWeight());
    if (failed(joinTokens(op, input, ids, &grad,
                          op.getWeight() ? &weight : nullptr)))
      return failure();
    dims[op.getInputGrad()] = input;
    if (Value weightGrad = op.getWeightGrad())
      dims[weightGrad] = weight;
    return success();
  }

  /// rewards, values and mask agree on both dimensions; the advantages have
  /// the joined dims.
  LogicalResult visitGae(GaeOp op) {
    Dims rewards = get(op.getRewards());
    for (Value other : {op.getValues(), op.getMask()}) {
      Dims o = get(other);
      if (o.size() != rewards.size())
        continue;
      for (size_t d = 0; d < rewards.size(); ++d) {
        FailureOr<Dim> joined =
            join(op, "dimension " + std::to_string(d), rewards[d], o[d], false);
        if (failed(joined))
          return failure();
        rewards[d] = *joined;
      }
    }
    dims[op.getResult()] = rewards;
    return success();
  }

  /// q, k and v agree on the batch; k and v on the key/value heads and the
  /// key count; q and k on the head dim. The output has q's batch, heads and
  /// queries with v's head dim; the lse drops the head dim.
  LogicalResult visitAttention(AttentionOp op) {
    Dims q = get(op.getQ()), k = get(op.getK()), v = get(op.getV());
    if (q.size() != 4 || k.size() != 4 || v.size() != 4)
      return success();
    struct Join {
      const char *what;
      Dims *a;
      unsigned da;
      Dims *b;
      unsigned db;
    };
    Join joins[] = {{"the batch", &q, 0, &k, 0},
                    {"the batch", &q, 0, &v, 0},
                    {"the key/value head count", &k, 1, &v, 1},
                    {"the key count", &k, 2, &v, 2},
                    {"the query/key head dim", &q, 3, &k, 3}};
    for (const Join &j : joins) {
      FailureOr<Dim> d = join(op, j.what, (*j.a)[j.da], (*j.b)[j.db], false);
      if (failed(d))
        return failure();
      (*j.a)[j.da] = *d;
      (*j.b)[j.db] = *d;
    }
    dims[op.getOut()] = Dims{q[0], q[1], q[2], v[3]};
    dims[op.getLse()] = Dims{q[0], q[1], q[2]};
    return success();
  }

  LogicalResult checkReturn(func::ReturnOp ret) {
    for (auto [i, value] : llvm::enumerate(ret.getOperands())) {
      auto declared = func.getResultAttrOfType<ArrayAttr>(i, "loom.dims");
      if (!declared)
        continue;
      Dims want = fromSignature(value.getType(), declared);
      Dims have = get(value);
      // Symbolic dims the graph computes without naming them (a slice of a
      // symbolic dim, a -1 in a reshape) can only be compared with the
      // declaration at run time: record them for the entry ABI.
      SmallVector<int64_t> unproven;
      for (size_t d = 0; d < want.size() && d < have.size(); ++d)
        if (want[d].symbol && !have[d].symbol && !have[d].isStatic())
          unproven.push_back(d);
      if (unproven.empty())
        func.removeResultAttr(
            i, StringAttr::get(func.getContext(), "loom.unproven_dims"));
      else
        func.setResultAttr(i, "loom.unproven_dims",
                           DenseI64ArrayAttr::get(func.getContext(), unproven));
      for (size_t d = 0; d < want.size() && d < have.size(); ++d) {
        if (want[d].symbol && have[d].symbol &&
            want[d].symbol != have[d].symbol) {
          std::string name = "result " + std::to_string(i);
          if (auto n = func.getResultAttrOfType<StringAttr>(i, "loom.name"))
            name = "output '" + n.getValue().str() + "'";
          return ret.emitOpError()
                 << name << " is declared with dimension " << d << " = "
                 << want[d].str() << " but the graph computes "
                 << have[d].str();
        }
      }
    }
    return success();
  }

  func::FuncOp func;
  llvm::DenseMap<Value, Dims> dims;
};

struct VerifyShapesPass
    : public loom::impl::VerifyShapesPassBase<VerifyShapesPass> {
  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>())
      if (!func.isExternal() && failed(ShapeChecker(func).run()))
        return signalPassFailure();
  }
};
} // namespace
