//===- MlaTest.cpp - DeepSeek-V3 multi-head latent attention ----*- C++ -*-===//
//
// Numerics of models/mla.loom (naive path): the compiled artifact against
// the float64 interpreter (outputs and both caches after every call), and
// against an independent float64 reference written here from the semantics
// of class MLA in DeepSeek-V3's inference/model.py, for a generation: a
// prefill, decode steps, and a chunked prefill.
//
// The runtime glue is shared with E2ETest.cpp (RuntimeGlue.h).
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
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <algorithm>
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
// The tiny config of models/mla.loom (its defaults)
//===----------------------------------------------------------------------===//

constexpr int64_t kDim = 32, kHeads = 2, kKvLora = 16, kNope = 8, kRope = 4,
                  kV = 8, kMaxBatch = 2, kMaxSeq = 16;
constexpr int64_t kQk = kNope + kRope;
constexpr double kTheta = 10000.0, kEps = 1e-6;

//===----------------------------------------------------------------------===//
// Host tensors
//===----------------------------------------------------------------------===//

Tensor makeF32(std::vector<int64_t> shape, std::vector<double> data) {
  Tensor t;
  t.dtype = LOOM_DTYPE_F32;
  t.shape = std::move(shape);
  t.data = std::move(data);
  for (double &v : t.data)
    v = static_cast<float>(v);
  return t;
}

Tensor makeI64(int64_t v) {
  Tensor t;
  t.dtype = LOOM_DTYPE_I64;
  t.data = {static_cast<double>(v)};
  return t;
}

Tensor uniform(std::mt19937_64 &rng, std::vector<int64_t> shape, double lo,
               double hi) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> data(n);
  for (double &v : data)
    v = dist(rng);
  return makeF32(std::move(shape), std::move(data));
}

/// Largest |got - want|, or infinity when the shapes differ or a value is
/// not finite.
double maxAbsDiff(const Tensor &got, const Tensor &want) {
  if (got.shape != want.shape)
    return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < want.data.size(); ++i) {
    double d = std::fabs(got.data[i] - want.data[i]);
    if (!(d <= worst))
      worst = std::isnan(d) ? INFINITY : d;
  }
  return worst;
}

/// Every element within atol + rtol * |want| of the float64 result.
::testing::AssertionResult allClose(const std::string &what, const Tensor &got,
                                    const Tensor &want, double rtol,
                                    double atol) {
  if (got.shape != want.shape || got.dtype != want.dtype)
    return ::testing::AssertionFailure() << what << ": shape or dtype differs";
  for (size_t i = 0; i < want.data.size(); ++i) {
    double w = static_cast<float>(want.data[i]), g = got.data[i];
    if (!(std::fabs(g - w) <= atol + rtol * std::fabs(w)))
      return ::testing::AssertionFailure()
             << what << ": element " << i << " is " << g << ", want " << w;
  }
  return ::testing::AssertionSuccess();
}

/// The compiled artifact and its session, next to the imported module that
/// the interpreter evaluates and the interpreter's copy of the states.
class Model {
public:
  Model(MLIRContext &context, OwningOpRef<ModuleOp> reference,
        loom_artifact_t *artifact)
      : context(context), reference(std::move(reference)), artifact(artifact) {}
  ~Model() {
    loom_session_destroy(session);
    loom_artifact_close(artifact);
  }

  /// A fresh session with `params`; the states start at zero on both sides.
  Status start(Tensors params) {
    paramValues = std::move(params);
    loom_tensor_map_t *m = nullptr;
    if (Status s{loom_tensor_map_create(&m)})
      return s;
    RtMap map(m);
    for (auto &[name, value] : paramValues) {
      RtTensor t = toRuntime(value);
      if (Status s{loom_tensor_map_insert(map.get(), name.c_str(), t.get())})
        return s;
    }
    loom_session_destroy(session);
    session = nullptr;
    if (Status s{loom_session_create(artifact, map.get(), &session)})
      return s;
    states.clear();
    for (auto func : reference->getOps<func::FuncOp>())
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
    return nullptr;
  }

  /// Calls `entry` on the artifact and in the interpreter and compares the
  /// outputs and every state within rtol/atol; the compiled outputs are
  /// returned in `got`.
  ::testing::AssertionResult run(const std::string &entry,
                                 const Tensors &inputs, Tensors &got,
                                 double rtol, double atol) {
    std::vector<const char *> names;
    std::vector<RtTensor> owned;
    std::vector<loom_tensor_t *> tensors;
    for (auto &[name, value] : inputs) {
      names.push_back(name.c_str());
      owned.push_back(toRuntime(value));
      tensors.push_back(owned.back().get());
    }
    loom_tensor_map_t *out = nullptr;
    if (Status s{loom_session_invoke(session, entry.c_str(), names.size(),
                                     names.data(), tensors.data(), &out)})
      return ::testing::AssertionFailure()
             << "runtime call of '" << entry << "' failed: " << describe(s);
    RtMap outMap(out);
    got.clear();
    for (size_t i = 0; i < loom_tensor_map_size(out); ++i)
      got[loom_tensor_map_name_at(out, i)] =
          fromRuntime(loom_tensor_map_tensor_at(out, i));

    auto func = reference->lookupSymbol<func::FuncOp>(entry);
    if (!func)
      return ::testing::AssertionFailure() << "no entry '" << entry << "'";
    FailureOr<std::vector<Tensor>> results;
    if (::testing::AssertionResult r =
            interpretEntry(func, inputs, paramValues, states, results);
        !r)
      return r;
    for (unsigned r = 0; r < results->size(); ++r) {
      DictionaryAttr attrs = func.getResultAttrDict(r);
      Tensor &want = (*results)[r];
      if (attrString(attrs, "loom.role") == "state") {
        for (double &v : want.data)
          v = static_cast<float>(v);
        states[attrString(attrs, "loom.binding")] = want;
        continue;
      }
      std::string name = attrString(attrs, "loom.name");
      auto it = got.find(name);
      if (it == got.end())
        return ::testing::AssertionFailure() << "no output '" << name << "'";
      if (auto result = allClose(entry + ": output '" + name + "'", it->second,
                                 want, rtol, atol);
          !result)
        return result;
    }
    for (auto &[name, want] : states) {
      const loom_tensor_t *buffer = loom_session_state(session, name.c_str());
      if (!buffer)
        return ::testing::AssertionFailure() << "no state '" << name << "'";
      if (auto result = allClose(entry + ": state '" + name + "'",
                                 fromRuntime(buffer), want, rtol, atol);
          !result)
        return result;
    }
    return ::testing::AssertionSuccess();
  }

private:
  MLIRContext &context;
  OwningOpRef<ModuleOp> reference;
  loom_artifact_t *artifact = nullptr;
  loom_session_t *session = nullptr;
  Tensors paramValues;
  Tensors states;
};

MLIRContext &getContext() {
  static MLIRContext *context = [] {
    // E2ETest.cpp registers the same passes in this binary; register them
    // only once.
    if (!PassPipelineInfo::lookup("loom-graph")) {
      registerAllPasses();
      mlir::loom::registerLoomPipelines();
    }
    DialectRegistry registry;
    registerAllDialects(registry);
    registerAllExtensions(registry);
    registry.insert<mlir::loom::LoomDialect>();
    auto *ctx = new MLIRContext(registry);
    ctx->loadAllAvailableDialects();
    return ctx;
  }();
  return *context;
}

//===----------------------------------------------------------------------===//
// The independent float64 reference
//===----------------------------------------------------------------------===//

/// One MLA layer with its per-head caches, in double precision, written from
/// DeepSeek-V3's inference/model.py (attn_impl "naive", q_lora_rank 0, no
/// YaRN). Weights are row-major [out, in] as in the state dict.
class Reference {
public:
  explicit Reference(const Tensors &params)
      : wq(params.at("wq.weight").data), wkvA(params.at("wkv_a.weight").data),
        kvNorm(params.at("kv_norm.weight").data),
        wkvB(params.at("wkv_b.weight").data), wo(params.at("wo.weight").data),
        kCache(kMaxBatch * kMaxSeq * kHeads * kQk, 0.0),
        vCache(kMaxBatch * kMaxSeq * kHeads * kV, 0.0) {}

  /// x is [B, S, dim]; returns [B, S, dim].
  std::vector<double> forward(const Tensor &x, int64_t startPos) {
    int64_t b = x.shape[0], s = x.shape[1], endPos = startPos + s;
    std::vector<double> q(b * s * kHeads * kQk);
    // Projections, RMSNorm and RoPE; the keys and values go to the caches.
    for (int64_t bi = 0; bi < b; ++bi)
      for (int64_t si = 0; si < s; ++si) {
        const double *xr = &x.data[(bi * s + si) * kDim];
        int64_t pos = startPos + si;
        std::vector<double> qr = matvec(wq, xr, kHeads * kQk, kDim);
        for (int64_t h = 0; h < kHeads; ++h)
          rope(&qr[h * kQk + kNope], pos);
        std::copy(qr.begin(), qr.end(), &q[(bi * s + si) * kHeads * kQk]);

        std::vector<double> kv = matvec(wkvA, xr, kKvLora + kRope, kDim);
        double *kPe = &kv[kKvLora];
        rope(kPe, pos);
        double ms = 0;
        for (int64_t c = 0; c < kKvLora; ++c)
          ms += kv[c] * kv[c];
        double inv = 1.0 / std::sqrt(ms / kKvLora + kEps);
        std::vector<double> latent(kKvLora);
        for (int64_t c = 0; c < kKvLora; ++c)
          latent[c] = kv[c] * inv * kvNorm[c];
        std::vector<double> up =
            matvec(wkvB, latent.data(), kHeads * (kNope + kV), kKvLora);
        for (int64_t h = 0; h < kHeads; ++h) {
          double *k = &kCache[((bi * kMaxSeq + pos) * kHeads + h) * kQk];
          double *v = &vCache[((bi * kMaxSeq + pos) * kHeads + h) * kV];
          const double *uh = &up[h * (kNope + kV)];
          for (int64_t d = 0; d < kNope; ++d)
            k[d] = uh[d];
          for (int64_t d = 0; d < kRope; ++d)
            k[kNope + d] = kPe[d];
          for (int64_t d = 0; d < kV; ++d)
            v[d] = uh[kNope + d];
        }
      }
    // Causal softmax attention over cache positions [0, end_pos), then wo.
    double scale = 1.0 / std::sqrt(static_cast<double>(kQk));
    std::vector<double> out(b * s * kDim);
    for (int64_t bi = 0; bi < b; ++bi)
      for (int64_t si = 0; si < s; ++si) {
        std::vector<double> o(kHeads * kV, 0.0);
        for (int64_t h = 0; h < kHeads; ++h) {
          const double *qh = &q[((bi * s + si) * kHeads + h) * kQk];
          int64_t last = std::min(startPos + si, endPos - 1);
          std::vector<double> p(last + 1);
          double top = -INFINITY;
          for (int64_t t = 0; t <= last; ++t) {
            const double *k = &kCache[((bi * kMaxSeq + t) * kHeads + h) * kQk];
            double dot = 0;
            for (int64_t d = 0; d < kQk; ++d)
              dot += qh[d] * k[d];
            p[t] = dot * scale;
            top = std::max(top, p[t]);
          }
          double sum = 0;
          for (double &e : p)
            sum += (e = std::exp(e - top));
          for (int64_t t = 0; t <= last; ++t) {
            const double *v = &vCache[((bi * kMaxSeq + t) * kHeads + h) * kV];
            for (int64_t d = 0; d < kV; ++d)
              o[h * kV + d] += p[t] / sum * v[d];
          }
        }
        std::vector<double> y = matvec(wo, o.data(), kDim, kHeads * kV);
        std::copy(y.begin(), y.end(), &out[(bi * s + si) * kDim]);
      }
    return out;
  }

private:
  /// w [rows, cols] times x [cols].
  static std::vector<double> matvec(const std::vector<double> &w,
                                    const double *x, int64_t rows,
                                    int64_t cols) {
    std::vector<double> y(rows, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        y[r] += w[r * cols + c] * x[c];
    return y;
  }

  /// DeepSeek's apply_rotary_emb: (x[2i] + i x[2i+1]) * e^(i pos freq_i),
  /// freq_i = 1 / theta^(2i / rope_dim).
  static void rope(double *x, int64_t pos) {
    for (int64_t i = 0; i < kRope / 2; ++i) {
      double freq = 1.0 / std::pow(kTheta, 2.0 * i / kRope);
      double angle = static_cast<double>(pos) * freq;
      double re = x[2 * i], im = x[2 * i + 1];
      x[2 * i] = re * std::cos(angle) - im * std::sin(angle);
      x[2 * i + 1] = re * std::sin(angle) + im * std::cos(angle);
    }
  }

  std::vector<double> wq, wkvA, kvNorm, wkvB, wo;
  std::vector<double> kCache, vCache;
};

//===----------------------------------------------------------------------===//
// Fixture
//===----------------------------------------------------------------------===//

class MlaTest : public ::testing::Test {
protected:
  void SetUp() override {
    const char *tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp && *tmp ? tmp : "/tmp") + "/loom-mla-XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    ASSERT_NE(mkdtemp(buffer.data()), nullptr) << "cannot create " << pattern;
    dir = buffer.data();
  }

  void TearDown() override {
    if (!dir.empty())
      llvm::sys::fs::remove_directories(dir);
  }

  /// Parses, imports and compiles models/mla.loom with its default config.
  std::unique_ptr<Model> compile() {
    auto file = llvm::MemoryBuffer::getFile(std::string(LOOM_SOURCE_DIR) +
                                            "/models/mla.loom");
    if (!file) {
      ADD_FAILURE() << "cannot read models/mla.loom";
      return nullptr;
    }
    MLIRContext &context = getContext();
    std::string diagnostics;
    llvm::raw_string_ostream os(diagnostics);
    llvm::SourceMgr sourceMgr;
    sourceMgr.AddNewSourceBuffer(std::move(*file), llvm::SMLoc());
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
      ADD_FAILURE() << "frontend errors:\n" << diagnostics;
      return nullptr;
    }
    OwningOpRef<ModuleOp> reference =
        ::loom::frontend::importModule(*ast, context, sourceMgr);
    if (!reference) {
      ADD_FAILURE() << "import errors:\n" << diagnostics;
      return nullptr;
    }
    OwningOpRef<ModuleOp> compiled(reference->clone());
    mlir::loom::CompileOptions options;
    options.hostMatmul = true;
    options.compilerVersion = "loom-e2e-tests";
    std::string path = dir + "/mla.so";
    std::string unused;
    llvm::raw_string_ostream out(unused);
    if (failed(mlir::loom::compileModule(*compiled, options, out, path))) {
      ADD_FAILURE() << "compilation failed:\n" << diagnostics;
      return nullptr;
    }
    loom_artifact_t *artifact = nullptr;
    if (Status s{loom_artifact_open(path.c_str(), &artifact)}) {
      ADD_FAILURE() << "cannot open the artifact: " << describe(s);
      return nullptr;
    }
    return std::make_unique<Model>(context, std::move(reference), artifact);
  }

  /// Random weights with DeepSeek's state_dict names, about 0.1; wq and
  /// wkv_a larger (2 / sqrt(dim)) so that the scores are of order one and
  /// the softmax, the mask and RoPE all show in the output.
  static Tensors makeParams(std::mt19937_64 &rng) {
    double qk = 2.0 / std::sqrt(static_cast<double>(kDim));
    return {{"wq.weight", uniform(rng, {kHeads * kQk, kDim}, -qk, qk)},
            {"wkv_a.weight", uniform(rng, {kKvLora + kRope, kDim}, -qk, qk)},
            {"kv_norm.weight", uniform(rng, {kKvLora}, 0.5, 1.5)},
            {"wkv_b.weight",
             uniform(rng, {kHeads * (kNope + kV), kKvLora}, -0.1, 0.1)},
            {"wo.weight", uniform(rng, {kDim, kHeads * kV}, -0.1, 0.1)}};
  }

  std::string dir;
};

/// One call of a generation: entry, S and start_pos.
struct Step {
  const char *entry;
  int64_t seqLen;
  int64_t startPos;
};

/// A prompt of 5, four decode steps, then two new tokens at once (decode with
/// S > 1 is causal among them).
const Step kGeneration[] = {{"prefill", 5, 0}, {"decode", 1, 5},
                            {"decode", 1, 6},  {"decode", 1, 7},
                            {"decode", 1, 8},  {"decode", 2, 9}};
/// A chunked prefill (3 then 4 tokens), then two decode steps.
const Step kChunked[] = {
    {"prefill", 3, 0}, {"prefill", 4, 3}, {"decode", 1, 7}, {"decode", 1, 8}};

/// Runs `steps` for batch `batch` in a fresh session, each call checked
/// against the interpreter (outputs and caches) and the C++ reference
/// (outputs); returns the largest |compiled - reference| seen.
double runSteps(Model &model, const Tensors &params, std::mt19937_64 &rng,
                int64_t batch, llvm::ArrayRef<Step> steps, double *maxOut) {
  if (Status s = model.start(params)) {
    ADD_FAILURE() << "cannot create the session: " << describe(s);
    return INFINITY;
  }
  Reference reference(params);
  double worst = 0;
  for (const Step &step : steps) {
    Tensors inputs = {{"x", uniform(rng, {batch, step.seqLen, kDim}, -1, 1)},
                      {"start_pos", makeI64(step.startPos)}};
    Tensors got;
    // Contractions over up to 32 terms after exp, sin/cos and rsqrt.
    EXPECT_TRUE(model.run(step.entry, inputs, got, 1e-4, 1e-5))
        << step.entry << " S = " << step.seqLen
        << " start_pos = " << step.startPos << " B = " << batch;
    if (!got.count("out"))
      return INFINITY;
    Tensor want;
    want.dtype = LOOM_DTYPE_F32;
    want.shape = {batch, step.seqLen, kDim};
    want.data = reference.forward(inputs.at("x"), step.startPos);
    double diff = maxAbsDiff(got.at("out"), want);
    for (double v : want.data)
      *maxOut = std::max(*maxOut, std::fabs(v));
    EXPECT_LE(diff, 1e-4) << step.entry << " S = " << step.seqLen
                          << " start_pos = " << step.startPos
                          << " B = " << batch;
    worst = std::max(worst, diff);
  }
  return worst;
}

TEST_F(MlaTest, PrefillThenDecodeMatchesInterpreterAndReference) {
  auto model = compile();
  ASSERT_TRUE(model);
  std::mt19937_64 rng(31);
  Tensors params = makeParams(rng);
  // B = max_batch_size, then B = 1 (rows [0, 1) of the caches).
  for (int64_t batch : {kMaxBatch, int64_t{1}}) {
    double maxOut = 0;
    double worst = runSteps(*model, params, rng, batch, kGeneration, &maxOut);
    std::printf("mla generation, B = %lld: max |compiled - reference| = %.3g "
                "(max |out| %.3g)\n",
                static_cast<long long>(batch), worst, maxOut);
  }
}

TEST_F(MlaTest, ChunkedPrefillMatchesInterpreterAndReference) {
  auto model = compile();
  ASSERT_TRUE(model);
  std::mt19937_64 rng(32);
  Tensors params = makeParams(rng);
  for (int64_t batch : {kMaxBatch, int64_t{1}}) {
    double maxOut = 0;
    double worst = runSteps(*model, params, rng, batch, kChunked, &maxOut);
    std::printf("mla chunked prefill, B = %lld: max |compiled - reference| = "
                "%.3g (max |out| %.3g)\n",
                static_cast<long long>(batch), worst, maxOut);
  }
}

} // namespace
