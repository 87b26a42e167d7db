//===- NativeMath.cpp - libdevice calls as PTX instructions -----*- C++ -*-===//
//
// This file implements loom-cuda-native-math: inside GPU modules lowered to
// NVVM, the libdevice calls whose function is a single PTX instruction
// become LLVM intrinsics, so that such kernels need no libdevice.
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CUDA/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringSwitch.h"

namespace mlir::loom::cuda {
#define GEN_PASS_DEF_CUDANATIVEMATHPASS
#include "compiler/Target/CUDA/Passes.h.inc"
} // namespace mlir::loom::cuda

using namespace mlir;

namespace {

enum class Native { None, Fma, Abs, Floor, Sqrt, Rsqrt };

static Native classify(StringRef callee) {
  return llvm::StringSwitch<Native>(callee)
      .Cases({"__nv_fmaf", "__nv_fma"}, Native::Fma)
      .Cases({"__nv_fabsf", "__nv_fabs"}, Native::Abs)
      .Cases({"__nv_floorf", "__nv_floor"}, Native::Floor)
      .Cases({"__nv_sqrtf", "__nv_sqrt"}, Native::Sqrt)
      .Cases({"__nv_rsqrtf", "__nv_rsqrt"}, Native::Rsqrt)
      .Default(Native::None);
}

struct CudaNativeMathPass
    : public loom::cuda::impl::CudaNativeMathPassBase<CudaNativeMathPass> {
  void runOnOperation() override {
    SmallVector<LLVM::CallOp> calls;
    getOperation().walk([&](LLVM::CallOp call) {
      std::optional<StringRef> callee = call.getCallee();
      if (callee && classify(*callee) != Native::None &&
          call.getNumResults() == 1)
        calls.push_back(call);
    });
    llvm::SmallSetVector<StringRef, 8> replaced;
    for (LLVM::CallOp call : calls) {
      OpBuilder b(call);
      Location loc = call.getLoc();
      Type type = call.getResult().getType();
      ValueRange args = call.getArgOperands();
      Value result;
      switch (classify(*call.getCallee())) {
      case Native::Fma:
        result = LLVM::FMAOp::create(b, loc, type, args[0], args[1], args[2]);
        break;
      case Native::Abs:
        result = LLVM::FAbsOp::create(b, loc, type, args[0]);
        break;
      case Native::Floor:
        result = LLVM::FFloorOp::create(b, loc, type, args[0]);
        break;
      case Native::Sqrt:
        result = LLVM::SqrtOp::create(b, loc, type, args[0]);
        break;
      case Native::Rsqrt: {
        Value root = LLVM::SqrtOp::create(b, loc, type, args[0]);
        Value one =
            LLVM::ConstantOp::create(b, loc, type, b.getFloatAttr(type, 1.0));
        result = LLVM::FDivOp::create(b, loc, one, root);
        break;
      }
      case Native::None:
        continue;
      }
      replaced.insert(*call.getCallee());
      call.getResult().replaceAllUsesWith(result);
      call.erase();
    }
    for (StringRef name : replaced) {
      auto function = getOperation().lookupSymbol<LLVM::LLVMFuncOp>(name);
      if (function && function.isExternal() &&
          SymbolTable::symbolKnownUseEmpty(function, getOperation()))
        function.erase();
    }
  }
};

} // namespace
