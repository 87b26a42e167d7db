//===- Passes.h - Passes that form fused kernels ----------------*- C++ -*-===//
//
// This file declares the graph passes that replace `loom` composites by
// `fuse` ops, and their registration.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DIALECTS_FUSE_TRANSFORMS_PASSES_H
#define LOOM_DIALECTS_FUSE_TRANSFORMS_PASSES_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::fuse {

#define GEN_PASS_DECL
#include "dialects/fuse/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "dialects/fuse/Transforms/Passes.h.inc"

} // namespace mlir::fuse

#endif // LOOM_DIALECTS_FUSE_TRANSFORMS_PASSES_H
