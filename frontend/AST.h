//===- AST.h - Abstract syntax tree of the .loom language -------*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file declares the AST that the parser builds from a `.loom` file: the
// module with its configs, graphs and defs, the statements of a graph body and
// the expressions inside them. The tree is deliberately generic: op names are
// plain strings and calls keep positional operands apart from keyword
// attributes, so that the importer into the `loom` dialect decides what an op
// means. Every node carries a Location (a pointer into the source buffer plus
// its 1-based line and column) so diagnostics and MLIR locations can be made
// without re-lexing.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_FRONTEND_AST_H
#define LOOM_FRONTEND_AST_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Casting.h"
#include "llvm/Support/SMLoc.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace loom {
namespace frontend {

/// A position in the source: the pointer for llvm::SourceMgr diagnostics and
/// the 1-based line and column for printing and MLIR FileLineColLoc.
struct Location {
  llvm::SMLoc ptr;
  unsigned line = 0;
  unsigned col = 0;
};

/// A name together with where it was written.
struct Ident {
  std::string name;
  Location loc;
};

//===----------------------------------------------------------------------===//
// Element types
//===----------------------------------------------------------------------===//

/// The element types a tensor can have.
enum class DType { F32, F64, I32, I64, Bool, F16, BF16 };

/// Returns the dtype spelled `name` (e.g. "bf16"), or nullopt.
std::optional<DType> parseDType(llvm::StringRef name);

/// Returns the spelling of `dtype` in the language (e.g. "f32").
llvm::StringRef stringifyDType(DType dtype);

//===----------------------------------------------------------------------===//
// Compile-time values
//===----------------------------------------------------------------------===//

/// A value known at compile time: the value of a config, of a keyword
/// attribute, or of a dim. Int/Float/Bool/String are the kinds a config can
/// have. List appears in attributes (`perm=[0, 2, 1]`). Symbol is a symbolic
/// dim (`B`) bound at run time, and Mask names a `mask` of the enclosing graph
/// (`mask=ancestor`); both carry their name in `str`.
struct ConstValue {
  enum class Kind { None, Int, Float, Bool, String, List, Symbol, Mask };

  Kind kind = Kind::None;
  int64_t intValue = 0;
  double floatValue = 0.0;
  bool boolValue = false;
  std::string str;
  std::vector<ConstValue> list;

  static ConstValue getInt(int64_t v);
  static ConstValue getFloat(double v);
  static ConstValue getBool(bool v);
  static ConstValue getString(llvm::StringRef v);
  static ConstValue getList(std::vector<ConstValue> elements);
  static ConstValue getSymbol(llvm::StringRef name);
  static ConstValue getMask(llvm::StringRef name);

  bool isInt() const { return kind == Kind::Int; }
  bool isFloat() const { return kind == Kind::Float; }
  bool isNumeric() const { return isInt() || isFloat(); }
  /// Returns the numeric value widened to double; only for Int and Float.
  double getAsDouble() const {
    return isInt() ? static_cast<double>(intValue) : floatValue;
  }

  /// Prints the value the way it would be written in a `.loom` file; floats
  /// use the shortest form that reads back exactly (e.g. `1e-06`, `0.5`).
  void print(llvm::raw_ostream &os) const;
  /// Returns `print` as a string, for diagnostics.
  std::string toString() const;
};

/// Returns the lowercase name of a value kind ("int", "float", "string", ...),
/// used in diagnostics.
llvm::StringRef stringifyKind(ConstValue::Kind kind);

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

/// Base class of all expressions. Use llvm::isa / dyn_cast on the subclasses.
class Expr {
public:
  enum class Kind {
    Int,
    Float,
    Bool,
    String,
    Name,
    List,
    Unary,
    Binary,
    Call,
    Index
  };

  Expr(Kind kind, Location loc) : kind(kind), loc(loc) {}
  virtual ~Expr() = default;

  Kind getKind() const { return kind; }
  /// Where the expression is reported: the literal or name itself, the
  /// operator of a unary/binary expression, the callee of a call, the `[` of
  /// a list or an index.
  const Location &getLoc() const { return loc; }

private:
  const Kind kind;
  Location loc;
};

using ExprPtr = std::unique_ptr<Expr>;

/// An integer literal such as `64`.
struct IntExpr : Expr {
  IntExpr(Location loc, int64_t value) : Expr(Kind::Int, loc), value(value) {}
  static bool classof(const Expr *e) { return e->getKind() == Kind::Int; }
  int64_t value;
};

/// A floating-point literal such as `1e-6` or `0.5`.
struct FloatExpr : Expr {
  FloatExpr(Location loc, double value)
      : Expr(Kind::Float, loc), value(value) {}
  static bool classof(const Expr *e) { return e->getKind() == Kind::Float; }
  double value;
};

/// `true` or `false`.
struct BoolExpr : Expr {
  BoolExpr(Location loc, bool value) : Expr(Kind::Bool, loc), value(value) {}
  static bool classof(const Expr *e) { return e->getKind() == Kind::Bool; }
  bool value;
};

/// A string literal; `value` has its escapes resolved.
struct StringExpr : Expr {
  StringExpr(Location loc, std::string value)
      : Expr(Kind::String, loc), value(std::move(value)) {}
  static bool classof(const Expr *e) { return e->getKind() == Kind::String; }
  std::string value;
};

/// A reference to a config, a value of the graph, a symbolic dim, a mask or a
/// mask index variable; what it is depends on scope (see docs/language.md).
struct NameExpr : Expr {
  NameExpr(Location loc, std::string name)
      : Expr(Kind::Name, loc), name(std::move(name)) {}
  static bool classof(const Expr *e) { return e->getKind() == Kind::Name; }
  std::string name;
};

/// `[a, b, ...]`: a list attribute, or a list of tensor operands when passed
/// positionally (variadic ops such as concat).
struct ListExpr : Expr {
  ListExpr(Location loc, std::vector<ExprPtr> elements)
      : Expr(Kind::List, loc), elements(std::move(elements)) {}
  static bool classof(const Expr *e) { return e->getKind() == Kind::List; }
  std::vector<ExprPtr> elements;
};

enum class UnaryOp { Neg, Not };

/// `-x` or `not x`.
struct UnaryExpr : Expr {
  UnaryExpr(Location loc, UnaryOp op, ExprPtr operand)
      : Expr(Kind::Unary, loc), op(op), operand(std::move(operand)) {}
  static bool classof(const Expr *e) { return e->getKind() == Kind::Unary; }
  UnaryOp op;
  ExprPtr operand;
};

enum class BinaryOp {
  Add,      // +
  Sub,      // -
  Mul,      // *
  Div,      // /  (true division, as in Python)
  FloorDiv, // //
  Mod,      // %  (sign of the divisor, as in Python)
  Pow,      // **
  MatMul,   // @
  Eq,       // ==
  Ne,       // !=
  Lt,       // <
  Le,       // <=
  Gt,       // >
  Ge,       // >=
  And,      // and
  Or,       // or
};

/// Returns the operator's spelling, e.g. "//" or "and".
llvm::StringRef stringifyBinaryOp(BinaryOp op);

/// `lhs op rhs`; the location is the operator's.
struct BinaryExpr : Expr {
  BinaryExpr(Location loc, BinaryOp op, ExprPtr lhs, ExprPtr rhs)
      : Expr(Kind::Binary, loc), op(op), lhs(std::move(lhs)),
        rhs(std::move(rhs)) {}
  static bool classof(const Expr *e) { return e->getKind() == Kind::Binary; }
  BinaryOp op;
  ExprPtr lhs, rhs;
};

/// `name=value` in a call: an attribute of an op, or `prefix=` of a call to a
/// def or graph.
struct KeywordArg {
  Ident key;
  ExprPtr value;
};

/// `callee(positional..., key=value...)`. The callee is either a def/graph of
/// the module or an op; the parser does not know which.
struct CallExpr : Expr {
  CallExpr(Location loc, std::string callee, std::vector<ExprPtr> args,
           std::vector<KeywordArg> kwargs)
      : Expr(Kind::Call, loc), callee(std::move(callee)), args(std::move(args)),
        kwargs(std::move(kwargs)) {}
  static bool classof(const Expr *e) { return e->getKind() == Kind::Call; }

  /// Returns the keyword argument named `key`, or null.
  const KeywordArg *findKeyword(llvm::StringRef key) const;

  std::string callee;
  /// Tensor operands, in order.
  std::vector<ExprPtr> args;
  /// Attributes, in source order; keys are unique.
  std::vector<KeywordArg> kwargs;
};

/// `base[i, j]`: element access, only inside a mask or score body.
struct IndexExpr : Expr {
  IndexExpr(Location loc, ExprPtr base, std::vector<ExprPtr> indices)
      : Expr(Kind::Index, loc), base(std::move(base)),
        indices(std::move(indices)) {}
  static bool classof(const Expr *e) { return e->getKind() == Kind::Index; }
  ExprPtr base;
  std::vector<ExprPtr> indices;
};

/// Returns where the text of `e` starts (the leftmost operand of a binary
/// expression, the base of an index), for diagnostics about the whole
/// expression.
Location getStartLoc(const Expr &e);

/// Prints `e` in source syntax with explicit parentheses only where needed;
/// used in dumps and diagnostics.
void printExpr(const Expr &e, llvm::raw_ostream &os);
/// Returns `printExpr` as a string.
std::string exprToString(const Expr &e);

//===----------------------------------------------------------------------===//
// Types and declarations
//===----------------------------------------------------------------------===//

/// `f32[B, dim]`, `i64` or `f32[]` (the last two are rank 0). Each dim is an
/// expression: an integer literal, a config expression, or a symbolic name.
struct TypeAST {
  DType dtype = DType::F32;
  Location loc;
  std::vector<ExprPtr> dims;

  unsigned getRank() const { return dims.size(); }
};

/// An input or output of a graph: `x: f32[B, dim]`.
struct ValueDecl {
  Ident ident;
  TypeAST type;
};

/// A top-level `config name = expr`. `value` holds the evaluated value after
/// parseModule (defaults) and again after applyConfigOverrides.
struct ConfigDecl {
  Ident ident;
  ExprPtr init;
  /// The kind of the value the file itself gives (before overrides); an
  /// override must be compatible with it.
  ConstValue::Kind declaredKind = ConstValue::Kind::None;
  ConstValue value;
  /// True when --define or --config replaced the value; `init` is then not
  /// evaluated any more.
  bool overridden = false;
};

//===----------------------------------------------------------------------===//
// Statements
//===----------------------------------------------------------------------===//

/// Base class of the statements of a graph body.
class Stmt {
public:
  enum class Kind { Param, State, Mask, Assign, If, Require };

  Stmt(Kind kind, Location loc) : kind(kind), loc(loc) {}
  virtual ~Stmt() = default;

  Kind getKind() const { return kind; }
  /// The first token of the statement (the keyword, or the first target).
  const Location &getLoc() const { return loc; }

private:
  const Kind kind;
  Location loc;
};

using StmtPtr = std::unique_ptr<Stmt>;

/// `param name: type = "binding"`: a weight read from the safetensors file.
struct ParamStmt : Stmt {
  ParamStmt(Location loc) : Stmt(Kind::Param, loc) {}
  static bool classof(const Stmt *s) { return s->getKind() == Kind::Param; }

  /// The name in the file before any prefix: the explicit binding if given,
  /// else the param's own name.
  llvm::StringRef getBindingName() const {
    return binding ? llvm::StringRef(*binding) : llvm::StringRef(ident.name);
  }

  Ident ident;
  TypeAST type;
  std::optional<std::string> binding;
  Location bindingLoc;
};

/// `state name: type`: a buffer owned by the runtime session. Reading the name
/// gives the value at call start; assigning it sets the value at call end.
struct StateStmt : Stmt {
  StateStmt(Location loc) : Stmt(Kind::State, loc) {}
  static bool classof(const Stmt *s) { return s->getKind() == Kind::State; }
  Ident ident;
  TypeAST type;
};

/// `mask name(b, h, i, j) = expr`: a boolean function of index variables,
/// passed to `attention` as `mask=name`; or, with `isScore`, `score name(b,
/// h, i, j, s) = expr`: the new score of a key, passed as `score=name`.
struct MaskStmt : Stmt {
  MaskStmt(Location loc) : Stmt(Kind::Mask, loc) {}
  static bool classof(const Stmt *s) { return s->getKind() == Kind::Mask; }
  /// The keyword that declares it: "mask" or "score".
  llvm::StringRef getKeyword() const { return isScore ? "score" : "mask"; }
  /// The number of parameters the declaration must have.
  size_t getExpectedArity() const { return isScore ? 5 : 4; }

  bool isScore = false;
  Ident ident;
  std::vector<Ident> indices;
  ExprPtr body;
};

/// `a = expr` or `a, b = call(...)`.
struct AssignStmt : Stmt {
  AssignStmt(Location loc) : Stmt(Kind::Assign, loc) {}
  static bool classof(const Stmt *s) { return s->getKind() == Kind::Assign; }
  std::vector<Ident> targets;
  ExprPtr value;
};

/// `if cond { ... } else if cond { ... } else { ... }`: a compile-time
/// conditional. The conditions are config expressions; only the statements of
/// the first branch whose condition is true (or of the `else` branch) belong
/// to the graph, as if written in its place.
struct IfStmt : Stmt {
  IfStmt(Location loc) : Stmt(Kind::If, loc) {}
  static bool classof(const Stmt *s) { return s->getKind() == Kind::If; }

  struct Branch {
    /// Null for the final `else`.
    ExprPtr condition;
    /// The `if` (or `else`) keyword that starts the branch.
    Location loc;
    std::vector<StmtPtr> body;
  };
  std::vector<Branch> branches;
};

/// `require a <= b, c >= 0`: preconditions checked on every call, before the
/// graph runs (see docs/language.md, "Run-time requirements").
struct RequireStmt : Stmt {
  RequireStmt(Location loc) : Stmt(Kind::Require, loc) {}
  static bool classof(const Stmt *s) { return s->getKind() == Kind::Require; }

  struct Condition {
    ExprPtr expr;
    /// The source text of the condition, whitespace runs shown as one space
    /// and comments dropped.
    std::string text;
  };
  std::vector<Condition> conditions;
};

//===----------------------------------------------------------------------===//
// Graphs and the module
//===----------------------------------------------------------------------===//

/// A `graph` (entry point) or a `def` (reusable sub-graph, callable only).
struct GraphAST {
  enum class Kind { Graph, Def };

  Kind kind = Kind::Graph;
  Ident ident;
  std::vector<ValueDecl> inputs;
  std::vector<ValueDecl> outputs;
  /// `prefix "layers.3.attn."`: prepended to every param binding in this
  /// graph (and, through calls, in the defs it calls).
  std::optional<std::string> prefix;
  /// `prefix param_prefix`: the prefix is the value of a string config
  /// (getGraphPrefix in Config.h resolves either form).
  std::optional<Ident> prefixConfig;
  Location prefixLoc;
  std::vector<StmtPtr> body;

  bool isEntryPoint() const { return kind == Kind::Graph; }
  llvm::StringRef getName() const { return ident.name; }
};

/// A whole `.loom` file.
struct ModuleAST {
  /// The buffer identifier of the parsed file, for locations.
  std::string filename;
  std::vector<ConfigDecl> configs;
  /// Graphs and defs in source order.
  std::vector<std::unique_ptr<GraphAST>> graphs;

  const ConfigDecl *findConfig(llvm::StringRef name) const;
  ConfigDecl *findConfig(llvm::StringRef name);
  const GraphAST *findGraph(llvm::StringRef name) const;
};

/// Prints the module as an indented tree (`loom-compile --emit=ast`).
void dumpAST(const ModuleAST &m, llvm::raw_ostream &os);

} // namespace frontend
} // namespace loom

#endif // LOOM_FRONTEND_AST_H
