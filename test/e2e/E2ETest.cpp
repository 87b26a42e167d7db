//===- E2ETest.cpp - End-to-end numerics of compiled models -----*- C++ -*-===//
//
// This file checks the whole CPU path against the reference interpreter:
// each test compiles a `.loom` source into a sealed artifact, runs it through
// the runtime's C API on random inputs made at run time (so no constant
// folding can hide a bug), evaluates the same graph with the float64
// interpreter, and compares every output and every state buffer with
// tolerances chosen per dtype. It also checks that the runtime refuses bad
// inputs and missing params with messages that name them.
//
//===----------------------------------------------------------------------===//

#include "test/e2e/RuntimeGlue.h"

#include "compiler/Interpreter/Interpreter.h"
#include "compiler/Pipelines/Compile.h"
#include "compiler/Pipelines/Pipelines.h"
#include "dialects/loom/IR/LoomDialect.h"
#include "frontend/Config.h"
#include "frontend/Importer.h"
#include "frontend/Parser.h"
#include "frontend/Sema.h"
#include "loom/runtime.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace mlir;
namespace interp = mlir::loom::interp;
using interp::Tensor;
using namespace ::loom::e2e;

namespace {

//===----------------------------------------------------------------------===//
// Tolerances
//===----------------------------------------------------------------------===//

/// A result passes when |got - want| <= atol + rtol * |want|. `want` comes
/// from the float64 interpreter, so the bound must absorb only the rounding
/// of the compiled dtype.
struct Tol {
  double rtol;
  double atol;
};

/// f32 results of a handful of correctly rounded operations: each rounding
/// costs at most 2^-24 (6e-8) relative, so a chain of a few stays far below
/// 1e-5. The atol covers results that cancel to about zero.
constexpr Tol kF32{1e-5, 1e-6};
/// f32 transcendentals are not correctly rounded: the polynomial expansions
/// MLIR uses for tanh, erf (gelu) and friends are accurate to a few ulp, and
/// `p ** x` amplifies the error of log(p) by |x|.
constexpr Tol kF32Math{2e-5, 2e-6};
/// f32 sums over hundreds or thousands of terms (long reductions, matmul
/// contractions, models): rounding grows with the number of terms and the
/// order of summation differs from the interpreter's, and sums that cancel
/// lose relative precision, hence the larger atol.
constexpr Tol kF32Sum{1e-4, 1e-4};
/// f64 results differ from the float64 interpreter only by the order of
/// operations and the last ulp of libm.
constexpr Tol kF64{1e-12, 1e-12};

/// Tolerances of one call: per float dtype, plus looser f32 bounds for the
/// outputs named in `f32ByName`. Integers and bools are always exact.
struct Tols {
  Tols() = default;
  Tols(Tol f32) : f32(f32) {}

  Tol f32 = kF32;
  Tol f64 = kF64;
  std::map<std::string, Tol> f32ByName;
};

//===----------------------------------------------------------------------===//
// Host tensors
//===----------------------------------------------------------------------===//

bool isFloat(uint32_t dtype) {
  return dtype == LOOM_DTYPE_F32 || dtype == LOOM_DTYPE_F64;
}

std::string dtypeName(uint32_t dtype) {
  return loom_dtype_name(static_cast<loom_dtype_t>(dtype));
}

int64_t numElements(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

/// Rounds `v` to what a tensor of `dtype` can hold, so the compiled code and
/// the interpreter see exactly the same inputs.
double roundTo(uint32_t dtype, double v) {
  switch (dtype) {
  case LOOM_DTYPE_F32:
    return static_cast<float>(v);
  case LOOM_DTYPE_I32:
  case LOOM_DTYPE_I64:
    return std::trunc(v);
  case LOOM_DTYPE_BOOL:
    return v != 0;
  default:
    return v;
  }
}

Tensor makeTensor(uint32_t dtype, std::vector<int64_t> shape,
                  std::vector<double> data) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data = std::move(data);
  for (double &v : t.data)
    v = roundTo(dtype, v);
  return t;
}

/// Seeded random tensors. Every test seeds its own generator, so a failure
/// reproduces exactly.
class Rng {
public:
  explicit Rng(uint64_t seed) : engine(seed) {}

  /// Floats uniform in [lo, hi]; integers uniform in [lo, hi]; bools a fair
  /// coin.
  Tensor uniform(uint32_t dtype, std::vector<int64_t> shape, double lo = -1,
                 double hi = 1) {
    std::vector<double> data(numElements(shape));
    for (double &v : data)
      v = draw(dtype, lo, hi);
    return makeTensor(dtype, std::move(shape), std::move(data));
  }

  /// Magnitudes in [lo, hi] with a random sign: divisors away from zero.
  Tensor nonzero(uint32_t dtype, std::vector<int64_t> shape, double lo,
                 double hi) {
    Tensor t = uniform(dtype, std::move(shape), lo, hi);
    std::bernoulli_distribution sign(0.5);
    for (double &v : t.data)
      v = sign(engine) ? v : -v;
    return t;
  }

  /// Every element one of `values`, so that ties and exact zeros occur.
  Tensor choice(uint32_t dtype, std::vector<int64_t> shape,
                llvm::ArrayRef<double> values) {
    std::uniform_int_distribution<size_t> pick(0, values.size() - 1);
    std::vector<double> data(numElements(shape));
    for (double &v : data)
      v = values[pick(engine)];
    return makeTensor(dtype, std::move(shape), std::move(data));
  }

private:
  double draw(uint32_t dtype, double lo, double hi) {
    if (dtype == LOOM_DTYPE_BOOL)
      return std::bernoulli_distribution(0.5)(engine);
    if (!isFloat(dtype))
      return static_cast<double>(std::uniform_int_distribution<int64_t>(
          static_cast<int64_t>(lo), static_cast<int64_t>(hi))(engine));
    return std::uniform_real_distribution<double>(lo, hi)(engine);
  }

  std::mt19937_64 engine;
};

//===----------------------------------------------------------------------===//
// Runtime glue
//===----------------------------------------------------------------------===//

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

/// The multi-index of flat position `flat` in a row-major `shape`.
std::string indexString(const std::vector<int64_t> &shape, int64_t flat) {
  std::vector<int64_t> index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  return shapeString(index);
}

//===----------------------------------------------------------------------===//
// Comparison
//===----------------------------------------------------------------------===//

/// Ten significant digits: more than f32 holds; f64 values that close are
/// told apart by the |diff| printed next to them.
std::string formatValue(double v) {
  std::string text;
  llvm::raw_string_ostream(text) << llvm::format("%.10g", v);
  return text;
}

/// Compares `got` with `want` (same dtype and shape, every element within
/// `tol`) and, on failure, reports how many elements differ and the worst
/// one: its index, the two values and the bound it broke.
::testing::AssertionResult allClose(const std::string &what, const Tensor &got,
                                    const Tensor &want, Tol tol) {
  if (got.dtype != want.dtype)
    return ::testing::AssertionFailure()
           << what << ": dtype " << dtypeName(got.dtype) << ", expected "
           << dtypeName(want.dtype);
  if (got.shape != want.shape)
    return ::testing::AssertionFailure()
           << what << ": shape " << shapeString(got.shape) << ", expected "
           << shapeString(want.shape);
  if (!isFloat(want.dtype))
    tol = {0, 0};
  int64_t bad = 0, worst = -1;
  double worstExcess = 0;
  for (size_t i = 0; i < want.data.size(); ++i) {
    // Interpreter results of integer ops are exact; floats are rounded to
    // the output dtype as the compiled code stores them.
    double w = roundTo(want.dtype, want.data[i]);
    double g = got.data[i];
    double excess;
    if (std::isnan(w) || std::isnan(g))
      excess = std::isnan(w) && std::isnan(g) ? 0 : INFINITY;
    else if (std::isinf(w) || std::isinf(g))
      excess = w == g ? 0 : INFINITY;
    else
      excess = std::fabs(g - w) - (tol.atol + tol.rtol * std::fabs(w));
    if (excess <= 0)
      continue;
    ++bad;
    if (worst < 0 || excess > worstExcess) {
      worst = static_cast<int64_t>(i);
      worstExcess = excess;
    }
  }
  if (!bad)
    return ::testing::AssertionSuccess();
  double w = roundTo(want.dtype, want.data[worst]), g = got.data[worst];
  return ::testing::AssertionFailure()
         << what << " " << dtypeName(want.dtype) << shapeString(want.shape)
         << ": " << bad << " of " << want.data.size()
         << " elements differ; worst at " << indexString(want.shape, worst)
         << ": got " << formatValue(g) << ", want " << formatValue(w)
         << " (|diff| " << formatValue(std::fabs(g - w)) << ", allowed "
         << formatValue(tol.atol) << " + " << formatValue(tol.rtol)
         << " * |want|)";
}

//===----------------------------------------------------------------------===//
// Models: one compiled artifact and its reference
//===----------------------------------------------------------------------===//

/// A compiled artifact with its session, next to the imported module the
/// interpreter evaluates and the interpreter's copy of the session state.
/// `run` calls an entry on both sides and compares everything it returns.
class Model {
public:
  Model(OwningOpRef<ModuleOp> reference, loom_artifact_t *artifact)
      : reference(std::move(reference)), artifact(artifact) {}
  ~Model() {
    loom_session_destroy(session);
    loom_artifact_close(artifact);
  }

  /// Creates the session with `params` bound by name (null on success) and
  /// zeroes the interpreter's states, as the runtime does.
  Status start(Tensors params = {}) {
    paramValues = std::move(params);
    if (Status s = startSession(artifact, paramValues, session))
      return s;
    states.clear();
    for (auto func : reference->getOps<func::FuncOp>()) {
      for (unsigned i = 0; i < func.getNumArguments(); ++i) {
        DictionaryAttr attrs = func.getArgAttrDict(i);
        if (attrString(attrs, "loom.role") != "state")
          continue;
        auto type = cast<RankedTensorType>(func.getArgumentTypes()[i]);
        Tensor zero;
        zero.dtype = interp::getDtype(type.getElementType());
        zero.shape.assign(type.getShape().begin(), type.getShape().end());
        zero.data.assign(zero.getNumElements(), 0.0);
        states[attrString(attrs, "loom.binding")] = std::move(zero);
      }
    }
    return nullptr;
  }

  /// Calls `entry` through the runtime only; returns its status.
  Status invoke(const std::string &entry, const Tensors &inputs,
                Tensors *outputs = nullptr) {
    Tensors unused;
    return invokeEntry(session, entry, inputs, outputs ? *outputs : unused);
  }

  /// Calls `entry` with `inputs` on the artifact and in the interpreter,
  /// then compares every output and every state buffer.
  ::testing::AssertionResult run(const std::string &entry,
                                 const Tensors &inputs, const Tols &tols = {}) {
    Tensors got;
    if (Status s = invoke(entry, inputs, &got))
      return ::testing::AssertionFailure()
             << "runtime call of '" << entry << "' failed: " << describe(s);

    auto func = reference->lookupSymbol<func::FuncOp>(entry);
    if (!func)
      return ::testing::AssertionFailure() << "no entry '" << entry << "'";
    FailureOr<std::vector<Tensor>> results;
    if (::testing::AssertionResult r =
            interpretEntry(func, inputs, paramValues, states, results);
        !r)
      return r;

    // States first, so that a failed comparison below leaves the reference
    // in step with the session for the calls that follow.
    unsigned numOutputs = 0;
    for (unsigned r = 0; r < results->size(); ++r) {
      DictionaryAttr attrs = func.getResultAttrDict(r);
      if (attrString(attrs, "loom.role") != "state") {
        ++numOutputs;
        continue;
      }
      // The runtime stores the new state in its dtype; so does the
      // reference, or the next call would start from other values.
      Tensor &want = (*results)[r];
      for (double &v : want.data)
        v = roundTo(want.dtype, v);
      states[attrString(attrs, "loom.binding")] = want;
    }
    for (unsigned r = 0; r < results->size(); ++r) {
      DictionaryAttr attrs = func.getResultAttrDict(r);
      if (attrString(attrs, "loom.role") == "state")
        continue;
      const Tensor &want = (*results)[r];
      std::string name = attrString(attrs, "loom.name");
      auto it = got.find(name);
      if (it == got.end())
        return ::testing::AssertionFailure()
               << "the runtime returned no output '" << name << "'";
      if (auto result = allClose(entry + ": output '" + name + "'", it->second,
                                 want, tolFor(name, want.dtype, tols));
          !result)
        return result;
    }
    if (got.size() != numOutputs)
      return ::testing::AssertionFailure()
             << "the runtime returned " << got.size() << " outputs, expected "
             << numOutputs;

    for (auto &[name, want] : states) {
      const loom_tensor_t *buffer = loom_session_state(session, name.c_str());
      if (!buffer)
        return ::testing::AssertionFailure()
               << "the session has no state '" << name << "'";
      if (auto result =
              allClose(entry + ": state '" + name + "'", fromRuntime(buffer),
                       want, tolFor(name, want.dtype, tols));
          !result)
        return result;
    }
    return ::testing::AssertionSuccess();
  }

  const Tensors &interpreterStates() const { return states; }

  /// Calls `entry` on both sides expecting both to refuse it with `message`
  /// (a failed requirement) and to leave every state as it was.
  ::testing::AssertionResult refuse(const std::string &entry,
                                    const Tensors &inputs,
                                    const std::string &message) {
    Status s = invoke(entry, inputs);
    if (!s)
      return ::testing::AssertionFailure()
             << "the runtime ran '" << entry << "'";
    if (loom_status_message(s.get()) != message)
      return ::testing::AssertionFailure()
             << "the runtime refused '" << entry << "' with " << describe(s);
    auto func = reference->lookupSymbol<func::FuncOp>(entry);
    if (!func)
      return ::testing::AssertionFailure() << "no entry '" << entry << "'";
    FailureOr<std::vector<Tensor>> results;
    ::testing::AssertionResult r =
        interpretEntry(func, inputs, paramValues, states, results);
    if (r)
      return ::testing::AssertionFailure()
             << "the interpreter glue ran '" << entry << "'";
    if (r.message() != message)
      return ::testing::AssertionFailure()
             << "the interpreter glue refused '" << entry
             << "' with: " << r.message();
    for (auto &[name, want] : states) {
      const loom_tensor_t *buffer = loom_session_state(session, name.c_str());
      if (!buffer)
        return ::testing::AssertionFailure()
               << "the session has no state '" << name << "'";
      if (auto result = allClose(entry + ": state '" + name + "'",
                                 fromRuntime(buffer), want, Tol{0, 0});
          !result)
        return result;
    }
    return ::testing::AssertionSuccess();
  }

private:
  static Tol tolFor(const std::string &name, uint32_t dtype, const Tols &tols) {
    if (dtype == LOOM_DTYPE_F64)
      return tols.f64;
    auto it = tols.f32ByName.find(name);
    return it == tols.f32ByName.end() ? tols.f32 : it->second;
  }

  OwningOpRef<ModuleOp> reference;
  loom_artifact_t *artifact = nullptr;
  loom_session_t *session = nullptr;
  Tensors paramValues;
  Tensors states;
};

//===----------------------------------------------------------------------===//
// Fixture
//===----------------------------------------------------------------------===//

/// Replaces every `$T` of `text` with `dtype`, for sources written once and
/// compiled per dtype.
std::string withDtype(std::string text, const std::string &dtype) {
  for (size_t at = text.find("$T"); at != std::string::npos;
       at = text.find("$T", at + dtype.size()))
    text.replace(at, 2, dtype);
  return text;
}

class E2ETest : public ::testing::Test {
protected:
  void SetUp() override {
    const char *tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp && *tmp ? tmp : "/tmp") + "/loom-e2e-XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    ASSERT_NE(mkdtemp(buffer.data()), nullptr) << "cannot create " << pattern;
    dir = buffer.data();
  }

  void TearDown() override {
    if (!dir.empty())
      llvm::sys::fs::remove_directories(dir);
  }

  /// Parses, checks and imports `source` (named `name` in diagnostics),
  /// compiles a copy of it into an artifact under the test's directory and
  /// opens it. On failure, records the diagnostics and returns null.
  std::unique_ptr<Model> compile(const std::string &name,
                                 const std::string &source,
                                 bool hostMatmul = true) {
    MLIRContext &context = getContext();
    std::string diagnostics;
    llvm::raw_string_ostream os(diagnostics);
    llvm::SourceMgr sourceMgr;
    sourceMgr.AddNewSourceBuffer(
        llvm::MemoryBuffer::getMemBufferCopy(source, name + ".loom"),
        llvm::SMLoc());
    sourceMgr.setDiagHandler(
        [](const llvm::SMDiagnostic &d, void *stream) {
          d.print(nullptr, *static_cast<llvm::raw_ostream *>(stream));
        },
        &os);
    SourceMgrDiagnosticHandler handler(sourceMgr, &context, os);

    auto ast = ::loom::frontend::parseModule(sourceMgr);
    if (!ast ||
        !::loom::frontend::applyConfigOverrides(*ast, {}, "", sourceMgr) ||
        !::loom::frontend::checkModule(*ast, sourceMgr)) {
      ADD_FAILURE() << name << ": frontend errors:\n" << diagnostics;
      return nullptr;
    }
    // The interpreter evaluates the module exactly as imported, before any
    // compiler pass: canonicalization and folding are part of what is
    // tested, not of the reference.
    OwningOpRef<ModuleOp> reference =
        ::loom::frontend::importModule(*ast, context, sourceMgr);
    if (!reference) {
      ADD_FAILURE() << name << ": import errors:\n" << diagnostics;
      return nullptr;
    }
    OwningOpRef<ModuleOp> compiled(reference->clone());
    mlir::loom::CompileOptions options;
    options.hostMatmul = hostMatmul;
    options.compilerVersion = "loom-e2e-tests";
    std::string path = dir + "/" + name + ".so";
    std::string unused;
    llvm::raw_string_ostream out(unused);
    if (failed(mlir::loom::compileModule(*compiled, options, out, path))) {
      ADD_FAILURE() << name << ": compilation failed:\n" << diagnostics;
      return nullptr;
    }
    loom_artifact_t *artifact = nullptr;
    if (Status s{loom_artifact_open(path.c_str(), &artifact)}) {
      ADD_FAILURE() << name << ": cannot open the artifact: " << describe(s);
      return nullptr;
    }
    return std::make_unique<Model>(std::move(reference), artifact);
  }

  /// `compile` and then `start` with `params`.
  std::unique_ptr<Model> load(const std::string &name,
                              const std::string &source, Tensors params = {},
                              bool hostMatmul = true) {
    std::unique_ptr<Model> model = compile(name, source, hostMatmul);
    if (!model)
      return nullptr;
    if (Status s = model->start(std::move(params))) {
      ADD_FAILURE() << name << ": cannot create the session: " << describe(s);
      return nullptr;
    }
    return model;
  }

  std::string dir;
};

/// Tests compiled once per dtype; the parameter is a `loom_dtype_t`.
class DtypeTest : public E2ETest,
                  public ::testing::WithParamInterface<uint32_t> {
protected:
  uint32_t dtype() const { return GetParam(); }
  std::string name() const { return dtypeName(GetParam()); }
};

std::string dtypeParamName(const ::testing::TestParamInfo<uint32_t> &info) {
  return dtypeName(info.param);
}

constexpr uint32_t kF32Dtype = LOOM_DTYPE_F32;
constexpr uint32_t kF64Dtype = LOOM_DTYPE_F64;
constexpr uint32_t kI32Dtype = LOOM_DTYPE_I32;
constexpr uint32_t kI64Dtype = LOOM_DTYPE_I64;
constexpr uint32_t kBoolDtype = LOOM_DTYPE_BOOL;

//===----------------------------------------------------------------------===//
// Elementwise arithmetic
//===----------------------------------------------------------------------===//

class ArithmeticTest : public DtypeTest {};

TEST_P(ArithmeticTest, BinaryAndBroadcast) {
  auto model = load("binary_" + name(), withDtype(R"(
graph binary(x: $T[B, 7], y: $T[B, 7], row: $T[7], col: $T[B, 1], s: $T[])
    -> (plus: $T[B, 7], minus: $T[B, 7], times: $T[B, 7], quot: $T[B, 7],
        hi: $T[B, 7], lo: $T[B, 7], nested: $T[B, 7], rows: $T[B, 7],
        cols: $T[B, 7], scal: $T[B, 7], lit: $T[B, 7], ng: $T[B, 7],
        ab: $T[B, 7], outer: $T[B, 7]) {
  plus = x + y
  minus = x - y
  times = x * y
  quot = x / y
  hi = max(x, y)
  lo = min(x, y)
  nested = add(mul(x, y), div(sub(x, y), y))
  rows = x * row - row
  cols = col / y + col
  scal = x * s + s
  lit = x * 3 - 2
  ng = -x
  ab = abs(x)
  outer = col * row
}
)",
                                                  name()));
  ASSERT_TRUE(model);
  Rng rng(1);
  bool fl = isFloat(dtype());
  // Integer products must stay exact in int32 and in the interpreter's
  // doubles; divisors stay away from zero.
  double range = fl ? 3 : 1000, lo = fl ? 0.5 : 1, hi = fl ? 2 : 9;
  for (int64_t b : {1, 13}) {
    Tensors inputs = {{"x", rng.uniform(dtype(), {b, 7}, -range, range)},
                      {"y", rng.nonzero(dtype(), {b, 7}, lo, hi)},
                      {"row", rng.nonzero(dtype(), {7}, lo, hi)},
                      {"col", rng.uniform(dtype(), {b, 1}, -range, range)},
                      {"s", rng.nonzero(dtype(), {}, lo, hi)}};
    EXPECT_TRUE(model->run("binary", inputs)) << "B = " << b;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ArithmeticTest,
                         ::testing::Values(kF32Dtype, kF64Dtype, kI32Dtype,
                                           kI64Dtype),
                         dtypeParamName);

class FloatMathTest : public DtypeTest {};

TEST_P(FloatMathTest, UnaryAndPow) {
  auto model = load("unary_" + name(), withDtype(R"(
graph unary(x: $T[B, 9], p: $T[B, 9], w: $T[B, 9])
    -> (ng: $T[B, 9], ab: $T[B, 9], ex: $T[B, 9], lg: $T[B, 9], th: $T[B, 9],
        sg: $T[B, 9], sl: $T[B, 9], ge: $T[B, 9], rs: $T[B, 9], sq: $T[B, 9],
        pw: $T[B, 9], pwc: $T[B, 9], square: $T[B, 9], negsq: $T[B, 9],
        recip: $T[B, 9], thw: $T[B, 9], sgw: $T[B, 9], slw: $T[B, 9],
        gew: $T[B, 9]) {
  ng = neg(x)
  ab = abs(x)
  ex = exp(x)
  lg = log(p)
  th = tanh(x)
  sg = sigmoid(x)
  sl = silu(x)
  ge = gelu(x)
  rs = rsqrt(p)
  sq = sqrt(p)
  pw = p ** x
  pwc = pow(p, x)
  square = x ** 2
  negsq = -x ** 2
  recip = p ** -1.5
  thw = tanh(w)
  sgw = sigmoid(w)
  slw = silu(w)
  gew = gelu(w)
}
)",
                                                 name()));
  ASSERT_TRUE(model);
  Rng rng(2);
  Tols tols;
  for (const char *out : {"ex", "lg", "th", "sg", "sl", "ge", "rs", "sq", "pw",
                          "pwc", "recip", "thw", "sgw", "slw", "gew"})
    tols.f32ByName[out] = kF32Math;
  for (int64_t b : {1, 11}) {
    // `x` has negative values for `x ** 2` (a pow lowered through log would
    // give NaN); `w` reaches where tanh and sigmoid saturate and a naive
    // exp(-w) overflows.
    Tensors inputs = {{"x", rng.uniform(dtype(), {b, 9}, -4, 4)},
                      {"p", rng.uniform(dtype(), {b, 9}, 0.05, 8)},
                      {"w", rng.uniform(dtype(), {b, 9}, -100, 100)}};
    EXPECT_TRUE(model->run("unary", inputs, tols)) << "B = " << b;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, FloatMathTest,
                         ::testing::Values(kF32Dtype, kF64Dtype),
                         dtypeParamName);

//===----------------------------------------------------------------------===//
// Comparisons, logic, select and casts
//===----------------------------------------------------------------------===//

TEST_F(E2ETest, ComparisonsLogicAndSelect) {
  auto model = load("logic", R"(
graph logic(x: f32[N], y: f32[N], i: i64[N], j: i64[N], p: bool[N], q: bool[N])
    -> (eq: bool[N], ne: bool[N], lt: bool[N], le: bool[N], gt: bool[N],
        ge: bool[N], ieq: bool[N], ine: bool[N], ilt: bool[N], ile: bool[N],
        igt: bool[N], ige: bool[N], band: bool[N], bor: bool[N],
        bnot: bool[N], mixed: bool[N], beq: bool[N], w: f32[N], s: i64[N],
        ws: f32[N], wb: bool[N]) {
  eq = x == y
  ne = x != y
  lt = x < y
  le = x <= y
  gt = x > y
  ge = x >= y
  ieq = eq(i, j)
  ine = ne(i, j)
  ilt = lt(i, j)
  ile = le(i, j)
  igt = gt(i, j)
  ige = ge(i, j)
  band = p and q
  bor = p or q
  bnot = not p
  mixed = (x < y and not p) or (q and i >= 0)
  beq = p == q
  w = where(p, x, y)
  s = select(i < j, i, j * 2)
  ws = where(x > 0.0, x, 0.5)
  wb = where(q, p, not p)
}
)");
  ASSERT_TRUE(model);
  Rng rng(3);
  // Few distinct values, so that equal pairs (and ties in <=, >=) occur.
  const double floats[] = {-1, -0.5, 0, 0.5, 1};
  for (int64_t n : {1, 40}) {
    Tensors inputs = {{"x", rng.choice(kF32Dtype, {n}, floats)},
                      {"y", rng.choice(kF32Dtype, {n}, floats)},
                      {"i", rng.uniform(kI64Dtype, {n}, -3, 3)},
                      {"j", rng.uniform(kI64Dtype, {n}, -3, 3)},
                      {"p", rng.uniform(kBoolDtype, {n})},
                      {"q", rng.uniform(kBoolDtype, {n})}};
    EXPECT_TRUE(model->run("logic", inputs)) << "N = " << n;
  }
}

TEST_F(E2ETest, Casts) {
  auto model = load("casts", R"(
graph casts(x: f32[N], d: f64[N], i: i64[N], k: i32[N], p: bool[N])
    -> (f2i: i64[N], f2k: i32[N], f2d: f64[N], f2b: bool[N], d2f: f32[N],
        d2i: i64[N], d2k: i32[N], i2f: f32[N], i2d: f64[N], i2k: i32[N],
        i2b: bool[N], k2i: i64[N], k2f: f32[N], k2b: bool[N], b2f: f32[N],
        b2i: i64[N], b2k: i32[N], b2d: f64[N], chain: f32[N]) {
  f2i = cast(x, dtype="i64")
  f2k = cast(x, dtype="i32")
  f2d = cast(x, dtype="f64")
  f2b = cast(x, dtype="bool")
  d2f = cast(d, dtype="f32")
  d2i = cast(d, dtype="i64")
  d2k = cast(d, dtype="i32")
  i2f = cast(i, dtype="f32")
  i2d = cast(i, dtype="f64")
  i2k = cast(i, dtype="i32")
  i2b = cast(i, dtype="bool")
  k2i = cast(k, dtype="i64")
  k2f = cast(k, dtype="f32")
  k2b = cast(k, dtype="bool")
  b2f = cast(p, dtype="f32")
  b2i = cast(p, dtype="i64")
  b2k = cast(p, dtype="i32")
  b2d = cast(p, dtype="f64")
  chain = cast(cast(x * 4.0, dtype="i64") + i, dtype="f32") / 4.0
}
)");
  ASSERT_TRUE(model);
  Rng rng(4);
  // Quarters in [-5, 5]: exact zeros, whole numbers and fractions of both
  // signs, so truncation toward zero and `!= 0` are both exercised.
  std::vector<double> quarters;
  for (int q = -20; q <= 20; ++q)
    quarters.push_back(q / 4.0);
  for (int64_t n : {1, 64}) {
    Tensor d = rng.uniform(kF64Dtype, {n}, -1e3, 1e3);
    Tensors inputs = {{"x", rng.choice(kF32Dtype, {n}, quarters)},
                      {"d", d},
                      {"i", rng.uniform(kI64Dtype, {n}, -3, 3)},
                      {"k", rng.uniform(kI32Dtype, {n}, -2, 2)},
                      {"p", rng.uniform(kBoolDtype, {n})}};
    EXPECT_TRUE(model->run("casts", inputs)) << "N = " << n;
  }
}

//===----------------------------------------------------------------------===//
// Reductions and normalizations
//===----------------------------------------------------------------------===//

class ReductionTest : public DtypeTest {};

TEST_P(ReductionTest, SumMeanMaxMin) {
  bool fl = isFloat(dtype());
  // `mean` is for floats only.
  std::string meanOutputs =
      fl ? ",\n me1: $T[B, 5], me2: $T[1, 6, 1], meall: $T[]" : "";
  std::string meanBody = fl ? "  me1 = mean(x, axis=1)\n"
                              "  me2 = mean(x, axes=[0, 2], keepdim=true)\n"
                              "  meall = mean(x)\n"
                            : "";
  auto model = load("reduce_" + name(), withDtype(R"(
graph reduce(x: $T[B, 6, 5], l: $T[B, 3001])
    -> (s1: $T[B, 5], s1k: $T[B, 1, 5], sall: $T[], sax: $T[6], sneg: $T[B, 6],
        mx: $T[B, 6], mnk: $T[B, 6, 1], mxall: $T[], mnax: $T[5], ls: $T[B],
        lmx: $T[B], lmn: $T[B], mxk: $T[1, 6, 1])" + meanOutputs +
                                                      R"() {
  s1 = sum(x, axis=1)
  s1k = sum(x, axis=1, keepdim=true)
  sall = sum(x)
  sax = sum(x, axes=[0, 2])
  sneg = sum(x, axis=-1)
  mx = max(x, axis=2)
  mnk = min(x, axis=-1, keepdim=true)
  mxall = max(x)
  mnax = min(x, axes=[0, 1])
  ls = sum(l, axis=1)
  lmx = max(l, axis=-1)
  lmn = min(l, axis=1)
  mxk = max(x, axes=[-1, 0], keepdim=true)
)" + meanBody + "}\n",
                                                  name()));
  ASSERT_TRUE(model);
  Rng rng(5);
  Tols tols;
  // 3001 terms in `ls`, up to 64 * 30 in the full reductions.
  for (const char *out : {"ls", "sall", "sax", "meall", "me2"})
    tols.f32ByName[out] = kF32Sum;
  double range = fl ? 1 : 1000;
  for (int64_t b : {1, 4, 64}) {
    Tensors inputs = {{"x", rng.uniform(dtype(), {b, 6, 5}, -range, range)},
                      {"l", rng.uniform(dtype(), {b, 3001}, -range, range)}};
    EXPECT_TRUE(model->run("reduce", inputs, tols)) << "B = " << b;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ReductionTest,
                         ::testing::Values(kF32Dtype, kF64Dtype, kI32Dtype,
                                           kI64Dtype),
                         dtypeParamName);

class NormalizationTest : public DtypeTest {};

TEST_P(NormalizationTest, SoftmaxLogSoftmaxRmsNorm) {
  auto model = load("norm_" + name(), withDtype(R"(
graph norm(x: $T[B, S, 16], w: $T[16], big: $T[B, S, 16])
    -> (sm: $T[B, S, 16], sm1: $T[B, S, 16], lsm: $T[B, S, 16],
        lsm0: $T[B, S, 16], rn: $T[B, S, 16], rn2: $T[B, S, 16],
        smbig: $T[B, S, 16], lsmbig: $T[B, S, 16]) {
  sm = softmax(x)
  sm1 = softmax(x, axis=1)
  lsm = log_softmax(x, axis=-1)
  lsm0 = log_softmax(x, axis=0)
  rn = rms_norm(x, w)
  rn2 = rms_norm(x, w, eps=0.5)
  smbig = softmax(big, axis=-1)
  lsmbig = log_softmax(big)
}
)",
                                                name()));
  ASSERT_TRUE(model);
  Rng rng(6);
  // exp, log and rsqrt are in every output.
  Tols tols{kF32Math};
  for (auto [b, s] : {std::pair<int64_t, int64_t>{1, 1}, {3, 7}}) {
    // `big` overflows exp in f32 unless the maximum is subtracted first.
    Tensors inputs = {{"x", rng.uniform(dtype(), {b, s, 16}, -5, 5)},
                      {"w", rng.uniform(dtype(), {16}, -2, 2)},
                      {"big", rng.uniform(dtype(), {b, s, 16}, -300, 300)}};
    EXPECT_TRUE(model->run("norm", inputs, tols))
        << "B = " << b << ", S = " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, NormalizationTest,
                         ::testing::Values(kF32Dtype, kF64Dtype),
                         dtypeParamName);

//===----------------------------------------------------------------------===//
// Matrix products
//===----------------------------------------------------------------------===//

/// A matmul configuration: dtype and whether f32 products call the
/// runtime's GEMM or keep the generated loops.
struct MatmulParam {
  uint32_t dtype;
  bool hostMatmul;
};

class MatmulTest : public E2ETest,
                   public ::testing::WithParamInterface<MatmulParam> {};

TEST_P(MatmulTest, PlainTransposedBatched) {
  MatmulParam param = GetParam();
  std::string dt = dtypeName(param.dtype);
  auto model = load("matmul_" + dt + (param.hostMatmul ? "" : "_codegen"),
                    withDtype(R"(
graph mm(a: $T[M, K], b: $T[K, N], at: $T[K, M], bt: $T[N, K],
         ba: $T[P, M, K], bb: $T[P, K, N], a4: $T[P, 2, M, K],
         b4: $T[1, 2, K, N])
    -> (c: $T[M, N], c2: $T[M, N], cta: $T[M, N], ctb: $T[M, N],
        ctab: $T[M, N], cb: $T[P, M, N], cbl: $T[P, M, N], cbr: $T[P, M, N],
        c4: $T[P, 2, M, N]) {
  c = a @ b
  c2 = matmul(a, b)
  cta = matmul(at, b, transpose_a=true)
  ctb = matmul(a, bt, transpose_b=true)
  ctab = matmul(at, bt, transpose_a=true, transpose_b=true)
  cb = ba @ bb
  cbl = ba @ b
  cbr = a @ bb
  c4 = a4 @ b4
}
)",
                              dt),
                    {}, param.hostMatmul);
  ASSERT_TRUE(model);
  Rng rng(7);
  bool fl = isFloat(param.dtype);
  // Small integers keep every dot product exact.
  double range = fl ? 1 : 20;
  // Contractions up to 128 terms.
  Tols tols{kF32Sum};
  struct Sizes {
    int64_t m, k, n, p;
  };
  for (Sizes s : {Sizes{1, 1, 1, 1}, Sizes{3, 5, 7, 2}, Sizes{33, 64, 17, 3},
                  Sizes{96, 128, 80, 2}, Sizes{4, 0, 3, 2}}) {
    auto r = [&](std::vector<int64_t> shape) {
      return rng.uniform(param.dtype, std::move(shape), -range, range);
    };
    Tensors inputs = {
        {"a", r({s.m, s.k})},          {"b", r({s.k, s.n})},
        {"at", r({s.k, s.m})},         {"bt", r({s.n, s.k})},
        {"ba", r({s.p, s.m, s.k})},    {"bb", r({s.p, s.k, s.n})},
        {"a4", r({s.p, 2, s.m, s.k})}, {"b4", r({1, 2, s.k, s.n})}};
    EXPECT_TRUE(model->run("mm", inputs, tols))
        << "M = " << s.m << ", K = " << s.k << ", N = " << s.n
        << ", P = " << s.p;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, MatmulTest,
                         ::testing::Values(MatmulParam{kF32Dtype, true},
                                           MatmulParam{kF32Dtype, false},
                                           MatmulParam{kF64Dtype, true},
                                           MatmulParam{kI32Dtype, true},
                                           MatmulParam{kI64Dtype, true}),
                         [](const ::testing::TestParamInfo<MatmulParam> &info) {
                           return dtypeName(info.param.dtype) +
                                  (info.param.hostMatmul ? "" : "_codegen");
                         });

class LinearTest : public DtypeTest {};

TEST_P(LinearTest, WithAndWithoutBias) {
  auto model = load("linear_" + name(), withDtype(R"(
graph lin(x: $T[B, 12], x3: $T[B, S, 12], w: $T[20, 12], b: $T[20])
    -> (y: $T[B, 20], yb: $T[B, 20], y3: $T[B, S, 20], y3b: $T[B, S, 20]) {
  y = linear(x, w)
  yb = linear(x, w, b)
  y3 = linear(x3, w)
  y3b = linear(x3, w, b)
}
)",
                                                  name()));
  ASSERT_TRUE(model);
  Rng rng(8);
  double range = isFloat(dtype()) ? 1 : 50;
  for (auto [b, s] : {std::pair<int64_t, int64_t>{1, 1}, {5, 9}}) {
    Tensors inputs = {{"x", rng.uniform(dtype(), {b, 12}, -range, range)},
                      {"x3", rng.uniform(dtype(), {b, s, 12}, -range, range)},
                      {"w", rng.uniform(dtype(), {20, 12}, -range, range)},
                      {"b", rng.uniform(dtype(), {20}, -range, range)}};
    EXPECT_TRUE(model->run("lin", inputs)) << "B = " << b << ", S = " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, LinearTest,
                         ::testing::Values(kF32Dtype, kF64Dtype, kI64Dtype),
                         dtypeParamName);

//===----------------------------------------------------------------------===//
// Data movement and index generation
//===----------------------------------------------------------------------===//

class DataMovementTest : public DtypeTest {};

TEST_P(DataMovementTest, ReshapeTransposeSliceConcatGatherBroadcastIota) {
  auto model = load("move_" + name(), withDtype(R"(
graph move(x: $T[B, 6, 4], y: $T[B, 2, 4], r: $T[4], v: $T[1, 4],
           idx: i64[K], idx32: i32[K], bidx: i64[J], wild: i64[K],
           idx2: i64[K, 2])
    -> (r1: $T[B, 24], r2: $T[B, 3, 2, 4], r3: $T[B, 6, 4], t1: $T[4, B, 6],
        t2: $T[B, 4, 6], s1: $T[B, 2, 4], s2: $T[B, 4, 4], s3: $T[B, 6, 2],
        s4: $T[B, 2, 4], s5: $T[6, 4], c1: $T[B, 8, 4], c2: $T[B, 6, 8],
        c3: $T[6, 4], g0: $T[B, K, 4], g1: $T[B, 6, K], g2: $T[J, 6, 4],
        gc: $T[B, K, 4], b1: $T[B, 6, 4], b2: $T[3, 4], b3: $T[B, 6, 4],
        io: i64[B, 6, 4], io2: i64[5], io3: f32[B, 6, 4], t3: $T[B, 2, 3, 4],
        s6: $T[B, 0, 4], c4: $T[B, 10, 4], g3: $T[B, K, 2, 4],
        io4: i32[B, 6, 4]) {
  r1 = reshape(x, shape=[0, -1])
  r2 = reshape(x, shape=[0, 3, 2, 4])
  r3 = reshape(reshape(x, shape=[-1, 4]), shape=[-1, 6, 4])
  t1 = transpose(x, perm=[2, 0, 1])
  t2 = transpose(x, perm=[0, 2, 1])
  s1 = slice(x, axis=1, start=1, end=5, step=2)
  s2 = slice(x, axis=1, start=-4)
  s3 = slice(x, axis=-1, start=-3, end=-1)
  s4 = slice(x, axis=1, step=4)
  s5 = sum(slice(x, axis=0, start=1), axis=0)
  c1 = concat([x, y], axis=1)
  c2 = concat(x, x, axis=-1)
  c3 = sum(concat([x, x], axis=0), axis=0)
  g0 = gather(x, idx, axis=1)
  g1 = gather(x, idx32, axis=2)
  g2 = gather(x, bidx)
  gc = gather(x, wild, axis=1)
  b1 = broadcast(r, x)
  b2 = broadcast(v, shape=[3, 4])
  b3 = broadcast(v, x) + x
  io = iota(x, axis=1)
  io2 = iota(length=5)
  io3 = iota(x, axis=2, dtype="f32")
  t3 = transpose(r2, perm=[0, 2, 1, 3])
  s6 = slice(x, axis=1, start=5, end=2)
  c4 = concat([y, x, y], axis=1)
  g3 = gather(x, idx2, axis=1)
  io4 = iota(x, axis=0, dtype="i32")
}
)",
                                                name()));
  ASSERT_TRUE(model);
  Rng rng(9);
  double range = isFloat(dtype()) ? 1 : 1000;
  for (auto [b, k] : {std::pair<int64_t, int64_t>{1, 1}, {5, 7}}) {
    Tensors inputs = {{"x", rng.uniform(dtype(), {b, 6, 4}, -range, range)},
                      {"y", rng.uniform(dtype(), {b, 2, 4}, -range, range)},
                      {"r", rng.uniform(dtype(), {4}, -range, range)},
                      {"v", rng.uniform(dtype(), {1, 4}, -range, range)},
                      {"idx", rng.uniform(kI64Dtype, {k}, 0, 5)},
                      {"idx32", rng.uniform(kI32Dtype, {k}, 0, 3)},
                      {"bidx", rng.uniform(kI64Dtype, {2 * b}, 0, b - 1)},
                      // Out of range on both sides: the op clamps them.
                      {"wild", rng.uniform(kI64Dtype, {k}, -3, 9)},
                      {"idx2", rng.uniform(kI64Dtype, {k, 2}, 0, 5)}};
    EXPECT_TRUE(model->run("move", inputs)) << "B = " << b << ", K = " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, DataMovementTest,
                         ::testing::Values(kF32Dtype, kI64Dtype),
                         dtypeParamName);

//===----------------------------------------------------------------------===//
// Rotary embeddings: sin, cos and slices at run-time positions
//===----------------------------------------------------------------------===//

class RotaryTest : public DtypeTest {};

TEST_P(RotaryTest, SinCosAndDynamicSlices) {
  auto model = load("rotary_" + name(), withDtype(R"(
graph rotary(x: $T[B, 16, 4], w: $T[B, 16, 4], ids: i64[B, 16], start: i64,
             len: i32, col: i32)
    -> (sn: $T[B, 16, 4], cs: $T[B, 16, 4], snw: $T[B, 16, 4],
        csw: $T[B, 16, 4], rot: $T[B, 16, 4], span: $T[B, 4],
        win: $T[B, 5, 4], cols: $T[B, 16, 2], idw: i64[B, 3],
        idspan: i64[B]) {
  sn = sin(x)
  cs = cos(x)
  snw = sin(w)
  csw = cos(w)
  half = concat(-slice(x, axis=-1, start=2), slice(x, axis=-1, end=2), axis=-1)
  rot = x * cos(w) + half * sin(w)
  span = sum(dynamic_slice(x, start, len, axis=1), axis=1)
  win = dynamic_slice(x, start, axis=1, size=5)
  cols = dynamic_slice(x, col, axis=-1, size=2)
  idw = dynamic_slice(ids, start, axis=1, size=3)
  idspan = sum(dynamic_slice(ids, start, len, axis=-1), axis=1)
}
)",
                                                  name()));
  ASSERT_TRUE(model);
  Rng rng(13);
  Tols tols;
  for (const char *out : {"sn", "cs", "snw", "csw", "rot"})
    tols.f32ByName[out] = kF32Math;
  auto i64 = [](double v) { return makeTensor(kI64Dtype, {}, {v}); };
  auto i32 = [](double v) { return makeTensor(kI32Dtype, {}, {v}); };
  // In range, at the end, and out of range on both sides: start, length and
  // column all clamp; a length of zero (or below) gives an empty span.
  struct Position {
    double start, len, col;
  };
  const Position positions[] = {{0, 16, 0},  {3, 4, 1},   {11, 9, 2},
                                {15, 1, 3},  {-5, 3, -1}, {16, 2, 7},
                                {40, -3, 9}, {7, 0, 2}};
  for (int64_t b : {1, 3}) {
    for (const Position &p : positions) {
      // `w` reaches the angles a rotary table has at long positions.
      Tensors inputs = {{"x", rng.uniform(dtype(), {b, 16, 4}, -4, 4)},
                        {"w", rng.uniform(dtype(), {b, 16, 4}, -3000, 3000)},
                        {"ids", rng.uniform(kI64Dtype, {b, 16}, -1000, 1000)},
                        {"start", i64(p.start)},
                        {"len", i32(p.len)},
                        {"col", i32(p.col)}};
      EXPECT_TRUE(model->run("rotary", inputs, tols))
          << "B = " << b << ", start = " << p.start << ", len = " << p.len
          << ", col = " << p.col;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, RotaryTest,
                         ::testing::Values(kF32Dtype, kF64Dtype),
                         dtypeParamName);

//===----------------------------------------------------------------------===//
// Symbolic dims: one artifact, many sizes
//===----------------------------------------------------------------------===//

TEST_F(E2ETest, SymbolicDimsOneArtifactManySizes) {
  auto model = load("shapes", R"(
config dim = 16
graph shapes(x: f32[B, S, dim], w: f32[24, dim], m: f32[B, S])
    -> (y: f32[B, S, 24], p: f32[B, S, dim], s: f32[B, dim],
        t: f32[S, B, dim], n: f32[B], att: f32[B, S, dim], z: f32[B, S]) {
  y = linear(x, w)
  p = softmax(x, axis=1)
  s = sum(x, axis=1)
  t = transpose(x, perm=[1, 0, 2])
  n = max(m, axis=1) + mean(m, axis=1)
  att = softmax(matmul(x, x, transpose_b=true) * 0.25) @ x
  z = silu(m) * m
}
)");
  ASSERT_TRUE(model);
  Rng rng(10);
  Tensor w = rng.uniform(kF32Dtype, {24, 16}, -1, 1);
  // Softmax, silu and contractions over up to 33 terms.
  Tols tols{kF32Math};
  for (int64_t b : {0, 1, 3, 17, 64})
    for (int64_t s : {1, 5, 33}) {
      Tensors inputs = {{"x", rng.uniform(kF32Dtype, {b, s, 16}, -1, 1)},
                        {"w", w},
                        {"m", rng.uniform(kF32Dtype, {b, s}, -3, 3)}};
      EXPECT_TRUE(model->run("shapes", inputs, tols))
          << "B = " << b << ", S = " << s;
    }
}

//===----------------------------------------------------------------------===//
// Params, state and entry points
//===----------------------------------------------------------------------===//

TEST_F(E2ETest, ParamsByNameAndPersistentState) {
  Rng rng(11);
  // Prefixes compose from the outside in: the graph's "model.", the call's
  // "layers.N." and the def's own "ffn.". States bind the same way, so the
  // two calls of `ffn` count their calls separately.
  Tensors params = {
      {"model.norm.weight", rng.uniform(kF32Dtype, {8}, 0.5, 1.5)}};
  for (const char *layer : {"model.layers.0.ffn.", "model.layers.1.ffn."}) {
    std::string p = layer;
    params[p + "w1.weight"] = rng.uniform(kF32Dtype, {12, 8}, -0.5, 0.5);
    params[p + "w1.bias"] = rng.uniform(kF32Dtype, {12}, -0.1, 0.1);
    params[p + "w2"] = rng.uniform(kF32Dtype, {8, 12}, -0.5, 0.5);
  }
  auto model = load("state", R"(
config dim = 8, hidden = 12

def ffn(x: f32[N, dim]) -> (y: f32[N, dim]) prefix "ffn." {
  param w1: f32[hidden, dim] = "w1.weight"
  param b1: f32[hidden] = "w1.bias"
  param w2: f32[dim, hidden]
  state calls: i64[]
  calls = calls + 1
  y = linear(silu(linear(x, w1, b1)), w2)
}

graph step(x: f32[4, dim]) -> (y: f32[4, dim], before: f32[4, dim])
    prefix "model." {
  param norm: f32[dim] = "norm.weight"
  state acc: f32[4, dim]
  h = ffn(ffn(rms_norm(x, norm), prefix="layers.0."), prefix="layers.1.")
  acc = acc + h
  y = h + acc
  before = acc
}
)",
                    params);
  ASSERT_TRUE(model);
  // `y` and `before` read `acc` as it was when the call started, although
  // `acc` is assigned first; the runtime must keep that across calls.
  for (int call = 0; call < 3; ++call)
    ASSERT_TRUE(model->run(
        "step", {{"x", rng.uniform(kF32Dtype, {4, 8}, -2, 2)}}, {kF32Math}))
        << "call " << call;
  const Tensors &states = model->interpreterStates();
  for (const char *name :
       {"model.layers.0.ffn.calls", "model.layers.1.ffn.calls"}) {
    ASSERT_EQ(states.count(name), 1u) << name;
    EXPECT_EQ(states.at(name).data, std::vector<double>{3}) << name;
  }
  EXPECT_EQ(states.count("model.acc"), 1u);
}

TEST_F(E2ETest, EntryPointsShareState) {
  auto model = load("entries", R"(
config n = 6

graph push(x: f32[n]) {
  state acc: f32[n]
  acc = acc + x
}

graph scale(x: f32[n], k: f32[]) -> (y: f32[n]) {
  state acc: f32[n]
  state hits: i64[]
  y = acc * k + x
  hits = hits + 1
}

graph read() -> (total: f32[], seen: i64[]) {
  state acc: f32[n]
  state hits: i64[]
  total = sum(acc)
  seen = hits
}
)");
  ASSERT_TRUE(model);
  Rng rng(12);
  auto x = [&] { return rng.uniform(kF32Dtype, {6}, -1, 1); };
  auto k = [&] { return rng.uniform(kF32Dtype, {}, -2, 2); };
  ASSERT_TRUE(model->run("push", {{"x", x()}}));
  ASSERT_TRUE(model->run("scale", {{"x", x()}, {"k", k()}}));
  ASSERT_TRUE(model->run("push", {{"x", x()}}));
  ASSERT_TRUE(model->run("read", {}));
  ASSERT_TRUE(model->run("scale", {{"x", x()}, {"k", k()}}));
  ASSERT_TRUE(model->run("read", {}));
  EXPECT_EQ(model->interpreterStates().at("hits").data, std::vector<double>{2});
}

TEST_F(E2ETest, KvCacheUpdatedAtRunTimePositions) {
  // A KV cache as a state: each call writes its keys at `pos` and reads
  // back through the updated value; a second entry reads the shared cache.
  // Positions past either end clamp, and an update larger than the cache
  // is cut to it.
  auto model = load("kv_cache", R"(
config dim = 8

graph decode(k: f32[B, S, dim], pos: i64)
    -> (recent: f32[4, 2, dim], prefix: f32[4, dim], keys: f32[4, 16, dim]) {
  state cache: f32[4, 16, dim]
  keys = dynamic_update_slice(cache, k, pos, axis=1)
  cache = keys
  recent = dynamic_slice(keys, pos, axis=1, size=2)
  prefix = sum(dynamic_slice(keys, 0, pos + 2, axis=1), axis=1)
}

graph peek(at: i32) -> (window: f32[4, 3, dim], old: f32[dim]) {
  state cache: f32[4, 16, dim]
  window = dynamic_slice(cache, at, axis=1, size=3)
  old = sum(dynamic_slice(cache, at, 1, axis=1), axes=[0, 1])
}
)");
  ASSERT_TRUE(model);
  Rng rng(14);
  auto k = [&](int64_t b, int64_t s) {
    return rng.uniform(kF32Dtype, {b, s, 8}, -1, 1);
  };
  auto pos = [](double v) { return makeTensor(kI64Dtype, {}, {v}); };
  auto at = [](double v) { return makeTensor(kI32Dtype, {}, {v}); };
  // A prompt of 3, then tokens at increasing positions.
  ASSERT_TRUE(model->run("decode", {{"k", k(4, 3)}, {"pos", pos(0)}}));
  ASSERT_TRUE(model->run("decode", {{"k", k(4, 1)}, {"pos", pos(3)}}));
  ASSERT_TRUE(model->run("decode", {{"k", k(4, 2)}, {"pos", pos(4)}}));
  ASSERT_TRUE(model->run("peek", {{"at", at(2)}}));
  // Out of range: the start clamps to 16 - 3 and to 0; an empty update
  // writes nothing.
  ASSERT_TRUE(model->run("decode", {{"k", k(4, 3)}, {"pos", pos(15)}}));
  ASSERT_TRUE(model->run("decode", {{"k", k(4, 2)}, {"pos", pos(-7)}}));
  ASSERT_TRUE(model->run("decode", {{"k", k(4, 0)}, {"pos", pos(5)}}));
  ASSERT_TRUE(model->run("peek", {{"at", at(99)}}));
  // Larger than the cache along the axis and outside it: cut to 4 x 16.
  ASSERT_TRUE(model->run("decode", {{"k", k(5, 20)}, {"pos", pos(6)}}));
  // Smaller outside the axis: only the rows it has are written.
  ASSERT_TRUE(model->run("decode", {{"k", k(2, 3)}, {"pos", pos(9)}}));
  ASSERT_TRUE(model->run("peek", {{"at", at(-1)}}));
}

TEST_F(E2ETest, RequirementsRefuseCallsOnBothSides) {
  // A def's requirement on the graph's inputs, mapped through the call: the
  // compiled artifact and the interpreter glue refuse the same calls with the
  // same message, and neither touches the cache.
  auto model = load("require", R"(
config max_seq_len = 8
def write_at(cache: f32[8, 2], x: f32[S, 2], pos: i64) -> (y: f32[8, 2]) {
  require pos >= 0, pos + S <= max_seq_len
  y = dynamic_update_slice(cache, x, pos, axis=0)
}
graph write(x: f32[T, 2], start_pos: i64) -> (old: f32[8, 2]) {
  require 2 * T != 6
  state cache: f32[max_seq_len, 2]
  old = cache
  cache = write_at(cache, x, start_pos)
}
)");
  ASSERT_TRUE(model);
  Rng rng(16);
  auto x = [&](int64_t rows) {
    return rng.uniform(kF32Dtype, {rows, 2}, -1, 1);
  };
  auto pos = [](double v) { return makeTensor(kI64Dtype, {}, {v}); };
  ASSERT_TRUE(model->run("write", {{"x", x(2)}, {"start_pos", pos(1)}}));
  EXPECT_TRUE(model->refuse(
      "write", {{"x", x(2)}, {"start_pos", pos(7)}},
      "entry 'write': requirement failed: pos + S <= max_seq_len (pos = 7, "
      "S = 2, max_seq_len = 8) [require.loom:4:3]"));
  EXPECT_TRUE(model->refuse("write", {{"x", x(1)}, {"start_pos", pos(-1)}},
                            "entry 'write': requirement failed: pos >= 0 "
                            "(pos = -1) [require.loom:4:3]"));
  EXPECT_TRUE(model->refuse("write", {{"x", x(3)}, {"start_pos", pos(0)}},
                            "entry 'write': requirement failed: 2 * T != 6 "
                            "(T = 3) [require.loom:8:3]"));
  // The limits are accepted, and the session goes on.
  ASSERT_TRUE(model->run("write", {{"x", x(4)}, {"start_pos", pos(4)}}));
  ASSERT_TRUE(model->run("write", {{"x", x(0)}, {"start_pos", pos(8)}}));
}

TEST_F(E2ETest, OutputsAliasingInputsStatesAndEachOther) {
  // Outputs that are an input, another output or a state argument must
  // still come back as their own buffers, and a state set from an input must
  // not alias the caller's tensor. B = 0 gives empty outputs.
  auto model = load("alias", R"(
graph alias(x: f32[B, 4], v: f32[4])
    -> (a: f32[B, 4], b: f32[B, 4], c: f32[B, 4], d: f32[4]) {
  state s: f32[4]
  state t: f32[4]
  a = x
  b = x * 2.0
  c = b
  d = s
  s = v
  t = s + v
}
)");
  ASSERT_TRUE(model);
  Rng rng(16);
  for (int64_t b : {0, 1, 5})
    ASSERT_TRUE(model->run("alias", {{"x", rng.uniform(kF32Dtype, {b, 4})},
                                     {"v", rng.uniform(kF32Dtype, {4})}}))
        << "B = " << b;
}

//===----------------------------------------------------------------------===//
// The models shipped in models/
//===----------------------------------------------------------------------===//

std::string readModel(const std::string &file) {
  auto buffer =
      llvm::MemoryBuffer::getFile(std::string(LOOM_SOURCE_DIR) + "/" + file);
  if (!buffer) {
    ADD_FAILURE() << "cannot read " << file;
    return "";
  }
  return (*buffer)->getBuffer().str();
}

TEST_F(E2ETest, MlpModel) {
  Rng rng(13);
  // Weights scaled by 1/sqrt(fan_in), as an initializer would.
  Tensors params = {
      {"norm.weight", rng.uniform(kF32Dtype, {64}, 0.5, 1.5)},
      {"w1.weight", rng.uniform(kF32Dtype, {256, 64}, -0.125, 0.125)},
      {"w2.weight", rng.uniform(kF32Dtype, {64, 256}, -0.0625, 0.0625)}};
  auto model = load("mlp", readModel("models/mlp.loom"), params);
  ASSERT_TRUE(model);
  // Contractions over 64 and 256 terms after rsqrt and silu.
  for (int64_t b : {1, 5, 32})
    EXPECT_TRUE(model->run(
        "main", {{"x", rng.uniform(kF32Dtype, {b, 64}, -2, 2)}}, {kF32Sum}))
        << "B = " << b;
}

TEST_F(E2ETest, QuickstartModel) {
  Rng rng(14);
  Tensors params = {
      {"block.fc1.weight", rng.uniform(kF32Dtype, {16, 8}, -0.5, 0.5)},
      {"block.fc1.bias", rng.uniform(kF32Dtype, {16}, -0.1, 0.1)},
      {"block.fc2.weight", rng.uniform(kF32Dtype, {8, 16}, -0.5, 0.5)}};
  auto model = load("quickstart", readModel("models/quickstart.loom"), params);
  ASSERT_TRUE(model);
  for (int64_t b : {1, 3, 50})
    EXPECT_TRUE(model->run(
        "main", {{"x", rng.uniform(kF32Dtype, {b, 8}, -1, 1)}}, {kF32Math}))
        << "B = " << b;
}

//===----------------------------------------------------------------------===//
// Errors through the runtime
//===----------------------------------------------------------------------===//

/// Expects `status` to fail with `code` and a message containing every one
/// of `words`.
void expectError(const Status &status, loom_status_code_t code,
                 std::initializer_list<const char *> words) {
  ASSERT_TRUE(status) << "the call succeeded";
  EXPECT_EQ(loom_status_code(status.get()), code) << describe(status);
  std::string message = loom_status_message(status.get());
  for (const char *word : words)
    EXPECT_NE(message.find(word), std::string::npos)
        << "'" << word << "' missing from: " << message;
}

TEST_F(E2ETest, RuntimeRejectsBadInputsAndMissingParams) {
  auto model = compile("errors", R"(
graph g(x: f32[B, 4], y: f32[B, 4]) -> (z: f32[B, 4]) {
  param w: f32[4] = "scale.weight"
  z = x * y * w
}
)");
  ASSERT_TRUE(model);
  Rng rng(15);
  expectError(model->start(), LOOM_STATUS_NOT_FOUND, {"scale.weight"});
  expectError(model->start({{"scale.weight", rng.uniform(kF32Dtype, {5})}}),
              LOOM_STATUS_INVALID_ARGUMENT, {"scale.weight", "shape"});
  expectError(model->start({{"scale.weight", rng.uniform(kF64Dtype, {4})}}),
              LOOM_STATUS_INVALID_ARGUMENT, {"scale.weight", "dtype"});
  ASSERT_FALSE(model->start({{"scale.weight", rng.uniform(kF32Dtype, {4})}}));

  Tensor good = rng.uniform(kF32Dtype, {3, 4});
  expectError(
      model->invoke("g", {{"x", rng.uniform(kF64Dtype, {3, 4})}, {"y", good}}),
      LOOM_STATUS_INVALID_ARGUMENT, {"'x'", "dtype", "f32", "f64"});
  expectError(
      model->invoke("g", {{"x", good}, {"y", rng.uniform(kF32Dtype, {12})}}),
      LOOM_STATUS_INVALID_ARGUMENT, {"'y'", "rank"});
  expectError(
      model->invoke("g", {{"x", rng.uniform(kF32Dtype, {3, 5})}, {"y", good}}),
      LOOM_STATUS_INVALID_ARGUMENT, {"'x'", "shape"});
  expectError(
      model->invoke("g", {{"x", good}, {"y", rng.uniform(kF32Dtype, {2, 4})}}),
      LOOM_STATUS_INVALID_ARGUMENT, {"'B'", "'x'", "'y'", "3", "2"});
  expectError(model->invoke("g", {{"x", good}}), LOOM_STATUS_INVALID_ARGUMENT,
              {"'y'"});
  expectError(model->invoke("h", {{"x", good}, {"y", good}}),
              LOOM_STATUS_NOT_FOUND, {"'h'", "g"});
  // A rejected call leaves the session usable.
  EXPECT_TRUE(model->run("g", {{"x", good}, {"y", good}}));
}

} // namespace
