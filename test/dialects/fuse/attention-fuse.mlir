// RUN: loom-opt --split-input-file --loom-fuse-attention %s | FileCheck %s

// loom.attention keeps its operands, scale and regions; the inits are shaped
// after q and v, loom.yield becomes fuse.yield and loom.csr_contains a binary
// search over the row.
// CHECK-LABEL: func.func @attention_mask_score
// CHECK-SAME:    %[[Q:[^:]*]]: tensor<?x8x?x64xf32>, %[[K:[^:]*]]: tensor<?x2x?x64xf32>, %[[V:[^:]*]]: tensor<?x2x?x32xf32>, %[[P:[^:]*]]: tensor<?xi32>, %[[X:[^:]*]]: tensor<?xi32>
// CHECK-DAG:     %[[B:.*]] = tensor.dim %[[Q]], %c0
// CHECK-DAG:     %[[S:.*]] = tensor.dim %[[Q]], %c2
// CHECK:         %[[OI:.*]] = tensor.empty(%[[B]], %[[S]]) : tensor<?x8x?x32xf32>
// CHECK:         %[[LI:.*]] = tensor.empty(%{{.*}}, %{{.*}}) : tensor<?x8x?xf32>
// CHECK:         %[[R:.*]]:2 = fuse.attention ins(%[[Q]], %[[K]], %[[V]] : {{.*}}) captures(%[[P]], %[[X]] : tensor<?xi32>, tensor<?xi32>) outs(%[[OI]], %[[LI]] : tensor<?x8x?x32xf32>, tensor<?x8x?xf32>) {scale = 1.250000e-01 : f64} -> tensor<?x8x?x32xf32>, tensor<?x8x?xf32> mask {
// CHECK:         ^bb0(%{{.*}}: index, %{{.*}}: index, %[[I:.*]]: index, %[[J:.*]]: index, %[[AP:.*]]: tensor<?xi32>, %[[AX:.*]]: tensor<?xi32>):
// CHECK:           %[[CAUSAL:.*]] = arith.cmpi ule, %[[J]], %[[I]] : index
// CHECK:           %[[ROWS1:.*]] = tensor.dim %[[AP]], %{{.*}} : tensor<?xi32>
// CHECK:           %[[NEXT:.*]] = arith.addi %[[I]], %{{.*}} : index
// CHECK:           arith.cmpi sge, %[[I]]
// CHECK:           arith.cmpi slt, %[[NEXT]], %[[ROWS1]]
// CHECK:           %[[E:.*]] = scf.if %{{.*}} -> (i1) {
// CHECK:             tensor.extract %[[AP]][%[[I]]] : tensor<?xi32>
// CHECK:             arith.maxsi
// CHECK:             tensor.extract %[[AP]][%[[NEXT]]] : tensor<?xi32>
// CHECK:             arith.minsi
// CHECK:             %[[W:.*]]:3 = scf.while
// CHECK:               scf.condition
// CHECK:             } do {
// CHECK:               arith.shrui
// CHECK:               %[[COL:.*]] = tensor.extract %[[AX]][%{{.*}}] : tensor<?xi32>
// CHECK:               %[[COLI:.*]] = arith.index_cast %[[COL]] : i32 to index
// CHECK:               arith.cmpi eq, %[[COLI]], %[[J]] : index
// CHECK:               arith.cmpi slt, %[[COLI]], %[[J]] : index
// CHECK:               scf.yield
// CHECK:             scf.yield %[[W]]#2 : i1
// CHECK:           } else {
// CHECK:             scf.yield %false : i1
// CHECK:           %[[A:.*]] = arith.andi %[[CAUSAL]], %[[E]] : i1
// CHECK:           fuse.yield %[[A]] : i1
// CHECK:         } score {
// CHECK:           %[[T:.*]] = math.tanh
// CHECK:           fuse.yield %[[T]] : f32
// CHECK:         return %[[R]]#0, %[[R]]#1
// CHECK-NOT:     loom.
func.func @attention_mask_score(%q: tensor<?x8x?x64xf32>, %k: tensor<?x2x?x64xf32>,
    %v: tensor<?x2x?x32xf32>, %ip: tensor<?xi32>, %ix: tensor<?xi32>)
    -> (tensor<?x8x?x32xf32>, tensor<?x8x?xf32>) {
  %o, %l = loom.attention %q, %k, %v captures(%ip, %ix : tensor<?xi32>, tensor<?xi32>)
      {scale = 0.125 : f64}
      : tensor<?x8x?x64xf32>, tensor<?x2x?x64xf32>, tensor<?x2x?x32xf32>
      -> tensor<?x8x?x32xf32>, tensor<?x8x?xf32>
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %p: tensor<?xi32>, %x: tensor<?xi32>):
      %c = arith.cmpi ule, %j, %i : index
      %e = loom.csr_contains %p, %x, %i, %j : tensor<?xi32>, tensor<?xi32>
      %a = arith.andi %c, %e : i1
      loom.yield %a : i1
    }
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %s: f32, %p: tensor<?xi32>, %x: tensor<?xi32>):
      %t = math.tanh %s : f32
      loom.yield %t : f32
    }
  return %o, %l : tensor<?x8x?x32xf32>, tensor<?x8x?xf32>
}

// -----

// Static shapes, no region, Dk != Dv.
// CHECK-LABEL: func.func @attention_plain
// CHECK:         %[[OI:.*]] = tensor.empty() : tensor<2x4x16x4xf32>
// CHECK:         %[[LI:.*]] = tensor.empty() : tensor<2x4x16xf32>
// CHECK:         %[[R:.*]]:2 = fuse.attention ins(%arg0, %arg1, %arg2 : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x4xf32>) outs(%[[OI]], %[[LI]] : tensor<2x4x16x4xf32>, tensor<2x4x16xf32>) {scale = 3.500000e-01 : f64} -> tensor<2x4x16x4xf32>, tensor<2x4x16xf32>
// CHECK-NOT:     mask
// CHECK-NOT:     score
// CHECK:         return %[[R]]#1
func.func @attention_plain(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>,
    %v: tensor<2x4x16x4xf32>) -> tensor<2x4x16xf32> {
  %o, %l = loom.attention %q, %k, %v {scale = 0.35 : f64}
      : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x4xf32>
      -> tensor<2x4x16x4xf32>, tensor<2x4x16xf32>
  return %l : tensor<2x4x16xf32>
}

// -----

// softmax(q k^T * c + select(m, 0, -inf)) v with a [S, S] bool mask: a mask
// region that reads the mask at (i, j).
// CHECK-LABEL: func.func @composite_bool_mask
// CHECK-SAME:    %[[Q:[^:]*]]: tensor<2x4x16x8xf32>, %[[K:[^:]*]]: tensor<2x4x16x8xf32>, %[[V:[^:]*]]: tensor<2x4x16x8xf32>, %[[M:[^:]*]]: tensor<16x16xi1>
// CHECK:         %[[R:.*]]:2 = fuse.attention ins(%[[Q]], %[[K]], %[[V]] : {{.*}}) captures(%[[M]] : tensor<16x16xi1>) outs({{.*}}) {scale = 0.34999999403953552 : f64}
// CHECK-SAME:    mask {
// CHECK-NEXT:    ^bb0(%{{.*}}: index, %{{.*}}: index, %[[I:.*]]: index, %[[J:.*]]: index, %[[C:.*]]: tensor<16x16xi1>):
// CHECK-NEXT:      %[[E:.*]] = tensor.extract %[[C]][%[[I]], %[[J]]] : tensor<16x16xi1>
// CHECK-NEXT:      fuse.yield %[[E]] : i1
// CHECK-NEXT:    }
// CHECK-NOT:     score
// CHECK:         return %[[R]]#0
// CHECK-NOT:     loom.softmax
// CHECK-NOT:     loom.matmul
func.func @composite_bool_mask(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>,
    %v: tensor<2x4x16x8xf32>, %m: tensor<16x16xi1>) -> tensor<2x4x16x8xf32> {
  %kt = loom.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<2x4x16x8xf32> -> tensor<2x4x8x16xf32>
  %s = loom.matmul %q, %kt : tensor<2x4x16x8xf32>, tensor<2x4x8x16xf32> -> tensor<2x4x16x16xf32>
  %c = loom.constant dense<0.35> : tensor<f32>
  %t = loom.mul %s, %c : tensor<2x4x16x16xf32>, tensor<f32> -> tensor<2x4x16x16xf32>
  %z = loom.constant dense<0.0> : tensor<f32>
  %ni = loom.constant dense<0xFF800000> : tensor<f32>
  %mm = loom.select %m, %z, %ni : tensor<16x16xi1>, tensor<f32>, tensor<f32> -> tensor<16x16xf32>
  %a = loom.add %mm, %t : tensor<16x16xf32>, tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %p = loom.softmax %a {axis = 3 : i64} : tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %o = loom.matmul %p, %v : tensor<2x4x16x16xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x8xf32>
  return %o : tensor<2x4x16x8xf32>
}

// -----

// masked_fill form select(m, scores, -inf), transpose_b, symbolic sizes, the
// mask broadcast over heads ([B, 1, S, S] reads h at index 0).
// CHECK-LABEL: func.func @composite_masked_fill
// CHECK-SAME:    %[[Q:[^:]*]]: tensor<?x4x?x8xf32>, %[[K:[^:]*]]: tensor<?x4x?x8xf32>, %[[V:[^:]*]]: tensor<?x4x?x16xf32>, %[[M:[^:]*]]: tensor<?x1x?x?xi1>
// CHECK-DAG:     %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG:     %[[B:.*]] = tensor.dim %[[Q]], %[[C0]]
// CHECK:         %[[OI:.*]] = tensor.empty(%[[B]], %{{.*}}) : tensor<?x4x?x16xf32>
// CHECK:         fuse.attention ins(%[[Q]], %[[K]], %[[V]] : {{.*}}) captures(%[[M]] : tensor<?x1x?x?xi1>) outs(%[[OI]], %{{.*}}) {scale = 1.250000e-01 : f64}
// CHECK-SAME:    mask {
// CHECK-NEXT:    ^bb0(%[[BI:.*]]: index, %{{.*}}: index, %[[I:.*]]: index, %[[J:.*]]: index, %[[C:.*]]: tensor<?x1x?x?xi1>):
// CHECK:           %[[E:.*]] = tensor.extract %[[C]][%[[BI]], %{{.*}}, %[[I]], %[[J]]] : tensor<?x1x?x?xi1>
// CHECK-NEXT:      fuse.yield %[[E]] : i1
func.func @composite_masked_fill(%q: tensor<?x4x?x8xf32>, %k: tensor<?x4x?x8xf32>,
    %v: tensor<?x4x?x16xf32>, %m: tensor<?x1x?x?xi1>) -> tensor<?x4x?x16xf32> {
  %s = loom.matmul %q, %k {transpose_b = true} : tensor<?x4x?x8xf32>, tensor<?x4x?x8xf32> -> tensor<?x4x?x?xf32>
  %c = loom.constant dense<8.0> : tensor<f32>
  %t = loom.div %s, %c : tensor<?x4x?x?xf32>, tensor<f32> -> tensor<?x4x?x?xf32>
  %ni = loom.constant dense<0xFF800000> : tensor<f32>
  %a = loom.select %m, %t, %ni : tensor<?x1x?x?xi1>, tensor<?x4x?x?xf32>, tensor<f32> -> tensor<?x4x?x?xf32>
  %p = loom.softmax %a {axis = 3 : i64} : tensor<?x4x?x?xf32> -> tensor<?x4x?x?xf32>
  %o = loom.matmul %p, %v : tensor<?x4x?x?xf32>, tensor<?x4x?x16xf32> -> tensor<?x4x?x16xf32>
  return %o : tensor<?x4x?x16xf32>
}

// -----

// An additive mask (here a bias broadcast over batch and heads) becomes a
// score region that adds it; -1e9 instead of -inf is a bias too.
// CHECK-LABEL: func.func @composite_additive
// CHECK-SAME:    %[[M:[^:]*]]: tensor<1x1x16x16xf32>
// CHECK:         fuse.attention ins({{.*}}) captures(%[[M]] : tensor<1x1x16x16xf32>) outs({{.*}}) {scale = 2.500000e-01 : f64}
// CHECK-NOT:     mask
// CHECK-SAME:    score {
// CHECK-NEXT:    ^bb0(%{{.*}}: index, %{{.*}}: index, %[[I:.*]]: index, %[[J:.*]]: index, %[[S:.*]]: f32, %[[C:.*]]: tensor<1x1x16x16xf32>):
// CHECK-NEXT:      %[[Z:.*]] = arith.constant 0 : index
// CHECK-NEXT:      %[[E:.*]] = tensor.extract %[[C]][%[[Z]], %[[Z]], %[[I]], %[[J]]] : tensor<1x1x16x16xf32>
// CHECK-NEXT:      %[[A:.*]] = arith.addf %[[S]], %[[E]] : f32
// CHECK-NEXT:      fuse.yield %[[A]] : f32
// CHECK-LABEL: func.func @composite_large_negative
// CHECK:         fuse.attention
// CHECK-NOT:     mask
// CHECK-SAME:    score {
// CHECK:           arith.addf
func.func @composite_additive(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>,
    %v: tensor<2x4x16x8xf32>, %m: tensor<1x1x16x16xf32>) -> tensor<2x4x16x8xf32> {
  %s = loom.matmul %q, %k {transpose_b = true} : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x16xf32>
  %c = loom.constant dense<0.25> : tensor<f32>
  %t = loom.mul %c, %s : tensor<f32>, tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %a = loom.add %t, %m : tensor<2x4x16x16xf32>, tensor<1x1x16x16xf32> -> tensor<2x4x16x16xf32>
  %p = loom.softmax %a {axis = 3 : i64} : tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %o = loom.matmul %p, %v : tensor<2x4x16x16xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x8xf32>
  return %o : tensor<2x4x16x8xf32>
}
func.func @composite_large_negative(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>,
    %v: tensor<2x4x16x8xf32>, %m: tensor<16x16xi1>) -> tensor<2x4x16x8xf32> {
  %s = loom.matmul %q, %k {transpose_b = true} : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x16xf32>
  %z = loom.constant dense<0.0> : tensor<f32>
  %big = loom.constant dense<-1.0e9> : tensor<f32>
  %mm = loom.select %m, %z, %big : tensor<16x16xi1>, tensor<f32>, tensor<f32> -> tensor<16x16xf32>
  %a = loom.add %s, %mm : tensor<2x4x16x16xf32>, tensor<16x16xf32> -> tensor<2x4x16x16xf32>
  %p = loom.softmax %a {axis = 3 : i64} : tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %o = loom.matmul %p, %v : tensor<2x4x16x16xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x8xf32>
  return %o : tensor<2x4x16x8xf32>
}

// -----

// No mask, the scale on q (q / 4), one key/value head for all query heads.
// CHECK-LABEL: func.func @composite_scale_on_q_mqa
// CHECK-SAME:    %[[Q:[^:]*]]: tensor<2x4x16x8xf32>, %[[K:[^:]*]]: tensor<2x1x16x8xf32>, %[[V:[^:]*]]: tensor<2x1x16x8xf32>
// CHECK:         %[[R:.*]]:2 = fuse.attention ins(%[[Q]], %[[K]], %[[V]] : tensor<2x4x16x8xf32>, tensor<2x1x16x8xf32>, tensor<2x1x16x8xf32>) outs({{.*}}) {scale = 2.500000e-01 : f64} -> tensor<2x4x16x8xf32>, tensor<2x4x16xf32>{{$}}
// CHECK-NEXT:    return %[[R]]#0
func.func @composite_scale_on_q_mqa(%q: tensor<2x4x16x8xf32>, %k: tensor<2x1x16x8xf32>,
    %v: tensor<2x1x16x8xf32>) -> tensor<2x4x16x8xf32> {
  %c = loom.constant dense<4.0> : tensor<f32>
  %qs = loom.div %q, %c : tensor<2x4x16x8xf32>, tensor<f32> -> tensor<2x4x16x8xf32>
  %s = loom.matmul %qs, %k {transpose_b = true} : tensor<2x4x16x8xf32>, tensor<2x1x16x8xf32> -> tensor<2x4x16x16xf32>
  %p = loom.softmax %s {axis = 3 : i64} : tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %o = loom.matmul %p, %v : tensor<2x4x16x16xf32>, tensor<2x1x16x8xf32> -> tensor<2x4x16x8xf32>
  return %o : tensor<2x4x16x8xf32>
}

// -----

// Rank 3 [B*H, S, D] is one batch row of B*H heads; a [S, S] bias reads (i, j).
// CHECK-LABEL: func.func @composite_rank3
// CHECK-SAME:    %[[Q:[^:]*]]: tensor<?x?x8xf32>, %[[K:[^:]*]]: tensor<?x?x8xf32>, %[[V:[^:]*]]: tensor<?x?x8xf32>, %[[M:[^:]*]]: tensor<?x?xf32>
// CHECK:         %[[Q4:.*]] = tensor.expand_shape %[[Q]] {{\[}}[0, 1], [2], [3]] output_shape [1, %{{.*}}, %{{.*}}, 8] : tensor<?x?x8xf32> into tensor<1x?x?x8xf32>
// CHECK:         %[[K4:.*]] = tensor.expand_shape %[[K]]
// CHECK:         %[[V4:.*]] = tensor.expand_shape %[[V]]
// CHECK:         %[[R:.*]]:2 = fuse.attention ins(%[[Q4]], %[[K4]], %[[V4]] : tensor<1x?x?x8xf32>, tensor<1x?x?x8xf32>, tensor<1x?x?x8xf32>) captures(%[[M]] : tensor<?x?xf32>) outs({{.*}}) {scale = 1.000000e+00 : f64}
// CHECK:         ^bb0(%{{.*}}: index, %{{.*}}: index, %[[I:.*]]: index, %[[J:.*]]: index, %[[S:.*]]: f32, %[[C:.*]]: tensor<?x?xf32>):
// CHECK-NEXT:      tensor.extract %[[C]][%[[I]], %[[J]]] : tensor<?x?xf32>
// CHECK:         %[[O:.*]] = tensor.collapse_shape %[[R]]#0 {{\[}}[0, 1], [2], [3]] : tensor<1x?x?x8xf32> into tensor<?x?x8xf32>
// CHECK:         return %[[O]]
func.func @composite_rank3(%q: tensor<?x?x8xf32>, %k: tensor<?x?x8xf32>,
    %v: tensor<?x?x8xf32>, %m: tensor<?x?xf32>) -> tensor<?x?x8xf32> {
  %kt = loom.transpose %k {permutation = array<i64: 0, 2, 1>} : tensor<?x?x8xf32> -> tensor<?x8x?xf32>
  %s = loom.matmul %q, %kt : tensor<?x?x8xf32>, tensor<?x8x?xf32> -> tensor<?x?x?xf32>
  %a = loom.add %s, %m : tensor<?x?x?xf32>, tensor<?x?xf32> -> tensor<?x?x?xf32>
  %p = loom.softmax %a {axis = 2 : i64} : tensor<?x?x?xf32> -> tensor<?x?x?xf32>
  %o = loom.matmul %p, %v : tensor<?x?x?xf32>, tensor<?x?x8xf32> -> tensor<?x?x8xf32>
  return %o : tensor<?x?x8xf32>
}

// -----

// Must not fuse: the scores have another use (returned).
// CHECK-LABEL: func.func @scores_returned
// CHECK-NOT:     fuse.attention
// CHECK:         loom.softmax
func.func @scores_returned(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>,
    %v: tensor<2x4x16x8xf32>) -> (tensor<2x4x16x8xf32>, tensor<2x4x16x16xf32>) {
  %s = loom.matmul %q, %k {transpose_b = true} : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x16xf32>
  %p = loom.softmax %s {axis = 3 : i64} : tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %o = loom.matmul %p, %v : tensor<2x4x16x16xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x8xf32>
  return %o, %s : tensor<2x4x16x8xf32>, tensor<2x4x16x16xf32>
}

// -----

// Must not fuse: the scaled scores have another use.
// CHECK-LABEL: func.func @scaled_scores_reused
// CHECK-NOT:     fuse.attention
func.func @scaled_scores_reused(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>,
    %v: tensor<2x4x16x8xf32>) -> (tensor<2x4x16x8xf32>, tensor<2x4x16x16xf32>) {
  %s = loom.matmul %q, %k {transpose_b = true} : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x16xf32>
  %c = loom.constant dense<0.25> : tensor<f32>
  %t = loom.mul %s, %c : tensor<2x4x16x16xf32>, tensor<f32> -> tensor<2x4x16x16xf32>
  %p = loom.softmax %t {axis = 3 : i64} : tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %o = loom.matmul %p, %v : tensor<2x4x16x16xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x8xf32>
  %e = loom.exp %t : tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  return %o, %e : tensor<2x4x16x8xf32>, tensor<2x4x16x16xf32>
}

// -----

// Must not fuse: the softmax has another use (the probabilities returned).
// CHECK-LABEL: func.func @softmax_returned
// CHECK-NOT:     fuse.attention
func.func @softmax_returned(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>,
    %v: tensor<2x4x16x8xf32>) -> (tensor<2x4x16x8xf32>, tensor<2x4x16x16xf32>) {
  %s = loom.matmul %q, %k {transpose_b = true} : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x16xf32>
  %p = loom.softmax %s {axis = 3 : i64} : tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %o = loom.matmul %p, %v : tensor<2x4x16x16xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x8xf32>
  return %o, %p : tensor<2x4x16x8xf32>, tensor<2x4x16x16xf32>
}

// -----

// Must not fuse: softmax over the query axis.
// CHECK-LABEL: func.func @softmax_other_axis
// CHECK-NOT:     fuse.attention
func.func @softmax_other_axis(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>,
    %v: tensor<2x4x16x8xf32>) -> tensor<2x4x16x8xf32> {
  %s = loom.matmul %q, %k {transpose_b = true} : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x16xf32>
  %p = loom.softmax %s {axis = 2 : i64} : tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %o = loom.matmul %p, %v : tensor<2x4x16x16xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x8xf32>
  return %o : tensor<2x4x16x8xf32>
}

// -----

// Must not fuse: the transpose also swaps batch and heads.
// CHECK-LABEL: func.func @transpose_other_axes
// CHECK-NOT:     fuse.attention
func.func @transpose_other_axes(%q: tensor<2x4x16x8xf32>, %k: tensor<4x2x16x8xf32>,
    %v: tensor<2x4x16x8xf32>) -> tensor<2x4x16x8xf32> {
  %kt = loom.transpose %k {permutation = array<i64: 1, 0, 3, 2>} : tensor<4x2x16x8xf32> -> tensor<2x4x8x16xf32>
  %s = loom.matmul %q, %kt : tensor<2x4x16x8xf32>, tensor<2x4x8x16xf32> -> tensor<2x4x16x16xf32>
  %p = loom.softmax %s {axis = 3 : i64} : tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %o = loom.matmul %p, %v : tensor<2x4x16x16xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x8xf32>
  return %o : tensor<2x4x16x8xf32>
}

// -----

// Must not fuse: the scale is a run-time value, not a constant.
// CHECK-LABEL: func.func @scale_not_constant
// CHECK-NOT:     fuse.attention
func.func @scale_not_constant(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>,
    %v: tensor<2x4x16x8xf32>, %c: tensor<f32>) -> tensor<2x4x16x8xf32> {
  %s = loom.matmul %q, %k {transpose_b = true} : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x16xf32>
  %t = loom.mul %s, %c : tensor<2x4x16x16xf32>, tensor<f32> -> tensor<2x4x16x16xf32>
  %p = loom.softmax %t {axis = 3 : i64} : tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %o = loom.matmul %p, %v : tensor<2x4x16x16xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x8xf32>
  return %o : tensor<2x4x16x8xf32>
}

// -----

// Must not fuse: the scale is a non-scalar constant (one factor per key).
// CHECK-LABEL: func.func @scale_per_key
// CHECK-NOT:     fuse.attention
func.func @scale_per_key(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>,
    %v: tensor<2x4x16x8xf32>) -> tensor<2x4x16x8xf32> {
  %s = loom.matmul %q, %k {transpose_b = true} : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x16xf32>
  %c = loom.constant dense<[1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]> : tensor<16xf32>
  %t = loom.mul %s, %c : tensor<2x4x16x16xf32>, tensor<16xf32> -> tensor<2x4x16x16xf32>
  %p = loom.softmax %t {axis = 3 : i64} : tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %o = loom.matmul %p, %v : tensor<2x4x16x16xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x8xf32>
  return %o : tensor<2x4x16x8xf32>
}

// -----

// Must not fuse: the mask does not broadcast to the scores (it has a batch
// of 2 where the scores have 1).
// CHECK-LABEL: func.func @mask_not_broadcastable
// CHECK-NOT:     fuse.attention
func.func @mask_not_broadcastable(%q: tensor<1x4x16x8xf32>, %k: tensor<1x4x16x8xf32>,
    %v: tensor<2x4x16x8xf32>, %m: tensor<2x4x16x16xf32>) -> tensor<2x4x16x8xf32> {
  %s = loom.matmul %q, %k {transpose_b = true} : tensor<1x4x16x8xf32>, tensor<1x4x16x8xf32> -> tensor<1x4x16x16xf32>
  %a = loom.add %s, %m : tensor<1x4x16x16xf32>, tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %p = loom.softmax %a {axis = 3 : i64} : tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %o = loom.matmul %p, %v : tensor<2x4x16x16xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x8xf32>
  return %o : tensor<2x4x16x8xf32>
}

// -----

// Must not fuse: the scores are an integer product.
// CHECK-LABEL: func.func @integer_scores
// CHECK-NOT:     fuse.attention
func.func @integer_scores(%q: tensor<2x4x16x8xi32>, %k: tensor<2x4x16x8xi32>,
    %v: tensor<2x4x16x8xf32>) -> tensor<2x4x16x8xf32> {
  %s = loom.matmul %q, %k {transpose_b = true} : tensor<2x4x16x8xi32>, tensor<2x4x16x8xi32> -> tensor<2x4x16x16xi32>
  %f = loom.cast %s : tensor<2x4x16x16xi32> -> tensor<2x4x16x16xf32>
  %p = loom.softmax %f {axis = 3 : i64} : tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %o = loom.matmul %p, %v : tensor<2x4x16x16xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x8xf32>
  return %o : tensor<2x4x16x8xf32>
}

// -----

// Must not fuse: k and v have different head counts.
// CHECK-LABEL: func.func @kv_heads_differ
// CHECK-NOT:     fuse.attention
func.func @kv_heads_differ(%q: tensor<2x4x16x8xf32>, %k: tensor<2x1x16x8xf32>,
    %v: tensor<2x4x16x8xf32>) -> tensor<2x4x16x8xf32> {
  %s = loom.matmul %q, %k {transpose_b = true} : tensor<2x4x16x8xf32>, tensor<2x1x16x8xf32> -> tensor<2x4x16x16xf32>
  %p = loom.softmax %s {axis = 3 : i64} : tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %o = loom.matmul %p, %v : tensor<2x4x16x16xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x8xf32>
  return %o : tensor<2x4x16x8xf32>
}
