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
//===----------------------------------------------------------------------===//

#include "artifact.h"

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
};

/// Writes the contiguous row-major descriptor of `t` at `d`.
static void fillDescriptor(int64_t *d, const loom_tensor_t *t) {
  void *p = t->data;
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

extern "C" {

loom_status_t loom_session_create(loom_artifact_t *artifact,
                                  const loom_tensor_map_t *params,
                                  loom_session_t **out_session) {
  if (!artifact || !out_session)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "session_create: NULL argument");
  if (artifact->target != LOOM_TARGET_CPU)
    return makeStatus(LOOM_STATUS_UNIMPLEMENTED,
                      "%s: artifact targets CUDA, which this runtime build "
                      "cannot run",
                      artifact->path.c_str());
  auto *s = new (std::nothrow) loom_session;
  if (!s)
    return makeStatus(LOOM_STATUS_OUT_OF_MEMORY, "out of memory");
  retainArtifact(artifact);
  s->artifact = artifact;
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
        } else {
          t = it->second;
        }
      }
      if (t)
        fillDescriptor(plan.descriptors.data() + plan.descriptorOffset[i], t);
    }
  }
  *out_session = s;
  return nullptr;
}

void loom_session_destroy(loom_session_t *session) {
  if (!session)
    return;
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
  return it == session->states.end() ? nullptr : it->second;
}

void loom_session_reset_states(loom_session_t *session) {
  if (!session)
    return;
  for (auto &st : session->states)
    std::memset(st.second->data, 0, st.second->byteSize);
}

loom_status_t loom_session_call(loom_session_t *session, uint32_t entry_index,
                                loom_tensor_t *const *inputs,
                                loom_tensor_t **out_outputs) {
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
    fillDescriptor(plan.descriptors.data() + plan.descriptorOffset[i], t);
  }

  int32_t rc = entry.fn(plan.args.data());
  if (rc != 0) {
    for (uint32_t o = 0; o < desc.num_outputs; ++o) {
      loom_tensor_release(out_outputs[o]);
      out_outputs[o] = nullptr;
    }
    if (rc == LOOM_ENTRY_ERROR_OUTPUT_SIZE)
      return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                        "entry '%s': an output's computed size differs from "
                        "its declared dimensions for these inputs",
                        desc.name);
    return makeStatus(LOOM_STATUS_INTERNAL, "entry '%s' failed with code %d",
                      desc.name, rc);
  }
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
