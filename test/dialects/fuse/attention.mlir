// RUN: loom-opt %s --split-input-file --verify-diagnostics | FileCheck %s

// On tensors fuse.attention returns the output and the lse; on memrefs it
// writes its outs.
// CHECK-LABEL: func @tensors
// CHECK: %{{.*}}:2 = fuse.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<?x8x?x64xf32>, tensor<?x2x?x64xf32>, tensor<?x2x?x64xf32>) captures(%{{.*}} : tensor<?xi32>) outs(
// CHECK-SAME: -> tensor<?x8x?x64xf32>, tensor<?x8x?xf32> mask {
// CHECK: tensor.extract
// CHECK: fuse.yield %{{.*}} : i1
func.func @tensors(%q: tensor<?x8x?x64xf32>, %k: tensor<?x2x?x64xf32>,
    %t: tensor<?xi32>, %o: tensor<?x8x?x64xf32>, %l: tensor<?x8x?xf32>)
    -> tensor<?x8x?x64xf32> {
  %r:2 = fuse.attention ins(%q, %k, %k : tensor<?x8x?x64xf32>, tensor<?x2x?x64xf32>, tensor<?x2x?x64xf32>)
      captures(%t : tensor<?xi32>)
      outs(%o, %l : tensor<?x8x?x64xf32>, tensor<?x8x?xf32>) {scale = 0.125 : f64}
      -> tensor<?x8x?x64xf32>, tensor<?x8x?xf32>
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %tin: tensor<?xi32>):
      %ti = tensor.extract %tin[%i] : tensor<?xi32>
      %tj = tensor.extract %tin[%j] : tensor<?xi32>
      %c = arith.cmpi sle, %tj, %ti : i32
      fuse.yield %c : i1
    }
  return %r#0 : tensor<?x8x?x64xf32>
}

// CHECK-LABEL: func @memrefs
// CHECK: fuse.attention ins(
// CHECK-NOT: ->
// CHECK: score {
func.func @memrefs(%q: memref<?x8x?x64xf32>, %o: memref<?x8x?x64xf32>,
    %l: memref<?x8x?xf32>) {
  fuse.attention ins(%q, %q, %q : memref<?x8x?x64xf32>, memref<?x8x?x64xf32>, memref<?x8x?x64xf32>)
      outs(%o, %l : memref<?x8x?x64xf32>, memref<?x8x?xf32>) {scale = 0.125 : f64}
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %s: f32):
      %c = arith.constant 30.0 : f32
      %d = arith.divf %s, %c : f32
      %t = math.tanh %d : f32
      %m = arith.mulf %t, %c : f32
      fuse.yield %m : f32
    }
  return
}

// -----

func.func @results_on_memrefs(%q: memref<1x1x4x8xf32>, %l: memref<1x1x4xf32>) {
  // expected-error@+1 {{on memrefs returns nothing}}
  %r:2 = fuse.attention ins(%q, %q, %q : memref<1x1x4x8xf32>, memref<1x1x4x8xf32>, memref<1x1x4x8xf32>)
      outs(%q, %l : memref<1x1x4x8xf32>, memref<1x1x4xf32>) {scale = 1.0 : f64}
      -> tensor<1x1x4x8xf32>, tensor<1x1x4xf32>
  return
}

// -----

func.func @value_dim(%q: tensor<1x1x4x8xf32>, %o: tensor<1x1x4x6xf32>, %l: tensor<1x1x4xf32>) {
  // expected-error@+1 {{the value head dim is 8 in v but 6 in the output}}
  %r:2 = fuse.attention ins(%q, %q, %q : tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>)
      outs(%o, %l : tensor<1x1x4x6xf32>, tensor<1x1x4xf32>) {scale = 1.0 : f64}
      -> tensor<1x1x4x6xf32>, tensor<1x1x4xf32>
  return
}

// -----

func.func @wrong_yield(%q: tensor<1x1x4x8xf32>, %l: tensor<1x1x4xf32>) {
  // expected-error@+1 {{the mask region must end in fuse.yield of one 'i1'}}
  %r:2 = fuse.attention ins(%q, %q, %q : tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>)
      outs(%q, %l : tensor<1x1x4x8xf32>, tensor<1x1x4xf32>) {scale = 1.0 : f64}
      -> tensor<1x1x4x8xf32>, tensor<1x1x4xf32>
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c = arith.constant true
      %d = arith.constant 1 : i32
      fuse.yield %d : i32
    }
  return
}
