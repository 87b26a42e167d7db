//===- ObjectEmitter.cpp - CPU object code and shared objects ---*- C++ -*-===//
//
// This file implements the last steps of the CPU path: translation to LLVM
// IR with the artifact glue, LLVM's optimization pipeline, object code
// through a TargetMachine, and linking with lld into the artifact.
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CPU/ObjectEmitter.h"

#include "compiler/Target/CPU/AttentionOutline.h"

#include "loom/abi.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/InstIterator.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Operator.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"
#include "llvm/TargetParser/Triple.h"

using namespace mlir;
using namespace mlir::loom;

std::unique_ptr<llvm::TargetMachine>
cpu::createTargetMachine(const CpuCodegenOptions &options, std::string &error) {
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::Triple triple(llvm::sys::getProcessTriple());
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return nullptr;
  std::string cpu = options.cpu;
  std::string features;
  if (cpu.empty() || cpu == "native") {
    cpu = llvm::sys::getHostCPUName().str();
    llvm::SubtargetFeatures subtarget;
    for (auto &feature : llvm::sys::getHostCPUFeatures())
      subtarget.AddFeature(feature.first(), feature.second);
    features = subtarget.getString();
  } else {
    // Refuse names LLVM does not know instead of silently using a generic
    // CPU.
    std::unique_ptr<llvm::MCSubtargetInfo> probe(
        target->createMCSubtargetInfo(triple, "", ""));
    if (!probe || !probe->isCPUStringValid(cpu)) {
      error = "unknown CPU '" + cpu + "' for " + triple.str();
      return nullptr;
    }
  }
  llvm::TargetOptions targetOptions;
  auto level = options.optLevel >= 3   ? llvm::CodeGenOptLevel::Aggressive
               : options.optLevel == 0 ? llvm::CodeGenOptLevel::None
                                       : llvm::CodeGenOptLevel::Default;
  std::unique_ptr<llvm::TargetMachine> machine(
      target->createTargetMachine(triple, cpu, features, targetOptions,
                                  llvm::Reloc::PIC_, std::nullopt, level));
  if (!machine)
    error = "cannot create a target machine for " + cpu;
  return machine;
}

/// Gives `function` a body that forwards its arguments to the function
/// pointer stored in `slot`.
static void buildImportStub(llvm::Function &function,
                            llvm::GlobalVariable &slot) {
  auto *block =
      llvm::BasicBlock::Create(function.getContext(), "entry", &function);
  llvm::IRBuilder<> b(block);
  llvm::Value *target = b.CreateLoad(b.getPtrTy(), &slot, "host_fn");
  SmallVector<llvm::Value *> args;
  for (llvm::Argument &arg : function.args())
    args.push_back(&arg);
  llvm::Value *result = b.CreateCall(function.getFunctionType(), target, args);
  if (function.getReturnType()->isVoidTy())
    b.CreateRetVoid();
  else
    b.CreateRet(result);
}

/// MLIR's GPU runtime functions (`mgpuLaunchKernel`, ...), which the host
/// code of GPU targets calls and the runtime provides under these names.
static constexpr llvm::StringLiteral kGpuRuntimePrefix = "mgpu";

/// Module initializers (`llvm.global_ctors`, which load the GPU kernels)
/// call imports, and import slots are filled only after the runtime has
/// opened the artifact: the initializers run once, on the first entry call,
/// instead of when the shared object is loaded. Returns the function that
/// runs them (null when there are none); `llvm.global_dtors` are dropped, as
/// what they release lives as long as the process.
static llvm::Function *lazyInitializers(llvm::Module &module) {
  if (llvm::GlobalVariable *dtors = module.getNamedGlobal("llvm.global_dtors"))
    dtors->eraseFromParent();
  llvm::GlobalVariable *ctors = module.getNamedGlobal("llvm.global_ctors");
  if (!ctors)
    return nullptr;
  // (priority, position): equal priorities keep the order of the array.
  SmallVector<std::tuple<uint64_t, unsigned, llvm::Function *>> initializers;
  if (auto *array =
          llvm::dyn_cast_or_null<llvm::ConstantArray>(ctors->getInitializer()))
    for (llvm::Value *element : array->operands()) {
      auto *entry = llvm::cast<llvm::ConstantStruct>(element);
      auto *priority = llvm::cast<llvm::ConstantInt>(entry->getOperand(0));
      if (auto *fn = llvm::dyn_cast<llvm::Function>(entry->getOperand(1)))
        initializers.push_back(
            {priority->getZExtValue(), initializers.size(), fn});
    }
  ctors->eraseFromParent();
  llvm::sort(initializers);
  llvm::LLVMContext &context = module.getContext();
  llvm::IRBuilder<> b(context);
  // 0: not run, 1: running, 2: done. One thread runs them; the others wait.
  auto *state = new llvm::GlobalVariable(
      module, b.getInt32Ty(), /*isConstant=*/false,
      llvm::GlobalValue::InternalLinkage, b.getInt32(0), "__loom_init_state");
  auto *init = llvm::Function::Create(
      llvm::FunctionType::get(b.getVoidTy(), false),
      llvm::GlobalValue::InternalLinkage, "__loom_run_initializers", module);
  auto *entry = llvm::BasicBlock::Create(context, "entry", init);
  auto *run = llvm::BasicBlock::Create(context, "run", init);
  auto *wait = llvm::BasicBlock::Create(context, "wait", init);
  auto *done = llvm::BasicBlock::Create(context, "done", init);
  b.SetInsertPoint(entry);
  auto *current = b.CreateLoad(b.getInt32Ty(), state);
  current->setAtomic(llvm::AtomicOrdering::Acquire);
  current->setAlignment(llvm::Align(4));
  auto *finished = b.CreateICmpEQ(current, b.getInt32(2));
  auto *claim = llvm::BasicBlock::Create(context, "claim", init, run);
  b.CreateCondBr(finished, done, claim);
  b.SetInsertPoint(claim);
  auto *exchange = b.CreateAtomicCmpXchg(
      state, b.getInt32(0), b.getInt32(1), llvm::MaybeAlign(4),
      llvm::AtomicOrdering::AcquireRelease, llvm::AtomicOrdering::Acquire);
  b.CreateCondBr(b.CreateExtractValue(exchange, 1), run, wait);
  b.SetInsertPoint(run);
  for (auto &[priority, position, fn] : initializers)
    b.CreateCall(fn);
  b.CreateStore(b.getInt32(2), state)->setAtomic(llvm::AtomicOrdering::Release);
  b.CreateBr(done);
  b.SetInsertPoint(wait);
  auto *seen = b.CreateLoad(b.getInt32Ty(), state);
  seen->setAtomic(llvm::AtomicOrdering::Acquire);
  seen->setAlignment(llvm::Align(4));
  b.CreateCondBr(b.CreateICmpEQ(seen, b.getInt32(2)), done, wait);
  b.SetInsertPoint(done);
  b.CreateRetVoid();
  return init;
}

static constexpr llvm::StringLiteral kLaunchPrefix = "__loom_parallel_launch_";
static constexpr llvm::StringLiteral kParallelFor = "loom_rt_parallel_for";

/// Defines `launch(n, captures...)`: packs the captures into a context on the
/// stack and runs `body(begin, end, captures...)` over [0, n) through the
/// runtime's parallel_for, with a trampoline that unpacks the context.
static void buildParallelLaunch(llvm::Function &launch, llvm::Function &body,
                                llvm::GlobalVariable &slot) {
  llvm::LLVMContext &context = launch.getContext();
  llvm::Module &module = *launch.getParent();
  SmallVector<llvm::Type *> fields;
  for (llvm::Argument &arg : llvm::drop_begin(launch.args()))
    fields.push_back(arg.getType());
  auto *contextType = llvm::StructType::get(context, fields);
  llvm::IRBuilder<> b(context);
  llvm::Type *ptr = b.getPtrTy();
  llvm::Type *i64 = b.getInt64Ty();

  auto *trampolineType =
      llvm::FunctionType::get(b.getVoidTy(), {ptr, i64, i64}, false);
  auto *trampoline =
      llvm::Function::Create(trampolineType, llvm::GlobalValue::InternalLinkage,
                             launch.getName() + ".trampoline", module);
  b.SetInsertPoint(llvm::BasicBlock::Create(context, "entry", trampoline));
  SmallVector<llvm::Value *> args = {trampoline->getArg(1),
                                     trampoline->getArg(2)};
  for (auto [i, type] : llvm::enumerate(fields))
    args.push_back(b.CreateLoad(
        type, b.CreateStructGEP(contextType, trampoline->getArg(0), i)));
  b.CreateCall(&body, args);
  b.CreateRetVoid();

  b.SetInsertPoint(llvm::BasicBlock::Create(context, "entry", &launch));
  llvm::Value *packed = b.CreateAlloca(contextType);
  for (unsigned i = 0; i < fields.size(); ++i)
    b.CreateStore(launch.getArg(i + 1),
                  b.CreateStructGEP(contextType, packed, i));
  llvm::Value *parallelFor = b.CreateLoad(ptr, &slot, "parallel_for");
  auto *parallelForType =
      llvm::FunctionType::get(b.getVoidTy(), {ptr, ptr, i64}, false);
  b.CreateCall(parallelForType, parallelFor,
               {trampoline, packed, launch.getArg(0)});
  b.CreateRetVoid();
  launch.setLinkage(llvm::GlobalValue::InternalLinkage);
}

static constexpr llvm::StringLiteral kAttention = "loom_rt_attention_f32";

/// Number of scalars of a memref of `rank` in a lowered function signature:
/// allocated and aligned pointers, offset, sizes, strides.
static unsigned descriptorArgs(unsigned rank) { return 3 + 2 * rank; }

/// Defines `launch(q, k, v, out, lse, scale, flags, captures...)` of a
/// fuse.attention (signature as lowered to LLVM: each memref expanded into
/// its descriptor's fields): packs the captures into a context on the stack,
/// builds loom_attention_mods_t with trampolines `(ctx, ...)` that unpack
/// the context and call the functions compiled from the regions (any of them
/// may be missing), rebuilds the memref descriptors of abi.h and calls the
/// runtime's loom_rt_attention_f32 through its import slot.
static LogicalResult buildAttentionLaunch(llvm::Function &launch,
                                          llvm::GlobalVariable &slot,
                                          std::string &error) {
  llvm::LLVMContext &context = launch.getContext();
  llvm::Module &module = *launch.getParent();
  std::string suffix =
      launch.getName().drop_front(cpu::kAttentionLaunchPrefix.size()).str();
  const unsigned fixed = 4 * descriptorArgs(4) + descriptorArgs(3) + 2;
  if (launch.arg_size() < fixed) {
    error = "attention launch " + suffix + " has too few arguments";
    return failure();
  }
  unsigned numCaptures = launch.arg_size() - fixed;
  SmallVector<llvm::Type *> fields;
  for (unsigned k = fixed; k < launch.arg_size(); ++k)
    fields.push_back(launch.getArg(k)->getType());
  auto *contextType = llvm::StructType::get(context, fields);
  llvm::IRBuilder<> b(context);
  llvm::Type *ptr = b.getPtrTy();
  llvm::Type *i64 = b.getInt64Ty();
  llvm::Type *i32 = b.getInt32Ty();

  // A trampoline `(ctx, scalars..., [row pointer]) -> ret` calling `callee
  // (scalars..., [row descriptor], captures...)`; null when the region was
  // absent.
  auto trampoline = [&](llvm::StringRef prefix, unsigned scalars, bool row,
                        llvm::Type *ret) -> FailureOr<llvm::Constant *> {
    llvm::Function *callee = module.getFunction((prefix + suffix).str());
    if (!callee)
      return llvm::ConstantPointerNull::get(llvm::PointerType::get(context, 0));
    unsigned expected = scalars + (row ? descriptorArgs(1) : 0) + numCaptures;
    if (callee->arg_size() != expected || callee->getReturnType() != ret) {
      error = "attention function " + callee->getName().str() +
              " does not match its launch";
      return failure();
    }
    SmallVector<llvm::Type *> params = {ptr};
    params.append(scalars, i64);
    if (row)
      params.push_back(ptr);
    auto *type = llvm::FunctionType::get(ret, params, false);
    auto *fn =
        llvm::Function::Create(type, llvm::GlobalValue::InternalLinkage,
                               callee->getName() + ".trampoline", module);
    b.SetInsertPoint(llvm::BasicBlock::Create(context, "entry", fn));
    SmallVector<llvm::Value *> args;
    for (unsigned k = 0; k < scalars; ++k)
      args.push_back(fn->getArg(1 + k));
    if (row) {
      // memref<?xT>: (allocated, aligned, offset 0, size n, stride 1); the
      // row functions take n as their fifth scalar.
      llvm::Value *data = fn->getArg(1 + scalars);
      args.append({data, data, b.getInt64(0), fn->getArg(5), b.getInt64(1)});
    }
    for (auto [k, type] : llvm::enumerate(fields))
      args.push_back(
          b.CreateLoad(type, b.CreateStructGEP(contextType, fn->getArg(0), k)));
    llvm::Value *result = b.CreateCall(callee, args);
    if (ret->isVoidTy())
      b.CreateRetVoid();
    else
      b.CreateRet(result);
    return fn;
  };
  FailureOr<llvm::Constant *> maskRow =
      trampoline(cpu::kAttentionMaskRowPrefix, 5, /*row=*/true, b.getVoidTy());
  FailureOr<llvm::Constant *> maskBlock =
      trampoline(cpu::kAttentionMaskBlockPrefix, 6, /*row=*/false, i32);
  FailureOr<llvm::Constant *> scoreRow =
      trampoline(cpu::kAttentionScoreRowPrefix, 5, /*row=*/true, b.getVoidTy());
  if (failed(maskRow) || failed(maskBlock) || failed(scoreRow))
    return failure();

  b.SetInsertPoint(llvm::BasicBlock::Create(context, "entry", &launch));
  llvm::Value *packed = b.CreateAlloca(contextType);
  for (unsigned k = 0; k < numCaptures; ++k)
    b.CreateStore(launch.getArg(fixed + k),
                  b.CreateStructGEP(contextType, packed, k));
  // loom_attention_mods_t.
  auto *modsType = llvm::StructType::get(context, {ptr, ptr, ptr, ptr, i32});
  llvm::Value *mods = b.CreateAlloca(modsType);
  llvm::Value *modsFields[] = {packed, *maskRow, *maskBlock, *scoreRow,
                               launch.getArg(fixed - 1)};
  for (auto [k, value] : llvm::enumerate(modsFields))
    b.CreateStore(value, b.CreateStructGEP(modsType, mods, k));
  // loom_memref_4d_t / loom_memref_3d_t of q, k, v, out, lse.
  SmallVector<llvm::Value *> descriptors;
  unsigned next = 0;
  for (unsigned rank : {4u, 4u, 4u, 4u, 3u}) {
    auto *arrayType = llvm::ArrayType::get(i64, rank);
    auto *type =
        llvm::StructType::get(context, {ptr, ptr, i64, arrayType, arrayType});
    llvm::Value *desc = b.CreateAlloca(type);
    b.CreateStore(launch.getArg(next++), b.CreateStructGEP(type, desc, 0));
    b.CreateStore(launch.getArg(next++), b.CreateStructGEP(type, desc, 1));
    b.CreateStore(launch.getArg(next++), b.CreateStructGEP(type, desc, 2));
    for (unsigned field : {3u, 4u})
      for (unsigned d = 0; d < rank; ++d)
        b.CreateStore(
            launch.getArg(next++),
            b.CreateInBoundsGEP(
                type, desc, {b.getInt32(0), b.getInt32(field), b.getInt32(d)}));
    descriptors.push_back(desc);
  }
  llvm::Value *kernel = b.CreateLoad(ptr, &slot, "attention");
  auto *kernelType = llvm::FunctionType::get(
      b.getVoidTy(), {ptr, ptr, ptr, ptr, ptr, b.getFloatTy(), ptr}, false);
  b.CreateCall(kernelType, kernel,
               {descriptors[0], descriptors[1], descriptors[2], descriptors[3],
                descriptors[4], launch.getArg(fixed - 2), mods});
  b.CreateRetVoid();
  launch.setLinkage(llvm::GlobalValue::InternalLinkage);
  return success();
}

/// Defines MLIR's generic allocation functions (declared by
/// finalize-memref-to-llvm with use-generic-functions) on the runtime's
/// loom_rt_alloc / loom_rt_free, adding those imports and their slots.
static LogicalResult routeAllocations(llvm::Module &module, Manifest &manifest,
                                      std::string &error) {
  llvm::Function *alloc = module.getFunction("_mlir_memref_to_llvm_alloc");
  llvm::Function *aligned =
      module.getFunction("_mlir_memref_to_llvm_aligned_alloc");
  llvm::Function *release = module.getFunction("_mlir_memref_to_llvm_free");
  if (!alloc && !aligned && !release)
    return success();
  if ((alloc && alloc->arg_size() != 1) ||
      (aligned && aligned->arg_size() != 2) ||
      (release && release->arg_size() != 1)) {
    error = "unexpected signature of MLIR's allocation functions";
    return failure();
  }
  llvm::LLVMContext &context = module.getContext();
  llvm::IRBuilder<> b(context);
  llvm::Type *ptr = b.getPtrTy();
  llvm::Type *i64 = b.getInt64Ty();
  auto slotFor = [&](StringRef name) {
    if (llvm::none_of(manifest.imports,
                      [&](const ManifestImport &i) { return i.name == name; }))
      manifest.imports.push_back({name.str(), importSlotSymbol(name)});
    std::string symbol = importSlotSymbol(name);
    if (llvm::GlobalVariable *slot = module.getNamedGlobal(symbol))
      return slot;
    auto *slot = new llvm::GlobalVariable(
        module, ptr, /*isConstant=*/false, llvm::GlobalValue::ExternalLinkage,
        llvm::ConstantPointerNull::get(llvm::PointerType::get(context, 0)),
        symbol);
    slot->setVisibility(llvm::GlobalValue::DefaultVisibility);
    return slot;
  };
  auto *allocType = llvm::FunctionType::get(ptr, {i64, i64}, false);
  auto define = [&](llvm::Function *function,
                    llvm::function_ref<void(llvm::Function &)> body) {
    if (!function)
      return;
    b.SetInsertPoint(llvm::BasicBlock::Create(context, "entry", function));
    body(*function);
    function->setLinkage(llvm::GlobalValue::InternalLinkage);
  };
  define(alloc, [&](llvm::Function &f) {
    llvm::Value *fn = b.CreateLoad(ptr, slotFor("loom_rt_alloc"));
    b.CreateRet(b.CreateCall(allocType, fn,
                             {f.getArg(0), llvm::ConstantInt::get(i64, 64)}));
  });
  define(aligned, [&](llvm::Function &f) {
    llvm::Value *fn = b.CreateLoad(ptr, slotFor("loom_rt_alloc"));
    b.CreateRet(b.CreateCall(allocType, fn, {f.getArg(1), f.getArg(0)}));
  });
  define(release, [&](llvm::Function &f) {
    llvm::Value *fn = b.CreateLoad(ptr, slotFor("loom_rt_free"));
    b.CreateCall(llvm::FunctionType::get(b.getVoidTy(), {ptr}, false), fn,
                 {f.getArg(0)});
    b.CreateRetVoid();
  });
  return success();
}

std::unique_ptr<llvm::Module>
cpu::translateToArtifactIR(ModuleOp module, llvm::LLVMContext &context,
                           Manifest &manifest, llvm::TargetMachine &machine,
                           std::string &error) {
  registerBuiltinDialectTranslation(*module->getContext());
  registerLLVMDialectTranslation(*module->getContext());
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, context, "loom");
  if (!llvmModule) {
    error = "translation to LLVM IR failed";
    return nullptr;
  }
  llvmModule->setDataLayout(machine.createDataLayout());
  llvmModule->setTargetTriple(machine.getTargetTriple());

  // Everything the glue does not export becomes internal so LLVM can inline
  // the C interface functions into the entry wrappers and drop them.
  for (llvm::Function &function : *llvmModule)
    if (!function.isDeclaration())
      function.setLinkage(llvm::GlobalValue::InternalLinkage);

  llvm::IRBuilder<> b(context);
  llvm::Type *ptr = b.getPtrTy();

  // Parallel loops outlined by loom-cpu-parallel-outline go through the
  // runtime's thread pool.
  SmallVector<llvm::Function *> launches;
  for (llvm::Function &function : *llvmModule)
    if (function.isDeclaration() &&
        function.getName().starts_with(kLaunchPrefix))
      launches.push_back(&function);
  if (!launches.empty() &&
      llvm::none_of(manifest.imports, [](const ManifestImport &i) {
        return i.name == kParallelFor;
      }))
    manifest.imports.push_back(
        {kParallelFor.str(), importSlotSymbol(kParallelFor)});
  // So do the fuse.attention ops lowered by loom-cpu-fuse-to-runtime, through
  // the runtime's attention kernel.
  SmallVector<llvm::Function *> attentionLaunches;
  for (llvm::Function &function : *llvmModule)
    if (function.isDeclaration() &&
        function.getName().starts_with(cpu::kAttentionLaunchPrefix))
      attentionLaunches.push_back(&function);
  if (!attentionLaunches.empty() &&
      llvm::none_of(manifest.imports, [](const ManifestImport &i) {
        return i.name == kAttention;
      }))
    manifest.imports.push_back(
        {kAttention.str(), importSlotSymbol(kAttention)});

  // Import slots, filled by the runtime before any entry runs. The lowering
  // declared one C interface function per host function it calls.
  static constexpr llvm::StringLiteral kStubPrefix = "_mlir_ciface_loom_rt_";
  for (llvm::Function &function : *llvmModule) {
    if (!function.isDeclaration())
      continue;
    std::string name;
    if (function.getName().starts_with(kStubPrefix))
      name = function.getName().drop_front(strlen("_mlir_ciface_")).str();
    else if (function.getName().starts_with(kGpuRuntimePrefix))
      name = function.getName().str();
    else
      continue;
    if (llvm::none_of(manifest.imports,
                      [&](const ManifestImport &i) { return i.name == name; }))
      manifest.imports.push_back({name, importSlotSymbol(name)});
  }
  for (const ManifestImport &import : manifest.imports) {
    auto *slot = new llvm::GlobalVariable(
        *llvmModule, ptr, /*isConstant=*/false,
        llvm::GlobalValue::ExternalLinkage,
        llvm::ConstantPointerNull::get(llvm::PointerType::get(context, 0)),
        import.slot);
    slot->setVisibility(llvm::GlobalValue::DefaultVisibility);
    // parallel_for and the attention kernel are called from the launch
    // functions built below.
    if (import.name == kParallelFor || import.name == kAttention)
      continue;
    std::string stubName =
        llvm::StringRef(import.name).starts_with(kGpuRuntimePrefix)
            ? import.name
            : "_mlir_ciface_" + import.name;
    llvm::Function *stub = llvmModule->getFunction(stubName);
    if (!stub) {
      error = "the module does not declare " + stubName;
      return nullptr;
    }
    buildImportStub(*stub, *slot);
    stub->setLinkage(llvm::GlobalValue::InternalLinkage);
  }

  // Buffers come from the runtime's allocator, which keeps large blocks for
  // the next call instead of returning them to the system.
  if (failed(routeAllocations(*llvmModule, manifest, error)))
    return nullptr;

  for (llvm::Function *launch : launches) {
    std::string suffix =
        launch->getName().drop_front(kLaunchPrefix.size()).str();
    llvm::Function *body =
        llvmModule->getFunction("__loom_parallel_body_" + suffix);
    auto *slot = llvmModule->getNamedGlobal(importSlotSymbol(kParallelFor));
    if (!body || !slot || body->arg_size() != launch->arg_size() + 1) {
      error = "parallel loop " + suffix + " has no matching body";
      return nullptr;
    }
    buildParallelLaunch(*launch, *body, *slot);
  }
  for (llvm::Function *launch : attentionLaunches) {
    auto *slot = llvmModule->getNamedGlobal(importSlotSymbol(kAttention));
    if (!slot || failed(buildAttentionLaunch(*launch, *slot, error)))
      return nullptr;
  }

  llvm::Function *initializers = lazyInitializers(*llvmModule);

  // Entry wrappers: int32_t loom_entry_<name>(void **args).
  for (const ManifestEntry &entry : manifest.entries) {
    std::string target = "_mlir_ciface_" + entry.name;
    llvm::Function *callee = llvmModule->getFunction(target);
    if (!callee || callee->arg_size() != entry.args.size()) {
      error = "entry '" + entry.name + "' has no C interface function with " +
              std::to_string(entry.args.size()) + " arguments";
      return nullptr;
    }
    auto *type = llvm::FunctionType::get(b.getInt32Ty(), {ptr}, false);
    auto *wrapper = llvm::Function::Create(
        type, llvm::GlobalValue::ExternalLinkage, entry.symbol, *llvmModule);
    wrapper->setVisibility(llvm::GlobalValue::DefaultVisibility);
    b.SetInsertPoint(llvm::BasicBlock::Create(context, "entry", wrapper));
    if (initializers)
      b.CreateCall(initializers);
    SmallVector<llvm::Value *> args;
    for (unsigned i = 0; i < entry.args.size(); ++i) {
      llvm::Value *slot =
          b.CreateConstInBoundsGEP1_64(ptr, wrapper->getArg(0), i);
      args.push_back(b.CreateLoad(ptr, slot));
    }
    llvm::Value *code = b.CreateCall(callee, args);
    if (!code->getType()->isIntegerTy(32)) {
      error = "entry '" + entry.name + "' does not return an i32 code";
      return nullptr;
    }
    b.CreateRet(code);
  }

  // The manifest, in its own section and exported under its symbol.
  std::vector<uint8_t> blob = serializeManifest(manifest);
  auto *data = llvm::ConstantDataArray::get(context, llvm::ArrayRef(blob));
  auto *global = new llvm::GlobalVariable(
      *llvmModule, data->getType(), /*isConstant=*/true,
      llvm::GlobalValue::ExternalLinkage, data, LOOM_MANIFEST_SYMBOL);
  global->setSection(LOOM_MANIFEST_SECTION);
  global->setAlignment(llvm::Align(8));
  global->setVisibility(llvm::GlobalValue::DefaultVisibility);
  return llvmModule;
}

void cpu::optimizeModule(llvm::Module &module, llvm::TargetMachine &machine,
                         unsigned optLevel) {
  // Floating-point math may be reassociated (vectorized reductions) and
  // contracted (FMA), as in the libraries Loom is compared with; NaN and
  // infinity keep their IEEE meaning.
  for (llvm::Function &function : module)
    for (llvm::Instruction &inst : llvm::instructions(function))
      if (llvm::isa<llvm::FPMathOperator>(inst)) {
        inst.setHasAllowReassoc(true);
        inst.setHasAllowContract(true);
      }
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PipelineTuningOptions tuning;
  tuning.LoopVectorization = optLevel >= 2;
  tuning.SLPVectorization = optLevel >= 2;
  llvm::PassBuilder builder(&machine, tuning);
  builder.registerModuleAnalyses(mam);
  builder.registerCGSCCAnalyses(cgam);
  builder.registerFunctionAnalyses(fam);
  builder.registerLoopAnalyses(lam);
  builder.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::OptimizationLevel level = optLevel >= 3   ? llvm::OptimizationLevel::O3
                                  : optLevel == 2 ? llvm::OptimizationLevel::O2
                                  : optLevel == 1 ? llvm::OptimizationLevel::O1
                                                  : llvm::OptimizationLevel::O0;
  llvm::ModulePassManager pm =
      optLevel == 0 ? builder.buildO0DefaultPipeline(level)
                    : builder.buildPerModuleDefaultPipeline(level);
  pm.run(module, mam);
}

std::string cpu::emitCode(llvm::Module &module, llvm::TargetMachine &machine,
                          bool assembly, llvm::SmallVectorImpl<char> &out) {
  llvm::raw_svector_ostream os(out);
  llvm::legacy::PassManager pm;
  if (machine.addPassesToEmitFile(pm, os, nullptr,
                                  assembly ? llvm::CodeGenFileType::AssemblyFile
                                           : llvm::CodeGenFileType::ObjectFile))
    return "the target cannot emit this file type";
  pm.run(module);
  return {};
}

/// Finds lld: the one found at configure time, else ld.lld on PATH.
static std::string findLinker() {
#ifdef LOOM_LLD_PATH
  if (llvm::sys::fs::can_execute(LOOM_LLD_PATH))
    return LOOM_LLD_PATH;
#endif
  for (const char *name : {"ld.lld-22", "ld.lld"})
    if (auto path = llvm::sys::findProgramByName(name))
      return *path;
  return {};
}

std::string cpu::linkArtifact(llvm::ArrayRef<char> object,
                              llvm::StringRef outPath) {
  std::string linker = findLinker();
  if (linker.empty())
    return "cannot find ld.lld (install lld-22)";
  llvm::SmallString<128> objectPath;
  int fd;
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("loom", "o", fd, objectPath))
    return "cannot create a temporary file: " + ec.message();
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os.write(object.data(), object.size());
  }
  llvm::SmallString<128> errPath;
  llvm::sys::fs::createTemporaryFile("loom-lld", "txt", errPath);
  std::string out = outPath.str();
  std::string obj = objectPath.str().str();
  SmallVector<llvm::StringRef> args = {
      linker, "-shared",         "-o",  out, "--hash-style=gnu", "-z",
      "now",  "--build-id=none", "-O1", obj};
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, errPath.str(),
                                                errPath.str()};
  std::string message;
  int rc = llvm::sys::ExecuteAndWait(linker, args, std::nullopt, redirects, 0,
                                     0, &message);
  llvm::sys::fs::remove(objectPath);
  if (rc != 0) {
    std::string log;
    if (auto buffer = llvm::MemoryBuffer::getFile(errPath))
      log = (*buffer)->getBuffer().str();
    llvm::sys::fs::remove(errPath);
    return "linking with " + linker +
           " failed: " + (message.empty() ? log : message + "\n" + log);
  }
  llvm::sys::fs::remove(errPath);
  return sealArtifact(outPath);
}
