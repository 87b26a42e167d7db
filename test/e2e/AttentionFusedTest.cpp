//===- AttentionFusedTest.cpp - fuse.attention on the CPU -------*- C++ -*-===//
//
// Tests of the CPU code generated for `fuse.attention`:
//
// - the mask functions compiled from a mask region (loom-cpu-fuse-to-runtime)
//   are JIT-compiled and checked against the mask evaluated here by brute
//   force: mask_row element by element, and mask_block, the interval
//   analysis, over every tile and random rectangles of random metadata
//   (trees as Euler-tour intervals, documents, windows). NONE must mean that
//   no pair of the block is visible and ALL that every pair is; for masks
//   whose analysis is exact (causal, sliding window, prefix-LM, sorted
//   documents) a uniform block must never be SOME;
// - whole artifacts with fuse.attention (tree mask and a score modifier,
//   grouped heads, a mask that hides every key of a query) run through the
//   runtime's attention kernel and are compared with the float64 reference
//   of AttentionReference.h.
//
//===----------------------------------------------------------------------===//

#include "test/e2e/AttentionEntries.h"
#include "test/e2e/AttentionReference.h"
#include "test/e2e/RuntimeGlue.h"

#include "compiler/Pipelines/Compile.h"
#include "compiler/Target/CPU/AttentionOutline.h"
#include "dialects/fuse/IR/FuseOps.h"
#include "loom/abi.h"
#include "loom/runtime.h"

#include "mlir/ExecutionEngine/CRunnerUtils.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

using namespace mlir;
using namespace ::loom::e2e;

namespace {

//===----------------------------------------------------------------------===//
// Mask functions, JIT-compiled
//===----------------------------------------------------------------------===//

using Memref1D = StridedMemRefType<int32_t, 1>;
using Bytes1D = StridedMemRefType<int8_t, 1>;
using BlockFn = int32_t (*)(int64_t, int64_t, int64_t, int64_t, int64_t,
                            int64_t, Memref1D *, Memref1D *);
using RowFn = void (*)(int64_t, int64_t, int64_t, int64_t, int64_t, Bytes1D *,
                       Memref1D *, Memref1D *);

/// The mask functions of one mask region, which reads two i32 captures `%a`
/// and `%c` and the block arguments `%b, %h, %i, %j`.
struct MaskFunctions {
  std::unique_ptr<ExecutionEngine> engine;
  BlockFn block = nullptr;
  RowFn row = nullptr;
  uint32_t flags = 0;
};

/// Builds a memref-form fuse.attention with `body` as its mask region, runs
/// loom-cpu-fuse-to-runtime and JIT-compiles the mask functions.
::testing::AssertionResult compileMask(const std::string &body,
                                       MaskFunctions &out) {
  MLIRContext &context = getContext();
  context.getOrLoadDialect<fuse::FuseDialect>();
  registerBuiltinDialectTranslation(context);
  registerLLVMDialectTranslation(context);
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  std::string source = R"mlir(
func.func @f(%q: memref<1x1x?x4xf32>, %ta: memref<?xi32>, %tc: memref<?xi32>,
             %o: memref<1x1x?x4xf32>, %l: memref<1x1x?xf32>) {
  fuse.attention ins(%q, %q, %q : memref<1x1x?x4xf32>, memref<1x1x?x4xf32>, memref<1x1x?x4xf32>)
      captures(%ta, %tc : memref<?xi32>, memref<?xi32>)
      outs(%o, %l : memref<1x1x?x4xf32>, memref<1x1x?xf32>) {scale = 1.0 : f64}
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %a: memref<?xi32>, %c: memref<?xi32>):
)mlir" + body + R"mlir(
    }
  return
}
)mlir";
  std::string diagnostics;
  llvm::raw_string_ostream os(diagnostics);
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(source),
                               llvm::SMLoc());
  SourceMgrDiagnosticHandler handler(sourceMgr, &context, os);
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    return ::testing::AssertionFailure() << "parse errors:\n" << diagnostics;
  PassManager outline(&context);
  if (failed(parsePassPipeline("loom-cpu-fuse-to-runtime", outline, os)) ||
      failed(outline.run(*module)))
    return ::testing::AssertionFailure() << "outlining failed:\n"
                                         << diagnostics;
  // The flags are the launch call's i32 constant operand.
  auto caller = module->lookupSymbol<func::FuncOp>("f");
  caller.walk([&](func::CallOp call) {
    for (Value operand : call.getOperands())
      if (operand.getType().isInteger(32))
        if (auto c = getConstantIntValue(operand))
          out.flags = static_cast<uint32_t>(*c);
  });
  caller.erase();
  for (auto func : llvm::make_early_inc_range(module->getOps<func::FuncOp>())) {
    if (func.isDeclaration())
      func.erase();
    else
      func->setAttr("llvm.emit_c_interface", UnitAttr::get(&context));
  }
  PassManager lower(&context);
  if (failed(parsePassPipeline(
          "convert-scf-to-cf,expand-strided-metadata,lower-affine,"
          "finalize-memref-to-llvm,convert-arith-to-llvm,"
          "convert-index-to-llvm,convert-cf-to-llvm,convert-func-to-llvm,"
          "reconcile-unrealized-casts",
          lower, os)) ||
      failed(lower.run(*module)))
    return ::testing::AssertionFailure() << "lowering failed:\n" << diagnostics;
  std::function<llvm::Error(llvm::Module *)> transformer =
      makeOptimizingTransformer(2, 0, nullptr);
  ExecutionEngineOptions options;
  options.transformer = transformer;
  auto engine = ExecutionEngine::create(*module, options);
  if (!engine)
    return ::testing::AssertionFailure()
           << "JIT failed: " << llvm::toString(engine.takeError());
  out.engine = std::move(*engine);
  auto lookup = [&](llvm::StringRef prefix) -> void * {
    auto fn = out.engine->lookup(("_mlir_ciface_" + prefix + "0").str());
    if (!fn) {
      llvm::consumeError(fn.takeError());
      return nullptr;
    }
    return *fn;
  };
  out.block = reinterpret_cast<BlockFn>(
      lookup(mlir::loom::cpu::kAttentionMaskBlockPrefix));
  out.row =
      reinterpret_cast<RowFn>(lookup(mlir::loom::cpu::kAttentionMaskRowPrefix));
  if (!out.block || !out.row)
    return ::testing::AssertionFailure() << "mask functions not found";
  return ::testing::AssertionSuccess();
}

/// The metadata a mask reads: two i32 arrays of length `n`.
struct Metadata {
  std::vector<int32_t> a, c;
};

/// A random tree of `n` nodes in depth-first order: a = tin, c = tout (the
/// last pre-order index in the subtree). With `shuffle`, the positions are a
/// random permutation of the nodes, so the intervals are not sorted.
Metadata randomTree(int64_t n, std::mt19937 &rng, bool shuffle) {
  std::vector<int64_t> parent(n, -1);
  for (int64_t v = 1; v < n; ++v) {
    // Mostly deep chains with some branching, as in code syntax trees.
    std::uniform_int_distribution<int64_t> back(1, std::min<int64_t>(v, 4));
    parent[v] = v - back(rng);
  }
  // Node numbers are a pre-order when every parent precedes its children
  // and each subtree is contiguous: renumber by an explicit DFS.
  std::vector<std::vector<int64_t>> children(n);
  for (int64_t v = 1; v < n; ++v)
    children[parent[v]].push_back(v);
  std::vector<int32_t> tin(n), tout(n);
  int32_t clock = 0;
  std::function<void(int64_t)> dfs = [&](int64_t v) {
    tin[v] = clock++;
    for (int64_t w : children[v])
      dfs(w);
    tout[v] = clock - 1;
  };
  dfs(0);
  std::vector<int64_t> order(n);
  for (int64_t v = 0; v < n; ++v)
    order[v] = v;
  if (shuffle)
    std::shuffle(order.begin(), order.end(), rng);
  else
    std::sort(order.begin(), order.end(),
              [&](int64_t x, int64_t y) { return tin[x] < tin[y]; });
  Metadata m;
  for (int64_t pos = 0; pos < n; ++pos) {
    m.a.push_back(tin[order[pos]]);
    m.c.push_back(tout[order[pos]]);
  }
  return m;
}

/// Sorted document ids in `a` (segments of random lengths); `c` unused.
Metadata randomDocuments(int64_t n, std::mt19937 &rng) {
  Metadata m;
  std::uniform_int_distribution<int32_t> length(1, 20);
  int32_t doc = 0;
  while (static_cast<int64_t>(m.a.size()) < n) {
    int32_t len = length(rng);
    for (int32_t k = 0; k < len && static_cast<int64_t>(m.a.size()) < n; ++k)
      m.a.push_back(doc);
    ++doc;
  }
  m.c.assign(n, 0);
  return m;
}

Memref1D view(std::vector<int32_t> &v) {
  Memref1D m;
  m.basePtr = m.data = v.data();
  m.offset = 0;
  m.sizes[0] = static_cast<int64_t>(v.size());
  m.strides[0] = 1;
  return m;
}

using Oracle = std::function<bool(const Metadata &, int64_t, int64_t)>;

struct BlockStats {
  int64_t blocks = 0, uniform = 0, uniformSome = 0;
};

/// Checks mask_row against `oracle` for every query and a few key ranges,
/// and mask_block over every tile of the given sizes and random rectangles.
/// Returns the counts of uniform blocks the analysis left undecided.
BlockStats checkMask(const MaskFunctions &fns, Metadata m, const Oracle &oracle,
                     std::mt19937 &rng) {
  int64_t n = static_cast<int64_t>(m.a.size());
  Metadata copy = m;
  Memref1D a = view(copy.a), c = view(copy.c);
  for (int64_t i = 0; i < n; ++i) {
    for (auto [j0, len] : {std::pair<int64_t, int64_t>{0, n},
                           {i / 2, n - i / 2},
                           {n / 3, std::min<int64_t>(7, n - n / 3)}}) {
      std::vector<int8_t> bytes(len, 7);
      Bytes1D out;
      out.basePtr = out.data = bytes.data();
      out.offset = 0;
      out.sizes[0] = len;
      out.strides[0] = 1;
      fns.row(0, 0, i, j0, len, &out, &a, &c);
      for (int64_t t = 0; t < len; ++t)
        EXPECT_EQ(bytes[t], oracle(m, i, j0 + t) ? 1 : 0)
            << "mask_row at i=" << i << " j=" << j0 + t;
    }
  }
  BlockStats stats;
  auto checkBlock = [&](int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    bool any = false, all = true;
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = j0; j < j1; ++j) {
        bool visible = oracle(m, i, j);
        any |= visible;
        all &= visible;
      }
    int32_t got = fns.block(0, 0, i0, i1, j0, j1, &a, &c);
    ++stats.blocks;
    if (!any || all) {
      ++stats.uniform;
      if (got == LOOM_ATTENTION_BLOCK_SOME)
        ++stats.uniformSome;
    }
    if (got == LOOM_ATTENTION_BLOCK_NONE)
      EXPECT_FALSE(any) << "NONE for a block with a visible pair: [" << i0
                        << ", " << i1 << ") x [" << j0 << ", " << j1 << ")";
    else if (got == LOOM_ATTENTION_BLOCK_ALL)
      EXPECT_TRUE(all) << "ALL for a block with a hidden pair: [" << i0 << ", "
                       << i1 << ") x [" << j0 << ", " << j1 << ")";
    else
      EXPECT_EQ(got, LOOM_ATTENTION_BLOCK_SOME) << "not a block class";
  };
  for (int64_t tile : {4, 16})
    for (int64_t i0 = 0; i0 < n; i0 += tile)
      for (int64_t j0 = 0; j0 < n; j0 += tile)
        checkBlock(i0, std::min(i0 + tile, n), j0, std::min(j0 + tile, n));
  std::uniform_int_distribution<int64_t> pos(0, n - 1);
  for (int k = 0; k < 300; ++k) {
    int64_t i0 = pos(rng), i1 = pos(rng), j0 = pos(rng), j1 = pos(rng);
    if (i0 > i1)
      std::swap(i0, i1);
    if (j0 > j1)
      std::swap(j0, j1);
    checkBlock(i0, i1 + 1, j0, j1 + 1);
  }
  // An empty range has no visible pair.
  EXPECT_EQ(fns.block(0, 0, 3, 3, 0, n, &a, &c), LOOM_ATTENTION_BLOCK_NONE);
  return stats;
}

struct MaskCase {
  const char *name;
  std::string body;
  Oracle oracle;
  /// Metadata generator.
  std::function<Metadata(int64_t, std::mt19937 &)> metadata;
  /// The analysis is exact: uniform blocks are never SOME.
  bool exact;
  uint32_t flags = 0;
};

Metadata treeMetadata(int64_t n, std::mt19937 &rng) {
  return randomTree(n, rng, /*shuffle=*/false);
}

/// The start of a mask body that leaves in `%anc` whether key j is an
/// ancestor of query i or i itself on Euler-tour intervals: tin[j] <= tin[i]
/// and tout[i] <= tout[j], where the i32 vectors `tin` and `tout` of type
/// `type` are read with `read` (memref.load or tensor.extract).
std::string ancestorBody(const std::string &read, const std::string &tin,
                         const std::string &tout, const std::string &type) {
  std::string body = R"mlir(
      %tj = $READ $TIN[%j] : $TYPE
      %ti = $READ $TIN[%i] : $TYPE
      %oi2 = $READ $TOUT[%i] : $TYPE
      %oj = $READ $TOUT[%j] : $TYPE
      %x = arith.cmpi sle, %tj, %ti : i32
      %y = arith.cmpi sle, %oi2, %oj : i32
      %anc = arith.andi %x, %y : i1
      )mlir";
  replaceAll(body, "$READ", read);
  replaceAll(body, "$TIN", tin);
  replaceAll(body, "$TOUT", tout);
  replaceAll(body, "$TYPE", type);
  return body;
}

std::vector<MaskCase> maskCases() {
  auto ancestor = [](const Metadata &m, int64_t i, int64_t j) {
    return m.a[j] <= m.a[i] && m.c[i] <= m.c[j];
  };
  std::string ancestorPrefix =
      ancestorBody("memref.load", "%a", "%c", "memref<?xi32>");
  std::string treeBody = ancestorPrefix + "fuse.yield %anc : i1";
  return {
      {"causal",
       R"(%v = arith.cmpi ule, %j, %i : index
          fuse.yield %v : i1)",
       [](const Metadata &, int64_t i, int64_t j) { return j <= i; },
       treeMetadata, true},
      {"sliding_window",
       R"(%w = arith.constant 5 : index
          %d = arith.subi %i, %j : index
          %near = arith.cmpi slt, %d, %w : index
          %past = arith.cmpi sle, %j, %i : index
          %v = arith.andi %past, %near : i1
          fuse.yield %v : i1)",
       [](const Metadata &, int64_t i, int64_t j) {
         return j <= i && i - j < 5;
       },
       treeMetadata, true},
      {"prefix_lm",
       R"(%p = arith.constant 13 : index
          %past = arith.cmpi ule, %j, %i : index
          %prefix = arith.cmpi ult, %j, %p : index
          %v = arith.ori %past, %prefix : i1
          fuse.yield %v : i1)",
       [](const Metadata &, int64_t i, int64_t j) { return j <= i || j < 13; },
       treeMetadata, true},
      {"document",
       R"(%di = memref.load %a[%i] : memref<?xi32>
          %dj = memref.load %a[%j] : memref<?xi32>
          %v = arith.cmpi eq, %di, %dj : i32
          fuse.yield %v : i1)",
       [](const Metadata &m, int64_t i, int64_t j) { return m.a[i] == m.a[j]; },
       randomDocuments, true},
      {"document_causal",
       R"(%di = memref.load %a[%i] : memref<?xi32>
          %dj = memref.load %a[%j] : memref<?xi32>
          %same = arith.cmpi eq, %di, %dj : i32
          %past = arith.cmpi sle, %j, %i : index
          %v = arith.andi %same, %past : i1
          fuse.yield %v : i1)",
       [](const Metadata &m, int64_t i, int64_t j) {
         return m.a[i] == m.a[j] && j <= i;
       },
       randomDocuments, false},
      {"tree", treeBody, ancestor, treeMetadata, false},
      {"tree_shuffled", treeBody, ancestor,
       [](int64_t n, std::mt19937 &rng) { return randomTree(n, rng, true); },
       false},
      // Within a pair of positions (i / 2 == j / 2) only the query itself,
      // elsewhere any key that is not an ancestor or is the query itself:
      // Kleene not (xor with true), or, select on i1, division.
      {"not_ancestor_or_self", ancestorPrefix + R"(%true = arith.constant true
          %not = arith.xori %anc, %true : i1
          %self = arith.cmpi eq, %i, %j : index
          %half = arith.constant 2 : index
          %hi = arith.divui %i, %half : index
          %hj = arith.divui %j, %half : index
          %pair = arith.cmpi eq, %hi, %hj : index
          %v0 = arith.ori %not, %self : i1
          %v = arith.select %pair, %self, %v0 : i1
          fuse.yield %v : i1)",
       [](const Metadata &m, int64_t i, int64_t j) {
         bool anc = m.a[j] <= m.a[i] && m.c[i] <= m.c[j];
         return i / 2 == j / 2 ? i == j : (!anc || i == j);
       },
       treeMetadata, false},
      // The head argument: a different window per head (flags say so).
      {"per_head",
       R"(%one = arith.constant 1 : index
          %w = arith.addi %h, %one : index
          %w3 = arith.muli %w, %one : index
          %d = arith.subi %i, %j : index
          %x = arith.cmpi slt, %d, %w3 : index
          %y = arith.cmpi sge, %d, %h : index
          %v = arith.andi %x, %y : i1
          fuse.yield %v : i1)",
       [](const Metadata &, int64_t i, int64_t j) {
         // h = 0 in checkMask: 0 <= i - j < 1.
         return i == j;
       },
       treeMetadata, true, LOOM_ATTENTION_MASK_USES_H},
      // Data-dependent indices and floats: the analysis must stay sound.
      {"opaque",
       R"(%tj = memref.load %a[%j] : memref<?xi32>
          %k = arith.index_cast %tj : i32 to index
          %ok = memref.load %c[%k] : memref<?xi32>
          %f = arith.sitofp %ok : i32 to f32
          %z = arith.constant 3.0 : f32
          %v = arith.cmpf olt, %f, %z : f32
          fuse.yield %v : i1)",
       [](const Metadata &m, int64_t, int64_t j) {
         return static_cast<float>(m.c[m.a[j]]) < 3.0f;
       },
       treeMetadata, false},
  };
}

class AttentionMaskTest : public ::testing::TestWithParam<int> {};

TEST_P(AttentionMaskTest, RowAndBlockAgainstBruteForce) {
  MaskCase mask = maskCases()[GetParam()];
  SCOPED_TRACE(mask.name);
  MaskFunctions fns;
  ASSERT_TRUE(compileMask(mask.body, fns));
  EXPECT_EQ(fns.flags, mask.flags);
  std::mt19937 rng(1234 + GetParam());
  BlockStats total;
  for (int64_t n : {1, 17, 64, 100}) {
    for (int seed = 0; seed < 3; ++seed) {
      Metadata m = mask.metadata(n, rng);
      BlockStats stats = checkMask(fns, m, mask.oracle, rng);
      total.blocks += stats.blocks;
      total.uniform += stats.uniform;
      total.uniformSome += stats.uniformSome;
      if (mask.exact)
        EXPECT_EQ(stats.uniformSome, 0)
            << "uniform blocks left undecided for n = " << n;
    }
  }
  ::testing::Test::RecordProperty("uniform_blocks", total.uniform);
  ::testing::Test::RecordProperty("uniform_blocks_undecided",
                                  total.uniformSome);
  std::printf("[ %-20s ] %lld blocks, %lld uniform, %lld of them SOME\n",
              mask.name, static_cast<long long>(total.blocks),
              static_cast<long long>(total.uniform),
              static_cast<long long>(total.uniformSome));
}

INSTANTIATE_TEST_SUITE_P(Masks, AttentionMaskTest,
                         ::testing::Range(0,
                                          static_cast<int>(maskCases().size())),
                         [](const ::testing::TestParamInfo<int> &info) {
                           return std::string(maskCases()[info.param].name);
                         });

//===----------------------------------------------------------------------===//
// Whole artifacts through the runtime's attention kernel
//===----------------------------------------------------------------------===//

/// Two entries: `tree` (an ancestor mask on Euler-tour intervals, a soft cap
/// and a per-head bias as score modifier, grouped heads) and `strict`.
std::string artifactSource() {
  AttentionEntry tree("tree", 4, 2, 16, 8, "S", "0.25");
  tree.captures = {{"tin", "S"}, {"tout", "S"}};
  tree.mask =
      ancestorBody("tensor.extract", "%c_tin", "%c_tout", "tensor<?xi32>") +
      "fuse.yield %anc : i1";
  tree.score = kSoftCapAndHeadBiasBody;
  return attentionEntry(AttentionForm::Fuse, tree) +
         strictEntry(AttentionForm::Fuse);
}

class AttentionArtifactTest : public SourceArtifactTest<AttentionArtifactTest> {
protected:
  static void SetUpTestSuite() {
    getContext().getOrLoadDialect<fuse::FuseDialect>();
    mlir::loom::CompileOptions options;
    options.compilerVersion = "loom-e2e-tests";
    ASSERT_TRUE(artifact.open(artifactSource(), "attention", options));
  }
};

TEST_F(AttentionArtifactTest, TreeMaskAndScoreModifier) {
  std::mt19937 rng(7);
  for (auto [nb, s, shuffle] :
       {std::tuple<int64_t, int64_t, bool>{2, 150, false},
        {1, 37, true},
        {1, 1, false}}) {
    SCOPED_TRACE("B = " + std::to_string(nb) + ", S = " + std::to_string(s));
    Metadata m = randomTree(s, rng, shuffle);
    Tensors inputs = {{"q", randomTensor({nb, 4, s, 16}, rng)},
                      {"k", randomTensor({nb, 2, s, 16}, rng)},
                      {"v", randomTensor({nb, 2, s, 8}, rng)},
                      {"tin", intTensor(m.a)},
                      {"tout", intTensor(m.c)}};
    Tensors got;
    ASSERT_TRUE(artifact.invoke("tree", inputs, got));
    EXPECT_TRUE(matchesReference(
        got, inputs, 0.25,
        [&](int64_t, int64_t, int64_t i, int64_t j) {
          return m.a[j] <= m.a[i] && m.c[i] <= m.c[j];
        },
        softCapAndHeadBias));
  }
}

TEST_F(AttentionArtifactTest, FullyMaskedRowsGiveZeroAndMinusInfinity) {
  checkStrictEntry(artifact);
}

} // namespace
