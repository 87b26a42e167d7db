//===- Parser.cpp - Parser of the .loom language ----------------*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file implements a recursive-descent parser over the token list made by
// the lexer. It stops at the first error, which it reports precisely. Operator
// precedence follows Python, from loosest to tightest: `or`, `and`, `not`,
// comparisons (not chained), `+ -`, `* / // % @`, unary `-`, `**`, then
// calls, indexing and atoms.
//
//===----------------------------------------------------------------------===//

#include "frontend/Parser.h"

#include "frontend/Config.h"
#include "frontend/Lexer.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/SourceMgr.h"

using namespace loom::frontend;

namespace {
class Parser {
public:
  Parser(llvm::SourceMgr &sm, std::vector<Token> tokens)
      : sm(sm), tokens(std::move(tokens)) {}

  std::unique_ptr<ModuleAST> parseModule();

private:
  //===--------------------------------------------------------------------===//
  // Token helpers
  //===--------------------------------------------------------------------===//

  const Token &cur() const { return tokens[index]; }
  const Token &peekToken(size_t ahead = 1) const {
    return tokens[std::min(index + ahead, tokens.size() - 1)];
  }
  bool is(TokenKind kind) const { return cur().is(kind); }
  void consume() {
    if (!is(TokenKind::Eof))
      ++index;
  }
  bool consumeIf(TokenKind kind) {
    if (!is(kind))
      return false;
    consume();
    return true;
  }
  void skipNewlines() {
    while (is(TokenKind::Newline))
      consume();
  }

  bool error(const Location &loc, const llvm::Twine &msg) {
    sm.PrintMessage(loc.ptr, llvm::SourceMgr::DK_Error, msg);
    return false;
  }
  /// Describes the current token for "expected X, found Y" messages.
  std::string found() const {
    const Token &t = cur();
    if (t.is(TokenKind::Eof) || t.is(TokenKind::Newline))
      return describeTokenKind(t.kind).str();
    return "'" + t.spelling.str() + "'";
  }
  bool expect(TokenKind kind, llvm::StringRef context) {
    if (consumeIf(kind))
      return true;
    return error(cur().loc, "expected " + describeTokenKind(kind) + " " +
                                context + ", found " + found());
  }
  bool parseIdent(Ident &ident, llvm::StringRef what) {
    if (!is(TokenKind::Identifier)) {
      if (cur().kind >= TokenKind::KwConfig)
        return error(cur().loc, "expected " + what + ", found keyword " +
                                    found() + " (it is reserved)");
      return error(cur().loc, "expected " + what + ", found " + found());
    }
    ident.name = cur().spelling.str();
    ident.loc = cur().loc;
    consume();
    return true;
  }
  /// A statement ends at a newline, or just before a `}` on the same line.
  bool expectEndOfStatement() {
    if (is(TokenKind::RBrace))
      return true;
    if (consumeIf(TokenKind::Newline) || is(TokenKind::Eof))
      return true;
    return error(cur().loc,
                 "expected end of line after statement, found " + found());
  }

  //===--------------------------------------------------------------------===//
  // Grammar
  //===--------------------------------------------------------------------===//

  bool parseConfigDecl(ModuleAST &m);
  std::unique_ptr<GraphAST> parseGraph();
  bool parseValueDeclList(std::vector<ValueDecl> &decls, llvm::StringRef what);
  bool parseType(TypeAST &type);
  StmtPtr parseStatement();
  StmtPtr parseParamOrState(bool isParam);
  StmtPtr parseMask();
  StmtPtr parseAssign();
  StmtPtr parseIf();
  StmtPtr parseRequire();
  /// Parses statements up to the closing '}' (consumed); `what` names the
  /// block in the error at end of file.
  bool parseBlock(std::vector<StmtPtr> &body, llvm::StringRef what);
  /// The source text of tokens [begin, end).
  std::string sourceText(size_t begin, size_t end) const;
  /// Nesting of `if` blocks, limited like expressions.
  unsigned blockDepth = 0;

  ExprPtr parseExpr() { return parseOr(); }
  /// Counts the nesting of recursive expression rules; deeper input is an
  /// error rather than a stack overflow.
  bool enterNested();
  unsigned depth = 0;
  static constexpr unsigned kMaxDepth = 256;
  ExprPtr parseOr();
  ExprPtr parseAnd();
  ExprPtr parseNot();
  ExprPtr parseComparison();
  ExprPtr parseAdditive();
  ExprPtr parseMultiplicative();
  ExprPtr parseUnary();
  ExprPtr parsePower();
  ExprPtr parsePostfix();
  ExprPtr parsePrimary();
  ExprPtr parseCall(Ident callee);
  bool parseExprList(TokenKind close, std::vector<ExprPtr> &out,
                     llvm::StringRef context);

  llvm::SourceMgr &sm;
  std::vector<Token> tokens;
  size_t index = 0;
};
} // namespace

std::unique_ptr<ModuleAST> Parser::parseModule() {
  auto m = std::make_unique<ModuleAST>();
  m->filename =
      sm.getMemoryBuffer(sm.getMainFileID())->getBufferIdentifier().str();
  while (true) {
    skipNewlines();
    if (is(TokenKind::Eof))
      break;
    if (is(TokenKind::KwConfig)) {
      if (!parseConfigDecl(*m))
        return nullptr;
      continue;
    }
    if (is(TokenKind::KwGraph) || is(TokenKind::KwDef)) {
      std::unique_ptr<GraphAST> g = parseGraph();
      if (!g)
        return nullptr;
      m->graphs.push_back(std::move(g));
      continue;
    }
    error(cur().loc,
          "expected 'config', 'graph' or 'def' at top level, found " + found());
    return nullptr;
  }
  return m;
}

bool Parser::parseConfigDecl(ModuleAST &m) {
  consume(); // 'config'
  do {
    skipNewlines();
    ConfigDecl decl;
    if (!parseIdent(decl.ident, "config name") ||
        !expect(TokenKind::Equal, "after config name"))
      return false;
    decl.init = parseExpr();
    if (!decl.init)
      return false;
    m.configs.push_back(std::move(decl));
  } while (consumeIf(TokenKind::Comma));
  return expectEndOfStatement();
}

std::unique_ptr<GraphAST> Parser::parseGraph() {
  auto g = std::make_unique<GraphAST>();
  g->kind = is(TokenKind::KwDef) ? GraphAST::Kind::Def : GraphAST::Kind::Graph;
  llvm::StringRef what = g->isEntryPoint() ? "graph" : "def";
  consume();
  if (!parseIdent(g->ident, (what + " name").str()) ||
      !expect(TokenKind::LParen, "after " + (what + " name").str()) ||
      !parseValueDeclList(g->inputs, "input"))
    return nullptr;
  skipNewlines();
  if (consumeIf(TokenKind::Arrow)) {
    skipNewlines();
    if (!expect(TokenKind::LParen, "to start the output list") ||
        !parseValueDeclList(g->outputs, "output"))
      return nullptr;
    skipNewlines();
  }
  if (cur().isIdentifier("prefix")) {
    consume();
    g->prefixLoc = cur().loc;
    if (is(TokenKind::String)) {
      g->prefix = cur().stringValue;
    } else if (is(TokenKind::Identifier)) {
      g->prefixConfig = Ident{cur().spelling.str(), cur().loc};
    } else {
      error(cur().loc,
            "expected a string or a string config after 'prefix', found " +
                found());
      return nullptr;
    }
    consume();
    skipNewlines();
  }
  std::string name = (what + " '" + g->ident.name + "'").str();
  if (!expect(TokenKind::LBrace, "to start the body of " + name) ||
      !parseBlock(g->body, name))
    return nullptr;
  if (!is(TokenKind::Newline) && !is(TokenKind::Eof)) {
    error(cur().loc, "expected end of line after '}', found " + found());
    return nullptr;
  }
  return g;
}

bool Parser::parseBlock(std::vector<StmtPtr> &body, llvm::StringRef what) {
  // The '{' has been consumed.
  while (true) {
    skipNewlines();
    if (consumeIf(TokenKind::RBrace))
      return true;
    if (is(TokenKind::Eof))
      return error(cur().loc,
                   "expected '}' to end " + what + ", found end of file");
    StmtPtr stmt = parseStatement();
    if (!stmt || !expectEndOfStatement())
      return false;
    body.push_back(std::move(stmt));
  }
}

bool Parser::parseValueDeclList(std::vector<ValueDecl> &decls,
                                llvm::StringRef what) {
  // The '(' has been consumed. A trailing comma is allowed so that long
  // signatures can be written one declaration per line.
  while (!is(TokenKind::RParen)) {
    ValueDecl decl;
    if (!parseIdent(decl.ident, (what + " name").str()) ||
        !expect(TokenKind::Colon,
                ("after " + what + " '" + decl.ident.name + "'").str()) ||
        !parseType(decl.type))
      return false;
    decls.push_back(std::move(decl));
    if (!consumeIf(TokenKind::Comma))
      break;
  }
  return expect(TokenKind::RParen, ("to end the " + what + " list").str());
}

bool Parser::parseType(TypeAST &type) {
  if (!is(TokenKind::Identifier))
    return error(cur().loc,
                 "expected a type such as 'f32[B, 64]', found " + found());
  type.loc = cur().loc;
  std::optional<DType> dtype = parseDType(cur().spelling);
  if (!dtype)
    return error(cur().loc, "unknown dtype '" + cur().spelling +
                                "' (expected f32, f64, f16, bf16, i32, i64 "
                                "or bool)");
  type.dtype = *dtype;
  consume();
  if (consumeIf(TokenKind::LBracket))
    return parseExprList(TokenKind::RBracket, type.dims, "in the dim list");
  return true;
}

StmtPtr Parser::parseStatement() {
  // `param`, `state`, `mask` and `score` start a declaration only when a
  // name follows, so `mask = f(x)` remains an ordinary assignment.
  bool nameFollows = peekToken().is(TokenKind::Identifier);
  if (cur().isIdentifier("param") && nameFollows)
    return parseParamOrState(/*isParam=*/true);
  if (cur().isIdentifier("state") && nameFollows)
    return parseParamOrState(/*isParam=*/false);
  if ((cur().isIdentifier("mask") || cur().isIdentifier("score")) &&
      nameFollows)
    return parseMask();
  // An assignment continues its first name with '=' or ','; anything else
  // after `if` or `require` starts that statement, so a value named `if` or
  // `require` can still be assigned.
  bool assignmentFollows =
      peekToken().is(TokenKind::Equal) || peekToken().is(TokenKind::Comma);
  if (cur().isIdentifier("if") && !assignmentFollows)
    return parseIf();
  if (cur().isIdentifier("require") && !assignmentFollows)
    return parseRequire();
  if (cur().isIdentifier("else") && !assignmentFollows) {
    error(cur().loc, "'else' without a preceding 'if' block");
    return nullptr;
  }
  if (is(TokenKind::KwConfig)) {
    error(cur().loc, "config declarations are only allowed at top level");
    return nullptr;
  }
  return parseAssign();
}

StmtPtr Parser::parseParamOrState(bool isParam) {
  Location loc = cur().loc;
  consume();
  Ident ident;
  TypeAST type;
  llvm::StringRef what = isParam ? "param" : "state";
  if (!parseIdent(ident, (what + " name").str()) ||
      !expect(TokenKind::Colon,
              ("after " + what + " '" + ident.name + "'").str()) ||
      !parseType(type))
    return nullptr;
  if (!isParam) {
    auto s = std::make_unique<StateStmt>(loc);
    s->ident = std::move(ident);
    s->type = std::move(type);
    if (is(TokenKind::Equal)) {
      error(cur().loc, "a state has no initializer; its value comes from the "
                       "session");
      return nullptr;
    }
    return s;
  }
  auto p = std::make_unique<ParamStmt>(loc);
  p->ident = std::move(ident);
  p->type = std::move(type);
  if (consumeIf(TokenKind::Equal)) {
    if (!is(TokenKind::String)) {
      error(cur().loc, "expected a string naming the tensor in the "
                       "safetensors file, found " +
                           found());
      return nullptr;
    }
    if (cur().stringValue.empty()) {
      error(cur().loc, "empty binding for param '" + p->ident.name + "'");
      return nullptr;
    }
    p->binding = cur().stringValue;
    p->bindingLoc = cur().loc;
    consume();
  }
  return p;
}

StmtPtr Parser::parseIf() {
  if (++blockDepth > kMaxDepth) {
    error(cur().loc, "'if' statements nested more than " +
                         llvm::Twine(kMaxDepth) + " levels deep");
    return nullptr;
  }
  auto stmt = std::make_unique<IfStmt>(cur().loc);
  Location branchLoc = cur().loc;
  consume(); // 'if'
  while (true) {
    IfStmt::Branch branch;
    branch.loc = branchLoc;
    if (is(TokenKind::LBrace)) {
      error(cur().loc, "expected a condition after 'if', found '{'");
      return nullptr;
    }
    branch.condition = parseExpr();
    if (!branch.condition)
      return nullptr;
    skipNewlines();
    if (!expect(TokenKind::LBrace, "after the condition of 'if'") ||
        !parseBlock(branch.body, "the 'if' block"))
      return nullptr;
    stmt->branches.push_back(std::move(branch));

    // `else` may follow the '}' on the same line or on a later one.
    size_t save = index;
    skipNewlines();
    if (!cur().isIdentifier("else") || !(peekToken().is(TokenKind::LBrace) ||
                                         peekToken().isIdentifier("if"))) {
      index = save;
      break;
    }
    branchLoc = cur().loc;
    consume(); // 'else'
    if (consumeIf(TokenKind::LBrace)) {
      IfStmt::Branch last;
      last.loc = branchLoc;
      if (!parseBlock(last.body, "the 'else' block"))
        return nullptr;
      stmt->branches.push_back(std::move(last));
      break;
    }
    consume(); // 'if' of `else if`
  }
  --blockDepth;
  return stmt;
}

StmtPtr Parser::parseRequire() {
  auto stmt = std::make_unique<RequireStmt>(cur().loc);
  consume(); // 'require'
  do {
    size_t first = index;
    RequireStmt::Condition condition;
    condition.expr = parseExpr();
    if (!condition.expr)
      return nullptr;
    condition.text = sourceText(first, index);
    stmt->conditions.push_back(std::move(condition));
  } while (consumeIf(TokenKind::Comma));
  return stmt;
}

std::string Parser::sourceText(size_t begin, size_t end) const {
  // Tokens are joined as written, with one space wherever the source has
  // whitespace, a line break or a comment between them.
  std::string text;
  for (size_t i = begin; i < end; ++i) {
    if (i > begin && tokens[i - 1].spelling.end() != tokens[i].spelling.begin())
      text += ' ';
    text += tokens[i].spelling.str();
  }
  return text;
}

StmtPtr Parser::parseMask() {
  auto mask = std::make_unique<MaskStmt>(cur().loc);
  mask->isScore = cur().isIdentifier("score");
  consume();
  std::string what = mask->getKeyword().str();
  if (!parseIdent(mask->ident, what + " name") ||
      !expect(TokenKind::LParen, "after " + what + " name"))
    return nullptr;
  while (!is(TokenKind::RParen)) {
    Ident index;
    if (!parseIdent(index, "index variable name"))
      return nullptr;
    mask->indices.push_back(std::move(index));
    if (!consumeIf(TokenKind::Comma))
      break;
  }
  if (!expect(TokenKind::RParen, "to end the index variables") ||
      !expect(TokenKind::Equal, "after the " + what + "'s index variables"))
    return nullptr;
  mask->body = parseExpr();
  if (!mask->body)
    return nullptr;
  return mask;
}

StmtPtr Parser::parseAssign() {
  auto assign = std::make_unique<AssignStmt>(cur().loc);
  do {
    Ident target;
    if (!parseIdent(target, "a statement (an assignment, 'param', 'state' "
                            "or 'mask')"))
      return nullptr;
    assign->targets.push_back(std::move(target));
  } while (consumeIf(TokenKind::Comma));
  if (!expect(TokenKind::Equal, assign->targets.size() > 1
                                    ? "after the assigned names"
                                    : "after the assigned name"))
    return nullptr;
  assign->value = parseExpr();
  if (!assign->value)
    return nullptr;
  return assign;
}

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

ExprPtr Parser::parseOr() {
  ExprPtr lhs = parseAnd();
  while (lhs && is(TokenKind::KwOr)) {
    Location loc = cur().loc;
    consume();
    ExprPtr rhs = parseAnd();
    if (!rhs)
      return nullptr;
    lhs = std::make_unique<BinaryExpr>(loc, BinaryOp::Or, std::move(lhs),
                                       std::move(rhs));
  }
  return lhs;
}

ExprPtr Parser::parseAnd() {
  ExprPtr lhs = parseNot();
  while (lhs && is(TokenKind::KwAnd)) {
    Location loc = cur().loc;
    consume();
    ExprPtr rhs = parseNot();
    if (!rhs)
      return nullptr;
    lhs = std::make_unique<BinaryExpr>(loc, BinaryOp::And, std::move(lhs),
                                       std::move(rhs));
  }
  return lhs;
}

bool Parser::enterNested() {
  if (++depth <= kMaxDepth)
    return true;
  error(cur().loc, "expression nested more than " + llvm::Twine(kMaxDepth) +
                       " levels deep");
  return false;
}

namespace {
/// Leaves one level of expression nesting on scope exit.
struct NestingScope {
  unsigned &depth;
  ~NestingScope() { --depth; }
};
} // namespace

ExprPtr Parser::parseNot() {
  NestingScope scope{depth};
  if (!enterNested())
    return nullptr;
  if (!is(TokenKind::KwNot))
    return parseComparison();
  Location loc = cur().loc;
  consume();
  ExprPtr operand = parseNot();
  if (!operand)
    return nullptr;
  return std::make_unique<UnaryExpr>(loc, UnaryOp::Not, std::move(operand));
}

static std::optional<BinaryOp> comparisonOp(TokenKind kind) {
  switch (kind) {
  case TokenKind::EqEq:
    return BinaryOp::Eq;
  case TokenKind::NotEq:
    return BinaryOp::Ne;
  case TokenKind::Less:
    return BinaryOp::Lt;
  case TokenKind::LessEq:
    return BinaryOp::Le;
  case TokenKind::Greater:
    return BinaryOp::Gt;
  case TokenKind::GreaterEq:
    return BinaryOp::Ge;
  default:
    return std::nullopt;
  }
}

ExprPtr Parser::parseComparison() {
  ExprPtr lhs = parseAdditive();
  if (!lhs)
    return nullptr;
  std::optional<BinaryOp> op = comparisonOp(cur().kind);
  if (!op)
    return lhs;
  Location loc = cur().loc;
  consume();
  ExprPtr rhs = parseAdditive();
  if (!rhs)
    return nullptr;
  // Python's chained `a < b < c` means `a < b and b < c`; accepting it with
  // C semantics would silently differ, so it is refused.
  if (comparisonOp(cur().kind)) {
    error(cur().loc, "chained comparisons are not supported; use 'and'");
    return nullptr;
  }
  return std::make_unique<BinaryExpr>(loc, *op, std::move(lhs), std::move(rhs));
}

ExprPtr Parser::parseAdditive() {
  ExprPtr lhs = parseMultiplicative();
  while (lhs && (is(TokenKind::Plus) || is(TokenKind::Minus))) {
    BinaryOp op = is(TokenKind::Plus) ? BinaryOp::Add : BinaryOp::Sub;
    Location loc = cur().loc;
    consume();
    ExprPtr rhs = parseMultiplicative();
    if (!rhs)
      return nullptr;
    lhs = std::make_unique<BinaryExpr>(loc, op, std::move(lhs), std::move(rhs));
  }
  return lhs;
}

ExprPtr Parser::parseMultiplicative() {
  ExprPtr lhs = parseUnary();
  while (lhs) {
    BinaryOp op;
    switch (cur().kind) {
    case TokenKind::Star:
      op = BinaryOp::Mul;
      break;
    case TokenKind::Slash:
      op = BinaryOp::Div;
      break;
    case TokenKind::SlashSlash:
      op = BinaryOp::FloorDiv;
      break;
    case TokenKind::Percent:
      op = BinaryOp::Mod;
      break;
    case TokenKind::At:
      op = BinaryOp::MatMul;
      break;
    default:
      return lhs;
    }
    Location loc = cur().loc;
    consume();
    ExprPtr rhs = parseUnary();
    if (!rhs)
      return nullptr;
    lhs = std::make_unique<BinaryExpr>(loc, op, std::move(lhs), std::move(rhs));
  }
  return lhs;
}

ExprPtr Parser::parseUnary() {
  NestingScope scope{depth};
  if (!enterNested())
    return nullptr;
  if (!is(TokenKind::Minus))
    return parsePower();
  Location loc = cur().loc;
  consume();
  ExprPtr operand = parseUnary();
  if (!operand)
    return nullptr;
  return std::make_unique<UnaryExpr>(loc, UnaryOp::Neg, std::move(operand));
}

ExprPtr Parser::parsePower() {
  ExprPtr base = parsePostfix();
  if (!base || !is(TokenKind::StarStar))
    return base;
  Location loc = cur().loc;
  consume();
  // Right-associative, and the exponent may be negated: 2 ** -1.
  ExprPtr exponent = parseUnary();
  if (!exponent)
    return nullptr;
  return std::make_unique<BinaryExpr>(loc, BinaryOp::Pow, std::move(base),
                                      std::move(exponent));
}

ExprPtr Parser::parsePostfix() {
  ExprPtr e = parsePrimary();
  while (e && is(TokenKind::LBracket)) {
    Location loc = cur().loc;
    consume();
    std::vector<ExprPtr> indices;
    if (!parseExprList(TokenKind::RBracket, indices, "in the index list"))
      return nullptr;
    if (indices.empty()) {
      error(loc, "expected at least one index");
      return nullptr;
    }
    e = std::make_unique<IndexExpr>(loc, std::move(e), std::move(indices));
  }
  return e;
}

ExprPtr Parser::parsePrimary() {
  const Token &t = cur();
  Location loc = t.loc;
  switch (t.kind) {
  case TokenKind::Integer: {
    int64_t value;
    if (t.spelling.getAsInteger(10, value)) {
      error(loc, "integer literal '" + t.spelling + "' is too large");
      return nullptr;
    }
    consume();
    return std::make_unique<IntExpr>(loc, value);
  }
  case TokenKind::Float: {
    double value;
    if (t.spelling.getAsDouble(value)) {
      error(loc, "invalid float literal '" + t.spelling + "'");
      return nullptr;
    }
    consume();
    return std::make_unique<FloatExpr>(loc, value);
  }
  case TokenKind::String: {
    std::string value = t.stringValue;
    consume();
    return std::make_unique<StringExpr>(loc, std::move(value));
  }
  case TokenKind::KwTrue:
  case TokenKind::KwFalse: {
    bool value = t.is(TokenKind::KwTrue);
    consume();
    return std::make_unique<BoolExpr>(loc, value);
  }
  case TokenKind::Identifier: {
    Ident name{t.spelling.str(), loc};
    consume();
    if (is(TokenKind::LParen))
      return parseCall(std::move(name));
    return std::make_unique<NameExpr>(loc, std::move(name.name));
  }
  case TokenKind::LParen: {
    consume();
    ExprPtr inner = parseExpr();
    if (!inner || !expect(TokenKind::RParen, "to close '('"))
      return nullptr;
    return inner;
  }
  case TokenKind::LBracket: {
    consume();
    std::vector<ExprPtr> elements;
    if (!parseExprList(TokenKind::RBracket, elements, "in the list"))
      return nullptr;
    return std::make_unique<ListExpr>(loc, std::move(elements));
  }
  default:
    error(loc, "expected an expression, found " + found());
    return nullptr;
  }
}

ExprPtr Parser::parseCall(Ident callee) {
  consume(); // '('
  std::vector<ExprPtr> args;
  std::vector<KeywordArg> kwargs;
  llvm::StringSet<> keys;
  while (!is(TokenKind::RParen)) {
    if (is(TokenKind::Identifier) && peekToken().is(TokenKind::Equal)) {
      KeywordArg kw;
      kw.key = Ident{cur().spelling.str(), cur().loc};
      consume();
      consume(); // '='
      if (!keys.insert(kw.key.name).second) {
        error(kw.key.loc, "duplicate keyword argument '" + kw.key.name +
                              "' in call to '" + callee.name + "'");
        return nullptr;
      }
      kw.value = parseExpr();
      if (!kw.value)
        return nullptr;
      kwargs.push_back(std::move(kw));
    } else {
      if (!kwargs.empty()) {
        error(cur().loc, "positional argument after keyword argument in call "
                         "to '" +
                             callee.name + "'");
        return nullptr;
      }
      ExprPtr arg = parseExpr();
      if (!arg)
        return nullptr;
      args.push_back(std::move(arg));
    }
    if (!consumeIf(TokenKind::Comma))
      break;
  }
  if (!expect(TokenKind::RParen,
              "to end the arguments of '" + callee.name + "'"))
    return nullptr;
  return std::make_unique<CallExpr>(callee.loc, std::move(callee.name),
                                    std::move(args), std::move(kwargs));
}

bool Parser::parseExprList(TokenKind close, std::vector<ExprPtr> &out,
                           llvm::StringRef context) {
  // The opening bracket has been consumed; a trailing comma is allowed.
  while (!is(close)) {
    ExprPtr e = parseExpr();
    if (!e)
      return false;
    out.push_back(std::move(e));
    if (!consumeIf(TokenKind::Comma))
      break;
  }
  if (consumeIf(close))
    return true;
  return error(cur().loc, "expected ',' or " + describeTokenKind(close) + " " +
                              context + ", found " + found());
}

std::unique_ptr<ModuleAST> loom::frontend::parseModule(llvm::SourceMgr &sm) {
  std::vector<Token> tokens;
  if (!lexBuffer(sm, sm.getMainFileID(), tokens))
    return nullptr;
  Parser parser(sm, std::move(tokens));
  std::unique_ptr<ModuleAST> m = parser.parseModule();
  if (!m || !evaluateConfigs(*m, sm))
    return nullptr;
  return m;
}
