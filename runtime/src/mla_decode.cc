//===- mla_decode.cc - MLA decoding on the latent cache -------------------===//
//
// This file implements the host function loom_rt_mla_decode_f32: DeepSeek-V3
// multi-head latent attention with absorbed weights, as flash-decoding. The
// visible keys of each batch row are split into chunks (a count that depends
// on the problem, never on the thread count, so results are reproducible on
// any team size); each (batch row, chunk) task streams its keys in blocks,
// computes the scores of every query row against a block with one
// register-tiled product (the block is read once for all heads and queries),
// updates a running max and sum (online softmax), and accumulates the
// probabilities times the block into an unnormalized output. Chunks of one
// batch row are then merged with their maxima and sums.
//
// The products use register-tiled micro-kernels over a packed copy of the
// queries; they are compiled twice, for AVX2+FMA (chosen at run time when the
// CPU has it) and for the baseline target. dnnl_sgemm is not used: a call per
// key block would pack the queries again for every block and could not fold
// the softmax rescaling into the output update.
//
//===----------------------------------------------------------------------===//

#include "internal.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

using namespace loom;

namespace {

//===----------------------------------------------------------------------===//
// Blocking
//===----------------------------------------------------------------------===//

/// Keys per block: the scores of a block for all query rows stay in L1/L2
/// while its probabilities multiply the block.
constexpr int64_t kKeyBlock = 64;
/// Query rows per packed query panel (two 8-float vectors).
constexpr int64_t kPanel = 16;
/// Keys per score register tile (6 x 16 scores in 12 registers).
constexpr int kKeyTile = 6;
/// Query rows per output register tile (6 x 16 outputs in 12 registers).
constexpr int kRowTile = 6;
/// Output columns per register tile.
constexpr int64_t kColTile = 16;
/// A chunk of keys spans at least this many blocks, so that merging partial
/// results stays cheap next to computing them.
constexpr int64_t kMinChunkBlocks = 4;
/// Bounds on the partial results of all chunks together.
constexpr int64_t kMaxPartials = 32;
constexpr int64_t kMaxPartialBytes = int64_t(64) << 20;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

int64_t roundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

//===----------------------------------------------------------------------===//
// Problem
//===----------------------------------------------------------------------===//

/// A strided f32 view of rank <= 4 with the batch dimension first.
struct View {
  float *p;
  int64_t st[4];
};

View view4(const loom_memref_4d_t *m) {
  return {static_cast<float *>(m->aligned) + m->offset,
          {m->strides[0], m->strides[1], m->strides[2], m->strides[3]}};
}

View view3(const loom_memref_3d_t *m) {
  return {static_cast<float *>(m->aligned) + m->offset,
          {m->strides[0], m->strides[1], m->strides[2], 0}};
}

struct Problem {
  View qLat, qPe, kv, pe, out;
  int64_t B, S, H, C, R, T;
  int64_t startPos;
  float scale;
  /// Query rows per batch row (S * H), padded to whole panels.
  int64_t M, Mp;
  /// Output row length padded to whole column tiles.
  int64_t Cp;
  /// Keys any query of a batch row sees: [0, visible).
  int64_t visible;
  int64_t blocks, chunks;
  /// Partial results, chunks > 1 only: per (b, chunk) a slot of
  /// O[M][Cp], then max[Mp] and sum[Mp].
  float *partials;
  int64_t slotFloats;

  /// Keys visible to query row m: [0, limit(m)).
  int64_t limit(int64_t m) const {
    if (m >= M)
      return 0;
    int64_t s = m / H;
    if (startPos >= T)
      return T;
    return std::clamp<int64_t>(startPos + s + 1, 0, T);
  }

  float *slot(int64_t b, int64_t c) const {
    return partials + (b * chunks + c) * slotFloats;
  }
};

//===----------------------------------------------------------------------===//
// Per-thread workspace
//===----------------------------------------------------------------------===//

/// A growable, 64-byte aligned float buffer.
class Buffer {
public:
  Buffer() = default;
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  ~Buffer() { std::free(data); }

  float *get(int64_t floats) {
    size_t bytes = static_cast<size_t>(std::max<int64_t>(floats, 1)) * 4;
    if (bytes > capacity) {
      std::free(data);
      capacity = (bytes + 63) & ~size_t(63);
      data = static_cast<float *>(std::aligned_alloc(64, capacity));
      if (!data)
        capacity = 0;
    }
    return data;
  }

private:
  float *data = nullptr;
  size_t capacity = 0;
};

struct Workspace {
  Buffer queries;  ///< Packed, scaled queries: [Mp / 16][C + R][16].
  Buffer scores;   ///< Scores, then probabilities, of a block: [Tb][Mp].
  Buffer state;    ///< Running max[Mp], sum[Mp], rescale factor[Mp].
  Buffer output;   ///< O[M][Cp] of a task that owns its whole batch row.
  Buffer kvPack;   ///< A block of a strided kv: [Tb][C].
  Buffer pePack;   ///< A block of a strided pe: [Tb][R].
  Buffer tailPack; ///< The last columns of a block, zero-padded: [Tb][16].
  Buffer mergeRow; ///< One merged output row: [Cp].
  Buffer limits;   ///< Visible keys in the current block per query: [Mp].
};

Workspace &workspace() {
  static thread_local Workspace ws;
  return ws;
}

//===----------------------------------------------------------------------===//
// Vector helpers (GCC vector extensions, compiled per target)
//===----------------------------------------------------------------------===//

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

#define LOOM_INLINE __attribute__((always_inline)) inline

LOOM_INLINE v8f splat(float x) { return v8f{x, x, x, x, x, x, x, x}; }

LOOM_INLINE v8f load(const float *p) {
  v8f v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

LOOM_INLINE void store(float *p, v8f v) { std::memcpy(p, &v, sizeof(v)); }

LOOM_INLINE v8f select(v8i mask, v8f a, v8f b) {
  return (v8f)(((v8i)a & mask) | ((v8i)b & ~mask));
}

LOOM_INLINE v8f vmax(v8f a, v8f b) { return select(a > b, a, b); }

/// exp(x) for float lanes, within 2 ulp on [-87.3, 88.7]; 0 below (so
/// exp(-inf) = 0 exactly), +inf above. Cephes' expf: x = n ln2 + r with
/// |r| <= ln2 / 2, a degree-6 polynomial for exp(r), and 2^n built in the
/// exponent field.
LOOM_INLINE v8f vexp(v8f x) {
  const v8f lo = splat(-87.33654f), hi = splat(88.72283f);
  v8i under = x<lo, over = x> hi;
  x = vmax(x, lo);
  x = select(x > hi, hi, x);
  // Round x / ln2 to the nearest integer with the 1.5 * 2^23 trick.
  const v8f magic = splat(12582912.0f);
  v8f n = (x * splat(1.44269504088896341f) + magic) - magic;
  v8f r = x - n * splat(0.693359375f);
  r = r - n * splat(-2.12194440e-4f);
  v8f p = splat(1.9875691500e-4f);
  p = p * r + splat(1.3981999507e-3f);
  p = p * r + splat(8.3334519073e-3f);
  p = p * r + splat(4.1665795894e-2f);
  p = p * r + splat(1.6666665459e-1f);
  p = p * r + splat(5.0000001201e-1f);
  p = p * (r * r) + r + splat(1.0f);
  // n lies in [-126, 128]; split 2^n in two factors so that n = 128 (the top
  // of the range) stays representable.
  v8i ni = __builtin_convertvector(n, v8i);
  v8i half = ni >> 1;
  v8f s1 = (v8f)((half + 127) << 23);
  v8f s2 = (v8f)((ni - half + 127) << 23);
  v8f y = p * s1 * s2;
  y = select(under, splat(0.0f), y);
  return select(over, splat(std::numeric_limits<float>::infinity()), y);
}

//===----------------------------------------------------------------------===//
// Micro-kernels
//===----------------------------------------------------------------------===//

/// Scores of KT keys against one packed panel of 16 queries:
///   st[i][0:16] = kv[i] . qp[0:C] + pe[i] . qp[C:C+R]
/// where row i of kv starts at kv + i * ldkv (likewise pe) and the panel is
/// k-major, 16 queries per k.
template <int KT>
LOOM_INLINE void scoreTile(const float *kv, int64_t ldkv, const float *pe,
                           int64_t ldpe, int64_t C, int64_t R, const float *qp,
                           float *st, int64_t ldst) {
  v8f acc[KT][2] = {};
  for (int64_t k = 0; k < C; ++k) {
    v8f b0 = load(qp + k * kPanel), b1 = load(qp + k * kPanel + 8);
    for (int i = 0; i < KT; ++i) {
      v8f a = splat(kv[i * ldkv + k]);
      acc[i][0] += a * b0;
      acc[i][1] += a * b1;
    }
  }
  qp += C * kPanel;
  for (int64_t k = 0; k < R; ++k) {
    v8f b0 = load(qp + k * kPanel), b1 = load(qp + k * kPanel + 8);
    for (int i = 0; i < KT; ++i) {
      v8f a = splat(pe[i * ldpe + k]);
      acc[i][0] += a * b0;
      acc[i][1] += a * b1;
    }
  }
  for (int i = 0; i < KT; ++i) {
    store(st + i * ldst, acc[i][0]);
    store(st + i * ldst + 8, acc[i][1]);
  }
}

/// Output update of MT query rows and 16 columns over nb keys:
///   O[i][0:16] = alpha[i] * O[i][0:16] + sum_t st[t][i] * v[t][0:16]
/// (O is not read when `first`).
template <int MT>
LOOM_INLINE void outputTile(const float *st, int64_t ldst, const float *v,
                            int64_t ldv, int64_t nb, const float *alpha,
                            float *o, int64_t ldo, bool first) {
  v8f acc[MT][2] = {};
  for (int64_t t = 0; t < nb; ++t) {
    v8f b0 = load(v + t * ldv), b1 = load(v + t * ldv + 8);
    for (int i = 0; i < MT; ++i) {
      v8f a = splat(st[t * ldst + i]);
      acc[i][0] += a * b0;
      acc[i][1] += a * b1;
    }
  }
  for (int i = 0; i < MT; ++i) {
    float *row = o + i * ldo;
    if (first) {
      store(row, acc[i][0]);
      store(row + 8, acc[i][1]);
    } else {
      v8f a = splat(alpha[i]);
      store(row, a * load(row) + acc[i][0]);
      store(row + 8, a * load(row + 8) + acc[i][1]);
    }
  }
}

template <int KT>
LOOM_INLINE void scoreTiles(const float *kv, int64_t ldkv, const float *pe,
                            int64_t ldpe, int64_t C, int64_t R, const float *qp,
                            int64_t panels, float *st, int64_t ldst) {
  for (int64_t p = 0; p < panels; ++p)
    scoreTile<KT>(kv, ldkv, pe, ldpe, C, R, qp + p * (C + R) * kPanel,
                  st + p * kPanel, ldst);
}

template <int MT>
LOOM_INLINE void outputRows(const float *st, int64_t ldst, const float *v,
                            int64_t ldv, int64_t nb, const float *alpha,
                            float *o, int64_t ldo, bool first) {
  outputTile<MT>(st, ldst, v, ldv, nb, alpha, o, ldo, first);
}

//===----------------------------------------------------------------------===//
// One task: a chunk of keys of one batch row
//===----------------------------------------------------------------------===//

/// Packs the queries of batch row b, times `scale`, into 16-row panels,
/// k-major, zero-padded past M.
LOOM_INLINE void packQueries(const Problem &pr, int64_t b, float *qp) {
  int64_t K = pr.C + pr.R;
  for (int64_t m = 0; m < pr.Mp; ++m) {
    float *dst = qp + (m / kPanel) * K * kPanel + m % kPanel;
    if (m >= pr.M) {
      for (int64_t k = 0; k < K; ++k)
        dst[k * kPanel] = 0;
      continue;
    }
    int64_t s = m / pr.H, h = m % pr.H;
    const float *ql =
        pr.qLat.p + b * pr.qLat.st[0] + s * pr.qLat.st[1] + h * pr.qLat.st[2];
    const float *qe =
        pr.qPe.p + b * pr.qPe.st[0] + s * pr.qPe.st[1] + h * pr.qPe.st[2];
    for (int64_t k = 0; k < pr.C; ++k)
      dst[k * kPanel] = pr.scale * ql[k * pr.qLat.st[3]];
    dst += pr.C * kPanel;
    for (int64_t k = 0; k < pr.R; ++k)
      dst[k * kPanel] = pr.scale * qe[k * pr.qPe.st[3]];
  }
}

/// Copies rows [t0, t0 + nb) of a strided [T, n] matrix into [nb][n].
void packRows(const float *src, int64_t rs, int64_t cs, int64_t t0, int64_t nb,
              int64_t n, float *dst) {
  for (int64_t t = 0; t < nb; ++t)
    for (int64_t k = 0; k < n; ++k)
      dst[t * n + k] = src[(t0 + t) * rs + k * cs];
}

/// Masks the scores of keys a query does not see, then the online-softmax
/// update for one block: new running max, the factor alpha that rescales
/// what was accumulated so far, probabilities in place of the scores, and
/// the running sum.
LOOM_INLINE void softmaxBlock(float *st, int64_t ldst, int64_t nb,
                              const int32_t *visibleInBlock, float *mRun,
                              float *lRun, float *alpha, int64_t Mp) {
  for (int64_t g = 0; g < Mp; g += 8) {
    v8f mOld = load(mRun + g);
    v8f mx = mOld;
    if (visibleInBlock) {
      v8i vis;
      std::memcpy(&vis, visibleInBlock + g, sizeof(vis));
      for (int64_t t = 0; t < nb; ++t) {
        v8i tv = v8i{} + static_cast<int32_t>(t);
        v8f s = select(tv < vis, load(st + t * ldst + g), splat(kNegInf));
        store(st + t * ldst + g, s);
        mx = vmax(mx, s);
      }
    } else {
      for (int64_t t = 0; t < nb; ++t)
        mx = vmax(mx, load(st + t * ldst + g));
    }
    // A query that has seen no key yet keeps max -inf; exponents are then
    // taken against 0, which makes its probabilities and alpha exactly 0.
    v8f mSafe = select(mx == splat(kNegInf), splat(0.0f), mx);
    v8f a = vexp(mOld - mSafe);
    v8f sum = splat(0.0f);
    for (int64_t t = 0; t < nb; ++t) {
      v8f p = vexp(load(st + t * ldst + g) - mSafe);
      store(st + t * ldst + g, p);
      sum += p;
    }
    store(lRun + g, load(lRun + g) * a + sum);
    store(mRun + g, mx);
    store(alpha + g, a);
  }
}

/// Writes row m of batch row b of the output: o[0:C] * factor.
LOOM_INLINE void writeOutputRow(const Problem &pr, int64_t b, int64_t m,
                                const float *o, float factor) {
  int64_t s = m / pr.H, h = m % pr.H;
  float *dst =
      pr.out.p + b * pr.out.st[0] + s * pr.out.st[1] + h * pr.out.st[2];
  if (pr.out.st[3] == 1) {
    for (int64_t j = 0; j < pr.C; ++j)
      dst[j] = o[j] * factor;
  } else {
    for (int64_t j = 0; j < pr.C; ++j)
      dst[j * pr.out.st[3]] = o[j] * factor;
  }
}

LOOM_INLINE void runTaskImpl(const Problem &pr, int64_t task) {
  Workspace &ws = workspace();
  const int64_t b = task / pr.chunks, c = task % pr.chunks;
  const int64_t C = pr.C, R = pr.R, Mp = pr.Mp, Cp = pr.Cp;
  const int64_t panels = Mp / kPanel;

  float *qp = ws.queries.get(Mp * (C + R));
  float *st = ws.scores.get(kKeyBlock * Mp);
  float *state = ws.state.get(3 * Mp);
  float *mRun = state, *lRun = state + Mp, *alpha = state + 2 * Mp;
  auto *visibleInBlock = reinterpret_cast<int32_t *>(ws.limits.get(Mp));
  float *o = pr.chunks > 1 ? pr.slot(b, c) : ws.output.get(pr.M * Cp);
  bool packKv = pr.kv.st[2] != 1, packPe = pr.pe.st[2] != 1;
  float *kvPack = packKv ? ws.kvPack.get(kKeyBlock * C) : nullptr;
  float *pePack = packPe ? ws.pePack.get(kKeyBlock * R) : nullptr;
  bool colTail = C % kColTile != 0;
  float *tailPack = colTail ? ws.tailPack.get(kKeyBlock * kColTile) : nullptr;

  packQueries(pr, b, qp);
  for (int64_t m = 0; m < Mp; ++m) {
    mRun[m] = kNegInf;
    lRun[m] = 0;
  }

  const float *kvB = pr.kv.p + b * pr.kv.st[0];
  const float *peB = pr.pe.p + b * pr.pe.st[0];
  // Keys of query row 0, the one that sees the fewest.
  const int64_t minLimit = pr.limit(0);
  const int64_t blockBegin = c * pr.blocks / pr.chunks;
  const int64_t blockEnd = (c + 1) * pr.blocks / pr.chunks;
  bool first = true;
  for (int64_t blk = blockBegin; blk < blockEnd; ++blk) {
    const int64_t t0 = blk * kKeyBlock;
    const int64_t nb = std::min(kKeyBlock, pr.visible - t0);
    const float *kvBlk, *peBlk;
    int64_t ldkv, ldpe;
    if (packKv) {
      packRows(kvB, pr.kv.st[1], pr.kv.st[2], t0, nb, C, kvPack);
      kvBlk = kvPack;
      ldkv = C;
    } else {
      kvBlk = kvB + t0 * pr.kv.st[1];
      ldkv = pr.kv.st[1];
    }
    if (packPe) {
      packRows(peB, pr.pe.st[1], pr.pe.st[2], t0, nb, R, pePack);
      peBlk = pePack;
      ldpe = R;
    } else {
      peBlk = peB + t0 * pr.pe.st[1];
      ldpe = pr.pe.st[1];
    }

    // Scores of the block, [nb][Mp], key tiles outermost so that the tile's
    // cache rows stay in L1 while every query panel passes.
    int64_t t = 0;
    for (; t + kKeyTile <= nb; t += kKeyTile)
      scoreTiles<kKeyTile>(kvBlk + t * ldkv, ldkv, peBlk + t * ldpe, ldpe, C, R,
                           qp, panels, st + t * Mp, Mp);
    switch (nb - t) {
#define LOOM_SCORE_TAIL(n)                                                     \
  case n:                                                                      \
    scoreTiles<n>(kvBlk + t * ldkv, ldkv, peBlk + t * ldpe, ldpe, C, R, qp,    \
                  panels, st + t * Mp, Mp);                                    \
    break;
      LOOM_SCORE_TAIL(1)
      LOOM_SCORE_TAIL(2)
      LOOM_SCORE_TAIL(3)
      LOOM_SCORE_TAIL(4)
      LOOM_SCORE_TAIL(5)
#undef LOOM_SCORE_TAIL
    default:
      break;
    }

    // Causal masking only touches the blocks past the first query's last key.
    const int32_t *mask = nullptr;
    if (t0 + nb > minLimit) {
      for (int64_t m = 0; m < Mp; ++m)
        visibleInBlock[m] =
            static_cast<int32_t>(std::clamp<int64_t>(pr.limit(m) - t0, 0, nb));
      mask = visibleInBlock;
    }
    softmaxBlock(st, Mp, nb, mask, mRun, lRun, alpha, Mp);

    // O = alpha * O + P . kv_blk, column tiles outermost so that the tile's
    // slice of the block stays in L1 while every row tile passes.
    for (int64_t j = 0; j < C; j += kColTile) {
      const float *v = kvBlk + j;
      int64_t ldv = ldkv;
      if (j + kColTile > C) {
        int64_t n = C - j;
        for (int64_t tt = 0; tt < nb; ++tt) {
          for (int64_t q = 0; q < n; ++q)
            tailPack[tt * kColTile + q] = kvBlk[tt * ldkv + j + q];
          for (int64_t q = n; q < kColTile; ++q)
            tailPack[tt * kColTile + q] = 0;
        }
        v = tailPack;
        ldv = kColTile;
      }
      int64_t m = 0;
      for (; m + kRowTile <= pr.M; m += kRowTile)
        outputRows<kRowTile>(st + m, Mp, v, ldv, nb, alpha + m, o + m * Cp + j,
                             Cp, first);
      switch (pr.M - m) {
#define LOOM_OUTPUT_TAIL(n)                                                    \
  case n:                                                                      \
    outputRows<n>(st + m, Mp, v, ldv, nb, alpha + m, o + m * Cp + j, Cp,       \
                  first);                                                      \
    break;
        LOOM_OUTPUT_TAIL(1)
        LOOM_OUTPUT_TAIL(2)
        LOOM_OUTPUT_TAIL(3)
        LOOM_OUTPUT_TAIL(4)
        LOOM_OUTPUT_TAIL(5)
#undef LOOM_OUTPUT_TAIL
      default:
        break;
      }
    }
    first = false;
  }

  if (pr.chunks > 1) {
    float *slotState = o + pr.M * Cp;
    std::memcpy(slotState, mRun, Mp * sizeof(float));
    std::memcpy(slotState + Mp, lRun, Mp * sizeof(float));
    return;
  }
  for (int64_t m = 0; m < pr.M; ++m)
    writeOutputRow(pr, b, m, o + m * Cp, lRun[m] > 0 ? 1.0f / lRun[m] : 0.0f);
}

/// Merges the partial results of the chunks of batch row b for query row m
/// (log-sum-exp) and writes the output row.
LOOM_INLINE void mergeRowImpl(const Problem &pr, int64_t b, int64_t m) {
  const int64_t Cp = pr.Cp;
  float mMax = kNegInf;
  for (int64_t c = 0; c < pr.chunks; ++c)
    mMax = std::max(mMax, pr.slot(b, c)[pr.M * Cp + m]);
  float *row = workspace().mergeRow.get(Cp);
  for (int64_t j = 0; j < Cp; j += 8)
    store(row + j, splat(0.0f));
  if (mMax == kNegInf) {
    writeOutputRow(pr, b, m, row, 0.0f);
    return;
  }
  float sum = 0;
  for (int64_t c = 0; c < pr.chunks; ++c) {
    const float *slot = pr.slot(b, c);
    float mc = slot[pr.M * Cp + m];
    if (mc == kNegInf)
      continue;
    float w = std::exp(mc - mMax);
    sum += w * slot[pr.M * Cp + pr.Mp + m];
    const float *o = slot + m * Cp;
    v8f wv = splat(w);
    for (int64_t j = 0; j < Cp; j += 8)
      store(row + j, load(row + j) + wv * load(o + j));
  }
  writeOutputRow(pr, b, m, row, 1.0f / sum);
}

//===----------------------------------------------------------------------===//
// Target dispatch
//===----------------------------------------------------------------------===//

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void runTaskAvx2(const Problem &pr,
                                                     int64_t task) {
  runTaskImpl(pr, task);
}
__attribute__((target("avx2,fma"))) void mergeRowAvx2(const Problem &pr,
                                                      int64_t b, int64_t m) {
  mergeRowImpl(pr, b, m);
}
#endif

void runTaskGeneric(const Problem &pr, int64_t task) { runTaskImpl(pr, task); }
void mergeRowGeneric(const Problem &pr, int64_t b, int64_t m) {
  mergeRowImpl(pr, b, m);
}

struct Kernels {
  void (*runTask)(const Problem &, int64_t);
  void (*mergeRow)(const Problem &, int64_t, int64_t);
};

Kernels selectKernels() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return {runTaskAvx2, mergeRowAvx2};
#endif
  return {runTaskGeneric, mergeRowGeneric};
}

const Kernels &kernels() {
  static const Kernels k = selectKernels();
  return k;
}

void taskBody(void *ctx, int64_t begin, int64_t end) {
  const auto &pr = *static_cast<const Problem *>(ctx);
  for (int64_t task = begin; task < end; ++task)
    kernels().runTask(pr, task);
}

void mergeBody(void *ctx, int64_t begin, int64_t end) {
  const auto &pr = *static_cast<const Problem *>(ctx);
  for (int64_t i = begin; i < end; ++i)
    kernels().mergeRow(pr, i / pr.M, i % pr.M);
}

void runParallel(int threads, void (*body)(void *, int64_t, int64_t), void *ctx,
                 int64_t n) {
  if (threads > 0)
    parallelForWithThreads(threads, body, ctx, n);
  else
    loom_rt_parallel_for(body, ctx, n);
}

} // namespace

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

void loom::mlaDecodeF32WithThreads(int threads, const loom_memref_4d_t *qLat,
                                   const loom_memref_4d_t *qPe,
                                   const loom_memref_3d_t *kv,
                                   const loom_memref_3d_t *pe,
                                   loom_memref_4d_t *out, int64_t startPos,
                                   float scale) {
  Problem pr;
  pr.qLat = view4(qLat);
  pr.qPe = view4(qPe);
  pr.kv = view3(kv);
  pr.pe = view3(pe);
  pr.out = view4(out);
  pr.B = qLat->sizes[0];
  pr.S = qLat->sizes[1];
  pr.H = qLat->sizes[2];
  pr.C = qLat->sizes[3];
  pr.R = qPe->sizes[3];
  pr.T = kv->sizes[1];
  pr.startPos = startPos;
  pr.scale = scale;
  pr.M = pr.S * pr.H;
  if (pr.B <= 0 || pr.M <= 0 || pr.C <= 0)
    return;
  pr.Mp = roundUp(pr.M, kPanel);
  pr.Cp = roundUp(pr.C, kColTile);
  pr.partials = nullptr;
  pr.slotFloats = 0;
  pr.chunks = 1;
  pr.visible = pr.limit(pr.M - 1);
  pr.blocks = (pr.visible + kKeyBlock - 1) / kKeyBlock;
  if (pr.visible <= 0) {
    for (int64_t b = 0; b < pr.B; ++b)
      for (int64_t m = 0; m < pr.M; ++m) {
        int64_t s = m / pr.H, h = m % pr.H;
        float *dst =
            pr.out.p + b * pr.out.st[0] + s * pr.out.st[1] + h * pr.out.st[2];
        for (int64_t j = 0; j < pr.C; ++j)
          dst[j * pr.out.st[3]] = 0;
      }
    return;
  }

  // Split the keys of each batch row into chunks when there are few batch
  // rows, within the bounds on partial results; the split depends on the
  // problem only, so every team size computes the same numbers.
  int64_t slotFloats = pr.M * pr.Cp + 2 * pr.Mp;
  int64_t maxPartials = std::clamp<int64_t>(
      kMaxPartialBytes / (slotFloats * int64_t(sizeof(float))), 1,
      kMaxPartials);
  int64_t chunks = std::min(
      maxPartials / pr.B, (pr.blocks + kMinChunkBlocks - 1) / kMinChunkBlocks);
  if (chunks > 1) {
    pr.partials = static_cast<float *>(
        loom_rt_alloc(pr.B * chunks * slotFloats * int64_t(sizeof(float)), 64));
    if (pr.partials) {
      pr.chunks = chunks;
      pr.slotFloats = slotFloats;
    }
  }

  runParallel(threads, taskBody, &pr, pr.B * pr.chunks);
  if (pr.chunks > 1) {
    runParallel(threads, mergeBody, &pr, pr.B * pr.M);
    loom_rt_free(pr.partials);
  }
}

extern "C" void loom_rt_mla_decode_f32(const loom_memref_4d_t *q_lat,
                                       const loom_memref_4d_t *q_pe,
                                       const loom_memref_3d_t *kv,
                                       const loom_memref_3d_t *pe,
                                       loom_memref_4d_t *out, int64_t start_pos,
                                       float scale) {
  mlaDecodeF32WithThreads(0, q_lat, q_pe, kv, pe, out, start_pos, scale);
}
