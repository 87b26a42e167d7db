//===- ObjectEmitter.h - CPU object code and shared objects -----*- C++ -*-===//
//
// This file declares the last steps of the CPU path: LLVM IR with the
// artifact glue (entry wrappers, import stubs, the manifest), optimization,
// object code for the host or a named CPU, and linking with lld.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_COMPILER_TARGET_CPU_OBJECTEMITTER_H
#define LOOM_COMPILER_TARGET_CPU_OBJECTEMITTER_H

#include "compiler/Artifact/Manifest.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Target/TargetMachine.h"

#include <memory>
#include <string>

namespace mlir::loom::cpu {

struct CpuCodegenOptions {
  /// LLVM CPU name; empty means the host CPU with its features.
  std::string cpu;
  unsigned optLevel = 3;
};

/// Creates the target machine for `options`. Returns null and sets `error`
/// on failure.
std::unique_ptr<llvm::TargetMachine>
createTargetMachine(const CpuCodegenOptions &options, std::string &error);

/// Translates a module in the LLVM dialect into LLVM IR and adds the ABI glue
/// of `manifest`, after adding to it the host functions the code imports:
/// `loom_entry_<name>(void **)` wrappers, import slots and stubs, and the
/// manifest data in its own section. Everything else gets internal linkage.
std::unique_ptr<llvm::Module>
translateToArtifactIR(ModuleOp module, llvm::LLVMContext &context,
                      Manifest &manifest, llvm::TargetMachine &machine,
                      std::string &error);

/// Runs LLVM's default pipeline at the options' level.
void optimizeModule(llvm::Module &module, llvm::TargetMachine &machine,
                    unsigned optLevel);

/// Emits object code (or assembly when `assembly`) into `out`.
std::string emitCode(llvm::Module &module, llvm::TargetMachine &machine,
                     bool assembly, llvm::SmallVectorImpl<char> &out);

/// Links `object` into a shared object at `outPath` with lld and seals it.
/// Returns an empty string on success, else the reason.
std::string linkArtifact(llvm::ArrayRef<char> object, llvm::StringRef outPath);

} // namespace mlir::loom::cpu

#endif // LOOM_COMPILER_TARGET_CPU_OBJECTEMITTER_H
