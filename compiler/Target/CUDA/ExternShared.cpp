//===- ExternShared.cpp - Dynamic shared memory, extern -------*- C++ -*-===//
//
// This file implements loom-cuda-extern-shared: the zero-sized shared
// global that `convert-gpu-to-nvvm` makes for `gpu.dynamic_shared_memory`
// becomes external, as CUDA's `extern __shared__ char smem[]`.
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CUDA/Passes.h"

namespace mlir::loom::cuda {
#define GEN_PASS_DEF_CUDAEXTERNSHAREDPASS
#include "compiler/Target/CUDA/Passes.h.inc"
} // namespace mlir::loom::cuda

using namespace mlir;

namespace {

struct CudaExternSharedPass
    : public loom::cuda::impl::CudaExternSharedPassBase<CudaExternSharedPass> {
  void runOnOperation() override {
    for (auto global : getOperation().getOps<LLVM::GlobalOp>()) {
      auto array = dyn_cast<LLVM::LLVMArrayType>(global.getGlobalType());
      if (global.getAddrSpace() ==
              static_cast<unsigned>(NVVM::NVVMMemorySpace::Shared) &&
          array && array.getNumElements() == 0 &&
          global.getLinkage() == LLVM::Linkage::Internal)
        global.setLinkage(LLVM::Linkage::External);
    }
  }
};

} // namespace
