//===- Lexer.h - Tokenizer of the .loom language ----------------*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file declares the lexer that turns a `.loom` buffer into tokens. Line
// structure matters in the language (a statement ends at the end of its line),
// so the lexer emits Newline tokens, but only outside parentheses and
// brackets: an expression or a signature may span lines as in Python.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_FRONTEND_LEXER_H
#define LOOM_FRONTEND_LEXER_H

#include "frontend/AST.h"

#include "llvm/ADT/StringRef.h"

#include <string>
#include <vector>

namespace llvm {
class SourceMgr;
} // namespace llvm

namespace loom {
namespace frontend {

enum class TokenKind {
  Eof,
  Newline,
  Identifier,
  Integer,
  Float,
  String,
  // Punctuation and operators.
  LParen,
  RParen,
  LBracket,
  RBracket,
  LBrace,
  RBrace,
  Comma,
  Colon,
  Equal,
  Arrow,
  Plus,
  Minus,
  Star,
  StarStar,
  Slash,
  SlashSlash,
  Percent,
  At,
  EqEq,
  NotEq,
  Less,
  LessEq,
  Greater,
  GreaterEq,
  // Reserved words. `param`, `state`, `mask` and `prefix` are contextual and
  // lex as identifiers, so they stay usable as names and attribute keys.
  KwConfig,
  KwGraph,
  KwDef,
  KwTrue,
  KwFalse,
  KwAnd,
  KwOr,
  KwNot,
};

/// One token. `spelling` points into the source buffer.
struct Token {
  TokenKind kind = TokenKind::Eof;
  llvm::StringRef spelling;
  Location loc;
  /// The decoded contents of a String token (escapes resolved).
  std::string stringValue;

  bool is(TokenKind k) const { return kind == k; }
  bool isIdentifier(llvm::StringRef name) const {
    return kind == TokenKind::Identifier && spelling == name;
  }
};

/// Returns a short description of a token kind for "expected ..." messages.
llvm::StringRef describeTokenKind(TokenKind kind);

/// Tokenizes the buffer `bufferId` of `sm` into `tokens` (ending with Eof).
/// On a lexical error it prints the diagnostic through `sm` and returns false.
bool lexBuffer(llvm::SourceMgr &sm, unsigned bufferId,
               std::vector<Token> &tokens);

} // namespace frontend
} // namespace loom

#endif // LOOM_FRONTEND_LEXER_H
