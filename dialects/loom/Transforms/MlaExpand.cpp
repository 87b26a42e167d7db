//===- MlaExpand.cpp - MLA attention as elementary ops ----------*- C++ -*-===//
//
// This file implements loom-mla-expand: every `loom.mla_attention` becomes
// the computation of DeepSeek-V3's naive path written with elementary
// `loom` ops (up-projection of the latent, per-head K/V cache writes,
// masked softmax attention over the whole cache). It is how the naive
// cache layout is compiled, and the fallback where `loom-mla-absorb` does
// not apply.
//
//===----------------------------------------------------------------------===//

#include "dialects/loom/IR/LoomBuilder.h"
#include "dialects/loom/Transforms/Passes.h"

namespace mlir::loom {
#define GEN_PASS_DEF_MLAEXPANDPASS
#include "dialects/loom/Transforms/Passes.h.inc"
} // namespace mlir::loom

using namespace mlir;
using namespace mlir::loom;

namespace {

LogicalResult expand(MlaAttentionOp op) {
  OpBuilder builder(op);
  LoomBuilder s(builder, op.getLoc());
  auto qType = cast<RankedTensorType>(op.getQNope().getType());
  auto vCacheType = cast<RankedTensorType>(op.getVCache().getType());
  int64_t heads = qType.getDimSize(2), nope = qType.getDimSize(3);
  int64_t value = vCacheType.getDimSize(3);
  if (ShapedType::isDynamic(heads) || ShapedType::isDynamic(nope) ||
      ShapedType::isDynamic(value))
    return op.emitOpError("needs static head count and head dims to expand");
  Type element = qType.getElementType();
  Type i64 = builder.getI64Type();

  // K and V of the new tokens from the latent: [B, S, H, Dn + Dv].
  Value kvb = s.reshape(s.op("loom.linear", {op.getKv(), op.getWkvB()}),
                        {0, 0, heads, nope + value});
  Value kNope = s.slice(kvb, 3, 0, nope);
  Value v = s.slice(kvb, 3, nope, nope + value);
  Value kPe = s.op("loom.broadcast",
                   {s.reshape(op.getKPe(), {0, 0, 1, -1}), op.getQPe()});
  Value k = s.op("loom.concat", {kNope, kPe}, {s.i64("axis", 3)});
  Value keys = s.op("loom.dynamic_update_slice",
                    {op.getKCache(), k, op.getStartPos()}, {s.i64("axis", 1)});
  Value values = s.op("loom.dynamic_update_slice",
                      {op.getVCache(), v, op.getStartPos()},
                      {s.i64("axis", 1)});

  // Rows [0, B) of the caches; a symbolic B is counted at run time from
  // q_nope.
  int64_t batch = qType.getDimSize(0);
  int64_t cacheRows =
      cast<RankedTensorType>(op.getKCache().getType()).getDimSize(0);
  Value zero = s.scalar(i64, 0);
  Value rows;
  if (ShapedType::isDynamic(batch)) {
    Value one = s.slice(
        s.slice(s.slice(op.getQNope(), 1, 0, 1), 2, 0, 1), 3, 0, 1);
    Value ones = s.op("loom.add", {s.iota(one, 3, i64), s.scalar(i64, 1)});
    rows = s.op("loom.sum", ones, {s.i64s("axes", {0, 1, 2, 3})});
  }
  auto firstRows = [&](Value cache) {
    Value part = cache;
    if (rows)
      part = s.op("loom.dynamic_slice", {cache, zero, rows},
                  {s.i64("axis", 0)});
    else if (batch != cacheRows)
      part = s.op("loom.dynamic_slice", {cache, zero},
                  {s.i64("axis", 0), s.i64("size", batch)});
    return s.transpose(part, {0, 2, 1, 3});
  };
  Value kh = firstRows(keys), vh = firstRows(values);

  // Scores [B, H, S, T]; key t visible to query s when t <= start_pos + s.
  Value qh = s.transpose(
      s.op("loom.concat", {op.getQNope(), op.getQPe()}, {s.i64("axis", 3)}),
      {0, 2, 1, 3});
  Value scores = s.op(
      "loom.mul",
      {s.op("loom.matmul", {qh, kh},
            {s.attr("transpose_b", builder.getBoolAttr(true))}),
       s.scalar(element, op.getScale().convertToDouble())});
  Value visible = s.op(
      "loom.cmp",
      {s.iota(scores, 3, i64),
       s.op("loom.add", {s.iota(scores, 2, i64), op.getStartPos()})},
      {s.attr("predicate", builder.getStringAttr("le"))});
  Value masked = s.op("loom.select", {visible, scores, s.scalar(element, -1e30)});
  Value probs = s.op("loom.softmax", masked, {s.i64("axis", 3)});
  Value out = s.transpose(s.op("loom.matmul", {probs, vh}), {0, 2, 1, 3});
  if (s.failed)
    return failure();
  op.replaceAllUsesWith(ValueRange{out, keys, values});
  op.erase();
  return success();
}

struct MlaExpandPass : public loom::impl::MlaExpandPassBase<MlaExpandPass> {
  void runOnOperation() override {
    SmallVector<MlaAttentionOp> ops;
    getOperation().walk([&](MlaAttentionOp op) { ops.push_back(op); });
    for (MlaAttentionOp op : ops)
      if (failed(expand(op)))
        return signalPassFailure();
  }
};

} // namespace
