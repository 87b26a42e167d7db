//===- Pipelines.h - Named pass pipelines -----------------------*- C++ -*-===//
//
// This file declares the pipelines of the compiler, stage by stage, so that
// the driver and loom-opt run exactly the same passes.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_COMPILER_PIPELINES_PIPELINES_H
#define LOOM_COMPILER_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"

namespace mlir::loom {

/// Graph-level clean-up and checks on the `loom` dialect: inline sub-graphs,
/// canonicalize, verify symbolic shapes. Registered as `loom-graph`.
LogicalResult buildGraphPipeline(OpPassManager &pm);

/// How `loom.mla_attention` is compiled.
enum class MlaMode {
  /// Cache the latent and the rope key; fuse.mla_decode (default).
  Absorb,
  /// Cache per-head K and V, attention written with elementary ops.
  Naive,
};

/// How `loom.attention` and the softmax attention composite are compiled.
enum class AttentionMode {
  /// One `fuse.attention` kernel (default).
  Fused,
  /// Left to the linalg lowering: the scores are materialized.
  Unfused,
  /// Fused where the target's kernel compiles the op, else unfused: every
  /// attention on the CPU; on the GPU f16 and bf16 attention without a
  /// score region, with head dims that are multiples of 16 up to 128.
  Auto,
};

/// How the lm-head forms of `loom.token_logprob` and its backward are
/// compiled.
enum class LogprobMode {
  /// `fuse.token_logprob(_grad)` kernels (default); on the CPU, where the
  /// loss's gradient of the log-probs is computed token by token, one loop
  /// over blocks of tokens (`loom-fuse-token-logprob-rows`), else the
  /// vocabulary-chunked forward and backward.
  Fused,
  /// The vocabulary-chunked forward and backward kernels only (the backward
  /// computes the products with the lm head again).
  TwoPass,
  /// Left to the linalg lowering: the logits are materialized.
  Unfused,
  /// Fused, and on the CPU compiled as the CUDA target compiles it (a loop
  /// over vocabulary chunks of GEMM calls and generated loops) instead of
  /// the runtime's kernel: the GPU's lowering, testable without a GPU.
  Chunked,
};

/// Graph passes that form fused kernels: `loom-fuse-attention` (Fused
/// only), `loom-fuse-token-logprob` (all but Unfused), `loom-mla-absorb`
/// (Absorb only), then `loom-mla-expand` for what is left, clean-up, and
/// `loom-fuse-token-logprob-rows` (Fused without `gpu`; blocks of
/// `logprobRows` tokens, 0 for its default). Registered as `loom-fuse` with
/// the options `mla=absorb|naive`, `attention=fused|unfused|auto`,
/// `logprob=fused|two-pass|unfused|chunked` and `logprob-rows`. With `gpu`
/// (the CUDA target, whose attention kernel reads f16 and bf16 and
/// accumulates in f32 itself) attention is fused before
/// `loom-promote-low-precision`, so that it keeps its element type, and
/// `auto` fuses what that kernel compiles.
LogicalResult buildFusePipeline(OpPassManager &pm, MlaMode mla,
                                AttentionMode attention = AttentionMode::Fused,
                                LogprobMode logprob = LogprobMode::Fused,
                                bool gpu = false, int64_t logprobRows = 0);

/// `loom` to linalg on tensors plus elementwise fusion. Registered as
/// `loom-to-linalg`.
LogicalResult buildLoomToLinalgPipeline(OpPassManager &pm);

/// The entry ABI alone: destination-passing memref entries. The artifact
/// manifest is collected right after it.
LogicalResult buildCpuEntryAbiPipeline(OpPassManager &pm);

/// Bufferization, host GEMM calls (f32 matrix products go to the runtime's
/// GEMM unless `hostMatmul` is false, which keeps generated loops; with
/// `foldTransposes`, the transposes around GEMM calls and fused attention
/// become strided operands) and lowering to the LLVM dialect.
LogicalResult buildCpuLoweringPipeline(OpPassManager &pm, bool hostMatmul,
                                       bool chunkedLogprob = false,
                                       bool foldTransposes = true);

/// Entry ABI, bufferization, host GEMM calls and lowering to the LLVM
/// dialect. Registered as `loom-cpu-codegen`.
LogicalResult buildCpuCodegenPipeline(OpPassManager &pm);

/// How loom-cuda-mla-decode builds the MLA decode kernel.
struct CudaMlaKernelOptions {
  /// Both products through wgmma (sm_90a only); else mma.sync.
  bool wgmma = false;
  /// Cache positions of a tile of the wgmma kernel: 64 or 32.
  unsigned keys = 64;
  /// Tiles in shared memory (2 to 4); 0: 2 of 64 positions, 3 of 32.
  unsigned stages = 0;
  /// Each warpgroup of the wgmma kernel scores all of a tile's keys and
  /// keeps P in registers.
  bool pRegisters = false;
  /// The first warpgroup scores each tile and hands P to the second,
  /// which loads the tiles (FlashMLA's split).
  bool pSplit = false;
  /// With pSplit and tma: no block barrier between tiles.
  bool overlap = false;
  /// The wgmma kernel loads the cache tiles with bulk tensor copies (TMA)
  /// instead of cp.async.
  bool tma = false;
  /// The cache tiles in shared memory as 128-byte swizzled rows of 64
  /// columns: boxes of 64 columns with `tma` (instead of 8), whole 128-byte
  /// lines a group of 8 threads with cp.async.
  bool swizzle = false;
  /// Blocks the host's choice of splits aims for (all kernels).
  unsigned targetBlocks = 128;
};

/// The CUDA target after the entry ABI: bufferization, loop nests mapped to
/// GPU kernels, kernels lowered through NVVM and serialized for `chip`
/// (sm_80, sm_90a) in `format` (isa: PTX, bin: cubin through ptxas), and the
/// host side lowered to the LLVM dialect with `gpu.launch_func` calls.
/// `toolkit` is the CUDA toolkit root that ptxas and libdevice come from
/// (empty: MLIR's own search). With `libraryMatmul`, f32 matrix products
/// call the runtime's GEMM, which is cuBLAS for CUDA artifacts. With
/// `attentionWgmma` (sm_90a only), the attention kernel's q k^T is a
/// warpgroup MMA; `mla` says how the MLA decode kernel is built.
/// With `foldTransposes`, GEMM calls and the attention kernel read and
/// write transposed operands through strides instead of copies.
LogicalResult buildCudaLoweringPipeline(
    OpPassManager &pm, StringRef chip, StringRef format, StringRef toolkit = {},
    bool libraryMatmul = true, bool attentionWgmma = false,
    const CudaMlaKernelOptions &mla = {}, bool foldTransposes = true);

/// The PTX features that go with a chip ("+ptx80" for sm_90a), or an empty
/// string for a chip the CUDA target does not support.
std::string cudaPtxFeatures(StringRef chip);

/// Registers the pipelines above and the passes they use.
void registerLoomPipelines();

} // namespace mlir::loom

#endif // LOOM_COMPILER_PIPELINES_PIPELINES_H
