//===- AttentionReference.h - Float64 attention reference -------*- C++ -*-===//
//
// This file holds what the attention end-to-end tests check against: a
// float64 attention written from the formula (a naive softmax over the keys
// a mask leaves visible, with an optional score modifier and grouped heads),
// random and integer inputs, and an elementwise comparison with explicit
// tolerances that wants -inf exactly where the reference has it.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TEST_E2E_ATTENTIONREFERENCE_H
#define LOOM_TEST_E2E_ATTENTIONREFERENCE_H

#include "test/e2e/RuntimeGlue.h"

#include "loom/runtime.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <utility>
#include <vector>

namespace loom::e2e {

/// Whether key `j` is visible to query `i` of batch row `b` and head `h`.
using AttentionMaskFn =
    std::function<bool(int64_t b, int64_t h, int64_t i, int64_t j)>;
/// The score of (b, h, i, j) from its scaled dot product.
using AttentionScoreFn = std::function<double(int64_t b, int64_t h, int64_t i,
                                              int64_t j, double score)>;

/// Float64 attention: q [B, Hq, S, Dk], k [B, Hkv, T, Dk], v [B, Hkv, T, Dv];
/// query head h reads key/value head h / (Hq / Hkv). A query that sees no
/// key gets output 0 and log-sum-exp -inf. `out` [B, Hq, S, Dv] and `lse`
/// [B, Hq, S] are f32 tensors, as the kernels return them.
inline void referenceAttention(const Tensor &q, const Tensor &k,
                               const Tensor &v, double scale,
                               const AttentionMaskFn &mask,
                               const AttentionScoreFn &score, Tensor &out,
                               Tensor &lse) {
  int64_t nb = q.shape[0], hq = q.shape[1], s = q.shape[2], dk = q.shape[3];
  int64_t hkv = k.shape[1], t = k.shape[2], dv = v.shape[3];
  out.dtype = lse.dtype = LOOM_DTYPE_F32;
  out.shape = {nb, hq, s, dv};
  lse.shape = {nb, hq, s};
  out.data.assign(nb * hq * s * dv, 0.0);
  lse.data.assign(nb * hq * s, -std::numeric_limits<double>::infinity());
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t h = 0; h < hq; ++h) {
      int64_t g = h / (hq / hkv);
      for (int64_t i = 0; i < s; ++i) {
        std::vector<double> logits;
        std::vector<int64_t> keys;
        for (int64_t j = 0; j < t; ++j) {
          if (!mask(b, h, i, j))
            continue;
          double dot = 0;
          for (int64_t d = 0; d < dk; ++d)
            dot += q.data[((b * hq + h) * s + i) * dk + d] *
                   k.data[((b * hkv + g) * t + j) * dk + d];
          logits.push_back(score(b, h, i, j, scale * dot));
          keys.push_back(j);
        }
        if (keys.empty())
          continue;
        double top = *std::max_element(logits.begin(), logits.end());
        double sum = 0;
        for (double x : logits)
          sum += std::exp(x - top);
        double l = top + std::log(sum);
        lse.data[(b * hq + h) * s + i] = l;
        double *o = &out.data[((b * hq + h) * s + i) * dv];
        for (size_t n = 0; n < keys.size(); ++n) {
          double p = std::exp(logits[n] - l);
          for (int64_t d = 0; d < dv; ++d)
            o[d] += p * v.data[((b * hkv + g) * t + keys[n]) * dv + d];
        }
      }
    }
}

/// An f32 tensor of `shape` with standard normal values, rounded to float.
inline Tensor randomTensor(std::vector<int64_t> shape, std::mt19937 &rng) {
  Tensor t;
  t.dtype = LOOM_DTYPE_F32;
  t.shape = std::move(shape);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int64_t n = 0, e = t.getNumElements(); n < e; ++n)
    t.data.push_back(static_cast<float>(normal(rng)));
  return t;
}

/// An i32 vector holding `values`.
inline Tensor intTensor(const std::vector<int32_t> &values) {
  Tensor t;
  t.dtype = LOOM_DTYPE_I32;
  t.shape = {static_cast<int64_t>(values.size())};
  t.data.assign(values.begin(), values.end());
  return t;
}

/// Compares `got` with `want` elementwise: |got - want| <= atol + rtol |want|,
/// -inf exactly where the reference has it, and never NaN.
inline ::testing::AssertionResult near(const char *what, const Tensor &got,
                                       const Tensor &want, double atol,
                                       double rtol) {
  if (got.shape != want.shape)
    return ::testing::AssertionFailure() << what << ": shapes differ";
  for (size_t n = 0; n < want.data.size(); ++n) {
    double g = got.data[n], w = want.data[n];
    if (std::isinf(w) ? g != w
                      : !(std::fabs(g - w) <= atol + rtol * std::fabs(w)))
      return ::testing::AssertionFailure()
             << what << "[" << n << "] = " << g << ", want " << w;
  }
  return ::testing::AssertionSuccess();
}

/// Compares the outputs `got` (`out` and `lse`) of attention on `inputs`
/// (`q`, `k` and `v`) with referenceAttention, to |got - want| <= 2e-5 +
/// 2e-4 |want|: f32 kernels against float64.
inline ::testing::AssertionResult
matchesReference(const Tensors &got, const Tensors &inputs, double scale,
                 const AttentionMaskFn &mask, const AttentionScoreFn &score) {
  for (const char *name : {"q", "k", "v"})
    if (!inputs.count(name))
      return ::testing::AssertionFailure() << "no input '" << name << "'";
  for (const char *name : {"out", "lse"})
    if (!got.count(name))
      return ::testing::AssertionFailure() << "no output '" << name << "'";
  Tensor out, lse;
  referenceAttention(inputs.at("q"), inputs.at("k"), inputs.at("v"), scale,
                     mask, score, out, lse);
  ::testing::AssertionResult outNear =
      near("out", got.at("out"), out, 2e-5, 2e-4);
  ::testing::AssertionResult lseNear =
      near("lse", got.at("lse"), lse, 2e-5, 2e-4);
  if (outNear && lseNear)
    return ::testing::AssertionSuccess();
  ::testing::AssertionResult failure = ::testing::AssertionFailure();
  if (!outNear)
    failure << outNear.message();
  if (!lseNear)
    failure << (outNear ? "" : "; ") << lseNear.message();
  return failure;
}

} // namespace loom::e2e

#endif // LOOM_TEST_E2E_ATTENTIONREFERENCE_H
