//===- Pipelines.cpp - Named pass pipelines ---------------------*- C++ -*-===//
//
// This file builds the compiler's pipelines from textual pipeline
// descriptions, which keeps them readable and identical to what a user can
// run with loom-opt.
//
//===----------------------------------------------------------------------===//

#include "compiler/Pipelines/Pipelines.h"

#include "compiler/Conversion/Passes.h"
#include "compiler/Target/CPU/Passes.h"
#include "compiler/Target/CUDA/Passes.h"
#include "dialects/fuse/Transforms/Passes.h"
#include "dialects/loom/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FormatVariadic.h"

#include <cstring>
#include <string>

using namespace mlir;
using namespace mlir::loom;

static const char *kLoomToLinalgPipeline =
    "convert-loom-to-linalg,canonicalize,cse,"
    "func.func(linalg-fuse-elementwise-ops),canonicalize,cse";

static const char *kCpuEntryAbiPipeline =
    "loom-cpu-entry-abi,inline,symbol-dce,canonicalize";

static const char *kCpuLoweringPipeline =
    "loom-cpu-split-shared-fills,eliminate-empty-tensors,"
    "one-shot-bufferize,"
    "func.func(buffer-hoisting,buffer-loop-hoisting),"
    "%CHUNKED_LOGPROB%"
    "%HOST_MATMUL%"
    "%FOLD_TRANSPOSES%"
    "loom-cpu-fuse-to-runtime,"
    "buffer-deallocation-pipeline,"
    "loom-cpu-copy-to-linalg,"
    "func.func(convert-linalg-to-parallel-loops),"
    "%LOW_PRECISION%"
    "loom-cpu-parallel-outline,loom-cpu-math-approximation,"
    "arith-expand{include-bf16=true},"
    "expand-strided-metadata,lower-affine,convert-scf-to-cf,canonicalize,"
    "cse,finalize-memref-to-llvm{use-generic-functions=true},"
    "convert-math-to-llvm,convert-math-to-libm,convert-arith-to-llvm,"
    "convert-index-to-llvm,convert-cf-to-llvm,convert-func-to-llvm,"
    "reconcile-unrealized-casts";

// f16 and bf16 arithmetic runs in f32, rounded after each op: math
// functions and their polynomials exist for f32 only, and x86 has no bf16
// arithmetic (LLVM would call compiler-rt's conversions, which artifacts do
// not link).
static const char *kLowPrecisionPasses =
    "math-extend-to-supported-types{target-type=f32},"
    "arith-emulate-unsupported-floats{source-types=bf16,f16 target-type=f32},";

static const char *kCudaLoweringPipeline =
    "loom-cpu-split-shared-fills,eliminate-empty-tensors,"
    "one-shot-bufferize,"
    "func.func(buffer-hoisting,buffer-loop-hoisting),"
    "loom-cuda-token-logprob,"
    "%HOST_MATMUL%"
    "%FOLD_TRANSPOSES%"
    "loom-cuda-attention%ATTENTION%,loom-cuda-mla-decode%MLA%,"
    "buffer-deallocation-pipeline,"
    "loom-cpu-copy-to-linalg,"
    "func.func(convert-linalg-to-parallel-loops),canonicalize,"
    "%LOW_PRECISION%"
    "loom-cuda-map-to-gpu,loom-cpu-math-approximation,canonicalize,cse,"
    "expand-strided-metadata,lower-affine,"
    "gpu-kernel-outlining,"
    "nvvm-attach-target{chip=%CHIP% features=%FEATURES% O=3},"
    "gpu.module(convert-scf-to-cf,convert-nvgpu-to-nvvm,convert-gpu-to-nvvm,"
    "loom-cuda-native-math,loom-cuda-extern-shared,"
    "canonicalize,cse,reconcile-unrealized-casts),"
    "gpu-module-to-binary{format=%FORMAT%%TOOLKIT%},"
    "convert-scf-to-cf,gpu-to-llvm,finalize-memref-to-llvm,"
    "convert-math-to-llvm,convert-arith-to-llvm,convert-index-to-llvm,"
    "convert-cf-to-llvm,convert-func-to-llvm,canonicalize,"
    "reconcile-unrealized-casts";

namespace {
struct CudaPipelineOptions : public PassPipelineOptions<CudaPipelineOptions> {
  Option<std::string> chip{*this, "chip",
                           llvm::cl::desc("GPU: sm_80 or sm_90a"),
                           llvm::cl::init("sm_90a")};
  Option<std::string> format{
      *this, "format",
      llvm::cl::desc("Kernel binary: isa (PTX) or bin (cubin, needs ptxas)"),
      llvm::cl::init("isa")};
  Option<bool> matmul{
      *this, "library-matmul",
      llvm::cl::desc("f32 matrix products call the runtime (cuBLAS)"),
      llvm::cl::init(true)};
  Option<std::string> toolkit{
      *this, "toolkit",
      llvm::cl::desc("CUDA toolkit root, for ptxas and libdevice (default: "
                     "MLIR's search)"),
      llvm::cl::init("")};
  Option<bool> wgmma{
      *this, "wgmma",
      llvm::cl::desc("The attention kernel's q k^T through wgmma (sm_90a)"),
      llvm::cl::init(false)};
  Option<bool> mlaWgmma{
      *this, "mla-wgmma",
      llvm::cl::desc("The MLA decode kernel's products through wgmma "
                     "(sm_90a)"),
      llvm::cl::init(false)};
  Option<unsigned> mlaWgmmaKeys{
      *this, "mla-wgmma-keys",
      llvm::cl::desc("Cache positions of a tile of the wgmma MLA decode "
                     "kernel (32 or 64)"),
      llvm::cl::init(64)};
  Option<unsigned> mlaStages{
      *this, "mla-stages",
      llvm::cl::desc("Tiles in shared memory of the wgmma MLA decode kernel "
                     "(2 to 4; 0: 2 of 64 positions, 3 of 32)"),
      llvm::cl::init(0)};
  Option<unsigned> mlaTargetBlocks{
      *this, "mla-target-blocks",
      llvm::cl::desc("Blocks the MLA decode kernel's splits of the cache aim "
                     "for"),
      llvm::cl::init(128)};
  Option<bool> mlaPRegisters{
      *this, "mla-p-registers",
      llvm::cl::desc("Each warpgroup of the wgmma MLA decode kernel scores "
                     "all of a tile's keys and keeps P in registers"),
      llvm::cl::init(false)};
  Option<bool> mlaPSplit{
      *this, "mla-p-split",
      llvm::cl::desc("The first warpgroup of the wgmma MLA decode kernel "
                     "scores each tile and hands P to the second, which "
                     "loads the tiles"),
      llvm::cl::init(false)};
  Option<bool> mlaOverlap{
      *this, "mla-overlap",
      llvm::cl::desc("With mla-p-split and mla-tma, no block barrier "
                     "between the MLA decode kernel's tiles"),
      llvm::cl::init(false)};
  Option<bool> mlaTma{
      *this, "mla-tma",
      llvm::cl::desc("The wgmma MLA decode kernel loads the cache tiles with "
                     "bulk tensor copies (TMA)"),
      llvm::cl::init(false)};
  Option<bool> mlaSwizzle{
      *this, "mla-swizzle",
      llvm::cl::desc("The MLA decode kernel's cache tiles as rows of 64 "
                     "columns swizzled by 128 bytes: boxes of 64 columns "
                     "with mla-tma, else cp.async copies of whole lines"),
      llvm::cl::init(false)};
};

struct FusePipelineOptions : public PassPipelineOptions<FusePipelineOptions> {
  Option<MlaMode> mla{
      *this, "mla", llvm::cl::desc("How MLA attention is compiled"),
      llvm::cl::init(MlaMode::Absorb),
      llvm::cl::values(
          clEnumValN(MlaMode::Absorb, "absorb",
                     "cache the latent, fused absorbed attention"),
          clEnumValN(MlaMode::Naive, "naive", "cache per-head K and V"))};
  Option<AttentionMode> attention{
      *this, "attention", llvm::cl::desc("How attention is compiled"),
      llvm::cl::init(AttentionMode::Fused),
      llvm::cl::values(
          clEnumValN(AttentionMode::Fused, "fused",
                     "one fuse.attention kernel (flash attention)"),
          clEnumValN(AttentionMode::Unfused, "unfused",
                     "linalg lowering that materializes the scores"),
          clEnumValN(AttentionMode::Auto, "auto",
                     "fused where the target's kernel compiles it"))};
  Option<LogprobMode> logprob{
      *this, "logprob",
      llvm::cl::desc("How token_logprob with an lm-head is compiled"),
      llvm::cl::init(LogprobMode::Fused),
      llvm::cl::values(
          clEnumValN(LogprobMode::Fused, "fused",
                     "fuse.token_logprob kernels, in one pass over blocks "
                     "of tokens where the loss allows"),
          clEnumValN(LogprobMode::TwoPass, "two-pass",
                     "vocabulary-chunked forward and backward kernels"),
          clEnumValN(LogprobMode::Unfused, "unfused",
                     "linalg lowering that materializes the logits"),
          clEnumValN(LogprobMode::Chunked, "chunked",
                     "fused, compiled as the CUDA target does"))};
  Option<int64_t> logprobRows{
      *this, "logprob-rows",
      llvm::cl::desc("Tokens per block of the single-pass lm-head loss (0: "
                     "the default)"),
      llvm::cl::init(0)};
};
} // namespace

static LogicalResult addPipeline(OpPassManager &pm, StringRef text) {
  std::string expanded = text.str();
  const char *slot = "%LOW_PRECISION%";
  if (size_t at = expanded.find(slot); at != std::string::npos)
    expanded.replace(at, strlen(slot), kLowPrecisionPasses);
  return parsePassPipeline(expanded, pm, llvm::errs());
}

LogicalResult loom::buildGraphPipeline(OpPassManager &pm) {
  // Built from pass constructors rather than text so that tools which
  // register no passes (loom-run --interpret) can run it too.
  pm.addPass(createInlinerPass());
  pm.addPass(createAutodiffPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createSymbolDCEPass());
  pm.addPass(createVerifyShapesPass());
  return success();
}

LogicalResult loom::buildFusePipeline(OpPassManager &pm, MlaMode mla,
                                      AttentionMode attention,
                                      LogprobMode logprob, bool gpu,
                                      int64_t logprobRows) {
  if (attention != AttentionMode::Unfused && gpu)
    pm.addPass(fuse::createAttentionFusePass(
        {/*gpuKernelOnly=*/attention == AttentionMode::Auto}));
  pm.addPass(createPromoteLowPrecisionPass());
  if (attention != AttentionMode::Unfused && !gpu)
    pm.addPass(fuse::createAttentionFusePass());
  if (logprob != LogprobMode::Unfused)
    pm.addPass(fuse::createTokenLogprobFusePass());
  if (mla == MlaMode::Absorb)
    pm.addPass(fuse::createMlaAbsorbPass({/*lowPrecision=*/gpu}));
  pm.addPass(createMlaExpandPass());
  // The naive MLA expansion writes softmax of the model's element type.
  pm.addPass(createPromoteLowPrecisionPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  if (logprob == LogprobMode::Fused && !gpu) {
    pm.addPass(fuse::createTokenLogprobRowsPass({logprobRows}));
    pm.addPass(createCanonicalizerPass());
  }
  return success();
}

LogicalResult loom::buildLoomToLinalgPipeline(OpPassManager &pm) {
  return addPipeline(pm, kLoomToLinalgPipeline);
}

LogicalResult loom::buildCpuEntryAbiPipeline(OpPassManager &pm) {
  return addPipeline(pm, kCpuEntryAbiPipeline);
}

LogicalResult loom::buildCpuLoweringPipeline(OpPassManager &pm, bool hostMatmul,
                                             bool chunkedLogprob,
                                             bool foldTransposes) {
  std::string text = kCpuLoweringPipeline;
  const char *slot = "%HOST_MATMUL%";
  text.replace(text.find(slot), strlen(slot),
               hostMatmul ? "loom-cpu-matmul-to-runtime," : "");
  slot = "%FOLD_TRANSPOSES%";
  text.replace(text.find(slot), strlen(slot),
               foldTransposes ? "loom-cpu-fold-transposes," : "");
  slot = "%CHUNKED_LOGPROB%";
  text.replace(text.find(slot), strlen(slot),
               chunkedLogprob ? "loom-cuda-token-logprob{row-kernel=false},"
                              : "");
  return addPipeline(pm, text);
}

LogicalResult loom::buildCpuCodegenPipeline(OpPassManager &pm) {
  return success(succeeded(buildCpuEntryAbiPipeline(pm)) &&
                 succeeded(buildCpuLoweringPipeline(pm, true)));
}

std::string loom::cudaPtxFeatures(StringRef chip) {
  // sm_90a instructions (wgmma) need PTX 8.0; each other chip gets the
  // first PTX version that has it (7.0 for sm_80, 7.1 for sm_86), which
  // keeps older drivers able to load the kernels.
  return llvm::StringSwitch<std::string>(chip)
      .Cases({"sm_90a", "sm_90"}, "+ptx80")
      .Case("sm_89", "+ptx78")
      .Case("sm_86", "+ptx71")
      .Case("sm_80", "+ptx70")
      .Default("");
}

LogicalResult loom::buildCudaLoweringPipeline(
    OpPassManager &pm, StringRef chip, StringRef format, StringRef toolkit,
    bool libraryMatmul, bool attentionWgmma, const CudaMlaKernelOptions &mla,
    bool foldTransposes) {
  std::string features = cudaPtxFeatures(chip);
  if (features.empty()) {
    llvm::errs() << "unsupported GPU '" << chip
                 << "' (the CUDA target supports sm_80, sm_86, sm_89, sm_90 "
                    "and sm_90a)\n";
    return failure();
  }
  if ((attentionWgmma || mla.wgmma) && chip != "sm_90a") {
    llvm::errs() << "wgmma needs sm_90a (the GPU is '" << chip << "')\n";
    return failure();
  }
  // The MLA kernel's bulk tensor copies fence their tensor maps
  // (fence.proxy.tensormap, PTX 8.3); other kernels keep PTX 8.0.
  if (mla.wgmma && mla.tma)
    features = "+ptx83";
  if (format != "isa" && format != "bin") {
    llvm::errs() << "unknown CUDA binary format '" << format
                 << "' (isa or bin)\n";
    return failure();
  }
  std::string mlaOptions =
      mla.wgmma ? llvm::formatv("{{wgmma=true wgmma-keys={0} stages={1} "
                                "p-registers={2} p-split={6} overlap={7} "
                                "tma={3} swizzle={4} target-blocks={5}}",
                                mla.keys, mla.stages, mla.pRegisters, mla.tma,
                                mla.swizzle, mla.targetBlocks, mla.pSplit,
                                mla.overlap)
                      .str()
                : llvm::formatv("{{target-blocks={0}}", mla.targetBlocks).str();
  std::string text = kCudaLoweringPipeline;
  std::string toolkitOption =
      toolkit.empty() ? "" : " toolkit=" + toolkit.str();
  for (auto [slot, value] :
       {std::pair<StringRef, StringRef>{"%CHIP%", chip},
        {"%FEATURES%", features},
        {"%FORMAT%", format},
        {"%HOST_MATMUL%", libraryMatmul ? "loom-cpu-matmul-to-runtime{"
                                          "half-precision=true},"
                                        : ""},
        {"%FOLD_TRANSPOSES%",
         foldTransposes ? "loom-cpu-fold-transposes," : ""},
        {"%ATTENTION%", attentionWgmma ? "{wgmma=true}" : ""},
        {"%MLA%", mlaOptions},
        {"%TOOLKIT%", toolkitOption}})
    text.replace(text.find(slot.str()), slot.size(), value.str());
  return addPipeline(pm, text);
}

void loom::registerLoomPipelines() {
  loom::registerLoomPasses();
  fuse::registerFusePasses();
  loom::registerLoomConversionPasses();
  loom::cpu::registerLoomCpuPasses();
  loom::cuda::registerLoomCudaPasses();
  PassPipelineRegistration<>(
      "loom-graph", "Graph clean-up and symbolic-shape checks",
      [](OpPassManager &pm) { (void)buildGraphPipeline(pm); });
  PassPipelineRegistration<FusePipelineOptions>(
      "loom-fuse",
      "Form fused kernels (attention, token log-probs, MLA absorption) and "
      "expand the rest",
      [](OpPassManager &pm, const FusePipelineOptions &options) {
        (void)buildFusePipeline(pm, options.mla, options.attention,
                                options.logprob, /*gpu=*/false,
                                options.logprobRows);
      });
  PassPipelineRegistration<>(
      "loom-to-linalg", "Lower the loom dialect to linalg and fuse",
      [](OpPassManager &pm) { (void)buildLoomToLinalgPipeline(pm); });
  PassPipelineRegistration<>(
      "loom-cpu-codegen", "Bufferize and lower to the LLVM dialect for CPUs",
      [](OpPassManager &pm) { (void)buildCpuCodegenPipeline(pm); });
  PassPipelineRegistration<CudaPipelineOptions>(
      "loom-cuda-lowering",
      "Bufferize, map loop nests to GPU kernels and lower them to PTX or "
      "cubin (after loom-cpu-entry-abi)",
      [](OpPassManager &pm, const CudaPipelineOptions &options) {
        (void)buildCudaLoweringPipeline(
            pm, options.chip, options.format, options.toolkit, options.matmul,
            options.wgmma,
            CudaMlaKernelOptions{
                options.mlaWgmma, options.mlaWgmmaKeys, options.mlaStages,
                options.mlaPRegisters, options.mlaPSplit, options.mlaOverlap,
                options.mlaTma, options.mlaSwizzle, options.mlaTargetBlocks});
      });
}
