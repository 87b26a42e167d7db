//===- AttentionUnfusedTest.cpp - loom.attention, unfused -------*- C++ -*-===//
//
// Numerics of the unfused lowering of `loom.attention` (`--attention=
// unfused`, the baseline the fused kernel is measured against): models with
// loom.attention, parsed from MLIR text, are compiled to one artifact and
// run through the runtime on random inputs, and every output and log-sum-exp
// is compared with the float64 reference of AttentionReference.h. The cases
// cover a causal mask with a score region on grouped heads, a CSR adjacency
// mask (rows outside the adjacency and empty rows hide every key), keys longer
// than the queries, and queries that see no key (output 0, lse -inf).
//
//===----------------------------------------------------------------------===//

#include "test/e2e/AttentionEntries.h"
#include "test/e2e/AttentionReference.h"
#include "test/e2e/RuntimeGlue.h"

#include "compiler/Pipelines/Compile.h"
#include "loom/runtime.h"

#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

using namespace mlir;
using namespace ::loom::e2e;

namespace {

/// Mask body: keys up to the query.
constexpr const char *kCausalMaskBody = R"mlir(
      %m = arith.cmpi ule, %j, %i : index
      loom.yield %m : i1)mlir";

/// Mask body: key j where row i of the CSR adjacency lists j.
constexpr const char *kCsrMaskBody = R"mlir(
      %e = loom.csr_contains %c_indptr, %c_indices, %i, %j : tensor<?xi32>, tensor<?xi32>
      loom.yield %e : i1)mlir";

/// Three entries: `causal` (8 query heads on 2 key/value heads, keys up to
/// the query, a soft cap and a per-head bias as score region), `csr` (key j
/// visible to query i where row i of a CSR adjacency lists j) and `strict`.
std::string source() {
  AttentionEntry causal("causal", 8, 2, 16, 8, "S", "0.25");
  causal.mask = kCausalMaskBody;
  causal.score = kSoftCapAndHeadBiasBody;
  AttentionEntry csr("csr", 2, 2, 8, 8, "T", "0.35");
  csr.captures = {{"indptr", "R"}, {"indices", "E"}};
  csr.mask = kCsrMaskBody;
  return attentionEntry(AttentionForm::Loom, causal) +
         attentionEntry(AttentionForm::Loom, csr) +
         strictEntry(AttentionForm::Loom);
}

class AttentionUnfusedTest : public SourceArtifactTest<AttentionUnfusedTest> {
protected:
  static void SetUpTestSuite() {
    mlir::loom::CompileOptions options;
    options.attention = mlir::loom::AttentionMode::Unfused;
    options.compilerVersion = "loom-e2e-tests";
    // After the graph passes the op is still loom.attention: the unfused
    // mode forms no fused kernel.
    {
      mlir::loom::CompileOptions fuseStage = options;
      fuseStage.stopAfter = mlir::loom::CompileStage::Fuse;
      std::string text;
      llvm::raw_string_ostream printed(text);
      ASSERT_TRUE(compileSource(source(), "attention-unfused.mlir", fuseStage,
                                printed, ""));
      EXPECT_NE(text.find("loom.attention"), std::string::npos);
      EXPECT_EQ(text.find("fuse.attention"), std::string::npos);
    }
    ASSERT_TRUE(artifact.open(source(), "attention-unfused", options));
  }
};

TEST_F(AttentionUnfusedTest, CausalScoreRegionGroupedHeads) {
  std::mt19937 rng(3);
  for (auto [nb, s] : {std::pair<int64_t, int64_t>{2, 37}, {1, 64}, {1, 1}}) {
    SCOPED_TRACE("B = " + std::to_string(nb) + ", S = " + std::to_string(s));
    Tensors inputs = {{"q", randomTensor({nb, 8, s, 16}, rng)},
                      {"k", randomTensor({nb, 2, s, 16}, rng)},
                      {"v", randomTensor({nb, 2, s, 8}, rng)}};
    Tensors got;
    ASSERT_TRUE(artifact.invoke("causal", inputs, got));
    EXPECT_TRUE(matchesReference(
        got, inputs, 0.25,
        [](int64_t, int64_t, int64_t i, int64_t j) { return j <= i; },
        softCapAndHeadBias));
  }
}

TEST_F(AttentionUnfusedTest, CsrMaskWithEmptyAndMissingRows) {
  std::mt19937 rng(5);
  for (auto [s, t, numRows] :
       {std::tuple<int64_t, int64_t, int64_t>{40, 40, 40},
        {23, 57, 17},
        {9, 3, 9}}) {
    int64_t rows = numRows;
    SCOPED_TRACE("S = " + std::to_string(s) + ", T = " + std::to_string(t) +
                 ", rows = " + std::to_string(rows));
    // Random sorted rows, every fifth one empty; queries from `rows` on
    // have no row at all.
    std::vector<std::set<int64_t>> adjacency(rows);
    std::vector<int32_t> indptr = {0}, indices;
    std::bernoulli_distribution edge(0.3);
    for (int64_t r = 0; r < rows; ++r) {
      if (r % 5 != 4)
        for (int64_t j = 0; j < t; ++j)
          if (edge(rng))
            adjacency[r].insert(j);
      indices.insert(indices.end(), adjacency[r].begin(), adjacency[r].end());
      indptr.push_back(static_cast<int32_t>(indices.size()));
    }
    Tensors inputs = {{"q", randomTensor({2, 2, s, 8}, rng)},
                      {"k", randomTensor({2, 2, t, 8}, rng)},
                      {"v", randomTensor({2, 2, t, 8}, rng)},
                      {"indptr", intTensor(indptr)},
                      {"indices", intTensor(indices)}};
    Tensors got;
    ASSERT_TRUE(artifact.invoke("csr", inputs, got));
    EXPECT_TRUE(matchesReference(
        got, inputs, 0.35,
        [&](int64_t, int64_t, int64_t i, int64_t j) {
          return i < rows && adjacency[i].count(j) > 0;
        },
        unmodifiedScore));
    // Row 4 is empty: its queries see nothing.
    for (int64_t n = 0; n < 4 && s > 4; ++n)
      EXPECT_EQ(got["lse"].data[n * s + 4],
                -std::numeric_limits<double>::infinity());
  }
}

TEST_F(AttentionUnfusedTest, FullyMaskedRowsGiveZeroAndMinusInfinity) {
  checkStrictEntry(artifact);
}

} // namespace
