// RUN: loom-opt %s --split-input-file --loom-cpu-fuse-to-runtime --verify-diagnostics | FileCheck %s

// A bufferized fuse.mla_decode becomes a call of the runtime's kernel, its
// memrefs cast to fully dynamic strided layouts and the scale passed as f32.
// CHECK: func.func private @loom_rt_mla_decode_f32(memref<?x?x?x?xf32, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?x?x?xf32, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?x?xf32, strided<[?, ?, ?, ?], offset: ?>>, i64, f32) attributes {llvm.emit_c_interface}
// CHECK-LABEL: func.func @decode(
// CHECK-SAME: %[[QL:[^:]*]]: memref<?x1x16x512xf32>, %[[QP:[^:]*]]: memref<?x1x16x64xf32, strided<[1024, 1024, 64, 1]>>, %[[KV:[^:]*]]: memref<8x4096x512xf32>, %[[PE:[^:]*]]: memref<8x4096x64xf32>, %[[POS:[^:]*]]: i64, %[[OUT:[^:]*]]: memref<?x1x16x512xf32>
// CHECK-DAG: %[[SCALE:.*]] = arith.constant 1.250000e-01 : f32
// CHECK-DAG: %[[A:.*]] = memref.cast %[[QL]]
// CHECK-DAG: %[[B:.*]] = memref.cast %[[QP]]
// CHECK-DAG: %[[C:.*]] = memref.cast %[[KV]]
// CHECK-DAG: %[[D:.*]] = memref.cast %[[PE]]
// CHECK-DAG: %[[E:.*]] = memref.cast %[[OUT]]
// CHECK: call @loom_rt_mla_decode_f32(%[[A]], %[[B]], %[[C]], %[[D]], %[[E]], %[[POS]], %[[SCALE]])
// CHECK-NOT: fuse.mla_decode
func.func @decode(%ql: memref<?x1x16x512xf32>, %qp: memref<?x1x16x64xf32, strided<[1024, 1024, 64, 1]>>,
                  %kv: memref<8x4096x512xf32>, %pe: memref<8x4096x64xf32>,
                  %pos: i64, %out: memref<?x1x16x512xf32>) {
  fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%out) {scale = 0.125 : f64}
      : memref<?x1x16x512xf32>, memref<?x1x16x64xf32, strided<[1024, 1024, 64, 1]>>,
        memref<8x4096x512xf32>, memref<8x4096x64xf32>, memref<?x1x16x512xf32>
  return
}

// -----

func.func @tensors(%ql: tensor<1x1x16x512xf32>, %qp: tensor<1x1x16x64xf32>,
                   %kv: tensor<8x4096x512xf32>, %pe: tensor<8x4096x64xf32>,
                   %pos: i64, %init: tensor<1x1x16x512xf32>) -> tensor<1x1x16x512xf32> {
  // expected-error@+1 {{must be bufferized before it becomes a call}}
  %o = fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%init) {scale = 0.125 : f64}
      : tensor<1x1x16x512xf32>, tensor<1x1x16x64xf32>, tensor<8x4096x512xf32>,
        tensor<8x4096x64xf32>, tensor<1x1x16x512xf32> -> tensor<1x1x16x512xf32>
  return %o : tensor<1x1x16x512xf32>
}

// -----

func.func @f64(%ql: memref<1x1x16x512xf64>, %qp: memref<1x1x16x64xf64>,
               %kv: memref<8x4096x512xf64>, %pe: memref<8x4096x64xf64>,
               %pos: i64, %out: memref<1x1x16x512xf64>) {
  // expected-error@+1 {{has a CPU kernel for f32 only, not 'f64'}}
  fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%out) {scale = 0.125 : f64}
      : memref<1x1x16x512xf64>, memref<1x1x16x64xf64>, memref<8x4096x512xf64>,
        memref<8x4096x64xf64>, memref<1x1x16x512xf64>
  return
}
