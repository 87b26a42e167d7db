// RUN: loom-opt %s --split-input-file --one-shot-bufferize="bufferize-function-boundaries" | FileCheck %s

// The token log-prob kernels bufferize in place: their outs become the
// buffers they write, nothing is allocated or copied.
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[H:[^:]*]]: memref<?x16xf32{{.*}}>, %[[W:[^:]*]]: memref<40x16xf32{{.*}}>, %[[IDS:[^:]*]]: memref<?xi64{{.*}}>, %[[LP:[^:]*]]: memref<?xf32{{.*}}>, %[[LSE:[^:]*]]: memref<?xf32{{.*}}>
// CHECK-NOT: memref.alloc
// CHECK-NOT: memref.copy
// CHECK: fuse.token_logprob ins(%[[H]], %[[W]], %[[IDS]] : {{.*}}) outs(%[[LP]], %[[LSE]] : {{.*}}) {temperature = 7.500000e-01 : f64}{{$}}
// CHECK: return %[[LP]], %[[LSE]]
func.func @forward(%h: tensor<?x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<?xi64>,
                   %lpi: tensor<?xf32>, %lsei: tensor<?xf32>) -> (tensor<?xf32>, tensor<?xf32>) {
  %lp, %lse = fuse.token_logprob ins(%h, %w, %ids : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>)
      outs(%lpi, %lsei : tensor<?xf32>, tensor<?xf32>) {temperature = 0.75 : f64}
      -> tensor<?xf32>, tensor<?xf32>
  return %lp, %lse : tensor<?xf32>, tensor<?xf32>
}

// -----

// The backward reads the forward's lse from the forward's buffer; its outs
// from tensor.empty become fresh allocations, written whole.
// CHECK-LABEL: func.func @backward(
// CHECK-SAME: %[[H:[^:]*]]: memref<?x16xf32{{.*}}>, %[[W:[^:]*]]: memref<40x16xf32{{.*}}>, %[[IDS:[^:]*]]: memref<?xi64{{.*}}>, %[[G:[^:]*]]: memref<?xf32{{.*}}>
// CHECK: %[[LP:.*]] = memref.alloc(%{{.*}}) {{.*}}: memref<?xf32>
// CHECK: %[[LSE:.*]] = memref.alloc(%{{.*}}) {{.*}}: memref<?xf32>
// CHECK: fuse.token_logprob ins(%[[H]], %[[W]], %[[IDS]] : {{.*}}) outs(%[[LP]], %[[LSE]] : {{.*}})
// CHECK: %[[DH:.*]] = memref.alloc(%{{.*}}) {{.*}}: memref<?x16xf32>
// CHECK: %[[DW:.*]] = memref.alloc() {{.*}}: memref<40x16xf32>
// CHECK-NOT: memref.copy
// CHECK: fuse.token_logprob_grad ins(%[[H]], %[[W]], %[[IDS]], %[[LSE]], %[[G]] : {{.*}}) outs(%[[DH]], %[[DW]] : memref<?x16xf32>, memref<40x16xf32>) {temperature = 7.500000e-01 : f64}{{$}}
// CHECK: return %[[LP]], %[[DH]], %[[DW]]
func.func @backward(%h: tensor<?x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<?xi64>, %g: tensor<?xf32>)
    -> (tensor<?xf32>, tensor<?x16xf32>, tensor<40x16xf32>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %h, %c0 : tensor<?x16xf32>
  %lpi = tensor.empty(%n) : tensor<?xf32>
  %lsei = tensor.empty(%n) : tensor<?xf32>
  %lp, %lse = fuse.token_logprob ins(%h, %w, %ids : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>)
      outs(%lpi, %lsei : tensor<?xf32>, tensor<?xf32>) {temperature = 0.75 : f64}
      -> tensor<?xf32>, tensor<?xf32>
  %dhi = tensor.empty(%n) : tensor<?x16xf32>
  %dwi = tensor.empty() : tensor<40x16xf32>
  %dh, %dw = fuse.token_logprob_grad ins(%h, %w, %ids, %lse, %g : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
      outs(%dhi, %dwi : tensor<?x16xf32>, tensor<40x16xf32>) {temperature = 0.75 : f64}
      -> tensor<?x16xf32>, tensor<40x16xf32>
  return %lp, %dh, %dw : tensor<?xf32>, tensor<?x16xf32>, tensor<40x16xf32>
}

// -----

// CSE gives both outs the same tensor.empty; each still gets a buffer of
// its own.
// CHECK-LABEL: func.func @shared_init(
// CHECK: %[[A:.*]] = memref.alloc(%{{.*}}) {{.*}}: memref<?xf32>
// CHECK: %[[B:.*]] = memref.alloc(%{{.*}}) {{.*}}: memref<?xf32>
// CHECK: fuse.token_logprob ins({{.*}}) outs(%[[A]], %[[B]] : memref<?xf32>, memref<?xf32>)
// CHECK: return %[[A]], %[[B]]
func.func @shared_init(%h: tensor<?x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<?xi64>)
    -> (tensor<?xf32>, tensor<?xf32>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %h, %c0 : tensor<?x16xf32>
  %e = tensor.empty(%n) : tensor<?xf32>
  %lp, %lse = fuse.token_logprob ins(%h, %w, %ids : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>)
      outs(%e, %e : tensor<?xf32>, tensor<?xf32>) {temperature = 0.75 : f64}
      -> tensor<?xf32>, tensor<?xf32>
  return %lp, %lse : tensor<?xf32>, tensor<?xf32>
}

// -----

// The single-pass loop: the row-block ops update their outs in place, so
// the loop carries one buffer each (the scratch included) and copies
// nothing; grad_weight is written in the function's result buffer.
// CHECK-LABEL: func.func @rows_loop(
// CHECK: %[[S:.*]] = memref.alloc(%{{.*}}) {{.*}}: memref<?x40xf32>
// CHECK: scf.for {{.*}} iter_args({{.*}}, {{.*}}, {{.*}}, {{.*}}, %[[SA:.*]] = %[[S]])
// CHECK-NOT: memref.copy
// CHECK-NOT: memref.alloc
// CHECK: fuse.token_logprob_rows ins({{.*}}) offset(%{{.*}}) outs(%{{.*}}, %{{.*}}, %[[SA]] :
// CHECK-NOT: memref.copy
// CHECK-NOT: memref.alloc
// CHECK: fuse.token_logprob_rows_grad ins({{.*}}) offset(%{{.*}}) outs(%{{.*}}, %{{.*}}, %[[SA]] :
// CHECK-NEXT: scf.yield
func.func @rows_loop(%h: tensor<?x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<?xi64>,
                     %g: tensor<?xf32>, %n: index, %step: index)
    -> (tensor<?xf32>, tensor<?x16xf32>, tensor<40x16xf32>) {
  %c0 = arith.constant 0 : index
  %lp0 = tensor.empty(%n) : tensor<?xf32>
  %lse0 = tensor.empty(%n) : tensor<?xf32>
  %dh0 = tensor.empty(%n) : tensor<?x16xf32>
  %dw0 = tensor.empty() : tensor<40x16xf32>
  %s0 = tensor.empty(%step) : tensor<?x40xf32>
  %r:5 = scf.for %n0 = %c0 to %n step %step
      iter_args(%lp = %lp0, %lse = %lse0, %dh = %dh0, %dw = %dw0, %s = %s0)
      -> (tensor<?xf32>, tensor<?xf32>, tensor<?x16xf32>, tensor<40x16xf32>, tensor<?x40xf32>) {
    %a:3 = fuse.token_logprob_rows ins(%h, %w, %ids : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>)
        offset(%n0) outs(%lp, %lse, %s : tensor<?xf32>, tensor<?xf32>, tensor<?x40xf32>) {temperature = 1.0 : f64}
        -> tensor<?xf32>, tensor<?xf32>, tensor<?x40xf32>
    %b:3 = fuse.token_logprob_rows_grad ins(%h, %w, %ids, %a#1, %g : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
        offset(%n0) outs(%dh, %dw, %a#2 : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?x40xf32>) {temperature = 1.0 : f64}
        -> tensor<?x16xf32>, tensor<40x16xf32>, tensor<?x40xf32>
    scf.yield %a#0, %a#1, %b#0, %b#1, %b#2 : tensor<?xf32>, tensor<?xf32>, tensor<?x16xf32>, tensor<40x16xf32>, tensor<?x40xf32>
  }
  return %r#0, %r#2, %r#3 : tensor<?xf32>, tensor<?x16xf32>, tensor<40x16xf32>
}

// -----

// An accumulating backward reads grad_weight's destination: a function
// argument is updated in place, but when its old value is also returned the
// kernel gets a copy of it (not an uninitialized buffer).
// CHECK-LABEL: func.func @accumulate_in_place(
// CHECK-SAME: %[[ACC:[^:]*]]: memref<40x16xf32, strided<[?, ?], offset: ?>>) -> (memref<?x16xf32>,
// CHECK-NOT: memref.copy
// CHECK: fuse.token_logprob_grad ins({{.*}}) outs(%{{.*}}, %[[ACC]] : {{.*}}) {accumulate,
// CHECK: return %{{.*}}, %[[ACC]]
func.func @accumulate_in_place(%h: tensor<?x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<?xi64>,
                               %lse: tensor<?xf32>, %g: tensor<?xf32>, %acc: tensor<40x16xf32>)
    -> (tensor<?x16xf32>, tensor<40x16xf32>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %h, %c0 : tensor<?x16xf32>
  %dhi = tensor.empty(%n) : tensor<?x16xf32>
  %dh, %dw = fuse.token_logprob_grad ins(%h, %w, %ids, %lse, %g : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
      outs(%dhi, %acc : tensor<?x16xf32>, tensor<40x16xf32>) {accumulate, temperature = 1.0 : f64}
      -> tensor<?x16xf32>, tensor<40x16xf32>
  return %dh, %dw : tensor<?x16xf32>, tensor<40x16xf32>
}

// -----

// CHECK-LABEL: func.func @accumulate_copy(
// CHECK-SAME: %[[ACC:[^:]*]]: memref<40x16xf32, strided<[?, ?], offset: ?>>) -> (memref<40x16xf32,
// CHECK: %[[NEW:.*]] = memref.alloc() {{.*}}: memref<40x16xf32>
// CHECK: memref.copy %[[ACC]], %[[NEW]]
// CHECK: fuse.token_logprob_grad ins({{.*}}) outs(%{{.*}}, %[[NEW]] : {{.*}}) {accumulate,
// CHECK: return %[[ACC]], %[[NEW]]
func.func @accumulate_copy(%h: tensor<?x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<?xi64>,
                           %lse: tensor<?xf32>, %g: tensor<?xf32>, %acc: tensor<40x16xf32>)
    -> (tensor<40x16xf32>, tensor<40x16xf32>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %h, %c0 : tensor<?x16xf32>
  %dhi = tensor.empty(%n) : tensor<?x16xf32>
  %dh, %dw = fuse.token_logprob_grad ins(%h, %w, %ids, %lse, %g : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
      outs(%dhi, %acc : tensor<?x16xf32>, tensor<40x16xf32>) {accumulate, temperature = 1.0 : f64}
      -> tensor<?x16xf32>, tensor<40x16xf32>
  return %acc, %dw : tensor<40x16xf32>, tensor<40x16xf32>
}
