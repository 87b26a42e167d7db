//===- cuda_driver.cc - The CUDA driver behind CUDA sessions --------------===//
//
// This file implements the runtime's CUDA driver. The NVIDIA driver library
// is opened with dlopen and its entry points found with dlsym, so the runtime
// neither links nor includes anything of CUDA: the few types it needs are
// declared here with the driver's ABI. One primary context of one device is
// retained for the life of the process, because the code of a CUDA artifact
// loads its kernel module on its first call and keeps it; every entry call
// and every mgpu* function makes that context current on its thread first.
//
// The mgpu* functions are the host side of MLIR 22's GPU runtime ABI (the
// signatures of mlir/lib/ExecutionEngine/CudaRuntimeWrappers.cpp, which the
// gpu-to-llvm lowering calls). They return no error codes, so the first CUDA
// error of an entry call is recorded per thread, later work of the same call
// is skipped (no launch on a buffer whose allocation failed), and the session
// returns the error as a status when the entry returns.
//
//===----------------------------------------------------------------------===//

#include "cuda_driver.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <dlfcn.h>

using namespace loom;
using loom::cuda::DevicePtr;
using loom::cuda::HostCopy;

namespace {

// The driver ABI (cuda.h), declared here so that the runtime builds without
// the CUDA toolkit.
using CUresult = int;
using CUdevice = int;
using CUcontext = struct CUctx_st *;
using CUmodule = struct CUmod_st *;
using CUfunction = struct CUfunc_st *;
using CUstream = struct CUstream_st *;
using CUevent = struct CUevent_st *;

constexpr CUresult CUDA_SUCCESS = 0;
constexpr CUresult CUDA_ERROR_STUB_LIBRARY = 34;
constexpr CUresult CUDA_ERROR_NO_DEVICE = 100;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
constexpr int CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
constexpr int CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
/// Shared memory a block gets without opting in.
constexpr int kDefaultSharedBytes = 48 * 1024;
/// A blocking stream: ordered with the legacy default stream both ways.
constexpr unsigned CU_STREAM_DEFAULT = 0;
constexpr unsigned CU_EVENT_DISABLE_TIMING = 2;
constexpr unsigned CU_MEM_ATTACH_GLOBAL = 1;
constexpr int CU_POINTER_ATTRIBUTE_MEMORY_TYPE = 2;
constexpr unsigned CU_MEMORYTYPE_HOST = 1;
constexpr int CU_JIT_ERROR_LOG_BUFFER = 5;
constexpr int CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;
constexpr int CU_JIT_OPTIMIZATION_LEVEL = 7;

/// The driver entry points the runtime uses, with the symbol each is found
/// under (the `_v2` names where the API has them, as cuda.h maps them).
struct Api {
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDriverGetVersion)(int *);
  CUresult (*cuDeviceGetCount)(int *);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDeviceGetName)(char *, int, CUdevice);
  CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuCtxSynchronize)();
  CUresult (*cuGetErrorName)(CUresult, const char **);
  CUresult (*cuGetErrorString)(CUresult, const char **);
  CUresult (*cuMemAlloc)(DevicePtr *, size_t);
  CUresult (*cuMemAllocManaged)(DevicePtr *, size_t, unsigned);
  CUresult (*cuMemFree)(DevicePtr);
  CUresult (*cuMemcpyHtoD)(DevicePtr, const void *, size_t);
  CUresult (*cuMemcpyDtoH)(void *, DevicePtr, size_t);
  CUresult (*cuMemcpyAsync)(DevicePtr, DevicePtr, size_t, CUstream);
  CUresult (*cuPointerGetAttribute)(void *, int, DevicePtr);
  CUresult (*cuMemsetD8)(DevicePtr, unsigned char, size_t);
  CUresult (*cuMemsetD32Async)(DevicePtr, unsigned, size_t, CUstream);
  CUresult (*cuMemsetD16Async)(DevicePtr, unsigned short, size_t, CUstream);
  CUresult (*cuModuleLoadData)(CUmodule *, const void *);
  CUresult (*cuModuleLoadDataEx)(CUmodule *, const void *, unsigned, int *,
                                 void **);
  CUresult (*cuModuleUnload)(CUmodule);
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*cuFuncSetAttribute)(CUfunction, int, int);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, unsigned, CUstream, void **,
                             void **);
  CUresult (*cuStreamCreate)(CUstream *, unsigned);
  CUresult (*cuStreamDestroy)(CUstream);
  CUresult (*cuStreamSynchronize)(CUstream);
  CUresult (*cuStreamWaitEvent)(CUstream, CUevent, unsigned);
  CUresult (*cuEventCreate)(CUevent *, unsigned);
  CUresult (*cuEventDestroy)(CUevent);
  CUresult (*cuEventRecord)(CUevent, CUstream);
  CUresult (*cuEventSynchronize)(CUevent);
  CUresult (*cuEventElapsedTime)(float *, CUevent, CUevent);
};

/// The process-wide driver. It is never destroyed: artifacts may call mgpu*
/// functions from their destructors at exit, after static objects are gone.
struct Driver {
  std::mutex mutex;
  /// 0: not tried, 1: ready, 2: failed with `error`.
  std::atomic<int> state{0};
  std::string error;
  std::string path;
  void *library = nullptr;
  Api api = {};
  CUcontext context = nullptr;
  cuda::DeviceInfo info;
};

Driver &driver() {
  static Driver *d = new Driver;
  return *d;
}

/// "CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected", from the
/// driver when it can say, else the number.
std::string errorText(const Api &api, CUresult result) {
  const char *name = nullptr, *text = nullptr;
  if (api.cuGetErrorName)
    api.cuGetErrorName(result, &name);
  if (api.cuGetErrorString)
    api.cuGetErrorString(result, &text);
  // The toolkit's stub library names no error, not even its own.
  if (!name && result == CUDA_ERROR_STUB_LIBRARY)
    name = "CUDA_ERROR_STUB_LIBRARY";
  if (!name && result == CUDA_ERROR_NO_DEVICE)
    name = "CUDA_ERROR_NO_DEVICE";
  std::string s = name ? name : format("CUDA error %d", result);
  if (text)
    s += std::string(": ") + text;
  return s;
}

std::string callError(const Api &api, const char *function, CUresult result) {
  return format("CUDA error in %s: %s", function,
                errorText(api, result).c_str());
}

/// Resolves every entry point; names the first one missing.
bool resolve(void *lib, Api &api, std::string *missing) {
#define LOOM_CU_SYM(field, symbol)                                             \
  do {                                                                         \
    void *p = dlsym(lib, symbol);                                              \
    if (!p) {                                                                  \
      *missing = symbol;                                                       \
      return false;                                                            \
    }                                                                          \
    std::memcpy(&api.field, &p, sizeof(void *));                               \
  } while (0)
  LOOM_CU_SYM(cuGetErrorName, "cuGetErrorName");
  LOOM_CU_SYM(cuGetErrorString, "cuGetErrorString");
  LOOM_CU_SYM(cuInit, "cuInit");
  LOOM_CU_SYM(cuDriverGetVersion, "cuDriverGetVersion");
  LOOM_CU_SYM(cuDeviceGetCount, "cuDeviceGetCount");
  LOOM_CU_SYM(cuDeviceGet, "cuDeviceGet");
  LOOM_CU_SYM(cuDeviceGetName, "cuDeviceGetName");
  LOOM_CU_SYM(cuDeviceGetAttribute, "cuDeviceGetAttribute");
  LOOM_CU_SYM(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
  LOOM_CU_SYM(cuCtxSetCurrent, "cuCtxSetCurrent");
  LOOM_CU_SYM(cuCtxSynchronize, "cuCtxSynchronize");
  LOOM_CU_SYM(cuMemAlloc, "cuMemAlloc_v2");
  LOOM_CU_SYM(cuMemAllocManaged, "cuMemAllocManaged");
  LOOM_CU_SYM(cuMemFree, "cuMemFree_v2");
  LOOM_CU_SYM(cuMemcpyHtoD, "cuMemcpyHtoD_v2");
  LOOM_CU_SYM(cuMemcpyDtoH, "cuMemcpyDtoH_v2");
  LOOM_CU_SYM(cuMemcpyAsync, "cuMemcpyAsync");
  LOOM_CU_SYM(cuPointerGetAttribute, "cuPointerGetAttribute");
  LOOM_CU_SYM(cuMemsetD8, "cuMemsetD8_v2");
  LOOM_CU_SYM(cuMemsetD32Async, "cuMemsetD32Async");
  LOOM_CU_SYM(cuMemsetD16Async, "cuMemsetD16Async");
  LOOM_CU_SYM(cuModuleLoadData, "cuModuleLoadData");
  LOOM_CU_SYM(cuModuleLoadDataEx, "cuModuleLoadDataEx");
  LOOM_CU_SYM(cuModuleUnload, "cuModuleUnload");
  LOOM_CU_SYM(cuModuleGetFunction, "cuModuleGetFunction");
  LOOM_CU_SYM(cuFuncSetAttribute, "cuFuncSetAttribute");
  LOOM_CU_SYM(cuLaunchKernel, "cuLaunchKernel");
  LOOM_CU_SYM(cuStreamCreate, "cuStreamCreate");
  LOOM_CU_SYM(cuStreamDestroy, "cuStreamDestroy_v2");
  LOOM_CU_SYM(cuStreamSynchronize, "cuStreamSynchronize");
  LOOM_CU_SYM(cuStreamWaitEvent, "cuStreamWaitEvent");
  LOOM_CU_SYM(cuEventCreate, "cuEventCreate");
  LOOM_CU_SYM(cuEventDestroy, "cuEventDestroy_v2");
  LOOM_CU_SYM(cuEventRecord, "cuEventRecord");
  LOOM_CU_SYM(cuEventSynchronize, "cuEventSynchronize");
  LOOM_CU_SYM(cuEventElapsedTime, "cuEventElapsedTime");
#undef LOOM_CU_SYM
  return true;
}

/// Loads and initializes the driver; on failure returns why.
std::string initialize(Driver &d) {
  const char *env = std::getenv("LOOM_CUDA_DRIVER");
  d.path = env && *env ? env : "libcuda.so.1";
  if (!d.library) {
    d.library = dlopen(d.path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!d.library) {
      const char *why = dlerror();
      return format("%s could not be loaded: %s", d.path.c_str(),
                    why ? why : "unknown error");
    }
  }
  std::string missing;
  if (!resolve(d.library, d.api, &missing))
    return format("%s is not a usable CUDA driver: it lacks %s (a driver "
                  "for CUDA 11 or newer is needed)",
                  d.path.c_str(), missing.c_str());
  Api &api = d.api;
  if (CUresult r = api.cuInit(0)) {
    if (r == CUDA_ERROR_STUB_LIBRARY)
      return format("%s is the CUDA toolkit's stub library, not an NVIDIA "
                    "driver (%s); install the driver, or take the toolkit's "
                    "stubs directory off the library path",
                    d.path.c_str(), errorText(api, r).c_str());
    if (r == CUDA_ERROR_NO_DEVICE)
      return format("no CUDA device is visible (%s); check the GPU and "
                    "CUDA_VISIBLE_DEVICES",
                    errorText(api, r).c_str());
    return format("cuInit failed: %s", errorText(api, r).c_str());
  }
  api.cuDriverGetVersion(&d.info.driverVersion);
  int count = 0;
  if (CUresult r = api.cuDeviceGetCount(&count))
    return callError(api, "cuDeviceGetCount", r);
  if (count <= 0)
    return "no CUDA device is visible; check the GPU and "
           "CUDA_VISIBLE_DEVICES";
  const char *ordinalText = std::getenv("LOOM_CUDA_DEVICE");
  long ordinal = 0;
  if (ordinalText && *ordinalText) {
    char *end = nullptr;
    errno = 0;
    ordinal = std::strtol(ordinalText, &end, 10);
    if (*end || errno || ordinal < 0 || ordinal >= count)
      return format("LOOM_CUDA_DEVICE='%s' is not a device number: %d "
                    "device%s visible (0 to %d)",
                    ordinalText, count, count == 1 ? " is" : "s are",
                    count - 1);
  }
  d.info.ordinal = static_cast<int>(ordinal);
  CUdevice dev = 0;
  if (CUresult r = api.cuDeviceGet(&dev, d.info.ordinal))
    return callError(api, "cuDeviceGet", r);
  char name[256] = {};
  if (CUresult r = api.cuDeviceGetName(name, sizeof(name) - 1, dev))
    return callError(api, "cuDeviceGetName", r);
  d.info.name = name;
  if (CUresult r = api.cuDeviceGetAttribute(
          &d.info.major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev))
    return callError(api, "cuDeviceGetAttribute", r);
  if (CUresult r = api.cuDeviceGetAttribute(
          &d.info.minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev))
    return callError(api, "cuDeviceGetAttribute", r);
  if (CUresult r = api.cuDeviceGetAttribute(
          &d.info.maxSharedBytes,
          CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, dev))
    return callError(api, "cuDeviceGetAttribute", r);
  // Retained once and never released: modules the artifacts load live in it
  // until the process ends.
  if (CUresult r = api.cuDevicePrimaryCtxRetain(&d.context, dev))
    return callError(api, "cuDevicePrimaryCtxRetain", r);
  return "";
}

/// The API with the context current on this thread, or NULL with `*error`
/// set.
const Api *currentApi(std::string *error) {
  Driver &d = driver();
  if (loom_status_t s = cuda::ensureDriver()) {
    *error = loom_status_message(s);
    loom_status_free(s);
    return nullptr;
  }
  if (CUresult r = d.api.cuCtxSetCurrent(d.context)) {
    *error = callError(d.api, "cuCtxSetCurrent", r);
    return nullptr;
  }
  return &d.api;
}

//===----------------------------------------------------------------------===//
// Per-thread error state of entry calls
//===----------------------------------------------------------------------===//

struct CallState {
  bool inCall = false;
  bool failed = false;
  std::string message;
  /// The call's inputs, uploaded from host memory, and whether any work
  /// (a launch, product, copy or set on the device) has been enqueued
  /// since: until then each input's device buffer holds its host bytes.
  std::vector<HostCopy> inputs;
  bool enqueued = false;
  /// Whether the call's launches and products are timed, and their events.
  bool timeKernels = false;
  struct Timed {
    const char *name;
    CUevent start, end;
  };
  std::vector<Timed> timed;
};

thread_local CallState callState;

/// Records `message` as the call's error if it is the first; outside an
/// entry call nobody could read it, so it goes to stderr.
void record(const std::string &message) {
  CallState &c = callState;
  if (!c.inCall) {
    std::fprintf(stderr, "loom: %s\n", message.c_str());
    return;
  }
  if (!c.failed) {
    c.failed = true;
    c.message = message;
  }
}

/// True when `r` succeeded; records the error otherwise.
bool check(const Api *api, const char *function, CUresult r) {
  if (r == CUDA_SUCCESS)
    return true;
  record(callError(*api, function, r));
  return false;
}

/// The API for an mgpu* function that issues work: NULL (nothing to do)
/// after an earlier error of the same call or when the driver is unusable.
const Api *workApi() {
  if (callState.inCall && callState.failed)
    return nullptr;
  std::string error;
  const Api *api = currentApi(&error);
  if (!api)
    record("CUDA driver unavailable: " + error);
  return api;
}

/// The API for an mgpu* function that releases something: it runs even
/// after an error, so a failed call leaks nothing.
const Api *cleanupApi() {
  std::string error;
  const Api *api = currentApi(&error);
  if (!api)
    record("CUDA driver unavailable: " + error);
  return api;
}

DevicePtr devicePtr(const void *p) {
  return static_cast<DevicePtr>(reinterpret_cast<uintptr_t>(p));
}

bool launchDim(intptr_t v) { return v >= 1 && v <= UINT_MAX; }

/// The kernels' names by function (mgpuModuleGetFunction), and every name
/// a timing was given, kept for the process: a KernelTiming's name stays
/// valid.
struct KernelNames {
  std::mutex mutex;
  std::unordered_map<CUfunction, const char *> byFunction;
  std::set<std::string> names;
};

KernelNames &kernelNames() {
  static KernelNames *names = new KernelNames;
  return *names;
}

const char *internName(const std::string &name) {
  KernelNames &k = kernelNames();
  std::lock_guard<std::mutex> lock(k.mutex);
  return k.names.insert(name).first->c_str();
}

const char *functionName(CUfunction function) {
  KernelNames &k = kernelNames();
  std::lock_guard<std::mutex> lock(k.mutex);
  auto it = k.byFunction.find(function);
  return it == k.byFunction.end() ? "(unnamed kernel)" : it->second;
}

/// The events around a timed launch or product: none when the call does
/// not time its kernels.
struct Span {
  CUevent start = nullptr, end = nullptr;
};

/// When the call times its kernels: both events, made first so that the
/// host's work between them is the launch's alone, and the first recorded
/// on `stream`; else none.
Span timingStart(const Api *api, CUstream stream) {
  Span span;
  if (!callState.timeKernels ||
      !check(api, "cuEventCreate", api->cuEventCreate(&span.start, 0)))
    return {};
  if (!check(api, "cuEventCreate", api->cuEventCreate(&span.end, 0)) ||
      !check(api, "cuEventRecord", api->cuEventRecord(span.start, stream))) {
    api->cuEventDestroy(span.start);
    if (span.end)
      api->cuEventDestroy(span.end);
    return {};
  }
  return span;
}

/// Records the event that ends the launch or product `name` of `span`
/// (nothing when it has none).
void timingEnd(const Api *api, CUstream stream, Span span, const char *name) {
  if (!span.start)
    return;
  // Kept before it is recorded: a failed record fails the call, whose
  // events are destroyed with the others.
  callState.timed.push_back({name, span.start, span.end});
  check(api, "cuEventRecord", api->cuEventRecord(span.end, stream));
}

/// Device blocks that generated code freed, kept for its next allocations of
/// the same size class: cuMemAlloc and cuMemFree synchronize the device and
/// cost tens of microseconds, and an entry allocates the same temporaries on
/// every call. At most `limit` bytes are kept (LOOM_CUDA_CACHE_BYTES,
/// default 1 GiB); loom::cuda::trimCache() returns them to the driver.
struct BlockCache {
  std::mutex mutex;
  std::unordered_map<DevicePtr, size_t> live; ///< Handed out, with its size.
  std::multimap<size_t, DevicePtr> free;      ///< Cached, by size class.
  size_t cachedBytes = 0;
  size_t limit = 0;
};

BlockCache &blockCache() {
  static BlockCache *cache = [] {
    auto *c = new BlockCache;
    const char *env = std::getenv("LOOM_CUDA_CACHE_BYTES");
    c->limit = env ? std::strtoull(env, nullptr, 10) : size_t(1) << 30;
    return c;
  }();
  return *cache;
}

/// The size a block of `bytes` is allocated with: powers of two from 512
/// bytes to 1 MiB, then multiples of 1 MiB, so that a temporary of a
/// slightly different size on the next call still finds its block.
size_t sizeClass(size_t bytes) {
  constexpr size_t kMiB = size_t(1) << 20;
  if (bytes >= kMiB)
    return (bytes + kMiB - 1) / kMiB * kMiB;
  size_t size = 512;
  while (size < bytes)
    size *= 2;
  return size;
}

} // namespace

//===----------------------------------------------------------------------===//
// The mgpu* host functions (MLIR 22 GPU runtime ABI)
//===----------------------------------------------------------------------===//

extern "C" {

static CUmodule mgpuModuleLoad(void *data, size_t /*gpuBlobSize*/) {
  const Api *api = workApi();
  CUmodule module = nullptr;
  if (api)
    check(api, "cuModuleLoadData", api->cuModuleLoadData(&module, data));
  return module;
}

/// PTX compiled by the driver's JIT at `optLevel`; the JIT's error log is
/// part of the recorded error.
static CUmodule mgpuModuleLoadJIT(void *data, int optLevel) {
  const Api *api = workApi();
  CUmodule module = nullptr;
  if (!api)
    return nullptr;
  char log[4096] = {};
  int options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                   CU_JIT_OPTIMIZATION_LEVEL};
  void *values[] = {log, reinterpret_cast<void *>(uintptr_t(sizeof(log) - 1)),
                    reinterpret_cast<void *>(intptr_t(optLevel))};
  CUresult r = api->cuModuleLoadDataEx(&module, data, 3, options, values);
  if (r != CUDA_SUCCESS) {
    std::string message = callError(*api, "cuModuleLoadDataEx", r);
    if (log[0])
      message += std::string(": JIT log: ") + log;
    record(message);
    return nullptr;
  }
  return module;
}

static void mgpuModuleUnload(CUmodule module) {
  const Api *api = module ? cleanupApi() : nullptr;
  if (api)
    check(api, "cuModuleUnload", api->cuModuleUnload(module));
}

static CUfunction mgpuModuleGetFunction(CUmodule module, const char *name) {
  const Api *api = workApi();
  CUfunction function = nullptr;
  if (!api)
    return nullptr;
  if (!module) {
    record(format("mgpuModuleGetFunction('%s') on a module that failed to "
                  "load",
                  name ? name : "(null)"));
    return nullptr;
  }
  // Names are kept for timed calls (the generated code looks a kernel up
  // before each launch).
  if (check(api, "cuModuleGetFunction",
            api->cuModuleGetFunction(&function, module, name)) &&
      function && callState.timeKernels) {
    const char *kept = internName(name);
    KernelNames &k = kernelNames();
    std::lock_guard<std::mutex> lock(k.mutex);
    k.byFunction[function] = kept;
  }
  return function;
}

static void mgpuLaunchKernel(CUfunction function, intptr_t gridX,
                             intptr_t gridY, intptr_t gridZ, intptr_t blockX,
                             intptr_t blockY, intptr_t blockZ, int32_t smem,
                             CUstream stream, void **params, void **extra,
                             size_t /*paramsCount*/) {
  const Api *api = workApi();
  if (!api)
    return;
  if (!function) {
    record("mgpuLaunchKernel of a kernel that was not found");
    return;
  }
  if (!launchDim(gridX) || !launchDim(gridY) || !launchDim(gridZ) ||
      !launchDim(blockX) || !launchDim(blockY) || !launchDim(blockZ) ||
      smem < 0) {
    record(format("mgpuLaunchKernel: invalid launch: grid (%" PRIdPTR
                  ", %" PRIdPTR ", %" PRIdPTR "), block (%" PRIdPTR
                  ", %" PRIdPTR ", %" PRIdPTR "), shared memory %d bytes",
                  gridX, gridY, gridZ, blockX, blockY, blockZ, smem));
    return;
  }
  // Past 48 KB a kernel must opt in to its dynamic shared memory.
  if (smem > kDefaultSharedBytes) {
    const cuda::DeviceInfo &info = driver().info;
    if (smem > info.maxSharedBytes) {
      record(format("a kernel needs %d bytes of shared memory per block; "
                    "%s allows %d",
                    smem, info.name.c_str(), info.maxSharedBytes));
      return;
    }
    if (!check(api, "cuFuncSetAttribute",
               api->cuFuncSetAttribute(
                   function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                   smem)))
      return;
  }
  callState.enqueued = true;
  const char *name = callState.timeKernels ? functionName(function) : nullptr;
  Span span = timingStart(api, stream);
  check(api, "cuLaunchKernel",
        api->cuLaunchKernel(function, unsigned(gridX), unsigned(gridY),
                            unsigned(gridZ), unsigned(blockX), unsigned(blockY),
                            unsigned(blockZ), unsigned(smem), stream, params,
                            extra));
  timingEnd(api, stream, span, name);
}

static CUstream mgpuStreamCreate() {
  const Api *api = workApi();
  CUstream stream = nullptr;
  if (api)
    check(api, "cuStreamCreate",
          api->cuStreamCreate(&stream, CU_STREAM_DEFAULT));
  return stream;
}

static void mgpuStreamDestroy(CUstream stream) {
  const Api *api = stream ? cleanupApi() : nullptr;
  if (api)
    check(api, "cuStreamDestroy_v2", api->cuStreamDestroy(stream));
}

static void mgpuStreamSynchronize(CUstream stream) {
  if (const Api *api = workApi())
    check(api, "cuStreamSynchronize", api->cuStreamSynchronize(stream));
}

static void mgpuStreamWaitEvent(CUstream stream, CUevent event) {
  if (const Api *api = workApi())
    check(api, "cuStreamWaitEvent", api->cuStreamWaitEvent(stream, event, 0));
}

static CUevent mgpuEventCreate() {
  const Api *api = workApi();
  CUevent event = nullptr;
  if (api)
    check(api, "cuEventCreate",
          api->cuEventCreate(&event, CU_EVENT_DISABLE_TIMING));
  return event;
}

static void mgpuEventDestroy(CUevent event) {
  const Api *api = event ? cleanupApi() : nullptr;
  if (api)
    check(api, "cuEventDestroy_v2", api->cuEventDestroy(event));
}

static void mgpuEventSynchronize(CUevent event) {
  if (const Api *api = workApi())
    check(api, "cuEventSynchronize", api->cuEventSynchronize(event));
}

static void mgpuEventRecord(CUevent event, CUstream stream) {
  if (const Api *api = workApi())
    check(api, "cuEventRecord", api->cuEventRecord(event, stream));
}

/// Device memory, or managed memory the host can read too when
/// `isHostShared`. 0 bytes gives NULL, as MLIR's wrapper does. Device
/// blocks come from the block cache when one of the size class is free.
static void *mgpuMemAlloc(uint64_t sizeBytes, CUstream /*stream*/,
                          bool isHostShared) {
  const Api *api = workApi();
  DevicePtr ptr = 0;
  if (!api || sizeBytes == 0)
    return nullptr;
  if (isHostShared) {
    check(api, "cuMemAllocManaged",
          api->cuMemAllocManaged(&ptr, sizeBytes, CU_MEM_ATTACH_GLOBAL));
    return reinterpret_cast<void *>(static_cast<uintptr_t>(ptr));
  }
  BlockCache &cache = blockCache();
  size_t size = sizeClass(sizeBytes);
  {
    std::lock_guard<std::mutex> lock(cache.mutex);
    auto it = cache.free.find(size);
    if (it != cache.free.end()) {
      ptr = it->second;
      cache.free.erase(it);
      cache.cachedBytes -= size;
      cache.live[ptr] = size;
      return reinterpret_cast<void *>(static_cast<uintptr_t>(ptr));
    }
  }
  if (!check(api, "cuMemAlloc_v2", api->cuMemAlloc(&ptr, size)))
    return nullptr;
  std::lock_guard<std::mutex> lock(cache.mutex);
  cache.live[ptr] = size;
  return reinterpret_cast<void *>(static_cast<uintptr_t>(ptr));
}

static void mgpuMemFree(void *ptr, CUstream stream) {
  const Api *api = ptr ? cleanupApi() : nullptr;
  if (!api)
    return;
  // The free is ordered after the stream's work (the kernels that read the
  // buffer may still run); cuMemFree itself does not promise to wait. A
  // cached block's next user, a kernel on a blocking stream or a product,
  // also starts after any product that still reads it.
  if (stream)
    check(api, "cuStreamSynchronize", api->cuStreamSynchronize(stream));
  BlockCache &cache = blockCache();
  {
    std::lock_guard<std::mutex> lock(cache.mutex);
    auto it = cache.live.find(devicePtr(ptr));
    if (it != cache.live.end()) {
      size_t size = it->second;
      cache.live.erase(it);
      if (cache.cachedBytes + size <= cache.limit) {
        cache.free.emplace(size, devicePtr(ptr));
        cache.cachedBytes += size;
        return;
      }
    }
  }
  // A product on the legacy default stream may still read the buffer (the
  // stream's wait does not cover it): wait for the device first.
  check(api, "cuCtxSynchronize", api->cuCtxSynchronize());
  check(api, "cuMemFree_v2", api->cuMemFree(devicePtr(ptr)));
}

/// Serves a copy from an input of the call to host memory (the host reading
/// a position, first thing) from the host bytes the input was uploaded
/// from, when nothing has been enqueued in the call yet: no round trip
/// through the device. False when the copy is another one.
static bool copyFromHostInput(const Api *api, void *dst, const void *src,
                              size_t bytes) {
  const CallState &c = callState;
  if (c.enqueued || !dst)
    return false;
  DevicePtr from = devicePtr(src);
  for (const HostCopy &input : c.inputs) {
    if (from < input.device || bytes > input.bytes ||
        from - input.device > input.bytes - bytes)
      continue;
    // Device (or managed) memory says so; host memory is either not the
    // driver's (an error) or says it is host memory.
    unsigned type = 0;
    if (api->cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                                   devicePtr(dst)) == CUDA_SUCCESS &&
        type != CU_MEMORYTYPE_HOST)
      return false;
    std::memcpy(dst,
                static_cast<const char *>(input.host) + (from - input.device),
                bytes);
    return true;
  }
  return false;
}

static void mgpuMemcpy(void *dst, void *src, size_t sizeBytes,
                       CUstream stream) {
  const Api *api = workApi();
  if (!api || copyFromHostInput(api, dst, src, sizeBytes))
    return;
  callState.enqueued = true;
  check(api, "cuMemcpyAsync",
        api->cuMemcpyAsync(devicePtr(dst), devicePtr(src), sizeBytes, stream));
}

static void mgpuMemset32(void *dst, unsigned value, size_t count,
                         CUstream stream) {
  callState.enqueued = true;
  if (const Api *api = workApi())
    check(api, "cuMemsetD32Async",
          api->cuMemsetD32Async(devicePtr(dst), value, count, stream));
}

static void mgpuMemset16(void *dst, unsigned short value, size_t count,
                         CUstream stream) {
  callState.enqueued = true;
  if (const Api *api = workApi())
    check(api, "cuMemsetD16Async",
          api->cuMemsetD16Async(devicePtr(dst), value, count, stream));
}

} // extern "C"

//===----------------------------------------------------------------------===//
// Tensor maps of the bulk tensor copies (TMA, sm_90)
//===----------------------------------------------------------------------===//

namespace {

/// cuTensorMapEncodeTiled (CUDA 12 and newer drivers), looked up on first
/// use so that older drivers run everything else.
using EncodeTiled = CUresult (*)(void *, int, unsigned, void *,
                                 const uint64_t *, const uint64_t *,
                                 const unsigned *, const unsigned *, int, int,
                                 int, int);
constexpr int CU_TENSOR_MAP_DATA_TYPE_UINT16 = 1;
constexpr int CU_TENSOR_MAP_SWIZZLE_128B = 3;
constexpr int CU_TENSOR_MAP_L2_PROMOTION_L2_128B = 2;

/// The tensor maps in device memory: a ring of kSlots slots of 128 bytes,
/// and the slot of each map by what it was made from (address, dims,
/// strides, box, swizzle). A decode step asks for the same maps of the
/// same caches on every call and finds them here without encoding or
/// copying; a new map takes the oldest slot. An entry call waits for its
/// kernels before it returns, so a slot is free again once kSlots maps
/// newer than it have been made, unless one call makes that many.
struct TensorMaps {
  static constexpr size_t kSlots = 512, kBytes = 128;
  using Key = std::array<uint64_t, 9>;
  std::mutex mutex;
  EncodeTiled encode = nullptr;
  DevicePtr ring = 0;
  size_t next = 0;
  std::map<Key, size_t> slotOf;
  std::vector<Key> keys = std::vector<Key>(kSlots);
};

TensorMaps &tensorMaps() {
  static TensorMaps *maps = new TensorMaps;
  return *maps;
}

} // namespace

/// The device address of a tensor map of the 3-D 16-bit tensor `src`
/// ([d0][d1][d2], d2 contiguous) for boxes of `boxColumns` x `boxRows` x 1
/// elements (a box lands in shared memory as `boxRows` rows of
/// `boxColumns` elements; with `swizzle` 128, rows of 128 bytes whose
/// 16-byte chunks are permuted by the row's index modulo 8), reads past
/// the tensor giving zeros. 0 for an empty tensor, and after an error,
/// which the call reports.
static int64_t loomCudaTensorMap(const loom_memref_3d_t *src,
                                 int64_t boxColumns, int64_t boxRows,
                                 int64_t swizzle) {
  const Api *api = workApi();
  if (!api)
    return 0;
  // An empty tensor has nothing to copy: no map, and no kernel reads one.
  if (src->sizes[0] == 0 || src->sizes[1] == 0 || src->sizes[2] == 0)
    return 0;
  const char *base = static_cast<const char *>(src->aligned) + 2 * src->offset;
  uint64_t address = reinterpret_cast<uintptr_t>(base);
  // The stride of a single-row dimension is never taken.
  int64_t outer =
      src->sizes[0] == 1 ? src->sizes[1] * src->strides[1] : src->strides[0];
  if (src->strides[2] != 1 || address % 16 || (2 * src->strides[1]) % 16 ||
      (2 * outer) % 16 || boxColumns <= 0 || boxRows <= 0 || boxColumns > 256 ||
      boxRows > 256 || (2 * boxColumns) % 16 ||
      (swizzle != 0 && swizzle != 128) || (swizzle && 2 * boxColumns > 128) ||
      src->sizes[0] < 0 || src->sizes[1] < 0 || src->sizes[2] < 0) {
    record(format("a bulk tensor copy cannot read the tensor at %p (sizes "
                  "%" PRId64 " x %" PRId64 " x %" PRId64 ", strides %" PRId64
                  " %" PRId64 " %" PRId64 " elements, boxes of %" PRId64
                  " x %" PRId64 ", swizzle %" PRId64 "): it needs a 16-byte "
                  "aligned start, contiguous rows, row strides of whole 16 "
                  "bytes and boxes of whole 16 bytes (at most 128 swizzled)",
                  static_cast<const void *>(base), src->sizes[0], src->sizes[1],
                  src->sizes[2], src->strides[0], src->strides[1],
                  src->strides[2], boxColumns, boxRows, swizzle));
    return 0;
  }
  TensorMaps &maps = tensorMaps();
  std::lock_guard<std::mutex> lock(maps.mutex);
  if (!maps.encode) {
    void *p = dlsym(driver().library, "cuTensorMapEncodeTiled");
    if (!p) {
      record(format("%s lacks cuTensorMapEncodeTiled, which the bulk tensor "
                    "copies of this kernel need (a driver for CUDA 12 or "
                    "newer)",
                    driver().path.c_str()));
      return 0;
    }
    std::memcpy(&maps.encode, &p, sizeof(void *));
  }
  uint64_t dims[3] = {uint64_t(src->sizes[2]), uint64_t(src->sizes[1]),
                      uint64_t(src->sizes[0])};
  uint64_t strides[2] = {uint64_t(2 * src->strides[1]), uint64_t(2 * outer)};
  TensorMaps::Key key = {address,
                         dims[0],
                         dims[1],
                         dims[2],
                         strides[0],
                         strides[1],
                         uint64_t(boxColumns),
                         uint64_t(boxRows),
                         uint64_t(swizzle)};
  auto it = maps.slotOf.find(key);
  if (it != maps.slotOf.end())
    return static_cast<int64_t>(maps.ring + it->second * TensorMaps::kBytes);
  unsigned box[3] = {unsigned(boxColumns), unsigned(boxRows), 1};
  unsigned elementStrides[3] = {1, 1, 1};
  alignas(64) std::array<uint64_t, TensorMaps::kBytes / 8> map = {};
  if (!check(api, "cuTensorMapEncodeTiled",
             maps.encode(map.data(), CU_TENSOR_MAP_DATA_TYPE_UINT16, 3,
                         const_cast<char *>(base), dims, strides, box,
                         elementStrides, /*interleave=*/0,
                         swizzle ? CU_TENSOR_MAP_SWIZZLE_128B : 0,
                         CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                         /*oobFill=*/0)))
    return 0;
  if (!maps.ring && !check(api, "cuMemAlloc_v2",
                           api->cuMemAlloc(&maps.ring, TensorMaps::kSlots *
                                                           TensorMaps::kBytes)))
    return 0;
  size_t slot = maps.next;
  DevicePtr ptr = maps.ring + slot * TensorMaps::kBytes;
  // The copy runs on the legacy default stream: it waits for the work of
  // the entries' blocking streams (kernels that may still read the slot's
  // old map), and their later kernels wait for it, even where it returns
  // before the bytes have arrived (from pageable memory).
  if (!check(api, "cuMemcpyHtoD_v2",
             api->cuMemcpyHtoD(ptr, map.data(), TensorMaps::kBytes)))
    return 0;
  // Slots start with an all-zero key, which no map has (its box is empty).
  maps.slotOf.erase(maps.keys[slot]);
  maps.keys[slot] = key;
  maps.slotOf.emplace(key, slot);
  maps.next = (slot + 1) % TensorMaps::kSlots;
  return static_cast<int64_t>(ptr);
}

//===----------------------------------------------------------------------===//
// Matrix products through cuBLAS
//===----------------------------------------------------------------------===//

namespace {

using CublasHandle = struct cublasContext *;
using CublasStatus = int;
constexpr int CUBLAS_OP_N = 0;
constexpr int CUBLAS_OP_T = 1;

/// cuBLAS, loaded on the first GEMM (LOOM_CUBLAS, else libcublas.so.13, 12
/// or 11 on the library path or in /usr/local/cuda/lib64), with one handle
/// for the process, made in the process-wide context. Like the driver, never
/// unloaded.
struct Blas {
  std::string error;
  CublasHandle handle = nullptr;
  CublasStatus (*create)(CublasHandle *) = nullptr;
  CublasStatus (*sgemm)(CublasHandle, int, int, int, int, int, const float *,
                        const float *, int, const float *, int, const float *,
                        float *, int) = nullptr;
  CublasStatus (*sgemmStridedBatched)(CublasHandle, int, int, int, int, int,
                                      const float *, const float *, int,
                                      long long, const float *, int, long long,
                                      const float *, float *, int, long long,
                                      int) = nullptr;
  /// Mixed precision (f16 or bf16 operands, f32 result and accumulation);
  /// NULL in a cuBLAS without them, which only the f32 products then use.
  CublasStatus (*gemmEx)(CublasHandle, int, int, int, int, int, const void *,
                         const void *, int, int, const void *, int, int,
                         const void *, void *, int, int, int, int) = nullptr;
  CublasStatus (*gemmStridedBatchedEx)(CublasHandle, int, int, int, int, int,
                                       const void *, const void *, int, int,
                                       long long, const void *, int, int,
                                       long long, const void *, void *, int,
                                       int, long long, int, int, int) = nullptr;
};

/// cudaDataType and cublasComputeType_t values (library_types.h,
/// cublas_api.h).
constexpr int CUDA_R_32F = 0;
constexpr int CUDA_R_16F = 2;
constexpr int CUDA_R_16BF = 14;
constexpr int CUBLAS_COMPUTE_32F = 68;
constexpr int CUBLAS_GEMM_DEFAULT = -1;

/// The loaded cuBLAS, or NULL after recording why there is none.
const Blas *blas(const Api *api) {
  static Blas *b = [api] {
    auto *b = new Blas;
    const char *env = std::getenv("LOOM_CUBLAS");
    void *lib = nullptr;
    std::string tried;
    // The toolkit's folder is often not on the library path.
    for (const char *name :
         {env, "libcublas.so.13", "libcublas.so.12", "libcublas.so.11",
          "libcublas.so", "/usr/local/cuda/lib64/libcublas.so.13",
          "/usr/local/cuda/lib64/libcublas.so.12"}) {
      if (!name || (env && name != env))
        continue;
      lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (lib)
        break;
      tried += std::string(tried.empty() ? "" : "; ") + dlerror();
    }
    if (!lib) {
      b->error = "cuBLAS could not be loaded (" + tried +
                 "); compile with --matmul=codegen to do without it";
      return b;
    }
    b->create =
        reinterpret_cast<decltype(b->create)>(dlsym(lib, "cublasCreate_v2"));
    b->sgemm =
        reinterpret_cast<decltype(b->sgemm)>(dlsym(lib, "cublasSgemm_v2"));
    b->sgemmStridedBatched = reinterpret_cast<decltype(b->sgemmStridedBatched)>(
        dlsym(lib, "cublasSgemmStridedBatched"));
    b->gemmEx =
        reinterpret_cast<decltype(b->gemmEx)>(dlsym(lib, "cublasGemmEx"));
    b->gemmStridedBatchedEx =
        reinterpret_cast<decltype(b->gemmStridedBatchedEx)>(
            dlsym(lib, "cublasGemmStridedBatchedEx"));
    if (!b->create || !b->sgemm || !b->sgemmStridedBatched) {
      b->error = "the cuBLAS library lacks cublasCreate_v2, cublasSgemm_v2 "
                 "or cublasSgemmStridedBatched";
      return b;
    }
    if (CublasStatus st = b->create(&b->handle))
      b->error = "cublasCreate_v2 failed with status " + std::to_string(st);
    (void)api;
    return b;
  }();
  if (!b->error.empty()) {
    record(b->error);
    return nullptr;
  }
  return b;
}

/// One operand as cuBLAS sees it: cuBLAS is column-major, so a row-major
/// matrix is its transpose there.
struct Operand {
  const void *data;
  int op;
  int ld;
};

/// Describes stored matrix `rows x cols` (strides `s0`, `s1`, in elements)
/// for the product C^T = op(B)^T op(A)^T that computes the row-major
/// C = op(A) op(B); `transposed` is the operand's transpose flag. Fails for
/// layouts with no unit stride.
bool describe(const void *data, int64_t rows, int64_t cols, int64_t s0,
              int64_t s1, bool transposed, Operand *out) {
  if (s1 == 1 || cols <= 1) {
    out->op = transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
    out->ld = static_cast<int>(std::max<int64_t>({s0, cols, 1}));
  } else if (s0 == 1 || rows <= 1) {
    out->op = transposed ? CUBLAS_OP_N : CUBLAS_OP_T;
    out->ld = static_cast<int>(std::max<int64_t>({s1, rows, 1}));
  } else {
    return false;
  }
  out->data = data;
  return true;
}

/// The first element of `m`, whose elements are `size` bytes.
template <typename Memref> void *elements(const Memref *m, size_t size) {
  return static_cast<char *>(m->aligned) + m->offset * size;
}

/// C[b] = op(A[b]) op(B[b]) (+ C[b]) on the device, for `batch` products
/// whose operands start `strideA`, `strideB`, `strideC` elements apart. A
/// and B have elements of `abType`, C of `cType` (f32, or abType for 16-bit
/// operands); the products accumulate in f32 and C is rounded once.
void gemm(int abType, int cType, const int64_t *aSizes, const int64_t *aStrides,
          const void *a, const int64_t *bSizes, const int64_t *bStrides,
          const void *b, const int64_t *cSizes, const int64_t *cStrides,
          void *c, int64_t flags, int64_t batch, int64_t strideA,
          int64_t strideB, int64_t strideC) {
  const Api *api = workApi();
  if (!api)
    return;
  bool ta = flags & LOOM_MATMUL_TRANSPOSE_A,
       tb = flags & LOOM_MATMUL_TRANSPOSE_B;
  int64_t m = cSizes[0], n = cSizes[1], k = ta ? aSizes[0] : aSizes[1];
  if (m == 0 || n == 0 || batch == 0)
    return;
  Operand opA, opB;
  if (!describe(a, aSizes[0], aSizes[1], aStrides[0], aStrides[1], ta, &opA) ||
      !describe(b, bSizes[0], bSizes[1], bStrides[0], bStrides[1], tb, &opB) ||
      (cStrides[1] != 1 && n > 1)) {
    record("a matrix product: a matrix has no unit stride, which cuBLAS "
           "needs");
    return;
  }
  const Blas *lib = blas(api);
  if (!lib)
    return;
  if (std::max({m, n, k}) > INT_MAX) {
    record("a matrix product: a dimension exceeds cuBLAS's int range");
    return;
  }
  float alpha = 1.0f, beta = (flags & LOOM_MATMUL_ACCUMULATE) ? 1.0f : 0.0f;
  int ldc = static_cast<int>(std::max<int64_t>({cStrides[0], n, 1}));
  CublasStatus st;
  const char *function =
      abType == CUDA_R_32F
          ? (batch == 1 ? "cublasSgemm_v2" : "cublasSgemmStridedBatched")
          : (batch == 1 ? "cublasGemmEx" : "cublasGemmStridedBatchedEx");
  int in = static_cast<int>(n), im = static_cast<int>(m),
      ik = static_cast<int>(k);
  if (abType != CUDA_R_32F && (!lib->gemmEx || !lib->gemmStridedBatchedEx)) {
    record("this cuBLAS has no cublasGemmEx: f16 and bf16 products need "
           "cuBLAS 11 or newer");
    return;
  }
  callState.enqueued = true;
  const char *name = callState.timeKernels
                         ? internName(std::string("cublas:") + function)
                         : nullptr;
  Span span = timingStart(api, /*legacy default stream*/ nullptr);
  if (abType == CUDA_R_32F && batch == 1) {
    st = lib->sgemm(lib->handle, opB.op, opA.op, in, im, ik, &alpha,
                    static_cast<const float *>(opB.data), opB.ld,
                    static_cast<const float *>(opA.data), opA.ld, &beta,
                    static_cast<float *>(c), ldc);
  } else if (abType == CUDA_R_32F) {
    st = lib->sgemmStridedBatched(
        lib->handle, opB.op, opA.op, in, im, ik, &alpha,
        static_cast<const float *>(opB.data), opB.ld, strideB,
        static_cast<const float *>(opA.data), opA.ld, strideA, &beta,
        static_cast<float *>(c), ldc, strideC, static_cast<int>(batch));
  } else if (batch == 1) {
    st = lib->gemmEx(lib->handle, opB.op, opA.op, in, im, ik, &alpha, opB.data,
                     abType, opB.ld, opA.data, abType, opA.ld, &beta, c, cType,
                     ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  } else {
    st = lib->gemmStridedBatchedEx(lib->handle, opB.op, opA.op, in, im, ik,
                                   &alpha, opB.data, abType, opB.ld, strideB,
                                   opA.data, abType, opA.ld, strideA, &beta, c,
                                   cType, ldc, strideC, static_cast<int>(batch),
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  }
  // cuBLAS runs on the legacy default stream. The entry's streams are
  // blocking ones (mgpuStreamCreate): the product waits for the work they
  // hold, and their later work waits for the product, so the host goes on
  // without waiting for it.
  timingEnd(api, nullptr, span, name);
  if (st != 0)
    record(std::string("cuBLAS error in ") + function + ": status " +
           std::to_string(st));
}

} // namespace

/// The CUDA implementations of the runtime's GEMM imports (abi.h): the same
/// signatures as on the CPU, on device memory. A and B have elements of
/// cudaDataType `AB` and C of `C` (f32 for the "_f32" imports, else AB), all
/// accumulated in f32.
template <int AB, int C>
static void loomCudaMatmul(const loom_memref_2d_t *a, const loom_memref_2d_t *b,
                           loom_memref_2d_t *c, int64_t flags) {
  size_t ab = AB == CUDA_R_32F ? 4 : 2, cs = C == CUDA_R_32F ? 4 : 2;
  gemm(AB, C, a->sizes, a->strides, elements(a, ab), b->sizes, b->strides,
       elements(b, ab), c->sizes, c->strides, elements(c, cs), flags, 1, 0, 0,
       0);
}

template <int AB, int C>
static void loomCudaBatchMatmul(const loom_memref_3d_t *a,
                                const loom_memref_3d_t *b, loom_memref_3d_t *c,
                                int64_t flags) {
  size_t ab = AB == CUDA_R_32F ? 4 : 2, cs = C == CUDA_R_32F ? 4 : 2;
  gemm(AB, C, a->sizes + 1, a->strides + 1, elements(a, ab), b->sizes + 1,
       b->strides + 1, elements(b, ab), c->sizes + 1, c->strides + 1,
       elements(c, cs), flags, c->sizes[0], a->strides[0], b->strides[0],
       c->strides[0]);
}

//===----------------------------------------------------------------------===//
// The driver's interface to sessions
//===----------------------------------------------------------------------===//

namespace loom::cuda {

loom_status_t ensureDriver() {
  Driver &d = driver();
  int state = d.state.load(std::memory_order_acquire);
  if (state == 0) {
    std::lock_guard<std::mutex> lock(d.mutex);
    state = d.state.load(std::memory_order_relaxed);
    if (state == 0) {
      d.error = initialize(d);
      state = d.error.empty() ? 1 : 2;
      d.state.store(state, std::memory_order_release);
    }
  }
  if (state == 1)
    return nullptr;
  return makeStatus(LOOM_STATUS_INCOMPATIBLE, "%s", d.error.c_str());
}

const DeviceInfo &device() { return driver().info; }

std::string chipRequirement(const char *chip, int major, int minor,
                            bool *parsed) {
  *parsed = false;
  if (!chip || std::strncmp(chip, "sm_", 3) != 0)
    return "";
  const char *p = chip + 3;
  int number = 0, digits = 0;
  while (*p >= '0' && *p <= '9' && digits < 4) {
    number = number * 10 + (*p++ - '0');
    ++digits;
  }
  bool archSpecific = *p == 'a';
  if (archSpecific)
    ++p;
  if (digits < 2 || *p)
    return "";
  *parsed = true;
  int needMajor = number / 10, needMinor = number % 10;
  // Arch-specific chips (sm_90a) use features that only that exact
  // architecture has; plain ones run on it and on every later one.
  if (archSpecific) {
    if (major == needMajor && minor == needMinor)
      return "";
    return format("compute capability %d.%d exactly", needMajor, needMinor);
  }
  if (major > needMajor || (major == needMajor && minor >= needMinor))
    return "";
  return format("compute capability %d.%d or newer", needMajor, needMinor);
}

loom_status_t makeCurrent() {
  std::string error;
  if (!currentApi(&error))
    return makeStatus(LOOM_STATUS_INTERNAL, "%s", error.c_str());
  return nullptr;
}

/// A status for the failed driver call `function` on buffer `what`.
static loom_status_t failure(const char *function, CUresult r,
                             const std::string &what) {
  return makeStatus(r == 2 ? LOOM_STATUS_OUT_OF_MEMORY : LOOM_STATUS_INTERNAL,
                    "%s: %s", what.c_str(),
                    callError(driver().api, function, r).c_str());
}

loom_status_t alloc(size_t bytes, const std::string &what, DevicePtr *out) {
  if (loom_status_t s = makeCurrent())
    return s;
  if (CUresult r = driver().api.cuMemAlloc(out, bytes ? bytes : 1))
    return failure("cuMemAlloc_v2", r, what);
  return nullptr;
}

void freeBuffer(DevicePtr ptr) {
  if (!ptr || driver().state.load() != 1)
    return;
  if (loom_status_t s = makeCurrent()) {
    loom_status_free(s);
    return;
  }
  driver().api.cuMemFree(ptr);
}

loom_status_t upload(DevicePtr dst, const void *src, size_t bytes,
                     const std::string &what) {
  if (!bytes)
    return nullptr;
  if (CUresult r = driver().api.cuMemcpyHtoD(dst, src, bytes))
    return failure("cuMemcpyHtoD_v2", r, what);
  return nullptr;
}

loom_status_t download(void *dst, DevicePtr src, size_t bytes,
                       const std::string &what) {
  if (!bytes)
    return nullptr;
  if (CUresult r = driver().api.cuMemcpyDtoH(dst, src, bytes))
    return failure("cuMemcpyDtoH_v2", r, what);
  return nullptr;
}

loom_status_t zero(DevicePtr dst, size_t bytes, const std::string &what) {
  if (!bytes)
    return nullptr;
  if (CUresult r = driver().api.cuMemsetD8(dst, 0, bytes))
    return failure("cuMemsetD8_v2", r, what);
  return nullptr;
}

loom_status_t synchronize() {
  if (CUresult r = driver().api.cuCtxSynchronize())
    return makeStatus(LOOM_STATUS_INTERNAL, "%s",
                      callError(driver().api, "cuCtxSynchronize", r).c_str());
  return nullptr;
}

void beginCall(bool timeKernels, std::vector<HostCopy> inputs) {
  // Events of an earlier call whose timings nobody took.
  loom_status_free(takeKernelTimings(nullptr));
  callState.inCall = true;
  callState.failed = false;
  callState.message.clear();
  callState.timeKernels = timeKernels;
  callState.inputs = std::move(inputs);
  callState.enqueued = false;
}

loom_status_t endCall() {
  CallState &c = callState;
  c.inCall = false;
  c.timeKernels = false;
  c.inputs.clear();
  if (!c.failed)
    return nullptr;
  c.failed = false;
  return makeStatus(LOOM_STATUS_INTERNAL, "%s", c.message.c_str());
}

loom_status_t takeKernelTimings(std::vector<KernelTiming> *out) {
  std::vector<CallState::Timed> timed;
  timed.swap(callState.timed);
  if (timed.empty())
    return nullptr;
  std::string error;
  const Api *api = currentApi(&error);
  if (!api) {
    // The entry points are loaded even where the context is not current.
    for (const CallState::Timed &t : timed) {
      driver().api.cuEventDestroy(t.start);
      driver().api.cuEventDestroy(t.end);
    }
    return makeStatus(LOOM_STATUS_INTERNAL, "timing kernels: %s",
                      error.c_str());
  }
  loom_status_t status = nullptr;
  for (const CallState::Timed &t : timed) {
    float ms = 0;
    if (out && !status) {
      if (CUresult r = api->cuEventElapsedTime(&ms, t.start, t.end))
        status = makeStatus(LOOM_STATUS_INTERNAL, "timing kernels: %s",
                            callError(*api, "cuEventElapsedTime", r).c_str());
      else
        out->push_back({t.name, ms * 1e-3});
    }
    api->cuEventDestroy(t.start);
    api->cuEventDestroy(t.end);
  }
  return status;
}

void *lookupImport(const char *name) {
  static const struct {
    const char *name;
    void *fn;
  } table[] = {
#define LOOM_MGPU(fn) {#fn, reinterpret_cast<void *>(&fn)}
      LOOM_MGPU(mgpuModuleLoad),
      LOOM_MGPU(mgpuModuleLoadJIT),
      LOOM_MGPU(mgpuModuleUnload),
      LOOM_MGPU(mgpuModuleGetFunction),
      LOOM_MGPU(mgpuLaunchKernel),
      LOOM_MGPU(mgpuStreamCreate),
      LOOM_MGPU(mgpuStreamDestroy),
      LOOM_MGPU(mgpuStreamSynchronize),
      LOOM_MGPU(mgpuStreamWaitEvent),
      LOOM_MGPU(mgpuEventCreate),
      LOOM_MGPU(mgpuEventDestroy),
      LOOM_MGPU(mgpuEventSynchronize),
      LOOM_MGPU(mgpuEventRecord),
      LOOM_MGPU(mgpuMemAlloc),
      LOOM_MGPU(mgpuMemFree),
      LOOM_MGPU(mgpuMemcpy),
      LOOM_MGPU(mgpuMemset32),
      LOOM_MGPU(mgpuMemset16),
#undef LOOM_MGPU
#define LOOM_GEMM(name, ab, c)                                                 \
  {"loom_rt_matmul_" name, reinterpret_cast<void *>(&loomCudaMatmul<ab, c>)},  \
      {"loom_rt_batch_matmul_" name,                                           \
       reinterpret_cast<void *>(&loomCudaBatchMatmul<ab, c>)}
      LOOM_GEMM("f32", CUDA_R_32F, CUDA_R_32F),
      LOOM_GEMM("bf16_f32", CUDA_R_16BF, CUDA_R_32F),
      LOOM_GEMM("f16_f32", CUDA_R_16F, CUDA_R_32F),
      LOOM_GEMM("bf16", CUDA_R_16BF, CUDA_R_16BF),
      LOOM_GEMM("f16", CUDA_R_16F, CUDA_R_16F),
#undef LOOM_GEMM
      {"loom_rt_cuda_tensor_map_bf16",
       reinterpret_cast<void *>(&loomCudaTensorMap)},
      {"loom_rt_cuda_tensor_map_f16",
       reinterpret_cast<void *>(&loomCudaTensorMap)},
  };
  for (const auto &entry : table)
    if (std::strcmp(entry.name, name) == 0)
      return entry.fn;
  return nullptr;
}

void trimCache() {
  BlockCache &cache = blockCache();
  std::multimap<size_t, DevicePtr> blocks;
  {
    std::lock_guard<std::mutex> lock(cache.mutex);
    blocks.swap(cache.free);
    cache.cachedBytes = 0;
  }
  if (blocks.empty())
    return;
  std::string error;
  const Api *api = currentApi(&error);
  if (!api)
    return;
  // A product of another thread's call may still read a block its free
  // put here (the free waited only for its stream).
  check(api, "cuCtxSynchronize", api->cuCtxSynchronize());
  for (const auto &block : blocks)
    check(api, "cuMemFree_v2", api->cuMemFree(block.second));
}

void resetDriverForTesting() {
  Driver &d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  d.state.store(0);
  d.error.clear();
  d.library = nullptr;
  d.api = {};
  TensorMaps &maps = tensorMaps();
  std::lock_guard<std::mutex> mapsLock(maps.mutex);
  maps.encode = nullptr;
  maps.ring = 0;
  maps.next = 0;
  maps.slotOf.clear();
  maps.keys.assign(TensorMaps::kSlots, TensorMaps::Key{});
  d.context = nullptr;
  d.info = DeviceInfo();
}

} // namespace loom::cuda
