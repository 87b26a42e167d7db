//===- AttentionUnfusedTest.cpp - loom.attention, unfused -------*- C++ -*-===//
//
// Numerics of the unfused lowering of `loom.attention` (`--attention=
// unfused`, the baseline the fused kernel is measured against): models with
// loom.attention, parsed from MLIR text, are compiled to one artifact and
// run through the runtime on random inputs, and every output and log-sum-exp
// is compared with a float64 reference written here. The cases cover a
// causal mask with a score region on grouped heads, a CSR adjacency mask
// (rows outside the adjacency and empty rows hide every key), keys longer
// than the queries, and queries that see no key (output 0, lse -inf).
//
//===----------------------------------------------------------------------===//

#include "test/e2e/RuntimeGlue.h"

#include "compiler/Pipelines/Compile.h"
#include "loom/runtime.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

using namespace mlir;
using namespace ::loom::e2e;

namespace {

/// Three entries: `causal` (8 query heads on 2 key/value heads, keys up to
/// the query, a soft cap and a per-head bias as score region), `csr` (key j
/// visible to query i where row i of a CSR adjacency lists j) and `strict`
/// (keys strictly before the query, so query 0 sees none).
constexpr const char *kSource = R"mlir(
func.func @causal(
    %q: tensor<?x8x?x16xf32> {loom.role = "input", loom.name = "q", loom.dims = ["B", 8, "S", 16]},
    %k: tensor<?x2x?x16xf32> {loom.role = "input", loom.name = "k", loom.dims = ["B", 2, "S", 16]},
    %v: tensor<?x2x?x8xf32> {loom.role = "input", loom.name = "v", loom.dims = ["B", 2, "S", 8]})
    -> (tensor<?x8x?x8xf32> {loom.role = "output", loom.name = "out", loom.dims = ["B", 8, "S", 8]},
        tensor<?x8x?xf32> {loom.role = "output", loom.name = "lse", loom.dims = ["B", 8, "S"]}) {
  %o, %l = loom.attention %q, %k, %v {scale = 0.25 : f64}
      : tensor<?x8x?x16xf32>, tensor<?x2x?x16xf32>, tensor<?x2x?x8xf32>
      -> tensor<?x8x?x8xf32>, tensor<?x8x?xf32>
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      loom.yield %m : i1
    }
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %s: f32):
      %cap = arith.constant 5.0 : f32
      %d = arith.divf %s, %cap : f32
      %t = math.tanh %d : f32
      %soft = arith.mulf %t, %cap : f32
      %hi = arith.index_cast %h : index to i64
      %hf = arith.sitofp %hi : i64 to f32
      %quarter = arith.constant 0.25 : f32
      %bias = arith.mulf %hf, %quarter : f32
      %r = arith.subf %soft, %bias : f32
      loom.yield %r : f32
    }
  return %o, %l : tensor<?x8x?x8xf32>, tensor<?x8x?xf32>
}

func.func @csr(
    %q: tensor<?x2x?x8xf32> {loom.role = "input", loom.name = "q", loom.dims = ["B", 2, "S", 8]},
    %k: tensor<?x2x?x8xf32> {loom.role = "input", loom.name = "k", loom.dims = ["B", 2, "T", 8]},
    %v: tensor<?x2x?x8xf32> {loom.role = "input", loom.name = "v", loom.dims = ["B", 2, "T", 8]},
    %indptr: tensor<?xi32> {loom.role = "input", loom.name = "indptr", loom.dims = ["R"]},
    %indices: tensor<?xi32> {loom.role = "input", loom.name = "indices", loom.dims = ["E"]})
    -> (tensor<?x2x?x8xf32> {loom.role = "output", loom.name = "out", loom.dims = ["B", 2, "S", 8]},
        tensor<?x2x?xf32> {loom.role = "output", loom.name = "lse", loom.dims = ["B", 2, "S"]}) {
  %o, %l = loom.attention %q, %k, %v captures(%indptr, %indices : tensor<?xi32>, tensor<?xi32>)
      {scale = 0.35 : f64}
      : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
      -> tensor<?x2x?x8xf32>, tensor<?x2x?xf32>
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %p: tensor<?xi32>, %x: tensor<?xi32>):
      %e = loom.csr_contains %p, %x, %i, %j : tensor<?xi32>, tensor<?xi32>
      loom.yield %e : i1
    }
  return %o, %l : tensor<?x2x?x8xf32>, tensor<?x2x?xf32>
}

func.func @strict(
    %q: tensor<?x2x?x8xf32> {loom.role = "input", loom.name = "q", loom.dims = ["B", 2, "S", 8]},
    %k: tensor<?x2x?x8xf32> {loom.role = "input", loom.name = "k", loom.dims = ["B", 2, "T", 8]},
    %v: tensor<?x2x?x8xf32> {loom.role = "input", loom.name = "v", loom.dims = ["B", 2, "T", 8]})
    -> (tensor<?x2x?x8xf32> {loom.role = "output", loom.name = "out", loom.dims = ["B", 2, "S", 8]},
        tensor<?x2x?xf32> {loom.role = "output", loom.name = "lse", loom.dims = ["B", 2, "S"]}) {
  %o, %l = loom.attention %q, %k, %v {scale = 0.35 : f64}
      : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
      -> tensor<?x2x?x8xf32>, tensor<?x2x?xf32>
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ult, %j, %i : index
      loom.yield %m : i1
    }
  return %o, %l : tensor<?x2x?x8xf32>, tensor<?x2x?xf32>
}
)mlir";

using MaskFn = std::function<bool(int64_t, int64_t, int64_t, int64_t)>;
using ScoreFn =
    std::function<double(int64_t, int64_t, int64_t, int64_t, double)>;

/// Float64 attention: q [B, Hq, S, Dk], k [B, Hkv, T, Dk], v [B, Hkv, T, Dv];
/// query head h reads key/value head h / (Hq / Hkv).
void reference(const Tensor &q, const Tensor &k, const Tensor &v, double scale,
               const MaskFn &mask, const ScoreFn &score, Tensor &out,
               Tensor &lse) {
  int64_t nb = q.shape[0], hq = q.shape[1], s = q.shape[2], dk = q.shape[3];
  int64_t hkv = k.shape[1], t = k.shape[2], dv = v.shape[3];
  out.dtype = lse.dtype = LOOM_DTYPE_F32;
  out.shape = {nb, hq, s, dv};
  lse.shape = {nb, hq, s};
  out.data.assign(nb * hq * s * dv, 0.0);
  lse.data.assign(nb * hq * s, -std::numeric_limits<double>::infinity());
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t h = 0; h < hq; ++h) {
      int64_t g = h / (hq / hkv);
      for (int64_t i = 0; i < s; ++i) {
        std::vector<double> logits;
        std::vector<int64_t> keys;
        for (int64_t j = 0; j < t; ++j) {
          if (!mask(b, h, i, j))
            continue;
          double dot = 0;
          for (int64_t d = 0; d < dk; ++d)
            dot += q.data[((b * hq + h) * s + i) * dk + d] *
                   k.data[((b * hkv + g) * t + j) * dk + d];
          logits.push_back(score(b, h, i, j, scale * dot));
          keys.push_back(j);
        }
        if (keys.empty())
          continue;
        double top = *std::max_element(logits.begin(), logits.end());
        double sum = 0;
        for (double x : logits)
          sum += std::exp(x - top);
        double l = top + std::log(sum);
        lse.data[(b * hq + h) * s + i] = l;
        double *o = &out.data[((b * hq + h) * s + i) * dv];
        for (size_t n = 0; n < keys.size(); ++n) {
          double p = std::exp(logits[n] - l);
          for (int64_t d = 0; d < dv; ++d)
            o[d] += p * v.data[((b * hkv + g) * t + keys[n]) * dv + d];
        }
      }
    }
}

Tensor randomTensor(std::vector<int64_t> shape, std::mt19937 &rng) {
  Tensor t;
  t.dtype = LOOM_DTYPE_F32;
  t.shape = std::move(shape);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int64_t n = 0, e = t.getNumElements(); n < e; ++n)
    t.data.push_back(static_cast<float>(normal(rng)));
  return t;
}

Tensor intTensor(const std::vector<int32_t> &values) {
  Tensor t;
  t.dtype = LOOM_DTYPE_I32;
  t.shape = {static_cast<int64_t>(values.size())};
  t.data.assign(values.begin(), values.end());
  return t;
}

/// |got - want| <= atol + rtol |want| elementwise, -inf exactly where the
/// reference has it, and never NaN.
::testing::AssertionResult near(const char *what, const Tensor &got,
                                const Tensor &want, double atol, double rtol) {
  if (got.shape != want.shape)
    return ::testing::AssertionFailure() << what << ": shapes differ";
  for (size_t n = 0; n < want.data.size(); ++n) {
    double g = got.data[n], w = want.data[n];
    if (std::isinf(w) ? g != w
                      : !(std::fabs(g - w) <= atol + rtol * std::fabs(w)))
      return ::testing::AssertionFailure()
             << what << "[" << n << "] = " << g << ", want " << w;
  }
  return ::testing::AssertionSuccess();
}

class AttentionUnfusedTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    MLIRContext &context = getContext();
    llvm::SmallString<128> dirPath;
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("loom-attention-unfused",
                                                      dirPath));
    dir = dirPath.str().str();
    std::string diagnostics;
    llvm::raw_string_ostream os(diagnostics);
    llvm::SourceMgr sourceMgr;
    sourceMgr.AddNewSourceBuffer(
        llvm::MemoryBuffer::getMemBufferCopy(kSource, "attention.mlir"),
        llvm::SMLoc());
    SourceMgrDiagnosticHandler handler(sourceMgr, &context, os);
    OwningOpRef<ModuleOp> module =
        parseSourceFile<ModuleOp>(sourceMgr, &context);
    ASSERT_TRUE(module) << diagnostics;
    mlir::loom::CompileOptions options;
    options.attention = mlir::loom::AttentionMode::Unfused;
    options.compilerVersion = "loom-e2e-tests";
    std::string path = dir + "/attention-unfused.so";
    // After the graph passes the op is still loom.attention: the unfused
    // mode forms no fused kernel.
    {
      OwningOpRef<ModuleOp> copy = module->clone();
      mlir::loom::CompileOptions fuseStage = options;
      fuseStage.stopAfter = mlir::loom::CompileStage::Fuse;
      std::string text;
      llvm::raw_string_ostream printed(text);
      ASSERT_TRUE(
          succeeded(mlir::loom::compileModule(*copy, fuseStage, printed, "")))
          << diagnostics;
      EXPECT_NE(text.find("loom.attention"), std::string::npos);
      EXPECT_EQ(text.find("fuse.attention"), std::string::npos);
    }
    std::string unused;
    llvm::raw_string_ostream out(unused);
    ASSERT_TRUE(
        succeeded(mlir::loom::compileModule(*module, options, out, path)))
        << diagnostics;
    ASSERT_EQ(loom_artifact_open(path.c_str(), &artifact), nullptr);
    ASSERT_EQ(loom_session_create(artifact, nullptr, &session), nullptr);
  }

  static void TearDownTestSuite() {
    loom_session_destroy(session);
    loom_artifact_close(artifact);
    session = nullptr;
    artifact = nullptr;
    if (!dir.empty())
      llvm::sys::fs::remove_directories(dir);
  }

  /// Runs `entry` on `inputs` through the runtime.
  ::testing::AssertionResult invoke(const std::string &entry,
                                    const Tensors &inputs, Tensors &outputs) {
    if (!session)
      return ::testing::AssertionFailure() << "no session";
    std::vector<const char *> names;
    std::vector<RtTensor> owned;
    std::vector<loom_tensor_t *> tensors;
    for (auto &[name, value] : inputs) {
      names.push_back(name.c_str());
      owned.push_back(toRuntime(value));
      tensors.push_back(owned.back().get());
    }
    loom_tensor_map_t *out = nullptr;
    if (Status s{loom_session_invoke(session, entry.c_str(), names.size(),
                                     names.data(), tensors.data(), &out)})
      return ::testing::AssertionFailure() << describe(s);
    RtMap map(out);
    for (size_t i = 0; i < loom_tensor_map_size(out); ++i)
      outputs[loom_tensor_map_name_at(out, i)] =
          fromRuntime(loom_tensor_map_tensor_at(out, i));
    return ::testing::AssertionSuccess();
  }

  static std::string dir;
  static loom_artifact_t *artifact;
  static loom_session_t *session;
};

std::string AttentionUnfusedTest::dir;
loom_artifact_t *AttentionUnfusedTest::artifact = nullptr;
loom_session_t *AttentionUnfusedTest::session = nullptr;

TEST_F(AttentionUnfusedTest, CausalScoreRegionGroupedHeads) {
  std::mt19937 rng(3);
  for (auto [nb, s] : {std::pair<int64_t, int64_t>{2, 37}, {1, 64}, {1, 1}}) {
    SCOPED_TRACE("B = " + std::to_string(nb) + ", S = " + std::to_string(s));
    Tensors inputs = {{"q", randomTensor({nb, 8, s, 16}, rng)},
                      {"k", randomTensor({nb, 2, s, 16}, rng)},
                      {"v", randomTensor({nb, 2, s, 8}, rng)}};
    Tensors got;
    ASSERT_TRUE(invoke("causal", inputs, got));
    Tensor out, lse;
    reference(
        inputs["q"], inputs["k"], inputs["v"], 0.25,
        [](int64_t, int64_t, int64_t i, int64_t j) { return j <= i; },
        [](int64_t, int64_t h, int64_t, int64_t, double x) {
          return 5.0 * std::tanh(x / 5.0) - 0.25 * static_cast<double>(h);
        },
        out, lse);
    EXPECT_TRUE(near("out", got["out"], out, 2e-5, 2e-4));
    EXPECT_TRUE(near("lse", got["lse"], lse, 2e-5, 2e-4));
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
    ASSERT_TRUE(invoke("csr", inputs, got));
    Tensor out, lse;
    reference(
        inputs["q"], inputs["k"], inputs["v"], 0.35,
        [&](int64_t, int64_t, int64_t i, int64_t j) {
          return i < rows && adjacency[i].count(j) > 0;
        },
        [](int64_t, int64_t, int64_t, int64_t, double x) { return x; }, out,
        lse);
    EXPECT_TRUE(near("out", got["out"], out, 2e-5, 2e-4));
    EXPECT_TRUE(near("lse", got["lse"], lse, 2e-5, 2e-4));
    // Row 4 is empty: its queries see nothing.
    for (int64_t n = 0; n < 4 && s > 4; ++n)
      EXPECT_EQ(got["lse"].data[n * s + 4],
                -std::numeric_limits<double>::infinity());
  }
}

TEST_F(AttentionUnfusedTest, FullyMaskedRowsGiveZeroAndMinusInfinity) {
  std::mt19937 rng(11);
  for (auto [s, t] : {std::pair<int64_t, int64_t>{70, 70}, {5, 90}}) {
    SCOPED_TRACE("S = " + std::to_string(s) + ", T = " + std::to_string(t));
    Tensors inputs = {{"q", randomTensor({2, 2, s, 8}, rng)},
                      {"k", randomTensor({2, 2, t, 8}, rng)},
                      {"v", randomTensor({2, 2, t, 8}, rng)}};
    Tensors got;
    ASSERT_TRUE(invoke("strict", inputs, got));
    Tensor out, lse;
    reference(
        inputs["q"], inputs["k"], inputs["v"], 0.35,
        [](int64_t, int64_t, int64_t i, int64_t j) { return j < i; },
        [](int64_t, int64_t, int64_t, int64_t, double x) { return x; }, out,
        lse);
    EXPECT_TRUE(near("out", got["out"], out, 2e-5, 2e-4));
    EXPECT_TRUE(near("lse", got["lse"], lse, 2e-5, 2e-4));
    for (int64_t n = 0; n < 4; ++n) {
      EXPECT_EQ(got["lse"].data[n * s],
                -std::numeric_limits<double>::infinity());
      for (int64_t d = 0; d < 8; ++d)
        EXPECT_EQ(got["out"].data[n * s * 8 + d], 0.0);
    }
  }
}

} // namespace
