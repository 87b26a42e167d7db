//===- AttentionKernel.cpp - fuse.attention as a flash kernel ---*- C++ -*-===//
//
// This file implements loom-cuda-attention: a bufferized `fuse.attention`
// on f16 or bf16 becomes a `gpu.func` of its own `gpu.module`, a
// flash-attention kernel in the style of FlashAttention-2, and the call of
// a declaration that loom-cuda-map-to-gpu turns into its launch:
//
//   - a block of 4 warps owns 64 queries of one (batch, head); each warp
//     owns 16 of them, whose q fragments stay in registers;
//   - the keys go by tiles of 64: K and V in shared memory, rows padded by
//     8 elements so that the ldmatrix reads of the mma fragments (V's
//     transposed) are free of bank conflicts;
//   - S = q k^T and O += P v are tensor-core products (`mma.sync`
//     m16n8k16, f32 accumulation); the softmax is online, in base 2, with
//     the running maximum and sum per row in registers. With `wgmma`
//     (sm_90a), S is Hopper's warpgroup MMA instead (the block's 4 warps
//     are one warpgroup): A is the q fragments in registers, K is stored
//     as the core matrices of a wgmma descriptor, and the accumulators
//     come out in mma.sync's layout;
//   - cp.async copies overlap the products: V of a tile during its scores,
//     K of the next tile during P v;
//   - a score region is evaluated on each scaled score before the softmax,
//     in the model's type as it is written;
//   - the mask region's interval analysis (mask_block, as on the CPU)
//     classifies the tiles of keys as hidden, visible or mixed; hidden
//     tiles are skipped, visible ones evaluate no mask, and in mixed ones
//     the region is evaluated for each (query, key) pair a thread holds,
//     the tile skipped when a barrier that or-reduces the threads'
//     predicates finds no visible pair.
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CUDA/KernelBuilder.h"

#include "compiler/Target/CPU/AttentionOutline.h"
#include "dialects/fuse/IR/FuseOps.h"
#include "dialects/fuse/Transforms/Transforms.h"
#include "loom/abi.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

#include <cmath>
#include <limits>

namespace mlir::loom::cuda {
#define GEN_PASS_DEF_CUDAATTENTIONPASS
#include "compiler/Target/CUDA/Passes.h.inc"
} // namespace mlir::loom::cuda

using namespace mlir;

namespace {

using loom::cuda::kChunk;
constexpr int64_t kWarps = 4;
constexpr int64_t kThreads = 32 * kWarps;
/// Queries of a block (16 per warp) and keys of a tile.
constexpr int64_t kRows = 16 * kWarps;
constexpr int64_t kKeys = 64;
/// Elements of padding at the end of each shared-memory row.
constexpr int64_t kPad = 8;
/// Blocks per multiprocessor the register allocation must allow.
constexpr int64_t kMinBlocks = 3;
/// Tiles classified at a time (one per thread).
constexpr int64_t kClassChunk = kThreads;

/// Builds the kernel of one fuse.attention.
class AttentionKernel : loom::cuda::KernelBuilder {
public:
  AttentionKernel(OpBuilder &b, fuse::AttentionOp op, bool useWgmma)
      : KernelBuilder(b, op.getLoc(),
                      cast<MemRefType>(op.getQ().getType()).getElementType()),
        op(op), useWgmma(useWgmma) {
    d = cast<MemRefType>(op.getQ().getType()).getDimSize(3);
    dv = cast<MemRefType>(op.getV().getType()).getDimSize(3);
  }

  /// Why the kernel cannot compile `op`, or "" when it can.
  static std::string unsupported(fuse::AttentionOp op) {
    auto q = dyn_cast<MemRefType>(op.getQ().getType());
    auto v = dyn_cast<MemRefType>(op.getV().getType());
    if (!q || !v)
      return "is not bufferized";
    return fuse::gpuAttentionUnsupported(q.getElementType(), q.getDimSize(3),
                                         v.getDimSize(3));
  }

  /// Creates the kernel `@<name>::@kernel` at the end of `module` and
  /// replaces the op by a call of `@<name>_kernel_launch`, a declaration that
  /// loom-cuda-map-to-gpu turns into the launch (grid: query blocks x
  /// batch * heads, 128 threads).
  void build(ModuleOp module, StringRef name) {
    OpBuilder::InsertionGuard guard(b);
    SmallVector<Value> operands{op.getQ(), op.getK(), op.getV()};
    llvm::append_range(operands, op.getCaptures());
    operands.append({op.getOutInit(), op.getLseInit()});
    auto types = llvm::to_vector(ValueRange(operands).getTypes());
    // One block per kRows queries of a (batch, head).
    Value grid[] = {ceilDiv(dim(op.getQ(), 2), constant(kRows)),
                    mul(dim(op.getQ(), 0), dim(op.getQ(), 1)), constant(1)};
    launch(module, name, "kernel", grid, kThreads, 0, operands);

    b.setInsertionPointToEnd(module.getBody());
    auto gpuModule = gpu::GPUModuleOp::create(b, loc, name);
    b.setInsertionPointToStart(gpuModule.getBody());
    auto kernel =
        gpu::GPUFuncOp::create(b, loc, "kernel", b.getFunctionType(types, {}));
    kernel->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
    kernel.setKnownBlockSize(ArrayRef<int32_t>{int32_t(kThreads), 1, 1});
    // Registers for kMinBlocks blocks per multiprocessor.
    kernel->setAttr(NVVM::NVVMDialect::getMinctasmAttrName(),
                    b.getI32IntegerAttr(kMinBlocks));
    auto shared = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
    // For wgmma, K is stored as the 8 x 8 core matrices of its descriptor:
    // element (n, c) at [n / 8][c / 8][8 (n % 8) + c % 8].
    ks = kernel.addWorkgroupAttribution(
        useWgmma ? MemRefType::get({kKeys / 8, d / 8, 64}, elem, AffineMap(),
                                   shared)
                 : MemRefType::get({kKeys, d + kPad}, elem, AffineMap(),
                                   shared),
        loc);
    vs = kernel.addWorkgroupAttribution(
        MemRefType::get({kKeys, dv + kPad}, elem, AffineMap(), shared), loc);
    // cp.async writes 16 bytes at a time, and wgmma's descriptors address
    // 16-byte units.
    for (unsigned i = 0; i < 2; ++i)
      kernel.setWorkgroupAttributionAttr(i, LLVM::LLVMDialect::getAlignAttrName(),
                                         b.getI64IntegerAttr(16));
    Block &entry = kernel.getBody().front();
    b.setInsertionPointToStart(&entry);
    gpu::ReturnOp::create(b, loc);
    b.setInsertionPointToStart(&entry);
    q = entry.getArgument(0);
    k = entry.getArgument(1);
    v = entry.getArgument(2);
    captures = llvm::to_vector(
        ValueRange(entry.getArguments().slice(3, op.getCaptures().size())));
    out = entry.getArgument(3 + captures.size());
    lse = entry.getArgument(4 + captures.size());

    Value one = constant(1);
    Value batch = dim(q, 0), heads = dim(q, 1);
    queries = dim(q, 2);
    keys = dim(k, 2);
    Value kvHeads = dim(k, 1);
    Value planes = mul(batch, heads);
    // An empty problem runs one block (CUDA refuses empty grids) that has
    // no query and no key tile.
    Value empty = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                        planes, constant(0));
    queries = arith::SelectOp::create(b, loc, empty, constant(0), queries);
    // No query, no key tile: the mask is only evaluated at a real query.
    empty = arith::OrIOp::create(b, loc, empty,
                                 arith::CmpIOp::create(b, loc,
                                                       arith::CmpIPredicate::eq,
                                                       queries, constant(0)));
    keys = arith::SelectOp::create(b, loc, empty, constant(0), keys);
    Value group = arith::DivSIOp::create(
        b, loc, heads, arith::MaxSIOp::create(b, loc, kvHeads, one));
    heads = arith::MaxSIOp::create(b, loc, heads, one);

    tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
    Value plane = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
    Value blockX = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
    bIdx = arith::DivSIOp::create(b, loc, plane, heads);
    hIdx = arith::RemSIOp::create(b, loc, plane, heads);
    hkv = arith::DivSIOp::create(b, loc, hIdx, group);
    lane = arith::RemSIOp::create(b, loc, tid, constant(32));
    Value warp = arith::DivSIOp::create(b, loc, tid, constant(32));
    g = arith::DivSIOp::create(b, loc, lane, constant(4));
    t = arith::RemSIOp::create(b, loc, lane, constant(4));
    // ldmatrix: lane l points at row l % 8 of matrix l / 8, whose bits
    // are lm1 (l / 8 % 2) and lm2 (l / 16).
    lr = arith::RemSIOp::create(b, loc, lane, constant(8));
    lm1 = arith::RemSIOp::create(
        b, loc, arith::DivSIOp::create(b, loc, lane, constant(8)), constant(2));
    lm2 = arith::DivSIOp::create(b, loc, lane, constant(16));
    // Row of this thread's first accumulator element; the second is 8 on.
    rowBase =
        add(mul(blockX, constant(kRows)), add(mul(warp, constant(16)), g));
    kView = view(k);
    vView = view(v);

    loadQuery();
    // State: the output accumulators (dv / 8 tiles of 4), the running
    // maximum and sum of both rows.
    SmallVector<Value> init(dv / 2, floatConstant(0.0));
    Value minusInf = floatConstant(-std::numeric_limits<double>::infinity());
    init.append({minusInf, minusInf, floatConstant(0.0), floatConstant(0.0)});
    // Last: the key tile whose K is in (or on its way to) shared memory.
    init.push_back(constant(-1));
    Value tiles = arith::CeilDivSIOp::create(b, loc, keys, constant(kKeys));
    q0 = mul(blockX, constant(kRows));
    Value q1 =
        arith::MinSIOp::create(b, loc, add(q0, constant(kRows)), queries);
    SmallVector<Value> result;
    if (op.getMask().empty()) {
      result =
          forTiles(constant(0), tiles, init, [&](Value tile, ValueRange s) {
            return visit(mul(tile, constant(kKeys)), Value(), s);
          });
    } else {
      // The classes of up to kClassChunk tiles at a time, one per thread,
      // from the interval analysis of the mask region (mask_block), go
      // through shared memory; hidden tiles are skipped, fully visible
      // ones evaluate no mask.
      func::FuncOp block = loom::cpu::buildAttentionMaskBlock(
          b, gpuModule.getBody(), loc, "mask_block", op.getMask(),
          ValueRange(captures).getTypes());
      b.setInsertionPoint(kernel.getBody().front().getTerminator());
      Value classes = kernel.addWorkgroupAttribution(
          MemRefType::get({kClassChunk}, i32, AffineMap(), shared), loc);
      auto chunks = scf::ForOp::create(b, loc, constant(0), tiles,
                                       constant(kClassChunk), init);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(chunks.getBody());
      Value c0 = chunks.getInductionVar();
      gpu::BarrierOp::create(b, loc);
      Value mine = add(c0, tid);
      when(both(less(mine, tiles), less(tid, constant(kClassChunk))), [&] {
        Value n0 = mul(mine, constant(kKeys));
        Value n1 = min(add(n0, constant(kKeys)), keys);
        SmallVector<Value> args{bIdx, hIdx, q0, q1, n0, n1};
        llvm::append_range(args, captures);
        Value cls = func::CallOp::create(b, loc, block, args).getResult(0);
        memref::StoreOp::create(b, loc, cls, classes, ValueRange{tid});
      });
      gpu::BarrierOp::create(b, loc);
      Value count =
          arith::MinSIOp::create(b, loc, constant(kClassChunk),
                                 arith::SubIOp::create(b, loc, tiles, c0));
      SmallVector<Value> next = forTiles(
          constant(0), count, chunks.getRegionIterArgs(),
          [&](Value local, ValueRange s) {
            Value cls = memref::LoadOp::create(b, loc, classes, local);
            Value n0 = mul(add(c0, local), constant(kKeys));
            Value seen =
                arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, cls,
                                      i32Constant(LOOM_ATTENTION_BLOCK_NONE));
            auto ifOp = scf::IfOp::create(b, loc, TypeRange(s), seen, true);
            OpBuilder::InsertionGuard inner(b);
            b.setInsertionPointToStart(ifOp.thenBlock());
            scf::YieldOp::create(b, loc, visit(n0, cls, s));
            b.setInsertionPointToStart(ifOp.elseBlock());
            scf::YieldOp::create(b, loc, s);
            return SmallVector<Value>(ifOp.getResults());
          });
      scf::YieldOp::create(b, loc, next);
      result = SmallVector<Value>(chunks.getResults());
    }
    NVVM::CpAsyncWaitGroupOp::create(b, loc, 0);
    result.pop_back();
    store(result);
  }

private:
  fuse::AttentionOp op;
  /// q k^T through wgmma (sm_90a), K in shared memory as core matrices.
  bool useWgmma;
  int64_t d, dv;
  Value ks, vs, tid, lane, g, t, lr, lm1, lm2, bIdx, hIdx, hkv, rowBase, q0,
      queries, keys;
  /// The kernel's arguments.
  Value q, k, v, out, lse;
  SmallVector<Value> captures;
  /// The q fragments: d / 16 groups of 4 packed pairs.
  SmallVector<Value> qFrag;

  View kView, vView;

  /// The linear index of [bIdx, head, row, col] in `v`.
  Value at(const View &v, Value head, Value row, Value col) {
    return KernelBuilder::at(v, ValueRange{bIdx, head, row, col});
  }

  /// The q fragments of the thread's rows (zero past the last query).
  void loadQuery() {
    Value zero = arith::ConstantOp::create(b, loc, b.getFloatAttr(elem, 0.0));
    auto pairAt = [&](Value row, Value col) {
      Value valid = less(row, queries);
      auto ifOp = scf::IfOp::create(b, loc, TypeRange{elem, elem}, valid, true);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(ifOp.thenBlock());
      Value x =
          memref::LoadOp::create(b, loc, q, ValueRange{bIdx, hIdx, row, col});
      Value y = memref::LoadOp::create(
          b, loc, q, ValueRange{bIdx, hIdx, row, add(col, constant(1))});
      scf::YieldOp::create(b, loc, ValueRange{x, y});
      b.setInsertionPointToStart(ifOp.elseBlock());
      scf::YieldOp::create(b, loc, ValueRange{zero, zero});
      b.setInsertionPointAfter(ifOp);
      return pack(vector::FromElementsOp::create(
          b, loc, VectorType::get({2}, elem), ifOp.getResults()));
    };
    Value row8 = add(rowBase, constant(8));
    Value col = mul(t, constant(2));
    for (int64_t kk = 0; kk < d / 16; ++kk) {
      Value c0 = add(col, constant(16 * kk));
      Value c8 = add(c0, constant(8));
      qFrag.append({pairAt(rowBase, c0), pairAt(row8, c0), pairAt(rowBase, c8),
                    pairAt(row8, c8)});
    }
  }

  /// Bit e of the result: whether the e-th score of the thread in this
  /// tile is visible, e = 4 * (n-tile) + 2 * (second row) + (odd column).
  Value maskBits(Value n0, bool withRegion) {
    // Unrolled, and the region is evaluated at indices clamped into range
    // (its result then ignored), without branches: loads of the same
    // capture element (tin[i] for the two rows, tin[j] for the 16 keys)
    // are then common subexpressions.
    Value bits = i32Constant(0);
    for (int64_t e = 0; e < 32; ++e) {
      auto [i, j] = scoreIndex(n0, e);
      Value visible =
          arith::AndIOp::create(b, loc, less(i, queries), less(j, keys));
      if (withRegion)
        visible = arith::AndIOp::create(b, loc, visible,
                                        inlineRegion(op.getMask(), i, j, {}));
      bits = arith::OrIOp::create(
          b, loc, bits,
          arith::SelectOp::create(b, loc, visible, i32Constant(int64_t(1) << e),
                                  i32Constant(0)));
    }
    return bits;
  }

  /// Starts the copies of the rows of `view` of the tile at `n0` into
  /// `buffer` (cp.async, 16 bytes each, zero past the last key) and
  /// commits them as one group; a view whose chunks are not contiguous and
  /// aligned is copied synchronously instead. Consecutive threads take
  /// consecutive chunks of a row (coalesced). For K stored as core matrices
  /// (wgmma) with a power-of-two head dim, each 8 threads take 2
  /// neighbouring chunks (32 bytes) of 4 rows instead, so that their
  /// 16-byte stores, 128 bytes apart across core matrices, meet in 2 bank
  /// groups rather than 1; a thread's rows then step by a constant, as in
  /// the row-major order, which keeps the addressing to 2 registers.
  void issue(const View &view, Value buffer, int64_t width, Value n0) {
    bool coreMatrices = cast<MemRefType>(buffer.getType()).getRank() == 3;
    int64_t pairs = width / 16; // chunk pairs of a row
    bool paired = coreMatrices && 16 % pairs == 0;
    Value pairRow, pairCol;
    if (paired) {
      Value group = div(tid, 8), lane8 = rem(tid, 8);
      pairRow = add(mul(div(group, pairs), constant(4)), div(lane8, 2));
      pairCol = mul(add(mul(rem(group, pairs), constant(2)), rem(lane8, 2)),
                    constant(kChunk));
    }
    for (int64_t c = 0; c < kKeys * width / kChunk; c += kThreads) {
      Value row, col;
      if (paired) {
        // 128 threads cover 16 groups of 4 rows x 2 chunks: 64 / pairs rows.
        row = add(pairRow, constant(c / kThreads * (64 / pairs)));
        col = pairCol;
      } else {
        Value id = add(tid, constant(c));
        row = div(id, width / kChunk);
        col = mul(rem(id, width / kChunk), constant(kChunk));
      }
      Value key = add(n0, row);
      Value clamped = min(key, sub(keys, constant(1)));
      SmallVector<Value> at{row, col};
      if (coreMatrices)
        at = {div(row, 8), div(col, 8), mul(rem(row, 8), constant(8))};
      copyChunk(view, ValueRange{bIdx, hkv, key, col},
                ValueRange{bIdx, hkv, clamped, col}, less(key, keys), buffer,
                at);
    }
    NVVM::CpAsyncCommitGroupOp::create(b, loc);
  }

  /// `for i in [lo, hi): state = body(i, state)`; returns the final state.
  SmallVector<Value>
  forTiles(Value lo, Value hi, ValueRange init,
           llvm::function_ref<SmallVector<Value>(Value, ValueRange)> body) {
    return loop(lo, hi, constant(1), init, body);
  }

  /// The tile of keys at `n0` whose class is `cls` (no mask: null).
  SmallVector<Value> visit(Value n0, Value cls, ValueRange state) {
    // Which of the thread's 32 scores are visible: the pairs in range,
    // and for a tile that is not all visible those the mask region shows.
    Value full = arith::AndIOp::create(
        b, loc,
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle,
                              add(n0, constant(kKeys)), keys),
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle,
                              add(q0, constant(kRows)), queries));
    Value allVisible =
        cls ? arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, cls,
                                    i32Constant(LOOM_ATTENTION_BLOCK_ALL))
                  .getResult()
            : arith::ConstantIntOp::create(b, loc, b.getI1Type(), 1)
                  .getResult();
    auto ifOp = scf::IfOp::create(
        b, loc, TypeRange{i32}, arith::AndIOp::create(b, loc, full, allVisible),
        true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(ifOp.thenBlock());
      scf::YieldOp::create(b, loc, ValueRange{i32Constant(-1)});
      b.setInsertionPointToStart(ifOp.elseBlock());
      Value bits;
      if (!cls) {
        bits = maskBits(n0, /*region=*/false);
      } else {
        auto some = scf::IfOp::create(b, loc, TypeRange{i32}, allVisible, true);
        b.setInsertionPointToStart(some.thenBlock());
        scf::YieldOp::create(b, loc, maskBits(n0, /*region=*/false));
        b.setInsertionPointToStart(some.elseBlock());
        scf::YieldOp::create(b, loc, maskBits(n0, /*region=*/true));
        b.setInsertionPointAfter(some);
        bits = some.getResult(0);
      }
      scf::YieldOp::create(b, loc, bits);
    }
    Value bits = ifOp.getResult(0);
    // One barrier both ends the previous tile's reads of shared memory and
    // tells every thread whether any pair of the tile is visible (the
    // interval analysis cannot always tell: a tree's hidden tiles).
    Value nonzero = arith::ExtUIOp::create(
        b, loc, i32,
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, bits,
                              i32Constant(0)));
    Value any = NVVM::BarrierOp::create(b, loc, i32, Value(), Value(),
                                        NVVM::BarrierReductionAttr::get(
                                            ctx, NVVM::BarrierReduction::OR),
                                        nonzero)
                    .getRes();
    Value seen = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, any,
                                       i32Constant(0));
    auto work = scf::IfOp::create(b, loc, TypeRange(state), seen, true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(work.thenBlock());
    // K of this tile was started during the previous one's P v when it
    // is the next tile; else it is started now, once the copy in flight
    // into the same buffer is done.
    Value kLoaded = state.back();
    when(arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, kLoaded, n0),
         [&] {
           NVVM::CpAsyncWaitGroupOp::create(b, loc, 0);
           issue(kView, ks, d, n0);
         });
    issue(vView, vs, dv, n0);
    NVVM::CpAsyncWaitGroupOp::create(b, loc, 1); // K
    // wgmma reads K through the asynchronous proxy.
    if (useWgmma)
      fenceProxyAsync();
    gpu::BarrierOp::create(b, loc);
    Value next = add(n0, constant(kKeys));
    SmallVector<Value> updated = tile(n0, bits, state.drop_back(), [&] {
      // Every warp is done with K: the next tile's K goes in (an empty
      // group past the end, so that the wait below counts right).
      gpu::BarrierOp::create(b, loc);
      Value more = less(next, keys);
      when(more, [&] { issue(kView, ks, d, next); });
      when(arith::XOrIOp::create(
               b, loc, more,
               arith::ConstantIntOp::create(b, loc, b.getI1Type(), 1)),
           [&] { NVVM::CpAsyncCommitGroupOp::create(b, loc); });
      NVVM::CpAsyncWaitGroupOp::create(b, loc, 1); // V
      gpu::BarrierOp::create(b, loc);
    });
    updated.push_back(next);
    scf::YieldOp::create(b, loc, updated);
    b.setInsertionPointToStart(work.elseBlock());
    scf::YieldOp::create(b, loc, state);
    return SmallVector<Value>(work.getResults());
  }

  /// The pair (i, j) of the thread's score e of the tile at `n0`, e = 4 *
  /// (n-tile) + 2 * (second row) + (odd column): the layout of mma.sync's
  /// accumulators.
  std::pair<Value, Value> scoreIndex(Value n0, int64_t e) {
    int64_t nt = e / 4, half = e / 2 % 2, odd = e % 2;
    return {add(rowBase, constant(8 * half)),
            add(n0, add(mul(t, constant(2)), constant(8 * nt + odd)))};
  }

  /// The mask or score region inlined at (b, h, i, j), i and j clamped
  /// into range (a pair outside is hidden anyway), with `scalars` after the
  /// indices (the score region's s) and the captures last; returns what it
  /// yields.
  Value inlineRegion(Region &region, Value i, Value j, ValueRange scalars) {
    Block &block = region.front();
    SmallVector<Value> args{bIdx, hIdx, min(i, sub(queries, constant(1))),
                            min(j, sub(keys, constant(1)))};
    llvm::append_range(args, scalars);
    llvm::append_range(args, captures);
    IRMapping mapping;
    mapping.map(block.getArguments(), args);
    for (Operation &nested : block.without_terminator())
      b.clone(nested, mapping);
    return mapping.lookupOrDefault(block.getTerminator()->getOperand(0));
  }

  /// The score region at (i, j) on the scaled score `s` (f32): the region
  /// computes in the model's type, as it is written, and its result is
  /// extended back.
  Value scoreRegion(Value i, Value j, Value s) {
    Type type = op.getScore().getArgument(4).getType();
    Value result = inlineRegion(
        op.getScore(), i, j,
        type == f32 ? s : arith::TruncFOp::create(b, loc, type, s).getResult());
    return result.getType() == f32 ? result
                                   : arith::ExtFOp::create(b, loc, f32, result);
  }

  /// One tile of keys (in shared memory) at `n0`: scores, online softmax,
  /// output update.
  SmallVector<Value> tile(Value n0, Value bits, ValueRange state,
                          llvm::function_ref<void()> beforeValues) {
    // S = q k^T, 8 tiles of 8 keys; one ldmatrix.x4 gives the B fragments
    // of two of them for 16 of the head dims.
    SmallVector<SmallVector<Value>> s(
        kKeys / 8, SmallVector<Value>(4, floatConstant(0.0)));
    if (useWgmma) {
      // One m64n64k16 per 16 head dims: A is the q fragments (the same
      // registers as mma.sync's A), B the core matrices of K, 128 bytes
      // apart along the head dim and d / 8 of them apart along the keys;
      // the accumulators come out in mma.sync's layout.
      SmallVector<Value> acc;
      Value base = sharedAddress(ks);
      wgmmaFence();
      for (int64_t kk = 0; kk < d / 16; ++kk) {
        Value address = arith::AddIOp::create(
            b, loc, base,
            arith::ConstantIntOp::create(b, loc, b.getI64Type(), kk * 256));
        acc = wgmma(kKeys, acc, ArrayRef<Value>(qFrag).slice(4 * kk, 4),
                    wgmmaDescriptor(address, 128, 128 * (d / 8)));
      }
      acc = wgmmaCommitAndWait(acc);
      for (int64_t e = 0; e < kKeys / 2; ++e)
        s[e / 4][e % 4] = acc[e];
    } else {
      for (int64_t np = 0; np < kKeys / 16; ++np)
        for (int64_t kk = 0; kk < d / 16; ++kk) {
          SmallVector<Value> frag = ldmatrix(
              ks,
              ValueRange{add(constant(16 * np), add(lr, mul(lm2, constant(8)))),
                         add(constant(16 * kk), mul(lm1, constant(8)))},
              false);
          ArrayRef<Value> a = ArrayRef<Value>(qFrag).slice(4 * kk, 4);
          s[2 * np] = mma(a, {frag[0], frag[1]}, s[2 * np]);
          s[2 * np + 1] = mma(a, {frag[2], frag[3]}, s[2 * np + 1]);
        }
    }
    // Online softmax in base 2: x = s * scale * log2(e), hidden -> -inf;
    // with a score region, x = score(s * scale) * log2(e).
    bool withScore = !op.getScore().empty();
    double scale2 = op.getScale().convertToDouble() / std::log(2.0);
    Value scale = floatConstant(scale2);
    if (withScore) {
      Value plain = floatConstant(op.getScale().convertToDouble());
      Value log2e = floatConstant(1.0 / std::log(2.0));
      for (int64_t e = 0; e < 32; ++e) {
        auto [i, j] = scoreIndex(n0, e);
        Value &x = s[e / 4][e % 4];
        x = fmul(scoreRegion(i, j, fmul(x, plain)), log2e);
      }
      scale = floatConstant(1.0);
    }
    Value minusInf = floatConstant(-std::numeric_limits<double>::infinity());
    SmallVector<Value> out(state.begin(), state.begin() + dv / 2);
    Value m[2] = {state[dv / 2], state[dv / 2 + 1]};
    Value l[2] = {state[dv / 2 + 2], state[dv / 2 + 3]};
    for (int64_t nt = 0; nt < kKeys / 8; ++nt)
      for (int64_t k = 0; k < 4; ++k) {
        Value bit = arith::AndIOp::create(
            b, loc, bits, i32Constant(int64_t(1) << (4 * nt + k)));
        Value visible = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne,
                                              bit, i32Constant(0));
        s[nt][k] = arith::SelectOp::create(b, loc, visible,
                                           fmul(s[nt][k], scale), minusInf);
      }
    for (int64_t half = 0; half < 2; ++half) {
      Value mx = minusInf;
      for (int64_t nt = 0; nt < kKeys / 8; ++nt)
        mx = fmax(mx, fmax(s[nt][2 * half], s[nt][2 * half + 1]));
      // The four threads of a row hold its 64 scores between them.
      mx = quad(mx, [&](Value x, Value y) { return fmax(x, y); });
      Value mNew = fmax(m[half], mx);
      Value none = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ,
                                         mNew, minusInf);
      Value mUse =
          arith::SelectOp::create(b, loc, none, floatConstant(0.0), mNew);
      Value alpha = exp2(arith::SubFOp::create(b, loc, m[half], mUse));
      Value sum = floatConstant(0.0);
      for (int64_t nt = 0; nt < kKeys / 8; ++nt)
        for (int64_t k = 2 * half; k < 2 * half + 2; ++k) {
          s[nt][k] = exp2(arith::SubFOp::create(b, loc, s[nt][k], mUse));
          sum = fadd(sum, s[nt][k]);
        }
      l[half] = fadd(fmul(l[half], alpha), sum);
      m[half] = mNew;
      for (int64_t n = 0; n < dv / 8; ++n)
        for (int64_t k = 2 * half; k < 2 * half + 2; ++k)
          out[4 * n + k] = fmul(out[4 * n + k], alpha);
    }
    beforeValues();
    // O += P v: P's accumulators are the A fragments of the next product.
    for (int64_t kk = 0; kk < kKeys / 16; ++kk) {
      Value a[] = {packFloats(s[2 * kk][0], s[2 * kk][1]),
                   packFloats(s[2 * kk][2], s[2 * kk][3]),
                   packFloats(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                   packFloats(s[2 * kk + 1][2], s[2 * kk + 1][3])};
      // One ldmatrix.x4.trans gives the B fragments of two tiles of 8
      // value dims for these 16 keys.
      for (int64_t np = 0; np < dv / 16; ++np) {
        SmallVector<Value> frag =
            ldmatrix(vs,
                     ValueRange{add(constant(16 * kk), add(lr, mul(lm1, constant(8)))),
                                add(constant(16 * np), mul(lm2, constant(8)))},
                     true);
        for (int64_t h = 0; h < 2; ++h) {
          int64_t n = 2 * np + h;
          SmallVector<Value> acc = mma(a, {frag[2 * h], frag[2 * h + 1]},
                                       ArrayRef<Value>(out).slice(4 * n, 4));
          std::copy(acc.begin(), acc.end(), out.begin() + 4 * n);
        }
      }
    }
    SmallVector<Value> next(out);
    next.append({m[0], m[1], l[0], l[1]});
    return next;
  }

  /// out = O / l and lse = m ln 2 + ln l; a row without a visible key gets
  /// 0 and -inf.
  void store(ArrayRef<Value> state) {
    Type outElem = cast<MemRefType>(out.getType()).getElementType();
    Type lseElem = cast<MemRefType>(lse.getType()).getElementType();
    Value col = mul(t, constant(2));
    Value minusInf = floatConstant(-std::numeric_limits<double>::infinity());
    for (int64_t half = 0; half < 2; ++half) {
      Value l = state[dv / 2 + 2 + half];
      l = quad(l, [&](Value x, Value y) { return fadd(x, y); });
      Value m = state[dv / 2 + half];
      Value empty = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, l,
                                          floatConstant(0.0));
      Value inv = arith::SelectOp::create(
          b, loc, empty, floatConstant(0.0),
          arith::DivFOp::create(b, loc, floatConstant(1.0), l));
      Value logSum = fmul(fadd(m, log2(l)), floatConstant(std::log(2.0)));
      logSum = arith::SelectOp::create(b, loc, empty, minusInf, logSum);
      Value row = add(rowBase, constant(8 * half));
      when(less(row, queries), [&] {
        for (int64_t n = 0; n < dv / 8; ++n)
          for (int64_t k = 0; k < 2; ++k) {
            Value x = fmul(state[4 * n + 2 * half + k], inv);
            if (outElem != f32)
              x = arith::TruncFOp::create(b, loc, outElem, x);
            memref::StoreOp::create(
                b, loc, x, out,
                ValueRange{bIdx, hIdx, row, add(col, constant(8 * n + k))});
          }
        when(equal(t, constant(0)), [&] {
          if (lseElem != f32)
            logSum = arith::TruncFOp::create(b, loc, lseElem, logSum);
          memref::StoreOp::create(b, loc, logSum, lse,
                                  ValueRange{bIdx, hIdx, row});
        });
      });
    }
  }
};

struct CudaAttentionPass
    : public loom::cuda::impl::CudaAttentionPassBase<CudaAttentionPass> {
  using Base::Base;

  void runOnOperation() override {
    if (failed(loom::cuda::buildKernels<AttentionKernel, fuse::AttentionOp>(
            getOperation(), "loom_attention", bool(wgmma))))
      signalPassFailure();
  }
};

} // namespace
