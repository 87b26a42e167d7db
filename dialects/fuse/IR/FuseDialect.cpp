//===- FuseDialect.cpp - Fused-kernel dialect -------------------*- C++ -*-===//
//
// This file implements the `fuse` dialect's registration and the
// bufferization of its destination-passing ops: inputs are read, the
// `outs` operands are overwritten whole (never read) and become the results.
// The regions of `fuse.attention` move to the bufferized op, where their
// capture block arguments become memrefs and read them with memref.load.
//
//===----------------------------------------------------------------------===//

#include "dialects/fuse/IR/FuseOps.h"

#include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Bufferization/IR/DstBufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
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

/// Retypes the capture block arguments of `region` (those from `first` on)
/// to the buffers' types and rewrites their reads: tensor.extract becomes
/// memref.load and tensor.dim memref.dim, wherever they are nested. The
/// driver bufferizes nested ops first, so these reads are usually memref
/// ops already, on a bufferization.to_buffer of the argument, which goes.
static LogicalResult bufferizeCaptureArguments(RewriterBase &rewriter,
                                               Operation *op, Region &region,
                                               unsigned first,
                                               ValueRange buffers) {
  if (region.empty())
    return success();
  Block &block = region.front();
  if (block.getNumArguments() != first + buffers.size())
    return op->emitOpError("region has ")
           << block.getNumArguments() << " arguments, expected "
           << first + buffers.size();
  for (auto [arg, buffer] :
       llvm::zip(block.getArguments().drop_front(first), buffers)) {
    if (!isa<TensorType>(arg.getType()))
      continue;
    arg.setType(buffer.getType());
    SmallVector<Operation *> users(arg.getUsers().begin(),
                                   arg.getUsers().end());
    for (Operation *user : users) {
      rewriter.setInsertionPoint(user);
      if (auto toBuffer = dyn_cast<bufferization::ToBufferOp>(user)) {
        Value replacement = arg;
        if (toBuffer.getType() != arg.getType()) {
          if (!memref::CastOp::areCastCompatible(arg.getType(),
                                                 toBuffer.getType()))
            return toBuffer->emitOpError("cannot read a capture of type ")
                   << arg.getType() << " as " << toBuffer.getType();
          replacement = memref::CastOp::create(rewriter, toBuffer.getLoc(),
                                               toBuffer.getType(), arg);
        }
        rewriter.replaceOp(toBuffer, replacement);
      } else if (auto extract = dyn_cast<tensor::ExtractOp>(user)) {
        rewriter.replaceOpWithNewOp<memref::LoadOp>(extract, arg,
                                                    extract.getIndices());
      } else if (auto dim = dyn_cast<tensor::DimOp>(user)) {
        rewriter.replaceOpWithNewOp<memref::DimOp>(dim, arg, dim.getIndex());
      } else {
        return user->emitOpError(
            "reads a captured tensor in a way that cannot be bufferized; "
            "only tensor.extract and tensor.dim are supported");
      }
    }
  }
  return success();
}

/// Whether `operand`, a destination of an overwriting fuse op, is read all
/// the same: the `grad_weight` of an accumulating `fuse.token_logprob_grad`.
static bool readsDestination(Operation *op, OpOperand &operand) {
  auto grad = dyn_cast<TokenLogprobGradOp>(op);
  return grad && grad.getAccumulate() &&
         &operand == &grad.getGradWeightInitMutable();
}

/// The bufferization of a fuse op in destination-passing style. With
/// `Overwriting`, the kernel writes every element of its destinations before
/// reading anything from them, so their old contents are dead (but for an
/// accumulating backward's `grad_weight`); without, it updates them in place
/// (the row-block ops of the single-pass lm-head loss).
template <typename OpTy, bool Overwriting = true>
struct OverwritingDpsBufferization
    : public bufferization::DstBufferizableOpInterfaceExternalModel<
          OverwritingDpsBufferization<OpTy, Overwriting>, OpTy> {
  bool bufferizesToMemoryRead(Operation *op, OpOperand &operand,
                              const bufferization::AnalysisState &) const {
    return !Overwriting ||
           !cast<DestinationStyleOpInterface>(op).isDpsInit(&operand) ||
           readsDestination(op, operand);
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
    for (unsigned i = 0, e = op->getNumRegions(); i < e; ++i)
      bufferized.addRegion();
    Operation *newOp = rewriter.create(bufferized);
    for (unsigned i = 0, e = op->getNumRegions(); i < e; ++i)
      newOp->getRegion(i).takeBody(op->getRegion(i));
    if constexpr (std::is_same_v<OpTy, AttentionOp>) {
      auto attention = cast<AttentionOp>(newOp);
      ValueRange captures = attention.getCaptures();
      // mask (b, h, i, j, captures...), score (b, h, i, j, s, captures...).
      if (failed(bufferizeCaptureArguments(rewriter, newOp, attention.getMask(),
                                           4, captures)) ||
          failed(bufferizeCaptureArguments(rewriter, newOp,
                                           attention.getScore(), 5, captures)))
        return failure();
      rewriter.setInsertionPoint(op);
    }
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
  AttentionOp::attachInterface<OverwritingDpsBufferization<AttentionOp>>(
      *getContext());
  TokenLogprobOp::attachInterface<OverwritingDpsBufferization<TokenLogprobOp>>(
      *getContext());
  TokenLogprobGradOp::attachInterface<
      OverwritingDpsBufferization<TokenLogprobGradOp>>(*getContext());
  TokenLogprobRowsOp::attachInterface<
      OverwritingDpsBufferization<TokenLogprobRowsOp, false>>(*getContext());
  TokenLogprobRowsGradOp::attachInterface<
      OverwritingDpsBufferization<TokenLogprobRowsGradOp, false>>(
      *getContext());
}
