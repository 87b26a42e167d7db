//===- Requirements.cpp - Run-time requirements of entries ------*- C++ -*-===//
//
// This file reads and validates `loom.requires` and evaluates requirements
// for the interpreter path. The failure message is built exactly as the
// runtime builds it (runtime/src/session.cc), so that a call refused by a
// compiled artifact and by `loom-run --interpret` reads the same.
//
//===----------------------------------------------------------------------===//

#include "compiler/Artifact/Requirements.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/Twine.h"

using namespace mlir;
using namespace mlir::loom;

bool Requirement::holds(llvm::ArrayRef<int64_t> values) const {
  // Each product fits in 127 bits and there are far fewer than 2^63 terms,
  // so the sum cannot overflow.
  __int128 sum = constant;
  for (auto [term, value] : llvm::zip(terms, values))
    sum += static_cast<__int128>(term.coeff) * value;
  switch (predicate) {
  case Predicate::GE:
    return sum >= 0;
  case Predicate::EQ:
    return sum == 0;
  case Predicate::NE:
    return sum != 0;
  }
  return false;
}

std::string Requirement::describeFailure(llvm::StringRef entry,
                                         llvm::ArrayRef<int64_t> values) const {
  std::string shown;
  llvm::StringSet<> names;
  for (auto [term, value] : llvm::zip(terms, values)) {
    if (!names.insert(term.name).second)
      continue;
    if (!shown.empty())
      shown += ", ";
    shown += term.name + " = " + std::to_string(value);
  }
  if (!configs.empty())
    shown += (shown.empty() ? "" : ", ") + configs;
  return ("entry '" + entry + "': requirement failed: " + text + " (" + shown +
          ") [" + location + "]")
      .str();
}

/// Reads a string field of a record.
static bool getString(DictionaryAttr dict, StringRef key, std::string &out) {
  auto value = dict.getAs<StringAttr>(key);
  if (!value)
    return false;
  out = value.getValue().str();
  return true;
}

/// Reads an i64 field of a record.
static bool getInt(DictionaryAttr dict, StringRef key, int64_t &out) {
  auto value = dict.getAs<IntegerAttr>(key);
  if (!value || !value.getType().isSignlessInteger(64))
    return false;
  out = value.getInt();
  return true;
}

/// Returns the `loom.role` of argument `i` of `func`.
static StringRef roleOf(func::FuncOp func, unsigned i) {
  if (auto role = func.getArgAttrOfType<StringAttr>(i, "loom.role"))
    return role.getValue();
  return "";
}

std::optional<std::vector<Requirement>>
mlir::loom::readRequirements(func::FuncOp func, std::string &error) {
  std::vector<Requirement> result;
  Attribute attr = func->getAttr(kRequiresAttrName);
  if (!attr)
    return result;
  auto records = dyn_cast<ArrayAttr>(attr);
  if (!records) {
    error = "'loom.requires' must be an array";
    return std::nullopt;
  }
  // Symbols that inputs bind.
  llvm::StringSet<> bound;
  for (unsigned i = 0; i < func.getNumArguments(); ++i)
    if (roleOf(func, i) == "input")
      if (auto dims = func.getArgAttrOfType<ArrayAttr>(i, "loom.dims"))
        for (Attribute dim : dims)
          if (auto symbol = dyn_cast<StringAttr>(dim))
            bound.insert(symbol.getValue());

  for (auto [index, recordAttr] : llvm::enumerate(records)) {
    auto fail = [&, index = index](const llvm::Twine &why) {
      error =
          ("'loom.requires' record " + llvm::Twine(index) + ": " + why).str();
      return std::nullopt;
    };
    auto record = dyn_cast<DictionaryAttr>(recordAttr);
    if (!record)
      return fail("not a dictionary");
    Requirement req;
    std::string predicate;
    if (!getString(record, "predicate", predicate))
      return fail("missing string 'predicate'");
    if (predicate == "ge")
      req.predicate = Requirement::Predicate::GE;
    else if (predicate == "eq")
      req.predicate = Requirement::Predicate::EQ;
    else if (predicate == "ne")
      req.predicate = Requirement::Predicate::NE;
    else
      return fail("unknown predicate '" + predicate + "'");
    if (!getInt(record, "constant", req.constant))
      return fail("missing i64 'constant'");
    if (!getString(record, "text", req.text) || req.text.empty())
      return fail("missing or empty string 'text'");
    if (!getString(record, "configs", req.configs))
      return fail("missing string 'configs'");
    if (!getString(record, "location", req.location))
      return fail("missing string 'location'");
    auto terms = record.getAs<ArrayAttr>("terms");
    if (!terms || terms.empty())
      return fail("missing or empty array 'terms'");
    for (Attribute termAttr : terms) {
      auto dict = dyn_cast<DictionaryAttr>(termAttr);
      if (!dict)
        return fail("a term is not a dictionary");
      RequirementTerm term;
      std::string kind;
      if (!getString(dict, "kind", kind) ||
          !getString(dict, "name", term.name) ||
          !getInt(dict, "coeff", term.coeff))
        return fail("a term needs string 'kind', string 'name' and i64 "
                    "'coeff'");
      if (kind == "symbol") {
        term.kind = RequirementTerm::Kind::Symbol;
        if (!getString(dict, "symbol", term.symbol))
          return fail("symbol term '" + term.name + "' needs string 'symbol'");
        if (!bound.contains(term.symbol))
          return fail("symbol '" + term.symbol + "' is not a dim of any input");
      } else if (kind == "input") {
        term.kind = RequirementTerm::Kind::Input;
        int64_t arg;
        if (!getInt(dict, "arg", arg))
          return fail("input term '" + term.name + "' needs i64 'arg'");
        if (arg < 0 || arg >= func.getNumArguments() ||
            roleOf(func, arg) != "input")
          return fail("argument " + llvm::Twine(arg) + " is not an input");
        auto type = dyn_cast<ShapedType>(func.getArgumentTypes()[arg]);
        if (!type || !type.hasRank() || type.getRank() != 0 ||
            !(type.getElementType().isSignlessInteger(32) ||
              type.getElementType().isSignlessInteger(64)))
          return fail("argument " + llvm::Twine(arg) +
                      " is not a rank-0 i32 or i64 input");
        term.arg = static_cast<unsigned>(arg);
      } else {
        return fail("unknown term kind '" + kind + "'");
      }
      req.terms.push_back(std::move(term));
    }
    result.push_back(std::move(req));
  }
  return result;
}

std::optional<std::string>
mlir::loom::checkRequirements(func::FuncOp func,
                              llvm::ArrayRef<CallInput> inputs) {
  std::string error;
  std::optional<std::vector<Requirement>> reqs = readRequirements(func, error);
  StringRef entry = func.getSymName();
  if (!reqs)
    return ("entry '" + entry + "': " + error).str();
  if (reqs->empty())
    return std::nullopt;

  // Bind the symbols as the runtime does: the first input that has one
  // gives its value, and every other must agree.
  struct Binding {
    int64_t value;
    unsigned input;
    unsigned dim;
  };
  llvm::StringMap<Binding> symbols;
  auto inputName = [&](unsigned i) -> std::string {
    if (auto name = func.getArgAttrOfType<StringAttr>(i, "loom.name"))
      return name.getValue().str();
    return "arg" + std::to_string(i);
  };
  for (auto [i, input] : llvm::enumerate(inputs)) {
    auto dims = i < func.getNumArguments()
                    ? func.getArgAttrOfType<ArrayAttr>(i, "loom.dims")
                    : ArrayAttr();
    if (!dims)
      continue;
    for (auto [d, dim] : llvm::enumerate(dims)) {
      auto symbol = dyn_cast<StringAttr>(dim);
      if (!symbol || d >= input.shape.size())
        continue;
      int64_t size = input.shape[d];
      auto [it, inserted] = symbols.try_emplace(
          symbol.getValue(),
          Binding{size, static_cast<unsigned>(i), static_cast<unsigned>(d)});
      if (!inserted && it->second.value != size)
        return ("entry '" + entry + "': inconsistent symbolic dim '" +
                symbol.getValue() + "': " + llvm::Twine(it->second.value) +
                " from input '" + inputName(it->second.input) + "' dim " +
                llvm::Twine(it->second.dim) + " but " + llvm::Twine(size) +
                " from input '" + inputName(i) + "' dim " + llvm::Twine(d))
            .str();
    }
  }

  for (const Requirement &req : *reqs) {
    std::vector<int64_t> values;
    bool known = true;
    for (const RequirementTerm &term : req.terms) {
      if (term.kind == RequirementTerm::Kind::Input) {
        known &= term.arg < inputs.size();
        values.push_back(known ? inputs[term.arg].scalar : 0);
        continue;
      }
      auto it = symbols.find(term.symbol);
      known &= it != symbols.end();
      values.push_back(known ? it->second.value : 0);
    }
    // Inputs of the wrong rank or count are the interpreter's to report.
    if (known && !req.holds(values))
      return req.describeFailure(entry, values);
  }
  return std::nullopt;
}
