//===- token_logprob_test.cc - Tests of the token log-probability kernel --===//
//
// This file checks loom_rt_token_logprob_f32 and its backward
// loom_rt_token_logprob_grad_f32 against a float64 reference written from the
// formulas in abi.h (the [N, V] logits materialized, a max-shifted
// log-sum-exp, the dlogits and both gradient products): vocabularies that
// are and are not a multiple of the chunk, a chunk larger than V, a chunk of
// 1 and the default chunk; temperatures other than 1; strided and offset
// views of every operand, outputs written only inside their views; gradients
// asked for one at a time; logits near +-100 and beyond; ids out of range
// and temperatures that are not positive. A central finite difference of the
// float64 forward checks the backward independently of the reference's
// gradient formulas. The row-block kernels of the single-pass loss
// (loom_rt_token_logprob_rows_f32 and _rows_grad_f32), driven by the loop the
// compiler generates, are checked against the same reference: blocks that do
// and do not divide N, a scratch with padded rows, zero-gradient tokens
// (whole blocks of them, the first included), bad ids, bad temperatures, a
// scratch whose columns are not contiguous, offsets outside [0, N) and N = 0.
//
//===----------------------------------------------------------------------===//

#include "test_util.h"

#include <cmath>
#include <random>

namespace {

using loom::test::StridedTensor;

/// Relative tolerance of the f32 kernel against the float64 reference.
constexpr double kTol = 1e-4;

/// A 1-D strided vector over its own storage (NaN, or -1 for ids, outside
/// the view).
template <typename T> struct Strided1d {
  std::vector<T> storage;
  int64_t size, stride, offset;
  Strided1d(int64_t n, bool padded, T fill)
      : size(n), stride(padded ? 3 : 1), offset(padded ? 2 : 0) {
    storage.assign(
        static_cast<size_t>(offset + std::max<int64_t>(n, 1) * stride), fill);
  }
  T &operator[](int64_t i) { return storage[offset + i * stride]; }
  loom_memref_1d_t memref() {
    loom_memref_1d_t m;
    m.allocated = m.aligned = storage.data();
    m.offset = offset;
    m.sizes[0] = size;
    m.strides[0] = stride;
    return m;
  }
};

struct Case {
  int64_t N, d, V, chunk;
  float temperature = 1.0f;
  bool strided = false;
  /// Scale of the hidden states: larger gives larger logits.
  double amp = 1.0;
};

std::ostream &operator<<(std::ostream &os, const Case &c) {
  return os << "N" << c.N << "_d" << c.d << "_V" << c.V << "_chunk" << c.chunk
            << "_t" << c.temperature << (c.strided ? "_strided" : "") << "_amp"
            << c.amp;
}

/// The operands of one case, with a float64 reference.
struct Problem {
  Case c;
  StridedTensor hidden, weight;
  Strided1d<int64_t> ids;
  Strided1d<float> g;
  std::vector<double> logits; ///< [N, V], scaled by 1 / t.
  std::vector<double> lse, logp, gradHidden, gradWeight;

  explicit Problem(const Case &cs, unsigned seed = 1)
      : c(cs), hidden(StridedTensor::contiguousUnless(cs.strided, {cs.N, cs.d},
                                                      2, 3, 5)),
        weight(
            StridedTensor::contiguousUnless(cs.strided, {cs.V, cs.d}, 3, 2, 7)),
        ids(cs.N, cs.strided, -1), g(cs.N, cs.strided, std::nanf("")) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::uniform_int_distribution<int64_t> pick(0, cs.V - 1);
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t k = 0; k < c.d; ++k)
        hidden.at({n, k}) = static_cast<float>(c.amp * u(rng));
    for (int64_t v = 0; v < c.V; ++v)
      for (int64_t k = 0; k < c.d; ++k)
        weight.at({v, k}) = u(rng);
    for (int64_t n = 0; n < c.N; ++n) {
      ids[n] = pick(rng);
      g[n] = u(rng);
    }
    reference();
  }

  /// The formulas of abi.h in float64, every token's id taken as valid when
  /// it is in [0, V) (the others get NaN logp and contribute nothing).
  void reference() {
    int64_t N = c.N, V = c.V, d = c.d;
    logits.assign(N * V, 0);
    lse.assign(N, 0);
    logp.assign(N, 0);
    gradHidden.assign(N * d, 0);
    gradWeight.assign(V * d, 0);
    for (int64_t n = 0; n < N; ++n) {
      double mx = -INFINITY;
      for (int64_t v = 0; v < V; ++v) {
        double s = 0;
        for (int64_t k = 0; k < d; ++k)
          s += double(hidden.at({n, k})) * double(weight.at({v, k}));
        logits[n * V + v] = s / c.temperature;
        mx = std::max(mx, logits[n * V + v]);
      }
      double sum = 0;
      for (int64_t v = 0; v < V; ++v)
        sum += std::exp(logits[n * V + v] - mx);
      lse[n] = mx + std::log(sum);
      int64_t id = ids[n];
      bool valid = id >= 0 && id < V;
      logp[n] = valid ? logits[n * V + id] - lse[n] : NAN;
      if (!valid)
        continue;
      for (int64_t v = 0; v < V; ++v) {
        double dl =
            double(g[n]) / c.temperature *
            ((v == id ? 1.0 : 0.0) - std::exp(logits[n * V + v] - lse[n]));
        for (int64_t k = 0; k < d; ++k) {
          gradHidden[n * d + k] += dl * double(weight.at({v, k}));
          gradWeight[v * d + k] += dl * double(hidden.at({n, k}));
        }
      }
    }
  }

  /// Runs the forward into fresh strided logp and lse.
  void forward(Strided1d<float> &outLogp, Strided1d<float> &outLse) {
    loom_memref_2d_t h = hidden.memref<loom_memref_2d_t>();
    loom_memref_2d_t w = weight.memref<loom_memref_2d_t>();
    loom_memref_1d_t i = ids.memref(), lp = outLogp.memref(),
                     ls = outLse.memref();
    loom_rt_token_logprob_f32(&h, &w, &i, &lp, &ls, c.temperature, c.chunk);
  }

  /// Runs the backward with the reference's lse (rounded to f32); either
  /// gradient may be skipped.
  void backward(StridedTensor *gh, StridedTensor *gw, int64_t flags = 0) {
    Strided1d<float> l(c.N, c.strided, std::nanf(""));
    for (int64_t n = 0; n < c.N; ++n)
      l[n] = static_cast<float>(lse[n]);
    loom_memref_2d_t h = hidden.memref<loom_memref_2d_t>();
    loom_memref_2d_t w = weight.memref<loom_memref_2d_t>();
    loom_memref_1d_t i = ids.memref(), gm = g.memref(), lm = l.memref();
    loom_memref_2d_t ghm, gwm;
    if (gh)
      ghm = gh->memref<loom_memref_2d_t>();
    if (gw)
      gwm = gw->memref<loom_memref_2d_t>();
    loom_rt_token_logprob_grad_f32(&h, &w, &i, &gm, &lm, gh ? &ghm : nullptr,
                                   gw ? &gwm : nullptr, c.temperature, c.chunk,
                                   flags);
  }

  StridedTensor gradTensor(int64_t rows) {
    return StridedTensor::contiguousUnless(c.strided, {rows, c.d}, 2, 2, 3);
  }
};

/// Compares a [rows, d] result with a float64 reference to kTol times the
/// largest reference magnitude (at least 1e-3), and checks that nothing
/// outside the view was written.
void expectMatrix(StridedTensor &out, const std::vector<double> &ref,
                  const char *what) {
  int64_t rows = out.sizes[0], cols = out.sizes[1];
  double magnitude = 1e-3;
  for (double x : ref)
    magnitude = std::max(magnitude, std::abs(x));
  int64_t bad = 0;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      double got = out.at({i, j}), want = ref[i * cols + j];
      if (!(std::abs(got - want) <= kTol * magnitude) && bad++ < 5)
        ADD_FAILURE() << what << "[" << i << ", " << j << "] = " << got
                      << ", want " << want << " (scale " << magnitude << ")";
    }
  EXPECT_EQ(bad, 0) << what;
  EXPECT_EQ(out.written(), static_cast<size_t>(rows * cols)) << what;
}

/// A test name from a case's fields.
std::string caseName(const ::testing::TestParamInfo<Case> &info) {
  std::ostringstream os;
  os << info.param;
  std::string s = os.str();
  for (char &ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch)))
      ch = '_';
  return s;
}

class TokenLogprob : public ::testing::TestWithParam<Case> {};

TEST_P(TokenLogprob, ForwardMatchesReference) {
  Problem p(GetParam());
  Strided1d<float> logp(p.c.N, p.c.strided, std::nanf(""));
  Strided1d<float> lse(p.c.N, p.c.strided, std::nanf(""));
  p.forward(logp, lse);
  for (int64_t n = 0; n < p.c.N; ++n) {
    EXPECT_NEAR(lse[n], p.lse[n], kTol * std::max(1.0, std::abs(p.lse[n])))
        << "token " << n;
    EXPECT_NEAR(logp[n], p.logp[n], kTol * std::max(1.0, std::abs(p.lse[n])))
        << "token " << n;
  }
  // Nothing outside the views.
  size_t written = 0;
  for (float x : logp.storage)
    written += !std::isnan(x);
  EXPECT_EQ(written, static_cast<size_t>(p.c.N));
}

TEST_P(TokenLogprob, BackwardMatchesReference) {
  Problem p(GetParam());
  StridedTensor gh = p.gradTensor(p.c.N), gw = p.gradTensor(p.c.V);
  p.backward(&gh, &gw);
  expectMatrix(gh, p.gradHidden, "grad_hidden");
  expectMatrix(gw, p.gradWeight, "grad_weight");
}

TEST_P(TokenLogprob, BackwardOneGradientAtATime) {
  Problem p(GetParam());
  StridedTensor gh = p.gradTensor(p.c.N), gw = p.gradTensor(p.c.V);
  p.backward(&gh, nullptr);
  expectMatrix(gh, p.gradHidden, "grad_hidden alone");
  p.backward(nullptr, &gw);
  expectMatrix(gw, p.gradWeight, "grad_weight alone");
  p.backward(nullptr, nullptr); // Nothing to do, nothing to touch.
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, TokenLogprob,
    ::testing::Values(
        Case{4, 8, 16, 4},              // V a multiple of the chunk
        Case{5, 12, 37, 8},             // V not a multiple of the chunk
        Case{3, 16, 20, 64},            // chunk > V
        Case{3, 5, 9, 1},               // chunk of 1
        Case{7, 33, 301, 0},            // default chunk, one step
        Case{8, 8, 5000, 0},            // default chunk, two steps
        Case{70, 40, 130, 32, 0.7f},    // temperature < 1, GEMMs off the tiny
        Case{33, 64, 257, 100, 1.9f},   // temperature > 1
        Case{6, 10, 45, 7, 1.3f, true}, // strided views
        Case{65, 48, 200, 64, 0.8f, true},    // strided, larger
        Case{9, 16, 50, 16, 1.0f, false, 40}, // logits near +-100
        Case{9, 16, 50, 13, 0.5f, true, 60}), // logits beyond +-200
    caseName);

TEST(TokenLogprobLimits, LargeLogitsStayFinite) {
  // Logits in the hundreds overflow a naive exp in float; the kernel's
  // shifted exponents must not.
  Problem p(Case{6, 16, 40, 8, 1.0f, false, 80});
  double biggest = 0;
  for (double x : p.logits)
    biggest = std::max(biggest, std::abs(x));
  ASSERT_GT(biggest, 100.0);
  Strided1d<float> logp(6, false, NAN), lse(6, false, NAN);
  p.forward(logp, lse);
  for (int64_t n = 0; n < 6; ++n) {
    ASSERT_TRUE(std::isfinite(lse[n]) && std::isfinite(logp[n]));
    EXPECT_LE(logp[n], 1e-4f);
  }
}

TEST(TokenLogprobLimits, FiniteDifferenceOfTheForward) {
  // L = sum_n g[n] logp[n] in float64 from the forward's formula alone; its
  // central differences against every hidden and weight element must match
  // the kernel's backward.
  Case c{3, 6, 11, 4, 0.8f};
  Problem p(c);
  auto loss = [&]() {
    p.reference();
    double l = 0;
    for (int64_t n = 0; n < c.N; ++n)
      l += double(p.g[n]) * p.logp[n];
    return l;
  };
  // Perturb in float64 through a copy of the storage: the float operands
  // are replaced by doubles in a local reference.
  std::vector<double> hd(c.N * c.d), wd(c.V * c.d);
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t k = 0; k < c.d; ++k)
      hd[n * c.d + k] = p.hidden.at({n, k});
  for (int64_t v = 0; v < c.V; ++v)
    for (int64_t k = 0; k < c.d; ++k)
      wd[v * c.d + k] = p.weight.at({v, k});
  auto lossAt = [&]() {
    double l = 0;
    for (int64_t n = 0; n < c.N; ++n) {
      std::vector<double> z(c.V);
      double mx = -INFINITY;
      for (int64_t v = 0; v < c.V; ++v) {
        double s = 0;
        for (int64_t k = 0; k < c.d; ++k)
          s += hd[n * c.d + k] * wd[v * c.d + k];
        z[v] = s / c.temperature;
        mx = std::max(mx, z[v]);
      }
      double sum = 0;
      for (double x : z)
        sum += std::exp(x - mx);
      l += double(p.g[n]) * (z[p.ids[n]] - mx - std::log(sum));
    }
    return l;
  };
  ASSERT_NEAR(lossAt(), loss(), 1e-9);
  const double h = 1e-6;
  auto diff = [&](double &x) {
    double keep = x;
    x = keep + h;
    double up = lossAt();
    x = keep - h;
    double down = lossAt();
    x = keep;
    return (up - down) / (2 * h);
  };
  std::vector<double> fdHidden(hd.size()), fdWeight(wd.size());
  for (size_t i = 0; i < hd.size(); ++i)
    fdHidden[i] = diff(hd[i]);
  for (size_t i = 0; i < wd.size(); ++i)
    fdWeight[i] = diff(wd[i]);
  StridedTensor gh = p.gradTensor(c.N), gw = p.gradTensor(c.V);
  p.backward(&gh, &gw);
  expectMatrix(gh, fdHidden, "grad_hidden vs finite differences");
  expectMatrix(gw, fdWeight, "grad_weight vs finite differences");
}

TEST(TokenLogprobLimits, IdsOutOfRangeGiveNaN) {
  Case c{6, 8, 30, 7};
  Problem p(c);
  p.ids[1] = -1;
  p.ids[4] = c.V;
  p.reference();
  Strided1d<float> logp(c.N, false, NAN), lse(c.N, false, NAN);
  p.forward(logp, lse);
  for (int64_t n = 0; n < c.N; ++n) {
    EXPECT_NEAR(lse[n], p.lse[n], kTol * std::max(1.0, std::abs(p.lse[n])));
    if (n == 1 || n == 4)
      EXPECT_TRUE(std::isnan(logp[n])) << n;
    else
      EXPECT_NEAR(logp[n], p.logp[n], kTol * std::max(1.0, std::abs(p.lse[n])));
  }
  // The backward: those tokens' rows of grad_hidden are NaN, the others are
  // exact, and grad_weight, a sum over every token, is NaN.
  StridedTensor gh = p.gradTensor(c.N), gw = p.gradTensor(c.V);
  p.backward(&gh, &gw);
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t k = 0; k < c.d; ++k) {
      if (n == 1 || n == 4) {
        EXPECT_TRUE(std::isnan(gh.at({n, k})));
        continue;
      }
      EXPECT_NEAR(gh.at({n, k}), p.gradHidden[n * c.d + k], 1e-5);
    }
  EXPECT_TRUE(std::isnan(gw.at({0, 0})));
}

TEST(TokenLogprobLimits, ZeroGradientTokensAreLeftOut) {
  // Padding under a mask: g = 0, and ids that may be anything (TRL's -100).
  // Those tokens are left out of the products: zero grad_hidden rows, no
  // NaN anywhere, and the others exact; on contiguous and strided operands.
  for (bool strided : {false, true}) {
    Case c{9, 8, 300, 7, 1.0f, strided};
    Problem p(c);
    for (int64_t n : {0, 3, 4, 8})
      p.g[n] = 0.0f;
    p.ids[3] = -100;
    p.ids[8] = c.V + 5;
    p.reference();
    StridedTensor gh = p.gradTensor(c.N), gw = p.gradTensor(c.V);
    p.backward(&gh, &gw);
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t k = 0; k < c.d; ++k) {
        if (n == 0 || n == 3 || n == 4 || n == 8)
          EXPECT_EQ(gh.at({n, k}), 0.0f) << n;
        else
          EXPECT_NEAR(gh.at({n, k}), p.gradHidden[n * c.d + k], 1e-5);
      }
    for (int64_t v = 0; v < c.V; ++v)
      for (int64_t k = 0; k < c.d; ++k)
        EXPECT_NEAR(gw.at({v, k}), p.gradWeight[v * c.d + k], 1e-5);
  }
  // Every g = 0: both gradients are 0.
  Case c{5, 4, 20, 3};
  Problem p(c);
  for (int64_t n = 0; n < c.N; ++n)
    p.g[n] = 0.0f;
  p.ids[2] = -1;
  StridedTensor gh = p.gradTensor(c.N), gw = p.gradTensor(c.V);
  p.backward(&gh, &gw);
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t k = 0; k < c.d; ++k)
      EXPECT_EQ(gh.at({n, k}), 0.0f);
  for (int64_t v = 0; v < c.V; ++v)
    for (int64_t k = 0; k < c.d; ++k)
      EXPECT_EQ(gw.at({v, k}), 0.0f);
}

TEST(TokenLogprobLimits, NonPositiveTemperatureGivesNaN) {
  for (float t : {0.0f, -1.0f, std::nanf("")}) {
    Case c{3, 4, 10, 4, t};
    Problem p(Case{3, 4, 10, 4});
    p.c.temperature = t;
    Strided1d<float> logp(c.N, false, 0), lse(c.N, false, 0);
    p.forward(logp, lse);
    StridedTensor gh = p.gradTensor(c.N);
    p.backward(&gh, nullptr);
    for (int64_t n = 0; n < c.N; ++n) {
      EXPECT_TRUE(std::isnan(logp[n]) && std::isnan(lse[n])) << t;
      EXPECT_TRUE(std::isnan(gh.at({n, 0}))) << t;
    }
  }
}

TEST(TokenLogprobLimits, NoTokensAndNullLse) {
  // N = 0: nothing to write, and grad_weight is all zeros.
  Problem p(Case{0, 4, 10, 3});
  StridedTensor gw = p.gradTensor(10);
  p.backward(nullptr, &gw);
  for (int64_t v = 0; v < 10; ++v)
    for (int64_t k = 0; k < 4; ++k)
      EXPECT_EQ(gw.at({v, k}), 0.0f);
  // The forward without lse.
  Problem q(Case{4, 6, 25, 10});
  Strided1d<float> logp(4, false, NAN);
  loom_memref_2d_t h = q.hidden.memref<loom_memref_2d_t>();
  loom_memref_2d_t w = q.weight.memref<loom_memref_2d_t>();
  loom_memref_1d_t i = q.ids.memref(), lp = logp.memref();
  loom_rt_token_logprob_f32(&h, &w, &i, &lp, nullptr, 1.0f, 10);
  for (int64_t n = 0; n < 4; ++n)
    EXPECT_NEAR(logp[n], q.logp[n], kTol * std::max(1.0, std::abs(q.lse[n])));
}

//===----------------------------------------------------------------------===//
// The row-block kernels of the single-pass loss
//===----------------------------------------------------------------------===//

/// A scratch of `rows` rows of V floats, each padded by `pad` (NaN).
struct Scratch2d {
  std::vector<float> storage;
  loom_memref_2d_t m;
  Scratch2d(int64_t rows, int64_t V, int64_t pad = 3, int64_t colStride = 1) {
    int64_t ld = V * colStride + pad;
    storage.assign(static_cast<size_t>(std::max<int64_t>(rows * ld + 5, 1)),
                   std::nanf(""));
    m.allocated = m.aligned = storage.data();
    m.offset = 5;
    m.sizes[0] = rows;
    m.sizes[1] = V;
    m.strides[0] = ld;
    m.strides[1] = colStride;
  }
};

/// Both row-block kernels at each of `offsets`, with p.g as the upstream
/// gradient.
void rowsAt(Problem &p, Scratch2d &scratch, const std::vector<int64_t> &offsets,
            Strided1d<float> &logp, Strided1d<float> &lse, StridedTensor &gh,
            StridedTensor &gw, int64_t flags = 0) {
  loom_memref_2d_t h = p.hidden.memref<loom_memref_2d_t>();
  loom_memref_2d_t w = p.weight.memref<loom_memref_2d_t>();
  loom_memref_1d_t i = p.ids.memref(), gm = p.g.memref(), lp = logp.memref(),
                   ls = lse.memref();
  loom_memref_2d_t ghm = gh.memref<loom_memref_2d_t>();
  loom_memref_2d_t gwm = gw.memref<loom_memref_2d_t>();
  for (int64_t n0 : offsets) {
    loom_rt_token_logprob_rows_f32(&h, &w, &i, &lp, &ls, &scratch.m, n0,
                                   p.c.temperature);
    loom_rt_token_logprob_rows_grad_f32(&h, &w, &i, &ls, &gm, &ghm, &gwm,
                                        &scratch.m, n0, p.c.temperature, flags);
  }
}

/// The loop of loom-fuse-token-logprob-rows over blocks of R tokens, with
/// the upstream gradient fixed in advance (p.g).
void runRows(Problem &p, int64_t R, Strided1d<float> &logp,
             Strided1d<float> &lse, StridedTensor &gh, StridedTensor &gw,
             int64_t colStride = 1, int64_t rowStride = 0, int64_t flags = 0) {
  Scratch2d scratch(R, p.c.V, 3, colStride);
  if (rowStride)
    scratch.m.strides[0] = rowStride;
  std::vector<int64_t> offsets;
  for (int64_t n0 = 0; n0 < std::max<int64_t>(p.c.N, 1); n0 += R)
    offsets.push_back(n0);
  rowsAt(p, scratch, offsets, logp, lse, gh, gw, flags);
}

class TokenLogprobRows : public ::testing::TestWithParam<Case> {};

TEST_P(TokenLogprobRows, MatchesReference) {
  // The case's chunk is the block of tokens here (0: all of them).
  Problem p(GetParam());
  int64_t R = p.c.chunk > 0 ? p.c.chunk : std::max<int64_t>(p.c.N, 1);
  Strided1d<float> logp(p.c.N, p.c.strided, std::nanf(""));
  Strided1d<float> lse(p.c.N, p.c.strided, std::nanf(""));
  StridedTensor gh = p.gradTensor(p.c.N), gw = p.gradTensor(p.c.V);
  runRows(p, R, logp, lse, gh, gw);
  for (int64_t n = 0; n < p.c.N; ++n) {
    double scale = kTol * std::max(1.0, std::abs(p.lse[n]));
    EXPECT_NEAR(lse[n], p.lse[n], scale) << "token " << n;
    EXPECT_NEAR(logp[n], p.logp[n], scale) << "token " << n;
  }
  size_t written = 0;
  for (float x : logp.storage)
    written += !std::isnan(x);
  EXPECT_EQ(written, static_cast<size_t>(p.c.N));
  expectMatrix(gh, p.gradHidden, "grad_hidden");
  expectMatrix(gw, p.gradWeight, "grad_weight");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, TokenLogprobRows,
    ::testing::Values(Case{4, 8, 16, 2},              // blocks that divide N
                      Case{7, 12, 37, 3},             // a partial last block
                      Case{5, 16, 20, 8},             // one block > N
                      Case{6, 5, 9, 1},               // blocks of 1
                      Case{70, 40, 130, 16, 0.7f},    // temperature < 1
                      Case{33, 64, 257, 0, 1.9f},     // one block of all
                      Case{6, 10, 45, 4, 1.3f, true}, // strided views
                      Case{9, 16, 50, 4, 1.0f, false, 40}, // logits near 100
                      Case{5, 6, 9000, 2, 0.8f}), // grad_weight in 3 parts
    caseName);

TEST(TokenLogprobRowsLimits, ZeroGradientTokensAndBlocks) {
  // g = 0 (padding): the first block entirely, scattered tokens elsewhere,
  // ids anything there. Their grad_hidden rows are 0, the rest exact, and
  // grad_weight (first written by a block with nothing active) is exact.
  for (bool strided : {false, true}) {
    Case c{11, 8, 60, 3, 0.9f, strided};
    Problem p(c);
    for (int64_t n : {0, 1, 2, 4, 9})
      p.g[n] = 0.0f;
    p.ids[1] = -100;
    p.ids[9] = c.V + 2;
    p.reference();
    Strided1d<float> logp(c.N, strided, NAN), lse(c.N, strided, NAN);
    StridedTensor gh = p.gradTensor(c.N), gw = p.gradTensor(c.V);
    runRows(p, 3, logp, lse, gh, gw);
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t k = 0; k < c.d; ++k) {
        if (p.g[n] == 0.0f)
          EXPECT_EQ(gh.at({n, k}), 0.0f) << n;
        else
          EXPECT_NEAR(gh.at({n, k}), p.gradHidden[n * c.d + k], 1e-5) << n;
      }
    expectMatrix(gw, p.gradWeight, "grad_weight with padding");
    // The bad ids give NaN log-probs, the others are exact.
    EXPECT_TRUE(std::isnan(logp[1]) && std::isnan(logp[9]));
    EXPECT_NEAR(logp[3], p.logp[3], kTol * std::max(1.0, std::abs(p.lse[3])));
  }
}

TEST(TokenLogprobRowsLimits, WeightCopiedForSmallBlocks) {
  // d = 256 (a weight row pitch of 1 KiB) and blocks of 32 to 383 tokens:
  // grad_hidden's product reads a copy of the weight in parts of 1024 rows
  // with a longer pitch (two whole parts, and a partial one of 52). The first
  // block has padding (g = 0), so its active rows are gathered first; the
  // last block (16 tokens) takes the product without the copy.
  Case c{112, 256, 2100, 48, 1.1f};
  Problem p(c);
  for (int64_t n : {3, 17, 40})
    p.g[n] = 0.0f;
  p.reference();
  Strided1d<float> logp(c.N, false, NAN), lse(c.N, false, NAN);
  StridedTensor gh = p.gradTensor(c.N), gw = p.gradTensor(c.V);
  runRows(p, c.chunk, logp, lse, gh, gw);
  for (int64_t n = 0; n < c.N; ++n)
    EXPECT_NEAR(logp[n], p.logp[n], kTol * std::max(1.0, std::abs(p.lse[n])))
        << n;
  expectMatrix(gh, p.gradHidden, "grad_hidden");
  expectMatrix(gw, p.gradWeight, "grad_weight");
}

TEST(TokenLogprobRowsLimits, BadIdsTemperaturesAndScratch) {
  Case c{6, 8, 30, 4};
  {
    // An id out of range with g != 0: its row and grad_weight are NaN.
    Problem p(c);
    p.ids[2] = c.V;
    p.reference();
    Strided1d<float> logp(c.N, false, NAN), lse(c.N, false, NAN);
    StridedTensor gh = p.gradTensor(c.N), gw = p.gradTensor(c.V);
    runRows(p, 4, logp, lse, gh, gw);
    EXPECT_TRUE(std::isnan(logp[2]));
    EXPECT_TRUE(std::isnan(gh.at({2, 0})));
    EXPECT_NEAR(gh.at({5, 1}), p.gradHidden[5 * c.d + 1], 1e-5);
    EXPECT_TRUE(std::isnan(gw.at({0, 0})));
  }
  for (float t : {0.0f, -1.0f, std::nanf("")}) {
    // A temperature that is not > 0: everything the blocks write is NaN.
    Problem p(c);
    p.c.temperature = t;
    Strided1d<float> logp(c.N, false, 0), lse(c.N, false, 0);
    StridedTensor gh = p.gradTensor(c.N), gw = p.gradTensor(c.V);
    runRows(p, 4, logp, lse, gh, gw);
    for (int64_t n = 0; n < c.N; ++n)
      EXPECT_TRUE(std::isnan(logp[n]) && std::isnan(lse[n]) &&
                  std::isnan(gh.at({n, 3})))
          << t;
    EXPECT_TRUE(std::isnan(gw.at({1, 1}))) << t;
  }
  for (auto [colStride, rowStride] :
       {std::pair<int64_t, int64_t>{2, 0}, {1, c.V - 1}}) {
    // A scratch whose columns are not contiguous, or whose rows overlap, is
    // refused the same way.
    Problem p(c);
    Strided1d<float> logp(c.N, false, 0), lse(c.N, false, 0);
    StridedTensor gh = p.gradTensor(c.N), gw = p.gradTensor(c.V);
    runRows(p, 4, logp, lse, gh, gw, colStride, rowStride);
    EXPECT_TRUE(std::isnan(logp[0]) && std::isnan(gh.at({0, 0})) &&
                std::isnan(gw.at({0, 0})))
        << colStride << " " << rowStride;
  }
}

TEST(TokenLogprobRowsLimits, OffsetsOutsideAndNoTokens) {
  // Offsets outside [0, N) write nothing; offset 0 with N = 0 zeroes
  // grad_weight (the loop's only step when there are no tokens).
  Problem p(Case{4, 6, 25, 2});
  Scratch2d scratch(2, 25);
  Strided1d<float> logp(4, false, 7.0f), lse(4, false, 7.0f);
  StridedTensor gh = p.gradTensor(4), gw = p.gradTensor(25);
  rowsAt(p, scratch, {-1, 4, 100}, logp, lse, gh, gw);
  for (int64_t n = 0; n < 4; ++n)
    EXPECT_EQ(logp[n], 7.0f);
  EXPECT_EQ(gh.written(), 0u);
  EXPECT_EQ(gw.written(), 0u);

  Problem q(Case{0, 4, 10, 3});
  Strided1d<float> logp0(0, false, NAN), lse0(0, false, NAN);
  StridedTensor gh0 = q.gradTensor(0), gw0 = q.gradTensor(10);
  runRows(q, 3, logp0, lse0, gh0, gw0);
  for (int64_t v = 0; v < 10; ++v)
    for (int64_t k = 0; k < 4; ++k)
      EXPECT_EQ(gw0.at({v, k}), 0.0f);
}

TEST(TokenLogprobAccumulate, BothKernelsAddToGradWeight) {
  // With LOOM_TOKEN_LOGPROB_ACCUMULATE, both backwards leave grad_weight's
  // old contents plus the gradient, through each of their branches: every
  // token active; padding, with a first block that has none (strided); the
  // padded copy of the weight (d = 256, blocks of 48); nothing active; no
  // tokens at all (grad_weight unchanged).
  struct Variant {
    Case c;
    std::vector<int64_t> zeros; ///< Tokens with g = 0.
    int64_t R;                  ///< Block of the row kernels.
  };
  std::vector<Variant> variants = {
      {Case{13, 8, 60, 4, 0.9f}, {}, 5},
      {Case{11, 8, 60, 3, 0.9f, true}, {0, 1, 2, 4, 9}, 3},
      {Case{112, 256, 2100, 48, 1.1f}, {3, 17, 40}, 48},
      {Case{6, 8, 30, 4}, {0, 1, 2, 3, 4, 5}, 4},
      {Case{0, 4, 10, 3}, {}, 3}};
  for (const Variant &v : variants) {
    Problem p(v.c);
    for (int64_t n : v.zeros)
      p.g[n] = 0.0f;
    p.reference();
    std::ostringstream name;
    name << v.c;
    // The old contents, and what grad_weight must end as.
    auto seeded = [&](StridedTensor &gw) {
      std::vector<double> want(p.gradWeight);
      for (int64_t r = 0; r < v.c.V; ++r)
        for (int64_t k = 0; k < v.c.d; ++k) {
          float old = 0.5f * std::sin(0.3f * float(r * v.c.d + k));
          gw.at({r, k}) = old;
          want[r * v.c.d + k] += old;
        }
      return want;
    };
    StridedTensor gh = p.gradTensor(v.c.N), gw = p.gradTensor(v.c.V);
    std::vector<double> want = seeded(gw);
    p.backward(&gh, &gw, LOOM_TOKEN_LOGPROB_ACCUMULATE);
    expectMatrix(gw, want, ("two-pass " + name.str()).c_str());
    if (v.c.N > 0)
      expectMatrix(gh, p.gradHidden, ("two-pass " + name.str()).c_str());

    Strided1d<float> logp(v.c.N, v.c.strided, NAN),
        lse(v.c.N, v.c.strided, NAN);
    StridedTensor rgh = p.gradTensor(v.c.N), rgw = p.gradTensor(v.c.V);
    seeded(rgw);
    runRows(p, v.R, logp, lse, rgh, rgw, 1, 0, LOOM_TOKEN_LOGPROB_ACCUMULATE);
    expectMatrix(rgw, want, ("rows " + name.str()).c_str());
    if (v.c.N > 0)
      expectMatrix(rgh, p.gradHidden, ("rows " + name.str()).c_str());
  }
}

TEST(TokenLogprobAccumulate, UnknownFlagsGiveNaN) {
  // A flag the kernels do not know (an artifact of another ABI) makes the
  // gradients NaN rather than computing something else.
  Problem p(Case{6, 8, 30, 4});
  StridedTensor gh = p.gradTensor(6), gw = p.gradTensor(30);
  p.backward(&gh, &gw, 2);
  EXPECT_TRUE(std::isnan(gh.at({1, 2})) && std::isnan(gw.at({3, 4})));
  Strided1d<float> logp(6, false, NAN), lse(6, false, NAN);
  StridedTensor rgh = p.gradTensor(6), rgw = p.gradTensor(30);
  runRows(p, 4, logp, lse, rgh, rgw, 1, 0, LOOM_TOKEN_LOGPROB_ACCUMULATE | 8);
  EXPECT_TRUE(std::isnan(rgh.at({5, 0})) && std::isnan(rgw.at({0, 7})));
  EXPECT_FALSE(std::isnan(logp[5]));
}

TEST(TokenLogprobLimits, HostFunctionTable) {
  EXPECT_EQ(loom_host_function_lookup("loom_rt_token_logprob_f32"),
            reinterpret_cast<void *>(&loom_rt_token_logprob_f32));
  EXPECT_EQ(loom_host_function_lookup("loom_rt_token_logprob_grad_f32"),
            reinterpret_cast<void *>(&loom_rt_token_logprob_grad_f32));
  EXPECT_EQ(loom_host_function_lookup("loom_rt_token_logprob_rows_f32"),
            reinterpret_cast<void *>(&loom_rt_token_logprob_rows_f32));
  EXPECT_EQ(loom_host_function_lookup("loom_rt_token_logprob_rows_grad_f32"),
            reinterpret_cast<void *>(&loom_rt_token_logprob_rows_grad_f32));
}

} // namespace
