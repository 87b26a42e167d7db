// RUN: loom-opt %s --loom-graph | FileCheck %s --check-prefix=GRAPH
// RUN: loom-opt %s --loom-graph --loom-to-linalg | FileCheck %s --check-prefix=LINALG
// RUN: loom-opt %s --loom-graph --loom-to-linalg --loom-cpu-codegen | FileCheck %s --check-prefix=LLVM

// The sub-graph is inlined and removed; the identity add folds away.
// GRAPH-LABEL: func.func @main
// GRAPH-NOT: call
// GRAPH: loom.linear
// GRAPH: loom.silu
// GRAPH-NOT: loom.add
// GRAPH-NOT: func.func private @block

// LINALG-LABEL: func.func @main
// LINALG-NOT: = loom.
// LINALG: linalg.matmul
// LINALG: linalg.generic

// Everything is in the LLVM dialect; the matrix product calls the runtime.
// LLVM-DAG: llvm.func @_mlir_ciface_main
// LLVM-DAG: llvm.func @_mlir_ciface_loom_rt_matmul_f32
// LLVM-NOT: linalg.
// LLVM-NOT: memref.
func.func private @block(%x: tensor<?x8xf32>, %w: tensor<16x8xf32>) -> tensor<?x16xf32> {
  %0 = loom.linear %x, %w : tensor<?x8xf32>, tensor<16x8xf32> -> tensor<?x16xf32>
  %1 = loom.silu %0 : tensor<?x16xf32> -> tensor<?x16xf32>
  return %1 : tensor<?x16xf32>
}

func.func @main(%x: tensor<?x8xf32> {loom.role = "input", loom.name = "x", loom.dims = ["B", 8]},
                %w: tensor<16x8xf32> {loom.role = "param", loom.name = "w", loom.binding = "w"})
    -> (tensor<?x16xf32> {loom.role = "output", loom.name = "y", loom.dims = ["B", 16]}) {
  %0 = call @block(%x, %w) : (tensor<?x8xf32>, tensor<16x8xf32>) -> tensor<?x16xf32>
  %z = loom.constant dense<0.0> : tensor<f32>
  %1 = loom.add %0, %z : tensor<?x16xf32>, tensor<f32> -> tensor<?x16xf32>
  return %1 : tensor<?x16xf32>
}
