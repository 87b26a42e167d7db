// RUN: loom-opt %s --split-input-file --loom-cpu-copy-to-linalg | FileCheck %s

// CHECK-LABEL: func @strided
// CHECK-SAME: (%[[A:.*]]: memref<?x4xf32, strided<[8, 1]>>, %[[B:.*]]: memref<?x4xf32>)
// CHECK: linalg.copy ins(%[[A]] : memref<?x4xf32, strided<[8, 1]>>) outs(%[[B]] : memref<?x4xf32>)
// CHECK-NOT: memref.copy
func.func @strided(%a: memref<?x4xf32, strided<[8, 1]>>, %b: memref<?x4xf32>) {
  memref.copy %a, %b : memref<?x4xf32, strided<[8, 1]>> to memref<?x4xf32>
  return
}

// -----

// Unranked copies have no linalg form and stay.
// CHECK-LABEL: func @unranked
// CHECK: memref.copy
func.func @unranked(%a: memref<*xf32>, %b: memref<*xf32>) {
  memref.copy %a, %b : memref<*xf32> to memref<*xf32>
  return
}

// -----

// A copy of a buffer onto itself is dropped.
// CHECK-LABEL: func @self
// CHECK-NOT: copy
func.func @self(%a: memref<?x4xf32>) {
  memref.copy %a, %a : memref<?x4xf32> to memref<?x4xf32>
  return
}
