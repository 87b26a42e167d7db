//===- loom-compile.cpp - The Loom compiler driver --------------*- C++ -*-===//
//
// This file implements loom-compile: a `.loom` model (or `loom`-dialect
// MLIR) in, a shared-object artifact out, with every stage printable through
// --emit.
//
//===----------------------------------------------------------------------===//

#include "compiler/Pipelines/Compile.h"
#include "compiler/Pipelines/Pipelines.h"
#include "dialects/fuse/IR/FuseOps.h"
#include "dialects/loom/IR/LoomDialect.h"
#include "frontend/AST.h"
#include "frontend/Config.h"
#include "frontend/Importer.h"
#include "frontend/Parser.h"
#include "frontend/Sema.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
namespace cl = llvm::cl;

#ifndef LOOM_VERSION
#define LOOM_VERSION "dev"
#endif

namespace {
enum class Emit { Artifact, Ast, Loom, Fuse, Linalg, Llvm, Asm, Ptx };
} // namespace

static cl::OptionCategory category("loom-compile options");

static cl::opt<std::string> inputFile(cl::Positional,
                                      cl::desc("<model.loom | model.mlir>"),
                                      cl::Required, cl::cat(category));
static cl::opt<std::string>
    outputFile("o", cl::desc("Output file (artifact: MODEL.so; --emit: -)"),
               cl::value_desc("file"), cl::cat(category));
static cl::opt<Emit>
    emit("emit", cl::desc("What to produce"), cl::init(Emit::Artifact),
         cl::values(clEnumValN(Emit::Artifact, "so", "the artifact (default)"),
                    clEnumValN(Emit::Ast, "ast", "the parsed .loom file"),
                    clEnumValN(Emit::Loom, "loom",
                               "the loom dialect after graph passes"),
                    clEnumValN(Emit::Fuse, "fuse",
                               "after the fusing passes (attention, token "
                               "log-probs, MLA absorption)"),
                    clEnumValN(Emit::Linalg, "linalg", "linalg on tensors"),
                    clEnumValN(Emit::Llvm, "llvm", "optimized LLVM IR"),
                    clEnumValN(Emit::Asm, "asm", "host assembly"),
                    clEnumValN(Emit::Ptx, "ptx",
                               "the PTX of the GPU kernels (--target=cuda)")),
         cl::cat(category));
static cl::list<std::string> defines("define",
                                     cl::desc("Override a config: NAME=VALUE"),
                                     cl::value_desc("NAME=VALUE"),
                                     cl::cat(category));
static cl::alias defineAlias("D", cl::desc("Alias for --define"),
                             cl::aliasopt(defines), cl::Prefix);
static cl::opt<std::string>
    configFile("config", cl::desc("Override configs from a flat JSON object"),
               cl::value_desc("file.json"), cl::cat(category));
static cl::opt<std::string>
    target("target",
           cl::desc("What the artifact runs on: cpu or cuda (for cuda, "
                    "--attention defaults to auto, --logprob to unfused and "
                    "--mla to naive; --mla=absorb compiles the MLA decode "
                    "kernel for f16 and bf16)"),
           cl::init("cpu"), cl::cat(category));
static cl::opt<std::string>
    smVersion("sm",
              cl::desc("GPU architecture of --target=cuda: 80, 86, 89, 90 or "
                       "90a (default 90a)"),
              cl::init("90a"), cl::cat(category));
static cl::opt<std::string> cudaBinary(
    "cuda-binary",
    cl::desc("Kernels of --target=cuda as: auto (cubin when ptxas is found, "
             "else PTX; default), ptx (compiled by the driver at load) or "
             "cubin (compiled by ptxas now)"),
    cl::init("auto"), cl::cat(category));
static cl::opt<std::string> wgmma(
    "wgmma",
    cl::desc("Hopper's warpgroup MMA (wgmma.mma_async) instead of mma.sync "
             "in the GPU kernels: auto (where it is faster on sm_90a: the "
             "MLA decode kernel; default), on (also the attention kernel's "
             "q k^T; --target=cuda --sm=90a; --wgmma alone) or off"),
    cl::init("auto"), cl::ValueOptional, cl::value_desc("auto|on|off"),
    cl::cat(category));
static cl::opt<unsigned> logprobRows(
    "logprob-rows",
    cl::desc("Tokens per block of the single-pass lm-head loss of "
             "--logprob=fused (0: as many as fit 32 MiB of logits, in "
             "[128, 4096])"),
    cl::init(0), cl::Hidden, cl::cat(category));
static cl::opt<unsigned> mlaWgmmaKeys(
    "mla-wgmma-keys",
    cl::desc("Cache positions of a tile of the wgmma MLA decode kernel: 64 "
             "(two tiles in shared memory; default) or 32 (three)"),
    cl::init(64), cl::Hidden, cl::cat(category));
static cl::opt<unsigned> mlaWgmmaStages(
    "mla-wgmma-stages",
    cl::desc("Tiles of the wgmma MLA decode kernel in shared memory, 2 to 4 "
             "(default: 2 of 64 positions, 3 of 32; where they do not fit, "
             "tiles of 32, then the mma.sync kernel)"),
    cl::init(0), cl::Hidden, cl::cat(category));
static cl::opt<unsigned> mlaTargetBlocks(
    "mla-target-blocks",
    cl::desc("Blocks the GPU MLA decode kernel's splits of the cache aim for "
             "(default 128: one wave of a 132-multiprocessor GPU at one "
             "block per multiprocessor)"),
    cl::init(128), cl::Hidden, cl::cat(category));
static cl::opt<std::string> mlaWgmmaP(
    "mla-wgmma-p",
    cl::desc("Where the wgmma MLA decode kernel keeps P: shared (the "
             "warpgroups score half of a tile's keys each and exchange P "
             "through shared memory), registers (each scores all the keys "
             "and keeps its P in registers) or split (the first scores all "
             "the keys and hands its P registers to the second, which "
             "loads the tiles: FlashMLA's split; default)"),
    cl::init("split"), cl::value_desc("shared|registers|split"), cl::Hidden,
    cl::cat(category));
static cl::opt<std::string> mlaWgmmaLoads(
    "mla-wgmma-loads",
    cl::desc("How the wgmma MLA decode kernel loads the cache tiles: "
             "cp-async (every thread), cp-async-swizzled (whole 128-byte "
             "lines into the 128-byte swizzled layout), tma (bulk tensor "
             "copies by one warp, boxes of 8 columns) or tma-swizzled "
             "(boxes of 64 columns, 128-byte swizzled; default)"),
    cl::init("tma-swizzled"),
    cl::value_desc("cp-async|cp-async-swizzled|tma|tma-swizzled"), cl::Hidden,
    cl::cat(category));
static cl::opt<bool> mlaWgmmaOverlap(
    "mla-wgmma-overlap",
    cl::desc("With --mla-wgmma-p=split and --mla-wgmma-loads=tma or "
             "tma-swizzled: no block barrier between the wgmma MLA decode "
             "kernel's tiles, so that the first warpgroup scores the next "
             "tile while the second multiplies this one's P (default: on "
             "where those are the choices)"),
    cl::init(true), cl::Hidden, cl::cat(category));
static cl::opt<std::string>
    cpuName("cpu", cl::desc("LLVM CPU name (default: the host CPU)"),
            cl::cat(category));
static cl::opt<std::string> matmul(
    "matmul",
    cl::desc("Matrix products: runtime (the runtime's GEMM: oneDNN for f32 "
             "where built with it; cuBLAS for --target=cuda, f32, f16 and "
             "bf16; default) or codegen (generated loops)"),
    cl::init("runtime"), cl::cat(category));
static cl::opt<bool> foldTransposes(
    "fold-transposes",
    cl::desc("GEMM calls and fused attention read and write transposed "
             "operands through strides instead of transposed copies "
             "(default true; false keeps the copies, for comparison)"),
    cl::init(true), cl::cat(category));
static cl::opt<mlir::loom::MlaMode>
    mla("mla",
        cl::desc("How multi-head latent attention (mla_attention) is compiled"),
        cl::init(mlir::loom::MlaMode::Absorb),
        cl::values(clEnumValN(mlir::loom::MlaMode::Absorb, "absorb",
                              "cache the latent and rope key only; absorbed "
                              "weights, fused decode kernel (default)"),
                   clEnumValN(mlir::loom::MlaMode::Naive, "naive",
                              "cache per-head K and V, as DeepSeek's naive "
                              "path")),
        cl::cat(category));
static cl::opt<mlir::loom::AttentionMode> attention(
    "attention",
    cl::desc("How attention (loom.attention and the softmax(q k^T) v "
             "composite) is compiled"),
    cl::init(mlir::loom::AttentionMode::Fused),
    cl::values(clEnumValN(mlir::loom::AttentionMode::Fused, "fused",
                          "one flash-attention kernel with the mask and "
                          "score regions; hidden blocks skipped (default)"),
               clEnumValN(mlir::loom::AttentionMode::Unfused, "unfused",
                          "materialize the [B, H, Sq, Skv] scores with "
                          "linalg, the baseline"),
               clEnumValN(mlir::loom::AttentionMode::Auto, "auto",
                          "fused where the target's kernel compiles it "
                          "(default for --target=cuda: f16 and bf16 "
                          "attention with head dims multiples of 16 up to "
                          "128)")),
    cl::cat(category));
static cl::opt<mlir::loom::LogprobMode> logprob(
    "logprob",
    cl::desc("How token_logprob with an lm-head (token_logprob(linear(h, "
             "w), ids)) and its backward are compiled"),
    cl::init(mlir::loom::LogprobMode::Fused),
    cl::values(clEnumValN(mlir::loom::LogprobMode::Fused, "fused",
                          "kernels whose [tokens, vocab] logits never exist "
                          "(default): where the loss's gradient of each "
                          "log-prob reads that log-prob only, one pass "
                          "over blocks of tokens (three lm-head products "
                          "per token), else two-pass"),
               clEnumValN(mlir::loom::LogprobMode::TwoPass, "two-pass",
                          "a forward and a backward kernel that walk the "
                          "vocabulary in chunks (the backward computes the "
                          "products again: four per token)"),
               clEnumValN(mlir::loom::LogprobMode::Unfused, "unfused",
                          "materialize the logits with linalg, the "
                          "baseline"),
               clEnumValN(mlir::loom::LogprobMode::Chunked, "chunked",
                          "fused, compiled as for --target=cuda (chunks "
                          "of GEMM calls and generated loops) instead of "
                          "the CPU runtime's kernel")),
    cl::cat(category));
static cl::opt<unsigned> optLevel("O", cl::desc("LLVM optimization level"),
                                  cl::init(3), cl::Prefix, cl::cat(category));

/// Writes `text` to the --emit destination.
static int writeText(llvm::StringRef text) {
  std::string error;
  std::string path = outputFile.empty() ? "-" : outputFile.getValue();
  auto out = openOutputFile(path, &error);
  if (!out) {
    llvm::errs() << "loom-compile: error: " << error << "\n";
    return 1;
  }
  out->os() << text;
  out->keep();
  return 0;
}

template <typename T> static std::string print(T &&value) {
  std::string text;
  llvm::raw_string_ostream os(text);
  value(os);
  return text;
}

/// Loads the input as a `loom`-dialect module, through the frontend for
/// `.loom` files. Errors are printed through the source manager.
static OwningOpRef<ModuleOp> load(MLIRContext &context,
                                  llvm::SourceMgr &sourceMgr, int &rc) {
  rc = 1;
  if (llvm::StringRef(inputFile).ends_with(".mlir")) {
    if (!defines.empty() || !configFile.empty()) {
      llvm::errs() << "loom-compile: error: --define and --config apply to "
                      ".loom inputs only\n";
      return nullptr;
    }
    if (emit == Emit::Ast) {
      llvm::errs() << "loom-compile: error: --emit=ast needs a .loom input\n";
      return nullptr;
    }
    return parseSourceFile<ModuleOp>(sourceMgr, &context);
  }
  std::unique_ptr<::loom::frontend::ModuleAST> ast =
      ::loom::frontend::parseModule(sourceMgr);
  if (!ast ||
      !::loom::frontend::applyConfigOverrides(*ast, defines, configFile,
                                              sourceMgr) ||
      !::loom::frontend::checkModule(*ast, sourceMgr))
    return nullptr;
  if (emit == Emit::Ast) {
    rc = writeText(print(
        [&](llvm::raw_ostream &os) { ::loom::frontend::dumpAST(*ast, os); }));
    return nullptr;
  }
  return ::loom::frontend::importModule(*ast, context, sourceMgr);
}

/// Whether string flag `flag` holds one of `choices`; else says so, as
/// "--flag must be a, b or c, got 'value'".
static bool oneOf(llvm::StringRef flag, llvm::StringRef value,
                  llvm::ArrayRef<llvm::StringRef> choices) {
  if (llvm::is_contained(choices, value))
    return true;
  llvm::errs() << "loom-compile: error: --" << flag << " must be ";
  for (size_t i = 0; i < choices.size(); ++i)
    llvm::errs() << (i == 0                    ? ""
                     : i + 1 == choices.size() ? " or "
                                               : ", ")
                 << choices[i];
  llvm::errs() << ", got '" << value << "'\n";
  return false;
}

static int compile() {
  if (target != "cpu" && target != "cuda") {
    llvm::errs() << "loom-compile: error: unknown target '" << target
                 << "' (cpu or cuda)\n";
    return 1;
  }
  // --wgmma alone, and the boolean spellings of the flag it once was.
  if (wgmma.empty() || wgmma == "true")
    wgmma = "on";
  else if (wgmma == "false")
    wgmma = "off";
  if (!oneOf("wgmma", wgmma, {"auto", "on", "off"}))
    return 1;
  if (mlaWgmmaKeys != 32 && mlaWgmmaKeys != 64) {
    llvm::errs() << "loom-compile: error: --mla-wgmma-keys must be 32 or "
                    "64, got "
                 << mlaWgmmaKeys << "\n";
    return 1;
  }
  if (mlaWgmmaStages.getNumOccurrences() &&
      (mlaWgmmaStages < 2 || mlaWgmmaStages > 4)) {
    llvm::errs() << "loom-compile: error: --mla-wgmma-stages must be 2, 3 "
                    "or 4, got "
                 << mlaWgmmaStages << "\n";
    return 1;
  }
  if (mlaTargetBlocks == 0) {
    llvm::errs() << "loom-compile: error: --mla-target-blocks must be "
                    "positive\n";
    return 1;
  }
  if (!oneOf("mla-wgmma-p", mlaWgmmaP, {"shared", "registers", "split"}) ||
      !oneOf("mla-wgmma-loads", mlaWgmmaLoads,
             {"cp-async", "cp-async-swizzled", "tma", "tma-swizzled"}))
    return 1;
  // The variants of the wgmma MLA decode kernel need that kernel: given
  // elsewhere they are refused, while their defaults apply only where it
  // is built.
  bool wgmmaMla = target == "cuda" && smVersion == "90a" && wgmma != "off";
  std::string pFlag = "--mla-wgmma-p=" + mlaWgmmaP;
  std::string loadsFlag = "--mla-wgmma-loads=" + mlaWgmmaLoads;
  for (auto [set, name] :
       {std::pair<bool, StringRef>{mlaWgmmaP.getNumOccurrences() > 0, pFlag},
        {mlaWgmmaStages.getNumOccurrences() > 0, "--mla-wgmma-stages"},
        {mlaWgmmaLoads.getNumOccurrences() > 0, loadsFlag},
        {mlaWgmmaOverlap.getNumOccurrences() && mlaWgmmaOverlap,
         "--mla-wgmma-overlap"}}) {
    if (set && !wgmmaMla) {
      llvm::errs() << "loom-compile: error: " << name
                   << " needs the wgmma MLA decode kernel (--target=cuda "
                      "--sm=90a, --wgmma not off)\n";
      return 1;
    }
  }
  // Asked for, the overlap needs its split and bulk copies; by default it
  // comes with them.
  bool overlapFits =
      mlaWgmmaP == "split" && StringRef(mlaWgmmaLoads).starts_with("tma");
  if (mlaWgmmaOverlap.getNumOccurrences() && mlaWgmmaOverlap && !overlapFits) {
    llvm::errs() << "loom-compile: error: --mla-wgmma-overlap needs "
                    "--mla-wgmma-p=split and --mla-wgmma-loads=tma or "
                    "tma-swizzled\n";
    return 1;
  }
  if (mlaTargetBlocks.getNumOccurrences() && target != "cuda") {
    llvm::errs() << "loom-compile: error: --mla-target-blocks sets the splits "
                    "of the GPU MLA decode kernel (--target=cuda)\n";
    return 1;
  }
  if (logprobRows.getNumOccurrences() &&
      (logprob != mlir::loom::LogprobMode::Fused || target == "cuda")) {
    llvm::errs() << "loom-compile: error: --logprob-rows sets the blocks of "
                    "--logprob=fused on the CPU target\n";
    return 1;
  }
  if (wgmma == "on" && (target != "cuda" || smVersion != "90a")) {
    llvm::errs() << "loom-compile: error: --wgmma needs --target=cuda and "
                    "--sm=90a (Hopper's wgmma.mma_async)\n";
    return 1;
  }
  if (!oneOf("cuda-binary", cudaBinary, {"auto", "ptx", "cubin"}))
    return 1;
  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registry.insert<mlir::loom::LoomDialect, mlir::fuse::FuseDialect>();
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  // A diagnostic names the model's line; the op in MLIR's generic form is
  // only printed when asked for (--mlir-print-op-on-diagnostic).
  cl::Option *printOp =
      cl::getRegisteredOptions().lookup("mlir-print-op-on-diagnostic");
  if (!printOp || printOp->getNumOccurrences() == 0)
    context.printOpOnDiagnostic(false);

  std::string error;
  auto file = openInputFile(inputFile, &error);
  if (!file) {
    llvm::errs() << "loom-compile: error: " << error << "\n";
    return 1;
  }
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);

  int rc = 0;
  OwningOpRef<ModuleOp> module = load(context, sourceMgr, rc);
  if (!module)
    return rc;

  if (!oneOf("matmul", matmul, {"runtime", "codegen"}))
    return 1;
  mlir::loom::CompileOptions options;
  options.hostMatmul = matmul == "runtime";
  options.foldTransposes = foldTransposes;
  options.mla = mla;
  options.attention = attention;
  options.logprob = logprob;
  options.logprobRows = logprobRows;
  options.cpu = cpuName;
  if (target == "cuda") {
    options.target = mlir::loom::Target::Cuda;
    options.gpuChip = "sm_" + smVersion;
    options.cudaAttentionWgmma = wgmma == "on";
    options.cudaMla.wgmma = smVersion == "90a" && wgmma != "off";
    options.cudaMla.keys = mlaWgmmaKeys;
    options.cudaMla.stages = mlaWgmmaStages;
    options.cudaMla.pRegisters = mlaWgmmaP == "registers";
    options.cudaMla.pSplit = mlaWgmmaP == "split";
    options.cudaMla.tma = mlaWgmmaLoads == "tma" ||
                          mlaWgmmaLoads == "tma-swizzled";
    options.cudaMla.overlap = mlaWgmmaOverlap && overlapFits;
    options.cudaMla.swizzle = mlaWgmmaLoads == "tma-swizzled" ||
                              mlaWgmmaLoads == "cp-async-swizzled";
    options.cudaMla.targetBlocks = mlaTargetBlocks;
    options.cudaBinary = cudaBinary == "ptx"     ? mlir::loom::CudaBinary::Ptx
                         : cudaBinary == "cubin" ? mlir::loom::CudaBinary::Cubin
                                                 : mlir::loom::CudaBinary::Auto;
    // The GPU has fused attention and MLA decode kernels for f16 and
    // bf16; attention is fused where the kernel takes it, MLA is absorbed
    // when asked for by name (--mla=absorb) and token log-probs run
    // unfused.
    if (mla.getNumOccurrences() == 0)
      options.mla = mlir::loom::MlaMode::Naive;
    if (attention.getNumOccurrences() == 0)
      options.attention = mlir::loom::AttentionMode::Auto;
    if (logprob.getNumOccurrences() == 0)
      options.logprob = mlir::loom::LogprobMode::Unfused;
  }
  options.optLevel = optLevel;
  options.compilerVersion = "loom-compile " LOOM_VERSION;
  options.useCommandLineOptions = true;
  switch (emit) {
  case Emit::Loom:
    options.stopAfter = mlir::loom::CompileStage::Loom;
    break;
  case Emit::Fuse:
    options.stopAfter = mlir::loom::CompileStage::Fuse;
    break;
  case Emit::Linalg:
    options.stopAfter = mlir::loom::CompileStage::Linalg;
    break;
  case Emit::Llvm:
    options.stopAfter = mlir::loom::CompileStage::Llvm;
    break;
  case Emit::Asm:
    options.stopAfter = mlir::loom::CompileStage::Asm;
    break;
  case Emit::Ptx:
    options.stopAfter = mlir::loom::CompileStage::Ptx;
    break;
  default:
    options.stopAfter = mlir::loom::CompileStage::Artifact;
  }
  std::string artifact = outputFile;
  if (artifact.empty()) {
    llvm::SmallString<128> path(llvm::sys::path::filename(inputFile));
    llvm::sys::path::replace_extension(path, "so");
    artifact = path.str().str();
  }
  std::string text;
  llvm::raw_string_ostream os(text);
  if (failed(mlir::loom::compileModule(*module, options, os, artifact)))
    return 1;
  if (options.stopAfter != mlir::loom::CompileStage::Artifact)
    return writeText(text);
  return 0;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  registerAllPasses();
  mlir::loom::registerLoomPipelines();
  registerMLIRContextCLOptions();
  registerPassManagerCLOptions();
  registerAsmPrinterCLOptions();
  // --help lists the driver's options and MLIR's IR dumps; the flags that
  // LLVM's code generators register stay usable and --help-hidden lists
  // them.
  static cl::OptionCategory irCategory("IR dumps (MLIR)");
  for (auto &[name, option] : cl::getRegisteredOptions()) {
    if (name.starts_with("mlir-print-ir") ||
        llvm::is_contained({"mlir-pass-statistics", "mlir-print-debuginfo",
                            "mlir-print-local-scope", "mlir-disable-threading",
                            "mlir-elide-elementsattrs-if-larger"},
                           name)) {
      option->addCategory(irCategory);
      continue;
    }
    if (!llvm::is_contained(option->Categories, &category) &&
        option->getOptionHiddenFlag() == cl::NotHidden &&
        !llvm::is_contained({"help", "help-list", "version"}, name))
      option->setHiddenFlag(cl::Hidden);
  }
  cl::ParseCommandLineOptions(
      argc, argv,
      "Loom compiler: .loom model -> shared-object artifact\n\n"
      "  loom-compile model.loom -o model.so [--define NAME=VALUE]... "
      "[--config FILE.json]\n"
      "  loom-compile model.loom --emit=ast|loom|fuse|linalg|llvm|asm\n"
      "  loom-compile model.loom --target=cuda [--sm=80|90a] -o model.so\n"
      "  loom-compile model.loom --target=cuda --emit=ptx\n"
      "  loom-compile models/mla.loom --mla=absorb|naive -o mla.so\n"
      "  loom-compile models/mla_core.loom --target=cuda --mla=absorb -o "
      "mla.so\n"
      "  loom-compile model.loom --attention=fused|unfused -o model.so\n"
      "  loom-compile model.loom --logprob=fused|two-pass|unfused|chunked -o "
      "model.so\n");
  return compile();
}
