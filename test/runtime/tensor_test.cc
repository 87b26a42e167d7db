//===- tensor_test.cc - Tests of tensors and tensor maps ------------------===//
//
// This file tests tensor creation (alignment, zeroing, shape checks), borrowed
// tensors, reference counting through maps, dtype conversion including the
// half formats, and the insertion-ordered tensor map.
//
//===----------------------------------------------------------------------===//

#include "test_util.h"

#include "loom/runtime.hpp"

#include <cmath>
#include <cstring>
#include <limits>

using loom::test::isError;
using loom::test::isOk;

namespace {

TEST(Tensor, CreateIsZeroedAndAligned) {
  int64_t dims[] = {3, 5};
  loom_tensor_t *t = nullptr;
  ASSERT_TRUE(isOk(loom_tensor_create(LOOM_DTYPE_F32, 2, dims, &t)));
  EXPECT_EQ(loom_tensor_rank(t), 2);
  EXPECT_EQ(loom_tensor_dims(t)[1], 5);
  EXPECT_EQ(loom_tensor_num_elements(t), 15);
  EXPECT_EQ(loom_tensor_byte_size(t), 60u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(loom_tensor_data(t)) % 64, 0u);
  const float *data = static_cast<const float *>(loom_tensor_data(t));
  for (int i = 0; i < 15; ++i)
    EXPECT_EQ(data[i], 0.0f);
  loom_tensor_release(t);
}

TEST(Tensor, RankZeroAndEmpty) {
  loom_tensor_t *scalar = nullptr, *empty = nullptr;
  ASSERT_TRUE(isOk(loom_tensor_create(LOOM_DTYPE_I64, 0, nullptr, &scalar)));
  EXPECT_EQ(loom_tensor_num_elements(scalar), 1);
  int64_t dims[] = {0, 7};
  ASSERT_TRUE(isOk(loom_tensor_create(LOOM_DTYPE_F32, 2, dims, &empty)));
  EXPECT_EQ(loom_tensor_byte_size(empty), 0u);
  EXPECT_NE(loom_tensor_data(empty), nullptr);
  loom_tensor_release(scalar);
  loom_tensor_release(empty);
}

TEST(Tensor, RejectsBadShapes) {
  loom_tensor_t *t = nullptr;
  int64_t neg[] = {2, -1};
  EXPECT_TRUE(isError(loom_tensor_create(LOOM_DTYPE_F32, 2, neg, &t),
                      LOOM_STATUS_INVALID_ARGUMENT, {"negative dim"}));
  int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  EXPECT_TRUE(isError(loom_tensor_create(LOOM_DTYPE_F32, 9, nine, &t),
                      LOOM_STATUS_INVALID_ARGUMENT, {"rank 9"}));
  int64_t huge[] = {int64_t(1) << 40, int64_t(1) << 40};
  EXPECT_TRUE(isError(loom_tensor_create(LOOM_DTYPE_F32, 2, huge, &t),
                      LOOM_STATUS_INVALID_ARGUMENT, {"too large"}));
  int64_t one[] = {1};
  EXPECT_TRUE(
      isError(loom_tensor_create(static_cast<loom_dtype_t>(42), 1, one, &t),
              LOOM_STATUS_INVALID_ARGUMENT, {"invalid dtype"}));
  EXPECT_EQ(t, nullptr);
}

TEST(Tensor, WrapBorrowsAndChecksSize) {
  float data[6] = {1, 2, 3, 4, 5, 6};
  int64_t dims[] = {2, 3};
  loom_tensor_t *t = nullptr;
  EXPECT_TRUE(isError(loom_tensor_wrap(LOOM_DTYPE_F32, 2, dims, data, 20, &t),
                      LOOM_STATUS_INVALID_ARGUMENT, {"20 bytes", "needs 24"}));
  ASSERT_TRUE(
      isOk(loom_tensor_wrap(LOOM_DTYPE_F32, 2, dims, data, sizeof(data), &t)));
  EXPECT_EQ(loom_tensor_data(t), data);
  loom_tensor_release(t);
  EXPECT_EQ(data[5], 6.0f);
}

TEST(Tensor, MapRetainsAndKeepsOrder) {
  loom_tensor_map_t *map = nullptr;
  ASSERT_TRUE(isOk(loom_tensor_map_create(&map)));
  int64_t dims[] = {2};
  loom_tensor_t *a = nullptr, *b = nullptr;
  ASSERT_TRUE(isOk(loom_tensor_create(LOOM_DTYPE_F32, 1, dims, &a)));
  ASSERT_TRUE(isOk(loom_tensor_create(LOOM_DTYPE_I32, 1, dims, &b)));
  ASSERT_TRUE(isOk(loom_tensor_map_insert(map, "zeta", a)));
  ASSERT_TRUE(isOk(loom_tensor_map_insert(map, "alpha", b)));
  EXPECT_TRUE(isError(loom_tensor_map_insert(map, "zeta", b),
                      LOOM_STATUS_INVALID_ARGUMENT, {"already", "zeta"}));
  loom_tensor_release(a);
  loom_tensor_release(b);
  EXPECT_EQ(loom_tensor_map_size(map), 2u);
  EXPECT_STREQ(loom_tensor_map_name_at(map, 0), "zeta");
  EXPECT_STREQ(loom_tensor_map_name_at(map, 1), "alpha");
  EXPECT_EQ(loom_tensor_map_name_at(map, 2), nullptr);
  EXPECT_EQ(loom_tensor_dtype(loom_tensor_map_find(map, "alpha")),
            LOOM_DTYPE_I32);
  EXPECT_EQ(loom_tensor_map_find(map, "beta"), nullptr);
  loom_tensor_map_destroy(map);
}

TEST(Tensor, HalfConversionsRoundTrip) {
  const float values[] = {
      0.0f,           -0.0f,
      1.0f,           -2.5f,
      65504.0f,       6.1035156e-05f,
      5.9604645e-08f, 0.333333f,
      1e6f,           std::numeric_limits<float>::infinity()};
  const int64_t n = sizeof(values) / sizeof(values[0]);
  int64_t dims[] = {n};
  loom_tensor_t *src = nullptr, *half = nullptr, *back = nullptr, *bf = nullptr,
                *bfBack = nullptr;
  ASSERT_TRUE(isOk(loom_tensor_wrap(LOOM_DTYPE_F32, 1, dims,
                                    const_cast<float *>(values), sizeof(values),
                                    &src)));
  ASSERT_TRUE(isOk(loom_tensor_convert(src, LOOM_DTYPE_F16, &half)));
  ASSERT_TRUE(isOk(loom_tensor_convert(half, LOOM_DTYPE_F32, &back)));
  ASSERT_TRUE(isOk(loom_tensor_convert(src, LOOM_DTYPE_BF16, &bf)));
  ASSERT_TRUE(isOk(loom_tensor_convert(bf, LOOM_DTYPE_F32, &bfBack)));
  const uint16_t *h = static_cast<const uint16_t *>(loom_tensor_data(half));
  EXPECT_EQ(h[2], 0x3c00); // 1.0
  EXPECT_EQ(h[3], 0xc100); // -2.5
  EXPECT_EQ(h[4], 0x7bff); // Largest finite half.
  EXPECT_EQ(h[5], 0x0400); // Smallest normal half.
  EXPECT_EQ(h[6], 0x0001); // Smallest subnormal half.
  EXPECT_EQ(h[8], 0x7c00); // Overflow to infinity.
  const float *r = static_cast<const float *>(loom_tensor_data(back));
  for (int i = 0; i < 8; ++i)
    EXPECT_NEAR(r[i], values[i], std::fabs(values[i]) * 1e-3) << i;
  EXPECT_TRUE(std::signbit(r[1]));
  EXPECT_TRUE(std::isinf(r[9]));
  const float *rb = static_cast<const float *>(loom_tensor_data(bfBack));
  for (int i = 0; i + 1 < n; ++i)
    EXPECT_NEAR(rb[i], values[i], std::fabs(values[i]) * 1e-2) << i;
  EXPECT_TRUE(std::isinf(rb[n - 1]));
  for (loom_tensor_t *t : {src, half, back, bf, bfBack})
    loom_tensor_release(t);
}

TEST(Tensor, ConvertIntegersAndRejectsNonsense) {
  int64_t values[] = {-3, 0, 7};
  int64_t dims[] = {3};
  loom_tensor_t *src = nullptr, *f = nullptr, *i32 = nullptr, *b = nullptr;
  ASSERT_TRUE(isOk(
      loom_tensor_wrap(LOOM_DTYPE_I64, 1, dims, values, sizeof(values), &src)));
  ASSERT_TRUE(isOk(loom_tensor_convert(src, LOOM_DTYPE_F64, &f)));
  ASSERT_TRUE(isOk(loom_tensor_convert(src, LOOM_DTYPE_I32, &i32)));
  EXPECT_EQ(static_cast<double *>(loom_tensor_data(f))[0], -3.0);
  EXPECT_EQ(static_cast<int32_t *>(loom_tensor_data(i32))[2], 7);
  EXPECT_TRUE(isError(loom_tensor_convert(f, LOOM_DTYPE_I32, &b),
                      LOOM_STATUS_INVALID_ARGUMENT, {"f64", "i32"}));
  for (loom_tensor_t *t : {src, f, i32})
    loom_tensor_release(t);
}

TEST(Tensor, DtypeNames) {
  EXPECT_STREQ(loom_dtype_name(LOOM_DTYPE_BF16), "bf16");
  EXPECT_EQ(loom_dtype_from_name("i64"), LOOM_DTYPE_I64);
  EXPECT_EQ(loom_dtype_from_name("f128"), LOOM_DTYPE_INVALID);
}

TEST(Tensor, CxxWrapper) {
  loom::Tensor t;
  ASSERT_TRUE(loom::Tensor::create(LOOM_DTYPE_F32, {2, 2}, &t).ok());
  t.data<float>()[3] = 4.0f;
  loom::Tensor copy = t;
  EXPECT_EQ(copy.data<float>()[3], 4.0f);
  EXPECT_EQ(copy.dims(), (std::vector<int64_t>{2, 2}));
  loom::TensorMap map;
  ASSERT_TRUE(map.insert("t", t).ok());
  EXPECT_EQ(map.find("t").get(), t.get());
  EXPECT_FALSE(map.find("u"));
}

} // namespace
