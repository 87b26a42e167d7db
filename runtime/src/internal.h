//===- internal.h - Shared internals of the Loom runtime --------*- C++ -*-===//
//
// This file declares what the runtime's translation units share but the C API
// hides: the layout of tensors and tensor maps, printf-style status helpers,
// file reading, and the checksum/ELF helpers the loader and the seal tool use.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_SRC_INTERNAL_H
#define LOOM_RUNTIME_SRC_INTERNAL_H

#include "loom/runtime.h"

#include <atomic>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

struct loom_tensor {
  std::atomic<int32_t> refs{1};
  loom_dtype_t dtype = LOOM_DTYPE_INVALID;
  int32_t rank = 0;
  int64_t dims[LOOM_MAX_RANK] = {};
  int64_t numElements = 0;
  size_t byteSize = 0;
  void *data = nullptr;
  /// Whether `data` was allocated by the runtime and is freed with the tensor.
  bool owned = false;
};

struct loom_tensor_map {
  std::vector<std::string> names;
  std::vector<loom_tensor_t *> tensors;
  std::unordered_map<std::string, size_t> index;
};

namespace loom {

/// Creates a status with a printf-formatted message.
loom_status_t makeStatus(loom_status_code_t code, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/// Prefixes the message of `status` with `prefix` and returns it.
loom_status_t prefixStatus(loom_status_t status, const std::string &prefix);

/// Formats like printf into a std::string.
std::string format(const char *format, ...)
    __attribute__((format(printf, 1, 2)));

/// Computes the number of elements and bytes of a shape; fails on negative
/// dims, rank above LOOM_MAX_RANK, an invalid dtype, or overflow. `what`
/// names the tensor in messages.
loom_status_t checkShape(loom_dtype_t dtype, int32_t rank, const int64_t *dims,
                         const std::string &what, int64_t *outElements,
                         size_t *outBytes);

/// Creates an owned tensor without zeroing its data, for outputs that are
/// written completely right away.
loom_status_t createUninitializedTensor(loom_dtype_t dtype, int32_t rank,
                                        const int64_t *dims,
                                        loom_tensor_t **outTensor);

/// Formats dims as "[2, 3]".
std::string formatDims(int32_t rank, const int64_t *dims);

/// Reads a whole file.
loom_status_t readFile(const char *path, std::vector<uint8_t> *out);
/// Writes a whole file.
loom_status_t writeFile(const char *path, const void *data, size_t size);

/// Finds the manifest section of an ELF64 little-endian shared object held in
/// memory, checking the ELF header and section table strictly. On success
/// sets `outOffset`/`outSize` to the section's file range.
loom_status_t findManifestSection(const uint8_t *file, size_t size,
                                  uint64_t *outOffset, uint64_t *outSize);

/// The checksum of an artifact: FNV-1a over the file with the 8 bytes at
/// `checksumOffset` read as zero.
uint64_t artifactChecksum(const uint8_t *file, size_t size,
                          uint64_t checksumOffset);

/// Runs `body` over [0, n) like loom_rt_parallel_for, but on a pool of
/// `threads` threads made for this call (for tests).
void parallelForWithThreads(int threads, void (*body)(void *, int64_t, int64_t),
                            void *ctx, int64_t n);

/// loom_rt_mla_decode_f32 with its parallel loops on a pool of `threads`
/// threads made for the call, or on the runtime's pool when `threads` is 0
/// (for tests: the result must not depend on the team size).
void mlaDecodeF32WithThreads(int threads, const loom_memref_4d_t *qLat,
                             const loom_memref_4d_t *qPe,
                             const loom_memref_3d_t *kv,
                             const loom_memref_3d_t *pe, loom_memref_4d_t *out,
                             int64_t startPos, float scale);

/// loom_rt_attention_f32 (abi.h) with its parallel loops on a pool of
/// `threads` threads made for the call, or on the runtime's pool when
/// `threads` is 0 (for tests: the result must not depend on the team size).
void attentionF32WithThreads(int threads, const loom_memref_4d_t *q,
                             const loom_memref_4d_t *k,
                             const loom_memref_4d_t *v, loom_memref_4d_t *out,
                             loom_memref_3d_t *lse, float scale,
                             const loom_attention_mods_t *mods);

/// The state of loom_rt_alloc's cache of large blocks (for tests).
struct AllocatorStats {
  size_t liveLargeBlocks = 0; ///< Large blocks allocated and not yet freed.
  size_t cachedBlocks = 0;    ///< Freed large blocks kept for reuse.
  size_t cachedBytes = 0;     ///< Their total capacity.
};
AllocatorStats allocatorStats();
/// Returns every cached block to the system.
void allocatorTrim();
/// The cache's bounds.
constexpr size_t kAllocLargeThreshold = size_t(256) << 10;
constexpr size_t kAllocCacheMaxBlocks = 32;
constexpr size_t kAllocCacheMaxBytes = size_t(1) << 30;

/// Converts between IEEE half / bfloat16 and float.
float halfToFloat(uint16_t h);
uint16_t floatToHalf(float f);
float bf16ToFloat(uint16_t h);
uint16_t floatToBf16(float f);

} // namespace loom

#endif // LOOM_RUNTIME_SRC_INTERNAL_H
