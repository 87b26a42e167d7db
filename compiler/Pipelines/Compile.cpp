//===- Compile.cpp - The whole CPU compilation ------------------*- C++ -*-===//
//
// This file runs the stages of the CPU path in order: graph passes, lowering
// to linalg, the entry ABI (where the manifest is collected), lowering to the
// LLVM dialect, LLVM IR with the artifact glue, object code and linking.
//
//===----------------------------------------------------------------------===//

#include "compiler/Pipelines/Compile.h"

#include "compiler/Artifact/Manifest.h"
#include "compiler/Pipelines/Pipelines.h"
#include "compiler/Target/CPU/ObjectEmitter.h"
#include "dialects/fuse/IR/FuseOps.h"
#include "loom/abi.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "llvm/Bitcode/BitcodeWriter.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

#include <cstdlib>
#include <optional>

using namespace mlir;
using namespace mlir::loom;

static LogicalResult
runPipeline(ModuleOp module, const CompileOptions &options,
            llvm::function_ref<LogicalResult(OpPassManager &)> build) {
  PassManager pm(module->getContext());
  if (options.useCommandLineOptions && failed(applyPassManagerCLOptions(pm)))
    return failure();
  if (failed(build(pm)))
    return failure();
  return pm.run(module);
}

static LogicalResult fail(ModuleOp module, const std::string &message) {
  return emitError(module.getLoc()) << message;
}

/// The host half of every target: the LLVM dialect to LLVM IR with the
/// artifact glue, optimized for the host CPU, then object code and the
/// linked, sealed shared object (or the IR or assembly for --emit). The
/// manifest's target CPU is the host's unless the target set it (the GPU
/// chip of CUDA artifacts).
static LogicalResult emitArtifact(ModuleOp module,
                                  const CompileOptions &options,
                                  Manifest &manifest, llvm::raw_ostream &out,
                                  StringRef artifactPath) {
  cpu::CpuCodegenOptions codegen;
  codegen.cpu = options.cpu;
  codegen.optLevel = options.optLevel;
  std::string error;
  std::unique_ptr<llvm::TargetMachine> machine =
      cpu::createTargetMachine(codegen, error);
  if (!machine)
    return fail(module, error);
  manifest.compilerVersion = options.compilerVersion;
  if (manifest.targetCpu.empty())
    manifest.targetCpu = machine->getTargetCPU().str();
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule = cpu::translateToArtifactIR(
      module, llvmContext, manifest, *machine, error);
  if (!llvmModule)
    return fail(module, error);
  cpu::optimizeModule(*llvmModule, *machine, options.optLevel);
  if (options.stopAfter == CompileStage::Llvm) {
    llvmModule->print(out, nullptr);
    return success();
  }
  llvm::SmallVector<char, 0> code;
  error = cpu::emitCode(*llvmModule, *machine,
                        options.stopAfter == CompileStage::Asm, code);
  if (!error.empty())
    return fail(module, error);
  if (options.stopAfter == CompileStage::Asm) {
    out << llvm::StringRef(code.data(), code.size());
    return success();
  }
  error = cpu::linkArtifact(code, artifactPath);
  if (!error.empty())
    return fail(module, error);
  return success();
}

/// Which binary format the CUDA kernels get: cubin needs ptxas.
static std::string cudaFormat(const CompileOptions &options, bool havePtxas) {
  if (options.stopAfter == CompileStage::Ptx ||
      options.cudaBinary == CudaBinary::Ptx)
    return "isa";
  if (options.cudaBinary == CudaBinary::Cubin)
    return "bin";
  return havePtxas ? "bin" : "isa";
}

/// The root of the CUDA toolkit that `ptxas` comes from, when it also has
/// libdevice; otherwise an empty string.
static std::string toolkitRoot(StringRef ptxas) {
  if (ptxas.empty())
    return {};
  llvm::SmallString<128> root(ptxas);
  llvm::sys::path::remove_filename(root); // bin/
  llvm::sys::path::remove_filename(root);
  llvm::SmallString<128> libdevice(root);
  llvm::sys::path::append(libdevice, "nvvm", "libdevice", "libdevice.10.bc");
  return llvm::sys::fs::exists(libdevice) ? root.str().str() : std::string();
}

namespace {
/// Without a CUDA toolkit, MLIR's NVVM serializer still links libdevice
/// from somewhere and reports an error (yet goes on) when it finds none.
/// This folder holds an empty libdevice in the toolkit layout, so kernels
/// that need no libdevice compile cleanly and the others are caught by
/// checkResolved with a message that says what is missing.
class EmptyLibdevice {
public:
  EmptyLibdevice() {
    if (llvm::sys::fs::createUniqueDirectory("loom-no-cuda", root))
      return;
    llvm::SmallString<128> dir(root);
    llvm::sys::path::append(dir, "nvvm", "libdevice");
    llvm::SmallString<128> file(dir);
    llvm::sys::path::append(file, "libdevice.10.bc");
    std::error_code ec = llvm::sys::fs::create_directories(dir);
    llvm::raw_fd_ostream os(file, ec);
    if (ec) {
      root.clear();
      return;
    }
    llvm::LLVMContext context;
    llvm::Module module("libdevice", context);
    module.setTargetTriple(llvm::Triple("nvptx64-nvidia-cuda"));
    // NVPTX's layout, so that linking it into the kernels warns of nothing.
    module.setDataLayout(
        "e-p6:32:32-i64:64-i128:128-i256:256-v16:16-v32:32-n16:32:64");
    llvm::WriteBitcodeToFile(module, os);
  }
  ~EmptyLibdevice() {
    if (!root.empty())
      llvm::sys::fs::remove_directories(root);
  }
  StringRef path() const { return root; }

private:
  llvm::SmallString<128> root;
};
} // namespace

/// Fails when a kernel module calls a function it does not define: the
/// libdevice functions of sin, cos and pow, when no CUDA toolkit supplied
/// libdevice. The driver would refuse such a module only at run time.
static LogicalResult checkResolved(ModuleOp module) {
  WalkResult result = module.walk([&](gpu::BinaryOp binary) {
    for (Attribute attr : binary.getObjects()) {
      auto object = dyn_cast<gpu::ObjectAttr>(attr);
      if (!object || object.getFormat() != gpu::CompilationTarget::Assembly)
        continue;
      StringRef ptx = object.getObject().getValue();
      size_t at = ptx.find(".extern .func");
      if (at == StringRef::npos)
        continue;
      StringRef line = ptx.substr(at).split('\n').first;
      StringRef name = line.rsplit(' ').second;
      emitError(binary.getLoc())
          << "kernel module @" << binary.getSymName() << " calls " << name
          << ", which libdevice of the CUDA toolkit defines; "
             "no toolkit was found (set CUDA_ROOT)";
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return failure(result.wasInterrupted());
}

/// Prints the PTX of every kernel module, each under a comment naming it.
static LogicalResult printPtx(ModuleOp module, llvm::raw_ostream &out) {
  bool any = false;
  module.walk([&](gpu::BinaryOp binary) {
    for (Attribute attr : binary.getObjects()) {
      auto object = dyn_cast<gpu::ObjectAttr>(attr);
      if (!object || object.getFormat() != gpu::CompilationTarget::Assembly)
        continue;
      out << "// kernel module @" << binary.getSymName() << "\n"
          << object.getObject().getValue() << "\n";
      any = true;
    }
  });
  if (!any)
    out << "// the model has no GPU kernels\n";
  return success();
}

/// Lowers the entry functions for the CUDA target, then emits PTX or the
/// artifact: host code for the CPU that launches the embedded kernels
/// through the runtime's CUDA driver.
static LogicalResult compileCuda(ModuleOp module, const CompileOptions &options,
                                 Manifest &manifest, llvm::raw_ostream &out,
                                 StringRef artifactPath) {
  if (const char *root = std::getenv("CUDA_ROOT"))
    if (!llvm::sys::fs::is_directory(root))
      return fail(module, std::string("CUDA_ROOT is set to '") + root +
                              "', which is not a directory");
  std::string ptxas = findPtxas();
  std::string format = cudaFormat(options, !ptxas.empty());
  // Serializing the kernels and translating the host code both go through
  // LLVM IR, from the gpu, nvvm and llvm dialects.
  DialectRegistry registry;
  registerAllToLLVMIRTranslations(registry);
  module->getContext()->appendDialectRegistry(registry);
  std::string toolkit = toolkitRoot(ptxas);
  std::optional<EmptyLibdevice> emptyLibdevice;
  if (toolkit.empty()) {
    emptyLibdevice.emplace();
    toolkit = emptyLibdevice->path().str();
  }
  // The bulk tensor copies, which need PTX 8.3, are the MLA decode
  // kernel's: a module without one (no MLA attention, or MLA kept naive
  // and expanded by the fuse pipeline) keeps the chip's PTX version.
  CudaMlaKernelOptions mla = options.cudaMla;
  bool hasMlaKernel =
      module->walk([](fuse::MlaDecodeOp) { return WalkResult::interrupt(); })
          .wasInterrupted();
  if (!hasMlaKernel)
    mla.tma = mla.overlap = false;
  if (failed(runPipeline(module, options, [&](OpPassManager &pm) {
        return buildCudaLoweringPipeline(
            pm, options.gpuChip, format, toolkit, options.hostMatmul,
            options.cudaAttentionWgmma, mla, options.foldTransposes);
      })))
    return failure();
  if (failed(checkResolved(module)))
    return failure();
  if (options.stopAfter == CompileStage::Ptx)
    return printPtx(module, out);

  manifest.target = LOOM_TARGET_CUDA;
  manifest.targetCpu = options.gpuChip;
  return emitArtifact(module, options, manifest, out, artifactPath);
}

std::string loom::findPtxas() {
  // CUDA_ROOT, when set, is the only place looked at.
  if (const char *root = std::getenv("CUDA_ROOT")) {
    llvm::SmallString<128> path(root);
    llvm::sys::path::append(path, "bin", "ptxas");
    return llvm::sys::fs::can_execute(path) ? path.str().str() : "";
  }
  if (auto path = llvm::sys::findProgramByName("ptxas"))
    return *path;
  if (llvm::sys::fs::can_execute("/usr/local/cuda/bin/ptxas"))
    return "/usr/local/cuda/bin/ptxas";
  return {};
}

LogicalResult loom::compileModule(ModuleOp module,
                                  const CompileOptions &options,
                                  llvm::raw_ostream &out,
                                  StringRef artifactPath) {
  if (options.target == Target::Cuda) {
    if (cudaPtxFeatures(options.gpuChip).empty())
      return fail(module, "unsupported GPU '" + options.gpuChip +
                              "' (--sm takes 80, 86, 89, 90 or 90a)");
    if (options.stopAfter != CompileStage::Ptx &&
        options.cudaBinary == CudaBinary::Cubin && findPtxas().empty())
      return fail(module, "cubin needs ptxas from the CUDA toolkit, which "
                          "was not found (CUDA_ROOT, PATH, /usr/local/cuda)");
  } else if (options.stopAfter == CompileStage::Ptx) {
    return fail(module, "--emit=ptx needs --target=cuda");
  }
  if (failed(verify(module)) ||
      failed(runPipeline(module, options, buildGraphPipeline)))
    return failure();
  if (options.stopAfter == CompileStage::Loom) {
    module.print(out);
    return success();
  }
  if (failed(runPipeline(module, options, [&](OpPassManager &pm) {
        return buildFusePipeline(
            pm, options.mla, options.attention, options.logprob,
            options.target == Target::Cuda, options.logprobRows);
      })))
    return failure();
  if (options.stopAfter == CompileStage::Fuse) {
    module.print(out);
    return success();
  }
  if (failed(runPipeline(module, options, buildLoomToLinalgPipeline)))
    return failure();
  if (options.stopAfter == CompileStage::Linalg) {
    module.print(out);
    return success();
  }
  if (failed(runPipeline(module, options, buildCpuEntryAbiPipeline)))
    return failure();
  FailureOr<Manifest> manifest = collectManifest(module);
  if (failed(manifest))
    return failure();
  if (manifest->entries.empty())
    return fail(module, "the model defines no entry graph");
  // The signature now lives in the manifest; LLVM has no use for it.
  module.walk([](func::FuncOp func) {
    for (unsigned i = 0; i < func.getNumArguments(); ++i) {
      DictionaryAttr attrs = func.getArgAttrDict(i);
      if (!attrs)
        continue;
      SmallVector<NamedAttribute> kept;
      for (NamedAttribute attr : attrs)
        if (!attr.getName().strref().starts_with("loom."))
          kept.push_back(attr);
      func.setArgAttrs(i, kept);
    }
  });
  if (options.target == Target::Cuda)
    return compileCuda(module, options, *manifest, out, artifactPath);
  if (failed(runPipeline(module, options, [&](OpPassManager &pm) {
        return buildCpuLoweringPipeline(pm, options.hostMatmul,
                                        options.logprob == LogprobMode::Chunked,
                                        options.foldTransposes);
      })))
    return failure();

  return emitArtifact(module, options, *manifest, out, artifactPath);
}
