// RUN: loom-opt %s --split-input-file --loom-autodiff | FileCheck %s

// The derivative rules of the ops the RL objectives use, one function each
// (their numbers are checked against central differences in
// test/compiler/Autodiff/GradCheckTest.cpp).

// d(a / b): g / b and -(g * r) / b.
// CHECK-LABEL: func @div
// CHECK-SAME: (%[[A:.*]]: tensor<4xf32>, %[[B:.*]]: tensor<4xf32>)
// CHECK: %[[R:.*]] = loom.div %[[A]], %[[B]]
// CHECK: %[[G:.*]] = loom.broadcast
// CHECK: %[[GA:.*]] = loom.div %[[G]], %[[B]]
// CHECK: %[[GR:.*]] = loom.mul %[[G]], %[[R]]
// CHECK: %[[Q:.*]] = loom.div %[[GR]], %[[B]]
// CHECK: %[[GB:.*]] = loom.neg %[[Q]]
// CHECK: return %[[GA]], %[[GB]]
func.func @div(%a: tensor<4xf32>, %b: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %r = loom.div %a, %b : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
  %l = loom.sum %r {axes = array<i64: 0>} : tensor<4xf32> -> tensor<f32>
  %g:2 = loom.grad %l, %a, %b : (tensor<f32>, tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %g#0, %g#1 : tensor<4xf32>, tensor<4xf32>
}

// -----

// min gives the smaller operand the gradient, half on a tie.
// CHECK-LABEL: func @min
// CHECK: %[[LT:.*]] = loom.cmp "lt" %arg0, %arg1
// CHECK: %[[EQ:.*]] = loom.cmp "eq" %arg0, %arg1
// CHECK: %[[TIE:.*]] = loom.select %[[EQ]]
// CHECK: %[[W:.*]] = loom.select %[[LT]], {{.*}}, %[[TIE]]
// CHECK: loom.mul {{.*}}, %[[W]]
// CHECK: loom.cmp "gt" %arg0, %arg1
func.func @min(%a: tensor<4xf32>, %b: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %r = loom.min %a, %b : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
  %l = loom.sum %r {axes = array<i64: 0>} : tensor<4xf32> -> tensor<f32>
  %g:2 = loom.grad %l, %a, %b : (tensor<f32>, tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %g#0, %g#1 : tensor<4xf32>, tensor<4xf32>
}

// -----

// where(c, x, y): the gradient goes to the branch taken.
// CHECK-LABEL: func @select
// CHECK-SAME: (%[[C:.*]]: tensor<4xi1>
// CHECK: %[[G:.*]] = loom.broadcast
// CHECK: %[[Z1:.*]] = loom.constant dense<0.000000e+00>
// CHECK: %[[GX:.*]] = loom.select %[[C]], %[[G]], %[[Z1]]
// CHECK: %[[Z2:.*]] = loom.constant dense<0.000000e+00>
// CHECK: %[[GY:.*]] = loom.select %[[C]], %[[Z2]], %[[G]]
// CHECK: return %[[GX]], %[[GY]]
func.func @select(%c: tensor<4xi1>, %x: tensor<4xf32>, %y: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %r = loom.select %c, %x, %y : tensor<4xi1>, tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
  %l = loom.sum %r {axes = array<i64: 0>} : tensor<4xf32> -> tensor<f32>
  %g:2 = loom.grad %l, %x, %y : (tensor<f32>, tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %g#0, %g#1 : tensor<4xf32>, tensor<4xf32>
}

// -----

// exp, log, abs (sign, 0 at 0) and neg.
// CHECK-LABEL: func @unary
// CHECK: %[[E:.*]] = loom.exp %arg0
// CHECK: %[[AB:.*]] = loom.abs %[[E]]
// CHECK: %[[LG:.*]] = loom.log %[[AB]]
// CHECK: %[[N:.*]] = loom.neg %[[LG]]
// CHECK: %[[G1:.*]] = loom.neg
// CHECK: %[[G2:.*]] = loom.div %[[G1]], %[[AB]]
// CHECK: loom.cmp "gt" %[[E]]
// CHECK: loom.cmp "lt" %[[E]]
// CHECK: %[[G3:.*]] = loom.mul %[[G2]]
// CHECK: %[[G4:.*]] = loom.mul %[[G3]], %[[E]]
// CHECK: return %[[G4]]
func.func @unary(%x: tensor<4xf32>) -> tensor<4xf32> {
  %e = loom.exp %x : tensor<4xf32> -> tensor<4xf32>
  %a = loom.abs %e : tensor<4xf32> -> tensor<4xf32>
  %lg = loom.log %a : tensor<4xf32> -> tensor<4xf32>
  %n = loom.neg %lg : tensor<4xf32> -> tensor<4xf32>
  %l = loom.sum %n {axes = array<i64: 0>} : tensor<4xf32> -> tensor<f32>
  %g = loom.grad %l, %x : (tensor<f32>, tensor<4xf32>) -> tensor<4xf32>
  return %g : tensor<4xf32>
}

// -----

// mean over a symbolic axis divides by the count taken at run time, then
// stretches back with a reshape that copies the kept symbolic dim.
// CHECK-LABEL: func @mean
// CHECK: %[[ONES:.*]] = loom.broadcast {{.*}} like %arg0
// CHECK: %[[N:.*]] = loom.sum %[[ONES]] {axes = array<i64: 1>}
// CHECK: %[[Q:.*]] = loom.div {{.*}}, %[[N]]
// CHECK: %[[K:.*]] = loom.reshape %[[Q]] {shape = array<i64: 0, 1>} : tensor<?xf32> -> tensor<?x1xf32>
// CHECK: loom.broadcast %[[K]] like %arg0
func.func @mean(%x: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %m = loom.mean %x {axes = array<i64: 1>} : tensor<?x?xf32> -> tensor<?xf32>
  %l = loom.sum %m {axes = array<i64: 0>} : tensor<?xf32> -> tensor<f32>
  %g = loom.grad %l, %x : (tensor<f32>, tensor<?x?xf32>) -> tensor<?x?xf32>
  return %g : tensor<?x?xf32>
}

// -----

// reshape and slice: the inverse reshape, the slice's gradient between zeros
// shaped like the parts cut off.
// CHECK-LABEL: func @reshape_slice
// CHECK: %[[HEAD:.*]] = loom.slice %[[P:.*]] {axis = 0 : i64, end = 1 : i64, start = 0 : i64
// CHECK: %[[Z:.*]] = loom.broadcast {{.*}} like %[[HEAD]]
// CHECK: %[[C:.*]] = loom.concat %[[Z]], {{.*}} {axis = 0 : i64}
// CHECK: loom.reshape %[[C]] {shape = array<i64: -1>} : tensor<2x?xf32> -> tensor<?xf32>
func.func @reshape_slice(%x: tensor<?xf32>) -> tensor<?xf32> {
  %p = loom.reshape %x {shape = array<i64: 2, -1>} : tensor<?xf32> -> tensor<2x?xf32>
  %s = loom.slice %p {axis = 0 : i64, start = 1 : i64, end = 2 : i64} : tensor<2x?xf32> -> tensor<1x?xf32>
  %l = loom.sum %s {axes = array<i64: 0, 1>} : tensor<1x?xf32> -> tensor<f32>
  %g = loom.grad %l, %x : (tensor<f32>, tensor<?xf32>) -> tensor<?xf32>
  return %g : tensor<?xf32>
}

// -----

// kl k3: d/dlogp = 1 - exp(-(logp - ref)); its negation for ref.
// CHECK-LABEL: func @kl
// CHECK: %[[U:.*]] = loom.sub %arg0, %arg1
// CHECK: %[[NU:.*]] = loom.neg %[[U]]
// CHECK: %[[E:.*]] = loom.exp %[[NU]]
// CHECK: %[[D:.*]] = loom.sub {{.*}}, %[[E]]
// CHECK: %[[GP:.*]] = loom.mul {{.*}}, %[[D]]
// CHECK: %[[GR:.*]] = loom.neg %[[GP]]
// CHECK: return %[[GP]], %[[GR]]
func.func @kl(%p: tensor<4xf32>, %r: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %k = loom.kl %p, %r {estimator = "k3"} : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
  %l = loom.sum %k {axes = array<i64: 0>} : tensor<4xf32> -> tensor<f32>
  %g:2 = loom.grad %l, %p, %r : (tensor<f32>, tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %g#0, %g#1 : tensor<4xf32>, tensor<4xf32>
}

// -----

// token_logprob on logits: one token_logprob_grad with the temperature.
// CHECK-LABEL: func @token_logprob
// CHECK: %[[G:.*]] = loom.broadcast
// CHECK: %[[D:.*]] = loom.token_logprob_grad %arg0, %arg1, %[[G]] {temperature = 5.000000e-01 : f64} : tensor<?x7xf32>, tensor<?xi64>, tensor<?xf32> -> tensor<?x7xf32>
// CHECK: return %[[D]]
func.func @token_logprob(%z: tensor<?x7xf32>, %ids: tensor<?xi64>) -> tensor<?x7xf32> {
  %lp = loom.token_logprob %z, %ids {temperature = 0.5 : f64} : tensor<?x7xf32>, tensor<?xi64> -> tensor<?xf32>
  %l = loom.sum %lp {axes = array<i64: 0>} : tensor<?xf32> -> tensor<f32>
  %g = loom.grad %l, %z : (tensor<f32>, tensor<?x7xf32>) -> tensor<?x7xf32>
  return %g : tensor<?x7xf32>
}
