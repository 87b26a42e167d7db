//===- Manifest.h - Artifact manifests --------------------------*- C++ -*-===//
//
// This file declares the compiler's view of an artifact manifest: what is
// collected from the entry functions, how it is serialized into the blob of
// runtime/include/loom/abi.h, and how a finished shared object is sealed
// with its checksum.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_COMPILER_ARTIFACT_MANIFEST_H
#define LOOM_COMPILER_ARTIFACT_MANIFEST_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mlir::loom {

/// One argument of an entry, in ABI order.
struct ManifestArg {
  std::string name;
  std::string binding;
  uint32_t role = 0;
  uint32_t dtype = 0;
  /// >= 0: static size; < 0: symbol -(index + 1).
  std::vector<int64_t> dims;
};

/// One term of a requirement (loom_manifest_term_t).
struct ManifestTerm {
  int64_t coeff = 0;
  uint32_t kind = 0;
  /// Symbol index or argument index.
  uint32_t index = 0;
  std::string name;
};

/// One requirement of an entry (loom_manifest_requirement_t).
struct ManifestRequirement {
  int64_t constant = 0;
  uint32_t predicate = 0;
  std::vector<ManifestTerm> terms;
  std::string text;
  std::string configs;
  std::string location;
};

struct ManifestEntry {
  std::string name;
  std::string symbol;
  std::vector<ManifestArg> args;
  std::vector<ManifestRequirement> requirements;
};

struct ManifestImport {
  std::string name;
  std::string slot;
};

struct Manifest {
  uint32_t target = 0;
  std::string compilerVersion;
  std::string targetCpu;
  std::vector<std::string> symbols;
  std::vector<ManifestEntry> entries;
  std::vector<ManifestImport> imports;
};

/// Collects the entries of `module` after loom-cpu-entry-abi: every public
/// function whose arguments carry `loom.role`, with the requirements of its
/// `loom.requires`. Imports are added when the LLVM IR is built. Emits an
/// error and fails on a signature the ABI cannot describe or a malformed
/// `loom.requires`.
FailureOr<Manifest> collectManifest(ModuleOp module);

/// Serializes into the blob format of abi.h, checksum zero.
std::vector<uint8_t> serializeManifest(const Manifest &manifest);

/// Name of the data symbol that holds the slot of an import.
std::string importSlotSymbol(llvm::StringRef import);

/// Patches the checksum of the manifest inside the shared object at `path`.
/// Returns an empty string on success, else the reason.
std::string sealArtifact(llvm::StringRef path);

/// Maps an MLIR element type to a loom_dtype_t, 0 if there is none.
uint32_t dtypeOf(Type type);

} // namespace mlir::loom

#endif // LOOM_COMPILER_ARTIFACT_MANIFEST_H
