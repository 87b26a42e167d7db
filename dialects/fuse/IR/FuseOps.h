//===- FuseOps.h - Fused-kernel dialect -------------------------*- C++ -*-===//
//
// This file declares the `fuse` dialect and its ops.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DIALECTS_FUSE_IR_FUSEOPS_H
#define LOOM_DIALECTS_FUSE_IR_FUSEOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/fuse/IR/FuseDialect.h.inc"

#define GET_OP_CLASSES
#include "dialects/fuse/IR/FuseOps.h.inc"

#endif // LOOM_DIALECTS_FUSE_IR_FUSEOPS_H
