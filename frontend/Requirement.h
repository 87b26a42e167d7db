//===- Requirement.h - Run-time requirements in linear form -----*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file declares the normalization of a `require` condition into the
// linear form the compiled artifact checks before a call runs:
//
//   c0 + c1 * t1 + ... + cn * tn  (>= 0 | == 0 | != 0)
//
// where each term t is a symbolic dim bound by an input or the value of a
// rank-0 integer input. Everything else in the condition (int configs,
// integer literals, and any config expression) is folded into the constant
// and the coefficients. What a name of the graph stands for is left to the
// caller, so the checks of a graph (Sema) and the import of an inlined def
// (which maps the def's names to the entry graph's inputs) share the rules.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_FRONTEND_REQUIREMENT_H
#define LOOM_FRONTEND_REQUIREMENT_H

#include "frontend/AST.h"

#include "llvm/ADT/STLFunctionalExtras.h"

#include <optional>
#include <string>
#include <vector>

namespace llvm {
class SourceMgr;
} // namespace llvm

namespace loom {
namespace frontend {

/// What a name of a requirement stands for, as the caller resolves it.
struct TermBinding {
  enum class Kind {
    /// A symbolic dim of the entry graph, named `target`.
    Symbol,
    /// Rank-0 integer input number `input` of the entry graph.
    Input,
    /// A value known at compile time (e.g. a def's symbolic dim that a call
    /// binds to a static size).
    Constant,
  };
  Kind kind = Kind::Symbol;
  std::string target;
  unsigned input = 0;
  int64_t value = 0;
};

/// One run-time term of a linear requirement with its coefficient.
struct RequirementTerm {
  TermBinding::Kind kind = TermBinding::Kind::Symbol;
  /// The entry's symbol (Symbol) or input name (Input).
  std::string target;
  /// The entry's input number (Input).
  unsigned input = 0;
  /// The name as written in the condition, shown in failure messages.
  std::string name;
  int64_t coeff = 0;
};

/// A `require` condition in linear form.
struct LinearRequirement {
  enum class Predicate { GE, EQ, NE };
  Predicate predicate = Predicate::GE;
  int64_t constant = 0;
  /// Terms with nonzero coefficients, in order of first appearance.
  std::vector<RequirementTerm> terms;
  /// The condition as written.
  std::string text;
  /// The compile-time values of the names in the condition (configs and
  /// names resolved to constants), e.g. "max_seq_len = 16", in order of first
  /// appearance; empty when there are none.
  std::string knownValues;

  /// For a requirement without terms: whether it holds.
  bool holdsWithoutTerms() const;
};

/// Resolves a name of the condition that is not a config. Returns nullopt
/// after reporting why the name cannot be used.
using TermResolver =
    llvm::function_ref<std::optional<TermBinding>(const NameExpr &)>;

/// Normalizes `condition`, which must be a comparison (`<`, `<=`, `>`, `>=`,
/// `==`, `!=`) of integer-valued linear expressions over run-time terms:
/// terms may be added, subtracted, negated and multiplied by a compile-time
/// integer; any sub-expression without terms is a config expression and
/// must evaluate to an int. Configs are looked up in `m`; other names go to
/// `resolve`. Errors (a float, a product of two terms, another operator on a
/// term, a coefficient overflow) are printed through `sm` at the offending
/// text; returns nullopt then.
std::optional<LinearRequirement> buildRequirement(const ModuleAST &m,
                                                  const Expr &condition,
                                                  llvm::StringRef text,
                                                  TermResolver resolve,
                                                  llvm::SourceMgr &sm);

} // namespace frontend
} // namespace loom

#endif // LOOM_FRONTEND_REQUIREMENT_H
