//===- FuseOps.cpp - Fused-kernel dialect ops -------------------*- C++ -*-===//
//
// This file implements the verifiers and memory effects of the `fuse` ops.
//
//===----------------------------------------------------------------------===//

#include "dialects/fuse/IR/FuseOps.h"
#include "dialects/loom/IR/LoomOps.h"

#include "mlir/IR/OpImplementation.h"

#include <cmath>

using namespace mlir;
using namespace mlir::fuse;

#define GET_OP_CLASSES
#include "dialects/fuse/IR/FuseOps.cpp.inc"

namespace {

/// An operand of a fuse op, with the name its diagnostics use and the rank
/// it must have.
struct Operand {
  StringRef name;
  ShapedType type;
  int64_t rank;
};

/// Checks that `operands` are all tensors or all memrefs of the first one's
/// float element type, each of its rank.
LogicalResult checkOperands(Operation *op, ArrayRef<Operand> operands,
                            StringRef elementWhat) {
  bool tensors = isa<TensorType>(operands[0].type);
  Type element = operands[0].type.getElementType();
  if (!isa<FloatType>(element))
    return op->emitOpError() << elementWhat << " floats, got " << element;
  for (const Operand &o : operands) {
    if (isa<TensorType>(o.type) != tensors)
      return op->emitOpError("operands must be all tensors or all memrefs");
    if (o.type.getRank() != o.rank)
      return op->emitOpError()
             << o.name << " must have rank " << o.rank << ", got " << o.type;
    if (o.type.getElementType() != element)
      return op->emitOpError() << o.name << " has element type "
                               << o.type.getElementType() << ", not "
                               << element;
  }
  return success();
}

/// Checks that dimension `da` of operand `a` and `db` of `b` agree where
/// both are static; `what` names the size in the message.
LogicalResult checkSameSize(Operation *op, ArrayRef<Operand> operands,
                            unsigned a, int64_t da, unsigned b, int64_t db,
                            const Twine &what) {
  int64_t x = operands[a].type.getDimSize(da);
  int64_t y = operands[b].type.getDimSize(db);
  if (ShapedType::isDynamic(x) || ShapedType::isDynamic(y) || x == y)
    return success();
  return op->emitOpError() << what << " is " << x << " in " << operands[a].name
                           << " but " << y << " in " << operands[b].name;
}

/// The memory effects of a fuse op on memrefs: it reads its ins and writes
/// its inits.
void getDpsEffects(
    DestinationStyleOpInterface op,
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  for (OpOperand &operand : op->getOpOperands()) {
    if (!isa<MemRefType>(operand.get().getType()))
      continue;
    if (op.isDpsInit(&operand))
      effects.emplace_back(MemoryEffects::Write::get(), &operand,
                           SideEffects::DefaultResource::get());
    else
      effects.emplace_back(MemoryEffects::Read::get(), &operand,
                           SideEffects::DefaultResource::get());
  }
}

} // namespace

//===----------------------------------------------------------------------===//
// mla_decode
//===----------------------------------------------------------------------===//

LogicalResult MlaDecodeOp::verify() {
  Operand operands[] = {
      {"q_lat", cast<ShapedType>(getQLat().getType()), 4},
      {"q_pe", cast<ShapedType>(getQPe().getType()), 4},
      {"kv_cache", cast<ShapedType>(getKvCache().getType()), 3},
      {"pe_cache", cast<ShapedType>(getPeCache().getType()), 3},
      {"outs", cast<ShapedType>(getInit().getType()), 4},
  };
  if (failed(checkOperands(*this, operands, "operands must be")))
    return failure();
  bool tensors = isa<TensorType>(operands[0].type);
  if (tensors != static_cast<bool>(getResult()))
    return emitOpError(tensors ? "on tensors must return its result"
                               : "on memrefs returns nothing");
  if (getResult() && getResult().getType() != getInit().getType())
    return emitOpError("result type ")
           << getResult().getType() << " differs from outs "
           << getInit().getType();
  auto same = [&](unsigned a, int64_t da, unsigned b, int64_t db,
                  const Twine &what) {
    return checkSameSize(*this, operands, a, da, b, db, what);
  };
  for (int64_t d = 0; d < 4; ++d)
    if (failed(same(0, d, 4, d, "dimension " + Twine(d))))
      return failure();
  if (failed(same(0, 0, 1, 0, "the batch")) ||
      failed(same(0, 1, 1, 1, "the token count")) ||
      failed(same(0, 2, 1, 2, "the head count")) ||
      failed(same(0, 3, 2, 2, "the latent rank")) ||
      failed(same(1, 3, 3, 2, "the rope head dim")) ||
      failed(same(2, 0, 3, 0, "the cache batch")) ||
      failed(same(2, 1, 3, 1, "the cache length")))
    return failure();
  return success();
}

void MlaDecodeOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  getDpsEffects(*this, effects);
}

//===----------------------------------------------------------------------===//
// attention
//===----------------------------------------------------------------------===//

LogicalResult AttentionOp::verify() {
  Operand operands[] = {
      {"q", cast<ShapedType>(getQ().getType()), 4},
      {"k", cast<ShapedType>(getK().getType()), 4},
      {"v", cast<ShapedType>(getV().getType()), 4},
      {"the output", cast<ShapedType>(getOutInit().getType()), 4},
      {"the lse", cast<ShapedType>(getLseInit().getType()), 3},
  };
  if (failed(checkOperands(*this, operands, "q must hold")))
    return failure();
  bool tensors = isa<TensorType>(operands[0].type);
  Type element = operands[0].type.getElementType();
  for (Value capture : getCaptures())
    if (isa<TensorType>(capture.getType()) != tensors)
      return emitOpError("captures must be tensors when q is a tensor and "
                         "memrefs when it is a memref");
  if (tensors ? getResults().size() != 2 : !getResults().empty())
    return emitOpError(tensors ? "on tensors must return the output and lse"
                               : "on memrefs returns nothing");
  if (tensors && (getResults()[0].getType() != getOutInit().getType() ||
                  getResults()[1].getType() != getLseInit().getType()))
    return emitOpError("result types must equal the outs types");
  auto same = [&](unsigned a, int64_t da, unsigned b, int64_t db,
                  const Twine &what) {
    return checkSameSize(*this, operands, a, da, b, db, what);
  };
  if (failed(same(0, 0, 1, 0, "the batch")) ||
      failed(same(0, 0, 2, 0, "the batch")) ||
      failed(same(1, 1, 2, 1, "the key/value head count")) ||
      failed(same(1, 2, 2, 2, "the key count")) ||
      failed(same(0, 3, 1, 3, "the query/key head dim")) ||
      failed(same(0, 0, 3, 0, "the batch")) ||
      failed(same(0, 1, 3, 1, "the query head count")) ||
      failed(same(0, 2, 3, 2, "the query count")) ||
      failed(same(2, 3, 3, 3, "the value head dim")) ||
      failed(same(0, 0, 4, 0, "the batch")) ||
      failed(same(0, 1, 4, 1, "the query head count")) ||
      failed(same(0, 2, 4, 2, "the query count")))
    return failure();
  int64_t hq = operands[0].type.getDimSize(1);
  int64_t hkv = operands[1].type.getDimSize(1);
  if (!ShapedType::isDynamic(hq) && !ShapedType::isDynamic(hkv) &&
      (hkv == 0 || hq % hkv != 0))
    return emitOpError() << "the query head count " << hq
                         << " is not a multiple of the key/value head count "
                         << hkv;
  return loom::verifyAttentionRegions(*this, getMask(), getScore(), element,
                                      getCaptures().getTypes());
}

void AttentionOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  getDpsEffects(*this, effects);
}

//===----------------------------------------------------------------------===//
// token_logprob and token_logprob_grad
//===----------------------------------------------------------------------===//

/// Checks the operands of the token log-prob ops: `operands` are the float
/// operands followed by `ids` (last), the rank-1 i64 token ids; `results`
/// must equal the inits' types on tensors and be absent on memrefs. The
/// first operand is the hidden state [N, d].
static LogicalResult verifyTokenLogprob(Operation *op,
                                        ArrayRef<Operand> operands,
                                        ValueRange inits, TypeRange results) {
  if (failed(checkOperands(op, operands.drop_back(), "hidden must hold")))
    return failure();
  const Operand &ids = operands.back();
  bool tensors = isa<TensorType>(operands[0].type);
  if (isa<TensorType>(ids.type) != tensors)
    return op->emitOpError("operands must be all tensors or all memrefs");
  if (ids.type.getRank() != 1 || !ids.type.getElementType().isInteger(64))
    return op->emitOpError("ids must be a rank-1 i64 ")
           << (tensors ? "tensor" : "memref") << ", got " << ids.type;
  if (tensors ? results.size() != inits.size() : !results.empty())
    return op->emitOpError(tensors ? "on tensors must return its outs"
                                   : "on memrefs returns nothing");
  if (tensors && TypeRange(inits) != results)
    return op->emitOpError("result types must equal the outs types");
  // Every operand of rank 1 and every gradient of the hidden state is one
  // row per token.
  for (unsigned i = 1; i < operands.size(); ++i) {
    const Operand &o = operands[i];
    bool perToken = o.rank == 1 || o.name == "grad_hidden";
    if (perToken &&
        failed(checkSameSize(op, operands, 0, 0, i, 0, "the token count")))
      return failure();
  }
  return success();
}

/// The temperature divides the logits: finite and > 0, as in `loom`.
static LogicalResult checkTemperature(Operation *op, APFloat temperature) {
  double t = temperature.convertToDouble();
  if (!(t > 0.0) || std::isinf(t))
    return op->emitOpError("temperature must be finite and > 0, got ") << t;
  return success();
}

/// Appends `scratch` [R, V] (when given) and the ids to the operands and
/// outs of a token log-prob op, and checks them with verifyTokenLogprob.
template <typename OpTy>
static LogicalResult
verifyWithScratch(OpTy op, SmallVectorImpl<Operand> &operands,
                  SmallVectorImpl<Value> &inits, Value scratch) {
  if (scratch) {
    operands.push_back({"scratch", cast<ShapedType>(scratch.getType()), 2});
    inits.push_back(scratch);
  }
  operands.push_back({"ids", cast<ShapedType>(op.getIds().getType()), 1});
  return verifyTokenLogprob(op, operands, inits, op.getResults().getTypes());
}

/// The checks of the forward kernels: `fuse.token_logprob`, and its
/// row-block form, whose `scratch` [R, V] holds a block's products.
template <typename OpTy>
static LogicalResult verifyForward(OpTy op, Value scratch) {
  auto type = [](Value v) { return cast<ShapedType>(v.getType()); };
  SmallVector<Operand> operands = {{"hidden", type(op.getHidden()), 2},
                                   {"weight", type(op.getWeight()), 2},
                                   {"logp", type(op.getLogpInit()), 1},
                                   {"lse", type(op.getLseInit()), 1}};
  SmallVector<Value> inits = {op.getLogpInit(), op.getLseInit()};
  if (failed(verifyWithScratch(op, operands, inits, scratch)) ||
      failed(checkSameSize(op, operands, 0, 1, 1, 1, "the hidden size")) ||
      (scratch &&
       failed(checkSameSize(op, operands, 1, 0, 4, 1, "the vocabulary"))))
    return failure();
  return checkTemperature(op, op.getTemperature());
}

/// The checks of the backward kernels: `fuse.token_logprob_grad`, and its
/// row-block form with its `scratch` [R, V].
template <typename OpTy>
static LogicalResult verifyBackward(OpTy op, Value scratch) {
  auto type = [](Value v) { return cast<ShapedType>(v.getType()); };
  SmallVector<Operand> operands = {
      {"hidden", type(op.getHidden()), 2},
      {"weight", type(op.getWeight()), 2},
      {"lse", type(op.getLse()), 1},
      {"grad", type(op.getGrad()), 1},
      {"grad_hidden", type(op.getGradHiddenInit()), 2},
      {"grad_weight", type(op.getGradWeightInit()), 2}};
  SmallVector<Value> inits = {op.getGradHiddenInit(), op.getGradWeightInit()};
  if (failed(verifyWithScratch(op, operands, inits, scratch)) ||
      failed(checkSameSize(op, operands, 0, 1, 1, 1, "the hidden size")) ||
      failed(checkSameSize(op, operands, 0, 1, 4, 1, "the hidden size")) ||
      failed(checkSameSize(op, operands, 0, 1, 5, 1, "the hidden size")) ||
      failed(checkSameSize(op, operands, 1, 0, 5, 0, "the vocabulary")) ||
      failed(checkSameSize(op, operands, 1, 1, 5, 1, "the hidden size")) ||
      (scratch &&
       failed(checkSameSize(op, operands, 1, 0, 6, 1, "the vocabulary"))))
    return failure();
  return checkTemperature(op, op.getTemperature());
}

LogicalResult TokenLogprobOp::verify() { return verifyForward(*this, {}); }

void TokenLogprobOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  getDpsEffects(*this, effects);
}

LogicalResult TokenLogprobGradOp::verify() {
  return verifyBackward(*this, {});
}

void TokenLogprobGradOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  getDpsEffects(*this, effects);
  // An accumulating backward adds to grad_weight's contents.
  if (getAccumulate() && isa<MemRefType>(getGradWeightInit().getType()))
    effects.emplace_back(MemoryEffects::Read::get(),
                         &getGradWeightInitMutable(),
                         SideEffects::DefaultResource::get());
}

//===----------------------------------------------------------------------===//
// token_logprob_rows and token_logprob_rows_grad
//===----------------------------------------------------------------------===//

/// The memory effects of the row-block ops on memrefs: their outs are read
/// as well as written (the elements outside the block keep their values).
static void getReadingDpsEffects(
    DestinationStyleOpInterface op,
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  for (OpOperand &operand : op->getOpOperands()) {
    if (!isa<MemRefType>(operand.get().getType()))
      continue;
    effects.emplace_back(MemoryEffects::Read::get(), &operand,
                         SideEffects::DefaultResource::get());
    if (op.isDpsInit(&operand))
      effects.emplace_back(MemoryEffects::Write::get(), &operand,
                           SideEffects::DefaultResource::get());
  }
}

LogicalResult TokenLogprobRowsOp::verify() {
  return verifyForward(*this, getScratchInit());
}

void TokenLogprobRowsOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  getReadingDpsEffects(*this, effects);
}

LogicalResult TokenLogprobRowsGradOp::verify() {
  return verifyBackward(*this, getScratchInit());
}

void TokenLogprobRowsGradOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  getReadingDpsEffects(*this, effects);
}
