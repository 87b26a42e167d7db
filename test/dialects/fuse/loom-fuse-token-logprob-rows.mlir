// RUN: loom-opt %s --split-input-file --loom-fuse-token-logprob-rows | FileCheck %s
// RUN: loom-opt %s --split-input-file --loom-fuse-token-logprob-rows=rows=3 | FileCheck %s --check-prefix=ROWS3
// RUN: loom-opt %s --split-input-file --loom-fuse | FileCheck %s --check-prefix=FUSED
// RUN: loom-opt %s --split-input-file --loom-fuse=logprob=two-pass | FileCheck %s --check-prefix=TWO
// RUN: not loom-opt %s --split-input-file --loom-fuse-token-logprob-rows=rows=-1 2>&1 | FileCheck %s --check-prefix=NEG

// NEG: rows must be >= 0, got -1

// A gradient computed from the log-probs token by token (exp, a per-row
// broadcast, a scalar that is a reduction of an input, a reshape) becomes a
// loop over blocks of tokens. What g reads from after the forward (the
// mask's sum) is moved above the loop; the forward's other uses read the
// loop's log-probs. The default block at V = 40 is 4096 tokens, at most N.
// CHECK-LABEL: func.func @token_wise(
// CHECK-SAME: %[[H:[^:]*]]: tensor<?x16xf32>, %[[IDS:[^:]*]]: tensor<?xi64>, %[[W:[^:]*]]: tensor<40x16xf32>, %[[M:[^:]*]]: tensor<?x4xf32>, %[[A:[^:]*]]: tensor<?x1xf32>
// CHECK-NOT: fuse.token_logprob ins
// CHECK-NOT: fuse.token_logprob_grad
// CHECK: %[[SUM:.*]] = loom.sum %[[M]]
// CHECK: %[[N:.*]] = tensor.dim %[[H]], %c0
// CHECK: %[[B0:.*]] = arith.minui %c4096, %[[N]] : index
// CHECK: %[[B:.*]] = arith.maxui %[[B0]], %c1 : index
// CHECK: %[[LP0:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<?xf32>)
// CHECK: %[[S0:.*]] = tensor.empty(%[[B]]) : tensor<?x40xf32>
// CHECK: %[[UB:.*]] = arith.maxui %[[N]], %c1 : index
// CHECK: %[[L:.*]]:5 = scf.for %[[N0:.*]] = %{{.*}} to %[[UB]] step %[[B]] iter_args(%[[LP:.*]] = %[[LP0]], %[[LSE:.*]] = %{{.*}}, %[[DH:.*]] = %{{.*}}, %[[DW:.*]] = %{{.*}}, %[[S:.*]] = %[[S0]])
// CHECK: %[[R:.*]]:3 = fuse.token_logprob_rows ins(%[[H]], %[[W]], %[[IDS]] : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>) offset(%[[N0]]) outs(%[[LP]], %[[LSE]], %[[S]] : tensor<?xf32>, tensor<?xf32>, tensor<?x40xf32>) {temperature = 7.500000e-01 : f64}
// CHECK: %[[LP2:.*]] = loom.reshape %[[R]]#0
// CHECK: %[[E:.*]] = loom.exp %[[LP2]]
// CHECK: %[[X:.*]] = loom.mul %[[E]], %[[A]]
// CHECK: %[[Y:.*]] = loom.div %[[X]], %[[SUM]]
// CHECK: %[[G:.*]] = loom.reshape %[[Y]]
// CHECK: %[[RG:.*]]:3 = fuse.token_logprob_rows_grad ins(%[[H]], %[[W]], %[[IDS]], %[[R]]#1, %[[G]] : {{.*}}) offset(%[[N0]]) outs(%[[DH]], %[[DW]], %[[R]]#2 : {{.*}}) {temperature = 7.500000e-01 : f64}
// CHECK: scf.yield %[[R]]#0, %[[R]]#1, %[[RG]]#0, %[[RG]]#1, %[[RG]]#2
// CHECK-NOT: fuse.token_logprob ins
// CHECK-NOT: fuse.token_logprob_grad
// CHECK: %[[OUT:.*]] = loom.reshape %[[L]]#0
// CHECK: return %[[OUT]], %[[L]]#2, %[[L]]#3
// ROWS3-LABEL: func.func @token_wise(
// ROWS3: %[[B0:.*]] = arith.minui %c3, %{{.*}} : index
// ROWS3: scf.for
// FUSED-LABEL: func.func @token_wise(
// FUSED: scf.for
// FUSED: fuse.token_logprob_rows ins(
// TWO-LABEL: func.func @token_wise(
// TWO-NOT: scf.for
func.func @token_wise(%h: tensor<?x16xf32>, %ids: tensor<?xi64>, %w: tensor<40x16xf32>,
                      %mask: tensor<?x4xf32>, %a: tensor<?x1xf32>)
    -> (tensor<?x4xf32>, tensor<?x16xf32>, tensor<40x16xf32>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %h, %c0 : tensor<?x16xf32>
  %e0 = tensor.empty(%n) : tensor<?xf32>
  %f:2 = fuse.token_logprob ins(%h, %w, %ids : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>)
      outs(%e0, %e0 : tensor<?xf32>, tensor<?xf32>) {temperature = 0.75 : f64}
      -> tensor<?xf32>, tensor<?xf32>
  %lp = loom.reshape %f#0 {shape = array<i64: -1, 4>} : tensor<?xf32> -> tensor<?x4xf32>
  %sum = loom.sum %mask {axes = array<i64: 0, 1>} : tensor<?x4xf32> -> tensor<f32>
  %ex = loom.exp %lp : tensor<?x4xf32> -> tensor<?x4xf32>
  %x = loom.mul %ex, %a : tensor<?x4xf32>, tensor<?x1xf32> -> tensor<?x4xf32>
  %y = loom.div %x, %sum : tensor<?x4xf32>, tensor<f32> -> tensor<?x4xf32>
  %g = loom.reshape %y {shape = array<i64: -1>} : tensor<?x4xf32> -> tensor<?xf32>
  %dhi = tensor.empty(%n) : tensor<?x16xf32>
  %dwi = tensor.empty() : tensor<40x16xf32>
  %d:2 = fuse.token_logprob_grad ins(%h, %w, %ids, %f#1, %g : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
      outs(%dhi, %dwi : tensor<?x16xf32>, tensor<40x16xf32>) {temperature = 0.75 : f64}
      -> tensor<?x16xf32>, tensor<40x16xf32>
  return %lp, %d#0, %d#1 : tensor<?x4xf32>, tensor<?x16xf32>, tensor<40x16xf32>
}

// -----

// `loom.broadcast %s like %v` reads the shape of %v only: a gradient that
// broadcasts a scalar like the per-token loss (as loom-autodiff writes the
// backward of a sum) is still token-wise; the broadcast and the ops whose
// shape it reads are computed in the loop. A vocabulary that is not static
// gets its block from 8M / V, at least 128, in the loop's preamble.
// CHECK-LABEL: func.func @shape_only(
// CHECK: %[[Q:.*]] = arith.divui %c8388608
// CHECK: arith.maxui %[[Q]], %c128
// CHECK: scf.for
// CHECK: fuse.token_logprob_rows ins(
// CHECK: %[[L:.*]] = loom.log
// CHECK: loom.broadcast %{{.*}} like %[[L]]
// CHECK: fuse.token_logprob_rows_grad ins(
func.func @shape_only(%h: tensor<?x16xf32>, %ids: tensor<?xi64>, %w: tensor<?x16xf32>,
                      %s: tensor<1xf32>) -> (tensor<?xf32>, tensor<?x16xf32>, tensor<?x16xf32>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %h, %c0 : tensor<?x16xf32>
  %v = tensor.dim %w, %c0 : tensor<?x16xf32>
  %e0 = tensor.empty(%n) : tensor<?xf32>
  %f:2 = fuse.token_logprob ins(%h, %w, %ids : tensor<?x16xf32>, tensor<?x16xf32>, tensor<?xi64>)
      outs(%e0, %e0 : tensor<?xf32>, tensor<?xf32>) {temperature = 1.0 : f64}
      -> tensor<?xf32>, tensor<?xf32>
  %l = loom.log %f#0 : tensor<?xf32> -> tensor<?xf32>
  %b = loom.broadcast %s like %l : tensor<1xf32>, tensor<?xf32> -> tensor<?xf32>
  %g = loom.mul %b, %f#0 : tensor<?xf32>, tensor<?xf32> -> tensor<?xf32>
  %dhi = tensor.empty(%n) : tensor<?x16xf32>
  %dwi = tensor.empty(%v) : tensor<?x16xf32>
  %d:2 = fuse.token_logprob_grad ins(%h, %w, %ids, %f#1, %g : tensor<?x16xf32>, tensor<?x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
      outs(%dhi, %dwi : tensor<?x16xf32>, tensor<?x16xf32>) {temperature = 1.0 : f64}
      -> tensor<?x16xf32>, tensor<?x16xf32>
  return %l, %d#0, %d#1 : tensor<?xf32>, tensor<?x16xf32>, tensor<?x16xf32>
}

// -----

// A gradient that mixes tokens keeps the two kernels: a sum over the
// log-probs of a sequence (DPO's, or a sequence-level ratio) ...
// CHECK-LABEL: func.func @sequence_sum(
// CHECK-NOT: scf.for
// CHECK: fuse.token_logprob ins(
// CHECK: fuse.token_logprob_grad ins(
func.func @sequence_sum(%h: tensor<?x16xf32>, %ids: tensor<?xi64>, %w: tensor<40x16xf32>)
    -> (tensor<?x16xf32>, tensor<40x16xf32>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %h, %c0 : tensor<?x16xf32>
  %e0 = tensor.empty(%n) : tensor<?xf32>
  %f:2 = fuse.token_logprob ins(%h, %w, %ids : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>)
      outs(%e0, %e0 : tensor<?xf32>, tensor<?xf32>) {temperature = 1.0 : f64}
      -> tensor<?xf32>, tensor<?xf32>
  %lp = loom.reshape %f#0 {shape = array<i64: -1, 4>} : tensor<?xf32> -> tensor<?x4xf32>
  %seq = loom.sum %lp {axes = array<i64: 1>, keepdim = true} : tensor<?x4xf32> -> tensor<?x1xf32>
  %sig = loom.sigmoid %seq : tensor<?x1xf32> -> tensor<?x1xf32>
  %b = loom.broadcast %sig like %lp : tensor<?x1xf32>, tensor<?x4xf32> -> tensor<?x4xf32>
  %g = loom.reshape %b {shape = array<i64: -1>} : tensor<?x4xf32> -> tensor<?xf32>
  %dhi = tensor.empty(%n) : tensor<?x16xf32>
  %dwi = tensor.empty() : tensor<40x16xf32>
  %d:2 = fuse.token_logprob_grad ins(%h, %w, %ids, %f#1, %g : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
      outs(%dhi, %dwi : tensor<?x16xf32>, tensor<40x16xf32>) {temperature = 1.0 : f64}
      -> tensor<?x16xf32>, tensor<40x16xf32>
  return %d#0, %d#1 : tensor<?x16xf32>, tensor<40x16xf32>
}

// -----

// ... or a log-prob broadcast over others (here row 0's over its row).
// CHECK-LABEL: func.func @broadcast_logp(
// CHECK-NOT: scf.for
// CHECK: fuse.token_logprob_grad ins(
func.func @broadcast_logp(%h: tensor<?x16xf32>, %ids: tensor<?xi64>, %w: tensor<40x16xf32>,
                          %m: tensor<?x4xf32>) -> (tensor<?x16xf32>, tensor<40x16xf32>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %h, %c0 : tensor<?x16xf32>
  %e0 = tensor.empty(%n) : tensor<?xf32>
  %f:2 = fuse.token_logprob ins(%h, %w, %ids : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>)
      outs(%e0, %e0 : tensor<?xf32>, tensor<?xf32>) {temperature = 1.0 : f64}
      -> tensor<?xf32>, tensor<?xf32>
  %lp = loom.reshape %f#0 {shape = array<i64: -1, 1>} : tensor<?xf32> -> tensor<?x1xf32>
  %x = loom.mul %m, %lp : tensor<?x4xf32>, tensor<?x1xf32> -> tensor<?x4xf32>
  %g = loom.reshape %x {shape = array<i64: -1>} : tensor<?x4xf32> -> tensor<?xf32>
  %dhi = tensor.empty(%n) : tensor<?x16xf32>
  %dwi = tensor.empty() : tensor<40x16xf32>
  %d:2 = fuse.token_logprob_grad ins(%h, %w, %ids, %f#1, %g : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
      outs(%dhi, %dwi : tensor<?x16xf32>, tensor<40x16xf32>) {temperature = 1.0 : f64}
      -> tensor<?x16xf32>, tensor<40x16xf32>
  return %d#0, %d#1 : tensor<?x16xf32>, tensor<40x16xf32>
}

// -----

// The lse is used by something other than the backward: left as it is.
// CHECK-LABEL: func.func @lse_used(
// CHECK-NOT: scf.for
// CHECK: fuse.token_logprob_grad ins(
func.func @lse_used(%h: tensor<?x16xf32>, %ids: tensor<?xi64>, %w: tensor<40x16xf32>,
                    %g: tensor<?xf32>) -> (tensor<?xf32>, tensor<?x16xf32>, tensor<40x16xf32>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %h, %c0 : tensor<?x16xf32>
  %e0 = tensor.empty(%n) : tensor<?xf32>
  %f:2 = fuse.token_logprob ins(%h, %w, %ids : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>)
      outs(%e0, %e0 : tensor<?xf32>, tensor<?xf32>) {temperature = 1.0 : f64}
      -> tensor<?xf32>, tensor<?xf32>
  %dhi = tensor.empty(%n) : tensor<?x16xf32>
  %dwi = tensor.empty() : tensor<40x16xf32>
  %d:2 = fuse.token_logprob_grad ins(%h, %w, %ids, %f#1, %g : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
      outs(%dhi, %dwi : tensor<?x16xf32>, tensor<40x16xf32>) {temperature = 1.0 : f64}
      -> tensor<?x16xf32>, tensor<40x16xf32>
  return %f#1, %d#0, %d#1 : tensor<?xf32>, tensor<?x16xf32>, tensor<40x16xf32>
}

// -----

// A shape computed from a log-prob's value carries contents: here the
// gradient reads floor(-logp[N-1]) through the size of a tensor, so it is
// not token-wise (in the blocks before the last token that value would not
// be known yet).
// CHECK-LABEL: func.func @shape_from_contents(
// CHECK-NOT: scf.for
// CHECK: fuse.token_logprob_grad ins(
func.func @shape_from_contents(%h: tensor<?x16xf32>, %ids: tensor<?xi64>, %w: tensor<40x16xf32>)
    -> (tensor<?x16xf32>, tensor<40x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = tensor.dim %h, %c0 : tensor<?x16xf32>
  %e0 = tensor.empty(%n) : tensor<?xf32>
  %f:2 = fuse.token_logprob ins(%h, %w, %ids : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>)
      outs(%e0, %e0 : tensor<?xf32>, tensor<?xf32>) {temperature = 1.0 : f64}
      -> tensor<?xf32>, tensor<?xf32>
  %nm1 = arith.subi %n, %c1 : index
  %last = tensor.extract %f#0[%nm1] : tensor<?xf32>
  %neg = arith.negf %last : f32
  %ki = arith.fptoui %neg : f32 to i64
  %k = arith.index_cast %ki : i64 to index
  %e = tensor.empty(%k) : tensor<?xf32>
  %d = tensor.dim %e, %c0 : tensor<?xf32>
  %di = arith.index_cast %d : index to i64
  %df = arith.uitofp %di : i64 to f32
  %t = tensor.from_elements %df : tensor<f32>
  %g = loom.mul %f#0, %t : tensor<?xf32>, tensor<f32> -> tensor<?xf32>
  %dhi = tensor.empty(%n) : tensor<?x16xf32>
  %dwi = tensor.empty() : tensor<40x16xf32>
  %dd:2 = fuse.token_logprob_grad ins(%h, %w, %ids, %f#1, %g : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
      outs(%dhi, %dwi : tensor<?x16xf32>, tensor<40x16xf32>) {temperature = 1.0 : f64}
      -> tensor<?x16xf32>, tensor<40x16xf32>
  return %dd#0, %dd#1 : tensor<?x16xf32>, tensor<40x16xf32>
}

// -----

// What g reads from after the forward must be pure to move above it: a
// tensor.dim at an index that is not a constant may be out of range.
// CHECK-LABEL: func.func @impure_leaf(
// CHECK-NOT: scf.for
// CHECK: fuse.token_logprob_grad ins(
func.func @impure_leaf(%h: tensor<?x16xf32>, %ids: tensor<?xi64>, %w: tensor<40x16xf32>,
                       %m: tensor<?x?xf32>, %axis: index) -> (tensor<?x16xf32>, tensor<40x16xf32>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %h, %c0 : tensor<?x16xf32>
  %e0 = tensor.empty(%n) : tensor<?xf32>
  %f:2 = fuse.token_logprob ins(%h, %w, %ids : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>)
      outs(%e0, %e0 : tensor<?xf32>, tensor<?xf32>) {temperature = 1.0 : f64}
      -> tensor<?xf32>, tensor<?xf32>
  %d = tensor.dim %m, %axis : tensor<?x?xf32>
  %di = arith.index_cast %d : index to i64
  %df = arith.uitofp %di : i64 to f32
  %t = tensor.from_elements %df : tensor<f32>
  %g = loom.mul %f#0, %t : tensor<?xf32>, tensor<f32> -> tensor<?xf32>
  %dhi = tensor.empty(%n) : tensor<?x16xf32>
  %dwi = tensor.empty() : tensor<40x16xf32>
  %dd:2 = fuse.token_logprob_grad ins(%h, %w, %ids, %f#1, %g : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
      outs(%dhi, %dwi : tensor<?x16xf32>, tensor<40x16xf32>) {temperature = 1.0 : f64}
      -> tensor<?x16xf32>, tensor<40x16xf32>
  return %dd#0, %dd#1 : tensor<?x16xf32>, tensor<40x16xf32>
}

// -----

// Static hidden states with dynamic log-probs: the loop's log-probs are cast
// to the forward's type for the ops that read them.
// CHECK-LABEL: func.func @static_hidden(
// CHECK: scf.for
// CHECK: %[[R:.*]]:3 = fuse.token_logprob_rows ins({{.*}}) offset({{.*}}) outs({{.*}} : tensor<8xf32>, tensor<8xf32>, tensor<?x40xf32>)
// CHECK: %[[C:.*]] = tensor.cast %[[R]]#0 : tensor<8xf32> to tensor<?xf32>
// CHECK: loom.exp %[[C]] : tensor<?xf32>
func.func @static_hidden(%h: tensor<8x16xf32>, %ids: tensor<?xi64>, %w: tensor<40x16xf32>)
    -> (tensor<?xf32>, tensor<8x16xf32>, tensor<40x16xf32>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %ids, %c0 : tensor<?xi64>
  %e0 = tensor.empty(%n) : tensor<?xf32>
  %f:2 = fuse.token_logprob ins(%h, %w, %ids : tensor<8x16xf32>, tensor<40x16xf32>, tensor<?xi64>)
      outs(%e0, %e0 : tensor<?xf32>, tensor<?xf32>) {temperature = 1.0 : f64}
      -> tensor<?xf32>, tensor<?xf32>
  %g = loom.exp %f#0 : tensor<?xf32> -> tensor<?xf32>
  %dhi = tensor.empty() : tensor<8x16xf32>
  %dwi = tensor.empty() : tensor<40x16xf32>
  %d:2 = fuse.token_logprob_grad ins(%h, %w, %ids, %f#1, %g : tensor<8x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
      outs(%dhi, %dwi : tensor<8x16xf32>, tensor<40x16xf32>) {temperature = 1.0 : f64}
      -> tensor<8x16xf32>, tensor<40x16xf32>
  return %f#0, %d#0, %d#1 : tensor<?xf32>, tensor<8x16xf32>, tensor<40x16xf32>
}

// -----

// A static vocabulary: the block is 8M / V in [128, 4096], at most N. At
// V = 32768 that is 256 tokens; at V = 131072 the floor, 128.
// CHECK-LABEL: func.func @static_vocab(
// CHECK: arith.minui %c256,
// CHECK: fuse.token_logprob_rows ins({{.*}} : tensor<?x8xf32>, tensor<32768x8xf32>, tensor<?xi64>)
// CHECK: arith.minui %c128,
// CHECK: fuse.token_logprob_rows ins({{.*}} : tensor<?x8xf32>, tensor<131072x8xf32>, tensor<?xi64>)
func.func @static_vocab(%h: tensor<?x8xf32>, %ids: tensor<?xi64>, %w: tensor<32768x8xf32>,
                        %w2: tensor<131072x8xf32>)
    -> (tensor<?x8xf32>, tensor<32768x8xf32>, tensor<?x8xf32>, tensor<131072x8xf32>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %ids, %c0 : tensor<?xi64>
  %e0 = tensor.empty(%n) : tensor<?xf32>
  %dhi = tensor.empty(%n) : tensor<?x8xf32>
  %f:2 = fuse.token_logprob ins(%h, %w, %ids : tensor<?x8xf32>, tensor<32768x8xf32>, tensor<?xi64>)
      outs(%e0, %e0 : tensor<?xf32>, tensor<?xf32>) {temperature = 1.0 : f64}
      -> tensor<?xf32>, tensor<?xf32>
  %g = loom.exp %f#0 : tensor<?xf32> -> tensor<?xf32>
  %dwi = tensor.empty() : tensor<32768x8xf32>
  %d:2 = fuse.token_logprob_grad ins(%h, %w, %ids, %f#1, %g : tensor<?x8xf32>, tensor<32768x8xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
      outs(%dhi, %dwi : tensor<?x8xf32>, tensor<32768x8xf32>) {temperature = 1.0 : f64}
      -> tensor<?x8xf32>, tensor<32768x8xf32>
  %f2:2 = fuse.token_logprob ins(%h, %w2, %ids : tensor<?x8xf32>, tensor<131072x8xf32>, tensor<?xi64>)
      outs(%e0, %e0 : tensor<?xf32>, tensor<?xf32>) {temperature = 1.0 : f64}
      -> tensor<?xf32>, tensor<?xf32>
  %g2 = loom.exp %f2#0 : tensor<?xf32> -> tensor<?xf32>
  %dwi2 = tensor.empty() : tensor<131072x8xf32>
  %d2:2 = fuse.token_logprob_grad ins(%h, %w2, %ids, %f2#1, %g2 : tensor<?x8xf32>, tensor<131072x8xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
      outs(%dhi, %dwi2 : tensor<?x8xf32>, tensor<131072x8xf32>) {temperature = 1.0 : f64}
      -> tensor<?x8xf32>, tensor<131072x8xf32>
  return %d#0, %d#1, %d2#0, %d2#1 : tensor<?x8xf32>, tensor<32768x8xf32>, tensor<?x8xf32>, tensor<131072x8xf32>
}

// -----

// An accumulating backward (`acc = acc + grad`, summed by the kernel): the
// loop carries the sum from the accumulator, and every block adds to it.
// CHECK-LABEL: func.func @accumulate(
// CHECK-SAME: %[[ACC:[^:]*]]: tensor<40x16xf32>) ->
// CHECK: %[[L:.*]]:5 = scf.for {{.*}} iter_args(%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}, %[[DW:.*]] = %[[ACC]], %{{.*}} = %{{.*}})
// CHECK: fuse.token_logprob_rows_grad ins({{.*}}) offset(%{{.*}}) outs(%{{.*}}, %[[DW]], %{{.*}} : {{.*}}) {accumulate, temperature = 1.000000e+00 : f64}
// CHECK: return %{{.*}}, %[[L]]#3
func.func @accumulate(%h: tensor<?x16xf32>, %ids: tensor<?xi64>, %w: tensor<40x16xf32>,
                      %acc: tensor<40x16xf32>) -> (tensor<?x16xf32>, tensor<40x16xf32>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %h, %c0 : tensor<?x16xf32>
  %e0 = tensor.empty(%n) : tensor<?xf32>
  %f:2 = fuse.token_logprob ins(%h, %w, %ids : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>)
      outs(%e0, %e0 : tensor<?xf32>, tensor<?xf32>) {temperature = 1.0 : f64}
      -> tensor<?xf32>, tensor<?xf32>
  %g = loom.exp %f#0 : tensor<?xf32> -> tensor<?xf32>
  %dhi = tensor.empty(%n) : tensor<?x16xf32>
  %d:2 = fuse.token_logprob_grad ins(%h, %w, %ids, %f#1, %g : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
      outs(%dhi, %acc : tensor<?x16xf32>, tensor<40x16xf32>) {accumulate, temperature = 1.0 : f64}
      -> tensor<?x16xf32>, tensor<40x16xf32>
  return %d#0, %d#1 : tensor<?x16xf32>, tensor<40x16xf32>
}

// -----

// An accumulator computed after the forward cannot start the loop that
// takes the forward's place: the kernels stay two-pass.
// CHECK-LABEL: func.func @accumulator_after_forward(
// CHECK-NOT: scf.for
// CHECK: fuse.token_logprob_grad {{.*}} {accumulate,
func.func @accumulator_after_forward(%h: tensor<?x16xf32>, %ids: tensor<?xi64>, %w: tensor<40x16xf32>,
                                     %acc: tensor<40x16xf32>) -> (tensor<?x16xf32>, tensor<40x16xf32>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %h, %c0 : tensor<?x16xf32>
  %e0 = tensor.empty(%n) : tensor<?xf32>
  %f:2 = fuse.token_logprob ins(%h, %w, %ids : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>)
      outs(%e0, %e0 : tensor<?xf32>, tensor<?xf32>) {temperature = 1.0 : f64}
      -> tensor<?xf32>, tensor<?xf32>
  %g = loom.exp %f#0 : tensor<?xf32> -> tensor<?xf32>
  %start = loom.exp %acc : tensor<40x16xf32> -> tensor<40x16xf32>
  %dhi = tensor.empty(%n) : tensor<?x16xf32>
  %d:2 = fuse.token_logprob_grad ins(%h, %w, %ids, %f#1, %g : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
      outs(%dhi, %start : tensor<?x16xf32>, tensor<40x16xf32>) {accumulate, temperature = 1.0 : f64}
      -> tensor<?x16xf32>, tensor<40x16xf32>
  return %d#0, %d#1 : tensor<?x16xf32>, tensor<40x16xf32>
}
