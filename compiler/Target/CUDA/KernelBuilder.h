//===- KernelBuilder.h - Helpers of the tensor-core kernels -----*- C++ -*-===//
//
// This file declares KernelBuilder, the base of the generators of the
// hand-scheduled GPU kernels (loom-cuda-attention, loom-cuda-mla-decode):
// index and float arithmetic, the PTX one-instruction math, warp shuffles,
// the mma.sync operand registers of f16 and bf16, ldmatrix, Hopper's
// wgmma (inline PTX, with its descriptors and fences), and copies of
// 8-element chunks from global to shared memory (cp.async where the source
// allows it).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_COMPILER_TARGET_CUDA_KERNELBUILDER_H
#define LOOM_COMPILER_TARGET_CUDA_KERNELBUILDER_H

#include "compiler/Target/CUDA/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::loom::cuda {

/// Elements one thread moves from global to shared memory at a time (16
/// bytes of f16 or bf16).
inline constexpr int64_t kChunk = 8;

class KernelBuilder {
public:
  /// `elem` is the f16 or bf16 type of the tensor-core operands.
  KernelBuilder(OpBuilder &b, Location loc, Type elem)
      : b(b), loc(loc), ctx(b.getContext()), elem(elem), f32(b.getF32Type()),
        i32(b.getI32Type()) {}

protected:
  OpBuilder &b;
  Location loc;
  MLIRContext *ctx;
  Type elem, f32, i32;

  /// An operand as a flat buffer with its offset and strides, and whether
  /// chunks of kChunk elements of its rows are contiguous and 16-byte
  /// aligned (then copied by cp.async).
  struct View {
    Value flat, offset, fast;
    SmallVector<Value, 4> strides;
  };

  Value constant(int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v);
  }
  Value i32Constant(int64_t v) {
    return arith::ConstantIntOp::create(b, loc, i32, v);
  }
  Value floatConstant(double v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, loc, x, y); }
  Value div(Value x, int64_t y) {
    return arith::DivSIOp::create(b, loc, x, constant(y));
  }
  Value rem(Value x, int64_t y) {
    return arith::RemSIOp::create(b, loc, x, constant(y));
  }
  Value min(Value x, Value y) { return arith::MinSIOp::create(b, loc, x, y); }
  Value max(Value x, Value y) { return arith::MaxSIOp::create(b, loc, x, y); }
  Value ceilDiv(Value x, Value y) {
    return arith::CeilDivSIOp::create(b, loc, x, y);
  }
  Value less(Value x, Value y) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, x, y);
  }
  Value equal(Value x, Value y) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, x, y);
  }
  Value both(Value x, Value y) { return arith::AndIOp::create(b, loc, x, y); }
  Value select(Value c, Value x, Value y) {
    return arith::SelectOp::create(b, loc, c, x, y);
  }
  Value dim(Value memref, int64_t i) {
    return memref::DimOp::create(b, loc, memref, i);
  }
  Value fadd(Value x, Value y) { return arith::AddFOp::create(b, loc, x, y); }
  Value fmul(Value x, Value y) { return arith::MulFOp::create(b, loc, x, y); }
  Value fmax(Value x, Value y) {
    return arith::MaxNumFOp::create(b, loc, x, y);
  }

  /// ex2.approx and lg2.approx: one instruction each, no libdevice.
  Value exp2(Value x) { return ptxUnary("ex2.approx.ftz.f32", x); }
  Value log2(Value x) { return ptxUnary("lg2.approx.ftz.f32", x); }
  Value ptxUnary(StringRef instruction, Value x);
  Value shuffleXor(Value x, int32_t offset) {
    return gpu::ShuffleOp::create(b, loc, x, offset, 32, gpu::ShuffleMode::XOR)
        .getShuffleResult();
  }
  /// The index `x` of lane 0 of the warp. For a value that is the same in
  /// every lane (a warp or warpgroup index from the thread index), this
  /// tells ptxas so: what is computed from it then stays in uniform
  /// registers (the wgmma descriptors) instead of being computed per
  /// thread and moved there before each wgmma.
  Value warpUniform(Value x) {
    Value v = arith::IndexCastOp::create(b, loc, i32, x);
    v = gpu::ShuffleOp::create(b, loc, v, 0, 32, gpu::ShuffleMode::IDX)
            .getShuffleResult();
    return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
  }
  /// `combine` of x over the four threads of an mma row (lanes 4g..4g+3).
  Value quad(Value x, function_ref<Value(Value, Value)> combine) {
    x = combine(x, shuffleXor(x, 1));
    return combine(x, shuffleXor(x, 2));
  }

  /// Two elements as one mma operand register: an i32 for bf16, a
  /// vector<2xf16> for f16.
  Value pack(Value pair);
  /// Two f32 values rounded to `elem` as one operand register.
  Value packFloats(Value x, Value y);
  /// The pair (x, y) rounded to `elem`, as a vector<2 x elem>.
  Value roundPair(Value x, Value y);
  /// The four 8x8 matrices of `buffer` whose rows the lanes point at (lane
  /// l: the row at `indices`), as four mma operand registers.
  SmallVector<Value> ldmatrix(Value buffer, ValueRange indices,
                              bool transpose);
  /// `mma.sync` m16n8k16, A row-major, B column-major, f32 accumulators.
  SmallVector<Value> mma(ValueRange a, ValueRange bFrag, ValueRange c);

  /// Hopper's warpgroup MMA (sm_90a), `wgmma.mma_async` m64nNk16: the
  /// warpgroup's N / 2 f32 accumulators per thread (in the layout of
  /// mma.sync's, 16 rows a warp) are `acc` plus A (64 x 16, the 4 registers
  /// of each thread's mma.sync A fragment) times B (16 x N, K-major in
  /// shared memory, described by `desc`); with `acc` empty, A times B alone
  /// (nothing writes the accumulators between the fence and the chain).
  /// With `transposeB`, B is MN-major instead (16-bit types only).
  /// Asynchronous: wgmmaFence() before, wgmmaCommitAndWait() before the
  /// results are read.
  SmallVector<Value> wgmma(int64_t n, ValueRange acc, ValueRange a, Value desc,
                           bool transposeB = false);
  /// wgmma() with A in shared memory too, K-major, described by `descA`
  /// (64 x 16); B (16 x N) by `descB`, MN-major with `transposeB`.
  SmallVector<Value> wgmmaShared(int64_t n, ValueRange acc, Value descA,
                                 Value descB, bool transposeB = false);
  /// The descriptor `desc` (from wgmmaDescriptor()) moved `bytes` (a
  /// multiple of 16) on in shared memory: its start address field plus
  /// bytes / 16, which cannot carry out of the field below 256 KB of shared
  /// memory. The addition is on the low word, the high word is the
  /// constant strides: one integer addition per wgmma of a chain instead of
  /// a whole descriptor, which ptxas keeps in uniform registers when the
  /// address is warp-uniform.
  Value wgmmaDescriptorAt(Value desc, int64_t bytes);
  void wgmmaFence() { asmStatement("wgmma.fence.sync.aligned;"); }
  /// Commits the wgmma chain and waits for it; returns the accumulators
  /// `acc` through the wait (tied operands), so that nothing reads them
  /// before it.
  SmallVector<Value> wgmmaCommitAndWait(ValueRange acc);
  /// Makes this thread's writes of shared memory (cp.async included)
  /// visible to the asynchronous proxy that wgmma reads it through.
  void fenceProxyAsync() { asmStatement("fence.proxy.async.shared::cta;"); }
  /// The descriptor of a wgmma operand without swizzling at byte `address`
  /// of shared memory: core matrices of 8 x 16 bytes (the 16 bytes along K
  /// for a K-major operand, along M/N for an MN-major one), `leading` bytes
  /// apart along K and `stride` bytes apart along M/N. `address` is an
  /// index or an i64. With `swizzle128`, the operand is in the 128-byte
  /// swizzled layout instead (rows of 128 bytes, 8-row atoms of 1024
  /// bytes): for a K-major operand `stride` is the distance between 8-row
  /// groups (`leading` is unused); for an MN-major one `leading` is the
  /// distance between 64-element atoms along M/N and `stride` between
  /// groups of 8 along K.
  Value wgmmaDescriptor(Value address, int64_t leading, int64_t stride,
                        bool swizzle128 = false);
  /// The shared-memory byte address of `buffer`'s first element, as an
  /// index (sharedPointer) or an i64 (sharedAddress).
  Value sharedPointer(Value buffer) {
    return memref::ExtractAlignedPointerAsIndexOp::create(b, loc, buffer);
  }
  Value sharedAddress(Value buffer);
  /// An inline-asm statement with side effects and no operands.
  void asmStatement(StringRef text);
  /// Inline PTX with side effects: `results` from its outputs, then
  /// `operands`, as `constraints` lists them.
  ValueRange asmCall(TypeRange results, ValueRange operands, StringRef text,
                     StringRef constraints);
  /// Inline PTX with side effects and `count` f32 results ("=f"), then
  /// `inputs` (`inputConstraints`, each with its leading comma), then `tied`
  /// inputs that share the first tied.size() results' registers.
  SmallVector<Value> asmFloats(StringRef text, int64_t count, ValueRange inputs,
                               StringRef inputConstraints, ValueRange tied);

  View view(Value memref);
  /// The linear index of `indices` in `v`.
  Value at(const View &v, ValueRange indices);
  /// Copies kChunk elements of `src` from `indices` (the last one a column)
  /// to `dst` at `dstIndices`, zeros where `valid` is false: cp.async
  /// where the view is fast (`clamped` are in-bounds source indices for
  /// the invalid case), element loads otherwise. Does not commit.
  void copyChunk(const View &src, ValueRange indices, ValueRange clamped,
                 Value valid, Value dst, ValueRange dstIndices);

  /// `for i in [lo, hi) step `step`: state = body(i, state)`; returns the
  /// final state.
  SmallVector<Value>
  loop(Value lo, Value hi, Value step, ValueRange init,
       llvm::function_ref<SmallVector<Value>(Value, ValueRange)> body);
  /// `if (cond) body()`.
  void when(Value cond, llvm::function_ref<void()> body);

  /// A private declaration `@<name>_<kernel>_launch` marked for loom-cuda-map-to-gpu
  /// (kernel `@<name>::@<kernel>`, `threads` per block, `sharedBytes` of
  /// dynamic shared memory) and its call at the builder's insertion point
  /// with the grid `grid` and the kernel's `operands`.
  void launch(ModuleOp module, StringRef name, StringRef kernel,
              ArrayRef<Value> grid, int64_t threads, int64_t sharedBytes,
              ValueRange operands);
};

/// Replaces every `Op` of `module` by the kernel `Kernel(b, op, args...)
/// .build(module, "<prefix>_<i>")` makes; an op that
/// `Kernel::unsupported(op)` rejects is an error with its reason.
template <typename Kernel, typename Op, typename... Args>
LogicalResult buildKernels(ModuleOp module, StringRef prefix, Args... args) {
  SmallVector<Op> ops;
  module.walk([&](Op op) { ops.push_back(op); });
  int64_t count = 0;
  for (Op op : ops) {
    std::string why = Kernel::unsupported(op);
    if (!why.empty())
      return op.emitOpError() << why;
    OpBuilder b(op);
    Kernel(b, op, args...).build(module, (prefix + "_" + Twine(count++)).str());
    op.erase();
  }
  return success();
}

} // namespace mlir::loom::cuda

#endif // LOOM_COMPILER_TARGET_CUDA_KERNELBUILDER_H
