/*===- cuda_artifact.c - A hand-written CUDA Loom artifact for tests ------===*
 *
 * This file is a CUDA Loom artifact written in C: every argument of its
 * entries is a memref descriptor of device memory, and the entries reach the
 * device only through imported mgpu* host functions (MLIR 22's GPU runtime
 * ABI), as code from `loom-compile --target=cuda` does. Its "kernel module"
 * is text that the tests' mock driver (mock_libcuda.c) understands, loaded
 * on the first call and kept.
 *
 *===----------------------------------------------------------------------===*/

#include "loom/abi.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include LOOM_TEST_MANIFEST_INC

#define EXPORT __attribute__((visibility("default")))

typedef struct {
  float *allocated, *aligned;
  int64_t offset, sizes[1], strides[1];
} md1;

typedef struct {
  int64_t *allocated, *aligned;
  int64_t offset;
} md0i;

/* Import slots: set by the runtime before any entry runs. */
EXPORT void *loom_import_mgpuModuleLoad = 0;
EXPORT void *loom_import_mgpuModuleGetFunction = 0;
EXPORT void *loom_import_mgpuLaunchKernel = 0;
EXPORT void *loom_import_mgpuStreamCreate = 0;
EXPORT void *loom_import_mgpuStreamDestroy = 0;
EXPORT void *loom_import_mgpuStreamSynchronize = 0;
EXPORT void *loom_import_mgpuEventCreate = 0;
EXPORT void *loom_import_mgpuEventRecord = 0;
EXPORT void *loom_import_mgpuStreamWaitEvent = 0;
EXPORT void *loom_import_mgpuEventDestroy = 0;
EXPORT void *loom_import_mgpuMemAlloc = 0;
EXPORT void *loom_import_mgpuMemFree = 0;
EXPORT void *loom_import_mgpuMemcpy = 0;
EXPORT void *loom_import_mgpuMemset32 = 0;

typedef void *(*module_load_fn)(void *, size_t);
typedef void *(*get_function_fn)(void *, const char *);
typedef void (*launch_fn)(void *, intptr_t, intptr_t, intptr_t, intptr_t,
                          intptr_t, intptr_t, int32_t, void *, void **, void **,
                          size_t);
typedef void *(*create_fn)(void);
typedef void (*destroy_fn)(void *);
typedef void (*record_fn)(void *, void *);
typedef void *(*alloc_fn)(uint64_t, void *, bool);
typedef void (*free_fn)(void *, void *);
typedef void (*memcpy_fn)(void *, void *, size_t, void *);
typedef void (*memset32_fn)(void *, unsigned, size_t, void *);

#define CALL(type, slot) ((type)loom_import_##slot)

static char module_text[] = "loom-mock-module 1";
/* Loaded on the first call and kept, as generated code does. */
static void *module;

static void *kernel(const char *name) {
  if (!module)
    module =
        CALL(module_load_fn, mgpuModuleLoad)(module_text, sizeof(module_text));
  return CALL(get_function_fn, mgpuModuleGetFunction)(module, name);
}

static void launch(void *stream, const char *name, int64_t n, void **params,
                   size_t count) {
  CALL(launch_fn, mgpuLaunchKernel)
  (kernel(name), (n + 127) / 128, 1, 1, 128, 1, 1, 0, stream, params, 0, count);
}

/* y = 1 + w * x, through a device temporary holding a copy of x. */
EXPORT int32_t loom_entry_fma(void **args) {
  md1 *x = (md1 *)args[0], *w = (md1 *)args[1], *y = (md1 *)args[2];
  int64_t n = y->sizes[0];
  void *stream = CALL(create_fn, mgpuStreamCreate)();
  float *tmp = (float *)CALL(alloc_fn, mgpuMemAlloc)(
      (uint64_t)n * sizeof(float), stream, false);
  CALL(memcpy_fn, mgpuMemcpy)
  (tmp, x->aligned + x->offset, n * sizeof(float), stream);
  CALL(memset32_fn, mgpuMemset32)
  (y->aligned, 0x3f800000u /* 1.0f */, n, stream);
  void *event = CALL(create_fn, mgpuEventCreate)();
  CALL(record_fn, mgpuEventRecord)(event, stream);
  CALL(record_fn, mgpuStreamWaitEvent)(stream, event);
  float *wp = w->aligned + w->offset, *yp = y->aligned;
  void *params[] = {&wp, &tmp, &yp, &n};
  launch(stream, "mul_add", n, params, 4);
  CALL(free_fn, mgpuMemFree)(tmp, stream);
  CALL(destroy_fn, mgpuEventDestroy)(event);
  CALL(destroy_fn, mgpuStreamSynchronize)(stream);
  CALL(destroy_fn, mgpuStreamDestroy)(stream);
  return 0;
}

/* acc += x; out = acc. */
EXPORT int32_t loom_entry_accum(void **args) {
  md1 *x = (md1 *)args[0], *acc = (md1 *)args[1], *out = (md1 *)args[2];
  int64_t n = 4;
  void *stream = CALL(create_fn, mgpuStreamCreate)();
  float *ap = acc->aligned, *xp = x->aligned;
  void *params[] = {&ap, &xp, &n};
  launch(stream, "add_into", n, params, 3);
  CALL(memcpy_fn, mgpuMemcpy)(out->aligned, ap, n * sizeof(float), stream);
  CALL(destroy_fn, mgpuStreamSynchronize)(stream);
  CALL(destroy_fn, mgpuStreamDestroy)(stream);
  return 0;
}

/* y[i] = x[(i + pos) mod n], for a call whose requirement (pos >= 0) the
 * runtime checks on the host before anything runs. The host reads pos
 * first, before the call has enqueued anything (the runtime serves that
 * copy from the uploaded input), rotates x with device copies, and reads
 * pos again through the device; the entry fails when the two differ. */
EXPORT int32_t loom_entry_copy(void **args) {
  md1 *x = (md1 *)args[0], *y = (md1 *)args[2];
  md0i *pos = (md0i *)args[1];
  int64_t n = y->sizes[0], p = 0, again = -1;
  CALL(memcpy_fn, mgpuMemcpy)(&p, pos->aligned + pos->offset, sizeof p, 0);
  int64_t r = n ? p % n : 0;
  CALL(memcpy_fn, mgpuMemcpy)
  (y->aligned, x->aligned + x->offset + r, (n - r) * sizeof(float), 0);
  if (r)
    CALL(memcpy_fn, mgpuMemcpy)
  (y->aligned + (n - r), x->aligned + x->offset, r * sizeof(float), 0);
  CALL(memcpy_fn, mgpuMemcpy)
  (&again, pos->aligned + pos->offset, sizeof again, 0);
  CALL(destroy_fn, mgpuStreamSynchronize)(0);
  return again == p ? 0 : 1;
}
