//===- Config.h - Config evaluation and overrides ---------------*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file declares the compile-time evaluator of the `.loom` language: the
// values of `config` declarations, the overrides that `--define NAME=VALUE`
// and `--config FILE.json` apply to them, and the evaluation of type dims and
// keyword attributes of ops, which the importer needs as constants.
//
// Arithmetic follows Python: `/` is true division (always float), `//` floors,
// `%` takes the sign of the divisor, `int ** int` stays int for a non-negative
// exponent, and integer overflow is an error rather than a wrap-around.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_FRONTEND_CONFIG_H
#define LOOM_FRONTEND_CONFIG_H

#include "frontend/AST.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <optional>
#include <string>

namespace llvm {
class SourceMgr;
} // namespace llvm

namespace loom {
namespace frontend {

/// Evaluates, in declaration order, every config that no override replaced,
/// storing the results in ConfigDecl::value (and, the first time,
/// ConfigDecl::declaredKind). A config may refer only to configs declared
/// before it. Prints the first error through `sm` and returns false.
/// parseModule calls this already; applyConfigOverrides calls it again.
bool evaluateConfigs(ModuleAST &m, llvm::SourceMgr &sm);

/// Applies `--config FILE.json` (when `configJsonPath` is not empty) and then
/// `--define NAME=VALUE` overrides (so defines win), and re-evaluates the
/// configs defined from the overridden ones.
///
/// The JSON file must hold one object. Keys that are not configs of the
/// module are ignored, whatever their value; null values are ignored; a value
/// of a kind that does not fit the config (a string for an int config, a
/// float for an int config, an array, ...) is an error naming the key. An int
/// is accepted for a float config. A define of an undeclared config is an
/// error. A define's VALUE is read as bool (`true`/`false`), int, float or
/// string (quotes optional); for a string config the text is always taken as
/// the string.
///
/// Errors are printed through `sm` (JSON errors as `FILE: error: ...`,
/// define errors as `error: --define ...`); returns false on error.
bool applyConfigOverrides(ModuleAST &m, llvm::ArrayRef<std::string> defines,
                          llvm::StringRef configJsonPath, llvm::SourceMgr &sm);

/// Evaluates a dim of a type: returns an Int (>= 0) for a literal or a config
/// expression, or a Symbol for a name that is not a config (a symbolic dim,
/// bound at run time). Anything else (a float config, arithmetic on a
/// symbolic dim, a negative size) is an error printed through `sm` when `sm`
/// is not null. Configs must have been evaluated.
std::optional<ConstValue> evaluateDim(const ModuleAST &m, const Expr &dim,
                                      llvm::SourceMgr *sm);

/// Evaluates a compile-time expression inside graph `g` (e.g. a keyword
/// attribute): literals, configs, lists, unary and binary operators, `min`
/// and `max`; a symbolic dim of `g` gives a Symbol and a mask of `g` a Mask
/// (neither may take part in arithmetic). A tensor value of `g` is an error.
/// Errors are printed through `sm` when it is not null.
std::optional<ConstValue> evaluateConstant(const ModuleAST &m, const Expr &e,
                                           const GraphAST *g,
                                           llvm::SourceMgr *sm);

/// Returns the symbolic dims of `g` in order of first appearance: the names
/// that appear alone as a dim in the types of its inputs, outputs, params and
/// states (those of the taken branches) and are not configs.
llvm::SmallVector<std::string> getSymbolicDims(const ModuleAST &m,
                                               const GraphAST &g);

/// Whether `name` is a function of compile-time expressions: min, max, log,
/// exp, sqrt, floor, ceil, abs.
bool isConfigFunction(llvm::StringRef name);

/// Evaluates the condition of an `if` in graph `g` (null outside a graph): a
/// config expression that must give a bool. A name of the graph (a tensor, a
/// symbolic dim) is an error saying what it is. Errors are printed through
/// `sm` when it is not null.
std::optional<bool> evaluateCondition(const ModuleAST &m, const Expr &condition,
                                      const GraphAST *g, llvm::SourceMgr *sm);

/// Returns the index of the branch of `stmt` that is taken: the first whose
/// condition is true, or the final `else`; -1 when none is, or when a
/// condition cannot be evaluated (checkModule reports that).
int getTakenBranch(const ModuleAST &m, const IfStmt &stmt, const GraphAST *g);

/// Returns the statements of `g` that take part in it, in order: those
/// outside any `if`, and those of the taken branch of each `if` (recursively)
/// in its place.
llvm::SmallVector<const Stmt *> getActiveStmts(const ModuleAST &m,
                                               const GraphAST &g);

/// Returns the `prefix` of `g`: its string, the value of its string config,
/// or "" when it has none.
std::string getGraphPrefix(const ModuleAST &m, const GraphAST &g);

} // namespace frontend
} // namespace loom

#endif // LOOM_FRONTEND_CONFIG_H
