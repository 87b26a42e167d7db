//===- runtime.hpp - Thin C++17 wrapper of the Loom runtime -----*- C++ -*-===//
//
// This file wraps the C API in move-only RAII types so C++ tools and tests
// cannot leak statuses, tensors, artifacts or sessions. It adds no behavior:
// every method forwards to one C function, and errors come back as a
// loom::Status (no exceptions, so it works in -fno-exceptions code).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_HPP
#define LOOM_RUNTIME_HPP

#include "loom/runtime.h"

#include <string>
#include <utility>
#include <vector>

namespace loom {

/// Owns a loom_status_t; default-constructed means success.
class Status {
public:
  Status() = default;
  /*implicit*/ Status(loom_status_t status) : status(status) {}
  Status(Status &&other) noexcept : status(other.release()) {}
  Status &operator=(Status &&other) noexcept {
    if (this != &other) {
      loom_status_free(status);
      status = other.release();
    }
    return *this;
  }
  Status(const Status &) = delete;
  Status &operator=(const Status &) = delete;
  ~Status() { loom_status_free(status); }

  bool ok() const { return status == nullptr; }
  explicit operator bool() const { return ok(); }
  loom_status_code_t code() const { return loom_status_code(status); }
  std::string message() const { return loom_status_message(status); }
  loom_status_t release() { return std::exchange(status, nullptr); }

private:
  loom_status_t status = nullptr;
};

/// Holds one reference to a tensor.
class Tensor {
public:
  Tensor() = default;
  /// Adopts a reference the caller owns.
  explicit Tensor(loom_tensor_t *tensor) : tensor(tensor) {}
  Tensor(const Tensor &other) : tensor(other.tensor) {
    loom_tensor_retain(tensor);
  }
  Tensor &operator=(const Tensor &other) {
    Tensor copy(other);
    std::swap(tensor, copy.tensor);
    return *this;
  }
  Tensor(Tensor &&other) noexcept
      : tensor(std::exchange(other.tensor, nullptr)) {}
  Tensor &operator=(Tensor &&other) noexcept {
    std::swap(tensor, other.tensor);
    return *this;
  }
  ~Tensor() { loom_tensor_release(tensor); }

  /// Creates a zero-filled tensor.
  static Status create(loom_dtype_t dtype, const std::vector<int64_t> &dims,
                       Tensor *out) {
    loom_tensor_t *t = nullptr;
    Status s = loom_tensor_create(dtype, static_cast<int32_t>(dims.size()),
                                  dims.data(), &t);
    if (s.ok())
      *out = Tensor(t);
    return s;
  }

  loom_tensor_t *get() const { return tensor; }
  explicit operator bool() const { return tensor != nullptr; }
  loom_dtype_t dtype() const { return loom_tensor_dtype(tensor); }
  int32_t rank() const { return loom_tensor_rank(tensor); }
  std::vector<int64_t> dims() const {
    const int64_t *d = loom_tensor_dims(tensor);
    return d ? std::vector<int64_t>(d, d + rank()) : std::vector<int64_t>();
  }
  int64_t numElements() const { return loom_tensor_num_elements(tensor); }
  size_t byteSize() const { return loom_tensor_byte_size(tensor); }
  void *data() const { return loom_tensor_data(tensor); }
  template <typename T> T *data() const { return static_cast<T *>(data()); }

private:
  loom_tensor_t *tensor = nullptr;
};

/// Owns a tensor map.
class TensorMap {
public:
  TensorMap() { loom_status_free(loom_tensor_map_create(&map)); }
  explicit TensorMap(loom_tensor_map_t *map) : map(map) {}
  TensorMap(TensorMap &&other) noexcept
      : map(std::exchange(other.map, nullptr)) {}
  TensorMap &operator=(TensorMap &&other) noexcept {
    std::swap(map, other.map);
    return *this;
  }
  TensorMap(const TensorMap &) = delete;
  TensorMap &operator=(const TensorMap &) = delete;
  ~TensorMap() { loom_tensor_map_destroy(map); }

  static Status readSafetensors(const std::string &path, uint32_t flags,
                                TensorMap *out) {
    loom_tensor_map_t *m = nullptr;
    Status s = loom_safetensors_read(path.c_str(), flags, &m);
    if (s.ok())
      *out = TensorMap(m);
    return s;
  }
  Status writeSafetensors(const std::string &path) const {
    return loom_safetensors_write(path.c_str(), map);
  }

  Status insert(const std::string &name, const Tensor &tensor) {
    return loom_tensor_map_insert(map, name.c_str(), tensor.get());
  }
  /// The tensor named `name` (a new reference), or an empty Tensor.
  Tensor find(const std::string &name) const {
    loom_tensor_t *t = loom_tensor_map_find(map, name.c_str());
    loom_tensor_retain(t);
    return Tensor(t);
  }
  size_t size() const { return loom_tensor_map_size(map); }
  std::string nameAt(size_t i) const {
    const char *n = loom_tensor_map_name_at(map, i);
    return n ? n : "";
  }
  loom_tensor_map_t *get() const { return map; }

private:
  loom_tensor_map_t *map = nullptr;
};

/// Owns an open artifact.
class Artifact {
public:
  Artifact() = default;
  Artifact(Artifact &&other) noexcept
      : artifact(std::exchange(other.artifact, nullptr)) {}
  Artifact &operator=(Artifact &&other) noexcept {
    std::swap(artifact, other.artifact);
    return *this;
  }
  Artifact(const Artifact &) = delete;
  Artifact &operator=(const Artifact &) = delete;
  ~Artifact() { loom_artifact_close(artifact); }

  static Status open(const std::string &path, Artifact *out) {
    loom_artifact_t *a = nullptr;
    Status s = loom_artifact_open(path.c_str(), &a);
    if (s.ok()) {
      loom_artifact_close(out->artifact);
      out->artifact = a;
    }
    return s;
  }

  loom_artifact_t *get() const { return artifact; }
  uint32_t entryCount() const { return loom_artifact_entry_count(artifact); }
  const loom_entry_desc_t *entry(uint32_t i) const {
    return loom_artifact_entry_at(artifact, i);
  }
  Status findEntry(const std::string &name, uint32_t *index) const {
    return loom_artifact_entry_find(artifact, name.c_str(), index);
  }

private:
  loom_artifact_t *artifact = nullptr;
};

/// Owns a session.
class Session {
public:
  Session() = default;
  Session(Session &&other) noexcept
      : session(std::exchange(other.session, nullptr)) {}
  Session &operator=(Session &&other) noexcept {
    std::swap(session, other.session);
    return *this;
  }
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;
  ~Session() { loom_session_destroy(session); }

  static Status create(const Artifact &artifact, const TensorMap *params,
                       Session *out) {
    loom_session_t *s = nullptr;
    Status status = loom_session_create(artifact.get(),
                                        params ? params->get() : nullptr, &s);
    if (status.ok()) {
      loom_session_destroy(out->session);
      out->session = s;
    }
    return status;
  }

  /// Calls entry `index` with inputs in manifest order; measures the call's
  /// parts into `timing` when it is not NULL (loom_session_call_timed).
  Status call(uint32_t index, const std::vector<Tensor> &inputs,
              std::vector<Tensor> *outputs,
              loom_call_timing_t *timing = nullptr) {
    const loom_entry_desc_t *desc =
        loom_artifact_entry_at(loom_session_artifact(session), index);
    if (!desc)
      return loom_status_create(LOOM_STATUS_INVALID_ARGUMENT,
                                "entry index out of range");
    if (inputs.size() != desc->num_inputs)
      return loom_status_create(LOOM_STATUS_INVALID_ARGUMENT,
                                ("entry '" + std::string(desc->name) +
                                 "' takes " + std::to_string(desc->num_inputs) +
                                 " inputs")
                                    .c_str());
    std::vector<loom_tensor_t *> in, out(desc->num_outputs, nullptr);
    for (const Tensor &t : inputs)
      in.push_back(t.get());
    Status s = timing
                   ? loom_session_call_timed(session, index, in.data(),
                                             out.data(), timing)
                   : loom_session_call(session, index, in.data(), out.data());
    if (s.ok()) {
      outputs->clear();
      for (loom_tensor_t *t : out)
        outputs->emplace_back(t);
    }
    return s;
  }

  /// Calls an entry by name with named inputs.
  Status invoke(const std::string &entry,
                const std::vector<std::pair<std::string, Tensor>> &inputs,
                TensorMap *outputs) {
    std::vector<const char *> names;
    std::vector<loom_tensor_t *> tensors;
    for (const auto &input : inputs) {
      names.push_back(input.first.c_str());
      tensors.push_back(input.second.get());
    }
    loom_tensor_map_t *out = nullptr;
    Status s = loom_session_invoke(session, entry.c_str(), inputs.size(),
                                   names.data(), tensors.data(), &out);
    if (s.ok())
      *outputs = TensorMap(out);
    return s;
  }

  loom_session_t *get() const { return session; }

private:
  loom_session_t *session = nullptr;
};

} // namespace loom

#endif // LOOM_RUNTIME_HPP
