//===- mla_decode_test.cc - Tests of loom_rt_mla_decode_f32 ---------------===//
//
// This file checks the MLA decoding host function against a float64
// reference written from the formula in abi.h: several batch, query, head and
// cache sizes (cache lengths off the key block, shorter than one block, and
// long enough to be split into chunks), causal masking among new tokens,
// start positions past the cache and before it, cache rows past the batch
// that must not be read, strided and offset views of every operand, scores
// that would overflow a naive softmax, and results that do not depend on the
// thread count.
//
//===----------------------------------------------------------------------===//

#include "test_util.h"

#include "internal.h"

#include <cmath>
#include <cstring>
#include <random>

namespace {

using loom::test::StridedTensor;

struct Case {
  int64_t B, S, H, C, R, T;
  int64_t startPos;
  int64_t MB = 0; ///< Cache batch rows; B when 0.
  /// 0: dense operands. 1: padded strides everywhere, kv with a non-unit
  /// innermost stride. 2: the same with pe's innermost stride non-unit
  /// instead.
  int strided = 0;
  float scale = 0; ///< 1 / sqrt(C + R) when 0.
  /// Integer-valued inputs in [-range, range] (exact scores); uniform in
  /// [-1, 1) when 0.
  int range = 0;
  int threads = 0; ///< 0: the runtime's pool.
};

std::ostream &operator<<(std::ostream &os, const Case &c) {
  return os << "B=" << c.B << " S=" << c.S << " H=" << c.H << " C=" << c.C
            << " R=" << c.R << " T=" << c.T << " start_pos=" << c.startPos
            << " MB=" << (c.MB ? c.MB : c.B) << " strided=" << c.strided
            << " range=" << c.range << " threads=" << c.threads;
}

struct Problem {
  Case c;
  StridedTensor qLat, qPe, kv, pe, out;
  float scale;

  explicit Problem(const Case &cs)
      : c(cs), qLat(StridedTensor::contiguousUnless(
                   c.strided, {c.B, c.S, c.H, c.C}, 2, 3, 5)),
        qPe(StridedTensor::contiguousUnless(c.strided, {c.B, c.S, c.H, c.R}, 3,
                                            2, 1)),
        kv({c.MB ? c.MB : c.B, c.T, c.C}, c.strided == 1 ? 2 : 1,
           c.strided ? 4 : 1, c.strided ? 7 : 0),
        pe({c.MB ? c.MB : c.B, c.T, c.R}, c.strided == 2 ? 2 : 1,
           c.strided ? 3 : 1, c.strided ? 2 : 0),
        out(StridedTensor::contiguousUnless(c.strided, {c.B, c.S, c.H, c.C}, 2,
                                            2, 3)) {
    scale = c.scale != 0 ? c.scale : 1.0f / std::sqrt(float(c.C + c.R));
    std::mt19937 rng(static_cast<unsigned>(c.B * 1000003 + c.S * 10007 +
                                           c.H * 101 + c.C * 7 + c.T));
    std::uniform_real_distribution<float> uniform(-1, 1);
    std::uniform_int_distribution<int> integer(-c.range, c.range);
    auto value = [&] { return c.range ? float(integer(rng)) : uniform(rng); };
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t s = 0; s < c.S; ++s)
        for (int64_t h = 0; h < c.H; ++h) {
          for (int64_t k = 0; k < c.C; ++k)
            qLat.at({b, s, h, k}) = value();
          for (int64_t k = 0; k < c.R; ++k)
            qPe.at({b, s, h, k}) = value();
        }
    // Cache rows at and past B stay NaN: reading one poisons the output.
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t t = 0; t < c.T; ++t) {
        for (int64_t k = 0; k < c.C; ++k)
          kv.at({b, t, k}) = value();
        for (int64_t k = 0; k < c.R; ++k)
          pe.at({b, t, k}) = value();
      }
  }

  void run() {
    loom_memref_4d_t ql = qLat.memref4(), qe = qPe.memref4(), o = out.memref4();
    loom_memref_3d_t k = kv.memref3(), p = pe.memref3();
    if (c.threads)
      loom::mlaDecodeF32WithThreads(c.threads, &ql, &qe, &k, &p, &o, c.startPos,
                                    scale);
    else
      loom_rt_mla_decode_f32(&ql, &qe, &k, &p, &o, c.startPos, scale);
  }

  /// The abi.h formula in float64 for query (b, s, h).
  std::vector<double> reference(int64_t b, int64_t s, int64_t h) {
    int64_t visible =
        std::min<int64_t>(c.T, std::max<int64_t>(0, c.startPos + s + 1));
    if (c.startPos >= c.T)
      visible = c.T;
    std::vector<double> result(static_cast<size_t>(c.C), 0.0);
    if (visible == 0)
      return result;
    std::vector<double> scores(static_cast<size_t>(visible));
    double mx = -INFINITY;
    for (int64_t t = 0; t < visible; ++t) {
      double dot = 0;
      for (int64_t k = 0; k < c.C; ++k)
        dot += double(qLat.at({b, s, h, k})) * kv.at({b, t, k});
      for (int64_t k = 0; k < c.R; ++k)
        dot += double(qPe.at({b, s, h, k})) * pe.at({b, t, k});
      scores[t] = double(scale) * dot;
      mx = std::max(mx, scores[t]);
    }
    double sum = loom::test::exponentiate(scores, mx);
    for (int64_t t = 0; t < visible; ++t)
      for (int64_t k = 0; k < c.C; ++k)
        result[k] += scores[t] / sum * kv.at({b, t, k});
    return result;
  }

  /// Compares every output element with the reference, to `tolerance` times
  /// the largest reference magnitude of its row (at least 1e-3 so that rows
  /// of zeros compare absolutely), and checks that nothing outside the
  /// output view was written.
  ::testing::AssertionResult matchesReference(double tolerance = 1e-5) {
    ::testing::AssertionResult rows = loom::test::matchRows(
        out,
        [&](int64_t b, int64_t s, int64_t h) { return reference(b, s, h); },
        tolerance);
    if (!rows)
      return ::testing::AssertionFailure() << c << ": " << rows.message();
    return rows;
  }
};

::testing::AssertionResult check(const Case &c, double tolerance = 1e-5) {
  Problem p(c);
  p.run();
  return p.matchesReference(tolerance);
}

TEST(MlaDecode, LookupByName) {
  EXPECT_EQ(loom_host_function_lookup("loom_rt_mla_decode_f32"),
            reinterpret_cast<void *>(&loom_rt_mla_decode_f32));
}

TEST(MlaDecode, SmallShapes) {
  // T around the key block (64): shorter, equal, one past, not a multiple.
  for (int64_t B : {1, 2, 3})
    for (int64_t S : {1, 2, 4})
      for (int64_t H : {1, 3, 16})
        for (int64_t T : {1, 5, 63, 64, 65, 200})
          EXPECT_TRUE(check({B, S, H, 20, 6, T, T - S}));
}

TEST(MlaDecode, DeepSeekDims) {
  // The real latent and rope sizes, one cache long enough to be split into
  // chunks of keys.
  EXPECT_TRUE(check({1, 1, 16, 512, 64, 1000, 999}));
  EXPECT_TRUE(check({2, 2, 16, 512, 64, 300, 298}));
  EXPECT_TRUE(check({1, 1, 128, 512, 64, 130, 129}));
}

TEST(MlaDecode, ChunkedCacheWithManyBatchRows) {
  for (int64_t B : {1, 3, 9, 40})
    EXPECT_TRUE(check({B, 2, 3, 24, 8, 1500, 1498}));
  // 11 query rows: a full row tile and a tile of 5.
  EXPECT_TRUE(check({2, 1, 11, 24, 8, 700, 699}));
}

TEST(MlaDecode, StartPosHidesLaterKeys) {
  // Keys past start_pos + s are invisible to query s (causal among the new
  // tokens and against stale cache rows).
  for (int64_t startPos : {0, 10, 63, 64, 100, 700})
    for (int64_t S : {1, 2, 4})
      EXPECT_TRUE(check({2, S, 3, 20, 6, 1000, startPos}));
}

TEST(MlaDecode, StartPosBeyondCacheIsClamped) {
  for (int64_t startPos :
       {int64_t(98), int64_t(99), int64_t(100), int64_t(150), int64_t(1) << 62})
    EXPECT_TRUE(check({2, 4, 3, 20, 6, 100, startPos}));
}

TEST(MlaDecode, NoVisibleKeyGivesZeros) {
  // start_pos + s < 0: no key at all for some or all queries; those rows
  // must be 0, never NaN.
  for (int64_t startPos : {int64_t(-1), int64_t(-2), int64_t(-3), int64_t(-4),
                           int64_t(-100), -(int64_t(1) << 62)})
    EXPECT_TRUE(check({2, 4, 3, 20, 6, 50, startPos}));
  EXPECT_TRUE(check({2, 2, 3, 20, 6, 0, 5}));
  // Chunks of keys that one query row does not see at all.
  EXPECT_TRUE(check({1, 4, 3, 20, 6, 2000, -2}));
}

TEST(MlaDecode, OnlyBatchRowsOfTheQueriesAreRead) {
  // Rows [B, MB) of the caches are NaN.
  EXPECT_TRUE(check({2, 1, 3, 20, 6, 70, 69, /*MB=*/5}));
  EXPECT_TRUE(check({1, 2, 16, 512, 64, 700, 698, /*MB=*/3}));
}

TEST(MlaDecode, StridedViews) {
  for (int strided : {1, 2}) {
    for (int64_t T : {7, 64, 130, 1100}) {
      Case c{2, 2, 3, 20, 6, T, T - 2};
      c.strided = strided;
      EXPECT_TRUE(check(c));
    }
    Case real{1, 1, 16, 512, 64, 300, 299};
    real.strided = strided;
    EXPECT_TRUE(check(real));
    Case withSpareRows{2, 2, 3, 20, 6, 90, 88, /*MB=*/4};
    withSpareRows.strided = strided;
    EXPECT_TRUE(check(withSpareRows));
  }
}

TEST(MlaDecode, LargeScoresDoNotOverflow) {
  // Integer inputs make every score exact in float32; with scale 1 they
  // reach hundreds, where exp overflows, and differ by whole units, so the
  // softmax is far from uniform.
  for (int64_t T : {40, 300, 2000}) {
    Case c{2, 2, 3, 16, 4, T, T - 2};
    c.scale = 1.0f;
    c.range = 6;
    EXPECT_TRUE(check(c));
  }
}

TEST(MlaDecode, ResultDoesNotDependOnThreadCount) {
  for (const Case &base :
       {Case{1, 1, 16, 512, 64, 1500, 1499}, Case{3, 2, 5, 40, 8, 2100, 2000},
        Case{2, 4, 3, 20, 6, 5000, 4998}}) {
    std::vector<float> first;
    for (int threads : {1, 2, 3, 5, 0}) {
      Case c = base;
      c.threads = threads;
      Problem p(c);
      p.run();
      if (first.empty()) {
        EXPECT_TRUE(p.matchesReference());
        first = p.out.storage;
        continue;
      }
      EXPECT_EQ(std::memcmp(first.data(), p.out.storage.data(),
                            first.size() * sizeof(float)),
                0)
          << c;
    }
  }
}

} // namespace
