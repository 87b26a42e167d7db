//===- MlaDecodeKernel.cpp - fuse.mla_decode as split-K kernels -*- C++ -*-===//
//
// This file implements loom-cuda-mla-decode: a bufferized `fuse.mla_decode`
// on f16 or bf16 becomes two kernels of its own `gpu.module`, in the style
// of flash decoding (FlashMLA's split-K and combine):
//
//   - `partial`: a block of 8 warps owns 64 query rows (the (token, head)
//     pairs of one batch row, all reading the same latent cache) and one
//     split of the visible cache positions. The rows, [q_lat | q_pe], stay
//     in shared memory; the cache goes by tiles of 32 positions, [kv | pe],
//     double-buffered with cp.async. Warp (r, h) computes the scores of
//     rows 16r..16r+15 against keys 16h..16h+15 of the tile (mma.sync
//     m16n8k16 over C + R), the two halves of a row exchange their maxima
//     through shared memory, P goes to shared memory rounded to the input
//     type, and the warp adds P times columns [h C/2, (h+1) C/2) of the
//     latent tile (the first C columns of the same tile: the values are
//     the keys) to its f32 accumulators. The split's normalized output and
//     log-sum-exp (base 2) go to f32 buffers.
//   - `combine`: a block per row of a batch row, 4 columns a thread,
//     merges the splits with their log-sum-exps.
//
// With `wgmma` (sm_90a), the partial kernel's 8 warps are two warpgroups
// and its tiles 64 positions, two of them in shared memory (or 32, three
// of them: `wgmma-keys`, and where 64 do not fit); the rows, the tiles and
// P are unpadded core matrices of wgmma descriptors. Warpgroup h scores
// the second or first half of a tile's keys for all 64 rows (both
// operands from shared memory), the two exchange their row maxima, write
// P to shared memory, and each adds P times its half of the latent
// columns (the tile read MN-major as V). With `p-registers`, each
// warpgroup scores all the tile's keys instead: its softmax needs nothing
// from the other, and P stays in registers as the A operand of P v. The
// scores are computed twice, but a tile has one block barrier instead of
// three, and no fence between P's stores and the product. With `p-split`
// (FlashMLA's split), the first warpgroup scores the whole tile once and
// hands its P registers and the rows' rescaling to the second through
// shared memory and a named barrier; the second issues the next tile's
// copies meanwhile. With `overlap` too (and `tma`), no block barrier
// separates the tiles: the stages go back through "empty" mbarriers, so
// the first scores tile i + 1 while the second multiplies tile i's P.
// With `tma`, warp 0 (4 with `p-split`) loads each tile with bulk tensor
// copies (boxes of 8 columns by the tile's positions, on tensor maps of
// the two caches that the host gets from the runtime) completing on an
// mbarrier per stage; the tile is then chunk-major in shared memory, which
// the wgmma descriptors' strides follow. With `swizzle`, the tile is rows
// of 64 columns in the 128-byte swizzled layout: TMA's boxes of 64 columns
// with `tma`, else cp.async copies of whole 128-byte lines.
//
// The number of splits is chosen on the host from the batch, the rows and
// the visible length, for about `target-blocks` blocks (128 by default: one
// wave of a 132-multiprocessor GPU at one block per multiprocessor, which
// an H100 ran 1.05-1.13x faster than two at DeepSeek-V3's dims).
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CUDA/KernelBuilder.h"

#include "dialects/fuse/IR/FuseOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"

#include <array>
#include <cmath>
#include <functional>
#include <limits>

namespace mlir::loom::cuda {
#define GEN_PASS_DEF_CUDAMLADECODEPASS
#include "compiler/Target/CUDA/Passes.h.inc"
} // namespace mlir::loom::cuda

using namespace mlir;

namespace {

using loom::cuda::kChunk;
constexpr int64_t kWarps = 8;
constexpr int64_t kThreads = 32 * kWarps;
/// Query rows of a block: 4 groups of 16, each shared by two warps.
constexpr int64_t kRows = 64;
/// Cache positions of a tile: each warp of a pair scores 16 of them.
constexpr int64_t kKeys = 32;
/// Elements of padding at the end of each shared-memory row, so that the
/// ldmatrix reads of 8 consecutive rows fall in different banks.
constexpr int64_t kPad = 8;
/// Output columns of one wgmma of P v (N of m64nNk16).
constexpr int64_t kWgColumns = 128;
/// Output columns of a thread of the combine kernel.
constexpr int64_t kCombineColumns = 4;
/// The largest latent rank: the accumulators of a thread are C / 4 floats.
constexpr int64_t kMaxRank = 512;
/// The most shared memory a block can have (sm_90; sm_80 has 166912).
constexpr int64_t kMaxSharedBytes = 232448;

class MlaDecodeKernel : loom::cuda::KernelBuilder {
public:
  MlaDecodeKernel(OpBuilder &b, fuse::MlaDecodeOp op, bool wgmma,
                  int64_t wgmmaKeys, int64_t wgmmaStages, bool pRegisters,
                  bool pSplit, bool overlap, bool tma, bool swizzle,
                  int64_t targetBlocks)
      : KernelBuilder(
            b, op.getLoc(),
            cast<ShapedType>(op.getQLat().getType()).getElementType()),
        op(op) {
    auto q = cast<ShapedType>(op.getQLat().getType());
    heads = q.getDimSize(2);
    rank = q.getDimSize(3);
    rope = cast<ShapedType>(op.getQPe().getType()).getDimSize(3);
    width = rank + rope;
    // Tiles of 64 positions fit twice next to the rows; of 32, three
    // (by default) or four times. Where the tiles asked for do not fit,
    // three of 32 may; else the mma.sync kernel.
    auto choose = [&](int64_t tile, int64_t count) {
      wgKeys = tile;
      stages = count ? count : tile == 64 ? 2 : 3;
      return wgmmaSharedBytes() <= kMaxSharedBytes;
    };
    pInRegisters = pRegisters;
    useTma = tma;
    overlapTiles = pSplit && !pRegisters && tma && overlap;
    this->targetBlocks = targetBlocks;
    useWgmma = wgmma && (choose(wgmmaKeys, wgmmaStages) || choose(32, 3));
    pInRegisters = useWgmma && pRegisters;
    splitRoles = useWgmma && pSplit && !pRegisters;
    useTma = useWgmma && tma;
    overlapTiles = splitRoles && useTma && overlap;
    // 128-byte swizzled rows take 64 columns: the rope dim must be a
    // multiple of 64, and so must each warpgroup's half of the rank (P v
    // reads whole boxes); else the unswizzled layouts.
    swizzled = useWgmma && swizzle && rank % 128 == 0 && rope % 64 == 0;
    keys = useWgmma ? wgKeys : kKeys;
    if (!useWgmma)
      stages = 2;
  }

  /// Why the kernels cannot compile `op`, or "" when they can.
  static std::string unsupported(fuse::MlaDecodeOp op) {
    SmallVector<Value> inputs{op.getQLat(), op.getQPe(), op.getKvCache(),
                              op.getPeCache()};
    if (!llvm::all_of(inputs,
                      [](Value v) { return isa<MemRefType>(v.getType()); }))
      return "is not bufferized";
    // The verifier makes every operand's element type the same.
    Type element = cast<MemRefType>(inputs[0].getType()).getElementType();
    std::string text;
    llvm::raw_string_ostream os(text);
    if (!isa<Float16Type, BFloat16Type>(element)) {
      os << "reads " << element
         << "; the GPU MLA decode kernel reads f16 or bf16 (compile with "
            "--mla=naive, or give the model f16 or bf16 weights and inputs)";
      return text;
    }
    auto q = cast<MemRefType>(inputs[0].getType());
    auto pe = cast<MemRefType>(inputs[1].getType());
    int64_t h = q.getDimSize(2), c = q.getDimSize(3), r = pe.getDimSize(3);
    if (ShapedType::isDynamic(h) || h < 1 || ShapedType::isDynamic(c) ||
        ShapedType::isDynamic(r) || c % 32 || c > kMaxRank || r % 16 ||
        r == 0 || sharedBytes(c + r) > kMaxSharedBytes) {
      os << "has " << (ShapedType::isDynamic(h) ? "dynamic heads, " : "")
         << "latent rank " << c << " and rope dim " << r << " ("
         << sharedBytes(c + r)
         << " bytes of shared memory); the GPU MLA decode kernel needs a static head count, a rank "
            "that is a multiple of 32 up to "
         << kMaxRank
         << " and a rope dim that is a nonzero multiple of 16, with at most "
         << kMaxSharedBytes
         << " bytes of shared memory (compile with --mla=naive)";
      return text;
    }
    return "";
  }

  /// Bytes of dynamic shared memory of the partial kernel for rows of
  /// `width` (rank + rope) elements.
  static int64_t sharedBytes(int64_t width) {
    return (kRows + 2 * kKeys) * (width + kPad) * 2 +
           kRows * (kKeys + kPad) * 2 + 2 * kRows * 4;
  }

  /// Bytes of dynamic shared memory of the wgmma partial kernel: the query
  /// rows and the stages' cache tiles as core matrices, unpadded; unless P
  /// stays in registers, P as core matrices and the row maxima (then sums)
  /// of the two warpgroups.
  int64_t wgmmaSharedBytes() const {
    return (kRows + stages * wgKeys) * width * 2 +
           (pInRegisters ? 0 : kRows * wgKeys * 2 + 2 * kRows * 4) +
           (useTma ? stages * 8 : 0) + (overlapTiles ? stages * 8 : 0);
  }

  /// Bytes between the groups of 8 positions of a cache tile in shared
  /// memory, and between its chunks of 8 columns: a tile is [wgKeys / 8]
  /// [width / 8] core matrices when cp.async writes it, and [width / 8]
  /// [wgKeys] rows of 8 columns (chunk-major, a box of the bulk copies
  /// each) with TMA.
  /// With 128-byte swizzling, a tile is width / 64 boxes of [wgKeys] rows
  /// of 64 columns (128 bytes, their 16-byte chunks permuted by the row's
  /// index modulo 8): 1024 bytes between groups of 8 positions, and the
  /// same bytes per column as TMA's unswizzled boxes (chunkBytes() per 8
  /// columns), whoever writes the tile.
  int64_t keyGroupBytes() const {
    return swizzled ? 1024 : useTma ? 128 : width / 8 * 128;
  }
  int64_t chunkBytes() const { return useTma || swizzled ? wgKeys * 16 : 128; }
  /// Columns of a box of the bulk copies, and the bytes of a box.
  int64_t boxColumns() const { return swizzled ? 64 : kChunk; }
  int64_t boxBytes() const { return wgKeys * boxColumns() * 2; }

  /// The device address of a tensor map of the 3-D cache `cache` for boxes
  /// of boxColumns() columns by the tile's positions (128-byte swizzled
  /// when `swizzled`), from the runtime.
  Value tensorMap(ModuleOp module, Value cache) {
    auto type = cast<MemRefType>(cache.getType());
    SmallVector<int64_t> dyn(3, ShapedType::kDynamic);
    auto argType =
        MemRefType::get(dyn, type.getElementType(),
                        StridedLayoutAttr::get(ctx, ShapedType::kDynamic, dyn));
    std::string name = isa<BFloat16Type>(type.getElementType())
                           ? "loom_rt_cuda_tensor_map_bf16"
                           : "loom_rt_cuda_tensor_map_f16";
    Type i64 = b.getI64Type();
    if (!module.lookupSymbol(name)) {
      OpBuilder top = OpBuilder::atBlockBegin(module.getBody());
      auto decl = func::FuncOp::create(
          top, loc, name, top.getFunctionType({argType, i64, i64, i64}, {i64}));
      decl.setPrivate();
      decl->setAttr("llvm.emit_c_interface", top.getUnitAttr());
    }
    Value arg = memref::CastOp::create(b, loc, argType, cache);
    Value columns = arith::ConstantIntOp::create(b, loc, i64, boxColumns());
    Value rowsPerBox = arith::ConstantIntOp::create(b, loc, i64, wgKeys);
    Value swizzle =
        arith::ConstantIntOp::create(b, loc, i64, swizzled ? 128 : 0);
    return func::CallOp::create(b, loc, name, TypeRange(i64),
                                ValueRange{arg, columns, rowsPerBox, swizzle})
        .getResult(0);
  }

  /// Creates `@<name>::@partial` and `@<name>::@combine` and replaces the
  /// op by the temporaries of the splits and the calls of the two launch
  /// declarations.
  void build(ModuleOp module, StringRef name) {
    OpBuilder::InsertionGuard guard(b);
    Value qLat = op.getQLat();
    Value batch = dim(qLat, 0), tokens = dim(qLat, 1);
    Value cacheLength = dim(op.getKvCache(), 1);
    Value zero = constant(0), one = constant(1);
    // Rows of a batch row, and the positions the last of them sees; none
    // at all for an empty batch.
    Value empty = equal(batch, zero);
    Value rows = select(empty, zero, mul(tokens, constant(heads)));
    Value start = arith::IndexCastOp::create(b, loc, b.getIndexType(),
                                             op.getStartPos());
    Value visible = min(max(add(start, tokens), zero), cacheLength);
    visible = select(equal(rows, zero), zero, visible);
    // Splits: about targetBlocks blocks, every split at least one tile.
    Value rowBlocks = ceilDiv(rows, constant(kRows));
    Value tiles = max(ceilDiv(visible, constant(keys)), one);
    Value wanted =
        ceilDiv(constant(targetBlocks), max(mul(rowBlocks, batch), one));
    Value splits = min(max(wanted, one), tiles);
    Value perSplit = ceilDiv(tiles, splits);
    splits = ceilDiv(tiles, perSplit);
    perSplit = mul(perSplit, constant(keys));

    auto partType = MemRefType::get(
        {ShapedType::kDynamic, ShapedType::kDynamic, ShapedType::kDynamic,
         rank},
        f32);
    auto lseType = MemRefType::get(
        {ShapedType::kDynamic, ShapedType::kDynamic, ShapedType::kDynamic},
        f32);
    Value part = memref::AllocOp::create(b, loc, partType,
                                         ValueRange{splits, batch, rows});
    Value lse = memref::AllocOp::create(b, loc, lseType,
                                        ValueRange{splits, batch, rows});
    SmallVector<Value> partialArgs{qLat,  op.getQPe(), op.getKvCache(),
                                   op.getPeCache(), part, lse,
                                   start, rows,        visible, perSplit};
    if (useTma)
      partialArgs.append({tensorMap(module, op.getKvCache()),
                          tensorMap(module, op.getPeCache())});
    // With one split, the partial kernel writes the result itself (what
    // the combine would: its normalized rows, rounded) and the combine
    // runs one block that does nothing. (A launch under a condition on the
    // host would wait for the stream.)
    partialArgs.push_back(op.getInit());
    Value partialGrid[] = {rowBlocks, batch, splits};
    launch(module, name, "partial", partialGrid, kThreads,
           useWgmma ? wgmmaSharedBytes() : sharedBytes(width), partialArgs);
    SmallVector<Value> combineArgs{part, lse, op.getInit(), splits, rows};
    Value many = less(one, splits);
    Value combineGrid[] = {select(many, rows, one), select(many, batch, one),
                           one};
    launch(module, name, "combine", combineGrid, rank / kCombineColumns, 0,
           combineArgs);

    b.setInsertionPointToEnd(module.getBody());
    auto gpuModule = gpu::GPUModuleOp::create(b, loc, name);
    b.setInsertionPointToStart(gpuModule.getBody());
    buildPartial(ValueRange(partialArgs).getTypes());
    b.setInsertionPointToEnd(gpuModule.getBody());
    buildCombine(ValueRange(combineArgs).getTypes());
  }

private:
  fuse::MlaDecodeOp op;
  int64_t heads, rank, rope, width;
  /// The partial kernel through wgmma (sm_90a), its tile of positions and
  /// the tiles in shared memory; the wgmma kernel's tile when it is used.
  /// With pInRegisters, each warpgroup scores the whole tile and keeps P
  /// in registers.
  bool useWgmma, pInRegisters;
  /// With splitRoles, the first warpgroup scores each tile and hands P
  /// and the rows' rescaling to the second, which loads the tiles.
  bool splitRoles = false;
  /// With overlapTiles (splitRoles and TMA), the warpgroups meet at no
  /// block barrier in the loop: a stage is handed back through an "empty"
  /// mbarrier that every thread arrives at when done with its tile, and
  /// the first warpgroup scores tile i + 1 while the second multiplies
  /// tile i's P.
  bool overlapTiles = false;
  /// The wgmma kernel loads the cache tiles with bulk tensor copies
  /// (`useTma`); the tiles are in the 128-byte swizzled layout of boxes of
  /// 64 columns (`swizzled`), filled by those copies or by cp.async.
  bool useTma, swizzled = false;
  /// The blocks the host's choice of splits aims for.
  int64_t targetBlocks;
  int64_t keys, stages, wgKeys;
  /// The partial kernel's thread coordinates: lane, row group, key half,
  /// mma row (g) and column pair (t), and the ldmatrix lane pointers.
  Value tid, lane, group, half, g, t, lr, lm1, lm2;
  /// Its shared memory: the query rows, the stages' cache tiles, P, and
  /// the row maxima (then sums) of the two halves.
  Value qs, ks, ps, exchange;
  /// With TMA: the tensor maps of the two caches, and the byte address of
  /// the stages' mbarriers in shared memory.
  Value kvMap, peMap, barriers;
  /// With splitRoles, P's buffer as the first warpgroup's registers:
  /// [wgKeys / 16][128 threads][4], 16 bytes a thread and chunk.
  Value pFrags;
  /// With `swizzled` or TMA, the stages' tiles as one flat array of
  /// elements.
  Value ksFlat;

  /// The bytes of a stage's tile, and its shared address.
  int64_t tileBytes() const { return wgKeys * width * 2; }
  Value tileAddress(Value buffer) {
    return add(sharedPointer(ks), mul(buffer, constant(tileBytes())));
  }
  /// Where the warpgroup's rank / 2 columns of the values start in the tile
  /// at `kAddr`.
  Value valuesAddress(Value kAddr) {
    return add(kAddr, mul(half, constant(rank / 2 / 8 * chunkBytes())));
  }

  gpu::GPUFuncOp kernelFunc(StringRef name, TypeRange types, int64_t threads) {
    auto kernel =
        gpu::GPUFuncOp::create(b, loc, name, b.getFunctionType(types, {}));
    kernel->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
    kernel.setKnownBlockSize(ArrayRef<int32_t>{int32_t(threads), 1, 1});
    Block &entry = kernel.getBody().front();
    b.setInsertionPointToStart(&entry);
    gpu::ReturnOp::create(b, loc);
    b.setInsertionPointToStart(&entry);
    return kernel;
  }

  /// A typed window of the dynamic shared memory at `offset` bytes.
  Value sharedView(Value base, int64_t offset, ArrayRef<int64_t> shape,
                   Type type) {
    auto space = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
    return memref::ViewOp::create(
        b, loc, MemRefType::get(shape, type, AffineMap(), space), base,
        constant(offset), ValueRange());
  }

  /// Where row r of a copy's source is: the indices before the column,
  /// in-bounds ones for rows that are not valid, and whether it is.
  using RowSource = llvm::function_ref<
      std::tuple<SmallVector<Value>, SmallVector<Value>, Value>(Value)>;

  /// Copies rows [0, count) of a `columns`-wide part of shared buffer
  /// `dst` (from column `column0`, prefix `dstPrefix`) from `src`, whose
  /// row r is at `source(r)` (the indices before the column, in-bounds
  /// ones for rows that are not `valid(r)`, and `valid(r)`).
  ///
  /// For wgmma, `dst` holds rows as core matrices, [count / 8][width / 8]
  /// [64]: each 8 consecutive threads copy one chunk of 8 consecutive rows
  /// (one core matrix, 128 contiguous bytes: no bank conflicts), a warp 4
  /// chunks (64 contiguous bytes of each of 8 rows). Copy k of thread
  /// 8q + w is chunk (q + Gk) % perRow of row 8 ((q + Gk) / perRow) + w,
  /// G = threads / 8; where G divides perRow or perRow divides G, the
  /// thread's part (q, or q / perRow and q % perRow) is taken once and each
  /// copy adds a constant, so that copies of a row share its address.
  void copyRows(const View &src, int64_t count, int64_t columns, Value dst,
                ValueRange dstPrefix, int64_t column0, RowSource source,
                Value thread = {}, int64_t threads = kThreads) {
    if (!thread)
      thread = tid;
    int64_t perRow = columns / kChunk, total = count * perRow;
    int64_t groups = threads / 8;
    Value q = arith::DivUIOp::create(b, loc, thread, constant(8));
    Value w = arith::RemUIOp::create(b, loc, thread, constant(8));
    forEachCopy(total, thread, threads, [&](int64_t c, Value id) {
      Value r, chunk;
      SmallVector<Value> to(dstPrefix);
      if (useWgmma) {
        int64_t step = groups * (c / threads);
        Value rows8;
        if (perRow % groups == 0) {
          rows8 = constant(step / perRow);
          chunk = add(q, constant(step % perRow));
        } else if (groups % perRow == 0) {
          rows8 = add(arith::DivUIOp::create(b, loc, q, constant(perRow)),
                      constant(step / perRow));
          chunk = arith::RemUIOp::create(b, loc, q, constant(perRow));
        } else {
          Value rest = add(q, constant(step));
          rows8 = div(rest, perRow);
          chunk = rem(rest, perRow);
        }
        r = add(mul(rows8, constant(8)), w);
        to.append({rows8, add(chunk, constant(column0 / kChunk)),
                   mul(w, constant(kChunk))});
      } else {
        r = div(id, perRow);
        chunk = rem(id, perRow);
      }
      if (!useWgmma)
        to.append({r, add(mul(chunk, constant(kChunk)), constant(column0))});
      copyRowChunk(src, source, r, chunk, dst, to);
    });
  }

  /// `body(c, id)` for each round c (a multiple of `threads`) of the
  /// `total` copies that `threads` threads make, id = thread + c; the last
  /// round under a guard when `total` is not a multiple of `threads`.
  void forEachCopy(int64_t total, Value thread, int64_t threads,
                   llvm::function_ref<void(int64_t, Value)> body) {
    for (int64_t c = 0; c < total; c += threads) {
      Value id = add(thread, constant(c));
      if (c + threads <= total)
        body(c, id);
      else
        when(less(id, constant(total)), [&] { body(c, id); });
    }
  }

  /// Copies 16-byte chunk `chunk` of row `r` of `src` (at the indices
  /// `source(r)` gives) to `dst` at `to`.
  void copyRowChunk(const View &src, RowSource source, Value r, Value chunk,
                    Value dst, ValueRange to) {
    Value col = mul(chunk, constant(kChunk));
    auto [indices, clamped, valid] = source(r);
    indices.push_back(col);
    clamped.push_back(col);
    copyChunk(src, indices, clamped, valid, dst, to);
  }

  /// Copies the tile's rows (wgKeys of them) of a `columns`-wide part of
  /// the cache, from tile column `column0` (a multiple of 64), into stage
  /// `buffer` in the 128-byte swizzled layout that TMA's swizzled boxes
  /// make: boxes of 64 columns boxBytes() apart, rows of 128 bytes whose
  /// 16-byte chunk j is at place j ^ (row % 8). Copy k of thread t is chunk
  /// (t + k threads) % perRow of row (t + k threads) / perRow: 8 threads
  /// copy a whole 128-byte line, a warp 512 contiguous bytes of a row (4
  /// lines), which land on every bank 4 times (the fewest wavefronts).
  /// `source` as for copyRows.
  void copyRowsSwizzled(const View &src, int64_t columns, int64_t column0,
                        Value buffer, RowSource source, Value thread = {},
                        int64_t threads = kThreads) {
    if (!thread)
      thread = tid;
    int64_t perRow = columns / kChunk, total = wgKeys * perRow;
    assert(column0 % 64 == 0 && "a part starts a box");
    // Powers of two that divide each other: a copy's row and chunk are
    // the thread's plus constants.
    bool simple = llvm::isPowerOf2_64(perRow) &&
                  llvm::isPowerOf2_64(threads) &&
                  (threads % perRow == 0 || perRow % threads == 0);
    Value row0 = arith::DivUIOp::create(b, loc, thread, constant(perRow));
    Value chunk0 = arith::RemUIOp::create(b, loc, thread, constant(perRow));
    Value stage = mul(buffer, constant(wgKeys * width));
    forEachCopy(total, thread, threads, [&](int64_t c, Value id) {
      Value r, chunk;
      if (simple) {
        r = add(row0, constant(c / perRow));
        chunk = add(chunk0, constant(c % perRow));
      } else {
        r = div(id, perRow);
        chunk = rem(id, perRow);
      }
      Value box = add(arith::DivUIOp::create(b, loc, chunk, constant(8)),
                      constant(column0 / 64));
      Value j = arith::RemUIOp::create(b, loc, chunk, constant(8));
      Value place = arith::XOrIOp::create(
          b, loc, j, arith::RemUIOp::create(b, loc, r, constant(8)));
      Value index =
          add(stage, add(mul(box, constant(boxBytes() / 2)),
                         add(mul(r, constant(64)), mul(place, constant(8)))));
      copyRowChunk(src, source, r, chunk, ksFlat, ValueRange{index});
    });
  }

  void buildPartial(TypeRange types) {
    gpu::GPUFuncOp kernel = kernelFunc("partial", types, kThreads);
    // One block per multiprocessor: the accumulators need the registers.
    kernel->setAttr(NVVM::NVVMDialect::getMinctasmAttrName(),
                    b.getI32IntegerAttr(1));
    Block &entry = kernel.getBody().front();
    Value qLat = entry.getArgument(0), qPe = entry.getArgument(1);
    Value kv = entry.getArgument(2), pe = entry.getArgument(3);
    Value part = entry.getArgument(4), lse = entry.getArgument(5);
    Value start = entry.getArgument(6), rows = entry.getArgument(7);
    Value visible = entry.getArgument(8), perSplit = entry.getArgument(9);
    if (useTma) {
      kvMap = entry.getArgument(10);
      peMap = entry.getArgument(11);
    }
    Value out = entry.getArguments().back();

    auto space = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
    Value base = gpu::DynamicSharedMemoryOp::create(
        b, loc,
        MemRefType::get({ShapedType::kDynamic}, b.getI8Type(), AffineMap(),
                        space));
    if (useWgmma) {
      // Core matrices, [rows / 8][width / 8][8 x 8], 16-byte aligned.
      int64_t offset = kRows * width * 2;
      qs = sharedView(base, 0, {kRows / 8, width / 8, 64}, elem);
      ks = sharedView(base, offset, {stages, wgKeys / 8, width / 8, 64}, elem);
      if (swizzled || useTma)
        ksFlat = sharedView(base, offset, {stages * wgKeys * width}, elem);
      offset += stages * wgKeys * width * 2;
      if (!pInRegisters) {
        ps = sharedView(base, offset, {kRows / 8, wgKeys / 8, 64}, elem);
        if (splitRoles)
          pFrags = sharedView(base, offset, {wgKeys / 16, 128, 4}, i32);
        offset += kRows * wgKeys * 2;
        exchange = sharedView(base, offset, {2, kRows}, f32);
        offset += 2 * kRows * 4;
      }
      // The stages' mbarriers (8 bytes each), last.
      if (useTma)
        barriers = add(sharedPointer(qs), constant(offset));
    } else {
      int64_t pitch = (width + kPad) * 2;
      qs = sharedView(base, 0, {kRows, width + kPad}, elem);
      ks = sharedView(base, kRows * pitch, {2, kKeys, width + kPad}, elem);
      ps = sharedView(base, (kRows + 2 * kKeys) * pitch, {kRows, kKeys + kPad},
                      elem);
      exchange = sharedView(
          base, (kRows + 2 * kKeys) * pitch + kRows * (kKeys + kPad) * 2,
          {2, kRows}, f32);
    }

    tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
    Value rowBlock = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
    Value bIdx = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
    Value split = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
    lane = rem(tid, 32);
    Value warp = warpUniform(div(tid, 32));
    group = rem(warp, 4);
    half = div(warp, 4);
    g = div(lane, 4);
    t = rem(lane, 4);
    lr = rem(lane, 8);
    lm1 = rem(div(lane, 8), 2);
    lm2 = div(lane, 16);
    Value row0 = mul(rowBlock, constant(kRows));
    Value k0 = mul(split, perSplit);
    // The split's positions, up to the last that a row of the block sees
    // (a prefill's first rows see fewer: their blocks skip hidden tiles).
    Value lastToken =
        div(sub(min(add(row0, constant(kRows)), rows), constant(1)), heads);
    Value k1 = min(min(add(k0, perSplit), visible),
                   add(start, add(lastToken, constant(1))));
    Value tileCount = select(
        less(row0, rows),
        ceilDiv(max(sub(k1, k0), constant(0)), constant(keys)), constant(0));

    // The block's rows into shared memory, rows past the end as zeros.
    View qLatView = view(qLat), qPeView = view(qPe);
    View kvView = view(kv), peView = view(pe);
    Value lastRow = max(sub(rows, constant(1)), constant(0));
    auto queryRow = [&](Value r) {
      Value row = add(row0, r);
      Value clamped = min(row, lastRow);
      SmallVector<Value> at{bIdx, div(row, heads), rem(row, heads)};
      SmallVector<Value> safe{bIdx, div(clamped, heads), rem(clamped, heads)};
      return std::make_tuple(at, safe, less(row, rows));
    };
    when(less(row0, rows), [&] {
      copyRows(qLatView, kRows, rank, qs, {}, 0, queryRow);
      copyRows(qPeView, kRows, rope, qs, {}, rank, queryRow);
    });
    // With TMA: one warp issues a tile's bulk copies, a box of 8 columns
    // by the tile's positions each (chunks of the latent cache, then of
    // the rope key), all completing on the stage's mbarrier; positions past
    // the cache read as zeros.
    Type i32 = b.getI32Type();
    auto toI32 = [&](Value v) {
      return arith::IndexCastOp::create(b, loc, i32, v).getResult();
    };
    auto barrierOf = [&](Value buffer) {
      return toI32(add(barriers, mul(buffer, constant(8))));
    };
    // With overlapTiles, the stages' "empty" mbarriers follow.
    auto emptyOf = [&](Value buffer) {
      return toI32(
          add(barriers, mul(add(buffer, constant(stages)), constant(8))));
    };
    // The warp that issues the bulk copies: the first of the warpgroup
    // that loads the tiles.
    Value loaderWarp = constant(splitRoles ? 4 : 0);
    auto issueTileTma = [&](Value n0, Value buffer) {
      when(equal(warp, loaderWarp), [&] {
        Value bar = barrierOf(buffer);
        when(equal(lane, constant(0)), [&] {
          asmCall({}, {bar, toI32(constant(tileBytes()))},
                  "mbarrier.arrive.expect_tx.shared::cta.b64 _, [$0], $1;",
                  "r,r");
        });
        asmStatement("bar.warp.sync -1;");
        int64_t boxes = width / boxColumns(), latent = rank / boxColumns();
        for (int64_t r = 0; r * 32 < boxes; ++r) {
          Value j = add(lane, constant(32 * r));
          when(less(j, constant(boxes)), [&] {
            Value isKv = less(j, constant(latent));
            Value map = select(isKv, kvMap, peMap);
            Value x = mul(select(isKv, j, sub(j, constant(latent))),
                          constant(boxColumns()));
            Value dst = add(tileAddress(buffer), mul(j, constant(boxBytes())));
            asmCall({},
                    {toI32(dst), map, toI32(x), toI32(n0), toI32(bIdx), bar},
                    "cp.async.bulk.tensor.3d.shared::cluster.global.tile."
                    "mbarrier::complete_tx::bytes [$0], [$1, {$2, $3, $4}], "
                    "[$5];",
                    "r,l,r,r,r,r");
          });
        }
      });
    };
    // Waits until the mbarrier at `address` has completed the phase of
    // `parity`: a stage's tile has landed (its full mbarrier), or every
    // thread is done with it (its empty one).
    auto waitPhase = [&](Value address, Value parity) {
      asmCall({}, {address, toI32(parity)},
              "{\n.reg .pred p;\nLAB_WAIT:\n"
              "mbarrier.try_wait.parity.shared::cta.b64 p, [$0], $1;\n"
              "@!p bra LAB_WAIT;\n}",
              "r,r");
    };
    auto waitTile = [&](Value buffer, Value parity) {
      waitPhase(barrierOf(buffer), parity);
    };
    auto waitEmpty = [&](Value buffer, Value parity) {
      waitPhase(emptyOf(buffer), parity);
    };
    // Zeros the positions from k1 on of tile `buffer` (TMA reads the
    // cache's positions up to its length, and past the visible ones a
    // cache may hold anything: P is 0 there, but 0 times a NaN is not).
    auto zeroTail = [&](Value n0, Value buffer, Value thread, int64_t threads) {
      Value first = sub(k1, n0);
      when(less(first, constant(wgKeys)), [&] {
        Value zeros = arith::ConstantOp::create(
            b, loc,
            DenseElementsAttr::get(VectorType::get({kChunk}, elem),
                                   b.getFloatAttr(elem, 0.0)));
        // A thread stores 16 bytes: consecutive threads take the
        // consecutive 16-byte places of a box's row, then its next rows,
        // then the next box (no bank conflicts in either layout). Chunks
        // of a swizzled row land at permuted places; the whole row is
        // zeroed either way.
        int64_t perRow = boxColumns() / kChunk;
        int64_t total = wgKeys * (width / kChunk);
        for (int64_t c = 0; c < total; c += threads) {
          Value id = add(thread, constant(c));
          Value row = div(id, perRow);
          Value key = rem(row, wgKeys);
          when(both(less(id, constant(total)),
                    less(first, add(key, constant(1)))),
               [&] {
                 Value index =
                     add(mul(buffer, constant(wgKeys * width)),
                         add(mul(div(row, wgKeys), constant(boxBytes() / 2)),
                             add(mul(key, constant(boxColumns())),
                                 mul(rem(id, perRow), constant(kChunk)))));
                 auto st = vector::StoreOp::create(b, loc, zeros, ksFlat,
                                                   ValueRange{index});
                 st.setAlignment(16);
               });
        }
      });
    };

    // The first tile joins the rows' group.
    Value lastKey = max(sub(k1, constant(1)), constant(0));
    // By every thread, or with `loaders` by the second warpgroup's.
    auto issueTile = [&](Value n0, Value buffer, bool loaders = false) {
      auto keyRow = [&](Value r) {
        Value key = add(n0, r);
        SmallVector<Value> at{bIdx, key};
        SmallVector<Value> safe{bIdx, min(key, lastKey)};
        return std::make_tuple(at, safe, less(key, k1));
      };
      // The loaders' thread index is read again where they copy, so that
      // the copies' addresses are made there rather than held in registers
      // through the first warpgroup's scores.
      Value thread;
      if (loaders) {
        Value again = asmCall({i32}, {}, "mov.u32 $0, %tid.x;", "=r")[0];
        thread = sub(arith::IndexCastOp::create(b, loc, b.getIndexType(), again),
                     constant(128));
      }
      int64_t threads = loaders ? 128 : kThreads;
      if (swizzled) {
        copyRowsSwizzled(kvView, rank, 0, buffer, keyRow, thread, threads);
        copyRowsSwizzled(peView, rope, rank, buffer, keyRow, thread, threads);
        return;
      }
      copyRows(kvView, keys, rank, ks, {buffer}, 0, keyRow, thread, threads);
      copyRows(peView, keys, rope, ks, {buffer}, rank, keyRow, thread,
               threads);
    };
    // The first stages - 1 tiles go ahead, one commit group each (with
    // TMA, after thread 0 has made the stages' mbarriers, one arrival
    // each, and the rows alone are a group).
    if (useTma) {
      NVVM::CpAsyncCommitGroupOp::create(b, loc);
      when(equal(tid, constant(0)), [&] {
        for (int64_t p = 0; p < stages; ++p)
          asmCall({}, {barrierOf(constant(p))},
                  "mbarrier.init.shared::cta.b64 [$0], 1;", "r");
        // A stage is empty again when the 256 threads are done with it.
        if (overlapTiles)
          for (int64_t p = 0; p < stages; ++p)
            asmCall({}, {emptyOf(constant(p))},
                    "mbarrier.init.shared::cta.b64 [$0], 256;", "r");
        asmStatement("fence.mbarrier_init.release.cluster;");
      });
      gpu::BarrierOp::create(b, loc);
    }
    // Bulk tensor copies write to 128-byte aligned shared memory (1024 for
    // the swizzled layout, whose pattern the wgmma descriptors assume to
    // start there). The layout's offsets are multiples of that; the
    // dynamic shared memory's start must be too.
    if (useTma || swizzled)
      when(both(equal(tid, constant(0)),
                less(constant(0),
                     rem(sharedPointer(qs), swizzled ? 1024 : 128))),
           [&] { asmStatement("trap;"); });
    // The maps were written by a copy from the host: the lanes that issue
    // the copies acquire them for the tensor-map proxy first (PTX 8.3). A
    // block without a tile has nothing to copy (and an empty cache no
    // map).
    if (useTma)
      when(both(equal(warp, loaderWarp), less(constant(0), tileCount)), [&] {
        for (Value map : {kvMap, peMap})
          asmCall({}, {map},
                  "fence.proxy.tensormap::generic.acquire.sys [$0], 128;", "l");
      });
    // (With overlapTiles, every stage: tile i + stages is issued when
    // tile i is done.)
    for (int64_t p = 0; p + (overlapTiles ? 0 : 1) < stages; ++p) {
      when(less(constant(p), tileCount), [&] {
        if (useTma)
          issueTileTma(add(k0, constant(p * keys)), constant(p));
        else
          issueTile(add(k0, constant(p * keys)), constant(p));
      });
      if (!useTma)
        NVVM::CpAsyncCommitGroupOp::create(b, loc);
    }
    if (useTma)
      NVVM::CpAsyncWaitGroupOp::create(b, loc, 0);
    // Without a barrier in the loop, the rows are published here.
    if (overlapTiles) {
      fenceProxyAsync();
      gpu::BarrierOp::create(b, loc);
    }

    // State: the accumulators (rank / 2 columns of 16 rows: rank / 16
    // tiles of 4), the running maximum and sum of the thread's two rows.
    int64_t accumulators = rank / 4;
    Value minusInf = floatConstant(-std::numeric_limits<double>::infinity());
    SmallVector<Value> init(accumulators, floatConstant(0.0));
    init.append({minusInf, minusInf, floatConstant(0.0), floatConstant(0.0)});
    // The row of the thread's first accumulator (block-local); the second
    // is 8 on.
    Value localRow = add(mul(group, constant(16)), g);
    double scale2 = op.getScale().convertToDouble() / std::log(2.0);
    SmallVector<Value> state = loop(
        constant(0), tileCount, constant(1), init, [&](Value i, ValueRange s) {
          Value n0 = add(k0, mul(i, constant(keys)));
          Value buffer = rem(i, stages);
          // Tile i has landed; the stages - 2 after it may be in flight
          // (with overlapTiles, the stages - 1 after it). With TMA, tile
          // i is the (i / stages)-th use of its stage.
          Value row = add(row0, localRow);
          if (overlapTiles) {
            // Every thread sees tile i land; the first warpgroup zeroes
            // its tail and meets itself (named barrier 2) before scoring
            // it; the second reads it after barrier 1, and hands the
            // stage back.
            Value use = div(i, stages);
            waitTile(buffer, rem(use, 2));
            SplitHooks hooks;
            hooks.i = i;
            hooks.tileCount = tileCount;
            hooks.prepare = [&] {
              zeroTail(n0, buffer, tid, 128);
              fenceProxyAsync();
              asmStatement("bar.sync 2, 128;");
            };
            hooks.release = [&] {
              asmCall({}, {emptyOf(buffer)},
                      "mbarrier.arrive.shared::cta.b64 _, [$0];", "r");
            };
            hooks.produce = [&] {
              Value later = add(i, constant(stages));
              when(both(equal(warp, loaderWarp), less(later, tileCount)), [&] {
                waitEmpty(buffer, rem(use, 2));
                issueTileTma(add(n0, constant(stages * keys)), buffer);
              });
            };
            return tileSplit(s, buffer, n0, k1, start, row, localRow, scale2,
                             &hooks);
          }
          if (useTma) {
            waitTile(buffer, rem(div(i, stages), 2));
            zeroTail(n0, buffer, tid, kThreads);
          } else {
            NVVM::CpAsyncWaitGroupOp::create(b, loc, stages - 2);
          }
          // wgmma reads the tile (and the rows, with TMA the zeros)
          // through the asynchronous proxy.
          if (useWgmma)
            fenceProxyAsync();
          gpu::BarrierOp::create(b, loc);
          // The buffer of tile i - 1, which every warp is done with. With
          // splitRoles, the second warpgroup's threads copy it while the
          // first scores tile i.
          Value next = add(i, constant(stages - 1));
          Value issue = less(next, tileCount);
          if (splitRoles && !useTma)
            issue = both(issue, equal(half, constant(1)));
          when(issue, [&] {
            Value n = add(n0, constant((stages - 1) * keys));
            if (useTma)
              issueTileTma(n, rem(next, stages));
            else
              issueTile(n, rem(next, stages), splitRoles);
          });
          if (!useTma)
            NVVM::CpAsyncCommitGroupOp::create(b, loc);
          if (splitRoles)
            return tileSplit(s, buffer, n0, k1, start, row, localRow, scale2);
          if (pInRegisters)
            return tileWgmmaRegisters(s, buffer, n0, k1, start, row, localRow,
                                      scale2);
          return useWgmma
                     ? tileWgmma(s, buffer, n0, k1, start, row, localRow,
                                 scale2)
                     : tile(s, buffer, n0, k1, start, row, localRow, scale2);
        });

    // The sums of the two halves of each row, then the split's results.
    // (Without a tile, the rows' copies are still in flight.)
    NVVM::CpAsyncWaitGroupOp::create(b, loc, 0);
    gpu::BarrierOp::create(b, loc);
    Value m[2] = {state[accumulators], state[accumulators + 1]};
    // The sum of a row: its four threads', and the other half's (with P in
    // registers, each warpgroup's sums are of all the keys).
    auto sum = [&](Value x, Value y) { return fadd(x, y); };
    std::array<Value, 2> l;
    if (splitRoles) {
      // The first warpgroup's sums, which the second's accumulators follow
      // too, through the exchange buffer's second row.
      for (int64_t h = 0; h < 2; ++h) {
        Value own = quad(state[accumulators + 2 + h], sum);
        when(both(equal(half, constant(0)), equal(t, constant(0))), [&] {
          memref::StoreOp::create(
              b, loc, own, exchange,
              ValueRange{constant(1), add(localRow, constant(8 * h))});
        });
      }
      gpu::BarrierOp::create(b, loc);
      for (int64_t h = 0; h < 2; ++h)
        l[h] = memref::LoadOp::create(
            b, loc, exchange,
            ValueRange{constant(1), add(localRow, constant(8 * h))});
    } else if (pInRegisters) {
      for (int64_t h = 0; h < 2; ++h)
        l[h] = quad(state[accumulators + 2 + h], sum);
    } else {
      auto [own, theirs] = exchangeRows(
          {state[accumulators + 2], state[accumulators + 3]}, localRow, sum);
      for (int64_t h = 0; h < 2; ++h)
        l[h] = fadd(own[h], theirs[h]);
    }
    Value column = add(mul(half, constant(rank / 2)), mul(t, constant(2)));
    Value single =
        equal(gpu::GridDimOp::create(b, loc, gpu::Dimension::z), constant(1));
    for (int64_t h = 0; h < 2; ++h) {
      Value local = add(localRow, constant(8 * h));
      Value sum = l[h];
      Value none =
          arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, sum,
                                floatConstant(0.0));
      Value inv = select(none, floatConstant(0.0),
                         arith::DivFOp::create(b, loc, floatConstant(1.0), sum));
      Value logSum = select(none, minusInf, fadd(m[h], log2(sum)));
      Value row = add(row0, local);
      // One split: the rows rounded to the output, as the combine would
      // (its weight is 2^0 = 1 then).
      Value token = div(row, heads), head = rem(row, heads);
      when(less(row, rows), [&] {
        auto ifOp = scf::IfOp::create(b, loc, single, /*withElseRegion=*/true);
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(ifOp.thenBlock());
        for (int64_t n = 0; n < rank / 16; ++n)
          for (int64_t k = 0; k < 2; ++k)
            memref::StoreOp::create(
                b, loc,
                arith::TruncFOp::create(b, loc, elem,
                                        fmul(state[4 * n + 2 * h + k], inv)),
                out,
                ValueRange{bIdx, token, head,
                           add(column, constant(8 * n + k))});
        b.setInsertionPointToStart(ifOp.elseBlock());
        for (int64_t n = 0; n < rank / 16; ++n)
          for (int64_t k = 0; k < 2; ++k)
            memref::StoreOp::create(
                b, loc, fmul(state[4 * n + 2 * h + k], inv), part,
                ValueRange{split, bIdx, row,
                           add(column, constant(8 * n + k))});
        when(both(equal(t, constant(0)), equal(half, constant(0))), [&] {
          memref::StoreOp::create(b, loc, logSum, lse,
                                  ValueRange{split, bIdx, row});
        });
      });
    }
  }

  /// The online softmax of a tile for the thread's scores `s`, in the
  /// accumulators' layout: s[4j + e] is row `row` + 8 (e / 2) and key
  /// `key0` + 8j + e % 2. Masks the keys a row does not see, scales, takes
  /// the row maxima over the thread's quad and, with `exchange`, the other
  /// half (through shared memory), turns `s` into P, rescales the
  /// accumulators `out` and returns the rows' new maxima and sums (the
  /// thread's keys); `storeP(h)` writes P of rows h after each. With
  /// `alphas`, the rows' rescaling factors go there too.
  std::pair<std::array<Value, 2>, std::array<Value, 2>>
  softmax(SmallVectorImpl<Value> &s, ValueRange state,
          SmallVectorImpl<Value> &out, Value key0, Value k1, Value start,
          Value row, Value localRow, double scale2,
          function_ref<void(int64_t)> storeP, bool exchange = true,
          std::array<Value, 2> *alphas = nullptr) {
    int64_t accumulators = rank / 4, tiles = s.size() / 4;
    // Visible: key < min(k1, start + token + 1), token = row / heads.
    Value minusInf = floatConstant(-std::numeric_limits<double>::infinity());
    Value scale = floatConstant(scale2);
    Value limit[2];
    for (int64_t h = 0; h < 2; ++h) {
      Value token = div(add(row, constant(8 * h)), heads);
      limit[h] = min(k1, add(add(start, token), constant(1)));
    }
    // A thread whose keys are all visible to both its rows (every tile
    // but a split's last, and a prefill's diagonal) only scales them.
    Value lastKey = add(key0, constant(8 * (tiles - 1) + 1));
    auto visible =
        scf::IfOp::create(b, loc, SmallVector<Type>(s.size(), f32),
                          less(lastKey, min(limit[0], limit[1])), true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(visible.thenBlock());
      SmallVector<Value> scaled;
      for (Value x : s)
        scaled.push_back(fmul(x, scale));
      scf::YieldOp::create(b, loc, scaled);
      b.setInsertionPointToStart(visible.elseBlock());
      SmallVector<Value> masked;
      for (int64_t j = 0; j < tiles; ++j)
        for (int64_t e = 0; e < 4; ++e) {
          Value key = add(key0, constant(8 * j + e % 2));
          masked.push_back(select(less(key, limit[e / 2]),
                                  fmul(s[4 * j + e], scale), minusInf));
        }
      scf::YieldOp::create(b, loc, masked);
    }
    for (size_t i = 0; i < s.size(); ++i)
      s[i] = visible.getResult(i);
    // The maxima of the thread's keys, over its quad and (with `exchange`)
    // the other half.
    std::array<Value, 2> own;
    for (int64_t h = 0; h < 2; ++h) {
      own[h] = fmax(s[2 * h], s[2 * h + 1]);
      for (int64_t j = 1; j < tiles; ++j)
        own[h] = fmax(own[h], fmax(s[4 * j + 2 * h], s[4 * j + 2 * h + 1]));
    }
    auto maximum = [&](Value x, Value y) { return fmax(x, y); };
    std::array<Value, 2> mx;
    if (exchange) {
      auto [ours, theirs] = exchangeRows(own, localRow, maximum);
      for (int64_t h = 0; h < 2; ++h)
        mx[h] = fmax(ours[h], theirs[h]);
    } else {
      for (int64_t h = 0; h < 2; ++h)
        mx[h] = quad(own[h], maximum);
    }
    std::array<Value, 2> m, l, alpha;
    for (int64_t h = 0; h < 2; ++h) {
      // Both halves compute the same maximum from the same numbers, so
      // their rescalings agree.
      Value mNew = fmax(state[accumulators + h], mx[h]);
      Value none = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ,
                                         mNew, minusInf);
      Value mUse = select(none, floatConstant(0.0), mNew);
      alpha[h] =
          exp2(arith::SubFOp::create(b, loc, state[accumulators + h], mUse));
      Value sum = floatConstant(0.0);
      for (int64_t j = 0; j < tiles; ++j)
        for (int64_t e = 2 * h; e < 2 * h + 2; ++e) {
          Value &x = s[4 * j + e];
          x = exp2(arith::SubFOp::create(b, loc, x, mUse));
          sum = fadd(sum, x);
        }
      l[h] = fadd(fmul(state[accumulators + 2 + h], alpha[h]), sum);
      m[h] = mNew;
      storeP(h);
    }
    if (alphas)
      *alphas = alpha;
    rescale(out, alpha);
    return {m, l};
  }

  /// Multiplies the accumulators of the thread's two rows by their
  /// factors, unless both factors are 1 in every lane of the warp (no row
  /// maximum of the warp's rows moved: most tiles once the maxima settle),
  /// which skips the rank / 4 multiplications exactly.
  void rescale(SmallVectorImpl<Value> &out, std::array<Value, 2> alpha) {
    Value one = floatConstant(1.0);
    auto unit = [&](Value x) {
      return arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, x, one)
          .getResult();
    };
    Value skip = NVVM::VoteSyncOp::create(
        b, loc, b.getI1Type(), i32Constant(-1),
        both(unit(alpha[0]), unit(alpha[1])), NVVM::VoteSyncKind::all);
    auto ifOp = scf::IfOp::create(b, loc, SmallVector<Type>(out.size(), f32),
                                  skip, true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(ifOp.thenBlock());
      scf::YieldOp::create(b, loc, ValueRange(out));
      b.setInsertionPointToStart(ifOp.elseBlock());
      SmallVector<Value> scaled(out.begin(), out.end());
      for (int64_t n = 0; n < int64_t(out.size()) / 4; ++n)
        for (int64_t k = 0; k < 4; ++k)
          scaled[4 * n + k] = fmul(out[4 * n + k], alpha[k / 2]);
      scf::YieldOp::create(b, loc, scaled);
    }
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = ifOp.getResult(i);
  }

  /// The scores of the 64 rows at `qAddr` against `n` keys at `keysAddr`
  /// (both in shared memory as K-major core matrices: the rows with 128
  /// bytes between chunks of 8 columns and a row group's bytes between
  /// groups of 8 rows, the keys as the tile's layout has them), over the
  /// C + R columns 16 at a time; waited for.
  SmallVector<Value> scoresWgmma(Value qAddr, Value keysAddr, int64_t n) {
    int64_t rowBytes = width / 8 * 128;
    // The descriptors of step 0; step kk's are these moved on.
    Value qDesc = wgmmaDescriptor(qAddr, 128, rowBytes);
    Value kDesc =
        swizzled ? wgmmaDescriptor(keysAddr, 16, keyGroupBytes(),
                                   /*swizzle128=*/true)
                 : wgmmaDescriptor(keysAddr, chunkBytes(), keyGroupBytes());
    wgmmaFence();
    SmallVector<Value> s;
    for (int64_t kk = 0; kk < width / 16; ++kk)
      s = wgmmaShared(
          n, s, wgmmaDescriptorAt(qDesc, 256 * kk),
          wgmmaDescriptorAt(kDesc, swizzled
                                       // Step kk is 32 bytes into the
                                       // rows of box kk / 4.
                                       ? kk / 4 * boxBytes() + kk % 4 * 32
                                       : 2 * kk * chunkBytes()));
    return wgmmaCommitAndWait(s);
  }

  /// The descriptor of the values of P v step 0 (keys 0..15) and column 0
  /// of the tile at `vAddr` read MN-major: 16 bytes along the columns,
  /// keyGroupBytes() between groups of 8 keys and chunkBytes() between
  /// chunks of 8 columns (swizzled: boxes of 64 columns boxBytes() apart
  /// along N, groups of 8 keys 1024 bytes apart along K).
  Value valuesDescriptor(Value vAddr) {
    if (swizzled)
      return wgmmaDescriptor(vAddr, boxBytes(), keyGroupBytes(),
                             /*swizzle128=*/true);
    return wgmmaDescriptor(vAddr, keyGroupBytes(), chunkBytes());
  }
  /// The bytes from that descriptor to step `kk`'s (keys 16kk..16kk+15) at
  /// column `c0`.
  int64_t valuesOffset(int64_t kk, int64_t c0) const {
    return 2 * kk * keyGroupBytes() +
           (swizzled ? c0 / 64 * boxBytes() : c0 / 8 * chunkBytes());
  }

  /// One tile of wgKeys cache positions at `n0` (in shared buffer
  /// `buffer`) through wgmma. Warpgroup h scores the 64 rows against keys
  /// [h wgKeys / 2, (h + 1) wgKeys / 2) of the tile (Q and K both from shared
  /// memory, K-major); the two exchange their row maxima and write P to shared
  /// memory as K-major core matrices; then each adds P times its rank / 2
  /// latent columns of the tile to its accumulators: the tile's core
  /// matrices read MN-major, as V.
  SmallVector<Value> tileWgmma(ValueRange state, Value buffer, Value n0,
                               Value k1, Value start, Value row, Value localRow,
                               double scale2) {
    int64_t accumulators = rank / 4;
    int64_t keysOwn = wgKeys / 2;
    Value qAddr = sharedPointer(qs);
    Value kAddr = tileAddress(buffer);
    Value ownKeys =
        add(kAddr, mul(half, constant(keysOwn / 8 * keyGroupBytes())));
    SmallVector<Value> s = scoresWgmma(qAddr, ownKeys, keysOwn);

    SmallVector<Value> out(state.begin(), state.begin() + accumulators);
    Value key0 =
        add(n0, add(mul(half, constant(keysOwn)), mul(t, constant(2))));
    auto [m, l] = softmax(
        s, state, out, key0, k1, start, row, localRow, scale2, [&](int64_t h) {
          // P of this half to shared memory, rounded as the product reads it:
          // row r, key c at [r / 8][c / 8][8 (r % 8) + c % 8].
          Value r = add(localRow, constant(8 * h));
          for (int64_t j = 0; j < keysOwn / 8; ++j) {
            auto st = vector::StoreOp::create(
                b, loc, roundPair(s[4 * j + 2 * h], s[4 * j + 2 * h + 1]), ps,
                ValueRange{
                    div(r, 8),
                    add(mul(half, constant(keysOwn / 8)), constant(j)),
                    add(mul(rem(r, 8), constant(8)), mul(t, constant(2)))});
            st.setAlignment(4);
          }
        });
    // wgmma reads P through the asynchronous proxy.
    fenceProxyAsync();
    gpu::BarrierOp::create(b, loc);
    // O += P v: A is P (K-major: 128 bytes between chunks of 8 keys,
    // wgKeys * 16 between groups of 8 rows), 16 keys at a time; B is the
    // warpgroup's columns of the tile, MN-major (16 bytes along the
    // columns, rows of keys), up to kWgColumns at a time.
    Value pAddr = sharedPointer(ps);
    Value vAddr = valuesAddress(kAddr);
    Value pDesc0 = wgmmaDescriptor(pAddr, 128, wgKeys / 8 * 128);
    Value vDesc = valuesDescriptor(vAddr);
    wgmmaFence();
    for (int64_t kk = 0; kk < wgKeys / 16; ++kk) {
      Value pDesc = wgmmaDescriptorAt(pDesc0, 256 * kk);
      for (int64_t c0 = 0; c0 < rank / 2; c0 += kWgColumns) {
        int64_t n = std::min(kWgColumns, rank / 2 - c0);
        Value desc = wgmmaDescriptorAt(vDesc, valuesOffset(kk, c0));
        SmallVector<Value> acc =
            wgmmaShared(n, ArrayRef<Value>(out).slice(c0 / 2, n / 2), pDesc,
                        desc, /*transposeB=*/true);
        std::copy(acc.begin(), acc.end(), out.begin() + c0 / 2);
      }
    }
    SmallVector<Value> next = wgmmaCommitAndWait(out);
    next.append({m[0], m[1], l[0], l[1]});
    return next;
  }

  /// One tile of wgKeys cache positions at `n0` (in shared buffer
  /// `buffer`) through wgmma, P in registers: each warpgroup scores the 64
  /// rows against all the tile's keys (Q and K from shared memory,
  /// K-major), takes the online softmax of whole rows without the other
  /// warpgroup, and adds P times its rank / 2 latent columns of the tile to
  /// its accumulators with P's accumulators as the A fragments (the tile
  /// read MN-major as V, as in tileWgmma).
  SmallVector<Value> tileWgmmaRegisters(ValueRange state, Value buffer,
                                        Value n0, Value k1, Value start,
                                        Value row, Value localRow,
                                        double scale2) {
    int64_t accumulators = rank / 4;
    Value qAddr = sharedPointer(qs);
    Value kAddr = tileAddress(buffer);
    SmallVector<Value> s = scoresWgmma(qAddr, kAddr, wgKeys);

    SmallVector<Value> out(state.begin(), state.begin() + accumulators);
    Value key0 = add(n0, mul(t, constant(2)));
    auto [m, l] = softmax(
        s, state, out, key0, k1, start, row, localRow, scale2, [](int64_t) {},
        /*exchange=*/false);
    // O += P v, P in registers.
    SmallVector<Value> p = packP(s);
    Value vAddr = valuesAddress(kAddr);
    SmallVector<Value> next = productPV(out, p, vAddr);
    next.append({m[0], m[1], l[0], l[1]});
    return next;
  }

  /// P's accumulators `s` (scores turned into P) as wgmma A registers, an
  /// i32 of two rounded elements each: keys 16kk..16kk+15 of P are the
  /// accumulators of key tiles 2kk and 2kk + 1, which is the A fragment
  /// of mma.sync and of wgmma.
  SmallVector<Value> packP(ArrayRef<Value> s) {
    SmallVector<Value> p;
    for (size_t i = 0; i + 1 < s.size(); i += 2) {
      Value reg = packFloats(s[i], s[i + 1]);
      if (isa<VectorType>(reg.getType()))
        reg = LLVM::BitcastOp::create(b, loc, i32, reg);
      p.push_back(reg);
    }
    return p;
  }

  /// The accumulators `out` plus P (registers `p`, from packP) times the
  /// warpgroup's rank / 2 latent columns of the tile at `vAddr` read
  /// MN-major as V; waited for. All of P is packed before the chain: a
  /// register written between two wgmma of a chain makes ptxas wait for
  /// the chain there.
  SmallVector<Value> productPV(SmallVector<Value> &out, ArrayRef<Value> p,
                               Value vAddr) {
    Value vDesc = valuesDescriptor(vAddr);
    wgmmaFence();
    for (int64_t kk = 0; kk < wgKeys / 16; ++kk)
      for (int64_t c0 = 0; c0 < rank / 2; c0 += kWgColumns) {
        int64_t n = std::min(kWgColumns, rank / 2 - c0);
        SmallVector<Value> acc = wgmma(
            n, ArrayRef<Value>(out).slice(c0 / 2, n / 2), p.slice(4 * kk, 4),
            wgmmaDescriptorAt(vDesc, valuesOffset(kk, c0)),
            /*transposeB=*/true);
        std::copy(acc.begin(), acc.end(), out.begin() + c0 / 2);
      }
    return wgmmaCommitAndWait(out);
  }

  /// What tileSplit does besides the tile without block barriers
  /// (overlapTiles): the tile's index and count, and the first warpgroup's
  /// step before its scores, each warpgroup's after its P v, and the
  /// second's after that.
  struct SplitHooks {
    Value i, tileCount;
    std::function<void()> prepare, release, produce;
  };

  /// One tile of wgKeys cache positions at `n0` (in shared buffer
  /// `buffer`) with the warpgroups' roles split (FlashMLA's schedule): the
  /// first scores the 64 rows against all the tile's keys, takes the
  /// online softmax of whole rows, writes its P registers and the rows'
  /// rescaling factors to shared memory, signals the second (named barrier
  /// 1, which does not wait), and adds P times the first rank / 2 latent
  /// columns of the tile to its accumulators; the second (which has issued
  /// the next tile's copies) waits for that signal, rescales its
  /// accumulators, loads P into the same registers as the first's (thread
  /// j of each warpgroup holds the same rows and keys) and adds P times the
  /// other rank / 2 columns. The second's P v runs while the first is done
  /// with the tile's scores; the block barrier of the next tile keeps P's
  /// buffer until the second has read it. Only the first's row maxima and
  /// sums are kept.
  ///
  /// With `hooks` (overlapTiles), no block barrier separates the tiles:
  /// the first warpgroup runs `prepare` before its scores and waits at
  /// named barrier 3 (after the first tile) until the second has read the
  /// previous P before it writes this one, which the second signals there
  /// (but for the last tile); each runs `release` after its P v, and the
  /// second then `produce`.
  SmallVector<Value> tileSplit(ValueRange state, Value buffer, Value n0,
                               Value k1, Value start, Value row, Value localRow,
                               double scale2,
                               const SplitHooks *hooks = nullptr) {
    int64_t accumulators = rank / 4;
    Value qAddr = sharedPointer(qs);
    Value kAddr = tileAddress(buffer);
    Value vAddr = valuesAddress(kAddr);
    Value groupThread = rem(tid, 128);
    auto ifOp = scf::IfOp::create(b, loc, ValueRange(state).getTypes(),
                                  equal(half, constant(0)), true);
    OpBuilder::InsertionGuard guard(b);
    // P v of the warpgroup's columns with P's registers `p` as A.
    // The first warpgroup.
    b.setInsertionPointToStart(ifOp.thenBlock());
    {
      if (hooks)
        hooks->prepare();
      SmallVector<Value> s = scoresWgmma(qAddr, kAddr, wgKeys);
      SmallVector<Value> out(state.begin(), state.begin() + accumulators);
      std::array<Value, 2> alphas;
      auto [m, l] = softmax(
          s, state, out, add(n0, mul(t, constant(2))), k1, start, row,
          localRow, scale2, [](int64_t) {}, /*exchange=*/false, &alphas);
      // P's registers to shared memory, 16 bytes a thread and chunk
      // (consecutive threads, consecutive places: no bank conflicts).
      SmallVector<Value> p = packP(s);
      if (hooks)
        when(less(constant(0), hooks->i),
             [&] { asmStatement("bar.sync 3, 256;"); });
      for (int64_t c = 0; c < wgKeys / 16; ++c) {
        Value chunk = vector::FromElementsOp::create(
            b, loc, VectorType::get({4}, i32),
            ArrayRef<Value>(p).slice(4 * c, 4));
        auto st = vector::StoreOp::create(
            b, loc, chunk, pFrags,
            ValueRange{constant(c), groupThread, constant(0)});
        st.setAlignment(16);
      }
      when(equal(t, constant(0)), [&] {
        for (int64_t h = 0; h < 2; ++h)
          memref::StoreOp::create(
              b, loc, alphas[h], exchange,
              ValueRange{constant(0), add(localRow, constant(8 * h))});
      });
      asmStatement("bar.arrive 1, 256;");
      SmallVector<Value> next = productPV(out, p, vAddr);
      if (hooks)
        hooks->release();
      next.append({m[0], m[1], l[0], l[1]});
      scf::YieldOp::create(b, loc, next);
    }

    // The second warpgroup.
    b.setInsertionPointToStart(ifOp.elseBlock());
    {
      asmStatement("bar.sync 1, 256;");
      SmallVector<Value> out(state.begin(), state.begin() + accumulators);
      std::array<Value, 2> alphas;
      for (int64_t h = 0; h < 2; ++h)
        alphas[h] = memref::LoadOp::create(
            b, loc, exchange,
            ValueRange{constant(0), add(localRow, constant(8 * h))});
      rescale(out, alphas);
      SmallVector<Value> p;
      for (int64_t c = 0; c < wgKeys / 16; ++c) {
        auto chunk = vector::LoadOp::create(
            b, loc, VectorType::get({4}, i32), pFrags,
            ValueRange{constant(c), groupThread, constant(0)});
        chunk.setAlignment(16);
        for (int64_t e = 0; e < 4; ++e)
          p.push_back(vector::ExtractOp::create(b, loc, chunk, e));
      }
      if (hooks)
        when(less(add(hooks->i, constant(1)), hooks->tileCount),
             [&] { asmStatement("bar.arrive 3, 256;"); });
      SmallVector<Value> next = productPV(out, p, vAddr);
      if (hooks) {
        hooks->release();
        hooks->produce();
      }
      next.append(state.begin() + accumulators, state.end());
      scf::YieldOp::create(b, loc, next);
    }
    return SmallVector<Value>(ifOp.getResults());
  }

  /// Reduces each of the thread's two row values (rows g and g + 8 of its
  /// group) over the four threads of the row with `combine`, publishes the
  /// result to the other warp of the pair through shared memory, and
  /// returns, after a barrier, the reduced values and the other warp's.
  std::pair<std::array<Value, 2>, std::array<Value, 2>>
  exchangeRows(std::array<Value, 2> v, Value localRow,
               function_ref<Value(Value, Value)> combine) {
    for (int64_t h = 0; h < 2; ++h) {
      v[h] = quad(v[h], combine);
      when(equal(t, constant(0)), [&] {
        memref::StoreOp::create(
            b, loc, v[h], exchange,
            ValueRange{half, add(localRow, constant(8 * h))});
      });
    }
    gpu::BarrierOp::create(b, loc);
    Value other = sub(constant(1), half);
    std::array<Value, 2> theirs;
    for (int64_t h = 0; h < 2; ++h)
      theirs[h] = memref::LoadOp::create(
          b, loc, exchange,
          ValueRange{other, add(localRow, constant(8 * h))});
    return {v, theirs};
  }

  /// One tile of 32 cache positions at `n0` (in shared buffer `buffer`):
  /// the warp's scores, the online softmax across the pair of warps, the
  /// update of its accumulators.
  SmallVector<Value> tile(ValueRange state, Value buffer, Value n0, Value k1,
                          Value start, Value row, Value localRow,
                          double scale2) {
    int64_t accumulators = rank / 4;
    // S: 16 rows x 16 keys (two tiles of 8), over the C + R columns.
    SmallVector<SmallVector<Value>> s(2,
                                      SmallVector<Value>(4, floatConstant(0.0)));
    Value aRow = add(mul(group, constant(16)), add(lr, mul(lm1, constant(8))));
    Value bRow = add(mul(half, constant(16)), add(lr, mul(lm2, constant(8))));
    for (int64_t kk = 0; kk < width / 16; ++kk) {
      SmallVector<Value> a = ldmatrix(
          qs, ValueRange{aRow, add(constant(16 * kk), mul(lm2, constant(8)))},
          false);
      SmallVector<Value> frag = ldmatrix(
          ks,
          ValueRange{buffer, bRow,
                     add(constant(16 * kk), mul(lm1, constant(8)))},
          false);
      s[0] = mma(a, {frag[0], frag[1]}, s[0]);
      s[1] = mma(a, {frag[2], frag[3]}, s[1]);
    }
    SmallVector<Value> flat(s[0]);
    flat.append(s[1]);
    SmallVector<Value> out(state.begin(), state.begin() + accumulators);
    Value key0 = add(n0, add(mul(half, constant(16)), mul(t, constant(2))));
    auto [m, l] = softmax(
        flat, state, out, key0, k1, start, row, localRow, scale2,
        [&](int64_t h) {
          // P of this half to shared memory, rounded as the product reads it.
          for (int64_t j = 0; j < 2; ++j) {
            auto st = vector::StoreOp::create(
                b, loc, roundPair(flat[4 * j + 2 * h], flat[4 * j + 2 * h + 1]),
                ps,
                ValueRange{add(localRow, constant(8 * h)),
                           add(mul(half, constant(16)),
                               add(mul(t, constant(2)), constant(8 * j)))});
            st.setAlignment(4);
          }
        });
    gpu::BarrierOp::create(b, loc);
    // O += P v over the tile's 32 keys, for this warp's rank / 2 columns:
    // one ldmatrix.x4.trans gives the B fragments of two tiles of 8
    // columns for 16 keys.
    Value vColumn = add(mul(half, constant(rank / 2)), mul(lm2, constant(8)));
    for (int64_t kk = 0; kk < kKeys / 16; ++kk) {
      SmallVector<Value> a = ldmatrix(
          ps, ValueRange{aRow, add(constant(16 * kk), mul(lm2, constant(8)))},
          false);
      Value vRow = add(constant(16 * kk), add(lr, mul(lm1, constant(8))));
      for (int64_t np = 0; np < rank / 32; ++np) {
        SmallVector<Value> frag = ldmatrix(
            ks, ValueRange{buffer, vRow, add(vColumn, constant(16 * np))},
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

  /// out[b, s, h, c] = sum_z 2^(L_z - M) O_z / sum_z 2^(L_z - M), M the
  /// largest L_z; 0 where no split saw a key. A block per row of a batch
  /// row, kCombineColumns consecutive columns a thread (one 16-byte load
  /// per split).
  void buildCombine(TypeRange types) {
    int64_t threads = rank / kCombineColumns;
    gpu::GPUFuncOp kernel = kernelFunc("combine", types, threads);
    // Eight blocks a multiprocessor are enough to keep its loads in
    // flight; asked for none, ptxas aims at full occupancy (32 registers
    // a thread at 128 threads) and spills.
    kernel->setAttr(NVVM::NVVMDialect::getMinctasmAttrName(),
                    b.getI32IntegerAttr(8));
    Block &entry = kernel.getBody().front();
    Value part = entry.getArgument(0), lse = entry.getArgument(1);
    Value out = entry.getArgument(2), splits = entry.getArgument(3);
    Value rows = entry.getArgument(4);
    Value row = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
    Value bIdx = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
    Value c = mul(gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x),
                  constant(kCombineColumns));
    // An empty launch still runs one block; with one split, the partial
    // kernel has written the result.
    Value work = both(both(less(row, rows), less(bIdx, dim(out, 0))),
                      less(constant(1), splits));
    when(work, [&] {
      Value minusInf = floatConstant(-std::numeric_limits<double>::infinity());
      Value top = loop(constant(0), splits, constant(1), {minusInf},
                       [&](Value z, ValueRange s) {
                         auto l = memref::LoadOp::create(
                             b, loc, lse, ValueRange{z, bIdx, row});
                         return SmallVector<Value>{fmax(s[0], l.getResult())};
                       })[0];
      Value none = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, top,
                                         minusInf);
      Value mUse = select(none, floatConstant(0.0), top);
      auto vec = VectorType::get({kCombineColumns}, f32);
      Value zeros = arith::ConstantOp::create(
          b, loc, DenseElementsAttr::get(vec, b.getF32FloatAttr(0.0)));
      SmallVector<Value> sums =
          loop(constant(0), splits, constant(1), {floatConstant(0.0), zeros},
               [&](Value z, ValueRange s) {
                 auto l = memref::LoadOp::create(b, loc, lse,
                                                 ValueRange{z, bIdx, row});
                 Value w = exp2(arith::SubFOp::create(b, loc, l, mUse));
                 auto o = vector::LoadOp::create(b, loc, vec, part,
                                                 ValueRange{z, bIdx, row, c});
                 o.setAlignment(4 * kCombineColumns);
                 Value wv = vector::BroadcastOp::create(b, loc, vec, w);
                 return SmallVector<Value>{
                     fadd(s[0], w), vector::FMAOp::create(b, loc, wv, o, s[1])};
               });
      Value inv =
          select(none, floatConstant(0.0),
                 arith::DivFOp::create(b, loc, floatConstant(1.0), sums[0]));
      Value token = div(row, heads), head = rem(row, heads);
      for (int64_t k = 0; k < kCombineColumns; ++k) {
        Value x = fmul(vector::ExtractOp::create(b, loc, sums[1], k), inv);
        memref::StoreOp::create(
            b, loc, arith::TruncFOp::create(b, loc, elem, x), out,
            ValueRange{bIdx, token, head, add(c, constant(k))});
      }
    });
  }
};

struct CudaMlaDecodePass
    : public loom::cuda::impl::CudaMlaDecodePassBase<CudaMlaDecodePass> {
  using Base::Base;

  void runOnOperation() override {
    if (wgmmaKeys != 32 && wgmmaKeys != 64) {
      getOperation().emitError()
          << "loom-cuda-mla-decode: wgmma-keys must be 32 or 64, got "
          << unsigned(wgmmaKeys);
      return signalPassFailure();
    }
    if (targetBlocks == 0) {
      getOperation().emitError()
          << "loom-cuda-mla-decode: target-blocks must be positive";
      return signalPassFailure();
    }
    if (overlap && (!pSplit || !tma)) {
      getOperation().emitError()
          << "loom-cuda-mla-decode: overlap needs p-split and tma";
      return signalPassFailure();
    }
    if (pRegisters && pSplit) {
      getOperation().emitError()
          << "loom-cuda-mla-decode: p-registers and p-split are two places "
             "for P; set one";
      return signalPassFailure();
    }
    if (stages == 1 || stages > 4) {
      getOperation().emitError()
          << "loom-cuda-mla-decode: stages must be 0 (the default), 2, 3 or "
             "4, got "
          << unsigned(stages);
      return signalPassFailure();
    }
    if (failed(loom::cuda::buildKernels<MlaDecodeKernel, fuse::MlaDecodeOp>(
            getOperation(), "loom_mla_decode", bool(wgmma), int64_t(wgmmaKeys),
            int64_t(stages), bool(pRegisters), bool(pSplit), bool(overlap),
            bool(tma), bool(swizzle), int64_t(targetBlocks))))
      signalPassFailure();
  }
};

} // namespace
