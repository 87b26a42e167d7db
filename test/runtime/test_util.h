//===- test_util.h - Helpers shared by the runtime tests --------*- C++ -*-===//
//
// This file holds the small helpers every runtime test uses: checking a
// status's code and message keywords (so tests fail when the wrong error is
// reported, not just when none is), temporary directories, whole-file reads
// and writes for building corrupt inputs, and strided float tensors that the
// host-function tests pass as memref descriptors, with the pieces of their
// float64 references.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TEST_RUNTIME_TEST_UTIL_H
#define LOOM_TEST_RUNTIME_TEST_UTIL_H

#include "loom/runtime.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace loom::test {

/// Succeeds when `status` is an error with `code` whose message contains
/// every keyword; frees the status.
inline ::testing::AssertionResult
isError(loom_status_t status, loom_status_code_t code,
        std::initializer_list<const char *> keywords) {
  if (!status)
    return ::testing::AssertionFailure() << "expected an error, got ok";
  std::string message = loom_status_message(status);
  loom_status_code_t actual = loom_status_code(status);
  loom_status_free(status);
  if (actual != code)
    return ::testing::AssertionFailure()
           << "expected code " << loom_status_code_name(code) << ", got "
           << loom_status_code_name(actual) << ": " << message;
  for (const char *keyword : keywords)
    if (message.find(keyword) == std::string::npos)
      return ::testing::AssertionFailure()
             << "message lacks '" << keyword << "': " << message;
  return ::testing::AssertionSuccess() << message;
}

/// Succeeds when `status` is NULL; otherwise reports and frees it.
inline ::testing::AssertionResult isOk(loom_status_t status) {
  if (!status)
    return ::testing::AssertionSuccess();
  std::string message = loom_status_message(status);
  loom_status_free(status);
  return ::testing::AssertionFailure() << "unexpected error: " << message;
}

/// A fresh directory removed with its files at the end of the test.
class TempDir {
public:
  TempDir() {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base ? base : "/tmp") + "/loom-rt-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()))
      dir = buf.data();
  }
  ~TempDir() {
    if (!dir.empty())
      std::system(("rm -rf '" + dir + "'").c_str());
  }
  std::string path(const std::string &name) const { return dir + "/" + name; }

private:
  std::string dir;
};

inline std::vector<uint8_t> readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

inline void writeBytes(const std::string &path,
                       const std::vector<uint8_t> &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char *>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

inline void writeText(const std::string &path, const std::string &text) {
  writeBytes(path, std::vector<uint8_t>(text.begin(), text.end()));
}

/// A dense-or-strided float tensor over its own storage, which is NaN
/// wherever the view does not reach, so a host function that reads outside
/// the view shows up as NaN in its results.
struct StridedTensor {
  std::vector<float> storage;
  std::vector<int64_t> sizes, strides;
  int64_t offset = 0;

  /// Lays out `sizes` row-major with every stride stretched by `spread` (1:
  /// contiguous) and the innermost stride by `inner`, after `offset` unused
  /// elements.
  StridedTensor(std::vector<int64_t> sizesIn, int64_t inner, int64_t spread,
                int64_t offsetIn)
      : sizes(std::move(sizesIn)), offset(offsetIn) {
    strides.assign(sizes.size(), 0);
    int64_t stride = inner;
    int64_t extent = 1;
    for (size_t i = sizes.size(); i-- > 0;) {
      strides[i] = stride;
      extent += (std::max<int64_t>(sizes[i], 1) - 1) * stride;
      stride = stride * std::max<int64_t>(sizes[i], 1) + (spread - 1);
    }
    storage.assign(static_cast<size_t>(offset + extent), std::nanf(""));
  }

  /// Contiguous `sizes`, or, when `padded`, laid out with `inner`, `spread`
  /// and `offset` as the constructor does.
  static StridedTensor contiguousUnless(bool padded, std::vector<int64_t> sizes,
                                        int64_t inner, int64_t spread,
                                        int64_t offset) {
    return padded ? StridedTensor(std::move(sizes), inner, spread, offset)
                  : StridedTensor(std::move(sizes), 1, 1, 0);
  }

  float &at(std::initializer_list<int64_t> index) {
    int64_t pos = offset;
    size_t d = 0;
    for (int64_t i : index)
      pos += i * strides[d++];
    return storage[static_cast<size_t>(pos)];
  }

  /// The view as a memref descriptor of abi.h (`loom_memref_<N>d_t`), whose
  /// rank must be the tensor's.
  template <typename MemRef> MemRef memref() {
    MemRef m;
    m.allocated = m.aligned = storage.data();
    m.offset = offset;
    for (size_t i = 0; i < std::size(m.sizes); ++i) {
      m.sizes[i] = sizes[i];
      m.strides[i] = strides[i];
    }
    return m;
  }
  loom_memref_3d_t memref3() { return memref<loom_memref_3d_t>(); }
  loom_memref_4d_t memref4() { return memref<loom_memref_4d_t>(); }

  /// How many elements of the storage are not NaN: those a host function
  /// wrote, when it was given the view of a fresh tensor.
  size_t written() const {
    size_t n = 0;
    for (float x : storage)
      n += !std::isnan(x);
    return n;
  }
};

/// Replaces each score by exp(score - `max`) and returns their sum, so that
/// a score's softmax weight is its entry over the sum and the log-sum-exp is
/// `max` + log(sum). `max` is the largest score and finite.
inline double exponentiate(std::vector<double> &scores, double max) {
  double sum = 0;
  for (double &s : scores) {
    s = std::exp(s - max);
    sum += s;
  }
  return sum;
}

/// Compares each row out[i0, i1, i2, :] of the rank-4 `out` with the first
/// values of `reference(i0, i1, i2)`, to `tolerance` times the row's largest
/// reference magnitude (at least 1e-3, so that rows of zeros compare
/// absolutely); `checkRow(i0, i1, i2, ref)` may check more of each row and
/// stops the comparison with a failure. Then checks that every element of
/// the view and nothing outside it was written.
template <typename Reference, typename CheckRow>
::testing::AssertionResult
matchRows(StridedTensor &out, const Reference &reference, double tolerance,
          const CheckRow &checkRow) {
  for (int64_t i0 = 0; i0 < out.sizes[0]; ++i0)
    for (int64_t i1 = 0; i1 < out.sizes[1]; ++i1)
      for (int64_t i2 = 0; i2 < out.sizes[2]; ++i2) {
        std::vector<double> ref = reference(i0, i1, i2);
        double magnitude = 1e-3;
        for (int64_t d = 0; d < out.sizes[3]; ++d)
          magnitude = std::max(magnitude, std::abs(ref[d]));
        for (int64_t d = 0; d < out.sizes[3]; ++d) {
          float got = out.at({i0, i1, i2, d});
          if (!(std::abs(got - ref[d]) <= tolerance * magnitude))
            return ::testing::AssertionFailure()
                   << "out[" << i0 << "," << i1 << "," << i2 << "," << d
                   << "] = " << got << ", reference " << ref[d];
        }
        if (::testing::AssertionResult more = checkRow(i0, i1, i2, ref); !more)
          return more;
      }
  size_t elements = static_cast<size_t>(out.sizes[0] * out.sizes[1] *
                                        out.sizes[2] * out.sizes[3]);
  if (out.written() != elements)
    return ::testing::AssertionFailure()
           << out.written() << " output elements written, not " << elements;
  return ::testing::AssertionSuccess();
}

/// matchRows with nothing more to check of a row.
template <typename Reference>
::testing::AssertionResult
matchRows(StridedTensor &out, const Reference &reference, double tolerance) {
  return matchRows(out, reference, tolerance,
                   [](int64_t, int64_t, int64_t, const std::vector<double> &) {
                     return ::testing::AssertionSuccess();
                   });
}

} // namespace loom::test

#endif // LOOM_TEST_RUNTIME_TEST_UTIL_H
