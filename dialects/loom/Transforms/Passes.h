//===- Passes.h - Loom dialect passes ---------------------------*- C++ -*-===//
//
// This file declares the passes over the `loom` dialect and their
// registration.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DIALECTS_LOOM_TRANSFORMS_PASSES_H
#define LOOM_DIALECTS_LOOM_TRANSFORMS_PASSES_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::loom {

#define GEN_PASS_DECL
#include "dialects/loom/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "dialects/loom/Transforms/Passes.h.inc"

} // namespace mlir::loom

#endif // LOOM_DIALECTS_LOOM_TRANSFORMS_PASSES_H
