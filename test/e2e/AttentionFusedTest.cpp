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
//   runtime's attention kernel and are compared with a float64 reference
//   written here.
//
//===----------------------------------------------------------------------===//

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
#include "llvm/Support/FileSystem.h"
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
  const char *body;
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

std::vector<MaskCase> maskCases() {
  auto ancestor = [](const Metadata &m, int64_t i, int64_t j) {
    return m.a[j] <= m.a[i] && m.c[i] <= m.c[j];
  };
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
      {"tree",
       R"(%tj = memref.load %a[%j] : memref<?xi32>
          %ti = memref.load %a[%i] : memref<?xi32>
          %oi = memref.load %c[%i] : memref<?xi32>
          %oj = memref.load %c[%j] : memref<?xi32>
          %x = arith.cmpi sle, %tj, %ti : i32
          %y = arith.cmpi sle, %oi, %oj : i32
          %v = arith.andi %x, %y : i1
          fuse.yield %v : i1)",
       ancestor, treeMetadata, false},
      {"tree_shuffled",
       R"(%tj = memref.load %a[%j] : memref<?xi32>
          %ti = memref.load %a[%i] : memref<?xi32>
          %oi = memref.load %c[%i] : memref<?xi32>
          %oj = memref.load %c[%j] : memref<?xi32>
          %x = arith.cmpi sle, %tj, %ti : i32
          %y = arith.cmpi sle, %oi, %oj : i32
          %v = arith.andi %x, %y : i1
          fuse.yield %v : i1)",
       ancestor,
       [](int64_t n, std::mt19937 &rng) { return randomTree(n, rng, true); },
       false},
      // Within a pair of positions (i / 2 == j / 2) only the query itself,
      // elsewhere any key that is not an ancestor or is the query itself:
      // Kleene not (xor with true), or, select on i1, division.
      {"not_ancestor_or_self",
       R"(%tj = memref.load %a[%j] : memref<?xi32>
          %ti = memref.load %a[%i] : memref<?xi32>
          %oi = memref.load %c[%i] : memref<?xi32>
          %oj = memref.load %c[%j] : memref<?xi32>
          %x = arith.cmpi sle, %tj, %ti : i32
          %y = arith.cmpi sle, %oi, %oj : i32
          %anc = arith.andi %x, %y : i1
          %true = arith.constant true
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
/// and a per-head bias as score modifier, grouped heads) and `strict` (keys
/// strictly before the query, so query 0 sees none).
constexpr const char *kArtifactSource = R"mlir(
func.func @tree(
    %q: tensor<?x4x?x16xf32> {loom.role = "input", loom.name = "q", loom.dims = ["B", 4, "S", 16]},
    %k: tensor<?x2x?x16xf32> {loom.role = "input", loom.name = "k", loom.dims = ["B", 2, "S", 16]},
    %v: tensor<?x2x?x8xf32> {loom.role = "input", loom.name = "v", loom.dims = ["B", 2, "S", 8]},
    %tin: tensor<?xi32> {loom.role = "input", loom.name = "tin", loom.dims = ["S"]},
    %tout: tensor<?xi32> {loom.role = "input", loom.name = "tout", loom.dims = ["S"]})
    -> (tensor<?x4x?x8xf32> {loom.role = "output", loom.name = "out", loom.dims = ["B", 4, "S", 8]},
        tensor<?x4x?xf32> {loom.role = "output", loom.name = "lse", loom.dims = ["B", 4, "S"]}) {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %nb = tensor.dim %q, %c0 : tensor<?x4x?x16xf32>
  %ns = tensor.dim %q, %c2 : tensor<?x4x?x16xf32>
  %oi = tensor.empty(%nb, %ns) : tensor<?x4x?x8xf32>
  %li = tensor.empty(%nb, %ns) : tensor<?x4x?xf32>
  %r:2 = fuse.attention ins(%q, %k, %v : tensor<?x4x?x16xf32>, tensor<?x2x?x16xf32>, tensor<?x2x?x8xf32>)
      captures(%tin, %tout : tensor<?xi32>, tensor<?xi32>)
      outs(%oi, %li : tensor<?x4x?x8xf32>, tensor<?x4x?xf32>) {scale = 0.25 : f64}
      -> tensor<?x4x?x8xf32>, tensor<?x4x?xf32>
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %a: tensor<?xi32>, %c: tensor<?xi32>):
      %tj = tensor.extract %a[%j] : tensor<?xi32>
      %ti = tensor.extract %a[%i] : tensor<?xi32>
      %oi2 = tensor.extract %c[%i] : tensor<?xi32>
      %oj = tensor.extract %c[%j] : tensor<?xi32>
      %x = arith.cmpi sle, %tj, %ti : i32
      %y = arith.cmpi sle, %oi2, %oj : i32
      %m = arith.andi %x, %y : i1
      fuse.yield %m : i1
    }
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %s: f32, %a: tensor<?xi32>, %c: tensor<?xi32>):
      %cap = arith.constant 5.0 : f32
      %d = arith.divf %s, %cap : f32
      %t = math.tanh %d : f32
      %soft = arith.mulf %t, %cap : f32
      %hi = arith.index_cast %h : index to i64
      %hf = arith.sitofp %hi : i64 to f32
      %quarter = arith.constant 0.25 : f32
      %bias = arith.mulf %hf, %quarter : f32
      %r2 = arith.subf %soft, %bias : f32
      fuse.yield %r2 : f32
    }
  return %r#0, %r#1 : tensor<?x4x?x8xf32>, tensor<?x4x?xf32>
}

func.func @strict(
    %q: tensor<?x2x?x8xf32> {loom.role = "input", loom.name = "q", loom.dims = ["B", 2, "S", 8]},
    %k: tensor<?x2x?x8xf32> {loom.role = "input", loom.name = "k", loom.dims = ["B", 2, "T", 8]},
    %v: tensor<?x2x?x8xf32> {loom.role = "input", loom.name = "v", loom.dims = ["B", 2, "T", 8]})
    -> (tensor<?x2x?x8xf32> {loom.role = "output", loom.name = "out", loom.dims = ["B", 2, "S", 8]},
        tensor<?x2x?xf32> {loom.role = "output", loom.name = "lse", loom.dims = ["B", 2, "S"]}) {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %nb = tensor.dim %q, %c0 : tensor<?x2x?x8xf32>
  %ns = tensor.dim %q, %c2 : tensor<?x2x?x8xf32>
  %oi = tensor.empty(%nb, %ns) : tensor<?x2x?x8xf32>
  %li = tensor.empty(%nb, %ns) : tensor<?x2x?xf32>
  %r:2 = fuse.attention ins(%q, %k, %v : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>)
      outs(%oi, %li : tensor<?x2x?x8xf32>, tensor<?x2x?xf32>) {scale = 0.35 : f64}
      -> tensor<?x2x?x8xf32>, tensor<?x2x?xf32>
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ult, %j, %i : index
      fuse.yield %m : i1
    }
  return %r#0, %r#1 : tensor<?x2x?x8xf32>, tensor<?x2x?xf32>
}
)mlir";

/// Float64 reference of attention: q [B, Hq, S, Dk], k [B, Hkv, T, Dk],
/// v [B, Hkv, T, Dv].
void referenceAttention(
    const Tensor &q, const Tensor &k, const Tensor &v, double scale,
    const std::function<bool(int64_t, int64_t, int64_t, int64_t)> &mask,
    const std::function<double(int64_t, int64_t, int64_t, int64_t, double)>
        &score,
    Tensor &out, Tensor &lse) {
  int64_t nb = q.shape[0], hq = q.shape[1], s = q.shape[2], dk = q.shape[3];
  int64_t hkv = k.shape[1], t = k.shape[2], dv = v.shape[3];
  out.dtype = lse.dtype = LOOM_DTYPE_F32;
  out.shape = {nb, hq, s, dv};
  lse.shape = {nb, hq, s};
  out.data.assign(nb * hq * s * dv, 0.0);
  lse.data.assign(nb * hq * s, 0.0);
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t h = 0; h < hq; ++h) {
      int64_t g = h / (hq / hkv);
      for (int64_t i = 0; i < s; ++i) {
        std::vector<double> logits;
        std::vector<int64_t> keys;
        for (int64_t j = 0; j < t; ++j) {
          if (!mask(b, h, i, j))
            continue;
          double dot = 0;
          for (int64_t d = 0; d < dk; ++d)
            dot += q.data[((b * hq + h) * s + i) * dk + d] *
                   k.data[((b * hkv + g) * t + j) * dk + d];
          logits.push_back(score(b, h, i, j, scale * dot));
          keys.push_back(j);
        }
        double *o = &out.data[((b * hq + h) * s + i) * dv];
        double &l = lse.data[(b * hq + h) * s + i];
        if (keys.empty()) {
          l = -std::numeric_limits<double>::infinity();
          continue;
        }
        double top = *std::max_element(logits.begin(), logits.end());
        double sum = 0;
        for (double x : logits)
          sum += std::exp(x - top);
        l = top + std::log(sum);
        for (size_t n = 0; n < keys.size(); ++n) {
          double p = std::exp(logits[n] - l);
          for (int64_t d = 0; d < dv; ++d)
            o[d] += p * v.data[((b * hkv + g) * t + keys[n]) * dv + d];
        }
      }
    }
}

Tensor randomTensor(std::vector<int64_t> shape, std::mt19937 &rng) {
  Tensor t;
  t.dtype = LOOM_DTYPE_F32;
  t.shape = std::move(shape);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int64_t n = 0, e = t.getNumElements(); n < e; ++n)
    t.data.push_back(static_cast<float>(normal(rng)));
  return t;
}

Tensor intTensor(const std::vector<int32_t> &values) {
  Tensor t;
  t.dtype = LOOM_DTYPE_I32;
  t.shape = {static_cast<int64_t>(values.size())};
  t.data.assign(values.begin(), values.end());
  return t;
}

/// Compares `got` with `want` elementwise: |got - want| <= atol + rtol |want|,
/// and -inf exactly where the reference has it.
::testing::AssertionResult near(const char *what, const Tensor &got,
                                const Tensor &want, double atol, double rtol) {
  if (got.shape != want.shape)
    return ::testing::AssertionFailure() << what << ": shapes differ";
  for (size_t n = 0; n < want.data.size(); ++n) {
    double g = got.data[n], w = want.data[n];
    if (std::isinf(w)) {
      if (g != w)
        return ::testing::AssertionFailure()
               << what << "[" << n << "] = " << g << ", want " << w;
      continue;
    }
    if (!(std::fabs(g - w) <= atol + rtol * std::fabs(w)))
      return ::testing::AssertionFailure()
             << what << "[" << n << "] = " << g << ", want " << w;
  }
  return ::testing::AssertionSuccess();
}

class AttentionArtifactTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    MLIRContext &context = getContext();
    context.getOrLoadDialect<fuse::FuseDialect>();
    llvm::SmallString<128> dirPath;
    ASSERT_FALSE(
        llvm::sys::fs::createUniqueDirectory("loom-attention", dirPath));
    dir = dirPath.str().str();
    std::string diagnostics;
    llvm::raw_string_ostream os(diagnostics);
    llvm::SourceMgr sourceMgr;
    sourceMgr.AddNewSourceBuffer(
        llvm::MemoryBuffer::getMemBufferCopy(kArtifactSource, "attention.mlir"),
        llvm::SMLoc());
    SourceMgrDiagnosticHandler handler(sourceMgr, &context, os);
    OwningOpRef<ModuleOp> module =
        parseSourceFile<ModuleOp>(sourceMgr, &context);
    ASSERT_TRUE(module) << diagnostics;
    mlir::loom::CompileOptions options;
    options.compilerVersion = "loom-e2e-tests";
    std::string path = dir + "/attention.so";
    std::string unused;
    llvm::raw_string_ostream out(unused);
    ASSERT_TRUE(
        succeeded(mlir::loom::compileModule(*module, options, out, path)))
        << diagnostics;
    ASSERT_EQ(loom_artifact_open(path.c_str(), &artifact), nullptr);
    ASSERT_EQ(loom_session_create(artifact, nullptr, &session), nullptr);
  }

  static void TearDownTestSuite() {
    loom_session_destroy(session);
    loom_artifact_close(artifact);
    session = nullptr;
    artifact = nullptr;
    if (!dir.empty())
      llvm::sys::fs::remove_directories(dir);
  }

  /// Runs `entry` on `inputs` through the runtime.
  ::testing::AssertionResult invoke(const std::string &entry,
                                    const Tensors &inputs, Tensors &outputs) {
    if (!session)
      return ::testing::AssertionFailure() << "no session";
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
      return ::testing::AssertionFailure() << describe(s);
    RtMap map(out);
    for (size_t i = 0; i < loom_tensor_map_size(out); ++i)
      outputs[loom_tensor_map_name_at(out, i)] =
          fromRuntime(loom_tensor_map_tensor_at(out, i));
    return ::testing::AssertionSuccess();
  }

  static std::string dir;
  static loom_artifact_t *artifact;
  static loom_session_t *session;
};

std::string AttentionArtifactTest::dir;
loom_artifact_t *AttentionArtifactTest::artifact = nullptr;
loom_session_t *AttentionArtifactTest::session = nullptr;

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
    ASSERT_TRUE(invoke("tree", inputs, got));
    Tensor out, lse;
    referenceAttention(
        inputs["q"], inputs["k"], inputs["v"], 0.25,
        [&](int64_t, int64_t, int64_t i, int64_t j) {
          return m.a[j] <= m.a[i] && m.c[i] <= m.c[j];
        },
        [](int64_t, int64_t h, int64_t, int64_t, double x) {
          return 5.0 * std::tanh(x / 5.0) - 0.25 * static_cast<double>(h);
        },
        out, lse);
    EXPECT_TRUE(near("out", got["out"], out, 2e-5, 2e-4));
    EXPECT_TRUE(near("lse", got["lse"], lse, 2e-5, 2e-4));
  }
}

TEST_F(AttentionArtifactTest, FullyMaskedRowsGiveZeroAndMinusInfinity) {
  std::mt19937 rng(11);
  for (auto [s, t] : {std::pair<int64_t, int64_t>{70, 70}, {5, 90}}) {
    SCOPED_TRACE("S = " + std::to_string(s) + ", T = " + std::to_string(t));
    Tensors inputs = {{"q", randomTensor({2, 2, s, 8}, rng)},
                      {"k", randomTensor({2, 2, t, 8}, rng)},
                      {"v", randomTensor({2, 2, t, 8}, rng)}};
    Tensors got;
    ASSERT_TRUE(invoke("strict", inputs, got));
    Tensor out, lse;
    referenceAttention(
        inputs["q"], inputs["k"], inputs["v"], 0.35,
        [](int64_t, int64_t, int64_t i, int64_t j) { return j < i; },
        [](int64_t, int64_t, int64_t, int64_t, double x) { return x; }, out,
        lse);
    EXPECT_TRUE(near("out", got["out"], out, 2e-5, 2e-4));
    EXPECT_TRUE(near("lse", got["lse"], lse, 2e-5, 2e-4));
    for (int64_t n = 0; n < 4; ++n)
      EXPECT_EQ(got["lse"].data[n * s],
                -std::numeric_limits<double>::infinity());
  }
}

} // namespace
