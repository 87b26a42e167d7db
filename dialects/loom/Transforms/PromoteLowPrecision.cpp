//===- PromoteLowPrecision.cpp - f32 accumulation for f16/bf16 --*- C++ -*-===//
//
// This file implements loom-promote-low-precision: the reduction-like ops
// of f16 and bf16 tensors are rewritten on f32 copies of their operands,
// with their results rounded back, so that they accumulate in f32.
//
//===----------------------------------------------------------------------===//

#include "dialects/loom/Transforms/Passes.h"

#include "dialects/loom/IR/LoomOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"

namespace mlir::loom {
#define GEN_PASS_DEF_PROMOTELOWPRECISIONPASS
#include "dialects/loom/Transforms/Passes.h.inc"
} // namespace mlir::loom

using namespace mlir;

namespace {

/// The f32 counterpart of `type` when it is a tensor of f16 or bf16.
static Type widened(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor || !isa<Float16Type, BFloat16Type>(tensor.getElementType()))
    return {};
  return tensor.clone(Float32Type::get(type.getContext()));
}

/// Whether `op` accumulates and reads or yields a low-precision float.
static bool needsPromotion(Operation *op) {
  if (!isa<loom::SumOp, loom::MeanOp, loom::SoftmaxOp, loom::LogSoftmaxOp,
           loom::RmsNormOp, loom::TokenLogprobOp, loom::TokenLogprobGradOp,
           loom::KlOp, loom::GaeOp, loom::AttentionOp>(op))
    return false;
  auto lowPrecision = [](Type type) { return bool(widened(type)); };
  return llvm::any_of(op->getOperandTypes(), lowPrecision) ||
         llvm::any_of(op->getResultTypes(), lowPrecision);
}

/// The score region of an attention promoted to f32 takes and yields f32
/// but computes as written: the score is rounded to the region's type on
/// entry and its result widened on exit, so the scores are the same as
/// before the promotion.
static void widenScoreRegion(Region &score) {
  if (score.empty())
    return;
  Block &block = score.front();
  BlockArgument s = block.getArgument(4);
  Type low = s.getType();
  if (!isa<Float16Type, BFloat16Type>(low))
    return;
  Type f32 = Float32Type::get(low.getContext());
  Location loc = s.getLoc();
  s.setType(f32);
  OpBuilder b = OpBuilder::atBlockBegin(&block);
  Value rounded = arith::TruncFOp::create(b, loc, low, s);
  s.replaceAllUsesExcept(rounded, rounded.getDefiningOp());
  Operation *yield = block.getTerminator();
  b.setInsertionPoint(yield);
  yield->setOperand(0,
                    arith::ExtFOp::create(b, loc, f32, yield->getOperand(0)));
}

struct PromoteLowPrecisionPass
    : public loom::impl::PromoteLowPrecisionPassBase<PromoteLowPrecisionPass> {
  void runOnOperation() override {
    SmallVector<Operation *> ops;
    getOperation().walk([&](Operation *op) {
      if (needsPromotion(op))
        ops.push_back(op);
    });
    for (Operation *op : ops) {
      OpBuilder b(op);
      Location loc = op->getLoc();
      OperationState state(loc, op->getName());
      // Attention's captures keep their type: its regions read them.
      unsigned promotedOperands =
          isa<loom::AttentionOp>(op) ? 3 : op->getNumOperands();
      for (auto [n, operand] : llvm::enumerate(op->getOperands())) {
        Type wide = n < promotedOperands ? widened(operand.getType()) : Type();
        state.addOperands(
            wide ? loom::CastOp::create(b, loc, wide, operand).getResult()
                 : operand);
      }
      for (Type type : op->getResultTypes()) {
        Type wide = widened(type);
        state.addTypes(wide ? wide : type);
      }
      state.propertiesAttr = op->getPropertiesAsAttribute();
      state.addAttributes(llvm::to_vector(op->getDiscardableAttrs()));
      for (Region &region : op->getRegions())
        state.addRegion()->takeBody(region);
      Operation *promoted = b.create(state);
      if (auto attention = dyn_cast<loom::AttentionOp>(promoted))
        widenScoreRegion(attention.getScore());
      for (auto [old, now] :
           llvm::zip(op->getResults(), promoted->getResults())) {
        Value result = now;
        if (old.getType() != now.getType())
          result = loom::CastOp::create(b, loc, old.getType(), now);
        old.replaceAllUsesWith(result);
      }
      op->erase();
    }
  }
};

} // namespace
