//===- Passes.h - CUDA target passes ----------------------------*- C++ -*-===//
//
// This file declares the CUDA target passes and their registration.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_COMPILER_TARGET_CUDA_PASSES_H
#define LOOM_COMPILER_TARGET_CUDA_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::loom::cuda {

/// Attributes of the declarations whose calls loom-cuda-map-to-gpu turns
/// into launches (made by loom-cuda-attention): the kernel, and the queries
/// and threads of a block.
inline constexpr llvm::StringLiteral kLaunchAttr = "loom.cuda.launch";
inline constexpr llvm::StringLiteral kLaunchRowsAttr = "loom.cuda.launch_rows";
inline constexpr llvm::StringLiteral kLaunchThreadsAttr =
    "loom.cuda.launch_threads";

#define GEN_PASS_DECL
#include "compiler/Target/CUDA/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "compiler/Target/CUDA/Passes.h.inc"

} // namespace mlir::loom::cuda

#endif // LOOM_COMPILER_TARGET_CUDA_PASSES_H
