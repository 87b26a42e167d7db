//===- SemaTest.cpp - Tests of the frontend's semantic checks ---*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file tests each semantic error of checkModule with its message, line
// and column, and that valid programs (calls of defs, masks, states, multiple
// results) pass.
//
//===----------------------------------------------------------------------===//

#include "FrontendTestUtil.h"

using namespace loom::frontend;

namespace {

TEST_F(FrontendTest, AcceptsDefsMasksAndStates) {
  EXPECT_TRUE(parseAndCheck(R"(config dim = 8, n = 2
def two(x: f32[B, dim]) -> (a: f32[B, dim], b: f32[B, dim]) {
  param w: f32[dim, dim] = "w"
  a = linear(x, w)
  b = a * 2
}
def mlp(x: f32[B, dim]) -> (y: f32[B, dim]) {
  p, q = two(x, prefix="inner.")
  y = silu(p) + q
}
graph step(x: f32[B, dim], pos: i64, tin: i32[S]) -> (y: f32[B, dim], s: i64) {
  state cache: f32[n, dim]
  mask tree(b, h, i, j) = j <= i and tin[j] <= tin[i]
  y = mlp(x, prefix="layers.0.") + mlp(x) + reduce(cache, axis=[0, 1], keep=false)
  cache = update(cache, y, pos, m=tree, size=S, shape=[B, dim])
  s = pos + 1 + S
  t = concat([x, y], axis=-1)
}
)")) << diags;
}

struct SemaErrorCase {
  const char *source;
  const char *error;
};

class SemaErrorTest : public FrontendTest,
                      public ::testing::WithParamInterface<SemaErrorCase> {};

TEST_P(SemaErrorTest, ReportsLineAndColumn) {
  ASSERT_TRUE(parse(GetParam().source)) << diags;
  EXPECT_FALSE(checkModule(*module, sm));
  EXPECT_EQ(firstError(), GetParam().error) << diags;
}

INSTANTIATE_TEST_SUITE_P(
    Sema, SemaErrorTest,
    ::testing::Values(
        SemaErrorCase{"graph g(x: f32) -> (y: f32) {\n  y = x2 + 1\n}",
                      "test.loom:2:7: error: undefined name 'x2'"},
        SemaErrorCase{"graph g(x: f32) -> (y: f32) {\n  h = x\n}",
                      "test.loom:1:21: error: output 'y' of graph 'g' is "
                      "never assigned"},
        SemaErrorCase{"graph g(x: f32) -> (y: f32) {\n  x = 1\n  y = x\n}",
                      "test.loom:2:3: error: cannot assign to input 'x'"},
        SemaErrorCase{"graph g(x: f32) -> (y: f32) {\n  param w: f32\n"
                      "  w = x\n  y = w\n}",
                      "test.loom:3:3: error: cannot assign to param 'w'"},
        SemaErrorCase{"graph g(x: f32, x: f32) -> (y: f32) {\n  y = x\n}",
                      "test.loom:1:17: error: redefinition of 'x'"},
        SemaErrorCase{"graph g(x: f32) -> (x: f32) {\n}",
                      "test.loom:1:21: error: redefinition of 'x'"},
        SemaErrorCase{"graph g(x: f32) -> (y: f32) {\n  param x: f32\n}",
                      "test.loom:2:9: error: redefinition of 'x'"},
        SemaErrorCase{"graph g(x: f32) -> (y: f32) {\n  state y: f32\n}",
                      "test.loom:2:9: error: redefinition of 'y'"},
        SemaErrorCase{"graph g(x: f32) -> (y: f32) {\n  h = x\n  h = x\n"
                      "  y = h\n}",
                      "test.loom:3:3: error: redefinition of 'h'"},
        SemaErrorCase{"config dim = 4\ngraph g(dim: f32) {\n}",
                      "test.loom:2:9: error: 'dim' is already the name of a "
                      "config"},
        SemaErrorCase{"config dim = 4\ngraph g(x: f32) -> (y: f32) {\n"
                      "  dim = x\n  y = x\n}",
                      "test.loom:3:3: error: cannot assign to config 'dim'"},
        SemaErrorCase{"graph g(x: f32) {\n}\ndef g(x: f32) {\n}",
                      "test.loom:3:5: error: redefinition of def 'g'"},
        SemaErrorCase{"config eps = 1e-6\ngraph g(x: f32[eps]) {\n}",
                      "test.loom:2:16: error: dim 'eps' is not an integer "
                      "(it is float 1e-06)"},
        SemaErrorCase{"config h = 4\ngraph g(x: f32) {\n"
                      "  param w: f32[h / 3]\n}",
                      "test.loom:3:16: error: dim 'h / 3' is not an integer "
                      "(it is float 1.3333333333333333); use '//' for "
                      "integer division"},
        SemaErrorCase{"def a(x: f32) -> (y: f32) {\n  y = b(x)\n}\n"
                      "def b(x: f32) -> (y: f32) {\n  y = a(x) + 1\n}",
                      "test.loom:5:7: error: recursive call of 'a': 'a' -> "
                      "'b' -> 'a'"},
        SemaErrorCase{"def a(x: f32) -> (y: f32) {\n  y = a(x)\n}",
                      "test.loom:2:7: error: recursive call of 'a': 'a' -> "
                      "'a'"},
        SemaErrorCase{"def two(x: f32) -> (a: f32, b: f32) {\n  a = x\n"
                      "  b = x\n}\ngraph g(x: f32) -> (y: f32) {\n"
                      "  p, q, r = two(x)\n  y = p\n}",
                      "test.loom:6:13: error: def 'two' returns 2 results, "
                      "but 3 names are assigned"},
        SemaErrorCase{"def two(x: f32) -> (a: f32, b: f32) {\n  a = x\n"
                      "  b = x\n}\ngraph g(x: f32) -> (y: f32) {\n"
                      "  y = two(x) + 1\n}",
                      "test.loom:6:7: error: def 'two' returns 2 results; "
                      "only a call with one result can be used inside an "
                      "expression"},
        SemaErrorCase{"def one(x: f32) -> (a: f32) {\n  a = x\n}\n"
                      "graph g(x: f32) -> (y: f32) {\n  y = one(x, x)\n}",
                      "test.loom:5:7: error: def 'one' takes 1 input, but 2 "
                      "are given"},
        SemaErrorCase{"def one(x: f32) -> (a: f32) {\n  a = x\n}\n"
                      "graph g(x: f32) -> (y: f32) {\n"
                      "  y = one(x, pre=\"a.\")\n}",
                      "test.loom:5:14: error: unknown keyword argument 'pre' "
                      "in call to def 'one' (only 'prefix' is accepted)"},
        SemaErrorCase{"def one(x: f32) -> (a: f32) {\n  a = x\n}\n"
                      "graph g(x: f32) -> (y: f32) {\n"
                      "  y = one(x, prefix=3)\n}",
                      "test.loom:5:21: error: prefix must be a string, got "
                      "int"},
        SemaErrorCase{"graph g(x: f32) -> (y: f32, z: f32) {\n"
                      "  y, z = x + 1\n}",
                      "test.loom:2:12: error: assigning 2 names needs a call "
                      "on the right-hand side"},
        SemaErrorCase{"graph g(x: f32) -> (y: f32) {\n"
                      "  h = norm(x)\n  y = scale(x, by=h)\n}",
                      "test.loom:3:19: error: keyword argument 'by' of "
                      "'scale' must be a compile-time value, but 'h' is a "
                      "value"},
        SemaErrorCase{"graph g(x: f32) -> (y: f32) {\n"
                      "  y = scale(x, by=x)\n}",
                      "test.loom:2:19: error: keyword argument 'by' of "
                      "'scale' must be a compile-time value, but 'x' is an "
                      "input"},
        SemaErrorCase{"graph g(x: f32) -> (y: f32) {\n"
                      "  y = scale(x, by=1 // 0)\n}",
                      "test.loom:2:21: error: division by zero"},
        SemaErrorCase{"graph g(x: f32[S]) -> (y: f32) {\n"
                      "  mask m(b, h, i, j) = j <= i\n  y = m + x\n}",
                      "test.loom:3:7: error: mask 'm' can only be passed as a "
                      "keyword argument of attention (e.g. mask=m)"},
        SemaErrorCase{"graph g(x: f32[S]) -> (y: f32) {\n"
                      "  mask m(b, h, i, i) = x[i]\n  y = x\n}",
                      "test.loom:2:19: error: duplicate index variable 'i' in "
                      "mask 'm'"},
        SemaErrorCase{"graph g(x: f32[S]) -> (y: f32) {\n"
                      "  mask m(b, h, x, j) = j\n  y = x\n}",
                      "test.loom:2:16: error: index variable 'x' hides "
                      "another name of the same spelling"},
        SemaErrorCase{"graph g(x: f32[S]) -> (y: f32) {\n  y = x[0]\n}",
                      "test.loom:2:8: error: indexing is only allowed inside "
                      "a mask or score body"},
        SemaErrorCase{"graph g(x: f32) -> (y: f32) {\n  y = f(x, \"s\")\n}",
                      "test.loom:2:12: error: a string cannot be used as an "
                      "operand; strings are only allowed as keyword "
                      "arguments"},
        SemaErrorCase{"graph g(x: f32) -> (y: f32) {\n  state s: f32\n"
                      "  s = x\n  s = x + 1\n  y = s\n}",
                      "test.loom:4:3: error: state 's' is assigned more than "
                      "once"},
        SemaErrorCase{"graph g(x: f32) -> (y: f32) {\n  y = x\n  y = x\n}",
                      "test.loom:3:3: error: output 'y' is assigned more "
                      "than once"},
        SemaErrorCase{"graph g(x: f32) -> (y: f32) {\n  h = y\n  y = x\n}",
                      "test.loom:2:7: error: output 'y' is used before it is "
                      "assigned"},
        SemaErrorCase{"graph g(x: f32) -> (y: f32) {\n  y = h\n  h = x\n}",
                      "test.loom:2:7: error: undefined name 'h'"},
        SemaErrorCase{"def d(x: f32) -> (y: f32) {\n  y = x\n}\n"
                      "graph g(x: f32) -> (y: f32) {\n  y = d + x\n}",
                      "test.loom:5:7: error: 'd' is a def; call it as "
                      "'d(...)'"},
        SemaErrorCase{"graph g(x: f32) -> (y: f32) {\n"
                      "  y = op(x, axis=undefined_axis)\n}",
                      "test.loom:2:18: error: undefined name "
                      "'undefined_axis'"},
        SemaErrorCase{"graph g(x: f32[S]) -> (y: f32) {\n"
                      "  y = op(x, shape=[S * 2])\n}",
                      "test.loom:2:20: error: symbolic dim 'S' cannot be "
                      "used in arithmetic; only a bare name is allowed"}));

} // namespace
