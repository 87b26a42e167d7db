//===- AST.cpp - Abstract syntax tree of the .loom language -----*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file implements the small helpers of the AST (dtype names, constant
// values, lookups), the source-syntax expression printer and the indented
// tree dump behind `loom-compile --emit=ast`.
//
//===----------------------------------------------------------------------===//

#include "frontend/AST.h"

#include "frontend/Config.h"

#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace loom::frontend;

//===----------------------------------------------------------------------===//
// DType
//===----------------------------------------------------------------------===//

std::optional<DType> loom::frontend::parseDType(llvm::StringRef name) {
  return llvm::StringSwitch<std::optional<DType>>(name)
      .Case("f32", DType::F32)
      .Case("f64", DType::F64)
      .Case("i32", DType::I32)
      .Case("i64", DType::I64)
      .Case("bool", DType::Bool)
      .Case("f16", DType::F16)
      .Case("bf16", DType::BF16)
      .Default(std::nullopt);
}

llvm::StringRef loom::frontend::stringifyDType(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "f32";
  case DType::F64:
    return "f64";
  case DType::I32:
    return "i32";
  case DType::I64:
    return "i64";
  case DType::Bool:
    return "bool";
  case DType::F16:
    return "f16";
  case DType::BF16:
    return "bf16";
  }
  return "?";
}

//===----------------------------------------------------------------------===//
// ConstValue
//===----------------------------------------------------------------------===//

ConstValue ConstValue::getInt(int64_t v) {
  ConstValue c;
  c.kind = Kind::Int;
  c.intValue = v;
  return c;
}

ConstValue ConstValue::getFloat(double v) {
  ConstValue c;
  c.kind = Kind::Float;
  c.floatValue = v;
  return c;
}

ConstValue ConstValue::getBool(bool v) {
  ConstValue c;
  c.kind = Kind::Bool;
  c.boolValue = v;
  return c;
}

ConstValue ConstValue::getString(llvm::StringRef v) {
  ConstValue c;
  c.kind = Kind::String;
  c.str = v.str();
  return c;
}

ConstValue ConstValue::getList(std::vector<ConstValue> elements) {
  ConstValue c;
  c.kind = Kind::List;
  c.list = std::move(elements);
  return c;
}

ConstValue ConstValue::getSymbol(llvm::StringRef name) {
  ConstValue c;
  c.kind = Kind::Symbol;
  c.str = name.str();
  return c;
}

ConstValue ConstValue::getMask(llvm::StringRef name) {
  ConstValue c;
  c.kind = Kind::Mask;
  c.str = name.str();
  return c;
}

/// Prints the shortest decimal form of `v` that parses back to the same
/// double, always recognizable as a float (`2.0`, not `2`).
static void printFloat(double v, llvm::raw_ostream &os) {
  if (std::isnan(v)) {
    os << "nan";
    return;
  }
  if (std::isinf(v)) {
    os << (v < 0 ? "-inf" : "inf");
    return;
  }
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v)
      break;
  }
  llvm::StringRef text(buf);
  os << text;
  if (text.find_first_of(".e") == llvm::StringRef::npos)
    os << ".0";
}

/// Writes `s` as a `.loom` string literal.
static void printString(llvm::StringRef s, llvm::raw_ostream &os) {
  os << '"';
  for (char c : s) {
    switch (c) {
    case '"':
      os << "\\\"";
      break;
    case '\\':
      os << "\\\\";
      break;
    case '\n':
      os << "\\n";
      break;
    case '\t':
      os << "\\t";
      break;
    default:
      os << c;
    }
  }
  os << '"';
}

void ConstValue::print(llvm::raw_ostream &os) const {
  switch (kind) {
  case Kind::None:
    os << "<none>";
    return;
  case Kind::Int:
    os << intValue;
    return;
  case Kind::Float:
    printFloat(floatValue, os);
    return;
  case Kind::Bool:
    os << (boolValue ? "true" : "false");
    return;
  case Kind::String:
    printString(str, os);
    return;
  case Kind::List:
    os << '[';
    for (size_t i = 0; i < list.size(); ++i) {
      if (i)
        os << ", ";
      list[i].print(os);
    }
    os << ']';
    return;
  case Kind::Symbol:
  case Kind::Mask:
    os << str;
    return;
  }
}

std::string ConstValue::toString() const {
  std::string s;
  llvm::raw_string_ostream os(s);
  print(os);
  return s;
}

llvm::StringRef loom::frontend::stringifyKind(ConstValue::Kind kind) {
  switch (kind) {
  case ConstValue::Kind::None:
    return "nothing";
  case ConstValue::Kind::Int:
    return "int";
  case ConstValue::Kind::Float:
    return "float";
  case ConstValue::Kind::Bool:
    return "bool";
  case ConstValue::Kind::String:
    return "string";
  case ConstValue::Kind::List:
    return "list";
  case ConstValue::Kind::Symbol:
    return "symbolic dim";
  case ConstValue::Kind::Mask:
    return "mask";
  }
  return "?";
}

//===----------------------------------------------------------------------===//
// Lookups
//===----------------------------------------------------------------------===//

const KeywordArg *CallExpr::findKeyword(llvm::StringRef key) const {
  for (const KeywordArg &kw : kwargs)
    if (kw.key.name == key)
      return &kw;
  return nullptr;
}

const ConfigDecl *ModuleAST::findConfig(llvm::StringRef name) const {
  for (const ConfigDecl &c : configs)
    if (c.ident.name == name)
      return &c;
  return nullptr;
}

ConfigDecl *ModuleAST::findConfig(llvm::StringRef name) {
  for (ConfigDecl &c : configs)
    if (c.ident.name == name)
      return &c;
  return nullptr;
}

const GraphAST *ModuleAST::findGraph(llvm::StringRef name) const {
  for (const std::unique_ptr<GraphAST> &g : graphs)
    if (g->ident.name == name)
      return g.get();
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Expression printer
//===----------------------------------------------------------------------===//

llvm::StringRef loom::frontend::stringifyBinaryOp(BinaryOp op) {
  switch (op) {
  case BinaryOp::Add:
    return "+";
  case BinaryOp::Sub:
    return "-";
  case BinaryOp::Mul:
    return "*";
  case BinaryOp::Div:
    return "/";
  case BinaryOp::FloorDiv:
    return "//";
  case BinaryOp::Mod:
    return "%";
  case BinaryOp::Pow:
    return "**";
  case BinaryOp::MatMul:
    return "@";
  case BinaryOp::Eq:
    return "==";
  case BinaryOp::Ne:
    return "!=";
  case BinaryOp::Lt:
    return "<";
  case BinaryOp::Le:
    return "<=";
  case BinaryOp::Gt:
    return ">";
  case BinaryOp::Ge:
    return ">=";
  case BinaryOp::And:
    return "and";
  case BinaryOp::Or:
    return "or";
  }
  return "?";
}

namespace {
/// Binding strength, loosest first; mirrors the parser.
enum Precedence {
  PrecOr = 1,
  PrecAnd,
  PrecNot,
  PrecCompare,
  PrecAdd,
  PrecMul,
  PrecUnary,
  PrecPow,
  PrecAtom,
};
} // namespace

static int precedenceOf(BinaryOp op) {
  switch (op) {
  case BinaryOp::Or:
    return PrecOr;
  case BinaryOp::And:
    return PrecAnd;
  case BinaryOp::Eq:
  case BinaryOp::Ne:
  case BinaryOp::Lt:
  case BinaryOp::Le:
  case BinaryOp::Gt:
  case BinaryOp::Ge:
    return PrecCompare;
  case BinaryOp::Add:
  case BinaryOp::Sub:
    return PrecAdd;
  case BinaryOp::Pow:
    return PrecPow;
  default:
    return PrecMul;
  }
}

/// Prints `e`, parenthesized when it binds more loosely than `minPrec`.
static void printExprImpl(const Expr &e, llvm::raw_ostream &os, int minPrec) {
  auto printList = [&](const std::vector<ExprPtr> &list) {
    for (size_t i = 0; i < list.size(); ++i) {
      if (i)
        os << ", ";
      printExprImpl(*list[i], os, PrecOr);
    }
  };
  switch (e.getKind()) {
  case Expr::Kind::Int:
    os << llvm::cast<IntExpr>(e).value;
    return;
  case Expr::Kind::Float:
    printFloat(llvm::cast<FloatExpr>(e).value, os);
    return;
  case Expr::Kind::Bool:
    os << (llvm::cast<BoolExpr>(e).value ? "true" : "false");
    return;
  case Expr::Kind::String:
    printString(llvm::cast<StringExpr>(e).value, os);
    return;
  case Expr::Kind::Name:
    os << llvm::cast<NameExpr>(e).name;
    return;
  case Expr::Kind::List:
    os << '[';
    printList(llvm::cast<ListExpr>(e).elements);
    os << ']';
    return;
  case Expr::Kind::Unary: {
    const auto &u = llvm::cast<UnaryExpr>(e);
    int prec = u.op == UnaryOp::Not ? PrecNot : PrecUnary;
    if (prec < minPrec)
      os << '(';
    os << (u.op == UnaryOp::Not ? "not " : "-");
    printExprImpl(*u.operand, os, prec);
    if (prec < minPrec)
      os << ')';
    return;
  }
  case Expr::Kind::Binary: {
    const auto &b = llvm::cast<BinaryExpr>(e);
    int prec = precedenceOf(b.op);
    // Left-associative operators keep the left side at their own level;
    // `**` is right-associative with a postfix base; comparisons don't chain.
    int lhsPrec = prec, rhsPrec = prec + 1;
    if (b.op == BinaryOp::Pow) {
      lhsPrec = PrecAtom;
      rhsPrec = PrecUnary;
    } else if (prec == PrecCompare) {
      lhsPrec = PrecAdd;
      rhsPrec = PrecAdd;
    }
    if (prec < minPrec)
      os << '(';
    printExprImpl(*b.lhs, os, lhsPrec);
    os << ' ' << stringifyBinaryOp(b.op) << ' ';
    printExprImpl(*b.rhs, os, rhsPrec);
    if (prec < minPrec)
      os << ')';
    return;
  }
  case Expr::Kind::Call: {
    const auto &c = llvm::cast<CallExpr>(e);
    os << c.callee << '(';
    printList(c.args);
    for (size_t i = 0; i < c.kwargs.size(); ++i) {
      if (i || !c.args.empty())
        os << ", ";
      os << c.kwargs[i].key.name << '=';
      printExprImpl(*c.kwargs[i].value, os, PrecOr);
    }
    os << ')';
    return;
  }
  case Expr::Kind::Index: {
    const auto &x = llvm::cast<IndexExpr>(e);
    printExprImpl(*x.base, os, PrecAtom);
    os << '[';
    printList(x.indices);
    os << ']';
    return;
  }
  }
}

Location loom::frontend::getStartLoc(const Expr &e) {
  if (const auto *b = llvm::dyn_cast<BinaryExpr>(&e))
    return getStartLoc(*b->lhs);
  if (const auto *x = llvm::dyn_cast<IndexExpr>(&e))
    return getStartLoc(*x->base);
  return e.getLoc();
}

void loom::frontend::printExpr(const Expr &e, llvm::raw_ostream &os) {
  printExprImpl(e, os, PrecOr);
}

std::string loom::frontend::exprToString(const Expr &e) {
  std::string s;
  llvm::raw_string_ostream os(s);
  printExpr(e, os);
  return s;
}

//===----------------------------------------------------------------------===//
// Tree dump
//===----------------------------------------------------------------------===//

namespace {
class Dumper {
public:
  explicit Dumper(llvm::raw_ostream &os) : os(os) {}

  void dumpModule(const ModuleAST &m);

private:
  llvm::raw_ostream &indent() {
    for (int i = 0; i < depth; ++i)
      os << "  ";
    return os;
  }
  void loc(const Location &l) { os << " @" << l.line << ':' << l.col << '\n'; }
  void type(const TypeAST &t) {
    os << stringifyDType(t.dtype);
    if (t.dims.empty())
      return;
    os << '[';
    for (size_t i = 0; i < t.dims.size(); ++i) {
      if (i)
        os << ", ";
      printExpr(*t.dims[i], os);
    }
    os << ']';
  }
  void dumpGraph(const GraphAST &g);
  void dumpStmt(const Stmt &s);
  void dumpExpr(const Expr &e);

  llvm::raw_ostream &os;
  int depth = 0;
  const ModuleAST *module = nullptr;
  const GraphAST *graph = nullptr;
  /// Whether the statements being dumped belong to the graph.
  bool inTaken = true;
};
} // namespace

void Dumper::dumpModule(const ModuleAST &m) {
  module = &m;
  indent() << "Module \"" << m.filename << "\"\n";
  ++depth;
  for (const ConfigDecl &c : m.configs) {
    indent() << "Config " << c.ident.name << " = ";
    printExpr(*c.init, os);
    os << " -> " << stringifyKind(c.value.kind) << ' ';
    c.value.print(os);
    if (c.overridden)
      os << " (overridden)";
    loc(c.ident.loc);
  }
  for (const std::unique_ptr<GraphAST> &g : m.graphs)
    dumpGraph(*g);
  --depth;
}

void Dumper::dumpGraph(const GraphAST &g) {
  indent() << (g.isEntryPoint() ? "Graph " : "Def ") << g.ident.name;
  if (g.prefix) {
    os << " prefix=";
    ConstValue::getString(*g.prefix).print(os);
  } else if (g.prefixConfig) {
    os << " prefix=" << g.prefixConfig->name;
    if (const ConfigDecl *c = module->findConfig(g.prefixConfig->name))
      os << " -> " << c->value.toString();
  }
  graph = &g;
  loc(g.ident.loc);
  ++depth;
  for (const ValueDecl &d : g.inputs) {
    indent() << "Input " << d.ident.name << ": ";
    type(d.type);
    loc(d.ident.loc);
  }
  for (const ValueDecl &d : g.outputs) {
    indent() << "Output " << d.ident.name << ": ";
    type(d.type);
    loc(d.ident.loc);
  }
  for (const StmtPtr &s : g.body)
    dumpStmt(*s);
  --depth;
}

void Dumper::dumpStmt(const Stmt &s) {
  if (const auto *p = llvm::dyn_cast<ParamStmt>(&s)) {
    indent() << "Param " << p->ident.name << ": ";
    type(p->type);
    os << " binding=";
    ConstValue::getString(p->getBindingName()).print(os);
    loc(p->ident.loc);
    return;
  }
  if (const auto *st = llvm::dyn_cast<StateStmt>(&s)) {
    indent() << "State " << st->ident.name << ": ";
    type(st->type);
    loc(st->ident.loc);
    return;
  }
  if (const auto *mask = llvm::dyn_cast<MaskStmt>(&s)) {
    indent() << (mask->isScore ? "Score " : "Mask ") << mask->ident.name << '(';
    for (size_t i = 0; i < mask->indices.size(); ++i)
      os << (i ? ", " : "") << mask->indices[i].name;
    os << ')';
    loc(mask->ident.loc);
    ++depth;
    dumpExpr(*mask->body);
    --depth;
    return;
  }
  if (const auto *i = llvm::dyn_cast<IfStmt>(&s)) {
    indent() << "If";
    loc(i->getLoc());
    ++depth;
    // Inside a branch that is not taken, nothing is.
    int taken = inTaken ? getTakenBranch(*module, *i, graph) : -1;
    bool outer = inTaken;
    for (auto [b, branch] : llvm::enumerate(i->branches)) {
      indent() << "Branch ";
      if (branch.condition)
        printExpr(*branch.condition, os);
      else
        os << "else";
      inTaken = static_cast<int>(b) == taken;
      if (inTaken)
        os << " (taken)";
      loc(branch.loc);
      ++depth;
      for (const StmtPtr &child : branch.body)
        dumpStmt(*child);
      --depth;
    }
    inTaken = outer;
    --depth;
    return;
  }
  if (const auto *r = llvm::dyn_cast<RequireStmt>(&s)) {
    indent() << "Require";
    loc(r->getLoc());
    ++depth;
    for (const RequireStmt::Condition &c : r->conditions)
      dumpExpr(*c.expr);
    --depth;
    return;
  }
  const auto &a = llvm::cast<AssignStmt>(s);
  indent() << "Assign ";
  for (size_t i = 0; i < a.targets.size(); ++i)
    os << (i ? ", " : "") << a.targets[i].name;
  loc(a.getLoc());
  ++depth;
  dumpExpr(*a.value);
  --depth;
}

void Dumper::dumpExpr(const Expr &e) {
  switch (e.getKind()) {
  case Expr::Kind::Int:
  case Expr::Kind::Float:
  case Expr::Kind::Bool:
  case Expr::Kind::String:
    indent() << "Literal ";
    printExpr(e, os);
    loc(e.getLoc());
    return;
  case Expr::Kind::Name:
    indent() << "Name " << llvm::cast<NameExpr>(e).name;
    loc(e.getLoc());
    return;
  case Expr::Kind::List:
    indent() << "List";
    loc(e.getLoc());
    ++depth;
    for (const ExprPtr &element : llvm::cast<ListExpr>(e).elements)
      dumpExpr(*element);
    --depth;
    return;
  case Expr::Kind::Unary: {
    const auto &u = llvm::cast<UnaryExpr>(e);
    indent() << "Unary " << (u.op == UnaryOp::Neg ? "-" : "not");
    loc(e.getLoc());
    ++depth;
    dumpExpr(*u.operand);
    --depth;
    return;
  }
  case Expr::Kind::Binary: {
    const auto &b = llvm::cast<BinaryExpr>(e);
    indent() << "Binary " << stringifyBinaryOp(b.op);
    loc(e.getLoc());
    ++depth;
    dumpExpr(*b.lhs);
    dumpExpr(*b.rhs);
    --depth;
    return;
  }
  case Expr::Kind::Call: {
    const auto &c = llvm::cast<CallExpr>(e);
    indent() << "Call " << c.callee;
    loc(e.getLoc());
    ++depth;
    for (const ExprPtr &arg : c.args)
      dumpExpr(*arg);
    for (const KeywordArg &kw : c.kwargs) {
      indent() << "Keyword " << kw.key.name;
      loc(kw.key.loc);
      ++depth;
      dumpExpr(*kw.value);
      --depth;
    }
    --depth;
    return;
  }
  case Expr::Kind::Index: {
    const auto &x = llvm::cast<IndexExpr>(e);
    indent() << "Index";
    loc(e.getLoc());
    ++depth;
    dumpExpr(*x.base);
    for (const ExprPtr &index : x.indices)
      dumpExpr(*index);
    --depth;
    return;
  }
  }
}

void loom::frontend::dumpAST(const ModuleAST &m, llvm::raw_ostream &os) {
  Dumper(os).dumpModule(m);
}
