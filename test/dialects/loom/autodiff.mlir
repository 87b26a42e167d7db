// RUN: loom-opt %s --split-input-file --verify-diagnostics --loom-autodiff | FileCheck %s

// Reverse-mode rules, shown as IR: a broadcast operand is summed back to its
// shape, and the backward of an lm-head token log-prob is one op.

// CHECK-LABEL: func @mul_sum
// CHECK-SAME: (%[[X:.*]]: tensor<?x4xf32>, %[[Y:.*]]: tensor<4xf32>)
// CHECK: %[[ONE:.*]] = loom.constant dense<1.000000e+00> : tensor<f32>
// CHECK: %[[R:.*]] = loom.reshape %[[ONE]] {shape = array<i64: 1, 1>}
// CHECK: %[[G:.*]] = loom.broadcast %[[R]] like
// CHECK: %[[GX:.*]] = loom.mul %[[G]], %[[Y]]
// CHECK: %[[GY0:.*]] = loom.mul %[[G]], %[[X]]
// CHECK: %[[GY:.*]] = loom.sum %[[GY0]] {axes = array<i64: 0>} : tensor<?x4xf32> -> tensor<4xf32>
// CHECK: return %[[GX]], %[[GY]]
func.func @mul_sum(%x: tensor<?x4xf32>, %y: tensor<4xf32>) -> (tensor<?x4xf32>, tensor<4xf32>) {
  %m = loom.mul %x, %y : tensor<?x4xf32>, tensor<4xf32> -> tensor<?x4xf32>
  %l = loom.sum %m {axes = array<i64: 0, 1>} : tensor<?x4xf32> -> tensor<f32>
  %g:2 = loom.grad %l, %x, %y : (tensor<f32>, tensor<?x4xf32>, tensor<4xf32>) -> (tensor<?x4xf32>, tensor<4xf32>)
  return %g#0, %g#1 : tensor<?x4xf32>, tensor<4xf32>
}

// -----

// CHECK-LABEL: func @lm_head
// CHECK-SAME: (%[[H:.*]]: tensor<?x?x8xf32>, %[[IDS:.*]]: tensor<?x?xi64>, %[[W:.*]]: tensor<100x8xf32>
// CHECK: %[[LP:.*]] = loom.token_logprob %[[H]], %[[IDS]] weight %[[W]]
// CHECK: %[[R:.*]] = loom.exp
// CHECK: %[[N:.*]] = loom.sum {{.*}} -> tensor<f32>
// CHECK: loom.div {{.*}}, %[[N]]
// CHECK: %[[DLP:.*]] = loom.mul {{.*}}, %[[R]]
// CHECK: %[[GH:.*]], %[[GW:.*]] = loom.token_logprob_grad %[[H]], %[[IDS]], %[[DLP]] weight %[[W]] {temperature = 0.69999999999999996 : f64}
// CHECK: return %[[GH]], %[[GW]]
func.func @lm_head(%h: tensor<?x?x8xf32>, %ids: tensor<?x?xi64>, %w: tensor<100x8xf32>, %old: tensor<?x?xf32>) -> (tensor<?x?x8xf32>, tensor<100x8xf32>) {
  %lp = loom.token_logprob %h, %ids weight %w {temperature = 0.7 : f64} : tensor<?x?x8xf32>, tensor<?x?xi64>, tensor<100x8xf32> -> tensor<?x?xf32>
  %d = loom.sub %lp, %old : tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
  %r = loom.exp %d : tensor<?x?xf32> -> tensor<?x?xf32>
  %l = loom.mean %r {axes = array<i64: 0, 1>} : tensor<?x?xf32> -> tensor<f32>
  %g:2 = loom.grad %l, %h, %w : (tensor<f32>, tensor<?x?x8xf32>, tensor<100x8xf32>) -> (tensor<?x?x8xf32>, tensor<100x8xf32>)
  return %g#0, %g#1 : tensor<?x?x8xf32>, tensor<100x8xf32>
}

// -----

// max splits a tie; stop_gradient is dropped after the expansion and its
// operand gets no adjoint.
// CHECK-LABEL: func @max_detach
// CHECK-NOT: loom.stop_gradient
// CHECK: %[[HALF:.*]] = loom.constant dense<5.000000e-01>
// CHECK: %[[GT:.*]] = loom.cmp "gt"
// CHECK: %[[EQ:.*]] = loom.cmp "eq"
// CHECK: loom.select %[[EQ]], %[[HALF]]
// CHECK: %[[Z:.*]] = loom.constant dense<0.000000e+00>
// CHECK: %[[GY:.*]] = loom.broadcast %[[Z]] like
// CHECK-NOT: loom.grad
// CHECK: return {{.*}}, %[[GY]]
func.func @max_detach(%x: tensor<3xf32>, %y: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>) {
  %d = loom.stop_gradient %y : tensor<3xf32> -> tensor<3xf32>
  %m = loom.max %x, %d : tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
  %l = loom.sum %m {axes = array<i64: 0>} : tensor<3xf32> -> tensor<f32>
  %g:2 = loom.grad %l, %x, %y : (tensor<f32>, tensor<3xf32>, tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>)
  return %g#0, %g#1 : tensor<3xf32>, tensor<3xf32>
}

// -----

func.func @no_rule(%r: tensor<2x3xf32>, %v: tensor<2x3xf32>, %m: tensor<2x3xf32>) -> tensor<2x3xf32> {
  // expected-error @below {{'loom.gae' op has no derivative rule, but it is on a path from a value of 'grad' to its loss}}
  %a = loom.gae %r, %v, %m {gamma = 1.0 : f64, lam = 0.9 : f64} : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32> -> tensor<2x3xf32>
  %l = loom.sum %a {axes = array<i64: 0, 1>} : tensor<2x3xf32> -> tensor<f32>
  %g = loom.grad %l, %v : (tensor<f32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %g : tensor<2x3xf32>
}
