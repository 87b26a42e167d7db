//===- ConfigTest.cpp - Config evaluation and override tests ----*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file tests the evaluation of configs (Python arithmetic, errors), the
// --define and --config JSON overrides with recomputation of dependent
// configs, and the evaluation of dims and keyword attributes.
//
//===----------------------------------------------------------------------===//

#include "FrontendTestUtil.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"

#include <cmath>

using namespace loom::frontend;

namespace {

const char *kConfigs = R"(config dim = 64, hidden = 256, eps = 1e-6
config mode = "absorb", use_bias = true
config qk_nope_head_dim = 128, qk_rope_head_dim = 64
config qk_head_dim = qk_nope_head_dim + qk_rope_head_dim
config rope_theta = 10000.0
config scale = qk_head_dim ** -0.5
)";

const ConstValue &valueOf(const ModuleAST &m, llvm::StringRef name) {
  const ConfigDecl *c = m.findConfig(name);
  EXPECT_TRUE(c) << name.str();
  static ConstValue none;
  return c ? c->value : none;
}

TEST_F(FrontendTest, EvaluatesConfigs) {
  ModuleAST *m = parse(kConfigs);
  ASSERT_TRUE(m) << diags;
  EXPECT_EQ(valueOf(*m, "dim").kind, ConstValue::Kind::Int);
  EXPECT_EQ(valueOf(*m, "dim").intValue, 64);
  EXPECT_EQ(valueOf(*m, "eps").kind, ConstValue::Kind::Float);
  EXPECT_DOUBLE_EQ(valueOf(*m, "eps").floatValue, 1e-6);
  EXPECT_EQ(valueOf(*m, "mode").str, "absorb");
  EXPECT_TRUE(valueOf(*m, "use_bias").boolValue);
  EXPECT_EQ(valueOf(*m, "qk_head_dim").intValue, 192);
  EXPECT_DOUBLE_EQ(valueOf(*m, "scale").floatValue, 1.0 / std::sqrt(192.0));
  EXPECT_EQ(m->findConfig("qk_head_dim")->declaredKind, ConstValue::Kind::Int);
}

TEST_F(FrontendTest, MathFunctions) {
  ModuleAST *m =
      parse(R"(config a = log(1), b = exp(0), c = sqrt(16), d = sqrt(2.25)
config e = floor(2.7), f = floor(-2.5), g = ceil(2.1), h = ceil(-2.5)
config i = floor(7), j = abs(-3), k = abs(-2.5), l = log(exp(2.0))
config dim = 64, max_seq_len = 4096, beta_fast = 32, base = 10000.0
config pi = 3.141592653589793
config low = floor(dim * log(max_seq_len / (beta_fast * 2 * pi)) / (2 * log(base)))
config high = ceil(dim * log(max_seq_len / (1 * 2 * pi)) / (2 * log(base)))
)");
  ASSERT_TRUE(m) << diags;
  auto isFloat = [&](llvm::StringRef name, double v) {
    EXPECT_EQ(valueOf(*m, name).kind, ConstValue::Kind::Float) << name.str();
    EXPECT_DOUBLE_EQ(valueOf(*m, name).floatValue, v) << name.str();
  };
  auto isInt = [&](llvm::StringRef name, int64_t v) {
    EXPECT_EQ(valueOf(*m, name).kind, ConstValue::Kind::Int) << name.str();
    EXPECT_EQ(valueOf(*m, name).intValue, v) << name.str();
  };
  isFloat("a", 0.0);
  isFloat("b", 1.0);
  isFloat("c", 4.0);
  isFloat("d", 1.5);
  isInt("e", 2);
  isInt("f", -3);
  isInt("g", 3);
  isInt("h", -2);
  isInt("i", 7);
  isInt("j", 3);
  isFloat("k", 2.5);
  isFloat("l", 2.0);
  // DeepSeek-V3's YaRN correction range (dim 64, original length 4096,
  // beta_fast 32, beta_slow 1, base 10000).
  double pi = 3.141592653589793;
  isInt("low", static_cast<int64_t>(std::floor(
                   64 * std::log(4096 / (32 * 2 * pi)) / (2 * std::log(1e4)))));
  isInt("high", static_cast<int64_t>(std::ceil(
                    64 * std::log(4096 / (1 * 2 * pi)) / (2 * std::log(1e4)))));
  EXPECT_EQ(valueOf(*m, "low").intValue, 10);
  EXPECT_EQ(valueOf(*m, "high").intValue, 23);
}

TEST_F(FrontendTest, MathFunctionsInDimsAndAttributes) {
  ASSERT_TRUE(parseAndCheck(R"(config dim = 64
graph g(x: f32[B, floor(sqrt(dim))]) -> (y: f32[B, floor(log(dim) / log(2) + 0.5)]) {
  y = softmax(x, axis=abs(-1)) * (1 / sqrt(dim))
}
)")) << diags;
  const GraphAST &g = *module->graphs[0];
  EXPECT_EQ(evaluateDim(*module, *g.inputs[0].type.dims[1], &sm)->intValue, 8);
  EXPECT_EQ(evaluateDim(*module, *g.outputs[0].type.dims[1], &sm)->intValue, 6);
}

TEST_F(FrontendTest, ArithmeticFollowsPython) {
  ModuleAST *m = parse(R"(config a = 7 // 2, b = -7 // 2, c = -7 % 3, d = 7 % -3
config e = 2 ** 10, f = 2 ** -1, g = 7 / 2, h = 8 / 2
config i = min(3, 1, 2), j = max(2, 2.5), k = (1 + 2) * 3 - 4 / 2
config l = 7.5 // 2, m = -7.5 % 2, n = 2 ** 3 ** 2, o = -2 ** 2
config p = 3 > 2 and not (1 == 2), q = "x" == "x", r = 0 ** 0
)");
  ASSERT_TRUE(m) << diags;
  EXPECT_EQ(valueOf(*m, "a").intValue, 3);
  EXPECT_EQ(valueOf(*m, "b").intValue, -4);
  EXPECT_EQ(valueOf(*m, "c").intValue, 2);
  EXPECT_EQ(valueOf(*m, "d").intValue, -2);
  EXPECT_EQ(valueOf(*m, "e").intValue, 1024);
  EXPECT_DOUBLE_EQ(valueOf(*m, "f").floatValue, 0.5);
  EXPECT_DOUBLE_EQ(valueOf(*m, "g").floatValue, 3.5);
  // True division always gives a float, even when exact.
  EXPECT_EQ(valueOf(*m, "h").kind, ConstValue::Kind::Float);
  EXPECT_EQ(valueOf(*m, "i").intValue, 1);
  EXPECT_DOUBLE_EQ(valueOf(*m, "j").floatValue, 2.5);
  EXPECT_DOUBLE_EQ(valueOf(*m, "k").floatValue, 7.0);
  EXPECT_DOUBLE_EQ(valueOf(*m, "l").floatValue, 3.0);
  EXPECT_DOUBLE_EQ(valueOf(*m, "m").floatValue, 0.5);
  EXPECT_EQ(valueOf(*m, "n").intValue, 512);
  EXPECT_EQ(valueOf(*m, "o").intValue, -4);
  EXPECT_TRUE(valueOf(*m, "p").boolValue);
  EXPECT_TRUE(valueOf(*m, "q").boolValue);
  EXPECT_EQ(valueOf(*m, "r").intValue, 1);
}

struct ConfigErrorCase {
  const char *source;
  const char *error;
};

class ConfigErrorTest : public FrontendTest,
                        public ::testing::WithParamInterface<ConfigErrorCase> {
};

TEST_P(ConfigErrorTest, ReportsLineAndColumn) {
  EXPECT_FALSE(parse(GetParam().source));
  EXPECT_EQ(firstError(), GetParam().error) << diags;
}

INSTANTIATE_TEST_SUITE_P(
    Config, ConfigErrorTest,
    ::testing::Values(
        ConfigErrorCase{"config a = 4, b = 0\nconfig c = a // b\n",
                        "test.loom:2:14: error: division by zero in config "
                        "'c'"},
        ConfigErrorCase{"config a = 1 / (2 - 2)\n",
                        "test.loom:1:14: error: division by zero in config "
                        "'a'"},
        ConfigErrorCase{"config a = b + 1, b = 2\n",
                        "test.loom:1:12: error: config 'b' is used before it "
                        "is defined"},
        ConfigErrorCase{"config a = a + 1\n",
                        "test.loom:1:12: error: config 'a' is defined in "
                        "terms of itself"},
        ConfigErrorCase{"config a = x2 * 2\n",
                        "test.loom:1:12: error: undefined name 'x2'"},
        ConfigErrorCase{"config a = 1\nconfig a = 2\n",
                        "test.loom:2:8: error: redefinition of config 'a'"},
        ConfigErrorCase{"config a = \"s\" + 1\n",
                        "test.loom:1:16: error: operator '+' cannot be "
                        "applied to string and int"},
        ConfigErrorCase{"config a = foo(1, 2)\n",
                        "test.loom:1:12: error: unknown function 'foo' in a "
                        "compile-time expression (only min, max, log, exp, "
                        "sqrt, floor, ceil and abs are allowed)"},
        // Math functions: domain errors at the call.
        ConfigErrorCase{"config n = 0\nconfig a = 1 + log(n)\n",
                        "test.loom:2:16: error: math domain error: 'log' "
                        "needs a positive argument, got 0"},
        ConfigErrorCase{"config a = log(-0.5)\n",
                        "test.loom:1:12: error: math domain error: 'log' "
                        "needs a positive argument, got -0.5"},
        ConfigErrorCase{"config a = sqrt(-1)\n",
                        "test.loom:1:12: error: math domain error: 'sqrt' "
                        "needs a non-negative argument, got -1"},
        ConfigErrorCase{"config a = exp(1000)\n",
                        "test.loom:1:12: error: 'exp(1000)' overflows: the "
                        "result is not a finite number"},
        ConfigErrorCase{"config a = floor(1e30)\n",
                        "test.loom:1:12: error: integer overflow: "
                        "'floor(1e+30)' does not fit in a 64-bit int"},
        ConfigErrorCase{"config a = ceil(-1e19)\n",
                        "test.loom:1:12: error: integer overflow: "
                        "'ceil(-1e+19)' does not fit in a 64-bit int"},
        ConfigErrorCase{"config a = abs(-9223372036854775807 - 1)\n",
                        "test.loom:1:12: error: integer overflow in "
                        "'abs(-9223372036854775808)'"},
        ConfigErrorCase{"config a = log(2, 3)\n",
                        "test.loom:1:12: error: 'log' takes 1 argument, but "
                        "2 are given"},
        ConfigErrorCase{"config a = sqrt()\n",
                        "test.loom:1:12: error: 'sqrt' takes 1 argument, but "
                        "0 are given"},
        ConfigErrorCase{"config a = exp(true)\n",
                        "test.loom:1:12: error: 'exp' needs a number, got "
                        "bool true"},
        ConfigErrorCase{"config a = floor(\"x\")\n",
                        "test.loom:1:12: error: 'floor' needs a number, got "
                        "string \"x\""},
        ConfigErrorCase{"config a = abs(x=1)\n",
                        "test.loom:1:16: error: 'abs' takes no keyword "
                        "arguments"},
        ConfigErrorCase{"config a = [1, 2]\n",
                        "test.loom:1:12: error: a config value cannot be a "
                        "list"},
        ConfigErrorCase{"config a = 2 ** 63\n",
                        "test.loom:1:14: error: integer overflow"},
        ConfigErrorCase{"config a = 1 and true\n",
                        "test.loom:1:14: error: operator 'and' cannot be "
                        "applied to int and bool"},
        ConfigErrorCase{"config a = 2 @ 3\n",
                        "test.loom:1:14: error: operator '@' is not allowed "
                        "in a compile-time expression"}));

//===----------------------------------------------------------------------===//
// Overrides
//===----------------------------------------------------------------------===//

/// A JSON file that is removed when the test ends.
class JsonFile {
public:
  explicit JsonFile(llvm::StringRef contents) {
    int fd;
    EXPECT_FALSE(
        llvm::sys::fs::createTemporaryFile("loom-config", "json", fd, path));
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << contents;
  }
  ~JsonFile() { llvm::sys::fs::remove(path); }
  llvm::StringRef getPath() const { return path; }

private:
  llvm::SmallString<128> path;
};

TEST_F(FrontendTest, DefineOverridesAndRecomputesDependents) {
  ModuleAST *m = parse(kConfigs);
  ASSERT_TRUE(m) << diags;
  std::vector<std::string> defines = {"qk_rope_head_dim=32", "mode=naive",
                                      "use_bias=false", "eps=1e-5",
                                      "rope_theta=50000"};
  ASSERT_TRUE(applyConfigOverrides(*m, defines, "", sm)) << diags;
  EXPECT_EQ(valueOf(*m, "qk_head_dim").intValue, 160);
  EXPECT_DOUBLE_EQ(valueOf(*m, "scale").floatValue, 1.0 / std::sqrt(160.0));
  EXPECT_EQ(valueOf(*m, "mode").str, "naive");
  EXPECT_FALSE(valueOf(*m, "use_bias").boolValue);
  EXPECT_DOUBLE_EQ(valueOf(*m, "eps").floatValue, 1e-5);
  // An int is accepted for a float config.
  EXPECT_EQ(valueOf(*m, "rope_theta").kind, ConstValue::Kind::Float);
  EXPECT_DOUBLE_EQ(valueOf(*m, "rope_theta").floatValue, 50000.0);
  EXPECT_TRUE(m->findConfig("qk_rope_head_dim")->overridden);
  EXPECT_FALSE(m->findConfig("qk_head_dim")->overridden);
}

TEST_F(FrontendTest, OverridingADerivedConfigReplacesItsExpression) {
  ModuleAST *m = parse(kConfigs);
  ASSERT_TRUE(m) << diags;
  ASSERT_TRUE(applyConfigOverrides(*m, {"qk_head_dim=100"}, "", sm)) << diags;
  EXPECT_EQ(valueOf(*m, "qk_head_dim").intValue, 100);
  EXPECT_DOUBLE_EQ(valueOf(*m, "scale").floatValue, 0.1);
}

TEST_F(FrontendTest, JsonOverridesIgnoreUnknownKeysAndNulls) {
  ModuleAST *m = parse(kConfigs);
  ASSERT_TRUE(m) << diags;
  JsonFile json(R"({
    "vocab_size": 129280,
    "dim": 7168,
    "qk_rope_head_dim": 16,
    "mode": null,
    "rope_theta": 10000,
    "eps": 1e-06,
    "n_routed_experts": {"nested": [1, 2]},
    "rope_factors": [1.0, 2.0],
    "score_func": "sigmoid"
  })");
  std::vector<std::string> defines = {"dim=32"};
  ASSERT_TRUE(applyConfigOverrides(*m, defines, json.getPath(), sm)) << diags;
  // The define wins over the JSON value.
  EXPECT_EQ(valueOf(*m, "dim").intValue, 32);
  EXPECT_EQ(valueOf(*m, "qk_head_dim").intValue, 144);
  EXPECT_EQ(valueOf(*m, "mode").str, "absorb");
  EXPECT_DOUBLE_EQ(valueOf(*m, "rope_theta").floatValue, 10000.0);
  EXPECT_EQ(diags, "");
}

struct OverrideErrorCase {
  std::vector<std::string> defines;
  const char *json;  // null: no --config
  const char *error; // "FILE" stands for the JSON file's path
};

class OverrideErrorTest
    : public FrontendTest,
      public ::testing::WithParamInterface<OverrideErrorCase> {};

TEST_P(OverrideErrorTest, NamesTheKey) {
  ModuleAST *m = parse(kConfigs);
  ASSERT_TRUE(m) << diags;
  const OverrideErrorCase &c = GetParam();
  std::optional<JsonFile> json;
  if (c.json)
    json.emplace(c.json);
  llvm::StringRef path = json ? json->getPath() : llvm::StringRef();
  EXPECT_FALSE(applyConfigOverrides(*m, c.defines, path, sm));
  std::string expected = c.error;
  size_t at = expected.find("FILE");
  if (at != std::string::npos)
    expected.replace(at, 4, path.str());
  EXPECT_EQ(firstError(), expected) << diags;
}

INSTANTIATE_TEST_SUITE_P(
    Config, OverrideErrorTest,
    ::testing::Values(
        OverrideErrorCase{{},
                          R"({"dim": "big"})",
                          "FILE: error: key 'dim': config 'dim' is an int, "
                          "but the JSON value is a string"},
        OverrideErrorCase{{},
                          R"({"dim": 64.5})",
                          "FILE: error: key 'dim': config 'dim' is an int, "
                          "but the JSON value is a float"},
        OverrideErrorCase{{},
                          R"({"use_bias": 1})",
                          "FILE: error: key 'use_bias': config 'use_bias' is "
                          "a bool, but the JSON value is an int"},
        OverrideErrorCase{{},
                          R"({"hidden": [1, 2]})",
                          "FILE: error: key 'hidden': config 'hidden' is an "
                          "int, but the JSON value is an array"},
        OverrideErrorCase{{},
                          R"({"dim": 1,})",
                          "FILE: error: invalid JSON: [1:11, byte=11]: "
                          "Expected object key"},
        OverrideErrorCase{{},
                          R"([1, 2])",
                          "FILE: error: expected a JSON object at top level"},
        OverrideErrorCase{{"n_layers=4"},
                          nullptr,
                          "error: --define of undeclared config 'n_layers'"},
        OverrideErrorCase{{"dim"},
                          nullptr,
                          "error: --define 'dim' must have the form "
                          "NAME=VALUE"},
        OverrideErrorCase{{"dim=abc"},
                          nullptr,
                          "error: --define dim=abc: config 'dim' is an int, "
                          "but 'abc' is a string"},
        OverrideErrorCase{{"dim=2.5"},
                          nullptr,
                          "error: --define dim=2.5: config 'dim' is an int, "
                          "but '2.5' is a float"},
        OverrideErrorCase{{"qk_rope_head_dim=0", "qk_nope_head_dim=0"},
                          nullptr,
                          "test.loom:6:28: error: division by zero in config "
                          "'scale'"}));

TEST_F(FrontendTest, MissingJsonFileIsAnError) {
  ModuleAST *m = parse(kConfigs);
  ASSERT_TRUE(m) << diags;
  EXPECT_FALSE(applyConfigOverrides(*m, {}, "/nonexistent/cfg.json", sm));
  EXPECT_EQ(firstError(), "/nonexistent/cfg.json: error: cannot read file: "
                          "No such file or directory");
}

//===----------------------------------------------------------------------===//
// Dims and attributes
//===----------------------------------------------------------------------===//

TEST_F(FrontendTest, EvaluatesDimsAndAttributes) {
  ModuleAST *m = parse(R"(config n_heads = 4, head_dim = 16, eps = 1e-6
graph g(x: f32[B, n_heads * head_dim, 3]) -> (y: f32[B]) {
  mask causal(b, h, i, j) = j <= i
  y = op(x, shape=[B, n_heads, -1], scale=head_dim ** -0.5, m=causal, s="a")
})");
  ASSERT_TRUE(m) << diags;
  const GraphAST &g = *m->graphs[0];
  std::optional<ConstValue> b = evaluateDim(*m, *g.inputs[0].type.dims[0], &sm);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->kind, ConstValue::Kind::Symbol);
  EXPECT_EQ(b->str, "B");
  std::optional<ConstValue> d = evaluateDim(*m, *g.inputs[0].type.dims[1], &sm);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->intValue, 64);

  const auto &call =
      llvm::cast<CallExpr>(*llvm::cast<AssignStmt>(*g.body[1]).value);
  std::optional<ConstValue> shape =
      evaluateConstant(*m, *call.findKeyword("shape")->value, &g, &sm);
  ASSERT_TRUE(shape) << diags;
  EXPECT_EQ(shape->toString(), "[B, 4, -1]");
  EXPECT_EQ(shape->list[0].kind, ConstValue::Kind::Symbol);
  std::optional<ConstValue> scale =
      evaluateConstant(*m, *call.findKeyword("scale")->value, &g, &sm);
  ASSERT_TRUE(scale);
  EXPECT_DOUBLE_EQ(scale->floatValue, 0.25);
  std::optional<ConstValue> mask =
      evaluateConstant(*m, *call.findKeyword("m")->value, &g, &sm);
  ASSERT_TRUE(mask);
  EXPECT_EQ(mask->kind, ConstValue::Kind::Mask);
  EXPECT_EQ(mask->str, "causal");
  EXPECT_EQ(getSymbolicDims(*m, g).size(), 1u);
  EXPECT_TRUE(checkModule(*m, sm)) << diags;
}

TEST_F(FrontendTest, DimErrors) {
  ModuleAST *m = parse(R"(config eps = 1e-6, dim = 64
graph g(x: f32[eps], y: f32[dim / 2], z: f32[S + 1], w: f32[dim - 65]) {
})");
  ASSERT_TRUE(m) << diags;
  const GraphAST &g = *m->graphs[0];
  EXPECT_FALSE(evaluateDim(*m, *g.inputs[0].type.dims[0], &sm));
  EXPECT_EQ(firstError(), "test.loom:2:16: error: dim 'eps' is not an "
                          "integer (it is float 1e-06)");
  diags.clear();
  EXPECT_FALSE(evaluateDim(*m, *g.inputs[1].type.dims[0], &sm));
  EXPECT_EQ(firstError(), "test.loom:2:29: error: dim 'dim / 2' is not an "
                          "integer (it is float 32.0); use '//' for integer "
                          "division");
  diags.clear();
  EXPECT_FALSE(evaluateDim(*m, *g.inputs[2].type.dims[0], &sm));
  EXPECT_EQ(firstError(), "test.loom:2:46: error: symbolic dim 'S' cannot be "
                          "used in arithmetic; only a bare name is allowed");
  diags.clear();
  EXPECT_FALSE(evaluateDim(*m, *g.inputs[3].type.dims[0], &sm));
  EXPECT_EQ(firstError(),
            "test.loom:2:61: error: dim 'dim - 65' is negative (-1)");
}

} // namespace
