//===- TokenLogprobKernel.cpp - fuse.token_logprob on the GPU ---*- C++ -*-===//
//
// This file implements loom-cuda-token-logprob: a bufferized f32
// `fuse.token_logprob` or `fuse.token_logprob_grad` becomes a host loop
// over chunks of the vocabulary, as Liger-Kernel's fused linear
// cross-entropy does, so that only a [tokens x chunk] block of logits ever
// exists:
//
//   forward   L = hidden . W[v0:v0+c]^T              (a matrix product)
//             per token, a block reduces L's row: the running maximum
//             and sum of exp (online log-sum-exp) and the id's logit
//   backward  L = hidden . W[v0:v0+c]^T
//             G = g / t ([v == id] - exp(L / t - lse))   (in place)
//             grad_hidden += G . W[v0:v0+c]
//             grad_weight[v0:v0+c] = G^T . hidden  (+= with `accumulate`)
//
// The products are `linalg.matmul`s (with transposed operands through
// their indexing maps) that loom-cpu-matmul-to-runtime turns into the
// runtime's GEMM, which CUDA artifacts resolve to cuBLAS; the elementwise
// steps are linalg.generic ops that become kernels like every loop nest.
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CUDA/KernelBuilder.h"

#include "dialects/fuse/IR/FuseOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"

#include <limits>

namespace mlir::loom::cuda {
#define GEN_PASS_DEF_CUDATOKENLOGPROBPASS
#include "compiler/Target/CUDA/Passes.h.inc"
} // namespace mlir::loom::cuda

using namespace mlir;

namespace {

/// Vocabulary entries of a chunk: the logits block is tokens x kVocabChunk
/// floats (16 MB for 1024 tokens).
constexpr int64_t kVocabChunk = 4096;
/// Threads of the row-reduction kernel: one block per token.
constexpr int64_t kThreads = 256;

class TokenLogprobLowering : loom::cuda::KernelBuilder {
public:
  TokenLogprobLowering(OpBuilder &b, Operation *op, bool rowKernel)
      : KernelBuilder(b, op->getLoc(), b.getF32Type()), rowKernel(rowKernel) {}

  /// Why `op` cannot be compiled, or "".
  static std::string unsupported(Operation *op) {
    auto dps = cast<DestinationStyleOpInterface>(op);
    if (!dps.hasPureBufferSemantics())
      return "is not bufferized";
    Type element =
        cast<MemRefType>(op->getOperand(0).getType()).getElementType();
    if (!element.isF32()) {
      std::string text;
      llvm::raw_string_ostream(text)
          << "reads " << element
          << "; the GPU token log-prob kernels read f32 (compile with "
             "--logprob=unfused)";
      return text;
    }
    return "";
  }

  void buildForward(ModuleOp module, fuse::TokenLogprobOp fwd, StringRef name) {
    OpBuilder::InsertionGuard guard(b);
    double invT = 1.0 / fwd.getTemperature().convertToDouble();
    Value hidden = fwd.getHidden(), weight = fwd.getWeight();
    Value ids = fwd.getIds();
    Value tokens = dim(hidden, 0), vocab = dim(weight, 0);
    Value logits = allocLogits(tokens);
    auto vec = MemRefType::get({ShapedType::kDynamic}, f32);
    Value max = memref::AllocOp::create(b, loc, vec, ValueRange{tokens});
    Value sum = memref::AllocOp::create(b, loc, vec, ValueRange{tokens});
    Value picked = memref::AllocOp::create(b, loc, vec, ValueRange{tokens});
    fill(max, -std::numeric_limits<double>::infinity());
    fill(sum, 0.0);
    // An id outside the vocabulary picks nothing: its log-prob is NaN.
    fill(picked, std::numeric_limits<double>::quiet_NaN());
    SmallVector<Value> rowArgs;
    Value chunkMax, chunkSum;
    if (!rowKernel) {
      chunkMax = memref::AllocOp::create(b, loc, vec, ValueRange{tokens});
      chunkSum = memref::AllocOp::create(b, loc, vec, ValueRange{tokens});
    }
    loop(constant(0), vocab, constant(kVocabChunk), {},
         [&](Value v0, ValueRange) {
           auto [block, count] = chunkLogits(hidden, weight, logits, v0, vocab);
           rowArgs = {block, ids, max, sum, picked, v0, count};
           if (rowKernel) {
             Value grid[] = {tokens, constant(1), constant(1)};
             launch(module, name, "rows", grid, kThreads, 0, rowArgs);
           } else {
             reduceRows(rowArgs, chunkMax, chunkSum, invT);
           }
           return SmallVector<Value>{};
         });
    // lse = max + log(sum), logp = picked - lse.
    elementwise({max, sum, picked}, {fwd.getLogpInit(), fwd.getLseInit()},
                [&](OpBuilder &nb, Location nl, ValueRange a) {
                  Value logSum = arith::AddFOp::create(
                      nb, nl, a[0], math::LogOp::create(nb, nl, a[1]));
                  return SmallVector<Value>{
                      arith::SubFOp::create(nb, nl, a[2], logSum), logSum};
                });
    if (!rowKernel)
      return;
    auto types = ValueRange(rowArgs).getTypes();
    b.setInsertionPointToEnd(module.getBody());
    auto gpuModule = gpu::GPUModuleOp::create(b, loc, name);
    b.setInsertionPointToStart(gpuModule.getBody());
    buildRows(types, invT);
  }

  void buildBackward(fuse::TokenLogprobGradOp grad) {
    OpBuilder::InsertionGuard guard(b);
    double invT = 1.0 / grad.getTemperature().convertToDouble();
    Value hidden = grad.getHidden(), weight = grad.getWeight();
    Value tokens = dim(hidden, 0), vocab = dim(weight, 0);
    Value logits = allocLogits(tokens);
    Value gradHidden = grad.getGradHiddenInit();
    Value gradWeight = grad.getGradWeightInit();
    fill(gradHidden, 0.0);
    Value d = dim(hidden, 1);
    loop(constant(0), vocab, constant(kVocabChunk), {},
         [&](Value v0, ValueRange) {
           auto [block, count] = chunkLogits(hidden, weight, logits, v0, vocab);
           gradOfLogits(block, grad.getIds(), grad.getLse(), grad.getGrad(),
                        v0, vocab, invT);
           Value rows = memref::SubViewOp::create(
               b, loc, weight, ArrayRef<OpFoldResult>{v0, b.getIndexAttr(0)},
               ArrayRef<OpFoldResult>{count, d},
               ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
           // grad_hidden += G . W[v0:v0+c] (no fill before it: the GEMM
           // accumulates).
           matmul(block, rows, gradHidden, false, false);
           // grad_weight[v0:v0+c] = G^T . hidden (+= with accumulate).
           Value out = memref::SubViewOp::create(
               b, loc, gradWeight,
               ArrayRef<OpFoldResult>{v0, b.getIndexAttr(0)},
               ArrayRef<OpFoldResult>{count, d},
               ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
           if (!grad.getAccumulate())
             fill(out, 0.0);
           matmul(block, hidden, out, true, false);
           return SmallVector<Value>{};
         });
  }

private:
  bool rowKernel;

  Value allocLogits(Value tokens) {
    return memref::AllocOp::create(
        b, loc, MemRefType::get({ShapedType::kDynamic, kVocabChunk}, f32),
        ValueRange{tokens});
  }

  void fill(Value buffer, double value) {
    linalg::FillOp::create(b, loc, ValueRange{floatConstant(value)},
                           ValueRange{buffer});
  }

  /// `out (+)= a . b` with `a` or `b` transposed; linalg's matmul
  /// accumulates, and the runtime GEMM overwrites when a zero fill comes
  /// right before it.
  void matmul(Value lhs, Value rhs, Value out, bool transposeA,
              bool transposeB) {
    auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
    auto map = [&](AffineExpr row, AffineExpr col) {
      return AffineMap::get(3, 0, {row, col}, ctx);
    };
    AffineExpr m = d(0), n = d(1), k = d(2);
    auto op = linalg::MatmulOp::create(b, loc, TypeRange{},
                                       ValueRange{lhs, rhs}, ValueRange{out});
    op.setIndexingMapsAttr(
        b.getAffineMapArrayAttr({transposeA ? map(k, m) : map(m, k),
                                 transposeB ? map(n, k) : map(k, n),
                                 map(m, n)}));
  }

  /// The logits block of the chunk at `v0`: hidden . W[v0:v0+c]^T in the
  /// first c columns of `logits`; returns the block and c.
  std::pair<Value, Value> chunkLogits(Value hidden, Value weight, Value logits,
                                      Value v0, Value vocab) {
    Value count = min(constant(kVocabChunk), sub(vocab, v0));
    Value tokens = dim(hidden, 0), d = dim(hidden, 1);
    Value block = memref::SubViewOp::create(
        b, loc, logits,
        ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{tokens, count},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
    Value rows = memref::SubViewOp::create(
        b, loc, weight, ArrayRef<OpFoldResult>{v0, b.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{count, d},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
    fill(block, 0.0);
    matmul(hidden, rows, block, false, true);
    return {block, count};
  }

  /// A linalg.generic over the tokens: `outs = body(ins)`.
  void elementwise(ValueRange ins, ValueRange outs,
                   function_ref<SmallVector<Value>(OpBuilder &, Location,
                                                   ValueRange)>
                       body) {
    AffineMap id = b.getDimIdentityMap();
    SmallVector<AffineMap> maps(ins.size() + outs.size(), id);
    linalg::GenericOp::create(
        b, loc, TypeRange{}, ins, outs, maps,
        ArrayRef<utils::IteratorType>{utils::IteratorType::parallel},
        [&](OpBuilder &nb, Location nl, ValueRange args) {
          linalg::YieldOp::create(nb, nl, body(nb, nl, args));
        });
  }

  /// In place over the block: G[n, j] = g[n] / t ([v0 + j == id[n]] -
  /// exp(L[n, j] / t - lse[n])), NaN for a token whose id is outside the
  /// vocabulary.
  void gradOfLogits(Value block, Value ids, Value lse, Value grad, Value v0,
                    Value vocab, double invT) {
    auto row = AffineMap::get(2, 0, {getAffineDimExpr(0, ctx)}, ctx);
    AffineMap all = AffineMap::getMultiDimIdentityMap(2, ctx);
    Value vocab64 = arith::IndexCastOp::create(b, loc, b.getI64Type(), vocab);
    Value v064 = arith::IndexCastOp::create(b, loc, b.getI64Type(), v0);
    linalg::GenericOp::create(
        b, loc, TypeRange{}, ValueRange{ids, lse, grad}, ValueRange{block},
        ArrayRef<AffineMap>{row, row, row, all},
        ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                      utils::IteratorType::parallel},
        [&](OpBuilder &nb, Location nl, ValueRange a) {
          auto f = [&](double v) {
            return arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(v));
          };
          Value j = arith::IndexCastOp::create(
              nb, nl, nb.getI64Type(), linalg::IndexOp::create(nb, nl, 1));
          Value v = arith::AddIOp::create(nb, nl, v064, j);
          Value hit = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq,
                                            v, a[0]);
          Value p = math::ExpOp::create(
              nb, nl,
              arith::SubFOp::create(
                  nb, nl, arith::MulFOp::create(nb, nl, a[3], f(invT)), a[1]));
          Value onehot = arith::SelectOp::create(nb, nl, hit, f(1.0), f(0.0));
          Value x = arith::MulFOp::create(
              nb, nl, arith::MulFOp::create(nb, nl, a[2], f(invT)),
              arith::SubFOp::create(nb, nl, onehot, p));
          Value inside = arith::AndIOp::create(
              nb, nl,
              arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::sge, a[0],
                                    arith::ConstantIntOp::create(
                                        nb, nl, nb.getI64Type(), 0)),
              arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::slt, a[0],
                                    vocab64));
          x = arith::SelectOp::create(
              nb, nl, inside, x, f(std::numeric_limits<double>::quiet_NaN()));
          linalg::YieldOp::create(nb, nl, x);
        });
  }

  /// What the `rows` kernel does, as linalg ops over the block
  /// (`args`: block, ids, max, sum, picked, v0, count), with two scratch
  /// vectors of a float per token.
  void reduceRows(ArrayRef<Value> args, Value chunkMax, Value chunkSum,
                  double invT) {
    Value block = args[0], ids = args[1], max = args[2], sum = args[3];
    Value picked = args[4], v0 = args[5], count = args[6];
    AffineMap all = AffineMap::getMultiDimIdentityMap(2, ctx);
    auto row = AffineMap::get(2, 0, {getAffineDimExpr(0, ctx)}, ctx);
    SmallVector<utils::IteratorType> reduction{utils::IteratorType::parallel,
                                               utils::IteratorType::reduction};
    auto scaled = [&](OpBuilder &nb, Location nl, Value x) -> Value {
      return arith::MulFOp::create(
          nb, nl, x,
          arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(invT)));
    };
    // The chunk's maximum per token, then the new running maximum.
    fill(chunkMax, -std::numeric_limits<double>::infinity());
    linalg::GenericOp::create(
        b, loc, TypeRange{}, ValueRange{block}, ValueRange{chunkMax},
        ArrayRef<AffineMap>{all, row}, reduction,
        [&](OpBuilder &nb, Location nl, ValueRange a) {
          linalg::YieldOp::create(
              nb, nl,
              ValueRange{arith::MaxNumFOp::create(nb, nl, a[1],
                                                  scaled(nb, nl, a[0]))});
        });
    elementwise({max}, {chunkMax},
                [&](OpBuilder &nb, Location nl, ValueRange a) {
                  return SmallVector<Value>{
                      arith::MaxNumFOp::create(nb, nl, a[0], a[1])};
                });
    // The sum of exp against the new maximum.
    fill(chunkSum, 0.0);
    linalg::GenericOp::create(
        b, loc, TypeRange{}, ValueRange{block, chunkMax}, ValueRange{chunkSum},
        ArrayRef<AffineMap>{all, row, row}, reduction,
        [&](OpBuilder &nb, Location nl, ValueRange a) {
          Value e = math::ExpOp::create(
              nb, nl, arith::SubFOp::create(nb, nl, scaled(nb, nl, a[0]), a[1]));
          linalg::YieldOp::create(
              nb, nl, ValueRange{arith::AddFOp::create(nb, nl, a[2], e)});
        });
    // sum = sum exp(max - new) + chunk sum, max = new, and the id's logit
    // when the chunk has it.
    elementwise(
        {chunkMax, chunkSum, ids}, {max, sum, picked},
        [&](OpBuilder &nb, Location nl, ValueRange a) {
          Value rescale = math::ExpOp::create(
              nb, nl, arith::SubFOp::create(nb, nl, a[3], a[0]));
          Value total = arith::AddFOp::create(
              nb, nl, arith::MulFOp::create(nb, nl, a[4], rescale), a[1]);
          Value j = arith::SubIOp::create(
              nb, nl,
              arith::IndexCastOp::create(nb, nl, nb.getIndexType(), a[2]), v0);
          Value zero = arith::ConstantIndexOp::create(nb, nl, 0);
          Value here = arith::AndIOp::create(
              nb, nl,
              arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::sge, j, zero),
              arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::slt, j,
                                    count));
          // Loaded at a clamped column, used only when the id is here.
          Value col = arith::MinSIOp::create(
              nb, nl, arith::MaxSIOp::create(nb, nl, j, zero),
              arith::SubIOp::create(nb, nl, count,
                                    arith::ConstantIndexOp::create(nb, nl, 1)));
          Value n = linalg::IndexOp::create(nb, nl, 0);
          Value logit = scaled(
              nb, nl, memref::LoadOp::create(nb, nl, block, ValueRange{n, col}));
          return SmallVector<Value>{
              a[0], total, arith::SelectOp::create(nb, nl, here, logit, a[5])};
        });
  }

  /// A block-wide reduction of one float per thread with `combine`
  /// (through shared memory `scratch`, one slot per warp); every thread
  /// gets the result.
  Value blockReduce(Value x, Value scratch, Value lane, Value warp,
                    function_ref<Value(Value, Value)> combine) {
    for (int32_t offset = 16; offset > 0; offset /= 2)
      x = combine(x, shuffleXor(x, offset));
    when(equal(lane, constant(0)), [&] {
      memref::StoreOp::create(b, loc, x, scratch, ValueRange{warp});
    });
    gpu::BarrierOp::create(b, loc);
    Value all = memref::LoadOp::create(b, loc, scratch, ValueRange{constant(0)});
    for (int64_t w = 1; w < kThreads / 32; ++w)
      all = combine(all, memref::LoadOp::create(b, loc, scratch,
                                                ValueRange{constant(w)}));
    // The slots are reused by the next reduction.
    gpu::BarrierOp::create(b, loc);
    return all;
  }

  /// The kernel `rows`: block n folds row n of the logits block (c
  /// columns from vocabulary entry v0) into the running maximum and sum of
  /// exp of token n, and records the logit of its id when the chunk has it.
  void buildRows(TypeRange types, double invT) {
    auto kernel = gpu::GPUFuncOp::create(b, loc, "rows",
                                         b.getFunctionType(types, {}));
    kernel->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
    kernel.setKnownBlockSize(ArrayRef<int32_t>{int32_t(kThreads), 1, 1});
    auto shared = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
    Value scratch = kernel.addWorkgroupAttribution(
        MemRefType::get({kThreads / 32}, f32, AffineMap(), shared), loc);
    Block &entry = kernel.getBody().front();
    b.setInsertionPointToStart(&entry);
    gpu::ReturnOp::create(b, loc);
    b.setInsertionPointToStart(&entry);
    Value block = entry.getArgument(0), ids = entry.getArgument(1);
    Value max = entry.getArgument(2), sum = entry.getArgument(3);
    Value picked = entry.getArgument(4), v0 = entry.getArgument(5);
    Value count = entry.getArgument(6);
    Value n = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
    Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
    Value lane = rem(tid, 32), warp = div(tid, 32);
    // The grid has at least one block; without tokens it does nothing.
    when(less(n, dim(block, 0)), [&] {
      Value scale = floatConstant(invT);
      Value minusInf =
          floatConstant(-std::numeric_limits<double>::infinity());
      auto logit = [&](Value j) {
        return fmul(memref::LoadOp::create(b, loc, block, ValueRange{n, j}),
                    scale);
      };
      Value local = loop(tid, count, constant(kThreads), {minusInf},
                         [&](Value j, ValueRange s) {
                           return SmallVector<Value>{fmax(s[0], logit(j))};
                         })[0];
      Value chunkMax = blockReduce(local, scratch, lane, warp,
                                   [&](Value x, Value y) { return fmax(x, y); });
      Value old = memref::LoadOp::create(b, loc, max, ValueRange{n});
      Value next = fmax(old, chunkMax);
      Value part = loop(tid, count, constant(kThreads), {floatConstant(0.0)},
                        [&](Value j, ValueRange s) {
                          Value e = math::ExpOp::create(
                              b, loc,
                              arith::SubFOp::create(b, loc, logit(j), next));
                          return SmallVector<Value>{fadd(s[0], e)};
                        })[0];
      Value chunkSum = blockReduce(part, scratch, lane, warp,
                                   [&](Value x, Value y) { return fadd(x, y); });
      when(equal(tid, constant(0)), [&] {
        // exp(-inf - next) is 0 for the first chunk.
        Value rescale = math::ExpOp::create(
            b, loc, arith::SubFOp::create(b, loc, old, next));
        Value total =
            fadd(fmul(memref::LoadOp::create(b, loc, sum, ValueRange{n}),
                      rescale),
                 chunkSum);
        memref::StoreOp::create(b, loc, total, sum, ValueRange{n});
        memref::StoreOp::create(b, loc, next, max, ValueRange{n});
        Value id = arith::IndexCastOp::create(
            b, loc, b.getIndexType(),
            memref::LoadOp::create(b, loc, ids, ValueRange{n}));
        Value j = sub(id, v0);
        Value here = both(arith::CmpIOp::create(b, loc,
                                                arith::CmpIPredicate::sge, j,
                                                constant(0)),
                          less(j, count));
        when(here, [&] {
          memref::StoreOp::create(b, loc, logit(j), picked, ValueRange{n});
        });
      });
    });
  }
};

struct CudaTokenLogprobPass
    : public loom::cuda::impl::CudaTokenLogprobPassBase<CudaTokenLogprobPass> {
  using CudaTokenLogprobPassBase::CudaTokenLogprobPassBase;

  void runOnOperation() override {
    SmallVector<Operation *> ops;
    getOperation().walk([&](Operation *op) {
      if (isa<fuse::TokenLogprobOp, fuse::TokenLogprobGradOp>(op))
        ops.push_back(op);
    });
    int64_t count = 0;
    for (Operation *op : ops) {
      std::string why = TokenLogprobLowering::unsupported(op);
      if (!why.empty()) {
        op->emitOpError() << why;
        return signalPassFailure();
      }
      OpBuilder b(op);
      TokenLogprobLowering lowering(b, op, rowKernel);
      if (auto fwd = dyn_cast<fuse::TokenLogprobOp>(op))
        lowering.buildForward(getOperation(), fwd,
                              ("loom_token_logprob_" + Twine(count++)).str());
      else
        lowering.buildBackward(cast<fuse::TokenLogprobGradOp>(op));
      op->erase();
    }
  }
};

} // namespace
