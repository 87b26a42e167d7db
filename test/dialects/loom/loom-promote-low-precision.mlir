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

// -----

// Attention reads f32 copies of q, k and v; its captures keep their type
// (the regions read them as they are). The score region takes the f32
// score, rounds it to bf16, computes as written and widens its result, so
// that the scores are those of the bf16 model.
// CHECK-LABEL: func @attention_score
// CHECK: %[[Q:.*]] = loom.cast %arg0 : tensor<?x2x?x16xbf16> -> tensor<?x2x?x16xf32>
// CHECK: %[[O:.*]], %[[L:.*]] = loom.attention %[[Q]], %{{.*}}, %{{.*}} captures(%arg1 : tensor<2x?x?xbf16>) {scale = 2.500000e-01 : f64} : tensor<?x2x?x16xf32>, tensor<?x2x?x16xf32>, tensor<?x2x?x16xf32> -> tensor<?x2x?x16xf32>, tensor<?x2x?xf32>
// CHECK: score {
// CHECK: ^bb0(%{{.*}}: index, %[[H:.*]]: index, %[[I:.*]]: index, %[[J:.*]]: index, %[[S:.*]]: f32, %[[BIAS:.*]]: tensor<2x?x?xbf16>):
// CHECK: %[[R:.*]] = arith.truncf %[[S]] : f32 to bf16
// CHECK: %[[X:.*]] = tensor.extract %[[BIAS]][%[[H]], %[[I]], %[[J]]] : tensor<2x?x?xbf16>
// CHECK: %[[Y:.*]] = arith.addf %[[R]], %[[X]] : bf16
// CHECK: %[[W:.*]] = arith.extf %[[Y]] : bf16 to f32
// CHECK: loom.yield %[[W]] : f32
// CHECK: loom.cast %[[O]] : tensor<?x2x?x16xf32> -> tensor<?x2x?x16xbf16>
func.func @attention_score(%q: tensor<?x2x?x16xbf16>, %bias: tensor<2x?x?xbf16>) -> tensor<?x2x?x16xbf16> {
  %o, %l = loom.attention %q, %q, %q captures(%bias : tensor<2x?x?xbf16>) {scale = 0.25 : f64}
      : tensor<?x2x?x16xbf16>, tensor<?x2x?x16xbf16>, tensor<?x2x?x16xbf16>
      -> tensor<?x2x?x16xbf16>, tensor<?x2x?xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %s: bf16, %bt: tensor<2x?x?xbf16>):
      %x = tensor.extract %bt[%h, %i, %j] : tensor<2x?x?xbf16>
      %y = arith.addf %s, %x : bf16
      loom.yield %y : bf16
    }
  return %o : tensor<?x2x?x16xbf16>
}
