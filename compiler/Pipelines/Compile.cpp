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
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"

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

LogicalResult loom::compileModule(ModuleOp module,
                                  const CompileOptions &options,
                                  llvm::raw_ostream &out,
                                  StringRef artifactPath) {
  if (failed(verify(module)) ||
      failed(runPipeline(module, options, buildGraphPipeline)))
    return failure();
  if (options.stopAfter == CompileStage::Loom) {
    module.print(out);
    return success();
  }
  if (failed(runPipeline(module, options, [&](OpPassManager &pm) {
        return buildFusePipeline(pm, options.mla, options.attention,
                                 options.logprob);
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
  if (failed(runPipeline(module, options, [&](OpPassManager &pm) {
        return buildCpuLoweringPipeline(pm, options.hostMatmul);
      })))
    return failure();

  cpu::CpuCodegenOptions codegen;
  codegen.cpu = options.cpu;
  codegen.optLevel = options.optLevel;
  std::string error;
  std::unique_ptr<llvm::TargetMachine> machine =
      cpu::createTargetMachine(codegen, error);
  if (!machine)
    return fail(module, error);
  manifest->compilerVersion = options.compilerVersion;
  manifest->targetCpu = machine->getTargetCPU().str();
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule = cpu::translateToArtifactIR(
      module, llvmContext, *manifest, *machine, error);
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
