//===- loom-opt.cpp - Loom's mlir-opt ---------------------------*- C++ -*-===//
//
// This file implements loom-opt: MlirOptMain with Loom's dialects and passes
// registered next to every upstream dialect and pass.
//
//===----------------------------------------------------------------------===//

#include "compiler/Pipelines/Pipelines.h"
#include "dialects/fuse/IR/FuseOps.h"
#include "dialects/loom/IR/LoomDialect.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  // Loom's passes and the named pipelines (loom-graph, loom-to-linalg,
  // loom-cpu-codegen, loom-cuda-lowering, ...).
  mlir::loom::registerLoomPipelines();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary serializes kernels through LLVM IR.
  mlir::registerAllToLLVMIRTranslations(registry);
  registry.insert<mlir::loom::LoomDialect, mlir::fuse::FuseDialect>();

  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "Loom optimizer driver\n", registry));
}
