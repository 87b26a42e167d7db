//===- MathApproximation.cpp - Vectorizable f32 math ------------*- C++ -*-===//
//
// This file implements loom-cpu-math-approximation: f32 transcendental
// functions become polynomial approximations made of arithmetic, which LLVM
// vectorizes, instead of scalar C library calls.
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CPU/Passes.h"

#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/StringSwitch.h"

namespace mlir::loom::cpu {
#define GEN_PASS_DEF_CPUMATHAPPROXIMATIONPASS
#include "compiler/Target/CPU/Passes.h.inc"
} // namespace mlir::loom::cpu

using namespace mlir;

namespace {
struct CpuMathApproximationPass
    : public loom::cpu::impl::CpuMathApproximationPassBase<
          CpuMathApproximationPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    // sin and cos stay library calls: their approximations lose accuracy on
    // the large arguments rotary embeddings produce.
    populateMathPolynomialApproximationPatterns(patterns, [](StringRef name) {
      name.consume_front("math.");
      return llvm::StringSwitch<bool>(name)
          .Cases({"exp", "expm1", "log", "log1p", "log2", "tanh", "erf"}, true)
          .Default(false);
    });
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
