//===- kernel_util.h - Shared pieces of the CPU kernels ---------*- C++ -*-===//
//
// This file defines what the attention (attention.cc) and MLA decoding
// (mla_decode.cc) kernels share: index arithmetic, strided f32 views of
// memrefs, a growable per-thread scratch buffer, the 8-float vector helpers
// their micro-kernels are written with, the output micro-kernel of an
// online softmax, the tail of a loop over register tiles, the choice between
// the AVX2+FMA and the baseline copy of a kernel, and the parallel loop.
//
// The vector helpers are GCC vector extensions in always-inline functions
// with no target attribute of their own: each kernel compiles its hot loops
// twice, in a function with target("avx2,fma") and in one without, and the
// helpers are inlined into both, so each copy gets the instructions of its
// target.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_SRC_KERNEL_UTIL_H
#define LOOM_RUNTIME_SRC_KERNEL_UTIL_H

#include "internal.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>

/// Forces inlining, so that a helper takes the target of its caller.
#define LOOM_INLINE __attribute__((always_inline)) inline

/// The target of the vectorized copy of a kernel, chosen at run time when
/// cpuHasAvx2Fma() says so.
#define LOOM_TARGET_AVX2 __attribute__((target("avx2,fma")))

namespace loom {
namespace kernel {

//===----------------------------------------------------------------------===//
// Blocking and index arithmetic
//===----------------------------------------------------------------------===//

/// Width of a micro-kernel strip: two 8-float vectors.
constexpr int64_t kLanes = 16;
/// Rows of a micro-kernel register tile: kRegTile x kLanes accumulators in
/// 12 of the 16 vector registers.
constexpr int kRegTile = 6;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

/// x rounded up to a multiple of m (x >= 0, m > 0).
constexpr int64_t roundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
/// x / m rounded up (x >= 0, m > 0).
constexpr int64_t ceilDiv(int64_t x, int64_t m) { return (x + m - 1) / m; }

//===----------------------------------------------------------------------===//
// Operands and scratch memory
//===----------------------------------------------------------------------===//

/// A strided f32 view of rank <= 4: the first element and the strides, in
/// elements, of the dimensions it has (the others 0).
struct View {
  float *p;
  int64_t st[4];
};

inline View view4(const loom_memref_4d_t *m) {
  return {static_cast<float *>(m->aligned) + m->offset,
          {m->strides[0], m->strides[1], m->strides[2], m->strides[3]}};
}

inline View view3(const loom_memref_3d_t *m) {
  return {static_cast<float *>(m->aligned) + m->offset,
          {m->strides[0], m->strides[1], m->strides[2], 0}};
}

/// A growable, 64-byte aligned buffer; a kernel keeps its buffers in a
/// thread_local workspace so that calls reuse them. get() and floats()
/// return null when the memory cannot be had.
class Buffer {
public:
  Buffer() = default;
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  ~Buffer() { std::free(data); }

  /// At least `bytes` bytes; the contents do not survive a call that grows
  /// the buffer.
  void *get(int64_t bytes) {
    size_t size = static_cast<size_t>(std::max<int64_t>(bytes, 64));
    if (size > capacity) {
      std::free(data);
      capacity = (size + 63) & ~size_t(63);
      data = std::aligned_alloc(64, capacity);
      if (!data)
        capacity = 0;
    }
    return data;
  }
  /// At least n floats.
  float *floats(int64_t n) {
    return static_cast<float *>(get(n * int64_t(sizeof(float))));
  }

private:
  void *data = nullptr;
  size_t capacity = 0;
};

//===----------------------------------------------------------------------===//
// Vector helpers (GCC vector extensions, compiled per target)
//===----------------------------------------------------------------------===//

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

LOOM_INLINE v8f splat(float x) { return v8f{x, x, x, x, x, x, x, x}; }

/// Loads 8 floats from p, aligned or not.
LOOM_INLINE v8f load(const float *p) {
  v8f v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

/// Stores 8 floats at p, aligned or not.
LOOM_INLINE void store(float *p, v8f v) { std::memcpy(p, &v, sizeof(v)); }

/// a where the lanes of mask are all ones, else b.
LOOM_INLINE v8f select(v8i mask, v8f a, v8f b) {
  return (v8f)(((v8i)a & mask) | ((v8i)b & ~mask));
}

LOOM_INLINE v8f vmax(v8f a, v8f b) { return select(a > b, a, b); }

/// 2^x for float lanes x <= 127, within 2 ulp on [-126, 127]; 0 below
/// -126.5, so 2^-inf = 0 exactly (callers clamp x above 127). Cephes' exp2f:
/// x = n + f with n an integer and |f| <= 1/2, a degree-6 polynomial for 2^f,
/// and 2^n built in the exponent field straight from the bits of the
/// rounding sum (n = -127 gives the bits of 0).
LOOM_INLINE v8f vexp2(v8f x) {
  x = vmax(x, splat(-127.0f));
  const v8f magic = splat(12582912.0f); // 1.5 * 2^23
  v8f t = x + magic;
  v8f f = x - (t - magic);
  v8f p = splat(1.535336188319500e-4f);
  p = p * f + splat(1.339887440266574e-3f);
  p = p * f + splat(9.618437357674640e-3f);
  p = p * f + splat(5.550332471162809e-2f);
  p = p * f + splat(2.402264791363012e-1f);
  p = p * f + splat(6.931472028550421e-1f);
  p = p * f + splat(1.0f);
  v8i e = ((v8i)t << 23) + (127 << 23);
  return p * (v8f)e;
}

//===----------------------------------------------------------------------===//
// Micro-kernels
//===----------------------------------------------------------------------===//

/// Output update of an online softmax for MT query rows and one strip of 16
/// columns over nb keys, with the key-major probabilities p (key t of row i
/// at p[t * ldp + i]) and the value rows v (key t at v + t * ldv):
///   o[i][0:16] = alpha[i] * o[i][0:16] + sum_t p[t][i] * v[t][0:16]
/// (o is not read when `first`). With `Prefetch`, key t also prefetches the
/// cache line at prefetch + 64 t.
template <int MT, bool Prefetch = false>
LOOM_INLINE void outputTile(const float *p, int64_t ldp, const float *v,
                            int64_t ldv, int64_t nb, const float *alpha,
                            float *o, int64_t ldo, bool first,
                            const char *prefetch = nullptr) {
  v8f acc[MT][2] = {};
  for (int64_t t = 0; t < nb; ++t) {
    if (Prefetch)
      __builtin_prefetch(prefetch + t * 64, 0, 3);
    v8f b0 = load(v + t * ldv), b1 = load(v + t * ldv + 8);
    for (int i = 0; i < MT; ++i) {
      v8f x = splat(p[t * ldp + i]);
      acc[i][0] += x * b0;
      acc[i][1] += x * b1;
    }
  }
  for (int i = 0; i < MT; ++i) {
    float *row = o + i * ldo;
    if (first) {
      store(row, acc[i][0]);
      store(row + 8, acc[i][1]);
    } else {
      v8f a = splat(alpha[i]);
      store(row, a * load(row) + acc[i][0]);
      store(row + 8, a * load(row + 8) + acc[i][1]);
    }
  }
}

/// Calls CALL(n) for n = count - done in [1, kRegTile): the tail of a loop
/// over register tiles of kRegTile rows.
#define LOOM_TILE_TAIL(count, done, CALL)                                      \
  switch ((count) - (done)) {                                                  \
  case 1:                                                                      \
    CALL(1);                                                                   \
    break;                                                                     \
  case 2:                                                                      \
    CALL(2);                                                                   \
    break;                                                                     \
  case 3:                                                                      \
    CALL(3);                                                                   \
    break;                                                                     \
  case 4:                                                                      \
    CALL(4);                                                                   \
    break;                                                                     \
  case 5:                                                                      \
    CALL(5);                                                                   \
    break;                                                                     \
  default:                                                                     \
    break;                                                                     \
  }

//===----------------------------------------------------------------------===//
// Target dispatch and threads
//===----------------------------------------------------------------------===//

/// Whether this CPU runs the LOOM_TARGET_AVX2 copy of a kernel.
inline bool cpuHasAvx2Fma() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

/// Runs body over [0, n) on a pool of `threads` threads made for the call,
/// or on the runtime's pool (loom_rt_parallel_for) when `threads` is 0.
inline void runParallel(int threads, void (*body)(void *, int64_t, int64_t),
                        void *ctx, int64_t n) {
  if (threads > 0)
    parallelForWithThreads(threads, body, ctx, n);
  else
    loom_rt_parallel_for(body, ctx, n);
}

} // namespace kernel
} // namespace loom

#endif // LOOM_RUNTIME_SRC_KERNEL_UTIL_H
