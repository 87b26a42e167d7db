//===- InterpretedExecutor.cpp - Running .loom files directly ---*- C++ -*-===//
//
// This file implements the executor behind `loom-run --interpret`: the
// `.loom` file is parsed, imported and cleaned up by the graph pipeline, and
// every call is evaluated by the float64 reference interpreter. Params,
// state and the entries' requirements follow the runtime's rules, so both
// paths accept the same files and refuse the same calls.
//
//===----------------------------------------------------------------------===//

#include "tools/loom-run/Executor.h"

#include "compiler/Artifact/Requirements.h"
#include "compiler/Interpreter/Interpreter.h"
#include "compiler/Pipelines/Pipelines.h"
#include "dialects/loom/IR/LoomDialect.h"
#include "frontend/Config.h"
#include "frontend/Importer.h"
#include "frontend/Parser.h"
#include "frontend/Sema.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/SourceMgr.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>

using namespace loom::tools;
namespace interp = mlir::loom::interp;

static loom_status_t makeError(loom_status_code_t code,
                               const std::string &message) {
  return loom_status_create(code, message.c_str());
}

/// Reads a runtime tensor into the interpreter's float64 form.
static loom_status_t toInterp(const loom_tensor_t *tensor,
                              interp::Tensor &out) {
  loom_dtype_t dtype = loom_tensor_dtype(tensor);
  loom_tensor_t *converted = nullptr;
  if (dtype == LOOM_DTYPE_F16 || dtype == LOOM_DTYPE_BF16) {
    if (loom_status_t s =
            loom_tensor_convert(tensor, LOOM_DTYPE_F32, &converted))
      return s;
    tensor = converted;
  }
  out.dtype = dtype;
  out.shape.assign(loom_tensor_dims(tensor),
                   loom_tensor_dims(tensor) + loom_tensor_rank(tensor));
  int64_t n = loom_tensor_num_elements(tensor);
  out.data.resize(n);
  const void *data = loom_tensor_data(tensor);
  for (int64_t i = 0; i < n; ++i) {
    switch (loom_tensor_dtype(tensor)) {
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
    default:
      loom_tensor_release(converted);
      return makeError(LOOM_STATUS_UNIMPLEMENTED, "unsupported dtype");
    }
  }
  loom_tensor_release(converted);
  return nullptr;
}

/// Writes an interpreter result as a runtime tensor of `dtype`.
static loom_status_t fromInterp(const interp::Tensor &value, loom_dtype_t dtype,
                                loom_tensor_t **out) {
  loom_dtype_t storage = dtype == LOOM_DTYPE_F16 || dtype == LOOM_DTYPE_BF16
                             ? LOOM_DTYPE_F32
                             : dtype;
  loom_tensor_t *tensor = nullptr;
  if (loom_status_t s =
          loom_tensor_create(storage, static_cast<int32_t>(value.shape.size()),
                             value.shape.data(), &tensor))
    return s;
  void *data = loom_tensor_data(tensor);
  for (size_t i = 0; i < value.data.size(); ++i) {
    double v = value.data[i];
    // Integers come back as whole doubles; NaN and infinities (e.g. the
    // maximum over an empty dimension) have no integer value.
    if (storage == LOOM_DTYPE_I32 || storage == LOOM_DTYPE_I64) {
      double limit = storage == LOOM_DTYPE_I32 ? 2147483647.0 : 9.2e18;
      v = std::isnan(v) ? 0.0 : std::clamp(v, -limit - 1, limit);
    }
    switch (storage) {
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
    default:
      loom_tensor_release(tensor);
      return makeError(LOOM_STATUS_UNIMPLEMENTED, "unsupported dtype");
    }
  }
  *out = tensor;
  return nullptr;
}

namespace {
/// An entry: its descriptor (in the runtime's terms) and its function.
struct Entry {
  loom_entry_desc_t desc{};
  std::vector<loom_arg_desc_t> args;
  mlir::func::FuncOp func;
  /// For each function result: the output index, or -1 for a state update.
  std::vector<int> outputOfResult;
  std::vector<std::string> stateOfResult;
};

class InterpretedExecutor final : public Executor {
public:
  InterpretedExecutor() {
    context.getOrLoadDialect<mlir::loom::LoomDialect>();
    context.getOrLoadDialect<mlir::func::FuncDialect>();
  }

  loom_status_t load(const std::string &path,
                     const std::vector<std::string> &defines,
                     const std::string &configPath) {
    std::string error;
    auto file = mlir::openInputFile(path, &error);
    if (!file)
      return makeError(LOOM_STATUS_NOT_FOUND, error);
    sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
    handler =
        std::make_unique<mlir::SourceMgrDiagnosticHandler>(sourceMgr, &context);
    auto ast = loom::frontend::parseModule(sourceMgr);
    if (!ast ||
        !loom::frontend::applyConfigOverrides(*ast, defines, configPath,
                                              sourceMgr) ||
        !loom::frontend::checkModule(*ast, sourceMgr))
      return makeError(LOOM_STATUS_INVALID_ARGUMENT,
                       "cannot load " + path + " (see above)");
    module = loom::frontend::importModule(*ast, context, sourceMgr);
    if (!module)
      return makeError(LOOM_STATUS_INVALID_ARGUMENT,
                       "cannot import " + path + " (see above)");
    mlir::PassManager pm(&context);
    if (failed(mlir::loom::buildGraphPipeline(pm)) || failed(pm.run(*module)))
      return makeError(LOOM_STATUS_INVALID_ARGUMENT,
                       "graph passes failed on " + path + " (see above)");
    for (auto func : module->getOps<mlir::func::FuncOp>())
      if (func.isPublic() && !func.isExternal())
        if (loom_status_t s = addEntry(func))
          return s;
    return nullptr;
  }

  uint32_t entryCount() const override { return entries.size(); }
  const loom_entry_desc_t *entryAt(uint32_t index) const override {
    return index < entries.size() ? &entries[index].desc : nullptr;
  }

  loom_status_t start(const loom_tensor_map_t *params) override {
    for (const Entry &entry : entries) {
      for (const loom_arg_desc_t &arg : entry.args) {
        if (arg.role == LOOM_ROLE_STATE && !states.count(arg.binding)) {
          interp::Tensor zero;
          zero.dtype = arg.dtype;
          zero.shape.assign(arg.dims, arg.dims + arg.rank);
          zero.data.assign(zero.getNumElements(), 0.0);
          states[arg.binding] = std::move(zero);
        }
        if (arg.role != LOOM_ROLE_PARAM || paramValues.count(arg.binding))
          continue;
        const loom_tensor_t *tensor =
            params ? loom_tensor_map_find(params, arg.binding) : nullptr;
        if (!tensor)
          return makeError(LOOM_STATUS_NOT_FOUND,
                           "missing param '" + std::string(arg.binding) +
                               "' (" + arg.name + " of entry " +
                               entry.desc.name + ")");
        if (loom_status_t s = checkTensor(arg, tensor, "param"))
          return s;
        interp::Tensor value;
        if (loom_status_t s = toInterp(tensor, value))
          return s;
        paramValues[arg.binding] = std::move(value);
      }
    }
    return nullptr;
  }

  loom_status_t call(uint32_t index, loom_tensor_t *const *inputs,
                     loom_tensor_t **outputs) override {
    Entry &entry = entries[index];
    // Requirements first, with exact integer inputs: a refused call changes
    // no state.
    std::vector<mlir::loom::CallInput> callInputs;
    for (uint32_t i = 0; i < entry.desc.num_inputs; ++i) {
      const loom_tensor_t *tensor = inputs[i];
      mlir::loom::CallInput in;
      in.shape = llvm::ArrayRef<int64_t>(loom_tensor_dims(tensor),
                                         loom_tensor_rank(tensor));
      if (loom_tensor_rank(tensor) == 0) {
        if (loom_tensor_dtype(tensor) == LOOM_DTYPE_I64)
          in.scalar = *static_cast<const int64_t *>(loom_tensor_data(tensor));
        else if (loom_tensor_dtype(tensor) == LOOM_DTYPE_I32)
          in.scalar = *static_cast<const int32_t *>(loom_tensor_data(tensor));
      }
      callInputs.push_back(in);
    }
    if (std::optional<std::string> failure =
            mlir::loom::checkRequirements(entry.func, callInputs))
      return makeError(LOOM_STATUS_INVALID_ARGUMENT, *failure);

    std::vector<interp::Tensor> args;
    for (const loom_arg_desc_t &arg : entry.args) {
      if (arg.role == LOOM_ROLE_INPUT) {
        const loom_tensor_t *tensor = inputs[args.size()];
        if (loom_tensor_dtype(tensor) != arg.dtype)
          return makeError(LOOM_STATUS_INVALID_ARGUMENT,
                           "input '" + std::string(arg.name) + "' has dtype " +
                               loom_dtype_name(loom_tensor_dtype(tensor)) +
                               ", expected " + loom_dtype_name(arg.dtype));
        interp::Tensor value;
        if (loom_status_t s = toInterp(tensor, value))
          return s;
        args.push_back(std::move(value));
      } else if (arg.role == LOOM_ROLE_PARAM) {
        args.push_back(paramValues.at(arg.binding));
      } else if (arg.role == LOOM_ROLE_STATE) {
        args.push_back(states.at(arg.binding));
      }
    }
    mlir::FailureOr<std::vector<interp::Tensor>> results =
        interp::evaluate(entry.func, args);
    if (failed(results))
      return makeError(LOOM_STATUS_INVALID_ARGUMENT,
                       "interpreting entry '" + std::string(entry.desc.name) +
                           "' failed (see above)");
    uint32_t firstOutput = entry.desc.num_args - entry.desc.num_outputs;
    // Outputs must have the sizes their declarations give for these inputs,
    // as the compiled entry checks.
    std::map<std::string, int64_t> bound;
    for (uint32_t i = 0; i < entry.desc.num_inputs; ++i)
      for (int32_t d = 0; d < entry.args[i].rank; ++d)
        if (entry.args[i].dim_symbols[d])
          bound[entry.args[i].dim_symbols[d]] = args[i].shape[d];
    for (size_t r = 0; r < results->size(); ++r) {
      if (entry.outputOfResult[r] < 0)
        continue;
      const loom_arg_desc_t &arg =
          entry.args[firstOutput + entry.outputOfResult[r]];
      for (int32_t d = 0; d < arg.rank; ++d) {
        auto it =
            arg.dim_symbols[d] ? bound.find(arg.dim_symbols[d]) : bound.end();
        if (it != bound.end() && (*results)[r].shape[d] != it->second)
          return makeError(LOOM_STATUS_INVALID_ARGUMENT,
                           "entry '" + std::string(entry.desc.name) +
                               "': an output's computed size differs from "
                               "its declared dimensions for these inputs");
      }
    }
    for (size_t r = 0; r < results->size(); ++r) {
      if (entry.outputOfResult[r] < 0) {
        states[entry.stateOfResult[r]] = (*results)[r];
        continue;
      }
      int o = entry.outputOfResult[r];
      if (loom_status_t s = fromInterp(
              (*results)[r], entry.args[firstOutput + o].dtype, &outputs[o])) {
        for (int j = 0; j < o; ++j)
          loom_tensor_release(outputs[j]);
        return s;
      }
    }
    return nullptr;
  }

  loom_status_t addStates(loom_tensor_map_t *out) override {
    for (const auto &[name, value] : states) {
      if (loom_tensor_map_find(out, name.c_str()))
        continue;
      loom_tensor_t *tensor = nullptr;
      if (loom_status_t s = fromInterp(
              value, static_cast<loom_dtype_t>(value.dtype), &tensor))
        return s;
      loom_status_t s = loom_tensor_map_insert(out, name.c_str(), tensor);
      loom_tensor_release(tensor);
      if (s)
        return s;
    }
    return nullptr;
  }

private:
  const char *keep(llvm::StringRef s) {
    strings.emplace_back(s.str());
    return strings.back().c_str();
  }

  static std::string attrString(mlir::DictionaryAttr attrs, llvm::StringRef key,
                                llvm::StringRef fallback) {
    if (attrs)
      if (auto s = attrs.getAs<mlir::StringAttr>(key))
        return s.getValue().str();
    return fallback.str();
  }

  loom_status_t describe(mlir::Type type, mlir::DictionaryAttr attrs,
                         loom_arg_role_t role, loom_arg_desc_t &arg) {
    auto tensor = llvm::cast<mlir::RankedTensorType>(type);
    arg.role = role;
    arg.dtype =
        static_cast<loom_dtype_t>(interp::getDtype(tensor.getElementType()));
    arg.rank = tensor.getRank();
    std::string name = attrString(attrs, "loom.name", "?");
    arg.name = keep(name);
    arg.binding = keep(attrString(attrs, "loom.binding", name));
    auto dims = attrs ? attrs.getAs<mlir::ArrayAttr>("loom.dims") : nullptr;
    for (int64_t d = 0; d < arg.rank; ++d) {
      arg.dims[d] = tensor.isDynamicDim(d) ? -1 : tensor.getDimSize(d);
      arg.dim_symbols[d] = nullptr;
      if (tensor.isDynamicDim(d) && dims && d < (int64_t)dims.size())
        if (auto s = llvm::dyn_cast<mlir::StringAttr>(dims[d]))
          arg.dim_symbols[d] = keep(s.getValue());
    }
    return nullptr;
  }

  loom_status_t addEntry(mlir::func::FuncOp func) {
    Entry entry;
    entry.func = func;
    std::string error;
    if (!mlir::loom::readRequirements(func, error))
      return makeError(LOOM_STATUS_INVALID_ARGUMENT,
                       "entry '" + func.getSymName().str() + "': " + error);
    for (unsigned i = 0; i < func.getNumArguments(); ++i) {
      mlir::DictionaryAttr attrs = func.getArgAttrDict(i);
      std::string role = attrString(attrs, "loom.role", "input");
      loom_arg_desc_t arg{};
      describe(func.getArgumentTypes()[i], attrs,
               role == "param"   ? LOOM_ROLE_PARAM
               : role == "state" ? LOOM_ROLE_STATE
                                 : LOOM_ROLE_INPUT,
               arg);
      entry.args.push_back(arg);
      if (arg.role == LOOM_ROLE_INPUT)
        ++entry.desc.num_inputs;
      else if (arg.role == LOOM_ROLE_PARAM)
        ++entry.desc.num_params;
      else
        ++entry.desc.num_states;
    }
    for (unsigned r = 0; r < func.getNumResults(); ++r) {
      mlir::DictionaryAttr attrs = func.getResultAttrDict(r);
      if (attrString(attrs, "loom.role", "output") == "state") {
        entry.outputOfResult.push_back(-1);
        entry.stateOfResult.push_back(attrString(attrs, "loom.name", ""));
        continue;
      }
      loom_arg_desc_t arg{};
      describe(func.getResultTypes()[r], attrs, LOOM_ROLE_OUTPUT, arg);
      entry.outputOfResult.push_back(entry.desc.num_outputs++);
      entry.stateOfResult.emplace_back();
      entry.args.push_back(arg);
    }
    entry.desc.name = keep(func.getSymName());
    entry.desc.symbol = entry.desc.name;
    entries.push_back(std::move(entry));
    // Descriptors point into the vectors: refresh after every growth.
    for (Entry &e : entries) {
      e.desc.args = e.args.data();
      e.desc.num_args = e.args.size();
    }
    return nullptr;
  }

  static loom_status_t checkTensor(const loom_arg_desc_t &arg,
                                   const loom_tensor_t *tensor,
                                   const char *what) {
    bool ok = loom_tensor_dtype(tensor) == arg.dtype &&
              loom_tensor_rank(tensor) == arg.rank;
    for (int32_t d = 0; ok && d < arg.rank; ++d)
      ok = arg.dims[d] < 0 || loom_tensor_dims(tensor)[d] == arg.dims[d];
    if (ok)
      return nullptr;
    std::string expected = std::string(loom_dtype_name(arg.dtype)) + "[";
    for (int32_t d = 0; d < arg.rank; ++d)
      expected +=
          (d ? ", " : "") +
          (arg.dims[d] < 0
               ? std::string(arg.dim_symbols[d] ? arg.dim_symbols[d] : "?")
               : std::to_string(arg.dims[d]));
    std::string actual =
        std::string(loom_dtype_name(loom_tensor_dtype(tensor))) + "[";
    for (int32_t d = 0; d < loom_tensor_rank(tensor); ++d)
      actual += (d ? ", " : "") + std::to_string(loom_tensor_dims(tensor)[d]);
    return makeError(LOOM_STATUS_INVALID_ARGUMENT,
                     std::string(what) + " '" + arg.binding + "' is " + actual +
                         "], expected " + expected + "]");
  }

  mlir::MLIRContext context;
  llvm::SourceMgr sourceMgr;
  std::unique_ptr<mlir::SourceMgrDiagnosticHandler> handler;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  std::deque<std::string> strings;
  std::vector<Entry> entries;
  std::map<std::string, interp::Tensor> paramValues;
  std::map<std::string, interp::Tensor> states;
};
} // namespace

bool loom::tools::canInterpret() { return true; }

loom_status_t loom::tools::openInterpreted(
    const std::string &path, const std::vector<std::string> &defines,
    const std::string &configPath, std::unique_ptr<Executor> &out) {
  auto executor = std::make_unique<InterpretedExecutor>();
  if (loom_status_t s = executor->load(path, defines, configPath))
    return s;
  out = std::move(executor);
  return nullptr;
}
