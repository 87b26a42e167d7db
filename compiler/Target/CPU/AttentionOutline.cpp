//===- AttentionOutline.cpp - fuse.attention to the runtime -----*- C++ -*-===//
//
// This file implements the CPU lowering of a bufferized `fuse.attention`.
// The mask region is compiled twice: element by element over a row of keys
// (mask_row, a plain loop LLVM vectorizes) and as an interval analysis over a
// block of queries and keys (mask_block), which evaluates the region on
// abstract values: every integer becomes a range [lo, hi] and every i1 a
// three-valued truth {false, true, unknown}, carried as the pair (can be
// true, can be false). The score region becomes score_row. The op becomes
// the call of a launch function that the object emitter defines.
//
//===----------------------------------------------------------------------===//

#include "compiler/Target/CPU/AttentionOutline.h"

#include "loom/abi.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/ADT/TypeSwitch.h"

#include <array>
#include <functional>
#include <limits>

using namespace mlir;

namespace {

/// The longest range of a capture that mask_block scans for its minimum and
/// maximum; a longer one (an index computed from data) gives "unknown".
constexpr int64_t kMaxScan = 4096;

MemRefType dynamicStrided(MLIRContext *ctx, unsigned rank, Type element) {
  SmallVector<int64_t> dyn(rank, ShapedType::kDynamic);
  return MemRefType::get(
      dyn, element, StridedLayoutAttr::get(ctx, ShapedType::kDynamic, dyn));
}

/// Creates `name(args...) -> results` at the end of `body` (a module's) with
/// an entry block and the builder inside it.
func::FuncOp createFunction(OpBuilder &b, Block *body, Location loc,
                            StringRef name, TypeRange args, TypeRange results) {
  b.setInsertionPointToEnd(body);
  auto func =
      func::FuncOp::create(b, loc, name, b.getFunctionType(args, results));
  b.setInsertionPointToStart(func.addEntryBlock());
  return func;
}

/// `name(b, h, i, j0, n, row: memref<?xT>, captures...)`: the region
/// evaluated at j = j0 + t for t < n. The mask stores 0/1 bytes; the score
/// reads and rewrites row[t] in place.
void buildRowFunction(OpBuilder &b, ModuleOp module, Location loc,
                      StringRef name, Region &region, bool score,
                      ValueRange captures) {
  Type index = b.getIndexType();
  Type element = score ? Type(b.getF32Type()) : Type(b.getI8Type());
  SmallVector<Type> args(5, index);
  args.push_back(MemRefType::get({ShapedType::kDynamic}, element));
  llvm::append_range(args, captures.getTypes());
  func::FuncOp func =
      createFunction(b, module.getBody(), loc, name, args, {});
  Block *entry = &func.front();
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  Value row = entry->getArgument(5);
  Block &block = region.front();
  unsigned first = score ? 5 : 4;
  IRMapping mapping;
  for (unsigned k = 0; k < 3; ++k)
    mapping.map(block.getArgument(k), entry->getArgument(k));
  for (auto [k, capture] : llvm::enumerate(captures))
    mapping.map(block.getArgument(first + k), entry->getArgument(6 + k));
  // What does not depend on the key (or the score) is computed once before
  // the loop (e.g. tin[i]): the loop body is then only the per-key work,
  // which LLVM vectorizes. Ops with regions stay in the loop.
  llvm::SmallPtrSet<Operation *, 16> varying;
  DenseSet<Value> perKey = {block.getArgument(3)};
  if (score)
    perKey.insert(block.getArgument(4));
  for (Operation &op : block.without_terminator()) {
    bool depends = op.getNumRegions() != 0 ||
                   llvm::any_of(op.getOperands(),
                                [&](Value v) { return perKey.contains(v); });
    if (!depends) {
      b.clone(op, mapping);
      continue;
    }
    varying.insert(&op);
    for (Value result : op.getResults())
      perKey.insert(result);
  }
  auto loop = scf::ForOp::create(b, loc, zero, entry->getArgument(4), one);
  b.setInsertionPointToStart(loop.getBody());
  Value t = loop.getInductionVar();
  mapping.map(block.getArgument(3),
              arith::AddIOp::create(b, loc, entry->getArgument(3), t));
  if (score)
    mapping.map(block.getArgument(4),
                memref::LoadOp::create(b, loc, row, ValueRange{t}));
  for (Operation &op : block.without_terminator())
    if (varying.contains(&op))
      b.clone(op, mapping);
  Value value = mapping.lookupOrDefault(block.getTerminator()->getOperand(0));
  if (!score)
    value = arith::ExtUIOp::create(b, loc, b.getI8Type(), value);
  memref::StoreOp::create(b, loc, value, row, ValueRange{t});
  b.setInsertionPointToEnd(entry);
  func::ReturnOp::create(b, loc);
}

//===----------------------------------------------------------------------===//
// Interval interpretation of the mask region
//===----------------------------------------------------------------------===//

/// An integer in [lo, hi] (i64, the value sign-extended) when `ok`; any
/// integer when not.
struct Range {
  Value lo, hi, ok;
};

/// A three-valued truth: false (0, 1), true (1, 0), unknown (1, 1).
struct Truth {
  Value canTrue, canFalse;
};

/// Emits, at the builder, the code that evaluates a mask region on abstract
/// values.
class IntervalEmitter {
public:
  IntervalEmitter(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  Value i64(int64_t v) {
    return arith::ConstantIntOp::create(b, loc, b.getI64Type(), v);
  }
  Value flag(bool v) { return arith::ConstantIntOp::create(b, loc, v, 1); }
  Value toI64(Value index) {
    return arith::IndexCastOp::create(b, loc, b.getI64Type(), index);
  }
  Value andOf(Value x, Value y) { return arith::AndIOp::create(b, loc, x, y); }
  Value orOf(Value x, Value y) { return arith::OrIOp::create(b, loc, x, y); }
  Value notOf(Value x) { return arith::XOrIOp::create(b, loc, x, flag(true)); }
  Value cmp(arith::CmpIPredicate p, Value x, Value y) {
    return arith::CmpIOp::create(b, loc, p, x, y);
  }
  /// An i64 result with whether it did not overflow.
  struct Checked {
    Value value;
    Value ok;
  };
  /// x + y; overflow when both operands differ in sign from the result.
  Checked addChecked(Value x, Value y) {
    Value r = arith::AddIOp::create(b, loc, x, y);
    Value signs = arith::AndIOp::create(b, loc,
                                        arith::XOrIOp::create(b, loc, x, r),
                                        arith::XOrIOp::create(b, loc, y, r));
    return {r, cmp(arith::CmpIPredicate::sge, signs, i64(0))};
  }
  /// x - y; overflow when x and y differ in sign and r differs from x.
  Checked subChecked(Value x, Value y) {
    Value r = arith::SubIOp::create(b, loc, x, y);
    Value signs = arith::AndIOp::create(b, loc,
                                        arith::XOrIOp::create(b, loc, x, y),
                                        arith::XOrIOp::create(b, loc, x, r));
    return {r, cmp(arith::CmpIPredicate::sge, signs, i64(0))};
  }
  /// x * y; overflow when the high half is not the sign of the low half.
  Checked mulChecked(Value x, Value y) {
    auto full = arith::MulSIExtendedOp::create(b, loc, x, y);
    Value sign = arith::ShRSIOp::create(b, loc, full.getLow(), i64(63));
    return {full.getLow(), cmp(arith::CmpIPredicate::eq, full.getHigh(), sign)};
  }
  Value min(Value x, Value y) { return arith::MinSIOp::create(b, loc, x, y); }
  Value max(Value x, Value y) { return arith::MaxSIOp::create(b, loc, x, y); }
  Value select(Value c, Value x, Value y) {
    return arith::SelectOp::create(b, loc, c, x, y);
  }

  void setRange(Value v, Range r) { ranges[v] = r; }
  void setTruth(Value v, Truth t) { truths[v] = t; }

  /// The range of an integer or index value; anything unknown is top.
  Range range(Value v) {
    if (auto it = ranges.find(v); it != ranges.end())
      return it->second;
    if (std::optional<int64_t> c = getConstantIntValue(v)) {
      Value x = i64(*c);
      return {x, x, flag(true)};
    }
    Value zero = i64(0);
    return {zero, zero, flag(false)};
  }

  Truth truth(Value v) {
    if (auto it = truths.find(v); it != truths.end())
      return it->second;
    if (std::optional<int64_t> c = getConstantIntValue(v))
      return {flag(*c != 0), flag(*c == 0)};
    return {flag(true), flag(true)};
  }

  /// Interprets one op of the region; ops it does not know leave their
  /// results unknown.
  void visit(Operation *op, ValueRange captures) {
    // Scalars only: a vector or float result stays unknown.
    if (op->getNumResults() != 1 ||
        !op->getResult(0).getType().isIntOrIndex() ||
        llvm::any_of(op->getOperandTypes(), [](Type t) {
          return isa<ShapedType>(t) && !isa<MemRefType>(t);
        }))
      return;
    llvm::TypeSwitch<Operation *>(op)
        // The bounds are computed in i64 with an overflow check: a bound
        // that wraps makes the range unknown.
        .Case<arith::AddIOp>([&](auto add) {
          Range x = range(add.getLhs()), y = range(add.getRhs());
          Checked lo = addChecked(x.lo, y.lo), hi = addChecked(x.hi, y.hi);
          result(add, {lo.value, hi.value,
                       andOf(andOf(x.ok, y.ok), andOf(lo.ok, hi.ok))});
        })
        .Case<arith::SubIOp>([&](auto sub) {
          Range x = range(sub.getLhs()), y = range(sub.getRhs());
          Checked lo = subChecked(x.lo, y.hi), hi = subChecked(x.hi, y.lo);
          result(sub, {lo.value, hi.value,
                       andOf(andOf(x.ok, y.ok), andOf(lo.ok, hi.ok))});
        })
        .Case<arith::MulIOp>([&](auto mul) {
          Range x = range(mul.getLhs()), y = range(mul.getRhs());
          Checked p[] = {mulChecked(x.lo, y.lo), mulChecked(x.lo, y.hi),
                         mulChecked(x.hi, y.lo), mulChecked(x.hi, y.hi)};
          Value ok = andOf(x.ok, y.ok);
          for (const Checked &c : p)
            ok = andOf(ok, c.ok);
          result(mul, {min(min(p[0].value, p[1].value),
                           min(p[2].value, p[3].value)),
                       max(max(p[0].value, p[1].value),
                           max(p[2].value, p[3].value)),
                       ok});
        })
        .Case<arith::MinSIOp, arith::MaxSIOp, arith::MinUIOp, arith::MaxUIOp>(
            [&](auto m) {
              Range x = range(m.getLhs()), y = range(m.getRhs());
              bool isMin = isa<arith::MinSIOp, arith::MinUIOp>(m);
              Value ok = andOf(x.ok, y.ok);
              if (isa<arith::MinUIOp, arith::MaxUIOp>(m))
                ok = andOf(ok, nonNegative(x, y));
              auto pick = [&](Value u, Value w) {
                return isMin ? min(u, w) : max(u, w);
              };
              result(m, {pick(x.lo, y.lo), pick(x.hi, y.hi), ok});
            })
        .Case<arith::DivSIOp, arith::DivUIOp, arith::FloorDivSIOp,
              arith::CeilDivSIOp, arith::CeilDivUIOp>([&](auto div) {
          // Monotone in the dividend for a positive constant divisor.
          std::optional<int64_t> c = getConstantIntValue(div.getRhs());
          if (!c || *c <= 0)
            return;
          Range x = range(div.getLhs());
          Value d = i64(*c);
          auto apply = [&](Value v) -> Value {
            return decltype(div)::create(b, loc, v, d);
          };
          Value ok = x.ok;
          if (isa<arith::DivUIOp, arith::CeilDivUIOp>(div))
            ok = andOf(ok, cmp(arith::CmpIPredicate::sge, x.lo, i64(0)));
          result(div, {apply(x.lo), apply(x.hi), ok});
        })
        .Case<arith::RemSIOp, arith::RemUIOp>([&](auto rem) {
          // x mod c for x >= 0 and a positive constant c: exact when the
          // range stays within one period, [0, c - 1] otherwise.
          std::optional<int64_t> c = getConstantIntValue(rem.getRhs());
          if (!c || *c <= 0)
            return;
          Range x = range(rem.getLhs());
          Value d = i64(*c);
          Value same = cmp(arith::CmpIPredicate::eq,
                           arith::DivSIOp::create(b, loc, x.lo, d),
                           arith::DivSIOp::create(b, loc, x.hi, d));
          result(rem,
                 {select(same, arith::RemSIOp::create(b, loc, x.lo, d), i64(0)),
                  select(same, arith::RemSIOp::create(b, loc, x.hi, d),
                         i64(*c - 1)),
                  andOf(x.ok, cmp(arith::CmpIPredicate::sge, x.lo, i64(0)))});
        })
        .Case<arith::AndIOp, arith::OrIOp, arith::XOrIOp>(
            [&](Operation *logic) { visitLogic(logic); })
        .Case<arith::CmpIOp>([&](arith::CmpIOp c) { visitCmp(c); })
        .Case<arith::SelectOp>([&](arith::SelectOp s) { visitSelect(s); })
        .Case<arith::ExtUIOp, arith::ExtSIOp, arith::IndexCastOp,
              arith::IndexCastUIOp, arith::TruncIOp>(
            [&](Operation *cast) { visitCast(cast); })
        .Case<memref::LoadOp>(
            [&](memref::LoadOp load) { visitLoad(load, captures); })
        .Case<memref::DimOp>([&](memref::DimOp dim) {
          Value x = toI64(dim.getResult());
          result(dim, {x, x, flag(true)});
        })
        .Default([](Operation *) {});
  }

  /// LOOM_ATTENTION_BLOCK_* of the yielded truth.
  Value classify(Truth t) {
    Type i32 = b.getI32Type();
    auto c = [&](int64_t v) {
      return arith::ConstantIntOp::create(b, loc, i32, v);
    };
    return select(notOf(t.canTrue), c(LOOM_ATTENTION_BLOCK_NONE),
                  select(notOf(t.canFalse), c(LOOM_ATTENTION_BLOCK_ALL),
                         c(LOOM_ATTENTION_BLOCK_SOME)));
  }

private:
  /// Records an integer result, unknown when it leaves its type's range.
  void result(Operation *op, Range r) {
    Type type = op->getResult(0).getType();
    unsigned width = type.isIndex() ? 64 : type.getIntOrFloatBitWidth();
    if (width == 1)
      return;
    if (width < 64) {
      int64_t lo = -(int64_t(1) << (width - 1));
      int64_t hi = (int64_t(1) << (width - 1)) - 1;
      r.ok = andOf(r.ok, andOf(cmp(arith::CmpIPredicate::sge, r.lo, i64(lo)),
                               cmp(arith::CmpIPredicate::sle, r.hi, i64(hi))));
    }
    ranges[op->getResult(0)] = r;
  }

  Value nonNegative(Range x, Range y) {
    return andOf(cmp(arith::CmpIPredicate::sge, x.lo, i64(0)),
                 cmp(arith::CmpIPredicate::sge, y.lo, i64(0)));
  }

  /// Kleene logic on i1; `x & c` for a constant c >= 0 lies in [0, c].
  void visitLogic(Operation *op) {
    Value lhs = op->getOperand(0), rhs = op->getOperand(1);
    if (!lhs.getType().isInteger(1)) {
      if (!isa<arith::AndIOp>(op))
        return;
      for (Value v : {lhs, rhs})
        if (std::optional<int64_t> c = getConstantIntValue(v); c && *c >= 0)
          return result(op, {i64(0), i64(*c), flag(true)});
      return;
    }
    Truth x = truth(lhs), y = truth(rhs);
    Truth r;
    if (isa<arith::AndIOp>(op))
      r = {andOf(x.canTrue, y.canTrue), orOf(x.canFalse, y.canFalse)};
    else if (isa<arith::OrIOp>(op))
      r = {orOf(x.canTrue, y.canTrue), andOf(x.canFalse, y.canFalse)};
    else
      r = xorOf(x, y);
    truths[op->getResult(0)] = r;
  }

  Truth xorOf(Truth x, Truth y) {
    return {orOf(andOf(x.canTrue, y.canFalse), andOf(x.canFalse, y.canTrue)),
            orOf(andOf(x.canTrue, y.canTrue), andOf(x.canFalse, y.canFalse))};
  }

  void visitCmp(arith::CmpIOp c) {
    using P = arith::CmpIPredicate;
    P pred = c.getPredicate();
    if (c.getLhs().getType().isInteger(1)) {
      if (pred != P::eq && pred != P::ne)
        return;
      Truth r = xorOf(truth(c.getLhs()), truth(c.getRhs()));
      truths[c.getResult()] = pred == P::ne ? r : Truth{r.canFalse, r.canTrue};
      return;
    }
    Range x = range(c.getLhs()), y = range(c.getRhs());
    Value ok = andOf(x.ok, y.ok);
    // Unsigned predicates agree with the signed ones on non-negative values.
    switch (pred) {
    case P::ult:
    case P::ule:
    case P::ugt:
    case P::uge:
      ok = andOf(ok, nonNegative(x, y));
      break;
    default:
      break;
    }
    Value canTrue, canFalse;
    switch (pred) {
    case P::slt:
    case P::ult:
      canTrue = cmp(P::slt, x.lo, y.hi);
      canFalse = cmp(P::sge, x.hi, y.lo);
      break;
    case P::sle:
    case P::ule:
      canTrue = cmp(P::sle, x.lo, y.hi);
      canFalse = cmp(P::sgt, x.hi, y.lo);
      break;
    case P::sgt:
    case P::ugt:
      canTrue = cmp(P::sgt, x.hi, y.lo);
      canFalse = cmp(P::sle, x.lo, y.hi);
      break;
    case P::sge:
    case P::uge:
      canTrue = cmp(P::sge, x.hi, y.lo);
      canFalse = cmp(P::slt, x.lo, y.hi);
      break;
    case P::eq:
    case P::ne: {
      Value overlap = andOf(cmp(P::sle, x.lo, y.hi), cmp(P::sle, y.lo, x.hi));
      Value single =
          andOf(andOf(cmp(P::eq, x.lo, x.hi), cmp(P::eq, y.lo, y.hi)),
                cmp(P::eq, x.lo, y.lo));
      canTrue = overlap;
      canFalse = notOf(single);
      if (pred == P::ne)
        std::swap(canTrue, canFalse);
      break;
    }
    }
    Value unknown = notOf(ok);
    truths[c.getResult()] = {orOf(canTrue, unknown), orOf(canFalse, unknown)};
  }

  void visitSelect(arith::SelectOp s) {
    Truth c = truth(s.getCondition());
    if (s.getType().isInteger(1)) {
      Truth x = truth(s.getTrueValue()), y = truth(s.getFalseValue());
      truths[s.getResult()] = {
          orOf(andOf(c.canTrue, x.canTrue), andOf(c.canFalse, y.canTrue)),
          orOf(andOf(c.canTrue, x.canFalse), andOf(c.canFalse, y.canFalse))};
      return;
    }
    if (!s.getType().isIntOrIndex())
      return;
    Range x = range(s.getTrueValue()), y = range(s.getFalseValue());
    Value both = andOf(c.canTrue, c.canFalse);
    Value lo = select(both, min(x.lo, y.lo), select(c.canTrue, x.lo, y.lo));
    Value hi = select(both, max(x.hi, y.hi), select(c.canTrue, x.hi, y.hi));
    Value ok =
        andOf(orOf(notOf(c.canTrue), x.ok), orOf(notOf(c.canFalse), y.ok));
    result(s, {lo, hi, ok});
  }

  void visitCast(Operation *op) {
    Value in = op->getOperand(0);
    Type to = op->getResult(0).getType();
    if (in.getType().isInteger(1)) {
      if (to.isInteger(1))
        return;
      Truth t = truth(in);
      if (isa<arith::ExtUIOp>(op))
        return result(op, {select(t.canFalse, i64(0), i64(1)),
                           select(t.canTrue, i64(1), i64(0)), flag(true)});
      if (isa<arith::ExtSIOp>(op))
        return result(op, {select(t.canTrue, i64(-1), i64(0)),
                           select(t.canFalse, i64(0), i64(-1)), flag(true)});
      return;
    }
    if (to.isInteger(1))
      return;
    Range x = range(in);
    // Zero extension keeps the value of non-negative numbers only.
    if (isa<arith::ExtUIOp, arith::IndexCastUIOp>(op))
      x.ok = andOf(x.ok, cmp(arith::CmpIPredicate::sge, x.lo, i64(0)));
    auto width = [](Type type) {
      return type.isIndex() ? 64u : type.getIntOrFloatBitWidth();
    };
    // Only a narrowing cast can leave the range of its result type.
    if (width(to) >= width(in.getType()))
      ranges[op->getResult(0)] = x;
    else
      result(op, x);
  }

  /// The minimum and maximum of a capture over the box of its index ranges,
  /// found by a scan of at most kMaxScan elements (a point for indices that
  /// are exact, e.g. a block table read at [i / 64, j / 64]).
  void visitLoad(memref::LoadOp load, ValueRange captures) {
    Value memref = load.getMemRef();
    auto type = cast<MemRefType>(memref.getType());
    Type element = type.getElementType();
    // Bufferization reads a capture through a cast to a strided layout.
    Value base = memref;
    while (auto cast = base.getDefiningOp<memref::CastOp>())
      base = cast.getSource();
    if (type.getRank() < 1 || !element.isIntOrIndex() ||
        !llvm::is_contained(captures, base))
      return;
    using P = arith::CmpIPredicate;
    Type index = b.getIndexType();
    auto toIndex = [&](Value v) {
      return arith::IndexCastOp::create(b, loc, index, v).getResult();
    };
    // Every index range in bounds, and the box small enough to scan.
    Value inBounds = flag(true);
    Value count = i64(1);
    SmallVector<Value> begins, ends;
    for (auto [d, idx] : llvm::enumerate(load.getIndices())) {
      Range x = range(idx);
      Value size = toI64(
          memref::DimOp::create(b, loc, memref, (int64_t)d).getResult());
      Value extent = arith::SubIOp::create(b, loc, x.hi, x.lo);
      inBounds = andOf(
          inBounds, andOf(andOf(x.ok, cmp(P::sge, x.lo, i64(0))),
                          andOf(cmp(P::slt, x.hi, size),
                                cmp(P::slt, extent, i64(kMaxScan)))));
      // Clamped so that it cannot wrap: every extent is checked below
      // kMaxScan, so the product of two clamped factors fits.
      count = min(arith::MulIOp::create(
                      b, loc, count,
                      arith::AddIOp::create(b, loc, min(extent, i64(kMaxScan)),
                                            i64(1))),
                  i64(kMaxScan + 1));
      begins.push_back(x.lo);
      ends.push_back(arith::AddIOp::create(b, loc, x.hi, i64(1)));
    }
    inBounds = andOf(inBounds, cmp(P::sle, count, i64(kMaxScan)));
    // Out of bounds or too large: scan nothing (the result is unknown).
    for (auto [begin, end] : llvm::zip(begins, ends))
      end = toIndex(select(inBounds, end, begin));
    for (Value &begin : begins)
      begin = toIndex(begin);
    Value one = arith::ConstantIndexOp::create(b, loc, 1);
    Type i64Type = b.getI64Type();
    SmallVector<Value> at(begins.size());
    // Nested loops over the box, innermost dimension last.
    std::function<SmallVector<Value>(OpBuilder &, Location, unsigned,
                                     ValueRange)>
        nest = [&](OpBuilder &nb, Location l, unsigned d,
                   ValueRange acc) -> SmallVector<Value> {
      auto loop = scf::ForOp::create(
          nb, l, begins[d], ends[d], one, acc,
          [&](OpBuilder &ib, Location il, Value k, ValueRange inner) {
            at[d] = k;
            if (d + 1 < begins.size()) {
              scf::YieldOp::create(ib, il, nest(ib, il, d + 1, inner));
              return;
            }
            Value v = memref::LoadOp::create(ib, il, memref, at);
            if (element.isIndex())
              v = arith::IndexCastOp::create(ib, il, i64Type, v);
            else if (element.isInteger(1))
              v = arith::ExtUIOp::create(ib, il, i64Type, v);
            else if (element.getIntOrFloatBitWidth() < 64)
              v = arith::ExtSIOp::create(ib, il, i64Type, v);
            scf::YieldOp::create(
                ib, il,
                ValueRange{arith::MinSIOp::create(ib, il, inner[0], v),
                           arith::MaxSIOp::create(ib, il, inner[1], v)});
          });
      return SmallVector<Value>(loop.getResults());
    };
    Value init[] = {i64(std::numeric_limits<int64_t>::max()),
                    i64(std::numeric_limits<int64_t>::min())};
    SmallVector<Value> scan = nest(b, loc, 0, init);
    Value lo = scan[0], hi = scan[1];
    if (element.isInteger(1)) {
      Value unknown = notOf(inBounds);
      truths[load.getResult()] = {orOf(cmp(P::eq, hi, i64(1)), unknown),
                                  orOf(cmp(P::eq, lo, i64(0)), unknown)};
      return;
    }
    ranges[load.getResult()] = {lo, hi, inBounds};
  }

  OpBuilder &b;
  Location loc;
  DenseMap<Value, Range> ranges;
  DenseMap<Value, Truth> truths;
};

} // namespace

func::FuncOp mlir::loom::cpu::buildAttentionMaskBlock(OpBuilder &b, Block *body,
                                                      Location loc,
                                                      StringRef name,
                                                      Region &region,
                                                      TypeRange captures) {
  SmallVector<Type> args(6, b.getIndexType());
  llvm::append_range(args, captures);
  func::FuncOp func = createFunction(b, body, loc, name, args, {b.getI32Type()});
  Block *entry = &func.front();
  IntervalEmitter e(b, loc);
  SmallVector<Value> in;
  for (unsigned k = 0; k < 6; ++k)
    in.push_back(e.toI64(entry->getArgument(k)));
  Value one = e.i64(1);
  // The region's ops are copied into the function, with b, h, i, j read as
  // b, h, i0, j0 and the captures as the function's arguments, and the
  // copies are interpreted: those arguments carry the ranges of the block
  // arguments. The copies themselves are dead and erased afterwards, except
  // those the interpretation reads (memref.dim).
  Block &block = region.front();
  IRMapping mapping;
  for (auto [k, arg] : llvm::enumerate(std::array<unsigned, 4>{0, 1, 2, 4}))
    mapping.map(block.getArgument(k), entry->getArgument(arg));
  e.setRange(entry->getArgument(0), {in[0], in[0], e.flag(true)});
  e.setRange(entry->getArgument(1), {in[1], in[1], e.flag(true)});
  e.setRange(entry->getArgument(2),
             {in[2], arith::SubIOp::create(b, loc, in[3], one), e.flag(true)});
  e.setRange(entry->getArgument(4),
             {in[4], arith::SubIOp::create(b, loc, in[5], one), e.flag(true)});
  for (unsigned k = 0; k < captures.size(); ++k)
    mapping.map(block.getArgument(4 + k), entry->getArgument(6 + k));
  ValueRange captureArgs = entry->getArguments().drop_front(6);
  SmallVector<Operation *> copies;
  for (Operation &op : block.without_terminator()) {
    Operation *copy = b.clone(op, mapping);
    copies.push_back(copy);
    e.visit(copy, captureArgs);
  }
  Value yielded = mapping.lookupOrDefault(block.getTerminator()->getOperand(0));
  Truth t = e.truth(yielded);
  using P = arith::CmpIPredicate;
  Value nonEmpty =
      e.andOf(e.cmp(P::slt, in[2], in[3]), e.cmp(P::slt, in[4], in[5]));
  Value result = e.classify({e.andOf(t.canTrue, nonEmpty), t.canFalse});
  func::ReturnOp::create(b, loc, result);
  for (Operation *copy : llvm::reverse(copies))
    if (copy->use_empty())
      copy->erase();
  return func;
}

LogicalResult mlir::loom::cpu::lowerAttentionToRuntime(ModuleOp module,
                                                       fuse::AttentionOp op,
                                                       unsigned index) {
  if (!op.hasPureBufferSemantics())
    return op.emitOpError("must be bufferized before it becomes a call");
  auto qType = cast<MemRefType>(op.getQ().getType());
  if (!qType.getElementType().isF32())
    return op.emitOpError("has a CPU kernel for f32 only, not ")
           << qType.getElementType();
  MLIRContext *ctx = module.getContext();
  Location loc = op.getLoc();
  OpBuilder b(ctx);
  std::string suffix = std::to_string(index);
  ValueRange captures = op.getCaptures();

  uint32_t flags = 0;
  if (!op.getMask().empty()) {
    Region &mask = op.getMask();
    buildRowFunction(b, module, loc, (kAttentionMaskRowPrefix + suffix).str(),
                     mask, /*score=*/false, captures);
    buildAttentionMaskBlock(b, module.getBody(), loc,
                            (kAttentionMaskBlockPrefix + suffix).str(), mask,
                            captures.getTypes());
    if (!mask.getArgument(0).use_empty())
      flags |= LOOM_ATTENTION_MASK_USES_B;
    if (!mask.getArgument(1).use_empty())
      flags |= LOOM_ATTENTION_MASK_USES_H;
  }
  if (!op.getScore().empty())
    buildRowFunction(b, module, loc, (kAttentionScoreRowPrefix + suffix).str(),
                     op.getScore(), /*score=*/true, captures);

  // The launch: q, k, v, out, lse, scale, flags, captures.
  b.setInsertionPoint(op);
  Type f32 = b.getF32Type();
  SmallVector<Type> argTypes;
  SmallVector<Value> args;
  for (Value buffer :
       {op.getQ(), op.getK(), op.getV(), op.getOutInit(), op.getLseInit()}) {
    Type castType =
        dynamicStrided(ctx, cast<MemRefType>(buffer.getType()).getRank(), f32);
    argTypes.push_back(castType);
    args.push_back(memref::CastOp::create(b, loc, castType, buffer));
  }
  argTypes.push_back(f32);
  args.push_back(arith::ConstantOp::create(
      b, loc,
      b.getF32FloatAttr(static_cast<float>(op.getScale().convertToDouble()))));
  argTypes.push_back(b.getI32Type());
  args.push_back(arith::ConstantIntOp::create(b, loc, b.getI32Type(), flags));
  llvm::append_range(argTypes, captures.getTypes());
  llvm::append_range(args, captures);
  OpBuilder atEnd = OpBuilder::atBlockEnd(module.getBody());
  auto launch =
      func::FuncOp::create(atEnd, loc, (kAttentionLaunchPrefix + suffix).str(),
                           atEnd.getFunctionType(argTypes, {}));
  launch.setPrivate();
  func::CallOp::create(b, loc, launch, args);
  op->erase();
  return success();
}
