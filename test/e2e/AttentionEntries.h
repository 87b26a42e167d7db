//===- AttentionEntries.h - Attention entries of the e2e tests --*- C++ -*-===//
//
// This file writes the MLIR text of the entries that the attention end-to-end
// tests compile, in either form (`loom.attention` for the graph pipeline,
// `fuse.attention` for the fused kernel directly), and holds what both tests
// run: the region bodies they share and the `strict` entry, whose first query
// sees no key, with its check against the float64 reference.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TEST_E2E_ATTENTIONENTRIES_H
#define LOOM_TEST_E2E_ATTENTIONENTRIES_H

#include "test/e2e/AttentionReference.h"
#include "test/e2e/RuntimeGlue.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace loom::e2e {

/// The op an entry computes attention with.
enum class AttentionForm {
  Loom, ///< loom.attention, fused or not by the compiler.
  Fuse, ///< fuse.attention with destinations, the fused kernel itself.
};

/// An i32 vector input of an entry, of symbolic length `dim`, that the entry
/// passes to its mask and score regions as a capture.
struct IndexInput {
  std::string name;
  std::string dim;
};

/// One entry returning (out, lse) of attention on q [B, hq, S, dk], k
/// [B, hkv, keys, dk] and v [B, hkv, keys, dv].
struct AttentionEntry {
  AttentionEntry(std::string name, int64_t hq, int64_t hkv, int64_t dk,
                 int64_t dv, std::string keys, std::string scale)
      : name(std::move(name)), hq(hq), hkv(hkv), dk(dk), dv(dv),
        keys(std::move(keys)), scale(std::move(scale)) {}

  std::string name;
  int64_t hq, hkv, dk, dv;
  /// The name of the key length: "S" (as many keys as queries) or "T".
  std::string keys;
  /// The `scale` attribute, as MLIR text.
  std::string scale;
  /// Further inputs, passed to the regions: input `x` is their argument
  /// `%c_x`.
  std::vector<IndexInput> captures;
  /// The mask region's body; `$YIELD` stands for the form's yield op.
  std::string mask;
  /// The score region's body (the score is `%s`), or empty for none.
  std::string score;
};

/// An entry of either form; `$X` stands for what attentionEntry puts there.
/// The fuse form's destinations come in at `$OUTS`.
constexpr const char *kAttentionEntryTemplate = R"mlir(
func.func @$NAME(
    %q: tensor<?x$HQx?x$DKxf32> {loom.role = "input", loom.name = "q", loom.dims = ["B", $HQ, "S", $DK]},
    %k: tensor<?x$HKVx?x$DKxf32> {loom.role = "input", loom.name = "k", loom.dims = ["B", $HKV, "$KEYS", $DK]},
    %v: tensor<?x$HKVx?x$DVxf32> {loom.role = "input", loom.name = "v", loom.dims = ["B", $HKV, "$KEYS", $DV]}$INPUTS)
    -> (tensor<?x$HQx?x$DVxf32> {loom.role = "output", loom.name = "out", loom.dims = ["B", $HQ, "S", $DV]},
        tensor<?x$HQx?xf32> {loom.role = "output", loom.name = "lse", loom.dims = ["B", $HQ, "S"]}) {$OP
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index$ARGS):$MASK
    }$SCORE
  return %o, %l : tensor<?x$HQx?x$DVxf32>, tensor<?x$HQx?xf32>
}
)mlir";

/// The attention op of the loom form, up to its regions.
constexpr const char *kLoomAttentionOp = R"mlir(
  %o, %l = loom.attention %q, %k, %v$CAPTURES {scale = $SCALE : f64}
      : tensor<?x$HQx?x$DKxf32>, tensor<?x$HKVx?x$DKxf32>, tensor<?x$HKVx?x$DVxf32>
      -> tensor<?x$HQx?x$DVxf32>, tensor<?x$HQx?xf32>)mlir";

/// The attention op of the fuse form, up to its regions, with its
/// destinations.
constexpr const char *kFuseAttentionOp = R"mlir(
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %nb = tensor.dim %q, %c0 : tensor<?x$HQx?x$DKxf32>
  %ns = tensor.dim %q, %c2 : tensor<?x$HQx?x$DKxf32>
  %oi = tensor.empty(%nb, %ns) : tensor<?x$HQx?x$DVxf32>
  %li = tensor.empty(%nb, %ns) : tensor<?x$HQx?xf32>
  %o, %l = fuse.attention ins(%q, %k, %v : tensor<?x$HQx?x$DKxf32>, tensor<?x$HKVx?x$DKxf32>, tensor<?x$HKVx?x$DVxf32>)$CAPTURES
      outs(%oi, %li : tensor<?x$HQx?x$DVxf32>, tensor<?x$HQx?xf32>) {scale = $SCALE : f64}
      -> tensor<?x$HQx?x$DVxf32>, tensor<?x$HQx?xf32>)mlir";

/// Replaces every `key` in `text` with `value`.
inline void replaceAll(std::string &text, const std::string &key,
                       const std::string &value) {
  for (size_t at = text.find(key); at != std::string::npos;
       at = text.find(key, at + value.size()))
    text.replace(at, key.size(), value);
}

/// The MLIR text of `entry` in `form`.
inline std::string attentionEntry(AttentionForm form,
                                  const AttentionEntry &entry) {
  std::string inputs, names, types, args;
  for (const IndexInput &c : entry.captures) {
    inputs += ",\n    %" + c.name +
              ": tensor<?xi32> {loom.role = \"input\", loom.name = \"" +
              c.name + "\", loom.dims = [\"" + c.dim + "\"]}";
    names += (names.empty() ? "%" : ", %") + c.name;
    types += std::string(types.empty() ? "" : ", ") + "tensor<?xi32>";
    args += ", %c_" + c.name + ": tensor<?xi32>";
  }
  std::string captures =
      entry.captures.empty() ? "" : " captures(" + names + " : " + types + ")";
  bool loom = form == AttentionForm::Loom;
  std::string text = kAttentionEntryTemplate;
  // The pieces of text first, then the names and numbers they hold.
  replaceAll(text, "$OP", loom ? kLoomAttentionOp : kFuseAttentionOp);
  replaceAll(text, "$MASK", entry.mask);
  replaceAll(text, "$SCORE",
             entry.score.empty()
                 ? ""
                 : "\n    score {\n    ^bb0(%b: index, %h: index, %i: "
                   "index, %j: index, %s: f32$ARGS):" +
                       entry.score + "\n    }");
  replaceAll(text, "$CAPTURES", captures);
  replaceAll(text, "$INPUTS", inputs);
  replaceAll(text, "$ARGS", args);
  replaceAll(text, "$YIELD", loom ? "loom.yield" : "fuse.yield");
  replaceAll(text, "$NAME", entry.name);
  replaceAll(text, "$SCALE", entry.scale);
  replaceAll(text, "$KEYS", entry.keys);
  replaceAll(text, "$HKV", std::to_string(entry.hkv));
  replaceAll(text, "$HQ", std::to_string(entry.hq));
  replaceAll(text, "$DK", std::to_string(entry.dk));
  replaceAll(text, "$DV", std::to_string(entry.dv));
  return text;
}

/// A score body: a soft cap of 5 (5 tanh(s / 5)) less 0.25 per head, as
/// softCapAndHeadBias computes it.
constexpr const char *kSoftCapAndHeadBiasBody = R"mlir(
      %cap = arith.constant 5.0 : f32
      %d = arith.divf %s, %cap : f32
      %t = math.tanh %d : f32
      %soft = arith.mulf %t, %cap : f32
      %hi = arith.index_cast %h : index to i64
      %hf = arith.sitofp %hi : i64 to f32
      %quarter = arith.constant 0.25 : f32
      %bias = arith.mulf %hf, %quarter : f32
      %scored = arith.subf %soft, %bias : f32
      $YIELD %scored : f32)mlir";

/// The score of kSoftCapAndHeadBiasBody.
inline double softCapAndHeadBias(int64_t, int64_t h, int64_t, int64_t,
                                 double x) {
  return 5.0 * std::tanh(x / 5.0) - 0.25 * static_cast<double>(h);
}

/// The score without a score region.
inline double unmodifiedScore(int64_t, int64_t, int64_t, int64_t, double x) {
  return x;
}

/// Entry `strict`: two heads of depth 8 on keys strictly before the query,
/// so query 0 sees none.
inline std::string strictEntry(AttentionForm form) {
  AttentionEntry strict("strict", 2, 2, 8, 8, "T", "0.35");
  strict.mask = R"mlir(
      %m = arith.cmpi ult, %j, %i : index
      $YIELD %m : i1)mlir";
  return attentionEntry(form, strict);
}

/// Runs entry `strictEntry` of `artifact` on random inputs with as many
/// keys as queries and with more, compares it with the reference, and checks
/// that the queries that see no key get lse -inf and output 0 exactly.
inline void checkStrictEntry(SourceArtifact &artifact) {
  std::mt19937 rng(11);
  for (auto [s, t] : {std::pair<int64_t, int64_t>{70, 70}, {5, 90}}) {
    SCOPED_TRACE("S = " + std::to_string(s) + ", T = " + std::to_string(t));
    Tensors inputs = {{"q", randomTensor({2, 2, s, 8}, rng)},
                      {"k", randomTensor({2, 2, t, 8}, rng)},
                      {"v", randomTensor({2, 2, t, 8}, rng)}};
    Tensors got;
    ASSERT_TRUE(artifact.invoke("strict", inputs, got));
    EXPECT_TRUE(matchesReference(
        got, inputs, 0.35,
        [](int64_t, int64_t, int64_t i, int64_t j) { return j < i; },
        unmodifiedScore));
    for (int64_t n = 0; n < 4; ++n) {
      EXPECT_EQ(got["lse"].data[n * s],
                -std::numeric_limits<double>::infinity());
      for (int64_t d = 0; d < 8; ++d)
        EXPECT_EQ(got["out"].data[n * s * 8 + d], 0.0);
    }
  }
}

} // namespace loom::e2e

#endif // LOOM_TEST_E2E_ATTENTIONENTRIES_H
