/*===- mock_libcublas.c - cuBLAS on host memory, for tests ----------------===*
 *
 * This file is a stand-in for libcublas.so that tests load through
 * LOOM_CUBLAS together with mock_libcuda.c (whose device pointers are host
 * pointers). It implements the functions the runtime calls (cublasSgemm_v2,
 * cublasGemmEx and their strided-batched forms; GemmEx with f32, f16 or
 * bf16 operands, an f32 result or one of the operands' 16-bit type (rounded
 * to nearest, ties to even), and f32 compute) with cuBLAS's column-major
 * semantics, in double precision:
 *   C = alpha op(A) op(B) + beta C   (m x n, op(A) m x k, op(B) k x n)
 * so that the runtime's translation of row-major products into cuBLAS
 * calls (operand order, transposes, leading dimensions, batch strides) is
 * checked by the numbers it produces. Invalid arguments give status 7
 * (CUBLAS_STATUS_INVALID_VALUE), as cuBLAS does. With MOCK_CUDA_RECORD set
 * (mock_libcuda.c's record mode), each call appends "cublas FUNCTION m n k
 * batch B" to that file, between the driver's lines.
 *
 *===----------------------------------------------------------------------===*/

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

static int handleToken;

/* Appends "cublas FUNCTION m n k batch B" to the MOCK_CUDA_RECORD file. */
static void record(const char *function, int m, int n, int k, int batch) {
  const char *path = getenv("MOCK_CUDA_RECORD");
  FILE *file = path ? fopen(path, "a") : NULL;
  if (!file)
    return;
  fprintf(file, "cublas %s %d %d %d batch %d\n", function, m, n, k, batch);
  fclose(file);
}

EXPORT int cublasCreate_v2(void **handle) {
  *handle = &handleToken;
  return 0;
}

enum { R_32F = 0, R_16F = 2, R_16BF = 14, COMPUTE_32F = 68 };

/* Element `index` of an array of cudaDataType `type`. */
static float load(const void *x, int type, size_t index) {
  if (type == R_32F)
    return ((const float *)x)[index];
  uint16_t h = ((const uint16_t *)x)[index];
  if (type == R_16BF) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
  }
  int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float value = exp == 0    ? ldexpf((float)mant, -24)
                : exp == 31 ? (mant ? NAN : INFINITY)
                            : ldexpf((float)(mant | 0x400), exp - 25);
  return (h & 0x8000) ? -value : value;
}

/* Stores `value` as element `index` of an array of cudaDataType `type`,
 * rounded to nearest with ties to even (NaN stays NaN). */
static void store(void *x, int type, size_t index, float value) {
  if (type == R_32F) {
    ((float *)x)[index] = value;
    return;
  }
  uint16_t h;
  if (type == R_16BF) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    if (isnan(value))
      h = (uint16_t)((bits >> 16) | 0x40);
    else
      h = (uint16_t)((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
  } else {
    /* IEEE half: the nearest of the 2^16 values, found by its exponent. */
    float a = fabsf(value);
    uint16_t sign = signbit(value) ? 0x8000 : 0;
    if (isnan(value)) {
      h = 0x7e00;
    } else if (a >= 65520.0f) {
      h = sign | 0x7c00;
    } else {
      int e;
      frexpf(a, &e);                           /* a = f * 2^e, f in [0.5, 1) */
      int shift = e - 11 < -24 ? -24 : e - 11; /* the ulp's exponent */
      float m = nearbyintf(ldexpf(a, -shift)); /* ties to even */
      int bits = (int)m;
      if (shift == -24) {
        h = sign | (uint16_t)bits; /* subnormal, or the smallest normal */
      } else {
        if (bits == 2048) { /* rounded up to the next binade */
          bits = 1024;
          ++shift;
        }
        h = sign | (uint16_t)((shift + 25) << 10) | (uint16_t)(bits - 1024);
      }
    }
  }
  ((uint16_t *)x)[index] = h;
}

/* Element (i, j) of op(X), X stored column-major with leading dimension ld. */
static float at(const void *x, int type, int op, int ld, int i, int j) {
  return op ? load(x, type, j + (size_t)i * ld)
            : load(x, type, i + (size_t)j * ld);
}

static int gemm(int opA, int opB, int m, int n, int k, float alpha,
                const void *a, int lda, const void *b, int ldb, float beta,
                void *c, int ldc, int type, int cType) {
  if ((opA != 0 && opA != 1) || (opB != 0 && opB != 1) || m < 0 || n < 0 ||
      k < 0 || lda < (opA ? k : m) || lda < 1 || ldb < (opB ? n : k) ||
      ldb < 1 || ldc < m || ldc < 1)
    return 7;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      double sum = 0;
      for (int p = 0; p < k; ++p)
        sum += (double)at(a, type, opA, lda, i, p) *
               at(b, type, opB, ldb, p, j);
      size_t at = i + (size_t)j * ldc;
      store(c, cType, at,
            (float)(alpha * sum +
                    (beta != 0.0f ? beta * load(c, cType, at) : 0.0)));
    }
  return 0;
}

EXPORT int cublasSgemm_v2(void *handle, int opA, int opB, int m, int n, int k,
                          const float *alpha, const float *a, int lda,
                          const float *b, int ldb, const float *beta, float *c,
                          int ldc) {
  if (handle != &handleToken)
    return 1;
  record("cublasSgemm_v2", m, n, k, 1);
  return gemm(opA, opB, m, n, k, *alpha, a, lda, b, ldb, *beta, c, ldc, R_32F,
              R_32F);
}

EXPORT int cublasSgemmStridedBatched(void *handle, int opA, int opB, int m,
                                     int n, int k, const float *alpha,
                                     const float *a, int lda, long long strideA,
                                     const float *b, int ldb, long long strideB,
                                     const float *beta, float *c, int ldc,
                                     long long strideC, int batch) {
  if (handle != &handleToken)
    return 1;
  record("cublasSgemmStridedBatched", m, n, k, batch);
  if (batch < 0)
    return 7;
  for (int i = 0; i < batch; ++i) {
    int st =
        gemm(opA, opB, m, n, k, *alpha, a + i * strideA, lda, b + i * strideB,
             ldb, *beta, c + i * strideC, ldc, R_32F, R_32F);
    if (st)
      return st;
  }
  return 0;
}

static int exTypes(int aType, int bType, int cType, int compute) {
  return aType == bType &&
         (aType == R_32F || aType == R_16F || aType == R_16BF) &&
         (cType == R_32F || (cType == aType && aType != R_32F)) &&
         compute == COMPUTE_32F;
}

EXPORT int cublasGemmEx(void *handle, int opA, int opB, int m, int n, int k,
                        const void *alpha, const void *a, int aType, int lda,
                        const void *b, int bType, int ldb, const void *beta,
                        void *c, int cType, int ldc, int compute, int algo) {
  (void)algo;
  if (handle != &handleToken)
    return 1;
  record("cublasGemmEx", m, n, k, 1);
  if (!exTypes(aType, bType, cType, compute))
    return 7;
  return gemm(opA, opB, m, n, k, *(const float *)alpha, a, lda, b, ldb,
              *(const float *)beta, c, ldc, aType, cType);
}

EXPORT int cublasGemmStridedBatchedEx(
    void *handle, int opA, int opB, int m, int n, int k, const void *alpha,
    const void *a, int aType, int lda, long long strideA, const void *b,
    int bType, int ldb, long long strideB, const void *beta, void *c,
    int cType, int ldc, long long strideC, int batch, int compute, int algo) {
  (void)algo;
  if (handle != &handleToken)
    return 1;
  record("cublasGemmStridedBatchedEx", m, n, k, batch);
  if (!exTypes(aType, bType, cType, compute) || batch < 0)
    return 7;
  size_t size = aType == R_32F ? 4 : 2, cSize = cType == R_32F ? 4 : 2;
  for (int i = 0; i < batch; ++i) {
    int st =
        gemm(opA, opB, m, n, k, *(const float *)alpha,
             (const char *)a + i * strideA * size, lda,
             (const char *)b + i * strideB * size, ldb, *(const float *)beta,
             (char *)c + i * strideC * cSize, ldc, aType, cType);
    if (st)
      return st;
  }
  return 0;
}
