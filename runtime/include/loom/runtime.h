//===- runtime.h - The Loom runtime C API -----------------------*- C -*-===//
//
// This file declares the C11 API of the Loom runtime: status objects,
// tensors, tensor maps with safetensors/.npy I/O, artifact loading and
// validation, sessions that bind parameters and own state buffers, and the
// host functions artifacts import.
//
// Conventions: every fallible function returns a loom_status_t, NULL meaning
// success; results are returned through `out_` parameters, always last, which
// are left untouched on failure. Objects are created by `*_create`/`*_open`
// and freed by the matching `*_destroy`/`*_close`/`*_release`. Tensors are
// reference counted because the same weights are shared by tensor maps and
// sessions. No function aborts on bad user input.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_H
#define LOOM_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "loom/abi.h"

#ifdef __cplusplus
extern "C" {
#endif

//===----------------------------------------------------------------------===//
// Status
//===----------------------------------------------------------------------===//

/// Error categories. The message says what exactly went wrong.
typedef enum loom_status_code_e {
  LOOM_STATUS_OK = 0,
  LOOM_STATUS_INVALID_ARGUMENT = 1, ///< Bad value given by the caller.
  LOOM_STATUS_NOT_FOUND = 2,        ///< Missing file, name, entry, param.
  LOOM_STATUS_IO_ERROR = 3,         ///< A read or write failed.
  LOOM_STATUS_DATA_LOSS = 4,        ///< Truncated or corrupt file contents.
  LOOM_STATUS_INCOMPATIBLE = 5,     ///< Wrong ABI version, machine, target.
  LOOM_STATUS_OUT_OF_MEMORY = 6,
  LOOM_STATUS_UNIMPLEMENTED = 7,
  LOOM_STATUS_INTERNAL = 8, ///< An entry or host function reported failure.
  LOOM_STATUS_MAX_ENUM = 0x7fffffff,
} loom_status_code_t;

/// A failure with a code and a message; NULL means success.
typedef struct loom_status *loom_status_t;

/// The code of `status`; LOOM_STATUS_OK for NULL.
loom_status_code_t loom_status_code(loom_status_t status);
/// The message of `status` ("ok" for NULL); owned by the status.
const char *loom_status_message(loom_status_t status);
/// Frees `status`; NULL is allowed.
void loom_status_free(loom_status_t status);
/// Creates a status, for host code that reports through the same channel.
/// Returns NULL for LOOM_STATUS_OK.
loom_status_t loom_status_create(loom_status_code_t code, const char *message);
/// A static name of a code, e.g. "DATA_LOSS".
const char *loom_status_code_name(loom_status_code_t code);

//===----------------------------------------------------------------------===//
// Data types
//===----------------------------------------------------------------------===//

/// The short name of a dtype ("f32", "bf16", ...), "invalid" otherwise.
const char *loom_dtype_name(loom_dtype_t dtype);
/// Parses a short name; returns LOOM_DTYPE_INVALID for unknown names.
loom_dtype_t loom_dtype_from_name(const char *name);

//===----------------------------------------------------------------------===//
// Tensors
//===----------------------------------------------------------------------===//

/// A dense row-major tensor: dtype, rank (<= LOOM_MAX_RANK), dims, data.
/// Owned data is 64-byte aligned; borrowed data belongs to the caller.
typedef struct loom_tensor loom_tensor_t;

/// Creates a zero-filled tensor with owned, 64-byte aligned data.
loom_status_t loom_tensor_create(loom_dtype_t dtype, int32_t rank,
                                 const int64_t *dims,
                                 loom_tensor_t **out_tensor);
/// Creates a tensor viewing `data` (at least `byte_size` bytes, which must
/// equal the tensor's size). The caller keeps `data` alive and unchanged in
/// size until the tensor's last reference is released.
loom_status_t loom_tensor_wrap(loom_dtype_t dtype, int32_t rank,
                               const int64_t *dims, void *data,
                               size_t byte_size, loom_tensor_t **out_tensor);
/// Creates an owned copy of `src` converted to `dtype`. Supported: any dtype
/// to itself, f16/bf16/f64/f32 between each other, i32/i64 between each
/// other and to floats, bool to any number.
loom_status_t loom_tensor_convert(const loom_tensor_t *src, loom_dtype_t dtype,
                                  loom_tensor_t **out_tensor);
/// Adds a reference.
void loom_tensor_retain(loom_tensor_t *tensor);
/// Drops a reference; frees at zero. NULL is allowed.
void loom_tensor_release(loom_tensor_t *tensor);

loom_dtype_t loom_tensor_dtype(const loom_tensor_t *tensor);
int32_t loom_tensor_rank(const loom_tensor_t *tensor);
/// `rank` dims; valid while the tensor lives.
const int64_t *loom_tensor_dims(const loom_tensor_t *tensor);
int64_t loom_tensor_num_elements(const loom_tensor_t *tensor);
size_t loom_tensor_byte_size(const loom_tensor_t *tensor);
void *loom_tensor_data(const loom_tensor_t *tensor);

//===----------------------------------------------------------------------===//
// Tensor maps: name -> tensor, in insertion order
//===----------------------------------------------------------------------===//

typedef struct loom_tensor_map loom_tensor_map_t;

loom_status_t loom_tensor_map_create(loom_tensor_map_t **out_map);
/// Releases every tensor and frees the map. NULL is allowed.
void loom_tensor_map_destroy(loom_tensor_map_t *map);
/// Adds `tensor` (retained) under `name`; a duplicate name is an error.
loom_status_t loom_tensor_map_insert(loom_tensor_map_t *map, const char *name,
                                     loom_tensor_t *tensor);
/// The tensor named `name` (borrowed), or NULL.
loom_tensor_t *loom_tensor_map_find(const loom_tensor_map_t *map,
                                    const char *name);
size_t loom_tensor_map_size(const loom_tensor_map_t *map);
/// Name and tensor (borrowed) at insertion position `index`; NULL if out of
/// range.
const char *loom_tensor_map_name_at(const loom_tensor_map_t *map, size_t index);
loom_tensor_t *loom_tensor_map_tensor_at(const loom_tensor_map_t *map,
                                         size_t index);

//===----------------------------------------------------------------------===//
// File I/O
//===----------------------------------------------------------------------===//

/// Flags of loom_safetensors_read.
#define LOOM_IO_CONVERT_HALF_TO_F32 1u ///< Read f16/bf16 tensors as f32.

/// Reads every tensor of a safetensors file (f32, f64, i32, i64, bool, f16,
/// bf16) in file order.
loom_status_t loom_safetensors_read(const char *path, uint32_t flags,
                                    loom_tensor_map_t **out_map);
/// The same on a file already in memory; `name` is used in messages.
loom_status_t loom_safetensors_parse(const void *data, size_t size,
                                     const char *name, uint32_t flags,
                                     loom_tensor_map_t **out_map);
/// Writes `map` as a safetensors file, tensors in map order.
loom_status_t loom_safetensors_write(const char *path,
                                     const loom_tensor_map_t *map);
/// Reads an .npy file (format 1.0, 2.0 or 3.0, little-endian, C order).
loom_status_t loom_npy_read(const char *path, loom_tensor_t **out_tensor);
loom_status_t loom_npy_parse(const void *data, size_t size, const char *name,
                             loom_tensor_t **out_tensor);
/// Writes an .npy file (format 1.0, or 2.0 when the header needs it).
loom_status_t loom_npy_write(const char *path, const loom_tensor_t *tensor);
/// Loads the params of a model: a safetensors file read with `flags`.
loom_status_t loom_params_load(const char *path, uint32_t flags,
                               loom_tensor_map_t **out_map);

//===----------------------------------------------------------------------===//
// Artifacts
//===----------------------------------------------------------------------===//

typedef struct loom_artifact loom_artifact_t;

/// One argument of an entry as the manifest describes it.
typedef struct loom_arg_desc_t {
  const char *name;
  loom_arg_role_t role;
  loom_dtype_t dtype;
  int32_t rank;
  /// Static sizes; -1 where the dim is symbolic.
  int64_t dims[LOOM_MAX_RANK];
  /// Symbol names of symbolic dims; NULL where the dim is static.
  const char *dim_symbols[LOOM_MAX_RANK];
  /// Weights-file name (param), session state name (state), else `name`.
  const char *binding;
} loom_arg_desc_t;

/// One entry point. Args are ordered inputs, params, states, outputs, so the
/// inputs are args[0, num_inputs) and the outputs the last num_outputs.
typedef struct loom_entry_desc_t {
  const char *name;
  const char *symbol;
  uint32_t num_args;
  const loom_arg_desc_t *args;
  uint32_t num_inputs;
  uint32_t num_params;
  uint32_t num_states;
  uint32_t num_outputs;
} loom_entry_desc_t;

/// Reads and validates the artifact at `path` completely (ELF structure,
/// manifest, checksum, host imports) before it maps or runs any of it, then
/// loads it and fills its import slots.
loom_status_t loom_artifact_open(const char *path,
                                 loom_artifact_t **out_artifact);
/// Drops the caller's reference; the code stays loaded while sessions use it.
/// NULL is allowed.
void loom_artifact_close(loom_artifact_t *artifact);
uint32_t loom_artifact_entry_count(const loom_artifact_t *artifact);
/// The entry at `index` (NULL if out of range), valid while the artifact is
/// open.
const loom_entry_desc_t *loom_artifact_entry_at(const loom_artifact_t *artifact,
                                                uint32_t index);
/// Finds an entry by name; NOT_FOUND lists the entries there are.
loom_status_t loom_artifact_entry_find(const loom_artifact_t *artifact,
                                       const char *name, uint32_t *out_index);
loom_target_t loom_artifact_target(const loom_artifact_t *artifact);
const char *loom_artifact_target_cpu(const loom_artifact_t *artifact);
const char *loom_artifact_compiler_version(const loom_artifact_t *artifact);
/// Imports of the artifact: host function name at `index`, NULL if out of
/// range.
uint32_t loom_artifact_import_count(const loom_artifact_t *artifact);
const char *loom_artifact_import_at(const loom_artifact_t *artifact,
                                    uint32_t index);

/// Computes the file checksum of the artifact at `path` and patches it into
/// the manifest in place (what the compiler does when it writes one).
loom_status_t loom_artifact_file_seal(const char *path);

//===----------------------------------------------------------------------===//
// Sessions
//===----------------------------------------------------------------------===//

/// Params bound and state buffers owned for one artifact. A session runs one
/// call at a time; use one session per thread.
///
/// Sessions on CUDA artifacts (loom_artifact_target() == LOOM_TARGET_CUDA)
/// run on an NVIDIA GPU through the driver library, loaded on first use
/// with dlopen("libcuda.so.1") (the environment variable LOOM_CUDA_DRIVER
/// names another file), on device LOOM_CUDA_DEVICE (default 0). Params are
/// uploaded when the session is created and states live in device memory;
/// tensors given to and returned by calls are host tensors, copied to and
/// from the device by every call.
typedef struct loom_session loom_session_t;

/// Binds every param of every entry by its binding name from `params`
/// (retained; NULL means an empty map) and allocates zeroed state buffers
/// shared across entries by state name. A CUDA artifact's params are copied
/// to the device instead of retained; creating a session on one fails with
/// INCOMPATIBLE, saying why, when there is no usable driver or device, or
/// when the device's compute capability does not run the artifact's chip
/// (loom_artifact_target_cpu: "sm_80" needs 8.0 or newer, "sm_90a" exactly
/// 9.0).
loom_status_t loom_session_create(loom_artifact_t *artifact,
                                  const loom_tensor_map_t *params,
                                  loom_session_t **out_session);
void loom_session_destroy(loom_session_t *session);
const loom_artifact_t *loom_session_artifact(const loom_session_t *session);
/// The state buffer named `name` (borrowed), or NULL. For a CUDA session,
/// a host copy downloaded by this call (NULL if that fails); writing to it
/// does not change the device's buffer.
loom_tensor_t *loom_session_state(const loom_session_t *session,
                                  const char *name);
/// Zeroes every state buffer (e.g. to start a new sequence).
void loom_session_reset_states(loom_session_t *session);

/// Calls entry `entry_index` with its inputs in manifest order
/// (`inputs[num_inputs]`). On success stores new tensors (one reference each,
/// the caller releases them) into `out_outputs[num_outputs]`.
loom_status_t loom_session_call(loom_session_t *session, uint32_t entry_index,
                                loom_tensor_t *const *inputs,
                                loom_tensor_t **out_outputs);
/// Where the time of a call went, for benchmarks.
typedef struct loom_call_timing_t {
  /// The entry function, until the device is idle for a CUDA session (its
  /// kernels, launches and device allocations; what a benchmark of the
  /// compiled code should report).
  double entry_seconds;
  /// Copies of inputs to the device and outputs back (0 for CPU sessions).
  double transfer_seconds;
} loom_call_timing_t;

/// loom_session_call that also measures the call's parts. The input checks
/// and host allocations of a call are in neither part.
loom_status_t loom_session_call_timed(loom_session_t *session,
                                      uint32_t entry_index,
                                      loom_tensor_t *const *inputs,
                                      loom_tensor_t **out_outputs,
                                      loom_call_timing_t *out_timing);
/// A kernel launch or cuBLAS product of a CUDA call, timed on the device.
typedef struct loom_kernel_timing_t {
  /// The kernel's name in the artifact's PTX, or "cublas:<function>" for a
  /// matrix product; valid for the life of the process.
  const char *name;
  /// The time between two events recorded on its stream just before and
  /// just after it: its own time where work queued before it keeps the
  /// stream busy (a GPU-bound call); on an idle stream the first event
  /// completes at once, and the time includes the host's launch (or
  /// cuBLAS's set-up).
  double seconds;
} loom_kernel_timing_t;

/// loom_session_call_timed that also times every kernel launch and cuBLAS
/// product of a CUDA session's call, for profiles: stores the first
/// `capacity` of them, in the order they were issued, into `kernels`, and
/// their number into `*out_num_kernels` (which may exceed `capacity`). The
/// events add a little to the entry's time: time the entry without them.
/// INCOMPATIBLE for a CPU session.
loom_status_t loom_session_call_profiled(
    loom_session_t *session, uint32_t entry_index, loom_tensor_t *const *inputs,
    loom_tensor_t **out_outputs, loom_call_timing_t *out_timing,
    loom_kernel_timing_t *kernels, size_t capacity, size_t *out_num_kernels);
/// Calls the entry named `entry_name` with `num_inputs` inputs given by name.
/// On success returns a new map of the outputs by name.
loom_status_t loom_session_invoke(loom_session_t *session,
                                  const char *entry_name, size_t num_inputs,
                                  const char *const *input_names,
                                  loom_tensor_t *const *inputs,
                                  loom_tensor_map_t **out_outputs);

//===----------------------------------------------------------------------===//
// Host functions imported by artifacts (see the typedefs in abi.h)
//===----------------------------------------------------------------------===//

void loom_rt_matmul_f32(const loom_memref_2d_t *a, const loom_memref_2d_t *b,
                        loom_memref_2d_t *c, int64_t flags);
void loom_rt_batch_matmul_f32(const loom_memref_3d_t *a,
                              const loom_memref_3d_t *b, loom_memref_3d_t *c,
                              int64_t flags);
void loom_rt_mla_decode_f32(const loom_memref_4d_t *q_lat,
                            const loom_memref_4d_t *q_pe,
                            const loom_memref_3d_t *kv,
                            const loom_memref_3d_t *pe, loom_memref_4d_t *out,
                            int64_t start_pos, float scale);
void loom_rt_attention_f32(const loom_memref_4d_t *q, const loom_memref_4d_t *k,
                           const loom_memref_4d_t *v, loom_memref_4d_t *out,
                           loom_memref_3d_t *lse, float scale,
                           const loom_attention_mods_t *mods);
void loom_rt_token_logprob_f32(const loom_memref_2d_t *hidden,
                               const loom_memref_2d_t *weight,
                               const loom_memref_1d_t *ids,
                               loom_memref_1d_t *logp, loom_memref_1d_t *lse,
                               float temperature, int64_t chunk);
void loom_rt_token_logprob_grad_f32(
    const loom_memref_2d_t *hidden, const loom_memref_2d_t *weight,
    const loom_memref_1d_t *ids, const loom_memref_1d_t *g,
    const loom_memref_1d_t *lse, loom_memref_2d_t *grad_hidden,
    loom_memref_2d_t *grad_weight, float temperature, int64_t chunk,
    int64_t flags);
void loom_rt_token_logprob_rows_f32(
    const loom_memref_2d_t *hidden, const loom_memref_2d_t *weight,
    const loom_memref_1d_t *ids, loom_memref_1d_t *logp, loom_memref_1d_t *lse,
    loom_memref_2d_t *scratch, int64_t offset, float temperature);
void loom_rt_token_logprob_rows_grad_f32(
    const loom_memref_2d_t *hidden, const loom_memref_2d_t *weight,
    const loom_memref_1d_t *ids, const loom_memref_1d_t *lse,
    const loom_memref_1d_t *g, loom_memref_2d_t *grad_hidden,
    loom_memref_2d_t *grad_weight, loom_memref_2d_t *scratch, int64_t offset,
    float temperature, int64_t flags);
void loom_rt_parallel_for(void (*body)(void *, int64_t, int64_t), void *ctx,
                          int64_t n);
/// `size` bytes aligned to `alignment` (a power of two, at most 4096), or
/// NULL when the alignment is invalid, `size` is negative or memory is
/// exhausted. A `size` of 0 gives a unique block like any other. Blocks of
/// 256 KiB and more are cached by loom_rt_free and reused by later calls.
void *loom_rt_alloc(int64_t size, int64_t alignment);
/// Releases a block of loom_rt_alloc; NULL is ignored.
void loom_rt_free(void *ptr);
/// The host function named `name` that CPU artifacts import (the loom_rt_*
/// functions above), or NULL when the runtime has none. CUDA artifacts
/// import from another table: the host side of MLIR 22's GPU runtime ABI
/// (mgpuModuleLoad, mgpuLaunchKernel, mgpuMemAlloc, ...) and the GEMMs
/// loom_rt_matmul_f32 / loom_rt_batch_matmul_f32 on device memory through
/// cuBLAS (docs/abi.md).
void *loom_host_function_lookup(const char *name);
/// Threads of the runtime's pool (LOOM_NUM_THREADS, else hardware
/// concurrency, or libgomp's default team size in builds with oneDNN), the
/// calling thread included.
int32_t loom_runtime_num_threads(void);
/// Whether large matmuls go to oneDNN in this build.
int32_t loom_runtime_has_dnnl(void);

#ifdef __cplusplus
} // extern "C"
#endif

#endif // LOOM_RUNTIME_H
