/*===- mock_libcublas.c - cuBLAS on host memory, for tests ----------------===*
 *
 * This file is a stand-in for libcublas.so that tests load through
 * LOOM_CUBLAS together with mock_libcuda.c (whose device pointers are host
 * pointers). It implements the three functions the runtime calls with
 * cuBLAS's column-major semantics, in double precision:
 *   C = alpha op(A) op(B) + beta C   (m x n, op(A) m x k, op(B) k x n)
 * so that the runtime's translation of row-major products into cuBLAS
 * calls (operand order, transposes, leading dimensions, batch strides) is
 * checked by the numbers it produces. Invalid arguments give status 7
 * (CUBLAS_STATUS_INVALID_VALUE), as cuBLAS does.
 *
 *===----------------------------------------------------------------------===*/

#include <stddef.h>
#include <stdlib.h>

#define EXPORT __attribute__((visibility("default")))

static int handleToken;

EXPORT int cublasCreate_v2(void **handle) {
  *handle = &handleToken;
  return 0;
}

/* Element (i, j) of op(X), X stored column-major with leading dimension ld. */
static float at(const float *x, int op, int ld, int i, int j) {
  return op ? x[j + (size_t)i * ld] : x[i + (size_t)j * ld];
}

static int gemm(int opA, int opB, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta,
                float *c, int ldc) {
  if ((opA != 0 && opA != 1) || (opB != 0 && opB != 1) || m < 0 || n < 0 ||
      k < 0 || lda < (opA ? k : m) || lda < 1 || ldb < (opB ? n : k) ||
      ldb < 1 || ldc < m || ldc < 1)
    return 7;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      double sum = 0;
      for (int p = 0; p < k; ++p)
        sum += (double)at(a, opA, lda, i, p) * at(b, opB, ldb, p, j);
      float *out = &c[i + (size_t)j * ldc];
      *out = (float)(alpha * sum + (beta != 0.0f ? beta * *out : 0.0));
    }
  return 0;
}

EXPORT int cublasSgemm_v2(void *handle, int opA, int opB, int m, int n, int k,
                          const float *alpha, const float *a, int lda,
                          const float *b, int ldb, const float *beta, float *c,
                          int ldc) {
  if (handle != &handleToken)
    return 1;
  return gemm(opA, opB, m, n, k, *alpha, a, lda, b, ldb, *beta, c, ldc);
}

EXPORT int cublasSgemmStridedBatched(void *handle, int opA, int opB, int m,
                                     int n, int k, const float *alpha,
                                     const float *a, int lda, long long strideA,
                                     const float *b, int ldb, long long strideB,
                                     const float *beta, float *c, int ldc,
                                     long long strideC, int batch) {
  if (handle != &handleToken)
    return 1;
  if (batch < 0)
    return 7;
  for (int i = 0; i < batch; ++i) {
    int st = gemm(opA, opB, m, n, k, *alpha, a + i * strideA, lda,
                  b + i * strideB, ldb, *beta, c + i * strideC, ldc);
    if (st)
      return st;
  }
  return 0;
}
