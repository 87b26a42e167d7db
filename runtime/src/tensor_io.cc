//===- tensor_io.cc - safetensors and .npy readers and writers ------------===//
//
// This file reads and writes tensors in the two formats users already have:
// safetensors for named weights and .npy for single arrays. Both readers treat
// the file as hostile: every length, offset and shape is checked against the
// file size before anything is allocated or copied, and every refusal names
// the file and the problem.
//
//===----------------------------------------------------------------------===//

#include "internal.h"
#include "json.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/stat.h>

using namespace loom;

namespace {

/// Where a reader gets bytes from: a file (so large weights are read straight
/// into their tensors) or a buffer already in memory.
class Source {
public:
  virtual ~Source() = default;
  virtual uint64_t size() const = 0;
  /// Copies [offset, offset + n) into dst; the range was checked by the
  /// caller.
  virtual loom_status_t read(uint64_t offset, size_t n, void *dst) = 0;
};

class MemorySource : public Source {
public:
  MemorySource(const void *data, size_t size)
      : data(static_cast<const uint8_t *>(data)), n(size) {}
  uint64_t size() const override { return n; }
  loom_status_t read(uint64_t offset, size_t count, void *dst) override {
    if (count)
      std::memcpy(dst, data + offset, count);
    return nullptr;
  }

private:
  const uint8_t *data;
  size_t n;
};

class FileSource : public Source {
public:
  ~FileSource() override {
    if (f)
      std::fclose(f);
  }
  loom_status_t open(const char *path) {
    this->path = path;
    f = std::fopen(path, "rb");
    if (!f)
      return makeStatus(errno == ENOENT ? LOOM_STATUS_NOT_FOUND
                                        : LOOM_STATUS_IO_ERROR,
                        "%s: cannot open: %s", path, std::strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
      return makeStatus(LOOM_STATUS_IO_ERROR, "%s: not a regular file", path);
    n = static_cast<uint64_t>(st.st_size);
    return nullptr;
  }
  uint64_t size() const override { return n; }
  loom_status_t read(uint64_t offset, size_t count, void *dst) override {
    if (count == 0)
      return nullptr;
    if (fseeko(f, static_cast<off_t>(offset), SEEK_SET) != 0 ||
        std::fread(dst, 1, count, f) != count)
      return makeStatus(
          LOOM_STATUS_IO_ERROR, "%s: read of %zu bytes at offset %llu failed",
          path.c_str(), count, static_cast<unsigned long long>(offset));
    return nullptr;
  }

private:
  FILE *f = nullptr;
  std::string path;
  uint64_t n = 0;
};

} // namespace

static uint64_t readLE64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}

//===----------------------------------------------------------------------===//
// safetensors
//===----------------------------------------------------------------------===//

/// Headers beyond this are refused as hostile (the reference implementation
/// uses the same limit).
static constexpr uint64_t kMaxSafetensorsHeader = 100u << 20;

static const char *safetensorsDtypeName(loom_dtype_t dtype) {
  switch (dtype) {
  case LOOM_DTYPE_F32:
    return "F32";
  case LOOM_DTYPE_F64:
    return "F64";
  case LOOM_DTYPE_I32:
    return "I32";
  case LOOM_DTYPE_I64:
    return "I64";
  case LOOM_DTYPE_BOOL:
    return "BOOL";
  case LOOM_DTYPE_F16:
    return "F16";
  case LOOM_DTYPE_BF16:
    return "BF16";
  default:
    return nullptr;
  }
}

static loom_dtype_t safetensorsDtype(const std::string &name) {
  for (int d = LOOM_DTYPE_F32; d <= LOOM_DTYPE_BF16; ++d) {
    const char *n = safetensorsDtypeName(static_cast<loom_dtype_t>(d));
    if (n && name == n)
      return static_cast<loom_dtype_t>(d);
  }
  return LOOM_DTYPE_INVALID;
}

namespace {
struct SafetensorsEntry {
  std::string name;
  loom_dtype_t dtype;
  int32_t rank;
  int64_t dims[LOOM_MAX_RANK];
  uint64_t begin, end;
};
} // namespace

/// Checks one tensor entry of the header.
static loom_status_t parseSafetensorsEntry(const char *file,
                                           const std::string &name,
                                           const json::Value &v,
                                           uint64_t dataSize,
                                           SafetensorsEntry *out) {
  std::string where = format("%s: tensor '%s': ", file, name.c_str());
  if (name.empty())
    return makeStatus(LOOM_STATUS_DATA_LOSS, "%s: a tensor has an empty name",
                      file);
  if (v.kind != json::Kind::Object)
    return makeStatus(LOOM_STATUS_DATA_LOSS, "%sexpected an object, got %s",
                      where.c_str(), json::kindName(v.kind));
  for (const auto &member : v.members)
    if (member.first != "dtype" && member.first != "shape" &&
        member.first != "data_offsets")
      return makeStatus(LOOM_STATUS_DATA_LOSS, "%sunknown key '%s'",
                        where.c_str(), member.first.c_str());
  const json::Value *dtype = v.find("dtype");
  const json::Value *shape = v.find("shape");
  const json::Value *offsets = v.find("data_offsets");
  if (!dtype || !shape || !offsets)
    return makeStatus(LOOM_STATUS_DATA_LOSS, "%smissing '%s'", where.c_str(),
                      !dtype   ? "dtype"
                      : !shape ? "shape"
                               : "data_offsets");
  if (dtype->kind != json::Kind::String)
    return makeStatus(LOOM_STATUS_DATA_LOSS, "%sdtype is not a string",
                      where.c_str());
  out->name = name;
  out->dtype = safetensorsDtype(dtype->text);
  if (out->dtype == LOOM_DTYPE_INVALID)
    return makeStatus(LOOM_STATUS_UNIMPLEMENTED,
                      "%sunsupported dtype '%s' (supported: F32, F64, I32, "
                      "I64, BOOL, F16, BF16)",
                      where.c_str(), dtype->text.c_str());
  if (shape->kind != json::Kind::Array)
    return makeStatus(LOOM_STATUS_DATA_LOSS, "%sshape is not an array",
                      where.c_str());
  if (shape->elements.size() > LOOM_MAX_RANK)
    return makeStatus(LOOM_STATUS_UNIMPLEMENTED,
                      "%srank %zu exceeds the maximum rank %d", where.c_str(),
                      shape->elements.size(), LOOM_MAX_RANK);
  out->rank = static_cast<int32_t>(shape->elements.size());
  for (int32_t i = 0; i < out->rank; ++i) {
    uint64_t d;
    if (!shape->elements[i].asUint64(&d))
      return makeStatus(LOOM_STATUS_DATA_LOSS,
                        "%sshape element %d is not a non-negative integer",
                        where.c_str(), i);
    out->dims[i] = static_cast<int64_t>(d);
  }
  int64_t elements;
  size_t bytes;
  if (loom_status_t s = checkShape(out->dtype, out->rank, out->dims,
                                   where + "shape", &elements, &bytes)) {
    loom_status_free(s);
    return makeStatus(LOOM_STATUS_DATA_LOSS, "%sshape %s is too large",
                      where.c_str(), formatDims(out->rank, out->dims).c_str());
  }
  if (offsets->kind != json::Kind::Array || offsets->elements.size() != 2 ||
      !offsets->elements[0].asUint64(&out->begin) ||
      !offsets->elements[1].asUint64(&out->end))
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%sdata_offsets is not [begin, end] of non-negative "
                      "integers",
                      where.c_str());
  if (out->begin > out->end || out->end > dataSize)
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%sdata_offsets [%llu, %llu] out of range of the %llu "
                      "data bytes",
                      where.c_str(),
                      static_cast<unsigned long long>(out->begin),
                      static_cast<unsigned long long>(out->end),
                      static_cast<unsigned long long>(dataSize));
  if (out->end - out->begin != bytes)
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%sdata_offsets span %llu bytes but %s%s needs %zu",
                      where.c_str(),
                      static_cast<unsigned long long>(out->end - out->begin),
                      loom_dtype_name(out->dtype),
                      formatDims(out->rank, out->dims).c_str(), bytes);
  return nullptr;
}

static loom_status_t readSafetensors(Source &src, const char *file,
                                     uint32_t flags,
                                     loom_tensor_map_t **outMap) {
  uint64_t fileSize = src.size();
  if (fileSize < 8)
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%s: truncated safetensors file: %llu bytes, the header "
                      "length alone needs 8",
                      file, static_cast<unsigned long long>(fileSize));
  uint8_t lenBytes[8];
  if (loom_status_t s = src.read(0, 8, lenBytes))
    return s;
  uint64_t headerLen = readLE64(lenBytes);
  if (headerLen > fileSize - 8)
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%s: truncated safetensors file: header length %llu "
                      "exceeds the %llu bytes after it",
                      file, static_cast<unsigned long long>(headerLen),
                      static_cast<unsigned long long>(fileSize - 8));
  if (headerLen > kMaxSafetensorsHeader)
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%s: safetensors header length %llu exceeds the limit "
                      "of %llu bytes",
                      file, static_cast<unsigned long long>(headerLen),
                      static_cast<unsigned long long>(kMaxSafetensorsHeader));
  std::string header(static_cast<size_t>(headerLen), '\0');
  if (loom_status_t s = src.read(8, header.size(), header.data()))
    return s;
  json::Value root;
  std::string error;
  if (!json::parse(header.data(), header.size(), &root, &error))
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%s: invalid JSON in safetensors header: %s", file,
                      error.c_str());
  if (root.kind != json::Kind::Object)
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%s: safetensors header is a JSON %s, not an object",
                      file, json::kindName(root.kind));

  uint64_t dataStart = 8 + headerLen;
  uint64_t dataSize = fileSize - dataStart;
  std::vector<SafetensorsEntry> entries;
  entries.reserve(root.members.size());
  for (const auto &member : root.members) {
    if (member.first == "__metadata__") {
      if (member.second.kind != json::Kind::Object)
        return makeStatus(LOOM_STATUS_DATA_LOSS,
                          "%s: __metadata__ is not an object", file);
      for (const auto &kv : member.second.members)
        if (kv.second.kind != json::Kind::String)
          return makeStatus(LOOM_STATUS_DATA_LOSS,
                            "%s: __metadata__ value '%s' is not a string", file,
                            kv.first.c_str());
      continue;
    }
    entries.emplace_back();
    if (loom_status_t s = parseSafetensorsEntry(
            file, member.first, member.second, dataSize, &entries.back()))
      return s;
  }

  // The byte buffer must be covered exactly: no overlaps, no holes, nothing
  // after the last tensor.
  std::vector<const SafetensorsEntry *> byOffset;
  for (const auto &e : entries)
    byOffset.push_back(&e);
  std::sort(byOffset.begin(), byOffset.end(),
            [](const SafetensorsEntry *a, const SafetensorsEntry *b) {
              return a->begin != b->begin ? a->begin < b->begin
                                          : a->end < b->end;
            });
  uint64_t cursor = 0;
  const SafetensorsEntry *previous = nullptr;
  for (const SafetensorsEntry *e : byOffset) {
    if (e->begin < cursor)
      return makeStatus(LOOM_STATUS_DATA_LOSS,
                        "%s: tensors '%s' and '%s' overlap in the data buffer",
                        file, previous->name.c_str(), e->name.c_str());
    if (e->begin > cursor)
      return makeStatus(LOOM_STATUS_DATA_LOSS,
                        "%s: hole in the data buffer at bytes [%llu, %llu) "
                        "before tensor '%s'",
                        file, static_cast<unsigned long long>(cursor),
                        static_cast<unsigned long long>(e->begin),
                        e->name.c_str());
    cursor = e->end;
    previous = e;
  }
  if (cursor != dataSize)
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%s: %llu trailing bytes after the last tensor", file,
                      static_cast<unsigned long long>(dataSize - cursor));

  loom_tensor_map_t *map;
  if (loom_status_t s = loom_tensor_map_create(&map))
    return s;
  for (const auto &e : entries) {
    loom_tensor_t *t;
    loom_status_t s = createUninitializedTensor(e.dtype, e.rank, e.dims, &t);
    if (!s)
      s = src.read(dataStart + e.begin, t->byteSize, t->data);
    bool convert = (flags & LOOM_IO_CONVERT_HALF_TO_F32) &&
                   (e.dtype == LOOM_DTYPE_F16 || e.dtype == LOOM_DTYPE_BF16);
    if (!s && convert) {
      loom_tensor_t *converted;
      s = loom_tensor_convert(t, LOOM_DTYPE_F32, &converted);
      if (!s) {
        loom_tensor_release(t);
        t = converted;
      }
    }
    if (!s)
      s = loom_tensor_map_insert(map, e.name.c_str(), t);
    loom_tensor_release(t);
    if (s) {
      loom_tensor_map_destroy(map);
      return s;
    }
  }
  *outMap = map;
  return nullptr;
}

static void appendJsonString(std::string *out, const std::string &s) {
  out->push_back('"');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      *out += format("\\u%04x", c);
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
  out->push_back('"');
}

extern "C" {

loom_status_t loom_safetensors_parse(const void *data, size_t size,
                                     const char *name, uint32_t flags,
                                     loom_tensor_map_t **out_map) {
  if ((!data && size) || !out_map)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "safetensors_parse: NULL argument");
  MemorySource src(data, size);
  return readSafetensors(src, name ? name : "<memory>", flags, out_map);
}

loom_status_t loom_safetensors_read(const char *path, uint32_t flags,
                                    loom_tensor_map_t **out_map) {
  if (!path || !out_map)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "safetensors_read: NULL argument");
  FileSource src;
  if (loom_status_t s = src.open(path))
    return s;
  return readSafetensors(src, path, flags, out_map);
}

loom_status_t loom_params_load(const char *path, uint32_t flags,
                               loom_tensor_map_t **out_map) {
  return loom_safetensors_read(path, flags, out_map);
}

loom_status_t loom_safetensors_write(const char *path,
                                     const loom_tensor_map_t *map) {
  if (!path || !map)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "safetensors_write: NULL argument");
  std::string header = "{";
  uint64_t offset = 0;
  for (size_t i = 0; i < map->names.size(); ++i) {
    const loom_tensor_t *t = map->tensors[i];
    if (map->names[i].empty() || map->names[i] == "__metadata__")
      return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                        "%s: tensor name '%s' cannot be written", path,
                        map->names[i].c_str());
    if (i)
      header += ",";
    appendJsonString(&header, map->names[i]);
    header += format(":{\"dtype\":\"%s\",\"shape\":[",
                     safetensorsDtypeName(t->dtype));
    for (int32_t d = 0; d < t->rank; ++d)
      header +=
          format(d ? ",%lld" : "%lld", static_cast<long long>(t->dims[d]));
    header += format("],\"data_offsets\":[%llu,%llu]}",
                     static_cast<unsigned long long>(offset),
                     static_cast<unsigned long long>(offset + t->byteSize));
    offset += t->byteSize;
  }
  header += "}";
  // Padding the header with spaces keeps the data 8-byte aligned in the file,
  // as the format recommends, so readers can map it.
  while (header.size() % 8)
    header.push_back(' ');
  std::vector<uint8_t> bytes(8 + header.size() + offset);
  uint64_t len = header.size();
  for (int b = 0; b < 8; ++b)
    bytes[b] = static_cast<uint8_t>(len >> (8 * b));
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  uint8_t *data = bytes.data() + 8 + header.size();
  for (const loom_tensor_t *t : map->tensors) {
    if (t->byteSize)
      std::memcpy(data, t->data, t->byteSize);
    data += t->byteSize;
  }
  return writeFile(path, bytes.data(), bytes.size());
}

} // extern "C"

//===----------------------------------------------------------------------===//
// .npy
//===----------------------------------------------------------------------===//

namespace {

/// Reads the Python dict literal of an .npy header:
///   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class NpyHeaderParser {
public:
  NpyHeaderParser(const std::string &text) : s(text) {}

  std::string descr;
  bool haveDescr = false, haveFortran = false, haveShape = false;
  bool fortran = false;
  std::vector<int64_t> shape;
  std::string error;

  bool parse() {
    skip();
    if (!eat('{'))
      return fail("expected '{'");
    while (true) {
      skip();
      if (eat('}'))
        break;
      std::string key;
      if (!parseString(&key))
        return false;
      skip();
      if (!eat(':'))
        return fail("expected ':'");
      skip();
      if (key == "descr") {
        if (haveDescr)
          return fail("duplicate key 'descr'");
        haveDescr = true;
        if (!parseString(&descr))
          return false;
      } else if (key == "fortran_order") {
        if (haveFortran)
          return fail("duplicate key 'fortran_order'");
        haveFortran = true;
        if (s.compare(pos, 4, "True") == 0) {
          fortran = true;
          pos += 4;
        } else if (s.compare(pos, 5, "False") == 0) {
          fortran = false;
          pos += 5;
        } else {
          return fail("fortran_order is not True or False");
        }
      } else if (key == "shape") {
        if (haveShape)
          return fail("duplicate key 'shape'");
        haveShape = true;
        if (!parseShape())
          return false;
      } else {
        return fail(("unknown key '" + key + "'").c_str());
      }
      skip();
      if (eat(','))
        continue;
      skip();
      if (eat('}'))
        break;
      return fail("expected ',' or '}'");
    }
    skip();
    if (pos != s.size())
      return fail("unexpected characters after the dict");
    if (!haveDescr || !haveFortran || !haveShape)
      return fail(!haveDescr     ? "missing key 'descr'"
                  : !haveFortran ? "missing key 'fortran_order'"
                                 : "missing key 'shape'");
    return true;
  }

private:
  const std::string &s;
  size_t pos = 0;

  bool fail(const char *message) {
    error = format("%s at header byte %zu", message, pos);
    return false;
  }
  void skip() {
    while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\n' ||
                              s[pos] == '\t' || s[pos] == '\r'))
      ++pos;
  }
  bool eat(char c) {
    if (pos < s.size() && s[pos] == c) {
      ++pos;
      return true;
    }
    return false;
  }
  bool parseString(std::string *out) {
    if (pos >= s.size() || (s[pos] != '\'' && s[pos] != '"'))
      return fail("expected a quoted string");
    char quote = s[pos++];
    size_t close = s.find(quote, pos);
    if (close == std::string::npos)
      return fail("unterminated string");
    *out = s.substr(pos, close - pos);
    if (out->find('\\') != std::string::npos)
      return fail("escapes are not supported in header strings");
    pos = close + 1;
    return true;
  }
  bool parseShape() {
    if (!eat('('))
      return fail("shape is not a tuple");
    bool needComma = false;
    while (true) {
      skip();
      if (eat(')'))
        break;
      if (needComma)
        return fail("expected ',' or ')' in shape");
      size_t start = pos;
      uint64_t v = 0;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        if (v > (uint64_t(1) << 56))
          return fail("shape element too large");
        v = v * 10 + static_cast<uint64_t>(s[pos++] - '0');
      }
      if (pos == start)
        return fail("shape element is not a non-negative integer");
      // Python 2 wrote long integers with a suffix.
      if (pos < s.size() && s[pos] == 'L')
        ++pos;
      if (shape.size() == LOOM_MAX_RANK)
        return fail("shape rank exceeds the maximum rank");
      shape.push_back(static_cast<int64_t>(v));
      skip();
      needComma = !eat(',');
    }
    return true;
  }
};

} // namespace

static loom_dtype_t npyDtype(const std::string &descr, bool *bigEndian) {
  *bigEndian = false;
  if (descr.size() != 3)
    return LOOM_DTYPE_INVALID;
  char order = descr[0];
  std::string kind = descr.substr(1);
  if (order == '>' && kind != "b1") {
    *bigEndian = true;
    return LOOM_DTYPE_INVALID;
  }
  if (order != '<' && order != '|' && order != '=')
    return LOOM_DTYPE_INVALID;
  if (kind == "f4")
    return LOOM_DTYPE_F32;
  if (kind == "f8")
    return LOOM_DTYPE_F64;
  if (kind == "i4")
    return LOOM_DTYPE_I32;
  if (kind == "i8")
    return LOOM_DTYPE_I64;
  if (kind == "b1")
    return LOOM_DTYPE_BOOL;
  if (kind == "f2")
    return LOOM_DTYPE_F16;
  return LOOM_DTYPE_INVALID;
}

static loom_status_t readNpy(Source &src, const char *file,
                             loom_tensor_t **outTensor) {
  uint64_t fileSize = src.size();
  static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  uint8_t prefix[12] = {};
  size_t prefixRead = static_cast<size_t>(std::min<uint64_t>(fileSize, 12));
  if (loom_status_t s = src.read(0, prefixRead, prefix))
    return s;
  if (fileSize < 10 || std::memcmp(prefix, magic, 6) != 0)
    return makeStatus(
        fileSize < 10 && fileSize > 0 &&
                std::memcmp(prefix, magic, std::min<size_t>(prefixRead, 6)) == 0
            ? LOOM_STATUS_DATA_LOSS
            : LOOM_STATUS_INVALID_ARGUMENT,
        "%s: not an .npy file (bad magic or truncated)", file);
  uint8_t major = prefix[6];
  uint64_t headerLen, headerStart;
  if (major == 1) {
    headerLen = prefix[8] | (uint64_t(prefix[9]) << 8);
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    if (fileSize < 12)
      return makeStatus(LOOM_STATUS_DATA_LOSS,
                        "%s: truncated .npy file: no room for the header "
                        "length",
                        file);
    headerLen = prefix[8] | (uint64_t(prefix[9]) << 8) |
                (uint64_t(prefix[10]) << 16) | (uint64_t(prefix[11]) << 24);
    headerStart = 12;
  } else {
    return makeStatus(LOOM_STATUS_UNIMPLEMENTED,
                      "%s: unsupported .npy format version %u.%u", file, major,
                      prefix[7]);
  }
  if (headerLen > fileSize - headerStart)
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%s: truncated .npy file: header length %llu exceeds "
                      "the %llu bytes after it",
                      file, static_cast<unsigned long long>(headerLen),
                      static_cast<unsigned long long>(fileSize - headerStart));
  std::string header(static_cast<size_t>(headerLen), '\0');
  if (loom_status_t s = src.read(headerStart, header.size(), header.data()))
    return s;
  NpyHeaderParser parser(header);
  if (!parser.parse())
    return makeStatus(LOOM_STATUS_DATA_LOSS, "%s: invalid .npy header: %s",
                      file, parser.error.c_str());
  if (parser.fortran)
    return makeStatus(LOOM_STATUS_UNIMPLEMENTED,
                      "%s: fortran_order arrays are not supported; save the "
                      "array in C order (numpy.ascontiguousarray)",
                      file);
  bool bigEndian;
  loom_dtype_t dtype = npyDtype(parser.descr, &bigEndian);
  if (dtype == LOOM_DTYPE_INVALID)
    return makeStatus(LOOM_STATUS_UNIMPLEMENTED,
                      bigEndian ? "%s: big-endian dtype '%s' is not supported"
                                : "%s: unsupported dtype '%s' (supported: "
                                  "<f4, <f8, <i4, <i8, |b1, <f2)",
                      file, parser.descr.c_str());
  int32_t rank = static_cast<int32_t>(parser.shape.size());
  int64_t elements;
  size_t bytes;
  if (loom_status_t s =
          checkShape(dtype, rank, parser.shape.data(),
                     std::string(file) + ": shape", &elements, &bytes)) {
    loom_status_free(s);
    return makeStatus(LOOM_STATUS_DATA_LOSS, "%s: shape %s is too large", file,
                      formatDims(rank, parser.shape.data()).c_str());
  }
  uint64_t dataStart = headerStart + headerLen;
  uint64_t available = fileSize - dataStart;
  if (available != bytes)
    return makeStatus(LOOM_STATUS_DATA_LOSS,
                      "%s: %s .npy data: %s%s needs %zu bytes, the file has "
                      "%llu",
                      file, available < bytes ? "truncated" : "oversized",
                      loom_dtype_name(dtype),
                      formatDims(rank, parser.shape.data()).c_str(), bytes,
                      static_cast<unsigned long long>(available));
  loom_tensor_t *t;
  if (loom_status_t s =
          createUninitializedTensor(dtype, rank, parser.shape.data(), &t))
    return s;
  if (loom_status_t s = src.read(dataStart, bytes, t->data)) {
    loom_tensor_release(t);
    return s;
  }
  *outTensor = t;
  return nullptr;
}

extern "C" {

loom_status_t loom_npy_parse(const void *data, size_t size, const char *name,
                             loom_tensor_t **out_tensor) {
  if ((!data && size) || !out_tensor)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT, "npy_parse: NULL argument");
  MemorySource src(data, size);
  return readNpy(src, name ? name : "<memory>", out_tensor);
}

loom_status_t loom_npy_read(const char *path, loom_tensor_t **out_tensor) {
  if (!path || !out_tensor)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT, "npy_read: NULL argument");
  FileSource src;
  if (loom_status_t s = src.open(path))
    return s;
  return readNpy(src, path, out_tensor);
}

loom_status_t loom_npy_write(const char *path, const loom_tensor_t *tensor) {
  if (!path || !tensor)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT, "npy_write: NULL argument");
  const char *descr = nullptr;
  switch (tensor->dtype) {
  case LOOM_DTYPE_F32:
    descr = "<f4";
    break;
  case LOOM_DTYPE_F64:
    descr = "<f8";
    break;
  case LOOM_DTYPE_I32:
    descr = "<i4";
    break;
  case LOOM_DTYPE_I64:
    descr = "<i8";
    break;
  case LOOM_DTYPE_BOOL:
    descr = "|b1";
    break;
  case LOOM_DTYPE_F16:
    descr = "<f2";
    break;
  default:
    return makeStatus(LOOM_STATUS_UNIMPLEMENTED,
                      "%s: .npy has no %s dtype; convert to f32 first", path,
                      loom_dtype_name(tensor->dtype));
  }
  std::string shape = "(";
  for (int32_t i = 0; i < tensor->rank; ++i)
    shape += format("%lld,%s", static_cast<long long>(tensor->dims[i]),
                    i + 1 < tensor->rank ? " " : "");
  if (tensor->rank > 1)
    shape.pop_back(); // Only 1-tuples keep their trailing comma.
  shape += ")";
  std::string header = format("{'descr': '%s', 'fortran_order': False, "
                              "'shape': %s, }",
                              descr, shape.c_str());
  // numpy pads so that the data starts on a 64-byte boundary and the header
  // ends with a newline.
  size_t prefix = 10;
  size_t total = prefix + header.size() + 1;
  if (total + (64 - total % 64) % 64 - prefix > 0xffff)
    prefix = 12;
  total = prefix + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::vector<uint8_t> bytes(prefix + header.size() + tensor->byteSize);
  static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  std::memcpy(bytes.data(), magic, 6);
  bytes[6] = prefix == 10 ? 1 : 2;
  bytes[7] = 0;
  uint64_t len = header.size();
  for (size_t b = 0; b < prefix - 8; ++b)
    bytes[8 + b] = static_cast<uint8_t>(len >> (8 * b));
  std::memcpy(bytes.data() + prefix, header.data(), header.size());
  if (tensor->byteSize)
    std::memcpy(bytes.data() + prefix + header.size(), tensor->data,
                tensor->byteSize);
  return writeFile(path, bytes.data(), bytes.size());
}

} // extern "C"
