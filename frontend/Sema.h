//===- Sema.h - Semantic checks of the .loom language -----------*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file declares the semantic checks the frontend does before import:
// names, assignments, types, calls between graphs and defs. What an op name
// means and whether its operands fit is left to the importer.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_FRONTEND_SEMA_H
#define LOOM_FRONTEND_SEMA_H

#include "frontend/AST.h"

#include <string>

namespace llvm {
class SourceMgr;
} // namespace llvm

namespace loom {
namespace frontend {

/// A function usable in mask and score bodies: a built-in mask
/// (`causal()`, `ancestor(tin, tout)`, ...) or a scalar function (`select`,
/// `min`, `exp`, ...). `params` names the arguments for messages; a
/// `minArgs` below `params.size()` means "at least minArgs" (min, max).
struct MaskFunction {
  llvm::StringRef name;
  bool isBuiltinMask;
  unsigned minArgs;
  llvm::StringRef params;
};

/// Returns the mask-body function called `name`, or null.
const MaskFunction *lookupMaskFunction(llvm::StringRef name);

/// Returns the names of every mask-body function, comma separated, for
/// messages.
std::string listMaskFunctions(bool builtinMasksOnly);

/// Checks `m` (whose configs must have been evaluated, as parseModule and
/// applyConfigOverrides do) and prints the first error through `sm`:
/// redefinitions (graphs, inputs, outputs, params, states, masks, locals,
/// and names taken by configs), undefined names and uses before assignment,
/// outputs never assigned, assignments to inputs, params, masks and configs,
/// states or outputs assigned twice, dims that are not non-negative integers
/// or bare symbolic names, keyword arguments that are not compile-time values,
/// masks used as operands, indexing outside a mask body, mask and score
/// declarations (parameter counts, self-reference, the functions they call)
/// and the `mask=` and `score=` keywords of `attention`, strings used as
/// operands, recursion between graphs/defs, and, for calls of a def or graph,
/// the number of inputs, the `prefix=` keyword and the number of results.
/// Returns false on error.
bool checkModule(const ModuleAST &m, llvm::SourceMgr &sm);

} // namespace frontend
} // namespace loom

#endif // LOOM_FRONTEND_SEMA_H
