//===- host_kernels.cc - Host functions artifacts import ------------------===//
//
// This file implements the host functions an artifact may import through its
// manifest: a persistent thread pool behind loom_rt_parallel_for (libgomp's
// team when the build uses oneDNN, whose sgemm runs on it), and f32
// (batched) matmul on strided memrefs, which goes to oneDNN's sgemm when the
// build has it and the strides are expressible as leading dimensions, and to
// a packed, cache-blocked, multithreaded kernel otherwise.
//
//===----------------------------------------------------------------------===//

#include "cuda_driver.h"
#include "internal.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#ifdef LOOM_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

#if defined(__x86_64__)
#include <immintrin.h>
#endif

using namespace loom;

//===----------------------------------------------------------------------===//
// Thread pool
//===----------------------------------------------------------------------===//

namespace {

using BodyFn = void (*)(void *, int64_t, int64_t);

/// One range split into chunks that threads claim from an atomic counter
/// (dynamic scheduling), a few per thread so uneven chunks even out.
struct ChunkedJob {
  BodyFn body;
  void *ctx;
  int64_t size, chunk, chunks;
  std::atomic<int64_t> next{0};

  ChunkedJob(BodyFn body, void *ctx, int64_t n, int threads)
      : body(body), ctx(ctx), size(n) {
    int64_t target = std::min<int64_t>(n, int64_t(threads) * 4);
    chunk = (n + target - 1) / target;
    chunks = (n + chunk - 1) / chunk;
  }

  void run() {
    while (true) {
      int64_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= chunks)
        return;
      int64_t begin = c * chunk;
      body(ctx, begin, std::min(begin + chunk, size));
    }
  }
};

} // namespace

static int threadsFromEnvironment() {
  if (const char *env = std::getenv("LOOM_NUM_THREADS")) {
    char *end;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v >= 1 && v <= 1024)
      return static_cast<int>(v);
  }
  return 0;
}

#ifdef LOOM_HAVE_GOMP

// libgomp's stable C ABI (GOMP_4.0 / OMP_1.0 symbol versions). It is called
// directly rather than through `#pragma omp`, which clang would lower to
// libomp's __kmpc entry points.
extern "C" {
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads,
                   unsigned flags);
int omp_in_parallel(void);
int omp_get_max_threads(void);
}

namespace {

/// Runs parallel loops on libgomp's team, the one oneDNN's sgemm uses, so the
/// two never compete for cores: the team's workers that spin after an sgemm
/// pick up the next elementwise loop. The calling thread is thread 0 of the
/// team.
class ThreadPool {
public:
  explicit ThreadPool(int threads) : numThreads(std::max(threads, 1)) {}

  int size() const { return numThreads; }

  void parallelFor(BodyFn body, void *ctx, int64_t n) {
    if (n <= 0)
      return;
    // Nested loops (and loops issued from inside any OpenMP region) run
    // inline, and so do loops issued while another thread owns the team:
    // libgomp would start a second team for that thread and oversubscribe.
    if (numThreads == 1 || n == 1 || omp_in_parallel() ||
        busy.exchange(true, std::memory_order_acquire)) {
      body(ctx, 0, n);
      return;
    }
    ChunkedJob job(body, ctx, n, numThreads);
    GOMP_parallel(runJob, &job, static_cast<unsigned>(numThreads), 0);
    busy.store(false, std::memory_order_release);
  }

private:
  int numThreads;
  std::atomic<bool> busy{false};

  static void runJob(void *job) { static_cast<ChunkedJob *>(job)->run(); }
};

} // namespace

static int configuredThreads() {
  int threads = threadsFromEnvironment();
  return threads ? threads : std::max(omp_get_max_threads(), 1);
}

#else // !LOOM_HAVE_GOMP

namespace {

void pause() {
#if defined(__x86_64__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

/// A fixed set of workers that split one range at a time with the calling
/// thread. Workers spin briefly before sleeping because generated code issues
/// many short parallel loops back to back, and a futex wake-up costs more
/// than such a loop.
class ThreadPool {
public:
  explicit ThreadPool(int threads) : numThreads(std::max(threads, 1)) {
    for (int i = 1; i < numThreads; ++i)
      workers.emplace_back([this] { workerLoop(); });
  }

  /// Stops and joins the workers; only called when no loop is running.
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping.store(true, std::memory_order_relaxed);
      generation.fetch_add(1, std::memory_order_release);
    }
    wake.notify_all();
    for (std::thread &worker : workers)
      worker.join();
  }

  int size() const { return numThreads; }

  void parallelFor(BodyFn body, void *ctx, int64_t n) {
    if (n <= 0)
      return;
    // Nested loops and loops issued while another thread owns the pool run
    // inline: waiting for the pool there could deadlock or oversubscribe.
    if (numThreads == 1 || n == 1 || insideWorker || !submitMutex.try_lock()) {
      body(ctx, 0, n);
      return;
    }
    ChunkedJob chunked(body, ctx, n, numThreads);
    job = &chunked;
    active.store(numThreads - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mutex);
      generation.fetch_add(1, std::memory_order_release);
    }
    wake.notify_all();
    insideWorker = true;
    chunked.run();
    insideWorker = false;
    for (int spin = 0; active.load(std::memory_order_acquire) != 0; ++spin) {
      if (spin < kSpins) {
        pause();
        continue;
      }
      std::unique_lock<std::mutex> lock(mutex);
      done.wait(lock,
                [&] { return active.load(std::memory_order_acquire) == 0; });
      break;
    }
    job = nullptr;
    submitMutex.unlock();
  }

private:
  static constexpr int kSpins = 4000;

  int numThreads;
  std::vector<std::thread> workers;
  std::mutex submitMutex;
  std::mutex mutex;
  std::condition_variable wake, done;
  std::atomic<uint64_t> generation{0};
  std::atomic<int> active{0};
  ChunkedJob *job = nullptr;
  /// Set before the generation bump that wakes the workers to exit.
  std::atomic<bool> stopping{false};

  static thread_local bool insideWorker;

  void workerLoop() {
    insideWorker = true;
    uint64_t seen = 0;
    while (true) {
      uint64_t g;
      int spin = 0;
      while ((g = generation.load(std::memory_order_acquire)) == seen &&
             spin < kSpins) {
        pause();
        ++spin;
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lock(mutex);
        wake.wait(lock, [&] {
          return generation.load(std::memory_order_acquire) != seen;
        });
        g = generation.load(std::memory_order_acquire);
      }
      if (stopping.load(std::memory_order_acquire))
        return;
      seen = g;
      job->run();
      if (active.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mutex);
        done.notify_one();
      }
    }
  }
};

thread_local bool ThreadPool::insideWorker = false;

} // namespace

static int configuredThreads() {
  int threads = threadsFromEnvironment();
  if (threads)
    return threads;
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

#endif // LOOM_HAVE_GOMP

/// The pool lives for the whole process; it is never destroyed so that no
/// static destructor has to join workers that may be mid-loop at exit.
static ThreadPool &pool() {
  static ThreadPool *instance = new ThreadPool(configuredThreads());
  return *instance;
}

void loom::parallelForWithThreads(int threads, BodyFn body, void *ctx,
                                  int64_t n) {
  ThreadPool(threads).parallelFor(body, ctx, n);
}

//===----------------------------------------------------------------------===//
// Matmul
//===----------------------------------------------------------------------===//

namespace {

/// A strided f32 matrix view: element (i, j) is p[i * rs + j * cs].
struct Mat {
  float *p;
  int64_t rows, cols, rs, cs;
};

/// The packed kernel's blocking: an MR x NR register tile, A blocks of
/// MC x KC (L2) and B panels of KC x NC (L2/L3).
constexpr int64_t MR = 6, NR = 16, MC = 96, KC = 256, NC = 512;

typedef float v8f __attribute__((vector_size(32)));

/// C[mr x nr] (+)= Ap (MR-row panel, k-major) * Bp (NR-column panel,
/// k-major). The tile is computed whole in registers and stored partially.
__attribute__((always_inline)) inline void
microKernel(int64_t kc, const float *ap, const float *bp, float *c, int64_t rs,
            int64_t cs, int64_t mr, int64_t nr, bool add) {
  v8f acc[MR][2] = {};
  for (int64_t k = 0; k < kc; ++k) {
    v8f b0, b1;
    std::memcpy(&b0, bp + k * NR, sizeof(v8f));
    std::memcpy(&b1, bp + k * NR + 8, sizeof(v8f));
    for (int64_t r = 0; r < MR; ++r) {
      float a = ap[k * MR + r];
      v8f av = {a, a, a, a, a, a, a, a};
      acc[r][0] += av * b0;
      acc[r][1] += av * b1;
    }
  }
  for (int64_t r = 0; r < mr; ++r) {
    float row[NR];
    std::memcpy(row, &acc[r][0], sizeof(v8f));
    std::memcpy(row + 8, &acc[r][1], sizeof(v8f));
    float *out = c + r * rs;
    if (add) {
      for (int64_t j = 0; j < nr; ++j)
        out[j * cs] += row[j];
    } else {
      for (int64_t j = 0; j < nr; ++j)
        out[j * cs] = row[j];
    }
  }
}

/// Computes C[i0:i1, j0:j1] (+)= A[i0:i1, :] * B[:, j0:j1] with packing into
/// thread-local buffers.
__attribute__((always_inline)) inline void
gemmTileImpl(const Mat &a, const Mat &b, const Mat &c, int64_t i0, int64_t i1,
             int64_t j0, int64_t j1, bool accumulate) {
  static thread_local std::vector<float> aPack, bPack;
  aPack.resize(MC * KC);
  bPack.resize(KC * NC);
  int64_t K = a.cols;
  if (K == 0) {
    if (!accumulate)
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = j0; j < j1; ++j)
          c.p[i * c.rs + j * c.cs] = 0;
    return;
  }
  for (int64_t k0 = 0; k0 < K; k0 += KC) {
    int64_t kc = std::min(KC, K - k0);
    int64_t nc = j1 - j0, mc = i1 - i0;
    // B panel: NR columns at a time, k-major, zero-padded past j1.
    for (int64_t jp = 0; jp < nc; jp += NR) {
      float *dst = bPack.data() + jp * kc;
      int64_t nr = std::min(NR, nc - jp);
      for (int64_t k = 0; k < kc; ++k) {
        const float *src = b.p + (k0 + k) * b.rs + (j0 + jp) * b.cs;
        float *row = dst + k * NR;
        if (b.cs == 1) {
          std::memcpy(row, src, nr * sizeof(float));
        } else {
          for (int64_t j = 0; j < nr; ++j)
            row[j] = src[j * b.cs];
        }
        for (int64_t j = nr; j < NR; ++j)
          row[j] = 0;
      }
    }
    bool add = accumulate || k0 > 0;
    for (int64_t ib = 0; ib < mc; ib += MC) {
      int64_t mcb = std::min(MC, mc - ib);
      // A block: MR rows at a time, k-major, zero-padded past the block.
      for (int64_t ip = 0; ip < mcb; ip += MR) {
        float *dst = aPack.data() + ip * kc;
        int64_t mr = std::min(MR, mcb - ip);
        for (int64_t k = 0; k < kc; ++k) {
          const float *src = a.p + (i0 + ib + ip) * a.rs + (k0 + k) * a.cs;
          for (int64_t r = 0; r < mr; ++r)
            dst[k * MR + r] = src[r * a.rs];
          for (int64_t r = mr; r < MR; ++r)
            dst[k * MR + r] = 0;
        }
      }
      for (int64_t jp = 0; jp < nc; jp += NR) {
        for (int64_t ip = 0; ip < mcb; ip += MR) {
          float *cTile = c.p + (i0 + ib + ip) * c.rs + (j0 + jp) * c.cs;
          microKernel(kc, aPack.data() + ip * kc, bPack.data() + jp * kc, cTile,
                      c.rs, c.cs, std::min(MR, mcb - ip), std::min(NR, nc - jp),
                      add);
        }
      }
    }
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void
gemmTileAvx2(const Mat &a, const Mat &b, const Mat &c, int64_t i0, int64_t i1,
             int64_t j0, int64_t j1, bool accumulate) {
  gemmTileImpl(a, b, c, i0, i1, j0, j1, accumulate);
}
#endif

void gemmTileGeneric(const Mat &a, const Mat &b, const Mat &c, int64_t i0,
                     int64_t i1, int64_t j0, int64_t j1, bool accumulate) {
  gemmTileImpl(a, b, c, i0, i1, j0, j1, accumulate);
}

using GemmTileFn = void (*)(const Mat &, const Mat &, const Mat &, int64_t,
                            int64_t, int64_t, int64_t, bool);

GemmTileFn selectGemmTile() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return gemmTileAvx2;
#endif
  return gemmTileGeneric;
}

//===----------------------------------------------------------------------===//
// Skinny products: few rows of C, A rows and B columns contiguous along K
//===----------------------------------------------------------------------===//

// linear(x, w) = x wᵀ with a handful of rows (a decode step) reads every
// weight once for a few multiply-adds: it is bound by memory bandwidth. The
// packed kernel would copy all of B first, and oneDNN's sgemm (2.6) reaches
// about a quarter of the read bandwidth for 2 <= M <= 16; dot products that
// stream each weight row once reach it.

/// Most rows of C the skinny kernel takes; more amortize B's packing.
constexpr int64_t kSkinnyMaxRows = 16;
/// Register tile: MT rows of A times NT columns of B, 12 accumulators.
constexpr int kSkinnyRows = 4, kSkinnyCols = 3;
/// Columns of C per task.
constexpr int64_t kSkinnyColBlock = 96;

__attribute__((always_inline)) inline float hsum(v8f v) {
  float lanes[8];
  std::memcpy(lanes, &v, sizeof(v));
  return ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) +
         ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
}

/// C[i0 + i, j0 + j] (+)= dot(A row, B column) for i < MT, j < NT.
template <int MT, int NT>
__attribute__((always_inline)) inline void
skinnyTile(const Mat &a, const Mat &b, const Mat &c, int64_t i0, int64_t j0,
           bool accumulate) {
  int64_t K = a.cols;
  const float *ar[MT], *bc[NT];
  for (int i = 0; i < MT; ++i)
    ar[i] = a.p + (i0 + i) * a.rs;
  for (int j = 0; j < NT; ++j)
    bc[j] = b.p + (j0 + j) * b.cs;
  v8f acc[MT][NT] = {};
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    v8f bv[NT];
    for (int j = 0; j < NT; ++j)
      std::memcpy(&bv[j], bc[j] + k, sizeof(v8f));
    for (int i = 0; i < MT; ++i) {
      v8f av;
      std::memcpy(&av, ar[i] + k, sizeof(v8f));
      for (int j = 0; j < NT; ++j)
        acc[i][j] += av * bv[j];
    }
  }
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NT; ++j) {
      float sum = hsum(acc[i][j]);
      for (int64_t q = k; q < K; ++q)
        sum += ar[i][q] * bc[j][q];
      float *out = c.p + (i0 + i) * c.rs + (j0 + j) * c.cs;
      *out = accumulate ? *out + sum : sum;
    }
}

template <int MT>
__attribute__((always_inline)) inline void
skinnyRows(const Mat &a, const Mat &b, const Mat &c, int64_t i0, int64_t j0,
           int64_t j1, bool accumulate) {
  int64_t j = j0;
  for (; j + kSkinnyCols <= j1; j += kSkinnyCols)
    skinnyTile<MT, kSkinnyCols>(a, b, c, i0, j, accumulate);
  for (; j < j1; ++j)
    skinnyTile<MT, 1>(a, b, c, i0, j, accumulate);
}

/// Columns [j0, j1) of C for every row. Row tiles run inside a column tile,
/// so a tile's B columns come from memory once and from cache after.
__attribute__((always_inline)) inline void
skinnyImpl(const Mat &a, const Mat &b, const Mat &c, int64_t j0, int64_t j1,
           bool accumulate) {
  for (int64_t jt = j0; jt < j1; jt += kSkinnyCols) {
    int64_t je = std::min(jt + kSkinnyCols, j1);
    int64_t i = 0;
    for (; i + kSkinnyRows <= c.rows; i += kSkinnyRows)
      skinnyRows<kSkinnyRows>(a, b, c, i, jt, je, accumulate);
    switch (c.rows - i) {
    case 3:
      skinnyRows<3>(a, b, c, i, jt, je, accumulate);
      break;
    case 2:
      skinnyRows<2>(a, b, c, i, jt, je, accumulate);
      break;
    case 1:
      skinnyRows<1>(a, b, c, i, jt, je, accumulate);
      break;
    default:
      break;
    }
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void skinnyAvx2(const Mat &a, const Mat &b,
                                                    const Mat &c, int64_t j0,
                                                    int64_t j1,
                                                    bool accumulate) {
  skinnyImpl(a, b, c, j0, j1, accumulate);
}
#endif

void skinnyGeneric(const Mat &a, const Mat &b, const Mat &c, int64_t j0,
                   int64_t j1, bool accumulate) {
  skinnyImpl(a, b, c, j0, j1, accumulate);
}

using SkinnyFn = void (*)(const Mat &, const Mat &, const Mat &, int64_t,
                          int64_t, bool);

SkinnyFn selectSkinny() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return skinnyAvx2;
#endif
  return skinnyGeneric;
}

/// The skinny kernel applies: few rows, A's rows and B's columns contiguous
/// along K, and enough K for the dot products to pay.
bool skinnyEligible(const Mat &a, const Mat &b, const Mat &c) {
  return c.rows <= kSkinnyMaxRows && a.cols >= 32 &&
         (a.cs == 1 || a.cols == 1) && (b.rs == 1 || b.rows == 1);
}

struct SkinnyJob {
  const std::vector<Mat> *as, *bs, *cs;
  int64_t colBlocks;
  bool accumulate;
  SkinnyFn fn;
};

void skinnyTask(void *ctx, int64_t begin, int64_t end) {
  auto *job = static_cast<SkinnyJob *>(ctx);
  for (int64_t t = begin; t < end; ++t) {
    int64_t batch = t / job->colBlocks, block = t % job->colBlocks;
    const Mat &c = (*job->cs)[batch];
    int64_t j0 = block * kSkinnyColBlock;
    job->fn((*job->as)[batch], (*job->bs)[batch], c, j0,
            std::min(j0 + kSkinnyColBlock, c.cols), job->accumulate);
  }
}

/// One batched problem split into (batch, row block, column block) tasks.
struct GemmJob {
  std::vector<Mat> as, bs, cs;
  int64_t mBlocks, nBlocks;
  int64_t rowBlock, colBlock;
  bool accumulate;
  GemmTileFn tile;
};

void gemmTask(void *ctx, int64_t begin, int64_t end) {
  auto *job = static_cast<GemmJob *>(ctx);
  for (int64_t t = begin; t < end; ++t) {
    int64_t perBatch = job->mBlocks * job->nBlocks;
    int64_t batch = t / perBatch;
    int64_t mb = (t % perBatch) / job->nBlocks;
    int64_t nb = t % job->nBlocks;
    const Mat &a = job->as[batch], &b = job->bs[batch], &c = job->cs[batch];
    int64_t i0 = mb * job->rowBlock, j0 = nb * job->colBlock;
    job->tile(a, b, c, i0, std::min(i0 + job->rowBlock, c.rows), j0,
              std::min(j0 + job->colBlock, c.cols), job->accumulate);
  }
}

#ifdef LOOM_HAVE_DNNL
/// Expresses `m` as a row-major operand of sgemm: 'N' with the row stride as
/// leading dimension, or 'T' of its transpose. Returns false when neither
/// stride is unit.
bool asBlasOperand(const Mat &m, char *trans, int64_t *ld) {
  if (m.cs == 1 && (m.rs >= std::max<int64_t>(m.cols, 1) || m.rows <= 1)) {
    *trans = 'N';
    *ld = m.rows <= 1 ? std::max<int64_t>(m.cols, 1) : m.rs;
    return true;
  }
  if (m.rs == 1 && (m.cs >= std::max<int64_t>(m.rows, 1) || m.cols <= 1)) {
    *trans = 'T';
    *ld = m.cols <= 1 ? std::max<int64_t>(m.rows, 1) : m.cs;
    return true;
  }
  return false;
}

bool dnnlEligible(const Mat &a, const Mat &b, const Mat &c) {
  char ta, tb, tc;
  int64_t lda, ldb, ldc;
  return asBlasOperand(a, &ta, &lda) && asBlasOperand(b, &tb, &ldb) &&
         asBlasOperand(c, &tc, &ldc) && tc == 'N';
}

bool dnnlGemm(const Mat &a, const Mat &b, const Mat &c, bool accumulate) {
  char ta, tb, tc;
  int64_t lda, ldb, ldc;
  asBlasOperand(a, &ta, &lda);
  asBlasOperand(b, &tb, &ldb);
  asBlasOperand(c, &tc, &ldc);
  return dnnl_sgemm(ta, tb, c.rows, c.cols, a.cols, 1.0f, a.p, lda, b.p, ldb,
                    accumulate ? 1.0f : 0.0f, c.p, ldc) == dnnl_success;
}

/// Below this many multiply-adds the packed kernel beats a library call's
/// fixed cost.
constexpr int64_t kDnnlMinWork = 32 * 32 * 32;
#endif

void gemmBatch(std::vector<Mat> as, std::vector<Mat> bs, std::vector<Mat> cs,
               bool accumulate) {
  if (cs.empty() || cs[0].rows == 0 || cs[0].cols == 0)
    return;
  int64_t M = cs[0].rows, N = cs[0].cols, K = as[0].cols;
  bool skinny = true;
  for (size_t i = 0; i < cs.size() && skinny; ++i)
    skinny = skinnyEligible(as[i], bs[i], cs[i]);
  if (skinny) {
    static const SkinnyFn fn = selectSkinny();
    SkinnyJob job{&as,        &bs,
                  &cs,        (N + kSkinnyColBlock - 1) / kSkinnyColBlock,
                  accumulate, fn};
    int64_t tasks = int64_t(cs.size()) * job.colBlocks;
    if (M * N * K < 64 * 64 * 64)
      skinnyTask(&job, 0, tasks);
    else
      pool().parallelFor(skinnyTask, &job, tasks);
    return;
  }
#ifdef LOOM_HAVE_DNNL
  if (M * N * std::max<int64_t>(K, 1) >= kDnnlMinWork) {
    bool eligible = true;
    for (size_t i = 0; i < cs.size() && eligible; ++i)
      eligible = dnnlEligible(as[i], bs[i], cs[i]);
    if (eligible) {
      // sgemm only fails on arguments checked above; should it fail anyway,
      // the element is redone by the packed kernel, which writes the same
      // C (sgemm does not touch C when it rejects its arguments).
      std::vector<Mat> ra, rb, rc;
      for (size_t i = 0; i < cs.size(); ++i) {
        if (!dnnlGemm(as[i], bs[i], cs[i], accumulate)) {
          ra.push_back(as[i]);
          rb.push_back(bs[i]);
          rc.push_back(cs[i]);
        }
      }
      if (rc.empty())
        return;
      as = std::move(ra);
      bs = std::move(rb);
      cs = std::move(rc);
    }
  }
#endif
  static const GemmTileFn tile = selectGemmTile();
  GemmJob job;
  job.as = std::move(as);
  job.bs = std::move(bs);
  job.cs = std::move(cs);
  job.accumulate = accumulate;
  job.tile = tile;
  job.rowBlock = MC;
  job.colBlock = NC;
  // Enough tasks to keep every thread busy on small batches: shrink the
  // column block (keeping it a multiple of NR) until there are.
  int64_t threads = pool().size();
  while (int64_t(job.cs.size()) * ((M + job.rowBlock - 1) / job.rowBlock) *
                 ((N + job.colBlock - 1) / job.colBlock) <
             threads * 2 &&
         job.colBlock > NR)
    job.colBlock = std::max(NR, job.colBlock / 2);
  job.mBlocks = (M + job.rowBlock - 1) / job.rowBlock;
  job.nBlocks = (N + job.colBlock - 1) / job.colBlock;
  int64_t tasks = int64_t(job.cs.size()) * job.mBlocks * job.nBlocks;
  // Tiny problems are not worth waking the pool.
  if (M * N * K < 64 * 64 * 64)
    gemmTask(&job, 0, tasks);
  else
    pool().parallelFor(gemmTask, &job, tasks);
}

Mat operand2d(const loom_memref_2d_t *m, bool transpose) {
  Mat v;
  v.p = static_cast<float *>(m->aligned) + m->offset;
  v.rows = m->sizes[transpose ? 1 : 0];
  v.cols = m->sizes[transpose ? 0 : 1];
  v.rs = m->strides[transpose ? 1 : 0];
  v.cs = m->strides[transpose ? 0 : 1];
  return v;
}

Mat operand3d(const loom_memref_3d_t *m, int64_t batch, bool transpose) {
  Mat v;
  v.p = static_cast<float *>(m->aligned) + m->offset + batch * m->strides[0];
  v.rows = m->sizes[transpose ? 2 : 1];
  v.cols = m->sizes[transpose ? 1 : 2];
  v.rs = m->strides[transpose ? 2 : 1];
  v.cs = m->strides[transpose ? 1 : 2];
  return v;
}

} // namespace

extern "C" {

void loom_rt_matmul_f32(const loom_memref_2d_t *a, const loom_memref_2d_t *b,
                        loom_memref_2d_t *c, int64_t flags) {
  gemmBatch({operand2d(a, flags & LOOM_MATMUL_TRANSPOSE_A)},
            {operand2d(b, flags & LOOM_MATMUL_TRANSPOSE_B)},
            {operand2d(c, false)}, flags & LOOM_MATMUL_ACCUMULATE);
}

void loom_rt_batch_matmul_f32(const loom_memref_3d_t *a,
                              const loom_memref_3d_t *b, loom_memref_3d_t *c,
                              int64_t flags) {
  int64_t batches = c->sizes[0];
  if (batches <= 0)
    return;
  std::vector<Mat> as, bs, cs;
  as.reserve(batches);
  bs.reserve(batches);
  cs.reserve(batches);
  for (int64_t i = 0; i < batches; ++i) {
    as.push_back(operand3d(a, i, flags & LOOM_MATMUL_TRANSPOSE_A));
    bs.push_back(operand3d(b, i, flags & LOOM_MATMUL_TRANSPOSE_B));
    cs.push_back(operand3d(c, i, false));
  }
  gemmBatch(std::move(as), std::move(bs), std::move(cs),
            flags & LOOM_MATMUL_ACCUMULATE);
}

void loom_rt_parallel_for(void (*body)(void *, int64_t, int64_t), void *ctx,
                          int64_t n) {
  pool().parallelFor(body, ctx, n);
}

void *loom_host_function_lookup(const char *name) {
  if (!name)
    return nullptr;
  static const struct {
    const char *name;
    void *fn;
  } table[] = {
      {"loom_rt_matmul_f32", reinterpret_cast<void *>(&loom_rt_matmul_f32)},
      {"loom_rt_batch_matmul_f32",
       reinterpret_cast<void *>(&loom_rt_batch_matmul_f32)},
      {"loom_rt_mla_decode_f32",
       reinterpret_cast<void *>(&loom_rt_mla_decode_f32)},
      {"loom_rt_attention_f32",
       reinterpret_cast<void *>(&loom_rt_attention_f32)},
      {"loom_rt_token_logprob_f32",
       reinterpret_cast<void *>(&loom_rt_token_logprob_f32)},
      {"loom_rt_token_logprob_grad_f32",
       reinterpret_cast<void *>(&loom_rt_token_logprob_grad_f32)},
      {"loom_rt_token_logprob_rows_f32",
       reinterpret_cast<void *>(&loom_rt_token_logprob_rows_f32)},
      {"loom_rt_token_logprob_rows_grad_f32",
       reinterpret_cast<void *>(&loom_rt_token_logprob_rows_grad_f32)},
      {"loom_rt_parallel_for", reinterpret_cast<void *>(&loom_rt_parallel_for)},
      {"loom_rt_alloc", reinterpret_cast<void *>(&loom_rt_alloc)},
      {"loom_rt_free", reinterpret_cast<void *>(&loom_rt_free)},
  };
  for (const auto &entry : table)
    if (std::strcmp(entry.name, name) == 0)
      return entry.fn;
  return nullptr;
}

int32_t loom_runtime_num_threads(void) { return pool().size(); }

int32_t loom_runtime_has_dnnl(void) {
#ifdef LOOM_HAVE_DNNL
  return 1;
#else
  return 0;
#endif
}

} // extern "C"
