//===- json.h - A small strict JSON parser ----------------------*- C++ -*-===//
//
// This file declares the JSON reader used for safetensors headers. It accepts
// exactly RFC 8259 (no comments, no trailing commas, no NaN), rejects
// duplicate object keys and nesting deeper than a fixed limit, and keeps
// object members in file order so tensors keep their order.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_SRC_JSON_H
#define LOOM_RUNTIME_SRC_JSON_H

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace loom {
namespace json {

enum class Kind { Null, Bool, Number, String, Array, Object };

/// A parsed JSON value. Numbers keep their text so integers of any size are
/// checked exactly instead of going through a double.
struct Value {
  Kind kind = Kind::Null;
  bool boolean = false;
  /// The string's decoded UTF-8 for strings, the literal text for numbers.
  std::string text;
  std::vector<Value> elements;
  std::vector<std::pair<std::string, Value>> members;

  /// The member named `key` of an object, or nullptr.
  const Value *find(const std::string &key) const;
  /// Whether this is a number that is an integer in [0, 2^63); stores it.
  bool asUint64(uint64_t *out) const;
};

/// Parses `size` bytes as one JSON value surrounded by optional whitespace.
/// On failure returns false and sets `error` to a message with the byte
/// offset.
bool parse(const char *data, size_t size, Value *out, std::string *error);

/// A short name of a kind for messages ("object", "string", ...).
const char *kindName(Kind kind);

} // namespace json
} // namespace loom

#endif // LOOM_RUNTIME_SRC_JSON_H
