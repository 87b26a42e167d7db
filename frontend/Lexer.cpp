//===- Lexer.cpp - Tokenizer of the .loom language --------------*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file implements the `.loom` lexer: identifiers, keywords, numbers,
// strings, operators, `#` comments, and Newline tokens at bracket depth 0.
//
//===----------------------------------------------------------------------===//

#include "frontend/Lexer.h"

#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/SourceMgr.h"

#include <cctype>

using namespace loom::frontend;

llvm::StringRef loom::frontend::describeTokenKind(TokenKind kind) {
  switch (kind) {
  case TokenKind::Eof:
    return "end of file";
  case TokenKind::Newline:
    return "end of line";
  case TokenKind::Identifier:
    return "identifier";
  case TokenKind::Integer:
    return "integer";
  case TokenKind::Float:
    return "number";
  case TokenKind::String:
    return "string";
  case TokenKind::LParen:
    return "'('";
  case TokenKind::RParen:
    return "')'";
  case TokenKind::LBracket:
    return "'['";
  case TokenKind::RBracket:
    return "']'";
  case TokenKind::LBrace:
    return "'{'";
  case TokenKind::RBrace:
    return "'}'";
  case TokenKind::Comma:
    return "','";
  case TokenKind::Colon:
    return "':'";
  case TokenKind::Equal:
    return "'='";
  case TokenKind::Arrow:
    return "'->'";
  case TokenKind::Plus:
    return "'+'";
  case TokenKind::Minus:
    return "'-'";
  case TokenKind::Star:
    return "'*'";
  case TokenKind::StarStar:
    return "'**'";
  case TokenKind::Slash:
    return "'/'";
  case TokenKind::SlashSlash:
    return "'//'";
  case TokenKind::Percent:
    return "'%'";
  case TokenKind::At:
    return "'@'";
  case TokenKind::EqEq:
    return "'=='";
  case TokenKind::NotEq:
    return "'!='";
  case TokenKind::Less:
    return "'<'";
  case TokenKind::LessEq:
    return "'<='";
  case TokenKind::Greater:
    return "'>'";
  case TokenKind::GreaterEq:
    return "'>='";
  case TokenKind::KwConfig:
    return "'config'";
  case TokenKind::KwGraph:
    return "'graph'";
  case TokenKind::KwDef:
    return "'def'";
  case TokenKind::KwTrue:
    return "'true'";
  case TokenKind::KwFalse:
    return "'false'";
  case TokenKind::KwAnd:
    return "'and'";
  case TokenKind::KwOr:
    return "'or'";
  case TokenKind::KwNot:
    return "'not'";
  }
  return "token";
}

namespace {
/// Scans one buffer. Line and column are tracked while scanning so that
/// tokens carry them without SourceMgr's line-table lookups.
class Lexer {
public:
  Lexer(llvm::SourceMgr &sm, unsigned bufferId)
      : sm(sm), buffer(sm.getMemoryBuffer(bufferId)->getBuffer()) {}

  bool run(std::vector<Token> &tokens);

private:
  char peek(size_t ahead = 0) const {
    return pos + ahead < buffer.size() ? buffer[pos + ahead] : '\0';
  }
  void advance() {
    if (buffer[pos] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
    ++pos;
  }
  Location here() const {
    return Location{llvm::SMLoc::getFromPointer(buffer.data() + pos), line,
                    col};
  }
  bool error(const Location &loc, const llvm::Twine &msg) {
    sm.PrintMessage(loc.ptr, llvm::SourceMgr::DK_Error, msg);
    return false;
  }
  bool lexNumber(Token &tok);
  bool lexString(Token &tok);

  llvm::SourceMgr &sm;
  llvm::StringRef buffer;
  size_t pos = 0;
  unsigned line = 1, col = 1;
};
} // namespace

bool Lexer::lexNumber(Token &tok) {
  size_t start = pos;
  bool isFloat = false;
  while (std::isdigit(static_cast<unsigned char>(peek())))
    advance();
  if (peek() == '.' && std::isdigit(static_cast<unsigned char>(peek(1)))) {
    isFloat = true;
    advance();
    while (std::isdigit(static_cast<unsigned char>(peek())))
      advance();
  } else if (peek() == '.' && pos > start) {
    // `1.` is a float, as in Python.
    isFloat = true;
    advance();
  }
  if (peek() == 'e' || peek() == 'E') {
    size_t save = pos;
    unsigned saveCol = col;
    advance();
    if (peek() == '+' || peek() == '-')
      advance();
    if (!std::isdigit(static_cast<unsigned char>(peek()))) {
      pos = save;
      col = saveCol;
    } else {
      isFloat = true;
      while (std::isdigit(static_cast<unsigned char>(peek())))
        advance();
    }
  }
  tok.spelling = buffer.slice(start, pos);
  // `12abc` is almost certainly a typo; refuse it instead of lexing `12 abc`.
  if (std::isalnum(static_cast<unsigned char>(peek())) || peek() == '_') {
    while (std::isalnum(static_cast<unsigned char>(peek())) || peek() == '_')
      advance();
    return error(tok.loc, "invalid number '" + buffer.slice(start, pos) + "'");
  }
  tok.kind = isFloat ? TokenKind::Float : TokenKind::Integer;
  return true;
}

bool Lexer::lexString(Token &tok) {
  size_t start = pos;
  advance(); // opening quote
  std::string value;
  while (true) {
    char c = peek();
    if (pos >= buffer.size() || c == '\n')
      return error(tok.loc, "unterminated string");
    if (c == '"') {
      advance();
      break;
    }
    if (c == '\\') {
      Location escLoc = here();
      advance();
      char e = peek();
      switch (e) {
      case '"':
      case '\\':
        value.push_back(e);
        break;
      case 'n':
        value.push_back('\n');
        break;
      case 't':
        value.push_back('\t');
        break;
      default:
        return error(escLoc, llvm::Twine("unknown escape sequence '\\") +
                                 llvm::StringRef(&e, 1) + "'");
      }
      advance();
      continue;
    }
    value.push_back(c);
    advance();
  }
  tok.kind = TokenKind::String;
  tok.spelling = buffer.slice(start, pos);
  tok.stringValue = std::move(value);
  return true;
}

bool Lexer::run(std::vector<Token> &tokens) {
  // Depth of ( and [ nesting: newlines inside them are insignificant.
  int depth = 0;
  auto push = [&](Token tok) { tokens.push_back(std::move(tok)); };
  while (pos < buffer.size()) {
    char c = peek();
    if (c == '#') {
      while (pos < buffer.size() && peek() != '\n')
        advance();
      continue;
    }
    if (c == '\n') {
      if (depth == 0 && !tokens.empty() &&
          !tokens.back().is(TokenKind::Newline)) {
        Token tok;
        tok.kind = TokenKind::Newline;
        tok.loc = here();
        tok.spelling = buffer.slice(pos, pos + 1);
        push(std::move(tok));
      }
      advance();
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r') {
      advance();
      continue;
    }

    Token tok;
    tok.loc = here();
    size_t start = pos;
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      while (std::isalnum(static_cast<unsigned char>(peek())) || peek() == '_')
        advance();
      tok.spelling = buffer.slice(start, pos);
      tok.kind = llvm::StringSwitch<TokenKind>(tok.spelling)
                     .Case("config", TokenKind::KwConfig)
                     .Case("graph", TokenKind::KwGraph)
                     .Case("def", TokenKind::KwDef)
                     .Case("true", TokenKind::KwTrue)
                     .Case("false", TokenKind::KwFalse)
                     .Case("and", TokenKind::KwAnd)
                     .Case("or", TokenKind::KwOr)
                     .Case("not", TokenKind::KwNot)
                     .Default(TokenKind::Identifier);
      push(std::move(tok));
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '.' && std::isdigit(static_cast<unsigned char>(peek(1))))) {
      if (!lexNumber(tok))
        return false;
      push(std::move(tok));
      continue;
    }
    if (c == '"') {
      if (!lexString(tok))
        return false;
      push(std::move(tok));
      continue;
    }

    // Operators and punctuation: longest match first.
    auto two = [&](char second) { return peek(1) == second; };
    TokenKind kind;
    size_t len = 1;
    switch (c) {
    case '(':
      kind = TokenKind::LParen;
      ++depth;
      break;
    case ')':
      kind = TokenKind::RParen;
      depth = depth > 0 ? depth - 1 : 0;
      break;
    case '[':
      kind = TokenKind::LBracket;
      ++depth;
      break;
    case ']':
      kind = TokenKind::RBracket;
      depth = depth > 0 ? depth - 1 : 0;
      break;
    case '{':
      kind = TokenKind::LBrace;
      break;
    case '}':
      kind = TokenKind::RBrace;
      break;
    case ',':
      kind = TokenKind::Comma;
      break;
    case ':':
      kind = TokenKind::Colon;
      break;
    case '+':
      kind = TokenKind::Plus;
      break;
    case '%':
      kind = TokenKind::Percent;
      break;
    case '@':
      kind = TokenKind::At;
      break;
    case '-':
      kind = two('>') ? TokenKind::Arrow : TokenKind::Minus;
      len = two('>') ? 2 : 1;
      break;
    case '*':
      kind = two('*') ? TokenKind::StarStar : TokenKind::Star;
      len = two('*') ? 2 : 1;
      break;
    case '/':
      kind = two('/') ? TokenKind::SlashSlash : TokenKind::Slash;
      len = two('/') ? 2 : 1;
      break;
    case '=':
      kind = two('=') ? TokenKind::EqEq : TokenKind::Equal;
      len = two('=') ? 2 : 1;
      break;
    case '<':
      kind = two('=') ? TokenKind::LessEq : TokenKind::Less;
      len = two('=') ? 2 : 1;
      break;
    case '>':
      kind = two('=') ? TokenKind::GreaterEq : TokenKind::Greater;
      len = two('=') ? 2 : 1;
      break;
    case '!':
      if (!two('='))
        return error(tok.loc, "unexpected character '!' (did you mean '!=' "
                              "or 'not'?)");
      kind = TokenKind::NotEq;
      len = 2;
      break;
    default:
      if (std::isprint(static_cast<unsigned char>(c)))
        return error(tok.loc, llvm::Twine("unexpected character '") +
                                  llvm::StringRef(&c, 1) + "'");
      return error(tok.loc, "unexpected byte in input");
    }
    for (size_t i = 0; i < len; ++i)
      advance();
    tok.kind = kind;
    tok.spelling = buffer.slice(start, pos);
    push(std::move(tok));
  }
  if (!tokens.empty() && !tokens.back().is(TokenKind::Newline)) {
    Token nl;
    nl.kind = TokenKind::Newline;
    nl.loc = here();
    tokens.push_back(std::move(nl));
  }
  Token eof;
  eof.kind = TokenKind::Eof;
  eof.loc = here();
  tokens.push_back(std::move(eof));
  return true;
}

bool loom::frontend::lexBuffer(llvm::SourceMgr &sm, unsigned bufferId,
                               std::vector<Token> &tokens) {
  Lexer lexer(sm, bufferId);
  return lexer.run(tokens);
}
