//===- session.cc - Sessions: bound params, state, and calls --------------===//
//
// This file implements sessions. Creating one binds every param of every entry
// from a tensor map and allocates the state buffers (shared across entries by
// name, so prefill and decode see one cache). Everything that does not change
// between calls - the args array and the memref descriptors of params and
// states - is built then, so a call only checks its inputs, binds symbolic
// dims, checks the entry's requirements, allocates outputs and fills the
// input/output descriptors.
//
// Sessions on CUDA artifacts keep params and states in device memory for
// their whole life and pass device pointers in every descriptor: a call
// uploads its inputs into device buffers the entry's plan keeps for the next
// call, runs the entry (which launches its kernels through the mgpu* host
// functions of cuda_driver.cc), waits for the device and downloads the
// outputs.
//
//===----------------------------------------------------------------------===//

#include "artifact.h"
#include "cuda_driver.h"

#include <chrono>
#include <cstring>
#include <new>

using namespace loom;

namespace {

/// The prepared call state of one entry.
struct EntryPlan {
  const EntryInfo *info = nullptr;
  /// All memref descriptors of the entry back to back; args[i] points into
  /// it. A rank-r descriptor is 3 + 2r words: allocated, aligned, offset,
  /// sizes, strides.
  std::vector<int64_t> descriptors;
  std::vector<size_t> descriptorOffset;
  std::vector<void *> args;
  /// Symbol values of the current call and the input that bound each.
  std::vector<int64_t> symbolValue;
  std::vector<int32_t> symbolSource;
  std::vector<int32_t> symbolDim;
  std::vector<loom_tensor_t *> inputScratch;
  /// CUDA sessions: the device buffer of each input and output (indexed
  /// like args, 0 for params and states), grown on demand and kept for the
  /// next call, and its capacity in bytes.
  std::vector<cuda::DevicePtr> deviceBuffer;
  std::vector<size_t> deviceCapacity;
};

} // namespace

struct loom_session {
  loom_artifact_t *artifact = nullptr;
  /// Param tensors bound by this session (one reference each) and the
  /// binding names they were found under.
  std::unordered_map<std::string, loom_tensor_t *> params;
  std::vector<std::string> stateNames;
  std::unordered_map<std::string, loom_tensor_t *> states;
  std::vector<EntryPlan> plans;
  /// Whether the artifact runs on the CUDA device. Then `params` is empty,
  /// `states` are host mirrors refreshed by loom_session_state, and the
  /// buffers the entries see are these device copies, by binding name.
  bool cuda = false;
  std::unordered_map<std::string, cuda::DevicePtr> deviceParams;
  std::unordered_map<std::string, cuda::DevicePtr> deviceStates;
};

/// Writes the contiguous row-major descriptor of a tensor of the shape of
/// `t` whose data is at `p` (host or device memory) at `d`.
static void fillDescriptorAt(int64_t *d, const loom_tensor_t *t, void *p) {
  std::memcpy(&d[0], &p, sizeof(void *));
  std::memcpy(&d[1], &p, sizeof(void *));
  d[2] = 0;
  int64_t stride = 1;
  for (int32_t i = t->rank - 1; i >= 0; --i) {
    d[3 + i] = t->dims[i];
    d[3 + t->rank + i] = stride;
    stride *= t->dims[i];
  }
}

/// Writes the contiguous row-major descriptor of `t` at `d`.
static void fillDescriptor(int64_t *d, const loom_tensor_t *t) {
  fillDescriptorAt(d, t, t->data);
}

static void *devicePointer(cuda::DevicePtr p) {
  return reinterpret_cast<void *>(static_cast<uintptr_t>(p));
}

/// Formats the declared shape of an arg, symbols by name: "[B, 4]".
static std::string declaredShape(const loom_arg_desc_t &arg) {
  std::string s = "[";
  for (int32_t d = 0; d < arg.rank; ++d) {
    if (d)
      s += ", ";
    s += arg.dim_symbols[d] ? arg.dim_symbols[d] : std::to_string(arg.dims[d]);
  }
  return s + "]";
}

static std::string describe(const loom_dtype_t dtype, int32_t rank,
                            const int64_t *dims) {
  return std::string(loom_dtype_name(dtype)) + formatDims(rank, dims);
}

static const char *roleWord(loom_arg_role_t role) {
  switch (role) {
  case LOOM_ROLE_INPUT:
    return "input";
  case LOOM_ROLE_PARAM:
    return "param";
  case LOOM_ROLE_STATE:
    return "state";
  default:
    return "output";
  }
}

/// Checks the dtype, rank and static dims of `t` against `arg`.
static loom_status_t checkStatic(const EntryInfo &entry,
                                 const loom_arg_desc_t &arg,
                                 const loom_tensor_t *t) {
  bool ok = t->dtype == arg.dtype && t->rank == arg.rank;
  for (int32_t d = 0; ok && d < arg.rank; ++d)
    ok = arg.dim_symbols[d] || arg.dims[d] == t->dims[d];
  if (ok)
    return nullptr;
  std::string name = arg.role == LOOM_ROLE_PARAM
                         ? format("'%s' (binding '%s')", arg.name, arg.binding)
                         : format("'%s'", arg.name);
  const char *what = t->dtype != arg.dtype ? "wrong dtype"
                     : t->rank != arg.rank ? "wrong rank"
                                           : "wrong shape";
  return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                    "entry '%s': %s %s: %s: expected %s%s, got %s",
                    entry.desc.name, roleWord(arg.role), name.c_str(), what,
                    loom_dtype_name(arg.dtype), declaredShape(arg).c_str(),
                    describe(t->dtype, t->rank, t->dims).c_str());
}

/// Checks the requirements of `entry` for a call whose inputs have been
/// checked and whose symbols are bound. The message matches the compiler's
/// (compiler/Artifact/Requirements.cpp), which the interpreter path uses.
static loom_status_t checkRequirements(const EntryInfo &entry,
                                       const EntryPlan &plan,
                                       loom_tensor_t *const *inputs) {
  std::vector<int64_t> values;
  for (const RequirementInfo &req : entry.requirements) {
    values.clear();
    // Each product fits in 127 bits and there are far fewer than 2^63
    // terms, so the sum cannot overflow.
    __int128 sum = req.constant;
    for (const RequirementTermInfo &term : req.terms) {
      int64_t value;
      if (term.kind == LOOM_TERM_SYMBOL) {
        value = plan.symbolValue[term.index];
      } else {
        const loom_tensor_t *t = inputs[term.index];
        value = t->dtype == LOOM_DTYPE_I32
                    ? *static_cast<const int32_t *>(t->data)
                    : *static_cast<const int64_t *>(t->data);
      }
      values.push_back(value);
      sum += static_cast<__int128>(term.coeff) * value;
    }
    bool holds = req.predicate == LOOM_REQUIREMENT_GE   ? sum >= 0
                 : req.predicate == LOOM_REQUIREMENT_EQ ? sum == 0
                                                        : sum != 0;
    if (holds)
      continue;
    std::string shown;
    for (size_t i = 0; i < req.terms.size(); ++i) {
      bool repeated = false;
      for (size_t j = 0; j < i; ++j)
        repeated |= std::strcmp(req.terms[j].name, req.terms[i].name) == 0;
      if (repeated)
        continue;
      shown += (shown.empty() ? "" : ", ") + std::string(req.terms[i].name) +
               " = " + std::to_string(values[i]);
    }
    if (*req.configs)
      shown += (shown.empty() ? "" : ", ") + std::string(req.configs);
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "entry '%s': requirement failed: %s (%s) [%s]",
                      entry.desc.name, req.text, shown.c_str(), req.location);
  }
  return nullptr;
}

/// Checks that a CUDA artifact can run here: a driver, a device, and a
/// compute capability the artifact's chip runs on.
static loom_status_t checkCudaDevice(const loom_artifact_t *artifact) {
  const char *chip = artifact->targetCpu;
  if (loom_status_t s = cuda::ensureDriver())
    return prefixStatus(s, format("%s: this artifact was compiled for CUDA "
                                  "(%s) and needs an NVIDIA driver: ",
                                  artifact->path.c_str(), chip));
  const cuda::DeviceInfo &dev = cuda::device();
  bool parsed = false;
  std::string need = cuda::chipRequirement(chip, dev.major, dev.minor, &parsed);
  if (!parsed)
    return makeStatus(LOOM_STATUS_INCOMPATIBLE,
                      "%s: CUDA artifact for an unknown chip '%s' (expected "
                      "sm_<major><minor>, optionally with the suffix 'a')",
                      artifact->path.c_str(), chip);
  if (!need.empty())
    return makeStatus(LOOM_STATUS_INCOMPATIBLE,
                      "%s: this artifact was compiled for %s, which needs %s, "
                      "but CUDA device %d (%s) has compute capability %d.%d",
                      artifact->path.c_str(), chip, need.c_str(), dev.ordinal,
                      dev.name.c_str(), dev.major, dev.minor);
  return nullptr;
}

/// Makes sure the plan's device buffer of argument `i` holds `bytes`.
static loom_status_t reserveDevice(EntryPlan &plan, size_t i, size_t bytes,
                                   const loom_arg_desc_t &arg) {
  if (plan.deviceBuffer[i] && plan.deviceCapacity[i] >= bytes)
    return nullptr;
  cuda::freeBuffer(plan.deviceBuffer[i]);
  plan.deviceBuffer[i] = 0;
  plan.deviceCapacity[i] = 0;
  if (loom_status_t s =
          cuda::alloc(bytes,
                      format("entry '%s': %s '%s'", plan.info->desc.name,
                             roleWord(arg.role), arg.name),
                      &plan.deviceBuffer[i]))
    return s;
  plan.deviceCapacity[i] = bytes;
  return nullptr;
}

/// Binds param `arg` of `entry` on the device: uploaded once per binding.
static loom_status_t bindDeviceParam(loom_session_t *s, const EntryInfo &entry,
                                     const loom_arg_desc_t &arg,
                                     const loom_tensor_t *t, void **out) {
  auto it = s->deviceParams.find(arg.binding);
  if (it == s->deviceParams.end()) {
    std::string what = format("entry '%s': param '%s' (binding '%s')",
                              entry.desc.name, arg.name, arg.binding);
    cuda::DevicePtr p = 0;
    if (loom_status_t st = cuda::alloc(t->byteSize, what, &p))
      return st;
    it = s->deviceParams.emplace(arg.binding, p).first;
    if (loom_status_t st = cuda::upload(p, t->data, t->byteSize, what))
      return st;
  }
  *out = devicePointer(it->second);
  return nullptr;
}

extern "C" {

loom_status_t loom_session_create(loom_artifact_t *artifact,
                                  const loom_tensor_map_t *params,
                                  loom_session_t **out_session) {
  if (!artifact || !out_session)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "session_create: NULL argument");
  bool onDevice = artifact->target == LOOM_TARGET_CUDA;
  if (onDevice) {
    if (loom_status_t status = checkCudaDevice(artifact))
      return status;
    if (loom_status_t status = cuda::makeCurrent())
      return status;
  }
  auto *s = new (std::nothrow) loom_session;
  if (!s)
    return makeStatus(LOOM_STATUS_OUT_OF_MEMORY, "out of memory");
  retainArtifact(artifact);
  s->artifact = artifact;
  s->cuda = onDevice;
  s->plans.resize(artifact->entries.size());
  size_t numSymbols = artifact->symbols.size();
  for (size_t e = 0; e < artifact->entries.size(); ++e) {
    const EntryInfo &entry = artifact->entries[e];
    EntryPlan &plan = s->plans[e];
    plan.info = &entry;
    plan.symbolValue.assign(numSymbols, -1);
    plan.symbolSource.assign(numSymbols, -1);
    plan.symbolDim.assign(numSymbols, -1);
    plan.inputScratch.assign(entry.desc.num_inputs, nullptr);
    if (onDevice) {
      plan.deviceBuffer.assign(entry.args.size(), 0);
      plan.deviceCapacity.assign(entry.args.size(), 0);
    }
    size_t words = 0;
    for (const loom_arg_desc_t &arg : entry.args) {
      plan.descriptorOffset.push_back(words);
      words += 3 + 2 * static_cast<size_t>(arg.rank);
    }
    plan.descriptors.assign(words, 0);
    for (size_t i = 0; i < entry.args.size(); ++i)
      plan.args.push_back(plan.descriptors.data() + plan.descriptorOffset[i]);

    for (size_t i = 0; i < entry.args.size(); ++i) {
      const loom_arg_desc_t &arg = entry.args[i];
      loom_tensor_t *t = nullptr;
      if (arg.role == LOOM_ROLE_PARAM) {
        t = loom_tensor_map_find(params, arg.binding);
        if (!t) {
          loom_session_destroy(s);
          return makeStatus(
              LOOM_STATUS_NOT_FOUND,
              "entry '%s': param '%s' (binding '%s', %s%s) is missing from "
              "the params",
              entry.desc.name, arg.name, arg.binding,
              loom_dtype_name(arg.dtype), declaredShape(arg).c_str());
        }
        if (loom_status_t status = checkStatic(entry, arg, t)) {
          loom_session_destroy(s);
          return status;
        }
        if (onDevice) {
          void *p = nullptr;
          if (loom_status_t status = bindDeviceParam(s, entry, arg, t, &p)) {
            loom_session_destroy(s);
            return status;
          }
          fillDescriptorAt(plan.descriptors.data() + plan.descriptorOffset[i],
                           t, p);
          continue;
        }
        if (s->params.emplace(arg.binding, t).second)
          loom_tensor_retain(t);
      } else if (arg.role == LOOM_ROLE_STATE) {
        auto it = s->states.find(arg.binding);
        if (it == s->states.end()) {
          if (loom_status_t status =
                  loom_tensor_create(arg.dtype, arg.rank, arg.dims, &t)) {
            loom_session_destroy(s);
            return prefixStatus(status, format("state '%s': ", arg.binding));
          }
          s->states.emplace(arg.binding, t);
          s->stateNames.emplace_back(arg.binding);
          if (onDevice) {
            std::string what = format("state '%s'", arg.binding);
            cuda::DevicePtr p = 0;
            loom_status_t status = cuda::alloc(t->byteSize, what, &p);
            if (!status) {
              s->deviceStates.emplace(arg.binding, p);
              status = cuda::zero(p, t->byteSize, what);
            }
            if (status) {
              loom_session_destroy(s);
              return status;
            }
          }
        } else {
          t = it->second;
        }
        if (onDevice) {
          fillDescriptorAt(plan.descriptors.data() + plan.descriptorOffset[i],
                           t, devicePointer(s->deviceStates[arg.binding]));
          continue;
        }
      }
      if (t)
        fillDescriptor(plan.descriptors.data() + plan.descriptorOffset[i], t);
    }
  }
  // The uploads of pageable memory may still be in flight.
  if (onDevice) {
    if (loom_status_t status = cuda::synchronize()) {
      loom_session_destroy(s);
      return prefixStatus(status, "binding params: ");
    }
  }
  *out_session = s;
  return nullptr;
}

void loom_session_destroy(loom_session_t *session) {
  if (!session)
    return;
  if (session->cuda) {
    for (auto &p : session->deviceParams)
      cuda::freeBuffer(p.second);
    for (auto &p : session->deviceStates)
      cuda::freeBuffer(p.second);
    for (EntryPlan &plan : session->plans)
      for (cuda::DevicePtr p : plan.deviceBuffer)
        cuda::freeBuffer(p);
    cuda::trimCache();
  }
  for (auto &p : session->params)
    loom_tensor_release(p.second);
  for (auto &st : session->states)
    loom_tensor_release(st.second);
  releaseArtifact(session->artifact);
  delete session;
}

const loom_artifact_t *loom_session_artifact(const loom_session_t *session) {
  return session ? session->artifact : nullptr;
}

loom_tensor_t *loom_session_state(const loom_session_t *session,
                                  const char *name) {
  if (!session || !name)
    return nullptr;
  auto it = session->states.find(name);
  if (it == session->states.end())
    return nullptr;
  if (session->cuda) {
    // The host mirror, refreshed from the device.
    loom_status_t s = cuda::makeCurrent();
    if (!s)
      s = cuda::synchronize();
    auto device = session->deviceStates.find(name);
    if (!s)
      s = cuda::download(it->second->data, device->second, it->second->byteSize,
                         format("state '%s'", name));
    if (s) {
      loom_status_free(s);
      return nullptr;
    }
  }
  return it->second;
}

void loom_session_reset_states(loom_session_t *session) {
  if (!session)
    return;
  for (auto &st : session->states)
    std::memset(st.second->data, 0, st.second->byteSize);
  if (!session->cuda)
    return;
  loom_status_t s = cuda::makeCurrent();
  for (auto it = session->deviceStates.begin();
       !s && it != session->deviceStates.end(); ++it)
    s = cuda::zero(it->second, session->states[it->first]->byteSize,
                   format("state '%s'", it->first.c_str()));
  if (!s)
    s = cuda::synchronize();
  // The API has no status here; a device that cannot zero a buffer fails
  // the next call too, which reports it.
  loom_status_free(s);
}

} // extern "C"

using Clock = std::chrono::steady_clock;

static double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// The status of an entry that returned `rc` != 0.
static loom_status_t entryFailure(const loom_entry_desc_t &desc, int32_t rc) {
  if (rc == LOOM_ENTRY_ERROR_OUTPUT_SIZE)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "entry '%s': an output's computed size differs from "
                      "its declared dimensions for these inputs",
                      desc.name);
  return makeStatus(LOOM_STATUS_INTERNAL, "entry '%s' failed with code %d",
                    desc.name, rc);
}

/// Runs a checked call of a CUDA session: uploads the inputs, runs the
/// entry, waits for the device and downloads the outputs into `outputs`
/// (host tensors already created). Fills `timing` when not NULL, and times
/// each kernel launch and product into `kernels` when that is not NULL.
static loom_status_t runOnDevice(EntryPlan &plan, loom_tensor_t *const *inputs,
                                 loom_tensor_t **outputs,
                                 loom_call_timing_t *timing,
                                 std::vector<cuda::KernelTiming> *kernels) {
  const EntryInfo &entry = *plan.info;
  const loom_entry_desc_t &desc = entry.desc;
  uint32_t firstOutput = desc.num_args - desc.num_outputs;
  if (loom_status_t s = cuda::makeCurrent())
    return s;
  Clock::time_point start = Clock::now();
  // The uploaded inputs, whose first host reads the call serves from here.
  std::vector<cuda::HostCopy> uploaded;
  uploaded.reserve(desc.num_inputs);
  for (uint32_t i = 0; i < desc.num_inputs; ++i) {
    const loom_tensor_t *t = inputs[i];
    if (loom_status_t s = reserveDevice(plan, i, t->byteSize, entry.args[i]))
      return s;
    if (loom_status_t s = cuda::upload(
            plan.deviceBuffer[i], t->data, t->byteSize,
            format("entry '%s': input '%s'", desc.name, entry.args[i].name)))
      return s;
    uploaded.push_back({plan.deviceBuffer[i], t->data, t->byteSize});
    fillDescriptorAt(plan.descriptors.data() + plan.descriptorOffset[i], t,
                     devicePointer(plan.deviceBuffer[i]));
  }
  for (uint32_t o = 0; o < desc.num_outputs; ++o) {
    uint32_t i = firstOutput + o;
    const loom_tensor_t *t = outputs[o];
    if (loom_status_t s = reserveDevice(plan, i, t->byteSize, entry.args[i]))
      return s;
    fillDescriptorAt(plan.descriptors.data() + plan.descriptorOffset[i], t,
                     devicePointer(plan.deviceBuffer[i]));
  }
  if (loom_status_t s = cuda::synchronize())
    return prefixStatus(s, format("entry '%s': uploading inputs: ", desc.name));
  double uploadSeconds = secondsSince(start);

  start = Clock::now();
  cuda::beginCall(kernels != nullptr, std::move(uploaded));
  int32_t rc = entry.fn(plan.args.data());
  loom_status_t error = cuda::endCall();
  // Kernels run asynchronously: their faults show when the device is idle.
  loom_status_t sync = cuda::synchronize();
  double entrySeconds = secondsSince(start);
  if (error || sync) {
    loom_status_free(error ? sync : nullptr);
    loom_status_free(cuda::takeKernelTimings(nullptr));
    return prefixStatus(error ? error : sync,
                        format("entry '%s': ", desc.name));
  }
  if (loom_status_t s = cuda::takeKernelTimings(kernels))
    return prefixStatus(s, format("entry '%s': ", desc.name));
  if (rc != 0)
    return entryFailure(desc, rc);

  start = Clock::now();
  for (uint32_t o = 0; o < desc.num_outputs; ++o) {
    loom_tensor_t *t = outputs[o];
    if (loom_status_t s = cuda::download(
            t->data, plan.deviceBuffer[firstOutput + o], t->byteSize,
            format("entry '%s': output '%s'", desc.name,
                   entry.args[firstOutput + o].name)))
      return s;
  }
  if (timing) {
    timing->entry_seconds = entrySeconds;
    timing->transfer_seconds = uploadSeconds + secondsSince(start);
  }
  return nullptr;
}

static loom_status_t
callEntry(loom_session_t *session, uint32_t entry_index,
          loom_tensor_t *const *inputs, loom_tensor_t **out_outputs,
          loom_call_timing_t *timing,
          std::vector<cuda::KernelTiming> *kernels = nullptr) {
  if (!session || entry_index >= session->plans.size())
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "session_call: NULL session or entry index %u out of "
                      "range",
                      entry_index);
  EntryPlan &plan = session->plans[entry_index];
  const EntryInfo &entry = *plan.info;
  const loom_entry_desc_t &desc = entry.desc;
  if ((desc.num_inputs && !inputs) || (desc.num_outputs && !out_outputs))
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "entry '%s': NULL inputs or outputs array", desc.name);
  const auto &symbols = session->artifact->symbols;
  std::fill(plan.symbolValue.begin(), plan.symbolValue.end(), -1);

  // Inputs: type check and bind symbolic dims.
  for (uint32_t i = 0; i < desc.num_inputs; ++i) {
    const loom_arg_desc_t &arg = entry.args[i];
    const loom_tensor_t *t = inputs[i];
    if (!t)
      return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                        "entry '%s': input '%s' is NULL", desc.name, arg.name);
    if (loom_status_t s = checkStatic(entry, arg, t))
      return s;
    for (int32_t d = 0; d < arg.rank; ++d) {
      int32_t sym = entry.argInfo[i].symbol[d];
      if (sym < 0)
        continue;
      if (plan.symbolValue[sym] < 0) {
        plan.symbolValue[sym] = t->dims[d];
        plan.symbolSource[sym] = static_cast<int32_t>(i);
        plan.symbolDim[sym] = d;
      } else if (plan.symbolValue[sym] != t->dims[d]) {
        return makeStatus(
            LOOM_STATUS_INVALID_ARGUMENT,
            "entry '%s': inconsistent symbolic dim '%s': %lld from input "
            "'%s' dim %d but %lld from input '%s' dim %d",
            desc.name, symbols[sym],
            static_cast<long long>(plan.symbolValue[sym]),
            entry.args[plan.symbolSource[sym]].name, plan.symbolDim[sym],
            static_cast<long long>(t->dims[d]), arg.name, d);
      }
    }
  }
  // Params with symbolic dims must agree with this call's inputs.
  uint32_t firstParam = desc.num_inputs;
  for (uint32_t i = firstParam; i < firstParam + desc.num_params; ++i) {
    const loom_arg_desc_t &arg = entry.args[i];
    const int64_t *dims =
        plan.descriptors.data() + plan.descriptorOffset[i] + 3;
    for (int32_t d = 0; d < arg.rank; ++d) {
      int32_t sym = entry.argInfo[i].symbol[d];
      if (sym >= 0 && dims[d] != plan.symbolValue[sym])
        return makeStatus(
            LOOM_STATUS_INVALID_ARGUMENT,
            "entry '%s': param '%s' (binding '%s') dim %d is %lld but "
            "symbol '%s' is %lld from input '%s'",
            desc.name, arg.name, arg.binding, d,
            static_cast<long long>(dims[d]), symbols[sym],
            static_cast<long long>(plan.symbolValue[sym]),
            entry.args[plan.symbolSource[sym]].name);
    }
  }

  // Preconditions of the entry: a refused call allocates, runs and changes
  // nothing.
  if (loom_status_t s = checkRequirements(entry, plan, inputs))
    return s;

  if (!session->cuda)
    for (uint32_t i = 0; i < desc.num_inputs; ++i)
      fillDescriptor(plan.descriptors.data() + plan.descriptorOffset[i],
                     inputs[i]);
  uint32_t firstOutput = desc.num_args - desc.num_outputs;
  for (uint32_t o = 0; o < desc.num_outputs; ++o) {
    uint32_t i = firstOutput + o;
    const loom_arg_desc_t &arg = entry.args[i];
    int64_t dims[LOOM_MAX_RANK];
    for (int32_t d = 0; d < arg.rank; ++d) {
      int32_t sym = entry.argInfo[i].symbol[d];
      dims[d] = sym < 0 ? arg.dims[d] : plan.symbolValue[sym];
    }
    loom_tensor_t *t;
    if (loom_status_t s =
            createUninitializedTensor(arg.dtype, arg.rank, dims, &t)) {
      for (uint32_t p = 0; p < o; ++p)
        loom_tensor_release(out_outputs[p]);
      return prefixStatus(
          s, format("entry '%s': output '%s': ", desc.name, arg.name));
    }
    out_outputs[o] = t;
    if (!session->cuda)
      fillDescriptor(plan.descriptors.data() + plan.descriptorOffset[i], t);
  }

  loom_status_t status = nullptr;
  if (session->cuda) {
    status = runOnDevice(plan, inputs, out_outputs, timing, kernels);
  } else {
    Clock::time_point start = Clock::now();
    int32_t rc = entry.fn(plan.args.data());
    if (timing) {
      timing->entry_seconds = secondsSince(start);
      timing->transfer_seconds = 0;
    }
    if (rc != 0)
      status = entryFailure(desc, rc);
  }
  if (status) {
    for (uint32_t o = 0; o < desc.num_outputs; ++o) {
      loom_tensor_release(out_outputs[o]);
      out_outputs[o] = nullptr;
    }
  }
  return status;
}

extern "C" {

loom_status_t loom_session_call(loom_session_t *session, uint32_t entry_index,
                                loom_tensor_t *const *inputs,
                                loom_tensor_t **out_outputs) {
  return callEntry(session, entry_index, inputs, out_outputs, nullptr);
}

loom_status_t loom_session_call_timed(loom_session_t *session,
                                      uint32_t entry_index,
                                      loom_tensor_t *const *inputs,
                                      loom_tensor_t **out_outputs,
                                      loom_call_timing_t *out_timing) {
  if (!out_timing)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "session_call_timed: NULL timing");
  loom_call_timing_t timing = {};
  if (loom_status_t s =
          callEntry(session, entry_index, inputs, out_outputs, &timing))
    return s;
  *out_timing = timing;
  return nullptr;
}

loom_status_t loom_session_call_profiled(
    loom_session_t *session, uint32_t entry_index, loom_tensor_t *const *inputs,
    loom_tensor_t **out_outputs, loom_call_timing_t *out_timing,
    loom_kernel_timing_t *kernels, size_t capacity, size_t *out_num_kernels) {
  if (!out_timing || !out_num_kernels || (capacity && !kernels))
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "session_call_profiled: NULL timing, kernel count or "
                      "kernels array");
  if (session && !session->cuda)
    return makeStatus(LOOM_STATUS_INCOMPATIBLE,
                      "session_call_profiled: kernels are timed on a GPU; "
                      "this is a CPU session");
  loom_call_timing_t timing = {};
  std::vector<cuda::KernelTiming> timed;
  if (loom_status_t s = callEntry(session, entry_index, inputs, out_outputs,
                                  &timing, &timed))
    return s;
  for (size_t i = 0; i < timed.size() && i < capacity; ++i)
    kernels[i] = {timed[i].name, timed[i].seconds};
  *out_num_kernels = timed.size();
  *out_timing = timing;
  return nullptr;
}

loom_status_t loom_session_invoke(loom_session_t *session,
                                  const char *entry_name, size_t num_inputs,
                                  const char *const *input_names,
                                  loom_tensor_t *const *inputs,
                                  loom_tensor_map_t **out_outputs) {
  if (!session || !entry_name || !out_outputs ||
      (num_inputs && (!input_names || !inputs)))
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "session_invoke: NULL argument");
  uint32_t index;
  if (loom_status_t s =
          loom_artifact_entry_find(session->artifact, entry_name, &index))
    return s;
  EntryPlan &plan = session->plans[index];
  const EntryInfo &entry = *plan.info;
  const loom_entry_desc_t &desc = entry.desc;
  std::fill(plan.inputScratch.begin(), plan.inputScratch.end(), nullptr);
  for (size_t n = 0; n < num_inputs; ++n) {
    const char *name = input_names[n];
    uint32_t i = 0;
    while (i < desc.num_inputs &&
           (!name || std::strcmp(entry.args[i].name, name) != 0))
      ++i;
    if (i == desc.num_inputs) {
      std::string known;
      for (uint32_t k = 0; k < desc.num_inputs; ++k)
        known += (k ? ", " : "") + std::string(entry.args[k].name);
      return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                        "entry '%s' has no input named '%s' (inputs: %s)",
                        desc.name, name ? name : "(null)", known.c_str());
    }
    if (plan.inputScratch[i])
      return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                        "entry '%s': input '%s' given twice", desc.name, name);
    if (!inputs[n])
      return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                        "entry '%s': input '%s' is NULL", desc.name, name);
    plan.inputScratch[i] = inputs[n];
  }
  for (uint32_t i = 0; i < desc.num_inputs; ++i)
    if (!plan.inputScratch[i])
      return makeStatus(
          LOOM_STATUS_INVALID_ARGUMENT, "entry '%s': missing input '%s' (%s%s)",
          desc.name, entry.args[i].name, loom_dtype_name(entry.args[i].dtype),
          declaredShape(entry.args[i]).c_str());
  std::vector<loom_tensor_t *> outputs(desc.num_outputs, nullptr);
  if (loom_status_t s = loom_session_call(
          session, index, plan.inputScratch.data(), outputs.data()))
    return s;
  loom_tensor_map_t *map = nullptr;
  loom_status_t s = loom_tensor_map_create(&map);
  uint32_t firstOutput = desc.num_args - desc.num_outputs;
  for (uint32_t o = 0; !s && o < desc.num_outputs; ++o)
    s = loom_tensor_map_insert(map, entry.args[firstOutput + o].name,
                               outputs[o]);
  for (loom_tensor_t *t : outputs)
    loom_tensor_release(t);
  if (s) {
    loom_tensor_map_destroy(map);
    return s;
  }
  *out_outputs = map;
  return nullptr;
}

} // extern "C"
