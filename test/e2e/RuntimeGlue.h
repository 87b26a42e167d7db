//===- RuntimeGlue.h - Runtime helpers of the end-to-end tests --*- C++ -*-===//
//
// This file holds what the end-to-end tests share to talk to the runtime:
// owning handles for runtime objects, conversions between the interpreter's
// float64 tensors and runtime tensors, reading signature attributes, creating
// sessions and calling entries with tensors by name, and artifacts compiled
// from hand-written MLIR modules.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TEST_E2E_RUNTIMEGLUE_H
#define LOOM_TEST_E2E_RUNTIMEGLUE_H

#include "compiler/Artifact/Requirements.h"
#include "compiler/Interpreter/Interpreter.h"
#include "compiler/Pipelines/Compile.h"
#include "compiler/Pipelines/Pipelines.h"
#include "dialects/loom/IR/LoomDialect.h"
#include "loom/runtime.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace loom::e2e {

/// The one context of the test program, shared by every suite: creating one
/// with every dialect and extension loaded costs more than compiling a small
/// model, and the passes it needs may be registered only once per process.
/// It is never destroyed, so no static destructor of the MLIR libraries runs
/// before it.
inline mlir::MLIRContext &getContext() {
  static mlir::MLIRContext *context = [] {
    mlir::registerAllPasses();
    mlir::loom::registerLoomPipelines();
    mlir::DialectRegistry registry;
    mlir::registerAllDialects(registry);
    mlir::registerAllExtensions(registry);
    registry.insert<mlir::loom::LoomDialect>();
    auto *ctx = new mlir::MLIRContext(registry);
    ctx->loadAllAvailableDialects();
    return ctx;
  }();
  return *context;
}

using mlir::DictionaryAttr;
using mlir::StringAttr;
using mlir::StringRef;
using Tensor = mlir::loom::interp::Tensor;

struct TensorRelease {
  void operator()(loom_tensor_t *t) const { loom_tensor_release(t); }
};
using RtTensor = std::unique_ptr<loom_tensor_t, TensorRelease>;

struct StatusFree {
  void operator()(loom_status *s) const { loom_status_free(s); }
};
/// An owned status; null is success.
using Status = std::unique_ptr<loom_status, StatusFree>;

struct MapDestroy {
  void operator()(loom_tensor_map_t *m) const { loom_tensor_map_destroy(m); }
};
using RtMap = std::unique_ptr<loom_tensor_map_t, MapDestroy>;

inline std::string describe(const Status &status) {
  return std::string(loom_status_code_name(loom_status_code(status.get()))) +
         ": " + loom_status_message(status.get());
}

/// Copies a host tensor into a new runtime tensor of the same dtype.
inline RtTensor toRuntime(const Tensor &t) {
  loom_tensor_t *out = nullptr;
  Status status(loom_tensor_create(static_cast<loom_dtype_t>(t.dtype),
                                   static_cast<int32_t>(t.shape.size()),
                                   t.shape.data(), &out));
  if (status) {
    ADD_FAILURE() << "cannot create an input tensor: " << describe(status);
    return nullptr;
  }
  void *data = loom_tensor_data(out);
  for (size_t i = 0; i < t.data.size(); ++i) {
    double v = t.data[i];
    switch (t.dtype) {
    case LOOM_DTYPE_F32:
      static_cast<float *>(data)[i] = static_cast<float>(v);
      break;
    case LOOM_DTYPE_F64:
      static_cast<double *>(data)[i] = v;
      break;
    case LOOM_DTYPE_I32:
      static_cast<int32_t *>(data)[i] = static_cast<int32_t>(v);
      break;
    case LOOM_DTYPE_I64:
      static_cast<int64_t *>(data)[i] = static_cast<int64_t>(v);
      break;
    case LOOM_DTYPE_BOOL:
      static_cast<uint8_t *>(data)[i] = v != 0;
      break;
    }
  }
  return RtTensor(out);
}

/// Reads a runtime tensor back as doubles.
inline Tensor fromRuntime(const loom_tensor_t *t) {
  Tensor out;
  out.dtype = loom_tensor_dtype(t);
  out.shape.assign(loom_tensor_dims(t),
                   loom_tensor_dims(t) + loom_tensor_rank(t));
  out.data.resize(loom_tensor_num_elements(t));
  const void *data = loom_tensor_data(t);
  for (size_t i = 0; i < out.data.size(); ++i) {
    switch (out.dtype) {
    case LOOM_DTYPE_F32:
      out.data[i] = static_cast<const float *>(data)[i];
      break;
    case LOOM_DTYPE_F64:
      out.data[i] = static_cast<const double *>(data)[i];
      break;
    case LOOM_DTYPE_I32:
      out.data[i] = static_cast<const int32_t *>(data)[i];
      break;
    case LOOM_DTYPE_I64:
      out.data[i] = static_cast<double>(static_cast<const int64_t *>(data)[i]);
      break;
    case LOOM_DTYPE_BOOL:
      out.data[i] = static_cast<const uint8_t *>(data)[i] != 0;
      break;
    }
  }
  return out;
}

inline std::string attrString(DictionaryAttr attrs, StringRef key) {
  if (attrs)
    if (auto s = attrs.getAs<StringAttr>(key))
      return s.getValue().str();
  return "";
}

/// Tensors by name.
using Tensors = std::map<std::string, Tensor>;

/// Evaluates entry `func` with the float64 interpreter, taking each argument
/// by its role: inputs by name, params and states by binding. The entry's
/// requirements are checked first, as the runtime does; a refused call fails
/// with the runtime's message. Interpreter diagnostics end up in the failure
/// message.
inline ::testing::AssertionResult
interpretEntry(mlir::func::FuncOp func, const Tensors &inputs,
               const Tensors &params, const Tensors &states,
               mlir::FailureOr<std::vector<Tensor>> &results) {
  std::vector<Tensor> args;
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    DictionaryAttr attrs = func.getArgAttrDict(i);
    std::string role = attrString(attrs, "loom.role");
    std::string key =
        attrString(attrs, role == "input" ? "loom.name" : "loom.binding");
    const Tensors &from = role == "input"   ? inputs
                          : role == "param" ? params
                                            : states;
    auto it = from.find(key);
    if (it == from.end())
      return ::testing::AssertionFailure()
             << "no value for " << role << " '" << key << "'";
    args.push_back(it->second);
  }
  std::vector<mlir::loom::CallInput> callInputs;
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    if (attrString(func.getArgAttrDict(i), "loom.role") != "input")
      break;
    mlir::loom::CallInput in;
    in.shape = args[i].shape;
    if (args[i].shape.empty() && !args[i].data.empty())
      in.scalar = static_cast<int64_t>(args[i].data[0]);
    callInputs.push_back(in);
  }
  if (std::optional<std::string> refused =
          mlir::loom::checkRequirements(func, callInputs))
    return ::testing::AssertionFailure() << *refused;
  std::string diagnostics;
  {
    mlir::ScopedDiagnosticHandler handler(func.getContext(),
                                          [&](mlir::Diagnostic &d) {
                                            diagnostics += d.str() + "\n";
                                            return mlir::success();
                                          });
    results = mlir::loom::interp::evaluate(func, args);
  }
  if (mlir::failed(results))
    return ::testing::AssertionFailure()
           << "the interpreter failed on '" << func.getSymName().str()
           << "': " << diagnostics;
  return ::testing::AssertionSuccess();
}

/// Creates a session of `artifact` with `params` bound by name, in place of
/// the one `session` held (destroyed only once the params are gathered).
/// Returns the runtime's status; null is success.
inline Status startSession(loom_artifact_t *artifact, const Tensors &params,
                           loom_session_t *&session) {
  loom_tensor_map_t *m = nullptr;
  if (Status s{loom_tensor_map_create(&m)})
    return s;
  RtMap map(m);
  for (auto &[name, value] : params) {
    RtTensor t = toRuntime(value);
    if (Status s{loom_tensor_map_insert(map.get(), name.c_str(), t.get())})
      return s;
  }
  loom_session_destroy(session);
  session = nullptr;
  return Status(loom_session_create(artifact, map.get(), &session));
}

/// Calls `entry` of `session` with `inputs` by name. On success `outputs`
/// holds the entry's outputs by name, and nothing else. Returns the
/// runtime's status; null is success.
inline Status invokeEntry(loom_session_t *session, const std::string &entry,
                          const Tensors &inputs, Tensors &outputs) {
  std::vector<const char *> names;
  std::vector<RtTensor> owned;
  std::vector<loom_tensor_t *> tensors;
  for (auto &[name, value] : inputs) {
    names.push_back(name.c_str());
    owned.push_back(toRuntime(value));
    tensors.push_back(owned.back().get());
  }
  loom_tensor_map_t *out = nullptr;
  outputs.clear();
  if (Status s{loom_session_invoke(session, entry.c_str(), names.size(),
                                   names.data(), tensors.data(), &out)})
    return s;
  RtMap map(out);
  for (size_t i = 0; i < loom_tensor_map_size(out); ++i)
    outputs[loom_tensor_map_name_at(out, i)] =
        fromRuntime(loom_tensor_map_tensor_at(out, i));
  return nullptr;
}

/// Parses the MLIR module `source` (named `bufferName` in diagnostics) in the
/// shared context and runs compileModule on it with `options`: the artifact
/// goes to `artifactPath`, and what the compiler prints (the stage
/// `options.stopAfter` names, if any) to `printed`. Parser and compiler
/// diagnostics end up in the failure message.
inline ::testing::AssertionResult
compileSource(StringRef source, StringRef bufferName,
              const mlir::loom::CompileOptions &options,
              llvm::raw_ostream &printed, StringRef artifactPath) {
  mlir::MLIRContext &context = getContext();
  std::string diagnostics;
  llvm::raw_string_ostream os(diagnostics);
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(source, bufferName), llvm::SMLoc());
  mlir::SourceMgrDiagnosticHandler handler(sourceMgr, &context, os);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceFile<mlir::ModuleOp>(sourceMgr, &context);
  if (!module)
    return ::testing::AssertionFailure() << "parse errors:\n" << diagnostics;
  if (mlir::failed(
          mlir::loom::compileModule(*module, options, printed, artifactPath)))
    return ::testing::AssertionFailure() << "compilation failed:\n"
                                         << diagnostics;
  return ::testing::AssertionSuccess();
}

/// An artifact compiled from a hand-written MLIR module into a fresh
/// directory, and one session of it without params: `open` in a suite's
/// SetUpTestSuite, `close` in its TearDownTestSuite (see SourceArtifactTest).
class SourceArtifact {
public:
  /// Compiles `source` with `options` to `<name>.so` in a new directory
  /// and creates the session.
  ::testing::AssertionResult open(StringRef source, const std::string &name,
                                  const mlir::loom::CompileOptions &options) {
    llvm::SmallString<128> dirPath;
    if (std::error_code ec =
            llvm::sys::fs::createUniqueDirectory("loom-" + name, dirPath))
      return ::testing::AssertionFailure()
             << "cannot create a directory: " << ec.message();
    dir = dirPath.str().str();
    std::string path = dir + "/" + name + ".so";
    std::string unused;
    llvm::raw_string_ostream printed(unused);
    if (::testing::AssertionResult compiled =
            compileSource(source, name + ".mlir", options, printed, path);
        !compiled)
      return compiled;
    if (Status s{loom_artifact_open(path.c_str(), &artifact)})
      return ::testing::AssertionFailure()
             << "cannot open the artifact: " << describe(s);
    if (Status s{loom_session_create(artifact, nullptr, &session)})
      return ::testing::AssertionFailure()
             << "cannot create the session: " << describe(s);
    return ::testing::AssertionSuccess();
  }

  /// Destroys the session and the artifact and removes the directory.
  void close() {
    loom_session_destroy(session);
    loom_artifact_close(artifact);
    session = nullptr;
    artifact = nullptr;
    if (!dir.empty())
      llvm::sys::fs::remove_directories(dir);
    dir.clear();
  }

  /// Runs `entry` on `inputs` through the runtime.
  ::testing::AssertionResult invoke(const std::string &entry,
                                    const Tensors &inputs, Tensors &outputs) {
    if (!session)
      return ::testing::AssertionFailure() << "no session";
    if (Status s = invokeEntry(session, entry, inputs, outputs))
      return ::testing::AssertionFailure() << describe(s);
    return ::testing::AssertionSuccess();
  }

private:
  std::string dir;
  loom_artifact_t *artifact = nullptr;
  loom_session_t *session = nullptr;
};

/// A suite of tests on one SourceArtifact, its own for each `Suite`: the
/// suite's SetUpTestSuite opens `artifact`, which is closed after the suite.
template <typename Suite> class SourceArtifactTest : public ::testing::Test {
protected:
  static void TearDownTestSuite() { artifact.close(); }

  static inline SourceArtifact artifact;
};

} // namespace loom::e2e

#endif // LOOM_TEST_E2E_RUNTIMEGLUE_H
