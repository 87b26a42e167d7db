//===- CpuEntryAbi.cpp - Destination-passing entry functions ----*- C++ -*-===//
//
// This file implements loom-cpu-entry-abi: each entry graph becomes a
// function over memrefs in the argument order of the artifact ABI, whose
// outputs are written into buffers the runtime allocated.
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CPU/Passes.h"

#include "loom/abi.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::loom::cpu {
#define GEN_PASS_DEF_CPUENTRYABIPASS
#include "compiler/Target/CPU/Passes.h.inc"
} // namespace mlir::loom::cpu

using namespace mlir;

namespace {

static StringRef roleOf(DictionaryAttr attrs) {
  if (!attrs)
    return {};
  if (auto role = attrs.getAs<StringAttr>("loom.role"))
    return role.getValue();
  return {};
}

static StringRef nameOf(DictionaryAttr attrs) {
  if (!attrs)
    return {};
  if (auto name = attrs.getAs<StringAttr>("loom.name"))
    return name.getValue();
  return {};
}

static MemRefType memrefFor(Type type) {
  auto tensor = cast<RankedTensorType>(type);
  return MemRefType::get(tensor.getShape(), tensor.getElementType());
}

/// The arguments of `func`'s entry block that `value` is computed from.
static llvm::SmallDenseSet<unsigned> argumentsUsedBy(func::FuncOp func,
                                                     Value value) {
  llvm::SmallDenseSet<unsigned> args;
  llvm::SmallPtrSet<Operation *, 32> seen;
  SmallVector<Value> work = {value};
  Block *entry = &func.getBody().front();
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (auto arg = dyn_cast<BlockArgument>(v)) {
      if (arg.getOwner() == entry)
        args.insert(arg.getArgNumber());
      continue;
    }
    Operation *op = v.getDefiningOp();
    if (!op || !seen.insert(op).second)
      continue;
    // Operands of the op and values its regions capture from above.
    op->walk([&](Operation *nested) {
      for (Value operand : nested->getOperands())
        if (nested == op || !op->isAncestor(operand.getParentRegion()
                                                ->getParentOp()))
          work.push_back(operand);
    });
  }
  return args;
}

/// Rewrites one entry. The original body moves into a private function that
/// the new entry calls; the `inline` pass that follows in the pipeline merges
/// the two.
static LogicalResult rewriteEntry(func::FuncOp func) {
  FunctionType type = func.getFunctionType();
  for (Type t : llvm::concat<const Type>(type.getInputs(), type.getResults()))
    if (!isa<RankedTensorType>(t))
      return func.emitOpError("entry signature must use ranked tensors only");

  // Map state results to state arguments by name.
  SmallVector<int> stateArgOfResult(type.getNumResults(), -1);
  for (unsigned r = 0; r < type.getNumResults(); ++r) {
    DictionaryAttr attrs = func.getResultAttrDict(r);
    StringRef role = roleOf(attrs);
    if (role == "output")
      continue;
    if (role != "state")
      return func.emitOpError("result ")
             << r << " has no loom.role of 'output' or 'state'";
    for (unsigned a = 0; a < type.getNumInputs(); ++a)
      if (roleOf(func.getArgAttrDict(a)) == "state" &&
          nameOf(func.getArgAttrDict(a)) == nameOf(attrs))
        stateArgOfResult[r] = a;
    if (stateArgOfResult[r] < 0)
      return func.emitOpError("state result '")
             << nameOf(attrs) << "' has no state argument";
    if (func.getArgumentTypes()[stateArgOfResult[r]] != type.getResult(r))
      return func.emitOpError("state '")
             << nameOf(attrs) << "' changes type across the call";
  }

  OpBuilder builder(func);
  std::string name = func.getSymName().str();
  func.setSymName(name + ".body");
  func.setPrivate();

  SmallVector<Type> argTypes;
  SmallVector<DictionaryAttr> argAttrs;
  for (unsigned a = 0; a < type.getNumInputs(); ++a) {
    argTypes.push_back(memrefFor(type.getInput(a)));
    argAttrs.push_back(func.getArgAttrDict(a));
  }
  SmallVector<unsigned> outputResults;
  for (unsigned r = 0; r < type.getNumResults(); ++r) {
    if (stateArgOfResult[r] >= 0)
      continue;
    outputResults.push_back(r);
    argTypes.push_back(memrefFor(type.getResult(r)));
    argAttrs.push_back(func.getResultAttrDict(r));
  }

  // The entry returns 0, or a LOOM_ENTRY_ERROR_* code of abi.h.
  auto entry = func::FuncOp::create(
      builder, func.getLoc(), name,
      builder.getFunctionType(argTypes, {builder.getI32Type()}));
  for (auto [i, attrs] : llvm::enumerate(argAttrs))
    if (attrs)
      entry.setArgAttrs(i, attrs);
  for (NamedAttribute attr : func->getDiscardableAttrs())
    entry->setAttr(attr.getName(), attr.getValue());
  entry->setAttr("llvm.emit_c_interface", builder.getUnitAttr());

  Block *block = entry.addEntryBlock();
  builder.setInsertionPointToStart(block);
  Location loc = func.getLoc();
  // State buffers are writable: a state updated in place (a cache write at
  // one position) is then computed in the session's buffer, and its final
  // write-back below copies the buffer onto itself, which folds away.
  SmallVector<Value> tensors;
  for (unsigned a = 0; a < type.getNumInputs(); ++a)
    tensors.push_back(bufferization::ToTensorOp::create(
        builder, loc, type.getInput(a), block->getArgument(a),
        /*restrict=*/true,
        /*writable=*/roleOf(func.getArgAttrDict(a)) == "state"));
  auto call = func::CallOp::create(builder, loc, func, tensors);

  // Outputs first, written in place where the analysis allows; state updates
  // last, as copies, so that no computation reads a state buffer after it
  // was overwritten.
  //
  // An output with `loom.unproven_dims` may have a computed size other than
  // the one the runtime allocated from its declaration: compare them first,
  // and write it only when they agree. Its value goes through a copy of its
  // own, so that no computation is redirected into the output buffer before
  // the comparison.
  Value ok = arith::ConstantIntOp::create(builder, loc, 1, 1);
  SmallVector<std::pair<Value, Value>> checked;
  for (auto [i, r] : llvm::enumerate(outputResults)) {
    Value result = call.getResult(r);
    Value buffer = block->getArgument(type.getNumInputs() + i);
    auto unproven = dyn_cast_or_null<DenseI64ArrayAttr>(
        func.getResultAttr(r, "loom.unproven_dims"));
    if (!unproven) {
      bufferization::MaterializeInDestinationOp::create(
          builder, loc, TypeRange(), result, buffer, /*restrict=*/true,
          /*writable=*/true);
      continue;
    }
    for (int64_t d : unproven.asArrayRef()) {
      Value computed = tensor::DimOp::create(builder, loc, result, d);
      Value allocated = memref::DimOp::create(builder, loc, buffer, d);
      Value same = arith::CmpIOp::create(builder, loc, arith::CmpIPredicate::eq,
                                         computed, allocated);
      ok = arith::AndIOp::create(builder, loc, ok, same);
    }
    Value snapshot = bufferization::AllocTensorOp::create(
        builder, loc, cast<RankedTensorType>(result.getType()),
        /*dynamicSizes=*/ValueRange(), /*copy=*/result);
    checked.emplace_back(snapshot, buffer);
  }
  if (!checked.empty()) {
    auto guard = scf::IfOp::create(builder, loc, ok, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard insertion(builder);
    builder.setInsertionPointToStart(guard.thenBlock());
    for (auto [value, buffer] : checked)
      bufferization::MaterializeInDestinationOp::create(
          builder, loc, TypeRange(), value, buffer, /*restrict=*/true,
          /*writable=*/true);
  }
  // State inputs are views of the session's buffers. A state's new value
  // computed from another state's old value (a swap, a copy) may alias that
  // old buffer, which an earlier write-back would already have replaced:
  // snapshot such values first, then write them all back. A value computed
  // only from its own state (and inputs and params) needs no snapshot.
  auto returned =
      cast<func::ReturnOp>(func.getBody().front().getTerminator());
  SmallVector<Value> newStates(type.getNumResults());
  for (unsigned r = 0; r < type.getNumResults(); ++r) {
    if (stateArgOfResult[r] < 0)
      continue;
    newStates[r] = call.getResult(r);
    bool readsOtherState = llvm::any_of(
        argumentsUsedBy(func, returned.getOperand(r)), [&](unsigned a) {
          return a != static_cast<unsigned>(stateArgOfResult[r]) &&
                 roleOf(func.getArgAttrDict(a)) == "state";
        });
    if (readsOtherState)
      newStates[r] = bufferization::AllocTensorOp::create(
          builder, loc, cast<RankedTensorType>(type.getResult(r)),
          /*dynamicSizes=*/ValueRange(), /*copy=*/newStates[r]);
  }
  for (unsigned r = 0; r < type.getNumResults(); ++r) {
    if (stateArgOfResult[r] < 0)
      continue;
    bufferization::MaterializeInDestinationOp::create(
        builder, loc, TypeRange(), newStates[r],
        block->getArgument(stateArgOfResult[r]), /*restrict=*/false,
        /*writable=*/true);
  }
  Value code = arith::SelectOp::create(
      builder, loc, ok, arith::ConstantIntOp::create(builder, loc, 0, 32),
      arith::ConstantIntOp::create(builder, loc, LOOM_ENTRY_ERROR_OUTPUT_SIZE,
                                   32));
  func::ReturnOp::create(builder, loc, code);

  return success();
}

struct CpuEntryAbiPass
    : public loom::cpu::impl::CpuEntryAbiPassBase<CpuEntryAbiPass> {
  void runOnOperation() override {
    SmallVector<func::FuncOp> entries;
    for (auto func : getOperation().getOps<func::FuncOp>())
      if (func.isPublic() && !func.isExternal())
        entries.push_back(func);
    for (func::FuncOp func : entries)
      if (failed(rewriteEntry(func)))
        return signalPassFailure();
  }
};
} // namespace
