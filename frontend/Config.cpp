//===- Config.cpp - Config evaluation and overrides -------------*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file implements the compile-time evaluator (configs, dims, keyword
// attributes) and the --define / --config overrides of configs.
//
//===----------------------------------------------------------------------===//

#include "frontend/Config.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>

using namespace loom::frontend;

namespace {

/// Evaluates expressions to ConstValues. The mode decides what a name that is
/// not a config means.
class Evaluator {
public:
  enum class Mode {
    /// Inside `config x = ...`: only earlier configs are visible.
    Config,
    /// Inside a type: any other name is a symbolic dim.
    Dim,
    /// Inside a graph (keyword attributes): masks and symbolic dims of the
    /// graph are allowed, tensor values are not.
    Attr,
    /// The condition of an `if` in a graph: configs only. Which branch is
    /// taken decides what the graph's names are, so names of the graph are
    /// looked up in all branches, only to explain why they are refused.
    Condition,
  };

  Evaluator(const ModuleAST &m, llvm::SourceMgr *sm, Mode mode)
      : m(m), sm(sm), mode(mode) {}

  std::optional<ConstValue> eval(const Expr &e);

  /// For Mode::Config: the config being evaluated and how many precede it.
  llvm::StringRef configName;
  size_t visibleConfigs = 0;
  /// For Mode::Attr.
  const GraphAST *graph = nullptr;

private:
  std::nullopt_t error(const Location &loc, const llvm::Twine &msg) {
    if (sm)
      sm->PrintMessage(loc.ptr, llvm::SourceMgr::DK_Error, msg);
    return std::nullopt;
  }
  std::nullopt_t divisionByZero(const Location &loc) {
    if (mode == Mode::Config)
      return error(loc, "division by zero in config '" + configName + "'");
    return error(loc, "division by zero");
  }
  std::optional<ConstValue> evalName(const NameExpr &e);
  std::nullopt_t conditionNameError(const NameExpr &e);
  std::optional<ConstValue> evalUnary(const UnaryExpr &e);
  std::optional<ConstValue> evalBinary(const BinaryExpr &e);
  std::optional<ConstValue> evalCall(const CallExpr &e);
  /// The one-argument functions: log, exp, sqrt, floor, ceil, abs.
  std::optional<ConstValue> evalMath(const CallExpr &e);
  std::optional<ConstValue> checkFinite(const Location &loc, double v);
  /// Refuses Symbol, Mask and List operands of an operator, with the reason.
  bool checkScalarOperand(const ConstValue &v, const Location &loc,
                          llvm::StringRef op);

  const ModuleAST &m;
  llvm::SourceMgr *sm;
  Mode mode;
};

} // namespace

std::optional<ConstValue> Evaluator::checkFinite(const Location &loc,
                                                 double v) {
  if (!std::isfinite(v))
    return error(loc, "result is not a finite number");
  return ConstValue::getFloat(v);
}

bool Evaluator::checkScalarOperand(const ConstValue &v, const Location &loc,
                                   llvm::StringRef op) {
  switch (v.kind) {
  case ConstValue::Kind::Symbol:
    error(loc, "symbolic dim '" + v.str +
                   "' cannot be used in arithmetic; only a bare name is "
                   "allowed");
    return false;
  case ConstValue::Kind::Mask:
    error(loc, "mask '" + v.str + "' cannot be used in an expression");
    return false;
  case ConstValue::Kind::List:
    error(loc, "operator '" + op + "' cannot be applied to a list");
    return false;
  default:
    return true;
  }
}

std::optional<ConstValue> Evaluator::eval(const Expr &e) {
  switch (e.getKind()) {
  case Expr::Kind::Int:
    return ConstValue::getInt(llvm::cast<IntExpr>(e).value);
  case Expr::Kind::Float:
    return ConstValue::getFloat(llvm::cast<FloatExpr>(e).value);
  case Expr::Kind::Bool:
    return ConstValue::getBool(llvm::cast<BoolExpr>(e).value);
  case Expr::Kind::String:
    return ConstValue::getString(llvm::cast<StringExpr>(e).value);
  case Expr::Kind::Name:
    return evalName(llvm::cast<NameExpr>(e));
  case Expr::Kind::List: {
    if (mode == Mode::Config)
      return error(e.getLoc(), "a config value cannot be a list");
    std::vector<ConstValue> elements;
    for (const ExprPtr &element : llvm::cast<ListExpr>(e).elements) {
      std::optional<ConstValue> v = eval(*element);
      if (!v)
        return std::nullopt;
      elements.push_back(std::move(*v));
    }
    return ConstValue::getList(std::move(elements));
  }
  case Expr::Kind::Unary:
    return evalUnary(llvm::cast<UnaryExpr>(e));
  case Expr::Kind::Binary:
    return evalBinary(llvm::cast<BinaryExpr>(e));
  case Expr::Kind::Call:
    return evalCall(llvm::cast<CallExpr>(e));
  case Expr::Kind::Index:
    return error(e.getLoc(),
                 "indexing is not allowed in a compile-time expression");
  }
  return std::nullopt;
}

/// Returns true when `name` is an input, output, param, state or local of
/// `g`; those are tensors, not compile-time values.
static bool isGraphValue(const ModuleAST &m, const GraphAST &g,
                         llvm::StringRef name) {
  for (const ValueDecl &d : g.inputs)
    if (d.ident.name == name)
      return true;
  for (const ValueDecl &d : g.outputs)
    if (d.ident.name == name)
      return true;
  for (const Stmt *s : getActiveStmts(m, g)) {
    if (auto *p = llvm::dyn_cast<ParamStmt>(s); p && p->ident.name == name)
      return true;
    if (auto *st = llvm::dyn_cast<StateStmt>(s); st && st->ident.name == name)
      return true;
    if (auto *a = llvm::dyn_cast<AssignStmt>(s))
      for (const Ident &t : a->targets)
        if (t.name == name)
          return true;
  }
  return false;
}

/// Finds what `name` is anywhere in `body`, whichever branch: "value" for
/// params, states, masks and locals, "symbolic dim" for a bare dim name.
static llvm::StringRef findInBody(const ModuleAST &m,
                                  const std::vector<StmtPtr> &body,
                                  llvm::StringRef name) {
  auto isDimName = [&](const TypeAST &type) {
    for (const ExprPtr &dim : type.dims)
      if (auto *n = llvm::dyn_cast<NameExpr>(dim.get()); n && n->name == name)
        return true;
    return false;
  };
  for (const StmtPtr &s : body) {
    if (auto *p = llvm::dyn_cast<ParamStmt>(s.get())) {
      if (p->ident.name == name)
        return "tensor value";
      if (isDimName(p->type))
        return "symbolic dim";
    } else if (auto *st = llvm::dyn_cast<StateStmt>(s.get())) {
      if (st->ident.name == name)
        return "tensor value";
      if (isDimName(st->type))
        return "symbolic dim";
    } else if (auto *mask = llvm::dyn_cast<MaskStmt>(s.get())) {
      if (mask->ident.name == name)
        return "mask";
    } else if (auto *a = llvm::dyn_cast<AssignStmt>(s.get())) {
      for (const Ident &t : a->targets)
        if (t.name == name)
          return "tensor value";
    } else if (auto *i = llvm::dyn_cast<IfStmt>(s.get())) {
      for (const IfStmt::Branch &b : i->branches) {
        llvm::StringRef what = findInBody(m, b.body, name);
        if (!what.empty())
          return what;
      }
    }
  }
  return "";
}

std::nullopt_t Evaluator::conditionNameError(const NameExpr &e) {
  llvm::StringRef what;
  if (graph) {
    for (const ValueDecl &d : graph->inputs)
      if (d.ident.name == e.name)
        what = "tensor value";
    for (const ValueDecl &d : graph->outputs)
      if (d.ident.name == e.name)
        what = "tensor value";
    if (what.empty())
      what = findInBody(m, graph->body, e.name);
    if (what.empty())
      for (const std::vector<ValueDecl> *decls :
           {&graph->inputs, &graph->outputs})
        for (const ValueDecl &d : *decls)
          for (const ExprPtr &dim : d.type.dims)
            if (auto *n = llvm::dyn_cast<NameExpr>(dim.get());
                n && n->name == e.name)
              what = "symbolic dim";
  }
  if (what == "symbolic dim")
    return error(e.getLoc(),
                 "symbolic dim '" + e.name +
                     "' is only known at run time; the condition of 'if' "
                     "must be a config expression (use 'require' for "
                     "run-time checks)");
  if (!what.empty())
    return error(e.getLoc(), "'" + e.name + "' is a " + what +
                                 "; the condition of 'if' must be a config "
                                 "expression");
  return error(e.getLoc(), "undefined name '" + e.name + "'");
}

std::optional<ConstValue> Evaluator::evalName(const NameExpr &e) {
  for (size_t i = 0, n = m.configs.size(); i < n; ++i) {
    const ConfigDecl &c = m.configs[i];
    if (c.ident.name != e.name)
      continue;
    if (mode == Mode::Config && i >= visibleConfigs) {
      if (c.ident.name == configName)
        return error(e.getLoc(),
                     "config '" + e.name + "' is defined in terms of itself");
      return error(e.getLoc(),
                   "config '" + e.name + "' is used before it is defined");
    }
    if (c.value.kind == ConstValue::Kind::None)
      return error(e.getLoc(), "config '" + e.name + "' has no value");
    return c.value;
  }
  switch (mode) {
  case Mode::Config:
    return error(e.getLoc(), "undefined name '" + e.name + "'");
  case Mode::Dim:
    return ConstValue::getSymbol(e.name);
  case Mode::Condition:
    return conditionNameError(e);
  case Mode::Attr:
    break;
  }
  if (graph) {
    for (const Stmt *s : getActiveStmts(m, *graph))
      if (auto *mask = llvm::dyn_cast<MaskStmt>(s);
          mask && mask->ident.name == e.name)
        return ConstValue::getMask(e.name);
    if (isGraphValue(m, *graph, e.name))
      return error(e.getLoc(), "'" + e.name +
                                   "' is a tensor value; a compile-time value "
                                   "is required here");
    for (const std::string &dim : getSymbolicDims(m, *graph))
      if (dim == e.name)
        return ConstValue::getSymbol(e.name);
  }
  return error(e.getLoc(), "undefined name '" + e.name + "'");
}

std::optional<ConstValue> Evaluator::evalUnary(const UnaryExpr &e) {
  std::optional<ConstValue> v = eval(*e.operand);
  if (!v)
    return std::nullopt;
  if (e.op == UnaryOp::Not) {
    if (v->kind != ConstValue::Kind::Bool)
      return error(e.getLoc(), "operator 'not' needs a bool, got " +
                                   stringifyKind(v->kind));
    return ConstValue::getBool(!v->boolValue);
  }
  if (!checkScalarOperand(*v, e.getLoc(), "-"))
    return std::nullopt;
  if (v->isInt()) {
    if (v->intValue == INT64_MIN)
      return error(e.getLoc(), "integer overflow");
    return ConstValue::getInt(-v->intValue);
  }
  if (v->isFloat())
    return ConstValue::getFloat(-v->floatValue);
  return error(e.getLoc(),
               "operator '-' cannot be applied to " + stringifyKind(v->kind));
}

/// Python's floor division and modulo on integers; the divisor is not 0.
static int64_t floorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0)))
    --q;
  return q;
}
static int64_t floorMod(int64_t a, int64_t b) {
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0)))
    r += b;
  return r;
}

std::optional<ConstValue> Evaluator::evalBinary(const BinaryExpr &e) {
  llvm::StringRef opName = stringifyBinaryOp(e.op);
  const Location &loc = e.getLoc();
  if (e.op == BinaryOp::MatMul)
    return error(loc, "operator '@' is not allowed in a compile-time "
                      "expression");
  std::optional<ConstValue> l = eval(*e.lhs);
  if (!l)
    return std::nullopt;
  std::optional<ConstValue> r = eval(*e.rhs);
  if (!r)
    return std::nullopt;
  if (!checkScalarOperand(*l, e.lhs->getLoc(), opName) ||
      !checkScalarOperand(*r, e.rhs->getLoc(), opName))
    return std::nullopt;

  auto kindError = [&]() {
    return error(loc, "operator '" + opName + "' cannot be applied to " +
                          stringifyKind(l->kind) + " and " +
                          stringifyKind(r->kind));
  };

  switch (e.op) {
  case BinaryOp::And:
  case BinaryOp::Or:
    if (l->kind != ConstValue::Kind::Bool || r->kind != ConstValue::Kind::Bool)
      return kindError();
    return ConstValue::getBool(e.op == BinaryOp::And
                                   ? (l->boolValue && r->boolValue)
                                   : (l->boolValue || r->boolValue));
  case BinaryOp::Eq:
  case BinaryOp::Ne:
  case BinaryOp::Lt:
  case BinaryOp::Le:
  case BinaryOp::Gt:
  case BinaryOp::Ge: {
    int cmp;
    if (l->isNumeric() && r->isNumeric()) {
      if (l->isInt() && r->isInt())
        cmp = l->intValue < r->intValue ? -1 : l->intValue > r->intValue;
      else
        cmp = l->getAsDouble() < r->getAsDouble()
                  ? -1
                  : l->getAsDouble() > r->getAsDouble();
    } else if (l->kind == r->kind && (l->kind == ConstValue::Kind::String ||
                                      l->kind == ConstValue::Kind::Bool)) {
      if (e.op != BinaryOp::Eq && e.op != BinaryOp::Ne)
        return kindError();
      cmp = l->kind == ConstValue::Kind::String
                ? (l->str != r->str)
                : (l->boolValue != r->boolValue);
    } else {
      return kindError();
    }
    bool result = false;
    switch (e.op) {
    case BinaryOp::Eq:
      result = cmp == 0;
      break;
    case BinaryOp::Ne:
      result = cmp != 0;
      break;
    case BinaryOp::Lt:
      result = cmp < 0;
      break;
    case BinaryOp::Le:
      result = cmp <= 0;
      break;
    case BinaryOp::Gt:
      result = cmp > 0;
      break;
    default:
      result = cmp >= 0;
      break;
    }
    return ConstValue::getBool(result);
  }
  default:
    break;
  }

  // Arithmetic from here on.
  if (!l->isNumeric() || !r->isNumeric())
    return kindError();
  if (l->isInt() && r->isInt()) {
    int64_t a = l->intValue, b = r->intValue, out;
    switch (e.op) {
    case BinaryOp::Add:
      if (__builtin_add_overflow(a, b, &out))
        return error(loc, "integer overflow");
      return ConstValue::getInt(out);
    case BinaryOp::Sub:
      if (__builtin_sub_overflow(a, b, &out))
        return error(loc, "integer overflow");
      return ConstValue::getInt(out);
    case BinaryOp::Mul:
      if (__builtin_mul_overflow(a, b, &out))
        return error(loc, "integer overflow");
      return ConstValue::getInt(out);
    case BinaryOp::Div:
      if (b == 0)
        return divisionByZero(loc);
      return checkFinite(loc, static_cast<double>(a) / static_cast<double>(b));
    case BinaryOp::FloorDiv:
    case BinaryOp::Mod:
      if (b == 0)
        return divisionByZero(loc);
      if (a == INT64_MIN && b == -1)
        return error(loc, "integer overflow");
      return ConstValue::getInt(e.op == BinaryOp::FloorDiv ? floorDiv(a, b)
                                                           : floorMod(a, b));
    case BinaryOp::Pow: {
      if (b < 0) {
        if (a == 0)
          return divisionByZero(loc);
        return checkFinite(
            loc, std::pow(static_cast<double>(a), static_cast<double>(b)));
      }
      // Powers of 0, 1 and -1 are settled at once; any other base overflows
      // within 63 multiplications, so the loop is short.
      if (a == 0 || a == 1)
        return ConstValue::getInt(b == 0 ? 1 : a);
      if (a == -1)
        return ConstValue::getInt(b % 2 ? -1 : 1);
      int64_t result = 1;
      for (int64_t i = 0; i < b; ++i)
        if (__builtin_mul_overflow(result, a, &result))
          return error(loc, "integer overflow");
      return ConstValue::getInt(result);
    }
    default:
      break;
    }
  }
  double a = l->getAsDouble(), b = r->getAsDouble();
  switch (e.op) {
  case BinaryOp::Add:
    return checkFinite(loc, a + b);
  case BinaryOp::Sub:
    return checkFinite(loc, a - b);
  case BinaryOp::Mul:
    return checkFinite(loc, a * b);
  case BinaryOp::Div:
    if (b == 0)
      return divisionByZero(loc);
    return checkFinite(loc, a / b);
  case BinaryOp::FloorDiv:
    if (b == 0)
      return divisionByZero(loc);
    return checkFinite(loc, std::floor(a / b));
  case BinaryOp::Mod: {
    if (b == 0)
      return divisionByZero(loc);
    double rem = std::fmod(a, b);
    if (rem != 0 && ((rem < 0) != (b < 0)))
      rem += b;
    return checkFinite(loc, rem);
  }
  case BinaryOp::Pow:
    if (a == 0 && b < 0)
      return divisionByZero(loc);
    if (a < 0 && std::floor(b) != b)
      return error(loc, "negative number to a fractional power");
    return checkFinite(loc, std::pow(a, b));
  default:
    return kindError();
  }
}

std::optional<ConstValue> Evaluator::evalMath(const CallExpr &e) {
  const Location &loc = e.getLoc();
  llvm::StringRef f = e.callee;
  if (e.args.size() != 1)
    return error(loc, "'" + f + "' takes 1 argument, but " +
                          llvm::Twine(e.args.size()) +
                          (e.args.size() == 1 ? " is" : " are") + " given");
  const Expr &arg = *e.args.front();
  std::optional<ConstValue> v = eval(arg);
  if (!v || !checkScalarOperand(*v, arg.getLoc(), f))
    return std::nullopt;
  if (!v->isNumeric())
    return error(loc, "'" + f + "' needs a number, got " +
                          stringifyKind(v->kind) + " " + v->toString());
  double x = v->getAsDouble();
  if (f == "abs") {
    if (v->isFloat())
      return ConstValue::getFloat(std::fabs(x));
    if (v->intValue == INT64_MIN)
      return error(loc, "integer overflow in 'abs(" + v->toString() + ")'");
    return ConstValue::getInt(v->intValue < 0 ? -v->intValue : v->intValue);
  }
  if (f == "floor" || f == "ceil") {
    if (v->isInt())
      return v;
    double r = f == "floor" ? std::floor(x) : std::ceil(x);
    // 2^63 is exactly representable; every double below it in magnitude
    // converts to int64 exactly.
    if (!(r >= -9223372036854775808.0 && r < 9223372036854775808.0))
      return error(loc, "integer overflow: '" + f + "(" + v->toString() +
                            ")' does not fit in a 64-bit int");
    return ConstValue::getInt(static_cast<int64_t>(r));
  }
  if (f == "log") {
    if (x <= 0)
      return error(loc, "math domain error: 'log' needs a positive argument, "
                        "got " +
                            v->toString());
    return checkFinite(loc, std::log(x));
  }
  if (f == "sqrt") {
    if (x < 0)
      return error(loc, "math domain error: 'sqrt' needs a non-negative "
                        "argument, got " +
                            v->toString());
    return checkFinite(loc, std::sqrt(x));
  }
  double r = std::exp(x);
  if (!std::isfinite(r))
    return error(loc, "'exp(" + v->toString() +
                          ")' overflows: the result is not a finite number");
  return ConstValue::getFloat(r);
}

bool loom::frontend::isConfigFunction(llvm::StringRef name) {
  static constexpr llvm::StringLiteral kFunctions[] = {
      "min", "max", "log", "exp", "sqrt", "floor", "ceil", "abs"};
  return llvm::is_contained(kFunctions, name);
}

std::optional<ConstValue> Evaluator::evalCall(const CallExpr &e) {
  if (!isConfigFunction(e.callee))
    return error(e.getLoc(), "unknown function '" + e.callee +
                                 "' in a compile-time expression (only min, "
                                 "max, log, exp, sqrt, floor, ceil and abs "
                                 "are allowed)");
  if (!e.kwargs.empty())
    return error(e.kwargs.front().key.loc,
                 "'" + e.callee + "' takes no keyword arguments");
  bool isMin = e.callee == "min";
  if (!isMin && e.callee != "max")
    return evalMath(e);
  if (e.args.size() < 2)
    return error(e.getLoc(), "'" + e.callee + "' needs at least 2 arguments");
  std::optional<ConstValue> best;
  bool anyFloat = false;
  for (const ExprPtr &arg : e.args) {
    std::optional<ConstValue> v = eval(*arg);
    if (!v || !checkScalarOperand(*v, arg->getLoc(), e.callee))
      return std::nullopt;
    if (!v->isNumeric())
      return error(arg->getLoc(), "'" + e.callee + "' needs numbers, got " +
                                      stringifyKind(v->kind));
    anyFloat |= v->isFloat();
    if (!best)
      best = v;
    else if (isMin ? v->getAsDouble() < best->getAsDouble()
                   : v->getAsDouble() > best->getAsDouble())
      best = v;
    else if (v->isInt() && best->isInt() &&
             (isMin ? v->intValue < best->intValue
                    : v->intValue > best->intValue))
      best = v;
  }
  // Mixed int and float arguments give a float, so the kind of the result
  // does not depend on which argument wins.
  if (anyFloat)
    return ConstValue::getFloat(best->getAsDouble());
  return best;
}

//===----------------------------------------------------------------------===//
// Public entry points
//===----------------------------------------------------------------------===//

bool loom::frontend::evaluateConfigs(ModuleAST &m, llvm::SourceMgr &sm) {
  llvm::StringMap<const ConfigDecl *> seen;
  for (size_t i = 0, n = m.configs.size(); i < n; ++i) {
    ConfigDecl &c = m.configs[i];
    auto [it, inserted] = seen.try_emplace(c.ident.name, &c);
    if (!inserted) {
      sm.PrintMessage(c.ident.loc.ptr, llvm::SourceMgr::DK_Error,
                      "redefinition of config '" + c.ident.name + "'");
      sm.PrintMessage(it->second->ident.loc.ptr, llvm::SourceMgr::DK_Note,
                      "previous definition is here");
      return false;
    }
    if (c.overridden)
      continue;
    Evaluator ev(m, &sm, Evaluator::Mode::Config);
    ev.configName = c.ident.name;
    ev.visibleConfigs = i;
    std::optional<ConstValue> v = ev.eval(*c.init);
    if (!v)
      return false;
    c.value = std::move(*v);
    if (c.declaredKind == ConstValue::Kind::None)
      c.declaredKind = c.value.kind;
  }
  return true;
}

std::optional<ConstValue> loom::frontend::evaluateDim(const ModuleAST &m,
                                                      const Expr &dim,
                                                      llvm::SourceMgr *sm) {
  Evaluator ev(m, sm, Evaluator::Mode::Dim);
  std::optional<ConstValue> v = ev.eval(dim);
  if (!v)
    return std::nullopt;
  auto error = [&](const llvm::Twine &msg) -> std::nullopt_t {
    if (sm)
      sm->PrintMessage(getStartLoc(dim).ptr, llvm::SourceMgr::DK_Error, msg);
    return std::nullopt;
  };
  std::string text = exprToString(dim);
  switch (v->kind) {
  case ConstValue::Kind::Symbol:
  case ConstValue::Kind::Int:
    if (v->isInt() && v->intValue < 0)
      return error("dim '" + text + "' is negative (" +
                   llvm::Twine(v->intValue) + ")");
    return v;
  case ConstValue::Kind::Float:
    if (llvm::isa<BinaryExpr>(dim) &&
        llvm::cast<BinaryExpr>(dim).op == BinaryOp::Div)
      return error("dim '" + text + "' is not an integer (it is float " +
                   v->toString() + "); use '//' for integer division");
    return error("dim '" + text + "' is not an integer (it is float " +
                 v->toString() + ")");
  default:
    return error("dim '" + text + "' is not an integer (it is " +
                 stringifyKind(v->kind) + " " + v->toString() + ")");
  }
}

std::optional<ConstValue>
loom::frontend::evaluateConstant(const ModuleAST &m, const Expr &e,
                                 const GraphAST *g, llvm::SourceMgr *sm) {
  Evaluator ev(m, sm, Evaluator::Mode::Attr);
  ev.graph = g;
  return ev.eval(e);
}

llvm::SmallVector<std::string>
loom::frontend::getSymbolicDims(const ModuleAST &m, const GraphAST &g) {
  llvm::SmallVector<std::string> dims;
  llvm::StringSet<> seen;
  auto visit = [&](const TypeAST &type) {
    for (const ExprPtr &dim : type.dims)
      if (auto *name = llvm::dyn_cast<NameExpr>(dim.get()))
        if (!m.findConfig(name->name) && seen.insert(name->name).second)
          dims.push_back(name->name);
  };
  for (const ValueDecl &d : g.inputs)
    visit(d.type);
  for (const ValueDecl &d : g.outputs)
    visit(d.type);
  for (const Stmt *s : getActiveStmts(m, g)) {
    if (auto *p = llvm::dyn_cast<ParamStmt>(s))
      visit(p->type);
    else if (auto *st = llvm::dyn_cast<StateStmt>(s))
      visit(st->type);
  }
  return dims;
}

std::optional<bool> loom::frontend::evaluateCondition(const ModuleAST &m,
                                                      const Expr &condition,
                                                      const GraphAST *g,
                                                      llvm::SourceMgr *sm) {
  Evaluator ev(m, sm, Evaluator::Mode::Condition);
  ev.graph = g;
  std::optional<ConstValue> v = ev.eval(condition);
  if (!v)
    return std::nullopt;
  if (v->kind == ConstValue::Kind::Bool)
    return v->boolValue;
  if (sm)
    sm->PrintMessage(getStartLoc(condition).ptr, llvm::SourceMgr::DK_Error,
                     "the condition of 'if' must be a bool, but '" +
                         exprToString(condition) + "' is " +
                         stringifyKind(v->kind) + " " + v->toString());
  return std::nullopt;
}

int loom::frontend::getTakenBranch(const ModuleAST &m, const IfStmt &stmt,
                                   const GraphAST *g) {
  for (auto [i, branch] : llvm::enumerate(stmt.branches)) {
    if (!branch.condition)
      return static_cast<int>(i);
    std::optional<bool> taken =
        evaluateCondition(m, *branch.condition, g, nullptr);
    if (!taken)
      return -1;
    if (*taken)
      return static_cast<int>(i);
  }
  return -1;
}

static void collectActive(const ModuleAST &m, const GraphAST &g,
                          const std::vector<StmtPtr> &body,
                          llvm::SmallVectorImpl<const Stmt *> &out) {
  for (const StmtPtr &s : body) {
    const auto *stmt = llvm::dyn_cast<IfStmt>(s.get());
    if (!stmt) {
      out.push_back(s.get());
      continue;
    }
    int taken = getTakenBranch(m, *stmt, &g);
    if (taken >= 0)
      collectActive(m, g, stmt->branches[taken].body, out);
  }
}

llvm::SmallVector<const Stmt *>
loom::frontend::getActiveStmts(const ModuleAST &m, const GraphAST &g) {
  llvm::SmallVector<const Stmt *> out;
  collectActive(m, g, g.body, out);
  return out;
}

std::string loom::frontend::getGraphPrefix(const ModuleAST &m,
                                           const GraphAST &g) {
  if (g.prefix)
    return *g.prefix;
  if (g.prefixConfig)
    if (const ConfigDecl *c = m.findConfig(g.prefixConfig->name))
      if (c->value.kind == ConstValue::Kind::String)
        return c->value.str;
  return "";
}

//===----------------------------------------------------------------------===//
// Overrides
//===----------------------------------------------------------------------===//

/// Prints an error that has no source location, e.g. `FILE: error: msg`
/// (`file` may be empty: `error: msg`).
static void printError(llvm::SourceMgr &sm, llvm::StringRef file,
                       const llvm::Twine &msg) {
  sm.PrintMessage(
      llvm::errs(),
      llvm::SMDiagnostic(file, llvm::SourceMgr::DK_Error, msg.str()));
}

/// Returns "an int", "a string", ... for messages.
static std::string withArticle(ConstValue::Kind kind) {
  return (kind == ConstValue::Kind::Int ? "an " : "a ") +
         stringifyKind(kind).str();
}

/// Checks that `v` fits config `c` and stores it, widening an int to a float
/// for a float config. Returns the reason on mismatch.
static std::optional<std::string> setOverride(ConfigDecl &c, ConstValue v) {
  if (c.declaredKind == ConstValue::Kind::Float && v.isInt())
    v = ConstValue::getFloat(static_cast<double>(v.intValue));
  if (v.kind != c.declaredKind)
    return "config '" + c.ident.name + "' is " + withArticle(c.declaredKind);
  c.value = std::move(v);
  c.overridden = true;
  return std::nullopt;
}

static void noteDeclaration(llvm::SourceMgr &sm, const ConfigDecl &c) {
  sm.PrintMessage(c.ident.loc.ptr, llvm::SourceMgr::DK_Note,
                  "config '" + c.ident.name + "' is declared here");
}

static bool applyJson(ModuleAST &m, llvm::StringRef path, llvm::SourceMgr &sm) {
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer) {
    printError(sm, path, "cannot read file: " + buffer.getError().message());
    return false;
  }
  llvm::Expected<llvm::json::Value> json =
      llvm::json::parse((*buffer)->getBuffer());
  if (!json) {
    printError(sm, path, "invalid JSON: " + llvm::toString(json.takeError()));
    return false;
  }
  const llvm::json::Object *object = json->getAsObject();
  if (!object) {
    printError(sm, path, "expected a JSON object at top level");
    return false;
  }
  // DenseMap order is arbitrary; sort so the first error is deterministic.
  std::vector<std::string> keys;
  for (const auto &kv : *object)
    keys.push_back(kv.first.str());
  llvm::sort(keys);
  for (const std::string &key : keys) {
    ConfigDecl *c = m.findConfig(key);
    if (!c)
      continue;
    const llvm::json::Value &jv = *object->get(key);
    ConstValue v;
    llvm::StringRef jsonKind;
    switch (jv.kind()) {
    case llvm::json::Value::Null:
      continue;
    case llvm::json::Value::Boolean:
      v = ConstValue::getBool(*jv.getAsBoolean());
      jsonKind = "a bool";
      break;
    case llvm::json::Value::Number:
      if (std::optional<int64_t> i = jv.getAsInteger()) {
        v = ConstValue::getInt(*i);
        jsonKind = "an int";
      } else {
        v = ConstValue::getFloat(*jv.getAsNumber());
        jsonKind = "a float";
      }
      break;
    case llvm::json::Value::String:
      v = ConstValue::getString(*jv.getAsString());
      jsonKind = "a string";
      break;
    case llvm::json::Value::Array:
      jsonKind = "an array";
      break;
    case llvm::json::Value::Object:
      jsonKind = "an object";
      break;
    }
    std::optional<std::string> mismatch =
        v.kind == ConstValue::Kind::None
            ? std::optional<std::string>("config '" + key + "' is " +
                                         withArticle(c->declaredKind))
            : setOverride(*c, std::move(v));
    if (mismatch) {
      printError(sm, path,
                 "key '" + key + "': " + *mismatch +
                     ", but the JSON value is " + jsonKind);
      noteDeclaration(sm, *c);
      return false;
    }
  }
  return true;
}

/// Reads the VALUE of `--define NAME=VALUE` for a config of kind `kind`.
static ConstValue parseDefineValue(llvm::StringRef text,
                                   ConstValue::Kind kind) {
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"')
    return ConstValue::getString(text.drop_front().drop_back());
  // For a string config any text is the string: `--define mode=absorb`, and
  // also `--define tag=123`.
  if (kind == ConstValue::Kind::String)
    return ConstValue::getString(text);
  if (text == "true" || text == "false")
    return ConstValue::getBool(text == "true");
  int64_t i;
  if (!text.getAsInteger(10, i))
    return ConstValue::getInt(i);
  double d;
  if (!text.getAsDouble(d) && std::isfinite(d))
    return ConstValue::getFloat(d);
  return ConstValue::getString(text);
}

bool loom::frontend::applyConfigOverrides(ModuleAST &m,
                                          llvm::ArrayRef<std::string> defines,
                                          llvm::StringRef configJsonPath,
                                          llvm::SourceMgr &sm) {
  if (!configJsonPath.empty() && !applyJson(m, configJsonPath, sm))
    return false;
  for (llvm::StringRef define : defines) {
    auto [name, text] = define.split('=');
    name = name.trim();
    if (name.empty() || !define.contains('=')) {
      printError(sm, "",
                 "--define '" + define + "' must have the form NAME=VALUE");
      return false;
    }
    ConfigDecl *c = m.findConfig(name);
    if (!c) {
      printError(sm, "", "--define of undeclared config '" + name + "'");
      return false;
    }
    ConstValue v = parseDefineValue(text, c->declaredKind);
    ConstValue::Kind given = v.kind;
    if (std::optional<std::string> mismatch = setOverride(*c, std::move(v))) {
      printError(sm, "",
                 "--define " + define + ": " + *mismatch + ", but '" + text +
                     "' is " + withArticle(given));
      noteDeclaration(sm, *c);
      return false;
    }
  }
  return evaluateConfigs(m, sm);
}
