//===- Importer.h - Import of .loom modules into MLIR -----------*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file declares the importer that turns a checked ModuleAST into a
// builtin module of `func.func` ops, one per `graph`, whose bodies are `loom`
// dialect ops. Calls of defs and graphs are inlined at import time so that the
// params and states of a callee become arguments of the entry graph. The
// rules (argument order, attributes, operators, scalar operands) are
// documented in docs/language.md, "Import into the loom dialect".
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_FRONTEND_IMPORTER_H
#define LOOM_FRONTEND_IMPORTER_H

#include "frontend/AST.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace llvm {
class SourceMgr;
} // namespace llvm

namespace mlir {
class MLIRContext;
} // namespace mlir

namespace loom {
namespace frontend {

/// Imports `m`, which must have passed checkModule, into `context` (the
/// `loom` and `func` dialects are loaded as needed). Ops get FileLineColLoc
/// locations named after ModuleAST::filename, wrapped in CallSiteLoc for
/// inlined calls. Errors are emitted as MLIR diagnostics at those locations
/// (install a SourceMgrDiagnosticHandler on `sm` to print them with the
/// source line); errors of compile-time evaluation are printed through `sm`.
/// The importer stops at the first error and returns null; on success the
/// module has been verified.
mlir::OwningOpRef<mlir::ModuleOp> importModule(const ModuleAST &m,
                                               mlir::MLIRContext &context,
                                               llvm::SourceMgr &sm);

} // namespace frontend
} // namespace loom

#endif // LOOM_FRONTEND_IMPORTER_H
