//===- bench_util.h - Shared parts of the kernel benchmarks -----*- C++ -*-===//
//
// This file holds what bench/attention_kernel_bench.cc and
// bench/mla_kernel_bench.cc share: the roofline functions they link from
// bench/roofline.cc (compiled with LOOM_ROOFLINE_NO_MAIN), the parsing of
// their common options, the calibration of repetitions, and the timed
// rounds that alternate an FMA peak measurement with every configuration, so
// that load which comes and goes on a shared machine hits both.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_BENCH_BENCH_UTIL_H
#define LOOM_BENCH_BENCH_UTIL_H

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace roofline {
/// The f32 FMA peak of `threads` threads in GFLOP/s, the best of `reps`
/// runs of about `seconds` each.
double fmaPeakGflops(int threads, double seconds, int reps);
/// The memory read bandwidth of `threads` threads over `bytes` bytes in
/// GB/s, the best of `reps` passes.
double readBandwidthGBs(int threads, int64_t bytes, int reps);
} // namespace roofline

namespace bench {

using Clock = std::chrono::steady_clock;

/// Seconds from a to b.
inline double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

/// The median of v (not empty).
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Parses the options of a kernel benchmark,
///   [--rounds N] [--seconds S] [--config SPEC]...
/// into `rounds` (N >= 1) and `perConfigSeconds` (0 < S <= 3600), and hands
/// each SPEC to addConfig, which returns false when it is malformed. On
/// anything else prints a usage line, with `configSyntax` for SPEC, and
/// returns false.
template <typename AddConfig>
bool parseOptions(int argc, char **argv, const char *configSyntax, int &rounds,
                  double &perConfigSeconds, AddConfig addConfig) {
  // Every option takes a value.
  for (int i = 1; i < argc; i += 2) {
    const char *value = i + 1 < argc ? argv[i + 1] : nullptr;
    char *end = nullptr;
    bool ok = false;
    if (value && !std::strcmp(argv[i], "--rounds")) {
      long n = std::strtol(value, &end, 10);
      ok = *value && !*end && n >= 1 && n <= 1000000;
      if (ok)
        rounds = static_cast<int>(n);
    } else if (value && !std::strcmp(argv[i], "--seconds")) {
      double s = std::strtod(value, &end);
      ok = *value && !*end && s > 0 && s <= 3600;
      if (ok)
        perConfigSeconds = s;
    } else if (value && !std::strcmp(argv[i], "--config")) {
      ok = addConfig(value);
    }
    if (!ok) {
      bool known = !std::strcmp(argv[i], "--rounds") ||
                   !std::strcmp(argv[i], "--seconds") ||
                   !std::strcmp(argv[i], "--config");
      if (known && value)
        std::fprintf(stderr, "%s: bad value '%s' for %s\n", argv[0], value,
                     argv[i]);
      else if (known)
        std::fprintf(stderr, "%s: %s needs a value\n", argv[0], argv[i]);
      else
        std::fprintf(stderr, "%s: unknown argument '%s'\n", argv[0], argv[i]);
      std::fprintf(stderr,
                   "usage: %s [--rounds N] [--seconds S] [--config %s]...\n",
                   argv[0], configSyntax);
      return false;
    }
  }
  return true;
}

/// Calls op once to warm up (pages, the thread pool, the allocator's
/// cache), times a second call, and returns the calls that fill about
/// `perConfigSeconds`, within [3, maxReps].
template <typename Op>
int calibrateReps(Op &op, double perConfigSeconds, int maxReps) {
  op.call();
  auto start = Clock::now();
  op.call();
  double t = seconds(start, Clock::now());
  return std::clamp(static_cast<int>(perConfigSeconds / std::max(t, 1e-6)), 3,
                    maxReps);
}

/// What runRounds measured: the FMA peak of every round, and per
/// configuration the median call time and the fraction of that round's
/// peak of every round.
struct Rounds {
  std::vector<double> peaks;
  std::vector<std::vector<double>> times, fractions;
};

/// Runs `rounds` rounds, each an FMA peak measurement on `threads` threads
/// followed by reps[i] timed calls of every ops[i] (after `warmCalls`
/// untimed ones); flops(op) gives the work of a call that counts against the
/// peak.
template <typename Op, typename Flops>
Rounds runRounds(std::vector<Op> &ops, const std::vector<int> &reps, int rounds,
                 int threads, int warmCalls, Flops flops) {
  Rounds r;
  r.times.resize(ops.size());
  r.fractions.resize(ops.size());
  for (int round = 0; round < rounds; ++round) {
    double peak = roofline::fmaPeakGflops(threads, 0.1, 3);
    r.peaks.push_back(peak);
    for (size_t i = 0; i < ops.size(); ++i) {
      for (int k = 0; k < warmCalls; ++k)
        ops[i].call();
      std::vector<double> calls;
      for (int k = 0; k < reps[i]; ++k) {
        auto start = Clock::now();
        ops[i].call();
        calls.push_back(seconds(start, Clock::now()));
      }
      double t = median(calls);
      r.times[i].push_back(t);
      r.fractions[i].push_back(flops(ops[i]) / t / 1e9 / peak);
    }
  }
  return r;
}

/// The start of a benchmark's JSON line up to its list of configurations:
/// the threads, the FMA peak, the fields in `extra` (each `, "key": value`)
/// and the rounds.
inline std::string jsonHead(int threads, double peak, int rounds,
                            const std::string &extra = "") {
  return "{\"threads\": " + std::to_string(threads) +
         ", \"fma_peak_gflops\": " + std::to_string(peak) + extra +
         ", \"rounds\": " + std::to_string(rounds) + ", \"configs\": [";
}

} // namespace bench

#endif // LOOM_BENCH_BENCH_UTIL_H
