//===- artifact.h - The loaded artifact, shared with sessions ---*- C++ -*-===//
//
// This file defines the runtime's view of an opened artifact: the validated
// manifest copied out of the file, the entry descriptors built from it, and
// the resolved entry functions. Sessions read it to bind params and states
// and to build memref descriptors.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_SRC_ARTIFACT_H
#define LOOM_RUNTIME_SRC_ARTIFACT_H

#include "internal.h"

#include <memory>

namespace loom {

/// Per-argument facts the session needs beyond the public descriptor.
struct ArgInfo {
  /// Symbol index of each dim, -1 where the dim is static.
  int32_t symbol[LOOM_MAX_RANK];
};

/// A term of a requirement: `coeff` times a symbol's value or a rank-0
/// integer input's value.
struct RequirementTermInfo {
  int64_t coeff;
  loom_requirement_term_kind_t kind;
  /// Symbol index, or argument index of the input.
  uint32_t index;
  const char *name;
};

/// A validated requirement of an entry, checked before every call.
struct RequirementInfo {
  int64_t constant;
  loom_requirement_predicate_t predicate;
  std::vector<RequirementTermInfo> terms;
  const char *text;
  const char *configs;
  const char *location;
};

struct EntryInfo {
  loom_entry_desc_t desc;
  std::vector<loom_arg_desc_t> args;
  std::vector<ArgInfo> argInfo;
  std::vector<RequirementInfo> requirements;
  loom_entry_fn_t fn = nullptr;
};

} // namespace loom

struct loom_artifact {
  std::atomic<int32_t> refs{1};
  std::string path;
  /// The validated file, open while its code is loaded.
  int fd = -1;
  void *handle = nullptr;
  /// The manifest as read from the file; every `const char *` of the
  /// descriptors points into it.
  std::vector<uint64_t> blob;
  uint64_t manifestSize = 0;
  loom_target_t target = LOOM_TARGET_CPU;
  const char *targetCpu = "";
  const char *compilerVersion = "";
  std::vector<const char *> symbols;
  std::vector<const char *> imports;
  std::vector<const char *> importSlots;
  std::vector<loom::EntryInfo> entries;
};

namespace loom {
/// Adds and drops references to an artifact (sessions hold one).
void retainArtifact(loom_artifact_t *artifact);
void releaseArtifact(loom_artifact_t *artifact);
} // namespace loom

#endif // LOOM_RUNTIME_SRC_ARTIFACT_H
