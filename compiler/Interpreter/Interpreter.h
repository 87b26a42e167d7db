//===- Interpreter.h - Reference evaluator of loom --------------*- C++ -*-===//
//
// This file declares the reference interpreter of the `loom` dialect: it
// evaluates a `func.func` made of `loom` ops, `func.call` and `func.return`
// on concrete tensors, computing everything in float64 whatever the declared
// element types (integers with int64 arithmetic, bools as 0/1). It is the
// independent oracle that compiled kernels are checked against, so it shares
// no code with the lowerings and favors obvious loops over clever ones.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_COMPILER_INTERPRETER_INTERPRETER_H
#define LOOM_COMPILER_INTERPRETER_INTERPRETER_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"

#include <cstdint>
#include <vector>

namespace mlir::loom::interp {

/// A dense row-major tensor whose elements are held as doubles. `dtype` is a
/// `loom_dtype_t` code from `loom/abi.h` (F32 = 1, F64 = 2, I32 = 3, I64 = 4,
/// BOOL = 5, F16 = 6, BF16 = 7) and says how the values are interpreted:
/// integers are whole numbers (exact below 2^53), bools are 0 or 1.
struct Tensor {
  uint32_t dtype = 0;
  std::vector<int64_t> shape;
  std::vector<double> data;

  /// Returns the product of `shape` (1 for a scalar).
  int64_t getNumElements() const;
};

/// Returns the `loom_dtype_t` code of a tensor element type, or
/// LOOM_DTYPE_INVALID (0) when the interpreter does not support it.
uint32_t getDtype(Type elementType);

/// Evaluates `func` on `args` (one per func argument, in order). Checks the
/// dtype, rank and static dimensions of every argument against the func's
/// types, binds the `?` dimensions (and, when arguments carry `loom.dims`,
/// checks that a symbol has one size across them), and returns the func's
/// results. Arguments with an integer dtype are truncated toward zero and
/// bools normalized to 0/1. On bad input (mismatched arguments, sizes that
/// disagree at run time, integer division by zero, an op the interpreter does
/// not know) it emits an error at the func's or the failing op's location and
/// returns failure; it never crashes. `func.call` evaluates the callee.
FailureOr<std::vector<Tensor>> evaluate(func::FuncOp func,
                                        ArrayRef<Tensor> args);

/// Looks up the func named `entry` in `module` and evaluates it as above.
FailureOr<std::vector<Tensor>> evaluate(ModuleOp module, StringRef entry,
                                        ArrayRef<Tensor> args);

} // namespace mlir::loom::interp

#endif // LOOM_COMPILER_INTERPRETER_INTERPRETER_H
