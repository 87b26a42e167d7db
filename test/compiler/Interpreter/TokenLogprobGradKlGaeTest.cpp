//===- TokenLogprobGradKlGaeTest.cpp - Interpreter tests --------*- C++ -*-===//
//
// This file checks the reference interpreter on loom.token_logprob with an
// lm-head weight, loom.token_logprob_grad, loom.stop_gradient, loom.kl and
// loom.gae against values computed by hand or by plain loops, with explicit
// tolerances, and checks the errors for bad ids and an unexpanded loom.grad.
//
//===----------------------------------------------------------------------===//

#include "compiler/Interpreter/Interpreter.h"

#include "dialects/loom/IR/LoomDialect.h"
#include "dialects/loom/IR/LoomOps.h"
#include "loom/abi.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

using namespace mlir;
using namespace mlir::loom;
using namespace mlir::loom::interp;

namespace {

/// Values computed in float64 from the same formula differ only by rounding.
constexpr double kTol = 1e-12;

Tensor makeTensor(uint32_t dtype, std::vector<int64_t> shape,
                  std::vector<double> data) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data = std::move(data);
  return t;
}

/// A deterministic, irregular sequence of values in [-1, 1].
std::vector<double> ramp(int64_t n, double phase) {
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i)
    v[i] = std::sin(0.37 * static_cast<double>(i) + phase);
  return v;
}

class NewOpsTest : public ::testing::Test {
protected:
  NewOpsTest() { context.loadDialect<LoomDialect, func::FuncDialect>(); }

  FailureOr<std::vector<Tensor>> run(StringRef source, ArrayRef<Tensor> args) {
    diagnostics.clear();
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
      diagnostics += diag.str() + "\n";
      return success();
    });
    module = parseSourceString<ModuleOp>(source, &context);
    if (!module)
      return failure();
    return evaluate(*module, "main", args);
  }

  MLIRContext context;
  OwningOpRef<ModuleOp> module;
  std::string diagnostics;
};

/// log_softmax(row / t) by plain loops, for the expectations below.
std::vector<double> logSoftmax(const double *row, int64_t n, double t) {
  double top = -INFINITY;
  for (int64_t v = 0; v < n; ++v)
    top = std::max(top, row[v] / t);
  double sum = 0.0;
  for (int64_t v = 0; v < n; ++v)
    sum += std::exp(row[v] / t - top);
  std::vector<double> out(n);
  for (int64_t v = 0; v < n; ++v)
    out[v] = row[v] / t - top - std::log(sum);
  return out;
}

TEST_F(NewOpsTest, TokenLogprobWithWeightAndItsGradient) {
  // h [2, 3], w [4, 3], ids [2], g [2], temperature 0.7.
  const int64_t n = 2, d = 3, vocab = 4;
  const double t = 0.7;
  std::vector<double> h = ramp(n * d, 0.3), w = ramp(vocab * d, 1.1);
  std::vector<double> ids = {3, 0}, g = {1.5, -0.25};
  FailureOr<std::vector<Tensor>> results = run(
      R"mlir(
    func.func @main(%h: tensor<2x3xf32>, %ids: tensor<2xi64>,
                    %g: tensor<2xf32>, %w: tensor<4x3xf32>)
        -> (tensor<2xf32>, tensor<2x3xf32>, tensor<4x3xf32>) {
      %lp = loom.token_logprob %h, %ids weight %w {temperature = 0.7 : f64}
          : tensor<2x3xf32>, tensor<2xi64>, tensor<4x3xf32> -> tensor<2xf32>
      %s = loom.stop_gradient %g : tensor<2xf32> -> tensor<2xf32>
      %dh, %dw = loom.token_logprob_grad %h, %ids, %s weight %w
          {temperature = 0.7 : f64}
          : tensor<2x3xf32>, tensor<2xi64>, tensor<2xf32>, tensor<4x3xf32>
          -> tensor<2x3xf32>, tensor<4x3xf32>
      return %lp, %dh, %dw : tensor<2xf32>, tensor<2x3xf32>, tensor<4x3xf32>
    })mlir",
      {makeTensor(LOOM_DTYPE_F32, {n, d}, h),
       makeTensor(LOOM_DTYPE_I64, {n}, ids), makeTensor(LOOM_DTYPE_F32, {n}, g),
       makeTensor(LOOM_DTYPE_F32, {vocab, d}, w)});
  ASSERT_TRUE(succeeded(results)) << diagnostics;
  ASSERT_EQ(results->size(), 3u);
  std::vector<double> dh(n * d, 0.0), dw(vocab * d, 0.0);
  for (int64_t r = 0; r < n; ++r) {
    std::vector<double> logits(vocab);
    for (int64_t v = 0; v < vocab; ++v)
      for (int64_t k = 0; k < d; ++k)
        logits[v] += h[r * d + k] * w[v * d + k];
    std::vector<double> lp = logSoftmax(logits.data(), vocab, t);
    int64_t id = static_cast<int64_t>(ids[r]);
    EXPECT_NEAR((*results)[0].data[r], lp[id], kTol);
    for (int64_t v = 0; v < vocab; ++v) {
      double dl = g[r] / t * ((v == id ? 1.0 : 0.0) - std::exp(lp[v]));
      for (int64_t k = 0; k < d; ++k) {
        dh[r * d + k] += dl * w[v * d + k];
        dw[v * d + k] += dl * h[r * d + k];
      }
    }
  }
  for (int64_t i = 0; i < n * d; ++i)
    EXPECT_NEAR((*results)[1].data[i], dh[i], kTol) << "dh at " << i;
  for (int64_t i = 0; i < vocab * d; ++i)
    EXPECT_NEAR((*results)[2].data[i], dw[i], kTol) << "dw at " << i;
}

TEST_F(NewOpsTest, TokenLogprobGradOfLogits) {
  // Without a weight the gradient is dlogits = g/T (onehot - softmax); a
  // zero upstream gradient gives a zero row.
  std::vector<double> logits = {1.0, 2.0, 3.0, -1.0, 0.5, 0.25};
  FailureOr<std::vector<Tensor>> results =
      run(R"mlir(
    func.func @main(%x: tensor<2x3xf32>, %ids: tensor<2xi32>,
                    %g: tensor<2xf32>) -> tensor<2x3xf32> {
      %d = loom.token_logprob_grad %x, %ids, %g
          : tensor<2x3xf32>, tensor<2xi32>, tensor<2xf32> -> tensor<2x3xf32>
      return %d : tensor<2x3xf32>
    })mlir",
          {makeTensor(LOOM_DTYPE_F32, {2, 3}, logits),
           makeTensor(LOOM_DTYPE_I32, {2}, {2, 0}),
           makeTensor(LOOM_DTYPE_F32, {2}, {2.0, 0.0})});
  ASSERT_TRUE(succeeded(results)) << diagnostics;
  const Tensor &d = (*results)[0];
  double e1 = std::exp(1.0), e2 = std::exp(2.0), e3 = std::exp(3.0);
  double s = e1 + e2 + e3;
  EXPECT_NEAR(d.data[0], -2.0 * e1 / s, kTol);
  EXPECT_NEAR(d.data[1], -2.0 * e2 / s, kTol);
  EXPECT_NEAR(d.data[2], 2.0 * (1.0 - e3 / s), kTol);
  for (int i = 3; i < 6; ++i)
    EXPECT_EQ(d.data[i], 0.0) << "a zero upstream gradient at " << i;
}

TEST_F(NewOpsTest, BadIdsAreErrors) {
  const char *source = R"mlir(
    func.func @main(%x: tensor<2x3xf32>, %ids: tensor<2xi64>,
                    %g: tensor<2xf32>) -> tensor<2x3xf32> {
      %d = loom.token_logprob_grad %x, %ids, %g
          : tensor<2x3xf32>, tensor<2xi64>, tensor<2xf32> -> tensor<2x3xf32>
      return %d : tensor<2x3xf32>
    })mlir";
  FailureOr<std::vector<Tensor>> results =
      run(source, {makeTensor(LOOM_DTYPE_F32, {2, 3}, ramp(6, 0.0)),
                   makeTensor(LOOM_DTYPE_I64, {2}, {1, 3}),
                   makeTensor(LOOM_DTYPE_F32, {2}, {0.0, 0.0})});
  EXPECT_TRUE(failed(results));
  EXPECT_NE(diagnostics.find("'loom.token_logprob_grad' op ids[1] = 3 is "
                             "outside the vocabulary [0, 3)"),
            std::string::npos)
      << diagnostics;

  results = run(R"mlir(
    func.func @main(%h: tensor<1x2xf32>, %ids: tensor<1xi64>,
                    %w: tensor<3x2xf32>) -> tensor<1xf32> {
      %lp = loom.token_logprob %h, %ids weight %w
          : tensor<1x2xf32>, tensor<1xi64>, tensor<3x2xf32> -> tensor<1xf32>
      return %lp : tensor<1xf32>
    })mlir",
                {makeTensor(LOOM_DTYPE_F32, {1, 2}, {0.5, 0.5}),
                 makeTensor(LOOM_DTYPE_I64, {1}, {-1}),
                 makeTensor(LOOM_DTYPE_F32, {3, 2}, ramp(6, 0.0))});
  EXPECT_TRUE(failed(results));
  EXPECT_NE(diagnostics.find("'loom.token_logprob' op ids[0] = -1 is outside "
                             "the vocabulary [0, 3)"),
            std::string::npos)
      << diagnostics;
}

TEST_F(NewOpsTest, GradMustBeExpandedFirst) {
  FailureOr<std::vector<Tensor>> results =
      run(R"mlir(
    func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {
      %l = loom.sum %x {axes = array<i64: 0>} : tensor<2xf32> -> tensor<f32>
      %g = loom.grad %l, %x : (tensor<f32>, tensor<2xf32>) -> tensor<2xf32>
      return %g : tensor<2xf32>
    })mlir",
          {makeTensor(LOOM_DTYPE_F32, {2}, {1.0, 2.0})});
  EXPECT_TRUE(failed(results));
  EXPECT_NE(
      diagnostics.find("'loom.grad' must be expanded by loom-autodiff first"),
      std::string::npos)
      << diagnostics;
}

TEST_F(NewOpsTest, KlEstimatorsBroadcast) {
  std::vector<double> logp = {-1.0, -2.0, -0.5, -3.0};
  std::vector<double> ref = {-1.5, -0.5};
  FailureOr<std::vector<Tensor>> results =
      run(R"mlir(
    func.func @main(%p: tensor<2x2xf32>, %r: tensor<2xf32>)
        -> (tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>) {
      %k1 = loom.kl %p, %r {estimator = "k1"}
          : tensor<2x2xf32>, tensor<2xf32> -> tensor<2x2xf32>
      %k2 = loom.kl %p, %r {estimator = "k2"}
          : tensor<2x2xf32>, tensor<2xf32> -> tensor<2x2xf32>
      %k3 = loom.kl %p, %r {estimator = "k3"}
          : tensor<2x2xf32>, tensor<2xf32> -> tensor<2x2xf32>
      return %k1, %k2, %k3 : tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>
    })mlir",
          {makeTensor(LOOM_DTYPE_F32, {2, 2}, logp),
           makeTensor(LOOM_DTYPE_F32, {2}, ref)});
  ASSERT_TRUE(succeeded(results)) << diagnostics;
  for (int i = 0; i < 4; ++i) {
    double x = logp[i] - ref[i % 2];
    EXPECT_NEAR((*results)[0].data[i], x, kTol);
    EXPECT_NEAR((*results)[1].data[i], 0.5 * x * x, kTol);
    EXPECT_NEAR((*results)[2].data[i], std::exp(-x) + x - 1.0, kTol);
  }
}

TEST_F(NewOpsTest, GaeSkipsMaskedPositions) {
  // gamma = 0.5, lam = 0.8. Row 0: valid at 0, 2, 3 (a gap at 1); row 1:
  // empty; row 2: one valid position (1).
  std::vector<double> r = {1.0, 9.0, 2.0, 3.0, 1.0, 1.0,
                           1.0, 1.0, 5.0, 4.0, 5.0, 5.0};
  std::vector<double> v = {0.5, 9.0, 1.0, 2.0, 1.0, 1.0,
                           1.0, 1.0, 7.0, 1.5, 7.0, 7.0};
  std::vector<double> m = {1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0};
  FailureOr<std::vector<Tensor>> results =
      run(R"mlir(
    func.func @main(%r: tensor<3x4xf32>, %v: tensor<3x4xf32>,
                    %m: tensor<3x4xf32>) -> tensor<3x4xf32> {
      %a = loom.gae %r, %v, %m {gamma = 0.5 : f64, lam = 0.8 : f64}
          : tensor<3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32> -> tensor<3x4xf32>
      return %a : tensor<3x4xf32>
    })mlir",
          {makeTensor(LOOM_DTYPE_F32, {3, 4}, r),
           makeTensor(LOOM_DTYPE_F32, {3, 4}, v),
           makeTensor(LOOM_DTYPE_F32, {3, 4}, m)});
  ASSERT_TRUE(succeeded(results)) << diagnostics;
  // Row 0, backwards: A3 = 3 - 2 = 1; A2 = 2 + 0.5*2 - 1 + 0.4*1 = 2.4;
  // A0 = 1 + 0.5*1 - 0.5 + 0.4*2.4 = 1.96. Row 2: A1 = 4 - 1.5 = 2.5.
  std::vector<double> expected = {1.96, 0.0, 2.4, 1.0, 0.0, 0.0,
                                  0.0,  0.0, 0.0, 2.5, 0.0, 0.0};
  for (int i = 0; i < 12; ++i)
    EXPECT_NEAR((*results)[0].data[i], expected[i], kTol) << "at " << i;
}

} // namespace
