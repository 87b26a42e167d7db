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

// -----

// A loop result that each step passes through unchanged is the buffer the
// loop started from (a destination updated in place by every step), so its
// copy back into that buffer is dropped; a copy into another buffer stays.
// CHECK-LABEL: func @loop_in_place
// CHECK-SAME: (%[[A:[^:]*]]: memref<8x4xf32>, %[[B:[^:]*]]: memref<8x4xf32>
// CHECK-NOT: copy
// CHECK: scf.for
// CHECK-NOT: iter_args
// CHECK-NOT: copy
// CHECK: memref.store %{{.*}}, %[[A]]
// CHECK-NOT: copy
// CHECK: linalg.copy ins(%[[A]] : memref<8x4xf32>) outs(%[[B]] : memref<8x4xf32>)
// CHECK-NOT: copy
func.func @loop_in_place(%a: memref<8x4xf32>, %b: memref<8x4xf32>, %n: index, %x: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %r = scf.for %i = %c0 to %n step %c1 iter_args(%acc = %a) -> (memref<8x4xf32>) {
    memref.store %x, %acc[%c0, %c0] : memref<8x4xf32>
    scf.yield %acc : memref<8x4xf32>
  }
  memref.copy %r, %a : memref<8x4xf32> to memref<8x4xf32>
  memref.copy %r, %b : memref<8x4xf32> to memref<8x4xf32>
  return
}

// -----

// The same for an `scf.if` whose branches both yield the buffer they wrote
// in place.
// CHECK-LABEL: func @if_in_place
// CHECK-NOT: copy
// CHECK: scf.if
// CHECK-NOT: copy
// CHECK: return
func.func @if_in_place(%a: memref<8x4xf32>, %c: i1, %x: f32) {
  %c0 = arith.constant 0 : index
  %r = scf.if %c -> (memref<8x4xf32>) {
    memref.store %x, %a[%c0, %c0] : memref<8x4xf32>
    scf.yield %a : memref<8x4xf32>
  } else {
    linalg.fill ins(%x : f32) outs(%a : memref<8x4xf32>)
    scf.yield %a : memref<8x4xf32>
  }
  memref.copy %r, %a : memref<8x4xf32> to memref<8x4xf32>
  return
}
