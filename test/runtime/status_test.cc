//===- status_test.cc - Tests of status objects ---------------------------===//
//
// This file tests loom_status_t: NULL is success, created statuses carry
// their code and message, and freeing NULL is allowed.
//
//===----------------------------------------------------------------------===//

#include "test_util.h"

#include "loom/runtime.hpp"

namespace {

TEST(Status, NullIsOk) {
  EXPECT_EQ(loom_status_code(nullptr), LOOM_STATUS_OK);
  EXPECT_STREQ(loom_status_message(nullptr), "ok");
  loom_status_free(nullptr);
}

TEST(Status, CarriesCodeAndMessage) {
  loom_status_t s = loom_status_create(LOOM_STATUS_DATA_LOSS, "bad bytes");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(loom_status_code(s), LOOM_STATUS_DATA_LOSS);
  EXPECT_STREQ(loom_status_message(s), "bad bytes");
  EXPECT_STREQ(loom_status_code_name(loom_status_code(s)), "DATA_LOSS");
  loom_status_free(s);
}

TEST(Status, OkCodeCreatesNothing) {
  EXPECT_EQ(loom_status_create(LOOM_STATUS_OK, "fine"), nullptr);
}

TEST(Status, NullMessageIsEmpty) {
  loom_status_t s = loom_status_create(LOOM_STATUS_INTERNAL, nullptr);
  EXPECT_STREQ(loom_status_message(s), "");
  loom_status_free(s);
}

TEST(Status, CxxWrapperOwnsStatus) {
  loom::Status ok;
  EXPECT_TRUE(ok.ok());
  loom::Status err = loom_status_create(LOOM_STATUS_NOT_FOUND, "missing x");
  EXPECT_FALSE(err.ok());
  EXPECT_EQ(err.code(), LOOM_STATUS_NOT_FOUND);
  EXPECT_EQ(err.message(), "missing x");
  loom::Status moved = std::move(err);
  EXPECT_TRUE(err.ok());
  EXPECT_EQ(moved.message(), "missing x");
}

} // namespace
