// RUN: loom-opt %s --convert-loom-to-linalg \
// RUN:   --one-shot-bufferize="bufferize-function-boundaries" \
// RUN:   --convert-linalg-to-loops --convert-scf-to-cf --expand-strided-metadata \
// RUN:   --lower-affine --finalize-memref-to-llvm --convert-math-to-llvm \
// RUN:   --convert-math-to-libm --convert-arith-to-llvm --convert-cf-to-llvm \
// RUN:   --convert-func-to-llvm --reconcile-unrealized-casts \
// RUN: | %mlir_runner -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_runner_utils.so,%mlir_lib_dir/libmlir_c_runner_utils.so \
// RUN: | FileCheck %s

// reshape, transpose, slice, concat, gather and broadcast run end to end on
// dynamic shapes. x = [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]].

func.func private @printMemrefF32(tensor<*xf32>)

// [?, ?] -> [?, ?, 2] (copy dim 0, infer dim 1) -> transpose to [?, 2, ?]
// -> reshape back to [?, ?].
func.func @reshape_transpose(%x: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %r = loom.reshape %x {shape = array<i64: 0, -1, 2>} : tensor<?x?xf32> -> tensor<?x?x2xf32>
  %t = loom.transpose %r {permutation = array<i64: 0, 2, 1>} : tensor<?x?x2xf32> -> tensor<?x2x?xf32>
  %o = loom.reshape %t {shape = array<i64: 0, -1>} : tensor<?x2x?xf32> -> tensor<?x?xf32>
  return %o : tensor<?x?xf32>
}

// Python slices of a dynamic axis: x[:, -5:100:2], x[:, 1:3], x[-1:, :]
// and an empty x[:, 4:2], concatenated along axis 1.
func.func @slices(%x: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %a = loom.slice %x {axis = 1 : i64, start = -5 : i64, end = 100 : i64, step = 2 : i64}
      : tensor<?x?xf32> -> tensor<?x?xf32>
  %b = loom.slice %x {axis = 1 : i64, start = 1 : i64, end = 3 : i64}
      : tensor<?x?xf32> -> tensor<?x?xf32>
  %e = loom.slice %x {axis = 1 : i64, start = 4 : i64, end = 2 : i64}
      : tensor<?x?xf32> -> tensor<?x?xf32>
  %c = loom.concat %a, %e, %b {axis = 1 : i64}
      : tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
  %last = loom.slice %c {axis = 0 : i64, start = -1 : i64, end = 9223372036854775807 : i64}
      : tensor<?x?xf32> -> tensor<?x?xf32>
  %r = loom.concat %c, %last {axis = 0 : i64} : tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
  return %r : tensor<?x?xf32>
}

// Columns [5, -3 (clamped to 0), 2, 100 (clamped to 5)] of x.
func.func @gather(%x: tensor<?x6xf32>, %ids: tensor<?xi64>) -> tensor<?x?xf32> {
  %g = loom.gather %x, %ids {axis = 1 : i64} : tensor<?x6xf32>, tensor<?xi64> -> tensor<?x?xf32>
  return %g : tensor<?x?xf32>
}

// Rows [1, 0] of x with i32 indices of rank 2: result [1, 2, 6].
func.func @gather_rows(%x: tensor<?x6xf32>, %ids: tensor<1x?xi32>) -> tensor<?x6xf32> {
  %g = loom.gather %x, %ids {axis = 0 : i64} : tensor<?x6xf32>, tensor<1x?xi32> -> tensor<1x?x6xf32>
  %r = loom.reshape %g {shape = array<i64: -1, 6>} : tensor<1x?x6xf32> -> tensor<?x6xf32>
  return %r : tensor<?x6xf32>
}

func.func @broadcasts(%v: tensor<1x?xf32>, %like: tensor<2x?xf32>) -> tensor<2x?xf32> {
  %b = loom.broadcast %v like %like : tensor<1x?xf32>, tensor<2x?xf32> -> tensor<2x?xf32>
  %c = loom.constant dense<[[1.0], [2.0]]> : tensor<2x1xf32>
  %s = loom.broadcast %c {shape = array<i64: 2, 3>} : tensor<2x1xf32> -> tensor<2x3xf32>
  %r = loom.concat %b, %s {axis = 1 : i64} : tensor<2x?xf32>, tensor<2x3xf32> -> tensor<2x?xf32>
  return %r : tensor<2x?xf32>
}

func.func @main() {
  %x = arith.constant dense<[[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, 10.0, 11.0]]> : tensor<2x6xf32>
  %xd = tensor.cast %x : tensor<2x6xf32> to tensor<?x6xf32>
  %xdd = tensor.cast %x : tensor<2x6xf32> to tensor<?x?xf32>
  %r0 = call @reshape_transpose(%xdd) : (tensor<?x?xf32>) -> tensor<?x?xf32>
  %u0 = tensor.cast %r0 : tensor<?x?xf32> to tensor<*xf32>
  call @printMemrefF32(%u0) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [2, 6]
  // CHECK-NEXT: [0,   2,   4,   1,   3,   5],
  // CHECK-NEXT: [6,   8,   10,   7,   9,   11]]

  %r1 = call @slices(%xdd) : (tensor<?x?xf32>) -> tensor<?x?xf32>
  %u1 = tensor.cast %r1 : tensor<?x?xf32> to tensor<*xf32>
  call @printMemrefF32(%u1) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [3, 5]
  // CHECK-NEXT: [1,   3,   5,   1,   2],
  // CHECK-NEXT: [7,   9,   11,   7,   8],
  // CHECK-NEXT: [7,   9,   11,   7,   8]]

  %ids = arith.constant dense<[5, -3, 2, 100]> : tensor<4xi64>
  %idsd = tensor.cast %ids : tensor<4xi64> to tensor<?xi64>
  %r2 = call @gather(%xd, %idsd) : (tensor<?x6xf32>, tensor<?xi64>) -> tensor<?x?xf32>
  %u2 = tensor.cast %r2 : tensor<?x?xf32> to tensor<*xf32>
  call @printMemrefF32(%u2) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [2, 4]
  // CHECK-NEXT: [5,   0,   2,   5],
  // CHECK-NEXT: [11,   6,   8,   11]]

  %rows = arith.constant dense<[[1, 0]]> : tensor<1x2xi32>
  %rowsd = tensor.cast %rows : tensor<1x2xi32> to tensor<1x?xi32>
  %r3 = call @gather_rows(%xd, %rowsd) : (tensor<?x6xf32>, tensor<1x?xi32>) -> tensor<?x6xf32>
  %u3 = tensor.cast %r3 : tensor<?x6xf32> to tensor<*xf32>
  call @printMemrefF32(%u3) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [2, 6]
  // CHECK-NEXT: [6,   7,   8,   9,   10,   11],
  // CHECK-NEXT: [0,   1,   2,   3,   4,   5]]

  %v = arith.constant dense<[[7.0, 8.0]]> : tensor<1x2xf32>
  %vd = tensor.cast %v : tensor<1x2xf32> to tensor<1x?xf32>
  %l = arith.constant dense<0.0> : tensor<2x2xf32>
  %like = tensor.cast %l : tensor<2x2xf32> to tensor<2x?xf32>
  %r4 = call @broadcasts(%vd, %like) : (tensor<1x?xf32>, tensor<2x?xf32>) -> tensor<2x?xf32>
  %u4 = tensor.cast %r4 : tensor<2x?xf32> to tensor<*xf32>
  call @printMemrefF32(%u4) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [2, 5]
  // CHECK-NEXT: [7,   8,   1,   1,   1],
  // CHECK-NEXT: [7,   8,   2,   2,   2]]
  return
}
