//===- KernelBuilder.cpp - Helpers of the tensor-core kernels ---*- C++ -*-===//
//
// This file implements KernelBuilder (KernelBuilder.h).
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CUDA/KernelBuilder.h"

#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::loom::cuda;

/// Inline PTX returning `types` (a struct when there are several).
static ValueRange inlineAsm(OpBuilder &b, Location loc, TypeRange types,
                            ValueRange operands, StringRef text,
                            StringRef constraints, bool sideEffects) {
  Type result;
  if (types.size() == 1)
    result = types[0];
  else if (!types.empty())
    result = LLVM::LLVMStructType::getLiteral(b.getContext(),
                                              llvm::to_vector(types));
  return LLVM::InlineAsmOp::create(
             b, loc, result ? TypeRange(result) : TypeRange(), operands, text,
             constraints, sideEffects, /*is_align_stack=*/false,
             LLVM::tailcallkind::TailCallKind::None, LLVM::AsmDialectAttr(),
             ArrayAttr())
      ->getResults();
}

Value KernelBuilder::ptxUnary(StringRef instruction, Value x) {
  return inlineAsm(b, loc, f32, x, (instruction + " $0, $1;").str(), "=f,f",
                   /*sideEffects=*/false)[0];
}

Value KernelBuilder::pack(Value pair) {
  if (isa<BFloat16Type>(elem))
    return LLVM::BitcastOp::create(b, loc, i32, pair);
  return pair;
}

Value KernelBuilder::roundPair(Value x, Value y) {
  Value pair = vector::FromElementsOp::create(b, loc, VectorType::get({2}, f32),
                                              ValueRange{x, y});
  return arith::TruncFOp::create(b, loc, VectorType::get({2}, elem), pair);
}

Value KernelBuilder::packFloats(Value x, Value y) {
  return pack(roundPair(x, y));
}

SmallVector<Value> KernelBuilder::ldmatrix(Value buffer, ValueRange indices,
                                           bool transpose) {
  auto load = nvgpu::LdMatrixOp::create(
      b, loc, VectorType::get({4, 2}, elem), buffer, indices, transpose, 4);
  SmallVector<Value> regs;
  for (int64_t k = 0; k < 4; ++k)
    regs.push_back(pack(vector::ExtractOp::create(b, loc, load, k)));
  return regs;
}

SmallVector<Value> KernelBuilder::mma(ValueRange a, ValueRange bFrag,
                                      ValueRange c) {
  auto type = LLVM::LLVMStructType::getLiteral(ctx, {f32, f32, f32, f32});
  NVVM::MMATypes ptx =
      isa<BFloat16Type>(elem) ? NVVM::MMATypes::bf16 : NVVM::MMATypes::f16;
  auto op = NVVM::MmaOp::create(
      b, loc, type, a, bFrag, c, ArrayRef<int64_t>{16, 8, 16}, std::nullopt,
      std::nullopt, std::array<NVVM::MMATypes, 2>{ptx, ptx},
      std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                     NVVM::MMALayout::col});
  SmallVector<Value> out;
  for (int64_t k = 0; k < 4; ++k)
    out.push_back(LLVM::ExtractValueOp::create(b, loc, op, k));
  return out;
}

SmallVector<Value> KernelBuilder::asmFloats(StringRef text, int64_t count,
                                            ValueRange inputs,
                                            StringRef inputConstraints,
                                            ValueRange tied) {
  std::string constraints;
  for (int64_t i = 0; i < count; ++i)
    constraints += (i ? ",=f" : "=f");
  constraints += inputConstraints;
  for (size_t i = 0; i < tied.size(); ++i)
    constraints += "," + std::to_string(i);
  SmallVector<Value> operands(inputs);
  llvm::append_range(operands, tied);
  SmallVector<Type> types(count, f32);
  ValueRange results =
      inlineAsm(b, loc, types, operands, text, constraints, true);
  if (count == 1)
    return {results[0]};
  SmallVector<Value> out;
  for (int64_t i = 0; i < count; ++i)
    out.push_back(LLVM::ExtractValueOp::create(b, loc, results[0], i));
  return out;
}

/// The text of `wgmma.mma_async` m64nNk16 with f32 accumulators $0..$(N/2 -
/// 1), then `operands` (A's registers or descriptor, B's descriptor);
/// `immediates` are the scale and transpose flags after scale-d.
static std::string wgmmaText(Type elem, int64_t n, bool accumulate,
                             StringRef operands, StringRef immediates) {
  std::string text;
  llvm::raw_string_ostream os(text);
  // scale-d is a predicate: 1 adds the product to the accumulators (tied
  // inputs), 0 overwrites them.
  os << "{\n.reg .pred p;\nsetp.ne.b32 p, " << (accumulate ? 1 : 0)
     << ", 0;\nwgmma.mma_async.sync.aligned.m64n" << n << "k16.f32."
     << (isa<BFloat16Type>(elem) ? "bf16.bf16" : "f16.f16") << " {";
  for (int64_t i = 0; i < n / 2; ++i)
    os << (i ? ", " : "") << "$" << i;
  os << "}, " << operands << ", p, " << immediates << ";\n}";
  return text;
}

SmallVector<Value> KernelBuilder::wgmma(int64_t n, ValueRange acc, ValueRange a,
                                        Value desc, bool transposeB) {
  int64_t count = n / 2;
  std::string operands =
      llvm::formatv("{{${0}, ${1}, ${2}, ${3}}, ${4}", count, count + 1,
                    count + 2, count + 3, count + 4);
  std::string text = wgmmaText(elem, n, !acc.empty(), operands,
                               transposeB ? "1, 1, 1" : "1, 1, 0");
  SmallVector<Value> inputs;
  for (Value reg : a)
    inputs.push_back(isa<VectorType>(reg.getType())
                         ? LLVM::BitcastOp::create(b, loc, i32, reg)
                         : reg);
  inputs.push_back(desc);
  return asmFloats(text, count, inputs, ",r,r,r,r,l", acc);
}

SmallVector<Value> KernelBuilder::wgmmaShared(int64_t n, ValueRange acc,
                                              Value descA, Value descB,
                                              bool transposeB) {
  int64_t count = n / 2;
  std::string operands = llvm::formatv("${0}, ${1}", count, count + 1);
  std::string text = wgmmaText(elem, n, !acc.empty(), operands,
                               transposeB ? "1, 1, 0, 1" : "1, 1, 0, 0");
  return asmFloats(text, count, {descA, descB}, ",l,l", acc);
}

SmallVector<Value> KernelBuilder::wgmmaCommitAndWait(ValueRange acc) {
  asmStatement("wgmma.commit_group.sync.aligned;");
  return asmFloats("wgmma.wait_group.sync.aligned 0;", acc.size(), {}, "", acc);
}

void KernelBuilder::asmStatement(StringRef text) {
  inlineAsm(b, loc, {}, {}, text, "", /*sideEffects=*/true);
}

ValueRange KernelBuilder::asmCall(TypeRange results, ValueRange operands,
                                  StringRef text, StringRef constraints) {
  return inlineAsm(b, loc, results, operands, text, constraints,
                   /*sideEffects=*/true);
}

Value KernelBuilder::sharedAddress(Value buffer) {
  return arith::IndexCastOp::create(b, loc, b.getI64Type(),
                                    sharedPointer(buffer));
}

Value KernelBuilder::wgmmaDescriptor(Value address, int64_t leading,
                                     int64_t stride, bool swizzle128) {
  Type i64 = b.getI64Type();
  if (address.getType().isIndex())
    address = arith::IndexCastOp::create(b, loc, i64, address);
  auto c = [&](int64_t v) {
    return arith::ConstantIntOp::create(b, loc, i64, v).getResult();
  };
  // Bits 0-13: address / 16 (18 bits of shared memory); 16-29: the
  // leading byte offset / 16; 32-45: the stride byte offset / 16; 49-51:
  // the base offset, 0 (atoms 1024-byte aligned); 62-63: the layout, 0 for
  // none, 1 for 128-byte swizzling.
  Value start = arith::AndIOp::create(
      b, loc, arith::ShRUIOp::create(b, loc, address, c(4)), c(0x3FFF));
  uint64_t layout = swizzle128 ? uint64_t(1) << 62 : 0;
  return arith::OrIOp::create(
      b, loc, start,
      c(int64_t(((uint64_t(leading) >> 4) << 16) |
                ((uint64_t(stride) >> 4) << 32) | layout)));
}

Value KernelBuilder::wgmmaDescriptorAt(Value desc, int64_t bytes) {
  assert(bytes % 16 == 0 && bytes >= 0 && "descriptor offset");
  Type i64 = b.getI64Type();
  // The high word folds to the strides and layout of wgmmaDescriptor()
  // (its start field is masked to 14 bits); the words are joined by a
  // mov.b64 that LLVM cannot see into, or it would make the sum one 64-bit
  // addition again, which ptxas does not split.
  Value low = arith::TruncIOp::create(b, loc, i32, desc);
  Value high = arith::TruncIOp::create(
      b, loc, i32,
      arith::ShRUIOp::create(b, loc, desc,
                             arith::ConstantIntOp::create(b, loc, i64, 32)));
  if (bytes)
    low = arith::AddIOp::create(b, loc, low, i32Constant(bytes / 16));
  return inlineAsm(b, loc, {i64}, {low, high}, "mov.b64 $0, {$1, $2};",
                   "=l,r,r", /*sideEffects=*/false)[0];
}

KernelBuilder::View KernelBuilder::view(Value memref) {
  auto meta = memref::ExtractStridedMetadataOp::create(b, loc, memref);
  View v;
  v.offset = meta.getOffset();
  v.strides.assign(meta.getStrides().begin(), meta.getStrides().end());
  Value extent = add(v.offset, mul(meta.getSizes()[0], v.strides[0]));
  auto flatType = MemRefType::get({ShapedType::kDynamic}, elem);
  v.flat = memref::ReinterpretCastOp::create(
      b, loc, flatType, meta.getBaseBuffer(), OpFoldResult(b.getIndexAttr(0)),
      ArrayRef<OpFoldResult>{extent},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
  Value fast = equal(v.strides.back(), constant(1));
  SmallVector<Value> multiples{v.offset};
  multiples.append(v.strides.begin(), v.strides.end() - 1);
  for (Value x : multiples)
    fast = both(fast, equal(rem(x, kChunk), constant(0)));
  v.fast = fast;
  return v;
}

Value KernelBuilder::at(const View &v, ValueRange indices) {
  Value i = v.offset;
  for (auto [index, stride] : llvm::zip_equal(indices, v.strides))
    i = add(i, mul(index, stride));
  return i;
}

void KernelBuilder::copyChunk(const View &src, ValueRange indices,
                              ValueRange clamped, Value valid, Value dst,
                              ValueRange dstIndices) {
  auto fast = scf::IfOp::create(b, loc, src.fast, true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(fast.thenBlock());
  // The source stays in bounds; invalid chunks copy 0 bytes and zero-fill.
  Value count = select(valid, constant(kChunk), constant(0));
  nvgpu::DeviceAsyncCopyOp::create(b, loc, dst, dstIndices, src.flat,
                                   ValueRange{at(src, clamped)},
                                   b.getIndexAttr(kChunk), count,
                                   b.getUnitAttr());
  b.setInsertionPointToStart(fast.elseBlock());
  auto chunk = VectorType::get({kChunk}, elem);
  auto load = scf::IfOp::create(b, loc, TypeRange{chunk}, valid, true);
  b.setInsertionPointToStart(load.thenBlock());
  SmallVector<Value> parts;
  SmallVector<Value> element(indices);
  Value col = element.back();
  for (int64_t e = 0; e < kChunk; ++e) {
    element.back() = add(col, constant(e));
    parts.push_back(
        memref::LoadOp::create(b, loc, src.flat, ValueRange{at(src, element)}));
  }
  scf::YieldOp::create(
      b, loc, vector::FromElementsOp::create(b, loc, chunk, parts).getResult());
  b.setInsertionPointToStart(load.elseBlock());
  Value zero = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(chunk, b.getFloatAttr(elem, 0.0)));
  scf::YieldOp::create(b, loc, zero);
  b.setInsertionPointAfter(load);
  auto st = vector::StoreOp::create(b, loc, load.getResult(0), dst, dstIndices);
  st.setAlignment(2 * kChunk);
}

SmallVector<Value> KernelBuilder::loop(
    Value lo, Value hi, Value step, ValueRange init,
    llvm::function_ref<SmallVector<Value>(Value, ValueRange)> body) {
  auto forOp = scf::ForOp::create(b, loc, lo, hi, step, init);
  // Without iteration values the loop comes with its yield.
  if (init.empty())
    forOp.getBody()->getTerminator()->erase();
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(forOp.getBody());
  scf::YieldOp::create(
      b, loc, body(forOp.getInductionVar(), forOp.getRegionIterArgs()));
  return SmallVector<Value>(forOp.getResults());
}

void KernelBuilder::when(Value cond, llvm::function_ref<void()> body) {
  auto ifOp = scf::IfOp::create(b, loc, cond, false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(ifOp.thenBlock());
  body();
}

void KernelBuilder::launch(ModuleOp module, StringRef name, StringRef kernel,
                           ArrayRef<Value> grid, int64_t threads,
                           int64_t sharedBytes, ValueRange operands) {
  std::string callee = (name + "_" + kernel + "_launch").str();
  SmallVector<Value> args(grid);
  llvm::append_range(args, operands);
  if (!module.lookupSymbol(callee)) {
    OpBuilder top = OpBuilder::atBlockEnd(module.getBody());
    auto decl =
        func::FuncOp::create(top, loc, callee,
                             top.getFunctionType(ValueRange(args).getTypes(),
                                                 {}));
    decl.setPrivate();
    decl->setAttr(kLaunchAttr,
                  SymbolRefAttr::get(top.getStringAttr(name),
                                     {FlatSymbolRefAttr::get(
                                         top.getStringAttr(kernel))}));
    decl->setAttr(kLaunchThreadsAttr, top.getIndexAttr(threads));
    if (sharedBytes)
      decl->setAttr(kLaunchSharedAttr, top.getIndexAttr(sharedBytes));
  }
  func::CallOp::create(b, loc, callee, TypeRange(), args);
}
