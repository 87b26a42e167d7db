//===- GradCheckTest.cpp - Derivative rules against differences -*- C++ -*-===//
//
// This file checks every derivative rule of loom-autodiff numerically: for
// each op, a function computes `loss = sum(op(x...) * c)` and
// `loom.grad(loss, x...)`; after the pass, the float64 interpreter evaluates
// the gradients, and central differences of the loss (h = 1e-6, also in the
// interpreter) must agree to 1e-6 relative. Tie rules, zero gradients and
// diagnostics are checked exactly.
//
//===----------------------------------------------------------------------===//

#include "compiler/Interpreter/Interpreter.h"

#include "dialects/loom/IR/LoomDialect.h"
#include "dialects/loom/IR/LoomOps.h"
#include "dialects/loom/Transforms/Passes.h"
#include "loom/abi.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

using namespace mlir;
using namespace mlir::loom;
using namespace mlir::loom::interp;

namespace {

/// How an argument is filled.
enum class Fill { Any, Positive, Ids, Weights };

struct Arg {
  std::string name;
  std::string type;           // MLIR tensor type, may have `?`
  std::vector<int64_t> shape; // the concrete shape
  Fill fill = Fill::Any;
  int64_t vocab = 0; // for ids: values in [0, vocab)
};

struct GradCase {
  std::string name;
  std::vector<Arg> args;
  std::vector<std::string> wrt; // argument names, in order
  std::string body;             // defines %out
  std::string outType;
  std::vector<int64_t> outShape;
};

/// Names a case in gtest's messages.
[[maybe_unused]] void PrintTo(const GradCase &c, std::ostream *os) {
  *os << c.name;
}

int64_t count(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

Tensor fill(const Arg &arg, double phase) {
  Tensor t;
  t.shape = arg.shape;
  bool ints = arg.type.find("xi64>") != std::string::npos ||
              arg.type.find("<i64>") != std::string::npos;
  bool bools = arg.type.find("xi1>") != std::string::npos;
  bool f64 = arg.type.find("f64>") != std::string::npos;
  t.dtype = ints ? LOOM_DTYPE_I64
                 : bools ? LOOM_DTYPE_BOOL
                         : f64 ? LOOM_DTYPE_F64 : LOOM_DTYPE_F32;
  int64_t n = count(arg.shape);
  for (int64_t i = 0; i < n; ++i) {
    double s = std::sin(0.71 * static_cast<double>(i) + phase);
    switch (arg.fill) {
    case Fill::Any:
      t.data.push_back(bools ? (s > 0 ? 1 : 0) : 1.3 * s);
      break;
    case Fill::Positive:
      t.data.push_back(0.4 + std::fabs(s));
      break;
    case Fill::Ids:
      t.data.push_back(static_cast<double>((i * 7 + 3) % arg.vocab));
      break;
    case Fill::Weights:
      t.data.push_back(0.5 + 0.5 * std::cos(1.3 * static_cast<double>(i)));
      break;
    }
  }
  return t;
}

std::string axesOf(size_t rank) {
  std::string s;
  for (size_t i = 0; i < rank; ++i)
    s += (i ? ", " : "") + std::to_string(i);
  return s;
}

/// The function of a case: its loss, then the gradients.
std::string source(const GradCase &c) {
  std::string sig, wrtTypes, wrtNames;
  for (const Arg &a : c.args)
    sig += "%" + a.name + ": " + a.type + ", ";
  sig += "%c: " + c.outType;
  std::vector<std::string> types;
  for (const std::string &w : c.wrt)
    for (const Arg &a : c.args)
      if (a.name == w)
        types.push_back(a.type);
  std::string ret = "tensor<f32>", results, grads;
  for (size_t i = 0; i < types.size(); ++i) {
    ret += ", " + types[i];
    wrtTypes += ", " + types[i];
    wrtNames += ", %" + c.wrt[i];
    grads += std::string(i ? ", " : "") + types[i];
    results += ", %g#" + std::to_string(i);
  }
  std::string n = std::to_string(c.wrt.size());
  std::string text = "func.func @main(" + sig + ") -> (" + ret + ") {\n";
  text += c.body + "\n";
  text += "  %p = loom.mul %out, %c : " + c.outType + ", " + c.outType +
          " -> " + c.outType + "\n";
  text += "  %l = loom.sum %p {axes = array<i64: " + axesOf(c.outShape.size()) +
          ">} : " + c.outType + " -> tensor<f32>\n";
  text += "  %g:" + n + " = loom.grad %l" + wrtNames +
          " : (tensor<f32>" + wrtTypes + ") -> (" + grads + ")\n";
  text += "  return %l" + results + " : " + ret + "\n}\n";
  return text;
}

class GradCheckTest : public ::testing::TestWithParam<GradCase> {};

class Harness {
public:
  Harness() {
    context.loadDialect<LoomDialect, func::FuncDialect>();
  }

  /// Parses and differentiates `text`; false (with diagnostics) on failure.
  bool prepare(const std::string &text) {
    diagnostics.clear();
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
      diagnostics += diag.str() + "\n";
      return success();
    });
    module = parseSourceString<ModuleOp>(text, &context);
    if (!module)
      return false;
    PassManager pm(&context);
    pm.addPass(createAutodiffPass());
    pm.addPass(createCanonicalizerPass());
    return succeeded(pm.run(*module));
  }

  FailureOr<std::vector<Tensor>> eval(ArrayRef<Tensor> args) {
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
      diagnostics += diag.str() + "\n";
      return success();
    });
    return evaluate(*module, "main", args);
  }

  MLIRContext context;
  OwningOpRef<ModuleOp> module;
  std::string diagnostics;
};

TEST_P(GradCheckTest, MatchesCentralDifferences) {
  const GradCase &c = GetParam();
  Harness h;
  std::string text = source(c);
  ASSERT_TRUE(h.prepare(text)) << h.diagnostics << text;
  std::vector<Tensor> args;
  double phase = 0.3;
  for (const Arg &a : c.args)
    args.push_back(fill(a, phase += 1.1));
  Arg weights{"c", c.outType, c.outShape, Fill::Weights};
  args.push_back(fill(weights, 0));

  FailureOr<std::vector<Tensor>> base = h.eval(args);
  ASSERT_TRUE(succeeded(base)) << h.diagnostics;
  ASSERT_EQ(base->size(), c.wrt.size() + 1);

  const double step = 1e-6;
  for (size_t w = 0; w < c.wrt.size(); ++w) {
    size_t index = 0;
    while (c.args[index].name != c.wrt[w])
      ++index;
    const Tensor &grad = (*base)[w + 1];
    ASSERT_EQ(grad.shape, args[index].shape) << c.wrt[w];
    std::vector<double> fd;
    double scale = 1e-3;
    for (size_t e = 0; e < args[index].data.size(); ++e) {
      std::vector<Tensor> plus = args, minus = args;
      plus[index].data[e] += step;
      minus[index].data[e] -= step;
      FailureOr<std::vector<Tensor>> lp = h.eval(plus), lm = h.eval(minus);
      ASSERT_TRUE(succeeded(lp) && succeeded(lm)) << h.diagnostics;
      double d = ((*lp)[0].data[0] - (*lm)[0].data[0]) / (2 * step);
      fd.push_back(d);
      scale = std::max(scale, std::fabs(d));
    }
    for (size_t e = 0; e < fd.size(); ++e)
      EXPECT_NEAR(grad.data[e], fd[e], 1e-6 * scale)
          << c.name << ": d loss / d " << c.wrt[w] << " at " << e;
  }
}

std::vector<GradCase> cases() {
  std::string m34 = "tensor<3x4xf32>", d4 = "tensor<?x4xf32>";
  auto binary = [&](std::string op, std::string a, std::string b,
                    std::vector<int64_t> as, std::vector<int64_t> bs,
                    Fill fa = Fill::Any, Fill fb = Fill::Any) {
    GradCase c;
    c.name = op;
    c.args = {{"x", a, as, fa}, {"y", b, bs, fb}};
    c.wrt = {"x", "y"};
    c.body = "  %out = loom." + op + " %x, %y : " + a + ", " + b + " -> " +
             m34;
    c.outType = m34;
    c.outShape = {3, 4};
    return c;
  };
  auto unary = [&](std::string op, Fill f = Fill::Any) {
    GradCase c;
    c.name = op;
    c.args = {{"x", d4, {3, 4}, f}};
    c.wrt = {"x"};
    c.body = "  %out = loom." + op + " %x : " + d4 + " -> " + d4;
    c.outType = d4;
    c.outShape = {3, 4};
    return c;
  };
  std::vector<GradCase> all = {
      binary("add", m34, "tensor<4xf32>", {3, 4}, {4}),
      binary("sub", "tensor<3x1xf32>", m34, {3, 1}, {3, 4}),
      binary("mul", m34, "tensor<f32>", {3, 4}, {}),
      binary("div", m34, "tensor<1x4xf32>", {3, 4}, {1, 4}, Fill::Any,
             Fill::Positive),
      binary("max", m34, "tensor<4xf32>", {3, 4}, {4}),
      binary("min", m34, m34, {3, 4}, {3, 4}),
      binary("pow", m34, m34, {3, 4}, {3, 4}, Fill::Positive),
      unary("neg"),
      unary("abs"),
      unary("exp"),
      unary("log", Fill::Positive),
      unary("tanh"),
      unary("sigmoid"),
      unary("silu"),
      unary("sqrt", Fill::Positive),
      unary("rsqrt", Fill::Positive),
      unary("sin"),
      unary("cos"),
  };
  auto add = [&](std::string name, std::vector<Arg> args,
                 std::vector<std::string> wrt, std::string body,
                 std::string outType, std::vector<int64_t> outShape) {
    all.push_back({name, args, wrt, body, outType, outShape});
  };
  add("select", {{"m", "tensor<3x4xi1>", {3, 4}}, {"x", m34, {3, 4}},
                 {"y", "tensor<4xf32>", {4}}},
      {"x", "y"},
      "  %out = loom.select %m, %x, %y : tensor<3x4xi1>, tensor<3x4xf32>, "
      "tensor<4xf32> -> tensor<3x4xf32>",
      m34, {3, 4});
  add("cast", {{"x", "tensor<3x4xf64>", {3, 4}}}, {"x"},
      "  %out = loom.cast %x : tensor<3x4xf64> -> tensor<3x4xf32>", m34,
      {3, 4});
  add("broadcast", {{"x", "tensor<4xf32>", {4}}, {"like", d4, {3, 4}}},
      {"x"},
      "  %out = loom.broadcast %x like %like : tensor<4xf32>, "
      "tensor<?x4xf32> -> tensor<?x4xf32>",
      d4, {3, 4});
  add("sum_dynamic_axis", {{"x", "tensor<?x?x4xf32>", {2, 3, 4}}}, {"x"},
      "  %out = loom.sum %x {axes = array<i64: 1>} : tensor<?x?x4xf32> -> "
      "tensor<?x4xf32>",
      d4, {2, 4});
  add("sum_keepdim", {{"x", "tensor<?x?xf32>", {3, 5}}}, {"x"},
      "  %out = loom.sum %x {axes = array<i64: 1>, keepdim = true} : "
      "tensor<?x?xf32> -> tensor<?x1xf32>",
      "tensor<?x1xf32>", {3, 1});
  add("mean_dynamic", {{"x", "tensor<?x?xf32>", {3, 5}}}, {"x"},
      "  %out = loom.mean %x {axes = array<i64: 1>} : tensor<?x?xf32> -> "
      "tensor<?xf32>",
      "tensor<?xf32>", {3});
  add("mean_all", {{"x", "tensor<?x?xf32>", {3, 5}}}, {"x"},
      "  %m = loom.mean %x {axes = array<i64: 0, 1>} : tensor<?x?xf32> -> "
      "tensor<f32>\n  %out = loom.reshape %m {shape = array<i64: 1>} : "
      "tensor<f32> -> tensor<1xf32>",
      "tensor<1xf32>", {1});
  add("reduce_max", {{"x", "tensor<?x5xf32>", {3, 5}}}, {"x"},
      "  %out = loom.reduce_max %x {axes = array<i64: 1>} : tensor<?x5xf32> "
      "-> tensor<?xf32>",
      "tensor<?xf32>", {3});
  add("reduce_min", {{"x", "tensor<3x5xf32>", {3, 5}}}, {"x"},
      "  %out = loom.reduce_min %x {axes = array<i64: 0>} : tensor<3x5xf32> "
      "-> tensor<5xf32>",
      "tensor<5xf32>", {5});
  add("softmax", {{"x", "tensor<?x5xf32>", {3, 5}}}, {"x"},
      "  %out = loom.softmax %x {axis = 1 : i64} : tensor<?x5xf32> -> "
      "tensor<?x5xf32>",
      "tensor<?x5xf32>", {3, 5});
  add("log_softmax", {{"x", "tensor<3x5xf32>", {3, 5}}}, {"x"},
      "  %out = loom.log_softmax %x {axis = 0 : i64} : tensor<3x5xf32> -> "
      "tensor<3x5xf32>",
      "tensor<3x5xf32>", {3, 5});
  for (int t = 0; t < 4; ++t) {
    bool ta = t & 1, tb = t & 2;
    std::string a = ta ? "tensor<2x5x3xf32>" : "tensor<2x3x5xf32>";
    std::string b = tb ? "tensor<4x5xf32>" : "tensor<5x4xf32>";
    std::vector<int64_t> as = ta ? std::vector<int64_t>{2, 5, 3}
                                 : std::vector<int64_t>{2, 3, 5};
    std::vector<int64_t> bs =
        tb ? std::vector<int64_t>{4, 5} : std::vector<int64_t>{5, 4};
    add("matmul_t" + std::to_string(t), {{"a", a, as}, {"b", b, bs}},
        {"a", "b"},
        std::string("  %out = loom.matmul %a, %b {transpose_a = ") +
            (ta ? "true" : "false") + ", transpose_b = " +
            (tb ? "true" : "false") + "} : " + a + ", " + b +
            " -> tensor<2x3x4xf32>",
        "tensor<2x3x4xf32>", {2, 3, 4});
  }
  add("linear_rank3_bias",
      {{"x", "tensor<?x3x5xf32>", {2, 3, 5}},
       {"w", "tensor<4x5xf32>", {4, 5}},
       {"b", "tensor<4xf32>", {4}}},
      {"x", "w", "b"},
      "  %out = loom.linear %x, %w, %b : tensor<?x3x5xf32>, tensor<4x5xf32>, "
      "tensor<4xf32> -> tensor<?x3x4xf32>",
      "tensor<?x3x4xf32>", {2, 3, 4});
  add("linear_rank2", {{"x", "tensor<?x5xf32>", {3, 5}},
                       {"w", "tensor<4x5xf32>", {4, 5}}},
      {"x", "w"},
      "  %out = loom.linear %x, %w : tensor<?x5xf32>, tensor<4x5xf32> -> "
      "tensor<?x4xf32>",
      d4, {3, 4});
  add("reshape", {{"x", "tensor<?x?x6xf32>", {2, 3, 6}}}, {"x"},
      "  %out = loom.reshape %x {shape = array<i64: 0, 0, 2, 3>} : "
      "tensor<?x?x6xf32> -> tensor<?x?x2x3xf32>",
      "tensor<?x?x2x3xf32>", {2, 3, 2, 3});
  add("transpose", {{"x", "tensor<2x3x4xf32>", {2, 3, 4}}}, {"x"},
      "  %out = loom.transpose %x {permutation = array<i64: 2, 0, 1>} : "
      "tensor<2x3x4xf32> -> tensor<4x2x3xf32>",
      "tensor<4x2x3xf32>", {4, 2, 3});
  add("slice_middle", {{"x", "tensor<?x6xf32>", {3, 6}}}, {"x"},
      "  %out = loom.slice %x {axis = 1 : i64, start = 1 : i64, end = -2 : "
      "i64} : tensor<?x6xf32> -> tensor<?x3xf32>",
      "tensor<?x3xf32>", {3, 3});
  add("slice_dynamic_axis", {{"x", "tensor<?x4xf32>", {5, 4}}}, {"x"},
      "  %out = loom.slice %x {axis = 0 : i64, start = 2 : i64, end = "
      "9223372036854775807 : i64} : tensor<?x4xf32> -> tensor<?x4xf32>",
      d4, {3, 4});
  add("concat", {{"x", "tensor<?x2xf32>", {3, 2}}, {"y", d4, {3, 4}}},
      {"x", "y"},
      "  %out = loom.concat %x, %y {axis = 1 : i64} : tensor<?x2xf32>, "
      "tensor<?x4xf32> -> tensor<?x6xf32>",
      "tensor<?x6xf32>", {3, 6});
  for (std::string e : {"k1", "k2", "k3"})
    add("kl_" + e, {{"lp", d4, {3, 4}}, {"q", "tensor<4xf32>", {4}}},
        {"lp", "q"},
        "  %out = loom.kl %lp, %q {estimator = \"" + e +
            "\"} : tensor<?x4xf32>, tensor<4xf32> -> tensor<?x4xf32>",
        d4, {3, 4});
  add("token_logprob_logits",
      {{"z", "tensor<?x3x7xf32>", {2, 3, 7}},
       {"ids", "tensor<?x3xi64>", {2, 3}, Fill::Ids, 7}},
      {"z"},
      "  %out = loom.token_logprob %z, %ids {temperature = 7.0e-01 : f64} : "
      "tensor<?x3x7xf32>, tensor<?x3xi64> -> tensor<?x3xf32>",
      "tensor<?x3xf32>", {2, 3});
  add("token_logprob_lm_head",
      {{"h", "tensor<?x3x5xf32>", {2, 3, 5}},
       {"ids", "tensor<?x3xi64>", {2, 3}, Fill::Ids, 7},
       {"w", "tensor<7x5xf32>", {7, 5}}},
      {"h", "w"},
      "  %out = loom.token_logprob %h, %ids weight %w {temperature = 2.5 : "
      "f64} : tensor<?x3x5xf32>, tensor<?x3xi64>, tensor<7x5xf32> -> "
      "tensor<?x3xf32>",
      "tensor<?x3xf32>", {2, 3});
  add("chain_with_reuse", {{"x", d4, {3, 4}}, {"y", d4, {3, 4}}},
      {"x", "y"},
      "  %a = loom.mul %x, %y : tensor<?x4xf32>, tensor<?x4xf32> -> "
      "tensor<?x4xf32>\n"
      "  %b = loom.exp %a : tensor<?x4xf32> -> tensor<?x4xf32>\n"
      "  %s = loom.sin %y : tensor<?x4xf32> -> tensor<?x4xf32>\n"
      "  %d = loom.sub %b, %s : tensor<?x4xf32>, tensor<?x4xf32> -> "
      "tensor<?x4xf32>\n"
      "  %out = loom.add %d, %x : tensor<?x4xf32>, tensor<?x4xf32> -> "
      "tensor<?x4xf32>",
      d4, {3, 4});
  return all;
}

INSTANTIATE_TEST_SUITE_P(Rules, GradCheckTest, ::testing::ValuesIn(cases()),
                         [](const auto &info) { return info.param.name; });

//===----------------------------------------------------------------------===//
// Exact checks
//===----------------------------------------------------------------------===//

/// Runs a source whose gradients are known exactly.
std::vector<Tensor> runExact(const std::string &text,
                             const std::vector<Tensor> &args) {
  Harness h;
  EXPECT_TRUE(h.prepare(text)) << h.diagnostics;
  if (!h.module)
    return {};
  FailureOr<std::vector<Tensor>> r = h.eval(args);
  EXPECT_TRUE(succeeded(r)) << h.diagnostics;
  return succeeded(r) ? *r : std::vector<Tensor>{};
}

Tensor vec(std::vector<double> v) {
  Tensor t;
  t.dtype = LOOM_DTYPE_F32;
  t.shape = {static_cast<int64_t>(v.size())};
  t.data = std::move(v);
  return t;
}

TEST(GradExact, TiesSplitLikePyTorch) {
  // max/min give half to each side on a tie; abs has gradient 0 at 0;
  // select gives the whole gradient to the branch taken.
  std::string text = R"(
func.func @main(%x: tensor<3xf32>, %y: tensor<3xf32>)
    -> (tensor<f32>, tensor<3xf32>, tensor<3xf32>) {
  %m = loom.max %x, %y : tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
  %n = loom.min %x, %y : tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
  %a = loom.abs %x : tensor<3xf32> -> tensor<3xf32>
  %s1 = loom.add %m, %n : tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
  %s2 = loom.add %s1, %m : tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
  %s3 = loom.add %s2, %a : tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
  %l = loom.sum %s3 {axes = array<i64: 0>} : tensor<3xf32> -> tensor<f32>
  %g:2 = loom.grad %l, %x, %y : (tensor<f32>, tensor<3xf32>, tensor<3xf32>)
      -> (tensor<3xf32>, tensor<3xf32>)
  return %l, %g#0, %g#1 : tensor<f32>, tensor<3xf32>, tensor<3xf32>
})";
  std::vector<Tensor> r =
      runExact(text, {vec({0.0, 2.0, -1.0}), vec({0.0, 1.0, 3.0})});
  ASSERT_EQ(r.size(), 3u);
  // x: tie (0 + 1/2 + 1/2 + 1/2 = 1.5 from max, min, max; abs'(0) = 0),
  // wins max (1 + 0 + 1 + 1), loses max (0 + 1 + 0 - 1).
  EXPECT_EQ(r[1].data, (std::vector<double>{1.5, 3.0, 0.0}));
  EXPECT_EQ(r[2].data, (std::vector<double>{1.5, 1.0, 2.0}));
}

TEST(GradExact, UnreachedAndDetachedValuesGetZeros) {
  std::string text = R"(
func.func @main(%x: tensor<?xf32>, %y: tensor<?xf32>)
    -> (tensor<?xf32>, tensor<?xf32>) {
  %d = loom.stop_gradient %x : tensor<?xf32> -> tensor<?xf32>
  %e = loom.exp %d : tensor<?xf32> -> tensor<?xf32>
  %l = loom.sum %e {axes = array<i64: 0>} : tensor<?xf32> -> tensor<f32>
  %g:2 = loom.grad %l, %x, %y : (tensor<f32>, tensor<?xf32>, tensor<?xf32>)
      -> (tensor<?xf32>, tensor<?xf32>)
  return %g#0, %g#1 : tensor<?xf32>, tensor<?xf32>
})";
  std::vector<Tensor> r = runExact(text, {vec({1, 2}), vec({3, 4, 5})});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].data, (std::vector<double>{0, 0}));
  EXPECT_EQ(r[1].data, (std::vector<double>{0, 0, 0}));
}

TEST(GradExact, LmHeadBackwardIsOneTokenLogprobGrad) {
  // The canonicalizer folds the linear into token_logprob first, so the
  // whole backward of the lm-head is one op with both gradients.
  std::string text = R"(
func.func @main(%h: tensor<?x5xf32>, %ids: tensor<?xi64>, %w: tensor<7x5xf32>)
    -> (tensor<?x5xf32>, tensor<7x5xf32>) {
  %z = loom.linear %h, %w : tensor<?x5xf32>, tensor<7x5xf32> -> tensor<?x7xf32>
  %lp = loom.token_logprob %z, %ids : tensor<?x7xf32>, tensor<?xi64> -> tensor<?xf32>
  %l = loom.sum %lp {axes = array<i64: 0>} : tensor<?xf32> -> tensor<f32>
  %g:2 = loom.grad %l, %h, %w : (tensor<f32>, tensor<?x5xf32>, tensor<7x5xf32>)
      -> (tensor<?x5xf32>, tensor<7x5xf32>)
  return %g#0, %g#1 : tensor<?x5xf32>, tensor<7x5xf32>
})";
  Harness h;
  MLIRContext &ctx = h.context;
  h.module = parseSourceString<ModuleOp>(text, &ctx);
  ASSERT_TRUE(h.module);
  PassManager pm(&ctx);
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createAutodiffPass());
  pm.addPass(createCanonicalizerPass());
  ASSERT_TRUE(succeeded(pm.run(*h.module)));
  int grads = 0, linears = 0;
  h.module->walk([&](Operation *op) {
    grads += isa<TokenLogprobGradOp>(op);
    linears += isa<LinearOp>(op) || isa<MatmulOp>(op);
  });
  EXPECT_EQ(grads, 1);
  EXPECT_EQ(linears, 0);
}

TEST(GradExact, OpWithoutRuleIsAnError) {
  std::string text = R"(
func.func @main(%r: tensor<2x3xf32>, %v: tensor<2x3xf32>, %m: tensor<2x3xf32>)
    -> tensor<2x3xf32> {
  %a = loom.gae %r, %v, %m {gamma = 1.0 : f64, lam = 0.9 : f64}
      : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32> -> tensor<2x3xf32>
  %l = loom.sum %a {axes = array<i64: 0, 1>} : tensor<2x3xf32> -> tensor<f32>
  %g = loom.grad %l, %v : (tensor<f32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %g : tensor<2x3xf32>
})";
  Harness h;
  EXPECT_FALSE(h.prepare(text));
  EXPECT_NE(h.diagnostics.find("'loom.gae' op has no derivative rule"),
            std::string::npos)
      << h.diagnostics;
}

} // namespace
