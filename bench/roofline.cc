//===- roofline.cc - FMA peak and memory read bandwidth of this machine ---===//
//
// This file measures the two roofs CPU kernels are compared against: the f32
// FMA peak (independent AVX2 FMA chains, enough of them per thread to cover
// the FMA latency on two pipes) and the memory read bandwidth (a vectorized
// sum over a buffer far larger than the last-level cache), both on N threads
// (default: all cores). Built by bench/mla_kernel.sh, never by CI; the
// functions are also linked into bench/mla_kernel_bench.cc (compiled with
// LOOM_ROOFLINE_NO_MAIN) so that kernel and peak are measured in one process.
//
//   roofline [--threads N] [--mib SIZE] [--rounds N]
//
// prints one JSON line: {"threads", "fma_peak_gflops", "read_bw_gbs", ...}.
//
//===----------------------------------------------------------------------===//

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace roofline {

namespace {

using Clock = std::chrono::steady_clock;

/// Runs fn(i) on `threads` threads released together; returns the wall time
/// from the release to the last thread's end, in seconds.
template <typename Fn> double runTogether(int threads, Fn fn) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([&, i] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire))
        ;
      fn(i);
    });
  while (ready.load() != threads)
    ;
  auto start = Clock::now();
  go.store(true, std::memory_order_release);
  for (auto &t : pool)
    t.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

constexpr int kChains = 12;

/// kChains independent dependency chains of FMAs, `iters` times each; the
/// multiplier is just below 1 so nothing overflows or goes subnormal.
__attribute__((target("avx2,fma"), noinline)) float fmaChains(int64_t iters) {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i)
    acc[i] = _mm256_set1_ps(1.0f + i * 1e-3f);
  const __m256 mul = _mm256_set1_ps(0.9999999f), add = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < kChains; ++i)
      acc[i] = _mm256_fmadd_ps(acc[i], mul, add);
    // Keeps the compiler from collapsing iterations.
    __asm__ volatile(""
                     : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]),
                       "+x"(acc[4]), "+x"(acc[5]));
    __asm__ volatile(""
                     : "+x"(acc[6]), "+x"(acc[7]), "+x"(acc[8]), "+x"(acc[9]),
                       "+x"(acc[10]), "+x"(acc[11]));
  }
  __m256 s = acc[0];
  for (int i = 1; i < kChains; ++i)
    s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

__attribute__((target("avx2"), noinline)) float sumFloats(const float *p,
                                                          int64_t n) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; ++k)
      acc[k] = _mm256_add_ps(acc[k], _mm256_loadu_ps(p + i + 8 * k));
  __m256 s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]),
                           _mm256_add_ps(acc[2], acc[3]));
  float out[8];
  _mm256_storeu_ps(out, s);
  float total = 0;
  for (float v : out)
    total += v;
  for (; i < n; ++i)
    total += p[i];
  return total;
}

volatile float sink;

} // namespace

/// The f32 FMA rate of `threads` threads in GFLOP/s, the best of `reps`
/// runs of about `seconds` each (one FMA = 2 flops).
double fmaPeakGflops(int threads, double seconds = 0.2, int reps = 3) {
  // Calibrate on one thread: iterations per second.
  int64_t iters = 1 << 20;
  double t = runTogether(1, [&](int) { sink = fmaChains(iters); });
  iters = std::max<int64_t>(1 << 16, int64_t(iters * seconds / t));
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    double wall = runTogether(threads, [&](int) { sink = fmaChains(iters); });
    double flops = double(threads) * iters * kChains * 8 * 2;
    best = std::max(best, flops / wall / 1e9);
  }
  return best;
}

/// Read bandwidth of `threads` threads summing disjoint parts of a buffer of
/// `bytes` in GB/s (1e9 bytes), the best of `reps` passes. Each thread first
/// touches its own part.
double readBandwidthGBs(int threads, int64_t bytes, int reps = 3) {
  int64_t n = bytes / int64_t(sizeof(float));
  float *buf = static_cast<float *>(std::aligned_alloc(64, n * sizeof(float)));
  if (!buf)
    return 0;
  auto part = [&](int i, int64_t *begin, int64_t *end) {
    *begin = n / threads * i;
    *end = i == threads - 1 ? n : n / threads * (i + 1);
  };
  runTogether(threads, [&](int i) {
    int64_t b, e;
    part(i, &b, &e);
    for (int64_t k = b; k < e; ++k)
      buf[k] = float(k & 1023) * 1e-3f;
  });
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    double wall = runTogether(threads, [&](int i) {
      int64_t b, e;
      part(i, &b, &e);
      sink = sumFloats(buf + b, e - b);
    });
    best = std::max(best, double(n) * sizeof(float) / wall / 1e9);
  }
  std::free(buf);
  return best;
}

} // namespace roofline

#ifndef LOOM_ROOFLINE_NO_MAIN
int main(int argc, char **argv) {
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  int64_t mib = 512;
  int rounds = 3;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--mib") && i + 1 < argc)
      mib = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc)
      rounds = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr,
                   "usage: %s [--threads N] [--mib SIZE] [--rounds N]\n",
                   argv[0]);
      return 2;
    }
  }
  threads = std::max(threads, 1);
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    std::fprintf(stderr, "roofline: this CPU has no AVX2+FMA\n");
    return 1;
  }
  double peak1 = roofline::fmaPeakGflops(1, 0.2, rounds);
  double peak = roofline::fmaPeakGflops(threads, 0.2, rounds);
  double bw = roofline::readBandwidthGBs(threads, mib << 20, rounds);
  std::printf("{\"threads\": %d, \"fma_peak_gflops\": %.1f, "
              "\"fma_peak_1thread_gflops\": %.1f, \"read_bw_gbs\": %.2f, "
              "\"buffer_mib\": %lld}\n",
              threads, peak, peak1, bw, static_cast<long long>(mib));
  return 0;
}
#endif
