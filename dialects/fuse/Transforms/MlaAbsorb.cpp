//===- MlaAbsorb.cpp - MLA with absorbed up-projections ---------*- C++ -*-===//
//
// This file implements loom-mla-absorb (see Passes.td): DeepSeek-V3's
// "absorb" attention. Per K/V cache pair it first decides, over the whole
// module, whether the caches may change layout, then rewrites the state
// signatures and every `loom.mla_attention` that uses them.
//
//===----------------------------------------------------------------------===//

#include "dialects/fuse/IR/FuseOps.h"
#include "dialects/fuse/Transforms/Passes.h"
#include "dialects/loom/IR/LoomBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"

namespace mlir::fuse {
#define GEN_PASS_DEF_MLAABSORBPASS
#include "dialects/fuse/Transforms/Passes.h.inc"
} // namespace mlir::fuse

using namespace mlir;
using loom::MlaAttentionOp;

namespace {

StringRef stringAttr(DictionaryAttr attrs, StringRef name) {
  if (!attrs)
    return {};
  auto value = dyn_cast_or_null<StringAttr>(attrs.get(name));
  return value ? value.getValue() : StringRef();
}

/// The session-wide binding of a function's state argument, or "".
StringRef stateBinding(func::FuncOp func, unsigned arg) {
  DictionaryAttr attrs = func.getArgAttrDict(arg);
  if (stringAttr(attrs, "loom.role") != "state")
    return {};
  return stringAttr(attrs, "loom.binding");
}

StringRef resultStateBinding(func::FuncOp func, unsigned result) {
  DictionaryAttr attrs = func.getResultAttrDict(result);
  if (stringAttr(attrs, "loom.role") != "state")
    return {};
  return stringAttr(attrs, "loom.binding");
}

/// The binding of `value` when it is a state argument of its function.
StringRef stateBindingOf(Value value) {
  auto arg = dyn_cast<BlockArgument>(value);
  if (!arg)
    return {};
  auto func = dyn_cast<func::FuncOp>(arg.getOwner()->getParentOp());
  if (!func || arg.getOwner() != &func.getBody().front())
    return {};
  return stateBinding(func, arg.getArgNumber());
}

std::pair<std::string, std::string> absorbedNames(StringRef kBinding) {
  if (kBinding.ends_with("k_cache")) {
    std::string prefix = kBinding.drop_back(strlen("k_cache")).str();
    return {prefix + "kv_cache", prefix + "pe_cache"};
  }
  return {kBinding.str() + ".latent", kBinding.str() + ".pe"};
}

/// Writes the absorbed computation in place of `op`, whose cache operands
/// already have the new state types: the k_cache operand is the latent
/// cache, the v_cache operand the rope-key cache.
LogicalResult rewrite(MlaAttentionOp op) {
  Value kvCache = op.getKCache(), peCache = op.getVCache();
  OpBuilder builder(op);
  Location loc = op.getLoc();
  loom::LoomBuilder s(builder, loc);
  auto qType = cast<RankedTensorType>(op.getQNope().getType());
  auto kvType = cast<RankedTensorType>(op.getKv().getType());
  auto wType = cast<RankedTensorType>(op.getWkvB().getType());
  int64_t heads = qType.getDimSize(2), nope = qType.getDimSize(3);
  int64_t rank = kvType.getDimSize(2);
  int64_t value = wType.getDimSize(0) / heads - nope;
  Type element = qType.getElementType();

  // W_UK [H, Dn, C] and W_UV [H, Dv, C] from wkv_b [H * (Dn + Dv), C].
  Value w = s.reshape(op.getWkvB(), {heads, nope + value, rank});
  Value wUK = s.slice(w, 1, 0, nope);
  Value wUV = s.slice(w, 1, nope, nope + value);

  // Per-head products as one batched matmul over heads: [H, B * S, *].
  Value batch = tensor::DimOp::create(builder, loc, op.getQNope(), 0);
  Value tokens = tensor::DimOp::create(builder, loc, op.getQNope(), 1);
  SmallVector<ReassociationIndices> mergeRows = {{0}, {1, 2}, {3}};
  auto perHead = [&](Value x) -> Value { // [B, S, H, D] -> [H, B * S, D]
    Value t = s.transpose(x, {2, 0, 1, 3});
    if (!t)
      return {};
    return tensor::CollapseShapeOp::create(builder, loc, t, mergeRows);
  };
  auto perToken = [&](Value x) -> Value { // [H, B * S, D] -> [B, S, H, D]
    if (!x)
      return {};
    auto type = cast<RankedTensorType>(x.getType());
    auto expanded = RankedTensorType::get(
        {heads, ShapedType::kDynamic, ShapedType::kDynamic, type.getDimSize(2)},
        element);
    // tensor.reshape with a shape operand, not expand_shape: MLIR 22's
    // expand-strided-metadata crashes on an expand_shape group with two
    // dynamic sizes.
    Value shape = tensor::FromElementsOp::create(
        builder, loc,
        ValueRange{arith::ConstantIndexOp::create(builder, loc, heads), batch,
                   tokens,
                   arith::ConstantIndexOp::create(builder, loc,
                                                  type.getDimSize(2))});
    Value e = tensor::ReshapeOp::create(builder, loc, expanded, x, shape);
    return s.transpose(e, {1, 2, 0, 3});
  };

  Value qLat = perToken(s.op("loom.matmul", {perHead(op.getQNope()), wUK}));
  Value newKv = s.op("loom.dynamic_update_slice",
                     {kvCache, op.getKv(), op.getStartPos()},
                     {s.i64("axis", 1)});
  Value newPe = s.op("loom.dynamic_update_slice",
                     {peCache, op.getKPe(), op.getStartPos()},
                     {s.i64("axis", 1)});
  if (s.failed)
    return failure();

  Value pos = tensor::ExtractOp::create(builder, loc, op.getStartPos(),
                                        ValueRange{});
  if (!pos.getType().isInteger(64))
    pos = arith::ExtSIOp::create(builder, loc, builder.getI64Type(), pos);
  auto latType = cast<RankedTensorType>(qLat.getType());
  Value init = tensor::EmptyOp::create(builder, loc, latType.getShape(),
                                       element, ValueRange{batch, tokens});
  Value oLat = fuse::MlaDecodeOp::create(builder, loc, latType, qLat,
                                         op.getQPe(), newKv, newPe, pos, init,
                                         op.getScaleAttr())
                   .getResult();
  Value out = perToken(s.op("loom.matmul", {perHead(oLat), wUV},
                            {s.attr("transpose_b", builder.getBoolAttr(true))}));
  if (s.failed || !out)
    return failure();
  op.replaceAllUsesWith(ValueRange{out, newKv, newPe});
  op.erase();
  return success();
}

struct MlaAbsorbPass : public fuse::impl::MlaAbsorbPassBase<MlaAbsorbPass> {
  using MlaAbsorbPassBase::MlaAbsorbPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();

    // Candidate K/V state pairs, by binding; a binding seen with two
    // different partners, or in an op that cannot be absorbed, is out.
    llvm::StringMap<std::string> partner;
    llvm::StringSet<> rejected;
    module.walk([&](MlaAttentionOp op) {
      StringRef k = stateBindingOf(op.getKCache());
      StringRef v = stateBindingOf(op.getVCache());
      if (k.empty() || v.empty())
        return;
      if (!absorbable(op, lowPrecision) || k == v) {
        rejected.insert(k);
        rejected.insert(v);
        return;
      }
      for (auto [a, b] : {std::pair(k, v), std::pair(v, k)}) {
        auto [it, inserted] = partner.try_emplace(a, b.str());
        if (!inserted && it->second != b) {
          rejected.insert(a);
          rejected.insert(b);
        }
      }
    });
    auto accepted = [&](StringRef binding) {
      return partner.count(binding) && !rejected.count(binding) &&
             !rejected.count(partner[binding]);
    };

    // Every function with one of the states must use it only through one
    // absorbable op, or pass it through unchanged.
    for (auto func : module.getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      for (unsigned a = 0; a < func.getNumArguments(); ++a) {
        StringRef binding = stateBinding(func, a);
        if (accepted(binding) && !usesOnlyThroughMla(func, a, binding))
          rejected.insert(binding);
      }
      for (unsigned r = 0; r < func.getNumResults(); ++r) {
        StringRef binding = resultStateBinding(func, r);
        if (accepted(binding) && !returnsOnlyMlaCache(func, r, binding))
          rejected.insert(binding);
      }
    }
    // The new names must not collide with states that exist already.
    llvm::StringSet<> existing;
    for (auto func : module.getOps<func::FuncOp>())
      for (unsigned a = 0; a < func.getNumArguments(); ++a)
        if (StringRef b = stateBinding(func, a); !b.empty())
          existing.insert(b);
    for (auto &[binding, other] : partner) {
      if (!accepted(binding))
        continue;
      auto [kvName, peName] = absorbedNames(binding);
      auto [kvName2, peName2] = absorbedNames(other);
      if (existing.count(kvName) || existing.count(peName) ||
          existing.count(kvName2) || existing.count(peName2))
        rejected.insert(binding);
    }

    // The new state of every accepted binding, taken from its ops before
    // any of them is rewritten.
    NewStates newStates;
    module.walk([&](MlaAttentionOp op) {
      StringRef k = stateBindingOf(op.getKCache());
      if (!accepted(k))
        return;
      auto cacheType = cast<RankedTensorType>(op.getKCache().getType());
      int64_t mb = cacheType.getDimSize(0), t = cacheType.getDimSize(1);
      Type element = cacheType.getElementType();
      auto kv = cast<RankedTensorType>(op.getKv().getType());
      auto kpe = cast<RankedTensorType>(op.getKPe().getType());
      auto [kvName, peName] = absorbedNames(k);
      newStates[k] = {kvName, RankedTensorType::get({mb, t, kv.getDimSize(2)},
                                                    element)};
      newStates[stateBindingOf(op.getVCache())] = {
          peName, RankedTensorType::get({mb, t, kpe.getDimSize(2)}, element)};
    });
    for (auto func : module.getOps<func::FuncOp>())
      if (!func.isExternal() && failed(rewriteFunction(func, newStates)))
        return signalPassFailure();
  }

  /// The op computes in f32 (the fused kernel's type) with static head
  /// sizes, and its new caches go nowhere but the function's return.
  static bool absorbable(MlaAttentionOp op, bool lowPrecision) {
    auto q = cast<RankedTensorType>(op.getQNope().getType());
    auto kv = cast<RankedTensorType>(op.getKv().getType());
    auto kpe = cast<RankedTensorType>(op.getKPe().getType());
    auto vc = cast<RankedTensorType>(op.getVCache().getType());
    Type element = q.getElementType();
    if (!(element.isF32() ||
          (lowPrecision && isa<Float16Type, BFloat16Type>(element))) ||
        q.isDynamicDim(2) ||
        q.isDynamicDim(3) || kv.isDynamicDim(2) || kpe.isDynamicDim(2) ||
        vc.isDynamicDim(3))
      return false;
    // The new caches go only to the return, as the new values of their own
    // states (not as outputs, whose layout the signature fixes).
    auto func = op->getParentOfType<func::FuncOp>();
    for (auto [cache, old] : {std::pair(op.getNewKCache(), op.getKCache()),
                              std::pair(op.getNewVCache(), op.getVCache())})
      for (OpOperand &use : cache.getUses())
        if (!isa<func::ReturnOp>(use.getOwner()) || !func ||
            resultStateBinding(func, use.getOperandNumber()) !=
                stateBindingOf(old))
          return false;
    return true;
  }

  /// Argument `a` (state `binding`) feeds exactly one `loom.mla_attention`
  /// as a cache, or only the return at its own state result.
  static bool usesOnlyThroughMla(func::FuncOp func, unsigned a,
                                 StringRef binding) {
    Value arg = func.getArgument(a);
    if (arg.use_empty())
      return false;
    bool passThrough = llvm::all_of(arg.getUses(), [&](OpOperand &use) {
      return isa<func::ReturnOp>(use.getOwner()) &&
             resultStateBinding(func, use.getOperandNumber()) == binding;
    });
    if (passThrough)
      return true;
    if (!arg.hasOneUse())
      return false;
    auto op = dyn_cast<MlaAttentionOp>(arg.use_begin()->getOwner());
    return op && (op.getKCache() == arg || op.getVCache() == arg) &&
           op.getKCache() != op.getVCache();
  }

  /// Result `r` (state `binding`) is the argument of the same state passed
  /// through, or the matching updated cache of an absorbable op.
  static bool returnsOnlyMlaCache(func::FuncOp func, unsigned r,
                                  StringRef binding) {
    for (Block &block : func.getBody()) {
      auto ret = dyn_cast<func::ReturnOp>(block.getTerminator());
      if (!ret)
        continue;
      Value value = ret.getOperand(r);
      if (stateBindingOf(value) == binding)
        continue;
      auto op = value.getDefiningOp<MlaAttentionOp>();
      if (!op)
        return false;
      Value cache = value == op.getNewKCache() ? op.getKCache()
                                               : op.getVCache();
      if (value != op.getNewKCache() && value != op.getNewVCache())
        return false;
      if (stateBindingOf(cache) != binding)
        return false;
    }
    return true;
  }

  using NewStates = llvm::StringMap<std::pair<std::string, RankedTensorType>>;

  static LogicalResult rewriteFunction(func::FuncOp func,
                                       NewStates &newState) {
    MLIRContext *ctx = func.getContext();
    Builder b(ctx);
    auto accepted = [&](StringRef binding) {
      return !binding.empty() && newState.count(binding);
    };
    SmallVector<MlaAttentionOp> ops;
    func.walk([&](MlaAttentionOp op) {
      if (accepted(stateBindingOf(op.getKCache())))
        ops.push_back(op);
    });
    auto retype = [&](DictionaryAttr attrs, StringRef name,
                      RankedTensorType type) {
      NamedAttrList list(attrs);
      list.set("loom.name", b.getStringAttr(name));
      list.set("loom.binding", b.getStringAttr(name));
      SmallVector<Attribute> dims;
      for (int64_t d : type.getShape())
        dims.push_back(b.getI64IntegerAttr(d));
      list.set("loom.dims", b.getArrayAttr(dims));
      return list.getDictionary(ctx);
    };
    // The cache arguments take their new types first; each op then reads
    // them as the latent and rope-key caches.
    for (unsigned a = 0; a < func.getNumArguments(); ++a) {
      StringRef binding = stateBinding(func, a);
      if (!accepted(binding))
        continue;
      auto &[name, type] = newState[binding];
      func.setArgAttrs(a, retype(func.getArgAttrDict(a), name, type));
      func.getArgument(a).setType(type);
    }
    for (MlaAttentionOp op : ops)
      if (failed(rewrite(op)))
        return failure();
    SmallVector<Type> results(func.getResultTypes());
    for (unsigned r = 0; r < func.getNumResults(); ++r) {
      StringRef binding = resultStateBinding(func, r);
      if (!accepted(binding))
        continue;
      auto &[name, type] = newState[binding];
      func.setResultAttrs(r, retype(func.getResultAttrDict(r), name, type));
      results[r] = type;
    }
    func.setFunctionType(
        FunctionType::get(ctx, func.getBody().front().getArgumentTypes(),
                          results));
    return success();
  }
};

} // namespace
