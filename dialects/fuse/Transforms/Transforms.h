//===- Transforms.h - Reusable rewrites of the fuse passes ------*- C++ -*-===//
//
// This file declares the patterns and helpers of the graph passes that form
// `fuse` ops, for use by other passes and pipelines.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DIALECTS_FUSE_TRANSFORMS_TRANSFORMS_H
#define LOOM_DIALECTS_FUSE_TRANSFORMS_TRANSFORMS_H

#include "dialects/loom/IR/LoomOps.h"
#include "mlir/IR/Dominance.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::fuse {

/// Builds the scalar code of `loom.csr_contains`: whether row `row` of the
/// CSR adjacency (`indptr`, `indices`: rank-1 integer tensors) lists column
/// `column` (both `index`). A binary search over the row's sorted columns
/// with `scf.while`, `tensor.extract` and `arith`; a row outside `[0, rows)`
/// or an empty row gives false, and positions are clamped to `indices`.
/// Returns the `i1` result.
Value buildCsrContains(OpBuilder &b, Location loc, Value indptr, Value indices,
                       Value row, Value column);

/// Replaces every `loom.csr_contains` nested in `region` by the code of
/// buildCsrContains.
void expandCsrContains(RewriterBase &rewriter, Region &region);

/// Adds the patterns of `loom-fuse-attention`: `loom.attention` becomes
/// `fuse.attention`, and the composite `softmax(q . k^T * s + m) . v`
/// written with `loom` ops becomes `fuse.attention` with a mask or score
/// region.
/// With `gpuKernelOnly`, only what the CUDA attention kernel compiles is
/// fused (see gpuAttentionUnsupported).
void populateAttentionFusePatterns(RewritePatternSet &patterns,
                                   bool gpuKernelOnly = false);

/// Why the CUDA attention kernel (loom-cuda-attention) cannot compile an
/// attention on `element` with head dims `d` (q, k) and `dv` (v); empty
/// when it can.
std::string gpuAttentionUnsupported(Type element, int64_t d, int64_t dv);

/// Rewrites every f32 `loom.token_logprob` and `loom.token_logprob_grad`
/// with an lm-head `weight` nested in `scope` into `fuse.token_logprob` and
/// `fuse.token_logprob_grad` on tokens flattened to `[N]` (ids become i64).
/// A backward takes the log-sum-exp of a forward of `scope` with the same
/// operands and temperature that dominates it, or else computes it with a
/// forward kernel of its own.
LogicalResult fuseTokenLogprobs(RewriterBase &rewriter, Operation *scope);

/// The `loom.add` that is the only use of `op`'s weight gradient and adds it
/// to a value of the gradient's type that dominates `op` (a gradient summed
/// into a state, `acc = acc + grad(...)`), or null. Both the fused kernels
/// and the unfused lowering then sum the gradient into that value.
loom::AddOp accumulatingAdd(loom::TokenLogprobGradOp op,
                            DominanceInfo &dominance);

} // namespace mlir::fuse

#endif // LOOM_DIALECTS_FUSE_TRANSFORMS_TRANSFORMS_H
