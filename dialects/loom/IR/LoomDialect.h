//===- LoomDialect.h - Loom dialect -----------------------------*- C++ -*-===//
//
// This file declares the `loom` dialect.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DIALECTS_LOOM_IR_LOOMDIALECT_H
#define LOOM_DIALECTS_LOOM_IR_LOOMDIALECT_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Dialect.h"

#include "dialects/loom/IR/LoomDialect.h.inc"

#endif // LOOM_DIALECTS_LOOM_IR_LOOMDIALECT_H
