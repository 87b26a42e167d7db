//===- Sema.cpp - Semantic checks of the .loom language ---------*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file implements checkModule. Graph bodies are checked in order, with a
// scope that records what each name is and whether it has been assigned yet,
// so a use before assignment is reported like an undefined name would be.
//
//===----------------------------------------------------------------------===//

#include "frontend/Sema.h"

#include "frontend/Config.h"
#include "frontend/Requirement.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/SourceMgr.h"

#include <functional>

using namespace loom::frontend;

namespace {

/// What a name of a graph body refers to.
struct ScopeEntry {
  enum class Kind { Input, Output, Param, State, Mask, Score, Local };
  Kind kind;
  Location loc;
  /// For outputs and states: assigned by an earlier statement.
  bool assigned = false;
};

llvm::StringRef describe(ScopeEntry::Kind kind) {
  switch (kind) {
  case ScopeEntry::Kind::Input:
    return "input";
  case ScopeEntry::Kind::Output:
    return "output";
  case ScopeEntry::Kind::Param:
    return "param";
  case ScopeEntry::Kind::State:
    return "state";
  case ScopeEntry::Kind::Mask:
    return "mask";
  case ScopeEntry::Kind::Score:
    return "score";
  case ScopeEntry::Kind::Local:
    return "value";
  }
  return "name";
}

class Checker {
public:
  Checker(const ModuleAST &m, llvm::SourceMgr &sm) : m(m), sm(sm) {}

  bool run();

private:
  bool error(const Location &loc, const llvm::Twine &msg) {
    sm.PrintMessage(loc.ptr, llvm::SourceMgr::DK_Error, msg);
    return false;
  }
  void note(const Location &loc, const llvm::Twine &msg) {
    sm.PrintMessage(loc.ptr, llvm::SourceMgr::DK_Note, msg);
  }

  bool checkGraph(const GraphAST &g);
  bool checkPrefix(const GraphAST &g);
  bool checkStmts(const std::vector<StmtPtr> &body);
  bool checkStmt(const Stmt &s);
  bool checkIf(const IfStmt &stmt);
  /// Records the names declared in a branch that is not taken, to explain
  /// later uses of them.
  void recordUntaken(const std::vector<StmtPtr> &body);
  /// Reports `name` as undefined, with a note when a branch that is not
  /// taken declares it.
  bool undefinedName(const Location &loc, llvm::StringRef name);
  bool checkRequire(const RequireStmt &stmt);
  std::optional<TermBinding> resolveRequirementName(const NameExpr &name);
  bool declare(const Ident &ident, ScopeEntry::Kind kind);
  bool checkType(const TypeAST &type);
  bool checkAssign(const AssignStmt &a);
  bool checkMask(const MaskStmt &mask);
  /// Checks a call inside a mask or score body: a built-in mask or a scalar
  /// function with the right number of arguments.
  bool checkMaskCall(const CallExpr &call);
  /// Checks the keywords of a call of the `attention` op: `mask=` and
  /// `score=` name declarations (or a built-in mask), `bias=` and `alibi=`
  /// are tensor values, the others compile-time values.
  bool checkAttentionCall(const CallExpr &call);
  /// Checks an expression that yields a tensor (or a scalar operand).
  bool checkValue(const Expr &e);
  /// Checks a call; `results` is how many values the context takes from it
  /// (the number of assigned names, or 1 inside an expression).
  bool checkCall(const CallExpr &call, size_t results, bool nested);
  /// Checks the form of a call of `grad`: a loss, at least one value to
  /// differentiate by, no keywords and one name per gradient. The types are
  /// the importer's to check.
  bool checkGradCall(const CallExpr &call, size_t results, bool nested);
  /// Checks a keyword argument value: a compile-time expression.
  bool checkAttr(const CallExpr &call, const KeywordArg &kw);
  bool checkAttrNames(const CallExpr &call, const KeywordArg &kw,
                      const Expr &e);
  bool checkRecursion();

  const ModuleAST &m;
  llvm::SourceMgr &sm;

  // Per-graph state.
  const GraphAST *graph = nullptr;
  llvm::StringMap<ScopeEntry> scope;
  llvm::StringSet<> symbolicDims;
  /// The symbolic dims that appear in the types of the inputs.
  llvm::StringSet<> inputSymbols;
  /// Names declared only in branches not taken so far, and where.
  llvm::StringMap<Location> untaken;
  /// The index variables while checking a mask body, else empty.
  llvm::StringSet<> maskIndices;
  bool inMask = false;
  /// The mask or score whose body is being checked.
  const MaskStmt *currentMask = nullptr;
};

} // namespace

bool Checker::run() {
  llvm::StringMap<const GraphAST *> graphs;
  for (const std::unique_ptr<GraphAST> &g : m.graphs) {
    auto [it, inserted] = graphs.try_emplace(g->getName(), g.get());
    if (!inserted) {
      error(g->ident.loc, "redefinition of " +
                              llvm::Twine(g->isEntryPoint() ? "graph" : "def") +
                              " '" + g->getName() + "'");
      note(it->second->ident.loc, "previous definition is here");
      return false;
    }
  }
  for (const std::unique_ptr<GraphAST> &g : m.graphs)
    if (!checkGraph(*g))
      return false;
  return checkRecursion();
}

bool Checker::declare(const Ident &ident, ScopeEntry::Kind kind) {
  if (const ConfigDecl *c = m.findConfig(ident.name)) {
    error(ident.loc, "'" + ident.name + "' is already the name of a config");
    note(c->ident.loc, "config '" + ident.name + "' is declared here");
    return false;
  }
  auto [it, inserted] =
      scope.try_emplace(ident.name, ScopeEntry{kind, ident.loc});
  if (!inserted) {
    error(ident.loc, "redefinition of '" + ident.name + "'");
    note(it->second.loc, "previous definition is here");
    return false;
  }
  return true;
}

bool Checker::checkType(const TypeAST &type) {
  for (const ExprPtr &dim : type.dims)
    if (!evaluateDim(m, *dim, &sm))
      return false;
  return true;
}

bool Checker::checkGraph(const GraphAST &g) {
  graph = &g;
  scope.clear();
  symbolicDims.clear();
  inputSymbols.clear();
  untaken.clear();
  if (!checkPrefix(g))
    return false;
  for (const std::string &dim : getSymbolicDims(m, g))
    symbolicDims.insert(dim);

  for (const ValueDecl &d : g.inputs) {
    if (!declare(d.ident, ScopeEntry::Kind::Input) || !checkType(d.type))
      return false;
    for (const ExprPtr &dim : d.type.dims)
      if (auto *name = llvm::dyn_cast<NameExpr>(dim.get()))
        if (!m.findConfig(name->name))
          inputSymbols.insert(name->name);
  }
  for (const ValueDecl &d : g.outputs)
    if (!declare(d.ident, ScopeEntry::Kind::Output) || !checkType(d.type))
      return false;

  if (!checkStmts(g.body))
    return false;

  for (const ValueDecl &d : g.outputs) {
    if (scope.lookup(d.ident.name).assigned)
      continue;
    error(d.ident.loc, "output '" + d.ident.name + "' of " +
                           (g.isEntryPoint() ? "graph" : "def") + " '" +
                           g.getName() + "' is never assigned");
    auto it = untaken.find(d.ident.name);
    if (it != untaken.end())
      note(it->second, "it is assigned only in a branch that is not taken");
    return false;
  }
  return true;
}

bool Checker::checkPrefix(const GraphAST &g) {
  if (!g.prefixConfig)
    return true;
  const Ident &name = *g.prefixConfig;
  const ConfigDecl *c = m.findConfig(name.name);
  if (!c)
    return error(name.loc, "'" + name.name +
                               "' is not a config; 'prefix' takes a string or "
                               "the name of a string config");
  if (c->value.kind != ConstValue::Kind::String) {
    error(name.loc, "prefix must be a string, but config '" + name.name +
                        "' is " + stringifyKind(c->value.kind) + " " +
                        c->value.toString());
    note(c->ident.loc, "config '" + name.name + "' is declared here");
    return false;
  }
  return true;
}

bool Checker::checkStmts(const std::vector<StmtPtr> &body) {
  for (const StmtPtr &s : body)
    if (!checkStmt(*s))
      return false;
  return true;
}

bool Checker::checkStmt(const Stmt &s) {
  if (const auto *p = llvm::dyn_cast<ParamStmt>(&s))
    return declare(p->ident, ScopeEntry::Kind::Param) && checkType(p->type);
  if (const auto *st = llvm::dyn_cast<StateStmt>(&s))
    return declare(st->ident, ScopeEntry::Kind::State) && checkType(st->type);
  if (const auto *mask = llvm::dyn_cast<MaskStmt>(&s))
    return checkMask(*mask);
  if (const auto *i = llvm::dyn_cast<IfStmt>(&s))
    return checkIf(*i);
  if (const auto *r = llvm::dyn_cast<RequireStmt>(&s))
    return checkRequire(*r);
  return checkAssign(llvm::cast<AssignStmt>(s));
}

bool Checker::checkIf(const IfStmt &stmt) {
  // Conditions are evaluated in order until one holds, as in Python: a
  // later condition may rely on an earlier one being false.
  bool taken = false;
  for (const IfStmt::Branch &branch : stmt.branches) {
    if (taken) {
      recordUntaken(branch.body);
      continue;
    }
    if (branch.condition) {
      std::optional<bool> holds =
          evaluateCondition(m, *branch.condition, graph, &sm);
      if (!holds)
        return false;
      if (!*holds) {
        recordUntaken(branch.body);
        continue;
      }
    }
    taken = true;
    if (!checkStmts(branch.body))
      return false;
  }
  return true;
}

void Checker::recordUntaken(const std::vector<StmtPtr> &body) {
  for (const StmtPtr &s : body) {
    if (const auto *p = llvm::dyn_cast<ParamStmt>(s.get()))
      untaken.try_emplace(p->ident.name, p->ident.loc);
    else if (const auto *st = llvm::dyn_cast<StateStmt>(s.get()))
      untaken.try_emplace(st->ident.name, st->ident.loc);
    else if (const auto *mask = llvm::dyn_cast<MaskStmt>(s.get()))
      untaken.try_emplace(mask->ident.name, mask->ident.loc);
    else if (const auto *a = llvm::dyn_cast<AssignStmt>(s.get()))
      for (const Ident &t : a->targets)
        untaken.try_emplace(t.name, t.loc);
    else if (const auto *i = llvm::dyn_cast<IfStmt>(s.get()))
      for (const IfStmt::Branch &branch : i->branches)
        recordUntaken(branch.body);
  }
}

bool Checker::undefinedName(const Location &loc, llvm::StringRef name) {
  error(loc, "undefined name '" + name + "'");
  auto it = untaken.find(name);
  if (it != untaken.end())
    note(it->second, "'" + name +
                         "' is defined only in a branch of an 'if' that is "
                         "not taken");
  return false;
}

/// Spells a declared type, e.g. `f32[B, 4]`.
static std::string spellType(const TypeAST &type) {
  std::string text = stringifyDType(type.dtype).str();
  if (type.dims.empty())
    return text;
  text += "[";
  for (auto [i, dim] : llvm::enumerate(type.dims))
    text += (i ? ", " : "") + exprToString(*dim);
  return text + "]";
}

std::optional<TermBinding>
Checker::resolveRequirementName(const NameExpr &name) {
  llvm::StringRef what = graph->isEntryPoint() ? "graph" : "def";
  auto refuse = [&](const llvm::Twine &msg) -> std::nullopt_t {
    error(name.getLoc(), msg);
    return std::nullopt;
  };
  for (auto [i, input] : llvm::enumerate(graph->inputs)) {
    if (input.ident.name != name.name)
      continue;
    if (input.type.dims.empty() &&
        (input.type.dtype == DType::I32 || input.type.dtype == DType::I64)) {
      TermBinding binding;
      binding.kind = TermBinding::Kind::Input;
      binding.target = name.name;
      binding.input = i;
      return binding;
    }
    return refuse("input '" + name.name + "' is " + spellType(input.type) +
                  "; a requirement can use only rank-0 i32 or i64 inputs, "
                  "symbolic dims of inputs, int configs and integer "
                  "literals");
  }
  if (inputSymbols.count(name.name)) {
    TermBinding binding;
    binding.kind = TermBinding::Kind::Symbol;
    binding.target = name.name;
    return binding;
  }
  if (symbolicDims.count(name.name))
    return refuse("symbolic dim '" + name.name +
                  "' is not a dim of any input "
                  "of " +
                  what + " '" + graph->getName() +
                  "'; a requirement can use only dims that inputs bind");
  auto it = scope.find(name.name);
  if (it != scope.end())
    return refuse("'" + name.name + "' is " +
                  (it->second.kind == ScopeEntry::Kind::Output ? "an " : "a ") +
                  describe(it->second.kind) +
                  "; a requirement can use only rank-0 i32 or i64 inputs, "
                  "symbolic dims of inputs, int configs and integer literals");
  undefinedName(name.getLoc(), name.name);
  return std::nullopt;
}

bool Checker::checkRequire(const RequireStmt &stmt) {
  for (const RequireStmt::Condition &c : stmt.conditions) {
    std::optional<LinearRequirement> r = buildRequirement(
        m, *c.expr, c.text,
        [&](const NameExpr &name) { return resolveRequirementName(name); }, sm);
    if (!r)
      return false;
    // Without run-time terms the requirement is decided now.
    if (r->terms.empty() && !r->holdsWithoutTerms())
      return error(getStartLoc(*c.expr),
                   "requirement is false for these configs: " + c.text +
                       (r->knownValues.empty() ? std::string()
                                               : " (" + r->knownValues + ")"));
  }
  return true;
}

bool Checker::checkMask(const MaskStmt &mask) {
  if (!declare(mask.ident,
               mask.isScore ? ScopeEntry::Kind::Score : ScopeEntry::Kind::Mask))
    return false;
  llvm::StringRef what = mask.getKeyword();
  if (mask.indices.size() != mask.getExpectedArity())
    return error(mask.ident.loc,
                 what + " '" + mask.ident.name + "' must take " +
                     llvm::Twine(mask.getExpectedArity()) +
                     (mask.isScore ? " parameters (b, h, i, j, s)"
                                   : " parameters (b, h, i, j)") +
                     ", got " + llvm::Twine(mask.indices.size()));
  maskIndices.clear();
  for (const Ident &index : mask.indices) {
    if (scope.count(index.name) || m.findConfig(index.name))
      return error(index.loc, "index variable '" + index.name +
                                  "' hides another name of the same spelling");
    if (!maskIndices.insert(index.name).second)
      return error(index.loc, "duplicate index variable '" + index.name +
                                  "' in " + what + " '" + mask.ident.name +
                                  "'");
  }
  inMask = true;
  currentMask = &mask;
  bool ok = checkValue(*mask.body);
  inMask = false;
  currentMask = nullptr;
  maskIndices.clear();
  return ok;
}

//===----------------------------------------------------------------------===//
// Mask bodies and attention
//===----------------------------------------------------------------------===//

static const MaskFunction kMaskFunctions[] = {
    {"causal", true, 0, ""},
    {"window", true, 1, "w"},
    {"prefix_lm", true, 1, "n"},
    {"document", true, 1, "seg"},
    {"ancestor", true, 2, "tin, tout"},
    {"scope", true, 2, "sin, sout"},
    {"csr", true, 2, "indptr, indices"},
    {"bits", true, 1, "words"},
    {"dense", true, 1, "m"},
    {"select", false, 3, "c, a, b"},
    {"min", false, 2, "a, b, ..."},
    {"max", false, 2, "a, b, ..."},
    {"abs", false, 1, "x"},
    {"exp", false, 1, "x"},
    {"log", false, 1, "x"},
    {"tanh", false, 1, "x"},
};

const MaskFunction *loom::frontend::lookupMaskFunction(llvm::StringRef name) {
  for (const MaskFunction &f : kMaskFunctions)
    if (f.name == name)
      return &f;
  return nullptr;
}

std::string loom::frontend::listMaskFunctions(bool builtinMasksOnly) {
  std::string list;
  for (const MaskFunction &f : kMaskFunctions) {
    if (builtinMasksOnly && !f.isBuiltinMask)
      continue;
    list += (list.empty() ? "" : ", ") + f.name.str();
  }
  return list;
}

bool Checker::checkMaskCall(const CallExpr &call) {
  llvm::StringRef what = currentMask->getKeyword();
  const MaskFunction *fn = lookupMaskFunction(call.callee);
  if (!fn) {
    auto it = scope.find(call.callee);
    if (it != scope.end() && (it->second.kind == ScopeEntry::Kind::Mask ||
                              it->second.kind == ScopeEntry::Kind::Score))
      return error(call.getLoc(),
                   describe(it->second.kind) + " '" + call.callee +
                       "' is used by its name alone, without arguments: it "
                       "takes the parameters of the " +
                       what + " that uses it");
    return error(call.getLoc(),
                 "unknown function '" + call.callee + "' in " + what + " '" +
                     currentMask->ident.name +
                     "'; built-in masks: " + listMaskFunctions(true) +
                     "; functions: select, min, max, abs, exp, log, tanh");
  }
  if (!call.kwargs.empty())
    return error(call.kwargs.front().key.loc,
                 "'" + call.callee + "' takes no keyword arguments");
  bool variadic = fn->name == "min" || fn->name == "max";
  size_t n = call.args.size();
  if (variadic ? n < fn->minArgs : n != fn->minArgs)
    return error(
        call.getLoc(),
        llvm::Twine(fn->isBuiltinMask ? "built-in mask '" : "function '") +
            call.callee + "' takes " + (variadic ? "at least " : "") +
            llvm::Twine(fn->minArgs) +
            (fn->minArgs == 1 ? " argument" : " arguments") +
            (fn->params.empty() ? "" : " (" + fn->params.str() + ")") +
            ", but " + llvm::Twine(n) + (n == 1 ? " is" : " are") + " given");
  for (const ExprPtr &arg : call.args)
    if (!checkValue(*arg))
      return false;
  return true;
}

bool Checker::checkAttentionCall(const CallExpr &call) {
  for (const KeywordArg &kw : call.kwargs) {
    llvm::StringRef key = kw.key.name;
    if (key == "bias" || key == "alibi") {
      if (!checkValue(*kw.value))
        return false;
      continue;
    }
    if (key != "mask" && key != "score") {
      if (!checkAttr(call, kw))
        return false;
      continue;
    }
    const auto *name = llvm::dyn_cast<NameExpr>(kw.value.get());
    bool wantScore = key == "score";
    llvm::StringRef syntax = wantScore ? "score NAME(b, h, i, j, s) = ..."
                                       : "mask NAME(b, h, i, j) = ...";
    if (!name)
      return error(kw.value->getLoc(),
                   "'" + key + "=' takes the name of a " + key +
                       " declared with '" + syntax + "'" +
                       (wantScore ? "" : " or a built-in mask such as causal"));
    auto it = scope.find(name->name);
    if (it == scope.end()) {
      if (!wantScore && lookupMaskFunction(name->name) &&
          lookupMaskFunction(name->name)->isBuiltinMask)
        continue;
      auto untakenIt = untaken.find(name->name);
      error(kw.value->getLoc(),
            "unknown " + key + " '" + name->name + "'; declare it with '" +
                syntax + "'" +
                (wantScore ? ""
                           : " or use a built-in mask (" +
                                 listMaskFunctions(true) + ")"));
      if (untakenIt != untaken.end())
        note(untakenIt->second, "'" + name->name +
                                    "' is defined only in a branch of an "
                                    "'if' that is not taken");
      return false;
    }
    ScopeEntry::Kind want =
        wantScore ? ScopeEntry::Kind::Score : ScopeEntry::Kind::Mask;
    if (it->second.kind != want) {
      error(kw.value->getLoc(),
            "'" + key + "=' takes a " + key + ", but '" + name->name + "' is " +
                (it->second.kind == ScopeEntry::Kind::Input ? "an " : "a ") +
                describe(it->second.kind));
      note(it->second.loc, "'" + name->name + "' is declared here");
      return false;
    }
  }
  return true;
}

bool Checker::checkAssign(const AssignStmt &a) {
  // The right-hand side sees only what earlier statements defined.
  if (a.targets.size() > 1 && !llvm::isa<CallExpr>(*a.value))
    return error(a.value->getLoc(),
                 "assigning " + llvm::Twine(a.targets.size()) +
                     " names needs a call on the right-hand side");
  if (const auto *call = llvm::dyn_cast<CallExpr>(a.value.get())) {
    if (!checkCall(*call, a.targets.size(), /*nested=*/false))
      return false;
  } else if (!checkValue(*a.value)) {
    return false;
  }

  for (const Ident &t : a.targets) {
    if (m.findConfig(t.name))
      return error(t.loc, "cannot assign to config '" + t.name + "'");
    auto it = scope.find(t.name);
    if (it == scope.end()) {
      ScopeEntry entry{ScopeEntry::Kind::Local, t.loc};
      entry.assigned = true;
      scope.try_emplace(t.name, entry);
      continue;
    }
    ScopeEntry &entry = it->second;
    switch (entry.kind) {
    case ScopeEntry::Kind::Input:
    case ScopeEntry::Kind::Param:
    case ScopeEntry::Kind::Mask:
    case ScopeEntry::Kind::Score:
      return error(t.loc, "cannot assign to " + describe(entry.kind) + " '" +
                              t.name + "'");
    case ScopeEntry::Kind::Output:
    case ScopeEntry::Kind::State:
      if (entry.assigned) {
        error(t.loc, describe(entry.kind) + " '" + t.name +
                         "' is assigned more than once");
        note(entry.loc, "previous assignment is here");
        return false;
      }
      entry.assigned = true;
      entry.loc = t.loc;
      break;
    case ScopeEntry::Kind::Local:
      error(t.loc, "redefinition of '" + t.name + "'");
      note(entry.loc, "previous definition is here");
      return false;
    }
  }
  return true;
}

bool Checker::checkValue(const Expr &e) {
  switch (e.getKind()) {
  case Expr::Kind::Int:
  case Expr::Kind::Float:
  case Expr::Kind::Bool:
    return true;
  case Expr::Kind::String:
    return error(e.getLoc(), "a string cannot be used as an operand; strings "
                             "are only allowed as keyword arguments");
  case Expr::Kind::Name: {
    const std::string &name = llvm::cast<NameExpr>(e).name;
    if (inMask && maskIndices.count(name))
      return true;
    auto it = scope.find(name);
    if (it != scope.end()) {
      const ScopeEntry &entry = it->second;
      bool isMask = entry.kind == ScopeEntry::Kind::Mask ||
                    entry.kind == ScopeEntry::Kind::Score;
      if (isMask && inMask) {
        // Another mask or score is inlined with the current parameters.
        if (name == currentMask->ident.name)
          return error(e.getLoc(), currentMask->getKeyword() + " '" + name +
                                       "' refers to itself");
        if (entry.kind == ScopeEntry::Kind::Score && !currentMask->isScore)
          return error(e.getLoc(),
                       "score '" + name +
                           "' cannot be used in a mask: it needs a score s");
        return true;
      }
      if (isMask)
        return error(e.getLoc(), describe(entry.kind) + " '" + name +
                                     "' can only be passed as a keyword "
                                     "argument of attention (e.g. " +
                                     describe(entry.kind) + "=" + name + ")");
      if (entry.kind == ScopeEntry::Kind::Output && !entry.assigned)
        return error(e.getLoc(),
                     "output '" + name + "' is used before it is assigned");
      return true;
    }
    if (m.findConfig(name) || symbolicDims.count(name))
      return true;
    if (const GraphAST *g = m.findGraph(name))
      return error(e.getLoc(), "'" + name + "' is a " +
                                   (g->isEntryPoint() ? "graph" : "def") +
                                   "; call it as '" + name + "(...)'");
    return undefinedName(e.getLoc(), name);
  }
  case Expr::Kind::List:
    for (const ExprPtr &element : llvm::cast<ListExpr>(e).elements)
      if (!checkValue(*element))
        return false;
    return true;
  case Expr::Kind::Unary:
    return checkValue(*llvm::cast<UnaryExpr>(e).operand);
  case Expr::Kind::Binary: {
    const auto &b = llvm::cast<BinaryExpr>(e);
    return checkValue(*b.lhs) && checkValue(*b.rhs);
  }
  case Expr::Kind::Call:
    if (inMask)
      return checkMaskCall(llvm::cast<CallExpr>(e));
    return checkCall(llvm::cast<CallExpr>(e), 1, /*nested=*/true);
  case Expr::Kind::Index: {
    const auto &x = llvm::cast<IndexExpr>(e);
    if (!inMask)
      return error(e.getLoc(),
                   "indexing is only allowed inside a mask or score body");
    if (!checkValue(*x.base))
      return false;
    for (const ExprPtr &index : x.indices)
      if (!checkValue(*index))
        return false;
    return true;
  }
  }
  return true;
}

bool Checker::checkCall(const CallExpr &call, size_t results, bool nested) {
  for (const ExprPtr &arg : call.args)
    if (!checkValue(*arg))
      return false;

  const GraphAST *callee = m.findGraph(call.callee);
  if (!callee && call.callee == "attention")
    return checkAttentionCall(call);
  if (!callee && call.callee == "grad")
    return checkGradCall(call, results, nested);
  if (!callee) {
    // An op: its operands and results are the importer's to check.
    for (const KeywordArg &kw : call.kwargs)
      if (!checkAttr(call, kw))
        return false;
    return true;
  }

  llvm::StringRef what = callee->isEntryPoint() ? "graph" : "def";
  if (call.args.size() != callee->inputs.size())
    return error(call.getLoc(),
                 what + " '" + call.callee + "' takes " +
                     llvm::Twine(callee->inputs.size()) +
                     (callee->inputs.size() == 1 ? " input" : " inputs") +
                     ", but " + llvm::Twine(call.args.size()) +
                     (call.args.size() == 1 ? " is" : " are") + " given");
  for (const KeywordArg &kw : call.kwargs) {
    if (kw.key.name != "prefix")
      return error(kw.key.loc, "unknown keyword argument '" + kw.key.name +
                                   "' in call to " + what + " '" + call.callee +
                                   "' (only 'prefix' is "
                                   "accepted)");
    if (!checkAttr(call, kw))
      return false;
    std::optional<ConstValue> v = evaluateConstant(m, *kw.value, graph, &sm);
    if (!v)
      return false;
    if (v->kind != ConstValue::Kind::String) {
      const auto *name = llvm::dyn_cast<NameExpr>(kw.value.get());
      return error(kw.value->getLoc(),
                   "prefix must be a string, got " + stringifyKind(v->kind) +
                       (name ? " (config '" + name->name + "')" : ""));
    }
  }
  size_t outputs = callee->outputs.size();
  if (outputs == results)
    return true;
  auto plural = [](size_t n, llvm::StringRef one, llvm::StringRef many) {
    return (llvm::Twine(n) + " " + (n == 1 ? one : many)).str();
  };
  if (nested)
    return error(call.getLoc(),
                 what + " '" + call.callee + "' returns " +
                     plural(outputs, "result", "results") +
                     "; only a call with one result can be used inside an "
                     "expression");
  return error(call.getLoc(),
               what + " '" + call.callee + "' returns " +
                   plural(outputs, "result", "results") + ", but " +
                   plural(results, "name is", "names are") + " assigned");
}

bool Checker::checkGradCall(const CallExpr &call, size_t results, bool nested) {
  if (!call.kwargs.empty())
    return error(call.kwargs.front().key.loc,
                 "grad takes no keyword arguments, got '" +
                     call.kwargs.front().key.name +
                     "='; write grad(loss, x, ...) with the loss first and "
                     "then the values to differentiate by");
  if (call.args.size() < 2)
    return error(call.getLoc(),
                 "grad needs the loss and at least one value to differentiate "
                 "by: grad(loss, x, ...)");
  size_t gradients = call.args.size() - 1;
  if (gradients == results)
    return true;
  auto count = [](size_t n, llvm::StringRef one, llvm::StringRef many) {
    return (llvm::Twine(n) + " " + (n == 1 ? one : many)).str();
  };
  if (nested)
    return error(call.getLoc(),
                 "grad of " + count(gradients, "value", "values") +
                     " returns " + count(gradients, "gradient", "gradients") +
                     "; only a call with one result can be used inside an "
                     "expression");
  return error(call.getLoc(),
               "grad returns one gradient per value after the loss: " +
                   count(gradients, "value", "values") + ", but " +
                   count(results, "name is", "names are") + " assigned");
}

bool Checker::checkAttrNames(const CallExpr &call, const KeywordArg &kw,
                             const Expr &e) {
  if (const auto *n = llvm::dyn_cast<NameExpr>(&e)) {
    if (m.findConfig(n->name))
      return true;
    auto it = scope.find(n->name);
    if (it != scope.end()) {
      if (it->second.kind == ScopeEntry::Kind::Mask ||
          it->second.kind == ScopeEntry::Kind::Score)
        return true;
      return error(
          e.getLoc(),
          "keyword argument '" + kw.key.name + "' of '" + call.callee +
              "' must be a compile-time value, but '" + n->name + "' is " +
              (it->second.kind == ScopeEntry::Kind::Input ? "an " : "a ") +
              describe(it->second.kind));
    }
    if (inMask && maskIndices.count(n->name))
      return error(e.getLoc(), "keyword argument '" + kw.key.name + "' of '" +
                                   call.callee +
                                   "' must be a compile-time value, but '" +
                                   n->name + "' is an index variable");
    if (symbolicDims.count(n->name))
      return true;
    return undefinedName(e.getLoc(), n->name);
  }
  if (const auto *l = llvm::dyn_cast<ListExpr>(&e)) {
    for (const ExprPtr &element : l->elements)
      if (!checkAttrNames(call, kw, *element))
        return false;
    return true;
  }
  if (const auto *u = llvm::dyn_cast<UnaryExpr>(&e))
    return checkAttrNames(call, kw, *u->operand);
  if (const auto *b = llvm::dyn_cast<BinaryExpr>(&e))
    return checkAttrNames(call, kw, *b->lhs) &&
           checkAttrNames(call, kw, *b->rhs);
  if (const auto *c = llvm::dyn_cast<CallExpr>(&e)) {
    for (const ExprPtr &arg : c->args)
      if (!checkAttrNames(call, kw, *arg))
        return false;
    return true;
  }
  if (const auto *x = llvm::dyn_cast<IndexExpr>(&e))
    return checkAttrNames(call, kw, *x->base);
  return true;
}

bool Checker::checkAttr(const CallExpr &call, const KeywordArg &kw) {
  // Names first, for messages that say which keyword and why; then the
  // evaluator catches the rest (arithmetic on strings, division by zero...).
  return checkAttrNames(call, kw, *kw.value) &&
         evaluateConstant(m, *kw.value, graph, &sm).has_value();
}

//===----------------------------------------------------------------------===//
// Recursion
//===----------------------------------------------------------------------===//

/// Collects the calls of graphs/defs made anywhere inside `e`.
static void collectCalls(const ModuleAST &m, const Expr &e,
                         std::vector<const CallExpr *> &calls) {
  switch (e.getKind()) {
  case Expr::Kind::List:
    for (const ExprPtr &element : llvm::cast<ListExpr>(e).elements)
      collectCalls(m, *element, calls);
    return;
  case Expr::Kind::Unary:
    collectCalls(m, *llvm::cast<UnaryExpr>(e).operand, calls);
    return;
  case Expr::Kind::Binary:
    collectCalls(m, *llvm::cast<BinaryExpr>(e).lhs, calls);
    collectCalls(m, *llvm::cast<BinaryExpr>(e).rhs, calls);
    return;
  case Expr::Kind::Index:
    collectCalls(m, *llvm::cast<IndexExpr>(e).base, calls);
    for (const ExprPtr &index : llvm::cast<IndexExpr>(e).indices)
      collectCalls(m, *index, calls);
    return;
  case Expr::Kind::Call: {
    const auto &c = llvm::cast<CallExpr>(e);
    if (m.findGraph(c.callee))
      calls.push_back(&c);
    for (const ExprPtr &arg : c.args)
      collectCalls(m, *arg, calls);
    for (const KeywordArg &kw : c.kwargs)
      collectCalls(m, *kw.value, calls);
    return;
  }
  default:
    return;
  }
}

bool Checker::checkRecursion() {
  llvm::DenseMap<const GraphAST *, std::vector<const CallExpr *>> callsOf;
  for (const std::unique_ptr<GraphAST> &g : m.graphs) {
    std::vector<const CallExpr *> &calls = callsOf[g.get()];
    // Mask and score bodies call only built-in functions, whatever the
    // graphs are named.
    for (const Stmt *s : getActiveStmts(m, *g))
      if (const auto *a = llvm::dyn_cast<AssignStmt>(s))
        collectCalls(m, *a->value, calls);
  }

  // Depth-first search; a call to a graph still on the stack closes a cycle.
  enum class Color { White, Grey, Black };
  llvm::DenseMap<const GraphAST *, Color> color;
  std::vector<const GraphAST *> stack;
  std::function<bool(const GraphAST *)> visit = [&](const GraphAST *g) {
    color[g] = Color::Grey;
    stack.push_back(g);
    for (const CallExpr *call : callsOf[g]) {
      const GraphAST *callee = m.findGraph(call->callee);
      Color c = color.lookup(callee);
      if (c == Color::Grey) {
        std::string cycle;
        auto start = llvm::find(stack, callee);
        for (auto it = start; it != stack.end(); ++it)
          cycle += "'" + (*it)->getName().str() + "' -> ";
        cycle += "'" + callee->getName().str() + "'";
        return error(call->getLoc(),
                     "recursive call of '" + call->callee + "': " + cycle);
      }
      if (c == Color::White && !visit(callee))
        return false;
    }
    stack.pop_back();
    color[g] = Color::Black;
    return true;
  };
  for (const std::unique_ptr<GraphAST> &g : m.graphs)
    if (color.lookup(g.get()) == Color::White && !visit(g.get()))
      return false;
  return true;
}

bool loom::frontend::checkModule(const ModuleAST &m, llvm::SourceMgr &sm) {
  return Checker(m, sm).run();
}
