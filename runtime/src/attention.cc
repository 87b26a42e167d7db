//===- attention.cc - Masked flash attention on the CPU -------------------===//
//
// This file implements the host function loom_rt_attention_f32: attention
// with a mask and a score modifier (the compiled regions of
// `fuse.attention`), flash style. The queries of every (batch, head) are cut
// into tiles of kQTile rows and the keys into tiles of kKTile; a task owns one
// query tile and walks the key tiles with an online softmax (running max and
// sum per query, the output accumulated unnormalized and rescaled when the
// max grows), so the [Sq, Skv] scores never exist in memory.
//
// The mask is consulted per (query tile, key tile): mask_block's NONE skips
// the tile with no flops, ALL computes it with no per-element mask work, SOME
// asks mask_row for every query row of the tile and refines (all rows empty:
// skip; all rows full: ALL; else the byte mask sets masked scores to -inf).
// When the mask reads neither the batch nor the head index, the tile classes
// are computed once per call and shared; they also give every task its cost,
// and tasks are handed out most expensive first from a shared counter, so
// causal and block-sparse masks balance over the threads.
//
// Nothing but the query tile is copied: the task transposes its scaled
// queries ([Dk][kQTile]), and the score micro-kernel broadcasts key elements
// straight from the key rows against 16 queries at a time, which leaves the
// scores key-major ([key][query]) so that the softmax runs across queries in
// vector lanes. The output micro-kernel broadcasts those probabilities
// against 16 columns of the value rows, read in place when they are
// contiguous (else copied per tile). Both micro-kernels keep a 6 x 16
// register tile and are compiled twice, for AVX2+FMA (chosen at run time) and
// for the baseline target.
//
//===----------------------------------------------------------------------===//

#include "kernel_util.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <vector>

using namespace loom;
using namespace loom::kernel;

namespace {

//===----------------------------------------------------------------------===//
// Blocking
//===----------------------------------------------------------------------===//

/// Query rows per task and keys per tile; also the granularity of the mask's
/// block classification.
constexpr int64_t kQTile = 64;
constexpr int64_t kKTile = 64;
/// Row strides of the key-major scores [kKTile][kScoreStride] and of the
/// output accumulator: a little more than a row, so that the rows a
/// micro-kernel touches together do not share L1 sets.
constexpr int64_t kScoreStride = kQTile + 8;
/// Bound on the table of tile classes (one byte per tile and mask group);
/// above it, tasks classify their tiles as they go.
constexpr int64_t kMaxClassTable = int64_t(16) << 20;

constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2 = 0.693147180559945309f;

//===----------------------------------------------------------------------===//
// Problem
//===----------------------------------------------------------------------===//

struct Problem {
  View q, k, v, out, lse;
  bool hasLse;
  int64_t B, Hq, Hkv, Sq, Skv, Dk, Dv;
  /// Query heads per kv head.
  int64_t group;
  /// Dv padded to whole strips, and the row stride of the output
  /// accumulator.
  int64_t Dvp, ldo;
  /// Whether value rows are read in place (unit column stride, whole strips).
  bool vInPlace;
  float scale;
  /// The factor packed into the queries: scale, times log2(e) when no
  /// modifier needs natural scores (the softmax then works in powers of 2).
  float queryScale;
  /// Query and key tiles.
  int64_t nq, nk;

  // Mask and score modifier.
  void *ctx;
  void (*maskRow)(void *, int64_t, int64_t, int64_t, int64_t, int64_t,
                  uint8_t *);
  int32_t (*maskBlock)(void *, int64_t, int64_t, int64_t, int64_t, int64_t,
                       int64_t);
  void (*scoreRow)(void *, int64_t, int64_t, int64_t, int64_t, int64_t,
                   float *);
  bool maskUsesB, maskUsesH;
  /// Tile classes [groups][nq][nk] (LOOM_ATTENTION_BLOCK_*), or null when
  /// tasks ask mask_block themselves.
  uint8_t *classes;

  /// Tasks (b, h, query tile) most expensive first, and the next one to hand
  /// out.
  const int64_t *order;
  int64_t tasks;
  std::atomic<int64_t> next;

  int64_t maskGroup(int64_t b, int64_t h) const {
    return (maskUsesB ? b : 0) * (maskUsesH ? Hq : 1) + (maskUsesH ? h : 0);
  }

  /// The class of tile (qt, kt) for query head h of batch row b.
  int32_t tileClass(int64_t b, int64_t h, int64_t qt, int64_t kt) const {
    if (!maskRow)
      return LOOM_ATTENTION_BLOCK_ALL;
    if (!maskBlock)
      return LOOM_ATTENTION_BLOCK_SOME;
    if (classes)
      return classes[(maskGroup(b, h) * nq + qt) * nk + kt];
    return classify(b, h, qt, kt);
  }

  int32_t classify(int64_t b, int64_t h, int64_t qt, int64_t kt) const {
    int64_t i0 = qt * kQTile, j0 = kt * kKTile;
    int32_t c =
        maskBlock(ctx, maskUsesB ? b : 0, maskUsesH ? h : 0, i0,
                  std::min(i0 + kQTile, Sq), j0, std::min(j0 + kKTile, Skv));
    return c == LOOM_ATTENTION_BLOCK_NONE || c == LOOM_ATTENTION_BLOCK_ALL
               ? c
               : LOOM_ATTENTION_BLOCK_SOME;
  }
};

//===----------------------------------------------------------------------===//
// Per-thread workspace
//===----------------------------------------------------------------------===//

struct Workspace {
  Buffer queries; ///< Scaled, transposed query tile: [Dk][kQTile].
  Buffer scores;  ///< Scores, then probabilities: [kKTile][kScoreStride].
  Buffer mask;    ///< Byte mask of a SOME tile: [kQTile][kKTile].
  Buffer values;  ///< A value tile copied in strips: [kKTile][Dvp].
  Buffer output;  ///< Unnormalized output: [kQTile][ldo].
  Buffer state;   ///< Running max, sum, rescale factor, a score row.
  Buffer spans;   ///< Keys [lo, hi) each query row, then each strip, sees.
};

Workspace &workspace() {
  static thread_local Workspace ws;
  return ws;
}

//===----------------------------------------------------------------------===//
// Vector helpers (GCC vector extensions, compiled per target)
//===----------------------------------------------------------------------===//

/// 2^x for x <= 0: the softmax only exponentiates scores minus their max.
LOOM_INLINE v8f vexp2NonPositive(v8f x) { return vexp2(x); }

/// Transposes the 8 x 8 block r (rows) in place into its columns.
LOOM_INLINE void transpose8(v8f r[8]) {
  v8f t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] =
        __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = __builtin_shufflevector(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 1] =
        __builtin_shufflevector(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    u[i + 2] =
        __builtin_shufflevector(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 3] =
        __builtin_shufflevector(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    r[i + 4] =
        __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

//===----------------------------------------------------------------------===//
// Micro-kernels
//===----------------------------------------------------------------------===//

/// Scores of KT keys (rows k + kk * krs, column stride kcs) against 16
/// queries of the transposed query tile (qt[d * kQTile + 0:16]):
///   s[kk][0:16] = sum_d k[kk][d] * qt[d][0:16]
template <int KT>
LOOM_INLINE void scoreTile(const float *k, int64_t krs, int64_t kcs,
                           const float *qt, int64_t dk, float *s) {
  v8f acc[KT][2] = {};
  const float *rows[KT];
  for (int kk = 0; kk < KT; ++kk)
    rows[kk] = k + kk * krs;
  for (int64_t d = 0; d < dk; ++d) {
    v8f b0 = load(qt + d * kQTile), b1 = load(qt + d * kQTile + 8);
    for (int kk = 0; kk < KT; ++kk) {
      v8f x = splat(rows[kk][d * kcs]);
      acc[kk][0] += x * b0;
      acc[kk][1] += x * b1;
    }
  }
  for (int kk = 0; kk < KT; ++kk) {
    store(s + kk * kScoreStride, acc[kk][0]);
    store(s + kk * kScoreStride + 8, acc[kk][1]);
  }
}

/// Scores of nb keys (rows k, stride krs) against the first mp (a multiple
/// of 16) queries of the transposed tile, into s [nb][kScoreStride]. Key
/// tiles are outermost so that their rows stay in L1 while the query strips
/// pass. With `span`, strip i / 16 only needs keys [span[2i], span[2i+1]):
/// register tiles outside it get -inf without a product.
LOOM_INLINE void scoreBlock(const float *k, int64_t krs, int64_t kcs,
                            int64_t nb, const float *qt, int64_t dk, int64_t mp,
                            const int32_t *span, float *s) {
  const v8f negInf = splat(kNegInf);
  auto skip = [&](int64_t t, int64_t n, int64_t i) {
    if (!span ||
        (t < span[2 * (i / kLanes) + 1] && t + n > span[2 * (i / kLanes)]))
      return false;
    for (int64_t kk = 0; kk < n; ++kk) {
      store(s + (t + kk) * kScoreStride + i, negInf);
      store(s + (t + kk) * kScoreStride + i + 8, negInf);
    }
    return true;
  };
  int64_t t = 0;
  for (; t + kRegTile <= nb; t += kRegTile)
    for (int64_t i = 0; i < mp; i += kLanes)
      if (!skip(t, kRegTile, i))
        scoreTile<kRegTile>(k + t * krs, krs, kcs, qt + i, dk,
                            s + t * kScoreStride + i);
#define LOOM_CALL(n)                                                           \
  for (int64_t i = 0; i < mp; i += kLanes)                                     \
    if (!skip(t, n, i))                                                        \
  scoreTile<n>(k + t * krs, krs, kcs, qt + i, dk, s + t * kScoreStride + i)
  LOOM_TILE_TAIL(nb, t, LOOM_CALL)
#undef LOOM_CALL
}

/// o = alpha * o + p . v for `rows` query rows, nb keys (rows v, stride
/// vrs) and dvp columns. Column strips are outermost so that the strip of
/// the value rows stays in L1 while the row tiles pass. With `span`, query
/// row r has probability 0 outside keys [span[2r], span[2r+1]), and a row
/// tile only multiplies the keys some of its rows see.
LOOM_INLINE void outputBlock(const float *p, const float *v, int64_t vrs,
                             int64_t nb, int64_t rows, int64_t dvp,
                             const float *alpha, float *o, int64_t ldo,
                             bool first, const int32_t *span) {
  auto keys = [&](int64_t r, int64_t n, int64_t *t0) {
    if (!span) {
      *t0 = 0;
      return nb;
    }
    int32_t lo = span[2 * r], hi = span[2 * r + 1];
    for (int64_t i = 1; i < n; ++i) {
      lo = std::min(lo, span[2 * (r + i)]);
      hi = std::max(hi, span[2 * (r + i) + 1]);
    }
    *t0 = std::min<int64_t>(lo, hi);
    return hi - *t0;
  };
  for (int64_t c = 0; c < dvp; c += kLanes) {
    int64_t r = 0, t0, n;
    for (; r + kRegTile <= rows; r += kRegTile) {
      n = keys(r, kRegTile, &t0);
      outputTile<kRegTile>(p + t0 * kScoreStride + r, kScoreStride,
                           v + t0 * vrs + c, vrs, n, alpha + r, o + r * ldo + c,
                           ldo, first);
    }
#define LOOM_CALL(k)                                                           \
  n = keys(r, k, &t0);                                                         \
  outputTile<k>(p + t0 * kScoreStride + r, kScoreStride, v + t0 * vrs + c,     \
                vrs, n, alpha + r, o + r * ldo + c, ldo, first)
    LOOM_TILE_TAIL(rows, r, LOOM_CALL)
#undef LOOM_CALL
  }
}

/// The online-softmax update of one tile, 8 queries per vector: the scores
/// s [nb][kScoreStride] of the first mp queries (masked ones -inf) become
/// probabilities against the new running max; alpha receives the factor
/// that rescales what was accumulated before, and the running max mRun and
/// sum lRun are updated. Scores are in units of log2 (the queries carry the
/// factor log2(e)), or natural when `Natural`. A query that has seen no
/// finite score keeps max -inf; its exponents are taken against 0, which
/// makes its probabilities and alpha exactly 0.
template <bool Natural>
LOOM_INLINE void softmaxBlock(float *s, int64_t nb, int64_t mp, float *mRun,
                              float *lRun, float *alpha) {
  const v8f unit = splat(Natural ? kLog2e : 1.0f);
  for (int64_t g = 0; g < mp; g += 8) {
    v8f mOld = load(mRun + g);
    v8f mx = mOld;
    for (int64_t t = 0; t < nb; ++t)
      mx = vmax(mx, load(s + t * kScoreStride + g));
    v8f safe = select(mx == splat(kNegInf), splat(0.0f), mx);
    v8f a = vexp2NonPositive((mOld - safe) * unit);
    v8f sum0 = splat(0.0f), sum1 = splat(0.0f);
    int64_t t = 0;
    for (; t + 2 <= nb; t += 2) {
      float *p0 = s + t * kScoreStride + g, *p1 = p0 + kScoreStride;
      v8f e0, e1;
      if (Natural) {
        e0 = vexp2NonPositive((load(p0) - safe) * unit);
        e1 = vexp2NonPositive((load(p1) - safe) * unit);
      } else {
        e0 = vexp2NonPositive(load(p0) - safe);
        e1 = vexp2NonPositive(load(p1) - safe);
      }
      store(p0, e0);
      store(p1, e1);
      sum0 += e0;
      sum1 += e1;
    }
    if (t < nb) {
      float *p0 = s + t * kScoreStride + g;
      v8f e0 = vexp2NonPositive((load(p0) - safe) * unit);
      store(p0, e0);
      sum0 += e0;
    }
    store(lRun + g, load(lRun + g) * a + (sum0 + sum1));
    store(mRun + g, mx);
    store(alpha + g, a);
  }
}

//===----------------------------------------------------------------------===//
// One task: a query tile of one (batch row, query head)
//===----------------------------------------------------------------------===//

/// Transposes `rows` query rows times the scale into qt [Dk][kQTile], zero
/// for the rows up to mp.
LOOM_INLINE void packQueries(const Problem &pr, const float *src, int64_t rows,
                             int64_t mp, float *qt) {
  const int64_t rs = pr.q.st[2], cs = pr.q.st[3], dk = pr.Dk;
  const float scalar = pr.queryScale;
  const v8f scale = splat(scalar);
  int64_t r8 = 0, d8 = 0;
  if (cs == 1) {
    r8 = rows / 8 * 8;
    d8 = dk / 8 * 8;
    for (int64_t r = 0; r < r8; r += 8)
      for (int64_t d = 0; d < d8; d += 8) {
        v8f x[8];
        for (int i = 0; i < 8; ++i)
          x[i] = load(src + (r + i) * rs + d);
        transpose8(x);
        for (int i = 0; i < 8; ++i)
          store(qt + (d + i) * kQTile + r, x[i] * scale);
      }
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t d = r < r8 ? d8 : 0; d < dk; ++d)
      qt[d * kQTile + r] = scalar * src[r * rs + d * cs];
  for (int64_t d = 0; d < dk; ++d)
    for (int64_t r = rows; r < mp; ++r)
      qt[d * kQTile + r] = 0.0f;
}

/// Copies nb value rows into vt [nb][Dvp], zero past Dv.
LOOM_INLINE void copyValues(const Problem &pr, const float *src, int64_t nb,
                            float *vt) {
  const int64_t rs = pr.v.st[2], cs = pr.v.st[3];
  for (int64_t t = 0; t < nb; ++t)
    for (int64_t c = 0; c < pr.Dvp; ++c)
      vt[t * pr.Dvp + c] = c < pr.Dv ? src[t * rs + c * cs] : 0.0f;
}

/// Writes the output and lse rows of the tile.
LOOM_INLINE void writeRows(const Problem &pr, int64_t b, int64_t h, int64_t i0,
                           int64_t rows, const float *o, const float *mRun,
                           const float *lRun, bool any) {
  const int64_t cs = pr.out.st[3];
  const int64_t c8 = cs == 1 ? pr.Dv / 8 * 8 : 0;
  for (int64_t r = 0; r < rows; ++r) {
    float l = any ? lRun[r] : 0.0f;
    float *dst = pr.out.p + b * pr.out.st[0] + h * pr.out.st[1] +
                 (i0 + r) * pr.out.st[2];
    if (l > 0) {
      const float *row = o + r * pr.ldo;
      float factor = 1.0f / l;
      v8f f = splat(factor);
      for (int64_t c = 0; c < c8; c += 8)
        store(dst + c, load(row + c) * f);
      for (int64_t c = c8; c < pr.Dv; ++c)
        dst[c * cs] = row[c] * factor;
    } else {
      for (int64_t c = 0; c < pr.Dv; ++c)
        dst[c * cs] = 0.0f;
    }
    if (pr.hasLse)
      pr.lse.p[b * pr.lse.st[0] + h * pr.lse.st[1] + (i0 + r) * pr.lse.st[2]] =
          l > 0 ? (pr.scoreRow ? mRun[r] : mRun[r] * kLn2) + std::log(l)
                : kNegInf;
  }
}

LOOM_INLINE void runTaskImpl(const Problem &pr, int64_t task) {
  Workspace &ws = workspace();
  const int64_t qtIndex = task % pr.nq, h = task / pr.nq % pr.Hq,
                b = task / (pr.nq * pr.Hq);
  const int64_t hkv = h / pr.group;
  const int64_t i0 = qtIndex * kQTile, rows = std::min(kQTile, pr.Sq - i0);
  const int64_t mp = roundUp(rows, kLanes);
  const int64_t dk = pr.Dk, dvp = pr.Dvp, ldo = pr.ldo;

  float *qt = ws.queries.floats(std::max<int64_t>(dk, 1) * kQTile);
  float *s = ws.scores.floats(kKTile * kScoreStride);
  auto *mask = static_cast<uint8_t *>(ws.mask.get(kQTile * kKTile));
  float *o = ws.output.floats(kQTile * ldo);
  float *state = ws.state.floats(4 * kQTile);
  float *vt = pr.vInPlace ? nullptr : ws.values.floats(kKTile * dvp);
  if (!qt || !s || !mask || !o || !state || (!pr.vInPlace && !vt))
    return;
  auto *spans = reinterpret_cast<int32_t *>(
      ws.spans.get(2 * (kQTile + kQTile / kLanes) * sizeof(int32_t)));
  int32_t *strips = spans + 2 * kQTile;
  if (!spans)
    return;
  float *mRun = state, *lRun = state + kQTile, *alpha = state + 2 * kQTile,
        *scoreRow = state + 3 * kQTile;

  packQueries(pr, pr.q.p + b * pr.q.st[0] + h * pr.q.st[1] + i0 * pr.q.st[2],
              rows, mp, qt);
  for (int64_t r = 0; r < kQTile; ++r) {
    mRun[r] = kNegInf;
    lRun[r] = 0.0f;
  }

  const float *kHead = pr.k.p + b * pr.k.st[0] + hkv * pr.k.st[1];
  const float *vHead = pr.v.p + b * pr.v.st[0] + hkv * pr.v.st[1];
  const int64_t krs = pr.k.st[2], kcs = pr.k.st[3], vrs = pr.v.st[2];
  bool first = true;
  for (int64_t kt = 0; kt < pr.nk; ++kt) {
    int32_t cls = pr.tileClass(b, h, qtIndex, kt);
    if (cls == LOOM_ATTENTION_BLOCK_NONE)
      continue;
    const int64_t j0 = kt * kKTile, nb = std::min(kKTile, pr.Skv - j0);
    const int32_t *rowSpan = nullptr, *stripSpan = nullptr;
    if (cls == LOOM_ATTENTION_BLOCK_SOME) {
      // Refine with the rows of the mask, and find the keys each query row
      // and each strip of 16 queries sees: products outside them are
      // skipped.
      int64_t visible = 0;
      for (int64_t r = 0; r < rows; ++r) {
        uint8_t *mr = mask + r * kKTile;
        pr.maskRow(pr.ctx, b, h, i0 + r, j0, nb, mr);
        int32_t lo = 0, hi = static_cast<int32_t>(nb);
        while (lo < hi && !mr[lo])
          ++lo;
        while (hi > lo && !mr[hi - 1])
          --hi;
        int32_t count = 0;
        for (int32_t t = lo; t < hi; ++t)
          count += mr[t] != 0;
        visible += count;
        spans[2 * r] = lo;
        spans[2 * r + 1] = hi;
      }
      if (visible == 0)
        continue;
      if (visible == rows * nb) {
        cls = LOOM_ATTENTION_BLOCK_ALL;
      } else {
        for (int64_t i = 0; i < mp; i += kLanes) {
          int32_t lo = static_cast<int32_t>(nb), hi = 0;
          for (int64_t r = i; r < std::min(i + kLanes, rows); ++r)
            if (spans[2 * r] < spans[2 * r + 1]) {
              lo = std::min(lo, spans[2 * r]);
              hi = std::max(hi, spans[2 * r + 1]);
            }
          strips[2 * (i / kLanes)] = lo;
          strips[2 * (i / kLanes) + 1] = hi;
        }
        rowSpan = spans;
        stripSpan = strips;
      }
    }

    scoreBlock(kHead + j0 * krs, krs, kcs, nb, qt, dk, mp, stripSpan, s);
    if (pr.scoreRow) {
      // The modifier takes one query's scores, contiguous.
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t t = 0; t < nb; ++t)
          scoreRow[t] = s[t * kScoreStride + r];
        pr.scoreRow(pr.ctx, b, h, i0 + r, j0, nb, scoreRow);
        for (int64_t t = 0; t < nb; ++t)
          s[t * kScoreStride + r] = scoreRow[t];
      }
    }
    if (cls == LOOM_ATTENTION_BLOCK_SOME) {
      // Scores of the register tiles of keys that scoreBlock skipped for a
      // row's strip are -inf already, unless the modifier rewrote them.
      for (int64_t r = 0; r < rows; ++r) {
        const uint8_t *mr = mask + r * kKTile;
        int64_t lo = 0, hi = nb;
        if (!pr.scoreRow) {
          lo = strips[2 * (r / kLanes)] / kRegTile * kRegTile;
          hi = std::min(nb, roundUp(strips[2 * (r / kLanes) + 1], kRegTile));
        }
        for (int64_t t = lo; t < hi; ++t)
          if (!mr[t])
            s[t * kScoreStride + r] = kNegInf;
      }
    }
    if (pr.scoreRow)
      softmaxBlock<true>(s, nb, mp, mRun, lRun, alpha);
    else
      softmaxBlock<false>(s, nb, mp, mRun, lRun, alpha);

    const float *v = vHead + j0 * vrs;
    int64_t ldv = vrs;
    if (!pr.vInPlace) {
      copyValues(pr, v, nb, vt);
      v = vt;
      ldv = dvp;
    }
    outputBlock(s, v, ldv, nb, rows, dvp, alpha, o, ldo, first, rowSpan);
    first = false;
  }
  writeRows(pr, b, h, i0, rows, o, mRun, lRun, !first);
}

//===----------------------------------------------------------------------===//
// Target dispatch
//===----------------------------------------------------------------------===//

#if defined(__x86_64__)
LOOM_TARGET_AVX2 void runTaskAvx2(const Problem &pr, int64_t task) {
  runTaskImpl(pr, task);
}
#endif

void runTaskGeneric(const Problem &pr, int64_t task) { runTaskImpl(pr, task); }

using TaskFn = void (*)(const Problem &, int64_t);

TaskFn selectKernel() {
#if defined(__x86_64__)
  if (cpuHasAvx2Fma())
    return runTaskAvx2;
#endif
  return runTaskGeneric;
}

TaskFn kernel() {
  static const TaskFn k = selectKernel();
  return k;
}

//===----------------------------------------------------------------------===//
// Parallel bodies
//===----------------------------------------------------------------------===//

/// Each worker takes tasks from the shared counter until none is left.
void taskBody(void *ctx, int64_t, int64_t) {
  auto &pr = *static_cast<Problem *>(ctx);
  TaskFn run = kernel();
  for (;;) {
    int64_t i = pr.next.fetch_add(1, std::memory_order_relaxed);
    if (i >= pr.tasks)
      return;
    run(pr, pr.order[i]);
  }
}

void classifyBody(void *ctx, int64_t begin, int64_t end) {
  const auto &pr = *static_cast<const Problem *>(ctx);
  const int64_t heads = pr.maskUsesH ? pr.Hq : 1;
  for (int64_t i = begin; i < end; ++i) {
    int64_t groupIndex = i / pr.nq, qt = i % pr.nq;
    int64_t b = groupIndex / heads, h = groupIndex % heads;
    for (int64_t kt = 0; kt < pr.nk; ++kt)
      pr.classes[i * pr.nk + kt] =
          static_cast<uint8_t>(pr.classify(b, h, qt, kt));
  }
}

} // namespace

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

void loom::attentionF32WithThreads(int threads, const loom_memref_4d_t *q,
                                   const loom_memref_4d_t *k,
                                   const loom_memref_4d_t *v,
                                   loom_memref_4d_t *out, loom_memref_3d_t *lse,
                                   float scale,
                                   const loom_attention_mods_t *mods) {
  Problem pr;
  pr.q = view4(q);
  pr.k = view4(k);
  pr.v = view4(v);
  pr.out = view4(out);
  pr.hasLse = lse != nullptr;
  if (lse)
    pr.lse = view3(lse);
  pr.B = q->sizes[0];
  pr.Hq = q->sizes[1];
  pr.Sq = q->sizes[2];
  pr.Dk = q->sizes[3];
  pr.Hkv = k->sizes[1];
  pr.Skv = k->sizes[2];
  pr.Dv = v->sizes[3];
  pr.scale = scale;
  // The compiler checks the shapes; a call that breaks the contract (heads
  // that do not divide, operands that disagree) has no defined result and
  // writes nothing.
  if (pr.B <= 0 || pr.Hq <= 0 || pr.Sq <= 0 || pr.Dv < 0 || pr.Hkv <= 0 ||
      pr.Hq % pr.Hkv != 0 || k->sizes[0] < pr.B || v->sizes[0] < pr.B ||
      v->sizes[1] != pr.Hkv || v->sizes[2] != pr.Skv || k->sizes[3] != pr.Dk)
    return;
  pr.group = pr.Hq / pr.Hkv;
  pr.Dvp = roundUp(pr.Dv, kLanes);
  pr.ldo = pr.Dvp + kLanes;
  pr.vInPlace = pr.v.st[3] == 1 && pr.Dv % kLanes == 0;
  pr.nq = ceilDiv(pr.Sq, kQTile);
  pr.nk = ceilDiv(std::max<int64_t>(pr.Skv, 0), kKTile);
  pr.ctx = mods ? mods->ctx : nullptr;
  pr.maskRow = mods ? mods->mask_row : nullptr;
  // Without mask_row every key is visible, whatever mask_block says.
  pr.maskBlock = pr.maskRow ? mods->mask_block : nullptr;
  pr.scoreRow = mods ? mods->score_row : nullptr;
  pr.queryScale = pr.scoreRow ? scale : scale * kLog2e;
  pr.maskUsesB = mods && (mods->flags & LOOM_ATTENTION_MASK_USES_B);
  pr.maskUsesH = mods && (mods->flags & LOOM_ATTENTION_MASK_USES_H);
  pr.classes = nullptr;

  // Tile classes, once per mask group.
  const int64_t groups = (pr.maskUsesB ? pr.B : 1) * (pr.maskUsesH ? pr.Hq : 1);
  const int64_t tableSize = groups * pr.nq * pr.nk;
  if (pr.maskBlock && tableSize > 0 && tableSize <= kMaxClassTable) {
    pr.classes = static_cast<uint8_t *>(loom_rt_alloc(tableSize, 64));
    if (pr.classes)
      runParallel(threads, classifyBody, &pr, groups * pr.nq);
  }

  // Tasks by decreasing cost: the key tiles each may compute (later query
  // tiles first when the classes are not known in advance).
  pr.tasks = pr.B * pr.Hq * pr.nq;
  std::vector<int64_t> order(static_cast<size_t>(pr.tasks)),
      costs(static_cast<size_t>(pr.tasks));
  for (int64_t t = 0; t < pr.tasks; ++t) {
    int64_t qt = t % pr.nq, h = t / pr.nq % pr.Hq, b = t / (pr.nq * pr.Hq);
    int64_t cost = pr.nk;
    if (pr.classes) {
      const uint8_t *row =
          pr.classes + (pr.maskGroup(b, h) * pr.nq + qt) * pr.nk;
      cost = 0;
      for (int64_t kt = 0; kt < pr.nk; ++kt)
        cost += row[kt] != LOOM_ATTENTION_BLOCK_NONE;
    } else if (pr.maskBlock) {
      cost = qt;
    }
    costs[t] = cost;
  }
  std::iota(order.begin(), order.end(), int64_t(0));
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return costs[a] != costs[b] ? costs[a] > costs[b] : a < b;
  });
  pr.order = order.data();
  pr.next.store(0, std::memory_order_relaxed);
  const int teamSize = threads > 0 ? threads : loom_runtime_num_threads();
  runParallel(threads, taskBody, &pr, std::min<int64_t>(teamSize, pr.tasks));
  loom_rt_free(pr.classes);
}

extern "C" void loom_rt_attention_f32(const loom_memref_4d_t *q,
                                      const loom_memref_4d_t *k,
                                      const loom_memref_4d_t *v,
                                      loom_memref_4d_t *out,
                                      loom_memref_3d_t *lse, float scale,
                                      const loom_attention_mods_t *mods) {
  attentionF32WithThreads(0, q, k, v, out, lse, scale, mods);
}
