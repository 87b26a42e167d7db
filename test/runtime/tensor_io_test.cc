//===- tensor_io_test.cc - Tests of safetensors and .npy I/O --------------===//
//
// This file tests the safetensors and .npy readers and writers: round trips
// of every dtype, files written the way other tools write them, and every
// refusal branch of the readers on truncated and malformed files, checking
// that the message names the file and the problem.
//
//===----------------------------------------------------------------------===//

#include "test_util.h"

#include <cstring>

using loom::test::isError;
using loom::test::isOk;
using loom::test::TempDir;
using loom::test::writeBytes;

namespace {

/// Builds a safetensors file from a header text and `dataSize` data bytes
/// (filled with a pattern).
std::vector<uint8_t> safetensorsFile(const std::string &header,
                                     size_t dataSize) {
  std::vector<uint8_t> bytes(8);
  uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  bytes.insert(bytes.end(), header.begin(), header.end());
  for (size_t i = 0; i < dataSize; ++i)
    bytes.push_back(static_cast<uint8_t>(i * 7 + 1));
  return bytes;
}

loom_status_t parseSafetensors(const std::string &header, size_t dataSize,
                               loom_tensor_map_t **map = nullptr) {
  std::vector<uint8_t> bytes = safetensorsFile(header, dataSize);
  loom_tensor_map_t *local = nullptr;
  loom_status_t s = loom_safetensors_parse(
      bytes.data(), bytes.size(), "w.safetensors", 0, map ? map : &local);
  loom_tensor_map_destroy(local);
  return s;
}

loom_tensor_t *filled(loom_dtype_t dtype, std::vector<int64_t> dims) {
  loom_tensor_t *t = nullptr;
  EXPECT_TRUE(isOk(loom_tensor_create(dtype, static_cast<int32_t>(dims.size()),
                                      dims.data(), &t)));
  auto *bytes = static_cast<uint8_t *>(loom_tensor_data(t));
  for (size_t i = 0; i < loom_tensor_byte_size(t); ++i)
    bytes[i] = dtype == LOOM_DTYPE_BOOL ? i % 2 : static_cast<uint8_t>(i * 13);
  return t;
}

bool sameTensor(const loom_tensor_t *a, const loom_tensor_t *b) {
  if (!a || !b || loom_tensor_dtype(a) != loom_tensor_dtype(b) ||
      loom_tensor_rank(a) != loom_tensor_rank(b) ||
      loom_tensor_byte_size(a) != loom_tensor_byte_size(b))
    return false;
  for (int32_t i = 0; i < loom_tensor_rank(a); ++i)
    if (loom_tensor_dims(a)[i] != loom_tensor_dims(b)[i])
      return false;
  return std::memcmp(loom_tensor_data(a), loom_tensor_data(b),
                     loom_tensor_byte_size(a)) == 0;
}

//===----------------------------------------------------------------------===//
// safetensors
//===----------------------------------------------------------------------===//

TEST(Safetensors, RoundTripsEveryDtype) {
  TempDir dir;
  loom_tensor_map_t *map = nullptr;
  ASSERT_TRUE(isOk(loom_tensor_map_create(&map)));
  struct Case {
    const char *name;
    loom_dtype_t dtype;
    std::vector<int64_t> dims;
  } cases[] = {{"layers.0.w", LOOM_DTYPE_F32, {3, 4}},
               {"f64", LOOM_DTYPE_F64, {5}},
               {"ids", LOOM_DTYPE_I32, {2, 1, 3}},
               {"i64 scalar", LOOM_DTYPE_I64, {}},
               {"mask", LOOM_DTYPE_BOOL, {7}},
               {"half", LOOM_DTYPE_F16, {2, 2}},
               {"brain", LOOM_DTYPE_BF16, {3}},
               {"empty", LOOM_DTYPE_F32, {0, 4}},
               {"quote\"and\\slash\xc3\xa9", LOOM_DTYPE_F32, {1}}};
  for (const Case &c : cases) {
    loom_tensor_t *t = filled(c.dtype, c.dims);
    ASSERT_TRUE(isOk(loom_tensor_map_insert(map, c.name, t)));
    loom_tensor_release(t);
  }
  std::string path = dir.path("all.safetensors");
  ASSERT_TRUE(isOk(loom_safetensors_write(path.c_str(), map)));
  loom_tensor_map_t *back = nullptr;
  ASSERT_TRUE(isOk(loom_safetensors_read(path.c_str(), 0, &back)));
  ASSERT_EQ(loom_tensor_map_size(back), loom_tensor_map_size(map));
  for (size_t i = 0; i < loom_tensor_map_size(map); ++i) {
    EXPECT_STREQ(loom_tensor_map_name_at(back, i),
                 loom_tensor_map_name_at(map, i));
    EXPECT_TRUE(sameTensor(loom_tensor_map_tensor_at(back, i),
                           loom_tensor_map_tensor_at(map, i)))
        << loom_tensor_map_name_at(map, i);
  }
  // The data section starts 8-byte aligned.
  auto bytes = loom::test::readBytes(path);
  uint64_t headerLen;
  std::memcpy(&headerLen, bytes.data(), 8);
  EXPECT_EQ(headerLen % 8, 0u);
  loom_tensor_map_destroy(back);
  loom_tensor_map_destroy(map);
}

TEST(Safetensors, ConvertsHalfToF32OnRequest) {
  // 1.0 and -2.0 in f16, 1.5 in bf16.
  std::string header = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2],"
                       "\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"BF16\","
                       "\"shape\":[],\"data_offsets\":[4,6]},"
                       "\"__metadata__\":{\"format\":\"pt\"}}";
  std::vector<uint8_t> bytes = safetensorsFile(header, 0);
  const uint8_t data[] = {0x00, 0x3c, 0x00, 0xc0, 0xc0, 0x3f};
  bytes.insert(bytes.end(), data, data + 6);
  loom_tensor_map_t *map = nullptr;
  ASSERT_TRUE(isOk(loom_safetensors_parse(bytes.data(), bytes.size(), "x",
                                          LOOM_IO_CONVERT_HALF_TO_F32, &map)));
  loom_tensor_t *h = loom_tensor_map_find(map, "h");
  loom_tensor_t *b = loom_tensor_map_find(map, "b");
  ASSERT_TRUE(h && b);
  EXPECT_EQ(loom_tensor_dtype(h), LOOM_DTYPE_F32);
  EXPECT_EQ(static_cast<float *>(loom_tensor_data(h))[0], 1.0f);
  EXPECT_EQ(static_cast<float *>(loom_tensor_data(h))[1], -2.0f);
  EXPECT_EQ(static_cast<float *>(loom_tensor_data(b))[0], 1.5f);
  EXPECT_EQ(loom_tensor_map_size(map), 2u) << "__metadata__ is not a tensor";
  loom_tensor_map_destroy(map);
  ASSERT_TRUE(
      isOk(loom_safetensors_parse(bytes.data(), bytes.size(), "x", 0, &map)));
  EXPECT_EQ(loom_tensor_dtype(loom_tensor_map_find(map, "h")), LOOM_DTYPE_F16);
  loom_tensor_map_destroy(map);
}

TEST(Safetensors, MissingFileIsNotFound) {
  loom_tensor_map_t *map = nullptr;
  EXPECT_TRUE(isError(
      loom_safetensors_read("/nonexistent/w.safetensors", 0, &map),
      LOOM_STATUS_NOT_FOUND, {"/nonexistent/w.safetensors", "cannot open"}));
}

TEST(Safetensors, TruncatedFiles) {
  TempDir dir;
  std::string path = dir.path("short.safetensors");
  writeBytes(path, {1, 2, 3});
  loom_tensor_map_t *map = nullptr;
  EXPECT_TRUE(isError(loom_safetensors_read(path.c_str(), 0, &map),
                      LOOM_STATUS_DATA_LOSS, {path.c_str(), "truncated"}));
  // A header length beyond the file.
  std::vector<uint8_t> bytes = safetensorsFile("{}", 0);
  bytes[0] = 200;
  writeBytes(path, bytes);
  EXPECT_TRUE(isError(loom_safetensors_read(path.c_str(), 0, &map),
                      LOOM_STATUS_DATA_LOSS,
                      {path.c_str(), "header length 200"}));
  // Data cut short: the last tensor's offsets now exceed the data.
  std::string header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],"
                       "\"data_offsets\":[0,16]}}";
  bytes = safetensorsFile(header, 12);
  writeBytes(path, bytes);
  EXPECT_TRUE(isError(loom_safetensors_read(path.c_str(), 0, &map),
                      LOOM_STATUS_DATA_LOSS,
                      {path.c_str(), "tensor 'a'", "out of range"}));
}

TEST(Safetensors, EmptyHeaderObjectIsAnEmptyFile) {
  loom_tensor_map_t *map = nullptr;
  ASSERT_TRUE(isOk(parseSafetensors("{}", 0, &map)));
  EXPECT_EQ(loom_tensor_map_size(map), 0u);
  loom_tensor_map_destroy(map);
}

TEST(Safetensors, RejectsBadJson) {
  const char *cases[][2] = {
      {"{\"a\":1,}", "expected a string key"},
      {"{\"a\":[1,2,]}", "unexpected character"},
      {"{\"a\":01}", "leading zero"},
      {"{\"a\":\"x\ty\"}", "control character"},
      {"{\"a\":\"\\q\"}", "invalid escape"},
      {"{\"a\":\"\\ud800\"}", "unpaired high surrogate"},
      {"{\"a\":\"\xff\"}", "invalid UTF-8"},
      {"{\"a\":\"\xc0\xaf\"}", "invalid UTF-8"},
      {"{\"a\":tru}", "invalid literal"},
      {"{\"a\":1} x", "trailing characters"},
      {"{\"a\":1", "unterminated object"},
      {"{\"a\":\"abc", "unterminated string"},
      {"{\"a\":1e}", "invalid exponent"},
      {"{\"a\" 1}", "expected ':'"},
      {"{\"a\":1,\"a\":2}", "duplicate key \"a\""},
      {"", "unexpected end of input"},
  };
  for (const auto &c : cases)
    EXPECT_TRUE(isError(parseSafetensors(c[0], 0), LOOM_STATUS_DATA_LOSS,
                        {"w.safetensors", "invalid JSON", c[1]}))
        << c[0];
  std::string deep(100, '[');
  deep += std::string(100, ']');
  EXPECT_TRUE(isError(parseSafetensors(deep, 0), LOOM_STATUS_DATA_LOSS,
                      {"nesting too deep"}));
  EXPECT_TRUE(isError(parseSafetensors("[1, 2]", 0), LOOM_STATUS_DATA_LOSS,
                      {"array, not an object"}));
}

TEST(Safetensors, AcceptsJsonEscapesInNames) {
  loom_tensor_map_t *map = nullptr;
  ASSERT_TRUE(isOk(parseSafetensors(
      "{\"\\u00e9\\ud83d\\ude00\\n\":{\"dtype\":\"BOOL\",\"shape\":[2],"
      "\"data_offsets\":[0,2]}}  ",
      2, &map)));
  EXPECT_NE(loom_tensor_map_find(map, "\xc3\xa9\xf0\x9f\x98\x80\n"), nullptr);
  loom_tensor_map_destroy(map);
}

TEST(Safetensors, RejectsBadEntries) {
  struct {
    std::string header;
    size_t data;
    loom_status_code_t code;
    std::vector<const char *> keywords;
  } cases[] = {
      {R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
       1,
       LOOM_STATUS_UNIMPLEMENTED,
       {"tensor 'a'", "unsupported dtype 'U8'"}},
      {R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})",
       4,
       LOOM_STATUS_DATA_LOSS,
       {"shape element 0"}},
      {R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})",
       4,
       LOOM_STATUS_DATA_LOSS,
       {"shape element 0"}},
      {R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})",
       4,
       LOOM_STATUS_UNIMPLEMENTED,
       {"rank 9"}},
      {R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
       8,
       LOOM_STATUS_DATA_LOSS,
       {"span 8 bytes", "needs 12"}},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})",
       8,
       LOOM_STATUS_DATA_LOSS,
       {"out of range"}},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})",
       8,
       LOOM_STATUS_DATA_LOSS,
       {"data_offsets is not [begin, end]"}},
      {R"({"a":{"dtype":"F32","shape":[2]}})",
       8,
       LOOM_STATUS_DATA_LOSS,
       {"missing 'data_offsets'"}},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})",
       8,
       LOOM_STATUS_DATA_LOSS,
       {"unknown key 'x'"}},
      {R"({"a":{"dtype":5,"shape":[2],"data_offsets":[0,8]}})",
       8,
       LOOM_STATUS_DATA_LOSS,
       {"dtype is not a string"}},
      {R"({"a":[1]})", 0, LOOM_STATUS_DATA_LOSS, {"expected an object"}},
      {R"({"":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})",
       4,
       LOOM_STATUS_DATA_LOSS,
       {"empty name"}},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       12,
       LOOM_STATUS_DATA_LOSS,
       {"'a' and 'b' overlap"}},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       12,
       LOOM_STATUS_DATA_LOSS,
       {"hole", "before tensor 'a'"}},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
       10,
       LOOM_STATUS_DATA_LOSS,
       {"2 trailing bytes"}},
      {R"({"__metadata__":{"k":1}})",
       0,
       LOOM_STATUS_DATA_LOSS,
       {"__metadata__ value 'k'"}},
      {R"({"__metadata__":[]})",
       0,
       LOOM_STATUS_DATA_LOSS,
       {"__metadata__ is not an object"}},
  };
  for (const auto &c : cases) {
    loom_status_t s = parseSafetensors(c.header, c.data);
    ::testing::AssertionResult r = isError(s, c.code, {"w.safetensors"});
    EXPECT_TRUE(r) << c.header;
    for (const char *k : c.keywords)
      EXPECT_NE(std::string(r.message()).find(k), std::string::npos)
          << "missing '" << k << "' in: " << r.message();
  }
}

//===----------------------------------------------------------------------===//
// .npy
//===----------------------------------------------------------------------===//

/// An .npy file with format `major`, a header dict and raw data bytes.
std::vector<uint8_t> npyFile(int major, const std::string &dict,
                             const std::vector<uint8_t> &data) {
  std::vector<uint8_t> bytes = {
      0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<uint8_t>(major), 0};
  size_t lenBytes = major == 1 ? 2 : 4;
  std::string header = dict;
  while ((8 + lenBytes + header.size() + 1) % 64)
    header += ' ';
  header += '\n';
  for (size_t i = 0; i < lenBytes; ++i)
    bytes.push_back(static_cast<uint8_t>(header.size() >> (8 * i)));
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.insert(bytes.end(), data.begin(), data.end());
  return bytes;
}

loom_status_t parseNpy(const std::vector<uint8_t> &bytes,
                       loom_tensor_t **out = nullptr) {
  loom_tensor_t *local = nullptr;
  loom_status_t s =
      loom_npy_parse(bytes.data(), bytes.size(), "a.npy", out ? out : &local);
  loom_tensor_release(local);
  return s;
}

TEST(Npy, RoundTripsEveryDtype) {
  TempDir dir;
  struct {
    loom_dtype_t dtype;
    std::vector<int64_t> dims;
  } cases[] = {{LOOM_DTYPE_F32, {2, 3}}, {LOOM_DTYPE_F64, {4}},
               {LOOM_DTYPE_I32, {}},     {LOOM_DTYPE_I64, {1, 1, 2}},
               {LOOM_DTYPE_BOOL, {5}},   {LOOM_DTYPE_F16, {3, 0}}};
  for (const auto &c : cases) {
    loom_tensor_t *t = filled(c.dtype, c.dims), *back = nullptr;
    std::string path = dir.path("t.npy");
    ASSERT_TRUE(isOk(loom_npy_write(path.c_str(), t)));
    auto bytes = loom::test::readBytes(path);
    EXPECT_EQ((bytes.size() - loom_tensor_byte_size(t)) % 64, 0u)
        << "data starts 64-byte aligned like numpy writes it";
    ASSERT_TRUE(isOk(loom_npy_read(path.c_str(), &back)));
    EXPECT_TRUE(sameTensor(t, back)) << loom_dtype_name(c.dtype);
    loom_tensor_release(t);
    loom_tensor_release(back);
  }
}

TEST(Npy, WritesNumpyShapeSyntax) {
  TempDir dir;
  loom_tensor_t *t = filled(LOOM_DTYPE_F32, {3});
  std::string path = dir.path("v.npy");
  ASSERT_TRUE(isOk(loom_npy_write(path.c_str(), t)));
  auto bytes = loom::test::readBytes(path);
  std::string text(bytes.begin(), bytes.end());
  EXPECT_NE(text.find("'shape': (3,)"), std::string::npos) << text;
  EXPECT_NE(text.find("'descr': '<f4'"), std::string::npos);
  loom_tensor_release(t);
  loom_tensor_t *bf = filled(LOOM_DTYPE_BF16, {2});
  EXPECT_TRUE(isError(loom_npy_write(path.c_str(), bf),
                      LOOM_STATUS_UNIMPLEMENTED, {"bf16"}));
  loom_tensor_release(bf);
}

TEST(Npy, ReadsVersions2And3) {
  std::vector<uint8_t> data(24);
  for (int i = 0; i < 6; ++i) {
    float v = static_cast<float>(i) + 0.5f;
    std::memcpy(data.data() + 4 * i, &v, 4);
  }
  for (int major : {1, 2, 3}) {
    loom_tensor_t *t = nullptr;
    ASSERT_TRUE(
        isOk(parseNpy(npyFile(major,
                              "{\"descr\": \"<f4\", 'fortran_order': False, "
                              "'shape': (2, 3), }",
                              data),
                      &t)))
        << major;
    EXPECT_EQ(loom_tensor_dims(t)[1], 3);
    EXPECT_EQ(static_cast<float *>(loom_tensor_data(t))[5], 5.5f);
    loom_tensor_release(t);
  }
}

TEST(Npy, RejectsMalformedFiles) {
  std::vector<uint8_t> eight(8);
  const std::string ok = "{'descr': '<f4', 'fortran_order': False, "
                         "'shape': (2,), }";
  EXPECT_TRUE(isOk(parseNpy(npyFile(1, ok, eight))));
  EXPECT_TRUE(isError(
      parseNpy(npyFile(1,
                       "{'descr': '<f4', 'fortran_order': True, 'shape': "
                       "(2,), }",
                       eight)),
      LOOM_STATUS_UNIMPLEMENTED, {"a.npy", "fortran_order"}));
  EXPECT_TRUE(isError(
      parseNpy(npyFile(1,
                       "{'descr': '>f4', 'fortran_order': False, 'shape': "
                       "(2,), }",
                       eight)),
      LOOM_STATUS_UNIMPLEMENTED, {"big-endian", ">f4"}));
  EXPECT_TRUE(isError(
      parseNpy(npyFile(1,
                       "{'descr': '<c8', 'fortran_order': False, 'shape': "
                       "(1,), }",
                       eight)),
      LOOM_STATUS_UNIMPLEMENTED, {"unsupported dtype '<c8'"}));
  EXPECT_TRUE(isError(parseNpy(npyFile(1, ok, std::vector<uint8_t>(6))),
                      LOOM_STATUS_DATA_LOSS,
                      {"truncated .npy data", "needs 8 bytes", "has 6"}));
  EXPECT_TRUE(isError(parseNpy(npyFile(1, ok, std::vector<uint8_t>(9))),
                      LOOM_STATUS_DATA_LOSS, {"oversized"}));
  EXPECT_TRUE(
      isError(parseNpy(npyFile(1, "{'descr': '<f4', 'shape': (2,), }", eight)),
              LOOM_STATUS_DATA_LOSS, {"missing key 'fortran_order'"}));
  EXPECT_TRUE(isError(
      parseNpy(npyFile(1,
                       "{'descr': '<f4', 'fortran_order': False, 'shape': "
                       "(-2,), }",
                       eight)),
      LOOM_STATUS_DATA_LOSS, {"shape element"}));
  EXPECT_TRUE(isError(
      parseNpy(npyFile(1,
                       "{'descr': '<f4', 'fortran_order': False, 'shape': "
                       "(2,), 'x': 1}",
                       eight)),
      LOOM_STATUS_DATA_LOSS, {"unknown key 'x'"}));
  EXPECT_TRUE(isError(parseNpy(npyFile(1, ok + " junk", eight)),
                      LOOM_STATUS_DATA_LOSS, {"invalid .npy header"}));
  EXPECT_TRUE(isError(parseNpy(npyFile(4, ok, eight)),
                      LOOM_STATUS_UNIMPLEMENTED, {"version 4.0"}));
  std::vector<uint8_t> bad = npyFile(1, ok, eight);
  bad[1] = 'X';
  EXPECT_TRUE(isError(parseNpy(bad), LOOM_STATUS_INVALID_ARGUMENT,
                      {"not an .npy file"}));
  std::vector<uint8_t> longHeader = npyFile(1, ok, eight);
  longHeader[8] = 0xff;
  longHeader[9] = 0xff;
  EXPECT_TRUE(isError(parseNpy(longHeader), LOOM_STATUS_DATA_LOSS,
                      {"header length 65535"}));
  std::vector<uint8_t> cut(longHeader.begin(), longHeader.begin() + 9);
  EXPECT_TRUE(isError(parseNpy(cut), LOOM_STATUS_DATA_LOSS, {"a.npy"}));
  loom_tensor_t *t = nullptr;
  EXPECT_TRUE(isError(loom_npy_read("/nonexistent/a.npy", &t),
                      LOOM_STATUS_NOT_FOUND, {"/nonexistent/a.npy"}));
}

} // namespace
