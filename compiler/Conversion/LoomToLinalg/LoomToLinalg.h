//===- LoomToLinalg.h - Lower loom to linalg --------------------*- C++ -*-===//
//
// This file declares the patterns and the pass that lower every `loom` op to
// linalg, tensor, arith and math ops on tensors.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_COMPILER_CONVERSION_LOOMTOLINALG_LOOMTOLINALG_H
#define LOOM_COMPILER_CONVERSION_LOOMTOLINALG_LOOMTOLINALG_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir {
class RewritePatternSet;

namespace loom {

#define GEN_PASS_DECL_CONVERTLOOMTOLINALGPASS
#include "compiler/Conversion/Passes.h.inc"

/// Adds the patterns that rewrite each `loom` op into linalg, tensor, arith
/// and math ops on tensors. The patterns are conversion patterns: use them
/// with a ConversionTarget that marks the `loom` dialect illegal.
void populateLoomToLinalgPatterns(RewritePatternSet &patterns);

} // namespace loom
} // namespace mlir

#endif // LOOM_COMPILER_CONVERSION_LOOMTOLINALG_LOOMTOLINALG_H
