//===- token_logprob.cc - Chunked lm-head log-probabilities on the CPU ----===//
//
// This file implements the host functions loom_rt_token_logprob_f32 and
// loom_rt_token_logprob_grad_f32: the log-probability of each token's id
// under an lm-head, and its backward, without the [N, V] logits ever
// existing in memory; and loom_rt_token_logprob_rows_f32 and
// loom_rt_token_logprob_rows_grad_f32, a block of tokens of the single-pass
// form (the last section).
//
// Both walk the vocabulary in chunks of C rows of the weight. Per chunk, one
// GEMM (loom_rt_matmul_f32, so oneDNN's sgemm when the runtime has it, else
// the runtime's packed kernel) writes the raw products
//   S[n, j] = hidden[n] . weight[v0 + j]                    [N, C] scratch
// and a parallel loop over the tokens reads them:
//  - forward: an online log-sum-exp per token (a running max and a running
//    sum rescaled when the max grows, in base 2 so that one multiply by
//    log2(e) / t turns a product into an exponent), and the token's own
//    logit taken when its id falls in the chunk;
//  - backward: S is overwritten in place by
//      dlogits[n, j] = g[n] / t * ([v0 + j == ids[n]] - exp(logits - lse[n]))
//    and two more GEMMs accumulate grad_hidden += dlogits . weight_chunk and
//    write grad_weight[v0 : v0 + C] = dlogits^T . hidden (add it, with the
//    flag LOOM_TOKEN_LOGPROB_ACCUMULATE: a gradient summed into a state).
// The extra memory is the N x C scratch plus 3 N floats, taken from
// loom_rt_alloc (which keeps large blocks for the next call). The backward
// leaves out the tokens whose upstream gradient is exactly 0 (the padding of
// a batch under its mask): when there are any, the others' hidden rows, ids,
// g and lse are gathered into dense copies (2 N x d floats more at most),
// the chunks run over those, and grad_hidden is scattered back with zero
// rows for the tokens left out.
//
// The default chunk (chunk == 0) keeps the scratch near kScratchFloats
// floats (4 MiB): C = kScratchFloats / N rounded down to a multiple of 16,
// clamped to [kMinChunk, kMaxChunk] = [256, 4096], and to V.
//
// Caller errors are reported in the numbers, never by reading out of bounds:
// a token whose id is outside [0, V) gets logp = NaN (its lse is still
// computed) and, in the backward when its g is not 0, a NaN row of dlogits
// (so the gradients it reaches are NaN); a temperature that is not > 0 makes
// every output NaN; a scratch allocation that fails does the same, and so
// do flags other than LOOM_TOKEN_LOGPROB_ACCUMULATE. The forward's lse may
// be NULL when only logp is wanted.
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

constexpr int64_t kScratchFloats = int64_t(1) << 20;
constexpr int64_t kMinChunk = 256;
constexpr int64_t kMaxChunk = 4096;

constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2 = 0.693147180559945309f;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

/// The vocabulary rows per step: `chunk` when positive, else the default of
/// the file comment; never more than V (and at least 1).
int64_t chunkRows(int64_t chunk, int64_t N, int64_t V) {
  int64_t c = chunk;
  if (c <= 0) {
    c = kScratchFloats / std::max<int64_t>(N, 1) / 16 * 16;
    c = std::clamp(c, kMinChunk, kMaxChunk);
  }
  return std::max<int64_t>(1, std::min(c, V));
}

//===----------------------------------------------------------------------===//
// Operand access
//===----------------------------------------------------------------------===//

/// A strided 1-D view of a loom_memref_1d_t of element type T.
template <typename T> struct Vec {
  T *p;
  int64_t st;
  T &operator[](int64_t i) const { return p[i * st]; }
};

template <typename T> Vec<T> vec(const loom_memref_1d_t *m) {
  return {static_cast<T *>(m->aligned) + m->offset, m->strides[0]};
}

/// Rows [v0, v0 + c) of a rank-2 memref.
loom_memref_2d_t rows(const loom_memref_2d_t *m, int64_t v0, int64_t c) {
  loom_memref_2d_t r = *m;
  r.offset += v0 * m->strides[0];
  r.sizes[0] = c;
  return r;
}

/// A contiguous [rows, cols] memref over `p`.
loom_memref_2d_t dense(float *p, int64_t rows, int64_t cols) {
  loom_memref_2d_t m;
  m.allocated = m.aligned = p;
  m.offset = 0;
  m.sizes[0] = rows;
  m.sizes[1] = cols;
  m.strides[0] = std::max<int64_t>(cols, 1);
  m.strides[1] = 1;
  return m;
}

/// Sets every element of a rank-2 memref to `value`.
void fill(loom_memref_2d_t *m, float value) {
  float *base = static_cast<float *>(m->aligned) + m->offset;
  for (int64_t i = 0; i < m->sizes[0]; ++i)
    for (int64_t j = 0; j < m->sizes[1]; ++j)
      base[i * m->strides[0] + j * m->strides[1]] = value;
}

/// S = hidden . weight[v0 : v0 + c]^T into the dense [N, c] scratch.
void chunkProducts(const loom_memref_2d_t *hidden,
                   const loom_memref_2d_t *weight, int64_t v0, int64_t c,
                   float *scratch) {
  int64_t N = hidden->sizes[0], d = hidden->sizes[1];
  if (d == 0) {
    std::fill(scratch, scratch + N * c, 0.0f);
    return;
  }
  loom_memref_2d_t w = rows(weight, v0, c);
  loom_memref_2d_t s = dense(scratch, N, c);
  loom_rt_matmul_f32(hidden, &w, &s, LOOM_MATMUL_TRANSPOSE_B);
}

//===----------------------------------------------------------------------===//
// Per-row loops (compiled for AVX2+FMA and for the baseline target)
//===----------------------------------------------------------------------===//

/// 2^x with x clamped to 127 above (vexp2 of kernel_util.h).
LOOM_INLINE v8f vexp2Clamped(v8f x) {
  return vexp2(select(x > splat(127.0f), splat(127.0f), x));
}

/// The largest of row[0 : c].
LOOM_INLINE float rowMax(const float *row, int64_t c) {
  int64_t j = 0;
  float m = kNegInf;
  if (c >= 8) {
    v8f vm = load(row);
    for (j = 8; j + 8 <= c; j += 8)
      vm = vmax(vm, load(row + j));
    for (int l = 0; l < 8; ++l)
      m = std::max(m, vm[l]);
  }
  for (; j < c; ++j)
    m = std::max(m, row[j]);
  return m;
}

/// sum_j 2^(row[j] * scale - shift).
LOOM_INLINE float rowExpSum(const float *row, int64_t c, float scale,
                            float shift) {
  v8f acc = splat(0.0f), vs = splat(scale), vsh = splat(shift);
  int64_t j = 0;
  for (; j + 8 <= c; j += 8)
    acc += vexp2Clamped(load(row + j) * vs - vsh);
  float sum = 0;
  for (int l = 0; l < 8; ++l)
    sum += acc[l];
  for (; j < c; ++j)
    sum += std::exp2(row[j] * scale - shift);
  return sum;
}

/// row[j] = -a * 2^(row[j] * scale - shift).
LOOM_INLINE void rowNegExp(float *row, int64_t c, float scale, float shift,
                           float a) {
  v8f vs = splat(scale), vsh = splat(shift), va = splat(-a);
  int64_t j = 0;
  for (; j + 8 <= c; j += 8)
    store(row + j, va * vexp2Clamped(load(row + j) * vs - vsh));
  for (; j < c; ++j)
    row[j] = -a * std::exp2(row[j] * scale - shift);
}

/// The state of the forward: the running max (in base-2 exponent units) and
/// sum of every token, its logit once its id's chunk has passed, and the
/// chunk at hand.
struct ForwardJob {
  const float *scratch;
  int64_t c, v0, V;
  Vec<const int64_t> ids;
  float scale2; ///< log2(e) / t.
  float invT;
  float *runMax, *runSum, *picked;
};

/// The forward's per-token step over the chunk at hand.
LOOM_INLINE void forwardRows(ForwardJob *job, int64_t begin, int64_t end) {
  for (int64_t n = begin; n < end; ++n) {
    const float *row = job->scratch + n * job->c;
    float old = job->runMax[n];
    float top = std::max(old, rowMax(row, job->c) * job->scale2);
    if (top == kNegInf)
      continue;
    job->runSum[n] = job->runSum[n] * std::exp2(old - top) +
                     rowExpSum(row, job->c, job->scale2, top);
    job->runMax[n] = top;
    int64_t id = job->ids[n];
    if (id >= job->v0 && id < job->v0 + job->c)
      job->picked[n] = row[id - job->v0] * job->invT;
  }
}

/// The state of the backward: S is turned into dlogits in place.
struct BackwardJob {
  float *scratch;
  int64_t c, v0, V;
  Vec<const int64_t> ids;
  Vec<const float> g, lse;
  float scale2, invT;
};

/// The backward's per-token step: S into dlogits, in place.
LOOM_INLINE void backwardRows(BackwardJob *job, int64_t begin, int64_t end) {
  for (int64_t n = begin; n < end; ++n) {
    float *row = job->scratch + n * job->c;
    int64_t id = job->ids[n];
    if (id < 0 || id >= job->V) {
      std::fill(row, row + job->c, kNaN);
      continue;
    }
    float a = job->g[n] * job->invT;
    rowNegExp(row, job->c, job->scale2, job->lse[n] * kLog2e, a);
    if (id >= job->v0 && id < job->v0 + job->c)
      row[id - job->v0] += a;
  }
}

using RowFn = void (*)(void *, int64_t, int64_t);

/// `Rows(job, begin, end)` as a body of loom_rt_parallel_for, compiled for
/// AVX2+FMA and for the baseline target; select() picks the one the CPU
/// runs.
template <typename Job, void (*Rows)(Job *, int64_t, int64_t)> struct RowLoop {
  LOOM_TARGET_AVX2 static void avx2(void *ctx, int64_t begin, int64_t end) {
    Rows(static_cast<Job *>(ctx), begin, end);
  }
  static void generic(void *ctx, int64_t begin, int64_t end) {
    Rows(static_cast<Job *>(ctx), begin, end);
  }
  static RowFn select() {
    static const RowFn fn = cpuHasAvx2Fma() ? avx2 : generic;
    return fn;
  }
};

/// Scratch memory from loom_rt_alloc, freed on scope exit.
struct Scratch {
  float *p;
  explicit Scratch(int64_t floats)
      : p(static_cast<float *>(
            loom_rt_alloc(std::max<int64_t>(floats, 1) * 4, 64))) {}
  ~Scratch() { loom_rt_free(p); }
};

} // namespace

extern "C" void loom_rt_token_logprob_f32(const loom_memref_2d_t *hidden,
                                          const loom_memref_2d_t *weight,
                                          const loom_memref_1d_t *ids,
                                          loom_memref_1d_t *logp,
                                          loom_memref_1d_t *lse,
                                          float temperature, int64_t chunk) {
  int64_t N = hidden->sizes[0], V = weight->sizes[0];
  if (N <= 0)
    return;
  Vec<float> outLogp = vec<float>(logp);
  Vec<float> outLse = lse ? vec<float>(lse) : Vec<float>{nullptr, 0};
  int64_t c = chunkRows(chunk, N, V);
  Scratch scratch(N * c), state(3 * N);
  if (!(temperature > 0) || !scratch.p || !state.p) {
    for (int64_t n = 0; n < N; ++n) {
      outLogp[n] = kNaN;
      if (lse)
        outLse[n] = kNaN;
    }
    return;
  }
  ForwardJob job;
  job.scratch = scratch.p;
  job.V = V;
  job.ids = vec<const int64_t>(ids);
  job.invT = 1.0f / temperature;
  job.scale2 = kLog2e / temperature;
  job.runMax = state.p;
  job.runSum = state.p + N;
  job.picked = state.p + 2 * N;
  std::fill(job.runMax, job.runMax + N, kNegInf);
  std::fill(job.runSum, job.runSum + N, 0.0f);
  std::fill(job.picked, job.picked + N, kNaN);
  RowFn rowFn = RowLoop<ForwardJob, forwardRows>::select();
  for (int64_t v0 = 0; v0 < V; v0 += c) {
    job.v0 = v0;
    job.c = std::min(c, V - v0);
    chunkProducts(hidden, weight, v0, job.c, scratch.p);
    loom_rt_parallel_for(rowFn, &job, N);
  }
  for (int64_t n = 0; n < N; ++n) {
    float l = (job.runMax[n] + std::log2(job.runSum[n])) * kLn2;
    if (lse)
      outLse[n] = l;
    outLogp[n] = job.picked[n] - l;
  }
}

namespace {

/// The chunked backward over every token given (see the file comment).
void backwardChunks(const loom_memref_2d_t *hidden,
                    const loom_memref_2d_t *weight, const loom_memref_1d_t *ids,
                    const loom_memref_1d_t *g, const loom_memref_1d_t *lse,
                    loom_memref_2d_t *grad_hidden,
                    loom_memref_2d_t *grad_weight, float temperature,
                    int64_t chunk, bool accumulate) {
  int64_t N = hidden->sizes[0], V = weight->sizes[0];
  int64_t c = chunkRows(chunk, N, V);
  Scratch scratch(N * c);
  if (!scratch.p) {
    if (grad_hidden)
      fill(grad_hidden, kNaN);
    if (grad_weight)
      fill(grad_weight, kNaN);
    return;
  }
  BackwardJob job;
  job.scratch = scratch.p;
  job.V = V;
  job.ids = vec<const int64_t>(ids);
  job.g = vec<const float>(g);
  job.lse = vec<const float>(lse);
  job.invT = 1.0f / temperature;
  job.scale2 = kLog2e / temperature;
  RowFn rowFn = RowLoop<BackwardJob, backwardRows>::select();
  for (int64_t v0 = 0; v0 < V; v0 += c) {
    job.v0 = v0;
    job.c = std::min(c, V - v0);
    chunkProducts(hidden, weight, v0, job.c, scratch.p);
    loom_rt_parallel_for(rowFn, &job, N);
    loom_memref_2d_t dl = dense(scratch.p, N, job.c);
    if (grad_hidden) {
      loom_memref_2d_t w = rows(weight, v0, job.c);
      loom_rt_matmul_f32(&dl, &w, grad_hidden,
                         v0 == 0 ? 0 : LOOM_MATMUL_ACCUMULATE);
    }
    if (grad_weight) {
      loom_memref_2d_t gw = rows(grad_weight, v0, job.c);
      loom_rt_matmul_f32(&dl, hidden, &gw,
                         LOOM_MATMUL_TRANSPOSE_A |
                             (accumulate ? LOOM_MATMUL_ACCUMULATE : 0));
    }
  }
}

/// A contiguous 1-D memref over `p`.
loom_memref_1d_t dense1d(void *p, int64_t n) {
  loom_memref_1d_t m;
  m.allocated = m.aligned = p;
  m.offset = 0;
  m.sizes[0] = n;
  m.strides[0] = 1;
  return m;
}

} // namespace

extern "C" void loom_rt_token_logprob_grad_f32(
    const loom_memref_2d_t *hidden, const loom_memref_2d_t *weight,
    const loom_memref_1d_t *ids, const loom_memref_1d_t *g,
    const loom_memref_1d_t *lse, loom_memref_2d_t *grad_hidden,
    loom_memref_2d_t *grad_weight, float temperature, int64_t chunk,
    int64_t flags) {
  if (!grad_hidden && !grad_weight)
    return;
  int64_t N = hidden->sizes[0], V = weight->sizes[0], d = hidden->sizes[1];
  bool accumulate = flags & LOOM_TOKEN_LOGPROB_ACCUMULATE;
  if (flags & ~int64_t(LOOM_TOKEN_LOGPROB_ACCUMULATE)) {
    if (grad_hidden)
      fill(grad_hidden, kNaN);
    if (grad_weight)
      fill(grad_weight, kNaN);
    return;
  }
  // Both gradients are sums over what is empty here.
  if (N <= 0 || V <= 0 || d <= 0) {
    if (grad_hidden)
      fill(grad_hidden, 0.0f);
    if (grad_weight && !accumulate)
      fill(grad_weight, 0.0f);
    return;
  }
  if (!(temperature > 0)) {
    if (grad_hidden)
      fill(grad_hidden, kNaN);
    if (grad_weight)
      fill(grad_weight, kNaN);
    return;
  }
  // A token whose upstream gradient is exactly 0 (padding under a mask)
  // contributes nothing: the GEMMs run over the others only, gathered into
  // dense copies, and its grad_hidden row is 0.
  Vec<const float> gv = vec<const float>(g);
  int64_t active = 0;
  for (int64_t n = 0; n < N; ++n)
    active += !(gv[n] == 0.0f);
  if (active == N) {
    backwardChunks(hidden, weight, ids, g, lse, grad_hidden, grad_weight,
                   temperature, chunk, accumulate);
    return;
  }
  if (grad_hidden)
    fill(grad_hidden, 0.0f);
  if (active == 0) {
    if (grad_weight && !accumulate)
      fill(grad_weight, 0.0f);
    return;
  }
  Scratch rowsCopy(active * d), gradCopy(grad_hidden ? active * d : 0);
  Scratch perToken(2 * active);
  auto *idsCopy = static_cast<int64_t *>(loom_rt_alloc(active * 8, 64));
  if (!rowsCopy.p || !gradCopy.p || !perToken.p || !idsCopy) {
    loom_rt_free(idsCopy);
    if (grad_hidden)
      fill(grad_hidden, kNaN);
    if (grad_weight)
      fill(grad_weight, kNaN);
    return;
  }
  Vec<const int64_t> idv = vec<const int64_t>(ids);
  Vec<const float> lv = vec<const float>(lse);
  const float *h = static_cast<const float *>(hidden->aligned) + hidden->offset;
  float *gc = perToken.p, *lc = perToken.p + active;
  for (int64_t n = 0, k = 0; n < N; ++n) {
    if (gv[n] == 0.0f)
      continue;
    const float *src = h + n * hidden->strides[0];
    for (int64_t j = 0; j < d; ++j)
      rowsCopy.p[k * d + j] = src[j * hidden->strides[1]];
    idsCopy[k] = idv[n];
    gc[k] = gv[n];
    lc[k] = lv[n];
    ++k;
  }
  loom_memref_2d_t hc = dense(rowsCopy.p, active, d);
  loom_memref_2d_t ghc = dense(gradCopy.p, active, d);
  loom_memref_1d_t idc = dense1d(idsCopy, active), gcm = dense1d(gc, active),
                   lcm = dense1d(lc, active);
  backwardChunks(&hc, weight, &idc, &gcm, &lcm, grad_hidden ? &ghc : nullptr,
                 grad_weight, temperature, chunk, accumulate);
  loom_rt_free(idsCopy);
  if (!grad_hidden)
    return;
  float *out = static_cast<float *>(grad_hidden->aligned) + grad_hidden->offset;
  for (int64_t n = 0, k = 0; n < N; ++n) {
    if (gv[n] == 0.0f)
      continue;
    float *dst = out + n * grad_hidden->strides[0];
    for (int64_t j = 0; j < d; ++j)
      dst[j * grad_hidden->strides[1]] = gradCopy.p[k * d + j];
    ++k;
  }
}

//===----------------------------------------------------------------------===//
// Blocks of tokens over the whole vocabulary (the single-pass loss)
//===----------------------------------------------------------------------===//
//
// loom_rt_token_logprob_rows_f32 and loom_rt_token_logprob_rows_grad_f32 are
// the two halves of one step of a loop over blocks of c tokens that the
// compiler generates (loom-fuse-token-logprob-rows) when the loss's gradient
// of each log-prob reads that log-prob only: one GEMM writes the block's
// products with the whole lm head into the caller's scratch [R, V]; a pass
// per row gives its log-sum-exp and log-prob; the generated code computes g
// from them; then the rows become dlogits in place and two GEMMs give the
// block's grad_hidden rows and add its share of grad_weight. Three products
// of the lm head per token, against four for the vocabulary-chunked pair
// above, whose backward computes them again.

namespace {

/// The forward's per-row step over whole rows of the scratch.
struct RowsForwardJob {
  const float *scratch;
  int64_t ld, n0, V;
  Vec<const int64_t> ids;
  Vec<float> logp, lse;
  float scale2, invT;
};

LOOM_INLINE void rowsForward(RowsForwardJob *job, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const float *row = job->scratch + r * job->ld;
    int64_t n = job->n0 + r;
    float top = rowMax(row, job->V) * job->scale2;
    float l =
        top == kNegInf
            ? kNegInf
            : (top + std::log2(rowExpSum(row, job->V, job->scale2, top))) *
                  kLn2;
    job->lse[n] = l;
    int64_t id = job->ids[n];
    job->logp[n] = id >= 0 && id < job->V ? row[id] * job->invT - l : kNaN;
  }
}

/// The backward's per-row step: the rows of active tokens (g != 0) become
/// dlogits in place; the others are left as they are.
struct RowsBackwardJob {
  float *scratch;
  int64_t ld, n0, V;
  Vec<const int64_t> ids;
  Vec<const float> g, lse;
  float scale2, invT;
};

LOOM_INLINE void rowsBackward(RowsBackwardJob *job, int64_t begin,
                              int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    int64_t n = job->n0 + r;
    float gn = job->g[n];
    if (gn == 0.0f)
      continue;
    float *row = job->scratch + r * job->ld;
    int64_t id = job->ids[n];
    if (id < 0 || id >= job->V) {
      std::fill(row, row + job->V, kNaN);
      continue;
    }
    float a = gn * job->invT;
    rowNegExp(row, job->V, job->scale2, job->lse[n] * kLog2e, a);
    row[id] += a;
  }
}

/// The block's token count: min(R, N - offset), 0 when offset is outside
/// [0, N).
int64_t blockRows(const loom_memref_2d_t *hidden,
                  const loom_memref_2d_t *scratch, int64_t offset) {
  int64_t N = hidden->sizes[0];
  if (offset < 0 || offset >= N)
    return 0;
  return std::max<int64_t>(0, std::min(scratch->sizes[0], N - offset));
}

/// Vocabulary rows per product of grad_weight's update below.
constexpr int64_t kWeightRows = 4096;

/// grad_weight (+ when `flags` has LOOM_MATMUL_ACCUMULATE)= dlᵀ · h, for dl
/// [c, V] and h [c, d], as one product per kWeightRows rows of grad_weight:
/// the GEMM's packed copy of dlᵀ stays that size (a whole [V, c] copy
/// measured 23 MiB more at c = 512, V = 32768, at the same speed).
void weightGradient(const loom_memref_2d_t &dl, const loom_memref_2d_t &h,
                    loom_memref_2d_t *grad_weight, int64_t flags) {
  int64_t V = dl.sizes[1];
  for (int64_t v0 = 0; v0 < V; v0 += kWeightRows) {
    loom_memref_2d_t part = dl;
    part.offset += v0 * dl.strides[1];
    part.sizes[1] = std::min(kWeightRows, V - v0);
    loom_memref_2d_t out = rows(grad_weight, v0, part.sizes[1]);
    loom_rt_matmul_f32(&part, &h, &out, LOOM_MATMUL_TRANSPOSE_A | flags);
  }
}

/// The block sizes for which hiddenGradient copies the weight (see there).
constexpr int64_t kPaddedMinRows = 32;
constexpr int64_t kPaddedMaxRows = 384;
/// Weight rows per copy: 1024, fewer where that would take more than
/// kPaddedCopyBytes (d above 1072), but at least 256. kPitchPad floats are
/// added to the copy's row pitch. Parts of 2048 rows measured no faster and
/// held 4 MiB more at d = 1024.
constexpr int64_t kPaddedPartRows = 1024;
constexpr int64_t kPaddedMinPartRows = 256;
constexpr int64_t kPaddedCopyBytes = int64_t(17) << 18; // 4.25 MiB
constexpr int64_t kPitchPad = 16;

/// Copies rows of a [k, d] weight part into a buffer of row pitch `ld`.
struct PaddedCopyJob {
  const float *src;
  int64_t srcPitch;
  float *dst;
  int64_t ld, d;
};

void paddedCopy(void *ctx, int64_t begin, int64_t end) {
  auto *job = static_cast<PaddedCopyJob *>(ctx);
  for (int64_t r = begin; r < end; ++r)
    std::memcpy(job->dst + r * job->ld, job->src + r * job->srcPitch,
                job->d * sizeof(float));
}

/// grad_hidden rows = dl . weight, for dl [c, V] and weight [V, d].
/// For c below about 342, oneDNN's sgemm reads the weight in place instead
/// of packing it; when the weight's row pitch is a multiple of 1 KiB (every
/// lm head whose d is a multiple of 256) those reads fall into few cache
/// sets, and the product runs at half speed (docs/performance.md). For
/// kPaddedMinRows <= c < kPaddedMaxRows the weight is therefore copied in
/// parts of up to kPaddedPartRows rows into a buffer whose pitch is
/// kPitchPad floats longer, and the product accumulates over the parts.
void hiddenGradient(const loom_memref_2d_t &dl, const loom_memref_2d_t *weight,
                    loom_memref_2d_t *grad_hidden) {
  int64_t c = dl.sizes[0], V = weight->sizes[0], d = weight->sizes[1];
  int64_t pitch = weight->strides[0];
  bool aliased = loom_runtime_has_dnnl() && weight->strides[1] == 1 &&
                 pitch % 256 == 0 && c >= kPaddedMinRows && c < kPaddedMaxRows;
  if (aliased) {
    int64_t ld = d + kPitchPad;
    int64_t part = std::clamp(kPaddedCopyBytes / 4 / ld, kPaddedMinPartRows,
                              kPaddedPartRows);
    part = std::min(part, V);
    Scratch copy(part * ld);
    const float *w =
        static_cast<const float *>(weight->aligned) + weight->offset;
    for (int64_t v0 = 0; copy.p && v0 < V; v0 += part) {
      int64_t k = std::min(part, V - v0);
      PaddedCopyJob job{w + v0 * pitch, pitch, copy.p, ld, d};
      loom_rt_parallel_for(paddedCopy, &job, k);
      loom_memref_2d_t a = dl;
      a.offset += v0 * dl.strides[1];
      a.sizes[1] = k;
      loom_memref_2d_t b = dense(copy.p, k, d);
      b.strides[0] = ld;
      loom_rt_matmul_f32(&a, &b, grad_hidden, v0 ? LOOM_MATMUL_ACCUMULATE : 0);
    }
    if (copy.p)
      return;
  }
  // Without the copy (or its memory), the product in one call.
  loom_rt_matmul_f32(&dl, weight, grad_hidden, 0);
}

/// Whether the scratch is one the row-block kernels can use: V columns,
/// contiguous, rows that do not overlap.
bool usableScratch(const loom_memref_2d_t *scratch, int64_t V) {
  return scratch->sizes[1] == V &&
         (V == 0 || (scratch->strides[1] == 1 && scratch->strides[0] >= V));
}

/// Sets rows [r0, r0 + c) of a rank-2 memref to `value`.
void fillRows(loom_memref_2d_t *m, int64_t r0, int64_t c, float value) {
  loom_memref_2d_t r = rows(m, r0, c);
  fill(&r, value);
}

} // namespace

extern "C" void loom_rt_token_logprob_rows_f32(
    const loom_memref_2d_t *hidden, const loom_memref_2d_t *weight,
    const loom_memref_1d_t *ids, loom_memref_1d_t *logp, loom_memref_1d_t *lse,
    loom_memref_2d_t *scratch, int64_t offset, float temperature) {
  int64_t c = blockRows(hidden, scratch, offset);
  if (c == 0)
    return;
  int64_t V = weight->sizes[0], d = hidden->sizes[1];
  RowsForwardJob job;
  job.logp = vec<float>(logp);
  job.lse = vec<float>(lse);
  if (!(temperature > 0) || !usableScratch(scratch, V)) {
    for (int64_t n = offset; n < offset + c; ++n)
      job.logp[n] = job.lse[n] = kNaN;
    return;
  }
  float *base = static_cast<float *>(scratch->aligned) + scratch->offset;
  loom_memref_2d_t s = rows(scratch, 0, c);
  if (d == 0 || V == 0) {
    fill(&s, 0.0f);
  } else {
    loom_memref_2d_t h = rows(hidden, offset, c);
    loom_rt_matmul_f32(&h, weight, &s, LOOM_MATMUL_TRANSPOSE_B);
  }
  job.scratch = base;
  job.ld = scratch->strides[0];
  job.n0 = offset;
  job.V = V;
  job.ids = vec<const int64_t>(ids);
  job.invT = 1.0f / temperature;
  job.scale2 = kLog2e / temperature;
  loom_rt_parallel_for(RowLoop<RowsForwardJob, rowsForward>::select(), &job, c);
}

extern "C" void loom_rt_token_logprob_rows_grad_f32(
    const loom_memref_2d_t *hidden, const loom_memref_2d_t *weight,
    const loom_memref_1d_t *ids, const loom_memref_1d_t *lse,
    const loom_memref_1d_t *g, loom_memref_2d_t *grad_hidden,
    loom_memref_2d_t *grad_weight, loom_memref_2d_t *scratch, int64_t offset,
    float temperature, int64_t flags) {
  int64_t c = blockRows(hidden, scratch, offset);
  int64_t V = weight->sizes[0], d = hidden->sizes[1];
  // The block that starts grad_weight (none when it accumulates).
  bool first = offset == 0 && !(flags & LOOM_TOKEN_LOGPROB_ACCUMULATE);
  if (c == 0) {
    if (first)
      fill(grad_weight, 0.0f);
    return;
  }
  if (!(temperature > 0) || !usableScratch(scratch, V) ||
      (flags & ~int64_t(LOOM_TOKEN_LOGPROB_ACCUMULATE))) {
    fillRows(grad_hidden, offset, c, kNaN);
    fill(grad_weight, kNaN);
    return;
  }
  RowsBackwardJob job;
  job.scratch = static_cast<float *>(scratch->aligned) + scratch->offset;
  job.ld = scratch->strides[0];
  job.n0 = offset;
  job.V = V;
  job.ids = vec<const int64_t>(ids);
  job.g = vec<const float>(g);
  job.lse = vec<const float>(lse);
  job.invT = 1.0f / temperature;
  job.scale2 = kLog2e / temperature;
  loom_rt_parallel_for(RowLoop<RowsBackwardJob, rowsBackward>::select(), &job,
                       c);

  // The active rows (g != 0), moved to the front of the scratch.
  int64_t active = 0;
  for (int64_t r = 0; r < c; ++r) {
    if (job.g[offset + r] == 0.0f)
      continue;
    if (active != r)
      std::memcpy(job.scratch + active * job.ld, job.scratch + r * job.ld,
                  V * sizeof(float));
    ++active;
  }
  if (active == 0 || V == 0 || d == 0) {
    fillRows(grad_hidden, offset, c, 0.0f);
    if (first)
      fill(grad_weight, 0.0f);
    return;
  }
  loom_memref_2d_t dl = dense(job.scratch, active, V);
  dl.strides[0] = job.ld;
  int64_t accumulate = first ? 0 : LOOM_MATMUL_ACCUMULATE;
  if (active == c) {
    loom_memref_2d_t h = rows(hidden, offset, c);
    loom_memref_2d_t gh = rows(grad_hidden, offset, c);
    hiddenGradient(dl, weight, &gh);
    weightGradient(dl, h, grad_weight, accumulate);
    return;
  }
  // Gather the active tokens' hidden rows, scatter their gradients back.
  Scratch rowsCopy(active * d), gradCopy(active * d);
  if (!rowsCopy.p || !gradCopy.p) {
    fillRows(grad_hidden, offset, c, kNaN);
    fill(grad_weight, kNaN);
    return;
  }
  const float *h = static_cast<const float *>(hidden->aligned) + hidden->offset;
  float *out = static_cast<float *>(grad_hidden->aligned) + grad_hidden->offset;
  for (int64_t r = 0, k = 0; r < c; ++r) {
    if (job.g[offset + r] == 0.0f)
      continue;
    const float *src = h + (offset + r) * hidden->strides[0];
    for (int64_t j = 0; j < d; ++j)
      rowsCopy.p[k * d + j] = src[j * hidden->strides[1]];
    ++k;
  }
  loom_memref_2d_t hc = dense(rowsCopy.p, active, d);
  loom_memref_2d_t ghc = dense(gradCopy.p, active, d);
  hiddenGradient(dl, weight, &ghc);
  weightGradient(dl, hc, grad_weight, accumulate);
  for (int64_t r = 0, k = 0; r < c; ++r) {
    float *dst = out + (offset + r) * grad_hidden->strides[0];
    bool on = job.g[offset + r] != 0.0f;
    for (int64_t j = 0; j < d; ++j)
      dst[j * grad_hidden->strides[1]] = on ? gradCopy.p[k * d + j] : 0.0f;
    k += on;
  }
}
