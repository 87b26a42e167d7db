//===- artifact_test.cc - Tests of artifact validation and loading --------===//
//
// This file tests loom_artifact_open on the hand-built test artifacts: a good
// artifact loads and describes its entries; foreign, truncated, corrupted,
// wrong-version and otherwise invalid files are refused with a message saying
// why. Invalid manifests are made by patching a copy of the good artifact and
// resealing it, so each test reaches the check it targets rather than
// tripping over the checksum.
//
//===----------------------------------------------------------------------===//

#include "test_util.h"

#include "loom/runtime.hpp"

#include <cstddef>
#include <cstring>
#include <elf.h>
#include <functional>

using loom::test::isError;
using loom::test::isOk;
using loom::test::readBytes;
using loom::test::TempDir;
using loom::test::writeBytes;

namespace {

/// The file range of a section, found independently of the runtime's reader.
bool findSection(const std::vector<uint8_t> &bytes, const char *name,
                 uint64_t *offset, uint64_t *size) {
  Elf64_Ehdr eh;
  std::memcpy(&eh, bytes.data(), sizeof(eh));
  Elf64_Shdr names;
  std::memcpy(&names, bytes.data() + eh.e_shoff + eh.e_shstrndx * sizeof(names),
              sizeof(names));
  for (int i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, bytes.data() + eh.e_shoff + i * sizeof(sh), sizeof(sh));
    const char *n = reinterpret_cast<const char *>(bytes.data()) +
                    names.sh_offset + sh.sh_name;
    if (std::strcmp(n, name) == 0) {
      *offset = sh.sh_offset;
      *size = sh.sh_size;
      return true;
    }
  }
  return false;
}

class ArtifactTest : public ::testing::Test {
protected:
  TempDir dir;

  /// Copies an artifact, lets `patch` edit the bytes with the manifest's
  /// file offset, optionally reseals, and returns the new path.
  std::string
  patched(const std::function<void(std::vector<uint8_t> &, uint64_t)> &patch,
          bool reseal = true, const char *source = LOOM_TEST_ARTIFACT_GOOD) {
    std::vector<uint8_t> bytes = readBytes(source);
    uint64_t offset = 0, size = 0;
    EXPECT_TRUE(findSection(bytes, LOOM_MANIFEST_SECTION, &offset, &size));
    patch(bytes, offset);
    std::string path = dir.path("patched" + std::to_string(counter++) + ".so");
    writeBytes(path, bytes);
    if (reseal)
      EXPECT_TRUE(isOk(loom_artifact_file_seal(path.c_str())));
    return path;
  }

  static loom_manifest_header_t header(const std::vector<uint8_t> &bytes,
                                       uint64_t m) {
    loom_manifest_header_t h;
    std::memcpy(&h, bytes.data() + m, sizeof(h));
    return h;
  }

  /// The file offset of entry `entry`.
  static uint64_t entryOffset(const std::vector<uint8_t> &bytes, uint64_t m,
                              uint32_t entry) {
    return m + header(bytes, m).entries_offset +
           entry * sizeof(loom_manifest_entry_t);
  }

  /// The file offset of requirement `req` of entry `entry`.
  static uint64_t requirementOffset(const std::vector<uint8_t> &bytes,
                                    uint64_t m, uint32_t entry, uint32_t req) {
    loom_manifest_entry_t e;
    std::memcpy(&e, bytes.data() + entryOffset(bytes, m, entry), sizeof(e));
    return m + e.requirements_offset +
           req * sizeof(loom_manifest_requirement_t);
  }

  /// The file offset of term `term` of requirement `req` of entry `entry`.
  static uint64_t termOffset(const std::vector<uint8_t> &bytes, uint64_t m,
                             uint32_t entry, uint32_t req, uint32_t term) {
    loom_manifest_requirement_t r;
    std::memcpy(&r, bytes.data() + requirementOffset(bytes, m, entry, req),
                sizeof(r));
    return m + r.terms_offset + term * sizeof(loom_manifest_term_t);
  }

  /// The file offset of argument `arg` of entry `entry`.
  static uint64_t argOffset(const std::vector<uint8_t> &bytes, uint64_t m,
                            uint32_t entry, uint32_t arg) {
    loom_manifest_header_t h = header(bytes, m);
    loom_manifest_entry_t e;
    std::memcpy(&e, bytes.data() + m + h.entries_offset + entry * sizeof(e),
                sizeof(e));
    return m + e.args_offset + arg * sizeof(loom_manifest_arg_t);
  }

  template <typename T>
  static void poke(std::vector<uint8_t> &bytes, uint64_t at, T value) {
    std::memcpy(bytes.data() + at, &value, sizeof(T));
  }

  static loom_status_t open(const std::string &path) {
    loom_artifact_t *a = nullptr;
    loom_status_t s = loom_artifact_open(path.c_str(), &a);
    loom_artifact_close(a);
    return s;
  }

  int counter = 0;
};

// Entry indices and argument positions in the test manifest (gen_manifest).
constexpr uint32_t kAdd = 0, kAccum = 1, kPeek = 2, kScale = 3, kWindow = 7;

TEST_F(ArtifactTest, OpensAndDescribesEntries) {
  loom_artifact_t *a = nullptr;
  ASSERT_TRUE(isOk(loom_artifact_open(LOOM_TEST_ARTIFACT_GOOD, &a)));
  EXPECT_EQ(loom_artifact_entry_count(a), 8u);
  EXPECT_EQ(loom_artifact_target(a), LOOM_TARGET_CPU);
  EXPECT_STREQ(loom_artifact_target_cpu(a), "generic");
  EXPECT_STREQ(loom_artifact_compiler_version(a), "loom-test-gen 0");
  ASSERT_EQ(loom_artifact_import_count(a), 4u);
  EXPECT_STREQ(loom_artifact_import_at(a, 1), "loom_rt_matmul_f32");
  EXPECT_STREQ(loom_artifact_import_at(a, 3), "loom_rt_free");
  uint32_t index = 99;
  ASSERT_TRUE(isOk(loom_artifact_entry_find(a, "scale", &index)));
  EXPECT_EQ(index, kScale);
  const loom_entry_desc_t *e = loom_artifact_entry_at(a, index);
  ASSERT_NE(e, nullptr);
  EXPECT_STREQ(e->name, "scale");
  EXPECT_STREQ(e->symbol, "loom_entry_scale");
  ASSERT_EQ(e->num_args, 3u);
  EXPECT_EQ(e->num_inputs, 1u);
  EXPECT_EQ(e->num_params, 1u);
  EXPECT_EQ(e->num_states, 0u);
  EXPECT_EQ(e->num_outputs, 1u);
  const loom_arg_desc_t &x = e->args[0];
  EXPECT_STREQ(x.name, "x");
  EXPECT_EQ(x.role, LOOM_ROLE_INPUT);
  EXPECT_EQ(x.dtype, LOOM_DTYPE_F32);
  ASSERT_EQ(x.rank, 2);
  EXPECT_EQ(x.dims[0], -1);
  EXPECT_STREQ(x.dim_symbols[0], "B");
  EXPECT_EQ(x.dims[1], 4);
  EXPECT_EQ(x.dim_symbols[1], nullptr);
  EXPECT_STREQ(e->args[1].binding, "w.weight");
  EXPECT_EQ(e->args[1].role, LOOM_ROLE_PARAM);
  EXPECT_TRUE(isError(loom_artifact_entry_find(a, "nope", &index),
                      LOOM_STATUS_NOT_FOUND,
                      {"no entry named 'nope'", "add, accum"}));
  EXPECT_EQ(loom_artifact_entry_at(a, 8), nullptr);
  loom_artifact_close(a);
}

TEST_F(ArtifactTest, CxxWrapperOpens) {
  loom::Artifact a;
  ASSERT_TRUE(loom::Artifact::open(LOOM_TEST_ARTIFACT_GOOD, &a).ok());
  uint32_t index;
  EXPECT_TRUE(a.findEntry("mm", &index).ok());
  EXPECT_STREQ(a.entry(index)->args[2].dim_symbols[1], "P");
}

TEST_F(ArtifactTest, MissingFile) {
  EXPECT_TRUE(isError(open("/nonexistent/model.so"), LOOM_STATUS_NOT_FOUND,
                      {"/nonexistent/model.so"}));
}

TEST_F(ArtifactTest, RefusesNonElf) {
  std::string path = dir.path("model.so");
  loom::test::writeText(path, "#!/bin/sh\necho not a library\n");
  EXPECT_TRUE(isError(open(path), LOOM_STATUS_INVALID_ARGUMENT,
                      {path.c_str(), "not an ELF file"}));
  loom::test::writeText(path, "");
  EXPECT_TRUE(
      isError(open(path), LOOM_STATUS_INVALID_ARGUMENT, {"not an ELF file"}));
}

TEST_F(ArtifactTest, RefusesElfWithoutManifest) {
  EXPECT_TRUE(isError(open(LOOM_TEST_PLAIN_LIBRARY),
                      LOOM_STATUS_INVALID_ARGUMENT,
                      {"not a Loom artifact", ".loom.manifest"}));
}

TEST_F(ArtifactTest, RefusesTruncatedFiles) {
  std::vector<uint8_t> bytes = readBytes(LOOM_TEST_ARTIFACT_GOOD);
  std::string path = dir.path("cut.so");
  writeBytes(path, std::vector<uint8_t>(bytes.begin(),
                                        bytes.begin() + bytes.size() / 2));
  EXPECT_TRUE(
      isError(open(path), LOOM_STATUS_DATA_LOSS, {path.c_str(), "truncated"}));
  writeBytes(path, std::vector<uint8_t>(bytes.begin(), bytes.begin() + 40));
  EXPECT_TRUE(
      isError(open(path), LOOM_STATUS_DATA_LOSS, {"truncated ELF file"}));
  // Cutting only the last byte keeps the structure but breaks the checksum
  // or the section table, never loads.
  writeBytes(path, std::vector<uint8_t>(bytes.begin(), bytes.end() - 1));
  EXPECT_TRUE(isError(open(path), LOOM_STATUS_DATA_LOSS, {path.c_str()}));
}

TEST_F(ArtifactTest, RefusesCorruptedCodeByte) {
  std::vector<uint8_t> bytes = readBytes(LOOM_TEST_ARTIFACT_GOOD);
  uint64_t text, size;
  ASSERT_TRUE(findSection(bytes, ".text", &text, &size));
  std::string path = patched(
      [&](std::vector<uint8_t> &b, uint64_t) { b[text + size / 2] ^= 0x10; },
      /*reseal=*/false);
  EXPECT_TRUE(isError(open(path), LOOM_STATUS_DATA_LOSS,
                      {path.c_str(), "checksum mismatch"}));
}

TEST_F(ArtifactTest, RefusesUnsealedFile) {
  std::string path = patched(
      [&](std::vector<uint8_t> &b, uint64_t m) {
        poke<uint64_t>(b, m + offsetof(loom_manifest_header_t, file_checksum),
                       0);
      },
      /*reseal=*/false);
  EXPECT_TRUE(isError(open(path), LOOM_STATUS_DATA_LOSS,
                      {"checksum mismatch", "0x0000000000000000"}));
}

TEST_F(ArtifactTest, RefusesWrongAbiVersion) {
  std::string path = patched([&](std::vector<uint8_t> &b, uint64_t m) {
    poke<uint32_t>(b, m + offsetof(loom_manifest_header_t, abi_version),
                   LOOM_ABI_VERSION + 1);
  });
  std::string theirs = "ABI version " + std::to_string(LOOM_ABI_VERSION + 1);
  std::string ours = "ABI version " + std::to_string(LOOM_ABI_VERSION);
  EXPECT_TRUE(isError(open(path), LOOM_STATUS_INCOMPATIBLE,
                      {path.c_str(), theirs.c_str(), ours.c_str()}));
}

TEST_F(ArtifactTest, RefusesUnknownImport) {
  EXPECT_TRUE(isError(open(LOOM_TEST_ARTIFACT_UNKNOWN_IMPORT),
                      LOOM_STATUS_NOT_FOUND,
                      {"loom_rt_does_not_exist", "does not provide"}));
}

TEST_F(ArtifactTest, RefusesForeignElfHeaders) {
  struct {
    size_t at;
    uint16_t value;
    bool wide;
    const char *keyword;
  } cases[] = {
      {EI_CLASS, ELFCLASS32, false, "not a 64-bit"},
      {EI_DATA, ELFDATA2MSB, false, "not a little-endian"},
      {offsetof(Elf64_Ehdr, e_type), ET_EXEC, true, "not a shared object"},
      {offsetof(Elf64_Ehdr, e_machine), EM_RISCV, true, "ELF machine 243"},
  };
  for (const auto &c : cases) {
    std::string path = patched(
        [&](std::vector<uint8_t> &b, uint64_t) {
          if (c.wide)
            poke<uint16_t>(b, c.at, c.value);
          else
            b[c.at] = static_cast<uint8_t>(c.value);
        },
        /*reseal=*/false);
    EXPECT_TRUE(isError(open(path), LOOM_STATUS_INCOMPATIBLE, {c.keyword}))
        << c.keyword;
  }
  std::string path = patched(
      [&](std::vector<uint8_t> &b, uint64_t) {
        poke<uint64_t>(b, offsetof(Elf64_Ehdr, e_shoff), b.size() - 8);
      },
      /*reseal=*/false);
  EXPECT_TRUE(
      isError(open(path), LOOM_STATUS_DATA_LOSS, {"section header table"}));
}

/// One manifest field patched (and resealed) per case, each expected to be
/// refused with its own message.
TEST_F(ArtifactTest, RefusesInvalidManifests) {
  using Patch = std::function<void(std::vector<uint8_t> &, uint64_t)>;
  auto field = [](size_t offset, uint32_t value) -> Patch {
    return [=](std::vector<uint8_t> &b, uint64_t m) {
      poke<uint32_t>(b, m + offset, value);
    };
  };
  auto argField = [](uint32_t entry, uint32_t arg, size_t offset,
                     uint32_t value) -> Patch {
    return [=](std::vector<uint8_t> &b, uint64_t m) {
      poke<uint32_t>(b, argOffset(b, m, entry, arg) + offset, value);
    };
  };
  auto argDim = [](uint32_t entry, uint32_t arg, uint32_t dim,
                   int64_t value) -> Patch {
    return [=](std::vector<uint8_t> &b, uint64_t m) {
      loom_manifest_arg_t a;
      std::memcpy(&a, b.data() + argOffset(b, m, entry, arg), sizeof(a));
      poke<int64_t>(b, m + a.dims_offset + 8 * dim, value);
    };
  };
  auto entryField = [](uint32_t entry, size_t offset, uint32_t value) -> Patch {
    return [=](std::vector<uint8_t> &b, uint64_t m) {
      poke<uint32_t>(b, entryOffset(b, m, entry) + offset, value);
    };
  };
  auto reqField = [](uint32_t entry, uint32_t req, size_t offset,
                     uint32_t value) -> Patch {
    return [=](std::vector<uint8_t> &b, uint64_t m) {
      poke<uint32_t>(b, requirementOffset(b, m, entry, req) + offset, value);
    };
  };
  auto termField = [](uint32_t entry, uint32_t req, uint32_t term,
                      size_t offset, uint32_t value) -> Patch {
    return [=](std::vector<uint8_t> &b, uint64_t m) {
      poke<uint32_t>(b, termOffset(b, m, entry, req, term) + offset, value);
    };
  };
  using H = loom_manifest_header_t;
  using A = loom_manifest_arg_t;
  using E = loom_manifest_entry_t;
  using R = loom_manifest_requirement_t;
  using T = loom_manifest_term_t;
  struct Case {
    const char *what;
    Patch patch;
    std::vector<const char *> keywords;
  } cases[] = {
      {"magic",
       [](std::vector<uint8_t> &b, uint64_t m) { b[m] = 'X'; },
       {"bad magic"}},
      {"header size", field(offsetof(H, header_size), 64), {"header_size 64"}},
      {"total size", field(offsetof(H, total_size), 8), {"total_size 8"}},
      {"target", field(offsetof(H, target), 7), {"unknown target 7"}},
      {"string table",
       field(offsetof(H, strings_size), 1u << 30),
       {"string table"}},
      {"symbol table",
       field(offsetof(H, num_symbols), 1u << 28),
       {"symbol table"}},
      {"entry alignment",
       [](std::vector<uint8_t> &b, uint64_t m) {
         poke<uint32_t>(b, m + offsetof(H, entries_offset),
                        header(b, m).entries_offset + 2);
       },
       {"entry table offset", "aligned"}},
      {"import table",
       field(offsetof(H, imports_offset), 1u << 30),
       {"import table"}},
      {"string offset",
       field(offsetof(H, target_cpu), 1u << 20),
       {"target_cpu", "NUL-terminated"}},
      {"dtype",
       argField(kAdd, 0, offsetof(A, dtype), 99),
       {"entry 'add' argument 'x'", "invalid dtype 99"}},
      {"role", argField(kAdd, 0, offsetof(A, role), 9), {"invalid role 9"}},
      {"role order",
       argField(kAccum, 0, offsetof(A, role), LOOM_ROLE_OUTPUT),
       {"argument 'acc'", "state after output", "ordered"}},
      {"rank", argField(kAdd, 0, offsetof(A, rank), 9), {"rank 9 exceeds"}},
      {"binding",
       argField(kAdd, 0, offsetof(A, binding), 1u << 20),
       {"binding", "string offset"}},
      {"dims offset",
       argField(kAdd, 0, offsetof(A, dims_offset), 1u << 30),
       {"argument 'x' dims"}},
      {"dims alignment",
       argField(kAdd, 0, offsetof(A, dims_offset), 4),
       {"dims offset 4", "8-byte aligned"}},
      {"symbol index", argDim(kAdd, 0, 0, -100), {"refers to symbol 99"}},
      {"unbound symbol",
       argDim(kAdd, 2, 0, -2),
       {"argument 'z'", "symbol 'B'", "not bound"}},
      {"symbolic state",
       argDim(kAccum, 1, 0, -1),
       {"state dims must be static"}},
      {"state mismatch",
       argDim(kPeek, 0, 0, 5),
       {"state 'acc'", "f32[4] in entry 'accum'", "f32[5] in entry 'peek'"}},
      {"negative static dim via symbol",
       argDim(kScale, 1, 0, -1),
       {"argument 'w'", "symbol 'N'", "not bound"}},
      // Requirements of entry 'window': 0 is `pos >= 0` (one input term),
      // 1 is `pos + N <= max_len` (terms pos and N).
      {"requirement table",
       entryField(kWindow, offsetof(E, num_requirements), 1u << 28),
       {"entry 'window' requirement table"}},
      {"requirement alignment",
       [&](std::vector<uint8_t> &b, uint64_t m) {
         loom_manifest_entry_t e;
         std::memcpy(&e, b.data() + entryOffset(b, m, kWindow), sizeof(e));
         poke<uint32_t>(
             b, entryOffset(b, m, kWindow) + offsetof(E, requirements_offset),
             e.requirements_offset + 4);
       },
       {"requirement table offset", "8-byte aligned"}},
      {"predicate",
       reqField(kWindow, 0, offsetof(R, predicate), 9),
       {"requirement 'pos >= 0'", "invalid predicate 9"}},
      {"no terms",
       reqField(kWindow, 0, offsetof(R, num_terms), 0),
       {"requirement 'pos >= 0': no terms"}},
      {"term table",
       reqField(kWindow, 1, offsetof(R, terms_offset), 1u << 30),
       {"requirement 'pos + N <= max_len' terms"}},
      {"term count",
       reqField(kWindow, 1, offsetof(R, num_terms), 1u << 28),
       {"requirement 'pos + N <= max_len' terms", "out of the"}},
      {"text",
       reqField(kWindow, 0, offsetof(R, text), 1u << 20),
       {"requirement 0 text", "NUL-terminated"}},
      {"empty text",
       reqField(kWindow, 0, offsetof(R, text), 0),
       {"requirement 0: empty text"}},
      {"configs",
       reqField(kWindow, 1, offsetof(R, configs), 1u << 20),
       {"requirement 1 configs", "NUL-terminated"}},
      {"location",
       reqField(kWindow, 1, offsetof(R, location), 1u << 20),
       {"requirement 1 location", "NUL-terminated"}},
      {"term kind",
       termField(kWindow, 1, 0, offsetof(T, kind), 7),
       {"term 0", "invalid term kind 7"}},
      {"term name",
       termField(kWindow, 1, 1, offsetof(T, name), 1u << 20),
       {"term 1 name", "NUL-terminated"}},
      {"empty term name",
       termField(kWindow, 1, 1, offsetof(T, name), 0),
       {"term 1: empty name"}},
      {"term reserved",
       termField(kWindow, 1, 0, offsetof(T, reserved), 5),
       {"term 0: reserved field is 5"}},
      {"term symbol index",
       termField(kWindow, 1, 1, offsetof(T, index), 99),
       {"term 1: symbol 99 of 5"}},
      {"term symbol not bound",
       // Symbol 1 is 'B', which no input of 'window' has.
       termField(kWindow, 1, 1, offsetof(T, index), 1),
       {"term 1: symbol 'B' is not bound by any input"}},
      {"term input out of range",
       termField(kWindow, 0, 0, offsetof(T, index), 2),
       {"term 0: argument 2 is not an input", "2 inputs"}},
      {"term input not a scalar",
       termField(kWindow, 0, 0, offsetof(T, index), 0),
       {"term 0: input 'x'", "not a rank-0 i32 or i64"}},
  };
  for (const Case &c : cases) {
    std::string path = patched(c.patch);
    loom_status_t s = open(path);
    ::testing::AssertionResult r =
        isError(s, LOOM_STATUS_DATA_LOSS, {path.c_str(), "invalid manifest"});
    EXPECT_TRUE(r) << c.what;
    for (const char *k : c.keywords)
      EXPECT_NE(std::string(r.message()).find(k), std::string::npos)
          << c.what << ": missing '" << k << "' in: " << r.message();
  }
}

TEST_F(ArtifactTest, RefusesEntryWithWrongSymbol) {
  // Point the name of entry 'add' at the string "accum": the symbol
  // loom_entry_add no longer matches it, and the name would be a duplicate.
  std::string path = patched([&](std::vector<uint8_t> &b, uint64_t m) {
    loom_manifest_header_t h = header(b, m);
    loom_manifest_entry_t add, accum;
    std::memcpy(&add, b.data() + m + h.entries_offset, sizeof(add));
    std::memcpy(&accum, b.data() + m + h.entries_offset + sizeof(add),
                sizeof(accum));
    add.name = accum.name;
    std::memcpy(b.data() + m + h.entries_offset, &add, sizeof(add));
  });
  EXPECT_TRUE(isError(open(path), LOOM_STATUS_DATA_LOSS,
                      {"entry 'accum'", "symbol 'loom_entry_add'"}));
}

TEST_F(ArtifactTest, SealIsIdempotentAndOpens) {
  std::string path = patched([](std::vector<uint8_t> &, uint64_t) {});
  ASSERT_TRUE(isOk(loom_artifact_file_seal(path.c_str())));
  EXPECT_EQ(readBytes(path), readBytes(LOOM_TEST_ARTIFACT_GOOD));
  EXPECT_TRUE(isOk(open(path)));
  std::string text = dir.path("text");
  loom::test::writeText(text, "hello");
  EXPECT_TRUE(isError(loom_artifact_file_seal(text.c_str()),
                      LOOM_STATUS_INVALID_ARGUMENT, {"not an ELF file"}));
}

} // namespace

// Two different artifacts stay usable side by side, also after an earlier
// one was closed (a reused descriptor number must not alias them).
TEST_F(ArtifactTest, TwoDifferentArtifactsAtOnce) {
  std::string other = patched([](std::vector<uint8_t> &bytes, uint64_t m) {
    loom_manifest_header_t h = header(bytes, m);
    // Rename the compiler version in place: a different but valid file.
    bytes[m + h.strings_offset + h.compiler_version] ^= 0x20;
  });
  for (int round = 0; round < 3; ++round) {
    loom_artifact_t *a = nullptr, *b = nullptr;
    ASSERT_TRUE(isOk(loom_artifact_open(LOOM_TEST_ARTIFACT_GOOD, &a)));
    ASSERT_TRUE(isOk(loom_artifact_open(other.c_str(), &b)));
    EXPECT_STRNE(loom_artifact_compiler_version(a),
                 loom_artifact_compiler_version(b));
    loom_artifact_close(a);
    loom_artifact_close(b);
  }
}
