//===- Requirements.h - Run-time requirements of entries --------*- C++ -*-===//
//
// This file declares the compiler's reading of `loom.requires`, the attribute
// in which the importer records the `require` statements of an entry graph,
// and the check of those requirements for one call. The manifest builder
// turns the records into the manifest's requirement tables (abi.h); the
// interpreter path checks them itself with the message the runtime gives, so
// both paths refuse the same calls the same way.
//
// The attribute is an array with one dictionary per requirement:
//
//   {predicate = "ge" | "eq" | "ne", constant = c0 : i64,
//    terms = [{kind = "symbol", symbol = "S", name = "S", coeff = c : i64},
//             {kind = "input", arg = i : i64, name = "pos", coeff = c : i64}],
//    text = "...", configs = "...", location = "file:line:col"}
//
// meaning c0 + sum(coeff * term) compared with 0 (docs/abi.md).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_COMPILER_ARTIFACT_REQUIREMENTS_H
#define LOOM_COMPILER_ARTIFACT_REQUIREMENTS_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlir::loom {

/// The name of the function attribute.
constexpr llvm::StringLiteral kRequiresAttrName = "loom.requires";

struct RequirementTerm {
  enum class Kind { Symbol, Input };
  Kind kind = Kind::Symbol;
  /// Symbol name (Symbol).
  std::string symbol;
  /// Argument index of a rank-0 integer input (Input).
  unsigned arg = 0;
  /// The name in the requirement's text.
  std::string name;
  int64_t coeff = 0;
};

struct Requirement {
  enum class Predicate { GE, EQ, NE };
  Predicate predicate = Predicate::GE;
  int64_t constant = 0;
  std::vector<RequirementTerm> terms;
  std::string text;
  std::string configs;
  std::string location;

  /// Whether the requirement holds when term i has value `values[i]`
  /// (computed without overflow).
  bool holds(llvm::ArrayRef<int64_t> values) const;
  /// The message of a failed call of entry `entry`:
  /// `entry 'e': requirement failed: TEXT (name = value, ..., CONFIGS)
  /// [LOCATION]`, the same as the runtime's.
  std::string describeFailure(llvm::StringRef entry,
                              llvm::ArrayRef<int64_t> values) const;
};

/// Reads the `loom.requires` attribute of `func` (none: no requirements).
/// A malformed attribute (a missing or mistyped field, an unknown predicate
/// or kind, a term of an argument that is not a rank-0 i32/i64 input, a
/// requirement without terms) is an error whose reason is stored in `error`.
std::optional<std::vector<Requirement>> readRequirements(func::FuncOp func,
                                                         std::string &error);

/// One input of a call, as the check needs it.
struct CallInput {
  /// The shape of the value.
  llvm::ArrayRef<int64_t> shape;
  /// The value of a rank-0 integer input.
  int64_t scalar = 0;
};

/// Checks the requirements of entry `func` for a call with `inputs` (one per
/// input argument, in order; symbolic dims are bound by name through the
/// inputs' `loom.dims`). Returns the runtime's message for the first
/// requirement that fails (or for symbols bound to two sizes, or a malformed
/// attribute), nullopt when the call may run.
std::optional<std::string> checkRequirements(func::FuncOp func,
                                             llvm::ArrayRef<CallInput> inputs);

} // namespace mlir::loom

#endif // LOOM_COMPILER_ARTIFACT_REQUIREMENTS_H
