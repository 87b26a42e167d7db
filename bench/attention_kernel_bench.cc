//===- attention_kernel_bench.cc - loom_rt_attention_f32 against the roofline //
//
// This file times the masked attention host function on dense operands
// (uniform in [-1, 1), B = 1) and compares it with the FMA peak measured in
// the same process: rounds alternate a peak measurement with every
// configuration, so that load which comes and goes on a shared machine hits
// both. Masks, given to the kernel as the compiler would (mask_row plus an
// exact mask_block interval test):
//   none      every key visible
//   causal    j <= i
//   sliding   i - 256 < j <= i
//   sparse    a tenth of the 64 x 64 blocks, chosen at random (fixed seed)
// Per configuration: the median call time of each round, the dense-equivalent
// rate (4 * B * H * Sq * Skv * D flops a call), the rate over the visible
// pairs only (4 * D flops each), their fraction of the peak, and the speed-up
// over the causal mask of the same size; the figures are medians over the
// rounds. Built by bench/attention_kernel.sh, never by CI.
//
//   attention_kernel_bench [--rounds N] [--seconds S] [--config S,H,D]...
//
// Prints a markdown table on stderr and one JSON line on stdout. Threads: the
// runtime's pool (LOOM_NUM_THREADS, else all cores) for the kernel, the same
// count for the peak.
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

enum class MaskKind { None, Causal, Sliding, Sparse };
const char *const kMaskNames[] = {"none", "causal", "sliding256", "sparse10"};
constexpr int64_t kWindow = 256;
constexpr int64_t kSparseBlock = 64;

struct Config {
  int64_t S, H, D;
  MaskKind mask;
};

/// The mask of a configuration behind the C callbacks of
/// loom_attention_mods_t.
struct MaskData {
  MaskKind kind;
  int64_t S;
  /// Visible 64 x 64 blocks of the sparse mask, [S / 64][S / 64].
  std::vector<uint8_t> blocks;
  int64_t nb = 0;

  MaskData(MaskKind k, int64_t s) : kind(k), S(s) {
    if (kind != MaskKind::Sparse)
      return;
    nb = (S + kSparseBlock - 1) / kSparseBlock;
    blocks.resize(static_cast<size_t>(nb * nb));
    // Exactly a tenth of the blocks (rounded), at random.
    int64_t visible = (nb * nb + 5) / 10;
    std::fill(blocks.begin(), blocks.begin() + visible, uint8_t(1));
    std::shuffle(blocks.begin(), blocks.end(), std::mt19937(7));
  }

  bool visible(int64_t i, int64_t j) const {
    switch (kind) {
    case MaskKind::None:
      return true;
    case MaskKind::Causal:
      return j <= i;
    case MaskKind::Sliding:
      return j <= i && j > i - kWindow;
    case MaskKind::Sparse:
      return blocks[static_cast<size_t>(i / kSparseBlock * nb +
                                        j / kSparseBlock)];
    }
    return false;
  }

  static void maskRow(void *ctx, int64_t, int64_t, int64_t i, int64_t j0,
                      int64_t n, uint8_t *out) {
    const auto *m = static_cast<const MaskData *>(ctx);
    for (int64_t t = 0; t < n; ++t)
      out[t] = m->visible(i, j0 + t);
  }

  /// The interval analysis a compiled mask does: exact NONE / ALL.
  static int32_t maskBlock(void *ctx, int64_t, int64_t, int64_t i0, int64_t i1,
                           int64_t j0, int64_t j1) {
    const auto *m = static_cast<const MaskData *>(ctx);
    int64_t iLast = i1 - 1, jLast = j1 - 1;
    switch (m->kind) {
    case MaskKind::None:
      return LOOM_ATTENTION_BLOCK_ALL;
    case MaskKind::Causal:
      if (j0 > iLast)
        return LOOM_ATTENTION_BLOCK_NONE;
      return jLast <= i0 ? LOOM_ATTENTION_BLOCK_ALL : LOOM_ATTENTION_BLOCK_SOME;
    case MaskKind::Sliding:
      if (j0 > iLast || jLast <= i0 - kWindow)
        return LOOM_ATTENTION_BLOCK_NONE;
      return jLast <= i0 && j0 > iLast - kWindow ? LOOM_ATTENTION_BLOCK_ALL
                                                 : LOOM_ATTENTION_BLOCK_SOME;
    case MaskKind::Sparse: {
      bool any = false, all = true;
      for (int64_t bi = i0 / kSparseBlock; bi <= iLast / kSparseBlock; ++bi)
        for (int64_t bj = j0 / kSparseBlock; bj <= jLast / kSparseBlock; ++bj) {
          bool v = m->blocks[static_cast<size_t>(bi * m->nb + bj)];
          any |= v;
          all &= v;
        }
      return !any  ? LOOM_ATTENTION_BLOCK_NONE
             : all ? LOOM_ATTENTION_BLOCK_ALL
                   : LOOM_ATTENTION_BLOCK_SOME;
    }
    }
    return LOOM_ATTENTION_BLOCK_SOME;
  }

  /// Visible (query, key) pairs.
  double pairs() const {
    double n = 0;
    for (int64_t i = 0; i < S; ++i)
      switch (kind) {
      case MaskKind::None:
        n += double(S);
        break;
      case MaskKind::Causal:
        n += double(i + 1);
        break;
      case MaskKind::Sliding:
        n += double(std::min<int64_t>(i + 1, kWindow));
        break;
      case MaskKind::Sparse:
        for (int64_t bj = 0; bj < nb; ++bj)
          if (blocks[static_cast<size_t>(i / kSparseBlock * nb + bj)])
            n += double(std::min<int64_t>(kSparseBlock, S - bj * kSparseBlock));
        break;
      }
    return n;
  }
};

/// The operands of one configuration, dense [1, H, S, D].
struct Operands {
  Config cfg;
  std::vector<float> q, k, v, out, lse;
  loom_memref_4d_t mq, mk, mv, mo;
  loom_memref_3d_t ml;
  MaskData mask;
  loom_attention_mods_t mods = {};
  /// The kernel, found by name as an artifact finds it.
  loom_rt_attention_f32_fn_t attention;

  explicit Operands(const Config &c)
      : cfg(c), mask(c.mask, c.S),
        attention(reinterpret_cast<loom_rt_attention_f32_fn_t>(
            loom_host_function_lookup("loom_rt_attention_f32"))) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1, 1);
    int64_t n = c.H * c.S * c.D;
    for (auto *t : {&q, &k, &v}) {
      t->resize(static_cast<size_t>(n));
      for (float &x : *t)
        x = dist(rng);
    }
    out.assign(static_cast<size_t>(n), 0.0f);
    lse.assign(static_cast<size_t>(c.H * c.S), 0.0f);
    mq = memref4(q);
    mk = memref4(k);
    mv = memref4(v);
    mo = memref4(out);
    ml = {lse.data(), lse.data(), 0, {1, c.H, c.S}, {c.H * c.S, c.S, 1}};
    mods.ctx = &mask;
    if (c.mask != MaskKind::None) {
      mods.mask_row = &MaskData::maskRow;
      mods.mask_block = &MaskData::maskBlock;
    }
  }

  loom_memref_4d_t memref4(std::vector<float> &t) {
    const Config &c = cfg;
    return {t.data(),
            t.data(),
            0,
            {1, c.H, c.S, c.D},
            {c.H * c.S * c.D, c.S * c.D, c.D, 1}};
  }

  void call() {
    attention(&mq, &mk, &mv, &mo, &ml, 1.0f / std::sqrt(float(cfg.D)), &mods);
  }

  double denseFlops() const {
    return 4.0 * cfg.H * double(cfg.S) * double(cfg.S) * cfg.D;
  }
  double visibleFlops() const { return 4.0 * cfg.H * mask.pairs() * cfg.D; }
};

} // namespace

int main(int argc, char **argv) {
  int rounds = 3;
  double perConfigSeconds = 0.3;
  std::vector<Config> configs;
  auto addConfig = [&](const char *spec) {
    long long s, h, d;
    char end;
    if (std::sscanf(spec, "%lld,%lld,%lld%c", &s, &h, &d, &end) != 3 ||
        s <= 0 || h <= 0 || d <= 0)
      return false;
    for (MaskKind m : {MaskKind::None, MaskKind::Causal, MaskKind::Sliding,
                       MaskKind::Sparse})
      configs.push_back({s, h, d, m});
    return true;
  };
  if (!bench::parseOptions(argc, argv, "S,H,D", rounds, perConfigSeconds,
                           addConfig))
    return 2;
  if (configs.empty())
    for (int64_t d : {64, 128})
      for (int64_t s : {1024, 2048, 4096})
        for (MaskKind m : {MaskKind::None, MaskKind::Causal, MaskKind::Sliding,
                           MaskKind::Sparse})
          configs.push_back({s, 8, d, m});
  int threads = loom_runtime_num_threads();
  if (!loom_host_function_lookup("loom_rt_attention_f32")) {
    std::fprintf(stderr, "attention_kernel_bench: this runtime has no "
                         "loom_rt_attention_f32\n");
    return 1;
  }

  std::vector<Operands> ops;
  ops.reserve(configs.size());
  std::vector<int> reps;
  for (const Config &c : configs) {
    ops.emplace_back(c);
    reps.push_back(bench::calibrateReps(ops.back(), perConfigSeconds, 100));
  }

  bench::Rounds measured =
      bench::runRounds(ops, reps, rounds, threads, /*warmCalls=*/0,
                       [](const Operands &op) { return op.visibleFlops(); });
  const auto &times = measured.times;
  const auto &fractions = measured.fractions;
  double peak = median(measured.peaks);
  std::fprintf(stderr,
               "threads %d, FMA peak %.1f GFLOP/s (median of %d rounds)\n\n",
               threads, peak, rounds);
  std::fprintf(stderr,
               "| S | H | D | mask | visible pairs | median ms | dense-equiv "
               "GFLOP/s | visible GFLOP/s | %% of FMA peak | x causal |\n"
               "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n");
  std::string json = bench::jsonHead(threads, peak, rounds);
  for (size_t i = 0; i < configs.size(); ++i) {
    const Config &c = configs[i];
    double t = median(times[i]);
    double dense = ops[i].denseFlops() / t / 1e9;
    double visible = ops[i].visibleFlops() / t / 1e9;
    double fraction = median(fractions[i]);
    double pairsFraction = ops[i].mask.pairs() / (double(c.S) * double(c.S));
    // Speed-up over the causal mask of the same S, H, D.
    double overCausal = 0;
    for (size_t j = 0; j < configs.size(); ++j)
      if (configs[j].mask == MaskKind::Causal && configs[j].S == c.S &&
          configs[j].H == c.H && configs[j].D == c.D)
        overCausal = median(times[j]) / t;
    std::fprintf(stderr,
                 "| %lld | %lld | %lld | %s | %.1f%% | %.2f | %.1f | %.1f | "
                 "%.0f%% | %.2f |\n",
                 (long long)c.S, (long long)c.H, (long long)c.D,
                 kMaskNames[int(c.mask)], pairsFraction * 100, t * 1e3, dense,
                 visible, fraction * 100, overCausal);
    char buf[512];
    std::snprintf(buf, sizeof(buf),
                  "%s{\"B\": 1, \"S\": %lld, \"H\": %lld, \"D\": %lld, "
                  "\"mask\": \"%s\", \"visible_fraction\": %.4f, "
                  "\"median_ms\": %.4f, \"dense_gflops\": %.2f, "
                  "\"visible_gflops\": %.2f, \"fraction_of_peak\": %.4f, "
                  "\"speedup_over_causal\": %.3f}",
                  i ? ", " : "", (long long)c.S, (long long)c.H, (long long)c.D,
                  kMaskNames[int(c.mask)], pairsFraction, t * 1e3, dense,
                  visible, fraction, overCausal);
    json += buf;
  }
  json += "]}";
  std::printf("%s\n", json.c_str());
  return 0;
}
