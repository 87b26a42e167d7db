// RUN: loom-opt %s --split-input-file --loom-fuse-token-logprob | FileCheck %s
// RUN: loom-opt %s --split-input-file --loom-fuse | FileCheck %s --check-prefix=FUSED
// RUN: loom-opt %s --split-input-file --loom-fuse=logprob=unfused | FileCheck %s --check-prefix=UNFUSED

// Rank-2 hidden states and i64 ids need no reshaping: the op becomes the
// kernel, with fresh outs sized by the token count.
// CHECK-LABEL: func.func @flat(
// CHECK-SAME: %[[H:[^:]*]]: tensor<?x16xf32>, %[[IDS:[^:]*]]: tensor<?xi64>, %[[W:[^:]*]]: tensor<40x16xf32>
// CHECK: %[[N:.*]] = tensor.dim %[[H]], %{{.*}} : tensor<?x16xf32>
// CHECK: %[[LPI:.*]] = tensor.empty(%[[N]]) : tensor<?xf32>
// CHECK: %[[LSEI:.*]] = tensor.empty(%{{.*}}) : tensor<?xf32>
// CHECK: %[[F:.*]]:2 = fuse.token_logprob ins(%[[H]], %[[W]], %[[IDS]] : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>) outs(%[[LPI]], %[[LSEI]] : tensor<?xf32>, tensor<?xf32>) {temperature = 7.500000e-01 : f64} -> tensor<?xf32>, tensor<?xf32>
// CHECK-NOT: loom.token_logprob
// CHECK: return %[[F]]#0
// FUSED-LABEL: func.func @flat(
// FUSED: fuse.token_logprob
// UNFUSED-LABEL: func.func @flat(
// UNFUSED-NOT: fuse.token_logprob
// UNFUSED: loom.token_logprob %{{.*}}, %{{.*}} weight %{{.*}} {temperature = 7.500000e-01 : f64}
func.func @flat(%h: tensor<?x16xf32>, %ids: tensor<?xi64>, %w: tensor<40x16xf32>) -> tensor<?xf32> {
  %lp = loom.token_logprob %h, %ids weight %w {temperature = 0.75 : f64}
      : tensor<?x16xf32>, tensor<?xi64>, tensor<40x16xf32> -> tensor<?xf32>
  return %lp : tensor<?xf32>
}

// -----

// Hidden [B, T, d] with i32 ids [B, T]: the tokens are flattened with
// loom.reshape, the ids cast to i64, and the log-probs reshaped back to
// [B, T] with the sizes of the ids (two dynamic dimensions).
// CHECK-LABEL: func.func @rank3(
// CHECK-SAME: %[[H:[^:]*]]: tensor<?x?x16xf32>, %[[IDS:[^:]*]]: tensor<?x?xi32>, %[[W:[^:]*]]: tensor<40x16xf32>
// CHECK: %[[H2:.*]] = loom.reshape %[[H]] {shape = array<i64: -1, 16>} : tensor<?x?x16xf32> -> tensor<?x16xf32>
// CHECK: %[[I1:.*]] = loom.reshape %[[IDS]] {shape = array<i64: -1>} : tensor<?x?xi32> -> tensor<?xi32>
// CHECK: %[[I64:.*]] = loom.cast %[[I1]] : tensor<?xi32> -> tensor<?xi64>
// CHECK: %[[F:.*]]:2 = fuse.token_logprob ins(%[[H2]], %[[W]], %[[I64]] : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>)
// CHECK-DAG: %[[B:.*]] = tensor.dim %[[IDS]], %c0
// CHECK-DAG: %[[T:.*]] = tensor.dim %[[IDS]], %c1
// CHECK: %[[S:.*]] = tensor.from_elements %[[B]], %[[T]] : tensor<2xindex>
// CHECK: %[[LP:.*]] = tensor.reshape %[[F]]#0(%[[S]]) : (tensor<?xf32>, tensor<2xindex>) -> tensor<?x?xf32>
// CHECK: return %[[LP]]
func.func @rank3(%h: tensor<?x?x16xf32>, %ids: tensor<?x?xi32>, %w: tensor<40x16xf32>) -> tensor<?x?xf32> {
  %lp = loom.token_logprob %h, %ids weight %w
      : tensor<?x?x16xf32>, tensor<?x?xi32>, tensor<40x16xf32> -> tensor<?x?xf32>
  return %lp : tensor<?x?xf32>
}

// -----

// With one dynamic leading dimension the way back is a loom.reshape too.
// CHECK-LABEL: func.func @batch2(
// CHECK: %[[F:.*]]:2 = fuse.token_logprob
// CHECK: loom.reshape %[[F]]#0 {shape = array<i64: 2, -1>} : tensor<?xf32> -> tensor<2x?xf32>
func.func @batch2(%h: tensor<2x?x16xf32>, %ids: tensor<2x?xi64>, %w: tensor<40x16xf32>) -> tensor<2x?xf32> {
  %lp = loom.token_logprob %h, %ids weight %w
      : tensor<2x?x16xf32>, tensor<2x?xi64>, tensor<40x16xf32> -> tensor<2x?xf32>
  return %lp : tensor<2x?xf32>
}

// -----

// The backward takes the log-sum-exp of the forward with the same operands
// and temperature: one forward kernel for both.
// CHECK-LABEL: func.func @shared_lse(
// CHECK-SAME: %[[H:[^:]*]]: tensor<2x?x16xf32>, %[[IDS:[^:]*]]: tensor<2x?xi64>, %[[W:[^:]*]]: tensor<40x16xf32>, %[[G:[^:]*]]: tensor<2x?xf32>
// CHECK: %[[F:.*]]:2 = fuse.token_logprob ins(%{{.*}}, %[[W]], %{{.*}} : {{.*}}) {temperature = 7.500000e-01 : f64}
// CHECK-NOT: fuse.token_logprob ins
// CHECK: %[[G1:.*]] = loom.reshape %[[G]] {shape = array<i64: -1>} : tensor<2x?xf32> -> tensor<?xf32>
// CHECK: %[[DHI:.*]] = tensor.empty(%{{.*}}) : tensor<?x16xf32>
// CHECK: %[[DWI:.*]] = tensor.empty() : tensor<40x16xf32>
// CHECK: %[[D:.*]]:2 = fuse.token_logprob_grad ins(%{{.*}}, %[[W]], %{{.*}}, %[[F]]#1, %[[G1]] : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>) outs(%[[DHI]], %[[DWI]] : tensor<?x16xf32>, tensor<40x16xf32>) {temperature = 7.500000e-01 : f64}
// CHECK: %[[DH:.*]] = loom.reshape %[[D]]#0 {shape = array<i64: 2, -1, 16>} : tensor<?x16xf32> -> tensor<2x?x16xf32>
// CHECK-NOT: loom.token_logprob
// CHECK: return %{{.*}}, %[[DH]], %[[D]]#1
func.func @shared_lse(%h: tensor<2x?x16xf32>, %ids: tensor<2x?xi64>, %w: tensor<40x16xf32>, %g: tensor<2x?xf32>)
    -> (tensor<2x?xf32>, tensor<2x?x16xf32>, tensor<40x16xf32>) {
  %lp = loom.token_logprob %h, %ids weight %w {temperature = 0.75 : f64}
      : tensor<2x?x16xf32>, tensor<2x?xi64>, tensor<40x16xf32> -> tensor<2x?xf32>
  %dh, %dw = loom.token_logprob_grad %h, %ids, %g weight %w {temperature = 0.75 : f64}
      : tensor<2x?x16xf32>, tensor<2x?xi64>, tensor<2x?xf32>, tensor<40x16xf32>
      -> tensor<2x?x16xf32>, tensor<40x16xf32>
  return %lp, %dh, %dw : tensor<2x?xf32>, tensor<2x?x16xf32>, tensor<40x16xf32>
}

// -----

// A forward at another temperature computes other log-sum-exps: the
// backward gets a forward kernel of its own, at its temperature.
// CHECK-LABEL: func.func @own_lse(
// CHECK: fuse.token_logprob ins({{.*}}) {temperature = 1.000000e+00 : f64}
// CHECK: %[[F:.*]]:2 = fuse.token_logprob ins({{.*}}) {temperature = 2.000000e+00 : f64}
// CHECK: fuse.token_logprob_grad ins(%{{.*}}, %{{.*}}, %{{.*}}, %[[F]]#1, %{{.*}} : {{.*}}) {{.*}} {temperature = 2.000000e+00 : f64}
func.func @own_lse(%h: tensor<?x16xf32>, %ids: tensor<?xi64>, %w: tensor<40x16xf32>, %g: tensor<?xf32>)
    -> (tensor<?xf32>, tensor<?x16xf32>, tensor<40x16xf32>) {
  %lp = loom.token_logprob %h, %ids weight %w
      : tensor<?x16xf32>, tensor<?xi64>, tensor<40x16xf32> -> tensor<?xf32>
  %dh, %dw = loom.token_logprob_grad %h, %ids, %g weight %w {temperature = 2.0 : f64}
      : tensor<?x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<40x16xf32>
      -> tensor<?x16xf32>, tensor<40x16xf32>
  return %lp, %dh, %dw : tensor<?xf32>, tensor<?x16xf32>, tensor<40x16xf32>
}

// -----

// A forward that comes after the backward does not dominate it.
// CHECK-LABEL: func.func @forward_after(
// CHECK: %[[F:.*]]:2 = fuse.token_logprob
// CHECK: fuse.token_logprob_grad ins(%{{.*}}, %{{.*}}, %{{.*}}, %[[F]]#1,
// CHECK: fuse.token_logprob ins
func.func @forward_after(%h: tensor<?x16xf32>, %ids: tensor<?xi64>, %w: tensor<40x16xf32>, %g: tensor<?xf32>)
    -> (tensor<?xf32>, tensor<?x16xf32>, tensor<40x16xf32>) {
  %dh, %dw = loom.token_logprob_grad %h, %ids, %g weight %w
      : tensor<?x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<40x16xf32>
      -> tensor<?x16xf32>, tensor<40x16xf32>
  %lp = loom.token_logprob %h, %ids weight %w
      : tensor<?x16xf32>, tensor<?xi64>, tensor<40x16xf32> -> tensor<?xf32>
  return %lp, %dh, %dw : tensor<?xf32>, tensor<?x16xf32>, tensor<40x16xf32>
}

// -----

// The kernels are f32 only: an f64 lm-head form stays for the linalg
// lowering, and so does the form with logits (no weight).
// CHECK-LABEL: func.func @not_fused(
// CHECK-NOT: fuse.
// CHECK: loom.token_logprob %{{.*}}, %{{.*}} weight %{{.*}} : tensor<?x16xf64>
// CHECK: loom.token_logprob_grad %{{.*}}, %{{.*}}, %{{.*}} weight %{{.*}} : tensor<?x16xf64>
// CHECK: loom.token_logprob %{{.*}}, %{{.*}} : tensor<?x40xf32>, tensor<?xi64> -> tensor<?xf32>
// CHECK-NOT: fuse.
// FUSED-LABEL: func.func @not_fused(
// FUSED-NOT: fuse.
// FUSED: return
func.func @not_fused(%h: tensor<?x16xf64>, %ids: tensor<?xi64>, %w: tensor<40x16xf64>, %g: tensor<?xf64>,
                     %logits: tensor<?x40xf32>)
    -> (tensor<?xf64>, tensor<?x16xf64>, tensor<40x16xf64>, tensor<?xf32>) {
  %lp = loom.token_logprob %h, %ids weight %w
      : tensor<?x16xf64>, tensor<?xi64>, tensor<40x16xf64> -> tensor<?xf64>
  %dh, %dw = loom.token_logprob_grad %h, %ids, %g weight %w
      : tensor<?x16xf64>, tensor<?xi64>, tensor<?xf64>, tensor<40x16xf64>
      -> tensor<?x16xf64>, tensor<40x16xf64>
  %lq = loom.token_logprob %logits, %ids : tensor<?x40xf32>, tensor<?xi64> -> tensor<?xf32>
  return %lp, %dh, %dw, %lq : tensor<?xf64>, tensor<?x16xf64>, tensor<40x16xf64>, tensor<?xf32>
}

// -----

// One token (hidden [d], ids rank 0) is a batch of one, and its results go
// back to rank 0 and [d].
// CHECK-LABEL: func.func @one_token(
// CHECK: %[[H:.*]] = loom.reshape %{{.*}} {shape = array<i64: 1, -1>} : tensor<16xf32> -> tensor<1x16xf32>
// CHECK: %[[I:.*]] = loom.reshape %{{.*}} {shape = array<i64: -1>} : tensor<i64> -> tensor<1xi64>
// CHECK: %[[F:.*]]:2 = fuse.token_logprob ins(%[[H]], %{{.*}}, %[[I]] : tensor<1x16xf32>, tensor<40x16xf32>, tensor<1xi64>)
// CHECK: loom.reshape %[[F]]#0 {shape = array<i64>} : tensor<1xf32> -> tensor<f32>
// CHECK: %[[D:.*]]:2 = fuse.token_logprob_grad ins({{.*}}, %[[F]]#1, %{{.*}} : tensor<1x16xf32>, tensor<40x16xf32>, tensor<1xi64>, tensor<1xf32>, tensor<1xf32>)
// CHECK: loom.reshape %[[D]]#0 {shape = array<i64: 16>} : tensor<1x16xf32> -> tensor<16xf32>
func.func @one_token(%h: tensor<16xf32>, %ids: tensor<i64>, %w: tensor<40x16xf32>, %g: tensor<f32>)
    -> (tensor<f32>, tensor<16xf32>, tensor<40x16xf32>) {
  %lp = loom.token_logprob %h, %ids weight %w
      : tensor<16xf32>, tensor<i64>, tensor<40x16xf32> -> tensor<f32>
  %dh, %dw = loom.token_logprob_grad %h, %ids, %g weight %w
      : tensor<16xf32>, tensor<i64>, tensor<f32>, tensor<40x16xf32>
      -> tensor<16xf32>, tensor<40x16xf32>
  return %lp, %dh, %dw : tensor<f32>, tensor<16xf32>, tensor<40x16xf32>
}

// -----

// A hidden size known nowhere: the tokens are flattened with
// tensor.collapse_shape, and the gradient goes back with tensor.reshape.
// CHECK-LABEL: func.func @unknown_hidden(
// CHECK-SAME: %[[H:[^:]*]]: tensor<?x?x?xf32>
// CHECK: %[[C:.*]] = tensor.collapse_shape %[[H]] {{\[}}[0, 1], [2]] : tensor<?x?x?xf32> into tensor<?x?xf32>
// CHECK: %[[D:.*]]:2 = fuse.token_logprob_grad ins(%[[C]],
// CHECK: tensor.reshape %[[D]]#0(%{{.*}}) : (tensor<?x?xf32>, tensor<3xindex>) -> tensor<?x?x?xf32>
func.func @unknown_hidden(%h: tensor<?x?x?xf32>, %ids: tensor<?x?xi64>, %w: tensor<?x?xf32>, %g: tensor<?x?xf32>)
    -> (tensor<?x?x?xf32>, tensor<?x?xf32>) {
  %dh, %dw = loom.token_logprob_grad %h, %ids, %g weight %w
      : tensor<?x?x?xf32>, tensor<?x?xi64>, tensor<?x?xf32>, tensor<?x?xf32>
      -> tensor<?x?x?xf32>, tensor<?x?xf32>
  return %dh, %dw : tensor<?x?x?xf32>, tensor<?x?xf32>
}

// -----

// A weight gradient whose only use adds it to a value that exists before the
// backward (a state, `acc = acc + grad`) is summed into that value by the
// kernel: `accumulate`, with the value as grad_weight's destination, and no
// add left. Either operand order.
// CHECK-LABEL: func.func @accumulate(
// CHECK-SAME: %[[ACC:[^:]*]]: tensor<40x16xf32>) ->
// CHECK: %[[D:.*]]:2 = fuse.token_logprob_grad ins({{.*}}) outs(%{{.*}}, %[[ACC]] : tensor<?x16xf32>, tensor<40x16xf32>) {accumulate, temperature = 1.000000e+00 : f64}
// CHECK-NOT: loom.add
// CHECK: return %[[D]]#0, %[[D]]#1
// UNFUSED-LABEL: func.func @accumulate(
// UNFUSED: loom.add
func.func @accumulate(%h: tensor<?x16xf32>, %ids: tensor<?xi64>, %w: tensor<40x16xf32>, %g: tensor<?xf32>,
                      %acc: tensor<40x16xf32>) -> (tensor<?x16xf32>, tensor<40x16xf32>) {
  %dh, %dw = loom.token_logprob_grad %h, %ids, %g weight %w
      : tensor<?x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<40x16xf32>
      -> tensor<?x16xf32>, tensor<40x16xf32>
  %sum = loom.add %dw, %acc : tensor<40x16xf32>, tensor<40x16xf32> -> tensor<40x16xf32>
  return %dh, %sum : tensor<?x16xf32>, tensor<40x16xf32>
}

// -----

// Not summed into the add's other operand: a gradient that has another use,
// an add of the gradient to itself, an operand defined after the backward,
// and one that broadcasts.
// CHECK-LABEL: func.func @not_accumulated(
// CHECK-NOT: accumulate
// CHECK: loom.add
// CHECK: loom.add
// CHECK: loom.add
// CHECK: loom.add
// CHECK-NOT: accumulate
func.func @not_accumulated(%h: tensor<?x16xf32>, %ids: tensor<?xi64>, %w: tensor<40x16xf32>, %g: tensor<?xf32>,
                           %acc: tensor<40x16xf32>, %row: tensor<16xf32>)
    -> (tensor<40x16xf32>, tensor<40x16xf32>, tensor<40x16xf32>, tensor<40x16xf32>, tensor<40x16xf32>) {
  %dh1, %dw1 = loom.token_logprob_grad %h, %ids, %g weight %w
      : tensor<?x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<40x16xf32>
      -> tensor<?x16xf32>, tensor<40x16xf32>
  %s1 = loom.add %acc, %dw1 : tensor<40x16xf32>, tensor<40x16xf32> -> tensor<40x16xf32>
  %dh2, %dw2 = loom.token_logprob_grad %h, %ids, %g weight %w {temperature = 2.0 : f64}
      : tensor<?x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<40x16xf32>
      -> tensor<?x16xf32>, tensor<40x16xf32>
  %s2 = loom.add %dw2, %dw2 : tensor<40x16xf32>, tensor<40x16xf32> -> tensor<40x16xf32>
  %dh3, %dw3 = loom.token_logprob_grad %h, %ids, %g weight %w {temperature = 3.0 : f64}
      : tensor<?x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<40x16xf32>
      -> tensor<?x16xf32>, tensor<40x16xf32>
  %later = loom.exp %acc : tensor<40x16xf32> -> tensor<40x16xf32>
  %s3 = loom.add %dw3, %later : tensor<40x16xf32>, tensor<40x16xf32> -> tensor<40x16xf32>
  %dh4, %dw4 = loom.token_logprob_grad %h, %ids, %g weight %w {temperature = 4.0 : f64}
      : tensor<?x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<40x16xf32>
      -> tensor<?x16xf32>, tensor<40x16xf32>
  %s4 = loom.add %dw4, %row : tensor<40x16xf32>, tensor<16xf32> -> tensor<40x16xf32>
  return %s1, %dw1, %s2, %s3, %s4 : tensor<40x16xf32>, tensor<40x16xf32>, tensor<40x16xf32>, tensor<40x16xf32>, tensor<40x16xf32>
}
