// RUN: loom-opt %s | loom-opt | FileCheck %s
// RUN: loom-opt %s --mlir-print-op-generic | loom-opt | FileCheck %s

// CHECK-LABEL: func @elementwise
func.func @elementwise(%a: tensor<?x64xf32>, %b: tensor<64xf32>, %c: tensor<?x64xi1>) -> tensor<?x64xf32> {
  // CHECK: loom.add %{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
  %0 = loom.add %a, %b : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
  // CHECK: loom.sub
  %1 = loom.sub %0, %a : tensor<?x64xf32>, tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: loom.mul
  %2 = loom.mul %1, %b : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
  // CHECK: loom.div
  %3 = loom.div %2, %b : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
  // CHECK: loom.max
  %4 = loom.max %3, %a : tensor<?x64xf32>, tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: loom.min
  %5 = loom.min %4, %a : tensor<?x64xf32>, tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: loom.pow
  %6 = loom.pow %5, %a : tensor<?x64xf32>, tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: loom.cmp "lt"
  %7 = loom.cmp "lt" %6, %b : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xi1>
  // CHECK: loom.and
  %8 = loom.and %7, %c : tensor<?x64xi1>, tensor<?x64xi1> -> tensor<?x64xi1>
  // CHECK: loom.or
  %9 = loom.or %8, %c : tensor<?x64xi1>, tensor<?x64xi1> -> tensor<?x64xi1>
  // CHECK: loom.not
  %10 = loom.not %9 : tensor<?x64xi1> -> tensor<?x64xi1>
  // CHECK: loom.select
  %11 = loom.select %10, %6, %b : tensor<?x64xi1>, tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
  // CHECK: loom.neg
  %12 = loom.neg %11 : tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: loom.abs
  %13 = loom.abs %12 : tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: loom.exp
  %14 = loom.exp %13 : tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: loom.log
  %15 = loom.log %14 : tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: loom.tanh
  %16 = loom.tanh %15 : tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: loom.sigmoid
  %17 = loom.sigmoid %16 : tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: loom.silu
  %18 = loom.silu %17 : tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: loom.gelu
  %19 = loom.gelu %18 : tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: loom.rsqrt
  %20 = loom.rsqrt %19 : tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: loom.sqrt
  %21 = loom.sqrt %20 : tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: loom.sin %{{.*}} : tensor<?x64xf32> -> tensor<?x64xf32>
  %22 = loom.sin %21 : tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: loom.cos %{{.*}} : tensor<?x64xf32> -> tensor<?x64xf32>
  %23 = loom.cos %22 : tensor<?x64xf32> -> tensor<?x64xf32>
  return %23 : tensor<?x64xf32>
}

// CHECK-LABEL: func @structure
func.func @structure(%x: tensor<?x?x512xf32>, %w: tensor<512xf32>, %m: tensor<128x512xf32>,
                     %bias: tensor<128xf32>, %ids: tensor<?xi64>, %t: tensor<1000x64xf32>) {
  // CHECK: loom.constant dense<5.000000e-01> : tensor<f32>
  %c = loom.constant dense<0.5> : tensor<f32>
  // CHECK: loom.iota like %{{.*}} : tensor<?x?x512xf32> {axis = 1 : i64} -> tensor<?x?x512xi64>
  %i = loom.iota like %x : tensor<?x?x512xf32> {axis = 1 : i64} -> tensor<?x?x512xi64>
  // CHECK: loom.iota {axis = 0 : i64} -> tensor<8xi64>
  %j = loom.iota {axis = 0 : i64} -> tensor<8xi64>
  // CHECK: loom.cast %{{.*}} : tensor<?x?x512xi64> -> tensor<?x?x512xf32>
  %k = loom.cast %i : tensor<?x?x512xi64> -> tensor<?x?x512xf32>
  // CHECK: loom.sum %{{.*}} {axes = array<i64: 2>, keepdim = true}
  %s = loom.sum %x {axes = array<i64: 2>, keepdim = true} : tensor<?x?x512xf32> -> tensor<?x?x1xf32>
  // CHECK: loom.mean %{{.*}} {axes = array<i64: 0, 1>}
  %mn = loom.mean %x {axes = array<i64: 0, 1>} : tensor<?x?x512xf32> -> tensor<512xf32>
  // CHECK: loom.reduce_max
  %mx = loom.reduce_max %x {axes = array<i64: 2>} : tensor<?x?x512xf32> -> tensor<?x?xf32>
  // CHECK: loom.reduce_min
  %mi = loom.reduce_min %x {axes = array<i64: 2>} : tensor<?x?x512xf32> -> tensor<?x?xf32>
  // CHECK: loom.softmax %{{.*}} {axis = 2 : i64}
  %sm = loom.softmax %x {axis = 2 : i64} : tensor<?x?x512xf32> -> tensor<?x?x512xf32>
  // CHECK: loom.log_softmax
  %ls = loom.log_softmax %x {axis = 2 : i64} : tensor<?x?x512xf32> -> tensor<?x?x512xf32>
  // CHECK: loom.rms_norm
  %n = loom.rms_norm %x, %w {eps = 1.0e-06 : f64} : tensor<?x?x512xf32>, tensor<512xf32> -> tensor<?x?x512xf32>
  // CHECK: loom.linear %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x?x512xf32>, tensor<128x512xf32>, tensor<128xf32> -> tensor<?x?x128xf32>
  %l = loom.linear %x, %m, %bias : tensor<?x?x512xf32>, tensor<128x512xf32>, tensor<128xf32> -> tensor<?x?x128xf32>
  // CHECK: loom.matmul %{{.*}}, %{{.*}} {transpose_b = true}
  %mm = loom.matmul %x, %m {transpose_b = true} : tensor<?x?x512xf32>, tensor<128x512xf32> -> tensor<?x?x128xf32>
  // CHECK: loom.reshape %{{.*}} {shape = array<i64: 0, 0, 8, -1>} : tensor<?x?x512xf32> -> tensor<?x?x8x64xf32>
  %r = loom.reshape %x {shape = array<i64: 0, 0, 8, -1>} : tensor<?x?x512xf32> -> tensor<?x?x8x64xf32>
  // CHECK: loom.transpose %{{.*}} {permutation = array<i64: 0, 2, 1, 3>}
  %tr = loom.transpose %r {permutation = array<i64: 0, 2, 1, 3>} : tensor<?x?x8x64xf32> -> tensor<?x8x?x64xf32>
  // CHECK: loom.slice %{{.*}} {axis = 2 : i64, end = 128 : i64, start = 0 : i64, step = 2 : i64}
  %sl = loom.slice %x {axis = 2 : i64, start = 0 : i64, end = 128 : i64, step = 2 : i64} : tensor<?x?x512xf32> -> tensor<?x?x64xf32>
  // CHECK: loom.concat %{{.*}}, %{{.*}} {axis = 2 : i64}
  %cc = loom.concat %x, %sl {axis = 2 : i64} : tensor<?x?x512xf32>, tensor<?x?x64xf32> -> tensor<?x?x576xf32>
  // CHECK: loom.gather %{{.*}}, %{{.*}} {axis = 0 : i64}
  %g = loom.gather %t, %ids {axis = 0 : i64} : tensor<1000x64xf32>, tensor<?xi64> -> tensor<?x64xf32>
  // CHECK: loom.broadcast %{{.*}} like %{{.*}} : tensor<512xf32>, tensor<?x?x512xf32> -> tensor<?x?x512xf32>
  %b = loom.broadcast %w like %x : tensor<512xf32>, tensor<?x?x512xf32> -> tensor<?x?x512xf32>
  // CHECK: loom.broadcast %{{.*}} {shape = array<i64: 4, 8>} : tensor<f32> -> tensor<4x8xf32>
  %b2 = loom.broadcast %c {shape = array<i64: 4, 8>} : tensor<f32> -> tensor<4x8xf32>
  return
}

// CHECK-LABEL: func @dynamic_slices
func.func @dynamic_slices(%x: tensor<?x16x8xf32>, %k: tensor<?x?x8xf32>, %pos: tensor<i64>,
                          %len: tensor<i32>) {
  // CHECK: loom.dynamic_slice %{{.*}}, %{{.*}}, %{{.*}} {axis = 1 : i64} : tensor<?x16x8xf32>, tensor<i64>, tensor<i32> -> tensor<?x?x8xf32>
  %a = loom.dynamic_slice %x, %pos, %len {axis = 1 : i64} : tensor<?x16x8xf32>, tensor<i64>, tensor<i32> -> tensor<?x?x8xf32>
  // CHECK: loom.dynamic_slice %{{.*}}, %{{.*}} {axis = 1 : i64, size = 4 : i64} : tensor<?x16x8xf32>, tensor<i64> -> tensor<?x4x8xf32>
  %b = loom.dynamic_slice %x, %pos {axis = 1 : i64, size = 4 : i64} : tensor<?x16x8xf32>, tensor<i64> -> tensor<?x4x8xf32>
  // CHECK: loom.dynamic_update_slice %{{.*}}, %{{.*}}, %{{.*}} {axis = 1 : i64} : tensor<?x16x8xf32>, tensor<?x?x8xf32>, tensor<i64> -> tensor<?x16x8xf32>
  %c = loom.dynamic_update_slice %x, %k, %pos {axis = 1 : i64} : tensor<?x16x8xf32>, tensor<?x?x8xf32>, tensor<i64> -> tensor<?x16x8xf32>
  // CHECK: loom.dynamic_update_slice %{{.*}}, %{{.*}}, %{{.*}} {axis = 1 : i64} : tensor<?x16x8xf32>, tensor<?x4x8xf32>, tensor<i32> -> tensor<?x16x8xf32>
  %d = loom.dynamic_update_slice %x, %b, %len {axis = 1 : i64} : tensor<?x16x8xf32>, tensor<?x4x8xf32>, tensor<i32> -> tensor<?x16x8xf32>
  return
}

// A static update may be smaller than the target outside the axis too: rows
// [0, 1) of a 3-row cache.
// CHECK-LABEL: func @cache_rows
func.func @cache_rows(%cache: tensor<3x16x8xf32>, %k: tensor<1x4x8xf32>, %pos: tensor<i64>) {
  // CHECK: loom.dynamic_update_slice %{{.*}} : tensor<3x16x8xf32>, tensor<1x4x8xf32>, tensor<i64> -> tensor<3x16x8xf32>
  %c = loom.dynamic_update_slice %cache, %k, %pos {axis = 1 : i64} : tensor<3x16x8xf32>, tensor<1x4x8xf32>, tensor<i64> -> tensor<3x16x8xf32>
  return
}

// CHECK-LABEL: func @mla_attention
func.func @mla_attention(%qn: tensor<?x?x2x8xf32>, %qp: tensor<?x?x2x4xf32>,
                         %kv: tensor<?x?x16xf32>, %kpe: tensor<?x?x4xf32>,
                         %w: tensor<32x16xf32>, %kc: tensor<3x10x2x12xf32>,
                         %vc: tensor<3x10x2x8xf32>, %pos: tensor<i64>) {
  // CHECK: loom.mla_attention {{.*}} {scale = 2.500000e-01 : f64}
  // CHECK-SAME: -> tensor<?x?x2x8xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
  %o, %k2, %v2 = loom.mla_attention %qn, %qp, %kv, %kpe, %w, %kc, %vc, %pos {scale = 0.25 : f64}
      : tensor<?x?x2x8xf32>, tensor<?x?x2x4xf32>, tensor<?x?x16xf32>, tensor<?x?x4xf32>, tensor<32x16xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>, tensor<i64>
      -> tensor<?x?x2x8xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
  return
}
