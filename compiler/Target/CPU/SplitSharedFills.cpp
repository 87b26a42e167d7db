//===- SplitSharedFills.cpp - One fill per consumer -------------*- C++ -*-===//
//
// This file implements loom-cpu-split-shared-fills: a `linalg.fill` on
// tensors used more than once is cloned, with its `tensor.empty`, before
// each use, so that bufferization fills each destination in place instead of
// filling once and copying.
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CPU/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"

namespace mlir::loom::cpu {
#define GEN_PASS_DEF_CPUSPLITSHAREDFILLSPASS
#include "compiler/Target/CPU/Passes.h.inc"
} // namespace mlir::loom::cpu

using namespace mlir;

namespace {
struct CpuSplitSharedFillsPass
    : public loom::cpu::impl::CpuSplitSharedFillsPassBase<
          CpuSplitSharedFillsPass> {
  void runOnOperation() override {
    SmallVector<linalg::FillOp> fills;
    getOperation().walk([&](linalg::FillOp fill) {
      if (fill.hasPureTensorSemantics() && !fill->getResult(0).hasOneUse() &&
          fill.getOutputs()[0].getDefiningOp<tensor::EmptyOp>())
        fills.push_back(fill);
    });
    for (linalg::FillOp fill : fills) {
      auto empty = fill.getOutputs()[0].getDefiningOp<tensor::EmptyOp>();
      SmallVector<OpOperand *> uses;
      for (OpOperand &use : fill->getResult(0).getUses())
        uses.push_back(&use);
      // Every use gets a fill right before it, which also puts a product's
      // zero fill next to the product for loom-cpu-matmul-to-runtime.
      for (OpOperand *use : uses) {
        OpBuilder builder(use->getOwner());
        Operation *init = builder.clone(*empty);
        IRMapping mapping;
        mapping.map(empty.getResult(), init->getResult(0));
        Operation *copy = builder.clone(*fill, mapping);
        use->set(copy->getResult(0));
      }
      fill->erase();
      if (empty->use_empty())
        empty->erase();
    }
  }
};
} // namespace
