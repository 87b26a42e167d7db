//===- LoomBuilder.h - Writing loom ops from passes -------------*- C++ -*-===//
//
// This file defines a small helper for graph passes that write sequences of
// `loom` ops: every op is built with checked shapes, and the first failure
// (already reported at the location) is remembered, so a rewrite reads like
// the .loom source it stands for and checks for errors once at the end.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DIALECTS_LOOM_IR_LOOMBUILDER_H
#define LOOM_DIALECTS_LOOM_IR_LOOMBUILDER_H

#include "dialects/loom/IR/LoomOps.h"
#include "mlir/IR/BuiltinAttributes.h"

namespace mlir::loom {

/// Builds `loom` ops at one location and remembers the first failure, so a
/// sequence of steps reads like the .loom source it replaces.
class LoomBuilder {
public:
  LoomBuilder(OpBuilder &builder, Location loc) : b(builder), loc(loc) {}

  Value op(StringRef name, ValueRange operands,
           ArrayRef<NamedAttribute> attrs = {}, Type type = {}) {
    if (failed || llvm::any_of(operands, [](Value v) { return !v; })) {
      failed = true;
      return {};
    }
    FailureOr<Value> v = buildChecked(b, loc, name, operands, attrs, type);
    if (::mlir::failed(v)) {
      failed = true;
      return {};
    }
    return *v;
  }
  NamedAttribute attr(StringRef name, Attribute value) {
    return b.getNamedAttr(name, value);
  }
  NamedAttribute i64(StringRef name, int64_t value) {
    return attr(name, b.getI64IntegerAttr(value));
  }
  NamedAttribute i64s(StringRef name, ArrayRef<int64_t> values) {
    return attr(name, b.getDenseI64ArrayAttr(values));
  }
  Value slice(Value x, int64_t axis, int64_t start, int64_t end) {
    return op("loom.slice", x,
              {i64("axis", axis), i64("start", start), i64("end", end)});
  }
  Value reshape(Value x, ArrayRef<int64_t> shape) {
    return op("loom.reshape", x, {i64s("shape", shape)});
  }
  Value transpose(Value x, ArrayRef<int64_t> perm) {
    return op("loom.transpose", x, {i64s("permutation", perm)});
  }
  Value scalar(Type element, double value) {
    auto type = RankedTensorType::get({}, element);
    Attribute a = isa<FloatType>(element)
                      ? Attribute(b.getFloatAttr(element, value))
                      : Attribute(b.getIntegerAttr(element, int64_t(value)));
    return op("loom.constant", {},
              {attr("value", DenseElementsAttr::get(type, a))}, type);
  }
  Value iota(Value like, int64_t axis, Type element) {
    if (!like) {
      failed = true;
      return {};
    }
    auto likeType = cast<RankedTensorType>(like.getType());
    return op("loom.iota", like, {i64("axis", axis)},
              RankedTensorType::get(likeType.getShape(), element));
  }

  OpBuilder &b;
  Location loc;
  bool failed = false;
};

} // namespace mlir::loom

#endif // LOOM_DIALECTS_LOOM_IR_LOOMBUILDER_H
