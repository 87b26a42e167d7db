//===- loom-run.cpp - Run a Loom artifact or model --------------*- C++ -*-===//
//
// This file implements loom-run: it opens a compiled artifact (or a `.loom`
// file with --interpret), binds params from safetensors, feeds each call its
// inputs from safetensors or .npy files (optionally under a per-call name
// prefix), keeps state across the calls of one run, and writes the outputs.
// It links only the runtime unless the interpreter is built in.
//
//===----------------------------------------------------------------------===//

#include "tools/loom-run/Executor.h"

#include <cinttypes>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

using namespace loom::tools;

namespace {

const char *kUsage = R"(loom-run: run the entries of a Loom artifact or model

usage:
  loom-run ARTIFACT.so [options] --call ENTRY[:PREFIX]...
  loom-run MODEL.loom --interpret [options] --call ENTRY[:PREFIX]...

options:
  --params FILE.safetensors   weights, bound to params by name
  --inputs FILE.safetensors   input tensors (repeatable)
  --input NAME=FILE.npy       one input tensor (repeatable)
  --call ENTRY[:PREFIX]       call ENTRY (repeatable, in order); its input NAME
                              is read from tensor PREFIX.NAME (NAME without a
                              prefix) and its outputs are stored as PREFIX.NAME;
                              state persists across the calls of one run, and
                              later calls may read earlier outputs
  --outputs FILE.safetensors  write every output of every call
  --output NAME=FILE.npy      write one output (NAME includes its prefix)
  --states FILE.safetensors   after the calls, write every state by its name
                              (e.g. a gradient the calls summed into one)
  --print                     print each output's dtype, shape and values
  --keep-going                after a call fails (e.g. a requirement of the
                              entry), report it and go on with the next
                              calls; the exit status is still 1
  --interpret                 evaluate MODEL.loom with the float64 reference
                              interpreter instead of compiled code
  --define NAME=VALUE         override a config (with --interpret)
  --config FILE.json          override configs from JSON (with --interpret)
  --help                      this text
)";

struct Options {
  std::string model;
  bool interpret = false;
  bool print = false;
  bool keepGoing = false;
  std::string params;
  std::vector<std::string> inputFiles;
  std::vector<std::pair<std::string, std::string>> npyInputs;
  std::vector<std::string> calls;
  std::string outputsFile;
  std::string statesFile;
  std::vector<std::pair<std::string, std::string>> npyOutputs;
  std::vector<std::string> defines;
  std::string config;
};

int fail(const std::string &message) {
  std::fprintf(stderr, "loom-run: error: %s\n", message.c_str());
  return 1;
}

/// Prints a status and frees it; returns the exit code.
int fail(loom_status_t status) {
  std::string message = loom_status_message(status);
  loom_status_free(status);
  return fail(message);
}

bool splitPair(const std::string &arg,
               std::pair<std::string, std::string> &out) {
  size_t eq = arg.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size())
    return false;
  out = {arg.substr(0, eq), arg.substr(eq + 1)};
  return true;
}

/// Parses the command line; returns -1 to go on, else an exit code.
int parseArgs(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string &out) {
      if (i + 1 >= argc) {
        fail("option " + a + " needs a value");
        return false;
      }
      out = argv[++i];
      return true;
    };
    std::string v;
    std::pair<std::string, std::string> kv;
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--interpret") {
      o.interpret = true;
    } else if (a == "--print") {
      o.print = true;
    } else if (a == "--keep-going") {
      o.keepGoing = true;
    } else if (a == "--params") {
      if (!value(o.params))
        return 1;
    } else if (a == "--inputs") {
      if (!value(v))
        return 1;
      o.inputFiles.push_back(v);
    } else if (a == "--input" || a == "--output") {
      if (!value(v))
        return 1;
      if (!splitPair(v, kv))
        return fail(a + " expects NAME=FILE.npy, got '" + v + "'");
      (a == "--input" ? o.npyInputs : o.npyOutputs).push_back(kv);
    } else if (a == "--call") {
      if (!value(v))
        return 1;
      o.calls.push_back(v);
    } else if (a == "--outputs") {
      if (!value(o.outputsFile))
        return 1;
    } else if (a == "--states") {
      if (!value(o.statesFile))
        return 1;
    } else if (a == "--define" || a == "-D") {
      if (!value(v))
        return 1;
      o.defines.push_back(v);
    } else if (a.rfind("-D", 0) == 0 && a.size() > 2) {
      o.defines.push_back(a.substr(2));
    } else if (a == "--config") {
      if (!value(o.config))
        return 1;
    } else if (!a.empty() && a[0] == '-') {
      return fail("unknown option '" + a + "' (see --help)");
    } else if (o.model.empty()) {
      o.model = a;
    } else {
      return fail("unexpected argument '" + a + "' (see --help)");
    }
  }
  if (o.model.empty())
    return fail("no artifact or model given (see --help)");
  if (o.calls.empty())
    return fail("no --call given (see --help)");
  if (!o.interpret && (!o.defines.empty() || !o.config.empty()))
    return fail("--define and --config need --interpret (an artifact is "
                "already compiled)");
  return -1;
}

void printTensor(const std::string &name, const loom_tensor_t *t) {
  std::printf("%s: %s[", name.c_str(), loom_dtype_name(loom_tensor_dtype(t)));
  for (int32_t d = 0; d < loom_tensor_rank(t); ++d)
    std::printf("%s%" PRId64, d ? ", " : "", loom_tensor_dims(t)[d]);
  std::printf("] =");
  int64_t n = loom_tensor_num_elements(t);
  const int64_t shown = 8;
  // Half floats print through an f32 copy made by the runtime.
  loom_tensor_t *widened = nullptr;
  loom_dtype_t dtype = loom_tensor_dtype(t);
  if (dtype == LOOM_DTYPE_F16 || dtype == LOOM_DTYPE_BF16) {
    if (loom_status_t s = loom_tensor_convert(t, LOOM_DTYPE_F32, &widened))
      loom_status_free(s);
    else
      dtype = LOOM_DTYPE_F32;
  }
  const void *data = loom_tensor_data(widened ? widened : t);
  for (int64_t i = 0; i < n && i < shown; ++i) {
    switch (dtype) {
    case LOOM_DTYPE_F32:
      std::printf(" %.6g", static_cast<const float *>(data)[i]);
      break;
    case LOOM_DTYPE_F64:
      std::printf(" %.9g", static_cast<const double *>(data)[i]);
      break;
    case LOOM_DTYPE_I32:
      std::printf(" %" PRId32, static_cast<const int32_t *>(data)[i]);
      break;
    case LOOM_DTYPE_I64:
      std::printf(" %" PRId64, static_cast<const int64_t *>(data)[i]);
      break;
    case LOOM_DTYPE_BOOL:
      std::printf(" %s",
                  static_cast<const uint8_t *>(data)[i] ? "true" : "false");
      break;
    default:
      std::printf(" ?");
    }
  }
  if (n > shown)
    std::printf(" ... (%" PRId64 " values)", n);
  std::printf("\n");
  loom_tensor_release(widened);
}

/// Owns the tensors of a run by name.
struct Pool {
  loom_tensor_map_t *map = nullptr;
  ~Pool() { loom_tensor_map_destroy(map); }
};

int run(const Options &o) {
  std::unique_ptr<Executor> executor;
  loom_status_t status =
      o.interpret ? openInterpreted(o.model, o.defines, o.config, executor)
                  : openArtifact(o.model, executor);
  if (status)
    return fail(status);

  Pool params;
  if (!o.params.empty()) {
    if ((status = loom_params_load(o.params.c_str(), 0, &params.map)))
      return fail(status);
  }
  if ((status = executor->start(params.map)))
    return fail(status);

  // Every named tensor of the run: inputs first, outputs as calls produce
  // them.
  Pool pool, outputs;
  if ((status = loom_tensor_map_create(&pool.map)) ||
      (status = loom_tensor_map_create(&outputs.map)))
    return fail(status);
  if ((status = addSafetensors(o.inputFiles, pool.map)))
    return fail(status);
  for (const auto &[name, file] : o.npyInputs) {
    loom_tensor_t *tensor = nullptr;
    if ((status = loom_npy_read(file.c_str(), &tensor)))
      return fail(status);
    status = loom_tensor_map_insert(pool.map, name.c_str(), tensor);
    loom_tensor_release(tensor);
    if (status)
      return fail(status);
  }

  int rc = 0;
  for (const std::string &call : o.calls) {
    size_t colon = call.find(':');
    std::string entryName = call.substr(0, colon);
    std::string prefix =
        colon == std::string::npos ? "" : call.substr(colon + 1) + ".";
    uint32_t index = 0;
    if ((status = executor->findEntry(entryName, &index)))
      return fail(status);
    const loom_entry_desc_t *entry = executor->entryAt(index);
    std::vector<loom_tensor_t *> inputs;
    for (uint32_t i = 0; i < entry->num_inputs; ++i) {
      std::string name = prefix + entry->args[i].name;
      loom_tensor_t *tensor = loom_tensor_map_find(pool.map, name.c_str());
      if (!tensor)
        return fail("call '" + call + "' needs input '" + name +
                    "', which no --inputs file or --input gives");
      inputs.push_back(tensor);
    }
    std::vector<loom_tensor_t *> results(entry->num_outputs, nullptr);
    if ((status = executor->call(index, inputs.data(), results.data()))) {
      std::string message =
          "call '" + call + "': " + loom_status_message(status);
      loom_status_free(status);
      rc = fail(message);
      // A failed call produced nothing; a refused one changed no state.
      if (o.keepGoing)
        continue;
      return rc;
    }
    const loom_arg_desc_t *outArgs =
        entry->args + (entry->num_args - entry->num_outputs);
    for (uint32_t i = 0; i < entry->num_outputs; ++i) {
      std::string name = prefix + outArgs[i].name;
      if (o.print)
        printTensor(name, results[i]);
      // Later calls may read this output by name unless an input file gave
      // the same name (inputs keep priority); two calls producing the same
      // name are refused, since the outputs file could keep only one.
      if (loom_tensor_map_find(pool.map, name.c_str()) == nullptr)
        status = loom_tensor_map_insert(pool.map, name.c_str(), results[i]);
      if (!status)
        status = loom_tensor_map_insert(outputs.map, name.c_str(), results[i]);
      loom_tensor_release(results[i]);
      if (status) {
        for (uint32_t j = i + 1; j < entry->num_outputs; ++j)
          loom_tensor_release(results[j]);
        return fail(status);
      }
    }
  }

  if (!o.outputsFile.empty() &&
      (status = loom_safetensors_write(o.outputsFile.c_str(), outputs.map)))
    return fail(status);
  if (!o.statesFile.empty()) {
    Pool states;
    if ((status = loom_tensor_map_create(&states.map)) ||
        (status = executor->addStates(states.map)) ||
        (status = loom_safetensors_write(o.statesFile.c_str(), states.map)))
      return fail(status);
  }
  for (const auto &[name, file] : o.npyOutputs) {
    loom_tensor_t *tensor = loom_tensor_map_find(outputs.map, name.c_str());
    if (!tensor) {
      std::string names;
      for (size_t i = 0; i < loom_tensor_map_size(outputs.map); ++i)
        names += (i ? ", " : "") +
                 std::string(loom_tensor_map_name_at(outputs.map, i));
      return fail("--output " + name + ": no such output (outputs: " + names +
                  ")");
    }
    if ((status = loom_npy_write(file.c_str(), tensor)))
      return fail(status);
  }
  return rc;
}

} // namespace

int main(int argc, char **argv) {
  Options options;
  int rc = parseArgs(argc, argv, options);
  if (rc >= 0)
    return rc;
  if (options.interpret && !canInterpret())
    return fail("--interpret needs a build with the compiler (this one is "
                "runtime-only)");
  return run(options);
}
