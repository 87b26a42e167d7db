//===- loom-bench.cpp - Time an entry of a Loom artifact --------*- C++ -*-===//
//
// This file implements loom-bench: it opens an artifact, binds params (from
// a file, or seeded random values of the declared shapes), runs optional
// untimed set-up calls in the same session, then times one call over many
// repetitions and reports the median, minimum and maximum. With --rss it also
// reports the resident memory of the process once the session is started and
// the inputs are bound, and its peak during the calls. With --describe it
// instead reports the session's state buffers (e.g. the size of a KV cache).
//
// For a CUDA artifact the time reported is the entry's alone, until the
// device is idle (loom_session_call_timed): the copies of inputs to the
// device and of outputs back are timed apart, as they are not the compiled
// code's work. With --kernels, as many calls again time each kernel launch
// and cuBLAS product with events (loom_session_call_profiled), and the
// medians of each kernel's time per call are reported next to the entry's.
//
//===----------------------------------------------------------------------===//

#include "tools/loom-run/Executor.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <sys/resource.h>

using namespace loom::tools;

namespace {

const char *kUsage = R"(loom-bench: time an entry of a Loom artifact

usage:
  loom-bench ARTIFACT.so [options] --call ENTRY[:PREFIX]
  loom-bench ARTIFACT.so --describe [--params FILE] [--dim NAME=N]...

options:
  --params FILE.safetensors   weights (params not in it get random values)
  --inputs FILE.safetensors   inputs (repeatable; inputs not given get random
                              values of the declared shape)
  --dim NAME=N                size of symbolic dimension NAME for random
                              tensors (repeatable)
  --setup ENTRY[:PREFIX]      untimed call before timing, same session
                              (repeatable, in order; state carries over)
  --call ENTRY[:PREFIX]       the timed call
  --warmup N                  untimed repetitions first (default 3)
  --reps N                    timed repetitions (default 20)
  --seed N                    seed of the random values (default 0)
  --json                      print {"entry", "median_s", "min_s", "max_s",
                              "reps", "timed"} as one JSON object on
                              stdout; "timed" is "call" (the whole call) or,
                              for CUDA artifacts, "entry" (the kernels
                              without host<->device copies, whose median is
                              "transfer_median_s")
  --kernels                   CUDA artifacts: after the timed calls, as many
                              calls again with events around every kernel
                              launch and cuBLAS product; reports each
                              kernel's launches and median time per call
                              (with its share of the median sum), their
                              sum, and the entry's median with the events
                              (a kernel launched on an idle stream counts
                              its launch too) (JSON: "kernels": [{"name",
                              "launches", "median_s"}], "kernels_median_s",
                              "profiled_median_s")
  --rss                       also report memory (Linux): the resident set
                              once params and inputs are bound and before
                              the first call ("rss_baseline_bytes"), its peak
                              over the warm-up and timed calls
                              ("rss_peak_bytes") and the difference
                              ("rss_peak_above_baseline_bytes")
  --describe                  print the artifact's entries and the state
                              buffers a session allocates ({"entries",
                              "states": [{"name", "dtype", "shape",
                              "bytes"}], "state_bytes"}) as one JSON object
                              and exit; params not in --params are zeros
  --help                      this text
)";

int fail(const std::string &message) {
  std::fprintf(stderr, "loom-bench: error: %s\n", message.c_str());
  return 1;
}

int fail(loom_status_t status) {
  std::string message = loom_status_message(status);
  loom_status_free(status);
  return fail(message);
}

struct Options {
  std::string artifact, params, call;
  std::vector<std::string> inputFiles, setups;
  std::map<std::string, int64_t> dims;
  int warmup = 3, reps = 20;
  uint64_t seed = 0;
  bool json = false;
  bool rss = false;
  bool describe = false;
  bool kernels = false;
};

bool parseInt(const std::string &s, int64_t &out) {
  char *end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end || errno)
    return false;
  out = v;
  return true;
}

int parseArgs(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string v;
    auto value = [&]() {
      if (i + 1 >= argc)
        return false;
      v = argv[++i];
      return true;
    };
    int64_t n = 0;
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a == "--json") {
      o.json = true;
      continue;
    }
    if (a == "--describe") {
      o.describe = true;
      continue;
    }
    if (a == "--rss") {
      o.rss = true;
      continue;
    }
    if (a == "--kernels") {
      o.kernels = true;
      continue;
    }
    if (a.empty() || a[0] != '-') {
      if (!o.artifact.empty())
        return fail("unexpected argument '" + a + "' (see --help)");
      o.artifact = a;
      continue;
    }
    if (!value())
      return fail("option " + a + " needs a value");
    if (a == "--params") {
      o.params = v;
    } else if (a == "--inputs") {
      o.inputFiles.push_back(v);
    } else if (a == "--setup") {
      o.setups.push_back(v);
    } else if (a == "--call") {
      if (!o.call.empty())
        return fail("--call is given twice; use --setup for untimed calls");
      o.call = v;
    } else if (a == "--dim") {
      size_t eq = v.find('=');
      if (eq == std::string::npos || !parseInt(v.substr(eq + 1), n) || n < 0)
        return fail("--dim expects NAME=N with N >= 0, got '" + v + "'");
      o.dims[v.substr(0, eq)] = n;
    } else if (a == "--warmup" || a == "--reps" || a == "--seed") {
      // --seed takes any 64-bit value; the counts must fit an int.
      bool count = a != "--seed";
      if (!parseInt(v, n) || n < 0 || (a == "--reps" && n == 0) ||
          (count && n > 1000000000))
        return fail(a + " expects a non-negative integer" +
                    (a == "--reps" ? std::string(" > 0") : "") +
                    (count ? std::string(" up to 10^9") : "") + ", got '" + v +
                    "'");
      if (a == "--warmup")
        o.warmup = static_cast<int>(n);
      else if (a == "--reps")
        o.reps = static_cast<int>(n);
      else
        o.seed = static_cast<uint64_t>(n);
    } else {
      return fail("unknown option '" + a + "' (see --help)");
    }
  }
  if (o.artifact.empty())
    return fail("no artifact given (see --help)");
  if (o.call.empty() && !o.describe)
    return fail("no --call given (see --help)");
  if (o.rss && o.describe)
    return fail("--rss measures timed calls; it does not go with --describe");
  if (o.kernels && o.describe)
    return fail("--kernels times calls; it does not go with --describe");
  return -1;
}

/// Creates a zero-filled tensor of the declared shape, symbolic dims taken
/// from `dims`.
loom_status_t zeroTensor(const loom_arg_desc_t &arg,
                         const std::map<std::string, int64_t> &dims,
                         loom_tensor_t **out) {
  int64_t shape[LOOM_MAX_RANK];
  for (int32_t d = 0; d < arg.rank; ++d) {
    if (arg.dims[d] >= 0) {
      shape[d] = arg.dims[d];
      continue;
    }
    auto it = dims.find(arg.dim_symbols[d]);
    if (it == dims.end()) {
      std::string message = "'" + std::string(arg.name) +
                            "' has symbolic dimension '" + arg.dim_symbols[d] +
                            "': give --dim " + arg.dim_symbols[d] +
                            "=N or the tensor";
      return loom_status_create(LOOM_STATUS_INVALID_ARGUMENT, message.c_str());
    }
    shape[d] = it->second;
  }
  return loom_tensor_create(arg.dtype, arg.rank, shape, out);
}

/// Creates a tensor of the declared shape filled with seeded random values:
/// floats uniform in [-1, 1), integers in [0, 100), bools half true.
loom_status_t randomTensor(const loom_arg_desc_t &arg,
                           const std::map<std::string, int64_t> &dims,
                           std::mt19937_64 &rng, loom_tensor_t **out) {
  loom_tensor_t *t = nullptr;
  if (loom_status_t s = zeroTensor(arg, dims, &t))
    return s;
  std::uniform_real_distribution<double> real(-1.0, 1.0);
  std::uniform_int_distribution<int64_t> integer(0, 99);
  void *data = loom_tensor_data(t);
  for (int64_t i = 0; i < loom_tensor_num_elements(t); ++i) {
    switch (arg.dtype) {
    case LOOM_DTYPE_F32:
      static_cast<float *>(data)[i] = static_cast<float>(real(rng));
      break;
    case LOOM_DTYPE_F64:
      static_cast<double *>(data)[i] = real(rng);
      break;
    case LOOM_DTYPE_I32:
      static_cast<int32_t *>(data)[i] = static_cast<int32_t>(integer(rng));
      break;
    case LOOM_DTYPE_I64:
      static_cast<int64_t *>(data)[i] = integer(rng);
      break;
    case LOOM_DTYPE_BOOL:
      static_cast<uint8_t *>(data)[i] = integer(rng) < 50;
      break;
    default:
      break; // f16/bf16 stay zero: the CPU path has no such entries yet.
    }
  }
  *out = t;
  return nullptr;
}

struct Map {
  loom_tensor_map_t *map = nullptr;
  ~Map() { loom_tensor_map_destroy(map); }
};

/// Finds or makes the inputs of one call.
loom_status_t gatherInputs(const loom_entry_desc_t *entry,
                           const std::string &prefix, Map &pool,
                           const Options &o, std::mt19937_64 &rng,
                           std::vector<loom_tensor_t *> &inputs) {
  for (uint32_t i = 0; i < entry->num_inputs; ++i) {
    std::string name = prefix + entry->args[i].name;
    loom_tensor_t *t = loom_tensor_map_find(pool.map, name.c_str());
    if (!t) {
      if (loom_status_t s = randomTensor(entry->args[i], o.dims, rng, &t))
        return s;
      loom_status_t s = loom_tensor_map_insert(pool.map, name.c_str(), t);
      loom_tensor_release(t);
      if (s)
        return s;
    }
    inputs.push_back(t);
  }
  return nullptr;
}

/// `s` as a JSON string literal.
std::string jsonString(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
      continue;
    }
    out += c;
  }
  return out + "\"";
}

/// --describe: opens the artifact through the runtime's C API, creates a
/// session (params from the file, zeros for the rest) and prints its entries
/// and the state buffers the session allocated, found by the state bindings
/// of the entries' descriptors.
int describe(const Options &o) {
  struct Handles {
    loom_artifact_t *artifact = nullptr;
    loom_session_t *session = nullptr;
    ~Handles() {
      loom_session_destroy(session);
      loom_artifact_close(artifact);
    }
  } h;
  loom_status_t status = loom_artifact_open(o.artifact.c_str(), &h.artifact);
  if (status)
    return fail(status);
  Map params;
  if (!o.params.empty())
    status = loom_params_load(o.params.c_str(), 0, &params.map);
  else
    status = loom_tensor_map_create(&params.map);
  if (status)
    return fail(status);
  std::vector<std::string> entries, states;
  for (uint32_t e = 0; e < loom_artifact_entry_count(h.artifact); ++e) {
    const loom_entry_desc_t *entry = loom_artifact_entry_at(h.artifact, e);
    entries.push_back(entry->name);
    for (uint32_t a = 0; a < entry->num_args; ++a) {
      const loom_arg_desc_t &arg = entry->args[a];
      if (arg.role == LOOM_ROLE_STATE &&
          std::find(states.begin(), states.end(), arg.binding) == states.end())
        states.push_back(arg.binding);
      if (arg.role != LOOM_ROLE_PARAM ||
          loom_tensor_map_find(params.map, arg.binding))
        continue;
      loom_tensor_t *t = nullptr;
      if ((status = zeroTensor(arg, o.dims, &t)))
        return fail(status);
      status = loom_tensor_map_insert(params.map, arg.binding, t);
      loom_tensor_release(t);
      if (status)
        return fail(status);
    }
  }
  if ((status = loom_session_create(h.artifact, params.map, &h.session)))
    return fail(status);

  std::string json =
      "{\"artifact\": " + jsonString(o.artifact) + ", \"entries\": [";
  for (size_t i = 0; i < entries.size(); ++i)
    json += (i ? ", " : "") + jsonString(entries[i]);
  json += "], \"states\": [";
  size_t total = 0;
  for (size_t i = 0; i < states.size(); ++i) {
    const loom_tensor_t *t = loom_session_state(h.session, states[i].c_str());
    if (!t)
      return fail("the session has no state '" + states[i] + "'");
    json += (i ? ", " : "") + std::string("{\"name\": ") +
            jsonString(states[i]) + ", \"dtype\": \"" +
            loom_dtype_name(loom_tensor_dtype(t)) + "\", \"shape\": [";
    for (int32_t d = 0; d < loom_tensor_rank(t); ++d)
      json += (d ? ", " : "") + std::to_string(loom_tensor_dims(t)[d]);
    json += "], \"bytes\": " + std::to_string(loom_tensor_byte_size(t)) + "}";
    total += loom_tensor_byte_size(t);
  }
  json += "], \"state_bytes\": " + std::to_string(total) + "}";
  std::printf("%s\n", json.c_str());
  return 0;
}

/// Reads field `key` (in kB) of /proc/self/status, in bytes; -1 when the
/// file or the field is missing.
int64_t procStatusBytes(const char *key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  size_t n = std::strlen(key);
  while (std::getline(in, line)) {
    if (line.compare(0, n, key) || line.size() <= n || line[n] != ':')
      continue;
    int64_t kb = 0;
    if (std::sscanf(line.c_str() + n + 1, "%" SCNd64, &kb) != 1)
      return -1;
    return kb * 1024;
  }
  return -1;
}

/// The resident-set measurement of --rss. `start` records the current
/// resident set and resets the kernel's high-water mark (VmHWM, by writing
/// 5 to /proc/self/clear_refs), so that `peak` afterwards is the largest
/// resident set since `start`. Where the reset is not possible, the peak is
/// getrusage's ru_maxrss, the peak over the whole process, which is then an
/// upper bound (reported by "rss_peak_since_start": false).
struct RssProbe {
  int64_t baseline = -1;
  bool reset = false;

  /// False when the resident set cannot be read (no /proc).
  bool start() {
    baseline = procStatusBytes("VmRSS");
    if (baseline < 0)
      return false;
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5" << std::flush;
    reset = clear.good();
    return true;
  }

  int64_t peak() const {
    int64_t hwm = reset ? procStatusBytes("VmHWM") : -1;
    if (hwm >= 0)
      return std::max(hwm, baseline);
    struct rusage usage = {};
    getrusage(RUSAGE_SELF, &usage);
    return std::max<int64_t>(int64_t(usage.ru_maxrss) * 1024, baseline);
  }
};

int run(const Options &o) {
  if (o.describe)
    return describe(o);
  std::unique_ptr<Executor> executor;
  loom_status_t status = openArtifact(o.artifact, executor);
  if (status)
    return fail(status);
  std::mt19937_64 rng(o.seed);

  // Params: the file's, then random ones for every param it lacks.
  Map params;
  if (!o.params.empty())
    status = loom_params_load(o.params.c_str(), 0, &params.map);
  else
    status = loom_tensor_map_create(&params.map);
  if (status)
    return fail(status);
  for (uint32_t e = 0; e < executor->entryCount(); ++e) {
    const loom_entry_desc_t *entry = executor->entryAt(e);
    for (uint32_t a = 0; a < entry->num_args; ++a) {
      const loom_arg_desc_t &arg = entry->args[a];
      if (arg.role != LOOM_ROLE_PARAM ||
          loom_tensor_map_find(params.map, arg.binding))
        continue;
      loom_tensor_t *t = nullptr;
      if ((status = randomTensor(arg, o.dims, rng, &t)))
        return fail(status);
      status = loom_tensor_map_insert(params.map, arg.binding, t);
      loom_tensor_release(t);
      if (status)
        return fail(status);
    }
  }
  if ((status = executor->start(params.map)))
    return fail(status);

  Map pool;
  if ((status = loom_tensor_map_create(&pool.map)))
    return fail(status);
  if ((status = addSafetensors(o.inputFiles, pool.map)))
    return fail(status);

  auto prepare = [&](const std::string &call, uint32_t &index,
                     std::vector<loom_tensor_t *> &inputs) -> loom_status_t {
    size_t colon = call.find(':');
    std::string prefix =
        colon == std::string::npos ? "" : call.substr(colon + 1) + ".";
    if (loom_status_t s = executor->findEntry(call.substr(0, colon), &index))
      return s;
    return gatherInputs(executor->entryAt(index), prefix, pool, o, rng, inputs);
  };
  // A call, timed when `timing` is given, its kernels too when `kernels`
  // is (their count in *count).
  auto invoke = [&](uint32_t index, const std::vector<loom_tensor_t *> &inputs,
                    loom_call_timing_t *timing = nullptr,
                    std::vector<loom_kernel_timing_t> *kernels = nullptr,
                    size_t *count = nullptr) {
    std::vector<loom_tensor_t *> outputs(executor->entryAt(index)->num_outputs,
                                         nullptr);
    loom_status_t s =
        kernels ? executor->callProfiled(index, inputs.data(), outputs.data(),
                                         timing, *kernels, count)
        : timing
            ? executor->callTimed(index, inputs.data(), outputs.data(), timing)
            : executor->call(index, inputs.data(), outputs.data());
    for (loom_tensor_t *t : outputs)
      loom_tensor_release(t);
    return s;
  };

  for (const std::string &setup : o.setups) {
    uint32_t index = 0;
    std::vector<loom_tensor_t *> inputs;
    if ((status = prepare(setup, index, inputs)) ||
        (status = invoke(index, inputs)))
      return fail(status);
  }
  uint32_t index = 0;
  std::vector<loom_tensor_t *> inputs;
  if ((status = prepare(o.call, index, inputs)))
    return fail(status);
  // On a GPU the whole call includes host<->device copies of every input and
  // output; the runtime times the entry apart from them.
  bool device = executor->target() == LOOM_TARGET_CUDA;
  if (o.kernels && !device)
    return fail("--kernels times the kernels of CUDA artifacts; '" +
                o.artifact + "' runs on the CPU");
  RssProbe probe;
  if (o.rss && !probe.start())
    return fail("--rss needs /proc/self/status (Linux)");
  for (int i = 0; i < o.warmup; ++i)
    if ((status = invoke(index, inputs)))
      return fail(status);
  std::vector<double> times, transfers;
  for (int i = 0; i < o.reps; ++i) {
    loom_call_timing_t timing = {};
    auto start = std::chrono::steady_clock::now();
    status = invoke(index, inputs, device ? &timing : nullptr);
    auto end = std::chrono::steady_clock::now();
    if (status)
      return fail(status);
    times.push_back(device
                        ? timing.entry_seconds
                        : std::chrono::duration<double>(end - start).count());
    transfers.push_back(timing.transfer_seconds);
  }
  auto medianOf = [](std::vector<double> &v) {
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  };
  double median = medianOf(times);
  double transferMedian = medianOf(transfers);
  int64_t peak = o.rss ? probe.peak() : 0;
  std::string entry = executor->entryAt(index)->name;

  // --kernels: per kernel name (in the order of first launch), its time in
  // each call summed over its launches.
  struct KernelRow {
    std::string name;
    size_t launches = 0;
    std::vector<double> perCall;
  };
  std::vector<KernelRow> rows;
  std::vector<double> sums, profiled;
  std::vector<loom_kernel_timing_t> timed(1024);
  for (int i = 0; o.kernels && i < o.reps; ++i) {
    loom_call_timing_t timing = {};
    size_t count = 0;
    if ((status = invoke(index, inputs, &timing, &timed, &count)))
      return fail(status);
    if (count > timed.size()) { // Room for all of them, and again.
      timed.resize(count);
      --i;
      continue;
    }
    double sum = 0;
    for (size_t k = 0; k < count; ++k) {
      auto row = std::find_if(rows.begin(), rows.end(), [&](const auto &r) {
        return r.name == timed[k].name;
      });
      if (row == rows.end()) {
        rows.push_back({timed[k].name, 0, std::vector<double>(o.reps, 0.0)});
        row = rows.end() - 1;
      }
      ++row->launches;
      row->perCall[i] += timed[k].seconds;
      sum += timed[k].seconds;
    }
    sums.push_back(sum);
    profiled.push_back(timing.entry_seconds);
  }
  double kernelsMedian = o.kernels ? medianOf(sums) : 0;
  double profiledMedian = o.kernels ? medianOf(profiled) : 0;
  if (o.json) {
    std::printf("{\"entry\": \"%s\", \"median_s\": %.9g, \"min_s\": %.9g, "
                "\"max_s\": %.9g, \"reps\": %d, \"timed\": \"%s\"",
                entry.c_str(), median, times.front(), times.back(), o.reps,
                device ? "entry" : "call");
    if (device)
      std::printf(", \"transfer_median_s\": %.9g", transferMedian);
    if (o.rss)
      std::printf(", \"rss_baseline_bytes\": %" PRId64
                  ", \"rss_peak_bytes\": %" PRId64
                  ", \"rss_peak_above_baseline_bytes\": %" PRId64
                  ", \"rss_peak_since_start\": %s",
                  probe.baseline, peak, peak - probe.baseline,
                  probe.reset ? "true" : "false");
    if (o.kernels) {
      std::printf(", \"kernels\": [");
      for (size_t k = 0; k < rows.size(); ++k)
        std::printf("%s{\"name\": %s, \"launches\": %.9g, \"median_s\": "
                    "%.9g}",
                    k ? ", " : "", jsonString(rows[k].name).c_str(),
                    double(rows[k].launches) / o.reps,
                    medianOf(rows[k].perCall));
      std::printf("], \"kernels_median_s\": %.9g, \"profiled_median_s\": "
                  "%.9g",
                  kernelsMedian, profiledMedian);
    }
    std::printf("}\n");
  } else {
    std::printf("%s: median %.6g s, min %.6g s, max %.6g s over %d reps "
                "(%d warm-up)\n",
                entry.c_str(), median, times.front(), times.back(), o.reps,
                o.warmup);
    if (device)
      std::printf("%s: the entry on the GPU alone; host<->device copies "
                  "median %.6g s more per call\n",
                  entry.c_str(), transferMedian);
    if (o.rss)
      std::printf("%s: resident %.1f MiB before the calls, peak %.1f MiB "
                  "(+%.1f MiB)%s\n",
                  entry.c_str(), probe.baseline / 1048576.0, peak / 1048576.0,
                  (peak - probe.baseline) / 1048576.0,
                  probe.reset ? "" : ", peak over the whole process");
    if (o.kernels) {
      std::printf("%s: kernels, median time per call over %d calls with "
                  "events around each launch:\n",
                  entry.c_str(), o.reps);
      for (KernelRow &row : rows) {
        double launches = double(row.launches) / o.reps;
        double t = medianOf(row.perCall);
        std::printf("  %-40s %6.4g launch%s %.6g s (%.1f%%)\n",
                    row.name.c_str(), launches, launches == 1 ? " " : "es", t,
                    kernelsMedian > 0 ? 100.0 * t / kernelsMedian : 0.0);
      }
      std::printf("  all kernels %.6g s; the entry %.6g s with the events, "
                  "%.6g s without\n",
                  kernelsMedian, profiledMedian, median);
    }
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  Options options;
  int rc = parseArgs(argc, argv, options);
  if (rc >= 0)
    return rc;
  return run(options);
}
