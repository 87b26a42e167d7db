//===- attention_test.cc - Tests of loom_rt_attention_f32 -----------------===//
//
// This file checks the masked attention host function against a float64
// reference written from the formula in abi.h (a naive softmax over the
// visible keys of each query): no mask, causal, sliding-window, random dense
// and block-sparse masks, with mask_block exact, always SOME, or absent;
// queries with no visible key; GQA and MQA; Dk != Dv; sequence lengths off
// the tile size and Sq != Skv; strided and offset views of every operand;
// score modifiers (tanh soft-cap, ALiBi, rows made all -inf); lse absent;
// masks that depend on the batch row and the head; tiles the mask hides that
// must never be computed; and results that do not depend on the thread count.
//
//===----------------------------------------------------------------------===//

#include "test_util.h"

#include "internal.h"

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>

namespace {

using loom::test::StridedTensor;

enum class Mask {
  None,
  Causal,     ///< j <= i
  Sliding,    ///< i - window < j <= i
  Random,     ///< Each pair visible with probability 1/2, per (b, h).
  Sparse,     ///< 32 x 32 blocks, about 10% of them visible.
  EmptyRows,  ///< Causal, but query rows i % 7 == 3 see no key.
  Nothing,    ///< No key visible to any query.
  HiddenKeys, ///< Keys [256, 512) invisible, every other key visible.
  PerHead,    ///< A sliding window of 16 * (h + 1) keys, per head.
};

enum class BlockMode {
  Exact, ///< mask_block classifies exactly (an interval test or brute force).
  Some,  ///< mask_block always answers SOME.
  Null,  ///< mask_block is NULL.
};

enum class Score {
  None,
  SoftCap,   ///< cap * tanh(s / cap)
  Alibi,     ///< s - 2^-(h + 4) * (i - j)
  NegInfRow, ///< Every score of query rows i % 4 == 1 becomes -inf.
};

struct Case {
  int64_t B, Hq, Hkv, Sq, Skv, Dk, Dv;
  Mask mask = Mask::None;
  BlockMode block = BlockMode::Exact;
  Score score = Score::None;
  /// 0: dense operands; 1: padded strides and non-unit innermost strides.
  int strided = 0;
  bool lse = true;
  int threads = 0; ///< 0: the runtime's pool.
  float scale = 0; ///< 1 / sqrt(Dk) when 0.
  /// Integer q and k in [-range, range] (exact scores with a power-of-two
  /// scale); uniform when 0.
  int range = 0;
};

std::ostream &operator<<(std::ostream &os, const Case &c) {
  return os << "B=" << c.B << " Hq=" << c.Hq << " Hkv=" << c.Hkv
            << " Sq=" << c.Sq << " Skv=" << c.Skv << " Dk=" << c.Dk
            << " Dv=" << c.Dv << " mask=" << int(c.mask)
            << " block=" << int(c.block) << " score=" << int(c.score)
            << " strided=" << c.strided << " lse=" << c.lse
            << " threads=" << c.threads;
}

constexpr int64_t kHiddenBegin = 256, kHiddenEnd = 512;
constexpr double kCap = 2.0;

/// The mask and score modifier of a case, behind the C callbacks of
/// loom_attention_mods_t, with counters of the calls.
struct Mods {
  Case c;
  std::vector<uint8_t> random; ///< [B][Hq][Sq][Skv] for Mask::Random.
  std::vector<uint8_t> sparse; ///< 32 x 32 block pattern for Mask::Sparse.
  int64_t sparseCols = 0;
  std::atomic<int64_t> maskRowCalls{0}, scoreRowCalls{0}, blockCalls{0};
  /// Calls of mask_row or score_row that touched keys of Mask::HiddenKeys'
  /// hidden range.
  std::atomic<int64_t> hiddenTouched{0};

  explicit Mods(const Case &cs) : c(cs) {
    std::mt19937 rng(static_cast<unsigned>(c.Sq * 31 + c.Skv));
    if (c.mask == Mask::Random) {
      random.resize(static_cast<size_t>(c.B * c.Hq * c.Sq * c.Skv));
      for (uint8_t &x : random)
        x = rng() & 1;
    }
    if (c.mask == Mask::Sparse) {
      int64_t rows = (c.Sq + 31) / 32;
      sparseCols = (c.Skv + 31) / 32;
      sparse.resize(static_cast<size_t>(rows * sparseCols));
      for (uint8_t &x : sparse)
        x = rng() % 10 == 0;
    }
  }

  bool visible(int64_t b, int64_t h, int64_t i, int64_t j) const {
    switch (c.mask) {
    case Mask::None:
      return true;
    case Mask::Causal:
      return j <= i;
    case Mask::Sliding:
      return j <= i && j > i - 24;
    case Mask::Random:
      return random[static_cast<size_t>(((b * c.Hq + h) * c.Sq + i) * c.Skv +
                                        j)];
    case Mask::Sparse:
      return sparse[static_cast<size_t>(i / 32 * sparseCols + j / 32)];
    case Mask::EmptyRows:
      return j <= i && i % 7 != 3;
    case Mask::Nothing:
      return false;
    case Mask::HiddenKeys:
      return j < kHiddenBegin || j >= kHiddenEnd;
    case Mask::PerHead:
      return j <= i && j > i - 16 * (h + 1);
    }
    return false;
  }

  uint32_t flags() const {
    if (c.mask == Mask::Random)
      return LOOM_ATTENTION_MASK_USES_B | LOOM_ATTENTION_MASK_USES_H;
    if (c.mask == Mask::PerHead)
      return LOOM_ATTENTION_MASK_USES_H;
    return 0;
  }

  double modify(int64_t h, int64_t i, int64_t j, double s) const {
    switch (c.score) {
    case Score::None:
      return s;
    case Score::SoftCap:
      return kCap * std::tanh(s / kCap);
    case Score::Alibi:
      return s - std::exp2(-double(h + 4)) * double(i - j);
    case Score::NegInfRow:
      return i % 4 == 1 ? -INFINITY : s;
    }
    return s;
  }

  /// Counts a call on keys [j0, j0 + n) that reaches the keys HiddenKeys
  /// hides.
  void noteHiddenKeys(int64_t j0, int64_t n) {
    if (j0 < kHiddenEnd && j0 + n > kHiddenBegin && c.mask == Mask::HiddenKeys)
      hiddenTouched.fetch_add(1);
  }

  static void maskRow(void *ctx, int64_t b, int64_t h, int64_t i, int64_t j0,
                      int64_t n, uint8_t *out) {
    auto *m = static_cast<Mods *>(ctx);
    m->maskRowCalls.fetch_add(1);
    m->noteHiddenKeys(j0, n);
    for (int64_t t = 0; t < n; ++t)
      out[t] = m->visible(b, h, i, j0 + t);
  }

  static int32_t maskBlock(void *ctx, int64_t b, int64_t h, int64_t i0,
                           int64_t i1, int64_t j0, int64_t j1) {
    auto *m = static_cast<Mods *>(ctx);
    m->blockCalls.fetch_add(1);
    if (m->c.block == BlockMode::Some)
      return LOOM_ATTENTION_BLOCK_SOME;
    if (m->c.mask == Mask::Causal) {
      // The interval test of j <= i.
      if (j0 > i1 - 1)
        return LOOM_ATTENTION_BLOCK_NONE;
      if (j1 - 1 <= i0)
        return LOOM_ATTENTION_BLOCK_ALL;
      return LOOM_ATTENTION_BLOCK_SOME;
    }
    // Every other mask: by brute force over the block.
    bool any = false, all = true;
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = j0; j < j1; ++j) {
        bool v = m->visible(b, h, i, j);
        any |= v;
        all &= v;
      }
    return !any  ? LOOM_ATTENTION_BLOCK_NONE
           : all ? LOOM_ATTENTION_BLOCK_ALL
                 : LOOM_ATTENTION_BLOCK_SOME;
  }

  static void scoreRow(void *ctx, int64_t, int64_t h, int64_t i, int64_t j0,
                       int64_t n, float *s) {
    auto *m = static_cast<Mods *>(ctx);
    m->scoreRowCalls.fetch_add(1);
    m->noteHiddenKeys(j0, n);
    for (int64_t t = 0; t < n; ++t)
      s[t] = static_cast<float>(m->modify(h, i, j0 + t, s[t]));
  }

  loom_attention_mods_t abi() {
    loom_attention_mods_t mods = {};
    mods.ctx = this;
    if (c.mask != Mask::None) {
      mods.mask_row = &maskRow;
      if (c.block != BlockMode::Null)
        mods.mask_block = &maskBlock;
    }
    if (c.score != Score::None)
      mods.score_row = &scoreRow;
    mods.flags = flags();
    return mods;
  }
};

struct Problem {
  Case c;
  StridedTensor q, k, v, out, lse;
  Mods mods;
  float scale;

  explicit Problem(const Case &cs)
      : c(cs), q(StridedTensor::contiguousUnless(
                   c.strided, {c.B, c.Hq, c.Sq, c.Dk}, 2, 3, 5)),
        k(StridedTensor::contiguousUnless(c.strided, {c.B, c.Hkv, c.Skv, c.Dk},
                                          3, 2, 7)),
        v(StridedTensor::contiguousUnless(c.strided, {c.B, c.Hkv, c.Skv, c.Dv},
                                          2, 4, 1)),
        out(StridedTensor::contiguousUnless(c.strided, {c.B, c.Hq, c.Sq, c.Dv},
                                            2, 2, 3)),
        lse(StridedTensor::contiguousUnless(c.strided, {c.B, c.Hq, c.Sq}, 2, 3,
                                            2)),
        mods(cs) {
    scale = c.scale != 0 ? c.scale : 1.0f / std::sqrt(float(c.Dk));
    std::mt19937 rng(static_cast<unsigned>(c.B * 1000003 + c.Sq * 10007 +
                                           c.Hq * 101 + c.Dk * 7 + c.Skv));
    std::uniform_real_distribution<float> uniform(-1, 1);
    std::uniform_int_distribution<int> integer(-c.range, c.range);
    auto value = [&] {
      return c.range ? float(integer(rng)) : 2 * uniform(rng);
    };
    for (int64_t b = 0; b < c.B; ++b) {
      for (int64_t h = 0; h < c.Hq; ++h)
        for (int64_t i = 0; i < c.Sq; ++i)
          for (int64_t d = 0; d < c.Dk; ++d)
            q.at({b, h, i, d}) = value();
      for (int64_t h = 0; h < c.Hkv; ++h)
        for (int64_t j = 0; j < c.Skv; ++j) {
          // Keys no query sees stay NaN: computing any of them poisons the
          // output.
          bool hidden =
              c.mask == Mask::HiddenKeys && j >= kHiddenBegin && j < kHiddenEnd;
          for (int64_t d = 0; d < c.Dk; ++d)
            k.at({b, h, j, d}) = hidden ? std::nanf("") : value();
          for (int64_t d = 0; d < c.Dv; ++d)
            v.at({b, h, j, d}) = hidden ? std::nanf("") : uniform(rng);
        }
    }
  }

  void run() {
    loom_memref_4d_t mq = q.memref4(), mk = k.memref4(), mv = v.memref4(),
                     mo = out.memref4();
    loom_memref_3d_t ml = lse.memref3();
    loom_attention_mods_t m = mods.abi();
    loom::attentionF32WithThreads(c.threads, &mq, &mk, &mv, &mo,
                                  c.lse ? &ml : nullptr, scale, &m);
  }

  /// The abi.h formula in float64 for query (b, h, i): the output row, then
  /// the lse.
  std::vector<double> reference(int64_t b, int64_t h, int64_t i) {
    int64_t hk = h / (c.Hq / c.Hkv);
    std::vector<double> result(static_cast<size_t>(c.Dv + 1), 0.0);
    std::vector<double> scores;
    std::vector<int64_t> keys;
    double mx = -INFINITY;
    for (int64_t j = 0; j < c.Skv; ++j) {
      if (c.mask != Mask::None && !mods.visible(b, h, i, j))
        continue;
      double dot = 0;
      for (int64_t d = 0; d < c.Dk; ++d)
        dot += double(q.at({b, h, i, d})) * k.at({b, hk, j, d});
      double s = mods.modify(h, i, j, double(scale) * dot);
      scores.push_back(s);
      keys.push_back(j);
      mx = std::max(mx, s);
    }
    result[c.Dv] = -INFINITY;
    if (mx == -INFINITY)
      return result;
    double sum = loom::test::exponentiate(scores, mx);
    for (size_t t = 0; t < keys.size(); ++t)
      for (int64_t d = 0; d < c.Dv; ++d)
        result[d] += scores[t] / sum * v.at({b, hk, keys[t], d});
    result[c.Dv] = mx + std::log(sum);
    return result;
  }

  /// Compares every output element with the reference, to `tolerance` times
  /// the largest reference magnitude of its row (at least 1e-3 so that rows
  /// of zeros compare absolutely), the lse to `tolerance` relative (infinite
  /// ones exactly), and checks that nothing outside the views was written.
  ::testing::AssertionResult matchesReference(double tolerance = 1e-5) {
    auto checkLse = [&](int64_t b, int64_t h, int64_t i,
                        const std::vector<double> &ref) {
      if (!c.lse)
        return ::testing::AssertionSuccess();
      float got = lse.at({b, h, i});
      double want = ref[c.Dv];
      bool ok = std::isinf(want)
                    ? got == want
                    : std::abs(got - want) <=
                          tolerance * std::max(1.0, std::abs(want));
      if (!ok)
        return ::testing::AssertionFailure()
               << "lse[" << b << "," << h << "," << i << "] = " << got
               << ", reference " << want;
      return ::testing::AssertionSuccess();
    };
    if (::testing::AssertionResult rows = loom::test::matchRows(
            out,
            [&](int64_t b, int64_t h, int64_t i) { return reference(b, h, i); },
            tolerance, checkLse);
        !rows)
      return ::testing::AssertionFailure() << c << ": " << rows.message();
    if (lse.written() != static_cast<size_t>(c.lse ? c.B * c.Hq * c.Sq : 0))
      return ::testing::AssertionFailure()
             << c << ": " << lse.written() << " lse elements written";
    return ::testing::AssertionSuccess();
  }
};

::testing::AssertionResult check(const Case &c, double tolerance = 1e-5) {
  Problem p(c);
  p.run();
  return p.matchesReference(tolerance);
}

Case withMask(Case c, Mask m, BlockMode block = BlockMode::Exact) {
  c.mask = m;
  c.block = block;
  return c;
}

TEST(Attention, LookupByName) {
  EXPECT_EQ(loom_host_function_lookup("loom_rt_attention_f32"),
            reinterpret_cast<void *>(&loom_rt_attention_f32));
}

TEST(Attention, NoMask) {
  // Lengths around the tile (64): shorter, equal, one past, not a multiple.
  for (int64_t S : {1, 5, 63, 64, 65, 130})
    EXPECT_TRUE(check({1, 2, 2, S, S, 32, 32}));
  EXPECT_TRUE(check({2, 3, 3, 200, 150, 64, 64}));
  EXPECT_TRUE(check({1, 2, 2, 129, 257, 128, 128}));
  // No mods at all (a null pointer) gives the same as an empty struct.
  Problem p({1, 2, 1, 70, 90, 16, 16});
  loom_memref_4d_t mq = p.q.memref4(), mk = p.k.memref4(), mv = p.v.memref4(),
                   mo = p.out.memref4();
  loom_memref_3d_t ml = p.lse.memref3();
  loom_rt_attention_f32(&mq, &mk, &mv, &mo, &ml, p.scale, nullptr);
  EXPECT_TRUE(p.matchesReference());
}

TEST(Attention, Causal) {
  for (BlockMode block : {BlockMode::Exact, BlockMode::Some, BlockMode::Null})
    for (int64_t S : {1, 63, 64, 65, 200})
      EXPECT_TRUE(
          check(withMask({2, 2, 1, S, S, 32, 32}, Mask::Causal, block)));
  // Sq != Skv: keys past the last query are hidden from all.
  EXPECT_TRUE(check(withMask({1, 4, 2, 100, 300, 64, 64}, Mask::Causal)));
  EXPECT_TRUE(check(withMask({1, 4, 2, 300, 100, 64, 64}, Mask::Causal)));
}

TEST(Attention, SlidingWindow) {
  for (BlockMode block : {BlockMode::Exact, BlockMode::Some, BlockMode::Null})
    EXPECT_TRUE(
        check(withMask({1, 3, 3, 333, 333, 48, 48}, Mask::Sliding, block)));
}

TEST(Attention, RandomDenseMask) {
  // The mask depends on b and h (flags USES_B | USES_H).
  for (BlockMode block : {BlockMode::Null, BlockMode::Some, BlockMode::Exact})
    EXPECT_TRUE(
        check(withMask({2, 3, 1, 150, 170, 32, 24}, Mask::Random, block)));
}

TEST(Attention, PerHeadMask) {
  // Tile classes differ per head (flag USES_H only).
  EXPECT_TRUE(check(withMask({2, 4, 2, 260, 260, 32, 32}, Mask::PerHead)));
}

TEST(Attention, BlockSparseMask) {
  for (BlockMode block : {BlockMode::Exact, BlockMode::Some})
    EXPECT_TRUE(
        check(withMask({1, 2, 2, 520, 600, 64, 64}, Mask::Sparse, block)));
}

TEST(Attention, RowsWithoutVisibleKeys) {
  for (BlockMode block : {BlockMode::Exact, BlockMode::Some, BlockMode::Null}) {
    EXPECT_TRUE(
        check(withMask({1, 2, 2, 150, 150, 32, 32}, Mask::EmptyRows, block)));
    EXPECT_TRUE(
        check(withMask({1, 2, 2, 70, 90, 32, 32}, Mask::Nothing, block)));
  }
  // No key at all.
  EXPECT_TRUE(check({2, 2, 1, 10, 0, 16, 16}));
}

TEST(Attention, GroupedAndMultiQuery) {
  EXPECT_TRUE(check(withMask({2, 8, 2, 100, 100, 32, 32}, Mask::Causal)));
  EXPECT_TRUE(check(withMask({2, 6, 1, 100, 140, 32, 32}, Mask::Causal)));
  EXPECT_TRUE(check({1, 5, 1, 70, 70, 16, 16}));
}

TEST(Attention, DifferentKeyAndValueDims) {
  EXPECT_TRUE(check(withMask({1, 2, 1, 90, 90, 64, 32}, Mask::Causal)));
  EXPECT_TRUE(check({1, 2, 2, 90, 77, 24, 40}));
  EXPECT_TRUE(check({1, 1, 1, 65, 65, 3, 5}));
  EXPECT_TRUE(check({1, 2, 1, 40, 50, 192, 128}));
}

TEST(Attention, StridedViews) {
  Case c = withMask({2, 4, 2, 130, 150, 40, 24}, Mask::Causal);
  c.strided = 1;
  EXPECT_TRUE(check(c));
  c.mask = Mask::Random;
  c.block = BlockMode::Null;
  EXPECT_TRUE(check(c));
  c.mask = Mask::None;
  c.score = Score::Alibi;
  EXPECT_TRUE(check(c));
}

TEST(Attention, ScoreModifiers) {
  for (Mask mask : {Mask::None, Mask::Causal, Mask::Sliding}) {
    Case c = withMask({1, 3, 1, 140, 140, 32, 32}, mask);
    c.score = Score::SoftCap;
    // Large scores, so the cap matters.
    c.scale = 2.0f;
    EXPECT_TRUE(check(c));
    c.scale = 0;
    c.score = Score::Alibi;
    EXPECT_TRUE(check(c));
    // Rows whose every score is -inf get out 0 and lse -inf.
    c.score = Score::NegInfRow;
    EXPECT_TRUE(check(c));
  }
}

TEST(Attention, NoLse) {
  Case c = withMask({1, 2, 2, 100, 100, 32, 32}, Mask::EmptyRows);
  c.lse = false;
  EXPECT_TRUE(check(c));
}

TEST(Attention, LargeScoresDoNotOverflow) {
  // Scores of a few hundred (integer inputs, q . k of deviation 32, scale
  // 2): a softmax without the running max overflows. An f32 score s carries a
  // rounding of about |s| * 2^-24, which the exponential turns into a
  // relative error of the same size, hence the looser tolerance.
  Case c = withMask({1, 2, 1, 100, 200, 64, 64}, Mask::Causal);
  c.scale = 2.0f;
  c.range = 3;
  EXPECT_TRUE(check(c, 1e-4));
  c.mask = Mask::None;
  c.scale = -2.0f;
  EXPECT_TRUE(check(c, 1e-4));
}

TEST(Attention, HiddenTilesAreNeverComputed) {
  // Keys [256, 512) are NaN and hidden from every query; every tile that
  // covers them is NONE, so neither mask_row nor score_row may see them and
  // no NaN may reach the output.
  for (Score score : {Score::None, Score::Alibi}) {
    Case c = withMask({1, 2, 1, 200, 700, 32, 32}, Mask::HiddenKeys);
    c.score = score;
    Problem p(c);
    p.run();
    EXPECT_TRUE(p.matchesReference());
    EXPECT_EQ(p.mods.hiddenTouched.load(), 0);
    EXPECT_GT(p.mods.blockCalls.load(), 0);
    if (score != Score::None)
      EXPECT_GT(p.mods.scoreRowCalls.load(), 0);
  }
}

TEST(Attention, FullTilesNeedNoRowMask) {
  // Without a mask that can hide anything, mask_row is never called.
  Case c = withMask({1, 2, 1, 200, 200, 32, 32}, Mask::Causal);
  c.mask = Mask::HiddenKeys;
  c.Skv = 256;
  Problem p(c);
  p.run();
  EXPECT_TRUE(p.matchesReference());
  EXPECT_EQ(p.mods.maskRowCalls.load(), 0);
  // A causal mask asks for rows on the diagonal tiles only: 4 query tiles
  // of 64 (the last one of 8 rows), each with one diagonal key tile.
  Problem causal(withMask({1, 1, 1, 200, 200, 32, 32}, Mask::Causal));
  causal.run();
  EXPECT_TRUE(causal.matchesReference());
  EXPECT_EQ(causal.mods.maskRowCalls.load(), 64 * 3 + 8);
}

TEST(Attention, SameResultOnEveryTeamSize) {
  Case c = withMask({2, 4, 2, 300, 300, 64, 64}, Mask::Causal);
  c.threads = 1;
  Problem one(c);
  one.run();
  EXPECT_TRUE(one.matchesReference());
  for (int threads : {2, 3, 7}) {
    c.threads = threads;
    Problem many(c);
    many.run();
    EXPECT_EQ(std::memcmp(one.out.storage.data(), many.out.storage.data(),
                          one.out.storage.size() * sizeof(float)),
              0)
        << "threads=" << threads;
    EXPECT_EQ(std::memcmp(one.lse.storage.data(), many.lse.storage.data(),
                          one.lse.storage.size() * sizeof(float)),
              0)
        << "threads=" << threads;
  }
}

} // namespace
