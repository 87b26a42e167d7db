// sgemm_baseline: times oneDNN's dnnl_sgemm called directly, the baseline of
// Loom's matmul benchmark (bench/run.sh). Row-major C[M,N] = A[M,K] * B[K,N]
// (or B^T with --transb, as torch.nn.functional.linear does), inputs uniform
// in [-1, 1), the same warm-up/repetition/median scheme as loom-bench, and
// the same JSON line:
//
//   sgemm_baseline M N K [--transb] [--warmup N] [--reps N] [--json]
//
// oneDNN's CPU runtime here is OpenMP: it uses OMP_NUM_THREADS threads, all
// cores when unset.
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

int main(int argc, char **argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: %s M N K [--transb] [--warmup N] [--reps N] "
                 "[--json]\n",
                 argv[0]);
    return 2;
  }
  long M = std::atol(argv[1]), N = std::atol(argv[2]), K = std::atol(argv[3]);
  int warmup = 3, reps = 20;
  bool json = false, transb = false;
  for (int i = 4; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json"))
      json = true;
    else if (!std::strcmp(argv[i], "--transb"))
      transb = true;
    else if (!std::strcmp(argv[i], "--warmup") && i + 1 < argc)
      warmup = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc)
      reps = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "sgemm_baseline: unknown argument '%s'\n", argv[i]);
      return 2;
    }
  }
  if (M <= 0 || N <= 0 || K <= 0) {
    std::fprintf(stderr, "sgemm_baseline: M, N, K must be positive\n");
    return 2;
  }
  std::mt19937_64 rng(0);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> a(M * K), b(K * N), c(M * N, 0.0f);
  for (float &v : a)
    v = dist(rng);
  for (float &v : b)
    v = dist(rng);
  // B is K x N (ldb = N), or N x K when transposed (ldb = K).
  char tb = transb ? 'T' : 'N';
  long ldb = transb ? K : N;
  auto call = [&]() {
    return dnnl_sgemm('N', tb, M, N, K, 1.0f, a.data(), K, b.data(), ldb, 0.0f,
                      c.data(), N);
  };
  for (int i = 0; i < warmup; ++i)
    if (call() != dnnl_success) {
      std::fprintf(stderr, "sgemm_baseline: dnnl_sgemm failed\n");
      return 1;
    }
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    auto start = std::chrono::steady_clock::now();
    dnnl_status_t s = call();
    auto end = std::chrono::steady_clock::now();
    if (s != dnnl_success) {
      std::fprintf(stderr, "sgemm_baseline: dnnl_sgemm failed\n");
      return 1;
    }
    times.push_back(std::chrono::duration<double>(end - start).count());
  }
  std::sort(times.begin(), times.end());
  size_t n = times.size();
  double median =
      n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
  const dnnl_version_t *v = dnnl_version();
  if (json)
    std::printf("{\"entry\": \"dnnl_sgemm\", \"median_s\": %.9g, "
                "\"min_s\": %.9g, \"max_s\": %.9g, \"reps\": %d, "
                "\"dnnl_version\": \"%d.%d.%d\"}\n",
                median, times.front(), times.back(), reps, v->major, v->minor,
                v->patch);
  else
    std::printf("dnnl_sgemm %ldx%ldx%ld (oneDNN %d.%d.%d): median %.6g s, "
                "%.1f GFLOP/s\n",
                M, N, K, v->major, v->minor, v->patch, median,
                2.0 * M * N * K / median * 1e-9);
  return 0;
}
