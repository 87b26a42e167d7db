//===- Executor.h - What loom-run and loom-bench call -----------*- C++ -*-===//
//
// This file declares the executor interface of the command-line tools: the
// entry points of a compiled artifact (through the runtime) or of a `.loom`
// file evaluated by the reference interpreter, behind one API so that both
// read inputs, bind params, keep state and write outputs the same way.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TOOLS_LOOM_RUN_EXECUTOR_H
#define LOOM_TOOLS_LOOM_RUN_EXECUTOR_H

#include "loom/runtime.h"

#include <memory>
#include <string>
#include <vector>

namespace loom::tools {

class Executor {
public:
  virtual ~Executor() = default;
  virtual uint32_t entryCount() const = 0;
  virtual const loom_entry_desc_t *entryAt(uint32_t index) const = 0;
  /// Binds params and creates state; called once before any call.
  virtual loom_status_t start(const loom_tensor_map_t *params) = 0;
  /// Calls an entry with inputs in manifest order; outputs are new
  /// references.
  virtual loom_status_t call(uint32_t entry, loom_tensor_t *const *inputs,
                             loom_tensor_t **outputs) = 0;
  /// Where the code runs: LOOM_TARGET_CUDA when calls copy their inputs to
  /// a GPU and their outputs back.
  virtual loom_target_t target() const { return LOOM_TARGET_CPU; }
  /// call() that also measures the entry apart from host<->device copies
  /// (loom_session_call_timed); by default the whole call is the entry.
  virtual loom_status_t callTimed(uint32_t entry, loom_tensor_t *const *inputs,
                                  loom_tensor_t **outputs,
                                  loom_call_timing_t *timing);
  /// callTimed() that also times each kernel launch and product on the
  /// device (loom_session_call_profiled): `kernels` gets the first
  /// kernels.size() of them, `*count` their number. INCOMPATIBLE where the
  /// code does not run on a GPU (the default).
  virtual loom_status_t callProfiled(uint32_t entry, loom_tensor_t *const *inputs,
                                     loom_tensor_t **outputs,
                                     loom_call_timing_t *timing,
                                     std::vector<loom_kernel_timing_t> &kernels,
                                     size_t *count);
  /// Adds the value of every state, under its session-wide name, to `out`.
  virtual loom_status_t addStates(loom_tensor_map_t *out) = 0;

  /// Finds an entry by name; the error lists the entries there are.
  loom_status_t findEntry(const std::string &name, uint32_t *index) const;
};

/// Adds every tensor of the safetensors files `paths` to `pool` (a name
/// given twice is an error).
loom_status_t addSafetensors(const std::vector<std::string> &paths,
                             loom_tensor_map_t *pool);

/// Opens a compiled artifact through the runtime.
loom_status_t openArtifact(const std::string &path,
                           std::unique_ptr<Executor> &out);

/// Whether this build can interpret `.loom` files.
bool canInterpret();

/// Parses, imports and prepares a `.loom` file for the reference
/// interpreter. Diagnostics are printed to stderr.
loom_status_t openInterpreted(const std::string &path,
                              const std::vector<std::string> &defines,
                              const std::string &configPath,
                              std::unique_ptr<Executor> &out);

} // namespace loom::tools

#endif // LOOM_TOOLS_LOOM_RUN_EXECUTOR_H
