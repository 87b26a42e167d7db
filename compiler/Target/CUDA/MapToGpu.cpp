//===- MapToGpu.cpp - Loop nests of entry functions as kernels --*- C++ -*-===//
//
// This file implements loom-cuda-map-to-gpu: after bufferization the entry
// functions of the CUDA target hold loop nests over device buffers; every
// outermost parallel loop becomes a `gpu.launch` with one iteration per
// thread, every other host operation touching memory becomes a one-thread
// launch, and allocations and copies become their `gpu` forms.
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CUDA/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

namespace mlir::loom::cuda {
#define GEN_PASS_DEF_CUDAMAPTOGPUPASS
#include "compiler/Target/CUDA/Passes.h.inc"
} // namespace mlir::loom::cuda

using namespace mlir;

namespace {

/// Buffers that live in host memory: those of `index` elements (the shape
/// operands of memref.reshape; tensors of the model never have that type)
/// and those handed to a host function (the ownership flags of the
/// deallocation helper), with their casts.
static llvm::DenseSet<Value> findHostBuffers(func::FuncOp func) {
  llvm::DenseSet<Value> host;
  func.walk([&](Operation *op) {
    if (!isa<memref::AllocOp, memref::AllocaOp>(op))
      return;
    Value buffer = op->getResult(0);
    SmallVector<Value> aliases = {buffer};
    for (Operation *user : buffer.getUsers())
      if (isa<memref::CastOp>(user))
        aliases.push_back(user->getResult(0));
    // Calls of declared functions are the runtime's kernels (cuBLAS GEMMs),
    // which take device buffers; defined ones are host helpers.
    auto callsHostCode = [&](Operation *user) {
      auto call = dyn_cast<func::CallOp>(user);
      if (!call)
        return false;
      auto callee = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(
          call, call.getCalleeAttr());
      return callee && !callee.isDeclaration();
    };
    bool isHost =
        cast<MemRefType>(buffer.getType()).getElementType().isIndex() ||
        llvm::any_of(aliases, [&](Value alias) {
          return llvm::any_of(alias.getUsers(), callsHostCode);
        });
    if (isHost)
      host.insert(aliases.begin(), aliases.end());
  });
  return host;
}

/// Whether `op` or an op nested in it reads or writes device memory.
static bool touchesMemory(Operation *op,
                          const llvm::DenseSet<Value> &hostBuffers) {
  WalkResult result = op->walk([&](Operation *nested) {
    if (auto load = dyn_cast<memref::LoadOp>(nested))
      return hostBuffers.contains(load.getMemref()) ? WalkResult::advance()
                                                    : WalkResult::interrupt();
    if (auto store = dyn_cast<memref::StoreOp>(nested))
      return hostBuffers.contains(store.getMemref()) ? WalkResult::advance()
                                                     : WalkResult::interrupt();
    if (isa<memref::AtomicRMWOp, memref::GenericAtomicRMWOp, memref::CopyOp,
            vector::TransferReadOp, vector::TransferWriteOp, vector::LoadOp,
            vector::StoreOp, linalg::LinalgOp>(nested))
      return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return result.wasInterrupted();
}

/// Whether `op` holds a parallel loop or an allocation, which must stay
/// on the host (the loop becomes a launch, the allocation a gpu.alloc).
static bool holdsHostWork(Operation *op) {
  WalkResult result = op->walk([](Operation *nested) {
    if (isa<scf::ParallelOp, memref::AllocOp, memref::AllocaOp,
            memref::DeallocOp, memref::CopyOp>(nested))
      return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return result.wasInterrupted();
}

/// Creates `gpu.launch` with the given grid and block sizes (x only) and
/// returns it with the builder inside its body, before the terminator.
static gpu::LaunchOp createLaunch(OpBuilder &b, Location loc, Value blocks,
                                  Value threads) {
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  auto launch =
      gpu::LaunchOp::create(b, loc, blocks, one, one, threads, one, one);
  b.setInsertionPointToEnd(&launch.getBody().front());
  auto terminator = gpu::TerminatorOp::create(b, loc);
  b.setInsertionPoint(terminator);
  return launch;
}

struct CudaMapToGpuPass
    : public loom::cuda::impl::CudaMapToGpuPassBase<CudaMapToGpuPass> {
  using CudaMapToGpuPassBase::CudaMapToGpuPassBase;

  /// The host buffers of the function being mapped.
  llvm::DenseSet<Value> hostBuffers;

  void runOnOperation() override {
    if (blockSize <= 0 || blockSize > 1024) {
      getOperation().emitError() << "block-size must be in [1, 1024], got "
                                 << static_cast<int64_t>(blockSize);
      return signalPassFailure();
    }
    // Kernels made earlier (loom-cuda-attention) are called through marked
    // declarations: the calls become launches.
    if (failed(launchKernels()))
      return signalPassFailure();
    // Entry functions carry the C interface; the others (the deallocation
    // helper) are host code that works on host buffers.
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.isDeclaration() || !func->hasAttr("llvm.emit_c_interface"))
        continue;
      hostBuffers = findHostBuffers(func);
      hoistArgumentScalars(func);
      for (Block &block : func.getBody())
        if (failed(mapBlock(block)))
          return signalPassFailure();
      for (Block &block : func.getBody())
        chainOnStream(block);
    }
  }

  /// The integer scalars among the entry's arguments that it only reads
  /// (positions, lengths) are copied to the host once, first, and every
  /// read takes that value: the copy waits for nothing (no work is
  /// enqueued yet, and the runtime serves it from the input it uploaded),
  /// where a copy at the first read would wait for the kernels and
  /// products enqueued before it.
  void hoistArgumentScalars(func::FuncOp func) {
    Block &entry = func.front();
    for (BlockArgument arg : entry.getArguments()) {
      auto type = dyn_cast<MemRefType>(arg.getType());
      if (!type || type.getRank() != 0 || !type.getLayout().isIdentity() ||
          !type.getElementType().isIntOrIndex() || arg.use_empty() ||
          hostBuffers.contains(arg) ||
          !llvm::all_of(arg.getUsers(), [](Operation *user) {
            return isa<memref::LoadOp>(user);
          }))
        continue;
      SmallVector<Operation *> loads(arg.getUsers());
      auto b = OpBuilder::atBlockBegin(&entry);
      Location loc = func.getLoc();
      auto host = memref::AllocaOp::create(b, loc, type);
      hostBuffers.insert(host);
      gpu::MemcpyOp::create(b, loc, Type(), ValueRange(), host, arg);
      Value value = memref::LoadOp::create(b, loc, host, ValueRange());
      for (Operation *load : loads) {
        load->getResult(0).replaceAllUsesWith(value);
        load->erase();
      }
    }
  }

  /// Replaces each call of a declaration with `loom.cuda.launch = @kernel`
  /// and `loom.cuda.launch_threads = T` (made by the kernel generators) by
  /// a `gpu.launch_func` of that kernel: the call's first three operands
  /// are the grid (each taken as at least 1: CUDA refuses empty grids), the
  /// others the kernel's; T threads, and `loom.cuda.launch_shared` bytes
  /// of dynamic shared memory.
  LogicalResult launchKernels() {
    ModuleOp module = getOperation();
    SmallVector<func::CallOp> calls;
    SmallVector<func::FuncOp> declarations;
    for (auto func : module.getOps<func::FuncOp>())
      if (func->hasAttr(loom::cuda::kLaunchAttr))
        declarations.push_back(func);
    if (declarations.empty())
      return success();
    module.walk([&](func::CallOp call) {
      if (auto callee = module.lookupSymbol<func::FuncOp>(call.getCallee()))
        if (callee->hasAttr(loom::cuda::kLaunchAttr))
          calls.push_back(call);
    });
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    UnitAttr::get(module.getContext()));
    for (func::CallOp call : calls) {
      OpBuilder b(call);
      Location loc = call.getLoc();
      Operation *callee = module.lookupSymbol(call.getCallee());
      auto threads =
          callee->getAttrOfType<IntegerAttr>(loom::cuda::kLaunchThreadsAttr);
      if (!threads || call.getNumOperands() < 3 ||
          !llvm::all_of(call.getOperands().take_front(3),
                        [](Value v) { return v.getType().isIndex(); }))
        return callee->emitOpError(
            "needs loom.cuda.launch_threads and a grid of three index "
            "operands");
      Value one = arith::ConstantIndexOp::create(b, loc, 1);
      Value grid[3];
      for (int i = 0; i < 3; ++i)
        grid[i] = arith::MaxSIOp::create(b, loc, call.getOperand(i), one);
      Value shared;
      if (auto bytes = callee->getAttrOfType<IntegerAttr>(
              loom::cuda::kLaunchSharedAttr))
        shared = arith::ConstantIntOp::create(b, loc, b.getI32Type(),
                                              bytes.getInt());
      auto kernel =
          cast<SymbolRefAttr>(callee->getAttr(loom::cuda::kLaunchAttr));
      gpu::LaunchFuncOp::create(
          b, loc, kernel, gpu::KernelDim3{grid[0], grid[1], grid[2]},
          gpu::KernelDim3{
              arith::ConstantIndexOp::create(b, loc, threads.getInt()), one,
              one},
          shared, call.getOperands().drop_front(3),
          /*asyncTokenType=*/Type(), ValueRange());
      call.erase();
    }
    for (func::FuncOp func : declarations)
      func.erase();
    return success();
  }

  /// Makes the GPU work of `block` asynchronous on one stream, in program
  /// order: the first GPU op starts a chain of tokens (`gpu.wait async`,
  /// which the lowering makes a stream), each later one depends on the
  /// previous, and the chain is waited for before the block's terminator,
  /// before a region op holding GPU work (whose blocks get chains of their
  /// own), before the host reads what a copy brought back and before a
  /// runtime function other than the matrix products. Nothing else waits,
  /// so the host runs ahead of the kernels (and of cuBLAS's products) and
  /// launches are not separated by synchronizations.
  void chainOnStream(Block &block) {
    Value token;
    llvm::SmallPtrSet<Value, 4> copiedToHost;
    auto drain = [&](Operation *before) {
      if (!token)
        return;
      OpBuilder b(before);
      gpu::WaitOp::create(b, before->getLoc(), Type(), ValueRange{token});
      token = Value();
      copiedToHost.clear();
    };
    auto holdsGpuWork = [](Operation *op) {
      WalkResult result = op->walk([](Operation *nested) {
        return isa<gpu::LaunchOp, gpu::LaunchFuncOp, gpu::AllocOp,
                   gpu::DeallocOp, gpu::MemcpyOp>(nested)
                   ? WalkResult::interrupt()
                   : WalkResult::advance();
      });
      return result.wasInterrupted();
    };
    for (auto it = block.begin(); it != block.end();) {
      Operation *op = &*it++;
      if (op->hasTrait<OpTrait::IsTerminator>()) {
        drain(op);
        continue;
      }
      if (auto load = dyn_cast<memref::LoadOp>(op))
        if (copiedToHost.contains(load.getMemref()))
          drain(op);
      // Other runtime functions may touch device memory from the host: the
      // chain's work must be done before they start. The matrix products
      // (cuBLAS, on the legacy default stream, which the runtime's blocking
      // streams are ordered with both ways) stay in the chain, and the
      // tensor maps of bulk copies read no device memory.
      if (auto call = dyn_cast<func::CallOp>(op)) {
        StringRef callee = call.getCallee();
        if (callee.starts_with("loom_rt_") &&
            !callee.starts_with("loom_rt_matmul_") &&
            !callee.starts_with("loom_rt_batch_matmul_") &&
            !callee.starts_with("loom_rt_cuda_tensor_map_"))
          drain(op);
      }
      bool isGpuOp = isa<gpu::LaunchOp, gpu::LaunchFuncOp, gpu::AllocOp,
                         gpu::DeallocOp, gpu::MemcpyOp>(op);
      if (!isGpuOp) {
        if (op->getNumRegions() != 0 && holdsGpuWork(op)) {
          drain(op);
          for (Region &region : op->getRegions())
            for (Block &nested : region)
              chainOnStream(nested);
        }
        continue;
      }
      OpBuilder b(op);
      Location loc = op->getLoc();
      if (!token)
        token = gpu::WaitOp::create(b, loc, b.getType<gpu::AsyncTokenType>(),
                                    ValueRange())
                    .getAsyncToken();
      Type tokenType = b.getType<gpu::AsyncTokenType>();
      Operation *async = nullptr;
      if (auto alloc = dyn_cast<gpu::AllocOp>(op)) {
        async = gpu::AllocOp::create(b, loc, alloc.getType(), tokenType,
                                     ValueRange{token}, alloc.getDynamicSizes(),
                                     alloc.getSymbolOperands());
        alloc.getMemref().replaceAllUsesWith(async->getResult(0));
        token = async->getResult(1);
      } else if (auto dealloc = dyn_cast<gpu::DeallocOp>(op)) {
        async = gpu::DeallocOp::create(b, loc, tokenType, ValueRange{token},
                                       dealloc.getMemref());
        token = async->getResult(0);
      } else if (auto copy = dyn_cast<gpu::MemcpyOp>(op)) {
        async = gpu::MemcpyOp::create(b, loc, tokenType, ValueRange{token},
                                      copy.getDst(), copy.getSrc());
        token = async->getResult(0);
        if (hostBuffers.contains(copy.getDst()))
          copiedToHost.insert(copy.getDst());
      } else if (auto call = dyn_cast<gpu::LaunchFuncOp>(op)) {
        auto asyncCall = gpu::LaunchFuncOp::create(
            b, loc, call.getKernel(), call.getGridSizeOperandValues(),
            call.getBlockSizeOperandValues(), call.getDynamicSharedMemorySize(),
            call.getKernelOperands(), tokenType, ValueRange{token});
        async = asyncCall;
        token = asyncCall.getAsyncToken();
      } else {
        auto launch = cast<gpu::LaunchOp>(op);
        gpu::KernelDim3 grid = launch.getGridSizeOperandValues();
        gpu::KernelDim3 block = launch.getBlockSizeOperandValues();
        auto types = [](ArrayRef<BlockArgument> args) {
          return llvm::to_vector(llvm::map_range(
              args, [](BlockArgument arg) { return arg.getType(); }));
        };
        auto asyncLaunch = gpu::LaunchOp::create(
            b, loc, grid.x, grid.y, grid.z, block.x, block.y, block.z,
            launch.getDynamicSharedMemorySize(), tokenType, ValueRange{token},
            types(launch.getWorkgroupAttributions()),
            types(launch.getPrivateAttributions()));
        asyncLaunch.getBody().takeBody(launch.getBody());
        async = asyncLaunch;
        token = asyncLaunch.getAsyncToken();
      }
      op->erase();
    }
  }

  LogicalResult mapBlock(Block &block) {
    for (auto it = block.begin(); it != block.end();) {
      Operation &op = *it++;
      // Kernels made earlier (loom-cuda-attention) are launched as they are.
      if (isa<gpu::LaunchOp>(op))
        continue;
      if (auto loop = dyn_cast<scf::ParallelOp>(op)) {
        if (failed(mapParallel(loop)))
          return failure();
        continue;
      }
      if (isa<memref::AllocOp, memref::AllocaOp>(op) &&
          !hostBuffers.contains(op.getResult(0))) {
        OpBuilder b(&op);
        auto type = cast<MemRefType>(op.getResult(0).getType());
        auto alloc =
            gpu::AllocOp::create(b, op.getLoc(), type, Type(), ValueRange(),
                                 op.getOperands(), ValueRange());
        op.getResult(0).replaceAllUsesWith(alloc.getMemref());
        op.erase();
        continue;
      }
      auto dealloc = dyn_cast<memref::DeallocOp>(op);
      if (dealloc && !hostBuffers.contains(dealloc.getMemref())) {
        OpBuilder b(&op);
        gpu::DeallocOp::create(b, op.getLoc(), Type(), ValueRange(),
                               dealloc.getMemref());
        op.erase();
        continue;
      }
      // Integer scalars (positions, lengths) decide offsets and sizes on
      // the host: they are copied back before they are read.
      if (readsHostScalar(&op)) {
        auto load = cast<memref::LoadOp>(op);
        OpBuilder b(&op);
        auto host =
            memref::AllocaOp::create(b, op.getLoc(), load.getMemRefType());
        hostBuffers.insert(host);
        gpu::MemcpyOp::create(b, op.getLoc(), Type(), ValueRange(), host,
                              load.getMemref());
        load.getMemrefMutable().assign(host);
        continue;
      }
      if (auto copy = dyn_cast<memref::CopyOp>(op)) {
        OpBuilder b(&op);
        gpu::MemcpyOp::create(b, op.getLoc(), Type(), ValueRange(),
                              copy.getTarget(), copy.getSource());
        op.erase();
        continue;
      }
      if (op.getNumRegions() != 0 && holdsHostWork(&op)) {
        for (Region &region : op.getRegions())
          for (Block &nested : region)
            if (failed(mapBlock(nested)))
              return failure();
        continue;
      }
      if (touchesMemory(&op, hostBuffers)) {
        FailureOr<gpu::LaunchOp> launch = mapSerial(&op);
        if (failed(launch))
          return failure();
        // What the launch took in is done; go on after it.
        it = std::next(Block::iterator(*launch));
      }
    }
    return success();
  }

  /// Whether `op` loads an integer scalar from device memory, which the
  /// host reads after a copy.
  bool readsHostScalar(Operation *op) {
    auto load = dyn_cast<memref::LoadOp>(op);
    return load && load.getMemRefType().getRank() == 0 &&
           !hostBuffers.contains(load.getMemref()) &&
           load.getType().isIntOrIndex();
  }

  /// Runs `first` and the straight-line code after it that works on what
  /// it reads (`%x = load; %y = divf %x, %n; store %y`: the 0-d ops of
  /// full reductions) on one GPU thread. Pure ops in between that do not
  /// depend on device data stay on the host, before the launch.
  FailureOr<gpu::LaunchOp> mapSerial(Operation *first) {
    SmallVector<Operation *> run, hoisted;
    llvm::SmallPtrSet<Operation *, 16> inRun;
    auto dependsOnRun = [&](Operation *op) {
      WalkResult result = op->walk([&](Operation *nested) {
        for (Value operand : nested->getOperands())
          if (Operation *def = operand.getDefiningOp())
            if (inRun.contains(def))
              return WalkResult::interrupt();
        return WalkResult::advance();
      });
      return result.wasInterrupted();
    };
    for (Operation *op = first; op && !op->hasTrait<OpTrait::IsTerminator>();
         op = op->getNextNode()) {
      if (op != first && readsHostScalar(op))
        break;
      bool isDeviceWork = touchesMemory(op, hostBuffers) && !holdsHostWork(op);
      if (!isDeviceWork &&
          !(op->getNumRegions() == 0 && isMemoryEffectFree(op)))
        break;
      if (isDeviceWork || dependsOnRun(op)) {
        run.push_back(op);
        inRun.insert(op);
      } else {
        hoisted.push_back(op);
      }
    }
    for (Operation *op : run)
      for (Value result : op->getResults())
        for (Operation *user : result.getUsers()) {
          Operation *owner = op->getBlock()->findAncestorOpInBlock(*user);
          if (!owner || !inRun.contains(owner))
            return static_cast<LogicalResult>(
                user->emitOpError()
                << "needs on the host a value read from device memory; the "
                   "CUDA target cannot run it");
        }
    OpBuilder b(first);
    for (Operation *op : hoisted)
      op->moveBefore(first);
    Value one = arith::ConstantIndexOp::create(b, first->getLoc(), 1);
    gpu::LaunchOp launch = createLaunch(b, first->getLoc(), one, one);
    for (Operation *op : run)
      op->moveBefore(b.getInsertionBlock(), b.getInsertionPoint());
    return launch;
  }

  /// The indices of `id` in an iteration space of `counts` (the last
  /// fastest; `total` iterations). `id` and the counts are non-negative,
  /// so the divisions are unsigned; below 2^32 iterations (a test that is
  /// the same for the whole grid) they are 32-bit: a 64-bit division by a
  /// count known only at run time is a long instruction sequence, and it
  /// dominated the generated elementwise kernels.
  static SmallVector<Value> delinearize(OpBuilder &b, Location loc, Value id,
                                        Value total, ArrayRef<Value> counts) {
    int64_t rank = counts.size();
    if (rank == 1)
      return {id};
    auto split = [&](Value rest, ArrayRef<Value> sizes) {
      SmallVector<Value> out(rank);
      for (int64_t d = rank - 1; d > 0; --d) {
        out[d] = arith::RemUIOp::create(b, loc, rest, sizes[d]);
        rest = arith::DivUIOp::create(b, loc, rest, sizes[d]);
      }
      out[0] = rest;
      return out;
    };
    Value small = arith::CmpIOp::create(
        b, loc, arith::CmpIPredicate::ult, total,
        arith::ConstantIndexOp::create(b, loc, int64_t(1) << 32));
    auto ifOp = scf::IfOp::create(
        b, loc, SmallVector<Type>(rank, b.getIndexType()), small, true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    Type i32 = b.getI32Type();
    auto narrow = [&](Value v) -> Value {
      return arith::IndexCastUIOp::create(b, loc, i32, v);
    };
    SmallVector<Value> sizes;
    for (Value c : counts)
      sizes.push_back(narrow(c));
    SmallVector<Value> wide;
    for (Value v : split(narrow(id), sizes))
      wide.push_back(arith::IndexCastUIOp::create(b, loc, b.getIndexType(), v));
    scf::YieldOp::create(b, loc, wide);
    b.setInsertionPointToStart(ifOp.elseBlock());
    scf::YieldOp::create(b, loc, split(id, counts));
    return SmallVector<Value>(ifOp.getResults());
  }

  /// Replaces `loop` by a launch over its iteration space, flattened.
  LogicalResult mapParallel(scf::ParallelOp loop) {
    if (loop.getNumResults() != 0)
      return loop.emitOpError()
             << "has reductions, which the CUDA target does not map";
    Location loc = loop.getLoc();
    OpBuilder b(loop);
    Value zero = arith::ConstantIndexOp::create(b, loc, 0);
    Value one = arith::ConstantIndexOp::create(b, loc, 1);
    SmallVector<Value> counts;
    Value total = one;
    for (auto [lb, ub, step] : llvm::zip(
             loop.getLowerBound(), loop.getUpperBound(), loop.getStep())) {
      Value span = arith::SubIOp::create(b, loc, ub, lb);
      Value count = arith::CeilDivSIOp::create(b, loc, span, step);
      count = arith::MaxSIOp::create(b, loc, count, zero);
      counts.push_back(count);
      total = arith::MulIOp::create(b, loc, total, count);
    }
    Value threads = arith::ConstantIndexOp::create(b, loc, blockSize);
    // CUDA refuses an empty grid: an empty space launches one block whose
    // threads all fail the guard, which keeps the launch unconditional and
    // so on the entry's stream.
    Value blocks = arith::MaxSIOp::create(
        b, loc, arith::CeilDivSIOp::create(b, loc, total, threads), one);
    gpu::LaunchOp launch = createLaunch(b, loc, blocks, threads);
    Value id = arith::AddIOp::create(
        b, loc, arith::MulIOp::create(b, loc, launch.getBlockIds().x, threads),
        launch.getThreadIds().x);
    Value inRange =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, id, total);
    auto guard = scf::IfOp::create(b, loc, inRange, /*withElseRegion=*/false);
    b.setInsertionPointToStart(guard.thenBlock());
    // The last dimension varies fastest, so neighbouring threads touch
    // neighbouring elements of row-major buffers.
    SmallVector<Value> indices = delinearize(b, loc, id, total, counts);
    IRMapping mapping;
    for (auto [d, index] : llvm::enumerate(indices)) {
      Value iv = arith::AddIOp::create(
          b, loc, loop.getLowerBound()[d],
          arith::MulIOp::create(b, loc, index, loop.getStep()[d]));
      mapping.map(loop.getInductionVars()[d], iv);
    }
    for (Operation &op : loop.getBody()->without_terminator())
      b.clone(op, mapping);
    loop.erase();
    return success();
  }
};

} // namespace
