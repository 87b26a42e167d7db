//===- LoomOps.h - Loom dialect ops -----------------------------*- C++ -*-===//
//
// This file declares the ops of the `loom` dialect and the helpers that
// build them with checked shapes.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DIALECTS_LOOM_IR_LOOMOPS_H
#define LOOM_DIALECTS_LOOM_IR_LOOMOPS_H

#include "dialects/loom/IR/LoomDialect.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define GET_OP_CLASSES
#include "dialects/loom/IR/LoomOps.h.inc"

namespace mlir::loom {

/// Creates the op described by `state` at the builder's insertion point. When
/// `state` has no result types and the op infers them, they are inferred
/// first. Shape or attribute errors are emitted at `state.location` and
/// nothing is created, so callers (the importer) never build invalid IR.
FailureOr<Operation *> createChecked(OpBuilder &builder, OperationState &state);

/// Builds the one-result `loom` op `name` (e.g. "loom.add") with inferred
/// result type, or with `resultType` for ops that do not infer one (iota,
/// cast, constant). Errors are emitted at `loc`; used by graph passes that
/// write `loom` ops.
FailureOr<Value> buildChecked(OpBuilder &builder, Location loc, StringRef name,
                              ValueRange operands,
                              ArrayRef<NamedAttribute> attrs = {},
                              Type resultType = {});

/// Broadcasts shapes with the dialect's rule (see the dialect description).
/// Returns failure when two dimensions are incompatible.
FailureOr<SmallVector<int64_t>> broadcastShapes(ArrayRef<int64_t> lhs,
                                                ArrayRef<int64_t> rhs);

/// Returns true for the element types a `loom` tensor may have.
bool isSupportedElementType(Type type);

/// Checks the `mask` and `score` regions of an attention op (`loom.attention`,
/// `fuse.attention`): each is empty or one block whose arguments are `(b, h,
/// i, j: index)`, then `s: element` for the score region, then one argument
/// of the type of each capture; the mask yields an `i1` and the score an
/// `element`. Errors are emitted on `op`.
LogicalResult verifyAttentionRegions(Operation *op, Region &mask,
                                     Region &score, Type element,
                                     TypeRange captures);

} // namespace mlir::loom

#endif // LOOM_DIALECTS_LOOM_IR_LOOMOPS_H
