//===- FuseDialect.cpp - Fused-kernel dialect -------------------*- C++ -*-===//
//
// This file implements the `fuse` dialect's registration and the
// bufferization of its destination-passing ops: inputs are read, the
// `outs` operand is overwritten whole (never read) and becomes the result.
//
//===----------------------------------------------------------------------===//

#include "dialects/fuse/IR/FuseOps.h"

#include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Bufferization/IR/DstBufferizableOpInterfaceImpl.h"
#include "mlir/Transforms/InliningUtils.h"

using namespace mlir;
using namespace mlir::fuse;

#include "dialects/fuse/IR/FuseDialect.cpp.inc"

namespace {

/// A `fuse` op reads only its operands (its regions are isolated scalar
/// code), so it may be inlined anywhere (the entry wrappers inline the graph
/// bodies).
struct FuseInlinerInterface : public DialectInlinerInterface {
  using DialectInlinerInterface::DialectInlinerInterface;
  bool isLegalToInline(Operation *, Region *, bool, IRMapping &) const final {
    return true;
  }
  bool isLegalToInline(Region *, Region *, bool, IRMapping &) const final {
    return true;
  }
};

template <typename OpTy>
struct OverwritingDpsBufferization
    : public bufferization::DstBufferizableOpInterfaceExternalModel<
          OverwritingDpsBufferization<OpTy>, OpTy> {
  /// The kernel writes every element of its destination before reading
  /// anything from it, so the destination's old contents are dead.
  bool bufferizesToMemoryRead(Operation *op, OpOperand &operand,
                              const bufferization::AnalysisState &) const {
    return !cast<DestinationStyleOpInterface>(op).isDpsInit(&operand);
  }

  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const bufferization::BufferizationOptions &options,
                          bufferization::BufferizationState &state) const {
    auto dps = cast<DestinationStyleOpInterface>(op);
    if (dps.hasPureBufferSemantics())
      return success();
    SmallVector<Value> buffers;
    for (Value operand : op->getOperands()) {
      if (!isa<TensorType>(operand.getType())) {
        buffers.push_back(operand);
        continue;
      }
      FailureOr<Value> buffer =
          bufferization::getBuffer(rewriter, operand, options, state);
      if (failed(buffer))
        return failure();
      buffers.push_back(*buffer);
    }
    rewriter.setInsertionPoint(op);
    OperationState bufferized(op->getLoc(), op->getName(), buffers,
                              /*types=*/TypeRange(), op->getAttrs());
    Operation *newOp = rewriter.create(bufferized);
    SmallVector<Value> results;
    for (OpOperand &init : dps.getDpsInitsMutable())
      results.push_back(newOp->getOperand(init.getOperandNumber()));
    bufferization::replaceOpWithBufferizedValues(rewriter, op, results);
    return success();
  }
};

} // namespace

void FuseDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/fuse/IR/FuseOps.cpp.inc"
      >();
  addInterfaces<FuseInlinerInterface>();
  MlaDecodeOp::attachInterface<OverwritingDpsBufferization<MlaDecodeOp>>(
      *getContext());
}
