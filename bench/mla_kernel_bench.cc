//===- mla_kernel_bench.cc - Times loom_rt_mla_decode_f32 against the roof ===//
//
// This file times the runtime's MLA decoding kernel at DeepSeek-V3 dimensions
// (C = 512, R = 64, one new token, every cached key visible) and compares it
// with the FMA peak measured in the same process: rounds alternate a peak
// measurement with every configuration, so that load which comes and goes on
// a shared machine hits both. Per configuration: the median call time of each
// round, GFLOP/s (B*S*H*T*(2*(C+R) + 2*C) flops a call), the bytes of cache
// read a call (B*T*(C+R) floats) and the fraction of the peak; the figures
// are medians over the rounds. Small caches are replicated and calls rotate
// among the copies, so that the cache always comes from memory. Built by
// bench/mla_kernel.sh, never by CI.
//
//   mla_kernel_bench [--rounds N] [--seconds S] [--config B,S,H,T]...
//
// Prints a markdown table on stderr and one JSON line on stdout. Threads:
// the runtime's pool (LOOM_NUM_THREADS, else all cores) for the kernel, the
// same count for the peak.
//
//===----------------------------------------------------------------------===//

#include "bench_util.h"
#include "loom/runtime.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

using bench::median;

namespace {

constexpr int64_t kC = 512, kR = 64;

struct Config {
  int64_t B, S, H, T;
};

/// Caches smaller than this are replicated until their copies fill it and
/// calls rotate among the copies, so that every call reads its cache from
/// memory as a model's layers would, not from the last-level cache.
constexpr int64_t kRotationBytes = int64_t(96) << 20;

/// The operands of one configuration, dense, uniform in [-1, 1).
struct Operands {
  Config cfg;
  std::vector<float> qLat, qPe, out;
  std::vector<std::vector<float>> kv, pe;
  loom_memref_4d_t mQLat, mQPe, mOut;
  std::vector<loom_memref_3d_t> mKv, mPe;
  size_t next = 0;

  explicit Operands(const Config &c) : cfg(c) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1, 1);
    auto fill = [&](std::vector<float> &v, int64_t n) {
      v.resize(static_cast<size_t>(n));
      for (float &x : v)
        x = dist(rng);
    };
    fill(qLat, c.B * c.S * c.H * kC);
    fill(qPe, c.B * c.S * c.H * kR);
    int64_t copies =
        std::max<int64_t>(1, (kRotationBytes + int64_t(cacheBytes()) - 1) /
                                 int64_t(cacheBytes()));
    kv.resize(static_cast<size_t>(copies));
    pe.resize(static_cast<size_t>(copies));
    for (int64_t i = 0; i < copies; ++i) {
      fill(kv[i], c.B * c.T * kC);
      fill(pe[i], c.B * c.T * kR);
      mKv.push_back(memref3(kv[i], kC));
      mPe.push_back(memref3(pe[i], kR));
    }
    out.assign(static_cast<size_t>(c.B * c.S * c.H * kC), 0.0f);
    mQLat = memref4(qLat, kC);
    mQPe = memref4(qPe, kR);
    mOut = memref4(out, kC);
  }

  loom_memref_4d_t memref4(std::vector<float> &v, int64_t d) {
    const Config &c = cfg;
    return {v.data(),
            v.data(),
            0,
            {c.B, c.S, c.H, d},
            {c.S * c.H * d, c.H * d, d, 1}};
  }
  loom_memref_3d_t memref3(std::vector<float> &v, int64_t d) {
    const Config &c = cfg;
    return {v.data(), v.data(), 0, {c.B, c.T, d}, {c.T * d, d, 1}};
  }

  void call() {
    size_t i = next;
    next = (next + 1) % mKv.size();
    loom_rt_mla_decode_f32(&mQLat, &mQPe, &mKv[i], &mPe[i], &mOut,
                           cfg.T - cfg.S, 1.0f / std::sqrt(float(kC + kR)));
  }

  double flops() const {
    return double(cfg.B) * cfg.S * cfg.H * cfg.T * (2 * (kC + kR) + 2 * kC);
  }
  double cacheBytes() const {
    return double(cfg.B) * cfg.T * (kC + kR) * sizeof(float);
  }
};

} // namespace

int main(int argc, char **argv) {
  int rounds = 5;
  double perConfigSeconds = 0.4;
  std::vector<Config> configs;
  auto addConfig = [&](const char *spec) {
    long long b, s, h, t;
    char end;
    if (std::sscanf(spec, "%lld,%lld,%lld,%lld%c", &b, &s, &h, &t, &end) != 4 ||
        b <= 0 || s <= 0 || h <= 0 || t < s)
      return false;
    configs.push_back({b, s, h, t});
    return true;
  };
  if (!bench::parseOptions(argc, argv, "B,S,H,T", rounds, perConfigSeconds,
                           addConfig))
    return 2;
  if (configs.empty())
    configs = {{1, 1, 128, 1024}, {1, 1, 128, 4096}, {1, 1, 128, 16384},
               {8, 1, 128, 1024}, {8, 1, 128, 4096}, {8, 1, 128, 16384},
               {1, 1, 16, 4096},  {8, 1, 16, 4096},  {1, 1, 16, 16384}};
  int threads = loom_runtime_num_threads();

  std::vector<Operands> ops;
  std::vector<int> reps;
  for (const Config &c : configs) {
    ops.emplace_back(c);
    reps.push_back(bench::calibrateReps(ops.back(), perConfigSeconds, 200));
  }
  double bandwidth = roofline::readBandwidthGBs(threads, int64_t(512) << 20, 3);

  // Each round's timed calls of a configuration follow one untimed call.
  bench::Rounds measured =
      bench::runRounds(ops, reps, rounds, threads, /*warmCalls=*/1,
                       [](const Operands &op) { return op.flops(); });
  const auto &times = measured.times;
  const auto &fractions = measured.fractions;
  double peak = median(measured.peaks);
  std::fprintf(stderr,
               "threads %d, FMA peak %.1f GFLOP/s (median of %d rounds), "
               "read bandwidth %.2f GB/s\n\n",
               threads, peak, rounds, bandwidth);
  std::fprintf(stderr, "| B | S | H | T | median ms | GFLOP/s | cache MB read "
                       "| cache GB/s | %% of FMA peak |\n"
                       "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  std::string json = bench::jsonHead(
      threads, peak, rounds, ", \"read_bw_gbs\": " + std::to_string(bandwidth));
  for (size_t i = 0; i < configs.size(); ++i) {
    const Config &c = configs[i];
    double t = median(times[i]);
    double gflops = ops[i].flops() / t / 1e9;
    double fraction = median(fractions[i]);
    double mb = ops[i].cacheBytes() / 1e6;
    std::fprintf(stderr,
                 "| %lld | %lld | %lld | %lld | %.3f | %.1f | %.1f | %.2f | "
                 "%.0f%% |\n",
                 (long long)c.B, (long long)c.S, (long long)c.H, (long long)c.T,
                 t * 1e3, gflops, mb, mb / 1e3 / t, fraction * 100);
    char buf[512];
    std::snprintf(buf, sizeof(buf),
                  "%s{\"B\": %lld, \"S\": %lld, \"H\": %lld, \"T\": %lld, "
                  "\"C\": %lld, \"R\": %lld, \"median_ms\": %.4f, "
                  "\"gflops\": %.2f, \"cache_bytes\": %.0f, "
                  "\"fraction_of_peak\": %.4f}",
                  i ? ", " : "", (long long)c.B, (long long)c.S, (long long)c.H,
                  (long long)c.T, (long long)kC, (long long)kR, t * 1e3, gflops,
                  ops[i].cacheBytes(), fraction);
    json += buf;
  }
  json += "]}";
  std::printf("%s\n", json.c_str());
  return 0;
}
