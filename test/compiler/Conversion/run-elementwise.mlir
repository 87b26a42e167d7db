// RUN: loom-opt %s --convert-loom-to-linalg \
// RUN:   --one-shot-bufferize="bufferize-function-boundaries" \
// RUN:   --convert-linalg-to-loops --convert-scf-to-cf --expand-strided-metadata \
// RUN:   --lower-affine --finalize-memref-to-llvm --convert-math-to-llvm \
// RUN:   --convert-math-to-libm --convert-arith-to-llvm --convert-cf-to-llvm \
// RUN:   --convert-func-to-llvm --reconcile-unrealized-casts \
// RUN: | %mlir_runner -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_runner_utils.so,%mlir_lib_dir/libmlir_c_runner_utils.so \
// RUN: | FileCheck %s

// Elementwise lowerings run end to end. Inputs reach the lowered functions
// with dynamic shapes through tensor.cast, so nothing folds them.

func.func private @printMemrefF32(tensor<*xf32>)

func.func @add(%a: tensor<?x3xf32>, %b: tensor<3xf32>) -> tensor<?x3xf32> {
  %r = loom.add %a, %b : tensor<?x3xf32>, tensor<3xf32> -> tensor<?x3xf32>
  return %r : tensor<?x3xf32>
}

// Both operands stretch a static 1: an outer maximum.
func.func @outer_max(%a: tensor<?x1xf32>, %b: tensor<1x?xf32>) -> tensor<?x?xf32> {
  %r = loom.max %a, %b : tensor<?x1xf32>, tensor<1x?xf32> -> tensor<?x?xf32>
  return %r : tensor<?x?xf32>
}

// A rank-0 constant broadcasts; pow and min.
func.func @scalar_ops(%x: tensor<?xf32>) -> tensor<3x?xf32> {
  %c = loom.constant dense<2.000000e+00> : tensor<f32>
  %s = loom.sub %x, %c : tensor<?xf32>, tensor<f32> -> tensor<?xf32>
  %p = loom.pow %x, %c : tensor<?xf32>, tensor<f32> -> tensor<?xf32>
  %m = loom.min %x, %c : tensor<?xf32>, tensor<f32> -> tensor<?xf32>
  %r = loom.concat %s, %p, %m {axis = 0 : i64} : tensor<?xf32>, tensor<?xf32>, tensor<?xf32> -> tensor<?xf32>
  %o = loom.reshape %r {shape = array<i64: 3, -1>} : tensor<?xf32> -> tensor<3x?xf32>
  return %o : tensor<3x?xf32>
}

// Unary float functions, one per row.
func.func @unary(%x: tensor<?xf32>) -> tensor<11x?xf32> {
  %0 = loom.neg %x : tensor<?xf32> -> tensor<?xf32>
  %1 = loom.abs %x : tensor<?xf32> -> tensor<?xf32>
  %2 = loom.exp %x : tensor<?xf32> -> tensor<?xf32>
  %3 = loom.tanh %x : tensor<?xf32> -> tensor<?xf32>
  %4 = loom.sigmoid %x : tensor<?xf32> -> tensor<?xf32>
  %5 = loom.silu %x : tensor<?xf32> -> tensor<?xf32>
  %6 = loom.gelu %x : tensor<?xf32> -> tensor<?xf32>
  %ax = loom.abs %x : tensor<?xf32> -> tensor<?xf32>
  %7 = loom.sqrt %ax : tensor<?xf32> -> tensor<?xf32>
  %8 = loom.rsqrt %ax : tensor<?xf32> -> tensor<?xf32>
  %9 = loom.log %ax : tensor<?xf32> -> tensor<?xf32>
  %10 = loom.div %x, %ax : tensor<?xf32>, tensor<?xf32> -> tensor<?xf32>
  %r = loom.concat %0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10 {axis = 0 : i64}
      : tensor<?xf32>, tensor<?xf32>, tensor<?xf32>, tensor<?xf32>, tensor<?xf32>,
        tensor<?xf32>, tensor<?xf32>, tensor<?xf32>, tensor<?xf32>, tensor<?xf32>,
        tensor<?xf32> -> tensor<?xf32>
  %o = loom.reshape %r {shape = array<i64: 11, -1>} : tensor<?xf32> -> tensor<11x?xf32>
  return %o : tensor<11x?xf32>
}

// Integer division truncates; casts truncate toward zero and make bools.
func.func @ints(%x: tensor<?xf32>) -> tensor<5x?xf32> {
  %i = loom.cast %x : tensor<?xf32> -> tensor<?xi64>
  %two = loom.constant dense<2> : tensor<i64>
  %d = loom.div %i, %two : tensor<?xi64>, tensor<i64> -> tensor<?xi64>
  %n = loom.neg %i : tensor<?xi64> -> tensor<?xi64>
  %a = loom.abs %i : tensor<?xi64> -> tensor<?xi64>
  %b = loom.cast %x : tensor<?xf32> -> tensor<?xi1>
  %fi = loom.cast %i : tensor<?xi64> -> tensor<?xf32>
  %fd = loom.cast %d : tensor<?xi64> -> tensor<?xf32>
  %fn = loom.cast %n : tensor<?xi64> -> tensor<?xf32>
  %fa = loom.cast %a : tensor<?xi64> -> tensor<?xf32>
  %fb = loom.cast %b : tensor<?xi1> -> tensor<?xf32>
  %r = loom.concat %fi, %fd, %fn, %fa, %fb {axis = 0 : i64}
      : tensor<?xf32>, tensor<?xf32>, tensor<?xf32>, tensor<?xf32>, tensor<?xf32> -> tensor<?xf32>
  %o = loom.reshape %r {shape = array<i64: 5, -1>} : tensor<?xf32> -> tensor<5x?xf32>
  return %o : tensor<5x?xf32>
}

// Comparisons, logic and select.
func.func @logic(%a: tensor<?xf32>, %b: tensor<?xf32>) -> tensor<5x?xf32> {
  %lt = loom.cmp "lt" %a, %b : tensor<?xf32>, tensor<?xf32> -> tensor<?xi1>
  %eq = loom.cmp "eq" %a, %b : tensor<?xf32>, tensor<?xf32> -> tensor<?xi1>
  %le = loom.or %lt, %eq : tensor<?xi1>, tensor<?xi1> -> tensor<?xi1>
  %ge = loom.not %lt : tensor<?xi1> -> tensor<?xi1>
  %both = loom.and %le, %ge : tensor<?xi1>, tensor<?xi1> -> tensor<?xi1>
  %sel = loom.select %lt, %a, %b : tensor<?xi1>, tensor<?xf32>, tensor<?xf32> -> tensor<?xf32>
  %f0 = loom.cast %lt : tensor<?xi1> -> tensor<?xf32>
  %f1 = loom.cast %le : tensor<?xi1> -> tensor<?xf32>
  %f2 = loom.cast %ge : tensor<?xi1> -> tensor<?xf32>
  %f3 = loom.cast %both : tensor<?xi1> -> tensor<?xf32>
  %r = loom.concat %f0, %f1, %f2, %f3, %sel {axis = 0 : i64}
      : tensor<?xf32>, tensor<?xf32>, tensor<?xf32>, tensor<?xf32>, tensor<?xf32> -> tensor<?xf32>
  %o = loom.reshape %r {shape = array<i64: 5, -1>} : tensor<?xf32> -> tensor<5x?xf32>
  return %o : tensor<5x?xf32>
}

func.func @iota(%like: tensor<?x3xf32>) -> tensor<?x3xf32> {
  %i = loom.iota like %like : tensor<?x3xf32> {axis = 0 : i64} -> tensor<?x3xi64>
  %j = loom.iota like %like : tensor<?x3xf32> {axis = 1 : i64} -> tensor<?x3xf32>
  %f = loom.cast %i : tensor<?x3xi64> -> tensor<?x3xf32>
  %ten = loom.constant dense<1.000000e+01> : tensor<f32>
  %t = loom.mul %f, %ten : tensor<?x3xf32>, tensor<f32> -> tensor<?x3xf32>
  %r = loom.add %t, %j : tensor<?x3xf32>, tensor<?x3xf32> -> tensor<?x3xf32>
  return %r : tensor<?x3xf32>
}

func.func @main() {
  %a = arith.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32>
  %b = arith.constant dense<[10.0, 20.0, 30.0]> : tensor<3xf32>
  %ad = tensor.cast %a : tensor<2x3xf32> to tensor<?x3xf32>
  %r0 = call @add(%ad, %b) : (tensor<?x3xf32>, tensor<3xf32>) -> tensor<?x3xf32>
  %u0 = tensor.cast %r0 : tensor<?x3xf32> to tensor<*xf32>
  call @printMemrefF32(%u0) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [2, 3]
  // CHECK-NEXT: [11,   22,   33],
  // CHECK-NEXT: [14,   25,   36]]

  %col = arith.constant dense<[[1.0], [5.0]]> : tensor<2x1xf32>
  %row = arith.constant dense<[[0.0, 2.0, 4.0, 6.0]]> : tensor<1x4xf32>
  %cold = tensor.cast %col : tensor<2x1xf32> to tensor<?x1xf32>
  %rowd = tensor.cast %row : tensor<1x4xf32> to tensor<1x?xf32>
  %r1 = call @outer_max(%cold, %rowd) : (tensor<?x1xf32>, tensor<1x?xf32>) -> tensor<?x?xf32>
  %u1 = tensor.cast %r1 : tensor<?x?xf32> to tensor<*xf32>
  call @printMemrefF32(%u1) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [2, 4]
  // CHECK-NEXT: [1,   2,   4,   6],
  // CHECK-NEXT: [5,   5,   5,   6]]

  %x = arith.constant dense<[-1.5, 0.5, 2.0, 3.0]> : tensor<4xf32>
  %xd = tensor.cast %x : tensor<4xf32> to tensor<?xf32>
  %r2 = call @scalar_ops(%xd) : (tensor<?xf32>) -> tensor<3x?xf32>
  %u2 = tensor.cast %r2 : tensor<3x?xf32> to tensor<*xf32>
  call @printMemrefF32(%u2) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [3, 4]
  // CHECK-NEXT: [-3.5,   -1.5,   0,   1],
  // CHECK-NEXT: [2.25,   0.25,   4,   9],
  // CHECK-NEXT: [-1.5,   0.5,   2,   2]]

  %y = arith.constant dense<[-1.0, 0.5, 2.0]> : tensor<3xf32>
  %yd = tensor.cast %y : tensor<3xf32> to tensor<?xf32>
  %r3 = call @unary(%yd) : (tensor<?xf32>) -> tensor<11x?xf32>
  %u3 = tensor.cast %r3 : tensor<11x?xf32> to tensor<*xf32>
  call @printMemrefF32(%u3) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [11, 3]
  // neg, abs, exp, tanh
  // CHECK-NEXT: [1,   -0.5,   -2],
  // CHECK-NEXT: [1,   0.5,   2],
  // CHECK-NEXT: [0.367879,   1.64872,   7.38906],
  // CHECK-NEXT: [-0.761594,   0.462117,   0.964028],
  // sigmoid, silu, gelu
  // CHECK-NEXT: [0.268941,   0.622459,   0.880797],
  // CHECK-NEXT: [-0.268941,   0.31123,   1.76159],
  // CHECK-NEXT: [-0.158655,   0.345731,   1.9545],
  // sqrt, rsqrt, log of |x|; x / |x|
  // CHECK-NEXT: [1,   0.707107,   1.41421],
  // CHECK-NEXT: [1,   1.41421,   0.707107],
  // CHECK-NEXT: [0,   -0.693147,   0.693147],
  // CHECK-NEXT: [-1,   1,   1]]

  %z = arith.constant dense<[-7.9, -1.5, 0.0, 0.4, 7.9]> : tensor<5xf32>
  %zd = tensor.cast %z : tensor<5xf32> to tensor<?xf32>
  %r4 = call @ints(%zd) : (tensor<?xf32>) -> tensor<5x?xf32>
  %u4 = tensor.cast %r4 : tensor<5x?xf32> to tensor<*xf32>
  call @printMemrefF32(%u4) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [5, 5]
  // CHECK-NEXT: [-7,   -1,   0,   0,   7],
  // CHECK-NEXT: [-3,   0,   0,   0,   3],
  // CHECK-NEXT: [7,   1,   0,   0,   -7],
  // CHECK-NEXT: [7,   1,   0,   0,   7],
  // CHECK-NEXT: [1,   1,   0,   1,   1]]

  %p = arith.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %q = arith.constant dense<[4.0, 2.0, 1.0, 5.0]> : tensor<4xf32>
  %pd = tensor.cast %p : tensor<4xf32> to tensor<?xf32>
  %qd = tensor.cast %q : tensor<4xf32> to tensor<?xf32>
  %r5 = call @logic(%pd, %qd) : (tensor<?xf32>, tensor<?xf32>) -> tensor<5x?xf32>
  %u5 = tensor.cast %r5 : tensor<5x?xf32> to tensor<*xf32>
  call @printMemrefF32(%u5) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [5, 4]
  // CHECK-NEXT: [1,   0,   0,   1],
  // CHECK-NEXT: [1,   1,   0,   1],
  // CHECK-NEXT: [0,   1,   1,   0],
  // CHECK-NEXT: [0,   1,   0,   0],
  // CHECK-NEXT: [1,   2,   1,   4]]

  %r6 = call @iota(%ad) : (tensor<?x3xf32>) -> tensor<?x3xf32>
  %u6 = tensor.cast %r6 : tensor<?x3xf32> to tensor<*xf32>
  call @printMemrefF32(%u6) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [2, 3]
  // CHECK-NEXT: [0,   1,   2],
  // CHECK-NEXT: [10,   11,   12]]
  return
}
