//===- LoomBase.td - Loom dialect definition ---------------*- tablegen -*-===//
//
// This file defines the `loom` dialect: the graph-level op set users think
// in, with value semantics on ranked tensors.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_BASE_TD
#define LOOM_BASE_TD

include "mlir/IR/OpBase.td"

def Loom_Dialect : Dialect {
  let name = "loom";
  let cppNamespace = "::mlir::loom";
  let summary = "Graph-level ops of Loom models";
  let description = [{
    The `loom` dialect holds the ops a `.loom` model is written in: matrix
    products, elementwise math with broadcasting, reductions, normalization,
    softmax and data movement. All ops take and return ranked tensors; a
    dimension is static or `?` (a symbolic dimension bound at run time).

    Broadcasting follows NumPy's rule, decided at compile time: shapes are
    aligned at the trailing dimension; two dimensions are compatible when
    they are equal (both static and equal, or both `?`) or one of them is
    the static size 1, which stretches. A `?` never stretches: a symbolic
    dimension that is 1 at run time is treated as that size, not as a
    broadcast.
  }];
  let hasConstantMaterializer = 1;
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::func::FuncDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::tensor::TensorDialect"];
}

class Loom_Op<string mnemonic, list<Trait> traits = []>
    : Op<Loom_Dialect, mnemonic, traits>;

#endif // LOOM_BASE_TD
