//===- CopyToLinalg.cpp - Buffer copies as linalg ---------------*- C++ -*-===//
//
// This file implements loom-cpu-copy-to-linalg: memref.copy becomes
// linalg.copy so that copies are generated loops, never calls of a runtime
// library that artifacts do not link. A copy of a buffer onto itself (left
// by materializing a result that was computed in its destination) goes,
// also where the source is a loop's result that the loop passes through
// unchanged from that buffer (a destination updated in place by each step,
// such as the gradient of the single-pass lm-head loss): the loop's
// canonicalization gives its result back as the buffer, and so does that of
// an `scf.if` whose branches both yield the same buffer.
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CPU/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::loom::cpu {
#define GEN_PASS_DEF_CPUCOPYTOLINALGPASS
#include "compiler/Target/CPU/Passes.h.inc"
} // namespace mlir::loom::cpu

using namespace mlir;

namespace {
struct CopyToLinalgPattern : public OpRewritePattern<memref::CopyOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(memref::CopyOp op,
                                PatternRewriter &rewriter) const override {
    auto source = dyn_cast<MemRefType>(op.getSource().getType());
    auto target = dyn_cast<MemRefType>(op.getTarget().getType());
    if (op.getSource() == op.getTarget()) {
      rewriter.eraseOp(op);
      return success();
    }
    if (!source || !target)
      return rewriter.notifyMatchFailure(op, "unranked memrefs");
    rewriter.replaceOpWithNewOp<linalg::CopyOp>(op, op.getSource(),
                                                op.getTarget());
    return success();
  }
};

struct CpuCopyToLinalgPass
    : public loom::cpu::impl::CpuCopyToLinalgPassBase<CpuCopyToLinalgPass> {
  void runOnOperation() override {
    // Loops first, so that the copies see the buffers their results are.
    RewritePatternSet loops(&getContext());
    scf::ForOp::getCanonicalizationPatterns(loops, &getContext());
    scf::IfOp::getCanonicalizationPatterns(loops, &getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(loops))))
      return signalPassFailure();
    RewritePatternSet patterns(&getContext());
    patterns.add<CopyToLinalgPattern>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
