// RUN: loom-opt %s --split-input-file --canonicalize | FileCheck %s

// CHECK-LABEL: func @add_zero
// CHECK-SAME: (%[[X:.*]]: tensor<?x4xf32>)
// CHECK-NEXT: return %[[X]]
func.func @add_zero(%x: tensor<?x4xf32>) -> tensor<?x4xf32> {
  %z = loom.constant dense<0.0> : tensor<f32>
  %0 = loom.add %x, %z : tensor<?x4xf32>, tensor<f32> -> tensor<?x4xf32>
  return %0 : tensor<?x4xf32>
}

// -----

// The constant broadcasts x: the add must stay.
// CHECK-LABEL: func @add_zero_broadcasting
// CHECK: loom.add
func.func @add_zero_broadcasting(%x: tensor<4xf32>) -> tensor<3x4xf32> {
  %z = loom.constant dense<0.0> : tensor<3x4xf32>
  %0 = loom.add %x, %z : tensor<4xf32>, tensor<3x4xf32> -> tensor<3x4xf32>
  return %0 : tensor<3x4xf32>
}

// -----

// CHECK-LABEL: func @sub_mul_div_identities
// CHECK-SAME: (%[[X:.*]]: tensor<4xi64>)
// CHECK-NEXT: return %[[X]]
func.func @sub_mul_div_identities(%x: tensor<4xi64>) -> tensor<4xi64> {
  %z = loom.constant dense<0> : tensor<i64>
  %o = loom.constant dense<1> : tensor<i64>
  %0 = loom.sub %x, %z : tensor<4xi64>, tensor<i64> -> tensor<4xi64>
  %1 = loom.mul %0, %o : tensor<4xi64>, tensor<i64> -> tensor<4xi64>
  %2 = loom.div %1, %o : tensor<4xi64>, tensor<i64> -> tensor<4xi64>
  return %2 : tensor<4xi64>
}

// -----

// CHECK-LABEL: func @fold_splats
// CHECK: %[[C:.*]] = loom.constant dense<7.000000e+00> : tensor<f32>
// CHECK-NEXT: return %[[C]]
func.func @fold_splats() -> tensor<f32> {
  %a = loom.constant dense<2.0> : tensor<f32>
  %b = loom.constant dense<3.0> : tensor<f32>
  %c = loom.constant dense<1.0> : tensor<f32>
  %0 = loom.mul %a, %b : tensor<f32>, tensor<f32> -> tensor<f32>
  %1 = loom.add %0, %c : tensor<f32>, tensor<f32> -> tensor<f32>
  return %1 : tensor<f32>
}

// -----

// Multiplying by zero is not folded: x may hold NaN or infinity.
// CHECK-LABEL: func @mul_zero_kept
// CHECK: loom.mul
func.func @mul_zero_kept(%x: tensor<4xf32>) -> tensor<4xf32> {
  %z = loom.constant dense<0.0> : tensor<f32>
  %0 = loom.mul %x, %z : tensor<4xf32>, tensor<f32> -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// CHECK-LABEL: func @double_neg
// CHECK-SAME: (%[[X:.*]]: tensor<4xf32>)
// CHECK-NEXT: return %[[X]]
func.func @double_neg(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = loom.neg %x : tensor<4xf32> -> tensor<4xf32>
  %1 = loom.neg %0 : tensor<4xf32> -> tensor<4xf32>
  return %1 : tensor<4xf32>
}

// -----

// CHECK-LABEL: func @transposes
// CHECK-SAME: (%[[X:.*]]: tensor<2x3x4xf32>)
// CHECK-NEXT: %[[T:.*]] = loom.transpose %[[X]] {permutation = array<i64: 2, 0, 1>}
// CHECK-NEXT: return %[[T]]
func.func @transposes(%x: tensor<2x3x4xf32>) -> tensor<4x2x3xf32> {
  %0 = loom.transpose %x {permutation = array<i64: 1, 0, 2>} : tensor<2x3x4xf32> -> tensor<3x2x4xf32>
  %1 = loom.transpose %0 {permutation = array<i64: 2, 1, 0>} : tensor<3x2x4xf32> -> tensor<4x2x3xf32>
  return %1 : tensor<4x2x3xf32>
}

// -----

// CHECK-LABEL: func @identity_transpose
// CHECK-SAME: (%[[X:.*]]: tensor<2x3xf32>)
// CHECK-NEXT: return %[[X]]
func.func @identity_transpose(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = loom.transpose %x {permutation = array<i64: 0, 1>} : tensor<2x3xf32> -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// CHECK-LABEL: func @reshapes
// CHECK-SAME: (%[[X:.*]]: tensor<4x6xf32>)
// CHECK-NEXT: %[[R:.*]] = loom.reshape %[[X]] {shape = array<i64: 3, 8>}
// CHECK-NEXT: return %[[R]]
func.func @reshapes(%x: tensor<4x6xf32>) -> tensor<3x8xf32> {
  %0 = loom.reshape %x {shape = array<i64: 24>} : tensor<4x6xf32> -> tensor<24xf32>
  %1 = loom.reshape %0 {shape = array<i64: 3, 8>} : tensor<24xf32> -> tensor<3x8xf32>
  return %1 : tensor<3x8xf32>
}

// -----

// CHECK-LABEL: func @noop_cast_broadcast_reshape
// CHECK-SAME: (%[[X:.*]]: tensor<4xf32>)
// CHECK-NEXT: return %[[X]]
func.func @noop_cast_broadcast_reshape(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = loom.cast %x : tensor<4xf32> -> tensor<4xf32>
  %1 = loom.broadcast %0 {shape = array<i64: 4>} : tensor<4xf32> -> tensor<4xf32>
  %2 = loom.reshape %1 {shape = array<i64: 4>} : tensor<4xf32> -> tensor<4xf32>
  return %2 : tensor<4xf32>
}

// -----

// CHECK-LABEL: func @dead_ops
// CHECK-NEXT: return
func.func @dead_ops(%x: tensor<4xf32>) {
  %0 = loom.exp %x : tensor<4xf32> -> tensor<4xf32>
  return
}
