//===- AttentionOutline.h - fuse.attention to the runtime -------*- C++ -*-===//
//
// This file declares the CPU lowering of a bufferized `fuse.attention`: its
// regions compiled into the mask and score functions of abi.h's
// loom_attention_mods_t and the op replaced by the call of a launch function
// that the object emitter defines.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_COMPILER_TARGET_CPU_ATTENTIONOUTLINE_H
#define LOOM_COMPILER_TARGET_CPU_ATTENTIONOUTLINE_H

#include "dialects/fuse/IR/FuseOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::loom::cpu {

/// Prefixes of the functions the lowering creates; `N` numbers the ops of a
/// module. The launch `__loom_attention_launch_N(q, k, v, out, lse: strided
/// memrefs, scale: f32, flags: i32, captures...)` is only declared; the
/// object emitter defines it in LLVM IR.
inline constexpr llvm::StringLiteral kAttentionLaunchPrefix =
    "__loom_attention_launch_";
/// `(b, h, i, j0, n: index, out: memref<?xi8>, captures...)`.
inline constexpr llvm::StringLiteral kAttentionMaskRowPrefix =
    "__loom_attention_mask_row_";
/// `(b, h, i0, i1, j0, j1: index, captures...) -> i32`.
inline constexpr llvm::StringLiteral kAttentionMaskBlockPrefix =
    "__loom_attention_mask_block_";
/// `(b, h, i, j0, n: index, s: memref<?xf32>, captures...)`.
inline constexpr llvm::StringLiteral kAttentionScoreRowPrefix =
    "__loom_attention_score_row_";

/// Creates, at the end of `body` (a module's or a GPU module's),
/// `name(b, h, i0, i1, j0, j1: index, captures...) -> i32`: the interval
/// analysis of the mask `region` over queries [i0, i1) and keys [j0, j1),
/// which returns LOOM_ATTENTION_BLOCK_NONE, _ALL or _SOME (abi.h).
func::FuncOp buildAttentionMaskBlock(OpBuilder &b, Block *body, Location loc,
                                     StringRef name, Region &region,
                                     TypeRange captures);

/// Outlines the regions of `op` (on memrefs) into the mask_row, mask_block
/// and score_row functions of number `index` and replaces `op` with a call of
/// the launch function. Emits an error on `op` and fails when it cannot.
LogicalResult lowerAttentionToRuntime(ModuleOp module, fuse::AttentionOp op,
                                      unsigned index);

} // namespace mlir::loom::cpu

#endif // LOOM_COMPILER_TARGET_CPU_ATTENTIONOUTLINE_H
