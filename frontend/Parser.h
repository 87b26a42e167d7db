//===- Parser.h - Parser of the .loom language ------------------*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file declares the entry point that parses a `.loom` buffer into a
// ModuleAST. The grammar is documented in docs/language.md.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_FRONTEND_PARSER_H
#define LOOM_FRONTEND_PARSER_H

#include "frontend/AST.h"

#include <memory>

namespace llvm {
class SourceMgr;
} // namespace llvm

namespace loom {
namespace frontend {

/// Parses the main buffer of `sm` and evaluates its configs with their
/// default values (so every ConfigDecl has a value and a declaredKind). On a
/// syntax error or a config evaluation error, prints
/// `file:line:col: error: ...` through `sm` and returns null. Semantic checks
/// of graph bodies are separate (checkModule in frontend/Sema.h).
std::unique_ptr<ModuleAST> parseModule(llvm::SourceMgr &sm);

} // namespace frontend
} // namespace loom

#endif // LOOM_FRONTEND_PARSER_H
