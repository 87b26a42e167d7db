//===- ArtifactExecutor.cpp - Executors shared by the tools -----*- C++ -*-===//
//
// This file implements the executor over a compiled artifact, and the parts
// of the executor interface that do not depend on where the code comes from.
//
//===----------------------------------------------------------------------===//

#include "tools/loom-run/Executor.h"

#include <chrono>
#include <cstring>

using namespace loom::tools;

loom_status_t Executor::findEntry(const std::string &name,
                                  uint32_t *index) const {
  std::string names;
  for (uint32_t i = 0; i < entryCount(); ++i) {
    if (name == entryAt(i)->name) {
      *index = i;
      return nullptr;
    }
    names += (i ? ", " : "") + std::string(entryAt(i)->name);
  }
  std::string message =
      "no entry named '" + name + "' (entries: " + names + ")";
  return loom_status_create(LOOM_STATUS_NOT_FOUND, message.c_str());
}

loom_status_t Executor::callTimed(uint32_t entry, loom_tensor_t *const *inputs,
                                  loom_tensor_t **outputs,
                                  loom_call_timing_t *timing) {
  auto start = std::chrono::steady_clock::now();
  loom_status_t status = call(entry, inputs, outputs);
  auto end = std::chrono::steady_clock::now();
  timing->entry_seconds = std::chrono::duration<double>(end - start).count();
  timing->transfer_seconds = 0;
  return status;
}

loom_status_t Executor::callProfiled(uint32_t, loom_tensor_t *const *,
                                     loom_tensor_t **, loom_call_timing_t *,
                                     std::vector<loom_kernel_timing_t> &,
                                     size_t *) {
  return loom_status_create(LOOM_STATUS_INCOMPATIBLE,
                            "kernels are timed on a GPU; this artifact runs "
                            "on the CPU");
}

loom_status_t loom::tools::addSafetensors(const std::vector<std::string> &paths,
                                          loom_tensor_map_t *pool) {
  for (const std::string &path : paths) {
    loom_tensor_map_t *read = nullptr;
    loom_status_t status = loom_safetensors_read(path.c_str(), 0, &read);
    for (size_t i = 0; !status && i < loom_tensor_map_size(read); ++i)
      status = loom_tensor_map_insert(pool, loom_tensor_map_name_at(read, i),
                                      loom_tensor_map_tensor_at(read, i));
    loom_tensor_map_destroy(read);
    if (status)
      return status;
  }
  return nullptr;
}

namespace {
class ArtifactExecutor final : public Executor {
public:
  explicit ArtifactExecutor(loom_artifact_t *artifact) : artifact(artifact) {}
  ~ArtifactExecutor() override {
    loom_session_destroy(session);
    loom_artifact_close(artifact);
  }
  uint32_t entryCount() const override {
    return loom_artifact_entry_count(artifact);
  }
  const loom_entry_desc_t *entryAt(uint32_t index) const override {
    return loom_artifact_entry_at(artifact, index);
  }
  loom_status_t start(const loom_tensor_map_t *params) override {
    return loom_session_create(artifact, params, &session);
  }
  loom_status_t call(uint32_t entry, loom_tensor_t *const *inputs,
                     loom_tensor_t **outputs) override {
    return loom_session_call(session, entry, inputs, outputs);
  }
  loom_target_t target() const override {
    return loom_artifact_target(artifact);
  }
  loom_status_t callTimed(uint32_t entry, loom_tensor_t *const *inputs,
                          loom_tensor_t **outputs,
                          loom_call_timing_t *timing) override {
    return loom_session_call_timed(session, entry, inputs, outputs, timing);
  }
  loom_status_t callProfiled(uint32_t entry, loom_tensor_t *const *inputs,
                             loom_tensor_t **outputs,
                             loom_call_timing_t *timing,
                             std::vector<loom_kernel_timing_t> &kernels,
                             size_t *count) override {
    return loom_session_call_profiled(session, entry, inputs, outputs, timing,
                                      kernels.data(), kernels.size(), count);
  }
  loom_status_t addStates(loom_tensor_map_t *out) override {
    for (uint32_t e = 0; e < entryCount(); ++e) {
      const loom_entry_desc_t *entry = entryAt(e);
      for (uint32_t i = 0; i < entry->num_args; ++i) {
        const char *name = entry->args[i].binding;
        if (entry->args[i].role != LOOM_ROLE_STATE ||
            loom_tensor_map_find(out, name))
          continue;
        loom_tensor_t *state = loom_session_state(session, name);
        if (!state)
          return loom_status_create(
              LOOM_STATUS_INTERNAL,
              (std::string("cannot read state '") + name + "'").c_str());
        if (loom_status_t status = loom_tensor_map_insert(out, name, state))
          return status;
      }
    }
    return nullptr;
  }

private:
  loom_artifact_t *artifact;
  loom_session_t *session = nullptr;
};
} // namespace

loom_status_t loom::tools::openArtifact(const std::string &path,
                                        std::unique_ptr<Executor> &out) {
  loom_artifact_t *artifact = nullptr;
  if (loom_status_t status = loom_artifact_open(path.c_str(), &artifact))
    return status;
  out = std::make_unique<ArtifactExecutor>(artifact);
  return nullptr;
}

#ifndef LOOM_TOOLS_WITH_INTERPRETER
bool loom::tools::canInterpret() { return false; }

loom_status_t loom::tools::openInterpreted(const std::string &,
                                           const std::vector<std::string> &,
                                           const std::string &,
                                           std::unique_ptr<Executor> &) {
  return loom_status_create(LOOM_STATUS_UNIMPLEMENTED,
                            "this is a runtime-only build: --interpret needs "
                            "the compiler (configure without "
                            "LOOM_RUNTIME_ONLY)");
}
#endif
