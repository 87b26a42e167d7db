//===- FuseToRuntime.cpp - Fused kernels of the runtime ---------*- C++ -*-===//
//
// This file implements loom-cpu-fuse-to-runtime: `fuse` ops on memrefs for
// which the runtime has a CPU kernel become calls of that host function
// (abi.h), with the operands cast to fully dynamic strided memrefs. The
// regions of `fuse.attention` become functions of the module
// (AttentionOutline.cpp).
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CPU/AttentionOutline.h"
#include "compiler/Target/CPU/Passes.h"

#include "dialects/fuse/IR/FuseOps.h"
#include "loom/abi.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"

namespace mlir::loom::cpu {
#define GEN_PASS_DEF_CPUFUSETORUNTIMEPASS
#include "compiler/Target/CPU/Passes.h.inc"
} // namespace mlir::loom::cpu

using namespace mlir;

namespace {

MemRefType dynamicStrided(MLIRContext *ctx, unsigned rank, Type element) {
  SmallVector<int64_t> dyn(rank, ShapedType::kDynamic);
  return MemRefType::get(
      dyn, element, StridedLayoutAttr::get(ctx, ShapedType::kDynamic, dyn));
}

/// The declaration of host function `name`, created on first use.
func::FuncOp hostFunction(ModuleOp module, StringRef name,
                          FunctionType type) {
  if (auto func = module.lookupSymbol<func::FuncOp>(name))
    return func;
  OpBuilder builder = OpBuilder::atBlockBegin(module.getBody());
  auto func = func::FuncOp::create(builder, module.getLoc(), name, type);
  func.setPrivate();
  func->setAttr("llvm.emit_c_interface", builder.getUnitAttr());
  return func;
}

struct CpuFuseToRuntimePass
    : public loom::cpu::impl::CpuFuseToRuntimePassBase<CpuFuseToRuntimePass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<fuse::MlaDecodeOp> ops;
    module.walk([&](fuse::MlaDecodeOp op) { ops.push_back(op); });
    for (fuse::MlaDecodeOp op : ops)
      if (failed(lowerMlaDecode(module, op)))
        return signalPassFailure();
    SmallVector<fuse::AttentionOp> attentions;
    module.walk([&](fuse::AttentionOp op) { attentions.push_back(op); });
    // Number after the launches of an earlier run.
    unsigned next = 0;
    for (auto func : module.getOps<func::FuncOp>())
      if (func.getSymName().starts_with(loom::cpu::kAttentionLaunchPrefix))
        ++next;
    for (fuse::AttentionOp op : attentions)
      if (failed(loom::cpu::lowerAttentionToRuntime(module, op, next++)))
        return signalPassFailure();
    SmallVector<Operation *> logprobs;
    module.walk([&](Operation *op) {
      if (isa<fuse::TokenLogprobOp, fuse::TokenLogprobGradOp,
              fuse::TokenLogprobRowsOp, fuse::TokenLogprobRowsGradOp>(op))
        logprobs.push_back(op);
    });
    for (Operation *op : logprobs)
      if (failed(lowerTokenLogprob(module, op)))
        return signalPassFailure();
  }

  /// `fuse.token_logprob` and `fuse.token_logprob_grad` become calls of
  /// loom_rt_token_logprob_f32 (hidden, weight, ids, logp, lse, temperature,
  /// chunk) and loom_rt_token_logprob_grad_f32 (hidden, weight, ids, g, lse,
  /// grad_hidden, grad_weight, temperature, chunk, flags); chunk 0 lets the
  /// kernel pick its vocabulary chunk. `fuse.token_logprob_rows` and
  /// `fuse.token_logprob_rows_grad` become loom_rt_token_logprob_rows_f32
  /// (hidden, weight, ids, logp, lse, scratch, offset, temperature) and
  /// loom_rt_token_logprob_rows_grad_f32 (hidden, weight, ids, lse, g,
  /// grad_hidden, grad_weight, scratch, offset, temperature, flags). The
  /// backwards' flags are LOOM_TOKEN_LOGPROB_ACCUMULATE for `accumulate`.
  LogicalResult lowerTokenLogprob(ModuleOp module, Operation *op) {
    auto dps = cast<DestinationStyleOpInterface>(op);
    if (!dps.hasPureBufferSemantics())
      return op->emitOpError("must be bufferized before it becomes a call");
    Type element =
        cast<MemRefType>(op->getOperand(0).getType()).getElementType();
    if (!element.isF32())
      return op->emitOpError("has a CPU kernel for f32 only, not ") << element;
    SmallVector<Value> buffers;
    StringRef name;
    FloatAttr temperature;
    Value offset;
    // The backwards' flags, none for the forwards.
    std::optional<int64_t> flags;
    if (auto rows = dyn_cast<fuse::TokenLogprobRowsOp>(op)) {
      buffers = {rows.getHidden(),   rows.getWeight(),  rows.getIds(),
                 rows.getLogpInit(), rows.getLseInit(), rows.getScratchInit()};
      name = "loom_rt_token_logprob_rows_f32";
      temperature = rows.getTemperatureAttr();
      offset = rows.getOffset();
    } else if (auto rows = dyn_cast<fuse::TokenLogprobRowsGradOp>(op)) {
      buffers = {rows.getHidden(),
                 rows.getWeight(),
                 rows.getIds(),
                 rows.getLse(),
                 rows.getGrad(),
                 rows.getGradHiddenInit(),
                 rows.getGradWeightInit(),
                 rows.getScratchInit()};
      name = "loom_rt_token_logprob_rows_grad_f32";
      temperature = rows.getTemperatureAttr();
      offset = rows.getOffset();
      flags = rows.getAccumulate() ? LOOM_TOKEN_LOGPROB_ACCUMULATE : 0;
    } else if (auto forward = dyn_cast<fuse::TokenLogprobOp>(op)) {
      buffers = {forward.getHidden(), forward.getWeight(), forward.getIds(),
                 forward.getLogpInit(), forward.getLseInit()};
      name = "loom_rt_token_logprob_f32";
      temperature = forward.getTemperatureAttr();
    } else {
      auto grad = cast<fuse::TokenLogprobGradOp>(op);
      buffers = {grad.getHidden(),         grad.getWeight(),
                 grad.getIds(),            grad.getGrad(),
                 grad.getLse(),            grad.getGradHiddenInit(),
                 grad.getGradWeightInit()};
      name = "loom_rt_token_logprob_grad_f32";
      temperature = grad.getTemperatureAttr();
      flags = grad.getAccumulate() ? LOOM_TOKEN_LOGPROB_ACCUMULATE : 0;
    }
    MLIRContext *ctx = module.getContext();
    OpBuilder builder(op);
    Location loc = op->getLoc();
    SmallVector<Type> argTypes;
    SmallVector<Value> args;
    for (Value buffer : buffers) {
      auto type = cast<MemRefType>(buffer.getType());
      Type castType =
          dynamicStrided(ctx, type.getRank(), type.getElementType());
      argTypes.push_back(castType);
      args.push_back(memref::CastOp::create(builder, loc, castType, buffer));
    }
    if (offset) {
      argTypes.push_back(builder.getI64Type());
      args.push_back(arith::IndexCastOp::create(builder, loc,
                                                builder.getI64Type(), offset));
    }
    argTypes.push_back(builder.getF32Type());
    args.push_back(arith::ConstantOp::create(
        builder, loc,
        builder.getF32FloatAttr(
            static_cast<float>(temperature.getValueAsDouble()))));
    if (!offset) {
      argTypes.push_back(builder.getI64Type());
      args.push_back(arith::ConstantOp::create(builder, loc,
                                               builder.getI64IntegerAttr(0)));
    }
    if (flags) {
      argTypes.push_back(builder.getI64Type());
      args.push_back(arith::ConstantOp::create(
          builder, loc, builder.getI64IntegerAttr(*flags)));
    }
    func::FuncOp callee =
        hostFunction(module, name, builder.getFunctionType(argTypes, {}));
    func::CallOp::create(builder, loc, callee, args);
    op->erase();
    return success();
  }

  LogicalResult lowerMlaDecode(ModuleOp module, fuse::MlaDecodeOp op) {
    if (!op.hasPureBufferSemantics())
      return op.emitOpError("must be bufferized before it becomes a call");
    auto type = cast<MemRefType>(op.getQLat().getType());
    if (!type.getElementType().isF32())
      return op.emitOpError("has a CPU kernel for f32 only, not ")
             << type.getElementType();
    MLIRContext *ctx = module.getContext();
    OpBuilder builder(op);
    Location loc = op.getLoc();
    Type f32 = builder.getF32Type();
    SmallVector<Type> argTypes;
    SmallVector<Value> args;
    for (Value buffer : {op.getQLat(), op.getQPe(), op.getKvCache(),
                         op.getPeCache(), op.getInit()}) {
      Type castType = dynamicStrided(
          ctx, cast<MemRefType>(buffer.getType()).getRank(), f32);
      argTypes.push_back(castType);
      args.push_back(memref::CastOp::create(builder, loc, castType, buffer));
    }
    argTypes.push_back(builder.getI64Type());
    args.push_back(op.getStartPos());
    argTypes.push_back(f32);
    args.push_back(arith::ConstantOp::create(
        builder, loc,
        builder.getF32FloatAttr(
            static_cast<float>(op.getScale().convertToDouble()))));
    func::FuncOp callee =
        hostFunction(module, "loom_rt_mla_decode_f32",
                     builder.getFunctionType(argTypes, {}));
    func::CallOp::create(builder, loc, callee, args);
    op->erase();
    return success();
  }
};

} // namespace
