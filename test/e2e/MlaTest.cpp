//===- MlaTest.cpp - DeepSeek-V3 multi-head latent attention ----*- C++ -*-===//
//
// Numerics of models/mla.loom, compiled both ways (`MlaMode::Naive`: per-head
// K and V caches; `MlaMode::Absorb`: the latent and rope-key caches and the
// fused runtime kernel), for small configs with and without the low-rank
// query projection and with and without YaRN. Every call of a generation (a
// prefill, decode steps, a chunked prefill) is checked against the float64
// interpreter (outputs and caches) and against an independent float64
// reference written here from the semantics of class MLA and
// precompute_freqs_cis in DeepSeek-V3's inference/model.py. The absorbed
// caches are checked through the up-projection against the naive ones, and
// refused calls must leave the caches alone.
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
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

using namespace mlir;
namespace interp = mlir::loom::interp;
using interp::Tensor;
using mlir::loom::MlaMode;
using namespace ::loom::e2e;

namespace {

//===----------------------------------------------------------------------===//
// Configs
//===----------------------------------------------------------------------===//

/// The configs of models/mla.loom that the tests set, with DeepSeek's names
/// in the defines. Every one is defined explicitly except original_seq_len
/// when YaRN is off, which keeps the model's default (4096).
struct MlaConfig {
  const char *name;
  int64_t dim = 32, heads = 2, qLora = 0, kvLora = 16, nope = 8, rope = 4,
          v = 8, maxBatch = 2, maxSeq = 16;
  /// 0: the model's default.
  int64_t originalSeqLen = 0;
  double theta = 10000.0, factor = 40.0, mscale = 1.0;
  int64_t betaFast = 32, betaSlow = 1;

  int64_t qk() const { return nope + rope; }
  bool yarn() const { return originalSeqLen && maxSeq > originalSeqLen; }

  std::vector<std::string> defines() const {
    std::vector<std::string> list;
    auto define = [&](const char *name, int64_t value) {
      list.push_back(std::string(name) + "=" + std::to_string(value));
    };
    // Float configs take a float literal; %.17g reads back exactly.
    auto defineFloat = [&](const char *name, double value) {
      char text[32];
      std::snprintf(text, sizeof(text), "%.17g", value);
      std::string s = text;
      if (s.find_first_of(".e") == std::string::npos)
        s += ".0";
      list.push_back(std::string(name) + "=" + s);
    };
    define("dim", dim);
    define("n_heads", heads);
    define("q_lora_rank", qLora);
    define("kv_lora_rank", kvLora);
    define("qk_nope_head_dim", nope);
    define("qk_rope_head_dim", rope);
    define("v_head_dim", v);
    define("max_batch_size", maxBatch);
    define("max_seq_len", maxSeq);
    if (originalSeqLen)
      define("original_seq_len", originalSeqLen);
    defineFloat("rope_theta", theta);
    defineFloat("rope_factor", factor);
    defineFloat("mscale", mscale);
    define("beta_fast", betaFast);
    define("beta_slow", betaSlow);
    return list;
  }
};

MlaConfig makeTiny() {
  MlaConfig c;
  c.name = "tiny";
  return c;
}

MlaConfig makeQLora() {
  MlaConfig c;
  c.name = "q_lora";
  c.qLora = 8;
  return c;
}

/// YaRN with d = qk_rope_head_dim = 8 (4 frequencies), base 2, original
/// length 8:
///   corr(n) = d ln(8 / (2 pi n)) / (2 ln 2)
///   corr(beta_fast = 2) = -2.61 -> low = max(floor, 0) = 0
///   corr(beta_slow = 1) =  1.39 -> high = min(ceil, 7) = 2
/// smooth_i = 1 - clamp(i / 2, 0, 1) = 1, 0.5, 0, 0: frequency 0 stays,
/// frequency 1 is blended half and half, 2 and 3 are divided by 4. The
/// softmax scale gains mscale^2 = (0.1 ln 4 + 1)^2 = 1.30.
MlaConfig makeYarn() {
  MlaConfig c;
  c.name = "yarn";
  c.rope = 8;
  c.originalSeqLen = 8;
  c.theta = 2.0;
  c.factor = 4.0;
  c.betaFast = 2;
  c.betaSlow = 1;
  return c;
}

/// The low-rank query with another YaRN ramp: base 3, original length 12,
///   corr(2) = 8 ln(12 / (4 pi)) / (2 ln 3) = -0.17 -> low = 0
///   corr(1) = 8 ln(12 / (2 pi)) / (2 ln 3) =  2.36 -> high = 3
/// smooth_i = 1, 2/3, 1/3, 0 (two blended frequencies), and mscale 0.707
/// (the config value, not the default 1): the softmax scale gains
/// (0.0707 ln 8 + 1)^2 = 1.31.
MlaConfig makeQLoraYarn() {
  MlaConfig c;
  c.name = "q_lora_yarn";
  c.qLora = 8;
  c.rope = 8;
  c.originalSeqLen = 12;
  c.theta = 3.0;
  c.factor = 8.0;
  c.mscale = 0.707;
  c.betaFast = 2;
  c.betaSlow = 1;
  return c;
}

/// gtest prints a failing test's parameter by its name.
void PrintTo(const MlaConfig &config, std::ostream *os) { *os << config.name; }

const MlaConfig kVariants[] = {makeTiny(), makeQLora(), makeYarn(),
                               makeQLoraYarn()};

const char *modeName(MlaMode mode) {
  return mode == MlaMode::Naive ? "naive" : "absorb";
}

//===----------------------------------------------------------------------===//
// Host tensors
//===----------------------------------------------------------------------===//

int64_t numElements(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

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
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> data(numElements(shape));
  for (double &v : data)
    v = dist(rng);
  return makeF32(std::move(shape), std::move(data));
}

/// Largest |got - want|, or infinity when the shapes differ or a value is
/// not finite.
double maxAbsDiff(const Tensor &got, const Tensor &want) {
  if (got.shape != want.shape || got.data.size() != want.data.size())
    return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < want.data.size(); ++i) {
    double d = std::fabs(got.data[i] - want.data[i]);
    if (!(d <= worst))
      worst = std::isnan(d) ? INFINITY : d;
  }
  return worst;
}

/// Every element within atol + rtol * |want| of `want` rounded to f32.
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

/// f32 results after exp, sin/cos, rsqrt and contractions over up to 32
/// terms, against float64.
constexpr double kRtol = 1e-4, kAtol = 1e-5;
/// The bound on |compiled - reference| for outputs and caches.
constexpr double kMaxAbsError = 1e-4;

//===----------------------------------------------------------------------===//
// Compilation, once per variant and mode
//===----------------------------------------------------------------------===//

/// The imported modules (what the interpreter evaluates) and the opened
/// artifacts of this process, kept until the end of the test program: each
/// (variant, mode) is compiled once however many tests use it.
class ModelCache : public ::testing::Environment {
public:
  static ModelCache &get() {
    static ModelCache *cache = static_cast<ModelCache *>(
        ::testing::AddGlobalTestEnvironment(new ModelCache));
    return *cache;
  }

  void TearDown() override {
    for (auto &[key, artifact] : artifacts)
      loom_artifact_close(artifact);
    artifacts.clear();
    imported.clear();
    if (!dir.empty())
      llvm::sys::fs::remove_directories(dir);
    dir.clear();
  }

  /// The `loom` module of `config`, or null after a reported failure.
  ModuleOp getImported(const MlaConfig &config) {
    auto it = imported.find(config.name);
    if (it == imported.end())
      it = imported.emplace(config.name, importModel(config)).first;
    return it->second ? *it->second : ModuleOp();
  }

  /// The artifact of `config` compiled with `mode`, or null after a reported
  /// failure.
  loom_artifact_t *getArtifact(const MlaConfig &config, MlaMode mode) {
    std::string key = std::string(config.name) + "." + modeName(mode);
    auto it = artifacts.find(key);
    if (it == artifacts.end())
      it = artifacts.emplace(key, compileModel(config, mode, key)).first;
    return it->second;
  }

private:
  OwningOpRef<ModuleOp> importModel(const MlaConfig &config) {
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
        !::loom::frontend::applyConfigOverrides(*ast, config.defines(), "",
                                                sourceMgr) ||
        !::loom::frontend::checkModule(*ast, sourceMgr)) {
      ADD_FAILURE() << config.name << ": frontend errors:\n" << diagnostics;
      return nullptr;
    }
    OwningOpRef<ModuleOp> module =
        ::loom::frontend::importModule(*ast, context, sourceMgr);
    if (!module)
      ADD_FAILURE() << config.name << ": import errors:\n" << diagnostics;
    return module;
  }

  loom_artifact_t *compileModel(const MlaConfig &config, MlaMode mode,
                                const std::string &key) {
    ModuleOp module = getImported(config);
    if (!module)
      return nullptr;
    if (dir.empty()) {
      const char *tmp = std::getenv("TMPDIR");
      std::string pattern =
          std::string(tmp && *tmp ? tmp : "/tmp") + "/loom-mla-XXXXXX";
      std::vector<char> buffer(pattern.begin(), pattern.end());
      buffer.push_back('\0');
      if (!mkdtemp(buffer.data())) {
        ADD_FAILURE() << "cannot create " << pattern;
        return nullptr;
      }
      dir = buffer.data();
    }
    MLIRContext &context = getContext();
    std::string diagnostics;
    llvm::raw_string_ostream os(diagnostics);
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &d) {
      os << d.str() << "\n";
      return success();
    });
    OwningOpRef<ModuleOp> compiled(module.clone());
    mlir::loom::CompileOptions options;
    options.hostMatmul = true;
    options.mla = mode;
    options.compilerVersion = "loom-e2e-tests";
    std::string path = dir + "/mla." + key + ".so";
    std::string unused;
    llvm::raw_string_ostream out(unused);
    if (failed(mlir::loom::compileModule(*compiled, options, out, path))) {
      ADD_FAILURE() << key << ": compilation failed:\n" << diagnostics;
      return nullptr;
    }
    loom_artifact_t *artifact = nullptr;
    if (Status s{loom_artifact_open(path.c_str(), &artifact)}) {
      ADD_FAILURE() << key << ": cannot open the artifact: " << describe(s);
      return nullptr;
    }
    return artifact;
  }

  std::string dir;
  std::map<std::string, OwningOpRef<ModuleOp>> imported;
  std::map<std::string, loom_artifact_t *> artifacts;
};

/// Registered before main, as gtest asks of environments.
[[maybe_unused]] const ModelCache *const kModelCache = &ModelCache::get();

//===----------------------------------------------------------------------===//
// Both sides of a call
//===----------------------------------------------------------------------===//

/// A runtime session of one artifact.
class Session {
public:
  ~Session() { loom_session_destroy(session); }

  Status start(loom_artifact_t *artifact, const Tensors &params) {
    return startSession(artifact, params, session);
  }

  /// Calls `entry`; on success `outputs` holds its outputs by name.
  Status invoke(const std::string &entry, const Tensors &inputs,
                Tensors &outputs) {
    return invokeEntry(session, entry, inputs, outputs);
  }

  /// Every state buffer of the session, by name, with its shape.
  Tensors states() const {
    Tensors all;
    const loom_artifact_t *artifact = loom_session_artifact(session);
    for (uint32_t e = 0; e < loom_artifact_entry_count(artifact); ++e) {
      const loom_entry_desc_t *entry = loom_artifact_entry_at(artifact, e);
      for (uint32_t a = 0; a < entry->num_args; ++a)
        if (entry->args[a].role == LOOM_ROLE_STATE)
          if (const loom_tensor_t *t =
                  loom_session_state(session, entry->args[a].binding))
            all[entry->args[a].binding] = fromRuntime(t);
    }
    return all;
  }

private:
  loom_session_t *session = nullptr;
};

/// The float64 interpreter on the imported module, with its own copy of the
/// states (the naive layout, rounded to f32 after each call as the compiled
/// caches are).
class Interpreted {
public:
  Interpreted(ModuleOp module, const Tensors &params)
      : module(module), params(params) {
    for (auto func : module.getOps<func::FuncOp>())
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

  /// Evaluates `entry`; `outputs` gets its outputs by name. A refused call
  /// fails with the requirement's message.
  ::testing::AssertionResult call(const std::string &entry,
                                  const Tensors &inputs, Tensors &outputs) {
    auto func = module.lookupSymbol<func::FuncOp>(entry);
    if (!func)
      return ::testing::AssertionFailure() << "no entry '" << entry << "'";
    FailureOr<std::vector<Tensor>> results;
    if (::testing::AssertionResult r =
            interpretEntry(func, inputs, params, states, results);
        !r)
      return r;
    outputs.clear();
    for (unsigned r = 0; r < results->size(); ++r) {
      DictionaryAttr attrs = func.getResultAttrDict(r);
      Tensor &value = (*results)[r];
      if (attrString(attrs, "loom.role") == "state") {
        for (double &v : value.data)
          v = static_cast<float>(v);
        states[attrString(attrs, "loom.binding")] = std::move(value);
      } else {
        outputs[attrString(attrs, "loom.name")] = std::move(value);
      }
    }
    return ::testing::AssertionSuccess();
  }

  const Tensors &getStates() const { return states; }

private:
  ModuleOp module;
  Tensors params;
  Tensors states;
};

//===----------------------------------------------------------------------===//
// The independent float64 reference
//===----------------------------------------------------------------------===//

/// One MLA layer with its per-head caches, in double precision, written from
/// DeepSeek-V3's inference/model.py (class MLA with attn_impl "naive",
/// precompute_freqs_cis, apply_rotary_emb, RMSNorm). Weights are row-major
/// [out, in] as in the state dict. Unlike DeepSeek, whose mask covers only a
/// prefill at position 0, query s of a chunk sees the cached positions
/// t <= start_pos + s, as the model specifies.
class Reference {
public:
  Reference(const MlaConfig &config, const Tensors &params)
      : c(config), freqs(ropeFreqs(config)), scale(softmaxScale(config)),
        kvNorm(params.at("kv_norm.weight").data),
        wkvA(params.at("wkv_a.weight").data),
        wkvB(params.at("wkv_b.weight").data), wo(params.at("wo.weight").data),
        kCache(c.maxBatch * c.maxSeq * c.heads * c.qk(), 0.0),
        vCache(c.maxBatch * c.maxSeq * c.heads * c.v, 0.0) {
    if (c.qLora) {
      wqA = params.at("wq_a.weight").data;
      qNorm = params.at("q_norm.weight").data;
      wqB = params.at("wq_b.weight").data;
    } else {
      wq = params.at("wq.weight").data;
    }
  }

  /// The YaRN ramp of precompute_freqs_cis: smooth_i for i in [0, d/2), 1
  /// where the frequency stays and 0 where it is divided by rope_factor
  /// (all 1 without YaRN).
  static std::vector<double> yarnSmooth(const MlaConfig &c) {
    std::vector<double> smooth(c.rope / 2, 1.0);
    if (!c.yarn())
      return smooth;
    double d = static_cast<double>(c.rope);
    auto corr = [&](double rotations) {
      return d *
             std::log(static_cast<double>(c.originalSeqLen) /
                      (rotations * 2 * M_PI)) /
             (2 * std::log(c.theta));
    };
    double low = std::max(std::floor(corr(c.betaFast)), 0.0);
    double high = std::min(std::ceil(corr(c.betaSlow)), d - 1);
    if (low == high)
      high += 0.001;
    for (int64_t i = 0; i < c.rope / 2; ++i)
      smooth[i] = 1 - std::clamp((i - low) / (high - low), 0.0, 1.0);
    return smooth;
  }

  /// freq_i = 1 / theta^(2i / d), blended with freq_i / rope_factor by the
  /// YaRN ramp.
  static std::vector<double> ropeFreqs(const MlaConfig &c) {
    std::vector<double> smooth = yarnSmooth(c), freqs(c.rope / 2);
    for (int64_t i = 0; i < c.rope / 2; ++i) {
      double f = 1.0 / std::pow(c.theta, 2.0 * i / c.rope);
      freqs[i] = f / c.factor * (1 - smooth[i]) + f * smooth[i];
    }
    return freqs;
  }

  /// qk_head_dim^-0.5, times mscale^2 under YaRN.
  static double softmaxScale(const MlaConfig &c) {
    double scale = 1.0 / std::sqrt(static_cast<double>(c.qk()));
    if (c.yarn()) {
      double mscale = 0.1 * c.mscale * std::log(c.factor) + 1.0;
      scale *= mscale * mscale;
    }
    return scale;
  }

  /// x is [B, S, dim]; returns [B, S, dim].
  std::vector<double> forward(const Tensor &x, int64_t startPos) {
    int64_t b = x.shape[0], s = x.shape[1], qk = c.qk();
    std::vector<double> q(b * s * c.heads * qk);
    // Projections, RMSNorm and RoPE; the keys and values go to the caches.
    for (int64_t bi = 0; bi < b; ++bi)
      for (int64_t si = 0; si < s; ++si) {
        const double *xr = &x.data[(bi * s + si) * c.dim];
        int64_t pos = startPos + si;
        std::vector<double> qr;
        if (c.qLora) {
          std::vector<double> qa = matvec(wqA, xr, c.qLora, c.dim);
          rmsNorm(qa, qNorm);
          qr = matvec(wqB, qa.data(), c.heads * qk, c.qLora);
        } else {
          qr = matvec(wq, xr, c.heads * qk, c.dim);
        }
        for (int64_t h = 0; h < c.heads; ++h)
          rope(&qr[h * qk + c.nope], pos);
        std::copy(qr.begin(), qr.end(), &q[(bi * s + si) * c.heads * qk]);

        std::vector<double> kv = matvec(wkvA, xr, c.kvLora + c.rope, c.dim);
        std::vector<double> kPe(kv.begin() + c.kvLora, kv.end());
        rope(kPe.data(), pos);
        kv.resize(c.kvLora);
        rmsNorm(kv, kvNorm);
        std::vector<double> up =
            matvec(wkvB, kv.data(), c.heads * (c.nope + c.v), c.kvLora);
        for (int64_t h = 0; h < c.heads; ++h) {
          double *k = &kCache[((bi * c.maxSeq + pos) * c.heads + h) * qk];
          double *v = &vCache[((bi * c.maxSeq + pos) * c.heads + h) * c.v];
          const double *uh = &up[h * (c.nope + c.v)];
          std::copy(uh, uh + c.nope, k);
          std::copy(kPe.begin(), kPe.end(), k + c.nope);
          std::copy(uh + c.nope, uh + c.nope + c.v, v);
        }
      }
    // Causal softmax attention over the cached positions, then wo.
    std::vector<double> out(b * s * c.dim);
    for (int64_t bi = 0; bi < b; ++bi)
      for (int64_t si = 0; si < s; ++si) {
        std::vector<double> o(c.heads * c.v, 0.0);
        int64_t last = startPos + si;
        for (int64_t h = 0; h < c.heads; ++h) {
          const double *qh = &q[((bi * s + si) * c.heads + h) * qk];
          std::vector<double> p(last + 1);
          double top = -INFINITY;
          for (int64_t t = 0; t <= last; ++t) {
            const double *k = &kCache[((bi * c.maxSeq + t) * c.heads + h) * qk];
            double dot = 0;
            for (int64_t d = 0; d < qk; ++d)
              dot += qh[d] * k[d];
            p[t] = dot * scale;
            top = std::max(top, p[t]);
          }
          double sum = 0;
          for (double &e : p)
            sum += (e = std::exp(e - top));
          for (int64_t t = 0; t <= last; ++t) {
            const double *v =
                &vCache[((bi * c.maxSeq + t) * c.heads + h) * c.v];
            for (int64_t d = 0; d < c.v; ++d)
              o[h * c.v + d] += p[t] / sum * v[d];
          }
        }
        std::vector<double> y = matvec(wo, o.data(), c.dim, c.heads * c.v);
        std::copy(y.begin(), y.end(), &out[(bi * s + si) * c.dim]);
      }
    return out;
  }

  /// The naive caches: k [MB, T, H, qk_head_dim], v [MB, T, H, v_head_dim].
  Tensor keyCache() const {
    return wrap({c.maxBatch, c.maxSeq, c.heads, c.qk()}, kCache);
  }
  Tensor valueCache() const {
    return wrap({c.maxBatch, c.maxSeq, c.heads, c.v}, vCache);
  }

private:
  static Tensor wrap(std::vector<int64_t> shape, std::vector<double> data) {
    Tensor t;
    t.dtype = LOOM_DTYPE_F32;
    t.shape = std::move(shape);
    t.data = std::move(data);
    return t;
  }

  /// w [rows, cols] times x [cols].
  static std::vector<double> matvec(const std::vector<double> &w,
                                    const double *x, int64_t rows,
                                    int64_t cols) {
    std::vector<double> y(rows, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < cols; ++i)
        y[r] += w[r * cols + i] * x[i];
    return y;
  }

  /// RMSNorm: x * rsqrt(mean(x^2) + eps) * weight, eps 1e-6.
  static void rmsNorm(std::vector<double> &x,
                      const std::vector<double> &weight) {
    double ms = 0;
    for (double e : x)
      ms += e * e;
    double inv = 1.0 / std::sqrt(ms / x.size() + 1e-6);
    for (size_t i = 0; i < x.size(); ++i)
      x[i] *= inv * weight[i];
  }

  /// apply_rotary_emb: (x[2i] + i x[2i+1]) * e^(i pos freq_i).
  void rope(double *x, int64_t pos) const {
    for (int64_t i = 0; i < c.rope / 2; ++i) {
      double angle = static_cast<double>(pos) * freqs[i];
      double re = x[2 * i], im = x[2 * i + 1];
      x[2 * i] = re * std::cos(angle) - im * std::sin(angle);
      x[2 * i + 1] = re * std::sin(angle) + im * std::cos(angle);
    }
  }

  MlaConfig c;
  std::vector<double> freqs;
  double scale;
  std::vector<double> wq, wqA, qNorm, wqB, kvNorm, wkvA, wkvB, wo;
  std::vector<double> kCache, vCache;
};

/// The naive caches that absorbed caches stand for: k_cache[b, t, h] =
/// concat(wkv_b[h, :nope] kv_cache[b, t], pe_cache[b, t]) and v_cache[b, t,
/// h] = wkv_b[h, nope:] kv_cache[b, t], in float64.
std::pair<Tensor, Tensor> upProject(const MlaConfig &c, const Tensor &kvCache,
                                    const Tensor &peCache, const Tensor &wkvB) {
  Tensor k, v;
  k.dtype = v.dtype = LOOM_DTYPE_F32;
  k.shape = {c.maxBatch, c.maxSeq, c.heads, c.qk()};
  v.shape = {c.maxBatch, c.maxSeq, c.heads, c.v};
  k.data.assign(numElements(k.shape), 0.0);
  v.data.assign(numElements(v.shape), 0.0);
  for (int64_t row = 0; row < c.maxBatch * c.maxSeq; ++row) {
    const double *latent = &kvCache.data[row * c.kvLora];
    const double *pe = &peCache.data[row * c.rope];
    for (int64_t h = 0; h < c.heads; ++h) {
      double *kh = &k.data[(row * c.heads + h) * c.qk()];
      double *vh = &v.data[(row * c.heads + h) * c.v];
      for (int64_t d = 0; d < c.nope + c.v; ++d) {
        const double *w = &wkvB.data[(h * (c.nope + c.v) + d) * c.kvLora];
        double dot = 0;
        for (int64_t i = 0; i < c.kvLora; ++i)
          dot += w[i] * latent[i];
        (d < c.nope ? kh[d] : vh[d - c.nope]) = dot;
      }
      std::copy(pe, pe + c.rope, kh + c.nope);
    }
  }
  return {std::move(k), std::move(v)};
}

//===----------------------------------------------------------------------===//
// Fixture
//===----------------------------------------------------------------------===//

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
/// A chunked prefill (3 then 4 tokens), then decode steps.
const Step kChunked[] = {{"prefill", 3, 0},
                         {"prefill", 4, 3},
                         {"decode", 1, 7},
                         {"decode", 1, 8},
                         {"decode", 1, 9}};

/// The largest errors of one mode over a sequence of calls.
struct Errors {
  double vsReference = 0;
  double vsInterpreter = 0;
  double cachesVsReference = 0;
  /// The largest |out| of the reference, for scale.
  double maxOut = 0;
};

class MlaTest : public ::testing::TestWithParam<MlaConfig> {
protected:
  /// Random weights with DeepSeek's state_dict names, about 0.1; the query
  /// and wkv_a larger so that the scores are of order one and the softmax,
  /// the mask and RoPE all show in the output.
  Tensors makeParams(std::mt19937_64 &rng) const {
    const MlaConfig &c = GetParam();
    double in = 2.0 / std::sqrt(static_cast<double>(c.dim));
    Tensors params;
    if (c.qLora) {
      double lora = 1.5 / std::sqrt(static_cast<double>(c.qLora));
      params["wq_a.weight"] = uniform(rng, {c.qLora, c.dim}, -in, in);
      params["q_norm.weight"] = uniform(rng, {c.qLora}, 0.5, 1.5);
      params["wq_b.weight"] =
          uniform(rng, {c.heads * c.qk(), c.qLora}, -lora, lora);
    } else {
      params["wq.weight"] = uniform(rng, {c.heads * c.qk(), c.dim}, -in, in);
    }
    params["wkv_a.weight"] = uniform(rng, {c.kvLora + c.rope, c.dim}, -in, in);
    params["kv_norm.weight"] = uniform(rng, {c.kvLora}, 0.5, 1.5);
    params["wkv_b.weight"] =
        uniform(rng, {c.heads * (c.nope + c.v), c.kvLora}, -0.1, 0.1);
    params["wo.weight"] = uniform(rng, {c.dim, c.heads * c.v}, -0.1, 0.1);
    return params;
  }

  /// Both artifacts of the variant, compiled on first use.
  bool getArtifacts(loom_artifact_t *&naive, loom_artifact_t *&absorb) {
    ModelCache &cache = ModelCache::get();
    naive = cache.getArtifact(GetParam(), MlaMode::Naive);
    absorb = cache.getArtifact(GetParam(), MlaMode::Absorb);
    return naive && absorb;
  }

  /// Runs `steps` with batch `batch` on fresh naive and absorbed sessions,
  /// the interpreter and the reference, all on the same inputs, and checks
  /// after each call: both outputs against the interpreter and the
  /// reference; the naive caches against the interpreter's and the
  /// reference's; the absorbed caches, up-projected, against the naive
  /// session's and the interpreter's.
  void runSteps(llvm::ArrayRef<Step> steps, int64_t batch, uint64_t seed,
                Errors &naiveErrors, Errors &absorbErrors,
                double &crossModeCaches) {
    const MlaConfig &c = GetParam();
    loom_artifact_t *naiveArtifact, *absorbArtifact;
    ASSERT_TRUE(getArtifacts(naiveArtifact, absorbArtifact))
        << "no artifacts (the first test to compile them says why)";
    ModuleOp module = ModelCache::get().getImported(c);
    ASSERT_TRUE(module);
    std::mt19937_64 rng(seed);
    Tensors params = makeParams(rng);
    Session naive, absorb;
    if (Status s = naive.start(naiveArtifact, params))
      FAIL() << "cannot create the naive session: " << describe(s);
    if (Status s = absorb.start(absorbArtifact, params))
      FAIL() << "cannot create the absorbed session: " << describe(s);
    Interpreted interpreter(module, params);
    Reference reference(c, params);
    const Tensor &wkvB = params.at("wkv_b.weight");

    for (const Step &step : steps) {
      SCOPED_TRACE(::testing::Message()
                   << c.name << " " << step.entry << " S = " << step.seqLen
                   << " start_pos = " << step.startPos << " B = " << batch);
      Tensors inputs = {{"x", uniform(rng, {batch, step.seqLen, c.dim}, -1, 1)},
                        {"start_pos", makeI64(step.startPos)}};
      Tensors want;
      ASSERT_TRUE(interpreter.call(step.entry, inputs, want));
      Tensor expected;
      expected.dtype = LOOM_DTYPE_F32;
      expected.shape = {batch, step.seqLen, c.dim};
      expected.data = reference.forward(inputs.at("x"), step.startPos);
      const Tensors &interpStates = interpreter.getStates();

      Tensors naiveStates, absorbStates;
      for (MlaMode mode : {MlaMode::Naive, MlaMode::Absorb}) {
        SCOPED_TRACE(modeName(mode));
        Session &session = mode == MlaMode::Naive ? naive : absorb;
        Errors &errors = mode == MlaMode::Naive ? naiveErrors : absorbErrors;
        Tensors got;
        if (Status s = session.invoke(step.entry, inputs, got))
          FAIL() << "runtime call failed: " << describe(s);
        ASSERT_EQ(got.count("out"), 1u);
        const Tensor &out = got.at("out");
        EXPECT_TRUE(allClose("out", out, want.at("out"), kRtol, kAtol));
        errors.vsInterpreter =
            std::max(errors.vsInterpreter, maxAbsDiff(out, want.at("out")));
        double diff = maxAbsDiff(out, expected);
        EXPECT_LE(diff, kMaxAbsError) << "out against the reference";
        errors.vsReference = std::max(errors.vsReference, diff);
        for (double value : expected.data)
          errors.maxOut = std::max(errors.maxOut, std::fabs(value));

        Tensors states = session.states();
        Tensor kCache, vCache;
        if (mode == MlaMode::Naive) {
          ASSERT_EQ(states.size(), 2u);
          ASSERT_TRUE(states.count("k_cache") && states.count("v_cache"));
          kCache = states.at("k_cache");
          vCache = states.at("v_cache");
          naiveStates = states;
        } else {
          // Only the latent and the rope key are cached.
          ASSERT_EQ(states.size(), 2u);
          ASSERT_TRUE(states.count("kv_cache") && states.count("pe_cache"));
          EXPECT_EQ(states.at("kv_cache").shape,
                    (std::vector<int64_t>{c.maxBatch, c.maxSeq, c.kvLora}));
          EXPECT_EQ(states.at("pe_cache").shape,
                    (std::vector<int64_t>{c.maxBatch, c.maxSeq, c.rope}));
          std::tie(kCache, vCache) =
              upProject(c, states.at("kv_cache"), states.at("pe_cache"), wkvB);
          absorbStates = {{"k_cache", kCache}, {"v_cache", vCache}};
        }
        EXPECT_TRUE(allClose("k_cache", kCache, interpStates.at("k_cache"),
                             kRtol, kAtol));
        EXPECT_TRUE(allClose("v_cache", vCache, interpStates.at("v_cache"),
                             kRtol, kAtol));
        double cacheDiff = std::max(maxAbsDiff(kCache, reference.keyCache()),
                                    maxAbsDiff(vCache, reference.valueCache()));
        EXPECT_LE(cacheDiff, kMaxAbsError) << "caches against the reference";
        errors.cachesVsReference =
            std::max(errors.cachesVsReference, cacheDiff);
      }
      // The same steps on the same inputs leave the same caches in both
      // layouts.
      for (const char *name : {"k_cache", "v_cache"}) {
        double diff = maxAbsDiff(absorbStates.at(name), naiveStates.at(name));
        EXPECT_LE(diff, kMaxAbsError) << name << ": absorbed against naive";
        crossModeCaches = std::max(crossModeCaches, diff);
      }
    }
  }

  /// Runs `steps` for B = max_batch_size and B = 1 and prints the largest
  /// errors per mode.
  void checkSequence(const char *what, llvm::ArrayRef<Step> steps,
                     uint64_t seed) {
    const MlaConfig &c = GetParam();
    Errors naive, absorb;
    double crossModeCaches = 0;
    for (int64_t batch : {c.maxBatch, int64_t{1}}) {
      runSteps(steps, batch, seed + batch, naive, absorb, crossModeCaches);
      if (HasFatalFailure())
        return;
    }
    for (MlaMode mode : {MlaMode::Naive, MlaMode::Absorb}) {
      const Errors &e = mode == MlaMode::Naive ? naive : absorb;
      std::printf("mla %s %s %s: max |out - reference| = %.3g, max |out - "
                  "interpreter| = %.3g, max |caches - reference| = %.3g "
                  "(max |out| %.3g)\n",
                  c.name, modeName(mode), what, e.vsReference, e.vsInterpreter,
                  e.cachesVsReference, e.maxOut);
    }
    std::printf("mla %s %s: max |up-projected absorbed caches - naive "
                "caches| = %.3g\n",
                c.name, what, crossModeCaches);
  }
};

/// The variants cover what they claim: the low-rank query params, and under
/// YaRN a ramp with unchanged, divided and blended frequencies and a larger
/// softmax scale; the fused kernel is used only by the absorbed artifact.
TEST_P(MlaTest, VariantIsWhatItClaims) {
  const MlaConfig &c = GetParam();
  std::vector<double> smooth = Reference::yarnSmooth(c);
  if (c.yarn()) {
    EXPECT_TRUE(llvm::is_contained(smooth, 1.0)) << "no unchanged frequency";
    EXPECT_TRUE(llvm::is_contained(smooth, 0.0)) << "no divided frequency";
    EXPECT_TRUE(llvm::any_of(smooth, [](double s) { return s > 0 && s < 1; }))
        << "no blended frequency";
    EXPECT_GT(Reference::softmaxScale(c),
              1.01 / std::sqrt(static_cast<double>(c.qk())));
  } else {
    EXPECT_TRUE(llvm::all_of(smooth, [](double s) { return s == 1; }));
  }

  loom_artifact_t *naive, *absorb;
  ASSERT_TRUE(getArtifacts(naive, absorb))
      << "no artifacts (the first test to compile them says why)";
  auto imports = [](loom_artifact_t *artifact) {
    std::vector<std::string> names;
    for (uint32_t i = 0; i < loom_artifact_import_count(artifact); ++i)
      names.push_back(loom_artifact_import_at(artifact, i));
    return names;
  };
  EXPECT_TRUE(llvm::is_contained(imports(absorb), "loom_rt_mla_decode_f32"));
  EXPECT_FALSE(llvm::is_contained(imports(naive), "loom_rt_mla_decode_f32"));

  uint32_t entry;
  if (Status s{loom_artifact_entry_find(naive, "prefill", &entry)})
    FAIL() << describe(s);
  std::vector<std::string> params;
  const loom_entry_desc_t *desc = loom_artifact_entry_at(naive, entry);
  for (uint32_t a = 0; a < desc->num_args; ++a)
    if (desc->args[a].role == LOOM_ROLE_PARAM)
      params.push_back(desc->args[a].binding);
  std::sort(params.begin(), params.end());
  std::vector<std::string> expected =
      c.qLora
          ? std::vector<std::string>{"kv_norm.weight", "q_norm.weight",
                                     "wkv_a.weight",   "wkv_b.weight",
                                     "wo.weight",      "wq_a.weight",
                                     "wq_b.weight"}
          : std::vector<std::string>{"kv_norm.weight", "wkv_a.weight",
                                     "wkv_b.weight", "wo.weight", "wq.weight"};
  EXPECT_EQ(params, expected);
}

TEST_P(MlaTest, PrefillThenDecode) {
  checkSequence("prefill+decode", kGeneration, 31);
}

TEST_P(MlaTest, ChunkedPrefillThenDecode) {
  checkSequence("chunked prefill", kChunked, 37);
}

/// Calls that break a `require` of the model are refused, with the same
/// message as the interpreter's check, before anything runs: the caches keep
/// their contents and the next valid calls (one that ends exactly at
/// max_seq_len included) still agree with the interpreter.
TEST_P(MlaTest, RefusesBadInputsAndKeepsTheCaches) {
  const MlaConfig &c = GetParam();
  loom_artifact_t *naiveArtifact, *absorbArtifact;
  ASSERT_TRUE(getArtifacts(naiveArtifact, absorbArtifact))
      << "no artifacts (the first test to compile them says why)";
  ModuleOp module = ModelCache::get().getImported(c);
  ASSERT_TRUE(module);

  struct Bad {
    int64_t batch, seqLen, startPos;
    const char *condition;
  };
  const Bad bad[] = {
      {c.maxBatch + 1, 1, 3, "B <= max_batch_size"},
      {c.maxBatch, 3, c.maxSeq - 2, "start_pos + S <= max_seq_len"},
      {c.maxBatch, 1, -1, "start_pos >= 0"}};

  for (MlaMode mode : {MlaMode::Naive, MlaMode::Absorb}) {
    SCOPED_TRACE(modeName(mode));
    std::mt19937_64 rng(41);
    Tensors params = makeParams(rng);
    Session session;
    if (Status s = session.start(
            mode == MlaMode::Naive ? naiveArtifact : absorbArtifact, params))
      FAIL() << "cannot create the session: " << describe(s);
    Interpreted interpreter(module, params);
    Reference reference(c, params);

    auto valid = [&](const char *entry, int64_t seqLen, int64_t startPos) {
      SCOPED_TRACE(::testing::Message() << entry << " S = " << seqLen
                                        << " start_pos = " << startPos);
      Tensors inputs = {{"x", uniform(rng, {c.maxBatch, seqLen, c.dim}, -1, 1)},
                        {"start_pos", makeI64(startPos)}};
      Tensors want, got;
      ASSERT_TRUE(interpreter.call(entry, inputs, want));
      if (Status s = session.invoke(entry, inputs, got))
        FAIL() << "runtime call failed: " << describe(s);
      ASSERT_EQ(got.count("out"), 1u);
      EXPECT_TRUE(allClose("out", got.at("out"), want.at("out"), kRtol, kAtol));
      Tensor expected;
      expected.dtype = LOOM_DTYPE_F32;
      expected.shape = {c.maxBatch, seqLen, c.dim};
      expected.data = reference.forward(inputs.at("x"), startPos);
      EXPECT_LE(maxAbsDiff(got.at("out"), expected), kMaxAbsError);
    };
    valid("prefill", 3, 0);
    ASSERT_FALSE(HasFatalFailure());
    Tensors before = session.states();

    for (const Bad &b : bad)
      for (const char *entry : {"prefill", "decode"}) {
        SCOPED_TRACE(::testing::Message()
                     << entry << " B = " << b.batch << " S = " << b.seqLen
                     << " start_pos = " << b.startPos);
        Tensors inputs = {
            {"x", uniform(rng, {b.batch, b.seqLen, c.dim}, -1, 1)},
            {"start_pos", makeI64(b.startPos)}};
        Tensors got;
        Status s = session.invoke(entry, inputs, got);
        ASSERT_TRUE(s != nullptr) << "the call was not refused";
        std::string message = loom_status_message(s.get());
        EXPECT_EQ(loom_status_code(s.get()), LOOM_STATUS_INVALID_ARGUMENT);
        EXPECT_NE(message.find("requirement failed"), std::string::npos)
            << message;
        EXPECT_NE(message.find(b.condition), std::string::npos) << message;
        EXPECT_TRUE(got.empty());
        Tensors unused;
        ::testing::AssertionResult refused =
            interpreter.call(entry, inputs, unused);
        EXPECT_FALSE(refused) << "the interpreter ran the call";
        EXPECT_EQ(refused.message(), message);

        Tensors after = session.states();
        ASSERT_EQ(after.size(), before.size());
        for (auto &[name, value] : before)
          EXPECT_EQ(after.at(name).data, value.data)
              << "state '" << name << "' changed";
      }

    valid("decode", 1, 3);
    valid("decode", 2, c.maxSeq - 2);
  }
}

INSTANTIATE_TEST_SUITE_P(Mla, MlaTest, ::testing::ValuesIn(kVariants),
                         [](const ::testing::TestParamInfo<MlaConfig> &info) {
                           return std::string(info.param.name);
                         });

} // namespace
