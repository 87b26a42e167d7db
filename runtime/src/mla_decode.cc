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

#include "kernel_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

using namespace loom;
using namespace loom::kernel;

namespace {

//===----------------------------------------------------------------------===//
// Blocking
//===----------------------------------------------------------------------===//

/// Keys per block: the scores of a block for all query rows stay in L1/L2
/// while its probabilities multiply the block.
constexpr int64_t kKeyBlock = 64;
// The packed layouts are kLanes floats wide: queries are packed in panels of
// 16 rows, a cache block in chunks of 16 columns.
/// Distance between the 16-column chunks of a packed cache block: one key
/// more than a block, so that the chunks of a row do not alias in 4 KiB
/// (the copy's loads would wait for unrelated stores).
constexpr int64_t kChunkStride = (kKeyBlock + 1) * kLanes;
/// Keys per score register tile.
constexpr int kKeyTile = kRegTile;
/// Query rows per output register tile.
constexpr int kRowTile = kRegTile;
/// A chunk of keys spans at least this many blocks, so that merging partial
/// results stays cheap next to computing them.
constexpr int64_t kMinChunkBlocks = 4;
/// Bounds on the partial results of all chunks together.
constexpr int64_t kMaxPartials = 32;
constexpr int64_t kMaxPartialBytes = int64_t(64) << 20;

//===----------------------------------------------------------------------===//
// Problem
//===----------------------------------------------------------------------===//

struct Problem {
  /// Strided views, the batch dimension first.
  View qLat, qPe, kv, pe, out;
  int64_t B, S, H, C, R, T;
  int64_t startPos;
  float scale;
  /// Query rows per batch row (S * H), padded to whole panels.
  int64_t M, Mp;
  /// C and R padded to whole chunks, and their sum.
  int64_t Cp, Rp, Kp;
  /// Row strides of the scores [Tb][ldst] and of the output accumulator
  /// [M][ldo], padded so that consecutive rows do not map to the same L1
  /// sets.
  int64_t ldst, ldo;
  /// Keys any query of a batch row sees: [0, visible).
  int64_t visible;
  int64_t blocks, chunks;
  /// The queries of every batch row packed by packQueries, [B][Mp * Kp], or
  /// null when each task packs its own.
  float *queries;
  /// Partial results, chunks > 1 only: per (b, chunk) a slot of
  /// O[M][ldo], then max[Mp] and sum[Mp].
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

struct Workspace {
  Buffer queries;  ///< Packed, scaled queries: [Mp / 16][Kp][16].
  Buffer block;    ///< Packed cache block, kv then pe: Kp / 16 chunks of
                   ///< [Tb][16], kChunkStride apart.
  Buffer scores;   ///< Scores, then probabilities, of a block: [Tb][ldst].
  Buffer state;    ///< Running max[Mp], sum[Mp], rescale factor[Mp].
  Buffer output;   ///< O[M][ldo] of a task that owns its whole batch row.
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

/// Scores of KT keys against one panel of 16 queries, over the packed block
/// (chunk q of key t at blk[q * kChunkStride + t * 16]) and the packed panel
/// (k-major, 16 queries per k):
///   st[i][0:16] = sum_k blk[key i][k] * qp[k][0:16]
template <int KT>
LOOM_INLINE void scoreTile(const float *blk, int64_t kChunks, const float *qp,
                           float *st, int64_t ldst) {
  v8f acc[KT][2] = {};
  for (int64_t q = 0; q < kChunks; ++q) {
    const float *a = blk + q * kChunkStride;
    const float *b = qp + q * kLanes * kLanes;
    for (int kk = 0; kk < kLanes; ++kk) {
      v8f b0 = load(b + kk * kLanes), b1 = load(b + kk * kLanes + 8);
      for (int i = 0; i < KT; ++i) {
        v8f x = splat(a[i * kLanes + kk]);
        acc[i][0] += x * b0;
        acc[i][1] += x * b1;
      }
    }
  }
  for (int i = 0; i < KT; ++i) {
    store(st + i * ldst, acc[i][0]);
    store(st + i * ldst + 8, acc[i][1]);
  }
}

/// Scores of KT keys against every query panel.
template <int KT>
LOOM_INLINE void scoreKeys(const float *blk, int64_t kChunks, const float *qp,
                           int64_t panels, float *st, int64_t ldst) {
  for (int64_t p = 0; p < panels; ++p)
    scoreTile<KT>(blk, kChunks, qp + p * kChunks * kLanes * kLanes,
                  st + p * kLanes, ldst);
}

//===----------------------------------------------------------------------===//
// One task: a chunk of keys of one batch row
//===----------------------------------------------------------------------===//

/// Packs the queries of batch row b, times `scale`, into 16-row panels,
/// k-major over [q_lat, 0 to Cp, q_pe, 0 to Rp], zero past M.
LOOM_INLINE void packQueries(const Problem &pr, int64_t b, float *qp) {
  const int64_t Kp = pr.Kp;
  for (int64_t p = 0; p < pr.Mp / kLanes; ++p) {
    float *panel = qp + p * Kp * kLanes;
    const float *lat[kLanes], *rope[kLanes];
    for (int64_t r = 0; r < kLanes; ++r) {
      int64_t m = p * kLanes + r;
      if (m >= pr.M) {
        lat[r] = rope[r] = nullptr;
        continue;
      }
      int64_t s = m / pr.H, h = m % pr.H;
      lat[r] =
          pr.qLat.p + b * pr.qLat.st[0] + s * pr.qLat.st[1] + h * pr.qLat.st[2];
      rope[r] =
          pr.qPe.p + b * pr.qPe.st[0] + s * pr.qPe.st[1] + h * pr.qPe.st[2];
    }
    for (int64_t k = 0; k < pr.Cp; ++k)
      for (int64_t r = 0; r < kLanes; ++r)
        panel[k * kLanes + r] =
            lat[r] && k < pr.C ? pr.scale * lat[r][k * pr.qLat.st[3]] : 0.0f;
    panel += pr.Cp * kLanes;
    for (int64_t k = 0; k < pr.Rp; ++k)
      for (int64_t r = 0; r < kLanes; ++r)
        panel[k * kLanes + r] =
            rope[r] && k < pr.R ? pr.scale * rope[r][k * pr.qPe.st[3]] : 0.0f;
  }
}

/// Packs rows [t0, t0 + nb) of a strided [T, n] matrix into chunks of 16
/// columns, kChunkStride apart, zero past n. Rows are read in order, the
/// way the cache streams from memory.
LOOM_INLINE void packBlock(const float *src, int64_t rs, int64_t cs, int64_t t0,
                           int64_t nb, int64_t n, float *dst) {
  const int64_t full = n / kLanes, chunkStride = kChunkStride;
  for (int64_t t = 0; t < nb; ++t) {
    const float *row = src + (t0 + t) * rs;
    float *out = dst + t * kLanes;
    if (cs == 1) {
      for (int64_t q = 0; q < full; ++q) {
        store(out + q * chunkStride, load(row + q * kLanes));
        store(out + q * chunkStride + 8, load(row + q * kLanes + 8));
      }
    } else {
      for (int64_t q = 0; q < full; ++q)
        for (int64_t k = 0; k < kLanes; ++k)
          out[q * chunkStride + k] = row[(q * kLanes + k) * cs];
    }
    if (full * kLanes < n) {
      float *tail = out + full * chunkStride;
      for (int64_t k = 0; k < kLanes; ++k) {
        int64_t col = full * kLanes + k;
        tail[k] = col < n ? row[col * cs] : 0.0f;
      }
    }
  }
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
  const int64_t Mp = pr.Mp, ldst = pr.ldst, ldo = pr.ldo;
  const int64_t panels = Mp / kLanes, kChunks = pr.Kp / kLanes;
  const int64_t chunkStride = kChunkStride;

  const float *qp;
  if (pr.queries) {
    qp = pr.queries + b * Mp * pr.Kp;
  } else {
    float *own = ws.queries.floats(Mp * pr.Kp);
    packQueries(pr, b, own);
    qp = own;
  }
  float *blk = ws.block.floats(kChunkStride * (pr.Kp / kLanes));
  float *st = ws.scores.floats(kKeyBlock * ldst);
  float *state = ws.state.floats(3 * Mp);
  float *mRun = state, *lRun = state + Mp, *alpha = state + 2 * Mp;
  auto *visibleInBlock =
      static_cast<int32_t *>(ws.limits.get(Mp * int64_t(sizeof(int32_t))));
  float *o = pr.chunks > 1 ? pr.slot(b, c) : ws.output.floats(pr.M * ldo);

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
  for (int64_t blkIndex = blockBegin; blkIndex < blockEnd; ++blkIndex) {
    const int64_t t0 = blkIndex * kKeyBlock;
    const int64_t nb = std::min(kKeyBlock, pr.visible - t0);
    const bool first = blkIndex == blockBegin;
    packBlock(kvB, pr.kv.st[1], pr.kv.st[2], t0, nb, pr.C, blk);
    packBlock(peB, pr.pe.st[1], pr.pe.st[2], t0, nb, pr.R,
              blk + (pr.Cp / kLanes) * chunkStride);

    // Scores of the block, [nb][ldst], key tiles outermost so that the
    // tile's keys stay in L1 while every query panel passes.
    int64_t t = 0;
    for (; t + kKeyTile <= nb; t += kKeyTile)
      scoreKeys<kKeyTile>(blk + t * kLanes, kChunks, qp, panels, st + t * ldst,
                          ldst);
#define LOOM_CALL(n)                                                           \
  scoreKeys<n>(blk + t * kLanes, kChunks, qp, panels, st + t * ldst, ldst)
    LOOM_TILE_TAIL(nb, t, LOOM_CALL)
#undef LOOM_CALL

    // Causal masking only touches the blocks past the first query's last key.
    const int32_t *mask = nullptr;
    if (t0 + nb > minLimit) {
      for (int64_t m = 0; m < Mp; ++m)
        visibleInBlock[m] =
            static_cast<int32_t>(std::clamp<int64_t>(pr.limit(m) - t0, 0, nb));
      mask = visibleInBlock;
    }
    softmaxBlock(st, ldst, nb, mask, mRun, lRun, alpha, Mp);

    // The next block streams in while this one is multiplied, instead of
    // stalling its copy into `blk` (measured: +6-8% of the FMA peak at
    // H = 16, where the copy is a third of the time). When its rows are
    // contiguous, the first row tile of each column chunk prefetches one
    // line of kv per key (Cp / 16 * nb lines in all, the block's size), and
    // the second row tile of the first R / 16 chunks does the same for pe.
    const char *prefetchKv = nullptr, *prefetchPe = nullptr;
    if (blkIndex + 1 < blockEnd && t0 + 2 * nb <= pr.visible) {
      if (pr.kv.st[2] == 1 && pr.kv.st[1] == pr.C && pr.C % kLanes == 0)
        prefetchKv = reinterpret_cast<const char *>(kvB + (t0 + nb) * pr.C);
      if (pr.pe.st[2] == 1 && pr.pe.st[1] == pr.R && pr.R % kLanes == 0 &&
          pr.R <= pr.C && pr.M >= 2 * kRowTile)
        prefetchPe = reinterpret_cast<const char *>(peB + (t0 + nb) * pr.R);
    }
    // O = alpha * O + P . kv_blk, column chunks outermost so that the
    // chunk (nb x 16, contiguous) stays in L1 while every row tile passes.
    for (int64_t j = 0; j < pr.Cp; j += kLanes) {
      const float *v = blk + (j / kLanes) * chunkStride;
      int64_t m = 0;
      if (prefetchKv && pr.M >= kRowTile) {
        outputTile<kRowTile, true>(st, ldst, v, kLanes, nb, alpha, o + j, ldo,
                                   first, prefetchKv + (j / kLanes) * nb * 64);
        m = kRowTile;
        if (prefetchPe && j < pr.R) {
          outputTile<kRowTile, true>(st + m, ldst, v, kLanes, nb, alpha + m,
                                     o + m * ldo + j, ldo, first,
                                     prefetchPe + (j / kLanes) * nb * 64);
          m += kRowTile;
        }
      }
      for (; m + kRowTile <= pr.M; m += kRowTile)
        outputTile<kRowTile>(st + m, ldst, v, kLanes, nb, alpha + m,
                             o + m * ldo + j, ldo, first);
#define LOOM_CALL(n)                                                           \
  outputTile<n>(st + m, ldst, v, kLanes, nb, alpha + m, o + m * ldo + j, ldo,  \
                first)
      LOOM_TILE_TAIL(pr.M, m, LOOM_CALL)
#undef LOOM_CALL
    }
  }

  if (pr.chunks > 1) {
    float *slotState = o + pr.M * ldo;
    std::memcpy(slotState, mRun, Mp * sizeof(float));
    std::memcpy(slotState + Mp, lRun, Mp * sizeof(float));
    return;
  }
  for (int64_t m = 0; m < pr.M; ++m)
    writeOutputRow(pr, b, m, o + m * ldo, lRun[m] > 0 ? 1.0f / lRun[m] : 0.0f);
}

/// Merges the partial results of the chunks of batch row b for query row m
/// (log-sum-exp) and writes the output row.
LOOM_INLINE void mergeRowImpl(const Problem &pr, int64_t b, int64_t m) {
  const int64_t Cp = pr.Cp, state = pr.M * pr.ldo;
  float mMax = kNegInf;
  for (int64_t c = 0; c < pr.chunks; ++c)
    mMax = std::max(mMax, pr.slot(b, c)[state + m]);
  float *row = workspace().mergeRow.floats(Cp);
  for (int64_t j = 0; j < Cp; j += 8)
    store(row + j, splat(0.0f));
  if (mMax == kNegInf) {
    writeOutputRow(pr, b, m, row, 0.0f);
    return;
  }
  float sum = 0;
  for (int64_t c = 0; c < pr.chunks; ++c) {
    const float *slot = pr.slot(b, c);
    float mc = slot[state + m];
    if (mc == kNegInf)
      continue;
    float w = std::exp(mc - mMax);
    sum += w * slot[state + pr.Mp + m];
    const float *o = slot + m * pr.ldo;
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
LOOM_TARGET_AVX2 void packQueriesAvx2(const Problem &pr, int64_t b, float *qp) {
  packQueries(pr, b, qp);
}
LOOM_TARGET_AVX2 void runTaskAvx2(const Problem &pr, int64_t task) {
  runTaskImpl(pr, task);
}
LOOM_TARGET_AVX2 void mergeRowAvx2(const Problem &pr, int64_t b, int64_t m) {
  mergeRowImpl(pr, b, m);
}
#endif

void packQueriesGeneric(const Problem &pr, int64_t b, float *qp) {
  packQueries(pr, b, qp);
}
void runTaskGeneric(const Problem &pr, int64_t task) { runTaskImpl(pr, task); }
void mergeRowGeneric(const Problem &pr, int64_t b, int64_t m) {
  mergeRowImpl(pr, b, m);
}

struct Kernels {
  void (*packQueries)(const Problem &, int64_t, float *);
  void (*runTask)(const Problem &, int64_t);
  void (*mergeRow)(const Problem &, int64_t, int64_t);
};

Kernels selectKernels() {
#if defined(__x86_64__)
  if (cpuHasAvx2Fma())
    return {packQueriesAvx2, runTaskAvx2, mergeRowAvx2};
#endif
  return {packQueriesGeneric, runTaskGeneric, mergeRowGeneric};
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

void packBody(void *ctx, int64_t begin, int64_t end) {
  const auto &pr = *static_cast<const Problem *>(ctx);
  for (int64_t b = begin; b < end; ++b)
    kernels().packQueries(pr, b, pr.queries + b * pr.Mp * pr.Kp);
}

void mergeBody(void *ctx, int64_t begin, int64_t end) {
  const auto &pr = *static_cast<const Problem *>(ctx);
  for (int64_t i = begin; i < end; ++i)
    kernels().mergeRow(pr, i / pr.M, i % pr.M);
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
  pr.Mp = roundUp(pr.M, kLanes);
  pr.Cp = roundUp(pr.C, kLanes);
  pr.Rp = roundUp(pr.R, kLanes);
  pr.Kp = pr.Cp + pr.Rp;
  pr.ldst = pr.Mp + 8;
  pr.ldo = pr.Cp + kLanes;
  pr.partials = nullptr;
  pr.slotFloats = 0;
  pr.chunks = 1;
  pr.visible = pr.limit(pr.M - 1);
  pr.blocks = ceilDiv(pr.visible, kKeyBlock);
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
  int64_t slotFloats = pr.M * pr.ldo + 2 * pr.Mp;
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

  // The queries of a batch row are packed once for all of its chunks.
  pr.queries = nullptr;
  if (pr.chunks > 1) {
    pr.queries = static_cast<float *>(
        loom_rt_alloc(pr.B * pr.Mp * pr.Kp * int64_t(sizeof(float)), 64));
    if (pr.queries)
      runParallel(threads, packBody, &pr, pr.B);
  }

  runParallel(threads, taskBody, &pr, pr.B * pr.chunks);
  if (pr.chunks > 1) {
    runParallel(threads, mergeBody, &pr, pr.B * pr.M);
    loom_rt_free(pr.partials);
    loom_rt_free(pr.queries);
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
