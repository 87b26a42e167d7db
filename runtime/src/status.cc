//===- status.cc - Status objects of the Loom runtime ---------------------===//
//
// This file implements loom_status_t: a heap object with a code and a message,
// where NULL means success so that the common path allocates nothing.
//
//===----------------------------------------------------------------------===//

#include "internal.h"

#include <cstdarg>
#include <cstdio>
#include <new>

struct loom_status {
  loom_status_code_t code;
  std::string message;
};

/// Returned when allocating a status fails, so that an out-of-memory failure
/// is still reported as a failure. Never freed.
static loom_status oomStatus = {LOOM_STATUS_OUT_OF_MEMORY,
                                "out of memory while reporting an error"};

extern "C" {

loom_status_code_t loom_status_code(loom_status_t status) {
  return status ? status->code : LOOM_STATUS_OK;
}

const char *loom_status_message(loom_status_t status) {
  return status ? status->message.c_str() : "ok";
}

void loom_status_free(loom_status_t status) {
  if (status != &oomStatus)
    delete status;
}

loom_status_t loom_status_create(loom_status_code_t code, const char *message) {
  if (code == LOOM_STATUS_OK)
    return nullptr;
  auto *status = new (std::nothrow) loom_status;
  if (!status)
    return &oomStatus;
  status->code = code;
  status->message = message ? message : "";
  return status;
}

const char *loom_status_code_name(loom_status_code_t code) {
  switch (code) {
  case LOOM_STATUS_OK:
    return "OK";
  case LOOM_STATUS_INVALID_ARGUMENT:
    return "INVALID_ARGUMENT";
  case LOOM_STATUS_NOT_FOUND:
    return "NOT_FOUND";
  case LOOM_STATUS_IO_ERROR:
    return "IO_ERROR";
  case LOOM_STATUS_DATA_LOSS:
    return "DATA_LOSS";
  case LOOM_STATUS_INCOMPATIBLE:
    return "INCOMPATIBLE";
  case LOOM_STATUS_OUT_OF_MEMORY:
    return "OUT_OF_MEMORY";
  case LOOM_STATUS_UNIMPLEMENTED:
    return "UNIMPLEMENTED";
  case LOOM_STATUS_INTERNAL:
    return "INTERNAL";
  case LOOM_STATUS_MAX_ENUM:
    break;
  }
  return "UNKNOWN";
}

} // extern "C"

namespace loom {

static std::string vformat(const char *fmt, va_list args) {
  va_list copy;
  va_copy(copy, args);
  int n = std::vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  if (n < 0)
    return fmt;
  std::string result(static_cast<size_t>(n), '\0');
  std::vsnprintf(result.data(), result.size() + 1, fmt, args);
  return result;
}

std::string format(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  std::string result = vformat(fmt, args);
  va_end(args);
  return result;
}

loom_status_t makeStatus(loom_status_code_t code, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  std::string message = vformat(fmt, args);
  va_end(args);
  return loom_status_create(code, message.c_str());
}

loom_status_t prefixStatus(loom_status_t status, const std::string &prefix) {
  if (status && status != &oomStatus)
    status->message = prefix + status->message;
  return status;
}

} // namespace loom
