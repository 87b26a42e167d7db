//===- InterpreterTest.cpp - Interpreter tests ------------------*- C++ -*-===//
//
// This file checks the reference interpreter of the `loom` dialect op family
// by op family against values computed by hand or by plain loops, with
// explicit tolerances, and checks that bad inputs fail with a message
// instead of crashing.
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
#include <limits>
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
Tensor f32(std::vector<int64_t> shape, std::vector<double> data) {
  return makeTensor(LOOM_DTYPE_F32, std::move(shape), std::move(data));
}
Tensor i64(std::vector<int64_t> shape, std::vector<double> data) {
  return makeTensor(LOOM_DTYPE_I64, std::move(shape), std::move(data));
}
Tensor i1(std::vector<int64_t> shape, std::vector<double> data) {
  return makeTensor(LOOM_DTYPE_BOOL, std::move(shape), std::move(data));
}

/// A deterministic, irregular sequence of values in [-1, 1].
std::vector<double> ramp(int64_t n, double phase = 0.0) {
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i)
    v[i] = std::sin(0.37 * static_cast<double>(i) + phase);
  return v;
}

void expectTensor(const Tensor &t, uint32_t dtype,
                  const std::vector<int64_t> &shape,
                  const std::vector<double> &data, double tol = kTol) {
  EXPECT_EQ(t.dtype, dtype);
  EXPECT_EQ(t.shape, shape);
  ASSERT_EQ(t.data.size(), data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    if (std::isnan(data[i]))
      EXPECT_TRUE(std::isnan(t.data[i])) << "at " << i;
    else if (std::isinf(data[i]))
      EXPECT_EQ(t.data[i], data[i]) << "at " << i;
    else
      EXPECT_NEAR(t.data[i], data[i], tol) << "at " << i;
  }
}

class InterpreterTest : public ::testing::Test {
protected:
  InterpreterTest() {
    context.loadDialect<LoomDialect, func::FuncDialect>();
    context.allowUnregisteredDialects();
  }

  /// Parses `source` and evaluates its func `entry` on `args`; diagnostics
  /// are collected in `diagnostics`.
  FailureOr<std::vector<Tensor>> run(StringRef source, ArrayRef<Tensor> args,
                                     StringRef entry = "main") {
    diagnostics.clear();
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
      diagnostics += diag.str() + "\n";
      return success();
    });
    module = parseSourceString<ModuleOp>(source, &context);
    if (!module)
      return failure();
    return evaluate(*module, entry, args);
  }

  /// Evaluates a func that must succeed and returns its only result.
  Tensor runOne(StringRef source, ArrayRef<Tensor> args) {
    FailureOr<std::vector<Tensor>> results = run(source, args);
    EXPECT_TRUE(succeeded(results)) << diagnostics;
    if (failed(results) || results->size() != 1) {
      ADD_FAILURE() << "expected exactly one result";
      return Tensor();
    }
    return (*results)[0];
  }

  /// Evaluates a func that must fail and checks the message.
  void expectError(StringRef source, ArrayRef<Tensor> args, StringRef message) {
    FailureOr<std::vector<Tensor>> results = run(source, args);
    EXPECT_TRUE(failed(results));
    EXPECT_NE(diagnostics.find(message.str()), std::string::npos)
        << "diagnostics were: " << diagnostics;
  }

  MLIRContext context;
  OwningOpRef<ModuleOp> module;
  std::string diagnostics;
};

//===----------------------------------------------------------------------===//
// Constants and iota
//===----------------------------------------------------------------------===//

TEST_F(InterpreterTest, ConstantsOfEveryElementType) {
  const char *src = R"mlir(
    func.func @main() -> (tensor<2x2xf32>, tensor<3xi64>, tensor<2xi1>,
                          tensor<2xf64>, tensor<i32>) {
      %a = loom.constant dense<5.000000e-01> : tensor<2x2xf32>
      %b = loom.constant dense<[-3, 0, 7]> : tensor<3xi64>
      %c = loom.constant dense<[true, false]> : tensor<2xi1>
      %d = loom.constant dense<[1.25, -2.5]> : tensor<2xf64>
      %e = loom.constant dense<-9> : tensor<i32>
      return %a, %b, %c, %d, %e
          : tensor<2x2xf32>, tensor<3xi64>, tensor<2xi1>, tensor<2xf64>,
            tensor<i32>
    }
  )mlir";
  FailureOr<std::vector<Tensor>> r = run(src, {});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  ASSERT_EQ(r->size(), 5u);
  expectTensor((*r)[0], LOOM_DTYPE_F32, {2, 2}, {0.5, 0.5, 0.5, 0.5});
  expectTensor((*r)[1], LOOM_DTYPE_I64, {3}, {-3, 0, 7});
  expectTensor((*r)[2], LOOM_DTYPE_BOOL, {2}, {1, 0});
  expectTensor((*r)[3], LOOM_DTYPE_F64, {2}, {1.25, -2.5});
  expectTensor((*r)[4], LOOM_DTYPE_I32, {}, {-9});
}

TEST_F(InterpreterTest, IotaStaticAndLike) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<?x3xf32>) -> (tensor<4xi64>, tensor<?x3xi32>) {
      %a = loom.iota {axis = 0 : i64} -> tensor<4xi64>
      %b = loom.iota like %x : tensor<?x3xf32> {axis = 0 : i64}
          -> tensor<?x3xi32>
      return %a, %b : tensor<4xi64>, tensor<?x3xi32>
    }
  )mlir";
  FailureOr<std::vector<Tensor>> r = run(src, {f32({2, 3}, ramp(6))});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  expectTensor((*r)[0], LOOM_DTYPE_I64, {4}, {0, 1, 2, 3});
  expectTensor((*r)[1], LOOM_DTYPE_I32, {2, 3}, {0, 0, 0, 1, 1, 1});
}

//===----------------------------------------------------------------------===//
// Elementwise ops
//===----------------------------------------------------------------------===//

TEST_F(InterpreterTest, ArithmeticBroadcastsRowAndColumn) {
  const char *src = R"mlir(
    func.func @main(%a: tensor<2x1xf32>, %b: tensor<3xf32>)
        -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>,
            tensor<2x3xf32>) {
      %add = loom.add %a, %b : tensor<2x1xf32>, tensor<3xf32> -> tensor<2x3xf32>
      %sub = loom.sub %a, %b : tensor<2x1xf32>, tensor<3xf32> -> tensor<2x3xf32>
      %mul = loom.mul %a, %b : tensor<2x1xf32>, tensor<3xf32> -> tensor<2x3xf32>
      %div = loom.div %a, %b : tensor<2x1xf32>, tensor<3xf32> -> tensor<2x3xf32>
      return %add, %sub, %mul, %div
          : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>
    }
  )mlir";
  FailureOr<std::vector<Tensor>> r =
      run(src, {f32({2, 1}, {10, 20}), f32({3}, {1, 2, 4})});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  expectTensor((*r)[0], LOOM_DTYPE_F32, {2, 3}, {11, 12, 14, 21, 22, 24});
  expectTensor((*r)[1], LOOM_DTYPE_F32, {2, 3}, {9, 8, 6, 19, 18, 16});
  expectTensor((*r)[2], LOOM_DTYPE_F32, {2, 3}, {10, 20, 40, 20, 40, 80});
  expectTensor((*r)[3], LOOM_DTYPE_F32, {2, 3}, {10, 5, 2.5, 20, 10, 5});
}

TEST_F(InterpreterTest, ScalarBroadcastsAgainstDynamicShape) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<?x?xf32>) -> tensor<?x?xf32> {
      %c = loom.constant dense<2.0> : tensor<f32>
      %r = loom.mul %x, %c : tensor<?x?xf32>, tensor<f32> -> tensor<?x?xf32>
      return %r : tensor<?x?xf32>
    }
  )mlir";
  // The same graph serves two sizes: `?` dims are bound per call.
  expectTensor(runOne(src, {f32({1, 2}, {1, -2})}), LOOM_DTYPE_F32, {1, 2},
               {2, -4});
  expectTensor(runOne(src, {f32({3, 1}, {1, 2, 3})}), LOOM_DTYPE_F32, {3, 1},
               {2, 4, 6});
}

TEST_F(InterpreterTest, IntegerArithmeticTruncates) {
  const char *src = R"mlir(
    func.func @main(%a: tensor<4xi64>, %b: tensor<4xi64>)
        -> (tensor<4xi64>, tensor<4xi64>, tensor<4xi64>, tensor<4xi64>) {
      %div = loom.div %a, %b : tensor<4xi64>, tensor<4xi64> -> tensor<4xi64>
      %max = loom.max %a, %b : tensor<4xi64>, tensor<4xi64> -> tensor<4xi64>
      %min = loom.min %a, %b : tensor<4xi64>, tensor<4xi64> -> tensor<4xi64>
      %neg = loom.neg %a : tensor<4xi64> -> tensor<4xi64>
      return %div, %max, %min, %neg
          : tensor<4xi64>, tensor<4xi64>, tensor<4xi64>, tensor<4xi64>
    }
  )mlir";
  FailureOr<std::vector<Tensor>> r =
      run(src, {i64({4}, {7, -7, 7, -7}), i64({4}, {2, 2, -2, -2})});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  expectTensor((*r)[0], LOOM_DTYPE_I64, {4}, {3, -3, -3, 3});
  expectTensor((*r)[1], LOOM_DTYPE_I64, {4}, {7, 2, 7, -2});
  expectTensor((*r)[2], LOOM_DTYPE_I64, {4}, {2, -7, -2, -7});
  expectTensor((*r)[3], LOOM_DTYPE_I64, {4}, {-7, 7, -7, 7});
}

TEST_F(InterpreterTest, IntegerDivisionByZeroIsZero) {
  const char *src = R"mlir(
    func.func @main(%a: tensor<2xi32>, %b: tensor<2xi32>) -> tensor<2xi32> {
      %r = loom.div %a, %b : tensor<2xi32>, tensor<2xi32> -> tensor<2xi32>
      return %r : tensor<2xi32>
    }
  )mlir";
  Tensor a = makeTensor(LOOM_DTYPE_I32, {2}, {1, 2});
  Tensor b = makeTensor(LOOM_DTYPE_I32, {2}, {1, 0});
  FailureOr<std::vector<Tensor>> r = run(src, {a, b});
  ASSERT_TRUE(succeeded(r));
  expectTensor((*r)[0], LOOM_DTYPE_I32, {2}, {1, 0});
}

TEST_F(InterpreterTest, MaxMinPowPropagateNaN) {
  const char *src = R"mlir(
    func.func @main(%a: tensor<3xf32>, %b: tensor<3xf32>)
        -> (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) {
      %max = loom.max %a, %b : tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
      %min = loom.min %a, %b : tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
      %pow = loom.pow %a, %b : tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
      return %max, %min, %pow : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>
    }
  )mlir";
  double nan = std::numeric_limits<double>::quiet_NaN();
  FailureOr<std::vector<Tensor>> r =
      run(src, {f32({3}, {2, -1, nan}), f32({3}, {3, 0.5, 1})});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  expectTensor((*r)[0], LOOM_DTYPE_F32, {3}, {3, 0.5, nan});
  expectTensor((*r)[1], LOOM_DTYPE_F32, {3}, {2, -1, nan});
  expectTensor((*r)[2], LOOM_DTYPE_F32, {3}, {8, nan, nan});
}

TEST_F(InterpreterTest, ComparisonsLogicAndSelect) {
  const char *src = R"mlir(
    func.func @main(%a: tensor<4xf32>, %b: tensor<4xf32>)
        -> (tensor<4xi1>, tensor<4xi1>, tensor<4xi1>, tensor<4xi1>,
            tensor<4xi1>, tensor<4xi1>, tensor<4xi1>, tensor<4xf32>) {
      %eq = loom.cmp "eq" %a, %b : tensor<4xf32>, tensor<4xf32> -> tensor<4xi1>
      %ne = loom.cmp "ne" %a, %b : tensor<4xf32>, tensor<4xf32> -> tensor<4xi1>
      %lt = loom.cmp "lt" %a, %b : tensor<4xf32>, tensor<4xf32> -> tensor<4xi1>
      %le = loom.cmp "le" %a, %b : tensor<4xf32>, tensor<4xf32> -> tensor<4xi1>
      %gt = loom.cmp "gt" %a, %b : tensor<4xf32>, tensor<4xf32> -> tensor<4xi1>
      %ge = loom.cmp "ge" %a, %b : tensor<4xf32>, tensor<4xf32> -> tensor<4xi1>
      %and = loom.and %le, %ge : tensor<4xi1>, tensor<4xi1> -> tensor<4xi1>
      %or = loom.or %lt, %gt : tensor<4xi1>, tensor<4xi1> -> tensor<4xi1>
      %not = loom.not %or : tensor<4xi1> -> tensor<4xi1>
      %zero = loom.constant dense<0.0> : tensor<f32>
      %sel = loom.select %lt, %a, %zero
          : tensor<4xi1>, tensor<4xf32>, tensor<f32> -> tensor<4xf32>
      return %eq, %ne, %lt, %le, %gt, %and, %not, %sel
          : tensor<4xi1>, tensor<4xi1>, tensor<4xi1>, tensor<4xi1>,
            tensor<4xi1>, tensor<4xi1>, tensor<4xi1>, tensor<4xf32>
    }
  )mlir";
  double nan = std::numeric_limits<double>::quiet_NaN();
  FailureOr<std::vector<Tensor>> r =
      run(src, {f32({4}, {1, 2, 3, nan}), f32({4}, {2, 2, 1, 0})});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  // NaN compares false under every predicate but `ne`.
  expectTensor((*r)[0], LOOM_DTYPE_BOOL, {4}, {0, 1, 0, 0});
  expectTensor((*r)[1], LOOM_DTYPE_BOOL, {4}, {1, 0, 1, 1});
  expectTensor((*r)[2], LOOM_DTYPE_BOOL, {4}, {1, 0, 0, 0});
  expectTensor((*r)[3], LOOM_DTYPE_BOOL, {4}, {1, 1, 0, 0});
  expectTensor((*r)[4], LOOM_DTYPE_BOOL, {4}, {0, 0, 1, 0});
  expectTensor((*r)[5], LOOM_DTYPE_BOOL, {4}, {0, 1, 0, 0});
  expectTensor((*r)[6], LOOM_DTYPE_BOOL, {4}, {0, 1, 0, 1});
  expectTensor((*r)[7], LOOM_DTYPE_F32, {4}, {1, 0, 0, 0});
}

TEST_F(InterpreterTest, UnaryMath) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>,
        tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>,
        tensor<3xf32>, tensor<3xf32>) {
      %neg = loom.neg %x : tensor<3xf32> -> tensor<3xf32>
      %abs = loom.abs %x : tensor<3xf32> -> tensor<3xf32>
      %exp = loom.exp %x : tensor<3xf32> -> tensor<3xf32>
      %tanh = loom.tanh %x : tensor<3xf32> -> tensor<3xf32>
      %sig = loom.sigmoid %x : tensor<3xf32> -> tensor<3xf32>
      %silu = loom.silu %x : tensor<3xf32> -> tensor<3xf32>
      %gelu = loom.gelu %x : tensor<3xf32> -> tensor<3xf32>
      %sq = loom.mul %x, %x : tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
      %sqrt = loom.sqrt %sq : tensor<3xf32> -> tensor<3xf32>
      return %neg, %abs, %exp, %tanh, %sig, %silu, %gelu, %sqrt
          : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>,
            tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>
    }
  )mlir";
  FailureOr<std::vector<Tensor>> r = run(src, {f32({3}, {-1.5, 0, 2})});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  auto sig = [](double x) { return 1 / (1 + std::exp(-x)); };
  expectTensor((*r)[0], LOOM_DTYPE_F32, {3}, {1.5, 0, -2});
  expectTensor((*r)[1], LOOM_DTYPE_F32, {3}, {1.5, 0, 2});
  expectTensor((*r)[2], LOOM_DTYPE_F32, {3},
               {std::exp(-1.5), 1, std::exp(2.0)});
  expectTensor((*r)[3], LOOM_DTYPE_F32, {3},
               {std::tanh(-1.5), 0, std::tanh(2.0)});
  expectTensor((*r)[4], LOOM_DTYPE_F32, {3}, {sig(-1.5), 0.5, sig(2)});
  expectTensor((*r)[5], LOOM_DTYPE_F32, {3}, {-1.5 * sig(-1.5), 0, 2 * sig(2)});
  // GELU(x) = x * Phi(x); Phi(-1.5) and Phi(2) from standard normal tables.
  expectTensor((*r)[6], LOOM_DTYPE_F32, {3},
               {-1.5 * 0.0668072012688581, 0, 2 * 0.9772498680518208}, 1e-12);
  expectTensor((*r)[7], LOOM_DTYPE_F32, {3}, {1.5, 0, 2});
}

TEST_F(InterpreterTest, LogAndRsqrtAtTheEdges) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<3xf64>) -> (tensor<3xf64>, tensor<3xf64>) {
      %log = loom.log %x : tensor<3xf64> -> tensor<3xf64>
      %rsqrt = loom.rsqrt %x : tensor<3xf64> -> tensor<3xf64>
      return %log, %rsqrt : tensor<3xf64>, tensor<3xf64>
    }
  )mlir";
  double inf = std::numeric_limits<double>::infinity();
  FailureOr<std::vector<Tensor>> r =
      run(src, {makeTensor(LOOM_DTYPE_F64, {3}, {4, 0, 1})});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  expectTensor((*r)[0], LOOM_DTYPE_F64, {3}, {std::log(4.0), -inf, 0});
  expectTensor((*r)[1], LOOM_DTYPE_F64, {3}, {0.5, inf, 1});
}

TEST_F(InterpreterTest, SigmoidIsStableForLargeInputs) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {
      %r = loom.sigmoid %x : tensor<2xf32> -> tensor<2xf32>
      return %r : tensor<2xf32>
    }
  )mlir";
  Tensor r = runOne(src, {f32({2}, {-800, 800})});
  expectTensor(r, LOOM_DTYPE_F32, {2}, {0, 1});
}

TEST_F(InterpreterTest, CastSemantics) {
  const char *src = R"mlir(
    func.func @main(%f: tensor<4xf32>, %i: tensor<3xi64>, %b: tensor<2xi1>)
        -> (tensor<4xi32>, tensor<4xi1>, tensor<3xi1>, tensor<3xf32>,
            tensor<2xf32>, tensor<2xi64>) {
      %fi = loom.cast %f : tensor<4xf32> -> tensor<4xi32>
      %fb = loom.cast %f : tensor<4xf32> -> tensor<4xi1>
      %ib = loom.cast %i : tensor<3xi64> -> tensor<3xi1>
      %if = loom.cast %i : tensor<3xi64> -> tensor<3xf32>
      %bf = loom.cast %b : tensor<2xi1> -> tensor<2xf32>
      %bi = loom.cast %b : tensor<2xi1> -> tensor<2xi64>
      return %fi, %fb, %ib, %if, %bf, %bi
          : tensor<4xi32>, tensor<4xi1>, tensor<3xi1>, tensor<3xf32>,
            tensor<2xf32>, tensor<2xi64>
    }
  )mlir";
  FailureOr<std::vector<Tensor>> r =
      run(src, {f32({4}, {-2.7, 2.7, 0, 0.25}), i64({3}, {0, -5, 3}),
                i1({2}, {1, 0})});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  expectTensor((*r)[0], LOOM_DTYPE_I32, {4}, {-2, 2, 0, 0});
  expectTensor((*r)[1], LOOM_DTYPE_BOOL, {4}, {1, 1, 0, 1});
  expectTensor((*r)[2], LOOM_DTYPE_BOOL, {3}, {0, 1, 1});
  expectTensor((*r)[3], LOOM_DTYPE_F32, {3}, {0, -5, 3});
  expectTensor((*r)[4], LOOM_DTYPE_F32, {2}, {1, 0});
  expectTensor((*r)[5], LOOM_DTYPE_I64, {2}, {1, 0});
}

//===----------------------------------------------------------------------===//
// Reductions and normalizations
//===----------------------------------------------------------------------===//

TEST_F(InterpreterTest, ReductionsWithAndWithoutKeepdim) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<2x3xf32>)
        -> (tensor<2xf32>, tensor<1x3xf32>, tensor<f32>, tensor<2x1xf32>,
            tensor<3xf32>, tensor<2x3xf32>) {
      %sum = loom.sum %x {axes = array<i64: 1>} : tensor<2x3xf32> -> tensor<2xf32>
      %sumk = loom.sum %x {axes = array<i64: 0>, keepdim = true}
          : tensor<2x3xf32> -> tensor<1x3xf32>
      %mean = loom.mean %x {axes = array<i64: 0, 1>}
          : tensor<2x3xf32> -> tensor<f32>
      %max = loom.reduce_max %x {axes = array<i64: 1>, keepdim = true}
          : tensor<2x3xf32> -> tensor<2x1xf32>
      %min = loom.reduce_min %x {axes = array<i64: 0>}
          : tensor<2x3xf32> -> tensor<3xf32>
      %none = loom.mean %x {axes = array<i64>} : tensor<2x3xf32> -> tensor<2x3xf32>
      return %sum, %sumk, %mean, %max, %min, %none
          : tensor<2xf32>, tensor<1x3xf32>, tensor<f32>, tensor<2x1xf32>,
            tensor<3xf32>, tensor<2x3xf32>
    }
  )mlir";
  FailureOr<std::vector<Tensor>> r =
      run(src, {f32({2, 3}, {1, -2, 3, 4, 5, -6})});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  expectTensor((*r)[0], LOOM_DTYPE_F32, {2}, {2, 3});
  expectTensor((*r)[1], LOOM_DTYPE_F32, {1, 3}, {5, 3, -3});
  expectTensor((*r)[2], LOOM_DTYPE_F32, {}, {5.0 / 6.0});
  expectTensor((*r)[3], LOOM_DTYPE_F32, {2, 1}, {3, 5});
  expectTensor((*r)[4], LOOM_DTYPE_F32, {3}, {1, -2, -6});
  expectTensor((*r)[5], LOOM_DTYPE_F32, {2, 3}, {1, -2, 3, 4, 5, -6});
}

TEST_F(InterpreterTest, ReductionOverMiddleAxisOfDynamicTensor) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<?x?x2xi64>) -> tensor<?x2xi64> {
      %r = loom.sum %x {axes = array<i64: 1>} : tensor<?x?x2xi64> -> tensor<?x2xi64>
      return %r : tensor<?x2xi64>
    }
  )mlir";
  // x[b, s, c] = 100 b + 10 s + c; the sum over s of 3 rows.
  std::vector<double> x;
  for (int b = 0; b < 2; ++b)
    for (int s = 0; s < 3; ++s)
      for (int c = 0; c < 2; ++c)
        x.push_back(100 * b + 10 * s + c);
  expectTensor(runOne(src, {i64({2, 3, 2}, x)}), LOOM_DTYPE_I64, {2, 2},
               {30, 33, 330, 333});
}

TEST_F(InterpreterTest, SoftmaxRowsSumToOneAndAreStable) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<?x4xf32>) -> (tensor<?x4xf32>, tensor<?x4xf32>) {
      %p = loom.softmax %x {axis = 1 : i64} : tensor<?x4xf32> -> tensor<?x4xf32>
      %l = loom.log_softmax %x {axis = 1 : i64} : tensor<?x4xf32> -> tensor<?x4xf32>
      return %p, %l : tensor<?x4xf32>, tensor<?x4xf32>
    }
  )mlir";
  // The second row would overflow exp() without subtracting the maximum.
  FailureOr<std::vector<Tensor>> r =
      run(src, {f32({2, 4}, {1, 2, 3, 4, 1000, 1001, 1002, 1003})});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  const Tensor &p = (*r)[0], &l = (*r)[1];
  double denom = 1 + std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  for (int row = 0; row < 2; ++row) {
    double sum = 0;
    for (int j = 0; j < 4; ++j) {
      double expected = std::exp(static_cast<double>(j)) / denom;
      EXPECT_NEAR(p.data[row * 4 + j], expected, 1e-15);
      EXPECT_NEAR(l.data[row * 4 + j], std::log(expected), 1e-12);
      sum += p.data[row * 4 + j];
    }
    EXPECT_NEAR(sum, 1.0, 1e-15);
  }
}

TEST_F(InterpreterTest, SoftmaxAlongLeadingAxis) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
      %p = loom.softmax %x {axis = 0 : i64} : tensor<2x3xf32> -> tensor<2x3xf32>
      return %p : tensor<2x3xf32>
    }
  )mlir";
  Tensor p = runOne(src, {f32({2, 3}, {0, 1, 2, 0, 0, 0})});
  auto s = [](double a, double b) {
    return std::exp(a) / (std::exp(a) + std::exp(b));
  };
  expectTensor(p, LOOM_DTYPE_F32, {2, 3},
               {0.5, s(1, 0), s(2, 0), 0.5, s(0, 1), s(0, 2)});
}

TEST_F(InterpreterTest, RmsNorm) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<?x2xf32>, %w: tensor<2xf32>) -> tensor<?x2xf32> {
      %y = loom.rms_norm %x, %w {eps = 1.0e-06 : f64}
          : tensor<?x2xf32>, tensor<2xf32> -> tensor<?x2xf32>
      return %y : tensor<?x2xf32>
    }
  )mlir";
  // Row [3, 4]: mean of squares 12.5; row [0, 0] stays 0 thanks to eps.
  Tensor y = runOne(src, {f32({2, 2}, {3, 4, 0, 0}), f32({2}, {1, 2})});
  double s = 1 / std::sqrt(12.5 + 1e-6);
  expectTensor(y, LOOM_DTYPE_F32, {2, 2}, {3 * s, 8 * s, 0, 0});
}

//===----------------------------------------------------------------------===//
// Matrix products
//===----------------------------------------------------------------------===//

/// Checks every transpose combination of a batched matmul against a loop
/// over the logical A[b, i, p] and B[p, j].
TEST_F(InterpreterTest, MatmulTransposesMatchALoop) {
  const int64_t batch = 2, m = 3, k = 4, n = 5;
  std::vector<double> logicalA = ramp(batch * m * k), logicalB = ramp(k * n, 1);
  std::vector<double> expected(batch * m * n, 0.0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t p = 0; p < k; ++p)
          expected[(b * m + i) * n + j] +=
              logicalA[(b * m + i) * k + p] * logicalB[p * n + j];
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      SCOPED_TRACE(std::string("transpose_a=") + (ta ? "1" : "0") +
                   " transpose_b=" + (tb ? "1" : "0"));
      std::vector<double> a(batch * m * k), b(k * n);
      for (int64_t bi = 0; bi < batch; ++bi)
        for (int64_t i = 0; i < m; ++i)
          for (int64_t p = 0; p < k; ++p)
            a[ta ? (bi * k + p) * m + i : (bi * m + i) * k + p] =
                logicalA[(bi * m + i) * k + p];
      for (int64_t p = 0; p < k; ++p)
        for (int64_t j = 0; j < n; ++j)
          b[tb ? j * k + p : p * n + j] = logicalB[p * n + j];
      std::string aType = ta ? "tensor<?x4x3xf32>" : "tensor<?x3x4xf32>";
      std::string bType = tb ? "tensor<5x4xf32>" : "tensor<4x5xf32>";
      std::string src = "func.func @main(%a: " + aType + ", %b: " + bType +
                        ") -> tensor<?x3x5xf32> {\n  %c = loom.matmul %a, %b "
                        "{transpose_a = " +
                        (ta ? "true" : "false") +
                        ", transpose_b = " + (tb ? "true" : "false") +
                        "} : " + aType + ", " + bType +
                        " -> tensor<?x3x5xf32>\n  return %c : "
                        "tensor<?x3x5xf32>\n}\n";
      std::vector<int64_t> aShape = ta ? std::vector<int64_t>{batch, k, m}
                                       : std::vector<int64_t>{batch, m, k};
      std::vector<int64_t> bShape =
          tb ? std::vector<int64_t>{n, k} : std::vector<int64_t>{k, n};
      Tensor c = runOne(src, {f32(aShape, a), f32(bShape, b)});
      expectTensor(c, LOOM_DTYPE_F32, {batch, m, n}, expected);
    }
  }
}

TEST_F(InterpreterTest, MatmulBroadcastsBatchDims) {
  const char *src = R"mlir(
    func.func @main(%a: tensor<2x1x1x2xf32>, %b: tensor<3x2x1xf32>)
        -> tensor<2x3x1x1xf32> {
      %c = loom.matmul %a, %b
          : tensor<2x1x1x2xf32>, tensor<3x2x1xf32> -> tensor<2x3x1x1xf32>
      return %c : tensor<2x3x1x1xf32>
    }
  )mlir";
  // c[i, j] = a[i] . b[j].
  Tensor c = runOne(src, {f32({2, 1, 1, 2}, {1, 2, 3, 4}),
                          f32({3, 2, 1}, {1, 0, 0, 1, 1, 1})});
  expectTensor(c, LOOM_DTYPE_F32, {2, 3, 1, 1}, {1, 2, 3, 3, 4, 7});
}

TEST_F(InterpreterTest, LinearWithAndWithoutBias) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<?x2xf32>, %w: tensor<3x2xf32>, %b: tensor<3xf32>)
        -> (tensor<?x3xf32>, tensor<?x3xf32>) {
      %y = loom.linear %x, %w : tensor<?x2xf32>, tensor<3x2xf32> -> tensor<?x3xf32>
      %z = loom.linear %x, %w, %b
          : tensor<?x2xf32>, tensor<3x2xf32>, tensor<3xf32> -> tensor<?x3xf32>
      return %y, %z : tensor<?x3xf32>, tensor<?x3xf32>
    }
  )mlir";
  FailureOr<std::vector<Tensor>> r =
      run(src, {f32({2, 2}, {1, 2, -1, 3}), f32({3, 2}, {1, 0, 0, 1, 1, 1}),
                f32({3}, {10, 20, 30})});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  expectTensor((*r)[0], LOOM_DTYPE_F32, {2, 3}, {1, 2, 3, -1, 3, 2});
  expectTensor((*r)[1], LOOM_DTYPE_F32, {2, 3}, {11, 22, 33, 9, 23, 32});
}

//===----------------------------------------------------------------------===//
// Data movement
//===----------------------------------------------------------------------===//

TEST_F(InterpreterTest, ReshapeCopiesAndInfers) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<?x6xf32>) -> tensor<?x2x3xf32> {
      %r = loom.reshape %x {shape = array<i64: 0, -1, 3>}
          : tensor<?x6xf32> -> tensor<?x2x3xf32>
      return %r : tensor<?x2x3xf32>
    }
  )mlir";
  expectTensor(runOne(src, {f32({2, 6}, ramp(12))}), LOOM_DTYPE_F32, {2, 2, 3},
               ramp(12));
}

TEST_F(InterpreterTest, ReshapeMismatchAtRunTimeFails) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<?xf32>) -> tensor<2x?xf32> {
      %r = loom.reshape %x {shape = array<i64: 2, -1>}
          : tensor<?xf32> -> tensor<2x?xf32>
      return %r : tensor<2x?xf32>
    }
  )mlir";
  expectError(src, {f32({3}, {1, 2, 3})}, "'loom.reshape' op cannot reshape");
}

TEST_F(InterpreterTest, Transpose) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<2x3x4xf32>) -> tensor<4x2x3xf32> {
      %t = loom.transpose %x {permutation = array<i64: 2, 0, 1>}
          : tensor<2x3x4xf32> -> tensor<4x2x3xf32>
      return %t : tensor<4x2x3xf32>
    }
  )mlir";
  std::vector<double> x = ramp(24), expected(24);
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c)
        expected[(c * 2 + a) * 3 + b] = x[(a * 3 + b) * 4 + c];
  expectTensor(runOne(src, {f32({2, 3, 4}, x)}), LOOM_DTYPE_F32, {4, 2, 3},
               expected);
}

TEST_F(InterpreterTest, SliceFollowsPython) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<2x?xf32>) -> (tensor<2x?xf32>, tensor<2x?xf32>) {
      %a = loom.slice %x {axis = 1 : i64, start = -4 : i64, end = 100 : i64,
                          step = 2 : i64} : tensor<2x?xf32> -> tensor<2x?xf32>
      %b = loom.slice %x {axis = 1 : i64, start = 3 : i64, end = 1 : i64}
          : tensor<2x?xf32> -> tensor<2x?xf32>
      return %a, %b : tensor<2x?xf32>, tensor<2x?xf32>
    }
  )mlir";
  // x[:, -4:100:2] of 5 columns keeps columns 1 and 3; x[:, 3:1] is empty.
  FailureOr<std::vector<Tensor>> r =
      run(src, {f32({2, 5}, {0, 1, 2, 3, 4, 10, 11, 12, 13, 14})});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  expectTensor((*r)[0], LOOM_DTYPE_F32, {2, 2}, {1, 3, 11, 13});
  expectTensor((*r)[1], LOOM_DTYPE_F32, {2, 0}, {});
}

TEST_F(InterpreterTest, Concat) {
  const char *src = R"mlir(
    func.func @main(%a: tensor<2x1xf32>, %b: tensor<2x?xf32>) -> tensor<2x?xf32> {
      %c = loom.concat %a, %b {axis = 1 : i64}
          : tensor<2x1xf32>, tensor<2x?xf32> -> tensor<2x?xf32>
      return %c : tensor<2x?xf32>
    }
  )mlir";
  expectTensor(runOne(src, {f32({2, 1}, {1, 2}), f32({2, 2}, {3, 4, 5, 6})}),
               LOOM_DTYPE_F32, {2, 3}, {1, 3, 4, 2, 5, 6});
}

TEST_F(InterpreterTest, GatherClampsIndices) {
  const char *src = R"mlir(
    func.func @main(%t: tensor<3x2xf32>, %i: tensor<2x2xi64>)
        -> (tensor<2x2x2xf32>, tensor<3x2x2xf32>) {
      %rows = loom.gather %t, %i {axis = 0 : i64}
          : tensor<3x2xf32>, tensor<2x2xi64> -> tensor<2x2x2xf32>
      %cols = loom.gather %t, %i {axis = 1 : i64}
          : tensor<3x2xf32>, tensor<2x2xi64> -> tensor<3x2x2xf32>
      return %rows, %cols : tensor<2x2x2xf32>, tensor<3x2x2xf32>
    }
  )mlir";
  FailureOr<std::vector<Tensor>> r = run(
      src, {f32({3, 2}, {0, 1, 10, 11, 20, 21}), i64({2, 2}, {2, -5, 1, 99})});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  // Indices clamp to [0, dim - 1]: -5 -> 0, 99 -> the last.
  expectTensor((*r)[0], LOOM_DTYPE_F32, {2, 2, 2},
               {20, 21, 0, 1, 10, 11, 20, 21});
  expectTensor((*r)[1], LOOM_DTYPE_F32, {3, 2, 2},
               {1, 0, 1, 1, 11, 10, 11, 11, 21, 20, 21, 21});
}

TEST_F(InterpreterTest, SinAndCos) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<4xf64>) -> (tensor<4xf64>, tensor<4xf64>) {
      %s = loom.sin %x : tensor<4xf64> -> tensor<4xf64>
      %c = loom.cos %x : tensor<4xf64> -> tensor<4xf64>
      return %s, %c : tensor<4xf64>, tensor<4xf64>
    }
  )mlir";
  FailureOr<std::vector<Tensor>> r = run(
      src, {makeTensor(LOOM_DTYPE_F64, {4}, {0, M_PI / 6, -M_PI / 2, 100})});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  expectTensor((*r)[0], LOOM_DTYPE_F64, {4}, {0, 0.5, -1, std::sin(100.0)});
  expectTensor((*r)[1], LOOM_DTYPE_F64, {4},
               {1, std::sqrt(3.0) / 2, 0, std::cos(100.0)});
}

TEST_F(InterpreterTest, DynamicSliceClampsStartAndLength) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<2x5xf32>, %s: tensor<i64>, %n: tensor<i32>)
        -> (tensor<2x?xf32>, tensor<2x2xf32>) {
      %a = loom.dynamic_slice %x, %s, %n {axis = 1 : i64}
          : tensor<2x5xf32>, tensor<i64>, tensor<i32> -> tensor<2x?xf32>
      %b = loom.dynamic_slice %x, %s {axis = 1 : i64, size = 2 : i64}
          : tensor<2x5xf32>, tensor<i64> -> tensor<2x2xf32>
      return %a, %b : tensor<2x?xf32>, tensor<2x2xf32>
    }
  )mlir";
  Tensor x = f32({2, 5}, {0, 1, 2, 3, 4, 10, 11, 12, 13, 14});
  auto i32 = [](double v) { return makeTensor(LOOM_DTYPE_I32, {}, {v}); };
  struct Case {
    double start, length;
    std::vector<double> ranged, sized;
    int64_t rangedLength;
  };
  // With a length, start clamps to [0, 5] and the length to [0, 5 - start];
  // with size 2, start clamps to [0, 3].
  const Case cases[] = {
      {1, 2, {1, 2, 11, 12}, {1, 2, 11, 12}, 2},
      {3, 9, {3, 4, 13, 14}, {3, 4, 13, 14}, 2},
      {4, 3, {4, 14}, {3, 4, 13, 14}, 1},
      {-2, 1, {0, 10}, {0, 1, 10, 11}, 1},
      {7, 2, {}, {3, 4, 13, 14}, 0},
      {2, -1, {}, {2, 3, 12, 13}, 0},
  };
  for (const Case &c : cases) {
    FailureOr<std::vector<Tensor>> r =
        run(src, {x, i64({}, {c.start}), i32(c.length)});
    ASSERT_TRUE(succeeded(r)) << diagnostics;
    expectTensor((*r)[0], LOOM_DTYPE_F32, {2, c.rangedLength}, c.ranged);
    expectTensor((*r)[1], LOOM_DTYPE_F32, {2, 2}, c.sized);
  }
}

TEST_F(InterpreterTest, DynamicUpdateSliceClampsStart) {
  const char *src = R"mlir(
    func.func @main(%t: tensor<2x4xf32>, %u: tensor<?x?xf32>, %s: tensor<i32>)
        -> tensor<2x4xf32> {
      %r = loom.dynamic_update_slice %t, %u, %s {axis = 1 : i64}
          : tensor<2x4xf32>, tensor<?x?xf32>, tensor<i32> -> tensor<2x4xf32>
      return %r : tensor<2x4xf32>
    }
  )mlir";
  Tensor t = f32({2, 4}, {0, 1, 2, 3, 10, 11, 12, 13});
  Tensor u = f32({2, 2}, {-1, -2, -3, -4});
  auto at = [](double v) { return makeTensor(LOOM_DTYPE_I32, {}, {v}); };
  // In range, at the end, and clamped to [0, 4 - 2] from both sides.
  expectTensor(runOne(src, {t, u, at(1)}), LOOM_DTYPE_F32, {2, 4},
               {0, -1, -2, 3, 10, -3, -4, 13});
  expectTensor(runOne(src, {t, u, at(2)}), LOOM_DTYPE_F32, {2, 4},
               {0, 1, -1, -2, 10, 11, -3, -4});
  expectTensor(runOne(src, {t, u, at(3)}), LOOM_DTYPE_F32, {2, 4},
               {0, 1, -1, -2, 10, 11, -3, -4});
  expectTensor(runOne(src, {t, u, at(-7)}), LOOM_DTYPE_F32, {2, 4},
               {-1, -2, 2, 3, -3, -4, 12, 13});
  // An update larger than the target is cut to it, along the axis (start
  // clamps to 0) and along the other dimensions; an empty one writes nothing.
  Tensor wide =
      f32({3, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15});
  expectTensor(runOne(src, {t, wide, at(2)}), LOOM_DTYPE_F32, {2, 4},
               {1, 2, 3, 4, 6, 7, 8, 9});
  expectTensor(runOne(src, {t, f32({2, 0}, {}), at(9)}), LOOM_DTYPE_F32, {2, 4},
               {0, 1, 2, 3, 10, 11, 12, 13});
}

TEST_F(InterpreterTest, BroadcastLikeAndShape) {
  const char *src = R"mlir(
    func.func @main(%b: tensor<3xf32>, %x: tensor<?x3xi1>, %s: tensor<f32>)
        -> (tensor<?x3xf32>, tensor<2x2xf32>) {
      %l = loom.broadcast %b like %x : tensor<3xf32>, tensor<?x3xi1> -> tensor<?x3xf32>
      %c = loom.broadcast %s {shape = array<i64: 2, 2>} : tensor<f32> -> tensor<2x2xf32>
      return %l, %c : tensor<?x3xf32>, tensor<2x2xf32>
    }
  )mlir";
  FailureOr<std::vector<Tensor>> r = run(
      src, {f32({3}, {1, 2, 3}), i1({2, 3}, {0, 0, 0, 1, 1, 1}), f32({}, {7})});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  expectTensor((*r)[0], LOOM_DTYPE_F32, {2, 3}, {1, 2, 3, 1, 2, 3});
  expectTensor((*r)[1], LOOM_DTYPE_F32, {2, 2}, {7, 7, 7, 7});
}

//===----------------------------------------------------------------------===//
// Calls
//===----------------------------------------------------------------------===//

TEST_F(InterpreterTest, CallsEvaluateSubGraphs) {
  const char *src = R"mlir(
    func.func private @affine(%x: tensor<?xf32>, %s: tensor<f32>)
        -> (tensor<?xf32>, tensor<f32>) {
      %y = loom.mul %x, %s : tensor<?xf32>, tensor<f32> -> tensor<?xf32>
      %t = loom.sum %y {axes = array<i64: 0>} : tensor<?xf32> -> tensor<f32>
      return %y, %t : tensor<?xf32>, tensor<f32>
    }
    func.func @main(%x: tensor<?xf32> {loom.role = "input", loom.name = "x"})
        -> (tensor<?xf32> {loom.role = "output", loom.name = "y"},
            tensor<f32> {loom.role = "output", loom.name = "t"}) {
      %s = loom.constant dense<3.0> : tensor<f32>
      %y, %t = func.call @affine(%x, %s)
          : (tensor<?xf32>, tensor<f32>) -> (tensor<?xf32>, tensor<f32>)
      %y2, %t2 = func.call @affine(%y, %s)
          : (tensor<?xf32>, tensor<f32>) -> (tensor<?xf32>, tensor<f32>)
      return %y2, %t : tensor<?xf32>, tensor<f32>
    }
  )mlir";
  FailureOr<std::vector<Tensor>> r = run(src, {f32({3}, {1, 2, 3})});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  expectTensor((*r)[0], LOOM_DTYPE_F32, {3}, {9, 18, 27});
  expectTensor((*r)[1], LOOM_DTYPE_F32, {}, {18});
}

TEST_F(InterpreterTest, RecursiveCallsAreCut) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<f32>) -> tensor<f32> {
      %y = func.call @main(%x) : (tensor<f32>) -> tensor<f32>
      return %y : tensor<f32>
    }
  )mlir";
  expectError(src, {f32({}, {1})}, "nests calls deeper than");
}

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

const char *kAddDynamic = R"mlir(
  func.func @main(%a: tensor<?x4xf32> {loom.name = "a", loom.dims = ["B", 4]},
                  %b: tensor<?x4xf32> {loom.name = "b"}) -> tensor<?x4xf32> {
    %r = loom.add %a, %b : tensor<?x4xf32>, tensor<?x4xf32> -> tensor<?x4xf32>
    return %r : tensor<?x4xf32>
  }
)mlir";

TEST_F(InterpreterTest, WrongArgumentCount) {
  expectError(kAddDynamic, {f32({1, 4}, ramp(4))},
              "'main' takes 2 arguments, got 1");
}

TEST_F(InterpreterTest, WrongDtype) {
  expectError(kAddDynamic, {f32({1, 4}, ramp(4)), i64({1, 4}, {1, 2, 3, 4})},
              "argument 1 ('b') has dtype i64, expected f32");
}

TEST_F(InterpreterTest, WrongStaticDim) {
  expectError(kAddDynamic, {f32({1, 4}, ramp(4)), f32({1, 3}, ramp(3))},
              "argument 1 ('b') has shape [1, 3], which does not match "
              "'tensor<?x4xf32>' in dimension 1");
}

TEST_F(InterpreterTest, WrongRankAndDataSize) {
  expectError(kAddDynamic, {f32({4}, ramp(4)), f32({1, 4}, ramp(4))},
              "argument 0 ('a') has rank 1");
  expectError(kAddDynamic, {f32({1, 4}, ramp(3)), f32({1, 4}, ramp(4))},
              "argument 0 ('a') has 3 values for shape [1, 4]");
}

TEST_F(InterpreterTest, InconsistentDynamicDimsInAdd) {
  expectError(kAddDynamic, {f32({2, 4}, ramp(8)), f32({3, 4}, ramp(12))},
              "'loom.add' op operand #1 has size 3 in dimension 0 of the "
              "broadcast, where operand #0 has size 2");
}

TEST_F(InterpreterTest, DynamicDimOfOneDoesNotStretch) {
  // A `?` that is 1 at run time is that size, not a broadcast.
  expectError(kAddDynamic, {f32({1, 4}, ramp(4)), f32({3, 4}, ramp(12))},
              "'loom.add' op operand #1 has size 3");
}

TEST_F(InterpreterTest, InconsistentNamedSymbols) {
  const char *src = R"mlir(
    func.func @main(%a: tensor<?xf32> {loom.name = "a", loom.dims = ["S"]},
                    %b: tensor<?xf32> {loom.name = "b", loom.dims = ["S"]})
        -> tensor<?xf32> {
      return %a : tensor<?xf32>
    }
  )mlir";
  expectError(src, {f32({2}, {1, 2}), f32({3}, {1, 2, 3})},
              "symbolic dimension 'S' is 2 in argument 0 ('a') and 3 in "
              "argument 1 ('b')");
}

TEST_F(InterpreterTest, MatmulContractionMismatchAtRunTime) {
  const char *src = R"mlir(
    func.func @main(%a: tensor<2x?xf32>, %b: tensor<?x2xf32>) -> tensor<2x2xf32> {
      %c = loom.matmul %a, %b : tensor<2x?xf32>, tensor<?x2xf32> -> tensor<2x2xf32>
      return %c : tensor<2x2xf32>
    }
  )mlir";
  expectError(src, {f32({2, 3}, ramp(6)), f32({2, 2}, ramp(4))},
              "'loom.matmul' op contraction dimensions differ at run time");
}

TEST_F(InterpreterTest, UnknownOpIsNamed) {
  const char *src = R"mlir(
    func.func @main(%a: tensor<2xf32>) -> tensor<2xf32> {
      %r = "test.mystery"(%a) : (tensor<2xf32>) -> tensor<2xf32>
      return %r : tensor<2xf32>
    }
  )mlir";
  expectError(src, {f32({2}, {1, 2})},
              "'test.mystery' op is not supported by the interpreter");
}

TEST_F(InterpreterTest, EmptyReductionsAndGathers) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<2x?xf32>) -> (tensor<2xf32>, tensor<2xf32>) {
      %s = loom.sum %x {axes = array<i64: 1>} : tensor<2x?xf32> -> tensor<2xf32>
      %m = loom.reduce_max %x {axes = array<i64: 1>}
          : tensor<2x?xf32> -> tensor<2xf32>
      return %s, %m : tensor<2xf32>, tensor<2xf32>
    }
  )mlir";
  // A sum over nothing is 0; a maximum over nothing is -inf.
  FailureOr<std::vector<Tensor>> r = run(src, {f32({2, 0}, {})});
  ASSERT_TRUE(succeeded(r));
  expectTensor((*r)[0], LOOM_DTYPE_F32, {2}, {0, 0});
  double inf = std::numeric_limits<double>::infinity();
  expectTensor((*r)[1], LOOM_DTYPE_F32, {2}, {-inf, -inf});
  const char *gather = R"mlir(
    func.func @main(%t: tensor<?xf32>, %i: tensor<2xi32>) -> tensor<2xf32> {
      %r = loom.gather %t, %i {axis = 0 : i64}
          : tensor<?xf32>, tensor<2xi32> -> tensor<2xf32>
      return %r : tensor<2xf32>
    }
  )mlir";
  Tensor indices = makeTensor(LOOM_DTYPE_I32, {2}, {0, 1});
  // Gathering from an empty dimension gives zeros.
  expectTensor(runOne(gather, {f32({0}, {}), indices}), LOOM_DTYPE_F32, {2},
               {0, 0});
  expectTensor(runOne(gather, {f32({1}, {4}), indices}), LOOM_DTYPE_F32, {2},
               {4, 4});
}

TEST_F(InterpreterTest, MissingEntry) {
  FailureOr<std::vector<Tensor>> r = run(kAddDynamic, {}, "nope");
  EXPECT_TRUE(failed(r));
  EXPECT_NE(diagnostics.find("no func named 'nope'"), std::string::npos);
}

//===----------------------------------------------------------------------===//
// Size
//===----------------------------------------------------------------------===//

TEST_F(InterpreterTest, LargeTensorsStayFast) {
  const char *src = R"mlir(
    func.func @main(%x: tensor<?x?xf32>, %a: tensor<?x?xf32>, %b: tensor<?x?xf32>)
        -> (tensor<?x?xf32>, tensor<?x?xf32>) {
      %p = loom.softmax %x {axis = 1 : i64} : tensor<?x?xf32> -> tensor<?x?xf32>
      %c = loom.matmul %a, %b : tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
      return %p, %c : tensor<?x?xf32>, tensor<?x?xf32>
    }
  )mlir";
  const int64_t rows = 1000, cols = 1000, n = 256;
  FailureOr<std::vector<Tensor>> r =
      run(src, {f32({rows, cols}, ramp(rows * cols)), f32({n, n}, ramp(n * n)),
                f32({n, n}, ramp(n * n, 0.5))});
  ASSERT_TRUE(succeeded(r)) << diagnostics;
  double sum = 0;
  for (int64_t j = 0; j < cols; ++j)
    sum += (*r)[0].data[999 * cols + j];
  EXPECT_NEAR(sum, 1.0, 1e-12);
  std::vector<double> a = ramp(n * n), b = ramp(n * n, 0.5);
  double c = 0;
  for (int64_t p = 0; p < n; ++p)
    c += a[7 * n + p] * b[p * n + 11];
  EXPECT_NEAR((*r)[1].data[7 * n + 11], c, 1e-10);
}

//===----------------------------------------------------------------------===//
// RL objectives: token log-probs with an lm head, their backward, kl, gae
//===----------------------------------------------------------------------===//

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

TEST_F(InterpreterTest, TokenLogprobWithWeightAndItsGradient) {
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

TEST_F(InterpreterTest, TokenLogprobGradOfLogits) {
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

TEST_F(InterpreterTest, BadIdsAreErrors) {
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

TEST_F(InterpreterTest, GradMustBeExpandedFirst) {
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

TEST_F(InterpreterTest, KlEstimatorsBroadcast) {
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

TEST_F(InterpreterTest, GaeSkipsMaskedPositions) {
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
