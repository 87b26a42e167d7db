//===- tensor.cc - Tensors and tensor maps --------------------------------===//
//
// This file implements reference-counted dense tensors with 64-byte aligned
// owned storage (or borrowed caller storage), dtype conversion, the insertion
// ordered name -> tensor map used for weights files and outputs, and the small
// file helpers shared by the readers and the artifact loader.
//
//===----------------------------------------------------------------------===//

#include "internal.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

using namespace loom;

/// Alignment of owned tensor data: a cache line, and enough for any vector
/// load a generated kernel may use.
static constexpr size_t kTensorAlignment = 64;

//===----------------------------------------------------------------------===//
// Dtypes and shapes
//===----------------------------------------------------------------------===//

extern "C" const char *loom_dtype_name(loom_dtype_t dtype) {
  switch (dtype) {
  case LOOM_DTYPE_F32:
    return "f32";
  case LOOM_DTYPE_F64:
    return "f64";
  case LOOM_DTYPE_I32:
    return "i32";
  case LOOM_DTYPE_I64:
    return "i64";
  case LOOM_DTYPE_BOOL:
    return "bool";
  case LOOM_DTYPE_F16:
    return "f16";
  case LOOM_DTYPE_BF16:
    return "bf16";
  default:
    return "invalid";
  }
}

extern "C" loom_dtype_t loom_dtype_from_name(const char *name) {
  if (!name)
    return LOOM_DTYPE_INVALID;
  for (int d = LOOM_DTYPE_F32; d <= LOOM_DTYPE_BF16; ++d)
    if (std::strcmp(name, loom_dtype_name(static_cast<loom_dtype_t>(d))) == 0)
      return static_cast<loom_dtype_t>(d);
  return LOOM_DTYPE_INVALID;
}

std::string loom::formatDims(int32_t rank, const int64_t *dims) {
  std::string s = "[";
  for (int32_t i = 0; i < rank; ++i) {
    if (i)
      s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

loom_status_t loom::checkShape(loom_dtype_t dtype, int32_t rank,
                               const int64_t *dims, const std::string &what,
                               int64_t *outElements, size_t *outBytes) {
  uint32_t elemSize = loom_dtype_size(dtype);
  if (elemSize == 0)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT, "%s: invalid dtype %d",
                      what.c_str(), static_cast<int>(dtype));
  if (rank < 0 || rank > LOOM_MAX_RANK)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "%s: rank %d is outside [0, %d]", what.c_str(), rank,
                      LOOM_MAX_RANK);
  if (rank > 0 && !dims)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT, "%s: dims is NULL",
                      what.c_str());
  // Sizes are capped well below SIZE_MAX so byte counts and offsets computed
  // from them never overflow.
  const uint64_t limit = uint64_t(1) << 56;
  uint64_t elements = 1;
  for (int32_t i = 0; i < rank; ++i) {
    if (dims[i] < 0)
      return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                        "%s: negative dim %lld at position %d", what.c_str(),
                        static_cast<long long>(dims[i]), i);
    if (dims[i] != 0 && elements > limit / static_cast<uint64_t>(dims[i]))
      return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                        "%s: shape %s is too large", what.c_str(),
                        formatDims(rank, dims).c_str());
    elements *= static_cast<uint64_t>(dims[i]);
  }
  if (elements > limit / elemSize)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT, "%s: shape %s is too large",
                      what.c_str(), formatDims(rank, dims).c_str());
  *outElements = static_cast<int64_t>(elements);
  *outBytes = static_cast<size_t>(elements * elemSize);
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Tensors
//===----------------------------------------------------------------------===//

static loom_status_t newTensor(loom_dtype_t dtype, int32_t rank,
                               const int64_t *dims, loom_tensor_t **out) {
  int64_t elements;
  size_t bytes;
  if (loom_status_t s =
          checkShape(dtype, rank, dims, "tensor", &elements, &bytes))
    return s;
  auto *t = new (std::nothrow) loom_tensor;
  if (!t)
    return makeStatus(LOOM_STATUS_OUT_OF_MEMORY, "out of memory");
  t->dtype = dtype;
  t->rank = rank;
  for (int32_t i = 0; i < rank; ++i)
    t->dims[i] = dims[i];
  t->numElements = elements;
  t->byteSize = bytes;
  *out = t;
  return nullptr;
}

loom_status_t loom::createUninitializedTensor(loom_dtype_t dtype, int32_t rank,
                                              const int64_t *dims,
                                              loom_tensor_t **outTensor) {
  loom_tensor_t *t;
  if (loom_status_t s = newTensor(dtype, rank, dims, &t))
    return s;
  // aligned_alloc wants a multiple of the alignment, and empty tensors still
  // get a valid, unique pointer.
  size_t alloc = (t->byteSize + kTensorAlignment - 1) / kTensorAlignment *
                 kTensorAlignment;
  if (alloc == 0)
    alloc = kTensorAlignment;
  t->data = std::aligned_alloc(kTensorAlignment, alloc);
  if (!t->data) {
    size_t bytes = t->byteSize;
    delete t;
    return makeStatus(LOOM_STATUS_OUT_OF_MEMORY,
                      "out of memory allocating a tensor of %zu bytes", bytes);
  }
  t->owned = true;
  *outTensor = t;
  return nullptr;
}

extern "C" {

loom_status_t loom_tensor_create(loom_dtype_t dtype, int32_t rank,
                                 const int64_t *dims,
                                 loom_tensor_t **out_tensor) {
  if (!out_tensor)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT, "out_tensor is NULL");
  loom_tensor_t *t;
  if (loom_status_t s = createUninitializedTensor(dtype, rank, dims, &t))
    return s;
  std::memset(t->data, 0, t->byteSize);
  *out_tensor = t;
  return nullptr;
}

loom_status_t loom_tensor_wrap(loom_dtype_t dtype, int32_t rank,
                               const int64_t *dims, void *data,
                               size_t byte_size, loom_tensor_t **out_tensor) {
  if (!out_tensor)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT, "out_tensor is NULL");
  loom_tensor_t *t;
  if (loom_status_t s = newTensor(dtype, rank, dims, &t))
    return s;
  if (byte_size != t->byteSize || (!data && byte_size != 0)) {
    size_t expected = t->byteSize;
    delete t;
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "tensor_wrap: buffer of %zu bytes given for %s%s, which "
                      "needs %zu bytes",
                      byte_size, loom_dtype_name(dtype),
                      formatDims(rank, dims).c_str(), expected);
  }
  t->data = data;
  t->owned = false;
  *out_tensor = t;
  return nullptr;
}

void loom_tensor_retain(loom_tensor_t *tensor) {
  if (tensor)
    tensor->refs.fetch_add(1, std::memory_order_relaxed);
}

void loom_tensor_release(loom_tensor_t *tensor) {
  if (!tensor || tensor->refs.fetch_sub(1, std::memory_order_acq_rel) != 1)
    return;
  if (tensor->owned)
    std::free(tensor->data);
  delete tensor;
}

loom_dtype_t loom_tensor_dtype(const loom_tensor_t *tensor) {
  return tensor ? tensor->dtype : LOOM_DTYPE_INVALID;
}
int32_t loom_tensor_rank(const loom_tensor_t *tensor) {
  return tensor ? tensor->rank : 0;
}
const int64_t *loom_tensor_dims(const loom_tensor_t *tensor) {
  return tensor ? tensor->dims : nullptr;
}
int64_t loom_tensor_num_elements(const loom_tensor_t *tensor) {
  return tensor ? tensor->numElements : 0;
}
size_t loom_tensor_byte_size(const loom_tensor_t *tensor) {
  return tensor ? tensor->byteSize : 0;
}
void *loom_tensor_data(const loom_tensor_t *tensor) {
  return tensor ? tensor->data : nullptr;
}

} // extern "C"

//===----------------------------------------------------------------------===//
// Conversion
//===----------------------------------------------------------------------===//

float loom::halfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {
      // Subnormal: renormalize into the float's wider exponent range.
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ff;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t loom::floatToHalf(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  uint32_t absBits = bits & 0x7fffffff;
  if (absBits >= 0x7f800000) // Inf or NaN; keep NaNs quiet.
    return sign | 0x7c00 | (absBits > 0x7f800000 ? 0x200 : 0);
  if (absBits >= 0x477ff000) // Rounds to a value beyond the half range.
    return sign | 0x7c00;
  if (absBits < 0x38800000) { // Subnormal or zero in half.
    if (absBits < 0x33000000)
      return sign;
    uint32_t exp = absBits >> 23;
    uint32_t mant = (absBits & 0x7fffff) | 0x800000;
    // The half subnormal is mant * 2^(exp - 126) in units of 2^-24.
    uint32_t shift = 126 - exp;
    uint32_t halfMant = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (halfMant & 1)))
      ++halfMant;
    return sign | static_cast<uint16_t>(halfMant);
  }
  // Normal: rebias and round to nearest even on the 13 dropped bits.
  uint32_t h = ((absBits - 0x38000000) >> 13);
  uint32_t rem = absBits & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
    ++h;
  return sign | static_cast<uint16_t>(h);
}

float loom::bf16ToFloat(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t loom::floatToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffff) > 0x7f800000)
    return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

/// Reads element `i` of `data` as a double (exact for every supported dtype
/// but i64 beyond 2^53, which only conversions to floats use).
static double loadAsDouble(loom_dtype_t dtype, const void *data, int64_t i) {
  switch (dtype) {
  case LOOM_DTYPE_F32:
    return static_cast<const float *>(data)[i];
  case LOOM_DTYPE_F64:
    return static_cast<const double *>(data)[i];
  case LOOM_DTYPE_I32:
    return static_cast<const int32_t *>(data)[i];
  case LOOM_DTYPE_I64:
    return static_cast<double>(static_cast<const int64_t *>(data)[i]);
  case LOOM_DTYPE_BOOL:
    return static_cast<const uint8_t *>(data)[i] ? 1.0 : 0.0;
  case LOOM_DTYPE_F16:
    return halfToFloat(static_cast<const uint16_t *>(data)[i]);
  case LOOM_DTYPE_BF16:
    return bf16ToFloat(static_cast<const uint16_t *>(data)[i]);
  default:
    return 0;
  }
}

static bool isFloat(loom_dtype_t d) {
  return d == LOOM_DTYPE_F32 || d == LOOM_DTYPE_F64 || d == LOOM_DTYPE_F16 ||
         d == LOOM_DTYPE_BF16;
}

extern "C" loom_status_t loom_tensor_convert(const loom_tensor_t *src,
                                             loom_dtype_t dtype,
                                             loom_tensor_t **out_tensor) {
  if (!src || !out_tensor)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "tensor_convert: NULL argument");
  loom_dtype_t from = src->dtype;
  bool ok = from == dtype || (isFloat(from) && isFloat(dtype)) ||
            ((from == LOOM_DTYPE_I32 || from == LOOM_DTYPE_I64) &&
             dtype != LOOM_DTYPE_BOOL) ||
            (from == LOOM_DTYPE_BOOL && dtype != LOOM_DTYPE_INVALID);
  if (!ok || loom_dtype_size(dtype) == 0)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "tensor_convert: cannot convert %s to %s",
                      loom_dtype_name(from), loom_dtype_name(dtype));
  loom_tensor_t *t;
  if (loom_status_t s =
          createUninitializedTensor(dtype, src->rank, src->dims, &t))
    return s;
  int64_t n = src->numElements;
  if (from == dtype) {
    std::memcpy(t->data, src->data, src->byteSize);
  } else if (from == LOOM_DTYPE_I64 && dtype == LOOM_DTYPE_I32) {
    for (int64_t i = 0; i < n; ++i)
      static_cast<int32_t *>(t->data)[i] =
          static_cast<int32_t>(static_cast<const int64_t *>(src->data)[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      double v = loadAsDouble(from, src->data, i);
      switch (dtype) {
      case LOOM_DTYPE_F32:
        static_cast<float *>(t->data)[i] = static_cast<float>(v);
        break;
      case LOOM_DTYPE_F64:
        static_cast<double *>(t->data)[i] = v;
        break;
      case LOOM_DTYPE_I32:
        static_cast<int32_t *>(t->data)[i] = static_cast<int32_t>(v);
        break;
      case LOOM_DTYPE_I64:
        static_cast<int64_t *>(t->data)[i] =
            from == LOOM_DTYPE_I32 ? static_cast<const int32_t *>(src->data)[i]
                                   : static_cast<int64_t>(v);
        break;
      case LOOM_DTYPE_BOOL:
        static_cast<uint8_t *>(t->data)[i] = v != 0;
        break;
      case LOOM_DTYPE_F16:
        static_cast<uint16_t *>(t->data)[i] =
            floatToHalf(static_cast<float>(v));
        break;
      case LOOM_DTYPE_BF16:
        static_cast<uint16_t *>(t->data)[i] =
            floatToBf16(static_cast<float>(v));
        break;
      default:
        break;
      }
    }
  }
  *out_tensor = t;
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Tensor maps
//===----------------------------------------------------------------------===//

extern "C" {

loom_status_t loom_tensor_map_create(loom_tensor_map_t **out_map) {
  if (!out_map)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT, "out_map is NULL");
  auto *map = new (std::nothrow) loom_tensor_map;
  if (!map)
    return makeStatus(LOOM_STATUS_OUT_OF_MEMORY, "out of memory");
  *out_map = map;
  return nullptr;
}

void loom_tensor_map_destroy(loom_tensor_map_t *map) {
  if (!map)
    return;
  for (loom_tensor_t *t : map->tensors)
    loom_tensor_release(t);
  delete map;
}

loom_status_t loom_tensor_map_insert(loom_tensor_map_t *map, const char *name,
                                     loom_tensor_t *tensor) {
  if (!map || !name || !tensor)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "tensor_map_insert: NULL argument");
  auto inserted = map->index.emplace(name, map->names.size());
  if (!inserted.second)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT,
                      "tensor map already has a tensor named '%s'", name);
  map->names.emplace_back(name);
  map->tensors.push_back(tensor);
  loom_tensor_retain(tensor);
  return nullptr;
}

loom_tensor_t *loom_tensor_map_find(const loom_tensor_map_t *map,
                                    const char *name) {
  if (!map || !name)
    return nullptr;
  auto it = map->index.find(name);
  return it == map->index.end() ? nullptr : map->tensors[it->second];
}

size_t loom_tensor_map_size(const loom_tensor_map_t *map) {
  return map ? map->names.size() : 0;
}

const char *loom_tensor_map_name_at(const loom_tensor_map_t *map,
                                    size_t index) {
  if (!map || index >= map->names.size())
    return nullptr;
  return map->names[index].c_str();
}

loom_tensor_t *loom_tensor_map_tensor_at(const loom_tensor_map_t *map,
                                         size_t index) {
  if (!map || index >= map->tensors.size())
    return nullptr;
  return map->tensors[index];
}

} // extern "C"

//===----------------------------------------------------------------------===//
// Files
//===----------------------------------------------------------------------===//

loom_status_t loom::readFile(const char *path, std::vector<uint8_t> *out) {
  if (!path)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT, "path is NULL");
  FILE *f = std::fopen(path, "rb");
  if (!f)
    return makeStatus(errno == ENOENT ? LOOM_STATUS_NOT_FOUND
                                      : LOOM_STATUS_IO_ERROR,
                      "%s: cannot open: %s", path, std::strerror(errno));
  std::vector<uint8_t> data;
  uint8_t chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f)) > 0)
    data.insert(data.end(), chunk, chunk + n);
  bool failed = std::ferror(f);
  std::fclose(f);
  if (failed)
    return makeStatus(LOOM_STATUS_IO_ERROR, "%s: read error", path);
  *out = std::move(data);
  return nullptr;
}

loom_status_t loom::writeFile(const char *path, const void *data, size_t size) {
  if (!path)
    return makeStatus(LOOM_STATUS_INVALID_ARGUMENT, "path is NULL");
  FILE *f = std::fopen(path, "wb");
  if (!f)
    return makeStatus(LOOM_STATUS_IO_ERROR, "%s: cannot create: %s", path,
                      std::strerror(errno));
  bool ok = size == 0 || std::fwrite(data, 1, size, f) == size;
  ok = std::fclose(f) == 0 && ok;
  if (!ok)
    return makeStatus(LOOM_STATUS_IO_ERROR, "%s: write error: %s", path,
                      std::strerror(errno));
  return nullptr;
}
