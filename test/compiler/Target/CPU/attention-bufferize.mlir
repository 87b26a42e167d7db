// RUN: loom-opt %s --split-input-file --one-shot-bufferize="bufferize-function-boundaries" | FileCheck %s

// fuse.attention bufferizes in place: its inits become the buffers it writes,
// its regions move to the memref form, where the captures are memrefs read
// with memref.load, also inside loops nested in the region.
// CHECK-LABEL: func.func @tree(
// CHECK-SAME: %[[Q:[^:]*]]: memref<?x2x?x8xf32
// CHECK-SAME: %[[TIN:[^:]*]]: memref<?xi32
// CHECK-SAME: %[[TOUT:[^:]*]]: memref<?xi32
// CHECK-SAME: %[[O:[^:]*]]: memref<?x2x?x8xf32
// CHECK-SAME: %[[L:[^:]*]]: memref<?x2x?xf32
// CHECK-NOT: memref.alloc
// CHECK: fuse.attention ins(%[[Q]], %[[Q]], %[[Q]] : {{.*}}) captures(%[[TIN]], %[[TOUT]] : memref<?xi32, {{.*}}>, memref<?xi32, {{.*}}>) outs(%[[O]], %[[L]] : {{.*}}) {scale = 1.250000e-01 : f64} mask {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %{{.*}}: index, %[[I:[^:]*]]: index, %[[J:[^:]*]]: index, %[[A:[^:]*]]: memref<?xi32, {{.*}}>, %[[B:[^:]*]]: memref<?xi32, {{.*}}>):
// CHECK: memref.load %[[A]][%[[J]]]
// CHECK: memref.load %[[A]][%[[I]]]
// CHECK: scf.for
// CHECK: memref.load %[[B]][%{{.*}}]
// CHECK: scf.yield
// CHECK: fuse.yield %{{.*}} : i1
// CHECK-NEXT: } score {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: f32, %{{.*}}: memref<?xi32, {{.*}}>, %[[SB:[^:]*]]: memref<?xi32, {{.*}}>):
// CHECK: memref.dim %[[SB]], %{{.*}}
// CHECK-NOT: tensor.
// CHECK: return %[[O]], %[[L]]
func.func @tree(%q: tensor<?x2x?x8xf32>, %tin: tensor<?xi32>, %tout: tensor<?xi32>,
                %o: tensor<?x2x?x8xf32>, %l: tensor<?x2x?xf32>)
    -> (tensor<?x2x?x8xf32>, tensor<?x2x?xf32>) {
  %r:2 = fuse.attention ins(%q, %q, %q : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>)
      captures(%tin, %tout : tensor<?xi32>, tensor<?xi32>)
      outs(%o, %l : tensor<?x2x?x8xf32>, tensor<?x2x?xf32>) {scale = 0.125 : f64}
      -> tensor<?x2x?x8xf32>, tensor<?x2x?xf32>
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %a: tensor<?xi32>, %c: tensor<?xi32>):
      %tj = tensor.extract %a[%j] : tensor<?xi32>
      %ti = tensor.extract %a[%i] : tensor<?xi32>
      %le = arith.cmpi sle, %tj, %ti : i32
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %f = arith.constant false
      %any = scf.for %k = %c0 to %i step %c1 iter_args(%acc = %f) -> (i1) {
        %x = tensor.extract %c[%k] : tensor<?xi32>
        %z = arith.constant 0 : i32
        %p = arith.cmpi eq, %x, %z : i32
        %n = arith.ori %acc, %p : i1
        scf.yield %n : i1
      }
      %m = arith.andi %le, %any : i1
      fuse.yield %m : i1
    }
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %s: f32, %a: tensor<?xi32>, %c: tensor<?xi32>):
      %c0 = arith.constant 0 : index
      %d = tensor.dim %c, %c0 : tensor<?xi32>
      %di = arith.index_cast %d : index to i32
      %df = arith.sitofp %di : i32 to f32
      %r = arith.addf %s, %df : f32
      fuse.yield %r : f32
    }
  return %r#0, %r#1 : tensor<?x2x?x8xf32>, tensor<?x2x?xf32>
}

// -----

// The inits are overwritten, not read: an init that is also read elsewhere
// after the op gets a fresh buffer without a copy of its contents.
// CHECK-LABEL: func.func @overwrite(
// CHECK: %[[NEW:.*]] = memref.alloc
// CHECK-NOT: memref.copy
// CHECK: fuse.attention {{.*}} outs(%[[NEW]],
func.func @overwrite(%q: tensor<1x1x4x8xf32>, %o: tensor<1x1x4x8xf32>,
                     %l: tensor<1x1x4xf32>)
    -> (tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>) {
  %r:2 = fuse.attention ins(%q, %q, %q : tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>)
      outs(%o, %l : tensor<1x1x4x8xf32>, tensor<1x1x4xf32>) {scale = 1.0 : f64}
      -> tensor<1x1x4x8xf32>, tensor<1x1x4xf32>
  return %r#0, %o : tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>
}
