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
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::loom::cuda {

/// Attributes of the declarations whose calls loom-cuda-map-to-gpu turns
/// into launches (made by the kernel generators, loom-cuda-attention and
/// loom-cuda-mla-decode): the kernel, the threads of a block and the bytes
/// of dynamic shared memory (absent: none). The first three operands of a
/// call are the grid, the others the kernel's arguments.
inline constexpr llvm::StringLiteral kLaunchAttr = "loom.cuda.launch";
inline constexpr llvm::StringLiteral kLaunchThreadsAttr =
    "loom.cuda.launch_threads";
inline constexpr llvm::StringLiteral kLaunchSharedAttr =
    "loom.cuda.launch_shared";

#define GEN_PASS_DECL
#include "compiler/Target/CUDA/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "compiler/Target/CUDA/Passes.h.inc"

} // namespace mlir::loom::cuda

#endif // LOOM_COMPILER_TARGET_CUDA_PASSES_H
