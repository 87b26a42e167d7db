//===- artifact.cc - Artifact validation and loading ----------------------===//
//
// This file opens Loom artifacts. An artifact is native code, so nothing of it
// is mapped or run until the whole file has been checked: the ELF header and
// section table, the dynamic symbols the runtime will look up, every field of
// the manifest, the file checksum and the host imports. Only then is the
// object loaded with dlopen, its import slots filled, and its entry functions
// resolved. Every refusal names the file and what is wrong with it.
//
//===----------------------------------------------------------------------===//

#include "artifact.h"
#include "cuda_driver.h"

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>

using namespace loom;

#if defined(__x86_64__)
static constexpr uint16_t kHostMachine = EM_X86_64;
static constexpr const char *kHostMachineName = "x86-64";
#elif defined(__aarch64__)
static constexpr uint16_t kHostMachine = EM_AARCH64;
static constexpr const char *kHostMachineName = "aarch64";
#else
#error "unsupported host architecture"
#endif

static_assert(sizeof(loom_manifest_header_t) == 80, "ABI layout changed");
static_assert(sizeof(loom_manifest_entry_t) == 24, "ABI layout changed");
static_assert(sizeof(loom_manifest_arg_t) == 24, "ABI layout changed");
static_assert(sizeof(loom_manifest_import_t) == 8, "ABI layout changed");
static_assert(sizeof(loom_manifest_requirement_t) == 32, "ABI layout changed");
static_assert(sizeof(loom_manifest_term_t) == 24, "ABI layout changed");

static constexpr uint64_t kChecksumField =
    offsetof(loom_manifest_header_t, file_checksum);

/// Whether [offset, offset + length) lies inside [0, total), without overflow.
static bool inRange(uint64_t offset, uint64_t length, uint64_t total) {
  return offset <= total && length <= total - offset;
}

template <typename T> static T load(const uint8_t *base, uint64_t offset) {
  T value;
  std::memcpy(&value, base + offset, sizeof(T));
  return value;
}

//===----------------------------------------------------------------------===//
// ELF
//===----------------------------------------------------------------------===//

/// The function an import of an artifact of `target` resolves to: the host
/// kernels for CPU artifacts; the GPU runtime ABI and the device GEMMs
/// (cuBLAS) for CUDA artifacts, whose arguments are device memory.
static void *importFor(loom_target_t target, const char *name) {
  return target == LOOM_TARGET_CUDA ? loom::cuda::lookupImport(name)
                                    : loom_host_function_lookup(name);
}

namespace {

/// A dynamic symbol the loader will look up.
struct DynSymbol {
  uint8_t type;
  uint16_t section;
  uint64_t value;
  uint64_t size;
};

/// The facts about an ELF file the loader needs, gathered in one strict walk.
struct ElfInfo {
  uint64_t manifestOffset = 0;
  uint64_t manifestSize = 0;
  uint64_t manifestAddr = 0;
  uint32_t manifestIndex = 0;
  std::vector<Elf64_Shdr> sections;
  std::unordered_map<std::string, DynSymbol> dynamicSymbols;
};

} // namespace

static loom_status_t elfError(const char *file, const char *fmt,
                              const std::string &detail = "") {
  return makeStatus(LOOM_STATUS_DATA_LOSS, "%s: malformed ELF file: %s%s", file,
                    fmt, detail.c_str());
}

/// Whether `table[offset...]` is a NUL-terminated string inside the table.
static bool cString(const uint8_t *table, uint64_t tableSize, uint64_t offset,
                    const char **out) {
  if (offset >= tableSize)
    return false;
  if (!std::memchr(table + offset, 0, tableSize - offset))
    return false;
  *out = reinterpret_cast<const char *>(table + offset);
  return true;
}

static loom_status_t walkElf(const uint8_t *file, size_t size, const char *name,
                             ElfInfo *info) {
  if (size < 4 || std::memcmp(file, ELFMAG, SELFMAG) != 0)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "%s: not a Loom artifact: not an ELF file", name);
  if (size < sizeof(Elf64_Ehdr))
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%s: truncated ELF file: %zu bytes, the ELF header "
                      "alone needs %zu",
                      name, size, sizeof(Elf64_Ehdr));
  Elf64_Ehdr eh = load<Elf64_Ehdr>(file, 0);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64)
    return makeStatus(LOOM_STATUS_INCOMPATIBLE,
                      "%s: not a 64-bit ELF file (class %u)", name,
                      eh.e_ident[EI_CLASS]);
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB)
    return makeStatus(LOOM_STATUS_INCOMPATIBLE,
                      "%s: not a little-endian ELF file", name);
  if (eh.e_ident[EI_VERSION] != EV_CURRENT || eh.e_version != EV_CURRENT)
    return makeStatus(LOOM_STATUS_INCOMPATIBLE, "%s: unknown ELF version %u",
                      name, eh.e_ident[EI_VERSION]);
  if (eh.e_type != ET_DYN)
    return makeStatus(LOOM_STATUS_INCOMPATIBLE,
                      "%s: not a shared object (ELF type %u, expected ET_DYN "
                      "%u)",
                      name, eh.e_type, ET_DYN);
  if (eh.e_machine != kHostMachine)
    return makeStatus(LOOM_STATUS_INCOMPATIBLE,
                      "%s: built for ELF machine %u, this runtime runs on %s "
                      "(machine %u)",
                      name, eh.e_machine, kHostMachineName, kHostMachine);
  if (eh.e_shoff == 0)
    return elfError(name, "no section header table");
  if (eh.e_shentsize != sizeof(Elf64_Shdr))
    return elfError(name, "section header entry size ",
                    std::to_string(eh.e_shentsize));
  if (!inRange(eh.e_shoff, sizeof(Elf64_Shdr), size))
    return elfError(name, "section header table past the end of the file "
                          "(truncated?)");
  // Files with more than SHN_LORESERVE sections keep the real count and the
  // string table index in section 0.
  Elf64_Shdr first = load<Elf64_Shdr>(file, eh.e_shoff);
  uint64_t count = eh.e_shnum ? eh.e_shnum : first.sh_size;
  uint32_t strndx = eh.e_shstrndx == SHN_XINDEX ? first.sh_link : eh.e_shstrndx;
  if (count == 0 || count > size / sizeof(Elf64_Shdr) ||
      !inRange(eh.e_shoff, count * sizeof(Elf64_Shdr), size))
    return elfError(name, "section header table of ",
                    std::to_string(count) +
                        " entries past the end of the file (truncated?)");
  info->sections.resize(count);
  for (uint64_t i = 0; i < count; ++i) {
    Elf64_Shdr &sh = info->sections[i];
    sh = load<Elf64_Shdr>(file, eh.e_shoff + i * sizeof(Elf64_Shdr));
    if (sh.sh_type != SHT_NOBITS && !inRange(sh.sh_offset, sh.sh_size, size))
      return elfError(name, "section ",
                      std::to_string(i) +
                          " extends past the end of the file (truncated?)");
  }
  if (strndx == SHN_UNDEF || strndx >= count)
    return elfError(name, "section name table index ",
                    std::to_string(strndx) + " out of range");
  const Elf64_Shdr &names = info->sections[strndx];
  if (names.sh_type != SHT_STRTAB)
    return elfError(name, "section name table is not a string table");
  const uint8_t *nameTable = file + names.sh_offset;

  bool found = false;
  for (uint64_t i = 0; i < count; ++i) {
    const Elf64_Shdr &sh = info->sections[i];
    const char *secName;
    if (!cString(nameTable, names.sh_size, sh.sh_name, &secName))
      return elfError(name, "bad name offset of section ", std::to_string(i));
    if (std::strcmp(secName, LOOM_MANIFEST_SECTION) != 0)
      continue;
    if (found)
      return makeStatus(LOOM_STATUS_DATA_LOSS,
                        "%s: more than one " LOOM_MANIFEST_SECTION " section",
                        name);
    if (sh.sh_type == SHT_NOBITS)
      return makeStatus(LOOM_STATUS_DATA_LOSS,
                        "%s: section " LOOM_MANIFEST_SECTION " has no data",
                        name);
    found = true;
    info->manifestOffset = sh.sh_offset;
    info->manifestSize = sh.sh_size;
    info->manifestAddr = sh.sh_addr;
    info->manifestIndex = static_cast<uint32_t>(i);
  }
  if (!found)
    return makeStatus(
        LOOM_STATUS_INVALID_ARGUMENT,
        "%s: not a Loom artifact: no " LOOM_MANIFEST_SECTION " section", name);

  for (uint64_t i = 0; i < count; ++i) {
    const Elf64_Shdr &sh = info->sections[i];
    if (sh.sh_type != SHT_DYNSYM)
      continue;
    if (sh.sh_entsize != sizeof(Elf64_Sym) || sh.sh_size % sizeof(Elf64_Sym))
      return elfError(name, "bad dynamic symbol table entry size");
    if (sh.sh_link == SHN_UNDEF || sh.sh_link >= count ||
        info->sections[sh.sh_link].sh_type != SHT_STRTAB)
      return elfError(name, "dynamic symbol table has no string table");
    const Elf64_Shdr &strtab = info->sections[sh.sh_link];
    for (uint64_t off = 0; off < sh.sh_size; off += sizeof(Elf64_Sym)) {
      Elf64_Sym sym = load<Elf64_Sym>(file, sh.sh_offset + off);
      if (sym.st_name == 0 || sym.st_shndx == SHN_UNDEF)
        continue;
      const char *symName;
      if (!cString(file + strtab.sh_offset, strtab.sh_size, sym.st_name,
                   &symName))
        return elfError(name, "bad dynamic symbol name offset ",
                        std::to_string(sym.st_name));
      info->dynamicSymbols[symName] = {
          static_cast<uint8_t>(ELF64_ST_TYPE(sym.st_info)), sym.st_shndx,
          sym.st_value, sym.st_size};
    }
  }
  return nullptr;
}

loom_status_t loom::findManifestSection(const uint8_t *file, size_t size,
                                        uint64_t *outOffset,
                                        uint64_t *outSize) {
  ElfInfo info;
  if (loom_status_t s = walkElf(file, size, "artifact", &info))
    return s;
  *outOffset = info.manifestOffset;
  *outSize = info.manifestSize;
  return nullptr;
}

uint64_t loom::artifactChecksum(const uint8_t *file, size_t size,
                                uint64_t checksumOffset) {
  static const uint8_t zeros[8] = {};
  uint64_t h = loom_fnv1a64(LOOM_FNV1A64_INIT, file, checksumOffset);
  h = loom_fnv1a64(h, zeros, 8);
  return loom_fnv1a64(h, file + checksumOffset + 8, size - checksumOffset - 8);
}

//===----------------------------------------------------------------------===//
// Manifest
//===----------------------------------------------------------------------===//

static const char *roleName(uint32_t role) {
  switch (role) {
  case LOOM_ROLE_INPUT:
    return "input";
  case LOOM_ROLE_PARAM:
    return "param";
  case LOOM_ROLE_STATE:
    return "state";
  case LOOM_ROLE_OUTPUT:
    return "output";
  default:
    return "invalid";
  }
}

namespace {

/// Validates a manifest blob and builds the artifact's descriptors from it.
class ManifestValidator {
public:
  ManifestValidator(const char *file, loom_artifact_t *artifact)
      : file(file), a(artifact),
        blob(reinterpret_cast<const uint8_t *>(artifact->blob.data())) {}

  loom_status_t validate(uint64_t size);

private:
  const char *file;
  loom_artifact_t *a;
  const uint8_t *blob;
  uint64_t size = 0;
  loom_manifest_header_t h = {};

  loom_status_t fail(const std::string &what) {
    return makeStatus(LOOM_STATUS_DATA_LOSS, "%s: invalid manifest: %s", file,
                      what.c_str());
  }

  /// Checks a table of `count` elements of `elemSize` bytes at `offset`.
  loom_status_t checkTable(const char *what, uint64_t offset, uint64_t count,
                           uint64_t elemSize, uint64_t align) {
    if (offset % align)
      return fail(format("%s offset %llu is not %llu-byte aligned", what,
                         static_cast<unsigned long long>(offset),
                         static_cast<unsigned long long>(align)));
    if (count > size / (elemSize ? elemSize : 1) ||
        !inRange(offset, count * elemSize, size))
      return fail(format("%s (%llu x %llu bytes at offset %llu) out of the "
                         "%llu-byte manifest",
                         what, static_cast<unsigned long long>(count),
                         static_cast<unsigned long long>(elemSize),
                         static_cast<unsigned long long>(offset),
                         static_cast<unsigned long long>(size)));
    return nullptr;
  }

  loom_status_t string(const char *what, uint32_t offset, const char **out) {
    if (!cString(blob + h.strings_offset, h.strings_size, offset, out))
      return fail(format("%s: string offset %u is not a NUL-terminated string "
                         "inside the %u-byte string table",
                         what, offset, h.strings_size));
    return nullptr;
  }

  loom_status_t validateEntry(uint32_t index, EntryInfo *entry);
  loom_status_t validateRequirements(const loom_manifest_entry_t &me,
                                     const std::string &where,
                                     const std::vector<bool> &bound,
                                     EntryInfo *entry);
};

} // namespace

loom_status_t ManifestValidator::validate(uint64_t blobSize) {
  size = blobSize;
  h = load<loom_manifest_header_t>(blob, 0);
  if (h.target != LOOM_TARGET_CPU && h.target != LOOM_TARGET_CUDA)
    return fail(format("unknown target %u", h.target));
  a->target = static_cast<loom_target_t>(h.target);
  if (loom_status_t s =
          checkTable("string table", h.strings_offset, h.strings_size, 1, 1))
    return s;
  if (loom_status_t s =
          string("compiler_version", h.compiler_version, &a->compilerVersion))
    return s;
  if (loom_status_t s = string("target_cpu", h.target_cpu, &a->targetCpu))
    return s;

  if (loom_status_t s =
          checkTable("symbol table", h.symbols_offset, h.num_symbols, 4, 4))
    return s;
  std::unordered_set<std::string> seen;
  for (uint32_t i = 0; i < h.num_symbols; ++i) {
    const char *symbol;
    if (loom_status_t s =
            string(format("symbol %u", i).c_str(),
                   load<uint32_t>(blob, h.symbols_offset + 4 * i), &symbol))
      return s;
    if (!*symbol || !seen.insert(symbol).second)
      return fail(
          format("symbol %u has an empty or duplicate name '%s'", i, symbol));
    a->symbols.push_back(symbol);
  }

  if (loom_status_t s =
          checkTable("import table", h.imports_offset, h.num_imports,
                     sizeof(loom_manifest_import_t), 4))
    return s;
  seen.clear();
  std::unordered_set<std::string> slots;
  for (uint32_t i = 0; i < h.num_imports; ++i) {
    auto imp = load<loom_manifest_import_t>(
        blob, h.imports_offset + i * sizeof(loom_manifest_import_t));
    const char *name, *slot;
    if (loom_status_t s =
            string(format("import %u name", i).c_str(), imp.name, &name))
      return s;
    if (loom_status_t s =
            string(format("import %u slot", i).c_str(), imp.slot, &slot))
      return s;
    if (!*name || !*slot || !slots.insert(slot).second)
      return fail(format("import %u ('%s') has an empty name or a slot '%s' "
                         "used twice",
                         i, name, slot));
    a->imports.push_back(name);
    a->importSlots.push_back(slot);
  }

  if (loom_status_t s =
          checkTable("entry table", h.entries_offset, h.num_entries,
                     sizeof(loom_manifest_entry_t), 4))
    return s;
  seen.clear();
  a->entries.resize(h.num_entries);
  for (uint32_t i = 0; i < h.num_entries; ++i) {
    if (loom_status_t s = validateEntry(i, &a->entries[i]))
      return s;
    if (!seen.insert(a->entries[i].desc.name).second)
      return fail(
          format("entry '%s' is defined twice", a->entries[i].desc.name));
  }

  // The same state name refers to one buffer in a session, so every entry
  // must agree on its type; params must agree on dtype and rank.
  struct Seen {
    const loom_arg_desc_t *arg;
    const char *entry;
  };
  std::unordered_map<std::string, Seen> states, params;
  for (const EntryInfo &e : a->entries) {
    for (const loom_arg_desc_t &arg : e.args) {
      if (arg.role != LOOM_ROLE_STATE && arg.role != LOOM_ROLE_PARAM)
        continue;
      auto &table = arg.role == LOOM_ROLE_STATE ? states : params;
      auto it = table.emplace(arg.binding, Seen{&arg, e.desc.name}).first;
      const loom_arg_desc_t &other = *it->second.arg;
      bool same = other.dtype == arg.dtype && other.rank == arg.rank;
      for (int32_t d = 0; same && d < arg.rank; ++d)
        same = arg.role == LOOM_ROLE_PARAM || other.dims[d] == arg.dims[d];
      if (!same)
        return fail(format(
            "%s '%s' is %s%s in entry '%s' but %s%s in entry '%s'",
            roleName(arg.role), arg.binding, loom_dtype_name(other.dtype),
            formatDims(other.rank, other.dims).c_str(), it->second.entry,
            loom_dtype_name(arg.dtype), formatDims(arg.rank, arg.dims).c_str(),
            e.desc.name));
    }
  }
  return nullptr;
}

loom_status_t ManifestValidator::validateEntry(uint32_t index,
                                               EntryInfo *entry) {
  auto me = load<loom_manifest_entry_t>(
      blob, h.entries_offset + index * sizeof(loom_manifest_entry_t));
  loom_entry_desc_t &desc = entry->desc;
  std::string where = format("entry %u", index);
  if (loom_status_t s = string(where.c_str(), me.name, &desc.name))
    return s;
  if (!*desc.name)
    return fail(where + " has an empty name");
  where = format("entry '%s'", desc.name);
  if (loom_status_t s =
          string((where + " symbol").c_str(), me.symbol, &desc.symbol))
    return s;
  if (std::string(desc.symbol) !=
      std::string(LOOM_ENTRY_SYMBOL_PREFIX) + desc.name)
    return fail(format("%s has symbol '%s', expected '" LOOM_ENTRY_SYMBOL_PREFIX
                       "%s'",
                       where.c_str(), desc.symbol, desc.name));
  if (loom_status_t s =
          checkTable((where + " argument table").c_str(), me.args_offset,
                     me.num_args, sizeof(loom_manifest_arg_t), 4))
    return s;

  desc.num_args = me.num_args;
  entry->args.resize(me.num_args);
  entry->argInfo.resize(me.num_args);
  uint32_t counts[5] = {};
  uint32_t lastRole = LOOM_ROLE_INPUT;
  std::vector<bool> bound(a->symbols.size(), false);
  std::unordered_set<std::string> names;
  for (uint32_t i = 0; i < me.num_args; ++i) {
    auto ma = load<loom_manifest_arg_t>(
        blob, me.args_offset + i * sizeof(loom_manifest_arg_t));
    loom_arg_desc_t &arg = entry->args[i];
    ArgInfo &info = entry->argInfo[i];
    std::string argWhere = format("%s argument %u", where.c_str(), i);
    if (loom_status_t s = string(argWhere.c_str(), ma.name, &arg.name))
      return s;
    argWhere = format("%s argument '%s'", where.c_str(), arg.name);
    if (!*arg.name || !names.insert(arg.name).second)
      return fail(argWhere + ": empty or duplicate argument name");
    if (ma.role < LOOM_ROLE_INPUT || ma.role > LOOM_ROLE_OUTPUT)
      return fail(format("%s: invalid role %u", argWhere.c_str(), ma.role));
    if (ma.role < lastRole)
      return fail(format("%s: %s after %s; arguments must be ordered inputs, "
                         "params, states, outputs",
                         argWhere.c_str(), roleName(ma.role),
                         roleName(lastRole)));
    lastRole = ma.role;
    ++counts[ma.role];
    arg.role = static_cast<loom_arg_role_t>(ma.role);
    if (loom_dtype_size(ma.dtype) == 0)
      return fail(format("%s: invalid dtype %u", argWhere.c_str(), ma.dtype));
    arg.dtype = static_cast<loom_dtype_t>(ma.dtype);
    if (ma.rank > LOOM_MAX_RANK)
      return fail(format("%s: rank %u exceeds the maximum %d", argWhere.c_str(),
                         ma.rank, LOOM_MAX_RANK));
    arg.rank = static_cast<int32_t>(ma.rank);
    if (loom_status_t s =
            string((argWhere + " binding").c_str(), ma.binding, &arg.binding))
      return s;
    if (!*arg.binding)
      return fail(argWhere + ": empty binding");
    if ((arg.role == LOOM_ROLE_INPUT || arg.role == LOOM_ROLE_OUTPUT) &&
        std::strcmp(arg.binding, arg.name) != 0)
      return fail(format("%s: binding '%s' of an %s must equal its name",
                         argWhere.c_str(), arg.binding, roleName(arg.role)));
    if (arg.rank > 0) {
      if (loom_status_t s = checkTable((argWhere + " dims").c_str(),
                                       ma.dims_offset, ma.rank, 8, 8))
        return s;
    }
    for (int32_t d = 0; d < arg.rank; ++d) {
      int64_t dim = load<int64_t>(blob, ma.dims_offset + 8 * d);
      arg.dims[d] = dim;
      info.symbol[d] = -1;
      arg.dim_symbols[d] = nullptr;
      if (dim >= 0)
        continue;
      uint64_t sym = static_cast<uint64_t>(-(dim + 1));
      if (sym >= a->symbols.size())
        return fail(
            format("%s: dim %d refers to symbol %llu of %zu", argWhere.c_str(),
                   d, static_cast<unsigned long long>(sym), a->symbols.size()));
      arg.dims[d] = -1;
      arg.dim_symbols[d] = a->symbols[sym];
      info.symbol[d] = static_cast<int32_t>(sym);
      if (arg.role == LOOM_ROLE_INPUT)
        bound[sym] = true;
      else if (arg.role == LOOM_ROLE_STATE)
        return fail(format("%s: state dims must be static, dim %d is '%s'",
                           argWhere.c_str(), d, a->symbols[sym]));
      else if (!bound[sym])
        return fail(format("%s: symbol '%s' of dim %d is not bound by any "
                           "input of the entry",
                           argWhere.c_str(), a->symbols[sym], d));
    }
    int64_t elements;
    size_t bytes;
    int64_t staticDims[LOOM_MAX_RANK];
    for (int32_t d = 0; d < arg.rank; ++d)
      staticDims[d] = arg.dims[d] < 0 ? 0 : arg.dims[d];
    if (loom_status_t s = checkShape(arg.dtype, arg.rank, staticDims, argWhere,
                                     &elements, &bytes)) {
      loom_status_free(s);
      return fail(argWhere + ": static shape too large");
    }
  }
  desc.args = entry->args.data();
  desc.num_inputs = counts[LOOM_ROLE_INPUT];
  desc.num_params = counts[LOOM_ROLE_PARAM];
  desc.num_states = counts[LOOM_ROLE_STATE];
  desc.num_outputs = counts[LOOM_ROLE_OUTPUT];
  return validateRequirements(me, where, bound, entry);
}

loom_status_t ManifestValidator::validateRequirements(
    const loom_manifest_entry_t &me, const std::string &where,
    const std::vector<bool> &bound, EntryInfo *entry) {
  if (loom_status_t s = checkTable((where + " requirement table").c_str(),
                                   me.requirements_offset, me.num_requirements,
                                   sizeof(loom_manifest_requirement_t), 8))
    return s;
  entry->requirements.resize(me.num_requirements);
  for (uint32_t r = 0; r < me.num_requirements; ++r) {
    auto mr = load<loom_manifest_requirement_t>(
        blob, me.requirements_offset + r * sizeof(loom_manifest_requirement_t));
    RequirementInfo &req = entry->requirements[r];
    std::string reqWhere = format("%s requirement %u", where.c_str(), r);
    if (loom_status_t s =
            string((reqWhere + " text").c_str(), mr.text, &req.text))
      return s;
    if (!*req.text)
      return fail(reqWhere + ": empty text");
    if (loom_status_t s =
            string((reqWhere + " configs").c_str(), mr.configs, &req.configs))
      return s;
    if (loom_status_t s = string((reqWhere + " location").c_str(), mr.location,
                                 &req.location))
      return s;
    reqWhere = format("%s requirement '%s'", where.c_str(), req.text);
    if (mr.predicate < LOOM_REQUIREMENT_GE ||
        mr.predicate > LOOM_REQUIREMENT_NE)
      return fail(
          format("%s: invalid predicate %u", reqWhere.c_str(), mr.predicate));
    req.predicate = static_cast<loom_requirement_predicate_t>(mr.predicate);
    req.constant = mr.constant;
    if (mr.num_terms == 0)
      return fail(reqWhere + ": no terms");
    if (loom_status_t s =
            checkTable((reqWhere + " terms").c_str(), mr.terms_offset,
                       mr.num_terms, sizeof(loom_manifest_term_t), 8))
      return s;
    req.terms.resize(mr.num_terms);
    for (uint32_t t = 0; t < mr.num_terms; ++t) {
      auto mt = load<loom_manifest_term_t>(
          blob, mr.terms_offset + t * sizeof(loom_manifest_term_t));
      RequirementTermInfo &term = req.terms[t];
      std::string termWhere = format("%s term %u", reqWhere.c_str(), t);
      if (loom_status_t s =
              string((termWhere + " name").c_str(), mt.name, &term.name))
        return s;
      if (!*term.name)
        return fail(termWhere + ": empty name");
      if (mt.reserved != 0)
        return fail(format("%s: reserved field is %u, expected 0",
                           termWhere.c_str(), mt.reserved));
      term.coeff = mt.coeff;
      term.index = mt.index;
      if (mt.kind == LOOM_TERM_SYMBOL) {
        if (mt.index >= a->symbols.size())
          return fail(format("%s: symbol %u of %zu", termWhere.c_str(),
                             mt.index, a->symbols.size()));
        if (!bound[mt.index])
          return fail(format("%s: symbol '%s' is not bound by any input of "
                             "the entry",
                             termWhere.c_str(), a->symbols[mt.index]));
      } else if (mt.kind == LOOM_TERM_INPUT) {
        if (mt.index >= entry->desc.num_inputs)
          return fail(format("%s: argument %u is not an input (the entry has "
                             "%u inputs)",
                             termWhere.c_str(), mt.index,
                             entry->desc.num_inputs));
        const loom_arg_desc_t &arg = entry->args[mt.index];
        if (arg.rank != 0 ||
            (arg.dtype != LOOM_DTYPE_I32 && arg.dtype != LOOM_DTYPE_I64))
          return fail(format("%s: input '%s' is %s%s, not a rank-0 i32 or "
                             "i64",
                             termWhere.c_str(), arg.name,
                             loom_dtype_name(arg.dtype),
                             formatDims(arg.rank, arg.dims).c_str()));
      } else {
        return fail(
            format("%s: invalid term kind %u", termWhere.c_str(), mt.kind));
      }
      term.kind = static_cast<loom_requirement_term_kind_t>(mt.kind);
    }
  }
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Opening
//===----------------------------------------------------------------------===//

void loom::retainArtifact(loom_artifact_t *artifact) {
  artifact->refs.fetch_add(1, std::memory_order_relaxed);
}

void loom::releaseArtifact(loom_artifact_t *artifact) {
  if (artifact->refs.fetch_sub(1, std::memory_order_acq_rel) != 1)
    return;
  if (artifact->handle)
    dlclose(artifact->handle);
  if (artifact->fd >= 0)
    ::close(artifact->fd);
  delete artifact;
}

/// Reads the whole file through `fd`.
static loom_status_t readAll(int fd, const char *path,
                             std::vector<uint8_t> *out) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    return makeStatus(LOOM_STATUS_IO_ERROR, "%s: not a regular file", path);
  out->resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out->size()) {
    ssize_t n = ::pread(fd, out->data() + done, out->size() - done,
                        static_cast<off_t>(done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return makeStatus(LOOM_STATUS_IO_ERROR, "%s: read error: %s", path,
                        n < 0 ? std::strerror(errno) : "file shrank");
    done += static_cast<size_t>(n);
  }
  return nullptr;
}

/// Checks everything about the file in memory; fills `a` on success.
static loom_status_t validateFile(const std::vector<uint8_t> &bytes,
                                  const char *path, loom_artifact_t *a,
                                  ElfInfo *elf) {
  if (loom_status_t s = walkElf(bytes.data(), bytes.size(), path, elf))
    return s;
  uint64_t size = elf->manifestSize;
  // The magic and version come first so that a manifest of another ABI
  // version is reported as such even if its header layout differs.
  if (size < 12)
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%s: invalid manifest: section of %llu bytes is too "
                      "small",
                      path, static_cast<unsigned long long>(size));
  const uint8_t *section = bytes.data() + elf->manifestOffset;
  if (std::memcmp(section, LOOM_MANIFEST_MAGIC, 8) != 0)
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%s: invalid manifest: bad magic (expected \"%s\")", path,
                      LOOM_MANIFEST_MAGIC);
  uint32_t version = load<uint32_t>(section, 8);
  if (version != LOOM_ABI_VERSION)
    return makeStatus(LOOM_STATUS_INCOMPATIBLE,
                      "%s: artifact ABI version %u, this runtime supports ABI "
                      "version %u; recompile the model with a matching "
                      "compiler",
                      path, version, LOOM_ABI_VERSION);
  if (size < sizeof(loom_manifest_header_t))
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%s: invalid manifest: %llu bytes, the header needs %zu",
                      path, static_cast<unsigned long long>(size),
                      sizeof(loom_manifest_header_t));
  a->blob.assign((size + 7) / 8, 0);
  a->manifestSize = size;
  std::memcpy(a->blob.data(), section, size);
  loom_manifest_header_t h = load<loom_manifest_header_t>(section, 0);
  if (h.header_size != sizeof(loom_manifest_header_t))
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%s: invalid manifest: header_size %u, expected %zu",
                      path, h.header_size, sizeof(loom_manifest_header_t));
  if (h.total_size != size)
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%s: invalid manifest: total_size %llu differs from the "
                      "section size %llu",
                      path, static_cast<unsigned long long>(h.total_size),
                      static_cast<unsigned long long>(size));
  uint64_t actual = artifactChecksum(bytes.data(), bytes.size(),
                                     elf->manifestOffset + kChecksumField);
  if (actual != h.file_checksum)
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%s: checksum mismatch: the manifest records "
                      "0x%016llx, the file hashes to 0x%016llx (corrupted or "
                      "modified after it was sealed)",
                      path, static_cast<unsigned long long>(h.file_checksum),
                      static_cast<unsigned long long>(actual));
  ManifestValidator validator(path, a);
  if (loom_status_t s = validator.validate(size))
    return s;

  // Everything the loader will look up must be a defined dynamic symbol of
  // the right kind, so dlsym cannot hand back something else.
  const auto &syms = elf->dynamicSymbols;
  auto manifestSym = syms.find(LOOM_MANIFEST_SYMBOL);
  if (manifestSym == syms.end() ||
      manifestSym->second.section != elf->manifestIndex ||
      manifestSym->second.value != elf->manifestAddr ||
      manifestSym->second.size != size)
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%s: the symbol " LOOM_MANIFEST_SYMBOL " is missing or "
                      "does not cover exactly the " LOOM_MANIFEST_SECTION
                      " section",
                      path);
  for (const EntryInfo &e : a->entries) {
    auto it = syms.find(e.desc.symbol);
    if (it == syms.end() || it->second.type != STT_FUNC)
      return makeStatus(LOOM_STATUS_NOT_FOUND,
                        "%s: entry '%s': function symbol '%s' is not exported",
                        path, e.desc.name, e.desc.symbol);
  }
  for (size_t i = 0; i < a->imports.size(); ++i) {
    if (!importFor(a->target, a->imports[i]))
      return makeStatus(LOOM_STATUS_NOT_FOUND,
                        "%s: the artifact imports host function '%s', which "
                        "this runtime does not provide for %s artifacts",
                        path, a->imports[i],
                        a->target == LOOM_TARGET_CUDA ? "CUDA" : "CPU");
    auto it = syms.find(a->importSlots[i]);
    bool writable = it != syms.end() &&
                    it->second.section < elf->sections.size() &&
                    (elf->sections[it->second.section].sh_flags & SHF_WRITE);
    if (!writable || it->second.type != STT_OBJECT ||
        it->second.size != sizeof(void *))
      return makeStatus(LOOM_STATUS_NOT_FOUND,
                        "%s: import '%s': slot '%s' is not an exported, "
                        "writable pointer-sized object",
                        path, a->imports[i], a->importSlots[i]);
  }
  return nullptr;
}

/// Loads the validated file with dlopen and resolves everything.
static loom_status_t loadCode(const char *path, loom_artifact_t *a) {
  // Loading through the descriptor that was validated guarantees dlopen maps
  // the same file, even if the path has been replaced since.
  std::string fdPath = format("/proc/self/fd/%d", a->fd);
  bool byDescriptor = ::access(fdPath.c_str(), R_OK) == 0;
  std::string loadPath =
      byDescriptor ? fdPath
                   : (std::strchr(path, '/') ? path : std::string("./") + path);
  // The loader knows objects by name, and dlclose need not unmap one: an
  // earlier artifact loaded through the same descriptor number can still be
  // known by that name, and dlopen returns it instead of this file. The
  // manifest tells them apart (it holds the file's checksum); on a mismatch
  // the file is loaded again through another descriptor number.
  for (int tries = 0;; ++tries) {
    dlerror();
    a->handle = dlopen(loadPath.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!a->handle) {
      const char *err = dlerror();
      return makeStatus(LOOM_STATUS_IO_ERROR, "%s: dlopen failed: %s", path,
                        err ? err : "unknown error");
    }
    const void *manifest = dlsym(a->handle, LOOM_MANIFEST_SYMBOL);
    if (manifest && std::memcmp(manifest, a->blob.data(), a->manifestSize) == 0)
      break;
    dlclose(a->handle);
    a->handle = nullptr;
    int other = byDescriptor && tries < 64
                    ? ::fcntl(a->fd, F_DUPFD_CLOEXEC, a->fd + 1)
                    : -1;
    if (other < 0)
      return makeStatus(LOOM_STATUS_DATA_LOSS,
                        "%s: the loaded " LOOM_MANIFEST_SYMBOL " differs from "
                        "the manifest validated in the file",
                        path);
    ::close(a->fd);
    a->fd = other;
    loadPath = format("/proc/self/fd/%d", a->fd);
  }
  for (EntryInfo &e : a->entries) {
    void *fn = dlsym(a->handle, e.desc.symbol);
    if (!fn)
      return makeStatus(LOOM_STATUS_NOT_FOUND, "%s: dlsym('%s') failed", path,
                        e.desc.symbol);
    e.fn = reinterpret_cast<loom_entry_fn_t>(fn);
  }
  for (size_t i = 0; i < a->imports.size(); ++i) {
    void **slot = static_cast<void **>(dlsym(a->handle, a->importSlots[i]));
    if (!slot)
      return makeStatus(LOOM_STATUS_NOT_FOUND, "%s: dlsym('%s') failed", path,
                        a->importSlots[i]);
    *slot = importFor(a->target, a->imports[i]);
  }
  return nullptr;
}

extern "C" {

loom_status_t loom_artifact_open(const char *path,
                                 loom_artifact_t **out_artifact) {
  if (!path || !out_artifact)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "artifact_open: NULL argument");
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return makeStatus(errno == ENOENT ? LOOM_STATUS_NOT_FOUND
                                      : LOOM_STATUS_IO_ERROR,
                      "%s: cannot open: %s", path, std::strerror(errno));
  auto *a = new loom_artifact;
  a->path = path;
  std::vector<uint8_t> bytes;
  ElfInfo elf;
  loom_status_t s = readAll(fd, path, &bytes);
  if (!s)
    s = validateFile(bytes, path, a, &elf);
  bytes = std::vector<uint8_t>();
  // The descriptor stays open while the code is loaded: dlopen knows the
  // object by its /proc/self/fd name, and a reused descriptor number would
  // make a later artifact resolve to this one.
  a->fd = fd;
  if (!s)
    s = loadCode(path, a);
  if (s) {
    releaseArtifact(a);
    return s;
  }
  *out_artifact = a;
  return nullptr;
}

void loom_artifact_close(loom_artifact_t *artifact) {
  if (artifact)
    releaseArtifact(artifact);
}

uint32_t loom_artifact_entry_count(const loom_artifact_t *artifact) {
  return artifact ? static_cast<uint32_t>(artifact->entries.size()) : 0;
}

const loom_entry_desc_t *loom_artifact_entry_at(const loom_artifact_t *artifact,
                                                uint32_t index) {
  if (!artifact || index >= artifact->entries.size())
    return nullptr;
  return &artifact->entries[index].desc;
}

loom_status_t loom_artifact_entry_find(const loom_artifact_t *artifact,
                                       const char *name, uint32_t *out_index) {
  if (!artifact || !name || !out_index)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "artifact_entry_find: NULL argument");
  std::string known;
  for (size_t i = 0; i < artifact->entries.size(); ++i) {
    if (std::strcmp(artifact->entries[i].desc.name, name) == 0) {
      *out_index = static_cast<uint32_t>(i);
      return nullptr;
    }
    known += (i ? ", " : "") + std::string(artifact->entries[i].desc.name);
  }
  return makeStatus(LOOM_STATUS_NOT_FOUND,
                    "%s: no entry named '%s' (entries: %s)",
                    artifact->path.c_str(), name, known.c_str());
}

loom_target_t loom_artifact_target(const loom_artifact_t *artifact) {
  return artifact ? artifact->target : LOOM_TARGET_CPU;
}

const char *loom_artifact_target_cpu(const loom_artifact_t *artifact) {
  return artifact ? artifact->targetCpu : "";
}

const char *loom_artifact_compiler_version(const loom_artifact_t *artifact) {
  return artifact ? artifact->compilerVersion : "";
}

uint32_t loom_artifact_import_count(const loom_artifact_t *artifact) {
  return artifact ? static_cast<uint32_t>(artifact->imports.size()) : 0;
}

const char *loom_artifact_import_at(const loom_artifact_t *artifact,
                                    uint32_t index) {
  if (!artifact || index >= artifact->imports.size())
    return nullptr;
  return artifact->imports[index];
}

loom_status_t loom_artifact_file_seal(const char *path) {
  std::vector<uint8_t> bytes;
  if (loom_status_t s = readFile(path, &bytes))
    return s;
  ElfInfo elf;
  if (loom_status_t s = walkElf(bytes.data(), bytes.size(), path, &elf))
    return s;
  if (elf.manifestSize < sizeof(loom_manifest_header_t))
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%s: " LOOM_MANIFEST_SECTION " section of %llu bytes is "
                      "smaller than a manifest header",
                      path, static_cast<unsigned long long>(elf.manifestSize));
  uint64_t at = elf.manifestOffset + kChecksumField;
  uint64_t sum = artifactChecksum(bytes.data(), bytes.size(), at);
  std::memcpy(bytes.data() + at, &sum, 8);
  return writeFile(path, bytes.data(), bytes.size());
}

} // extern "C"
