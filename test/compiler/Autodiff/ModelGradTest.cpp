//===- ModelGradTest.cpp - RL objectives against differences ----*- C++ -*-===//
//
// This file checks the gradients of every entry of models/grpo.loom,
// models/dpo.loom and models/ppo.loom, under each of their loss options,
// against central differences of the loss in the float64 interpreter: the
// model is imported with `--define`-style overrides, goes through the graph
// pipeline (inlining, loom-autodiff), and is evaluated on small inputs that
// hold an empty completion, a partial one, ids of -100 under the mask and a
// group of equal rewards.
//
//===----------------------------------------------------------------------===//

#include "compiler/Interpreter/Interpreter.h"
#include "compiler/Pipelines/Pipelines.h"
#include "frontend/Config.h"
#include "frontend/Importer.h"
#include "frontend/Parser.h"
#include "frontend/Sema.h"

#include "dialects/loom/IR/LoomDialect.h"
#include "loom/abi.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/SourceMgr.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

using namespace mlir;
using namespace mlir::loom::interp;

namespace {

struct ModelCase {
  std::string name;
  std::string model;                // file under models/
  std::string entry;
  std::vector<std::string> defines; // NAME=VALUE
  std::string loss = "loss";
  /// (differentiated input, its gradient output)
  std::vector<std::pair<std::string, std::string>> grads;
};

[[maybe_unused]] void PrintTo(const ModelCase &c, std::ostream *os) {
  *os << c.name;
}

std::string attrString(DictionaryAttr attrs, StringRef key) {
  if (!attrs)
    return "";
  if (auto s = attrs.getAs<StringAttr>(key))
    return s.str();
  return "";
}

/// Symbol sizes of the test inputs: B = 6 rows (two groups of three, or
/// R = 6 rows of N = 3 pairs), T = 4 positions, V = 7 (also the vocab of
/// the fused entries, d = 5).
const std::map<std::string, int64_t> kSizes = {
    {"B", 6}, {"R", 6}, {"N", 3}, {"T", 4}, {"V", 7}};

/// The mask: row 1 is empty, row 3 has one token, the others partial.
double maskAt(int64_t b, int64_t t) {
  static const int rows[6][4] = {{1, 1, 1, 0}, {0, 0, 0, 0}, {1, 1, 1, 1},
                                 {0, 1, 0, 0}, {1, 1, 0, 0}, {1, 1, 1, 1}};
  return rows[b % 6][t % 4];
}

/// Inputs of `func` by their names (values depend on the name and index).
std::vector<Tensor> makeInputs(func::FuncOp func) {
  std::vector<Tensor> args;
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    DictionaryAttr attrs = func.getArgAttrDict(i);
    std::string name = attrString(attrs, "loom.name");
    auto type = cast<RankedTensorType>(func.getArgument(i).getType());
    Tensor t;
    t.dtype = getDtype(type.getElementType());
    auto dims = attrs ? attrs.getAs<ArrayAttr>("loom.dims") : nullptr;
    for (int64_t d = 0; d < type.getRank(); ++d) {
      int64_t size = type.getDimSize(d);
      if (ShapedType::isDynamic(size)) {
        auto sym = dims ? dyn_cast<StringAttr>(dims[d]) : nullptr;
        size = sym && kSizes.count(sym.str()) ? kSizes.at(sym.str()) : 3;
      }
      t.shape.push_back(size);
    }
    int64_t n = t.getNumElements();
    int64_t T = t.shape.size() >= 2 ? t.shape[1] : 1;
    double seed = 0.37 * static_cast<double>(name.size());
    for (int64_t e = 0; e < n; ++e) {
      double s = std::sin(0.91 * static_cast<double>(e) + seed);
      int64_t b = t.shape.empty() ? 0 : e / (n / t.shape[0]);
      int64_t pos = t.shape.size() >= 2 ? (e / (n / t.shape[0] / T)) % T : 0;
      double v;
      if (name == "completion_mask" || name == "mask") {
        v = maskAt(b, pos);
      } else if (t.dtype == LOOM_DTYPE_I64) {
        // Ids under the mask may be anything (TRL's -100).
        v = maskAt(b, pos) ? static_cast<double>((e * 5 + 2) % 7) : -100;
      } else if (name == "rewards") {
        // Rows 0..2 form a group of equal rewards.
        v = b < 3 ? 0.5 : s;
      } else if (name == "num_items_in_batch") {
        v = 19;
      } else if (name == "old_per_token_logps" || name == "old_logprobs" ||
                 name == "ref_per_token_logps" || name == "ref_logprobs") {
        v = -1.9 + 0.4 * s;
      } else if (name == "ref_chosen_logps" || name == "ref_rejected_logps") {
        v = -6.0 + s;
      } else {
        v = 1.5 * s;
      }
      t.data.push_back(v);
    }
    args.push_back(std::move(t));
  }
  return args;
}

class ModelGradTest : public ::testing::TestWithParam<ModelCase> {};

TEST_P(ModelGradTest, GradientsMatchCentralDifferences) {
  const ModelCase &c = GetParam();
  MLIRContext context;
  context.getOrLoadDialect<mlir::loom::LoomDialect>();
  context.getOrLoadDialect<func::FuncDialect>();
  llvm::SourceMgr sm;
  std::string diagnostics;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &d) {
    diagnostics += d.str() + "\n";
    return success();
  });
  std::string path = std::string(LOOM_SOURCE_DIR) + "/models/" + c.model;
  std::string error;
  auto file = openInputFile(path, &error);
  ASSERT_TRUE(file) << error;
  sm.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  auto ast = ::loom::frontend::parseModule(sm);
  ASSERT_TRUE(ast);
  ASSERT_TRUE(::loom::frontend::applyConfigOverrides(*ast, c.defines, "", sm));
  ASSERT_TRUE(::loom::frontend::checkModule(*ast, sm));
  OwningOpRef<ModuleOp> module =
      ::loom::frontend::importModule(*ast, context, sm);
  ASSERT_TRUE(module) << diagnostics;
  PassManager pm(&context);
  ASSERT_TRUE(succeeded(mlir::loom::buildGraphPipeline(pm)));
  ASSERT_TRUE(succeeded(pm.run(*module))) << diagnostics;
  auto func = module->lookupSymbol<func::FuncOp>(c.entry);
  ASSERT_TRUE(func);

  std::map<std::string, unsigned> argIndex, resultIndex;
  for (unsigned i = 0; i < func.getNumArguments(); ++i)
    argIndex[attrString(func.getArgAttrDict(i), "loom.name")] = i;
  for (unsigned i = 0; i < func.getNumResults(); ++i)
    resultIndex[attrString(func.getResultAttrDict(i), "loom.name")] = i;
  ASSERT_TRUE(resultIndex.count(c.loss));

  std::vector<Tensor> args = makeInputs(func);
  FailureOr<std::vector<Tensor>> base = evaluate(func, args);
  ASSERT_TRUE(succeeded(base)) << diagnostics;
  double loss = (*base)[resultIndex[c.loss]].data[0];
  EXPECT_TRUE(std::isfinite(loss)) << c.name << " loss " << loss;

  const double step = 1e-6;
  for (const auto &[input, gradName] : c.grads) {
    ASSERT_TRUE(argIndex.count(input)) << input;
    ASSERT_TRUE(resultIndex.count(gradName)) << gradName;
    unsigned a = argIndex[input];
    const Tensor &grad = (*base)[resultIndex[gradName]];
    ASSERT_EQ(grad.shape, args[a].shape) << gradName;
    double scale = 1e-6, largest = 0;
    std::vector<double> fd;
    for (size_t e = 0; e < args[a].data.size(); ++e) {
      std::vector<Tensor> plus = args, minus = args;
      plus[a].data[e] += step;
      minus[a].data[e] -= step;
      FailureOr<std::vector<Tensor>> lp = evaluate(func, plus);
      FailureOr<std::vector<Tensor>> lm = evaluate(func, minus);
      ASSERT_TRUE(succeeded(lp) && succeeded(lm)) << diagnostics;
      double d = ((*lp)[resultIndex[c.loss]].data[0] -
                  (*lm)[resultIndex[c.loss]].data[0]) /
                 (2 * step);
      fd.push_back(d);
      scale = std::max(scale, std::fabs(d));
      largest = std::max(largest, std::fabs(grad.data[e]));
    }
    for (size_t e = 0; e < fd.size(); ++e)
      EXPECT_NEAR(grad.data[e], fd[e], 1e-6 * scale)
          << c.name << ": " << gradName << " at " << e;
    // A gradient that is zero everywhere would pass trivially.
    EXPECT_GT(largest, 1e-4) << c.name << ": " << gradName << " is all zero";
  }
}

std::vector<ModelCase> cases() {
  std::vector<ModelCase> all;
  // Central differences step over a clip boundary only by bad luck; these
  // configs keep the ratios of the inputs away from 1 +- epsilon.
  std::vector<std::pair<std::string, std::vector<std::string>>> grpo = {
      {"grpo", {"loss_type=grpo", "beta=0.04"}},
      {"bnpo_batch", {"loss_type=bnpo", "scale_rewards=batch", "beta=0.1"}},
      {"dr_grpo_none",
       {"loss_type=dr_grpo", "max_completion_length=4", "scale_rewards=none",
        "gradient_accumulation_steps=2"}},
      {"dapo_sequence",
       {"loss_type=dapo", "importance_sampling_level=sequence",
        "num_processes=2", "beta=0.02", "temperature=0.7"}},
      {"delta", {"loss_type=grpo", "delta=1.5", "epsilon_high=0.28"}},
  };
  for (auto &[name, defs] : grpo) {
    std::vector<std::string> d = defs;
    d.push_back("num_generations=3");
    all.push_back({"grpo_" + name, "grpo.loom", "grpo_loss", d, "loss",
                   {{"logits", "grad_logits"}}});
    std::vector<std::string> f = d;
    f.push_back("vocab=7");
    f.push_back("hidden_size=5");
    all.push_back({"grpo_fused_" + name, "grpo.loom", "grpo_loss_fused", f,
                   "loss",
                   {{"hidden", "grad_hidden"},
                    {"lm_head", "grad_lm_head"}}});
  }
  std::vector<std::pair<std::string, std::vector<std::string>>> dpo = {
      {"sigmoid", {"loss_type=sigmoid", "label_smoothing=0.1", "beta=0.3"}},
      {"hinge", {"loss_type=hinge", "beta=0.05"}},
      {"ipo", {"loss_type=ipo", "beta=0.5"}},
      {"reference_free", {"loss_type=sigmoid", "reference_free=true"}},
  };
  for (auto &[name, defs] : dpo) {
    all.push_back({"dpo_" + name, "dpo.loom", "dpo_loss", defs, "loss",
                   {{"logits", "grad_logits"}}});
    std::vector<std::string> f = defs;
    f.push_back("vocab=7");
    f.push_back("hidden_size=5");
    all.push_back({"dpo_fused_" + name, "dpo.loom", "dpo_loss_fused", f,
                   "loss",
                   {{"hidden", "grad_hidden"},
                    {"lm_head", "grad_lm_head"}}});
  }
  std::vector<std::string> ppo = {"kl_coef=0.1", "gamma=0.95", "lam=0.9",
                                  "cliprange_value=0.15", "vf_coef=0.3"};
  all.push_back({"ppo", "ppo.loom", "ppo_loss", ppo, "loss",
                 {{"logits", "grad_logits"}, {"vpred", "grad_vpred"}}});
  std::vector<std::string> f = ppo;
  f.push_back("vocab=7");
  f.push_back("hidden_size=5");
  all.push_back({"ppo_fused", "ppo.loom", "ppo_loss_fused", f, "loss",
                 {{"hidden", "grad_hidden"},
                  {"lm_head", "grad_lm_head"},
                  {"vpred", "grad_vpred"}}});
  return all;
}

INSTANTIATE_TEST_SUITE_P(Objectives, ModelGradTest,
                         ::testing::ValuesIn(cases()),
                         [](const auto &info) { return info.param.name; });

} // namespace
