// RUN: loom-opt %s --split-input-file --verify-diagnostics | FileCheck %s

// GQA (8 query heads on 2 key/value heads), Dk != Dv, a mask reading a CSR
// capture and a score region.
// CHECK-LABEL: func @gqa_mask_score
// CHECK: loom.attention %{{.*}} captures(%{{.*}} : tensor<?xi32>, tensor<?xi32>)
// CHECK-SAME: -> tensor<?x8x?x32xf32>, tensor<?x8x?xf32> mask {
// CHECK: loom.csr_contains
// CHECK: loom.yield %{{.*}} : i1
// CHECK: } score {
// CHECK: math.tanh
func.func @gqa_mask_score(%q: tensor<?x8x?x64xf32>, %k: tensor<?x2x?x64xf32>,
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

// No regions: plain softmax attention.
// CHECK-LABEL: func @plain
// CHECK: loom.attention %{{.*}} : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x16x8xf32>, tensor<2x4x16xf32>
// CHECK-NOT: mask
func.func @plain(%q: tensor<2x4x16x8xf32>) -> tensor<2x4x16x8xf32> {
  %o, %l = loom.attention %q, %q, %q {scale = 0.35 : f64}
      : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>
      -> tensor<2x4x16x8xf32>, tensor<2x4x16xf32>
  return %o : tensor<2x4x16x8xf32>
}

// -----

func.func @heads_not_multiple(%q: tensor<1x6x16x8xf32>, %k: tensor<1x4x16x8xf32>) {
  // expected-error@+2 {{the query head count 6 is not a multiple of the key/value head count 4}}
  // expected-error@+1 {{failed to infer returned types}}
  %o, %l = loom.attention %q, %k, %k {scale = 0.35 : f64}
      : tensor<1x6x16x8xf32>, tensor<1x4x16x8xf32>, tensor<1x4x16x8xf32>
      -> tensor<1x6x16x8xf32>, tensor<1x6x16xf32>
  return
}

// -----

func.func @head_dim(%q: tensor<1x4x16x8xf32>, %k: tensor<1x4x16x4xf32>) {
  // expected-error@+2 {{the query/key head dim is 8 in q (dimension 3) but 4 in k (dimension 3)}}
  // expected-error@+1 {{failed to infer returned types}}
  %o, %l = loom.attention %q, %k, %k {scale = 0.35 : f64}
      : tensor<1x4x16x8xf32>, tensor<1x4x16x4xf32>, tensor<1x4x16x4xf32>
      -> tensor<1x4x16x4xf32>, tensor<1x4x16xf32>
  return
}

// -----

func.func @rank(%q: tensor<4x16x8xf32>) {
  // expected-error@+2 {{q must have rank 4 ([batch, heads, positions, head dim]), got tensor<4x16x8xf32>}}
  // expected-error@+1 {{failed to infer returned types}}
  %o, %l = loom.attention %q, %q, %q {scale = 0.35 : f64}
      : tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x16x8xf32>
      -> tensor<4x16x8xf32>, tensor<4x16xf32>
  return
}

// -----

func.func @mask_args(%q: tensor<1x4x16x8xf32>, %t: tensor<16xi32>) {
  // expected-error@+1 {{the mask region must take (b, h, i, j: index, captures...) = (index, index, index, index, tensor<16xi32>), got 4 arguments}}
  %o, %l = loom.attention %q, %q, %q captures(%t : tensor<16xi32>) {scale = 0.35 : f64}
      : tensor<1x4x16x8xf32>, tensor<1x4x16x8xf32>, tensor<1x4x16x8xf32>
      -> tensor<1x4x16x8xf32>, tensor<1x4x16xf32>
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c = arith.cmpi ule, %j, %i : index
      loom.yield %c : i1
    }
  return
}

// -----

func.func @mask_yield(%q: tensor<1x4x16x8xf32>) {
  // expected-error@+1 {{the mask region must end in loom.yield of one 'i1'}}
  %o, %l = loom.attention %q, %q, %q {scale = 0.35 : f64}
      : tensor<1x4x16x8xf32>, tensor<1x4x16x8xf32>, tensor<1x4x16x8xf32>
      -> tensor<1x4x16x8xf32>, tensor<1x4x16xf32>
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c = arith.constant 1.0 : f32
      loom.yield %c : f32
    }
  return
}

// -----

func.func @csr_rank(%p: tensor<4x4xi32>, %i: index) {
  // expected-error@+1 {{indptr must be a rank-1 integer tensor, got 'tensor<4x4xi32>'}}
  %e = loom.csr_contains %p, %p, %i, %i : tensor<4x4xi32>, tensor<4x4xi32>
  return
}
