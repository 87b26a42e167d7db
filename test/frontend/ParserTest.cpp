//===- ParserTest.cpp - Tests of the .loom lexer and parser -----*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file tests that the examples of docs/language.md parse into the
// expected AST, that precedence and line structure work as documented, and
// that syntax errors are reported at the right line and column.
//
//===----------------------------------------------------------------------===//

#include "FrontendTestUtil.h"

using namespace loom::frontend;

namespace {

const char *kExample = R"(# comments run to end of line
config dim = 64, hidden = 256, eps = 1e-6
config mode = "absorb", use_bias = true
config qk_nope_head_dim = 128, qk_rope_head_dim = 64
config qk_head_dim = qk_nope_head_dim + qk_rope_head_dim

graph main(x: f32[B, dim], start_pos: i64) -> (y: f32[B, dim]) {
  param norm: f32[dim]          = "norm.weight"
  param w1:   f32[hidden, dim]  = "w1.weight"
  param w2:   f32[dim, hidden]
  state acc:  f32[4, dim]
  h = rms_norm(x, norm, eps=eps)
  y = linear(silu(linear(h, w1)), w2) + x * 0.5
  a, b = some_multi_result_op(h, axis=1)
}

graph layer(x: f32[B, S, dim]) -> (out: f32[B, S, dim]) prefix "layers.3.attn." {
  out = x
}

def mlp(x: f32[B, dim]) -> (y: f32[B, dim]) {
  param w: f32[dim, dim]
  y = linear(x, w)
}

graph main2(x: f32[B, dim]) -> (y: f32[B, dim]) { y = mlp(x, prefix="layers.0.") }
)";

TEST_F(FrontendTest, ParsesTheLanguageExample) {
  ModuleAST *m = parse(kExample);
  ASSERT_TRUE(m) << diags;
  ASSERT_EQ(m->configs.size(), 8u);
  EXPECT_EQ(m->configs[0].ident.name, "dim");
  EXPECT_EQ(m->configs[0].ident.loc.line, 2u);
  EXPECT_EQ(m->configs[0].ident.loc.col, 8u);
  ASSERT_EQ(m->graphs.size(), 4u);

  const GraphAST &g = *m->graphs[0];
  EXPECT_EQ(g.getName(), "main");
  EXPECT_TRUE(g.isEntryPoint());
  ASSERT_EQ(g.inputs.size(), 2u);
  EXPECT_EQ(g.inputs[0].type.dtype, DType::F32);
  ASSERT_EQ(g.inputs[0].type.getRank(), 2u);
  EXPECT_EQ(exprToString(*g.inputs[0].type.dims[0]), "B");
  EXPECT_EQ(g.inputs[1].type.dtype, DType::I64);
  EXPECT_EQ(g.inputs[1].type.getRank(), 0u);
  ASSERT_EQ(g.outputs.size(), 1u);
  ASSERT_EQ(g.body.size(), 7u);

  const auto *norm = llvm::dyn_cast<ParamStmt>(g.body[0].get());
  ASSERT_TRUE(norm);
  EXPECT_EQ(norm->getBindingName(), "norm.weight");
  const auto *w2 = llvm::dyn_cast<ParamStmt>(g.body[2].get());
  ASSERT_TRUE(w2);
  EXPECT_FALSE(w2->binding.has_value());
  EXPECT_EQ(w2->getBindingName(), "w2");
  EXPECT_TRUE(llvm::isa<StateStmt>(g.body[3].get()));

  const auto *h = llvm::dyn_cast<AssignStmt>(g.body[4].get());
  ASSERT_TRUE(h);
  const auto *call = llvm::dyn_cast<CallExpr>(h->value.get());
  ASSERT_TRUE(call);
  EXPECT_EQ(call->callee, "rms_norm");
  EXPECT_EQ(call->getLoc().line, 12u);
  EXPECT_EQ(call->getLoc().col, 7u);
  ASSERT_EQ(call->args.size(), 2u);
  ASSERT_EQ(call->kwargs.size(), 1u);
  EXPECT_EQ(call->kwargs[0].key.name, "eps");
  ASSERT_TRUE(call->findKeyword("eps"));
  EXPECT_FALSE(call->findKeyword("axis"));

  const auto *multi = llvm::dyn_cast<AssignStmt>(g.body[6].get());
  ASSERT_TRUE(multi);
  ASSERT_EQ(multi->targets.size(), 2u);
  EXPECT_EQ(multi->targets[1].name, "b");

  EXPECT_EQ(m->graphs[1]->prefix.value_or(""), "layers.3.attn.");
  EXPECT_EQ(m->graphs[2]->kind, GraphAST::Kind::Def);
  const auto *callMlp = llvm::cast<CallExpr>(
      llvm::cast<AssignStmt>(*m->graphs[3]->body[0]).value.get());
  EXPECT_EQ(callMlp->callee, "mlp");
  ASSERT_TRUE(callMlp->findKeyword("prefix"));

  EXPECT_TRUE(checkModule(*m, sm)) << diags;
}

TEST_F(FrontendTest, PrecedenceFollowsPython) {
  ModuleAST *m = parse(R"(graph g(a: f32, b: f32, c: f32, d: f32) -> (y: f32) {
  y1 = a + b * c @ d ** -2 ** 3
  y2 = (a + b) * c
  y3 = -a ** 2
  y4 = not a < b and c >= d or a == b
  y5 = a - b - c
  y6 = a - (b - c)
  y = x
})");
  ASSERT_TRUE(m) << diags;
  auto text = [&](size_t i) {
    return exprToString(*llvm::cast<AssignStmt>(*m->graphs[0]->body[i]).value);
  };
  EXPECT_EQ(text(0), "a + b * c @ d ** -2 ** 3");
  const auto *add = llvm::cast<BinaryExpr>(
      llvm::cast<AssignStmt>(*m->graphs[0]->body[0]).value.get());
  EXPECT_EQ(add->op, BinaryOp::Add);
  const auto *matmul = llvm::cast<BinaryExpr>(add->rhs.get());
  EXPECT_EQ(matmul->op, BinaryOp::MatMul);
  EXPECT_EQ(llvm::cast<BinaryExpr>(matmul->lhs.get())->op, BinaryOp::Mul);
  EXPECT_EQ(llvm::cast<BinaryExpr>(matmul->rhs.get())->op, BinaryOp::Pow);
  EXPECT_EQ(text(1), "(a + b) * c");
  // Unary minus binds looser than **, as in Python.
  EXPECT_EQ(llvm::cast<UnaryExpr>(
                *llvm::cast<AssignStmt>(*m->graphs[0]->body[2]).value)
                .op,
            UnaryOp::Neg);
  EXPECT_EQ(text(2), "-a ** 2");
  EXPECT_EQ(text(3), "not a < b and c >= d or a == b");
  EXPECT_EQ(text(4), "a - b - c");
  EXPECT_EQ(text(5), "a - (b - c)");
}

TEST_F(FrontendTest, LinesJoinInsideBrackets) {
  ModuleAST *m = parse(R"(config a = 1,
       b = 2
graph g(
    x: f32[
      B, a],
    y: f32[B, b],
) -> (
    z: f32[B, a],
)
prefix "p." {
  z = op(x,
         y, perm=[0,
                  1], list=[], s="str\"q\\")
}
)");
  ASSERT_TRUE(m) << diags;
  const GraphAST &g = *m->graphs[0];
  EXPECT_EQ(g.inputs.size(), 2u);
  EXPECT_EQ(g.outputs.size(), 1u);
  const auto &call =
      llvm::cast<CallExpr>(*llvm::cast<AssignStmt>(*g.body[0]).value);
  EXPECT_EQ(exprToString(call),
            "op(x, y, perm=[0, 1], list=[], s=\"str\\\"q\\\\\")");
  EXPECT_EQ(llvm::cast<StringExpr>(*call.kwargs[2].value).value, "str\"q\\");
}

TEST_F(FrontendTest, ContextualKeywordsStayUsableAsNames) {
  ModuleAST *m = parse(
      R"(graph g(q: f32[S], k: f32[S], tin: i32[S]) -> (mask: f32[S], state: f32[S]) {
  mask ancestor(b, h, i, j) = j <= i and tin[j] <= tin[i]
  param = attention(q, k, mask=ancestor, prefix="x")
  mask = param
  state = mask
}
)");
  ASSERT_TRUE(m) << diags;
  const GraphAST &g = *m->graphs[0];
  const auto *mask = llvm::dyn_cast<MaskStmt>(g.body[0].get());
  ASSERT_TRUE(mask);
  EXPECT_EQ(mask->indices.size(), 4u);
  EXPECT_FALSE(mask->isScore);
  EXPECT_EQ(exprToString(*mask->body), "j <= i and tin[j] <= tin[i]");
  EXPECT_TRUE(llvm::isa<AssignStmt>(g.body[1].get()));
  EXPECT_TRUE(llvm::isa<AssignStmt>(g.body[2].get()));
  EXPECT_TRUE(checkModule(*m, sm)) << diags;
}

TEST_F(FrontendTest, ParsesIfChainsAndRequire) {
  ModuleAST *m = parse(R"(config n = 2, p = "layers.0."
graph g(x: f32[B, S], pos: i64) -> (y: f32[B, S]) prefix p {
  require pos >= 0, pos + S <= (4 *   # a comment inside the brackets
                                n)
  if n == 1 {
    y = x
  } else if n == 2 { y = x * 2 }
  else if n == 3 {
    if true { y = x }
  }
  else {
    y = x * 4
  }
}
)");
  ASSERT_TRUE(m) << diags;
  const GraphAST &g = *m->graphs[0];
  EXPECT_FALSE(g.prefix);
  ASSERT_TRUE(g.prefixConfig);
  EXPECT_EQ(g.prefixConfig->name, "p");
  EXPECT_EQ(getGraphPrefix(*m, g), "layers.0.");
  ASSERT_EQ(g.body.size(), 2u);
  const auto *req = llvm::dyn_cast<RequireStmt>(g.body[0].get());
  ASSERT_TRUE(req);
  ASSERT_EQ(req->conditions.size(), 2u);
  EXPECT_EQ(req->conditions[0].text, "pos >= 0");
  // Whitespace runs, line breaks and comments read as one space.
  EXPECT_EQ(req->conditions[1].text, "pos + S <= (4 * n)");
  const auto *stmt = llvm::dyn_cast<IfStmt>(g.body[1].get());
  ASSERT_TRUE(stmt);
  ASSERT_EQ(stmt->branches.size(), 4u);
  EXPECT_EQ(exprToString(*stmt->branches[1].condition), "n == 2");
  EXPECT_EQ(stmt->branches[1].loc.line, 7u);
  EXPECT_EQ(stmt->branches[1].loc.col, 5u);
  EXPECT_EQ(stmt->branches[1].body.size(), 1u);
  EXPECT_TRUE(llvm::isa<IfStmt>(stmt->branches[2].body[0].get()));
  EXPECT_FALSE(stmt->branches[3].condition);
  EXPECT_EQ(getTakenBranch(*m, *stmt, &g), 1);
  ASSERT_TRUE(checkModule(*m, sm)) << diags;
  llvm::SmallVector<const Stmt *> active = getActiveStmts(*m, g);
  ASSERT_EQ(active.size(), 2u);
  EXPECT_EQ(active[0], g.body[0].get());
  EXPECT_EQ(active[1], stmt->branches[1].body[0].get());
}

TEST_F(FrontendTest, IfBlocksNestOnlySoDeep) {
  std::string source = "graph g(x: f32[4]) -> (y: f32[4]) {\n";
  for (int i = 0; i < 300; ++i)
    source += "if true {\n";
  source += "y = x\n";
  for (int i = 0; i < 300; ++i)
    source += "}\n";
  source += "}\n";
  EXPECT_FALSE(parse(source));
  EXPECT_EQ(firstError(), "test.loom:258:1: error: 'if' statements nested "
                          "more than 256 levels deep");
}

TEST_F(FrontendTest, ScalarTypesHaveRankZero) {
  ModuleAST *m =
      parse(R"(graph g(a: i64, b: f32[], c: bf16[2, 3], d: bool) -> (y: f16) {
  y = a
})");
  ASSERT_TRUE(m) << diags;
  const GraphAST &g = *m->graphs[0];
  EXPECT_EQ(g.inputs[0].type.getRank(), 0u);
  EXPECT_EQ(g.inputs[1].type.getRank(), 0u);
  EXPECT_EQ(g.inputs[2].type.dtype, DType::BF16);
  EXPECT_EQ(g.inputs[3].type.dtype, DType::Bool);
  EXPECT_EQ(g.outputs[0].type.dtype, DType::F16);
}

TEST_F(FrontendTest, DumpIsAnIndentedTree) {
  ModuleAST *m = parse(R"(config dim = 4, half = dim // 2
graph g(x: f32[B, dim]) -> (y: f32[B, half]) prefix "l." {
  param w: f32[half, dim] = "w.weight"
  y = linear(x, w, bias=false) * -1.5
})");
  ASSERT_TRUE(m) << diags;
  std::string out;
  llvm::raw_string_ostream os(out);
  dumpAST(*m, os);
  EXPECT_EQ(out, R"(Module "test.loom"
  Config dim = 4 -> int 4 @1:8
  Config half = dim // 2 -> int 2 @1:17
  Graph g prefix="l." @2:7
    Input x: f32[B, dim] @2:9
    Output y: f32[B, half] @2:29
    Param w: f32[half, dim] binding="w.weight" @3:9
    Assign y @4:3
      Binary * @4:32
        Call linear @4:7
          Name x @4:14
          Name w @4:17
          Keyword bias @4:20
            Literal false @4:25
        Unary - @4:34
          Literal 1.5 @4:35
)");
}

//===----------------------------------------------------------------------===//
// Syntax errors
//===----------------------------------------------------------------------===//

struct SyntaxErrorCase {
  const char *source;
  const char *error;
};

class SyntaxErrorTest : public FrontendTest,
                        public ::testing::WithParamInterface<SyntaxErrorCase> {
};

TEST_P(SyntaxErrorTest, ReportsLineAndColumn) {
  EXPECT_FALSE(parse(GetParam().source));
  EXPECT_EQ(firstError(), GetParam().error) << diags;
}

INSTANTIATE_TEST_SUITE_P(
    Parser, SyntaxErrorTest,
    ::testing::Values(
        SyntaxErrorCase{"graph g(x: f8[4]) -> (y: f32) {\n  y = x\n}\n",
                        "test.loom:1:12: error: unknown dtype 'f8' (expected "
                        "f32, f64, f16, bf16, i32, i64 or bool)"},
        SyntaxErrorCase{"graph g(x: f32) -> (y: f32) {\n  y = f(axis=1, x)\n}",
                        "test.loom:2:17: error: positional argument after "
                        "keyword argument in call to 'f'"},
        SyntaxErrorCase{
            "graph g(x: f32) -> (y: f32) {\n  y = f(x, a=1, a=2)\n}",
            "test.loom:2:17: error: duplicate keyword argument "
            "'a' in call to 'f'"},
        SyntaxErrorCase{"config mode = \"abs\n",
                        "test.loom:1:15: error: unterminated string"},
        SyntaxErrorCase{"config a = 1 < 2 < 3\n",
                        "test.loom:1:18: error: chained comparisons are not "
                        "supported; use 'and'"},
        SyntaxErrorCase{"graph g(x: f32 -> (y: f32) {\n}",
                        "test.loom:1:16: error: expected ')' to end the input "
                        "list, found '->'"},
        SyntaxErrorCase{"config a = 99999999999999999999\n",
                        "test.loom:1:12: error: integer literal "
                        "'99999999999999999999' is too large"},
        SyntaxErrorCase{"config a = 3 $ 4\n",
                        "test.loom:1:14: error: unexpected character '$'"},
        SyntaxErrorCase{"config a = 12abc\n",
                        "test.loom:1:12: error: invalid number '12abc'"},
        SyntaxErrorCase{"graph g(x: f32) -> (y: f32) {\n  y = x x\n}",
                        "test.loom:2:9: error: expected end of line after "
                        "statement, found 'x'"},
        SyntaxErrorCase{"graph g(x: f32) -> (y: f32) {\n  y = (x + \n}",
                        "test.loom:3:1: error: expected an expression, found "
                        "'}'"},
        SyntaxErrorCase{"graph g(x: f32) -> (y: f32) {\n  y = x\n",
                        "test.loom:3:1: error: expected '}' to end graph 'g', "
                        "found end of file"},
        SyntaxErrorCase{"graph def(x: f32) {\n}",
                        "test.loom:1:7: error: expected graph name, found "
                        "keyword 'def' (it is reserved)"},
        SyntaxErrorCase{"x = 1\n",
                        "test.loom:1:1: error: expected 'config', 'graph' or "
                        "'def' at top level, found 'x'"},
        SyntaxErrorCase{"graph g(x: f32) {\n  state s: f32 = x\n}",
                        "test.loom:2:16: error: a state has no initializer; "
                        "its value comes from the session"},
        SyntaxErrorCase{"graph g(x: f32) {\n  param p: f32 = 3\n}",
                        "test.loom:2:18: error: expected a string naming the "
                        "tensor in the safetensors file, found '3'"},
        SyntaxErrorCase{"graph g(x: f32) {\n  config a = 1\n}",
                        "test.loom:2:3: error: config declarations are only "
                        "allowed at top level"},
        SyntaxErrorCase{"config s = \"a\\q\"\n",
                        "test.loom:1:14: error: unknown escape sequence "
                        "'\\q'"}));

} // namespace
