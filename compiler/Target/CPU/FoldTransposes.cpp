//===- FoldTransposes.cpp - Transposes as strided operands ------*- C++ -*-===//
//
// This file implements loom-cpu-fold-transposes: a transpose that only
// feeds an op which takes strided operands, or only moves such an op's
// result into place, becomes a strided view that the op reads or writes
// directly. The ops are the runtime's GEMM calls (abi.h: any row and batch
// strides) and `fuse.attention` (its CPU and GPU kernels take q, k, v and
// the output through their strides). A per-head product over [B, S, H, D]
// activations needs no [H, B * S, D] copy:
//
//   linalg.transpose ins(%x : [B, S, H, D]) outs(%t : [H, B, S, D]) [2, 0, 1,
//   3] %m = memref.collapse_shape %t [[0], [1, 2], [3]]      // [H, B * S, D]
//   call @loom_rt_batch_matmul_bf16(cast %m, ...)
//
// becomes a call on a view of %x with sizes [H, B * S, D] and strides
// [D, H * D, 1]; attention's heads split by `[0, 2, 1, 3]` are read in
// place the same way. The result side is the mirror image: a result
// written into a fresh buffer that is (reshaped and) transposed into %y is
// written into the matching view of %y instead.
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CPU/Passes.h"

#include "dialects/fuse/IR/FuseOps.h"
#include "loom/abi.h"
#include "mlir/Dialect/MemRef/Utils/MemRefUtils.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/Dominance.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace mlir::loom::cpu {
#define GEN_PASS_DEF_CPUFOLDTRANSPOSESPASS
#include "compiler/Target/CPU/Passes.h.inc"
} // namespace mlir::loom::cpu

using namespace mlir;

namespace {

/// The buffer a memref value views: `value` with view-like ops stripped.
Value viewRoot(Value value) {
  return memref::skipViewLikeOps(cast<MemrefValue>(value));
}

/// Whether `op` or an op nested in it has an operand that views `root`,
/// other than `memref.dim`, which reads no elements.
bool touches(Operation *op, Value root) {
  WalkResult result = op->walk([&](Operation *nested) {
    if (isa<memref::DimOp>(nested))
      return WalkResult::advance();
    for (Value operand : nested->getOperands())
      if (isa<BaseMemRefType>(operand.getType()) && viewRoot(operand) == root)
        return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return result.wasInterrupted();
}

/// The dimensions of `full` that each dimension of `part` covers, when
/// `part` is `full` reshaped in row-major order (both contiguous) and the
/// two shapes differ by one dimension of `part` that `full` splits: equal
/// static leading and trailing sizes, the rest of `full` in the middle.
FailureOr<SmallVector<ReassociationIndices>> splitGroups(MemRefType part,
                                                         MemRefType full) {
  ArrayRef<int64_t> p = part.getShape(), f = full.getShape();
  if (p.empty() || p.size() > f.size())
    return failure();
  auto same = [](int64_t a, int64_t b) {
    return !ShapedType::isDynamic(a) && a == b;
  };
  size_t lead = 0;
  while (lead + 1 < p.size() && same(p[lead], f[lead]))
    ++lead;
  size_t trail = 0;
  while (lead + trail + 1 < p.size() &&
         same(p[p.size() - 1 - trail], f[f.size() - 1 - trail]))
    ++trail;
  if (lead + trail + 1 != p.size())
    return failure();
  SmallVector<ReassociationIndices> groups;
  for (size_t i = 0; i < lead; ++i)
    groups.push_back({int64_t(i)});
  ReassociationIndices middle;
  for (size_t i = lead; i < f.size() - trail; ++i)
    middle.push_back(i);
  groups.push_back(middle);
  for (size_t i = f.size() - trail; i < f.size(); ++i)
    groups.push_back({int64_t(i)});
  return groups;
}

/// The grouping of `full`'s dimensions into those of `part`, where `part`
/// is `reshape`'s result or source (the other side being `full`), or `full`
/// itself when `reshape` is null.
FailureOr<SmallVector<ReassociationIndices>>
reshapeGroups(Operation *reshape, Value part, Value full) {
  auto partType = cast<MemRefType>(part.getType());
  auto fullType = cast<MemRefType>(full.getType());
  if (!reshape) {
    SmallVector<ReassociationIndices> groups;
    for (int64_t i = 0; i < fullType.getRank(); ++i)
      groups.push_back({i});
    return groups;
  }
  if (!partType.getLayout().isIdentity() || !fullType.getLayout().isIdentity())
    return failure();
  if (auto collapse = dyn_cast<memref::CollapseShapeOp>(reshape);
      collapse && collapse.getSrc() == full && collapse.getResult() == part)
    return SmallVector<ReassociationIndices>(
        collapse.getReassociationIndices());
  if (auto expand = dyn_cast<memref::ExpandShapeOp>(reshape);
      expand && expand.getSrc() == part && expand.getResult() == full)
    return SmallVector<ReassociationIndices>(expand.getReassociationIndices());
  if (auto flat = dyn_cast<memref::ReshapeOp>(reshape);
      flat && ((flat.getSource() == part && flat.getResult() == full) ||
               (flat.getSource() == full && flat.getResult() == part)))
    return splitGroups(partType, fullType);
  return failure();
}

/// An operand of an op that takes strided operands (the consumer), which a
/// transpose copies from or into another buffer. `buffer` is a fresh
/// allocation; `operand` (what the consumer gets, possibly through a
/// `memref.cast`) and `transposed` (what the transpose reads or writes) are
/// `buffer` and, if there is one, the result of `reshape` of it, in either
/// order. `groups` gives, for each dimension of `operand`, the dimensions of
/// `transposed` it covers, and `otherDim[i]` is the dimension of `other`
/// that dimension i of `transposed` is.
struct Fold {
  memref::AllocOp buffer;
  Operation *reshape = nullptr;
  Value operand, transposed;
  linalg::TransposeOp transpose;
  Value other;
  SmallVector<int64_t> otherDim;
  SmallVector<ReassociationIndices> groups;
};

/// The size of dimension `d` of a memref where the IR states it: static,
/// or the SSA value that an allocation, a subview or the shape operand of
/// a `memref.reshape` gives it; null where it does not.
OpFoldResult statedSize(Value memref, int64_t d) {
  auto type = cast<MemRefType>(memref.getType());
  if (!type.isDynamicDim(d))
    return IntegerAttr::get(IndexType::get(memref.getContext()),
                            type.getDimSize(d));
  if (auto alloc = memref.getDefiningOp<memref::AllocOp>())
    return alloc.getDynamicSizes()[type.getDynamicDimIndex(d)];
  if (auto sub = memref.getDefiningOp<memref::SubViewOp>();
      sub && sub.getSourceType().getRank() == type.getRank())
    return sub.getMixedSizes()[d];
  auto reshape = memref.getDefiningOp<memref::ReshapeOp>();
  if (!reshape || !reshape.getShape().getDefiningOp<memref::AllocOp>())
    return {};
  // A shape buffer of the function's own, written once at index d before
  // the reshape, and otherwise only written at other constant indices and
  // read by reshapes.
  memref::StoreOp store;
  for (Operation *user : reshape.getShape().getUsers()) {
    if (isa<memref::ReshapeOp, memref::DeallocOp>(user))
      continue;
    auto write = dyn_cast<memref::StoreOp>(user);
    APInt index;
    if (!write || !matchPattern(write.getIndices()[0], m_ConstantInt(&index)))
      return {};
    if (index.getSExtValue() != d)
      continue;
    if (store)
      return {};
    store = write;
  }
  if (!store || store->getBlock() != reshape->getBlock() ||
      !store->isBeforeInBlock(reshape))
    return {};
  return store.getValueToStore();
}

/// Whether the dimensions of `other` (of static `strides`, which may be
/// dynamic unless its layout is the identity) that `group` covers are one
/// contiguous run, in order, so that they flatten into one stride. A
/// subview with unit strides of a buffer of identity layout has that
/// buffer's strides: its dimensions d and d + 1 are contiguous when the
/// subview takes all of d + 1, whatever the sizes.
bool contiguous(const Fold &fold, ArrayRef<int64_t> strides,
                const ReassociationIndices &group) {
  auto type = cast<MemRefType>(fold.other.getType());
  bool identity = type.getLayout().isIdentity();
  auto sub = fold.other.getDefiningOp<memref::SubViewOp>();
  bool denseSubview =
      sub && sub.getSourceType().getLayout().isIdentity() &&
      sub.getSourceType().getRank() == type.getRank() &&
      llvm::all_of(sub.getStaticStrides(), [](int64_t s) { return s == 1; });
  for (size_t t = 0; t + 1 < group.size(); ++t) {
    int64_t outer = fold.otherDim[group[t]],
            inner = fold.otherDim[group[t + 1]];
    if (identity) {
      if (inner != outer + 1)
        return false;
      continue;
    }
    if (denseSubview && inner == outer + 1) {
      OpFoldResult taken = statedSize(sub.getResult(), inner);
      OpFoldResult all = statedSize(sub.getSource(), inner);
      if (taken && all && isEqualConstantIntOrValue(taken, all))
        continue;
    }
    int64_t size = type.getDimSize(inner);
    if (ShapedType::isDynamic(strides[outer]) ||
        ShapedType::isDynamic(strides[inner]) || ShapedType::isDynamic(size) ||
        strides[outer] != size * strides[inner])
      return false;
  }
  return true;
}

/// Whether every `memref.dim` of `value` has a constant index.
bool constantDims(Value value) {
  return llvm::all_of(value.getUsers(), [](Operation *user) {
    auto dim = dyn_cast<memref::DimOp>(user);
    return !dim || dim.getConstantIndex().has_value();
  });
}

/// Checks the users of the buffer and its reshape (the transpose, the
/// reshape, `user`, the op that takes the operand (or its cast),
/// `memref.dim` with constant indices and deallocations only), the layouts
/// and the groups, which it fills in.
LogicalResult complete(Fold &fold, Operation *user) {
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(cast<MemRefType>(fold.other.getType())
                 .getStridesAndOffset(strides, offset)))
    return failure();
  auto allowed = [&](Operation *op) {
    return op == fold.transpose.getOperation() || op == fold.reshape ||
           op == user || isa<memref::DimOp, memref::DeallocOp>(op);
  };
  for (Value v : {fold.operand, fold.transposed})
    if (!cast<MemRefType>(v.getType()).getLayout().isIdentity() ||
        !llvm::all_of(v.getUsers(), allowed) || !constantDims(v))
      return failure();
  FailureOr<SmallVector<ReassociationIndices>> groups =
      reshapeGroups(fold.reshape, fold.operand, fold.transposed);
  if (failed(groups))
    return failure();
  fold.groups = std::move(*groups);
  for (const ReassociationIndices &group : fold.groups)
    if (group.empty() || !contiguous(fold, strides, group))
      return failure();
  return success();
}

/// The size of the operand's dimension `group`, from `other`'s sizes.
Value groupSize(OpBuilder &b, Location loc, const Fold &fold,
                const ReassociationIndices &group) {
  Value size;
  for (int64_t d : group) {
    Value dim = memref::DimOp::create(b, loc, fold.other, fold.otherDim[d]);
    size = size ? arith::MulIOp::create(b, loc, size, dim).getResult() : dim;
  }
  return size;
}

/// An op that takes strided operands: the operands it only reads, those it
/// overwrites whole without reading them, and all that it writes.
struct Consumer {
  Operation *op;
  SmallVector<unsigned> reads, overwrites, writes;
};

/// The runtime's GEMM calls: A and B are read and C is written, overwritten
/// unless the product accumulates (or its flags are not known). Their
/// operands are `memref.cast`s to fully dynamic strided memrefs.
std::optional<Consumer> gemmConsumer(func::CallOp call) {
  StringRef callee = call.getCallee();
  if ((!callee.starts_with("loom_rt_matmul_") &&
       !callee.starts_with("loom_rt_batch_matmul_")) ||
      call.getNumOperands() != 4)
    return std::nullopt;
  Consumer c{call, {0, 1}, {}, {2}};
  APInt flags;
  if (matchPattern(call.getOperand(3), m_ConstantInt(&flags)) &&
      !(flags.getSExtValue() & LOOM_MATMUL_ACCUMULATE))
    c.overwrites.push_back(2);
  return c;
}

/// `fuse.attention` on memrefs: q, k, v and the captures are read, the
/// output and the log-sum-exp overwritten (fully masked rows too).
Consumer attentionConsumer(fuse::AttentionOp op) {
  Consumer c{op, {}, {}, {}};
  for (OpOperand &operand : op->getOpOperands()) {
    unsigned n = operand.getOperandNumber();
    if (&operand == &op.getOutInitMutable() ||
        &operand == &op.getLseInitMutable()) {
      c.overwrites.push_back(n);
      c.writes.push_back(n);
    } else {
      c.reads.push_back(n);
    }
  }
  return c;
}

/// The memref behind operand `index` of the consumer, past a `memref.cast`
/// that only it uses, and that cast (or null); none when that memref is
/// also another operand of the consumer.
std::optional<std::pair<Value, memref::CastOp>>
foldableOperand(const Consumer &c, unsigned index) {
  Value v = c.op->getOperand(index);
  auto operandCast = v.getDefiningOp<memref::CastOp>();
  if (operandCast && operandCast->hasOneUse())
    v = operandCast.getSource();
  else
    operandCast = {};
  if (!isa<MemRefType>(v.getType()))
    return std::nullopt;
  for (OpOperand &operand : c.op->getOpOperands())
    if (operand.get() == v && operand.getOperandNumber() != index)
      return std::nullopt;
  return std::make_pair(v, operandCast);
}

/// Gives the consumer's operand `index` the view of `other` that `fold`
/// describes, rewrites the `memref.dim` users of the buffer and its
/// reshape in terms of `other`, and erases the transpose, the reshape and
/// the buffer. The view has the cast's type, or the operand's shape with a
/// dynamic strided layout.
void apply(const Consumer &c, unsigned index, memref::CastOp operandCast,
           Fold &fold) {
  OpBuilder b(c.op);
  Location loc = c.op->getLoc();
  MemRefType type;
  if (operandCast) {
    type = cast<MemRefType>(operandCast.getType());
  } else {
    auto operandType = cast<MemRefType>(fold.operand.getType());
    SmallVector<int64_t> dynamic(operandType.getRank(), ShapedType::kDynamic);
    type = MemRefType::get(
        operandType.getShape(), operandType.getElementType(),
        StridedLayoutAttr::get(b.getContext(), ShapedType::kDynamic, dynamic),
        operandType.getMemorySpace());
  }
  auto meta = memref::ExtractStridedMetadataOp::create(b, loc, fold.other);
  SmallVector<OpFoldResult> sizes, strides;
  for (auto [i, group] : llvm::enumerate(fold.groups)) {
    if (!type.isDynamicDim(i))
      sizes.push_back(b.getIndexAttr(type.getDimSize(i)));
    else
      sizes.push_back(groupSize(b, loc, fold, group));
    strides.push_back(meta.getStrides()[fold.otherDim[group.back()]]);
  }
  Value view = memref::ReinterpretCastOp::create(
      b, loc, type, meta.getBaseBuffer(), OpFoldResult(meta.getOffset()), sizes,
      strides);
  c.op->setOperand(index, view);
  if (operandCast)
    operandCast->erase();

  for (bool isOperand : {true, false}) {
    Value v = isOperand ? fold.operand : fold.transposed;
    if (!isOperand && v == fold.operand)
      break;
    for (Operation *user : llvm::make_early_inc_range(v.getUsers())) {
      auto dim = dyn_cast<memref::DimOp>(user);
      if (!dim)
        continue;
      int64_t i = *dim.getConstantIndex();
      b.setInsertionPoint(dim);
      Value size = isOperand
                       ? groupSize(b, dim.getLoc(), fold, fold.groups[i])
                       : memref::DimOp::create(b, dim.getLoc(), fold.other,
                                               fold.otherDim[i])
                             .getResult();
      dim.replaceAllUsesWith(size);
      dim.erase();
    }
  }
  fold.transpose->erase();
  if (fold.reshape)
    fold.reshape->erase();
  for (Operation *user : llvm::make_early_inc_range(fold.buffer->getUsers()))
    user->erase(); // deallocations
  fold.buffer->erase();
}

/// The reshape of `buffer` among its users, if exactly one; failure if
/// there are several.
FailureOr<Operation *> reshapeOf(memref::AllocOp buffer) {
  Operation *reshape = nullptr;
  for (Operation *user : buffer->getUsers()) {
    if (!isa<memref::CollapseShapeOp, memref::ExpandShapeOp, memref::ReshapeOp>(
            user) ||
        user->getOperand(0) != buffer.getResult())
      continue;
    if (reshape)
      return failure();
    reshape = user;
  }
  return reshape;
}

/// The one `linalg.transpose` that writes `value` (`into`) or reads it;
/// null if there is none or more than one.
linalg::TransposeOp onlyTranspose(Value value, bool into) {
  linalg::TransposeOp found;
  for (Operation *user : value.getUsers()) {
    auto t = dyn_cast<linalg::TransposeOp>(user);
    if (!t || (into ? t.getInit() : t.getInput()) != value)
      continue;
    if (found)
      return {};
    found = t;
  }
  return found;
}

struct CpuFoldTransposesPass
    : public loom::cpu::impl::CpuFoldTransposesPassBase<CpuFoldTransposesPass> {
  void runOnOperation() override {
    // Folds move allocations within their block only, which keeps the
    // dominance between blocks.
    DominanceInfo info(getOperation());
    dominance = &info;
    SmallVector<Consumer> consumers;
    getOperation().walk([&](Operation *op) {
      if (auto call = dyn_cast<func::CallOp>(op)) {
        if (std::optional<Consumer> c = gemmConsumer(call))
          consumers.push_back(*c);
      } else if (auto attention = dyn_cast<fuse::AttentionOp>(op)) {
        if (attention.hasPureBufferSemantics())
          consumers.push_back(attentionConsumer(attention));
      }
    });
    for (const Consumer &c : consumers) {
      // The results first: the inputs are then checked against where they
      // go.
      for (unsigned index : c.overwrites)
        foldResult(c, index);
      for (unsigned index : c.reads)
        foldInput(c, index);
    }
  }

  DominanceInfo *dominance = nullptr;

  /// Operand `index` of the consumer, a transposed copy of a buffer
  /// (possibly reshaped), becomes a view of that buffer.
  void foldInput(const Consumer &c, unsigned index) {
    auto found = foldableOperand(c, index);
    if (!found)
      return;
    auto [value, operandCast] = *found;
    Fold fold;
    fold.operand = value;
    if (auto alloc = fold.operand.getDefiningOp<memref::AllocOp>()) {
      fold.buffer = alloc;
    } else if (Operation *reshape = fold.operand.getDefiningOp();
               isa_and_nonnull<memref::CollapseShapeOp, memref::ReshapeOp>(
                   reshape)) {
      fold.reshape = reshape;
      fold.buffer = reshape->getOperand(0).getDefiningOp<memref::AllocOp>();
    }
    if (!fold.buffer)
      return;
    fold.transposed = fold.buffer.getResult();
    fold.transpose = onlyTranspose(fold.transposed, /*into=*/true);
    if (!fold.transpose || fold.transpose->getBlock() != c.op->getBlock() ||
        !fold.transpose->isBeforeInBlock(c.op))
      return;
    fold.other = fold.transpose.getInput();
    llvm::append_range(fold.otherDim, fold.transpose.getPermutation());
    Operation *user = operandCast ? operandCast.getOperation() : c.op;
    if (failed(complete(fold, user)))
      return;
    // The source must exist where the copy was allocated, stay unchanged
    // until the consumer and not be what the consumer writes.
    Value root = viewRoot(fold.other);
    if (!dominance->properlyDominates(fold.other, fold.buffer))
      return;
    for (unsigned w : c.writes)
      if (viewRoot(c.op->getOperand(w)) == root)
        return;
    for (Operation *op = fold.transpose->getNextNode(); op != c.op;
         op = op->getNextNode())
      if (!isMemoryEffectFree(op) && touches(op, root))
        return;
    apply(c, index, operandCast, fold);
  }

  /// Operand `index` of the consumer, a fresh buffer that it overwrites and
  /// that is then (reshaped and) transposed into another buffer, becomes a
  /// view of that buffer.
  void foldResult(const Consumer &c, unsigned index) {
    auto found = foldableOperand(c, index);
    if (!found)
      return;
    auto [value, operandCast] = *found;
    Fold fold;
    fold.operand = value;
    fold.buffer = fold.operand.getDefiningOp<memref::AllocOp>();
    if (!fold.buffer)
      return;
    FailureOr<Operation *> reshape = reshapeOf(fold.buffer);
    if (failed(reshape))
      return;
    fold.reshape = *reshape;
    fold.transposed = fold.reshape ? fold.reshape->getResult(0) : fold.operand;
    fold.transpose = onlyTranspose(fold.transposed, /*into=*/false);
    if (!fold.transpose || fold.transpose->getBlock() != c.op->getBlock() ||
        !c.op->isBeforeInBlock(fold.transpose))
      return;
    fold.other = fold.transpose.getInit();
    ArrayRef<int64_t> perm = fold.transpose.getPermutation();
    fold.otherDim.assign(perm.size(), 0);
    for (auto [i, p] : llvm::enumerate(perm))
      fold.otherDim[p] = i;
    Operation *user = operandCast ? operandCast.getOperation() : c.op;
    if (failed(complete(fold, user)))
      return;
    // The destination must not be another operand of the consumer, be
    // untouched between the consumer and the transpose, and exist where the
    // consumer's buffer was allocated (an allocation in the same block may
    // move up to there).
    Value root = viewRoot(fold.other);
    for (OpOperand &operand : c.op->getOpOperands())
      if (operand.getOperandNumber() != index &&
          isa<BaseMemRefType>(operand.get().getType()) &&
          viewRoot(operand.get()) == root)
        return;
    for (Operation *op = c.op->getNextNode();
         op != fold.transpose.getOperation(); op = op->getNextNode())
      if (touches(op, root))
        return;
    if (!dominance->properlyDominates(fold.other, fold.buffer)) {
      auto alloc = fold.other.getDefiningOp<memref::AllocOp>();
      if (!alloc || alloc->getBlock() != fold.buffer->getBlock() ||
          !llvm::all_of(alloc->getOperands(), [&](Value v) {
            return dominance->properlyDominates(v, fold.buffer);
          }))
        return;
      alloc->moveBefore(fold.buffer);
    }
    apply(c, index, operandCast, fold);
  }
};

} // namespace
