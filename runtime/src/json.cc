//===- json.cc - A small strict JSON parser -------------------------------===//
//
// This file implements the recursive-descent JSON parser for safetensors
// headers. Headers come from untrusted files, so every branch reports where
// and why it refused instead of guessing.
//
//===----------------------------------------------------------------------===//

#include "json.h"

#include <cstdio>
#include <cstring>
#include <unordered_set>

using namespace loom;
using namespace loom::json;

/// Deep enough for any real header (which nests 3 levels), small enough that
/// a hostile file cannot exhaust the stack.
static constexpr int kMaxDepth = 64;

const char *json::kindName(Kind kind) {
  switch (kind) {
  case Kind::Null:
    return "null";
  case Kind::Bool:
    return "boolean";
  case Kind::Number:
    return "number";
  case Kind::String:
    return "string";
  case Kind::Array:
    return "array";
  case Kind::Object:
    return "object";
  }
  return "value";
}

const Value *Value::find(const std::string &key) const {
  for (const auto &member : members)
    if (member.first == key)
      return &member.second;
  return nullptr;
}

bool Value::asUint64(uint64_t *out) const {
  if (kind != Kind::Number || text.empty() || text.size() > 19)
    return false;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v >> 63)
    return false;
  *out = v;
  return true;
}

namespace {

class Parser {
public:
  Parser(const char *data, size_t size)
      : p(data), begin(data), end(data + size) {}

  bool parseDocument(Value *out) {
    skipSpace();
    if (!parseValue(out, 0))
      return false;
    skipSpace();
    if (p != end)
      return fail("unexpected trailing characters");
    return true;
  }

  std::string error;

private:
  const char *p;
  const char *begin;
  const char *end;

  bool fail(const char *message) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), " at byte %zu",
                  static_cast<size_t>(p - begin));
    error = std::string(message) + buf;
    return false;
  }

  void skipSpace() {
    while (p != end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
      ++p;
  }

  bool literal(const char *word) {
    size_t n = std::strlen(word);
    if (static_cast<size_t>(end - p) < n || std::memcmp(p, word, n) != 0)
      return fail("invalid literal");
    p += n;
    return true;
  }

  bool parseValue(Value *out, int depth) {
    if (depth > kMaxDepth)
      return fail("nesting too deep");
    if (p == end)
      return fail("unexpected end of input");
    switch (*p) {
    case '{':
      return parseObject(out, depth);
    case '[':
      return parseArray(out, depth);
    case '"':
      out->kind = Kind::String;
      return parseString(&out->text);
    case 't':
      out->kind = Kind::Bool;
      out->boolean = true;
      return literal("true");
    case 'f':
      out->kind = Kind::Bool;
      out->boolean = false;
      return literal("false");
    case 'n':
      out->kind = Kind::Null;
      return literal("null");
    default:
      if (*p == '-' || (*p >= '0' && *p <= '9'))
        return parseNumber(out);
      return fail("unexpected character");
    }
  }

  static bool isDigit(char c) { return c >= '0' && c <= '9'; }

  bool parseNumber(Value *out) {
    const char *start = p;
    if (*p == '-')
      ++p;
    if (p == end || !isDigit(*p))
      return fail("invalid number");
    if (*p == '0') {
      ++p;
      if (p != end && isDigit(*p))
        return fail("leading zero in number");
    } else {
      while (p != end && isDigit(*p))
        ++p;
    }
    if (p != end && *p == '.') {
      ++p;
      if (p == end || !isDigit(*p))
        return fail("invalid fraction in number");
      while (p != end && isDigit(*p))
        ++p;
    }
    if (p != end && (*p == 'e' || *p == 'E')) {
      ++p;
      if (p != end && (*p == '+' || *p == '-'))
        ++p;
      if (p == end || !isDigit(*p))
        return fail("invalid exponent in number");
      while (p != end && isDigit(*p))
        ++p;
    }
    out->kind = Kind::Number;
    out->text.assign(start, p);
    return true;
  }

  int hexDigit(char c) {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  }

  bool parseHex4(uint32_t *out) {
    if (end - p < 4)
      return fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      int d = hexDigit(p[i]);
      if (d < 0)
        return fail("invalid \\u escape");
      v = v * 16 + static_cast<uint32_t>(d);
    }
    p += 4;
    *out = v;
    return true;
  }

  static void appendUtf8(std::string *s, uint32_t cp) {
    if (cp < 0x80) {
      s->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      s->push_back(static_cast<char>(0xc0 | (cp >> 6)));
      s->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      s->push_back(static_cast<char>(0xe0 | (cp >> 12)));
      s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      s->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      s->push_back(static_cast<char>(0xf0 | (cp >> 18)));
      s->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      s->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  /// Checks one UTF-8 sequence starting at p (a byte >= 0x80) and copies it.
  bool copyUtf8(std::string *out) {
    unsigned char c = static_cast<unsigned char>(*p);
    int extra;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      extra = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      extra = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return fail("invalid UTF-8 in string");
    }
    if (end - p <= extra)
      return fail("truncated UTF-8 in string");
    for (int i = 1; i <= extra; ++i) {
      unsigned char cc = static_cast<unsigned char>(p[i]);
      if ((cc & 0xc0) != 0x80)
        return fail("invalid UTF-8 in string");
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are invalid.
    if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
      return fail("invalid UTF-8 in string");
    out->append(p, static_cast<size_t>(extra + 1));
    p += extra + 1;
    return true;
  }

  bool parseString(std::string *out) {
    ++p; // The opening quote.
    out->clear();
    while (true) {
      if (p == end)
        return fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(*p);
      if (c == '"') {
        ++p;
        return true;
      }
      if (c < 0x20)
        return fail("control character in string");
      if (c >= 0x80) {
        if (!copyUtf8(out))
          return false;
        continue;
      }
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        ++p;
        continue;
      }
      ++p;
      if (p == end)
        return fail("unterminated escape");
      char e = *p++;
      switch (e) {
      case '"':
      case '\\':
      case '/':
        out->push_back(e);
        break;
      case 'b':
        out->push_back('\b');
        break;
      case 'f':
        out->push_back('\f');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 'r':
        out->push_back('\r');
        break;
      case 't':
        out->push_back('\t');
        break;
      case 'u': {
        uint32_t cp;
        if (!parseHex4(&cp))
          return false;
        if (cp >= 0xdc00 && cp <= 0xdfff)
          return fail("unpaired low surrogate in \\u escape");
        if (cp >= 0xd800 && cp <= 0xdbff) {
          uint32_t low;
          if (end - p < 2 || p[0] != '\\' || p[1] != 'u')
            return fail("unpaired high surrogate in \\u escape");
          p += 2;
          if (!parseHex4(&low))
            return false;
          if (low < 0xdc00 || low > 0xdfff)
            return fail("unpaired high surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        }
        appendUtf8(out, cp);
        break;
      }
      default:
        --p;
        return fail("invalid escape in string");
      }
    }
  }

  bool parseArray(Value *out, int depth) {
    ++p;
    out->kind = Kind::Array;
    skipSpace();
    if (p != end && *p == ']') {
      ++p;
      return true;
    }
    while (true) {
      skipSpace();
      out->elements.emplace_back();
      if (!parseValue(&out->elements.back(), depth + 1))
        return false;
      skipSpace();
      if (p == end)
        return fail("unterminated array");
      if (*p == ']') {
        ++p;
        return true;
      }
      if (*p != ',')
        return fail("expected ',' or ']' in array");
      ++p;
    }
  }

  bool parseObject(Value *out, int depth) {
    ++p;
    out->kind = Kind::Object;
    skipSpace();
    if (p != end && *p == '}') {
      ++p;
      return true;
    }
    // Headers may list thousands of tensors, so duplicates are found with a
    // set rather than by scanning the members.
    std::unordered_set<std::string> seen;
    while (true) {
      skipSpace();
      if (p == end || *p != '"')
        return fail("expected a string key in object");
      std::string key;
      const char *keyStart = p;
      if (!parseString(&key))
        return false;
      if (!seen.insert(key).second) {
        p = keyStart;
        return fail(("duplicate key \"" + key + "\"").c_str());
      }
      skipSpace();
      if (p == end || *p != ':')
        return fail("expected ':' after object key");
      ++p;
      skipSpace();
      out->members.emplace_back(std::move(key), Value());
      if (!parseValue(&out->members.back().second, depth + 1))
        return false;
      skipSpace();
      if (p == end)
        return fail("unterminated object");
      if (*p == '}') {
        ++p;
        return true;
      }
      if (*p != ',')
        return fail("expected ',' or '}' in object");
      ++p;
    }
  }
};

} // namespace

bool json::parse(const char *data, size_t size, Value *out,
                 std::string *error) {
  Parser parser(data, size);
  Value result;
  if (!parser.parseDocument(&result)) {
    *error = parser.error;
    return false;
  }
  *out = std::move(result);
  return true;
}
