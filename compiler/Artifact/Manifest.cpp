//===- Manifest.cpp - Artifact manifests ------------------------*- C++ -*-===//
//
// This file collects, serializes and seals artifact manifests. The layout is
// the one of runtime/include/loom/abi.h, which the runtime validates before
// it maps the file.
//
//===----------------------------------------------------------------------===//

#include "compiler/Artifact/Manifest.h"

#include "compiler/Artifact/Requirements.h"

#include "loom/abi.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Object/ELFObjectFile.h"
#include "llvm/Object/ObjectFile.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <cstring>

using namespace mlir;
using namespace mlir::loom;

uint32_t mlir::loom::dtypeOf(Type type) {
  if (type.isF32())
    return LOOM_DTYPE_F32;
  if (type.isF64())
    return LOOM_DTYPE_F64;
  if (type.isF16())
    return LOOM_DTYPE_F16;
  if (type.isBF16())
    return LOOM_DTYPE_BF16;
  if (type.isInteger(1))
    return LOOM_DTYPE_BOOL;
  if (type.isInteger(32))
    return LOOM_DTYPE_I32;
  if (type.isInteger(64))
    return LOOM_DTYPE_I64;
  return 0;
}

static uint32_t roleOf(StringRef role) {
  return llvm::StringSwitch<uint32_t>(role)
      .Case("input", LOOM_ROLE_INPUT)
      .Case("param", LOOM_ROLE_PARAM)
      .Case("state", LOOM_ROLE_STATE)
      .Case("output", LOOM_ROLE_OUTPUT)
      .Default(0);
}

FailureOr<Manifest> mlir::loom::collectManifest(ModuleOp module) {
  Manifest manifest;
  manifest.target = LOOM_TARGET_CPU;
  llvm::StringMap<unsigned> symbolIds;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (!func.isPublic() || func.isExternal())
      continue;
    ManifestEntry entry;
    entry.name = func.getSymName().str();
    entry.symbol = LOOM_ENTRY_SYMBOL_PREFIX + entry.name;
    uint32_t lastRole = 0;
    for (unsigned i = 0; i < func.getNumArguments(); ++i) {
      auto type = dyn_cast<MemRefType>(func.getArgumentTypes()[i]);
      auto role = func.getArgAttrOfType<StringAttr>(i, "loom.role");
      if (!type || !role)
        return func.emitOpError("argument ")
               << i << " is not an ABI memref with a loom.role";
      ManifestArg arg;
      arg.role = roleOf(role.getValue());
      arg.dtype = dtypeOf(type.getElementType());
      if (!arg.role || !arg.dtype)
        return func.emitOpError("argument ")
               << i << " has an unsupported role or element type";
      if (arg.role < lastRole)
        return func.emitOpError("arguments are not ordered inputs, params, "
                                "states, outputs");
      lastRole = arg.role;
      if (type.getRank() > LOOM_MAX_RANK)
        return func.emitOpError("argument ")
               << i << " has rank " << type.getRank() << " > " << LOOM_MAX_RANK;
      if (auto name = func.getArgAttrOfType<StringAttr>(i, "loom.name"))
        arg.name = name.getValue().str();
      else
        arg.name = "arg" + std::to_string(i);
      // Inputs and outputs are bound by their own names (abi.h).
      auto binding = func.getArgAttrOfType<StringAttr>(i, "loom.binding");
      bool bound = arg.role == LOOM_ROLE_PARAM || arg.role == LOOM_ROLE_STATE;
      arg.binding = bound && binding ? binding.getValue().str() : arg.name;
      // The runtime refuses static shapes of more than 2^56 elements.
      if (type.hasStaticShape()) {
        uint64_t elements = 1;
        bool tooLarge = false;
        for (int64_t size : type.getShape()) {
          if (size != 0 && elements > (uint64_t(1) << 56) / uint64_t(size))
            tooLarge = true;
          elements *= uint64_t(size);
        }
        if (tooLarge)
          return func.emitOpError("argument '")
                 << arg.name << "' has more than 2^56 elements";
      }
      auto names = func.getArgAttrOfType<ArrayAttr>(i, "loom.dims");
      for (auto [d, size] : llvm::enumerate(type.getShape())) {
        if (!ShapedType::isDynamic(size)) {
          arg.dims.push_back(size);
          continue;
        }
        StringAttr symbol;
        if (names && d < names.size())
          symbol = dyn_cast<StringAttr>(names[d]);
        if (!symbol)
          return func.emitOpError("argument '")
                 << arg.name << "' has dimension " << d
                 << " that is dynamic but not named in loom.dims";
        auto [it, inserted] =
            symbolIds.try_emplace(symbol.getValue(), manifest.symbols.size());
        if (inserted)
          manifest.symbols.push_back(symbol.getValue().str());
        arg.dims.push_back(-static_cast<int64_t>(it->second) - 1);
      }
      entry.args.push_back(std::move(arg));
    }
    std::string error;
    std::optional<std::vector<Requirement>> reqs =
        readRequirements(func, error);
    if (!reqs)
      return func.emitOpError(error);
    for (const Requirement &req : *reqs) {
      ManifestRequirement out;
      out.constant = req.constant;
      out.predicate =
          req.predicate == Requirement::Predicate::GE   ? LOOM_REQUIREMENT_GE
          : req.predicate == Requirement::Predicate::EQ ? LOOM_REQUIREMENT_EQ
                                                        : LOOM_REQUIREMENT_NE;
      out.text = req.text;
      out.configs = req.configs;
      out.location = req.location;
      for (const RequirementTerm &term : req.terms) {
        ManifestTerm t;
        t.coeff = term.coeff;
        t.name = term.name;
        if (term.kind == RequirementTerm::Kind::Input) {
          t.kind = LOOM_TERM_INPUT;
          t.index = term.arg;
        } else {
          // An input of this entry has the symbol (readRequirements checks),
          // so it is in the table.
          t.kind = LOOM_TERM_SYMBOL;
          t.index = symbolIds.lookup(term.symbol);
        }
        out.terms.push_back(std::move(t));
      }
      entry.requirements.push_back(std::move(out));
    }
    manifest.entries.push_back(std::move(entry));
  }
  return manifest;
}

std::string mlir::loom::importSlotSymbol(StringRef import) {
  return ("loom_import_" + import).str();
}

namespace {
/// Appends strings once each and returns their offsets.
class StringTable {
public:
  uint32_t add(StringRef s) {
    auto it = offsets.find(s);
    if (it != offsets.end())
      return it->second;
    uint32_t offset = data.size();
    data.append(s.begin(), s.end());
    data.push_back('\0');
    offsets[s] = offset;
    return offset;
  }
  std::string data;

private:
  llvm::StringMap<uint32_t> offsets;
};

template <typename T> void put(std::vector<uint8_t> &blob, size_t at, T v) {
  std::memcpy(blob.data() + at, &v, sizeof(T));
}

size_t alignTo8(size_t v) { return (v + 7) & ~size_t(7); }
} // namespace

std::vector<uint8_t> mlir::loom::serializeManifest(const Manifest &m) {
  StringTable strings;
  uint32_t compilerVersion = strings.add(m.compilerVersion);
  uint32_t targetCpu = strings.add(m.targetCpu);

  // Layout: header, symbols, entries, args, requirements, terms, dims,
  // imports, strings.
  size_t offset = alignTo8(sizeof(loom_manifest_header_t));
  size_t symbolsOffset = offset;
  offset = alignTo8(offset + 4 * m.symbols.size());
  size_t entriesOffset = offset;
  offset = alignTo8(offset + sizeof(loom_manifest_entry_t) * m.entries.size());
  std::vector<size_t> argsOffsets, dimsOffsets, reqsOffsets, termsOffsets;
  for (const ManifestEntry &e : m.entries) {
    argsOffsets.push_back(offset);
    offset = alignTo8(offset + sizeof(loom_manifest_arg_t) * e.args.size());
  }
  for (const ManifestEntry &e : m.entries) {
    reqsOffsets.push_back(offset);
    offset += sizeof(loom_manifest_requirement_t) * e.requirements.size();
  }
  for (const ManifestEntry &e : m.entries)
    for (const ManifestRequirement &r : e.requirements) {
      termsOffsets.push_back(offset);
      offset += sizeof(loom_manifest_term_t) * r.terms.size();
    }
  for (const ManifestEntry &e : m.entries)
    for (const ManifestArg &a : e.args) {
      dimsOffsets.push_back(offset);
      offset += 8 * a.dims.size();
    }
  size_t importsOffset = offset;
  offset = alignTo8(offset + sizeof(loom_manifest_import_t) * m.imports.size());

  // Strings are added while filling records, so fill into temporaries first.
  std::vector<loom_manifest_entry_t> entries;
  std::vector<loom_manifest_arg_t> args;
  std::vector<loom_manifest_requirement_t> reqs;
  std::vector<loom_manifest_term_t> terms;
  size_t argIndex = 0;
  for (auto [i, e] : llvm::enumerate(m.entries)) {
    loom_manifest_entry_t entry{};
    entry.name = strings.add(e.name);
    entry.symbol = strings.add(e.symbol);
    entry.num_args = e.args.size();
    entry.args_offset = argsOffsets[i];
    entry.num_requirements = e.requirements.size();
    entry.requirements_offset = reqsOffsets[i];
    entries.push_back(entry);
    for (const ManifestRequirement &r : e.requirements) {
      loom_manifest_requirement_t req{};
      req.constant = r.constant;
      req.predicate = r.predicate;
      req.num_terms = r.terms.size();
      req.terms_offset = termsOffsets[reqs.size()];
      req.text = strings.add(r.text);
      req.configs = strings.add(r.configs);
      req.location = strings.add(r.location);
      reqs.push_back(req);
      for (const ManifestTerm &t : r.terms)
        terms.push_back({t.coeff, t.kind, t.index, strings.add(t.name), 0});
    }
    for (const ManifestArg &a : e.args) {
      loom_manifest_arg_t arg{};
      arg.name = strings.add(a.name);
      arg.role = a.role;
      arg.dtype = a.dtype;
      arg.rank = a.dims.size();
      arg.binding = strings.add(a.binding);
      arg.dims_offset = dimsOffsets[argIndex++];
      args.push_back(arg);
    }
  }
  std::vector<uint32_t> symbols;
  for (const std::string &s : m.symbols)
    symbols.push_back(strings.add(s));
  std::vector<loom_manifest_import_t> imports;
  for (const ManifestImport &imp : m.imports)
    imports.push_back({strings.add(imp.name), strings.add(imp.slot)});

  size_t stringsOffset = offset;
  size_t total = alignTo8(offset + strings.data.size());
  std::vector<uint8_t> blob(total, 0);

  loom_manifest_header_t header{};
  std::memcpy(header.magic, LOOM_MANIFEST_MAGIC, sizeof(LOOM_MANIFEST_MAGIC));
  header.abi_version = LOOM_ABI_VERSION;
  header.header_size = sizeof(loom_manifest_header_t);
  header.total_size = total;
  header.file_checksum = 0;
  header.target = m.target;
  header.compiler_version = compilerVersion;
  header.target_cpu = targetCpu;
  header.strings_offset = stringsOffset;
  header.strings_size = strings.data.size();
  header.num_symbols = symbols.size();
  header.symbols_offset = symbolsOffset;
  header.num_entries = entries.size();
  header.entries_offset = entriesOffset;
  header.num_imports = imports.size();
  header.imports_offset = importsOffset;
  put(blob, 0, header);
  for (auto [i, s] : llvm::enumerate(symbols))
    put(blob, symbolsOffset + 4 * i, s);
  for (auto [i, e] : llvm::enumerate(entries))
    put(blob, entriesOffset + sizeof(e) * i, e);
  argIndex = 0;
  for (auto [i, e] : llvm::enumerate(m.entries))
    for (size_t j = 0; j < e.args.size(); ++j, ++argIndex) {
      put(blob, argsOffsets[i] + sizeof(loom_manifest_arg_t) * j,
          args[argIndex]);
      for (auto [k, d] : llvm::enumerate(e.args[j].dims))
        put(blob, dimsOffsets[argIndex] + 8 * k, static_cast<int64_t>(d));
    }
  size_t reqIndex = 0, termIndex = 0;
  for (auto [i, e] : llvm::enumerate(m.entries))
    for (size_t j = 0; j < e.requirements.size(); ++j, ++reqIndex) {
      put(blob, reqsOffsets[i] + sizeof(loom_manifest_requirement_t) * j,
          reqs[reqIndex]);
      for (size_t k = 0; k < e.requirements[j].terms.size(); ++k)
        put(blob, termsOffsets[reqIndex] + sizeof(loom_manifest_term_t) * k,
            terms[termIndex++]);
    }
  for (auto [i, imp] : llvm::enumerate(imports))
    put(blob, importsOffset + sizeof(imp) * i, imp);
  std::memcpy(blob.data() + stringsOffset, strings.data.data(),
              strings.data.size());
  return blob;
}

std::string mlir::loom::sealArtifact(StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer)
    return "cannot read " + path.str() + ": " + buffer.getError().message();
  auto object =
      llvm::object::ObjectFile::createObjectFile((*buffer)->getMemBufferRef());
  if (!object)
    return "cannot parse " + path.str() + ": " +
           llvm::toString(object.takeError());
  auto *elf = dyn_cast<llvm::object::ELFObjectFileBase>(object->get());
  if (!elf)
    return path.str() + " is not an ELF file";
  uint64_t sectionOffset = 0;
  bool found = false;
  for (const llvm::object::SectionRef &section : elf->sections()) {
    auto name = section.getName();
    if (name && *name == LOOM_MANIFEST_SECTION) {
      sectionOffset = llvm::object::ELFSectionRef(section).getOffset();
      found = true;
    }
    if (!name)
      llvm::consumeError(name.takeError());
  }
  if (!found)
    return path.str() + " has no " LOOM_MANIFEST_SECTION " section";
  std::string bytes = (*buffer)->getBuffer().str();
  size_t field =
      sectionOffset + offsetof(loom_manifest_header_t, file_checksum);
  if (field + 8 > bytes.size())
    return "manifest section of " + path.str() + " is out of bounds";
  std::memset(bytes.data() + field, 0, 8);
  uint64_t checksum =
      loom_fnv1a64(LOOM_FNV1A64_INIT, bytes.data(), bytes.size());
  std::memcpy(bytes.data() + field, &checksum, 8);
  buffer->reset();
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec)
    return "cannot write " + path.str() + ": " + ec.message();
  os << bytes;
  return {};
}
