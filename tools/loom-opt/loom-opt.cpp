//===- loom-opt.cpp - Loom's mlir-opt ---------------------------*- C++ -*-===//
//
// This file implements loom-opt: MlirOptMain with Loom's dialects and passes
// registered next to every upstream dialect and pass.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/Passes.h"
#include "dialects/loom/IR/LoomDialect.h"
#include "dialects/loom/Transforms/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  mlir::loom::registerLoomPasses();
  mlir::loom::registerLoomConversionPasses();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  registry.insert<mlir::loom::LoomDialect>();

  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "Loom optimizer driver\n", registry));
}
