//===- Requirement.cpp - Run-time requirements in linear form ---*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file implements buildRequirement: a walk over the condition that
// folds compile-time sub-expressions with the config evaluator and keeps the
// rest as a sum of terms with int64 coefficients, refusing anything that is
// not linear.
//
//===----------------------------------------------------------------------===//

#include "frontend/Requirement.h"

#include "frontend/Config.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/SourceMgr.h"

using namespace loom::frontend;

bool LinearRequirement::holdsWithoutTerms() const {
  switch (predicate) {
  case Predicate::GE:
    return constant >= 0;
  case Predicate::EQ:
    return constant == 0;
  case Predicate::NE:
    return constant != 0;
  }
  return false;
}

namespace {

/// A linear expression: constant + sum of coefficient * term.
struct Linear {
  int64_t constant = 0;
  std::vector<RequirementTerm> terms;
};

class Normalizer {
public:
  Normalizer(const ModuleAST &m, TermResolver resolve, llvm::SourceMgr &sm,
             llvm::StringRef text)
      : m(m), resolve(resolve), sm(sm), text(text) {}

  std::optional<LinearRequirement> run(const Expr &condition);

private:
  std::nullopt_t error(const Location &loc, const llvm::Twine &msg) {
    sm.PrintMessage(loc.ptr, llvm::SourceMgr::DK_Error, msg);
    return std::nullopt;
  }
  std::nullopt_t overflow(const Location &loc) {
    return error(loc, "integer overflow in requirement '" + text + "'");
  }

  bool isCompileTime(const Expr &e) const;
  void noteConfigs(const Expr &e);
  /// Whether `e`, a compile-time expression, is a condition of bools or
  /// strings (and, or, not, == and != of strings or bools, a bool config).
  bool isLogical(const Expr &e);
  void noteKnown(llvm::StringRef name, const std::string &value);
  std::optional<Linear> linearize(const Expr &e);
  std::optional<Linear> scale(Linear l, int64_t factor, const Location &loc);
  std::optional<Linear> add(Linear l, const Linear &r, bool subtract,
                            const Location &loc);

  const ModuleAST &m;
  TermResolver resolve;
  llvm::SourceMgr &sm;
  llvm::StringRef text;
  llvm::StringSet<> knownNames;
  std::string known;
};

} // namespace

/// An expression without names other than configs is folded by the config
/// evaluator, which also reports what it cannot compute.
bool Normalizer::isCompileTime(const Expr &e) const {
  switch (e.getKind()) {
  case Expr::Kind::Int:
  case Expr::Kind::Float:
  case Expr::Kind::Bool:
  case Expr::Kind::String:
    return true;
  case Expr::Kind::Name:
    return m.findConfig(llvm::cast<NameExpr>(e).name) != nullptr;
  case Expr::Kind::List:
    return llvm::all_of(llvm::cast<ListExpr>(e).elements,
                        [&](const ExprPtr &x) { return isCompileTime(*x); });
  case Expr::Kind::Unary:
    return isCompileTime(*llvm::cast<UnaryExpr>(e).operand);
  case Expr::Kind::Binary: {
    const auto &b = llvm::cast<BinaryExpr>(e);
    return isCompileTime(*b.lhs) && isCompileTime(*b.rhs);
  }
  case Expr::Kind::Call: {
    const auto &c = llvm::cast<CallExpr>(e);
    return llvm::all_of(c.args,
                        [&](const ExprPtr &x) { return isCompileTime(*x); }) &&
           llvm::all_of(c.kwargs, [&](const KeywordArg &k) {
             return isCompileTime(*k.value);
           });
  }
  case Expr::Kind::Index:
    return false;
  }
  return false;
}

void Normalizer::noteKnown(llvm::StringRef name, const std::string &value) {
  if (!knownNames.insert(name).second)
    return;
  if (!known.empty())
    known += ", ";
  known += (name + " = " + value).str();
}

void Normalizer::noteConfigs(const Expr &e) {
  switch (e.getKind()) {
  case Expr::Kind::Name: {
    const std::string &name = llvm::cast<NameExpr>(e).name;
    if (const ConfigDecl *c = m.findConfig(name))
      noteKnown(name, c->value.toString());
    return;
  }
  case Expr::Kind::List:
    for (const ExprPtr &x : llvm::cast<ListExpr>(e).elements)
      noteConfigs(*x);
    return;
  case Expr::Kind::Unary:
    noteConfigs(*llvm::cast<UnaryExpr>(e).operand);
    return;
  case Expr::Kind::Binary:
    noteConfigs(*llvm::cast<BinaryExpr>(e).lhs);
    noteConfigs(*llvm::cast<BinaryExpr>(e).rhs);
    return;
  case Expr::Kind::Call:
    for (const ExprPtr &x : llvm::cast<CallExpr>(e).args)
      noteConfigs(*x);
    return;
  default:
    return;
  }
}

std::optional<Linear> Normalizer::scale(Linear l, int64_t factor,
                                        const Location &loc) {
  if (__builtin_mul_overflow(l.constant, factor, &l.constant))
    return overflow(loc);
  for (RequirementTerm &t : l.terms)
    if (__builtin_mul_overflow(t.coeff, factor, &t.coeff))
      return overflow(loc);
  return l;
}

std::optional<Linear> Normalizer::add(Linear l, const Linear &r, bool subtract,
                                      const Location &loc) {
  auto combine = [&](int64_t a, int64_t b, int64_t *out) {
    return subtract ? __builtin_sub_overflow(a, b, out)
                    : __builtin_add_overflow(a, b, out);
  };
  if (combine(l.constant, r.constant, &l.constant))
    return overflow(loc);
  for (const RequirementTerm &t : r.terms) {
    auto same = llvm::find_if(l.terms, [&](const RequirementTerm &u) {
      return u.kind == t.kind && u.target == t.target && u.input == t.input;
    });
    if (same == l.terms.end()) {
      RequirementTerm copy = t;
      copy.coeff = 0;
      l.terms.push_back(copy);
      same = std::prev(l.terms.end());
    }
    if (combine(same->coeff, t.coeff, &same->coeff))
      return overflow(loc);
  }
  return l;
}

std::optional<Linear> Normalizer::linearize(const Expr &e) {
  if (isCompileTime(e)) {
    std::optional<ConstValue> v = evaluateConstant(m, e, nullptr, &sm);
    if (!v)
      return std::nullopt;
    if (!v->isInt())
      return error(getStartLoc(e),
                   "a requirement computes with integers, but '" +
                       exprToString(e) + "' is " + stringifyKind(v->kind) +
                       " " + v->toString() +
                       (v->isFloat() ? " (use '//', floor() or ceil())" : ""));
    noteConfigs(e);
    return Linear{v->intValue, {}};
  }
  switch (e.getKind()) {
  case Expr::Kind::Name: {
    const auto &name = llvm::cast<NameExpr>(e);
    std::optional<TermBinding> binding = resolve(name);
    if (!binding)
      return std::nullopt;
    if (binding->kind == TermBinding::Kind::Constant) {
      noteKnown(name.name, std::to_string(binding->value));
      return Linear{binding->value, {}};
    }
    RequirementTerm term;
    term.kind = binding->kind;
    term.target = binding->target;
    term.input = binding->input;
    term.name = name.name;
    term.coeff = 1;
    return Linear{0, {term}};
  }
  case Expr::Kind::Unary: {
    const auto &u = llvm::cast<UnaryExpr>(e);
    if (u.op != UnaryOp::Neg)
      break;
    std::optional<Linear> operand = linearize(*u.operand);
    if (!operand)
      return std::nullopt;
    return scale(std::move(*operand), -1, e.getLoc());
  }
  case Expr::Kind::Binary: {
    const auto &b = llvm::cast<BinaryExpr>(e);
    if (b.op != BinaryOp::Add && b.op != BinaryOp::Sub &&
        b.op != BinaryOp::Mul) {
      if (b.op == BinaryOp::And || b.op == BinaryOp::Or)
        return error(e.getLoc(), "'" + stringifyBinaryOp(b.op) +
                                     "' is not allowed in a requirement; give "
                                     "several conditions separated by ','");
      const Expr &operand = isCompileTime(*b.lhs) ? *b.rhs : *b.lhs;
      return error(e.getLoc(), "operator '" + stringifyBinaryOp(b.op) +
                                   "' cannot be applied to the run-time "
                                   "value '" +
                                   exprToString(operand) +
                                   "' in a requirement (only +, -, and "
                                   "multiplication by a constant)");
    }
    std::optional<Linear> l = linearize(*b.lhs);
    if (!l)
      return std::nullopt;
    std::optional<Linear> r = linearize(*b.rhs);
    if (!r)
      return std::nullopt;
    if (b.op != BinaryOp::Mul)
      return add(std::move(*l), *r, b.op == BinaryOp::Sub, e.getLoc());
    if (l->terms.empty())
      return scale(std::move(*r), l->constant, e.getLoc());
    if (r->terms.empty())
      return scale(std::move(*l), r->constant, e.getLoc());
    return error(e.getLoc(), "'" + exprToString(e) +
                                 "' multiplies two run-time values; a "
                                 "requirement must be linear (multiply "
                                 "run-time values only by constants)");
  }
  case Expr::Kind::Call:
    return error(e.getLoc(), "'" + exprToString(e) +
                                 "' cannot be used in a requirement: "
                                 "functions apply only to compile-time "
                                 "values");
  default:
    break;
  }
  return error(getStartLoc(e), "'" + exprToString(e) +
                                   "' cannot be used in a requirement (only "
                                   "+, -, and multiplication by a constant)");
}

bool Normalizer::isLogical(const Expr &e) {
  if (const auto *b = llvm::dyn_cast<BinaryExpr>(&e)) {
    if (b->op == BinaryOp::And || b->op == BinaryOp::Or)
      return true;
    if (b->op != BinaryOp::Eq && b->op != BinaryOp::Ne)
      return false;
    std::optional<ConstValue> l = evaluateConstant(m, *b->lhs, nullptr, &sm);
    return l && (l->kind == ConstValue::Kind::String ||
                 l->kind == ConstValue::Kind::Bool);
  }
  if (const auto *u = llvm::dyn_cast<UnaryExpr>(&e))
    return u->op == UnaryOp::Not;
  if (llvm::isa<NameExpr>(e)) {
    std::optional<ConstValue> v = evaluateConstant(m, e, nullptr, &sm);
    return v && v->kind == ConstValue::Kind::Bool;
  }
  return false;
}

std::optional<LinearRequirement> Normalizer::run(const Expr &condition) {
  using Predicate = LinearRequirement::Predicate;
  // A compile-time bool (`loss_type == "grpo" or loss_type == "dapo"`):
  // checked when the graph is imported, like an integer condition without
  // terms; recorded as 0 == 0 or 1 == 0.
  if (isCompileTime(condition) && isLogical(condition)) {
    std::optional<ConstValue> v = evaluateConstant(m, condition, nullptr, &sm);
    if (!v)
      return std::nullopt;
    if (v->kind == ConstValue::Kind::Bool) {
      noteConfigs(condition);
      LinearRequirement result;
      result.predicate = Predicate::EQ;
      result.constant = v->boolValue ? 0 : 1;
      result.text = text.str();
      result.knownValues = known;
      return result;
    }
  }
  const auto *cmp = llvm::dyn_cast<BinaryExpr>(&condition);
  if (cmp && (cmp->op == BinaryOp::And || cmp->op == BinaryOp::Or))
    return error(cmp->getLoc(), "'" + stringifyBinaryOp(cmp->op) +
                                    "' is not allowed in a requirement; give "
                                    "several conditions separated by ','");
  Predicate predicate = Predicate::GE;
  // lhs - rhs for these, rhs - lhs for `<` and `<=` (computed as the
  // negation, so terms keep the order they are written in); the strict ones
  // then subtract 1, since all values are integers.
  bool swap = false, strict = false;
  switch (cmp ? cmp->op : BinaryOp::Add) {
  case BinaryOp::Ge:
    break;
  case BinaryOp::Gt:
    strict = true;
    break;
  case BinaryOp::Le:
    swap = true;
    break;
  case BinaryOp::Lt:
    swap = strict = true;
    break;
  case BinaryOp::Eq:
    predicate = Predicate::EQ;
    break;
  case BinaryOp::Ne:
    predicate = Predicate::NE;
    break;
  default:
    return error(getStartLoc(condition),
                 "a requirement must be a comparison (<, <=, >, >=, == or "
                 "!=), but '" +
                     exprToString(condition) + "' is not");
  }
  std::optional<Linear> l = linearize(*cmp->lhs);
  if (!l)
    return std::nullopt;
  std::optional<Linear> r = linearize(*cmp->rhs);
  if (!r)
    return std::nullopt;
  std::optional<Linear> diff =
      add(std::move(*l), *r, /*subtract=*/true, cmp->getLoc());
  if (diff && swap)
    diff = scale(std::move(*diff), -1, cmp->getLoc());
  if (!diff)
    return std::nullopt;
  if (strict && __builtin_sub_overflow(diff->constant, 1, &diff->constant))
    return overflow(cmp->getLoc());

  LinearRequirement result;
  result.predicate = predicate;
  result.constant = diff->constant;
  for (RequirementTerm &t : diff->terms)
    if (t.coeff != 0)
      result.terms.push_back(std::move(t));
  result.text = text.str();
  result.knownValues = known;
  return result;
}

std::optional<LinearRequirement>
loom::frontend::buildRequirement(const ModuleAST &m, const Expr &condition,
                                 llvm::StringRef text, TermResolver resolve,
                                 llvm::SourceMgr &sm) {
  return Normalizer(m, resolve, sm, text).run(condition);
}
