//===- Passes.h - Loom conversion passes ------------------------*- C++ -*-===//
//
// This file declares the passes that lower the `loom` dialect to upstream
// dialects, and their registration.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_COMPILER_CONVERSION_PASSES_H
#define LOOM_COMPILER_CONVERSION_PASSES_H

#include "compiler/Conversion/LoomToLinalg/LoomToLinalg.h"

namespace mlir::loom {

#define GEN_PASS_REGISTRATION
#include "compiler/Conversion/Passes.h.inc"

} // namespace mlir::loom

#endif // LOOM_COMPILER_CONVERSION_PASSES_H
