//===- ParallelOutline.cpp - Loops on the runtime's threads -----*- C++ -*-===//
//
// This file implements loom-cpu-parallel-outline: the outermost parallel
// loops are outlined into functions over a range of their first dimension,
// called through launch functions that the CPU object emitter turns into
// calls of the runtime's loom_rt_parallel_for.
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CPU/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::loom::cpu {
#define GEN_PASS_DEF_CPUPARALLELOUTLINEPASS
#include "compiler/Target/CPU/Passes.h.inc"
} // namespace mlir::loom::cpu

using namespace mlir;

namespace {

/// Statically known iterations times body ops, or -1 when a bound is dynamic.
static int64_t staticWork(scf::ParallelOp loop) {
  int64_t work = 0;
  loop.getBody()->walk([&](Operation *) { ++work; });
  for (auto [lb, ub, step] :
       llvm::zip(loop.getLowerBound(), loop.getUpperBound(), loop.getStep())) {
    std::optional<int64_t> l = getConstantIntValue(lb);
    std::optional<int64_t> u = getConstantIntValue(ub);
    std::optional<int64_t> s = getConstantIntValue(step);
    if (!l || !u || !s || *s <= 0)
      return -1;
    work *= std::max<int64_t>(0, (*u - *l + *s - 1) / *s);
  }
  return work;
}

/// Clones the ops of `from` (all but its terminator) at the builder.
static void cloneBody(OpBuilder &b, Block &from, IRMapping &mapping) {
  for (Operation &op : from.without_terminator())
    b.clone(op, mapping);
}

static void outline(scf::ParallelOp loop, unsigned index) {
  ModuleOp module = loop->getParentOfType<ModuleOp>();
  Location loc = loop.getLoc();

  // Everything the loop reads from above, bounds included.
  llvm::SetVector<Value> captured;
  getUsedValuesDefinedAbove(loop.getRegion(), captured);
  for (Value operand : loop->getOperands())
    captured.insert(operand);
  // Constants are cloned into the body rather than passed, so that bounds
  // and strides stay static there and LLVM can vectorize the inner loops.
  SmallVector<Value> captures, constants;
  for (Value v : captured) {
    Operation *def = v.getDefiningOp();
    if (def && def->hasTrait<OpTrait::ConstantLike>())
      constants.push_back(v);
    else
      captures.push_back(v);
  }
  SmallVector<Type> captureTypes;
  for (Value v : captures)
    captureTypes.push_back(v.getType());

  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  Type indexType = b.getIndexType();
  std::string suffix = std::to_string(index);

  // The body over [begin, end) of the first dimension.
  SmallVector<Type> bodyArgs = {indexType, indexType};
  llvm::append_range(bodyArgs, captureTypes);
  auto body = func::FuncOp::create(b, loc, "__loom_parallel_body_" + suffix,
                                   b.getFunctionType(bodyArgs, {}));
  body.setPrivate();
  Block *entry = body.addEntryBlock();
  b.setInsertionPointToStart(entry);
  IRMapping mapping;
  for (auto [i, v] : llvm::enumerate(captures))
    mapping.map(v, entry->getArgument(i + 2));
  for (Value v : constants)
    b.clone(*v.getDefiningOp(), mapping);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  auto outer = scf::ForOp::create(b, loc, entry->getArgument(0),
                                  entry->getArgument(1), one);
  b.setInsertionPointToStart(outer.getBody());
  Value lb0 = mapping.lookup(loop.getLowerBound()[0]);
  Value step0 = mapping.lookup(loop.getStep()[0]);
  Value iv0 = arith::AddIOp::create(
      b, loc, lb0,
      arith::MulIOp::create(b, loc, outer.getInductionVar(), step0));
  mapping.map(loop.getInductionVars()[0], iv0);
  if (loop.getNumLoops() == 1) {
    cloneBody(b, *loop.getBody(), mapping);
  } else {
    auto rest = [&](ValueRange values) {
      SmallVector<Value> mapped;
      for (Value v : values.drop_front())
        mapped.push_back(mapping.lookup(v));
      return mapped;
    };
    SmallVector<Value> lbs = rest(loop.getLowerBound());
    SmallVector<Value> ubs = rest(loop.getUpperBound());
    SmallVector<Value> steps = rest(loop.getStep());
    // getInductionVars returns a temporary: keep it alive for the callback.
    SmallVector<Value> oldIvs = loop.getInductionVars();
    scf::ParallelOp::create(b, loc, lbs, ubs, steps,
                            [&](OpBuilder &nested, Location, ValueRange ivs) {
                              for (auto [old, iv] :
                                   llvm::zip(llvm::drop_begin(oldIvs), ivs))
                                mapping.map(old, iv);
                              cloneBody(nested, *loop.getBody(), mapping);
                            });
  }
  b.setInsertionPointToEnd(entry);
  func::ReturnOp::create(b, loc);

  // The launch: trip count of the first dimension, then the captures.
  SmallVector<Type> launchArgs = {indexType};
  llvm::append_range(launchArgs, captureTypes);
  b.setInsertionPointToEnd(module.getBody());
  auto launch = func::FuncOp::create(b, loc, "__loom_parallel_launch_" + suffix,
                                     b.getFunctionType(launchArgs, {}));
  launch.setPrivate();

  b.setInsertionPoint(loop);
  Value span = arith::SubIOp::create(b, loc, loop.getUpperBound()[0],
                                     loop.getLowerBound()[0]);
  Value trips = arith::CeilDivSIOp::create(b, loc, span, loop.getStep()[0]);
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  trips = arith::MaxSIOp::create(b, loc, trips, zero);
  SmallVector<Value> args = {trips};
  llvm::append_range(args, captures);
  func::CallOp::create(b, loc, launch, args);
  loop.erase();
}

struct CpuParallelOutlinePass
    : public loom::cpu::impl::CpuParallelOutlinePassBase<
          CpuParallelOutlinePass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<scf::ParallelOp> loops;
    getOperation().walk([&](scf::ParallelOp loop) {
      if (loop->getParentOfType<scf::ParallelOp>() || loop.getNumResults())
        return;
      int64_t work = staticWork(loop);
      if (work >= 0 && work < minWork)
        return;
      loops.push_back(loop);
    });
    // Number after any functions an earlier run outlined.
    unsigned next = 0;
    for (auto func : getOperation().getOps<func::FuncOp>())
      if (func.getSymName().starts_with("__loom_parallel_body_"))
        ++next;
    for (scf::ParallelOp loop : loops)
      outline(loop, next++);
  }
};
} // namespace
