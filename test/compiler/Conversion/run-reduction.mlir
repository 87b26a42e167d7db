// RUN: loom-opt %s --convert-loom-to-linalg \
// RUN:   --one-shot-bufferize="bufferize-function-boundaries" \
// RUN:   --convert-linalg-to-loops --convert-scf-to-cf --expand-strided-metadata \
// RUN:   --lower-affine --finalize-memref-to-llvm --convert-math-to-llvm \
// RUN:   --convert-math-to-libm --convert-arith-to-llvm --convert-cf-to-llvm \
// RUN:   --convert-func-to-llvm --reconcile-unrealized-casts \
// RUN: | %mlir_runner -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_runner_utils.so,%mlir_lib_dir/libmlir_c_runner_utils.so \
// RUN: | FileCheck %s

// Reductions, softmax and rms_norm run end to end on dynamic shapes.

func.func private @printMemrefF32(tensor<*xf32>)

func.func @reductions(%x: tensor<?x3xf32>) -> tensor<?x3xf32> {
  %s = loom.sum %x {axes = array<i64: 1>} : tensor<?x3xf32> -> tensor<?xf32>
  %all = loom.mean %x {axes = array<i64: 0, 1>, keepdim = true} : tensor<?x3xf32> -> tensor<1x1xf32>
  %all1 = loom.reshape %all {shape = array<i64: 1>} : tensor<1x1xf32> -> tensor<1xf32>
  %mx = loom.reduce_max %x {axes = array<i64: 0>} : tensor<?x3xf32> -> tensor<3xf32>
  %mn = loom.reduce_min %x {axes = array<i64: 0>} : tensor<?x3xf32> -> tensor<3xf32>
  %mean0 = loom.mean %x {axes = array<i64: 0>} : tensor<?x3xf32> -> tensor<3xf32>
  %r = loom.concat %s, %all1, %mx, %mn, %mean0 {axis = 0 : i64}
      : tensor<?xf32>, tensor<1xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32> -> tensor<?xf32>
  %o = loom.reshape %r {shape = array<i64: -1, 3>} : tensor<?xf32> -> tensor<?x3xf32>
  return %o : tensor<?x3xf32>
}

func.func @int_min_keepdim(%x: tensor<?x3xf32>) -> tensor<?x1xf32> {
  %i = loom.cast %x : tensor<?x3xf32> -> tensor<?x3xi32>
  %m = loom.reduce_min %i {axes = array<i64: 1>, keepdim = true} : tensor<?x3xi32> -> tensor<?x1xi32>
  %f = loom.cast %m : tensor<?x1xi32> -> tensor<?x1xf32>
  return %f : tensor<?x1xf32>
}

func.func @sum_middle_keepdim(%x: tensor<2x?x2xf32>) -> tensor<2x1x2xf32> {
  %s = loom.sum %x {axes = array<i64: 1>, keepdim = true} : tensor<2x?x2xf32> -> tensor<2x1x2xf32>
  return %s : tensor<2x1x2xf32>
}

func.func @softmaxes(%x: tensor<?x3xf32>) -> (tensor<?x3xf32>, tensor<?x3xf32>, tensor<?x3xf32>) {
  %a = loom.softmax %x {axis = 1 : i64} : tensor<?x3xf32> -> tensor<?x3xf32>
  %b = loom.softmax %x {axis = 0 : i64} : tensor<?x3xf32> -> tensor<?x3xf32>
  %c = loom.log_softmax %x {axis = 1 : i64} : tensor<?x3xf32> -> tensor<?x3xf32>
  return %a, %b, %c : tensor<?x3xf32>, tensor<?x3xf32>, tensor<?x3xf32>
}

func.func @rms(%x: tensor<?x3xf32>, %w: tensor<3xf32>) -> tensor<?x3xf32> {
  %y = loom.rms_norm %x, %w {eps = 1.0e-05 : f64} : tensor<?x3xf32>, tensor<3xf32> -> tensor<?x3xf32>
  return %y : tensor<?x3xf32>
}

func.func @main() {
  %a = arith.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32>
  %ad = tensor.cast %a : tensor<2x3xf32> to tensor<?x3xf32>
  %r0 = call @reductions(%ad) : (tensor<?x3xf32>) -> tensor<?x3xf32>
  %u0 = tensor.cast %r0 : tensor<?x3xf32> to tensor<*xf32>
  call @printMemrefF32(%u0) : (tensor<*xf32>) -> ()
  // Row sums and the mean of all; column max, min and mean.
  // CHECK: sizes = [4, 3]
  // CHECK-NEXT: [6,   15,   3.5],
  // CHECK-NEXT: [4,   5,   6],
  // CHECK-NEXT: [1,   2,   3],
  // CHECK-NEXT: [2.5,   3.5,   4.5]]

  %r1 = call @int_min_keepdim(%ad) : (tensor<?x3xf32>) -> tensor<?x1xf32>
  %u1 = tensor.cast %r1 : tensor<?x1xf32> to tensor<*xf32>
  call @printMemrefF32(%u1) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [2, 1]
  // CHECK-NEXT: [1],
  // CHECK-NEXT: [4]]

  %t = arith.constant dense<[[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]> : tensor<2x2x2xf32>
  %td = tensor.cast %t : tensor<2x2x2xf32> to tensor<2x?x2xf32>
  %r2 = call @sum_middle_keepdim(%td) : (tensor<2x?x2xf32>) -> tensor<2x1x2xf32>
  %u2 = tensor.cast %r2 : tensor<2x1x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u2) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [2, 1, 2]
  // CHECK-NEXT: [4,    6]],
  // CHECK: [12,    14]]]

  %s:3 = call @softmaxes(%ad) : (tensor<?x3xf32>) -> (tensor<?x3xf32>, tensor<?x3xf32>, tensor<?x3xf32>)
  %u3 = tensor.cast %s#0 : tensor<?x3xf32> to tensor<*xf32>
  call @printMemrefF32(%u3) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [2, 3]
  // CHECK-NEXT: [0.0900306,   0.244728,   0.665241],
  // CHECK-NEXT: [0.0900306,   0.244728,   0.665241]]
  %u4 = tensor.cast %s#1 : tensor<?x3xf32> to tensor<*xf32>
  call @printMemrefF32(%u4) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [2, 3]
  // CHECK-NEXT: [0.0474259,   0.0474259,   0.0474259],
  // CHECK-NEXT: [0.952574,   0.952574,   0.952574]]
  %u5 = tensor.cast %s#2 : tensor<?x3xf32> to tensor<*xf32>
  call @printMemrefF32(%u5) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [2, 3]
  // CHECK-NEXT: [-2.40761,   -1.40761,   -0.407606],
  // CHECK-NEXT: [-2.40761,   -1.40761,   -0.407606]]

  %w = arith.constant dense<[1.0, 2.0, 0.5]> : tensor<3xf32>
  %r6 = call @rms(%ad, %w) : (tensor<?x3xf32>, tensor<3xf32>) -> tensor<?x3xf32>
  %u6 = tensor.cast %r6 : tensor<?x3xf32> to tensor<*xf32>
  call @printMemrefF32(%u6) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [2, 3]
  // CHECK-NEXT: [0.46291,   1.85164,   0.694364],
  // CHECK-NEXT: [0.789542,   1.97385,   0.592156]]
  return
}
