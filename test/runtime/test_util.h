//===- test_util.h - Helpers shared by the runtime tests --------*- C++ -*-===//
//
// This file holds the small helpers every runtime test uses: checking a
// status's code and message keywords (so tests fail when the wrong error is
// reported, not just when none is), temporary directories, and whole-file
// reads and writes for building corrupt inputs.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TEST_RUNTIME_TEST_UTIL_H
#define LOOM_TEST_RUNTIME_TEST_UTIL_H

#include "loom/runtime.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
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

} // namespace loom::test

#endif // LOOM_TEST_RUNTIME_TEST_UTIL_H
