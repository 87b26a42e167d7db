//===- TokenLogprobRows.cpp - The single-pass lm-head loss ------*- C++ -*-===//
//
// This file implements loom-fuse-token-logprob-rows (see Passes.td): a
// `fuse.token_logprob` and the `fuse.token_logprob_grad` that takes its
// log-sum-exp become one loop over blocks of tokens when the gradient of
// the log-probs is computed from them token by token.
//
// The analysis, on the function's block:
//  - D, the ops whose values depend on the forward's log-probs, and C, those
//    that read their contents: `tensor.dim`, `loom.iota` and the `like` of
//    `loom.broadcast` read a shape only, which does not carry contents when
//    it comes through ops whose shapes follow their operands' shapes;
//  - S, the ops of D that the backward's gradient g depends on, all cloned
//    into the loop. Those of C whose contents reach g's must keep tokens
//    apart: an elementwise `loom` op whose operands from C have its result's
//    shape (no log-prob broadcast over others), or a reshape. Elementwise
//    ops never shrink a tensor, and g has one element per token, so each of
//    those values has one element per token in the same row-major order,
//    and g[n] reads logp[n] only;
//  - the leaves, what S reads from outside it: they and their producers that
//    come after the forward are moved above it (all pure), so that the loop
//    can take the forward's place and dominate every use of its results.
//
//===----------------------------------------------------------------------===//

#include "dialects/fuse/IR/FuseOps.h"
#include "dialects/fuse/Transforms/Passes.h"
#include "dialects/loom/IR/LoomOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallPtrSet.h"

namespace mlir::fuse {
#define GEN_PASS_DEF_TOKENLOGPROBROWSPASS
#include "dialects/fuse/Transforms/Passes.h.inc"
} // namespace mlir::fuse

using namespace mlir;

namespace {

/// The default block: a scratch near kScratchFloats floats (32 MiB), in
/// [kMinRows, kMaxRows] tokens. Below 128 tokens the block's GEMMs lose
/// more than the smaller scratch is worth (at V = 131072, 64 tokens measured
/// 1.17x slower than 128; docs/performance.md).
constexpr int64_t kScratchFloats = int64_t(8) << 20;
constexpr int64_t kMinRows = 128;
constexpr int64_t kMaxRows = 4096;

/// Ops whose result element at flat index k reads element k of each operand
/// of the result's shape (and broadcasts the others).
bool isElementwise(Operation *op) {
  return isa<loom::AddOp, loom::SubOp, loom::MulOp, loom::DivOp, loom::MaxOp,
             loom::MinOp, loom::PowOp, loom::AndOp, loom::OrOp, loom::CmpOp,
             loom::SelectOp, loom::NegOp, loom::AbsOp, loom::ExpOp, loom::LogOp,
             loom::TanhOp, loom::SigmoidOp, loom::SiluOp, loom::GeluOp,
             loom::RsqrtOp, loom::SqrtOp, loom::SinOp, loom::CosOp, loom::NotOp,
             loom::CastOp, loom::StopGradientOp, loom::KlOp>(op);
}

/// Ops that keep the row-major order of the elements.
bool isReshape(Operation *op) {
  return isa<loom::ReshapeOp, tensor::ReshapeOp, tensor::CollapseShapeOp,
             tensor::ExpandShapeOp, tensor::CastOp>(op);
}

/// Whether operand `i` of `op` is read for its shape only.
bool shapeOnly(Operation *op, unsigned i) {
  return (isa<loom::BroadcastOp>(op) && i == 1) ||
         isa<loom::IotaOp, tensor::DimOp>(op);
}

/// Ops whose result shapes follow from their operands' shapes and their
/// attributes, never from the contents of an operand: every `loom` op (the
/// dialect's shapes are symbolic), and the casts and reshapes of `tensor`
/// with static reassociations.
bool shapeFromShapes(Operation *op) {
  return isa<loom::LoomDialect>(op->getDialect()) ||
         isa<tensor::CastOp, tensor::CollapseShapeOp, tensor::ExpandShapeOp>(
             op);
}

/// The single-pass form of one forward and backward pair.
class RowsRewrite {
public:
  RowsRewrite(fuse::TokenLogprobOp forward, fuse::TokenLogprobGradOp backward)
      : forward(forward), backward(backward), block(forward->getBlock()) {}

  /// Whether the pair can take the single-pass form; fills the slice and
  /// the ops to move.
  bool analyze();

  /// Builds the loop in place of the forward and erases both ops.
  void rewrite(OpBuilder &b, int64_t rows);

private:
  /// Whether `op` (in C) keeps tokens apart.
  bool keepsTokens(Operation *op);
  /// Whether operand `i` of `op` is read for a shape that does not depend
  /// on the contents of the log-probs.
  bool readsShapeOnly(Operation *op, unsigned i);
  /// Whether the shape of `v` does not depend on the contents of the
  /// log-probs (D must be known for its producers).
  bool shapeIndependent(Value v);

  fuse::TokenLogprobOp forward;
  fuse::TokenLogprobGradOp backward;
  Block *block;
  /// D: the ops after the forward that depend on its log-probs, through
  /// their contents or their shapes.
  llvm::SmallPtrSet<Operation *, 32> dependent;
  /// C: the ops of D that read the contents of the log-probs.
  llvm::SmallPtrSet<Operation *, 32> contents;
  /// S, in block order.
  SmallVector<Operation *> slice;
  /// The ops to move above the forward, in block order.
  SmallVector<Operation *> hoisted;
  /// Memo of shapeIndependent for values defined by ops of D.
  DenseMap<Value, bool> shapeMemo;
};

bool RowsRewrite::shapeIndependent(Value v) {
  Operation *def = v.getDefiningOp();
  if (v == forward.getResult(0) || !def || !dependent.contains(def))
    return true;
  if (auto it = shapeMemo.find(v); it != shapeMemo.end())
    return it->second;
  bool independent = shapeFromShapes(def);
  if (auto reshape = dyn_cast<tensor::ReshapeOp>(def)) {
    // The shape is the contents of the shape operand.
    Operation *shapeDef = reshape.getShape().getDefiningOp();
    independent = !(shapeDef && contents.contains(shapeDef)) &&
                  shapeIndependent(reshape.getShape());
  }
  for (unsigned i = 0; independent && i < def->getNumOperands(); ++i)
    independent = shapeIndependent(def->getOperand(i));
  shapeMemo[v] = independent;
  return independent;
}

bool RowsRewrite::readsShapeOnly(Operation *op, unsigned i) {
  return shapeOnly(op, i) && shapeIndependent(op->getOperand(i));
}

bool RowsRewrite::keepsTokens(Operation *op) {
  if (op->getNumRegions() != 0 || !isPure(op))
    return false;
  if (isReshape(op))
    return true;
  if (!isElementwise(op) || op->getNumResults() != 1)
    return false;
  auto result = dyn_cast<RankedTensorType>(op->getResult(0).getType());
  if (!result)
    return false;
  for (Value operand : op->getOperands()) {
    Operation *def = operand.getDefiningOp();
    bool fromC =
        operand == forward.getResult(0) || (def && contents.contains(def));
    if (!fromC)
      continue;
    auto type = dyn_cast<RankedTensorType>(operand.getType());
    if (!type || type.getShape() != result.getShape())
      return false;
  }
  return true;
}

bool RowsRewrite::analyze() {
  if (backward->getBlock() != block ||
      backward.getLse() != forward.getResult(1) ||
      backward.getHidden() != forward.getHidden() ||
      backward.getWeight() != forward.getWeight() ||
      backward.getIds() != forward.getIds() ||
      backward.getTemperature() != forward.getTemperature() ||
      !backward.hasPureTensorSemantics() || !forward.hasPureTensorSemantics())
    return false;
  // The loop takes the forward's place, so an accumulating backward's
  // grad_weight must exist before the forward.
  if (backward.getAccumulate()) {
    Operation *def = backward.getGradWeightInit().getDefiningOp();
    if (def && def->getBlock() == block && !def->isBeforeInBlock(forward))
      return false;
  }

  // D and C, by one walk from the forward (uses come after definitions in
  // a block). The lse reaches the backward only.
  Value logp = forward.getResult(0), lse = forward.getResult(1);
  for (Operation *user : lse.getUsers())
    if (user != backward)
      return false;
  auto inSet = [&](const llvm::SmallPtrSetImpl<Operation *> &set, Value v) {
    Operation *def = v.getDefiningOp();
    return v == logp || (def && set.contains(def));
  };
  for (Operation *op = forward->getNextNode(); op; op = op->getNextNode()) {
    if (op == backward.getOperation())
      continue;
    bool reads = false, readsContents = false;
    for (OpOperand &operand : op->getOpOperands()) {
      if (!inSet(dependent, operand.get()))
        continue;
      reads = true;
      readsContents |= inSet(contents, operand.get()) &&
                       !readsShapeOnly(op, operand.getOperandNumber());
    }
    op->walk([&](Operation *inner) {
      if (inner == op)
        return;
      for (Value v : inner->getOperands()) {
        reads |= inSet(dependent, v);
        readsContents |= inSet(contents, v);
      }
    });
    if (reads)
      dependent.insert(op);
    if (readsContents)
      contents.insert(op);
  }

  // S: the ops of D that g depends on; K: those whose contents reach g's.
  llvm::SmallPtrSet<Operation *, 32> inSlice, reachesGrad;
  SmallVector<Value> work = {backward.getGrad()};
  while (!work.empty()) {
    Value v = work.pop_back_val();
    Operation *def = v.getDefiningOp();
    if (!def || !dependent.contains(def) || !inSlice.insert(def).second)
      continue;
    if (def->getNumRegions() != 0 || !isPure(def))
      return false;
    llvm::append_range(work, def->getOperands());
  }
  work = {backward.getGrad()};
  while (!work.empty()) {
    Value v = work.pop_back_val();
    Operation *def = v.getDefiningOp();
    if (!def || !inSlice.contains(def) || !reachesGrad.insert(def).second)
      continue;
    for (OpOperand &operand : def->getOpOperands())
      if (!readsShapeOnly(def, operand.getOperandNumber()))
        work.push_back(operand.get());
  }
  // What carries the log-probs' contents into g must keep tokens apart.
  // The rest of S reads them for shapes only (its values in a step, from
  // partly computed log-probs, are not used).
  for (Operation *op : reachesGrad)
    if (contents.contains(op) && !keepsTokens(op))
      return false;
  for (Operation &op : *block)
    if (inSlice.contains(&op))
      slice.push_back(&op);

  // The leaves, and what they need from after the forward.
  llvm::SmallPtrSet<Operation *, 32> toHoist;
  work.clear();
  auto addLeaves = [&](Operation *op) {
    for (Value v : op->getOperands())
      if (v != logp &&
          !(v.getDefiningOp() && inSlice.contains(v.getDefiningOp())))
        work.push_back(v);
  };
  for (Operation *op : slice)
    addLeaves(op);
  if (!inSlice.contains(backward.getGrad().getDefiningOp()))
    work.push_back(backward.getGrad());
  while (!work.empty()) {
    Value v = work.pop_back_val();
    Operation *def = v.getDefiningOp();
    if (!def) {
      // A block argument: of this block (the function's) or of one around
      // it, so it dominates the forward.
      continue;
    }
    if (def->getBlock() != block) {
      // Defined around the forward's block: before the op that holds it.
      Operation *holder = def->getBlock()->findAncestorOpInBlock(*forward);
      if (!holder || !def->isBeforeInBlock(holder))
        return false;
      continue;
    }
    if (def == forward.getOperation() || dependent.contains(def))
      return false;
    if (def->isBeforeInBlock(forward) || !toHoist.insert(def).second)
      continue;
    if (def->getNumRegions() != 0 || !isPure(def))
      return false;
    llvm::append_range(work, def->getOperands());
  }
  for (Operation &op : *block)
    if (toHoist.contains(&op))
      hoisted.push_back(&op);
  return true;
}

/// `v` as a tensor of `type` (a tensor.cast where they differ).
Value castTo(OpBuilder &b, Location loc, Value v, Type type) {
  if (v.getType() == type)
    return v;
  return tensor::CastOp::create(b, loc, type, v);
}

void RowsRewrite::rewrite(OpBuilder &b, int64_t rows) {
  for (Operation *op : hoisted)
    op->moveBefore(forward);
  Location loc = forward.getLoc();
  b.setInsertionPoint(forward);
  Value hidden = forward.getHidden(), weight = forward.getWeight();
  Value ids = forward.getIds();
  Type f32 = b.getF32Type();

  // Sizes as (static size, value when dynamic), for tensor.empty.
  auto sizeOf = [&](Value v, int64_t d) -> std::pair<int64_t, Value> {
    int64_t size = cast<RankedTensorType>(v.getType()).getDimSize(d);
    return {size, ShapedType::isDynamic(size)
                      ? tensor::DimOp::create(b, loc, v, d).getResult()
                      : Value()};
  };
  auto tokens = sizeOf(hidden, 0), vocab = sizeOf(weight, 0);
  auto index = [&](std::pair<int64_t, Value> size) -> Value {
    return size.second ? size.second
                       : arith::ConstantIndexOp::create(b, loc, size.first);
  };
  Value n = index(tokens);
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);

  // The block: `rows`, or 8M / V in [128, 4096]; at most N, at least 1.
  Value block;
  if (rows > 0) {
    block = arith::ConstantIndexOp::create(b, loc, rows);
  } else if (!vocab.second) {
    block = arith::ConstantIndexOp::create(
        b, loc,
        std::clamp(kScratchFloats / std::max<int64_t>(vocab.first, 1), kMinRows,
                   kMaxRows));
  } else {
    Value v = arith::MaxUIOp::create(b, loc, vocab.second, one);
    block = arith::DivUIOp::create(
        b, loc, arith::ConstantIndexOp::create(b, loc, kScratchFloats), v);
    block = arith::MaxUIOp::create(
        b, loc, block, arith::ConstantIndexOp::create(b, loc, kMinRows));
    block = arith::MinUIOp::create(
        b, loc, block, arith::ConstantIndexOp::create(b, loc, kMaxRows));
  }
  block = arith::MinUIOp::create(b, loc, block, n);
  block = arith::MaxUIOp::create(b, loc, block, one);

  auto empty = [&](ArrayRef<std::pair<int64_t, Value>> sizes) -> Value {
    SmallVector<int64_t> shape;
    SmallVector<Value> dynamic;
    for (auto [size, value] : sizes) {
      shape.push_back(size);
      if (ShapedType::isDynamic(size))
        dynamic.push_back(value);
    }
    return tensor::EmptyOp::create(b, loc, shape, f32, dynamic);
  };
  Value logpInit = linalg::FillOp::create(b, loc,
                                          ValueRange{arith::ConstantOp::create(
                                              b, loc, b.getF32FloatAttr(0.0f))},
                                          ValueRange{empty({tokens})})
                       .getResult(0);
  Value lseInit = empty({tokens});
  Value gradHiddenInit = empty({tokens, sizeOf(hidden, 1)});
  // An accumulating backward's grad_weight starts from its destination.
  bool accumulate = backward.getAccumulate();
  Value gradWeightInit = accumulate ? backward.getGradWeightInit()
                                    : empty({vocab, sizeOf(weight, 1)});
  Value scratchInit = empty({{ShapedType::kDynamic, block}, vocab});
  Value upper = arith::MaxUIOp::create(b, loc, n, one);

  FloatAttr temperature = forward.getTemperatureAttr();
  auto loop = scf::ForOp::create(
      b, loc, zero, upper, block,
      ValueRange{logpInit, lseInit, gradHiddenInit, gradWeightInit,
                 scratchInit},
      [&](OpBuilder &lb, Location l, Value n0, ValueRange args) {
        auto rowsOp = fuse::TokenLogprobRowsOp::create(
            lb, l,
            TypeRange{args[0].getType(), args[1].getType(), args[4].getType()},
            hidden, weight, ids, n0, args[0], args[1], args[4], temperature);
        IRMapping mapping;
        mapping.map(
            forward.getResult(0),
            castTo(lb, l, rowsOp.getResult(0), forward.getResult(0).getType()));
        for (Operation *op : slice)
          lb.clone(*op, mapping);
        Value g = mapping.lookupOrDefault(backward.getGrad());
        auto gradOp = fuse::TokenLogprobRowsGradOp::create(
            lb, l,
            TypeRange{args[2].getType(), args[3].getType(), args[4].getType()},
            hidden, weight, ids, rowsOp.getResult(1), g, n0, args[2], args[3],
            rowsOp.getResult(2), temperature,
            accumulate ? lb.getUnitAttr() : UnitAttr());
        scf::YieldOp::create(
            lb, l,
            ValueRange{rowsOp.getResult(0), rowsOp.getResult(1),
                       gradOp.getResult(0), gradOp.getResult(1),
                       gradOp.getResult(2)});
      });

  forward.getResult(0).replaceAllUsesWith(
      castTo(b, loc, loop.getResult(0), forward.getResult(0).getType()));
  backward.getResult(0).replaceAllUsesWith(
      castTo(b, loc, loop.getResult(2), backward.getResult(0).getType()));
  backward.getResult(1).replaceAllUsesWith(
      castTo(b, loc, loop.getResult(3), backward.getResult(1).getType()));
  backward->erase();
  forward->erase();
}

struct TokenLogprobRowsPass
    : public fuse::impl::TokenLogprobRowsPassBase<TokenLogprobRowsPass> {
  using Base::Base;

  void runOnOperation() override {
    if (rows < 0) {
      getOperation().emitError("loom-fuse-token-logprob-rows: rows must be "
                               ">= 0, got ")
          << static_cast<int64_t>(rows);
      return signalPassFailure();
    }
    SmallVector<std::pair<fuse::TokenLogprobOp, fuse::TokenLogprobGradOp>>
        pairs;
    getOperation().walk([&](fuse::TokenLogprobGradOp backward) {
      if (auto forward =
              backward.getLse().getDefiningOp<fuse::TokenLogprobOp>())
        pairs.push_back({forward, backward});
    });
    OpBuilder b(&getContext());
    for (auto [forward, backward] : pairs) {
      RowsRewrite rewrite(forward, backward);
      if (rewrite.analyze())
        rewrite.rewrite(b, rows);
    }
  }
};

} // namespace
