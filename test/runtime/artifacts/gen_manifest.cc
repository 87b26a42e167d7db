//===- gen_manifest.cc - Write test artifact manifests as C ---------------===//
//
// This file is a build-time generator for the runtime tests: it lays out a
// Loom manifest blob for the hand-written test artifact (test_artifact.c)
// exactly as abi.h describes, and prints it as a C array placed in the
// manifest section, so artifacts can be tested without the compiler. The
// file checksum is left zero; loom-seal patches it after linking.
//
//===----------------------------------------------------------------------===//

#include "loom/abi.h"

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

struct Arg {
  std::string name;
  loom_arg_role_t role;
  loom_dtype_t dtype;
  std::vector<int64_t> dims;
  std::string binding;
};

struct Term {
  int64_t coeff;
  loom_requirement_term_kind_t kind;
  uint32_t index;
  std::string name;
};

struct Requirement {
  loom_requirement_predicate_t predicate;
  int64_t constant;
  std::vector<Term> terms;
  std::string text;
  std::string configs;
  std::string location;
};

struct Entry {
  std::string name;
  std::vector<Arg> args;
  std::vector<Requirement> requirements = {};
};

/// Builds a manifest: strings are interned, tables laid out in the order
/// header, symbols, imports, entries, args, requirements, terms, dims,
/// strings.
class ManifestBuilder {
public:
  std::vector<std::string> symbols;
  std::vector<std::pair<std::string, std::string>> imports;
  std::vector<Entry> entries;
  loom_target_t target = LOOM_TARGET_CPU;
  std::string targetCpu = "generic";

  /// A symbolic dim by name, for Arg::dims.
  int64_t sym(const std::string &name) {
    for (size_t i = 0; i < symbols.size(); ++i)
      if (symbols[i] == name)
        return -static_cast<int64_t>(i) - 1;
    symbols.push_back(name);
    return -static_cast<int64_t>(symbols.size());
  }

  std::vector<uint8_t> build() {
    size_t numArgs = 0, numDims = 0, numReqs = 0, numTerms = 0;
    for (const Entry &e : entries) {
      numArgs += e.args.size();
      for (const Arg &a : e.args)
        numDims += a.dims.size();
      numReqs += e.requirements.size();
      for (const Requirement &r : e.requirements)
        numTerms += r.terms.size();
    }
    loom_manifest_header_t h = {};
    std::memcpy(h.magic, LOOM_MANIFEST_MAGIC, 8);
    h.abi_version = LOOM_ABI_VERSION;
    h.header_size = sizeof(h);
    h.target = target;
    uint32_t off = sizeof(h);
    h.num_symbols = symbols.size();
    h.symbols_offset = off;
    off = align(off + 4 * symbols.size(), 8);
    h.num_imports = imports.size();
    h.imports_offset = off;
    off += sizeof(loom_manifest_import_t) * imports.size();
    h.num_entries = entries.size();
    h.entries_offset = off;
    off += sizeof(loom_manifest_entry_t) * entries.size();
    uint32_t argsOffset = off;
    off = align(off + sizeof(loom_manifest_arg_t) * numArgs, 8);
    uint32_t reqsOffset = off;
    off += sizeof(loom_manifest_requirement_t) * numReqs;
    uint32_t termsOffset = off;
    off += sizeof(loom_manifest_term_t) * numTerms;
    uint32_t dimsOffset = off;
    off += 8 * numDims;
    h.strings_offset = off;

    h.compiler_version = str("loom-test-gen 0");
    h.target_cpu = str(targetCpu);
    std::vector<uint32_t> symbolStrings;
    for (const std::string &s : symbols)
      symbolStrings.push_back(str(s));
    std::vector<loom_manifest_import_t> importTable;
    for (const auto &imp : imports)
      importTable.push_back({str(imp.first), str(imp.second)});
    std::vector<loom_manifest_entry_t> entryTable;
    std::vector<loom_manifest_arg_t> argTable;
    std::vector<loom_manifest_requirement_t> reqTable;
    std::vector<loom_manifest_term_t> termTable;
    std::vector<int64_t> dimTable;
    for (const Entry &e : entries) {
      entryTable.push_back(
          {str(e.name), str(LOOM_ENTRY_SYMBOL_PREFIX + e.name),
           static_cast<uint32_t>(e.args.size()),
           static_cast<uint32_t>(argsOffset +
                                 sizeof(loom_manifest_arg_t) * argTable.size()),
           static_cast<uint32_t>(e.requirements.size()),
           static_cast<uint32_t>(reqsOffset +
                                 sizeof(loom_manifest_requirement_t) *
                                     reqTable.size())});
      for (const Requirement &r : e.requirements) {
        loom_manifest_requirement_t req = {};
        req.constant = r.constant;
        req.predicate = r.predicate;
        req.num_terms = static_cast<uint32_t>(r.terms.size());
        req.terms_offset = static_cast<uint32_t>(
            termsOffset + sizeof(loom_manifest_term_t) * termTable.size());
        req.text = str(r.text);
        req.configs = str(r.configs);
        req.location = str(r.location);
        reqTable.push_back(req);
        for (const Term &t : r.terms)
          termTable.push_back({t.coeff, static_cast<uint32_t>(t.kind), t.index,
                               str(t.name), 0});
      }
      for (const Arg &a : e.args) {
        argTable.push_back(
            {str(a.name), static_cast<uint32_t>(a.role),
             static_cast<uint32_t>(a.dtype),
             static_cast<uint32_t>(a.dims.size()),
             str(a.binding.empty() ? a.name : a.binding),
             static_cast<uint32_t>(dimsOffset + 8 * dimTable.size())});
        dimTable.insert(dimTable.end(), a.dims.begin(), a.dims.end());
      }
    }
    h.strings_size = strings.size();
    h.total_size = align(off + strings.size(), 8);

    std::vector<uint8_t> blob(h.total_size, 0);
    put(blob, 0, &h, sizeof(h));
    put(blob, h.symbols_offset, symbolStrings.data(), 4 * symbolStrings.size());
    put(blob, h.imports_offset, importTable.data(),
        sizeof(loom_manifest_import_t) * importTable.size());
    put(blob, h.entries_offset, entryTable.data(),
        sizeof(loom_manifest_entry_t) * entryTable.size());
    put(blob, argsOffset, argTable.data(),
        sizeof(loom_manifest_arg_t) * argTable.size());
    put(blob, reqsOffset, reqTable.data(),
        sizeof(loom_manifest_requirement_t) * reqTable.size());
    put(blob, termsOffset, termTable.data(),
        sizeof(loom_manifest_term_t) * termTable.size());
    put(blob, dimsOffset, dimTable.data(), 8 * dimTable.size());
    put(blob, h.strings_offset, strings.data(), strings.size());
    return blob;
  }

private:
  std::string strings = std::string(1, '\0');
  std::map<std::string, uint32_t> interned;

  static uint32_t align(size_t v, size_t a) {
    return static_cast<uint32_t>((v + a - 1) / a * a);
  }
  uint32_t str(const std::string &s) {
    auto it = interned.find(s);
    if (it != interned.end())
      return it->second;
    uint32_t off = strings.size();
    strings += s;
    strings.push_back('\0');
    interned[s] = off;
    return off;
  }
  static void put(std::vector<uint8_t> &blob, size_t off, const void *p,
                  size_t n) {
    if (n)
      std::memcpy(blob.data() + off, p, n);
  }
};

} // namespace

static int writeManifest(ManifestBuilder &b, const std::string &variant,
                         const char *path);

/// The manifest of cuda_artifact.c: a CUDA artifact for sm_80 whose
/// entries import MLIR's GPU runtime functions.
static void buildCuda(ManifestBuilder &b) {
  const auto F32 = LOOM_DTYPE_F32;
  b.target = LOOM_TARGET_CUDA;
  b.targetCpu = "sm_80";
  int64_t N = b.sym("N");
  for (const char *name :
       {"mgpuModuleLoad", "mgpuModuleGetFunction", "mgpuLaunchKernel",
        "mgpuStreamCreate", "mgpuStreamDestroy", "mgpuStreamSynchronize",
        "mgpuEventCreate", "mgpuEventRecord", "mgpuStreamWaitEvent",
        "mgpuEventDestroy", "mgpuMemAlloc", "mgpuMemFree", "mgpuMemcpy",
        "mgpuMemset32"})
    b.imports.push_back({name, std::string("loom_import_") + name});
  b.entries.push_back({"fma",
                       {{"x", LOOM_ROLE_INPUT, F32, {N}, ""},
                        {"w", LOOM_ROLE_PARAM, F32, {N}, "w.weight"},
                        {"y", LOOM_ROLE_OUTPUT, F32, {N}, ""}}});
  b.entries.push_back({"accum",
                       {{"x", LOOM_ROLE_INPUT, F32, {4}, ""},
                        {"acc", LOOM_ROLE_STATE, F32, {4}, "acc"},
                        {"out", LOOM_ROLE_OUTPUT, F32, {4}, ""}}});
  b.entries.push_back({"copy",
                       {{"x", LOOM_ROLE_INPUT, F32, {N}, ""},
                        {"pos", LOOM_ROLE_INPUT, LOOM_DTYPE_I64, {}, ""},
                        {"y", LOOM_ROLE_OUTPUT, F32, {N}, ""}},
                       {{LOOM_REQUIREMENT_GE,
                         0,
                         {{1, LOOM_TERM_INPUT, 1, "pos"}},
                         "pos >= 0",
                         "",
                         "copy.loom:2:3"}}});
}

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s good|unknown_import|cuda OUT.inc\n",
                 argv[0]);
    return 2;
  }
  std::string variant = argv[1];
  ManifestBuilder b;
  const auto F32 = LOOM_DTYPE_F32;
  if (variant == "cuda") {
    buildCuda(b);
    return writeManifest(b, variant, argv[2]);
  }
  int64_t N = b.sym("N"), B = b.sym("B"), M = b.sym("M"), K = b.sym("K"),
          P = b.sym("P");
  b.imports.push_back({"loom_rt_parallel_for", "loom_import_parallel_for"});
  b.imports.push_back({"loom_rt_matmul_f32", "loom_import_matmul_f32"});
  b.imports.push_back({"loom_rt_alloc", "loom_import_alloc"});
  b.imports.push_back({"loom_rt_free", "loom_import_free"});
  if (variant == "unknown_import")
    b.imports.push_back({"loom_rt_does_not_exist", "loom_import_missing"});
  else if (variant != "good") {
    std::fprintf(stderr, "unknown variant '%s'\n", variant.c_str());
    return 2;
  }
  b.entries.push_back({"add",
                       {{"x", LOOM_ROLE_INPUT, F32, {N}, ""},
                        {"y", LOOM_ROLE_INPUT, F32, {N}, ""},
                        {"z", LOOM_ROLE_OUTPUT, F32, {N}, ""}}});
  b.entries.push_back({"accum",
                       {{"x", LOOM_ROLE_INPUT, F32, {4}, ""},
                        {"acc", LOOM_ROLE_STATE, F32, {4}, "acc"},
                        {"out", LOOM_ROLE_OUTPUT, F32, {4}, ""}}});
  b.entries.push_back({"peek",
                       {{"total", LOOM_ROLE_STATE, F32, {4}, "acc"},
                        {"out", LOOM_ROLE_OUTPUT, F32, {4}, ""}}});
  b.entries.push_back({"scale",
                       {{"x", LOOM_ROLE_INPUT, F32, {B, 4}, ""},
                        {"w", LOOM_ROLE_PARAM, F32, {4}, "w.weight"},
                        {"y", LOOM_ROLE_OUTPUT, F32, {B, 4}, ""}}});
  b.entries.push_back({"mm",
                       {{"a", LOOM_ROLE_INPUT, F32, {M, K}, ""},
                        {"b", LOOM_ROLE_INPUT, F32, {K, P}, ""},
                        {"c", LOOM_ROLE_OUTPUT, F32, {M, P}, ""}}});
  b.entries.push_back({"sum",
                       {{"x", LOOM_ROLE_INPUT, F32, {N}, ""},
                        {"s", LOOM_ROLE_OUTPUT, F32, {}, ""}}});
  b.entries.push_back({"fail",
                       {{"code", LOOM_ROLE_INPUT, LOOM_DTYPE_I32, {}, ""},
                        {"y", LOOM_ROLE_OUTPUT, LOOM_DTYPE_I32, {}, ""}}});
  // Writes x into the state at pos, as a KV cache update would:
  //   require pos >= 0, pos + N <= max_len     (max_len = 8)
  //   require 2 * N != 6
  b.entries.push_back(
      {"window",
       {{"x", LOOM_ROLE_INPUT, F32, {N}, ""},
        {"pos", LOOM_ROLE_INPUT, LOOM_DTYPE_I64, {}, ""},
        {"buf", LOOM_ROLE_STATE, F32, {8}, "buf"},
        {"out", LOOM_ROLE_OUTPUT, F32, {8}, ""}},
       {{LOOM_REQUIREMENT_GE,
         0,
         {{1, LOOM_TERM_INPUT, 1, "pos"}},
         "pos >= 0",
         "",
         "window.loom:3:3"},
        {LOOM_REQUIREMENT_GE,
         8,
         {{-1, LOOM_TERM_INPUT, 1, "pos"},
          {-1, LOOM_TERM_SYMBOL, static_cast<uint32_t>(-N - 1), "N"}},
         "pos + N <= max_len",
         "max_len = 8",
         "window.loom:3:3"},
        {LOOM_REQUIREMENT_NE,
         -6,
         {{2, LOOM_TERM_SYMBOL, static_cast<uint32_t>(-N - 1), "N"}},
         "2 * N != 6",
         "",
         "window.loom:4:3"}}});
  return writeManifest(b, variant, argv[2]);
}

/// Writes the manifest of `b` as C to `path`.
static int writeManifest(ManifestBuilder &b, const std::string &variant,
                         const char *path) {
  std::vector<uint8_t> blob = b.build();
  FILE *f = std::fopen(path, "w");
  if (!f) {
    std::perror(path);
    return 1;
  }
  std::fprintf(f,
               "/* Generated by gen_manifest (%s); do not edit. */\n"
               "__attribute__((section(\"" LOOM_MANIFEST_SECTION "\"), used, "
               "aligned(8), visibility(\"default\")))\n"
               "const unsigned char " LOOM_MANIFEST_SYMBOL "[%zu] = {",
               variant.c_str(), blob.size());
  for (size_t i = 0; i < blob.size(); ++i)
    std::fprintf(f, "%s0x%02x,", i % 16 ? "" : "\n  ", blob[i]);
  std::fprintf(f, "\n};\n");
  return std::fclose(f) == 0 ? 0 : 1;
}
