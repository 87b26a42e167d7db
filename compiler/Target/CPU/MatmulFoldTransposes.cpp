//===- MatmulFoldTransposes.cpp - Transposes as GEMM strides ----*- C++ -*-===//
//
// This file implements loom-cpu-matmul-fold-transposes: a transpose that
// only feeds a runtime GEMM call, or only moves its result into place,
// becomes a strided view that the GEMM reads or writes directly. The
// runtime's GEMMs (abi.h) take any row and batch strides, so a per-head
// product over [B, S, H, D] activations needs no [H, B * S, D] copy:
//
//   linalg.transpose ins(%x : [B, S, H, D]) outs(%t : [H, B, S, D]) [2, 0, 1,
//   3] %m = memref.collapse_shape %t [[0], [1, 2], [3]]      // [H, B * S, D]
//   call @loom_rt_batch_matmul_bf16(cast %m, ...)
//
// becomes a call on a view of %x with sizes [H, B * S, D] and strides
// [D, H * D, 1]. The result side is the mirror image: a product written
// into a fresh buffer that is reshaped and transposed into %y writes into
// the matching view of %y instead.
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CPU/Passes.h"

#include "loom/abi.h"
#include "mlir/IR/Dominance.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace mlir::loom::cpu {
#define GEN_PASS_DEF_CPUMATMULFOLDTRANSPOSESPASS
#include "compiler/Target/CPU/Passes.h.inc"
} // namespace mlir::loom::cpu

using namespace mlir;

namespace {

/// The buffer a memref value views: `value` with view-like ops stripped.
Value viewRoot(Value value) {
  while (auto view = value.getDefiningOp<ViewLikeOpInterface>())
    value = view.getViewSource();
  return value;
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

/// A GEMM operand that a transpose copies from or into another buffer.
/// `buffer` is a fresh allocation; `operand` (what the GEMM gets) and
/// `transposed` (what the transpose reads or writes) are `buffer` and, if
/// there is one, the result of `reshape` of it, in either order. `groups`
/// gives, for each dimension of `operand`, the dimensions of `transposed`
/// it covers, and `otherDim[i]` is the dimension of `other` that dimension
/// i of `transposed` is.
struct Fold {
  memref::AllocOp buffer;
  Operation *reshape = nullptr;
  Value operand, transposed;
  linalg::TransposeOp transpose;
  Value other;
  SmallVector<int64_t> otherDim;
  SmallVector<ReassociationIndices> groups;
};

/// Whether the dimensions of `other` that `group` covers are one
/// contiguous run, in order, so that they flatten into one stride.
bool contiguous(const Fold &fold, const ReassociationIndices &group) {
  auto type = cast<MemRefType>(fold.other.getType());
  SmallVector<int64_t> strides;
  int64_t offset;
  bool identity = type.getLayout().isIdentity();
  if (!identity && failed(type.getStridesAndOffset(strides, offset)))
    return false;
  for (size_t t = 0; t + 1 < group.size(); ++t) {
    int64_t outer = fold.otherDim[group[t]],
            inner = fold.otherDim[group[t + 1]];
    if (identity) {
      if (inner != outer + 1)
        return false;
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
/// reshape, `operandCast`, `memref.dim` with constant indices and
/// deallocations only), the layouts and the groups, which it fills in.
LogicalResult complete(Fold &fold, Operation *operandCast) {
  auto allowed = [&](Operation *user) {
    return user == fold.transpose.getOperation() || user == fold.reshape ||
           user == operandCast || isa<memref::DimOp, memref::DeallocOp>(user);
  };
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(cast<MemRefType>(fold.other.getType())
                 .getStridesAndOffset(strides, offset)))
    return failure();
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
    if (group.empty() || !contiguous(fold, group))
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

/// Gives `call`'s operand `index` the view of `other` that `fold`
/// describes, rewrites the `memref.dim` users of the buffer and its
/// reshape in terms of `other`, and erases the transpose, the reshape and
/// the buffer.
void apply(func::CallOp call, unsigned index, Fold &fold) {
  auto operandCast = call.getOperand(index).getDefiningOp<memref::CastOp>();
  OpBuilder b(call);
  Location loc = call.getLoc();
  auto meta = memref::ExtractStridedMetadataOp::create(b, loc, fold.other);
  SmallVector<OpFoldResult> sizes, strides;
  for (const ReassociationIndices &group : fold.groups) {
    sizes.push_back(groupSize(b, loc, fold, group));
    strides.push_back(meta.getStrides()[fold.otherDim[group.back()]]);
  }
  Value view = memref::ReinterpretCastOp::create(
      b, loc, cast<MemRefType>(operandCast.getType()), meta.getBaseBuffer(),
      OpFoldResult(meta.getOffset()), sizes, strides);
  call->setOperand(index, view);
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

struct CpuMatmulFoldTransposesPass
    : public loom::cpu::impl::CpuMatmulFoldTransposesPassBase<
          CpuMatmulFoldTransposesPass> {
  void runOnOperation() override {
    SmallVector<func::CallOp> calls;
    getOperation().walk([&](func::CallOp call) {
      StringRef callee = call.getCallee();
      if ((callee.starts_with("loom_rt_matmul_") ||
           callee.starts_with("loom_rt_batch_matmul_")) &&
          call.getNumOperands() == 4)
        calls.push_back(call);
    });
    for (func::CallOp call : calls) {
      // The result first: the inputs are then checked against where it
      // goes.
      foldResult(call);
      foldInput(call, 0);
      foldInput(call, 1);
    }
  }

  /// Operand `index` of `call`, a transposed copy of a buffer (possibly
  /// reshaped), becomes a view of that buffer.
  void foldInput(func::CallOp call, unsigned index) {
    auto operandCast = call.getOperand(index).getDefiningOp<memref::CastOp>();
    if (!operandCast || !operandCast->hasOneUse())
      return;
    Fold fold;
    fold.operand = operandCast.getSource();
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
    if (!fold.transpose || fold.transpose->getBlock() != call->getBlock() ||
        !fold.transpose->isBeforeInBlock(call))
      return;
    fold.other = fold.transpose.getInput();
    llvm::append_range(fold.otherDim, fold.transpose.getPermutation());
    if (failed(complete(fold, operandCast)))
      return;
    // The source must exist where the copy was allocated, stay unchanged
    // until the call and not be what the call writes.
    Value root = viewRoot(fold.other);
    if (!DominanceInfo().properlyDominates(fold.other, fold.buffer) ||
        viewRoot(call.getOperand(2)) == root)
      return;
    for (Operation *op = fold.transpose->getNextNode();
         op != call.getOperation(); op = op->getNextNode())
      if (!isMemoryEffectFree(op) && touches(op, root))
        return;
    apply(call, index, fold);
  }

  /// The result operand of `call`, a fresh buffer that is then (reshaped
  /// and) transposed into another buffer, becomes a view of that buffer.
  void foldResult(func::CallOp call) {
    APInt flags;
    if (!matchPattern(call.getOperand(3), m_ConstantInt(&flags)) ||
        (flags.getSExtValue() & LOOM_MATMUL_ACCUMULATE))
      return;
    auto operandCast = call.getOperand(2).getDefiningOp<memref::CastOp>();
    if (!operandCast || !operandCast->hasOneUse())
      return;
    Fold fold;
    fold.operand = operandCast.getSource();
    fold.buffer = fold.operand.getDefiningOp<memref::AllocOp>();
    if (!fold.buffer)
      return;
    FailureOr<Operation *> reshape = reshapeOf(fold.buffer);
    if (failed(reshape))
      return;
    fold.reshape = *reshape;
    fold.transposed = fold.reshape ? fold.reshape->getResult(0) : fold.operand;
    fold.transpose = onlyTranspose(fold.transposed, /*into=*/false);
    if (!fold.transpose || fold.transpose->getBlock() != call->getBlock() ||
        !call->isBeforeInBlock(fold.transpose))
      return;
    fold.other = fold.transpose.getInit();
    ArrayRef<int64_t> perm = fold.transpose.getPermutation();
    fold.otherDim.assign(perm.size(), 0);
    for (auto [i, p] : llvm::enumerate(perm))
      fold.otherDim[p] = i;
    if (failed(complete(fold, operandCast)))
      return;
    // The destination must not be read by the call, be untouched between
    // the call and the transpose, and exist where the product's buffer was
    // allocated (an allocation in the same block may move up to there).
    Value root = viewRoot(fold.other);
    if (viewRoot(call.getOperand(0)) == root ||
        viewRoot(call.getOperand(1)) == root)
      return;
    for (Operation *op = call->getNextNode();
         op != fold.transpose.getOperation(); op = op->getNextNode())
      if (touches(op, root))
        return;
    DominanceInfo dominance;
    if (!dominance.properlyDominates(fold.other, fold.buffer)) {
      auto alloc = fold.other.getDefiningOp<memref::AllocOp>();
      if (!alloc || alloc->getBlock() != fold.buffer->getBlock() ||
          !llvm::all_of(alloc->getOperands(), [&](Value v) {
            return dominance.properlyDominates(v, fold.buffer);
          }))
        return;
      alloc->moveBefore(fold.buffer);
    }
    apply(call, 2, fold);
  }
};

} // namespace
