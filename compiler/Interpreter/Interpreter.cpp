//===- Interpreter.cpp - Reference evaluator of loom ------------*- C++ -*-===//
//
// This file implements the reference interpreter of the `loom` dialect. A
// func is evaluated op by op over a map from SSA values to float64 tensors;
// every op checks the run-time sizes its type cannot promise (two `?`
// dimensions that must be equal, a contraction dimension, a weight length)
// and reports a mismatch on itself. Intermediate tensors are released after
// their last use so that graphs over large tensors stay within memory.
//
//===----------------------------------------------------------------------===//

#include "compiler/Interpreter/Interpreter.h"

#include "dialects/loom/IR/LoomOps.h"
#include "loom/abi.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <string>

using namespace mlir;
using namespace mlir::loom;
using namespace mlir::loom::interp;

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

/// Calls nested deeper than this are reported instead of overflowing the
/// stack on a (malformed) recursive graph.
static constexpr unsigned kMaxCallDepth = 64;

/// The largest tensor the interpreter allocates (8 GiB of doubles). Larger
/// results only come from bad shapes, and a failed allocation would abort.
static constexpr int64_t kMaxElements = int64_t(1) << 30;

/// How the values of a tensor are interpreted.
enum class Kind { Float, Int, Bool };

static Kind kindOf(Type elementType) {
  if (elementType.isInteger(1))
    return Kind::Bool;
  if (isa<IntegerType>(elementType))
    return Kind::Int;
  return Kind::Float;
}

/// The declared type of a value the evaluator holds; every such value was
/// checked to be a ranked tensor when it was stored.
static RankedTensorType typeOf(Value value) {
  return cast<RankedTensorType>(value.getType());
}

static Kind kindOf(Value value) {
  return kindOf(typeOf(value).getElementType());
}

/// Prints a shape as `[?, 64]`.
static std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string result;
  llvm::raw_string_ostream os(result);
  os << '[';
  llvm::interleaveComma(shape, os, [&](int64_t d) {
    if (ShapedType::isDynamic(d))
      os << '?';
    else
      os << d;
  });
  os << ']';
  return result;
}

static StringRef dtypeName(uint32_t dtype) {
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

/// Returns the product of `shape`, or nullopt when a dimension is negative
/// or the product exceeds kMaxElements.
static std::optional<int64_t> checkedProduct(ArrayRef<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, d, &n) || n > kMaxElements)
      return std::nullopt;
  return n;
}

/// Product of shape[begin, end); the shapes passed are those of tensors that
/// exist, so the product cannot overflow.
static int64_t product(ArrayRef<int64_t> shape, size_t begin, size_t end) {
  int64_t n = 1;
  for (size_t i = begin; i < end; ++i)
    n *= shape[i];
  return n;
}

static SmallVector<int64_t> rowMajorStrides(ArrayRef<int64_t> shape) {
  SmallVector<int64_t> strides(shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

/// Converts a double that holds an integer to int64, saturating (NaN gives
/// 0): the plain conversion of an out-of-range double is undefined.
static int64_t toInt64(double v) {
  if (std::isnan(v))
    return 0;
  if (v >= 9223372036854775808.0)
    return std::numeric_limits<int64_t>::max();
  if (v < -9223372036854775808.0)
    return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(v);
}

/// Two's-complement arithmetic without the undefined behavior of signed
/// overflow.
static int64_t wrapAdd(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) +
                              static_cast<uint64_t>(b));
}
static int64_t wrapSub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) -
                              static_cast<uint64_t>(b));
}
static int64_t wrapMul(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) *
                              static_cast<uint64_t>(b));
}

/// Converts `v`, a value of kind `from`, to the element type `to` with the
/// semantics of `loom.cast`: float to integer truncates toward zero
/// (saturating, NaN to 0), integer to narrower integer wraps, anything to
/// bool is `!= 0`, and floats of every width stay float64.
static double convertValue(double v, Kind from, Type to) {
  if (to.isInteger(1))
    return v != 0 ? 1.0 : 0.0;
  auto intType = dyn_cast<IntegerType>(to);
  if (!intType)
    return v;
  bool narrow = intType.getWidth() == 32;
  if (from == Kind::Float) {
    if (std::isnan(v))
      return 0.0;
    double t = std::trunc(v);
    if (narrow)
      return std::clamp(t, -2147483648.0, 2147483647.0);
    return static_cast<double>(toInt64(t));
  }
  int64_t i = toInt64(v);
  if (narrow)
    i = static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(i)));
  return static_cast<double>(i);
}

/// NaN-propagating maximum and minimum that order -0 below +0, as
/// `arith.maximumf`/`arith.minimumf` and torch.maximum do.
static double maxOf(double a, double b) {
  if (std::isnan(a) || std::isnan(b))
    return std::numeric_limits<double>::quiet_NaN();
  if (a == b)
    return std::signbit(a) ? b : a;
  return a > b ? a : b;
}
static double minOf(double a, double b) {
  if (std::isnan(a) || std::isnan(b))
    return std::numeric_limits<double>::quiet_NaN();
  if (a == b)
    return std::signbit(a) ? a : b;
  return a < b ? a : b;
}

/// The logistic function, evaluated so that exp never overflows.
static double sigmoid(double x) {
  if (x >= 0)
    return 1.0 / (1.0 + std::exp(-x));
  double e = std::exp(x);
  return e / (1.0 + e);
}

uint32_t mlir::loom::interp::getDtype(Type elementType) {
  if (elementType.isF32())
    return LOOM_DTYPE_F32;
  if (elementType.isF64())
    return LOOM_DTYPE_F64;
  if (elementType.isF16())
    return LOOM_DTYPE_F16;
  if (elementType.isBF16())
    return LOOM_DTYPE_BF16;
  if (auto intType = dyn_cast<IntegerType>(elementType)) {
    if (!intType.isSignless())
      return LOOM_DTYPE_INVALID;
    switch (intType.getWidth()) {
    case 1:
      return LOOM_DTYPE_BOOL;
    case 32:
      return LOOM_DTYPE_I32;
    case 64:
      return LOOM_DTYPE_I64;
    default:
      return LOOM_DTYPE_INVALID;
    }
  }
  return LOOM_DTYPE_INVALID;
}

int64_t Tensor::getNumElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

//===----------------------------------------------------------------------===//
// Broadcast iteration
//===----------------------------------------------------------------------===//

namespace {
/// One operand of a broadcast: its run-time shape and its declared shape.
/// Only a declared static 1 stretches; a `?` must match at run time.
struct BroadcastInput {
  ArrayRef<int64_t> shape;
  ArrayRef<int64_t> declared;
};

/// The common shape of a broadcast and, per operand, the stride of each of
/// its dimensions in the operand's elements (0 where the operand stretches).
struct BroadcastPlan {
  SmallVector<int64_t> shape;
  SmallVector<SmallVector<int64_t>, 3> strides;
};
} // namespace

/// Computes the run-time broadcast of `inputs`, to `target` when given.
/// Reports on `op` a dimension where two operands (or an operand and the
/// target) disagree.
static FailureOr<BroadcastPlan>
planBroadcast(Operation *op, ArrayRef<BroadcastInput> inputs,
              std::optional<ArrayRef<int64_t>> target) {
  size_t rank = 0;
  if (target) {
    rank = target->size();
  } else {
    for (const BroadcastInput &in : inputs)
      rank = std::max(rank, in.shape.size());
  }
  BroadcastPlan plan;
  plan.shape.assign(rank, 1);
  for (size_t d = 0; d < rank; ++d) {
    int64_t size = target ? (*target)[d] : -1;
    int64_t from = -1;
    for (auto [k, in] : llvm::enumerate(inputs)) {
      if (in.shape.size() > rank)
        return op->emitOpError("operand #")
               << k << " of shape " << shapeStr(in.shape)
               << " has more dimensions than the target " << shapeStr(*target);
      size_t offset = rank - in.shape.size();
      if (d < offset)
        continue;
      int64_t s = in.shape[d - offset];
      bool stretches = in.declared.size() == in.shape.size() &&
                       in.declared[d - offset] == 1 && s == 1;
      if (stretches)
        continue;
      if (size < 0) {
        size = s;
        from = static_cast<int64_t>(k);
        continue;
      }
      if (size == s)
        continue;
      InFlightDiagnostic diag = op->emitOpError("operand #");
      diag << k << " has size " << s << " in dimension " << d
           << " of the broadcast, where ";
      if (from < 0)
        diag << "the target " << shapeStr(*target) << " has size " << size;
      else
        diag << "operand #" << from << " has size " << size << " (shapes "
             << shapeStr(inputs[from].shape) << " and " << shapeStr(in.shape)
             << ")";
      return diag;
    }
    plan.shape[d] = size < 0 ? 1 : size;
  }
  for (const BroadcastInput &in : inputs) {
    SmallVector<int64_t> own = rowMajorStrides(in.shape);
    SmallVector<int64_t> strides(rank, 0);
    size_t offset = rank - in.shape.size();
    for (size_t j = 0; j < in.shape.size(); ++j)
      if (in.shape[j] != 1)
        strides[offset + j] = own[j];
    plan.strides.push_back(std::move(strides));
  }
  return plan;
}

/// Calls `fn(linear, offsets)` for every element of `shape` in row-major
/// order, where `offsets[k]` is the element's position in operand k given
/// the operand's `strides[k]`. The innermost dimension is a plain loop so
/// that the common case costs an add per operand.
template <size_t N, typename Fn>
static void forEachOffset(ArrayRef<int64_t> shape,
                          const std::array<ArrayRef<int64_t>, N> &strides,
                          Fn fn) {
  int64_t numel = product(shape, 0, shape.size());
  if (numel == 0)
    return;
  std::array<int64_t, N> base{};
  if (shape.empty()) {
    fn(int64_t(0), base);
    return;
  }
  size_t rank = shape.size();
  int64_t inner = shape[rank - 1];
  std::array<int64_t, N> innerStride;
  for (size_t k = 0; k < N; ++k)
    innerStride[k] = strides[k][rank - 1];
  SmallVector<int64_t, 8> index(rank, 0);
  for (int64_t linear = 0; linear < numel; linear += inner) {
    std::array<int64_t, N> offsets = base;
    for (int64_t j = 0; j < inner; ++j) {
      fn(linear + j, offsets);
      for (size_t k = 0; k < N; ++k)
        offsets[k] += innerStride[k];
    }
    for (int64_t d = static_cast<int64_t>(rank) - 2; d >= 0; --d) {
      for (size_t k = 0; k < N; ++k)
        base[k] += strides[k][d];
      if (++index[d] < shape[d])
        break;
      for (size_t k = 0; k < N; ++k)
        base[k] -= strides[k][d] * shape[d];
      index[d] = 0;
    }
  }
}

/// Allocates the result of `op` with `shape`, filled with `fill`. Refuses
/// shapes beyond kMaxElements rather than let the allocation abort.
static FailureOr<Tensor> allocate(Operation *op, ArrayRef<int64_t> shape,
                                  double fill = 0.0) {
  std::optional<int64_t> numel = checkedProduct(shape);
  if (!numel)
    return op->emitOpError("result shape ")
           << shapeStr(shape) << " is invalid or has more than " << kMaxElements
           << " elements";
  Tensor t;
  t.shape.assign(shape.begin(), shape.end());
  t.data.assign(*numel, fill);
  return t;
}

/// Normalizes and checks an axis attribute against a run-time rank; the
/// verifier checked it against the declared rank, which is the same, but a
/// wrong axis would index out of bounds.
static FailureOr<int64_t> checkAxis(Operation *op, uint64_t rawAxis,
                                    size_t rank) {
  int64_t axis = static_cast<int64_t>(rawAxis);
  if (axis < 0 || axis >= static_cast<int64_t>(rank))
    return op->emitOpError("axis ")
           << axis << " is out of range for rank " << rank;
  return axis;
}

//===----------------------------------------------------------------------===//
// Evaluator
//===----------------------------------------------------------------------===//

namespace {
/// Evaluates one func on one set of arguments. A `func.call` runs a fresh
/// Evaluator one level deeper.
class Evaluator {
public:
  explicit Evaluator(unsigned depth) : depth(depth) {}

  FailureOr<std::vector<Tensor>> run(func::FuncOp func, ArrayRef<Tensor> args);

private:
  const Tensor &get(Value value) const { return values.find(value)->second; }
  ArrayRef<int64_t> declared(Value value) const {
    return typeOf(value).getShape();
  }

  LogicalResult bindArguments(func::FuncOp func, ArrayRef<Tensor> args);
  LogicalResult evalOp(Operation *op);
  LogicalResult evalCall(func::CallOp call);
  FailureOr<Tensor> evalLoomOp(Operation *op);

  template <size_t N, typename Fn>
  FailureOr<Tensor> elementwise(Operation *op, std::array<Value, N> operands,
                                Fn fn,
                                std::optional<ArrayRef<int64_t>> target = {});
  template <typename Fn>
  FailureOr<Tensor> unary(Operation *op, Value operand, Fn fn);
  template <typename FloatFn, typename IntFn>
  FailureOr<Tensor> binary(Operation *op, Value lhs, Value rhs, FloatFn floatFn,
                           IntFn intFn);

  FailureOr<Tensor> evalConstant(ConstantOp op);
  FailureOr<Tensor> evalIota(IotaOp op);
  FailureOr<Tensor> evalDiv(DivOp op);
  FailureOr<Tensor> evalCmp(CmpOp op);
  FailureOr<Tensor> evalCast(CastOp op);
  enum class Reduction { Sum, Mean, Max, Min };
  FailureOr<Tensor> evalReduce(Operation *op, Value operand,
                               ArrayRef<int64_t> axes, bool keepdim,
                               Reduction reduction);
  FailureOr<Tensor> evalSoftmax(Operation *op, Value operand, uint64_t axis,
                                bool log);
  FailureOr<std::vector<double>> tokenLogits(Operation *op, Value input,
                                             Value ids, Value weight,
                                             double temperature,
                                             int64_t &vocab);
  FailureOr<Tensor> evalTokenLogprob(TokenLogprobOp op);
  FailureOr<std::vector<Tensor>> evalTokenLogprobGrad(TokenLogprobGradOp op);
  FailureOr<Tensor> evalKl(KlOp op);
  FailureOr<Tensor> evalGae(GaeOp op);
  FailureOr<Tensor> evalRmsNorm(RmsNormOp op);
  FailureOr<Tensor> evalMatmul(MatmulOp op);
  FailureOr<Tensor> evalLinear(LinearOp op);
  FailureOr<Tensor> evalReshape(ReshapeOp op);
  FailureOr<Tensor> evalTranspose(TransposeOp op);
  FailureOr<Tensor> evalSlice(SliceOp op);
  FailureOr<Tensor> evalConcat(ConcatOp op);
  FailureOr<Tensor> evalGather(GatherOp op);
  FailureOr<Tensor> evalDynamicSlice(DynamicSliceOp op);
  FailureOr<Tensor> evalDynamicUpdateSlice(DynamicUpdateSliceOp op);
  FailureOr<Tensor> evalBroadcast(BroadcastOp op);
  FailureOr<std::vector<Tensor>> evalMlaAttention(MlaAttentionOp op);
  FailureOr<std::vector<Tensor>> evalAttention(AttentionOp op);

  /// Checks `t` against the declared `type` of the value it becomes and sets
  /// its dtype; a mismatch is an interpreter or verifier bug, reported on
  /// `op` rather than carried on.
  static LogicalResult checkResult(Operation *op, Type type, Tensor &t);

  unsigned depth;
  llvm::DenseMap<Value, Tensor> values;
};
} // namespace

/// Names argument `i` of `func` for messages: `argument 1 ('x')`.
static std::string argLabel(func::FuncOp func, unsigned i) {
  std::string label = "argument " + std::to_string(i);
  if (auto name = func.getArgAttrOfType<StringAttr>(i, "loom.name"))
    label += " ('" + name.getValue().str() + "')";
  return label;
}

LogicalResult Evaluator::bindArguments(func::FuncOp func,
                                       ArrayRef<Tensor> args) {
  if (args.size() != func.getNumArguments())
    return func.emitError("'")
           << func.getSymName() << "' takes " << func.getNumArguments()
           << " arguments, got " << args.size();
  // Symbolic dimension name -> (size, argument that bound it).
  llvm::StringMap<std::pair<int64_t, unsigned>> symbols;
  for (auto [i, arg] : llvm::enumerate(func.getArguments())) {
    const Tensor &given = args[i];
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    if (!type)
      return func.emitError()
             << argLabel(func, i) << " has type " << arg.getType()
             << ", which is not a ranked tensor";
    uint32_t dtype = getDtype(type.getElementType());
    if (dtype == LOOM_DTYPE_INVALID)
      return func.emitError()
             << argLabel(func, i) << " has unsupported element type "
             << type.getElementType();
    if (given.dtype != dtype)
      return func.emitError()
             << argLabel(func, i) << " has dtype " << dtypeName(given.dtype)
             << ", expected " << dtypeName(dtype) << " for " << type;
    if (static_cast<int64_t>(given.shape.size()) != type.getRank())
      return func.emitError()
             << argLabel(func, i) << " has rank " << given.shape.size()
             << " (shape " << shapeStr(given.shape) << "), expected "
             << type.getRank() << " for " << type;
    for (auto [d, size] : llvm::enumerate(given.shape)) {
      int64_t want = type.getDimSize(d);
      if (size < 0 || (!ShapedType::isDynamic(want) && size != want))
        return func.emitError()
               << argLabel(func, i) << " has shape " << shapeStr(given.shape)
               << ", which does not match " << type << " in dimension " << d;
    }
    std::optional<int64_t> numel = checkedProduct(given.shape);
    if (!numel || static_cast<size_t>(*numel) != given.data.size())
      return func.emitError()
             << argLabel(func, i) << " has " << given.data.size()
             << " values for shape " << shapeStr(given.shape);
    if (auto dims = func.getArgAttrOfType<ArrayAttr>(i, "loom.dims")) {
      for (auto [d, dim] : llvm::enumerate(dims)) {
        auto symbol = dyn_cast<StringAttr>(dim);
        if (!symbol || d >= given.shape.size())
          continue;
        auto [it, inserted] = symbols.try_emplace(
            symbol.getValue(), std::make_pair(given.shape[d], unsigned(i)));
        if (!inserted && it->second.first != given.shape[d])
          return func.emitError()
                 << "symbolic dimension '" << symbol.getValue() << "' is "
                 << it->second.first << " in "
                 << argLabel(func, it->second.second) << " and "
                 << given.shape[d] << " in " << argLabel(func, i);
      }
    }
    Tensor bound = given;
    Kind kind = kindOf(type.getElementType());
    if (kind != Kind::Float)
      for (double &v : bound.data)
        v = convertValue(v, Kind::Float, type.getElementType());
    values[arg] = std::move(bound);
  }
  return success();
}

LogicalResult Evaluator::checkResult(Operation *op, Type type, Tensor &t) {
  auto tensorType = dyn_cast<RankedTensorType>(type);
  if (!tensorType)
    return op->emitOpError("result type ") << type << " is not a ranked tensor";
  uint32_t dtype = getDtype(tensorType.getElementType());
  if (dtype == LOOM_DTYPE_INVALID)
    return op->emitOpError("result has unsupported element type ")
           << tensorType.getElementType();
  bool matches = static_cast<int64_t>(t.shape.size()) == tensorType.getRank();
  for (size_t d = 0; matches && d < t.shape.size(); ++d)
    matches = ShapedType::isDynamic(tensorType.getDimSize(d)) ||
              tensorType.getDimSize(d) == t.shape[d];
  if (!matches)
    return op->emitOpError("computed shape ")
           << shapeStr(t.shape) << ", which does not match the result type "
           << type;
  t.dtype = dtype;
  return success();
}

FailureOr<std::vector<Tensor>> Evaluator::run(func::FuncOp func,
                                              ArrayRef<Tensor> args) {
  if (func.isExternal())
    return func.emitError("cannot evaluate '")
           << func.getSymName() << "': it has no body";
  if (!func.getBody().hasOneBlock())
    return func.emitError("cannot evaluate '")
           << func.getSymName() << "': it has more than one block";
  if (failed(bindArguments(func, args)))
    return failure();

  // Release every tensor after its last use; an unused argument goes now.
  Block &block = func.front();
  llvm::DenseMap<Value, Operation *> lastUse;
  for (Operation &op : block)
    for (Value operand : op.getOperands())
      lastUse[operand] = &op;
  for (BlockArgument arg : block.getArguments())
    if (!lastUse.count(arg))
      values.erase(arg);

  for (Operation &op : block) {
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      ArrayRef<Type> resultTypes = func.getResultTypes();
      if (ret.getNumOperands() != resultTypes.size())
        return ret.emitOpError("returns ")
               << ret.getNumOperands() << " values, the function declares "
               << resultTypes.size();
      std::vector<Tensor> results;
      for (auto [value, type] : llvm::zip(ret.getOperands(), resultTypes)) {
        auto it = values.find(value);
        if (it == values.end())
          return ret.emitOpError("returns a value the interpreter has not "
                                 "computed");
        results.push_back(it->second);
        if (failed(checkResult(ret, type, results.back())))
          return failure();
      }
      return results;
    }
    if (failed(evalOp(&op)))
      return failure();
    for (Value operand : op.getOperands())
      if (lastUse.lookup(operand) == &op)
        values.erase(operand);
    for (Value result : op.getResults())
      if (result.use_empty())
        values.erase(result);
  }
  return func.emitError("cannot evaluate '")
         << func.getSymName() << "': its body has no func.return";
}

LogicalResult Evaluator::evalOp(Operation *op) {
  for (Value operand : op->getOperands())
    if (!values.count(operand))
      return op->emitOpError("uses a value the interpreter has not computed");
  if (auto call = dyn_cast<func::CallOp>(op))
    return evalCall(call);
  if (isa<GradOp>(op))
    return op->emitError("'loom.grad' must be expanded by loom-autodiff "
                         "first");
  if (isa<MlaAttentionOp, AttentionOp, TokenLogprobGradOp>(op)) {
    FailureOr<std::vector<Tensor>> results =
        llvm::TypeSwitch<Operation *, FailureOr<std::vector<Tensor>>>(op)
            .Case([&](AttentionOp op) { return evalAttention(op); })
            .Case([&](MlaAttentionOp op) { return evalMlaAttention(op); })
            .Case(
                [&](TokenLogprobGradOp op) { return evalTokenLogprobGrad(op); })
            .Default([](Operation *) { return failure(); });
    if (failed(results))
      return failure();
    for (auto [value, result] : llvm::zip(op->getResults(), *results)) {
      if (failed(checkResult(op, value.getType(), result)))
        return failure();
      values[value] = std::move(result);
    }
    return success();
  }
  if (!isa_and_nonnull<LoomDialect>(op->getDialect()) ||
      op->getNumResults() != 1)
    return op->emitOpError("is not supported by the interpreter");
  FailureOr<Tensor> result = evalLoomOp(op);
  if (failed(result) ||
      failed(checkResult(op, op->getResult(0).getType(), *result)))
    return failure();
  values[op->getResult(0)] = std::move(*result);
  return success();
}

LogicalResult Evaluator::evalCall(func::CallOp call) {
  if (depth + 1 >= kMaxCallDepth)
    return call.emitOpError("nests calls deeper than ")
           << kMaxCallDepth << " levels (is the graph recursive?)";
  auto callee = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(
      call, call.getCalleeAttr());
  if (!callee)
    return call.emitOpError("calls '")
           << call.getCallee() << "', which is not a func.func in scope";
  std::vector<Tensor> args;
  args.reserve(call.getNumOperands());
  for (Value operand : call.getOperands())
    args.push_back(get(operand));
  Evaluator inner(depth + 1);
  FailureOr<std::vector<Tensor>> results = inner.run(callee, args);
  if (failed(results))
    return failure();
  if (results->size() != call.getNumResults())
    return call.emitOpError("expects ")
           << call.getNumResults() << " results, the callee returned "
           << results->size();
  for (auto [result, tensor] : llvm::zip(call.getResults(), *results)) {
    if (failed(checkResult(call, result.getType(), tensor)))
      return failure();
    values[result] = std::move(tensor);
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Elementwise ops
//===----------------------------------------------------------------------===//

template <size_t N, typename Fn>
FailureOr<Tensor>
Evaluator::elementwise(Operation *op, std::array<Value, N> operands, Fn fn,
                       std::optional<ArrayRef<int64_t>> target) {
  SmallVector<BroadcastInput, 3> inputs;
  for (Value v : operands)
    inputs.push_back({get(v).shape, declared(v)});
  FailureOr<BroadcastPlan> plan = planBroadcast(op, inputs, target);
  if (failed(plan))
    return failure();
  FailureOr<Tensor> result = allocate(op, plan->shape);
  if (failed(result))
    return failure();
  std::array<const double *, N> in;
  std::array<ArrayRef<int64_t>, N> strides;
  for (size_t k = 0; k < N; ++k) {
    in[k] = get(operands[k]).data.data();
    strides[k] = plan->strides[k];
  }
  double *out = result->data.data();
  forEachOffset<N>(plan->shape, strides,
                   [&](int64_t linear, const std::array<int64_t, N> &offs) {
                     std::array<double, N> v;
                     for (size_t k = 0; k < N; ++k)
                       v[k] = in[k][offs[k]];
                     out[linear] = fn(v);
                   });
  return result;
}

template <typename Fn>
FailureOr<Tensor> Evaluator::unary(Operation *op, Value operand, Fn fn) {
  const Tensor &in = get(operand);
  FailureOr<Tensor> result = allocate(op, in.shape);
  if (failed(result))
    return failure();
  for (size_t i = 0, e = in.data.size(); i < e; ++i)
    result->data[i] = fn(in.data[i]);
  return result;
}

/// Applies `intFn` on int64 values when the operands are integers (so that
/// results are exact and wrap like two's complement) and `floatFn` otherwise.
template <typename FloatFn, typename IntFn>
FailureOr<Tensor> Evaluator::binary(Operation *op, Value lhs, Value rhs,
                                    FloatFn floatFn, IntFn intFn) {
  if (kindOf(lhs) == Kind::Int)
    return elementwise<2>(op, {lhs, rhs}, [&](const std::array<double, 2> &v) {
      return static_cast<double>(intFn(toInt64(v[0]), toInt64(v[1])));
    });
  return elementwise<2>(op, {lhs, rhs}, [&](const std::array<double, 2> &v) {
    return floatFn(v[0], v[1]);
  });
}

FailureOr<Tensor> Evaluator::evalDiv(DivOp op) {
  // Integer division by zero gives 0 and MIN / -1 gives MIN, as the dialect
  // defines it (and as NumPy does for the former).
  return binary(
      op, op.getLhs(), op.getRhs(), [](double a, double b) { return a / b; },
      [&](int64_t a, int64_t b) -> int64_t {
        if (b == 0)
          return 0;
        if (a == std::numeric_limits<int64_t>::min() && b == -1)
          return a;
        return a / b;
      });
}

FailureOr<Tensor> Evaluator::evalCmp(CmpOp op) {
  StringRef pred = op.getPredicate();
  // Plain double comparisons are ordered: NaN compares false except `!=`.
  auto compare = [&](auto cmp) {
    return elementwise<2>(op, {op.getLhs(), op.getRhs()},
                          [&](const std::array<double, 2> &v) {
                            return cmp(v[0], v[1]) ? 1.0 : 0.0;
                          });
  };
  if (pred == "eq")
    return compare([](double a, double b) { return a == b; });
  if (pred == "ne")
    return compare([](double a, double b) { return a != b; });
  if (pred == "lt")
    return compare([](double a, double b) { return a < b; });
  if (pred == "le")
    return compare([](double a, double b) { return a <= b; });
  if (pred == "gt")
    return compare([](double a, double b) { return a > b; });
  if (pred == "ge")
    return compare([](double a, double b) { return a >= b; });
  return op.emitOpError("unknown predicate '") << pred << "'";
}

FailureOr<Tensor> Evaluator::evalCast(CastOp op) {
  Kind from = kindOf(op.getOperand());
  Type to = op.getType().getElementType();
  return unary(op, op.getOperand(),
               [&](double v) { return convertValue(v, from, to); });
}

//===----------------------------------------------------------------------===//
// Constants and index generators
//===----------------------------------------------------------------------===//

FailureOr<Tensor> Evaluator::evalConstant(ConstantOp op) {
  ElementsAttr attr = op.getValue();
  auto type = dyn_cast<RankedTensorType>(attr.getType());
  if (!type || !type.hasStaticShape())
    return op.emitOpError("value must be a statically shaped tensor");
  FailureOr<Tensor> result = allocate(op, type.getShape());
  if (failed(result))
    return failure();
  std::vector<double> &data = result->data;
  Type elementType = type.getElementType();
  auto dense = dyn_cast<DenseElementsAttr>(attr);
  if (isa<FloatType>(elementType)) {
    if (dense && dense.isSplat()) {
      std::fill(data.begin(), data.end(),
                dense.getSplatValue<APFloat>().convertToDouble());
      return result;
    }
    auto range = attr.tryGetValues<APFloat>();
    if (!range)
      return op.emitOpError("has a constant attribute the interpreter cannot "
                            "read");
    size_t i = 0;
    for (const APFloat &v : *range) {
      if (i == data.size())
        break;
      data[i++] = v.convertToDouble();
    }
    return result;
  }
  auto intType = dyn_cast<IntegerType>(elementType);
  if (!intType || intType.getWidth() > 64)
    return op.emitOpError("has unsupported constant element type ")
           << elementType;
  bool isBool = intType.getWidth() == 1;
  auto toDouble = [&](const APInt &v) {
    return isBool ? (v.isZero() ? 0.0 : 1.0)
                  : static_cast<double>(v.getSExtValue());
  };
  if (dense && dense.isSplat()) {
    std::fill(data.begin(), data.end(), toDouble(dense.getSplatValue<APInt>()));
    return result;
  }
  auto range = attr.tryGetValues<APInt>();
  if (!range)
    return op.emitOpError("has a constant attribute the interpreter cannot "
                          "read");
  size_t i = 0;
  for (const APInt &v : *range) {
    if (i == data.size())
      break;
    data[i++] = toDouble(v);
  }
  return result;
}

FailureOr<Tensor> Evaluator::evalIota(IotaOp op) {
  SmallVector<int64_t> shape;
  if (Value like = op.getLike()) {
    shape.assign(get(like).shape.begin(), get(like).shape.end());
  } else {
    if (!op.getType().hasStaticShape())
      return op.emitOpError("has symbolic dimensions and no 'like' operand");
    shape.assign(op.getType().getShape().begin(),
                 op.getType().getShape().end());
  }
  FailureOr<int64_t> axis = checkAxis(op, op.getAxis(), shape.size());
  if (failed(axis))
    return failure();
  FailureOr<Tensor> result = allocate(op, shape);
  if (failed(result))
    return failure();
  int64_t outer = product(shape, 0, *axis), n = shape[*axis];
  int64_t inner = product(shape, *axis + 1, shape.size());
  double *out = result->data.data();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < n; ++j)
      std::fill_n(out + (o * n + j) * inner, inner, static_cast<double>(j));
  return result;
}

//===----------------------------------------------------------------------===//
// Reductions and normalizations
//===----------------------------------------------------------------------===//

FailureOr<Tensor> Evaluator::evalReduce(Operation *op, Value operand,
                                        ArrayRef<int64_t> axes, bool keepdim,
                                        Reduction reduction) {
  const Tensor &in = get(operand);
  size_t rank = in.shape.size();
  SmallVector<bool> reduced(rank, false);
  for (int64_t axis : axes) {
    FailureOr<int64_t> checked = checkAxis(op, axis, rank);
    if (failed(checked))
      return failure();
    reduced[*checked] = true;
  }
  SmallVector<int64_t> shape;
  int64_t count = 1;
  for (size_t d = 0; d < rank; ++d) {
    if (!reduced[d])
      shape.push_back(in.shape[d]);
    else if (keepdim)
      shape.push_back(1);
    if (reduced[d])
      count *= in.shape[d];
  }
  double init = 0.0;
  bool isInt = in.dtype == LOOM_DTYPE_I32 || in.dtype == LOOM_DTYPE_I64;
  double lowest = in.dtype == LOOM_DTYPE_I32
                      ? double(std::numeric_limits<int32_t>::min())
                      : double(std::numeric_limits<int64_t>::min());
  double highest = in.dtype == LOOM_DTYPE_I32
                       ? double(std::numeric_limits<int32_t>::max())
                       : double(std::numeric_limits<int64_t>::max());
  if (reduction == Reduction::Max)
    init = isInt ? lowest : -std::numeric_limits<double>::infinity();
  if (reduction == Reduction::Min)
    init = isInt ? highest : std::numeric_limits<double>::infinity();
  FailureOr<Tensor> result = allocate(op, shape, init);
  if (failed(result))
    return failure();
  // A maximum (minimum) over nothing is the identity, -inf (+inf), as the
  // dialect defines it.

  // Stride of each operand dimension in the result: 0 where it is reduced.
  SmallVector<int64_t> resultStrides = rowMajorStrides(result->shape);
  SmallVector<int64_t> strides(rank, 0);
  for (size_t d = 0, r = 0; d < rank; ++d) {
    if (!reduced[d])
      strides[d] = resultStrides[r];
    if (!reduced[d] || keepdim)
      ++r;
  }
  SmallVector<int64_t> identity = rowMajorStrides(in.shape);
  std::array<ArrayRef<int64_t>, 2> both = {identity, strides};
  const double *x = in.data.data();
  double *out = result->data.data();
  if (reduction == Reduction::Sum && kindOf(operand) == Kind::Int) {
    // Integer sums are exact and wrap, independent of summation order.
    std::vector<int64_t> acc(result->data.size(), 0);
    forEachOffset<2>(in.shape, both,
                     [&](int64_t, const std::array<int64_t, 2> &o) {
                       acc[o[1]] = wrapAdd(acc[o[1]], toInt64(x[o[0]]));
                     });
    for (size_t i = 0; i < acc.size(); ++i)
      out[i] = static_cast<double>(acc[i]);
    return result;
  }
  switch (reduction) {
  case Reduction::Sum:
  case Reduction::Mean:
    forEachOffset<2>(in.shape, both,
                     [&](int64_t, const std::array<int64_t, 2> &o) {
                       out[o[1]] += x[o[0]];
                     });
    break;
  case Reduction::Max:
    forEachOffset<2>(in.shape, both,
                     [&](int64_t, const std::array<int64_t, 2> &o) {
                       out[o[1]] = maxOf(out[o[1]], x[o[0]]);
                     });
    break;
  case Reduction::Min:
    forEachOffset<2>(in.shape, both,
                     [&](int64_t, const std::array<int64_t, 2> &o) {
                       out[o[1]] = minOf(out[o[1]], x[o[0]]);
                     });
    break;
  }
  if (reduction == Reduction::Mean)
    for (double &v : result->data)
      v /= static_cast<double>(count);
  return result;
}

FailureOr<Tensor> Evaluator::evalSoftmax(Operation *op, Value operand,
                                         uint64_t rawAxis, bool log) {
  const Tensor &in = get(operand);
  FailureOr<int64_t> axis = checkAxis(op, rawAxis, in.shape.size());
  if (failed(axis))
    return failure();
  FailureOr<Tensor> result = allocate(op, in.shape);
  if (failed(result))
    return failure();
  int64_t outer = product(in.shape, 0, *axis), n = in.shape[*axis];
  int64_t inner = product(in.shape, *axis + 1, in.shape.size());
  // Rows along `axis` are strided by `inner`; keeping `inner` running maxima
  // and sums walks memory in order.
  std::vector<double> rowMax(inner), rowSum(inner);
  const double *x = in.data.data();
  double *y = result->data.data();
  for (int64_t o = 0; o < outer; ++o) {
    int64_t base = o * n * inner;
    std::fill(rowMax.begin(), rowMax.end(),
              -std::numeric_limits<double>::infinity());
    std::fill(rowSum.begin(), rowSum.end(), 0.0);
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < inner; ++i)
        rowMax[i] = maxOf(rowMax[i], x[base + j * inner + i]);
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t i = 0; i < inner; ++i) {
        double e = std::exp(x[base + j * inner + i] - rowMax[i]);
        y[base + j * inner + i] = e;
        rowSum[i] += e;
      }
    }
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t i = 0; i < inner; ++i) {
        int64_t at = base + j * inner + i;
        y[at] =
            log ? x[at] - rowMax[i] - std::log(rowSum[i]) : y[at] / rowSum[i];
      }
    }
  }
  return result;
}

/// Reports the first id of `ids` outside `[0, vocab)` on `op`, naming its
/// position; succeeds when every id is in range.
static LogicalResult checkIds(Operation *op, const Tensor &ids, int64_t vocab) {
  SmallVector<int64_t> strides = rowMajorStrides(ids.shape);
  for (int64_t r = 0, e = ids.getNumElements(); r < e; ++r) {
    int64_t id = toInt64(ids.data[r]);
    if (id >= 0 && id < vocab)
      continue;
    InFlightDiagnostic diag = op->emitOpError("ids[");
    for (size_t d = 0; d < strides.size(); ++d)
      diag << (d ? ", " : "") << (r / strides[d]) % ids.shape[d];
    diag << "] = " << id << " is outside the vocabulary [0, " << vocab << ")";
    return diag;
  }
  return success();
}

/// Returns the logits `[tokens, V]` (row-major) of a token_logprob or its
/// backward and sets `vocab` to V: `input` itself without `weight`, and
/// `input @ weight^T` computed in float64 with it. Checks the run-time shapes
/// of `input`, `ids` and `weight` against each other, every id against
/// the vocabulary and the temperature the logits will be divided by.
FailureOr<std::vector<double>>
Evaluator::tokenLogits(Operation *op, Value inputValue, Value idsValue,
                       Value weightValue, double temperature, int64_t &vocab) {
  if (!(temperature > 0.0))
    return op->emitOpError("temperature must be > 0, got ") << temperature;
  const Tensor &input = get(inputValue);
  const Tensor &ids = get(idsValue);
  StringRef what = weightValue ? "input" : "logits";
  if (input.shape.empty() ||
      !llvm::equal(ArrayRef<int64_t>(input.shape).drop_back(), ids.shape))
    return op->emitOpError("ids have shape ")
           << shapeStr(ids.shape) << " at run time, but " << what
           << " have shape " << shapeStr(input.shape);
  int64_t rows = ids.getNumElements();
  if (!weightValue) {
    vocab = input.shape.back();
    if (failed(checkIds(op, ids, vocab)))
      return failure();
    return input.data;
  }
  const Tensor &weight = get(weightValue);
  int64_t hidden = input.shape.back();
  if (weight.shape.size() != 2 || weight.shape[1] != hidden)
    return op->emitOpError("weight has shape ")
           << shapeStr(weight.shape) << " at run time, but the hidden size "
           << "of input " << shapeStr(input.shape) << " is " << hidden;
  vocab = weight.shape[0];
  if (failed(checkIds(op, ids, vocab)))
    return failure();
  int64_t logitsShape[] = {rows, vocab};
  if (!checkedProduct(logitsShape))
    return op->emitOpError("logits [")
           << rows << ", " << vocab << "] have more than " << kMaxElements
           << " elements";
  std::vector<double> logits(rows * vocab, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const double *x = input.data.data() + r * hidden;
    for (int64_t v = 0; v < vocab; ++v) {
      const double *w = weight.data.data() + v * hidden;
      double sum = 0.0;
      for (int64_t k = 0; k < hidden; ++k)
        sum += x[k] * w[k];
      logits[r * vocab + v] = sum;
    }
  }
  return logits;
}

/// Returns max(row / T) and log(sum(exp(row / T - max))) of one row of
/// logits.
static std::pair<double, double> rowLogSumExp(const double *row, int64_t vocab,
                                              double temperature) {
  double top = -std::numeric_limits<double>::infinity();
  for (int64_t v = 0; v < vocab; ++v)
    top = maxOf(top, row[v] / temperature);
  double sum = 0.0;
  for (int64_t v = 0; v < vocab; ++v)
    sum += std::exp(row[v] / temperature - top);
  return {top, std::log(sum)};
}

FailureOr<Tensor> Evaluator::evalTokenLogprob(TokenLogprobOp op) {
  double temperature = op.getTemperature().convertToDouble();
  int64_t vocab = 0;
  FailureOr<std::vector<double>> logits = tokenLogits(
      op, op.getInput(), op.getIds(), op.getWeight(), temperature, vocab);
  if (failed(logits))
    return failure();
  const Tensor &ids = get(op.getIds());
  FailureOr<Tensor> result = allocate(op, ids.shape);
  if (failed(result))
    return failure();
  for (int64_t r = 0, rows = ids.getNumElements(); r < rows; ++r) {
    const double *row = logits->data() + r * vocab;
    auto [top, logSum] = rowLogSumExp(row, vocab, temperature);
    result->data[r] = row[toInt64(ids.data[r])] / temperature - top - logSum;
  }
  return result;
}

FailureOr<std::vector<Tensor>>
Evaluator::evalTokenLogprobGrad(TokenLogprobGradOp op) {
  double temperature = op.getTemperature().convertToDouble();
  int64_t vocab = 0;
  FailureOr<std::vector<double>> logits = tokenLogits(
      op, op.getInput(), op.getIds(), op.getWeight(), temperature, vocab);
  if (failed(logits))
    return failure();
  const Tensor &input = get(op.getInput());
  const Tensor &ids = get(op.getIds());
  const Tensor &grad = get(op.getGrad());
  if (grad.shape != ids.shape)
    return op.emitOpError("grad has shape ")
           << shapeStr(grad.shape) << " at run time, but ids have shape "
           << shapeStr(ids.shape);
  // dlogits overwrites the logits row by row.
  std::vector<double> &dlogits = *logits;
  int64_t rows = ids.getNumElements();
  for (int64_t r = 0; r < rows; ++r) {
    double *row = dlogits.data() + r * vocab;
    auto [top, logSum] = rowLogSumExp(row, vocab, temperature);
    double scale = grad.data[r] / temperature;
    for (int64_t v = 0; v < vocab; ++v)
      row[v] = -scale * std::exp(row[v] / temperature - top - logSum);
    row[toInt64(ids.data[r])] += scale;
  }

  std::vector<Tensor> results;
  Value weightValue = op.getWeight();
  if (!weightValue) {
    Tensor inputGrad;
    inputGrad.shape = input.shape;
    inputGrad.data = std::move(dlogits);
    results.push_back(std::move(inputGrad));
    return results;
  }
  const Tensor &weight = get(weightValue);
  int64_t hidden = input.shape.back();
  FailureOr<Tensor> inputGrad = allocate(op, input.shape);
  FailureOr<Tensor> weightGrad = allocate(op, weight.shape);
  if (failed(inputGrad) || failed(weightGrad))
    return failure();
  for (int64_t r = 0; r < rows; ++r) {
    const double *d = dlogits.data() + r * vocab;
    const double *x = input.data.data() + r * hidden;
    double *dx = inputGrad->data.data() + r * hidden;
    for (int64_t v = 0; v < vocab; ++v) {
      const double *w = weight.data.data() + v * hidden;
      double *dw = weightGrad->data.data() + v * hidden;
      for (int64_t k = 0; k < hidden; ++k) {
        dx[k] += d[v] * w[k];
        dw[k] += d[v] * x[k];
      }
    }
  }
  results.push_back(std::move(*inputGrad));
  results.push_back(std::move(*weightGrad));
  return results;
}

//===----------------------------------------------------------------------===//
// RL objectives
//===----------------------------------------------------------------------===//

FailureOr<Tensor> Evaluator::evalKl(KlOp op) {
  StringRef estimator = op.getEstimator();
  auto apply = [&](auto fn) {
    return elementwise<2>(
        op, {op.getLogp(), op.getRef()},
        [&](const std::array<double, 2> &v) { return fn(v[0] - v[1]); });
  };
  if (estimator == "k1")
    return apply([](double x) { return x; });
  if (estimator == "k2")
    return apply([](double x) { return 0.5 * x * x; });
  if (estimator == "k3")
    return apply([](double x) { return std::exp(-x) + x - 1.0; });
  return op.emitOpError("unknown estimator \"") << estimator << "\"";
}

FailureOr<Tensor> Evaluator::evalGae(GaeOp op) {
  const Tensor &rewards = get(op.getRewards());
  const Tensor &values = get(op.getValues());
  const Tensor &mask = get(op.getMask());
  if (rewards.shape.size() != 2 || values.shape != rewards.shape ||
      mask.shape != rewards.shape)
    return op.emitOpError("rewards, values and mask must be [B, T] of one "
                          "shape at run time, got ")
           << shapeStr(rewards.shape) << ", " << shapeStr(values.shape)
           << " and " << shapeStr(mask.shape);
  double gamma = op.getGamma().convertToDouble();
  double lam = op.getLam().convertToDouble();
  FailureOr<Tensor> result = allocate(op, rewards.shape);
  if (failed(result))
    return failure();
  int64_t batch = rewards.shape[0], steps = rewards.shape[1];
  for (int64_t b = 0; b < batch; ++b) {
    // Walk the row backwards, carrying the value and the advantage of the
    // next valid position (0 after the last one).
    double nextValue = 0.0, nextAdvantage = 0.0;
    for (int64_t t = steps - 1; t >= 0; --t) {
      int64_t at = b * steps + t;
      if (mask.data[at] == 0.0)
        continue;
      double delta = rewards.data[at] + gamma * nextValue - values.data[at];
      nextAdvantage = delta + gamma * lam * nextAdvantage;
      nextValue = values.data[at];
      result->data[at] = nextAdvantage;
    }
  }
  return result;
}

FailureOr<Tensor> Evaluator::evalRmsNorm(RmsNormOp op) {
  const Tensor &x = get(op.getOperand());
  const Tensor &w = get(op.getWeight());
  if (x.shape.empty())
    return op.emitOpError("operand must have rank >= 1");
  int64_t n = x.shape.back();
  if (w.shape.size() != 1 || w.shape[0] != n)
    return op.emitOpError("weight has shape ")
           << shapeStr(w.shape) << " at run time, but the operand's last "
           << "dimension is " << n;
  FailureOr<Tensor> result = allocate(op, x.shape);
  if (failed(result))
    return failure();
  double eps = op.getEps().convertToDouble();
  int64_t rows = product(x.shape, 0, x.shape.size() - 1);
  for (int64_t r = 0; r < rows; ++r) {
    const double *row = x.data.data() + r * n;
    double *out = result->data.data() + r * n;
    double sumSq = 0.0;
    for (int64_t j = 0; j < n; ++j)
      sumSq += row[j] * row[j];
    double scale = 1.0 / std::sqrt(sumSq / static_cast<double>(n) + eps);
    for (int64_t j = 0; j < n; ++j)
      out[j] = row[j] * scale * w.data[j];
  }
  return result;
}

//===----------------------------------------------------------------------===//
// Matrix products
//===----------------------------------------------------------------------===//

FailureOr<Tensor> Evaluator::evalMatmul(MatmulOp op) {
  const Tensor &a = get(op.getLhs());
  const Tensor &b = get(op.getRhs());
  size_t ra = a.shape.size(), rb = b.shape.size();
  if (ra < 2 || rb < 2)
    return op.emitOpError("operands must have rank >= 2, got ")
           << shapeStr(a.shape) << " and " << shapeStr(b.shape);
  bool ta = op.getTransposeA(), tb = op.getTransposeB();
  int64_t m = a.shape[ra - 2], ka = a.shape[ra - 1];
  if (ta)
    std::swap(m, ka);
  int64_t kb = b.shape[rb - 2], n = b.shape[rb - 1];
  if (tb)
    std::swap(kb, n);
  if (ka != kb)
    return op.emitOpError("contraction dimensions differ at run time: ")
           << shapeStr(a.shape) << " @ " << shapeStr(b.shape)
           << (ta ? " (lhs transposed)" : "")
           << (tb ? " (rhs transposed)" : "");
  int64_t k = ka;
  ArrayRef<int64_t> batchA = ArrayRef(a.shape).drop_back(2);
  ArrayRef<int64_t> batchB = ArrayRef(b.shape).drop_back(2);
  BroadcastInput inputs[] = {{batchA, declared(op.getLhs()).drop_back(2)},
                             {batchB, declared(op.getRhs()).drop_back(2)}};
  FailureOr<BroadcastPlan> plan = planBroadcast(op, inputs, std::nullopt);
  if (failed(plan))
    return failure();
  SmallVector<int64_t> shape = plan->shape;
  shape.push_back(m);
  shape.push_back(n);
  FailureOr<Tensor> result = allocate(op, shape);
  if (failed(result))
    return failure();

  // Pack both operands of each product to row-major [m, k] and [k, n] so that
  // the inner loop runs over contiguous rows whatever the transposes.
  std::vector<double> ap(m * k), bp(k * n);
  int64_t matA = m * k, matB = k * n, matC = m * n;
  std::array<ArrayRef<int64_t>, 2> strides = {plan->strides[0],
                                              plan->strides[1]};
  forEachOffset<2>(plan->shape, strides,
                   [&](int64_t batch, const std::array<int64_t, 2> &o) {
                     const double *pa = a.data.data() + o[0] * matA;
                     const double *pb = b.data.data() + o[1] * matB;
                     for (int64_t i = 0; i < m; ++i)
                       for (int64_t p = 0; p < k; ++p)
                         ap[i * k + p] = ta ? pa[p * m + i] : pa[i * k + p];
                     for (int64_t p = 0; p < k; ++p)
                       for (int64_t j = 0; j < n; ++j)
                         bp[p * n + j] = tb ? pb[j * k + p] : pb[p * n + j];
                     double *c = result->data.data() + batch * matC;
                     for (int64_t i = 0; i < m; ++i) {
                       double *row = c + i * n;
                       for (int64_t p = 0; p < k; ++p) {
                         double aip = ap[i * k + p];
                         const double *brow = bp.data() + p * n;
                         for (int64_t j = 0; j < n; ++j)
                           row[j] += aip * brow[j];
                       }
                     }
                   });
  return result;
}

FailureOr<Tensor> Evaluator::evalLinear(LinearOp op) {
  const Tensor &x = get(op.getOperand());
  const Tensor &w = get(op.getWeight());
  if (x.shape.empty() || w.shape.size() != 2 || x.shape.back() != w.shape[1])
    return op.emitOpError("expects operand [..., in] and weight [out, in] at "
                          "run time, got ")
           << shapeStr(x.shape) << " and " << shapeStr(w.shape);
  int64_t in = w.shape[1], outN = w.shape[0];
  const Tensor *bias = nullptr;
  if (Value b = op.getBias()) {
    bias = &get(b);
    if (bias->shape.size() != 1 || bias->shape[0] != outN)
      return op.emitOpError("bias has shape ")
             << shapeStr(bias->shape) << " at run time, expected [" << outN
             << "]";
  }
  SmallVector<int64_t> shape(x.shape.begin(), x.shape.end() - 1);
  shape.push_back(outN);
  FailureOr<Tensor> result = allocate(op, shape);
  if (failed(result))
    return failure();
  // weight^T as [in, out] so that each input feature adds a contiguous row.
  std::vector<double> wt(in * outN);
  for (int64_t o = 0; o < outN; ++o)
    for (int64_t p = 0; p < in; ++p)
      wt[p * outN + o] = w.data[o * in + p];
  int64_t rows = product(x.shape, 0, x.shape.size() - 1);
  for (int64_t r = 0; r < rows; ++r) {
    double *y = result->data.data() + r * outN;
    if (bias)
      std::copy(bias->data.begin(), bias->data.end(), y);
    const double *xr = x.data.data() + r * in;
    for (int64_t p = 0; p < in; ++p) {
      double xv = xr[p];
      const double *wr = wt.data() + p * outN;
      for (int64_t o = 0; o < outN; ++o)
        y[o] += xv * wr[o];
    }
  }
  return result;
}

//===----------------------------------------------------------------------===//
// Data movement
//===----------------------------------------------------------------------===//

FailureOr<Tensor> Evaluator::evalReshape(ReshapeOp op) {
  const Tensor &in = get(op.getOperand());
  ArrayRef<int64_t> spec = op.getShape();
  SmallVector<int64_t> shape;
  int64_t inferred = -1, known = 1;
  for (auto [i, d] : llvm::enumerate(spec)) {
    int64_t size = d;
    if (d == 0) {
      if (i >= in.shape.size())
        return op.emitOpError("shape entry ")
               << i << " copies a dimension the operand " << shapeStr(in.shape)
               << " does not have";
      size = in.shape[i];
    } else if (d == -1) {
      if (inferred >= 0)
        return op.emitOpError("at most one shape entry may be -1");
      inferred = static_cast<int64_t>(i);
      shape.push_back(-1);
      continue;
    } else if (d < -1) {
      return op.emitOpError("invalid shape entry ") << d;
    }
    if (__builtin_mul_overflow(known, size, &known))
      return op.emitOpError("shape ") << shapeStr(spec) << " is too large";
    shape.push_back(size);
  }
  int64_t numel = in.getNumElements();
  if (inferred >= 0) {
    if (known == 0 || numel % known != 0)
      return op.emitOpError("cannot reshape ")
             << shapeStr(in.shape) << " to " << shapeStr(spec)
             << " at run time";
    shape[inferred] = numel / known;
  } else if (known != numel) {
    return op.emitOpError("cannot reshape ")
           << shapeStr(in.shape) << " (" << numel << " elements) to "
           << shapeStr(shape) << " at run time";
  }
  Tensor result;
  result.shape.assign(shape.begin(), shape.end());
  result.data = in.data;
  return result;
}

FailureOr<Tensor> Evaluator::evalTranspose(TransposeOp op) {
  const Tensor &in = get(op.getOperand());
  ArrayRef<int64_t> perm = op.getPermutation();
  size_t rank = in.shape.size();
  if (perm.size() != rank)
    return op.emitOpError("permutation has ")
           << perm.size() << " entries for rank " << rank;
  SmallVector<int64_t> own = rowMajorStrides(in.shape);
  SmallVector<int64_t> shape, strides;
  SmallVector<bool> seen(rank, false);
  for (int64_t p : perm) {
    if (p < 0 || p >= static_cast<int64_t>(rank) || seen[p])
      return op.emitOpError("permutation ")
             << shapeStr(perm) << " is not a permutation";
    seen[p] = true;
    shape.push_back(in.shape[p]);
    strides.push_back(own[p]);
  }
  FailureOr<Tensor> result = allocate(op, shape);
  if (failed(result))
    return failure();
  const double *x = in.data.data();
  double *y = result->data.data();
  forEachOffset<1>(shape, {ArrayRef<int64_t>(strides)},
                   [&](int64_t linear, const std::array<int64_t, 1> &o) {
                     y[linear] = x[o[0]];
                   });
  return result;
}

FailureOr<Tensor> Evaluator::evalSlice(SliceOp op) {
  const Tensor &in = get(op.getOperand());
  FailureOr<int64_t> axis = checkAxis(op, op.getAxis(), in.shape.size());
  if (failed(axis))
    return failure();
  int64_t step = static_cast<int64_t>(op.getStep());
  if (step < 1)
    return op.emitOpError("step must be >= 1, got ") << step;
  int64_t dim = in.shape[*axis];
  // Python's rules: negative positions count from the end, then clamp.
  auto clamp = [&](int64_t v) {
    if (v < 0)
      v += dim;
    return std::clamp<int64_t>(v, 0, dim);
  };
  int64_t start = clamp(static_cast<int64_t>(op.getStart()));
  int64_t end = clamp(static_cast<int64_t>(op.getEnd()));
  int64_t count = end > start ? (end - start - 1) / step + 1 : 0;
  SmallVector<int64_t> shape(in.shape.begin(), in.shape.end());
  shape[*axis] = count;
  FailureOr<Tensor> result = allocate(op, shape);
  if (failed(result))
    return failure();
  int64_t outer = product(in.shape, 0, *axis);
  int64_t inner = product(in.shape, *axis + 1, in.shape.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < count; ++c)
      std::copy_n(in.data.data() + (o * dim + start + c * step) * inner, inner,
                  result->data.data() + (o * count + c) * inner);
  return result;
}

FailureOr<Tensor> Evaluator::evalConcat(ConcatOp op) {
  OperandRange inputs = op.getInputs();
  if (inputs.empty())
    return op.emitOpError("needs at least one operand");
  const Tensor &first = get(inputs[0]);
  FailureOr<int64_t> axis = checkAxis(op, op.getAxis(), first.shape.size());
  if (failed(axis))
    return failure();
  SmallVector<int64_t> shape(first.shape.begin(), first.shape.end());
  shape[*axis] = 0;
  for (auto [i, input] : llvm::enumerate(inputs)) {
    const Tensor &t = get(input);
    bool matches = t.shape.size() == first.shape.size();
    for (size_t d = 0; matches && d < t.shape.size(); ++d)
      matches =
          static_cast<int64_t>(d) == *axis || t.shape[d] == first.shape[d];
    if (!matches)
      return op.emitOpError("operand #")
             << i << " has shape " << shapeStr(t.shape)
             << " at run time, which differs from operand #0's "
             << shapeStr(first.shape) << " outside axis " << *axis;
    shape[*axis] += t.shape[*axis];
  }
  FailureOr<Tensor> result = allocate(op, shape);
  if (failed(result))
    return failure();
  int64_t outer = product(first.shape, 0, *axis);
  int64_t inner = product(first.shape, *axis + 1, first.shape.size());
  double *y = result->data.data();
  for (int64_t o = 0; o < outer; ++o) {
    for (Value input : inputs) {
      const Tensor &t = get(input);
      int64_t chunk = t.shape[*axis] * inner;
      y = std::copy_n(t.data.data() + o * chunk, chunk, y);
    }
  }
  return result;
}

FailureOr<Tensor> Evaluator::evalGather(GatherOp op) {
  const Tensor &in = get(op.getOperand());
  const Tensor &indices = get(op.getIndices());
  FailureOr<int64_t> axis = checkAxis(op, op.getAxis(), in.shape.size());
  if (failed(axis))
    return failure();
  SmallVector<int64_t> shape(in.shape.begin(), in.shape.begin() + *axis);
  llvm::append_range(shape, indices.shape);
  shape.append(in.shape.begin() + *axis + 1, in.shape.end());
  FailureOr<Tensor> result = allocate(op, shape);
  if (failed(result))
    return failure();
  if (result->data.empty())
    return result;
  int64_t dim = in.shape[*axis];
  // Nothing to gather from: the dialect defines the result as zeros.
  if (dim == 0)
    return result;
  int64_t outer = product(in.shape, 0, *axis);
  int64_t inner = product(in.shape, *axis + 1, in.shape.size());
  int64_t count = indices.getNumElements();
  double *y = result->data.data();
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < count; ++j) {
      int64_t index = std::clamp<int64_t>(toInt64(indices.data[j]), 0, dim - 1);
      y = std::copy_n(in.data.data() + (o * dim + index) * inner, inner, y);
    }
  }
  return result;
}

/// Reads a rank-0 run-time position or length.
static FailureOr<int64_t> scalarIndex(Operation *op, StringRef what,
                                      const Tensor &t) {
  if (t.data.size() != 1)
    return op->emitOpError()
           << what << " must hold one value, got shape " << shapeStr(t.shape);
  return toInt64(t.data[0]);
}

FailureOr<Tensor> Evaluator::evalDynamicSlice(DynamicSliceOp op) {
  const Tensor &in = get(op.getOperand());
  FailureOr<int64_t> axis = checkAxis(op, op.getAxis(), in.shape.size());
  if (failed(axis))
    return failure();
  FailureOr<int64_t> start = scalarIndex(op, "start", get(op.getStart()));
  if (failed(start))
    return failure();
  int64_t dim = in.shape[*axis], count;
  if (Value length = op.getLength()) {
    FailureOr<int64_t> asked = scalarIndex(op, "length", get(length));
    if (failed(asked))
      return failure();
    *start = std::clamp<int64_t>(*start, 0, dim);
    count = std::clamp<int64_t>(*asked, 0, dim - *start);
  } else {
    std::optional<uint64_t> size = op.getSize();
    if (!size || static_cast<int64_t>(*size) > dim)
      return op.emitOpError("size does not fit dimension ") << dim;
    count = static_cast<int64_t>(*size);
    *start = std::clamp<int64_t>(*start, 0, dim - count);
  }
  SmallVector<int64_t> shape(in.shape.begin(), in.shape.end());
  shape[*axis] = count;
  FailureOr<Tensor> result = allocate(op, shape);
  if (failed(result))
    return failure();
  int64_t outer = product(in.shape, 0, *axis);
  int64_t inner = product(in.shape, *axis + 1, in.shape.size());
  for (int64_t o = 0; o < outer; ++o)
    std::copy_n(in.data.data() + (o * dim + *start) * inner, count * inner,
                result->data.data() + o * count * inner);
  return result;
}

FailureOr<Tensor> Evaluator::evalDynamicUpdateSlice(DynamicUpdateSliceOp op) {
  const Tensor &target = get(op.getTarget());
  const Tensor &update = get(op.getUpdate());
  size_t rank = target.shape.size();
  FailureOr<int64_t> axis = checkAxis(op, op.getAxis(), rank);
  if (failed(axis))
    return failure();
  if (update.shape.size() != rank)
    return op.emitOpError("update of shape ")
           << shapeStr(update.shape) << " has a rank other than the target's "
           << shapeStr(target.shape);
  FailureOr<int64_t> start = scalarIndex(op, "start", get(op.getStart()));
  if (failed(start))
    return failure();
  // Only the part of the update that fits the target is written, at a start
  // clamped so that all of that part lands in bounds.
  SmallVector<int64_t> extent(rank);
  for (size_t d = 0; d < rank; ++d)
    extent[d] = std::min(update.shape[d], target.shape[d]);
  int64_t offset =
      std::clamp<int64_t>(*start, 0, target.shape[*axis] - extent[*axis]);
  Tensor result = target;
  SmallVector<int64_t> targetStrides = rowMajorStrides(target.shape);
  SmallVector<int64_t> updateStrides = rowMajorStrides(update.shape);
  if (product(extent, 0, rank) == 0)
    return result;
  SmallVector<int64_t> index(rank, 0);
  while (true) {
    int64_t from = 0, to = 0;
    for (size_t d = 0; d < rank; ++d) {
      from += index[d] * updateStrides[d];
      int64_t at = index[d] + (static_cast<int64_t>(d) == *axis ? offset : 0);
      to += at * targetStrides[d];
    }
    result.data[to] = update.data[from];
    size_t d = rank;
    while (d > 0 && ++index[d - 1] == extent[d - 1])
      index[--d] = 0;
    if (d == 0)
      return result;
  }
}

FailureOr<Tensor> Evaluator::evalBroadcast(BroadcastOp op) {
  SmallVector<int64_t> target;
  if (Value like = op.getLike())
    target.assign(get(like).shape.begin(), get(like).shape.end());
  else if (std::optional<ArrayRef<int64_t>> shape = op.getShape())
    target.assign(shape->begin(), shape->end());
  else
    return op.emitOpError("needs 'like' or 'shape'");
  if (llvm::any_of(target, [](int64_t d) { return d < 0; }))
    return op.emitOpError("target shape ")
           << shapeStr(target) << " is not static";
  return elementwise<1>(
      op, {op.getOperand()},
      [](const std::array<double, 1> &v) { return v[0]; },
      ArrayRef<int64_t>(target));
}

/// DeepSeek-V3's naive MLA attention, straight from the op's description:
/// the new tokens' K and V from the latent, written into the caches, then
/// softmax attention over the visible cached positions, all in float64.
FailureOr<std::vector<Tensor>> Evaluator::evalMlaAttention(MlaAttentionOp op) {
  const Tensor &qNope = get(op.getQNope()), &qPe = get(op.getQPe());
  const Tensor &kv = get(op.getKv()), &kPe = get(op.getKPe());
  const Tensor &w = get(op.getWkvB());
  Tensor kCache = get(op.getKCache()), vCache = get(op.getVCache());
  FailureOr<int64_t> startOr =
      scalarIndex(op, "start_pos", get(op.getStartPos()));
  if (failed(startOr))
    return failure();
  int64_t start = *startOr;
  int64_t B = qNope.shape[0], S = qNope.shape[1], H = qNope.shape[2];
  int64_t Dn = qNope.shape[3], R = qPe.shape[3], C = kv.shape[2];
  int64_t MB = kCache.shape[0], T = kCache.shape[1];
  int64_t Dk = kCache.shape[3], Dv = vCache.shape[3];
  // Shapes the verifier could not see (symbolic B and S).
  auto same = [](ArrayRef<int64_t> a, ArrayRef<int64_t> b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
  };
  if (!same(qPe.shape, {B, S, H, R}) || !same(kv.shape, {B, S, C}) ||
      !same(kPe.shape, {B, S, R}) || !same(w.shape, {H * (Dn + Dv), C}) ||
      Dk != Dn + R || !same(vCache.shape, {MB, T, H, Dv}))
    return op.emitOpError("operand shapes disagree at run time: q_nope ")
           << shapeStr(qNope.shape) << ", q_pe " << shapeStr(qPe.shape)
           << ", kv " << shapeStr(kv.shape) << ", k_pe " << shapeStr(kPe.shape);
  if (B > MB)
    return op.emitOpError("batch of ")
           << B << " rows exceeds the cache's " << MB << " rows";

  // Cache writes: rows [0, B), positions [start, start + S) clamped into the
  // cache like loom.dynamic_update_slice.
  int64_t written = std::min(S, T);
  int64_t offset = std::clamp<int64_t>(start, 0, T - written);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < written; ++s)
      for (int64_t h = 0; h < H; ++h) {
        int64_t t = offset + s;
        double *k = &kCache.data[((b * T + t) * H + h) * Dk];
        double *v = &vCache.data[((b * T + t) * H + h) * Dv];
        for (int64_t d = 0; d < Dn + Dv; ++d) {
          double acc = 0;
          const double *row = &w.data[(h * (Dn + Dv) + d) * C];
          for (int64_t c = 0; c < C; ++c)
            acc += kv.data[(b * S + s) * C + c] * row[c];
          (d < Dn ? k[d] : v[d - Dn]) = acc;
        }
        for (int64_t r = 0; r < R; ++r)
          k[Dn + r] = kPe.data[(b * S + s) * R + r];
      }

  FailureOr<Tensor> out = allocate(op, {B, S, H, Dv});
  if (failed(out))
    return failure();
  double scale = op.getScale().convertToDouble();
  std::vector<double> scores(T);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t h = 0; h < H; ++h) {
        int64_t visible = std::clamp<int64_t>(start + s + 1, 0, T);
        if (visible == 0)
          continue;
        const double *qn = &qNope.data[((b * S + s) * H + h) * Dn];
        const double *qp = &qPe.data[((b * S + s) * H + h) * R];
        double top = -std::numeric_limits<double>::infinity();
        for (int64_t t = 0; t < visible; ++t) {
          const double *k = &kCache.data[((b * T + t) * H + h) * Dk];
          double dot = 0;
          for (int64_t d = 0; d < Dn; ++d)
            dot += qn[d] * k[d];
          for (int64_t r = 0; r < R; ++r)
            dot += qp[r] * k[Dn + r];
          scores[t] = dot * scale;
          top = std::max(top, scores[t]);
        }
        double total = 0;
        for (int64_t t = 0; t < visible; ++t)
          total += scores[t] = std::exp(scores[t] - top);
        double *o = &out->data[((b * S + s) * H + h) * Dv];
        for (int64_t t = 0; t < visible; ++t) {
          const double *v = &vCache.data[((b * T + t) * H + h) * Dv];
          for (int64_t d = 0; d < Dv; ++d)
            o[d] += scores[t] / total * v[d];
        }
      }
  std::vector<Tensor> results;
  results.push_back(std::move(*out));
  results.push_back(std::move(kCache));
  results.push_back(std::move(vCache));
  return results;
}

//===----------------------------------------------------------------------===//
// Attention with mask and score regions
//===----------------------------------------------------------------------===//

namespace {
/// A scalar of a mask or score region. Integers (and `index`) are held in
/// `i`, sign-extended from their bit width, so that an `i1` true is -1;
/// floats are held in `f` as float64 whatever their width.
struct Scalar {
  int64_t i = 0;
  double f = 0;
};

/// Evaluates the scalar code of one region of `loom.attention` for given
/// (b, h, i, j[, s]). The captures are the op's capture operands, bound to
/// the block arguments after the parameters.
class RegionEvaluator {
public:
  RegionEvaluator(Region &region, StringRef name,
                  ArrayRef<const Tensor *> captures)
      : block(region.front()), name(name), captures(captures),
        numParams(block.getNumArguments() - captures.size()) {}

  /// Checks once that every op of the region is one the evaluator knows.
  LogicalResult check();
  /// Returns the value the region yields.
  FailureOr<Scalar> run(ArrayRef<int64_t> indices, double score);

private:
  LogicalResult evalOp(Operation &op);
  Scalar get(Value v) const { return values.lookup(v); }
  const Tensor *captureOf(Value v) const;

  Block &block;
  StringRef name;
  ArrayRef<const Tensor *> captures;
  unsigned numParams;
  llvm::DenseMap<Value, Scalar> values;
};
} // namespace

/// The bit width of an integer or index type (index is 64 bits here).
static unsigned widthOf(Type type) {
  if (auto intType = dyn_cast<IntegerType>(type))
    return intType.getWidth();
  return 64;
}

/// Sign-extends the low `width` bits of `v`.
static int64_t sext(int64_t v, unsigned width) {
  if (width >= 64)
    return v;
  uint64_t mask = (uint64_t(1) << width) - 1;
  uint64_t sign = uint64_t(1) << (width - 1);
  uint64_t x = static_cast<uint64_t>(v) & mask;
  return static_cast<int64_t>((x ^ sign) - sign);
}

/// Zero-extends the low `width` bits of `v`.
static uint64_t zext(int64_t v, unsigned width) {
  if (width >= 64)
    return static_cast<uint64_t>(v);
  return static_cast<uint64_t>(v) & ((uint64_t(1) << width) - 1);
}

/// Whether the region holds only ops the evaluator knows.
static bool isKnownRegionOp(Operation &op) {
  return isa<arith::ConstantOp, arith::AddIOp, arith::SubIOp, arith::MulIOp,
             arith::DivSIOp, arith::DivUIOp, arith::FloorDivSIOp,
             arith::CeilDivSIOp, arith::RemSIOp, arith::RemUIOp, arith::AndIOp,
             arith::OrIOp, arith::XOrIOp, arith::ShLIOp, arith::ShRSIOp,
             arith::ShRUIOp, arith::MinSIOp, arith::MaxSIOp, arith::MinUIOp,
             arith::MaxUIOp, arith::CmpIOp, arith::CmpFOp, arith::SelectOp,
             arith::IndexCastOp, arith::IndexCastUIOp, arith::SIToFPOp,
             arith::UIToFPOp, arith::FPToSIOp, arith::FPToUIOp, arith::ExtSIOp,
             arith::ExtUIOp, arith::TruncIOp, arith::ExtFOp, arith::TruncFOp,
             arith::AddFOp, arith::SubFOp, arith::MulFOp, arith::DivFOp,
             arith::RemFOp, arith::NegFOp, arith::MaximumFOp, arith::MinimumFOp,
             arith::MaxNumFOp, arith::MinNumFOp, math::TanhOp, math::ExpOp,
             math::LogOp, math::AbsFOp, math::AbsIOp, math::SqrtOp,
             tensor::ExtractOp, CsrContainsOp, YieldOp>(op);
}

LogicalResult RegionEvaluator::check() {
  for (Operation &op : block) {
    if (!isKnownRegionOp(op))
      return op.emitOpError("in the ")
             << name << " region of loom.attention is not supported by the "
             << "interpreter";
    if (auto extract = dyn_cast<tensor::ExtractOp>(op))
      if (!captureOf(extract.getTensor()))
        return op.emitOpError("reads a tensor that is not a capture of the "
                              "attention op");
    if (auto csr = dyn_cast<CsrContainsOp>(op))
      if (!captureOf(csr.getIndptr()) || !captureOf(csr.getIndices()))
        return op.emitOpError("reads a tensor that is not a capture of the "
                              "attention op");
  }
  return success();
}

const Tensor *RegionEvaluator::captureOf(Value v) const {
  auto arg = dyn_cast<BlockArgument>(v);
  if (!arg || arg.getOwner() != &block || arg.getArgNumber() < numParams)
    return nullptr;
  return captures[arg.getArgNumber() - numParams];
}

FailureOr<Scalar> RegionEvaluator::run(ArrayRef<int64_t> indices,
                                       double score) {
  values.clear();
  for (unsigned p = 0; p < 4; ++p)
    values[block.getArgument(p)].i = indices[p];
  if (numParams == 5)
    values[block.getArgument(4)].f = score;
  for (Operation &op : block) {
    if (auto yield = dyn_cast<YieldOp>(op))
      return get(yield.getValue());
    if (failed(evalOp(op)))
      return failure();
  }
  return block.getParentOp()->emitOpError("the ")
         << name << " region has no loom.yield";
}

LogicalResult RegionEvaluator::evalOp(Operation &op) {
  Scalar r;
  Type resultType = op.getNumResults() ? op.getResult(0).getType() : Type();
  unsigned w = resultType ? widthOf(resultType) : 64;
  auto a = [&]() { return get(op.getOperand(0)); };
  auto b = [&]() { return get(op.getOperand(1)); };
  auto fail = [&](const Twine &msg) { return op.emitOpError(msg); };
  // Integer operands are read at the operand's width.
  unsigned inW = op.getNumOperands() ? widthOf(op.getOperand(0).getType()) : 64;

  if (auto c = dyn_cast<arith::ConstantOp>(op)) {
    if (auto intAttr = dyn_cast<IntegerAttr>(c.getValue()))
      r.i = sext(intAttr.getValue().getSExtValue(), w);
    else if (auto floatAttr = dyn_cast<FloatAttr>(c.getValue()))
      r.f = floatAttr.getValueAsDouble();
    else
      return fail("has a constant the interpreter cannot read");
  } else if (isa<arith::AddIOp>(op)) {
    r.i = sext(wrapAdd(a().i, b().i), w);
  } else if (isa<arith::SubIOp>(op)) {
    r.i = sext(wrapSub(a().i, b().i), w);
  } else if (isa<arith::MulIOp>(op)) {
    r.i = sext(wrapMul(a().i, b().i), w);
  } else if (isa<arith::DivSIOp, arith::FloorDivSIOp, arith::CeilDivSIOp,
                 arith::RemSIOp>(op)) {
    int64_t x = a().i, y = b().i;
    if (y == 0)
      return fail("divides by zero");
    if (y == -1 && x == sext(int64_t(1) << (w - 1), w))
      return fail("overflows (the smallest integer divided by -1)");
    int64_t q = x / y, rem = x % y;
    if (isa<arith::RemSIOp>(op))
      r.i = rem;
    else if (isa<arith::FloorDivSIOp>(op))
      r.i = q - ((rem != 0 && ((rem < 0) != (y < 0))) ? 1 : 0);
    else if (isa<arith::CeilDivSIOp>(op))
      r.i = q + ((rem != 0 && ((rem < 0) == (y < 0))) ? 1 : 0);
    else
      r.i = q;
  } else if (isa<arith::DivUIOp, arith::RemUIOp>(op)) {
    uint64_t x = zext(a().i, w), y = zext(b().i, w);
    if (y == 0)
      return fail("divides by zero");
    r.i =
        sext(static_cast<int64_t>(isa<arith::DivUIOp>(op) ? x / y : x % y), w);
  } else if (isa<arith::AndIOp>(op)) {
    r.i = a().i & b().i;
  } else if (isa<arith::OrIOp>(op)) {
    r.i = a().i | b().i;
  } else if (isa<arith::XOrIOp>(op)) {
    r.i = a().i ^ b().i;
  } else if (isa<arith::ShLIOp, arith::ShRSIOp, arith::ShRUIOp>(op)) {
    uint64_t n = zext(b().i, w);
    if (n >= w)
      return fail("shifts by ") << n << ", not less than the bit width " << w;
    if (isa<arith::ShLIOp>(op))
      r.i = sext(static_cast<int64_t>(zext(a().i, w) << n), w);
    else if (isa<arith::ShRSIOp>(op))
      r.i = a().i >> n;
    else
      r.i = sext(static_cast<int64_t>(zext(a().i, w) >> n), w);
  } else if (isa<arith::MinSIOp>(op)) {
    r.i = std::min(a().i, b().i);
  } else if (isa<arith::MaxSIOp>(op)) {
    r.i = std::max(a().i, b().i);
  } else if (isa<arith::MinUIOp, arith::MaxUIOp>(op)) {
    uint64_t x = zext(a().i, w), y = zext(b().i, w);
    r.i = sext(static_cast<int64_t>(isa<arith::MinUIOp>(op) ? std::min(x, y)
                                                            : std::max(x, y)),
               w);
  } else if (auto cmp = dyn_cast<arith::CmpIOp>(op)) {
    int64_t x = a().i, y = b().i;
    uint64_t ux = zext(x, inW), uy = zext(y, inW);
    bool t = false;
    switch (cmp.getPredicate()) {
    case arith::CmpIPredicate::eq:
      t = x == y;
      break;
    case arith::CmpIPredicate::ne:
      t = x != y;
      break;
    case arith::CmpIPredicate::slt:
      t = x < y;
      break;
    case arith::CmpIPredicate::sle:
      t = x <= y;
      break;
    case arith::CmpIPredicate::sgt:
      t = x > y;
      break;
    case arith::CmpIPredicate::sge:
      t = x >= y;
      break;
    case arith::CmpIPredicate::ult:
      t = ux < uy;
      break;
    case arith::CmpIPredicate::ule:
      t = ux <= uy;
      break;
    case arith::CmpIPredicate::ugt:
      t = ux > uy;
      break;
    case arith::CmpIPredicate::uge:
      t = ux >= uy;
      break;
    }
    r.i = t ? -1 : 0;
  } else if (auto cmp = dyn_cast<arith::CmpFOp>(op)) {
    double x = a().f, y = b().f;
    bool unordered = std::isnan(x) || std::isnan(y);
    bool t = false;
    using P = arith::CmpFPredicate;
    switch (cmp.getPredicate()) {
    case P::AlwaysFalse:
      t = false;
      break;
    case P::AlwaysTrue:
      t = true;
      break;
    case P::OEQ:
      t = !unordered && x == y;
      break;
    case P::OGT:
      t = !unordered && x > y;
      break;
    case P::OGE:
      t = !unordered && x >= y;
      break;
    case P::OLT:
      t = !unordered && x < y;
      break;
    case P::OLE:
      t = !unordered && x <= y;
      break;
    case P::ONE:
      t = !unordered && x != y;
      break;
    case P::ORD:
      t = !unordered;
      break;
    case P::UEQ:
      t = unordered || x == y;
      break;
    case P::UGT:
      t = unordered || x > y;
      break;
    case P::UGE:
      t = unordered || x >= y;
      break;
    case P::ULT:
      t = unordered || x < y;
      break;
    case P::ULE:
      t = unordered || x <= y;
      break;
    case P::UNE:
      t = unordered || x != y;
      break;
    case P::UNO:
      t = unordered;
      break;
    }
    r.i = t ? -1 : 0;
  } else if (isa<arith::SelectOp>(op)) {
    r = a().i != 0 ? b() : get(op.getOperand(2));
  } else if (isa<arith::IndexCastOp, arith::ExtSIOp, arith::TruncIOp>(op)) {
    r.i = sext(a().i, w);
  } else if (isa<arith::IndexCastUIOp, arith::ExtUIOp>(op)) {
    r.i = sext(static_cast<int64_t>(zext(a().i, inW)), w);
  } else if (isa<arith::SIToFPOp>(op)) {
    r.f = static_cast<double>(a().i);
  } else if (isa<arith::UIToFPOp>(op)) {
    r.f = static_cast<double>(zext(a().i, inW));
  } else if (isa<arith::FPToSIOp, arith::FPToUIOp>(op)) {
    r.i = sext(toInt64(std::trunc(a().f)), w);
  } else if (isa<arith::ExtFOp, arith::TruncFOp>(op)) {
    r.f = a().f;
  } else if (isa<arith::AddFOp>(op)) {
    r.f = a().f + b().f;
  } else if (isa<arith::SubFOp>(op)) {
    r.f = a().f - b().f;
  } else if (isa<arith::MulFOp>(op)) {
    r.f = a().f * b().f;
  } else if (isa<arith::DivFOp>(op)) {
    r.f = a().f / b().f;
  } else if (isa<arith::RemFOp>(op)) {
    r.f = std::fmod(a().f, b().f);
  } else if (isa<arith::NegFOp>(op)) {
    r.f = -a().f;
  } else if (isa<arith::MaximumFOp>(op)) {
    r.f = maxOf(a().f, b().f);
  } else if (isa<arith::MinimumFOp>(op)) {
    r.f = minOf(a().f, b().f);
  } else if (isa<arith::MaxNumFOp>(op)) {
    r.f = std::fmax(a().f, b().f);
  } else if (isa<arith::MinNumFOp>(op)) {
    r.f = std::fmin(a().f, b().f);
  } else if (isa<math::TanhOp>(op)) {
    r.f = std::tanh(a().f);
  } else if (isa<math::ExpOp>(op)) {
    r.f = std::exp(a().f);
  } else if (isa<math::LogOp>(op)) {
    r.f = std::log(a().f);
  } else if (isa<math::SqrtOp>(op)) {
    r.f = std::sqrt(a().f);
  } else if (isa<math::AbsFOp>(op)) {
    r.f = std::fabs(a().f);
  } else if (isa<math::AbsIOp>(op)) {
    r.i = sext(a().i < 0 ? wrapSub(0, a().i) : a().i, w);
  } else if (auto extract = dyn_cast<tensor::ExtractOp>(op)) {
    const Tensor &t = *captureOf(extract.getTensor());
    int64_t offset = 0;
    SmallVector<int64_t> where;
    bool inBounds = extract.getIndices().size() == t.shape.size();
    for (auto [d, index] : llvm::enumerate(extract.getIndices())) {
      int64_t x = get(index).i;
      where.push_back(x);
      if (!inBounds || x < 0 || x >= t.shape[d]) {
        inBounds = false;
        continue;
      }
      offset = offset * t.shape[d] + x;
    }
    if (!inBounds) {
      std::string at;
      llvm::raw_string_ostream os(at);
      llvm::interleaveComma(where, os);
      return fail("reads index [") << at << "] of a capture of shape "
                                   << shapeStr(t.shape) << ", out of bounds";
    }
    double x = t.data[offset];
    Type et = resultType;
    if (et.isInteger(1))
      r.i = x != 0 ? -1 : 0;
    else if (isa<IntegerType>(et))
      r.i = sext(toInt64(x), w);
    else
      r.f = x;
  } else if (auto csr = dyn_cast<CsrContainsOp>(op)) {
    const Tensor &indptr = *captureOf(csr.getIndptr());
    const Tensor &cols = *captureOf(csr.getIndices());
    int64_t row = get(csr.getRow()).i, col = get(csr.getColumn()).i;
    int64_t rows = static_cast<int64_t>(indptr.data.size()) - 1;
    bool found = false;
    if (row >= 0 && row < rows) {
      int64_t begin = toInt64(indptr.data[row]);
      int64_t end = toInt64(indptr.data[row + 1]);
      int64_t n = static_cast<int64_t>(cols.data.size());
      for (int64_t p = std::max<int64_t>(begin, 0); p < std::min(end, n); ++p)
        found = found || toInt64(cols.data[p]) == col;
    }
    r.i = found ? -1 : 0;
  } else {
    return fail("is not supported by the interpreter");
  }
  values[op.getResult(0)] = r;
  return success();
}

/// Softmax attention per query over the keys its mask shows, with the score
/// region applied to each visible key's scaled score, all in float64.
FailureOr<std::vector<Tensor>> Evaluator::evalAttention(AttentionOp op) {
  const Tensor &q = get(op.getQ()), &k = get(op.getK()), &v = get(op.getV());
  int64_t B = q.shape[0], Hq = q.shape[1], Sq = q.shape[2], Dk = q.shape[3];
  int64_t Hkv = k.shape[1], Skv = k.shape[2], Dv = v.shape[3];
  if (k.shape[0] != B || v.shape[0] != B || v.shape[1] != Hkv ||
      v.shape[2] != Skv || k.shape[3] != Dk)
    return op.emitOpError("operand shapes disagree at run time: q ")
           << shapeStr(q.shape) << ", k " << shapeStr(k.shape) << ", v "
           << shapeStr(v.shape);
  if (Hq > 0 && (Hkv == 0 || Hq % Hkv != 0))
    return op.emitOpError("the query head count ")
           << Hq << " is not a multiple of the key/value head count " << Hkv;
  SmallVector<const Tensor *> captures;
  for (Value c : op.getCaptures())
    captures.push_back(&get(c));
  std::optional<RegionEvaluator> mask, score;
  if (!op.getMask().empty()) {
    mask.emplace(op.getMask(), "mask", captures);
    if (failed(mask->check()))
      return failure();
  }
  if (!op.getScore().empty()) {
    score.emplace(op.getScore(), "score", captures);
    if (failed(score->check()))
      return failure();
  }

  FailureOr<Tensor> out = allocate(op, {B, Hq, Sq, Dv});
  if (failed(out))
    return failure();
  FailureOr<Tensor> lse =
      allocate(op, {B, Hq, Sq}, -std::numeric_limits<double>::infinity());
  if (failed(lse))
    return failure();
  double scale = op.getScale().convertToDouble();
  int64_t group = Hkv ? Hq / Hkv : 1;
  std::vector<double> scores(Skv);
  std::vector<bool> visible(Skv);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < Sq; ++i) {
        int64_t kh = h / group;
        const double *qr = &q.data[((b * Hq + h) * Sq + i) * Dk];
        double top = -std::numeric_limits<double>::infinity();
        bool any = false, nan = false;
        for (int64_t j = 0; j < Skv; ++j) {
          int64_t at[4] = {b, h, i, j};
          visible[j] = true;
          if (mask) {
            FailureOr<Scalar> m = mask->run(at, 0.0);
            if (failed(m))
              return failure();
            visible[j] = m->i != 0;
          }
          // The score of a hidden key does not matter; it is not computed.
          if (!visible[j])
            continue;
          const double *kr = &k.data[((b * Hkv + kh) * Skv + j) * Dk];
          double dot = 0;
          for (int64_t d = 0; d < Dk; ++d)
            dot += qr[d] * kr[d];
          double s = dot * scale;
          if (score) {
            FailureOr<Scalar> r = score->run(at, s);
            if (failed(r))
              return failure();
            s = r->f;
          }
          scores[j] = s;
          nan = nan || std::isnan(s);
          if (s > top)
            top = s;
          any = true;
        }
        double *o = &out->data[((b * Hq + h) * Sq + i) * Dv];
        double &l = lse->data[(b * Hq + h) * Sq + i];
        if (nan) {
          l = std::numeric_limits<double>::quiet_NaN();
          for (int64_t d = 0; d < Dv; ++d)
            o[d] = l;
          continue;
        }
        // No visible key, or only keys scored -inf: out 0 and lse -inf.
        if (!any || top == -std::numeric_limits<double>::infinity())
          continue;
        double total = 0;
        for (int64_t j = 0; j < Skv; ++j)
          if (visible[j])
            total += std::exp(scores[j] - top);
        l = top + std::log(total);
        for (int64_t j = 0; j < Skv; ++j) {
          if (!visible[j])
            continue;
          double p = std::exp(scores[j] - top) / total;
          const double *vr = &v.data[((b * Hkv + kh) * Skv + j) * Dv];
          for (int64_t d = 0; d < Dv; ++d)
            o[d] += p * vr[d];
        }
      }
  std::vector<Tensor> results;
  results.push_back(std::move(*out));
  results.push_back(std::move(*lse));
  return results;
}

//===----------------------------------------------------------------------===//
// Dispatch
//===----------------------------------------------------------------------===//

FailureOr<Tensor> Evaluator::evalLoomOp(Operation *op) {
  auto isInt = [&](Value v) { return kindOf(v) == Kind::Int; };
  return llvm::TypeSwitch<Operation *, FailureOr<Tensor>>(op)
      .Case([&](ConstantOp op) { return evalConstant(op); })
      .Case([&](IotaOp op) { return evalIota(op); })
      .Case([&](AddOp op) {
        return binary(
            op, op.getLhs(), op.getRhs(),
            [](double a, double b) { return a + b; }, wrapAdd);
      })
      .Case([&](SubOp op) {
        return binary(
            op, op.getLhs(), op.getRhs(),
            [](double a, double b) { return a - b; }, wrapSub);
      })
      .Case([&](MulOp op) {
        return binary(
            op, op.getLhs(), op.getRhs(),
            [](double a, double b) { return a * b; }, wrapMul);
      })
      .Case([&](DivOp op) { return evalDiv(op); })
      .Case([&](MaxOp op) {
        return binary(op, op.getLhs(), op.getRhs(), maxOf,
                      [](int64_t a, int64_t b) { return std::max(a, b); });
      })
      .Case([&](MinOp op) {
        return binary(op, op.getLhs(), op.getRhs(), minOf,
                      [](int64_t a, int64_t b) { return std::min(a, b); });
      })
      .Case([&](PowOp op) {
        return elementwise<2>(op, {op.getLhs(), op.getRhs()},
                              [](const std::array<double, 2> &v) {
                                return std::pow(v[0], v[1]);
                              });
      })
      .Case([&](AndOp op) {
        return elementwise<2>(op, {op.getLhs(), op.getRhs()},
                              [](const std::array<double, 2> &v) {
                                return v[0] != 0 && v[1] != 0 ? 1.0 : 0.0;
                              });
      })
      .Case([&](OrOp op) {
        return elementwise<2>(op, {op.getLhs(), op.getRhs()},
                              [](const std::array<double, 2> &v) {
                                return v[0] != 0 || v[1] != 0 ? 1.0 : 0.0;
                              });
      })
      .Case([&](CmpOp op) { return evalCmp(op); })
      .Case([&](SelectOp op) {
        return elementwise<3>(op,
                              {op.getCond(), op.getOnTrue(), op.getOnFalse()},
                              [](const std::array<double, 3> &v) {
                                return v[0] != 0 ? v[1] : v[2];
                              });
      })
      .Case([&](NegOp op) {
        if (isInt(op.getOperand()))
          return unary(op, op.getOperand(), [](double v) {
            return static_cast<double>(wrapSub(0, toInt64(v)));
          });
        return unary(op, op.getOperand(), [](double v) { return -v; });
      })
      .Case([&](AbsOp op) {
        if (isInt(op.getOperand()))
          return unary(op, op.getOperand(), [](double v) {
            int64_t i = toInt64(v);
            return static_cast<double>(i < 0 ? wrapSub(0, i) : i);
          });
        return unary(op, op.getOperand(),
                     [](double v) { return std::fabs(v); });
      })
      .Case([&](ExpOp op) {
        return unary(op, op.getOperand(), [](double v) { return std::exp(v); });
      })
      .Case([&](LogOp op) {
        return unary(op, op.getOperand(), [](double v) { return std::log(v); });
      })
      .Case([&](TanhOp op) {
        return unary(op, op.getOperand(),
                     [](double v) { return std::tanh(v); });
      })
      .Case([&](SigmoidOp op) { return unary(op, op.getOperand(), sigmoid); })
      .Case([&](SiluOp op) {
        return unary(op, op.getOperand(),
                     [](double v) { return v * sigmoid(v); });
      })
      .Case([&](GeluOp op) {
        return unary(op, op.getOperand(), [](double v) {
          return 0.5 * v * (1.0 + std::erf(v * M_SQRT1_2));
        });
      })
      .Case([&](RsqrtOp op) {
        return unary(op, op.getOperand(),
                     [](double v) { return 1.0 / std::sqrt(v); });
      })
      .Case([&](SqrtOp op) {
        return unary(op, op.getOperand(),
                     [](double v) { return std::sqrt(v); });
      })
      .Case([&](SinOp op) {
        return unary(op, op.getOperand(), [](double v) { return std::sin(v); });
      })
      .Case([&](CosOp op) {
        return unary(op, op.getOperand(), [](double v) { return std::cos(v); });
      })
      .Case([&](NotOp op) {
        return unary(op, op.getOperand(),
                     [](double v) { return v != 0 ? 0.0 : 1.0; });
      })
      .Case([&](CastOp op) { return evalCast(op); })
      .Case([&](SumOp op) {
        return evalReduce(op, op.getOperand(), op.getAxes(), op.getKeepdim(),
                          Reduction::Sum);
      })
      .Case([&](MeanOp op) {
        return evalReduce(op, op.getOperand(), op.getAxes(), op.getKeepdim(),
                          Reduction::Mean);
      })
      .Case([&](ReduceMaxOp op) {
        return evalReduce(op, op.getOperand(), op.getAxes(), op.getKeepdim(),
                          Reduction::Max);
      })
      .Case([&](ReduceMinOp op) {
        return evalReduce(op, op.getOperand(), op.getAxes(), op.getKeepdim(),
                          Reduction::Min);
      })
      .Case([&](SoftmaxOp op) {
        return evalSoftmax(op, op.getOperand(), op.getAxis(), /*log=*/false);
      })
      .Case([&](LogSoftmaxOp op) {
        return evalSoftmax(op, op.getOperand(), op.getAxis(), /*log=*/true);
      })
      .Case([&](TokenLogprobOp op) { return evalTokenLogprob(op); })
      .Case([&](StopGradientOp op) {
        return unary(op, op.getOperand(), [](double v) { return v; });
      })
      .Case([&](KlOp op) { return evalKl(op); })
      .Case([&](GaeOp op) { return evalGae(op); })
      .Case([&](RmsNormOp op) { return evalRmsNorm(op); })
      .Case([&](MatmulOp op) { return evalMatmul(op); })
      .Case([&](LinearOp op) { return evalLinear(op); })
      .Case([&](ReshapeOp op) { return evalReshape(op); })
      .Case([&](TransposeOp op) { return evalTranspose(op); })
      .Case([&](SliceOp op) { return evalSlice(op); })
      .Case([&](ConcatOp op) { return evalConcat(op); })
      .Case([&](GatherOp op) { return evalGather(op); })
      .Case([&](DynamicSliceOp op) { return evalDynamicSlice(op); })
      .Case([&](DynamicUpdateSliceOp op) { return evalDynamicUpdateSlice(op); })
      .Case([&](BroadcastOp op) { return evalBroadcast(op); })
      .Default([](Operation *op) -> FailureOr<Tensor> {
        return op->emitOpError("is not supported by the interpreter");
      });
}

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

FailureOr<std::vector<Tensor>>
mlir::loom::interp::evaluate(func::FuncOp func, ArrayRef<Tensor> args) {
  // The evaluator relies on verified IR (operand types, attribute ranges);
  // checking here keeps malformed input from reaching it.
  if (failed(mlir::verify(func)))
    return failure();
  return Evaluator(/*depth=*/0).run(func, args);
}

FailureOr<std::vector<Tensor>>
mlir::loom::interp::evaluate(ModuleOp module, StringRef entry,
                             ArrayRef<Tensor> args) {
  auto func = module.lookupSymbol<func::FuncOp>(entry);
  if (!func)
    return module.emitError("no func named '") << entry << "' to evaluate";
  return evaluate(func, args);
}
