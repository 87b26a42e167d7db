//===- cuda_driver.h - The CUDA driver behind CUDA sessions -----*- C++ -*-===//
//
// This file declares the runtime's CUDA driver: the NVIDIA driver library
// loaded with dlopen (never linked, so the runtime builds and runs without
// CUDA), one process-wide context on the chosen device, device buffers for
// sessions, the per-thread record of the first CUDA error of an entry call,
// and the `mgpu*` host functions that CUDA artifacts import (MLIR 22's GPU
// runtime ABI). See docs/runtime.md, "CUDA driver".
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_SRC_CUDA_DRIVER_H
#define LOOM_RUNTIME_SRC_CUDA_DRIVER_H

#include "internal.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace loom::cuda {

/// A device address (CUDA's CUdeviceptr).
using DevicePtr = unsigned long long;

/// What the driver found, valid once ensureDriver() succeeded.
struct DeviceInfo {
  int ordinal = 0;
  int major = 0, minor = 0;
  int driverVersion = 0;
  /// Shared memory a block may opt in to, in bytes.
  int maxSharedBytes = 0;
  std::string name;
};

/// Loads the driver (LOOM_CUDA_DRIVER, else "libcuda.so.1"), initializes it,
/// picks device LOOM_CUDA_DEVICE (default 0) and retains its primary context,
/// once per process and thread-safely. Returns NULL when the driver is
/// usable, else an INCOMPATIBLE status saying why (no library, the
/// toolkit's stub library, no device, ...); the same reason is returned on
/// every later call.
loom_status_t ensureDriver();

/// The device of the process-wide context; ensureDriver() must have
/// succeeded.
const DeviceInfo &device();

/// Checks compute capability `major.minor` against the chip an artifact was
/// compiled for ("sm_80": 8.0 or newer; "sm_90a": exactly 9.0). Returns an
/// empty string when it runs, else what it needs ("compute capability 9.0
/// exactly"); sets *parsed to false when `chip` is not of the form sm_<N>[a].
std::string chipRequirement(const char *chip, int major, int minor,
                            bool *parsed);

/// Makes the process-wide context current on the calling thread.
loom_status_t makeCurrent();

/// Device memory for sessions. `bytes` of 0 allocates 1 byte, so every
/// buffer has a distinct address. `what` names the buffer in messages.
loom_status_t alloc(size_t bytes, const std::string &what, DevicePtr *out);
void freeBuffer(DevicePtr ptr);
loom_status_t upload(DevicePtr dst, const void *src, size_t bytes,
                     const std::string &what);
loom_status_t download(void *dst, DevicePtr src, size_t bytes,
                       const std::string &what);
loom_status_t zero(DevicePtr dst, size_t bytes, const std::string &what);
/// Waits for all work of the context (every stream).
loom_status_t synchronize();

/// A buffer of device memory that holds a copy of host memory.
struct HostCopy {
  DevicePtr device;
  const void *host;
  size_t bytes;
};

/// Brackets an entry call on the calling thread: beginCall() clears the
/// thread's CUDA error; the mgpu* functions record the first error of the
/// call and skip later work after it; endCall() returns that error (INTERNAL,
/// "CUDA error in cuLaunchKernel: CUDA_ERROR_...: text") or NULL, and leaves
/// the thread outside a call. With `timeKernels`, every kernel launch and
/// cuBLAS product of the call is bracketed by two events on its stream.
/// `inputs` are the call's inputs, just uploaded: until the call enqueues
/// work, a copy from one of them to host memory is served from its host
/// bytes (the host memory must stay valid until endCall()).
void beginCall(bool timeKernels = false, std::vector<HostCopy> inputs = {});
loom_status_t endCall();

/// A kernel launch or cuBLAS product of a call, timed on the device.
struct KernelTiming {
  /// The kernel's name, or "cublas:<function>"; valid for the process.
  const char *name;
  /// The time between the events recorded before and after it.
  double seconds;
};

/// After a call begun with timeKernels (its endCall() and synchronize()):
/// appends the timing of each of its launches and products to `out`, in
/// the order they were issued, and destroys their events. With `out` NULL
/// (a failed call) it only destroys them.
loom_status_t takeKernelTimings(std::vector<KernelTiming> *out);

/// Returns the device blocks that generated code freed and the runtime kept
/// for reuse to the driver. Sessions call it when they are destroyed.
void trimCache();

/// The mgpu* host function named `name`, or NULL.
void *lookupImport(const char *name);

/// Forgets the loaded driver so that the next ensureDriver() loads it again,
/// reading the environment anew (for tests, which switch between a mock, a
/// missing and a stub driver in one process). Every session must have been
/// destroyed; the library itself stays loaded.
void resetDriverForTesting();

} // namespace loom::cuda

#endif // LOOM_RUNTIME_SRC_CUDA_DRIVER_H
