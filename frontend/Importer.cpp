//===- Importer.cpp - Import of .loom modules into MLIR ---------*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file implements the import of a checked `.loom` AST into the `loom`
// dialect. Each `graph` becomes a public `func.func`. Every call of a def or
// graph is inlined with a value map rather than emitted as a call, because the
// params and states of a callee must become arguments (and state results) of
// the entry function, with bindings prefixed as the call chain dictates.
// Compile-time scalars (literals, configs and expressions over them) stay
// unmaterialized until the element type they must take is known, and every
// op is built with mlir::loom::createChecked so that shape and element type
// errors are reported at the expression that caused them.
//
//===----------------------------------------------------------------------===//

#include "frontend/Importer.h"

#include "dialects/loom/IR/LoomDialect.h"
#include "dialects/loom/IR/LoomOps.h"
#include "frontend/Config.h"
#include "frontend/Requirement.h"
#include "frontend/Sema.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Location.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <array>
#include <cmath>
#include <limits>
#include <memory>

using namespace loom::frontend;
using llvm::ArrayRef;
using llvm::SmallVector;
using llvm::StringRef;
using llvm::Twine;
using mlir::failed;
using mlir::failure;
using mlir::FailureOr;
using mlir::LogicalResult;
using mlir::RankedTensorType;
using mlir::success;
using mlir::Type;
using mlir::Value;

//===----------------------------------------------------------------------===//
// Types
//===----------------------------------------------------------------------===//

static Type convertDType(mlir::MLIRContext *ctx, DType dtype) {
  switch (dtype) {
  case DType::F32:
    return mlir::Float32Type::get(ctx);
  case DType::F64:
    return mlir::Float64Type::get(ctx);
  case DType::F16:
    return mlir::Float16Type::get(ctx);
  case DType::BF16:
    return mlir::BFloat16Type::get(ctx);
  case DType::I32:
    return mlir::IntegerType::get(ctx, 32);
  case DType::I64:
    return mlir::IntegerType::get(ctx, 64);
  case DType::Bool:
    return mlir::IntegerType::get(ctx, 1);
  }
  return {};
}

/// Returns the language's spelling of an element type (`bool` for i1).
static std::string spellElementType(Type type) {
  if (type.isF32())
    return "f32";
  if (type.isF64())
    return "f64";
  if (type.isF16())
    return "f16";
  if (type.isBF16())
    return "bf16";
  if (type.isInteger(1))
    return "bool";
  if (type.isInteger(32))
    return "i32";
  if (type.isInteger(64))
    return "i64";
  std::string text;
  llvm::raw_string_ostream os(text);
  os << type;
  return text;
}

/// Returns "an f32", "a bool", ... for messages.
static std::string withArticle(Type elementType) {
  std::string name = spellElementType(elementType);
  return (name[0] == 'f' || name[0] == 'i' ? "an " : "a ") + name;
}

/// Prints a computed type in the language's syntax, e.g. `f32[?, 32]`.
static std::string spellType(RankedTensorType type) {
  std::string text = spellElementType(type.getElementType());
  llvm::raw_string_ostream os(text);
  os << '[';
  llvm::interleaveComma(type.getShape(), os, [&](int64_t d) {
    if (mlir::ShapedType::isDynamic(d))
      os << '?';
    else
      os << d;
  });
  os << ']';
  return text;
}

namespace {

/// A declared type after evaluation: the tensor type (symbolic dims are `?`),
/// the dims as a `loom.dims` attribute and the spelling used in messages
/// (`f32[B, 64]`).
struct DeclType {
  RankedTensorType type;
  mlir::ArrayAttr dims;
  std::string spelling;
};

/// An operand while an expression is imported: a tensor value, or a
/// compile-time scalar that becomes a rank-0 constant once the element type
/// it must take is known.
struct Operand {
  Value value;
  ConstValue scalar;
  const Expr *expr = nullptr;

  bool isScalar() const { return !value; }
};

/// An argument of the entry function being built.
struct ArgSlot {
  mlir::BlockArgument arg;
  /// `loom.name`: the name in the file, or the binding for hoisted ones.
  std::string name;
  /// `loom.binding` of params and states.
  std::string binding;
  DeclType decl;
  mlir::LocationAttr loc;
  /// States only: the value at the end of the call and where it was set.
  Value newValue;
  mlir::LocationAttr assignedAt;
};

/// One graph body being imported: the entry graph or an inlined callee.
struct Frame {
  const GraphAST *graph = nullptr;
  /// The prefix of param and state bindings in this body.
  std::string prefix;
  /// The location of the call being inlined (itself wrapped in the outer
  /// calls); null for the entry graph.
  mlir::LocationAttr caller;
  /// Names of the body bound to values. A state maps to its value at the
  /// start of the call, even after it is assigned.
  llvm::StringMap<Value> values;
  /// The states of this body by their name in the file.
  llvm::StringMap<ArgSlot *> states;
  /// The mask and score declarations met so far.
  llvm::StringMap<const MaskStmt *> masks;

  bool isEntry() const { return !caller; }
};

/// An evaluated keyword argument of an op call.
struct Keyword {
  const KeywordArg *arg;
  ConstValue value;
  bool used = false;
};

/// An op call being imported.
struct OpCall {
  Frame *frame;
  const CallExpr *call;
  SmallVector<Operand> operands;
  SmallVector<Keyword> keywords;
};

/// The families of ops that share how their operands and keywords are read.
enum class OpKind {
  Binary,
  Compare,
  Unary,
  Select,
  MaxMin,
  Cast,
  Iota,
  Reduce,
  Softmax,
  RmsNorm,
  Matmul,
  Linear,
  Reshape,
  Transpose,
  Slice,
  Concat,
  Gather,
  TokenLogprob,
  Broadcast,
  DynamicSlice,
  DynamicUpdateSlice,
  MlaAttention,
  Grad,
  Kl,
  Gae,
};

/// An op name of the language and how it maps to the dialect. For Compare,
/// `opName` is the predicate; for MaxMin it is the binary op.
struct OpInfo {
  StringRef name;
  OpKind kind;
  StringRef opName;
  unsigned minOperands;
  unsigned maxOperands;
};

constexpr unsigned kVariadic = ~0u;

const OpInfo kOps[] = {
    {"add", OpKind::Binary, "loom.add", 2, 2},
    {"sub", OpKind::Binary, "loom.sub", 2, 2},
    {"mul", OpKind::Binary, "loom.mul", 2, 2},
    {"div", OpKind::Binary, "loom.div", 2, 2},
    {"pow", OpKind::Binary, "loom.pow", 2, 2},
    {"and", OpKind::Binary, "loom.and", 2, 2},
    {"or", OpKind::Binary, "loom.or", 2, 2},
    {"max", OpKind::MaxMin, "loom.max", 1, 2},
    {"min", OpKind::MaxMin, "loom.min", 1, 2},
    {"eq", OpKind::Compare, "eq", 2, 2},
    {"ne", OpKind::Compare, "ne", 2, 2},
    {"lt", OpKind::Compare, "lt", 2, 2},
    {"le", OpKind::Compare, "le", 2, 2},
    {"gt", OpKind::Compare, "gt", 2, 2},
    {"ge", OpKind::Compare, "ge", 2, 2},
    {"not", OpKind::Unary, "loom.not", 1, 1},
    {"neg", OpKind::Unary, "loom.neg", 1, 1},
    {"abs", OpKind::Unary, "loom.abs", 1, 1},
    {"exp", OpKind::Unary, "loom.exp", 1, 1},
    {"log", OpKind::Unary, "loom.log", 1, 1},
    {"tanh", OpKind::Unary, "loom.tanh", 1, 1},
    {"sigmoid", OpKind::Unary, "loom.sigmoid", 1, 1},
    {"silu", OpKind::Unary, "loom.silu", 1, 1},
    {"gelu", OpKind::Unary, "loom.gelu", 1, 1},
    {"rsqrt", OpKind::Unary, "loom.rsqrt", 1, 1},
    {"sqrt", OpKind::Unary, "loom.sqrt", 1, 1},
    {"sin", OpKind::Unary, "loom.sin", 1, 1},
    {"cos", OpKind::Unary, "loom.cos", 1, 1},
    {"detach", OpKind::Unary, "loom.stop_gradient", 1, 1},
    {"where", OpKind::Select, "loom.select", 3, 3},
    {"select", OpKind::Select, "loom.select", 3, 3},
    {"cast", OpKind::Cast, "loom.cast", 1, 1},
    {"iota", OpKind::Iota, "loom.iota", 0, 1},
    {"sum", OpKind::Reduce, "loom.sum", 1, 1},
    {"mean", OpKind::Reduce, "loom.mean", 1, 1},
    {"softmax", OpKind::Softmax, "loom.softmax", 1, 1},
    {"log_softmax", OpKind::Softmax, "loom.log_softmax", 1, 1},
    {"rms_norm", OpKind::RmsNorm, "loom.rms_norm", 2, 2},
    {"matmul", OpKind::Matmul, "loom.matmul", 2, 2},
    {"linear", OpKind::Linear, "loom.linear", 2, 3},
    {"reshape", OpKind::Reshape, "loom.reshape", 1, 1},
    {"transpose", OpKind::Transpose, "loom.transpose", 1, 1},
    {"slice", OpKind::Slice, "loom.slice", 1, 1},
    {"concat", OpKind::Concat, "loom.concat", 1, kVariadic},
    {"gather", OpKind::Gather, "loom.gather", 2, 2},
    {"token_logprob", OpKind::TokenLogprob, "loom.token_logprob", 2, 2},
    {"broadcast", OpKind::Broadcast, "loom.broadcast", 1, 2},
    {"dynamic_slice", OpKind::DynamicSlice, "loom.dynamic_slice", 2, 3},
    {"dynamic_update_slice", OpKind::DynamicUpdateSlice,
     "loom.dynamic_update_slice", 3, 3},
    {"mla_attention", OpKind::MlaAttention, "loom.mla_attention", 8, 8},
    {"grad", OpKind::Grad, "loom.grad", 2, kVariadic},
    {"kl", OpKind::Kl, "loom.kl", 2, 2},
    {"gae", OpKind::Gae, "loom.gae", 3, 3},
};

const OpInfo *lookupOp(StringRef name) {
  for (const OpInfo &info : kOps)
    if (info.name == name)
      return &info;
  return nullptr;
}

/// A scalar value inside a mask or score region: an `i64` int, a float of
/// the attention's element type, or an `i1` bool. `index` holds the `index`
/// form of an int when it is at hand (the region's parameters).
struct ScalarValue {
  enum class Kind { Int, Float, Bool };
  Kind kind;
  Value value;
  Value index;
};

/// The parameters of the mask or score body being compiled: the values its
/// parameter names stand for.
struct MaskEnv {
  const MaskStmt *decl = nullptr;
  SmallVector<ScalarValue> params;
};

/// The state of one `attention` call while its regions are built.
struct AttentionBuild {
  Frame *frame = nullptr;
  const CallExpr *call = nullptr;
  /// q's element type: the type of scores and of floats in the regions.
  Type element;
  /// The tensors the regions read, deduplicated, in order of first use.
  SmallVector<Value> captures;
  llvm::DenseMap<Value, unsigned> captureIndex;
  /// The region blocks made so far; each takes every capture.
  SmallVector<mlir::Block *> blocks;
  /// The block being filled and its parameters (b, h, i, j as index).
  mlir::Block *block = nullptr;
  unsigned numParams = 4;
  std::array<Value, 4> indexParams;
};

//===----------------------------------------------------------------------===//
// Importer
//===----------------------------------------------------------------------===//

class Importer {
public:
  Importer(const ModuleAST &m, mlir::MLIRContext &context, llvm::SourceMgr &sm)
      : m(m), ctx(&context), sm(sm), builder(&context),
        filename(mlir::StringAttr::get(&context, m.filename)) {}

  mlir::OwningOpRef<mlir::ModuleOp> run();

private:
  // Locations and diagnostics.
  mlir::Location loc(const Frame &f, const Location &l);
  mlir::InFlightDiagnostic error(const Frame &f, const Location &l,
                                 const Twine &msg);

  // Declarations.
  FailureOr<DeclType> convertType(const TypeAST &type);
  LogicalResult importGraph(const GraphAST &g);
  FailureOr<SmallVector<Value>> importBody(Frame &f);
  LogicalResult importParam(Frame &f, const ParamStmt &p);
  LogicalResult importState(Frame &f, const StateStmt &s);
  LogicalResult importAssign(Frame &f, const AssignStmt &a);
  LogicalResult importRequire(Frame &f, const RequireStmt &r);
  std::optional<TermBinding> resolveRequirementName(Frame &f,
                                                    const NameExpr &name);
  mlir::ArrayAttr buildRequirementsAttr();

  // Expressions.
  bool isCompileTime(const Frame &f, const Expr &e);
  FailureOr<Operand> importExpr(Frame &f, const Expr &e);
  FailureOr<Operand> importName(Frame &f, const NameExpr &e);
  FailureOr<Value> importUnary(Frame &f, const UnaryExpr &e);
  FailureOr<Value> importBinary(Frame &f, const BinaryExpr &e);
  FailureOr<Value> materialize(Frame &f, const Operand &o, Type elementType);
  FailureOr<Value> create(mlir::OperationState &state);

  // Calls.
  FailureOr<SmallVector<Value>> importCall(Frame &f, const CallExpr &call,
                                           size_t results);
  FailureOr<SmallVector<Value>> inlineCall(Frame &f, const CallExpr &call,
                                           const GraphAST &callee);
  FailureOr<SmallVector<Value>> importOpCall(Frame &f, const CallExpr &call);
  LogicalResult buildOp(OpCall &c, const OpInfo &info,
                        mlir::OperationState &state);
  LogicalResult buildReduce(OpCall &c, mlir::OperationState &state);

  // Attention and its mask and score regions (see the section below).
  FailureOr<SmallVector<Value>> importAttention(Frame &f, const CallExpr &call,
                                                size_t results);
  mlir::Block *beginRegion(AttentionBuild &a, mlir::Region &region,
                           bool withScore);
  FailureOr<ScalarValue> compileScalar(AttentionBuild &a, const MaskEnv &env,
                                       const Expr &e);
  FailureOr<ScalarValue> compileName(AttentionBuild &a, const MaskEnv &env,
                                     const NameExpr &e);
  FailureOr<ScalarValue> compileUnary(AttentionBuild &a, const MaskEnv &env,
                                      const UnaryExpr &e);
  FailureOr<ScalarValue> compileBinary(AttentionBuild &a, const MaskEnv &env,
                                       const BinaryExpr &e);
  FailureOr<ScalarValue> compileCall(AttentionBuild &a, const MaskEnv &env,
                                     const CallExpr &e);
  FailureOr<ScalarValue>
  compileBuiltinMask(AttentionBuild &a, const MaskEnv &env, const CallExpr &e);
  FailureOr<ScalarValue> compileIndex(AttentionBuild &a, const MaskEnv &env,
                                      const IndexExpr &e);
  FailureOr<ScalarValue> inlineMask(AttentionBuild &a, const MaskEnv &env,
                                    const MaskStmt &decl);
  FailureOr<Value> capture(AttentionBuild &a, Value tensor);
  FailureOr<Value> toIndex(AttentionBuild &a, const ScalarValue &v,
                           const Expr &e, StringRef what);
  ScalarValue toFloat(AttentionBuild &a, const ScalarValue &v);
  ScalarValue readElement(AttentionBuild &a, Value captured,
                          ArrayRef<Value> indices, mlir::Location l,
                          const Expr *e);

  // Keywords of op calls.
  Keyword *findKeyword(OpCall &c, StringRef key);
  mlir::InFlightDiagnostic keywordError(OpCall &c, const Keyword &k,
                                        const Twine &msg);
  FailureOr<int64_t> getInt(OpCall &c, StringRef key,
                            std::optional<int64_t> dflt);
  FailureOr<bool> getBool(OpCall &c, StringRef key, bool dflt);
  FailureOr<double> getFloat(OpCall &c, StringRef key, double dflt);
  /// Returns the finite number that keyword `key` must be given.
  FailureOr<double> getRequiredFiniteFloat(OpCall &c, StringRef key);
  FailureOr<Type> getDType(OpCall &c, StringRef key, DType dflt);
  FailureOr<std::optional<SmallVector<int64_t>>>
  getIntList(OpCall &c, StringRef key, bool required);
  FailureOr<int64_t> normalizeAxis(OpCall &c, StringRef key, int64_t axis,
                                   int64_t rank);
  FailureOr<Value> operandValue(OpCall &c, unsigned i, Type hint = {});
  Type pickElementType(ArrayRef<Operand> operands);
  LogicalResult buildGrad(OpCall &c, mlir::OperationState &state);
  /// Returns the type of `value` for messages: the declared spelling of an
  /// argument of the entry function (`f32[B, 4]`), else the computed type
  /// (`f32[?, 4]`).
  std::string describeValueType(Value value);

  const ModuleAST &m;
  mlir::MLIRContext *ctx;
  llvm::SourceMgr &sm;
  mlir::OpBuilder builder;
  mlir::StringAttr filename;

  // The entry function being built.
  const GraphAST *entryGraph = nullptr;
  mlir::Block *block = nullptr;
  /// The requirements met so far (the entry's and its inlined defs'), with
  /// the `file:line:col` of their `require`.
  std::vector<std::pair<LinearRequirement, std::string>> requirements;
  std::vector<std::unique_ptr<ArgSlot>> inputs, params, states;
  llvm::StringMap<ArgSlot *> paramsByBinding, statesByBinding;
};

} // namespace

mlir::Location Importer::loc(const Frame &f, const Location &l) {
  mlir::Location result = mlir::FileLineColLoc::get(filename, l.line, l.col);
  if (f.caller)
    return mlir::CallSiteLoc::get(result, mlir::Location(f.caller));
  return result;
}

mlir::InFlightDiagnostic Importer::error(const Frame &f, const Location &l,
                                         const Twine &msg) {
  return mlir::emitError(loc(f, l), msg);
}

FailureOr<Value> Importer::create(mlir::OperationState &state) {
  FailureOr<mlir::Operation *> op = mlir::loom::createChecked(builder, state);
  if (failed(op))
    return failure();
  return (*op)->getResult(0);
}

//===----------------------------------------------------------------------===//
// Declarations
//===----------------------------------------------------------------------===//

FailureOr<DeclType> Importer::convertType(const TypeAST &type) {
  DeclType decl;
  SmallVector<int64_t> shape;
  SmallVector<mlir::Attribute> dims;
  decl.spelling = stringifyDType(type.dtype).str() + "[";
  for (auto [i, dim] : llvm::enumerate(type.dims)) {
    std::optional<ConstValue> v = evaluateDim(m, *dim, &sm);
    if (!v)
      return failure();
    if (i)
      decl.spelling += ", ";
    if (v->isInt()) {
      shape.push_back(v->intValue);
      dims.push_back(builder.getI64IntegerAttr(v->intValue));
      decl.spelling += std::to_string(v->intValue);
    } else {
      shape.push_back(mlir::ShapedType::kDynamic);
      dims.push_back(builder.getStringAttr(v->str));
      decl.spelling += v->str;
    }
  }
  decl.spelling += "]";
  decl.type = RankedTensorType::get(shape, convertDType(ctx, type.dtype));
  decl.dims = builder.getArrayAttr(dims);
  return decl;
}

/// Returns true when a value of type `computed` may stand for a declaration
/// of type `declared`: same element type and rank, equal static dims. A
/// symbolic dim of the declaration must be `?` when `strict`, and accepts any
/// size otherwise.
static bool matchesDecl(RankedTensorType computed, RankedTensorType declared,
                        bool strict) {
  if (computed.getElementType() != declared.getElementType() ||
      computed.getRank() != declared.getRank())
    return false;
  for (auto [c, d] : llvm::zip(computed.getShape(), declared.getShape())) {
    if (mlir::ShapedType::isDynamic(d)) {
      if (strict && !mlir::ShapedType::isDynamic(c))
        return false;
    } else if (c != d) {
      return false;
    }
  }
  return true;
}

LogicalResult Importer::importParam(Frame &f, const ParamStmt &p) {
  FailureOr<DeclType> decl = convertType(p.type);
  if (failed(decl))
    return failure();
  std::string binding = f.prefix + p.getBindingName().str();
  if (ArgSlot *prev = paramsByBinding.lookup(binding)) {
    if (prev->decl.type != decl->type) {
      error(f, p.ident.loc,
            "param '" + p.ident.name + "' binds '" + binding + "' as " +
                decl->spelling + ", but an earlier param binds it as " +
                prev->decl.spelling)
              .attachNote(mlir::Location(prev->loc))
          << "earlier param is here";
      return failure();
    }
    f.values[p.ident.name] = prev->arg;
    return success();
  }
  auto slot = std::make_unique<ArgSlot>();
  slot->loc = loc(f, p.ident.loc);
  slot->arg = block->insertArgument(inputs.size() + params.size(), decl->type,
                                    mlir::Location(slot->loc));
  slot->name = f.isEntry() ? p.ident.name : binding;
  slot->binding = binding;
  slot->decl = std::move(*decl);
  f.values[p.ident.name] = slot->arg;
  paramsByBinding[binding] = slot.get();
  params.push_back(std::move(slot));
  return success();
}

LogicalResult Importer::importState(Frame &f, const StateStmt &s) {
  FailureOr<DeclType> decl = convertType(s.type);
  if (failed(decl))
    return failure();
  std::string binding = f.prefix + s.ident.name;
  ArgSlot *slot = statesByBinding.lookup(binding);
  if (slot && slot->decl.type != decl->type) {
    error(f, s.ident.loc,
          "state '" + s.ident.name + "' binds '" + binding + "' as " +
              decl->spelling + ", but an earlier state binds it as " +
              slot->decl.spelling)
            .attachNote(mlir::Location(slot->loc))
        << "earlier state is here";
    return failure();
  }
  if (!slot) {
    auto owned = std::make_unique<ArgSlot>();
    owned->loc = loc(f, s.ident.loc);
    owned->arg = block->addArgument(decl->type, mlir::Location(owned->loc));
    owned->name = f.isEntry() ? s.ident.name : binding;
    owned->binding = binding;
    owned->decl = std::move(*decl);
    slot = owned.get();
    statesByBinding[binding] = slot;
    states.push_back(std::move(owned));
  }
  f.values[s.ident.name] = slot->arg;
  f.states[s.ident.name] = slot;
  return success();
}

/// Returns the output of `g` named `name`, or null.
static const ValueDecl *findOutput(const GraphAST &g, StringRef name) {
  for (const ValueDecl &d : g.outputs)
    if (d.ident.name == name)
      return &d;
  return nullptr;
}

LogicalResult Importer::importAssign(Frame &f, const AssignStmt &a) {
  SmallVector<Value> results;
  const auto *call = llvm::dyn_cast<CallExpr>(a.value.get());
  if (call && (a.targets.size() > 1 || m.findGraph(call->callee))) {
    FailureOr<SmallVector<Value>> values =
        importCall(f, *call, a.targets.size());
    if (failed(values))
      return failure();
    results = std::move(*values);
  } else {
    FailureOr<Operand> operand = importExpr(f, *a.value);
    if (failed(operand))
      return failure();
    // A scalar assigned to an output or a state takes its declared dtype.
    Type hint;
    StringRef target = a.targets.front().name;
    if (ArgSlot *slot = f.states.lookup(target))
      hint = slot->decl.type.getElementType();
    else if (const ValueDecl *out = findOutput(*f.graph, target))
      hint = convertDType(ctx, out->type.dtype);
    FailureOr<Value> value = materialize(f, *operand, hint);
    if (failed(value))
      return failure();
    results.push_back(*value);
  }

  for (auto [target, value] : llvm::zip(a.targets, results)) {
    ArgSlot *slot = f.states.lookup(target.name);
    if (!slot) {
      f.values[target.name] = value;
      continue;
    }
    auto type = llvm::cast<RankedTensorType>(value.getType());
    if (type != slot->decl.type)
      return error(f, target.loc,
                   "state '" + target.name + "' is declared " +
                       slot->decl.spelling + ", but is assigned " +
                       spellType(type));
    if (slot->newValue) {
      error(f, target.loc,
            "state '" + slot->binding + "' is assigned more than once")
              .attachNote(mlir::Location(slot->assignedAt))
          << "previous assignment is here";
      return failure();
    }
    slot->newValue = value;
    slot->assignedAt = loc(f, target.loc);
  }
  return success();
}

FailureOr<SmallVector<Value>> Importer::importBody(Frame &f) {
  // Only the taken branches of `if` statements take part, in their place.
  for (const Stmt *stmt : getActiveStmts(m, *f.graph)) {
    LogicalResult result = success();
    if (const auto *p = llvm::dyn_cast<ParamStmt>(stmt))
      result = importParam(f, *p);
    else if (const auto *s = llvm::dyn_cast<StateStmt>(stmt))
      result = importState(f, *s);
    else if (const auto *a = llvm::dyn_cast<AssignStmt>(stmt))
      result = importAssign(f, *a);
    else if (const auto *r = llvm::dyn_cast<RequireStmt>(stmt))
      result = importRequire(f, *r);
    else if (const auto *mask = llvm::dyn_cast<MaskStmt>(stmt))
      f.masks[mask->ident.name] = mask;
    if (failed(result))
      return failure();
  }

  SmallVector<Value> outputs;
  StringRef what = f.graph->isEntryPoint() ? "graph" : "def";
  for (const ValueDecl &out : f.graph->outputs) {
    FailureOr<DeclType> decl = convertType(out.type);
    if (failed(decl))
      return failure();
    Value value = f.values.lookup(out.ident.name);
    if (!value)
      return error(f, out.ident.loc,
                   "output '" + out.ident.name + "' is never assigned");
    auto type = llvm::cast<RankedTensorType>(value.getType());
    // Inside an inlined callee a symbolic dim may be bound to a static size
    // by the caller's arguments.
    if (!matchesDecl(type, decl->type, /*strict=*/f.isEntry()))
      return error(f, out.ident.loc,
                   "output '" + out.ident.name + "' is declared " +
                       decl->spelling + " but the " + what + " computes " +
                       spellType(type));
    outputs.push_back(value);
  }
  return outputs;
}

//===----------------------------------------------------------------------===//
// Requirements
//===----------------------------------------------------------------------===//

std::optional<TermBinding>
Importer::resolveRequirementName(Frame &f, const NameExpr &name) {
  const GraphAST &g = *f.graph;
  auto entryInput = [&](Value v) -> int {
    auto arg = llvm::dyn_cast<mlir::BlockArgument>(v);
    if (!arg || arg.getOwner() != block || arg.getArgNumber() >= inputs.size())
      return -1;
    return static_cast<int>(arg.getArgNumber());
  };
  auto refuse = [&](const Twine &msg) -> std::nullopt_t {
    error(f, name.getLoc(), msg);
    return std::nullopt;
  };
  TermBinding binding;
  for (auto [i, input] : llvm::enumerate(g.inputs)) {
    if (input.ident.name != name.name)
      continue;
    binding.kind = TermBinding::Kind::Input;
    if (f.isEntry()) {
      binding.target = name.name;
      binding.input = i;
      return binding;
    }
    // A def's scalar input: the entry input passed down to it, or a
    // constant.
    Value value = f.values.lookup(input.ident.name);
    if (int index = entryInput(value); index >= 0) {
      binding.target = inputs[index]->name;
      binding.input = index;
      return binding;
    }
    mlir::DenseIntElementsAttr constant;
    if (mlir::matchPattern(value, mlir::m_Constant(&constant)) &&
        constant.isSplat()) {
      binding.kind = TermBinding::Kind::Constant;
      binding.value = constant.getSplatValue<llvm::APInt>().getSExtValue();
      return binding;
    }
    return refuse("requirement of def '" + g.getName() + "' uses its input '" +
                  name.name +
                  "', but this call passes a computed value, not "
                  "an input of graph '" +
                  entryGraph->getName() +
                  "'; a def's requirement can only be checked on values that "
                  "come from the graph's inputs");
  }
  for (const ValueDecl &input : g.inputs) {
    for (auto [d, dim] : llvm::enumerate(input.type.dims)) {
      auto *symbol = llvm::dyn_cast<NameExpr>(dim.get());
      if (!symbol || symbol->name != name.name)
        continue;
      binding.kind = TermBinding::Kind::Symbol;
      if (f.isEntry()) {
        binding.target = name.name;
        return binding;
      }
      // The size of the def's input in this call: static, or a symbolic
      // dim of the entry input passed down to it.
      Value value = f.values.lookup(input.ident.name);
      auto type = llvm::cast<RankedTensorType>(value.getType());
      if (!type.isDynamicDim(d)) {
        binding.kind = TermBinding::Kind::Constant;
        binding.value = type.getDimSize(d);
        return binding;
      }
      if (int index = entryInput(value); index >= 0)
        if (auto entrySymbol =
                llvm::dyn_cast<mlir::StringAttr>(inputs[index]->decl.dims[d])) {
          binding.target = entrySymbol.getValue().str();
          return binding;
        }
      return refuse("requirement of def '" + g.getName() +
                    "' uses symbolic dim '" + name.name + "' of its input '" +
                    input.ident.name +
                    "', but this call passes a computed "
                    "value there, not an input of graph '" +
                    entryGraph->getName() +
                    "'; a def's requirement can only be checked on sizes "
                    "that come from the graph's inputs");
    }
  }
  return refuse("'" + name.name + "' cannot be used in a requirement");
}

LogicalResult Importer::importRequire(Frame &f, const RequireStmt &r) {
  std::string location =
      (m.filename + ":" + Twine(r.getLoc().line) + ":" + Twine(r.getLoc().col))
          .str();
  for (const RequireStmt::Condition &c : r.conditions) {
    std::optional<LinearRequirement> req = buildRequirement(
        m, *c.expr, c.text,
        [&](const NameExpr &name) { return resolveRequirementName(f, name); },
        sm);
    if (!req)
      return failure();
    // A def's requirement whose names this call binds to constants is
    // decided now.
    if (req->terms.empty()) {
      if (req->holdsWithoutTerms())
        continue;
      return error(f, getStartLoc(*c.expr),
                   "requirement is false for this call: " + c.text +
                       (req->knownValues.empty()
                            ? std::string()
                            : " (" + req->knownValues + ")"));
    }
    // A def called twice in the same way gives the same record once.
    bool seen = llvm::any_of(requirements, [&](const auto &other) {
      const LinearRequirement &o = other.first;
      if (other.second != location || o.text != req->text ||
          o.predicate != req->predicate || o.constant != req->constant ||
          o.knownValues != req->knownValues ||
          o.terms.size() != req->terms.size())
        return false;
      for (auto [a, b] : llvm::zip(o.terms, req->terms))
        if (a.kind != b.kind || a.target != b.target || a.input != b.input ||
            a.coeff != b.coeff || a.name != b.name)
          return false;
      return true;
    });
    if (!seen)
      requirements.emplace_back(std::move(*req), location);
  }
  return success();
}

mlir::ArrayAttr Importer::buildRequirementsAttr() {
  auto str = [&](StringRef key, StringRef value) {
    return builder.getNamedAttr(key, builder.getStringAttr(value));
  };
  auto i64 = [&](StringRef key, int64_t value) {
    return builder.getNamedAttr(key, builder.getI64IntegerAttr(value));
  };
  SmallVector<mlir::Attribute> records;
  for (const auto &[req, location] : requirements) {
    SmallVector<mlir::Attribute> terms;
    for (const RequirementTerm &t : req.terms) {
      SmallVector<mlir::NamedAttribute> fields = {i64("coeff", t.coeff),
                                                  str("name", t.name)};
      if (t.kind == TermBinding::Kind::Input) {
        fields.push_back(str("kind", "input"));
        fields.push_back(i64("arg", t.input));
      } else {
        fields.push_back(str("kind", "symbol"));
        fields.push_back(str("symbol", t.target));
      }
      terms.push_back(builder.getDictionaryAttr(fields));
    }
    StringRef predicate =
        req.predicate == LinearRequirement::Predicate::GE   ? "ge"
        : req.predicate == LinearRequirement::Predicate::EQ ? "eq"
                                                            : "ne";
    records.push_back(builder.getDictionaryAttr(
        {str("predicate", predicate), i64("constant", req.constant),
         builder.getNamedAttr("terms", builder.getArrayAttr(terms)),
         str("text", req.text), str("configs", req.knownValues),
         str("location", location)}));
  }
  return builder.getArrayAttr(records);
}

//===----------------------------------------------------------------------===//
// Entry graphs
//===----------------------------------------------------------------------===//

LogicalResult Importer::importGraph(const GraphAST &g) {
  inputs.clear();
  params.clear();
  states.clear();
  paramsByBinding.clear();
  statesByBinding.clear();
  requirements.clear();
  entryGraph = &g;

  Frame f;
  f.graph = &g;
  f.prefix = getGraphPrefix(m, g);
  mlir::Location graphLoc = loc(f, g.ident.loc);
  auto func = mlir::func::FuncOp::create(builder, graphLoc, g.getName(),
                                         builder.getFunctionType({}, {}));
  block = func.addEntryBlock();
  mlir::OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToStart(block);

  for (const ValueDecl &in : g.inputs) {
    FailureOr<DeclType> decl = convertType(in.type);
    if (failed(decl))
      return failure();
    auto slot = std::make_unique<ArgSlot>();
    slot->loc = loc(f, in.ident.loc);
    slot->arg = block->addArgument(decl->type, mlir::Location(slot->loc));
    slot->name = in.ident.name;
    slot->decl = std::move(*decl);
    f.values[in.ident.name] = slot->arg;
    inputs.push_back(std::move(slot));
  }

  FailureOr<SmallVector<Value>> outputs = importBody(f);
  if (failed(outputs))
    return failure();

  // The runtime binds symbolic dimensions from the inputs of each call, and
  // a state lives across calls: params and outputs may only use symbols an
  // input has, and states must be static.
  llvm::StringSet<> bound;
  for (const std::unique_ptr<ArgSlot> &slot : inputs)
    for (mlir::Attribute dim : slot->decl.dims)
      if (auto symbol = llvm::dyn_cast<mlir::StringAttr>(dim))
        bound.insert(symbol.getValue());
  auto firstSymbol = [](const DeclType &decl,
                        llvm::function_ref<bool(StringRef)> pred) {
    for (mlir::Attribute dim : decl.dims)
      if (auto symbol = llvm::dyn_cast<mlir::StringAttr>(dim))
        if (pred(symbol.getValue()))
          return symbol.getValue();
    return StringRef();
  };
  auto unbound = [&](StringRef symbol) { return !bound.contains(symbol); };
  for (const std::unique_ptr<ArgSlot> &slot : params) {
    StringRef symbol = firstSymbol(slot->decl, unbound);
    if (!symbol.empty())
      return mlir::emitError(slot->loc)
             << "param '" << slot->name << "' (" << slot->decl.spelling
             << ") uses symbolic dimension '" << symbol
             << "', which no input of graph '" << g.getName()
             << "' has; make it a config or give an input that dimension";
  }
  for (const std::unique_ptr<ArgSlot> &slot : states) {
    StringRef symbol = firstSymbol(slot->decl, [](StringRef) { return true; });
    if (!symbol.empty())
      return mlir::emitError(slot->loc)
             << "state '" << slot->name << "' (" << slot->decl.spelling
             << ") has symbolic dimension '" << symbol
             << "'; state buffers live across calls and need static sizes "
                "(use configs)";
  }
  for (const ValueDecl &out : g.outputs) {
    FailureOr<DeclType> decl = convertType(out.type);
    if (failed(decl))
      return failure();
    StringRef symbol = firstSymbol(*decl, unbound);
    if (!symbol.empty())
      return error(f, out.ident.loc,
                   "output '" + out.ident.name + "' (" + decl->spelling +
                       ") uses symbolic dimension '" + symbol.str() +
                       "', which no input of graph '" + g.getName().str() +
                       "' has");
  }

  auto role = [&](StringRef r) {
    return builder.getNamedAttr("loom.role", builder.getStringAttr(r));
  };
  auto named = [&](StringRef key, StringRef value) {
    return builder.getNamedAttr(key, builder.getStringAttr(value));
  };
  SmallVector<Value> results(*outputs);
  SmallVector<mlir::DictionaryAttr> resultAttrs;
  for (const ValueDecl &out : g.outputs) {
    FailureOr<DeclType> decl = convertType(out.type);
    if (failed(decl))
      return failure();
    resultAttrs.push_back(builder.getDictionaryAttr(
        {role("output"), named("loom.name", out.ident.name),
         builder.getNamedAttr("loom.dims", decl->dims)}));
  }
  for (const std::unique_ptr<ArgSlot> &slot : states) {
    if (!slot->newValue)
      continue;
    results.push_back(slot->newValue);
    resultAttrs.push_back(builder.getDictionaryAttr(
        {role("state"), named("loom.name", slot->name),
         named("loom.binding", slot->binding),
         builder.getNamedAttr("loom.dims", slot->decl.dims)}));
  }
  mlir::func::ReturnOp::create(builder, graphLoc, results);
  func.setFunctionType(builder.getFunctionType(
      block->getArgumentTypes(), mlir::ValueRange(results).getTypes()));

  unsigned index = 0;
  auto setArgs = [&](ArrayRef<std::unique_ptr<ArgSlot>> slots,
                     StringRef roleName, bool withBinding) {
    for (const std::unique_ptr<ArgSlot> &slot : slots) {
      SmallVector<mlir::NamedAttribute> attrs = {
          role(roleName), named("loom.name", slot->name)};
      if (withBinding)
        attrs.push_back(named("loom.binding", slot->binding));
      attrs.push_back(builder.getNamedAttr("loom.dims", slot->decl.dims));
      func.setArgAttrs(index++, builder.getDictionaryAttr(attrs));
    }
  };
  setArgs(inputs, "input", /*withBinding=*/false);
  setArgs(params, "param", /*withBinding=*/true);
  setArgs(states, "state", /*withBinding=*/true);
  for (auto [i, attrs] : llvm::enumerate(resultAttrs))
    func.setResultAttrs(i, attrs);
  if (!requirements.empty())
    func->setAttr("loom.requires", buildRequirementsAttr());
  return success();
}

mlir::OwningOpRef<mlir::ModuleOp> Importer::run() {
  ctx->getOrLoadDialect<mlir::loom::LoomDialect>();
  ctx->getOrLoadDialect<mlir::func::FuncDialect>();
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::ModuleOp::create(mlir::FileLineColLoc::get(filename, 1, 1));
  builder.setInsertionPointToEnd(module->getBody());
  for (const std::unique_ptr<GraphAST> &g : m.graphs) {
    if (!g->isEntryPoint())
      continue;
    if (failed(importGraph(*g)))
      return nullptr;
    builder.setInsertionPointToEnd(module->getBody());
  }
  if (failed(mlir::verify(*module)))
    return nullptr;
  return module;
}

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

/// Returns true when `e` is a compile-time scalar expression: literals,
/// numeric or bool configs, operators over them and `min`/`max` of them. Such
/// an expression is folded by the config evaluator (with Python's arithmetic)
/// instead of being built from ops.
bool Importer::isCompileTime(const Frame &f, const Expr &e) {
  switch (e.getKind()) {
  case Expr::Kind::Int:
  case Expr::Kind::Float:
  case Expr::Kind::Bool:
    return true;
  case Expr::Kind::Name: {
    const auto &name = llvm::cast<NameExpr>(e).name;
    if (f.values.count(name))
      return false;
    const ConfigDecl *c = m.findConfig(name);
    return c &&
           (c->value.isNumeric() || c->value.kind == ConstValue::Kind::Bool);
  }
  case Expr::Kind::Unary:
    return isCompileTime(f, *llvm::cast<UnaryExpr>(e).operand);
  case Expr::Kind::Binary: {
    const auto &b = llvm::cast<BinaryExpr>(e);
    return isCompileTime(f, *b.lhs) && isCompileTime(f, *b.rhs);
  }
  case Expr::Kind::Call: {
    // min/max of two or more and the one-argument math functions of
    // configs; `max(x)` of one operand is the reduction op.
    const auto &call = llvm::cast<CallExpr>(e);
    bool isMinMax = call.callee == "min" || call.callee == "max";
    if (!isConfigFunction(call.callee) || m.findGraph(call.callee) ||
        !call.kwargs.empty() ||
        (isMinMax ? call.args.size() < 2 : call.args.size() != 1))
      return false;
    return llvm::all_of(
        call.args, [&](const ExprPtr &arg) { return isCompileTime(f, *arg); });
  }
  default:
    return false;
  }
}

FailureOr<Operand> Importer::importName(Frame &f, const NameExpr &e) {
  Operand result;
  result.expr = &e;
  if (Value value = f.values.lookup(e.name)) {
    result.value = value;
    return result;
  }
  if (const ConfigDecl *c = m.findConfig(e.name)) {
    if (!c->value.isNumeric() && c->value.kind != ConstValue::Kind::Bool)
      return error(f, e.getLoc(),
                   "config '" + e.name + "' is a " +
                       stringifyKind(c->value.kind) +
                       " and cannot be used as an operand");
    result.scalar = c->value;
    return result;
  }
  if (llvm::is_contained(getSymbolicDims(m, *f.graph), e.name))
    return error(f, e.getLoc(),
                 "symbolic dimension '" + e.name +
                     "' cannot be used as a value");
  return error(f, e.getLoc(), "undefined name '" + e.name + "'");
}

FailureOr<Operand> Importer::importExpr(Frame &f, const Expr &e) {
  Operand result;
  result.expr = &e;
  if (isCompileTime(f, e)) {
    std::optional<ConstValue> v = evaluateConstant(m, e, f.graph, &sm);
    if (!v)
      return failure();
    result.scalar = std::move(*v);
    return result;
  }
  FailureOr<Value> value = failure();
  switch (e.getKind()) {
  case Expr::Kind::Name:
    return importName(f, llvm::cast<NameExpr>(e));
  case Expr::Kind::Unary:
    value = importUnary(f, llvm::cast<UnaryExpr>(e));
    break;
  case Expr::Kind::Binary:
    value = importBinary(f, llvm::cast<BinaryExpr>(e));
    break;
  case Expr::Kind::Call: {
    FailureOr<SmallVector<Value>> values =
        importCall(f, llvm::cast<CallExpr>(e), 1);
    if (failed(values))
      return failure();
    value = values->front();
    break;
  }
  case Expr::Kind::String:
    return error(f, e.getLoc(), "a string cannot be used as an operand");
  case Expr::Kind::List:
    return error(f, e.getLoc(),
                 "a list of operands is only accepted by 'concat'");
  case Expr::Kind::Index:
    return error(f, e.getLoc(), "indexing is only allowed inside a mask body");
  default:
    return error(f, e.getLoc(), "unexpected expression");
  }
  if (failed(value))
    return failure();
  result.value = *value;
  return result;
}

FailureOr<Value> Importer::materialize(Frame &f, const Operand &o,
                                       Type elementType) {
  if (!o.isScalar())
    return o.value;
  const ConstValue &v = o.scalar;
  if (!elementType)
    elementType = v.isFloat() ? Type(builder.getF32Type())
                  : v.isInt() ? Type(builder.getI64Type())
                              : Type(builder.getI1Type());
  auto mismatch = [&]() {
    return error(f, o.expr->getLoc(),
                 Twine(stringifyKind(v.kind)) + " constant " + v.toString() +
                     " cannot be used with " + withArticle(elementType) +
                     " tensor");
  };
  mlir::Attribute attr;
  if (llvm::isa<mlir::FloatType>(elementType)) {
    if (!v.isNumeric())
      return mismatch();
    attr = builder.getFloatAttr(elementType, v.getAsDouble());
  } else if (elementType.isInteger(1)) {
    if (v.kind != ConstValue::Kind::Bool)
      return mismatch();
    attr = builder.getIntegerAttr(elementType, llvm::APInt(1, v.boolValue));
  } else {
    if (!v.isInt())
      return mismatch();
    if (elementType.isInteger(32) &&
        (v.intValue < std::numeric_limits<int32_t>::min() ||
         v.intValue > std::numeric_limits<int32_t>::max()))
      return error(f, o.expr->getLoc(),
                   "int constant " + v.toString() + " does not fit in i32");
    attr = builder.getIntegerAttr(elementType, v.intValue);
  }
  auto type = RankedTensorType::get({}, elementType);
  mlir::OperationState state(loc(f, o.expr->getLoc()), "loom.constant");
  state.addAttribute("value", mlir::DenseElementsAttr::get(
                                  type, ArrayRef<mlir::Attribute>(attr)));
  return create(state);
}

FailureOr<Value> Importer::importUnary(Frame &f, const UnaryExpr &e) {
  FailureOr<Operand> operand = importExpr(f, *e.operand);
  if (failed(operand))
    return failure();
  FailureOr<Value> value = materialize(f, *operand, {});
  if (failed(value))
    return failure();
  mlir::OperationState state(loc(f, e.getLoc()),
                             e.op == UnaryOp::Neg ? "loom.neg" : "loom.not");
  state.addOperands(*value);
  return create(state);
}

FailureOr<Value> Importer::importBinary(Frame &f, const BinaryExpr &e) {
  FailureOr<Operand> lhs = importExpr(f, *e.lhs);
  if (failed(lhs))
    return failure();
  FailureOr<Operand> rhs = importExpr(f, *e.rhs);
  if (failed(rhs))
    return failure();
  if (e.op == BinaryOp::FloorDiv || e.op == BinaryOp::Mod)
    return error(f, e.getLoc(),
                 "operator '" + stringifyBinaryOp(e.op) +
                     "' is not supported on tensors");
  Type hint = pickElementType({*lhs, *rhs});
  FailureOr<Value> l = materialize(f, *lhs, hint);
  if (failed(l))
    return failure();
  FailureOr<Value> r = materialize(f, *rhs, hint);
  if (failed(r))
    return failure();

  StringRef opName, predicate;
  switch (e.op) {
  case BinaryOp::Add:
    opName = "loom.add";
    break;
  case BinaryOp::Sub:
    opName = "loom.sub";
    break;
  case BinaryOp::Mul:
    opName = "loom.mul";
    break;
  case BinaryOp::Div:
    opName = "loom.div";
    break;
  case BinaryOp::Pow:
    opName = "loom.pow";
    break;
  case BinaryOp::MatMul:
    opName = "loom.matmul";
    break;
  case BinaryOp::And:
    opName = "loom.and";
    break;
  case BinaryOp::Or:
    opName = "loom.or";
    break;
  case BinaryOp::Eq:
    predicate = "eq";
    break;
  case BinaryOp::Ne:
    predicate = "ne";
    break;
  case BinaryOp::Lt:
    predicate = "lt";
    break;
  case BinaryOp::Le:
    predicate = "le";
    break;
  case BinaryOp::Gt:
    predicate = "gt";
    break;
  case BinaryOp::Ge:
    predicate = "ge";
    break;
  case BinaryOp::FloorDiv:
  case BinaryOp::Mod:
    break;
  }
  mlir::OperationState state(loc(f, e.getLoc()),
                             predicate.empty() ? opName : "loom.cmp");
  if (!predicate.empty())
    state.addAttribute("predicate", builder.getStringAttr(predicate));
  state.addOperands({*l, *r});
  return create(state);
}

/// Returns the element type that scalar operands among `operands` take: the
/// first tensor's, else f32 if a scalar is a float, i64 if one is an int,
/// and i1 for bools.
Type Importer::pickElementType(ArrayRef<Operand> operands) {
  for (const Operand &o : operands)
    if (!o.isScalar())
      return llvm::cast<RankedTensorType>(o.value.getType()).getElementType();
  if (llvm::any_of(operands,
                   [](const Operand &o) { return o.scalar.isFloat(); }))
    return builder.getF32Type();
  if (llvm::any_of(operands, [](const Operand &o) { return o.scalar.isInt(); }))
    return builder.getI64Type();
  return builder.getI1Type();
}

//===----------------------------------------------------------------------===//
// Calls of defs and graphs
//===----------------------------------------------------------------------===//

FailureOr<SmallVector<Value>>
Importer::importCall(Frame &f, const CallExpr &call, size_t results) {
  if (const GraphAST *callee = m.findGraph(call.callee))
    return inlineCall(f, call, *callee);
  if (call.callee == "attention")
    return importAttention(f, call, results);
  FailureOr<SmallVector<Value>> values = importOpCall(f, call);
  if (failed(values))
    return failure();
  if (values->size() != results)
    return error(f, call.getLoc(),
                 "op '" + call.callee + "' returns " +
                     (values->size() == 1 ? Twine("one result")
                                          : Twine(values->size()) + " results") +
                     ", but " + Twine(results) +
                     (results == 1 ? " name is" : " names are") + " assigned");
  return values;
}

FailureOr<SmallVector<Value>>
Importer::inlineCall(Frame &f, const CallExpr &call, const GraphAST &callee) {
  StringRef what = callee.isEntryPoint() ? "graph" : "def";
  SmallVector<Value> args;
  for (auto [i, arg] : llvm::enumerate(call.args)) {
    const ValueDecl &input = callee.inputs[i];
    FailureOr<DeclType> decl = convertType(input.type);
    if (failed(decl))
      return failure();
    FailureOr<Operand> operand = importExpr(f, *arg);
    if (failed(operand))
      return failure();
    FailureOr<Value> value =
        materialize(f, *operand, decl->type.getElementType());
    if (failed(value))
      return failure();
    auto type = llvm::cast<RankedTensorType>(value->getType());
    if (!matchesDecl(type, decl->type, /*strict=*/false))
      return error(f, getStartLoc(*arg),
                   "argument " + Twine(i + 1) + " of " + what + " '" +
                       callee.getName() + "' is " + spellType(type) +
                       ", but its input '" + input.ident.name +
                       "' is declared " + decl->spelling);
    args.push_back(*value);
  }

  std::string callPrefix;
  if (const KeywordArg *kw = call.findKeyword("prefix")) {
    std::optional<ConstValue> v = evaluateConstant(m, *kw->value, f.graph, &sm);
    if (!v)
      return failure();
    if (v->kind != ConstValue::Kind::String)
      return error(f, kw->value->getLoc(),
                   "prefix must be a string, got " + stringifyKind(v->kind));
    callPrefix = v->str;
  }

  Frame inner;
  inner.graph = &callee;
  inner.prefix = f.prefix + callPrefix + getGraphPrefix(m, callee);
  inner.caller = loc(f, call.getLoc());
  for (auto [input, value] : llvm::zip(callee.inputs, args))
    inner.values[input.ident.name] = value;
  return importBody(inner);
}

//===----------------------------------------------------------------------===//
// Op calls
//===----------------------------------------------------------------------===//

Keyword *Importer::findKeyword(OpCall &c, StringRef key) {
  for (Keyword &k : c.keywords) {
    if (k.arg->key.name == key) {
      k.used = true;
      return &k;
    }
  }
  return nullptr;
}

mlir::InFlightDiagnostic Importer::keywordError(OpCall &c, const Keyword &k,
                                                const Twine &msg) {
  return error(*c.frame, k.arg->value->getLoc(),
               "keyword '" + k.arg->key.name + "' of op '" + c.call->callee +
                   "' " + msg);
}

/// Describes a keyword's value for messages: "float 1.5".
static std::string describe(const ConstValue &v) {
  return (stringifyKind(v.kind) + " " + v.toString()).str();
}

FailureOr<int64_t> Importer::getInt(OpCall &c, StringRef key,
                                    std::optional<int64_t> dflt) {
  Keyword *k = findKeyword(c, key);
  if (!k) {
    if (dflt)
      return *dflt;
    return error(*c.frame, c.call->getLoc(),
                 "op '" + c.call->callee + "' needs keyword '" + key + "'");
  }
  if (!k->value.isInt())
    return keywordError(c, *k, "must be an int, got " + describe(k->value));
  return k->value.intValue;
}

FailureOr<bool> Importer::getBool(OpCall &c, StringRef key, bool dflt) {
  Keyword *k = findKeyword(c, key);
  if (!k)
    return dflt;
  if (k->value.kind != ConstValue::Kind::Bool)
    return keywordError(c, *k, "must be a bool, got " + describe(k->value));
  return k->value.boolValue;
}

FailureOr<double> Importer::getFloat(OpCall &c, StringRef key, double dflt) {
  Keyword *k = findKeyword(c, key);
  if (!k)
    return dflt;
  if (!k->value.isNumeric())
    return keywordError(c, *k, "must be a number, got " + describe(k->value));
  return k->value.getAsDouble();
}

FailureOr<double> Importer::getRequiredFiniteFloat(OpCall &c, StringRef key) {
  Keyword *k = findKeyword(c, key);
  if (!k)
    return error(*c.frame, c.call->getLoc(),
                 "op '" + c.call->callee + "' needs keyword '" + key + "'");
  const auto *name = llvm::dyn_cast<NameExpr>(k->arg->value.get());
  std::string config = name ? " (config '" + name->name + "')" : "";
  if (!k->value.isNumeric())
    return keywordError(c, *k,
                        "must be a number, got " + describe(k->value) + config);
  double v = k->value.getAsDouble();
  if (!std::isfinite(v))
    return keywordError(c, *k,
                        "must be finite, got " + describe(k->value) + config);
  return v;
}

FailureOr<Type> Importer::getDType(OpCall &c, StringRef key, DType dflt) {
  Keyword *k = findKeyword(c, key);
  if (!k)
    return convertDType(ctx, dflt);
  std::optional<DType> dtype;
  if (k->value.kind == ConstValue::Kind::String)
    dtype = parseDType(k->value.str);
  if (!dtype)
    return keywordError(c, *k,
                        "must be a dtype string (\"f32\", \"f64\", \"f16\", "
                        "\"bf16\", \"i32\", \"i64\" or \"bool\"), got " +
                            describe(k->value));
  return convertDType(ctx, *dtype);
}

FailureOr<std::optional<SmallVector<int64_t>>>
Importer::getIntList(OpCall &c, StringRef key, bool required) {
  Keyword *k = findKeyword(c, key);
  if (!k) {
    if (!required)
      return std::optional<SmallVector<int64_t>>();
    return error(*c.frame, c.call->getLoc(),
                 "op '" + c.call->callee + "' needs keyword '" + key + "'");
  }
  if (k->value.kind != ConstValue::Kind::List)
    return keywordError(c, *k,
                        "must be a list of ints, got " + describe(k->value));
  SmallVector<int64_t> result;
  for (const ConstValue &element : k->value.list) {
    if (element.kind == ConstValue::Kind::Symbol)
      return keywordError(c, *k,
                          "uses symbolic dimension '" + element.str +
                              "', which is not supported yet (use 0 to copy "
                              "a dimension or -1 to infer one)");
    if (!element.isInt())
      return keywordError(c, *k,
                          "must be a list of ints, got " + describe(k->value));
    result.push_back(element.intValue);
  }
  return std::optional<SmallVector<int64_t>>(std::move(result));
}

FailureOr<int64_t> Importer::normalizeAxis(OpCall &c, StringRef key,
                                           int64_t axis, int64_t rank) {
  if (axis >= -rank && axis < rank)
    return axis < 0 ? axis + rank : axis;
  std::string msg = "axis " + std::to_string(axis) + " is out of range for " +
                    "rank " + std::to_string(rank);
  if (Keyword *k = findKeyword(c, key))
    return keywordError(c, *k, "is invalid: " + msg);
  return error(*c.frame, c.call->getLoc(),
               "op '" + c.call->callee + "': default " + msg);
}

FailureOr<Value> Importer::operandValue(OpCall &c, unsigned i, Type hint) {
  return materialize(*c.frame, c.operands[i], hint);
}

/// Returns the rank of a tensor value.
static int64_t rankOf(Value value) {
  return llvm::cast<RankedTensorType>(value.getType()).getRank();
}

LogicalResult Importer::buildReduce(OpCall &c, mlir::OperationState &state) {
  FailureOr<Value> x = operandValue(c, 0);
  if (failed(x))
    return failure();
  int64_t rank = rankOf(*x);
  SmallVector<int64_t> axes;
  Keyword *axisKw = findKeyword(c, "axis");
  Keyword *axesKw = findKeyword(c, "axes");
  if (axisKw && axesKw)
    return keywordError(c, *axesKw, "cannot be combined with 'axis'");
  if (axisKw) {
    FailureOr<int64_t> axis = getInt(c, "axis", std::nullopt);
    if (failed(axis))
      return failure();
    axes.push_back(*axis);
  } else if (axesKw) {
    FailureOr<std::optional<SmallVector<int64_t>>> list =
        getIntList(c, "axes", /*required=*/true);
    if (failed(list))
      return failure();
    axes = **list;
  } else {
    for (int64_t i = 0; i < rank; ++i)
      axes.push_back(i);
  }
  StringRef key = axesKw ? "axes" : "axis";
  for (int64_t &axis : axes) {
    FailureOr<int64_t> normalized = normalizeAxis(c, key, axis, rank);
    if (failed(normalized))
      return failure();
    axis = *normalized;
  }
  FailureOr<bool> keepdim = getBool(c, "keepdim", false);
  if (failed(keepdim))
    return failure();
  state.addOperands(*x);
  state.addAttribute("axes", builder.getDenseI64ArrayAttr(axes));
  state.addAttribute("keepdim", builder.getBoolAttr(*keepdim));
  return success();
}

std::string Importer::describeValueType(Value value) {
  for (const auto *slots : {&inputs, &params, &states})
    for (const std::unique_ptr<ArgSlot> &slot : *slots)
      if (slot->arg == value)
        return slot->decl.spelling;
  return spellType(llvm::cast<RankedTensorType>(value.getType()));
}

LogicalResult Importer::buildGrad(OpCall &c, mlir::OperationState &state) {
  Frame &f = *c.frame;
  // The loss: a rank-0 float tensor, or a float constant (whose gradients
  // are zero).
  const Operand &loss = c.operands.front();
  std::string lossText = exprToString(*loss.expr);
  Location lossLoc = getStartLoc(*loss.expr);
  if (loss.isScalar() && !loss.scalar.isFloat())
    return error(f, lossLoc,
                 "grad: the loss must be a float scalar, but '" + lossText +
                     "' is " + describe(loss.scalar));
  FailureOr<Value> lossValue = operandValue(c, 0);
  if (failed(lossValue))
    return failure();
  auto lossType = llvm::cast<RankedTensorType>(lossValue->getType());
  if (lossType.getRank() != 0 ||
      !llvm::isa<mlir::FloatType>(lossType.getElementType()))
    return error(f, lossLoc,
                 "grad: the loss must be a float scalar, but '" + lossText +
                     "' is " + describeValueType(*lossValue) +
                     (lossType.getRank() != 0 ? " (reduce it first, e.g. "
                                                "with mean or sum)"
                                              : ""));
  state.addOperands(*lossValue);

  // The values to differentiate by: float tensors of the graph, by name.
  for (unsigned i = 1, e = c.operands.size(); i < e; ++i) {
    const Operand &wrt = c.operands[i];
    std::string text = exprToString(*wrt.expr);
    Location wrtLoc = getStartLoc(*wrt.expr);
    if (wrt.isScalar())
      return error(f, wrtLoc,
                   "grad: '" + text + "' is a compile-time " +
                       stringifyKind(wrt.scalar.kind) +
                       ", not a tensor of the graph; grad differentiates by "
                       "inputs, params, states and assigned values");
    if (!llvm::isa<NameExpr>(wrt.expr))
      return error(f, wrtLoc,
                   "grad: value " + Twine(i) +
                       " to differentiate by must be the name of a tensor of "
                       "the graph (an input, a param, a state or an assigned "
                       "value), but is '" +
                       text + "'; assign it to a name first");
    auto type = llvm::cast<RankedTensorType>(wrt.value.getType());
    if (!llvm::isa<mlir::FloatType>(type.getElementType()))
      return error(f, wrtLoc,
                   "grad: only float tensors can be differentiated by, but '" +
                       text + "' is " + describeValueType(wrt.value));
    state.addOperands(wrt.value);
    state.addTypes(type);
  }
  return success();
}

LogicalResult Importer::buildOp(OpCall &c, const OpInfo &info,
                                mlir::OperationState &state) {
  auto addAll = [&](Type hint) -> LogicalResult {
    for (unsigned i = 0, e = c.operands.size(); i < e; ++i) {
      FailureOr<Value> v = operandValue(c, i, hint);
      if (failed(v))
        return failure();
      state.addOperands(*v);
    }
    return success();
  };
  Type common = pickElementType(c.operands);

  switch (info.kind) {
  case OpKind::MaxMin:
    if (c.operands.size() == 1)
      return buildReduce(c, state);
    return addAll(common);
  case OpKind::Binary:
    return addAll(common);
  case OpKind::Compare:
    state.addAttribute("predicate", builder.getStringAttr(info.opName));
    return addAll(common);
  case OpKind::Unary:
    return addAll({});
  case OpKind::Select: {
    FailureOr<Value> cond = operandValue(c, 0, builder.getI1Type());
    if (failed(cond))
      return failure();
    Type branch = pickElementType(ArrayRef<Operand>(c.operands).drop_front());
    FailureOr<Value> t = operandValue(c, 1, branch);
    if (failed(t))
      return failure();
    FailureOr<Value> e = operandValue(c, 2, branch);
    if (failed(e))
      return failure();
    state.addOperands({*cond, *t, *e});
    return success();
  }
  case OpKind::Cast: {
    FailureOr<Value> x = operandValue(c, 0);
    if (failed(x))
      return failure();
    if (!findKeyword(c, "dtype"))
      return error(*c.frame, c.call->getLoc(),
                   "op 'cast' needs keyword 'dtype'");
    FailureOr<Type> dtype = getDType(c, "dtype", DType::F32);
    if (failed(dtype))
      return failure();
    state.addOperands(*x);
    state.addTypes(RankedTensorType::get(
        llvm::cast<RankedTensorType>(x->getType()).getShape(), *dtype));
    return success();
  }
  case OpKind::Iota: {
    FailureOr<Type> dtype = getDType(c, "dtype", DType::I64);
    if (failed(dtype))
      return failure();
    if (c.operands.empty()) {
      FailureOr<int64_t> length = getInt(c, "length", std::nullopt);
      if (failed(length))
        return failure();
      if (*length < 0)
        return keywordError(c, *findKeyword(c, "length"),
                            "must be >= 0, got " + Twine(*length));
      FailureOr<int64_t> axis = getInt(c, "axis", 0);
      if (failed(axis))
        return failure();
      if (failed(normalizeAxis(c, "axis", *axis, 1)))
        return failure();
      state.addAttribute("axis", builder.getI64IntegerAttr(0));
      state.addTypes(RankedTensorType::get({*length}, *dtype));
      return success();
    }
    FailureOr<Value> like = operandValue(c, 0);
    if (failed(like))
      return failure();
    FailureOr<int64_t> axis = getInt(c, "axis", std::nullopt);
    if (failed(axis))
      return failure();
    FailureOr<int64_t> normalized =
        normalizeAxis(c, "axis", *axis, rankOf(*like));
    if (failed(normalized))
      return failure();
    state.addOperands(*like);
    state.addAttribute("axis", builder.getI64IntegerAttr(*normalized));
    state.addTypes(RankedTensorType::get(
        llvm::cast<RankedTensorType>(like->getType()).getShape(), *dtype));
    return success();
  }
  case OpKind::Reduce:
    return buildReduce(c, state);
  case OpKind::Softmax: {
    FailureOr<Value> x = operandValue(c, 0);
    if (failed(x))
      return failure();
    FailureOr<int64_t> axis = getInt(c, "axis", -1);
    if (failed(axis))
      return failure();
    FailureOr<int64_t> normalized = normalizeAxis(c, "axis", *axis, rankOf(*x));
    if (failed(normalized))
      return failure();
    state.addOperands(*x);
    state.addAttribute("axis", builder.getI64IntegerAttr(*normalized));
    return success();
  }
  case OpKind::RmsNorm: {
    FailureOr<double> eps = getFloat(c, "eps", 1e-6);
    if (failed(eps))
      return failure();
    state.addAttribute("eps", builder.getF64FloatAttr(*eps));
    return addAll(common);
  }
  case OpKind::Matmul: {
    FailureOr<bool> ta = getBool(c, "transpose_a", false);
    if (failed(ta))
      return failure();
    FailureOr<bool> tb = getBool(c, "transpose_b", false);
    if (failed(tb))
      return failure();
    if (*ta)
      state.addAttribute("transpose_a", builder.getBoolAttr(true));
    if (*tb)
      state.addAttribute("transpose_b", builder.getBoolAttr(true));
    return addAll(common);
  }
  case OpKind::Linear:
    return addAll(common);
  case OpKind::Reshape: {
    FailureOr<Value> x = operandValue(c, 0);
    if (failed(x))
      return failure();
    FailureOr<std::optional<SmallVector<int64_t>>> shape =
        getIntList(c, "shape", /*required=*/true);
    if (failed(shape))
      return failure();
    state.addOperands(*x);
    state.addAttribute("shape", builder.getDenseI64ArrayAttr(**shape));
    return success();
  }
  case OpKind::Transpose: {
    FailureOr<Value> x = operandValue(c, 0);
    if (failed(x))
      return failure();
    FailureOr<std::optional<SmallVector<int64_t>>> perm =
        getIntList(c, "perm", /*required=*/true);
    if (failed(perm))
      return failure();
    SmallVector<int64_t> permutation = **perm;
    int64_t rank = rankOf(*x);
    for (int64_t &p : permutation) {
      FailureOr<int64_t> normalized = normalizeAxis(c, "perm", p, rank);
      if (failed(normalized))
        return failure();
      p = *normalized;
    }
    state.addOperands(*x);
    state.addAttribute("permutation",
                       builder.getDenseI64ArrayAttr(permutation));
    return success();
  }
  case OpKind::Slice: {
    FailureOr<Value> x = operandValue(c, 0);
    if (failed(x))
      return failure();
    FailureOr<int64_t> axis = getInt(c, "axis", std::nullopt);
    if (failed(axis))
      return failure();
    FailureOr<int64_t> normalized = normalizeAxis(c, "axis", *axis, rankOf(*x));
    if (failed(normalized))
      return failure();
    FailureOr<int64_t> start = getInt(c, "start", 0);
    if (failed(start))
      return failure();
    FailureOr<int64_t> end =
        getInt(c, "end", std::numeric_limits<int64_t>::max());
    if (failed(end))
      return failure();
    FailureOr<int64_t> step = getInt(c, "step", 1);
    if (failed(step))
      return failure();
    if (*step < 1)
      return keywordError(c, *findKeyword(c, "step"),
                          "must be >= 1, got " + Twine(*step));
    state.addOperands(*x);
    state.addAttribute("axis", builder.getI64IntegerAttr(*normalized));
    state.addAttribute("start", builder.getI64IntegerAttr(*start));
    state.addAttribute("end", builder.getI64IntegerAttr(*end));
    state.addAttribute("step", builder.getI64IntegerAttr(*step));
    return success();
  }
  case OpKind::Concat: {
    if (failed(addAll(common)))
      return failure();
    FailureOr<int64_t> axis = getInt(c, "axis", std::nullopt);
    if (failed(axis))
      return failure();
    FailureOr<int64_t> normalized =
        normalizeAxis(c, "axis", *axis, rankOf(state.operands.front()));
    if (failed(normalized))
      return failure();
    state.addAttribute("axis", builder.getI64IntegerAttr(*normalized));
    return success();
  }
  case OpKind::Gather: {
    FailureOr<Value> x = operandValue(c, 0);
    if (failed(x))
      return failure();
    FailureOr<Value> indices = operandValue(c, 1, builder.getI64Type());
    if (failed(indices))
      return failure();
    FailureOr<int64_t> axis = getInt(c, "axis", 0);
    if (failed(axis))
      return failure();
    FailureOr<int64_t> normalized = normalizeAxis(c, "axis", *axis, rankOf(*x));
    if (failed(normalized))
      return failure();
    state.addOperands({*x, *indices});
    state.addAttribute("axis", builder.getI64IntegerAttr(*normalized));
    return success();
  }
  case OpKind::TokenLogprob: {
    FailureOr<Value> logits = operandValue(c, 0);
    if (failed(logits))
      return failure();
    FailureOr<Value> ids = operandValue(c, 1, builder.getI64Type());
    if (failed(ids))
      return failure();
    FailureOr<double> temperature = getFloat(c, "temperature", 1.0);
    if (failed(temperature))
      return failure();
    if (!(*temperature > 0.0) || std::isinf(*temperature)) {
      Keyword *k = findKeyword(c, "temperature");
      return keywordError(c, *k,
                          "must be finite and > 0, got " + describe(k->value));
    }
    state.addOperands({*logits, *ids});
    state.addAttribute("temperature", builder.getF64FloatAttr(*temperature));
    return success();
  }
  case OpKind::DynamicSlice: {
    FailureOr<Value> x = operandValue(c, 0);
    if (failed(x))
      return failure();
    FailureOr<Value> start = operandValue(c, 1, builder.getI64Type());
    if (failed(start))
      return failure();
    FailureOr<int64_t> axis = getInt(c, "axis", std::nullopt);
    if (failed(axis))
      return failure();
    FailureOr<int64_t> normalized = normalizeAxis(c, "axis", *axis, rankOf(*x));
    if (failed(normalized))
      return failure();
    state.addOperands({*x, *start});
    state.addAttribute("axis", builder.getI64IntegerAttr(*normalized));
    Keyword *sizeKw = findKeyword(c, "size");
    if (c.operands.size() == 3) {
      if (sizeKw)
        return keywordError(c, *sizeKw,
                            "cannot be combined with a length operand");
      FailureOr<Value> length = operandValue(c, 2, builder.getI64Type());
      if (failed(length))
        return failure();
      state.addOperands(*length);
      return success();
    }
    if (!sizeKw)
      return error(*c.frame, c.call->getLoc(),
                   "op 'dynamic_slice' needs a length operand or keyword "
                   "'size'");
    FailureOr<int64_t> size = getInt(c, "size", std::nullopt);
    if (failed(size))
      return failure();
    if (*size < 0)
      return keywordError(c, *sizeKw, "must be >= 0, got " + Twine(*size));
    state.addAttribute("size", builder.getI64IntegerAttr(*size));
    return success();
  }
  case OpKind::MlaAttention: {
    // q_nope, q_pe, kv, k_pe, wkv_b, k_cache, v_cache, start_pos; scale=.
    SmallVector<Value> operands;
    for (unsigned i = 0; i < 7; ++i) {
      FailureOr<Value> v = operandValue(c, i);
      if (failed(v))
        return failure();
      operands.push_back(*v);
    }
    FailureOr<Value> start = operandValue(c, 7, builder.getI64Type());
    if (failed(start))
      return failure();
    operands.push_back(*start);
    FailureOr<double> scale =
        getFloat(c, "scale", std::numeric_limits<double>::quiet_NaN());
    if (failed(scale))
      return failure();
    if (std::isnan(*scale))
      return error(*c.frame, c.call->getLoc(),
                   "op 'mla_attention' needs its softmax scale: scale=...");
    state.addOperands(operands);
    state.addAttribute("scale", builder.getF64FloatAttr(*scale));
    return success();
  }
  case OpKind::DynamicUpdateSlice: {
    FailureOr<Value> target = operandValue(c, 0);
    if (failed(target))
      return failure();
    FailureOr<Value> update = operandValue(
        c, 1, llvm::cast<RankedTensorType>(target->getType()).getElementType());
    if (failed(update))
      return failure();
    FailureOr<Value> start = operandValue(c, 2, builder.getI64Type());
    if (failed(start))
      return failure();
    FailureOr<int64_t> axis = getInt(c, "axis", std::nullopt);
    if (failed(axis))
      return failure();
    FailureOr<int64_t> normalized =
        normalizeAxis(c, "axis", *axis, rankOf(*target));
    if (failed(normalized))
      return failure();
    state.addOperands({*target, *update, *start});
    state.addAttribute("axis", builder.getI64IntegerAttr(*normalized));
    return success();
  }
  case OpKind::Grad:
    return buildGrad(c, state);
  case OpKind::Kl: {
    std::string estimator = "k3";
    if (Keyword *k = findKeyword(c, "estimator")) {
      const ConstValue &v = k->value;
      if (v.kind != ConstValue::Kind::String ||
          (v.str != "k1" && v.str != "k2" && v.str != "k3")) {
        const auto *name = llvm::dyn_cast<NameExpr>(k->arg->value.get());
        return keywordError(
            c, *k,
            "must be \"k1\", \"k2\" or \"k3\", got " + describe(v) +
                (name ? " (config '" + name->name + "')" : std::string()));
      }
      estimator = v.str;
    }
    state.addAttribute("estimator", builder.getStringAttr(estimator));
    if (failed(addAll(common)))
      return failure();
    const char *const names[] = {"logp", "ref"};
    for (auto [i, name] : llvm::enumerate(names)) {
      Value v = state.operands[i];
      if (!llvm::isa<mlir::FloatType>(
              llvm::cast<RankedTensorType>(v.getType()).getElementType()))
        return error(*c.frame, getStartLoc(*c.operands[i].expr),
                     Twine("kl: ") + name + " must be a float tensor, but '" +
                         exprToString(*c.operands[i].expr) + "' is " +
                         describeValueType(v));
    }
    return success();
  }
  case OpKind::Gae: {
    FailureOr<double> gamma = getRequiredFiniteFloat(c, "gamma");
    if (failed(gamma))
      return failure();
    FailureOr<double> lam = getRequiredFiniteFloat(c, "lam");
    if (failed(lam))
      return failure();
    state.addAttribute("gamma", builder.getF64FloatAttr(*gamma));
    state.addAttribute("lam", builder.getF64FloatAttr(*lam));
    if (failed(addAll(common)))
      return failure();
    // rewards, values and mask: float [B, T] of one element type.
    Type element = llvm::cast<RankedTensorType>(state.operands[0].getType())
                       .getElementType();
    const char *const names[] = {"rewards", "values", "mask"};
    for (auto [i, name] : llvm::enumerate(names)) {
      Value v = state.operands[i];
      auto type = llvm::cast<RankedTensorType>(v.getType());
      bool isFloat = llvm::isa<mlir::FloatType>(type.getElementType());
      if (type.getRank() != 2 || !isFloat || type.getElementType() != element)
        return error(
            *c.frame, getStartLoc(*c.operands[i].expr),
            Twine("gae: ") + name + " must be " +
                (i == 0 || !llvm::isa<mlir::FloatType>(element)
                     ? std::string("a float tensor [B, T]")
                     : withArticle(element) + " tensor [B, T] like rewards") +
                ", but '" + exprToString(*c.operands[i].expr) + "' is " +
                describeValueType(v));
    }
    return success();
  }
  case OpKind::Broadcast: {
    FailureOr<Value> x = operandValue(c, 0);
    if (failed(x))
      return failure();
    state.addOperands(*x);
    if (c.operands.size() == 2) {
      FailureOr<Value> like = operandValue(c, 1);
      if (failed(like))
        return failure();
      state.addOperands(*like);
      return success();
    }
    FailureOr<std::optional<SmallVector<int64_t>>> shape =
        getIntList(c, "shape", /*required=*/true);
    if (failed(shape))
      return failure();
    state.addAttribute("shape", builder.getDenseI64ArrayAttr(**shape));
    return success();
  }
  }
  return success();
}

FailureOr<SmallVector<Value>> Importer::importOpCall(Frame &f,
                                                    const CallExpr &call) {
  const OpInfo *info = lookupOp(call.callee);
  if (!info)
    return error(f, call.getLoc(), "unknown op '" + call.callee + "'");

  // concat takes its operands as one list or as separate arguments.
  SmallVector<const Expr *> args;
  if (info->kind == OpKind::Concat && call.args.size() == 1 &&
      llvm::isa<ListExpr>(*call.args.front())) {
    for (const ExprPtr &element :
         llvm::cast<ListExpr>(*call.args.front()).elements)
      args.push_back(element.get());
  } else {
    for (const ExprPtr &arg : call.args)
      args.push_back(arg.get());
  }
  if (args.size() < info->minOperands || args.size() > info->maxOperands) {
    std::string expected;
    if (info->maxOperands == kVariadic)
      expected = "at least " + std::to_string(info->minOperands);
    else if (info->minOperands == info->maxOperands)
      expected = std::to_string(info->minOperands);
    else
      expected = std::to_string(info->minOperands) + " or " +
                 std::to_string(info->maxOperands);
    bool one = expected == "1" || expected == "at least 1";
    return error(f, call.getLoc(),
                 "op '" + call.callee + "' takes " + expected +
                     (one ? " operand" : " operands") + ", but " +
                     Twine(args.size()) +
                     (args.size() == 1 ? " is given" : " are given"));
  }

  OpCall c;
  c.frame = &f;
  c.call = &call;
  for (const Expr *arg : args) {
    FailureOr<Operand> operand = importExpr(f, *arg);
    if (failed(operand))
      return failure();
    c.operands.push_back(*operand);
  }
  for (const KeywordArg &kw : call.kwargs) {
    std::optional<ConstValue> v = evaluateConstant(m, *kw.value, f.graph, &sm);
    if (!v)
      return failure();
    if (v->kind == ConstValue::Kind::Mask)
      return error(f, kw.value->getLoc(),
                   "a mask or score is only taken by 'attention'");
    c.keywords.push_back({&kw, std::move(*v)});
  }

  StringRef opName = info->opName;
  if (info->kind == OpKind::Compare)
    opName = "loom.cmp";
  else if (info->kind == OpKind::MaxMin && c.operands.size() == 1)
    opName = info->name == "max" ? "loom.reduce_max" : "loom.reduce_min";
  mlir::OperationState state(loc(f, call.getLoc()), opName);
  if (failed(buildOp(c, *info, state)))
    return failure();
  for (const Keyword &k : c.keywords)
    if (!k.used)
      return error(f, k.arg->key.loc,
                   "unknown keyword '" + k.arg->key.name + "' for op '" +
                       call.callee + "'");
  FailureOr<Value> first = create(state);
  if (failed(first))
    return failure();
  return SmallVector<Value>(first->getDefiningOp()->getResults());
}

//===----------------------------------------------------------------------===//
// Attention: mask and score regions
//===----------------------------------------------------------------------===//

/// Describes a scalar kind for messages.
static StringRef describeKind(ScalarValue::Kind kind) {
  switch (kind) {
  case ScalarValue::Kind::Int:
    return "an int";
  case ScalarValue::Kind::Float:
    return "a float";
  case ScalarValue::Kind::Bool:
    return "a bool";
  }
  return "a value";
}

mlir::Block *Importer::beginRegion(AttentionBuild &a, mlir::Region &region,
                                   bool withScore) {
  auto *blk = new mlir::Block();
  region.push_back(blk);
  mlir::Location l = loc(*a.frame, a.call->getLoc());
  for (unsigned p = 0; p < 4; ++p)
    a.indexParams[p] = blk->addArgument(builder.getIndexType(), l);
  if (withScore)
    blk->addArgument(a.element, l);
  for (Value c : a.captures)
    blk->addArgument(c.getType(), l);
  a.blocks.push_back(blk);
  a.block = blk;
  a.numParams = withScore ? 5 : 4;
  builder.setInsertionPointToEnd(blk);
  return blk;
}

FailureOr<Value> Importer::capture(AttentionBuild &a, Value tensor) {
  auto [it, inserted] = a.captureIndex.try_emplace(tensor, a.captures.size());
  if (inserted) {
    a.captures.push_back(tensor);
    for (mlir::Block *blk : a.blocks)
      blk->addArgument(tensor.getType(), tensor.getLoc());
  }
  return Value(a.block->getArgument(a.numParams + it->second));
}

FailureOr<Value> Importer::toIndex(AttentionBuild &a, const ScalarValue &v,
                                   const Expr &e, StringRef what) {
  if (v.kind != ScalarValue::Kind::Int)
    return error(*a.frame, e.getLoc(),
                 what + " must be an int, but '" + exprToString(e) + "' is " +
                     describeKind(v.kind));
  if (v.index)
    return v.index;
  return Value(mlir::arith::IndexCastOp::create(
      builder, loc(*a.frame, e.getLoc()), builder.getIndexType(), v.value));
}

ScalarValue Importer::toFloat(AttentionBuild &a, const ScalarValue &v) {
  if (v.kind == ScalarValue::Kind::Float)
    return v;
  Value f = mlir::arith::SIToFPOp::create(builder, v.value.getLoc(), a.element,
                                          v.value);
  return {ScalarValue::Kind::Float, f, {}};
}

ScalarValue Importer::readElement(AttentionBuild &a, Value captured,
                                  ArrayRef<Value> indices, mlir::Location l,
                                  const Expr *) {
  Value x = mlir::tensor::ExtractOp::create(builder, l, captured, indices);
  Type type = x.getType();
  if (type.isInteger(1))
    return {ScalarValue::Kind::Bool, x, {}};
  if (auto intType = llvm::dyn_cast<mlir::IntegerType>(type)) {
    if (intType.getWidth() < 64)
      x = mlir::arith::ExtSIOp::create(builder, l, builder.getI64Type(), x);
    return {ScalarValue::Kind::Int, x, {}};
  }
  auto from = llvm::cast<mlir::FloatType>(type);
  auto to = llvm::cast<mlir::FloatType>(a.element);
  if (from.getWidth() < to.getWidth())
    x = mlir::arith::ExtFOp::create(builder, l, to, x);
  else if (from != to)
    x = mlir::arith::TruncFOp::create(builder, l, to, x);
  return {ScalarValue::Kind::Float, x, {}};
}

FailureOr<ScalarValue>
Importer::compileScalar(AttentionBuild &a, const MaskEnv &env, const Expr &e) {
  mlir::Location l = loc(*a.frame, e.getLoc());
  switch (e.getKind()) {
  case Expr::Kind::Int:
    return ScalarValue{
        ScalarValue::Kind::Int,
        mlir::arith::ConstantOp::create(
            builder, l,
            builder.getI64IntegerAttr(llvm::cast<IntExpr>(e).value)),
        {}};
  case Expr::Kind::Float:
    return ScalarValue{
        ScalarValue::Kind::Float,
        mlir::arith::ConstantOp::create(
            builder, l,
            builder.getFloatAttr(a.element, llvm::cast<FloatExpr>(e).value)),
        {}};
  case Expr::Kind::Bool:
    return ScalarValue{
        ScalarValue::Kind::Bool,
        mlir::arith::ConstantOp::create(
            builder, l,
            builder.getIntegerAttr(builder.getI1Type(),
                                   llvm::cast<BoolExpr>(e).value ? 1 : 0)),
        {}};
  case Expr::Kind::Name:
    return compileName(a, env, llvm::cast<NameExpr>(e));
  case Expr::Kind::Unary:
    return compileUnary(a, env, llvm::cast<UnaryExpr>(e));
  case Expr::Kind::Binary:
    return compileBinary(a, env, llvm::cast<BinaryExpr>(e));
  case Expr::Kind::Call:
    return compileCall(a, env, llvm::cast<CallExpr>(e));
  case Expr::Kind::Index:
    return compileIndex(a, env, llvm::cast<IndexExpr>(e));
  case Expr::Kind::String:
  case Expr::Kind::List:
    break;
  }
  return error(
      *a.frame, e.getLoc(),
      "a " + Twine(e.getKind() == Expr::Kind::String ? "string" : "list") +
          " cannot be used in a " + env.decl->getKeyword() + " body");
}

FailureOr<ScalarValue> Importer::inlineMask(AttentionBuild &a,
                                            const MaskEnv &env,
                                            const MaskStmt &decl) {
  MaskEnv inner;
  inner.decl = &decl;
  inner.params.assign(env.params.begin(),
                      env.params.begin() + decl.getExpectedArity());
  return compileScalar(a, inner, *decl.body);
}

FailureOr<ScalarValue> Importer::compileName(AttentionBuild &a,
                                             const MaskEnv &env,
                                             const NameExpr &e) {
  Frame &f = *a.frame;
  for (auto [p, ident] : llvm::enumerate(env.decl->indices))
    if (ident.name == e.name)
      return env.params[p];
  if (const MaskStmt *decl = f.masks.lookup(e.name))
    return inlineMask(a, env, *decl);
  if (Value tensor = f.values.lookup(e.name)) {
    // A rank-0 tensor (`start_pos: i64`) is read by its name alone.
    if (llvm::cast<RankedTensorType>(tensor.getType()).getRank() == 0) {
      FailureOr<Value> captured = capture(a, tensor);
      if (failed(captured))
        return failure();
      return readElement(a, *captured, {}, loc(f, e.getLoc()), &e);
    }
    return error(f, e.getLoc(),
                 "'" + e.name + "' is a tensor; a " + env.decl->getKeyword() +
                     " body reads one element of it: " + e.name + "[...]");
  }
  if (const ConfigDecl *c = m.findConfig(e.name)) {
    mlir::Location l = loc(f, e.getLoc());
    const ConstValue &v = c->value;
    if (v.isInt())
      return ScalarValue{ScalarValue::Kind::Int,
                         mlir::arith::ConstantOp::create(
                             builder, l, builder.getI64IntegerAttr(v.intValue)),
                         {}};
    if (v.isFloat())
      return ScalarValue{
          ScalarValue::Kind::Float,
          mlir::arith::ConstantOp::create(
              builder, l, builder.getFloatAttr(a.element, v.floatValue)),
          {}};
    if (v.kind == ConstValue::Kind::Bool)
      return ScalarValue{
          ScalarValue::Kind::Bool,
          mlir::arith::ConstantOp::create(
              builder, l,
              builder.getIntegerAttr(builder.getI1Type(), v.boolValue ? 1 : 0)),
          {}};
    return error(f, e.getLoc(),
                 "config '" + e.name + "' is a " + stringifyKind(v.kind) +
                     " and cannot be used in a " + env.decl->getKeyword() +
                     " body");
  }
  if (llvm::is_contained(getSymbolicDims(m, *f.graph), e.name))
    return error(f, e.getLoc(),
                 "symbolic dimension '" + e.name + "' cannot be used in a " +
                     env.decl->getKeyword() + " body");
  return error(f, e.getLoc(), "undefined name '" + e.name + "'");
}

FailureOr<ScalarValue> Importer::compileUnary(AttentionBuild &a,
                                              const MaskEnv &env,
                                              const UnaryExpr &e) {
  FailureOr<ScalarValue> x = compileScalar(a, env, *e.operand);
  if (failed(x))
    return failure();
  mlir::Location l = loc(*a.frame, e.getLoc());
  if (e.op == UnaryOp::Not) {
    if (x->kind != ScalarValue::Kind::Bool)
      return error(*a.frame, e.getLoc(),
                   "'not' needs a bool, but '" + exprToString(*e.operand) +
                       "' is " + describeKind(x->kind));
    Value t = mlir::arith::ConstantOp::create(
        builder, l, builder.getIntegerAttr(builder.getI1Type(), 1));
    return ScalarValue{ScalarValue::Kind::Bool,
                       mlir::arith::XOrIOp::create(builder, l, x->value, t),
                       {}};
  }
  switch (x->kind) {
  case ScalarValue::Kind::Int: {
    Value zero = mlir::arith::ConstantOp::create(builder, l,
                                                 builder.getI64IntegerAttr(0));
    return ScalarValue{ScalarValue::Kind::Int,
                       mlir::arith::SubIOp::create(builder, l, zero, x->value),
                       {}};
  }
  case ScalarValue::Kind::Float:
    return ScalarValue{ScalarValue::Kind::Float,
                       mlir::arith::NegFOp::create(builder, l, x->value),
                       {}};
  case ScalarValue::Kind::Bool:
    break;
  }
  return error(*a.frame, e.getLoc(),
               "unary '-' needs a number, but '" + exprToString(*e.operand) +
                   "' is a bool");
}

FailureOr<ScalarValue> Importer::compileBinary(AttentionBuild &a,
                                               const MaskEnv &env,
                                               const BinaryExpr &e) {
  FailureOr<ScalarValue> lhs = compileScalar(a, env, *e.lhs);
  if (failed(lhs))
    return failure();
  FailureOr<ScalarValue> rhs = compileScalar(a, env, *e.rhs);
  if (failed(rhs))
    return failure();
  Frame &f = *a.frame;
  mlir::Location l = loc(f, e.getLoc());
  StringRef op = stringifyBinaryOp(e.op);
  using K = ScalarValue::Kind;
  K lk = lhs->kind, rk = rhs->kind;
  // Reports the first operand whose kind `need` ("bools", "numbers" or
  // "ints") does not accept.
  auto kindError = [&](StringRef need) {
    auto accepts = [&](K k) {
      return need == "bools"  ? k == K::Bool
             : need == "ints" ? k == K::Int
                              : k != K::Bool;
    };
    bool lhsBad = !accepts(lk);
    const Expr &bad = lhsBad ? *e.lhs : *e.rhs;
    K badKind = lhsBad ? lk : rk;
    std::string what = describeKind(badKind).str();
    if (const auto *name = llvm::dyn_cast<NameExpr>(&bad))
      if (const MaskStmt *decl = f.masks.lookup(name->name))
        what = decl->isScore ? "a score (a float)" : "a mask (a bool)";
    return error(f, e.getLoc(),
                 "operator '" + op + "' needs " + need + ", but '" +
                     exprToString(bad) + "' is " + what);
  };
  auto boolOf = [&](Value v) { return ScalarValue{K::Bool, v, {}}; };
  // `/` of two ints is floor division, like `//` (and like `j / 32` in the
  // definition of bits()); with a float operand it divides floats.
  BinaryOp bop = e.op;
  if (bop == BinaryOp::Div && lk == K::Int && rk == K::Int)
    bop = BinaryOp::FloorDiv;

  switch (bop) {
  case BinaryOp::And:
  case BinaryOp::Or:
    if (lk != K::Bool || rk != K::Bool)
      return kindError("bools");
    if (bop == BinaryOp::And)
      return boolOf(
          mlir::arith::AndIOp::create(builder, l, lhs->value, rhs->value));
    return boolOf(
        mlir::arith::OrIOp::create(builder, l, lhs->value, rhs->value));
  case BinaryOp::Eq:
  case BinaryOp::Ne:
  case BinaryOp::Lt:
  case BinaryOp::Le:
  case BinaryOp::Gt:
  case BinaryOp::Ge: {
    if (lk != rk)
      return error(f, e.getLoc(),
                   "cannot compare " + describeKind(lk) + " ('" +
                       exprToString(*e.lhs) + "') with " + describeKind(rk) +
                       " ('" + exprToString(*e.rhs) + "')");
    if (lk == K::Bool && bop != BinaryOp::Eq && bop != BinaryOp::Ne)
      return kindError("numbers");
    if (lk == K::Float) {
      using P = mlir::arith::CmpFPredicate;
      P p = bop == BinaryOp::Eq   ? P::OEQ
            : bop == BinaryOp::Ne ? P::UNE
            : bop == BinaryOp::Lt ? P::OLT
            : bop == BinaryOp::Le ? P::OLE
            : bop == BinaryOp::Gt ? P::OGT
                                  : P::OGE;
      return boolOf(
          mlir::arith::CmpFOp::create(builder, l, p, lhs->value, rhs->value));
    }
    using P = mlir::arith::CmpIPredicate;
    P p = bop == BinaryOp::Eq   ? P::eq
          : bop == BinaryOp::Ne ? P::ne
          : bop == BinaryOp::Lt ? P::slt
          : bop == BinaryOp::Le ? P::sle
          : bop == BinaryOp::Gt ? P::sgt
                                : P::sge;
    return boolOf(
        mlir::arith::CmpIOp::create(builder, l, p, lhs->value, rhs->value));
  }
  case BinaryOp::Add:
  case BinaryOp::Sub:
  case BinaryOp::Mul:
  case BinaryOp::Div: {
    if (lk == K::Bool || rk == K::Bool)
      return kindError("numbers");
    if (lk == K::Int && rk == K::Int && bop != BinaryOp::Div) {
      Value v = bop == BinaryOp::Add ? Value(mlir::arith::AddIOp::create(
                                           builder, l, lhs->value, rhs->value))
                : bop == BinaryOp::Sub
                    ? Value(mlir::arith::SubIOp::create(builder, l, lhs->value,
                                                        rhs->value))
                    : Value(mlir::arith::MulIOp::create(builder, l, lhs->value,
                                                        rhs->value));
      return ScalarValue{K::Int, v, {}};
    }
    Value x = toFloat(a, *lhs).value, y = toFloat(a, *rhs).value;
    Value v = bop == BinaryOp::Add
                  ? Value(mlir::arith::AddFOp::create(builder, l, x, y))
              : bop == BinaryOp::Sub
                  ? Value(mlir::arith::SubFOp::create(builder, l, x, y))
              : bop == BinaryOp::Mul
                  ? Value(mlir::arith::MulFOp::create(builder, l, x, y))
                  : Value(mlir::arith::DivFOp::create(builder, l, x, y));
    return ScalarValue{K::Float, v, {}};
  }
  case BinaryOp::FloorDiv:
  case BinaryOp::Mod: {
    if (lk != K::Int || rk != K::Int)
      return kindError("ints");
    using P = mlir::arith::CmpIPredicate;
    Value zero = mlir::arith::ConstantOp::create(builder, l,
                                                 builder.getI64IntegerAttr(0));
    Value divisor = rhs->value;
    Value byZero;
    if (auto c = rhs->value.getDefiningOp<mlir::arith::ConstantOp>()) {
      if (llvm::cast<mlir::IntegerAttr>(c.getValue()).getInt() == 0)
        return error(f, e.getLoc(), "division by zero");
    } else {
      // A divisor read from data may be 0 (or -1 with INT64_MIN): as in the
      // rest of the language, x // 0 and x % 0 are 0 and INT64_MIN // -1 is
      // INT64_MIN, and the hardware never sees those divisions.
      Value one = mlir::arith::ConstantOp::create(
          builder, l, builder.getI64IntegerAttr(1));
      Value minusOne = mlir::arith::ConstantOp::create(
          builder, l, builder.getI64IntegerAttr(-1));
      Value min = mlir::arith::ConstantOp::create(
          builder, l,
          builder.getI64IntegerAttr(std::numeric_limits<int64_t>::min()));
      byZero = mlir::arith::CmpIOp::create(builder, l, P::eq, divisor, zero);
      Value wraps = mlir::arith::AndIOp::create(
          builder, l,
          mlir::arith::CmpIOp::create(builder, l, P::eq, lhs->value, min),
          mlir::arith::CmpIOp::create(builder, l, P::eq, divisor, minusOne));
      divisor = mlir::arith::SelectOp::create(
          builder, l, mlir::arith::OrIOp::create(builder, l, byZero, wraps),
          one, divisor);
    }
    if (bop == BinaryOp::FloorDiv) {
      Value q =
          mlir::arith::FloorDivSIOp::create(builder, l, lhs->value, divisor);
      if (byZero)
        q = mlir::arith::SelectOp::create(builder, l, byZero, zero, q);
      return ScalarValue{K::Int, q, {}};
    }
    // Python's modulo takes the sign of the divisor: r = a rem b, plus b
    // when r is nonzero and its sign differs from b's. A guarded divisor of
    // 1 gives r = 0.
    Value r = mlir::arith::RemSIOp::create(builder, l, lhs->value, divisor);
    Value rNeg = mlir::arith::CmpIOp::create(builder, l, P::slt, r, zero);
    Value bNeg = mlir::arith::CmpIOp::create(builder, l, P::slt, divisor, zero);
    Value rNonZero = mlir::arith::CmpIOp::create(builder, l, P::ne, r, zero);
    Value differ = mlir::arith::XOrIOp::create(builder, l, rNeg, bNeg);
    Value fix = mlir::arith::AndIOp::create(builder, l, differ, rNonZero);
    Value adjusted = mlir::arith::AddIOp::create(builder, l, r, divisor);
    return ScalarValue{
        K::Int,
        mlir::arith::SelectOp::create(builder, l, fix, adjusted, r),
        {}};
  }
  case BinaryOp::Pow:
  case BinaryOp::MatMul:
    break;
  }
  return error(f, e.getLoc(),
               "operator '" + op + "' is not supported in a " +
                   env.decl->getKeyword() + " body");
}

FailureOr<ScalarValue> Importer::compileIndex(AttentionBuild &a,
                                              const MaskEnv &env,
                                              const IndexExpr &e) {
  Frame &f = *a.frame;
  const auto *base = llvm::dyn_cast<NameExpr>(e.base.get());
  Value tensor = base ? f.values.lookup(base->name) : Value();
  if (!tensor)
    return error(f, e.getLoc(),
                 "only a tensor value of the graph can be indexed, not '" +
                     exprToString(*e.base) + "'");
  auto type = llvm::cast<RankedTensorType>(tensor.getType());
  if (static_cast<int64_t>(e.indices.size()) != type.getRank())
    return error(f, e.getLoc(),
                 "'" + base->name + "' has rank " + Twine(type.getRank()) +
                     " (" + spellType(type) + ") but is indexed with " +
                     Twine(e.indices.size()) +
                     (e.indices.size() == 1 ? " index" : " indices"));
  SmallVector<Value> indices;
  for (const ExprPtr &index : e.indices) {
    FailureOr<ScalarValue> v = compileScalar(a, env, *index);
    if (failed(v))
      return failure();
    FailureOr<Value> idx =
        toIndex(a, *v, *index, "an index of '" + base->name + "'");
    if (failed(idx))
      return failure();
    indices.push_back(*idx);
  }
  FailureOr<Value> captured = capture(a, tensor);
  if (failed(captured))
    return failure();
  return readElement(a, *captured, indices, loc(f, e.getLoc()), &e);
}

FailureOr<ScalarValue> Importer::compileCall(AttentionBuild &a,
                                             const MaskEnv &env,
                                             const CallExpr &e) {
  const MaskFunction *fn = lookupMaskFunction(e.callee);
  if (!fn)
    return error(*a.frame, e.getLoc(),
                 "unknown function '" + e.callee + "' in " +
                     env.decl->getKeyword() + " '" + env.decl->ident.name +
                     "'");
  if (fn->isBuiltinMask)
    return compileBuiltinMask(a, env, e);
  using K = ScalarValue::Kind;
  Frame &f = *a.frame;
  mlir::Location l = loc(f, e.getLoc());
  SmallVector<ScalarValue> args;
  for (const ExprPtr &arg : e.args) {
    FailureOr<ScalarValue> v = compileScalar(a, env, *arg);
    if (failed(v))
      return failure();
    args.push_back(*v);
  }
  auto needNumber = [&](size_t i) -> LogicalResult {
    if (args[i].kind != K::Bool)
      return success();
    return error(f, e.args[i]->getLoc(),
                 "'" + e.callee + "' needs a number, but '" +
                     exprToString(*e.args[i]) + "' is a bool");
  };
  if (e.callee == "select") {
    if (args[0].kind != K::Bool)
      return error(f, e.args[0]->getLoc(),
                   "the condition of 'select' must be a bool, but '" +
                       exprToString(*e.args[0]) + "' is " +
                       describeKind(args[0].kind));
    ScalarValue x = args[1], y = args[2];
    if ((x.kind == K::Bool) != (y.kind == K::Bool))
      return error(f, e.getLoc(),
                   "the branches of 'select' are " + describeKind(x.kind) +
                       " and " + describeKind(y.kind));
    if (x.kind != y.kind) {
      x = toFloat(a, x);
      y = toFloat(a, y);
    }
    return ScalarValue{x.kind,
                       mlir::arith::SelectOp::create(builder, l, args[0].value,
                                                     x.value, y.value),
                       {}};
  }
  if (e.callee == "min" || e.callee == "max") {
    bool isMax = e.callee == "max";
    for (size_t i = 0; i < args.size(); ++i)
      if (failed(needNumber(i)))
        return failure();
    bool anyFloat = llvm::any_of(
        args, [](const ScalarValue &v) { return v.kind == K::Float; });
    ScalarValue acc = anyFloat ? toFloat(a, args[0]) : args[0];
    for (size_t i = 1; i < args.size(); ++i) {
      ScalarValue next = anyFloat ? toFloat(a, args[i]) : args[i];
      Value v;
      if (anyFloat)
        v = isMax ? Value(mlir::arith::MaximumFOp::create(builder, l, acc.value,
                                                          next.value))
                  : Value(mlir::arith::MinimumFOp::create(builder, l, acc.value,
                                                          next.value));
      else
        v = isMax ? Value(mlir::arith::MaxSIOp::create(builder, l, acc.value,
                                                       next.value))
                  : Value(mlir::arith::MinSIOp::create(builder, l, acc.value,
                                                       next.value));
      acc = ScalarValue{acc.kind, v, {}};
    }
    return acc;
  }
  if (failed(needNumber(0)))
    return failure();
  if (e.callee == "abs") {
    if (args[0].kind == K::Int)
      return ScalarValue{
          K::Int, mlir::math::AbsIOp::create(builder, l, args[0].value), {}};
    return ScalarValue{
        K::Float, mlir::math::AbsFOp::create(builder, l, args[0].value), {}};
  }
  Value x = toFloat(a, args[0]).value;
  Value v = e.callee == "exp" ? Value(mlir::math::ExpOp::create(builder, l, x))
            : e.callee == "log"
                ? Value(mlir::math::LogOp::create(builder, l, x))
                : Value(mlir::math::TanhOp::create(builder, l, x));
  return ScalarValue{K::Float, v, {}};
}

FailureOr<ScalarValue> Importer::compileBuiltinMask(AttentionBuild &a,
                                                    const MaskEnv &env,
                                                    const CallExpr &e) {
  using K = ScalarValue::Kind;
  using P = mlir::arith::CmpIPredicate;
  Frame &f = *a.frame;
  mlir::Location l = loc(f, e.getLoc());
  StringRef name = e.callee;
  Value b = a.indexParams[0], i = a.indexParams[2], j = a.indexParams[3];
  auto boolOf = [&](Value v) { return ScalarValue{K::Bool, v, {}}; };
  auto i64 = [&](Value index) {
    return Value(mlir::arith::IndexCastOp::create(builder, l,
                                                  builder.getI64Type(), index));
  };

  // Scalar arguments (window, prefix_lm).
  if (name == "causal")
    return boolOf(mlir::arith::CmpIOp::create(builder, l, P::sle, j, i));
  if (name == "window" || name == "prefix_lm") {
    FailureOr<ScalarValue> n = compileScalar(a, env, *e.args[0]);
    if (failed(n))
      return failure();
    if (n->kind != K::Int)
      return error(f, e.args[0]->getLoc(),
                   "the argument of '" + name + "' must be an int, but '" +
                       exprToString(*e.args[0]) + "' is " +
                       describeKind(n->kind));
    Value i64i = i64(i), i64j = i64(j);
    if (name == "prefix_lm") {
      Value inPrefix =
          mlir::arith::CmpIOp::create(builder, l, P::slt, i64j, n->value);
      Value causal = mlir::arith::CmpIOp::create(builder, l, P::sle, j, i);
      return boolOf(mlir::arith::OrIOp::create(builder, l, inPrefix, causal));
    }
    Value d = mlir::arith::SubIOp::create(builder, l, i64i, i64j);
    Value zero = mlir::arith::ConstantOp::create(builder, l,
                                                 builder.getI64IntegerAttr(0));
    Value lo = mlir::arith::CmpIOp::create(builder, l, P::sge, d, zero);
    Value hi = mlir::arith::CmpIOp::create(builder, l, P::slt, d, n->value);
    return boolOf(mlir::arith::AndIOp::create(builder, l, lo, hi));
  }

  // Tensor arguments: metadata indexed by position, with an optional
  // leading batch dimension.
  struct Meta {
    Value captured;
    bool batched;
  };
  auto meta = [&](unsigned arg, unsigned rank,
                  StringRef element) -> FailureOr<Meta> {
    const Expr &x = *e.args[arg];
    const auto *ref = llvm::dyn_cast<NameExpr>(&x);
    Value tensor = ref ? f.values.lookup(ref->name) : Value();
    if (!tensor)
      return error(f, x.getLoc(),
                   "argument " + Twine(arg + 1) + " of '" + name +
                       "' must be a tensor value of the graph, got '" +
                       exprToString(x) + "'");
    auto type = llvm::cast<RankedTensorType>(tensor.getType());
    Type et = type.getElementType();
    bool ok = element == "bool"  ? et.isInteger(1)
              : element == "i32" ? et.isInteger(32)
                                 : (et.isInteger(32) || et.isInteger(64));
    if (!ok)
      return error(f, x.getLoc(),
                   "'" + ref->name + "' of '" + name + "' must hold " +
                       element + ", got " + spellType(type));
    bool batchable = name != "csr";
    if (type.getRank() != rank && (!batchable || type.getRank() != rank + 1))
      return error(f, x.getLoc(),
                   "'" + ref->name + "' of '" + name + "' must have rank " +
                       Twine(rank) +
                       (batchable ? " (or " + Twine(rank + 1) +
                                        " with a leading batch dimension)"
                                  : Twine("")) +
                       ", got " + spellType(type));
    FailureOr<Value> captured = capture(a, tensor);
    if (failed(captured))
      return failure();
    return Meta{*captured, type.getRank() == rank + 1};
  };
  auto read = [&](const Meta &mt, ArrayRef<Value> indices) {
    SmallVector<Value> all;
    if (mt.batched)
      all.push_back(b);
    all.append(indices.begin(), indices.end());
    return Value(mlir::tensor::ExtractOp::create(builder, l, mt.captured, all));
  };

  if (name == "document") {
    FailureOr<Meta> seg = meta(0, 1, "i32 or i64");
    if (failed(seg))
      return failure();
    return boolOf(mlir::arith::CmpIOp::create(builder, l, P::eq, read(*seg, i),
                                              read(*seg, j)));
  }
  if (name == "ancestor" || name == "scope") {
    FailureOr<Meta> in = meta(0, 1, "i32 or i64");
    if (failed(in))
      return failure();
    FailureOr<Meta> out = meta(1, 1, "i32 or i64");
    if (failed(out))
      return failure();
    Value first = mlir::arith::CmpIOp::create(builder, l, P::sle, read(*in, j),
                                              read(*in, i));
    Value second = mlir::arith::CmpIOp::create(builder, l, P::sle,
                                               read(*out, i), read(*out, j));
    return boolOf(mlir::arith::AndIOp::create(builder, l, first, second));
  }
  if (name == "csr") {
    FailureOr<Meta> indptr = meta(0, 1, "i32 or i64");
    if (failed(indptr))
      return failure();
    FailureOr<Meta> indices = meta(1, 1, "i32 or i64");
    if (failed(indices))
      return failure();
    mlir::OperationState state(l, "loom.csr_contains");
    state.addOperands({indptr->captured, indices->captured, i, j});
    state.addTypes(builder.getI1Type());
    return boolOf(builder.create(state)->getResult(0));
  }
  if (name == "bits") {
    FailureOr<Meta> words = meta(0, 2, "i32");
    if (failed(words))
      return failure();
    Value thirtyTwo =
        mlir::arith::ConstantOp::create(builder, l, builder.getIndexAttr(32));
    Value col = mlir::arith::DivUIOp::create(builder, l, j, thirtyTwo);
    Value bit = mlir::arith::RemUIOp::create(builder, l, j, thirtyTwo);
    Value word = read(*words, {i, col});
    Value shift =
        mlir::arith::IndexCastOp::create(builder, l, builder.getI32Type(), bit);
    Value shifted = mlir::arith::ShRUIOp::create(builder, l, word, shift);
    Value one = mlir::arith::ConstantOp::create(builder, l,
                                                builder.getI32IntegerAttr(1));
    Value low = mlir::arith::AndIOp::create(builder, l, shifted, one);
    return boolOf(mlir::arith::CmpIOp::create(builder, l, P::eq, low, one));
  }
  // dense
  FailureOr<Meta> mat = meta(0, 2, "bool");
  if (failed(mat))
    return failure();
  return boolOf(read(*mat, {i, j}));
}

FailureOr<SmallVector<Value>>
Importer::importAttention(Frame &f, const CallExpr &call, size_t results) {
  if (results > 2)
    return error(f, call.getLoc(),
                 "op 'attention' returns 2 results (out, lse), but " +
                     Twine(results) + " names are assigned");
  if (call.args.size() != 3)
    return error(f, call.getLoc(),
                 "op 'attention' takes 3 operands (q, k, v), but " +
                     Twine(call.args.size()) +
                     (call.args.size() == 1 ? " is given" : " are given"));
  SmallVector<Value> qkv;
  for (const ExprPtr &arg : call.args) {
    FailureOr<Operand> operand = importExpr(f, *arg);
    if (failed(operand))
      return failure();
    if (operand->isScalar())
      return error(f, arg->getLoc(),
                   "the operands of 'attention' must be tensors");
    qkv.push_back(operand->value);
  }
  auto qType = llvm::cast<RankedTensorType>(qkv[0].getType());
  auto kType = llvm::cast<RankedTensorType>(qkv[1].getType());

  const KeywordArg *maskKw = nullptr, *scoreKw = nullptr, *biasKw = nullptr,
                   *alibiKw = nullptr;
  std::optional<double> scale, softcap;
  for (const KeywordArg &kw : call.kwargs) {
    StringRef key = kw.key.name;
    if (key == "mask") {
      maskKw = &kw;
    } else if (key == "score") {
      scoreKw = &kw;
    } else if (key == "bias") {
      biasKw = &kw;
    } else if (key == "alibi") {
      alibiKw = &kw;
    } else if (key == "scale" || key == "softcap") {
      std::optional<ConstValue> v =
          evaluateConstant(m, *kw.value, f.graph, &sm);
      if (!v)
        return failure();
      if (!v->isNumeric())
        return error(f, kw.value->getLoc(),
                     "keyword '" + key + "' of op 'attention' must be a " +
                         "number, got " + stringifyKind(v->kind) + " " +
                         v->toString());
      double x = v->getAsDouble();
      if (key == "softcap" && !(x > 0))
        return error(f, kw.value->getLoc(),
                     "keyword 'softcap' of op 'attention' must be > 0, got " +
                         v->toString());
      (key == "scale" ? scale : softcap) = x;
    } else {
      return error(f, kw.key.loc,
                   "unknown keyword '" + key +
                       "' for op 'attention' (expected mask, score, scale, "
                       "bias, alibi or softcap)");
    }
  }
  if (!scale) {
    if (qType.getRank() == 4 && !qType.isDynamicDim(3) && qType.getDimSize(3))
      scale = 1.0 / std::sqrt(static_cast<double>(qType.getDimSize(3)));
    else if (qType.getRank() == 4)
      return error(f, call.getLoc(),
                   "op 'attention' needs scale=... when the head dim of q is "
                   "not static (" +
                       spellType(qType) + ")");
  }

  AttentionBuild a;
  a.frame = &f;
  a.call = &call;
  a.element = qType.getElementType();
  if (!llvm::isa<mlir::FloatType>(a.element))
    return error(f, getStartLoc(*call.args[0]),
                 "q of 'attention' must hold floats, got " + spellType(qType));
  auto maskRegion = std::make_unique<mlir::Region>();
  auto scoreRegion = std::make_unique<mlir::Region>();
  mlir::OpBuilder::InsertionGuard guard(builder);
  mlir::OpBuilder::InsertPoint outside = builder.saveInsertionPoint();

  auto paramsOf = [&](unsigned count) {
    SmallVector<ScalarValue> params;
    mlir::Location l = loc(f, call.getLoc());
    for (unsigned p = 0; p < 4; ++p) {
      Value v = mlir::arith::IndexCastOp::create(
          builder, l, builder.getI64Type(), a.indexParams[p]);
      params.push_back({ScalarValue::Kind::Int, v, a.indexParams[p]});
    }
    if (count == 5)
      params.push_back(
          {ScalarValue::Kind::Float, a.block->getArgument(4), Value()});
    return params;
  };
  // Parameter casts that the body does not use are dropped at the end.
  auto finish = [&](mlir::Location l, Value result) {
    mlir::loom::YieldOp::create(builder, l, result);
    for (mlir::Operation &op :
         llvm::make_early_inc_range(llvm::reverse(*a.block)))
      if (llvm::isa<mlir::arith::IndexCastOp, mlir::arith::ConstantOp>(op) &&
          op.use_empty())
        op.erase();
  };

  if (maskKw) {
    const auto *name = llvm::cast<NameExpr>(maskKw->value.get());
    beginRegion(a, *maskRegion, /*withScore=*/false);
    // A built-in mask without arguments stands for a declaration
    // `mask _(b, h, i, j) = causal()`.
    MaskStmt builtin(maskKw->value->getLoc());
    const MaskStmt *decl = f.masks.lookup(name->name);
    ExprPtr builtinCall;
    if (!decl) {
      const MaskFunction *fn = lookupMaskFunction(name->name);
      if (fn && fn->minArgs != 0)
        return error(f, maskKw->value->getLoc(),
                     "built-in mask '" + name->name + "' takes arguments (" +
                         fn->params +
                         "); declare a mask that calls it, e.g. "
                         "mask m(b, h, i, j) = " +
                         name->name + "(...)");
      builtin.ident = {name->name, maskKw->value->getLoc()};
      for (StringRef p : {"b", "h", "i", "j"})
        builtin.indices.push_back({p.str(), maskKw->value->getLoc()});
      builtinCall = std::make_unique<CallExpr>(
          maskKw->value->getLoc(), name->name, std::vector<ExprPtr>(),
          std::vector<KeywordArg>());
      decl = &builtin;
    }
    MaskEnv env;
    env.decl = decl;
    env.params = paramsOf(4);
    FailureOr<ScalarValue> v =
        compileScalar(a, env, builtinCall ? *builtinCall : *decl->body);
    if (failed(v))
      return failure();
    if (v->kind != ScalarValue::Kind::Bool)
      return error(f, getStartLoc(builtinCall ? *builtinCall : *decl->body),
                   "mask '" + decl->ident.name + "' must give a bool, but " +
                       "its body gives " + describeKind(v->kind));
    finish(loc(f, maskKw->value->getLoc()), v->value);
  }

  if (scoreKw || biasKw || alibiKw || softcap) {
    beginRegion(a, *scoreRegion, /*withScore=*/true);
    SmallVector<ScalarValue> params = paramsOf(5);
    ScalarValue s = params[4];
    mlir::Location l = loc(f, call.getLoc());
    if (scoreKw) {
      const auto *name = llvm::cast<NameExpr>(scoreKw->value.get());
      const MaskStmt *decl = f.masks.lookup(name->name);
      MaskEnv env;
      env.decl = decl;
      env.params = params;
      FailureOr<ScalarValue> v = compileScalar(a, env, *decl->body);
      if (failed(v))
        return failure();
      if (v->kind == ScalarValue::Kind::Bool)
        return error(f, getStartLoc(*decl->body),
                     "score '" + decl->ident.name +
                         "' must give a number, but its body gives a bool");
      s = toFloat(a, *v);
    }
    if (biasKw) {
      mlir::Location bl = loc(f, biasKw->value->getLoc());
      const auto *ref = llvm::dyn_cast<NameExpr>(biasKw->value.get());
      Value tensor = ref ? f.values.lookup(ref->name) : Value();
      if (!tensor)
        return error(f, biasKw->value->getLoc(),
                     "'bias=' takes a tensor value of the graph");
      auto type = llvm::cast<RankedTensorType>(tensor.getType());
      int64_t target[4] = {qType.getRank() == 4 ? qType.getDimSize(0)
                                                : mlir::ShapedType::kDynamic,
                           qType.getRank() == 4 ? qType.getDimSize(1)
                                                : mlir::ShapedType::kDynamic,
                           qType.getRank() == 4 ? qType.getDimSize(2)
                                                : mlir::ShapedType::kDynamic,
                           kType.getRank() == 4 ? kType.getDimSize(2)
                                                : mlir::ShapedType::kDynamic};
      if (!llvm::isa<mlir::FloatType>(type.getElementType()) ||
          type.getRank() > 4)
        return error(f, biasKw->value->getLoc(),
                     "'bias=' must be a float tensor of rank at most 4 "
                     "broadcastable to [batch, heads, queries, keys], got " +
                         spellType(type));
      int64_t offset = 4 - type.getRank();
      SmallVector<Value> indices;
      for (int64_t d = 0; d < type.getRank(); ++d) {
        int64_t size = type.getDimSize(d), want = target[offset + d];
        if (size == 1) {
          indices.push_back(mlir::arith::ConstantOp::create(
              builder, bl, builder.getIndexAttr(0)));
          continue;
        }
        if (!mlir::ShapedType::isDynamic(size) &&
            !mlir::ShapedType::isDynamic(want) && size != want)
          return error(f, biasKw->value->getLoc(),
                       "'bias=' " + spellType(type) +
                           " does not broadcast to [batch, heads, queries, "
                           "keys]: dimension " +
                           Twine(d) + " is " + Twine(size) +
                           ", expected 1 or " + Twine(want));
        indices.push_back(a.indexParams[offset + d]);
      }
      FailureOr<Value> captured = capture(a, tensor);
      if (failed(captured))
        return failure();
      ScalarValue bias = readElement(a, *captured, indices, bl, nullptr);
      s = {ScalarValue::Kind::Float,
           mlir::arith::AddFOp::create(builder, bl, s.value, bias.value),
           {}};
    }
    if (alibiKw) {
      mlir::Location al = loc(f, alibiKw->value->getLoc());
      const auto *ref = llvm::dyn_cast<NameExpr>(alibiKw->value.get());
      Value tensor = ref ? f.values.lookup(ref->name) : Value();
      if (!tensor)
        return error(f, alibiKw->value->getLoc(),
                     "'alibi=' takes a tensor value of the graph (the slopes, "
                     "one per query head)");
      auto type = llvm::cast<RankedTensorType>(tensor.getType());
      int64_t heads = qType.getRank() == 4 ? qType.getDimSize(1)
                                           : mlir::ShapedType::kDynamic;
      if (!llvm::isa<mlir::FloatType>(type.getElementType()) ||
          type.getRank() != 1 ||
          (!type.isDynamicDim(0) && !mlir::ShapedType::isDynamic(heads) &&
           type.getDimSize(0) != heads))
        return error(f, alibiKw->value->getLoc(),
                     "'alibi=' must be float slopes of shape [" +
                         (mlir::ShapedType::isDynamic(heads)
                              ? std::string("heads")
                              : std::to_string(heads)) +
                         "] (one per query head), got " + spellType(type));
      FailureOr<Value> captured = capture(a, tensor);
      if (failed(captured))
        return failure();
      ScalarValue slope =
          readElement(a, *captured, {a.indexParams[1]}, al, nullptr);
      Value dist = mlir::arith::SubIOp::create(builder, al, params[3].value,
                                               params[2].value);
      Value distF = mlir::arith::SIToFPOp::create(builder, al, a.element, dist);
      Value term = mlir::arith::MulFOp::create(builder, al, slope.value, distF);
      s = {ScalarValue::Kind::Float,
           mlir::arith::AddFOp::create(builder, al, s.value, term),
           {}};
    }
    if (softcap) {
      Value c = mlir::arith::ConstantOp::create(
          builder, l, builder.getFloatAttr(a.element, *softcap));
      Value scaled = mlir::arith::DivFOp::create(builder, l, s.value, c);
      Value t = mlir::math::TanhOp::create(builder, l, scaled);
      s = {ScalarValue::Kind::Float,
           mlir::arith::MulFOp::create(builder, l, c, t),
           {}};
    }
    finish(l, s.value);
  }

  mlir::OperationState state(loc(f, call.getLoc()), "loom.attention");
  state.addOperands(qkv);
  state.addOperands(a.captures);
  state.addAttribute("scale", builder.getF64FloatAttr(scale.value_or(1.0)));
  state.addRegion(std::move(maskRegion));
  state.addRegion(std::move(scoreRegion));
  builder.restoreInsertionPoint(outside);
  FailureOr<Value> first = create(state);
  if (failed(first))
    return failure();
  SmallVector<Value> values(first->getDefiningOp()->getResults());
  values.resize(results);
  return values;
}

//===----------------------------------------------------------------------===//
// Entry point
//===----------------------------------------------------------------------===//

mlir::OwningOpRef<mlir::ModuleOp>
loom::frontend::importModule(const ModuleAST &m, mlir::MLIRContext &context,
                             llvm::SourceMgr &sm) {
  return Importer(m, context, sm).run();
}
