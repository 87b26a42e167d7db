//===- LoomDialect.h - Loom dialect -----------------------------*- C++ -*-===//
//
// This file declares the `loom` dialect.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DIALECTS_LOOM_IR_LOOMDIALECT_H
#define LOOM_DIALECTS_LOOM_IR_LOOMDIALECT_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Dialect.h"

#include "dialects/loom/IR/LoomDialect.h.inc"

#endif // LOOM_DIALECTS_LOOM_IR_LOOMDIALECT_H
