//===- Compile.h - The whole CPU compilation --------------------*- C++ -*-===//
//
// This file declares the one function that runs every stage from the `loom`
// dialect to a sealed shared-object artifact, stopping early to print a stage
// when asked. loom-compile and the end-to-end tests both use it.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_COMPILER_PIPELINES_COMPILE_H
#define LOOM_COMPILER_PIPELINES_COMPILE_H

#include "compiler/Pipelines/Pipelines.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace mlir::loom {

/// Where compilation stops. Every stage but Artifact prints its result.
enum class CompileStage { Loom, Fuse, Linalg, Llvm, Asm, Ptx, Artifact };

/// How the kernels of the CUDA target are embedded: PTX (compiled by the
/// driver when the module is loaded) or cubin (compiled by ptxas here);
/// Auto takes cubin when ptxas is found.
enum class CudaBinary { Auto, Ptx, Cubin };

/// What the artifact runs on.
enum class Target { Cpu, Cuda };

struct CompileOptions {
  Target target = Target::Cpu;
  /// The GPU of the CUDA target: sm_80 or sm_90a.
  std::string gpuChip = "sm_90a";
  /// How the CUDA kernels are embedded.
  CudaBinary cudaBinary = CudaBinary::Auto;
  /// The attention kernel's q k^T through wgmma (sm_90a only).
  bool cudaAttentionWgmma = false;
  /// How the MLA decode kernel is built (wgmma on sm_90a only).
  CudaMlaKernelOptions cudaMla;
  /// LLVM CPU name; empty means the host CPU.
  std::string cpu;
  unsigned optLevel = 3;
  CompileStage stopAfter = CompileStage::Artifact;
  /// f32 matrix products call the runtime's GEMM (oneDNN where available);
  /// false keeps the loops generated from linalg, for comparison.
  bool hostMatmul = true;
  /// Transposes that only feed or place the operands of GEMM calls and fused
  /// attention become strided views; false keeps the copies, for
  /// comparison.
  bool foldTransposes = true;
  /// How `loom.mla_attention` is compiled (cache layout and kernel).
  MlaMode mla = MlaMode::Absorb;
  /// How `loom.attention` and the attention composite are compiled.
  AttentionMode attention = AttentionMode::Fused;
  /// How `loom.token_logprob` and its backward with an lm-head are
  /// compiled.
  LogprobMode logprob = LogprobMode::Fused;
  /// Tokens per block of the single-pass lm-head loss (0: the default).
  int64_t logprobRows = 0;
  /// Version string recorded in the manifest.
  std::string compilerVersion = "loom";
  /// Applies pass-manager command-line options (--mlir-print-ir-*, timing).
  bool useCommandLineOptions = false;
};

/// Compiles `module` (the `loom` dialect, as imported) in place. For
/// stages before Artifact the stage is printed to `out`; for Artifact the
/// shared object is written to `artifactPath`. Every error is emitted as a
/// diagnostic through the context's handler. The later stages are parsed
/// from textual pipelines, so the process must have registered the passes
/// once before: `mlir::registerAllPasses()` and `registerLoomPipelines()`
/// (registering twice is a fatal error in MLIR, hence not done here).
LogicalResult compileModule(ModuleOp module, const CompileOptions &options,
                            llvm::raw_ostream &out,
                            llvm::StringRef artifactPath);

/// The path of ptxas from the CUDA toolkit ($CUDA_ROOT/bin, PATH,
/// /usr/local/cuda/bin), or an empty string.
std::string findPtxas();

} // namespace mlir::loom

#endif // LOOM_COMPILER_PIPELINES_COMPILE_H
