//===- MatmulToRuntime.cpp - GEMM through the runtime -----------*- C++ -*-===//
//
// This file implements loom-cpu-matmul-to-runtime: f32 matrix products on
// memrefs become calls of the runtime's host GEMM functions (abi.h), which
// use oneDNN's sgemm where the runtime was built with it. Measured on the
// development machines, oneDNN reaches about twice the throughput of the
// best tiled and vectorized code generated from linalg (docs/performance.md).
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CPU/Passes.h"

#include "loom/abi.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/Utils/MemRefUtils.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace mlir::loom::cpu {
#define GEN_PASS_DEF_CPUMATMULTORUNTIMEPASS
#include "compiler/Target/CPU/Passes.h.inc"
} // namespace mlir::loom::cpu

using namespace mlir;

namespace {

/// Classifies the indexing maps of a (batch) matmul into transpose flags, or
/// returns failure for maps the runtime functions do not cover (broadcast
/// operands, permuted outputs).
static FailureOr<int64_t> transposeFlags(ArrayRef<AffineMap> maps, bool batched,
                                         MLIRContext *ctx) {
  if (maps.size() != 3)
    return failure();
  unsigned n = batched ? 4 : 3;
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  // Dimension order of linalg's named ops: [batch,] m, n, k.
  unsigned off = batched ? 1 : 0;
  auto map = [&](ArrayRef<unsigned> dims) {
    SmallVector<AffineExpr> exprs;
    if (batched)
      exprs.push_back(d(0));
    for (unsigned i : dims)
      exprs.push_back(d(i + off));
    return AffineMap::get(n, 0, exprs, ctx);
  };
  if (maps[2] != map({0, 1}))
    return failure();
  int64_t flags = 0;
  if (maps[0] == map({2, 0}))
    flags |= LOOM_MATMUL_TRANSPOSE_A;
  else if (maps[0] != map({0, 2}))
    return failure();
  if (maps[1] == map({1, 2}))
    flags |= LOOM_MATMUL_TRANSPOSE_B;
  else if (maps[1] != map({2, 1}))
    return failure();
  return flags;
}

/// Statically known flop count, or -1.
static int64_t staticFlops(linalg::LinalgOp op) {
  int64_t flops = 2;
  for (int64_t size : op.getStaticLoopRanges()) {
    if (ShapedType::isDynamic(size))
      return -1;
    flops *= size;
  }
  return flops;
}

/// Returns the `linalg.fill` with 0 of the product's output that the
/// product overwrites next: the closest earlier op in the block that touches
/// memory, views and pure ops skipped.
static linalg::FillOp zeroFillBefore(linalg::LinalgOp op) {
  Value output = op.getDpsInitOperand(0)->get();
  for (Operation *prev = op->getPrevNode(); prev; prev = prev->getPrevNode()) {
    if (isMemoryEffectFree(prev) || isa<ViewLikeOpInterface>(prev))
      continue;
    auto fill = dyn_cast<linalg::FillOp>(prev);
    if (!fill || fill.getOutputs().size() != 1 ||
        fill.getOutputs()[0] != output)
      return {};
    Attribute value;
    if (!matchPattern(fill.getInputs()[0], m_Constant(&value)))
      return {};
    auto zero = dyn_cast<FloatAttr>(value);
    return zero && zero.getValue().isZero() ? fill : linalg::FillOp();
  }
  return {};
}

/// The rounding of a 16-bit product that the lowering writes after it: the
/// `linalg.generic` that only truncates the f32 result `acc` (a fresh
/// `memref.alloc` that nothing else reads) elementwise into a buffer of the
/// operands' type `half`, with nothing but pure ops, views and allocations
/// between `op` and it, and no view of an operand as its output. The product
/// can then write that buffer directly, rounded once by the GEMM, which
/// saves the f32 result's write and read.
static linalg::GenericOp roundingAfter(linalg::LinalgOp op, Type half) {
  Value acc = op.getDpsInitOperand(0)->get();
  auto alloc = acc.getDefiningOp<memref::AllocOp>();
  if (!alloc)
    return {};
  linalg::GenericOp rounding;
  for (Operation *user : acc.getUsers()) {
    if (user == op.getOperation() || isa<memref::DeallocOp>(user))
      continue;
    auto generic = dyn_cast<linalg::GenericOp>(user);
    if (!generic || rounding)
      return {};
    rounding = generic;
  }
  if (!rounding || rounding->getBlock() != op->getBlock() ||
      rounding.getNumDpsInputs() != 1 || rounding.getNumDpsInits() != 1 ||
      rounding.getDpsInputOperand(0)->get() != acc ||
      !rounding.hasPureBufferSemantics() ||
      rounding.getNumReductionLoops() != 0 ||
      !llvm::all_of(rounding.getIndexingMapsArray(),
                    [](AffineMap m) { return m.isIdentity(); }))
    return {};
  Value out = rounding.getDpsInitOperand(0)->get();
  auto outType = dyn_cast<MemRefType>(out.getType());
  if (!outType || outType.getElementType() != half ||
      outType.getShape() != cast<MemRefType>(acc.getType()).getShape())
    return {};
  Block &body = rounding.getRegion().front();
  auto yield = dyn_cast<linalg::YieldOp>(body.getTerminator());
  auto trunc = yield && yield.getNumOperands() == 1
                   ? yield.getOperand(0).getDefiningOp<arith::TruncFOp>()
                   : arith::TruncFOp();
  if (!trunc || &body.front() != trunc.getOperation() ||
      trunc.getIn() != body.getArgument(0))
    return {};
  for (Operation *between = op->getNextNode(); between != rounding;
       between = between->getNextNode()) {
    if (!between)
      return {};
    if (!isMemoryEffectFree(between) && !isa<ViewLikeOpInterface>(between) &&
        !isa<memref::AllocOp>(between))
      return {};
  }
  Value root = memref::skipViewLikeOps(cast<MemrefValue>(out));
  for (OpOperand *input : op.getDpsInputOperands())
    if (memref::skipViewLikeOps(cast<MemrefValue>(input->get())) == root)
      return {};
  return rounding;
}

static func::FuncOp getOrCreateHostDecl(ModuleOp module, StringRef name,
                                        unsigned rank, Type inputType,
                                        Type outputType) {
  if (auto func = module.lookupSymbol<func::FuncOp>(name))
    return func;
  MLIRContext *ctx = module.getContext();
  OpBuilder builder = OpBuilder::atBlockBegin(module.getBody());
  SmallVector<int64_t> dyn(rank, ShapedType::kDynamic);
  auto layout = StridedLayoutAttr::get(ctx, ShapedType::kDynamic, dyn);
  Type input = MemRefType::get(dyn, inputType, layout);
  Type output = MemRefType::get(dyn, outputType, layout);
  auto type =
      builder.getFunctionType({input, input, output, builder.getI64Type()}, {});
  auto func = func::FuncOp::create(builder, module.getLoc(), name, type);
  func.setPrivate();
  func->setAttr("llvm.emit_c_interface", builder.getUnitAttr());
  return func;
}

struct CpuMatmulToRuntimePass
    : public loom::cpu::impl::CpuMatmulToRuntimePassBase<
          CpuMatmulToRuntimePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<linalg::LinalgOp> candidates;
    module.walk([&](linalg::LinalgOp op) {
      if (isa<linalg::MatmulOp, linalg::BatchMatmulOp>(op))
        candidates.push_back(op);
    });
    for (linalg::LinalgOp op : candidates)
      rewrite(module, op);
  }

  void rewrite(ModuleOp module, linalg::LinalgOp op) {
    if (!op.hasPureBufferSemantics())
      return;
    bool batched = isa<linalg::BatchMatmulOp>(op);
    // f32 products; with `half-precision`, also f16 or bf16 operands into
    // an f32 result (the form the lowering gives their products).
    SmallVector<Type> types;
    for (Value operand : op->getOperands()) {
      auto type = dyn_cast<MemRefType>(operand.getType());
      if (!type)
        return;
      types.push_back(type.getElementType());
    }
    if (types.size() != 3 || !types[2].isF32() || types[0] != types[1])
      return;
    StringRef suffix;
    if (types[0].isF32())
      suffix = "f32";
    else if (halfPrecision && types[0].isBF16())
      suffix = "bf16_f32";
    else if (halfPrecision && types[0].isF16())
      suffix = "f16_f32";
    else
      return;
    FailureOr<int64_t> flags =
        transposeFlags(op.getIndexingMapsArray(), batched, op->getContext());
    if (failed(flags))
      return;
    int64_t flops = staticFlops(op);
    if (flops >= 0 && flops < minFlops)
      return;

    // linalg's named products accumulate into their output, which the
    // lowering zero-fills first: drop that fill and let the GEMM overwrite
    // (beta = 0), which saves a pass over the output.
    int64_t accumulate = LOOM_MATMUL_ACCUMULATE;
    if (linalg::FillOp fill = zeroFillBefore(op)) {
      fill->erase();
      accumulate = 0;
    }
    // A 16-bit product whose f32 result is only rounded to the operands'
    // type writes that type directly ("loom_rt_matmul_bf16").
    linalg::GenericOp rounding;
    if (!accumulate && !types[0].isF32()) {
      rounding = roundingAfter(op, types[0]);
      if (rounding)
        suffix = suffix.drop_back(4);
    }

    unsigned rank = batched ? 3 : 2;
    std::string name =
        (Twine(batched ? "loom_rt_batch_matmul_" : "loom_rt_matmul_") + suffix)
            .str();
    func::FuncOp callee = getOrCreateHostDecl(
        module, name, rank, types[0],
        rounding ? types[0] : Float32Type::get(&getContext()));
    OpBuilder builder(rounding ? rounding.getOperation() : op.getOperation());
    Location loc = op.getLoc();
    SmallVector<Value> operands = {
        op.getDpsInputOperand(0)->get(), op.getDpsInputOperand(1)->get(),
        rounding ? rounding.getDpsInitOperand(0)->get()
                 : op.getDpsInitOperand(0)->get()};
    SmallVector<Value> args;
    for (auto [operand, type] : llvm::zip(operands, callee.getArgumentTypes()))
      args.push_back(memref::CastOp::create(builder, loc, type, operand));
    args.push_back(
        arith::ConstantIntOp::create(builder, loc, *flags | accumulate, 64));
    func::CallOp::create(builder, loc, callee, args);
    if (!rounding) {
      op->erase();
      return;
    }
    Value acc = op.getDpsInitOperand(0)->get();
    rounding->erase();
    op->erase();
    // The f32 result is left with its deallocations at most.
    Operation *alloc = acc.getDefiningOp();
    for (Operation *user : llvm::make_early_inc_range(acc.getUsers()))
      user->erase();
    alloc->erase();
  }
};
} // namespace
