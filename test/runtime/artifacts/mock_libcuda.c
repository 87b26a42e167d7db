/*===- mock_libcuda.c - A CUDA driver on host memory, for tests -----------===*
 *
 * This file is a stand-in for libcuda.so.1 that the runtime tests load
 * through LOOM_CUDA_DRIVER on machines without a GPU. It implements the
 * driver functions the runtime uses with the driver's C ABI: "device"
 * memory is host memory (so device pointers can be checked by reading
 * them), streams and events are dummies, and the one module it loads (text
 * starting with "loom-mock-module") has two kernels run on the host,
 * mul_add(w, x, y, n): y[i] += w[i] * x[i] and add_into(acc, x, n):
 * acc[i] += x[i]. The environment steers it, read on every call:
 *   MOCK_CUDA_FAIL=<function>=<code>  that function returns <code>
 *   MOCK_CUDA_INIT=<code>             cuInit returns <code> (34: stub, 100:
 *                                     no device)
 *   MOCK_CUDA_CC=<major><minor>       compute capability (default 80)
 *   MOCK_CUDA_DEVICES=<n>             device count (default 1)
 *   MOCK_CUDA_RECORD=<file>           record mode, for compiled artifacts:
 *                                     any module image loads ("load ptx",
 *                                     "load cubin" is appended to <file>),
 *                                     any kernel name resolves, and a launch
 *                                     of such a kernel appends "launch NAME
 *                                     grid X Y Z block X Y Z" and runs
 *                                     nothing; stream creations ("stream
 *                                     create", "... non-blocking"), stream
 *                                     and context synchronizations are
 *                                     recorded too, and the tensor maps
 *                                     encoded
 * Events are real objects: an event records the mock's clock, which a
 * launch of G blocks advances by G microseconds, and cuEventElapsedTime
 * gives the difference (CUDA_ERROR_INVALID_HANDLE for events made with
 * CU_EVENT_DISABLE_TIMING or never recorded, as the driver does).
 * Counters for the tests: mock_cuda_launches(), mock_cuda_live_allocations(),
 * mock_cuda_alloc_calls(), mock_cuda_live_events(), mock_cuda_async_copies()
 * (cuMemcpyAsync calls). cuPointerGetAttribute knows the allocations as
 * device memory and no other memory, as the driver does pageable memory.
 *
 *===----------------------------------------------------------------------===*/

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef int CUresult;
typedef unsigned long long CUdeviceptr;

static int launches;
static int liveAllocations;
static int allocCalls;
static int asyncCopies;

/* The live allocations, for cuPointerGetAttribute. */
static struct allocation {
  uintptr_t start;
  size_t bytes;
} * allocations;
static size_t allocationCount, allocationCapacity;
static int contextToken, streamToken;
static int liveEvents;
/* The device's clock for events, in milliseconds: a launch of G blocks
 * takes G microseconds; nothing else takes time. */
static double clockMs;

static int record(const char *line);

/* The failure MOCK_CUDA_FAIL asks of `function`, else 0. */
static CUresult injected(const char *function) {
  const char *spec = getenv("MOCK_CUDA_FAIL");
  size_t n = strlen(function);
  if (!spec || strncmp(spec, function, n) != 0 || spec[n] != '=')
    return 0;
  return atoi(spec + n + 1);
}

#define MOCK_FAIL_POINT(name)                                                  \
  do {                                                                         \
    CUresult r = injected(name);                                               \
    if (r)                                                                     \
      return r;                                                                \
  } while (0)

static const struct {
  CUresult code;
  const char *name, *text;
} errors[] = {
    {0, "CUDA_SUCCESS", "no error"},
    {1, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {34, "CUDA_ERROR_STUB_LIBRARY", "CUDA driver is a stub library"},
    {100, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {200, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {400, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {500, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {700, "CUDA_ERROR_ILLEGAL_ADDRESS",
     "an illegal memory access was encountered"},
    {719, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
};

EXPORT CUresult cuGetErrorName(CUresult error, const char **str) {
  for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); ++i)
    if (errors[i].code == error) {
      *str = errors[i].name;
      return 0;
    }
  *str = NULL;
  return 1;
}

EXPORT CUresult cuGetErrorString(CUresult error, const char **str) {
  for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); ++i)
    if (errors[i].code == error) {
      *str = errors[i].text;
      return 0;
    }
  *str = NULL;
  return 1;
}

EXPORT CUresult cuInit(unsigned flags) {
  const char *init = getenv("MOCK_CUDA_INIT");
  (void)flags;
  return init ? atoi(init) : 0;
}

EXPORT CUresult cuDriverGetVersion(int *version) {
  *version = 12040;
  return 0;
}

EXPORT CUresult cuDeviceGetCount(int *count) {
  const char *n = getenv("MOCK_CUDA_DEVICES");
  *count = n ? atoi(n) : 1;
  return 0;
}

EXPORT CUresult cuDeviceGet(int *device, int ordinal) {
  *device = ordinal;
  return 0;
}

EXPORT CUresult cuDeviceGetName(char *name, int len, int device) {
  (void)device;
  strncpy(name, "Mock GPU", (size_t)len);
  return 0;
}

EXPORT CUresult cuDeviceGetAttribute(int *value, int attribute, int device) {
  const char *cc = getenv("MOCK_CUDA_CC");
  int number = cc ? atoi(cc) : 80;
  (void)device;
  if (attribute == 75)
    *value = number / 10;
  else if (attribute == 76)
    *value = number % 10;
  else if (attribute == 97) /* shared memory per block, opted in */
    *value = number >= 90 ? 232448 : number == 80 ? 166912 : 101376;
  else
    return 1;
  return 0;
}

EXPORT CUresult cuDevicePrimaryCtxRetain(void **context, int device) {
  (void)device;
  *context = &contextToken;
  return 0;
}

EXPORT CUresult cuCtxSetCurrent(void *context) {
  return context == &contextToken ? 0 : 1;
}

EXPORT CUresult cuCtxSynchronize(void) {
  MOCK_FAIL_POINT("cuCtxSynchronize");
  record("context sync");
  return 0;
}

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *ptr, size_t bytes) {
  MOCK_FAIL_POINT("cuMemAlloc_v2");
  ++allocCalls;
  void *p = bytes ? malloc(bytes) : NULL;
  if (!p)
    return bytes ? 2 : 1;
  if (allocationCount == allocationCapacity) {
    size_t capacity = allocationCapacity ? 2 * allocationCapacity : 64;
    struct allocation *grown =
        realloc(allocations, capacity * sizeof(struct allocation));
    if (!grown) {
      free(p);
      return 2;
    }
    allocations = grown;
    allocationCapacity = capacity;
  }
  allocations[allocationCount++] = (struct allocation){(uintptr_t)p, bytes};
  ++liveAllocations;
  *ptr = (CUdeviceptr)(uintptr_t)p;
  return 0;
}

EXPORT CUresult cuMemAllocManaged(CUdeviceptr *ptr, size_t bytes,
                                  unsigned flags) {
  (void)flags;
  return cuMemAlloc_v2(ptr, bytes);
}

EXPORT CUresult cuMemFree_v2(CUdeviceptr ptr) {
  if (!ptr)
    return 1;
  for (size_t i = 0; i < allocationCount; ++i)
    if (allocations[i].start == (uintptr_t)ptr) {
      allocations[i] = allocations[--allocationCount];
      break;
    }
  free((void *)(uintptr_t)ptr);
  --liveAllocations;
  return 0;
}

EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src,
                                size_t bytes) {
  MOCK_FAIL_POINT("cuMemcpyHtoD_v2");
  memcpy((void *)(uintptr_t)dst, src, bytes);
  return 0;
}

EXPORT CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t bytes) {
  MOCK_FAIL_POINT("cuMemcpyDtoH_v2");
  memcpy(dst, (const void *)(uintptr_t)src, bytes);
  return 0;
}

EXPORT CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t bytes,
                              void *stream) {
  (void)stream;
  MOCK_FAIL_POINT("cuMemcpyAsync");
  if (!dst || !src)
    return 1;
  ++asyncCopies;
  memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, bytes);
  return 0;
}

/* CU_POINTER_ATTRIBUTE_MEMORY_TYPE (2) only: CU_MEMORYTYPE_DEVICE (2)
 * inside an allocation; other memory is not the driver's
 * (CUDA_ERROR_INVALID_VALUE), as pageable host memory is for the driver. */
EXPORT CUresult cuPointerGetAttribute(void *data, int attribute,
                                      CUdeviceptr ptr) {
  if (attribute != 2 || !data)
    return 1;
  for (size_t i = 0; i < allocationCount; ++i)
    if ((uintptr_t)ptr >= allocations[i].start &&
        (uintptr_t)ptr - allocations[i].start <
            (allocations[i].bytes ? allocations[i].bytes : 1)) {
      *(unsigned *)data = 2;
      return 0;
    }
  return 1;
}

EXPORT CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char value,
                              size_t count) {
  memset((void *)(uintptr_t)dst, value, count);
  return 0;
}

EXPORT CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned value, size_t count,
                                 void *stream) {
  uint32_t *p = (uint32_t *)(uintptr_t)dst;
  (void)stream;
  if (!p)
    return 1;
  for (size_t i = 0; i < count; ++i)
    p[i] = value;
  return 0;
}

EXPORT CUresult cuMemsetD16Async(CUdeviceptr dst, unsigned short value,
                                 size_t count, void *stream) {
  uint16_t *p = (uint16_t *)(uintptr_t)dst;
  (void)stream;
  if (!p)
    return 1;
  for (size_t i = 0; i < count; ++i)
    p[i] = value;
  return 0;
}

/* The module and its kernels. */
typedef void (*kernel_fn)(void **params);
struct kernel {
  const char *name;
  kernel_fn fn;
};

static void mulAdd(void **params) {
  const float *w = *(const float **)params[0], *x = *(const float **)params[1];
  float *y = *(float **)params[2];
  int64_t n = *(const int64_t *)params[3];
  for (int64_t i = 0; i < n; ++i)
    y[i] += w[i] * x[i];
}

static void addInto(void **params) {
  float *acc = *(float **)params[0];
  const float *x = *(const float **)params[1];
  int64_t n = *(const int64_t *)params[2];
  for (int64_t i = 0; i < n; ++i)
    acc[i] += x[i];
}

static struct kernel kernels[] = {{"mul_add", mulAdd}, {"add_into", addInto}};
static int moduleToken;

/* Appends one line to the MOCK_CUDA_RECORD file; 0 when not recording. */
static int record(const char *line) {
  const char *path = getenv("MOCK_CUDA_RECORD");
  if (!path)
    return 0;
  FILE *file = fopen(path, "a");
  if (file) {
    fputs(line, file);
    fputc('\n', file);
    fclose(file);
  }
  return 1;
}

EXPORT CUresult cuModuleLoadData(void **module, const void *image) {
  MOCK_FAIL_POINT("cuModuleLoadData");
  if (image && getenv("MOCK_CUDA_RECORD")) {
    const char *text = (const char *)image;
    record(memcmp(text, "\177ELF", 4) == 0 ? "load cubin"
           : strstr(text, ".version") ? "load ptx"
                                      : "load unknown");
    *module = &moduleToken;
    return 0;
  }
  if (!image || strncmp((const char *)image, "loom-mock-module", 16) != 0)
    return 200;
  *module = &moduleToken;
  return 0;
}

EXPORT CUresult cuModuleLoadDataEx(void **module, const void *image,
                                   unsigned numOptions, int *options,
                                   void **values) {
  (void)numOptions;
  (void)options;
  (void)values;
  return cuModuleLoadData(module, image);
}

EXPORT CUresult cuModuleUnload(void *module) {
  return module == &moduleToken ? 0 : 1;
}

EXPORT CUresult cuModuleGetFunction(void **function, void *module,
                                    const char *name) {
  if (module != &moduleToken)
    return 1;
  for (size_t i = 0; i < sizeof(kernels) / sizeof(kernels[0]); ++i)
    if (strcmp(kernels[i].name, name) == 0) {
      *function = &kernels[i];
      return 0;
    }
  if (getenv("MOCK_CUDA_RECORD")) {
    /* A kernel that only records its launches; kept for the process. */
    struct kernel *recorded = malloc(sizeof(struct kernel));
    if (!recorded)
      return 2;
    recorded->name = strdup(name);
    recorded->fn = NULL;
    *function = recorded;
    return 0;
  }
  return 500;
}

EXPORT CUresult cuFuncSetAttribute(void *function, int attribute, int value) {
  char line[512];
  MOCK_FAIL_POINT("cuFuncSetAttribute");
  if (!function)
    return 1;
  snprintf(line, sizeof(line), "attribute %s %d = %d",
           ((struct kernel *)function)->name, attribute, value);
  record(line);
  return 0;
}

EXPORT CUresult cuLaunchKernel(void *function, unsigned gridX, unsigned gridY,
                               unsigned gridZ, unsigned blockX, unsigned blockY,
                               unsigned blockZ, unsigned smem, void *stream,
                               void **params, void **extra) {
  (void)stream, (void)extra;
  MOCK_FAIL_POINT("cuLaunchKernel");
  if (!function || !params)
    return 1;
  ++launches;
  clockMs += 1e-3 * gridX * gridY * gridZ;
  if (!((struct kernel *)function)->fn) {
    char line[512];
    int n = snprintf(line, sizeof(line),
                     "launch %s grid %u %u %u block %u %u %u",
                     ((struct kernel *)function)->name, gridX, gridY, gridZ,
                     blockX, blockY, blockZ);
    if (smem && n > 0 && (size_t)n < sizeof(line))
      snprintf(line + n, sizeof(line) - (size_t)n, " shared %u", smem);
    record(line);
    return 0;
  }
  ((struct kernel *)function)->fn(params);
  return 0;
}

/* Checks the arguments as the driver documents them (16-bit elements,
 * no swizzle or 128 bytes), records "tensor map dims D0 D1 D2 strides S1
 * S2 box B0 B1 B2[ swizzle 128B]" and writes the address, the dimensions,
 * the box, the strides and the swizzle to the map. */
EXPORT CUresult cuTensorMapEncodeTiled(void *map, int dataType, unsigned rank,
                                       void *address, const uint64_t *dims,
                                       const uint64_t *strides,
                                       const unsigned *box,
                                       const unsigned *elementStrides,
                                       int interleave, int swizzle, int l2,
                                       int oobFill) {
  (void)l2;
  MOCK_FAIL_POINT("cuTensorMapEncodeTiled");
  if (!map || ((uintptr_t)map) % 64 || dataType != 1 || rank < 1 || rank > 5 ||
      ((uintptr_t)address) % 16 || interleave ||
      (swizzle != 0 && swizzle != 3) || oobFill)
    return 1;
  uint64_t *words = (uint64_t *)map;
  memset(words, 0, 128);
  words[0] = (uint64_t)(uintptr_t)address;
  char line[512];
  int n = snprintf(line, sizeof(line), "tensor map dims");
  for (unsigned i = 0; i < rank; ++i) {
    if (!dims[i] || !box[i] || box[i] > 256 || elementStrides[i] != 1)
      return 1;
    words[1 + i] = dims[i];
    words[6 + i] = box[i];
    n += snprintf(line + n, sizeof(line) - (size_t)n, " %llu",
                  (unsigned long long)dims[i]);
  }
  if ((box[0] * 2) % 16 || (swizzle == 3 && box[0] * 2 > 128))
    return 1;
  words[15] = (uint64_t)swizzle;
  n += snprintf(line + n, sizeof(line) - (size_t)n, " strides");
  for (unsigned i = 0; i + 1 < rank; ++i) {
    if (strides[i] % 16 || strides[i] >= (1ull << 40))
      return 1;
    words[11 + i] = strides[i];
    n += snprintf(line + n, sizeof(line) - (size_t)n, " %llu",
                  (unsigned long long)strides[i]);
  }
  n += snprintf(line + n, sizeof(line) - (size_t)n, " box");
  for (unsigned i = 0; i < rank; ++i)
    n += snprintf(line + n, sizeof(line) - (size_t)n, " %u", box[i]);
  if (swizzle)
    snprintf(line + n, sizeof(line) - (size_t)n, " swizzle 128B");
  record(line);
  return 0;
}

EXPORT CUresult cuStreamCreate(void **stream, unsigned flags) {
  record(flags & 1 ? "stream create non-blocking" : "stream create");
  *stream = &streamToken;
  return 0;
}

EXPORT CUresult cuStreamDestroy_v2(void *stream) {
  return stream == &streamToken ? 0 : 1;
}

EXPORT CUresult cuStreamSynchronize(void *stream) {
  (void)stream;
  record("stream sync");
  return 0;
}

/* An event: its creation flags and the clock when it was last recorded. */
struct event {
  unsigned magic, flags;
  int recorded;
  double stampMs;
};
enum { EVENT_MAGIC = 0x45564e54u, EVENT_DISABLE_TIMING = 2 };

static struct event *asEvent(void *event) {
  struct event *e = (struct event *)event;
  return e && e->magic == EVENT_MAGIC ? e : NULL;
}

EXPORT CUresult cuStreamWaitEvent(void *stream, void *event, unsigned flags) {
  (void)stream, (void)flags;
  return asEvent(event) ? 0 : 400;
}

EXPORT CUresult cuEventCreate(void **event, unsigned flags) {
  MOCK_FAIL_POINT("cuEventCreate");
  struct event *e = calloc(1, sizeof(struct event));
  if (!e)
    return 2;
  e->magic = EVENT_MAGIC;
  e->flags = flags;
  ++liveEvents;
  *event = e;
  return 0;
}

EXPORT CUresult cuEventDestroy_v2(void *event) {
  struct event *e = asEvent(event);
  if (!e)
    return 400;
  e->magic = 0;
  free(e);
  --liveEvents;
  return 0;
}

EXPORT CUresult cuEventRecord(void *event, void *stream) {
  struct event *e = asEvent(event);
  (void)stream;
  MOCK_FAIL_POINT("cuEventRecord");
  if (!e)
    return 400;
  e->recorded = 1;
  e->stampMs = clockMs;
  return 0;
}

EXPORT CUresult cuEventSynchronize(void *event) {
  return asEvent(event) ? 0 : 400;
}

/* As the driver: both events recorded and made without
 * CU_EVENT_DISABLE_TIMING, else CUDA_ERROR_INVALID_HANDLE. */
EXPORT CUresult cuEventElapsedTime(float *ms, void *start, void *end) {
  struct event *a = asEvent(start), *b = asEvent(end);
  MOCK_FAIL_POINT("cuEventElapsedTime");
  if (!ms || !a || !b || !a->recorded || !b->recorded ||
      ((a->flags | b->flags) & EVENT_DISABLE_TIMING))
    return 400;
  *ms = (float)(b->stampMs - a->stampMs);
  return 0;
}

EXPORT int mock_cuda_launches(void) { return launches; }
EXPORT int mock_cuda_live_allocations(void) { return liveAllocations; }
EXPORT int mock_cuda_alloc_calls(void) { return allocCalls; }
EXPORT int mock_cuda_live_events(void) { return liveEvents; }
EXPORT int mock_cuda_async_copies(void) { return asyncCopies; }
