// RUN: loom-opt %s --split-input-file --loom-promote-low-precision | FileCheck %s

// Reductions of bf16 and f16 read f32 copies and round their results back.
// CHECK-LABEL: func @reductions
// CHECK: %[[X:.*]] = loom.cast %arg0 : tensor<?x64xbf16> -> tensor<?x64xf32>
// CHECK: %[[S:.*]] = loom.sum %[[X]] {axes = array<i64: 1>} : tensor<?x64xf32> -> tensor<?xf32>
// CHECK: %[[SB:.*]] = loom.cast %[[S]] : tensor<?xf32> -> tensor<?xbf16>
// CHECK: %[[Y:.*]] = loom.cast %arg1 : tensor<?x8xf16> -> tensor<?x8xf32>
// CHECK: %[[P:.*]] = loom.softmax %[[Y]] {axis = 1 : i64} : tensor<?x8xf32> -> tensor<?x8xf32>
// CHECK: %[[PH:.*]] = loom.cast %[[P]] : tensor<?x8xf32> -> tensor<?x8xf16>
// CHECK: return %[[SB]], %[[PH]]
func.func @reductions(%x: tensor<?x64xbf16>, %y: tensor<?x8xf16>)
    -> (tensor<?xbf16>, tensor<?x8xf16>) {
  %s = loom.sum %x {axes = array<i64: 1>} : tensor<?x64xbf16> -> tensor<?xbf16>
  %p = loom.softmax %y {axis = 1 : i64} : tensor<?x8xf16> -> tensor<?x8xf16>
  return %s, %p : tensor<?xbf16>, tensor<?x8xf16>
}

// -----

// Integer operands stay; the log-probs of bf16 logits come out in f32 and
// are rounded back.
// CHECK-LABEL: func @logprob
// CHECK: %[[L:.*]] = loom.cast %arg0 : tensor<?x?x32xbf16> -> tensor<?x?x32xf32>
// CHECK: %[[R:.*]] = loom.token_logprob %[[L]], %arg1 {{.*}}: tensor<?x?x32xf32>, tensor<?x?xi64> -> tensor<?x?xf32>
// CHECK: loom.cast %[[R]] : tensor<?x?xf32> -> tensor<?x?xbf16>
func.func @logprob(%logits: tensor<?x?x32xbf16>, %ids: tensor<?x?xi64>) -> tensor<?x?xbf16> {
  %r = loom.token_logprob %logits, %ids : tensor<?x?x32xbf16>, tensor<?x?xi64> -> tensor<?x?xbf16>
  return %r : tensor<?x?xbf16>
}

// -----

// Not applied: f32 ops, matrix products (their lowering accumulates in f32)
// and elementwise ops.
// CHECK-LABEL: func @untouched
// CHECK-NOT: loom.cast
// CHECK: loom.sum %arg0
// CHECK: loom.matmul %arg1, %arg1
// CHECK: loom.exp %arg1
func.func @untouched(%x: tensor<?x64xf32>, %m: tensor<8x8xbf16>)
    -> (tensor<?xf32>, tensor<8x8xbf16>, tensor<8x8xbf16>) {
  %s = loom.sum %x {axes = array<i64: 1>} : tensor<?x64xf32> -> tensor<?xf32>
  %p = loom.matmul %m, %m : tensor<8x8xbf16>, tensor<8x8xbf16> -> tensor<8x8xbf16>
  %e = loom.exp %m : tensor<8x8xbf16> -> tensor<8x8xbf16>
  return %s, %p, %e : tensor<?xf32>, tensor<8x8xbf16>, tensor<8x8xbf16>
}
