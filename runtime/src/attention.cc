//===- attention.cc - Masked flash attention on the CPU -------------------===//
//
// This file implements the host function loom_rt_attention_f32: attention
// with a mask and a score modifier (the compiled regions of
// `fuse.attention`), flash style. The queries of every (batch, head) are cut
// into tiles of kQTile rows and the keys into tiles of kKTile; a task owns one
// query tile and walks the key tiles with an online softmax (running max and
// sum per row, the output accumulated unnormalized and rescaled when the max
// grows), so the [Sq, Skv] scores never exist in memory.
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
// Keys are packed once per call, tile by tile, transposed ([Dk][kKTile]) so
// that the score micro-kernel broadcasts a query element and multiplies 16
// keys at once; values are packed in 16-column strips ([kKTile][16]) for the
// output micro-kernel. Both micro-kernels keep a 6 x 16 register tile and are
// compiled twice, for AVX2+FMA (chosen at run time) and for the baseline.
//
//===----------------------------------------------------------------------===//

#include "internal.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

using namespace loom;

namespace {

//===----------------------------------------------------------------------===//
// Blocking
//===----------------------------------------------------------------------===//

/// Query rows per task and key columns per tile; also the granularity of the
/// mask's block classification.
constexpr int64_t kQTile = 64;
constexpr int64_t kKTile = 64;
/// Width of a micro-kernel column strip: two 8-float vectors.
constexpr int64_t kLanes = 16;
/// Rows of a micro-kernel register tile (6 x 16 accumulators in 12 vector
/// registers).
constexpr int kRowTile = 6;
/// Row stride of the score tile: a little more than a tile so that the rows
/// a micro-kernel broadcasts from do not share L1 sets.
constexpr int64_t kScoreStride = kKTile + 8;
/// Bound on the packed keys and values of one pass; larger problems pack and
/// run their (batch, kv head) pairs in several passes.
constexpr int64_t kMaxPackBytes = int64_t(64) << 20;
/// Bound on the table of tile classes (one byte per tile and mask group);
/// above it, tasks classify their tiles as they go.
constexpr int64_t kMaxClassTable = int64_t(16) << 20;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

int64_t roundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
int64_t ceilDiv(int64_t x, int64_t m) { return (x + m - 1) / m; }

//===----------------------------------------------------------------------===//
// Problem
//===----------------------------------------------------------------------===//

/// A strided f32 view of rank <= 4.
struct View {
  float *p;
  int64_t st[4];
};

struct Problem {
  View q, k, v, out, lse;
  bool hasLse;
  int64_t B, Hq, Hkv, Sq, Skv, Dk, Dv;
  /// Query heads per kv head.
  int64_t group;
  /// Dv padded to whole strips.
  int64_t Dvp;
  float scale;
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

  // The pass being run: pairs (b * Hkv + kv head) [pairBegin, pairEnd).
  int64_t pairBegin, pairEnd;
  /// Packed keys: per pair and key tile, [Dk][kKTile].
  float *kPack;
  /// Packed values: per pair and key tile, Dvp / 16 strips of [kKTile][16].
  float *vPack;
  int64_t kTileFloats, vTileFloats;
  /// Tasks of the pass, most expensive first, and the next one to hand out.
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
    int32_t c = maskBlock(ctx, maskUsesB ? b : 0, maskUsesH ? h : 0, i0,
                          std::min(i0 + kQTile, Sq), j0,
                          std::min(j0 + kKTile, Skv));
    return c == LOOM_ATTENTION_BLOCK_NONE || c == LOOM_ATTENTION_BLOCK_ALL
               ? c
               : LOOM_ATTENTION_BLOCK_SOME;
  }
};

//===----------------------------------------------------------------------===//
// Per-thread workspace
//===----------------------------------------------------------------------===//

/// A growable, 64-byte aligned buffer.
class Buffer {
public:
  Buffer() = default;
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  ~Buffer() { std::free(data); }

  void *get(int64_t bytes64) {
    size_t bytes = static_cast<size_t>(std::max<int64_t>(bytes64, 64));
    if (bytes > capacity) {
      std::free(data);
      capacity = (bytes + 63) & ~size_t(63);
      data = std::aligned_alloc(64, capacity);
      if (!data)
        capacity = 0;
    }
    return data;
  }
  float *floats(int64_t n) { return static_cast<float *>(get(n * 4)); }

private:
  void *data = nullptr;
  size_t capacity = 0;
};

struct Workspace {
  Buffer queries; ///< Scaled query tile: [kQTile][Dk].
  Buffer scores;  ///< Scores, then probabilities: [kQTile][kScoreStride].
  Buffer mask;    ///< Byte mask of a SOME tile: [kQTile][kKTile].
  Buffer output;  ///< Unnormalized output: [kQTile][Dvp].
  Buffer state;   ///< Row max, sum, rescale factor, new max: 4 x [kQTile].
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

LOOM_INLINE float hmax(v8f v) {
  v8f s = vmax(v, __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3));
  s = vmax(s, __builtin_shufflevector(s, s, 2, 3, 0, 1, 6, 7, 4, 5));
  s = vmax(s, __builtin_shufflevector(s, s, 1, 0, 3, 2, 5, 4, 7, 6));
  return s[0];
}

LOOM_INLINE float hsum(v8f v) {
  v8f s = v + __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3);
  s = s + __builtin_shufflevector(s, s, 2, 3, 0, 1, 6, 7, 4, 5);
  s = s + __builtin_shufflevector(s, s, 1, 0, 3, 2, 5, 4, 7, 6);
  return s[0];
}

/// exp(x) for float lanes, within 2 ulp on [-87.3, 88.7]; 0 below (so
/// exp(-inf) = 0 exactly), +inf above. Cephes' expf: x = n ln2 + r with
/// |r| <= ln2 / 2, a degree-6 polynomial for exp(r), and 2^n built in the
/// exponent field (in two factors so that n = 128 stays representable).
LOOM_INLINE v8f vexp(v8f x) {
  const v8f lo = splat(-87.33654f), hi = splat(88.72283f);
  v8i under = x<lo, over = x> hi;
  x = vmax(x, lo);
  x = select(x > hi, hi, x);
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

/// Scores of MT query rows (qs, row stride ldq, already scaled) against 16
/// keys of a packed key tile (kt[d * kKTile + 0:16]):
///   s[i][0:16] = sum_d qs[i][d] * kt[d][0:16]
template <int MT>
LOOM_INLINE void scoreTile(const float *qs, int64_t ldq, const float *kt,
                           int64_t dk, float *s) {
  v8f acc[MT][2] = {};
  for (int64_t d = 0; d < dk; ++d) {
    v8f b0 = load(kt + d * kKTile), b1 = load(kt + d * kKTile + 8);
    for (int i = 0; i < MT; ++i) {
      v8f x = splat(qs[i * ldq + d]);
      acc[i][0] += x * b0;
      acc[i][1] += x * b1;
    }
  }
  for (int i = 0; i < MT; ++i) {
    store(s + i * kScoreStride, acc[i][0]);
    store(s + i * kScoreStride + 8, acc[i][1]);
  }
}

/// Output update of MT query rows and one strip of 16 columns (v: [nb][16])
/// over nb keys:
///   o[i][0:16] = alpha[i] * o[i][0:16] + sum_t p[i][t] * v[t][0:16]
/// (o is not read when `first`).
template <int MT>
LOOM_INLINE void outputTile(const float *p, const float *v, int64_t nb,
                            const float *alpha, float *o, int64_t ldo,
                            bool first) {
  v8f acc[MT][2] = {};
  for (int64_t t = 0; t < nb; ++t) {
    v8f b0 = load(v + t * kLanes), b1 = load(v + t * kLanes + 8);
    for (int i = 0; i < MT; ++i) {
      v8f x = splat(p[i * kScoreStride + t]);
      acc[i][0] += x * b0;
      acc[i][1] += x * b1;
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

/// Calls Tile<n> for n = rows - r in [1, kRowTile) (the tail of a row loop).
#define LOOM_ROW_TAIL(rows, r, CALL)                                           \
  switch ((rows) - (r)) {                                                      \
  case 1:                                                                      \
    CALL(1);                                                                   \
    break;                                                                     \
  case 2:                                                                      \
    CALL(2);                                                                   \
    break;                                                                     \
  case 3:                                                                      \
    CALL(3);                                                                   \
    break;                                                                     \
  case 4:                                                                      \
    CALL(4);                                                                   \
    break;                                                                     \
  case 5:                                                                      \
    CALL(5);                                                                   \
    break;                                                                     \
  default:                                                                     \
    break;                                                                     \
  }

/// Scores of `rows` query rows against the first nbp (a multiple of 16) keys
/// of a packed tile, into s [rows][kScoreStride].
LOOM_INLINE void scoreBlock(const float *qs, int64_t dk, const float *kt,
                            int64_t rows, int64_t nbp, float *s) {
  for (int64_t j = 0; j < nbp; j += kLanes) {
    int64_t r = 0;
    for (; r + kRowTile <= rows; r += kRowTile)
      scoreTile<kRowTile>(qs + r * dk, dk, kt + j, dk,
                          s + r * kScoreStride + j);
#define LOOM_CALL(n)                                                           \
  scoreTile<n>(qs + r * dk, dk, kt + j, dk, s + r * kScoreStride + j)
    LOOM_ROW_TAIL(rows, r, LOOM_CALL)
#undef LOOM_CALL
  }
}

/// o = alpha * o + p . v for `rows` rows, nb keys, dvp columns.
LOOM_INLINE void outputBlock(const float *p, const float *vt, int64_t nb,
                             int64_t rows, int64_t dvp, const float *alpha,
                             float *o, bool first) {
  for (int64_t j = 0; j < dvp; j += kLanes) {
    const float *v = vt + (j / kLanes) * kKTile * kLanes;
    int64_t r = 0;
    for (; r + kRowTile <= rows; r += kRowTile)
      outputTile<kRowTile>(p + r * kScoreStride, v, nb, alpha + r,
                           o + r * dvp + j, dvp, first);
#define LOOM_CALL(n)                                                           \
  outputTile<n>(p + r * kScoreStride, v, nb, alpha + r, o + r * dvp + j, dvp,  \
                first)
    LOOM_ROW_TAIL(rows, r, LOOM_CALL)
#undef LOOM_CALL
  }
}

/// The online-softmax update of one tile: scores s [rows][kScoreStride] over
/// nbp keys (masked ones -inf) become probabilities against the new running
/// max; alpha receives the factor that rescales what was accumulated before,
/// and the running max mRun and sum lRun are updated. A row that has seen no
/// finite score keeps max -inf; its exponents are taken against 0, which
/// makes its probabilities and alpha exactly 0. mNew is scratch ([kQTile]).
LOOM_INLINE void softmaxBlock(float *s, int64_t rows, int64_t nbp, float *mRun,
                              float *lRun, float *alpha, float *mNew) {
  for (int64_t r = 0; r < rows; ++r) {
    const float *row = s + r * kScoreStride;
    v8f mx = load(row);
    for (int64_t t = 8; t < nbp; t += 8)
      mx = vmax(mx, load(row + t));
    mNew[r] = std::max(mRun[r], hmax(mx));
  }
  int64_t rowsPadded = roundUp(rows, 8);
  for (int64_t r = rows; r < rowsPadded; ++r)
    mNew[r] = mRun[r] = kNegInf;
  for (int64_t r = 0; r < rowsPadded; r += 8) {
    v8f m = load(mNew + r);
    v8f safe = select(m == splat(kNegInf), splat(0.0f), m);
    store(alpha + r, vexp(load(mRun + r) - safe));
    store(mRun + r, m);
    store(mNew + r, safe);
  }
  for (int64_t r = 0; r < rows; ++r) {
    float *row = s + r * kScoreStride;
    v8f safe = splat(mNew[r]);
    v8f sum = splat(0.0f);
    for (int64_t t = 0; t < nbp; t += 8) {
      v8f e = vexp(load(row + t) - safe);
      store(row + t, e);
      sum += e;
    }
    lRun[r] = lRun[r] * alpha[r] + hsum(sum);
  }
}

//===----------------------------------------------------------------------===//
// Packing
//===----------------------------------------------------------------------===//

/// Packs key tile kt of pair `pair` transposed ([Dk][kKTile]) and its value
/// tile in strips ([Dvp / 16][kKTile][16]), zero past the last key and past
/// Dv.
LOOM_INLINE void packTileImpl(const Problem &pr, int64_t pair, int64_t kt) {
  const int64_t b = pair / pr.Hkv, h = pair % pr.Hkv;
  const int64_t j0 = kt * kKTile, nb = std::min(kKTile, pr.Skv - j0);
  const int64_t local = (pair - pr.pairBegin) * pr.nk + kt;
  float *kp = pr.kPack + local * pr.kTileFloats;
  float *vp = pr.vPack + local * pr.vTileFloats;
  const float *kSrc = pr.k.p + b * pr.k.st[0] + h * pr.k.st[1];
  const float *vSrc = pr.v.p + b * pr.v.st[0] + h * pr.v.st[1];
  const int64_t kcs = pr.k.st[3], vcs = pr.v.st[3];
  for (int64_t t = 0; t < nb; ++t) {
    const float *row = kSrc + (j0 + t) * pr.k.st[2];
    if (kcs == 1) {
      for (int64_t d = 0; d < pr.Dk; ++d)
        kp[d * kKTile + t] = row[d];
    } else {
      for (int64_t d = 0; d < pr.Dk; ++d)
        kp[d * kKTile + t] = row[d * kcs];
    }
  }
  for (int64_t d = 0; d < pr.Dk; ++d)
    for (int64_t t = nb; t < kKTile; ++t)
      kp[d * kKTile + t] = 0.0f;
  for (int64_t t = 0; t < nb; ++t) {
    const float *row = vSrc + (j0 + t) * pr.v.st[2];
    for (int64_t c = 0; c < pr.Dvp; ++c)
      vp[(c / kLanes) * kKTile * kLanes + t * kLanes + c % kLanes] =
          c < pr.Dv ? row[c * vcs] : 0.0f;
  }
}

//===----------------------------------------------------------------------===//
// One task: a query tile of one (batch row, query head)
//===----------------------------------------------------------------------===//

/// Writes the output and lse rows of the tile.
LOOM_INLINE void writeRows(const Problem &pr, int64_t b, int64_t h, int64_t i0,
                           int64_t rows, const float *o, const float *mRun,
                           const float *lRun, bool any) {
  for (int64_t r = 0; r < rows; ++r) {
    float l = any ? lRun[r] : 0.0f;
    float factor = l > 0 ? 1.0f / l : 0.0f;
    float *dst = pr.out.p + b * pr.out.st[0] + h * pr.out.st[1] +
                 (i0 + r) * pr.out.st[2];
    const int64_t cs = pr.out.st[3];
    if (!any || l <= 0) {
      for (int64_t c = 0; c < pr.Dv; ++c)
        dst[c * cs] = 0.0f;
    } else if (cs == 1) {
      for (int64_t c = 0; c < pr.Dv; ++c)
        dst[c] = o[r * pr.Dvp + c] * factor;
    } else {
      for (int64_t c = 0; c < pr.Dv; ++c)
        dst[c * cs] = o[r * pr.Dvp + c] * factor;
    }
    if (pr.hasLse)
      pr.lse.p[b * pr.lse.st[0] + h * pr.lse.st[1] + (i0 + r) * pr.lse.st[2]] =
          l > 0 ? mRun[r] + std::log(l) : kNegInf;
  }
}

LOOM_INLINE void runTaskImpl(const Problem &pr, int64_t task) {
  Workspace &ws = workspace();
  const int64_t qt = task % pr.nq;
  const int64_t g = task / pr.nq % pr.group;
  const int64_t pair = pr.pairBegin + task / (pr.nq * pr.group);
  const int64_t b = pair / pr.Hkv, hkv = pair % pr.Hkv;
  const int64_t h = hkv * pr.group + g;
  const int64_t i0 = qt * kQTile, rows = std::min(kQTile, pr.Sq - i0);
  const int64_t dk = pr.Dk, dvp = pr.Dvp;

  float *qs = ws.queries.floats(kQTile * dk);
  float *s = ws.scores.floats(kQTile * kScoreStride);
  auto *mask = static_cast<uint8_t *>(ws.mask.get(kQTile * kKTile));
  float *o = ws.output.floats(kQTile * dvp);
  float *state = ws.state.floats(4 * kQTile);
  float *mRun = state, *lRun = state + kQTile, *alpha = state + 2 * kQTile,
        *mNew = state + 3 * kQTile;
  if (!qs || !s || !mask || !o || !state)
    return;

  const float *qSrc = pr.q.p + b * pr.q.st[0] + h * pr.q.st[1];
  for (int64_t r = 0; r < rows; ++r) {
    const float *row = qSrc + (i0 + r) * pr.q.st[2];
    for (int64_t d = 0; d < dk; ++d)
      qs[r * dk + d] = pr.scale * row[d * pr.q.st[3]];
  }
  for (int64_t r = 0; r < kQTile; ++r) {
    mRun[r] = kNegInf;
    lRun[r] = 0.0f;
  }

  bool first = true;
  for (int64_t kt = 0; kt < pr.nk; ++kt) {
    int32_t cls = pr.tileClass(b, h, qt, kt);
    if (cls == LOOM_ATTENTION_BLOCK_NONE)
      continue;
    const int64_t j0 = kt * kKTile, nb = std::min(kKTile, pr.Skv - j0);
    const int64_t nbp = roundUp(nb, kLanes);
    if (cls == LOOM_ATTENTION_BLOCK_SOME) {
      // Refine with the rows of the mask.
      int64_t visible = 0;
      for (int64_t r = 0; r < rows; ++r) {
        uint8_t *mr = mask + r * kKTile;
        pr.maskRow(pr.ctx, b, h, i0 + r, j0, nb, mr);
        for (int64_t t = 0; t < nb; ++t)
          visible += mr[t] != 0;
      }
      if (visible == 0)
        continue;
      if (visible == rows * nb)
        cls = LOOM_ATTENTION_BLOCK_ALL;
    }

    const int64_t local = (pair - pr.pairBegin) * pr.nk + kt;
    scoreBlock(qs, dk, pr.kPack + local * pr.kTileFloats, rows, nbp, s);
    for (int64_t r = 0; r < rows; ++r) {
      float *row = s + r * kScoreStride;
      if (pr.scoreRow)
        pr.scoreRow(pr.ctx, b, h, i0 + r, j0, nb, row);
      if (cls == LOOM_ATTENTION_BLOCK_SOME) {
        const uint8_t *mr = mask + r * kKTile;
        for (int64_t t = 0; t < nb; ++t)
          row[t] = mr[t] ? row[t] : kNegInf;
      }
      for (int64_t t = nb; t < nbp; ++t)
        row[t] = kNegInf;
    }
    softmaxBlock(s, rows, nbp, mRun, lRun, alpha, mNew);
    outputBlock(s, pr.vPack + local * pr.vTileFloats, nb, rows, dvp, alpha, o,
                first);
    first = false;
  }
  writeRows(pr, b, h, i0, rows, o, mRun, lRun, !first);
}

//===----------------------------------------------------------------------===//
// Target dispatch
//===----------------------------------------------------------------------===//

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void runTaskAvx2(const Problem &pr,
                                                     int64_t task) {
  runTaskImpl(pr, task);
}
__attribute__((target("avx2,fma"))) void packTileAvx2(const Problem &pr,
                                                      int64_t pair,
                                                      int64_t kt) {
  packTileImpl(pr, pair, kt);
}
#endif

void runTaskGeneric(const Problem &pr, int64_t task) { runTaskImpl(pr, task); }
void packTileGeneric(const Problem &pr, int64_t pair, int64_t kt) {
  packTileImpl(pr, pair, kt);
}

struct Kernels {
  void (*runTask)(const Problem &, int64_t);
  void (*packTile)(const Problem &, int64_t, int64_t);
};

Kernels selectKernels() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return {runTaskAvx2, packTileAvx2};
#endif
  return {runTaskGeneric, packTileGeneric};
}

const Kernels &kernels() {
  static const Kernels k = selectKernels();
  return k;
}

//===----------------------------------------------------------------------===//
// Parallel bodies
//===----------------------------------------------------------------------===//

/// Each worker takes tasks from the shared counter until none is left.
void taskBody(void *ctx, int64_t, int64_t) {
  auto &pr = *static_cast<Problem *>(ctx);
  const Kernels &kern = kernels();
  for (;;) {
    int64_t i = pr.next.fetch_add(1, std::memory_order_relaxed);
    if (i >= pr.tasks)
      return;
    kern.runTask(pr, pr.order[i]);
  }
}

void packBody(void *ctx, int64_t begin, int64_t end) {
  const auto &pr = *static_cast<const Problem *>(ctx);
  const Kernels &kern = kernels();
  for (int64_t i = begin; i < end; ++i)
    kern.packTile(pr, pr.pairBegin + i / pr.nk, i % pr.nk);
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

void runParallel(int threads, void (*body)(void *, int64_t, int64_t), void *ctx,
                 int64_t n) {
  if (threads > 0)
    parallelForWithThreads(threads, body, ctx, n);
  else
    loom_rt_parallel_for(body, ctx, n);
}

View view4(const loom_memref_4d_t *m) {
  return {static_cast<float *>(m->aligned) + m->offset,
          {m->strides[0], m->strides[1], m->strides[2], m->strides[3]}};
}

/// Writes out = 0 and lse = -inf for every query (no key to attend to) or,
/// when the kernel cannot run (no memory for its buffers), out = NaN.
void fillAll(const Problem &pr, float value) {
  for (int64_t b = 0; b < pr.B; ++b)
    for (int64_t h = 0; h < pr.Hq; ++h)
      for (int64_t i = 0; i < pr.Sq; ++i) {
        float *dst = pr.out.p + b * pr.out.st[0] + h * pr.out.st[1] +
                     i * pr.out.st[2];
        for (int64_t c = 0; c < pr.Dv; ++c)
          dst[c * pr.out.st[3]] = value;
        if (pr.hasLse)
          pr.lse.p[b * pr.lse.st[0] + h * pr.lse.st[1] + i * pr.lse.st[2]] =
              value == 0.0f ? kNegInf : value;
      }
}

} // namespace

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

void loom::attentionF32WithThreads(int threads, const loom_memref_4d_t *q,
                                   const loom_memref_4d_t *k,
                                   const loom_memref_4d_t *v,
                                   loom_memref_4d_t *out,
                                   loom_memref_3d_t *lse, float scale,
                                   const loom_attention_mods_t *mods) {
  Problem pr;
  pr.q = view4(q);
  pr.k = view4(k);
  pr.v = view4(v);
  pr.out = view4(out);
  pr.hasLse = lse != nullptr;
  if (lse)
    pr.lse = {static_cast<float *>(lse->aligned) + lse->offset,
              {lse->strides[0], lse->strides[1], lse->strides[2], 0}};
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
  if (pr.B <= 0 || pr.Hq <= 0 || pr.Sq <= 0 || pr.Dv <= 0 || pr.Hkv <= 0 ||
      pr.Hq % pr.Hkv != 0 || k->sizes[0] < pr.B || v->sizes[0] < pr.B ||
      v->sizes[1] != pr.Hkv || v->sizes[2] != pr.Skv || k->sizes[3] != pr.Dk)
    return;
  pr.group = pr.Hq / pr.Hkv;
  pr.Dvp = roundUp(pr.Dv, kLanes);
  pr.nq = ceilDiv(pr.Sq, kQTile);
  pr.nk = ceilDiv(pr.Skv, kKTile);
  pr.ctx = mods ? mods->ctx : nullptr;
  pr.maskRow = mods ? mods->mask_row : nullptr;
  // Without mask_row every key is visible, whatever mask_block says.
  pr.maskBlock = pr.maskRow ? mods->mask_block : nullptr;
  pr.scoreRow = mods ? mods->score_row : nullptr;
  pr.maskUsesB = mods && (mods->flags & LOOM_ATTENTION_MASK_USES_B);
  pr.maskUsesH = mods && (mods->flags & LOOM_ATTENTION_MASK_USES_H);
  pr.classes = nullptr;
  pr.kPack = pr.vPack = nullptr;
  if (pr.Skv <= 0) {
    // No key: nothing is visible.
    fillAll(pr, 0.0f);
    return;
  }

  // Tile classes, once per mask group.
  const int64_t groups =
      (pr.maskUsesB ? pr.B : 1) * (pr.maskUsesH ? pr.Hq : 1);
  if (pr.maskBlock && groups * pr.nq * pr.nk <= kMaxClassTable) {
    pr.classes = static_cast<uint8_t *>(loom_rt_alloc(groups * pr.nq * pr.nk, 64));
    if (pr.classes)
      runParallel(threads, classifyBody, &pr, groups * pr.nq);
  }
  /// Cost of a task: the key tiles it may compute (later query tiles first
  /// when the classes are not known in advance).
  auto cost = [&](int64_t b, int64_t h, int64_t qt) -> int64_t {
    if (!pr.maskRow)
      return pr.nk;
    if (!pr.classes)
      return pr.maskBlock ? qt : pr.nk;
    const uint8_t *row = pr.classes + (pr.maskGroup(b, h) * pr.nq + qt) * pr.nk;
    int64_t n = 0;
    for (int64_t kt = 0; kt < pr.nk; ++kt)
      n += row[kt] != LOOM_ATTENTION_BLOCK_NONE;
    return n;
  };

  pr.kTileFloats = std::max<int64_t>(pr.Dk, 1) * kKTile;
  pr.vTileFloats = pr.Dvp * kKTile;
  const int64_t pairs = pr.B * pr.Hkv;
  const int64_t pairBytes =
      pr.nk * (pr.kTileFloats + pr.vTileFloats) * int64_t(sizeof(float));
  int64_t pairsPerPass =
      std::clamp<int64_t>(kMaxPackBytes / pairBytes, 1, pairs);
  float *pack = static_cast<float *>(loom_rt_alloc(pairsPerPass * pairBytes, 64));
  if (!pack && pairsPerPass > 1) {
    pairsPerPass = 1;
    pack = static_cast<float *>(loom_rt_alloc(pairBytes, 64));
  }
  if (!pack) {
    fillAll(pr, std::numeric_limits<float>::quiet_NaN());
    loom_rt_free(pr.classes);
    return;
  }
  pr.kPack = pack;
  pr.vPack = pack + pairsPerPass * pr.nk * pr.kTileFloats;

  const int teamSize = threads > 0 ? threads : loom_runtime_num_threads();
  std::vector<int64_t> order, costs;
  for (int64_t begin = 0; begin < pairs; begin += pairsPerPass) {
    pr.pairBegin = begin;
    pr.pairEnd = std::min(pairs, begin + pairsPerPass);
    runParallel(threads, packBody, &pr, (pr.pairEnd - begin) * pr.nk);

    pr.tasks = (pr.pairEnd - begin) * pr.group * pr.nq;
    order.resize(static_cast<size_t>(pr.tasks));
    costs.resize(static_cast<size_t>(pr.tasks));
    for (int64_t t = 0; t < pr.tasks; ++t) {
      int64_t pair = begin + t / (pr.nq * pr.group);
      int64_t h = pair % pr.Hkv * pr.group + t / pr.nq % pr.group;
      costs[t] = cost(pair / pr.Hkv, h, t % pr.nq);
    }
    std::iota(order.begin(), order.end(), int64_t(0));
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return costs[a] != costs[b] ? costs[a] > costs[b] : a < b;
    });
    pr.order = order.data();
    pr.next.store(0, std::memory_order_relaxed);
    runParallel(threads, taskBody, &pr,
                std::min<int64_t>(teamSize, pr.tasks));
  }
  loom_rt_free(pack);
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
