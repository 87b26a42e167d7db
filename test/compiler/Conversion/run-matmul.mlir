// RUN: loom-opt %s --convert-loom-to-linalg \
// RUN:   --one-shot-bufferize="bufferize-function-boundaries" \
// RUN:   --convert-linalg-to-loops --convert-scf-to-cf --expand-strided-metadata \
// RUN:   --lower-affine --finalize-memref-to-llvm --convert-math-to-llvm \
// RUN:   --convert-math-to-libm --convert-arith-to-llvm --convert-cf-to-llvm \
// RUN:   --convert-func-to-llvm --reconcile-unrealized-casts \
// RUN: | %mlir_runner -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_runner_utils.so,%mlir_lib_dir/libmlir_c_runner_utils.so \
// RUN: | FileCheck %s

// matmul (plain, transposed, batched with broadcast) and linear run end to
// end. With a = [[1, 2, 3], [4, 5, 6]] and b = [[1, 0], [0, 1], [1, 1]],
// a @ b = [[4, 5], [10, 11]].

func.func private @printMemrefF32(tensor<*xf32>)

// a @ b four ways (plain, a stored transposed, b stored transposed, both),
// stacked into [8, 2].
func.func @plain(%a: tensor<?x3xf32>, %at: tensor<3x?xf32>,
                 %b: tensor<3x?xf32>, %bt: tensor<?x3xf32>) -> tensor<?x?xf32> {
  %0 = loom.matmul %a, %b : tensor<?x3xf32>, tensor<3x?xf32> -> tensor<?x?xf32>
  %1 = loom.matmul %at, %b {transpose_a = true} : tensor<3x?xf32>, tensor<3x?xf32> -> tensor<?x?xf32>
  %2 = loom.matmul %a, %bt {transpose_b = true} : tensor<?x3xf32>, tensor<?x3xf32> -> tensor<?x?xf32>
  %3 = loom.matmul %at, %bt {transpose_a = true, transpose_b = true} : tensor<3x?xf32>, tensor<?x3xf32> -> tensor<?x?xf32>
  %r = loom.concat %0, %1, %2, %3 {axis = 0 : i64}
      : tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
  return %r : tensor<?x?xf32>
}

// [?, ?, 3] @ [3, 2]: the batch folds into M.
func.func @shared_rhs(%a: tensor<?x?x3xf32>, %b: tensor<3x2xf32>) -> tensor<?x2xf32> {
  %c = loom.matmul %a, %b : tensor<?x?x3xf32>, tensor<3x2xf32> -> tensor<?x?x2xf32>
  %r = loom.reshape %c {shape = array<i64: -1, 2>} : tensor<?x?x2xf32> -> tensor<?x2xf32>
  return %r : tensor<?x2xf32>
}

// [1, ?, 3] @ [2, 3, 2]: the lhs is broadcast over the batch.
func.func @broadcast_lhs(%a: tensor<1x?x3xf32>, %b: tensor<2x3x2xf32>) -> tensor<?x2xf32> {
  %c = loom.matmul %a, %b : tensor<1x?x3xf32>, tensor<2x3x2xf32> -> tensor<2x?x2xf32>
  %r = loom.reshape %c {shape = array<i64: -1, 2>} : tensor<2x?x2xf32> -> tensor<?x2xf32>
  return %r : tensor<?x2xf32>
}

// [2, 1, ?, 3] @ [1, 2, 2, 3]^T: two batch dims broadcast both ways.
func.func @batch4(%a: tensor<2x1x?x3xf32>, %bt: tensor<1x2x2x3xf32>) -> tensor<?x2xf32> {
  %c = loom.matmul %a, %bt {transpose_b = true}
      : tensor<2x1x?x3xf32>, tensor<1x2x2x3xf32> -> tensor<2x2x?x2xf32>
  %r = loom.reshape %c {shape = array<i64: -1, 2>} : tensor<2x2x?x2xf32> -> tensor<?x2xf32>
  return %r : tensor<?x2xf32>
}

func.func @int_matmul(%a: tensor<?x3xf32>, %b: tensor<3x?xf32>) -> tensor<?x?xf32> {
  %ai = loom.cast %a : tensor<?x3xf32> -> tensor<?x3xi32>
  %bi = loom.cast %b : tensor<3x?xf32> -> tensor<3x?xi32>
  %c = loom.matmul %ai, %bi : tensor<?x3xi32>, tensor<3x?xi32> -> tensor<?x?xi32>
  %r = loom.cast %c : tensor<?x?xi32> -> tensor<?x?xf32>
  return %r : tensor<?x?xf32>
}

// linear on [?, ?, 3] with bias and on a vector without.
func.func @linear(%x: tensor<?x?x3xf32>, %w: tensor<2x3xf32>, %bias: tensor<2xf32>,
                  %v: tensor<3xf32>) -> tensor<?x2xf32> {
  %y = loom.linear %x, %w, %bias : tensor<?x?x3xf32>, tensor<2x3xf32>, tensor<2xf32> -> tensor<?x?x2xf32>
  %z = loom.linear %v, %w : tensor<3xf32>, tensor<2x3xf32> -> tensor<2xf32>
  %y2 = loom.reshape %y {shape = array<i64: -1, 2>} : tensor<?x?x2xf32> -> tensor<?x2xf32>
  %z2 = loom.reshape %z {shape = array<i64: 1, 2>} : tensor<2xf32> -> tensor<1x2xf32>
  %r = loom.concat %y2, %z2 {axis = 0 : i64} : tensor<?x2xf32>, tensor<1x2xf32> -> tensor<?x2xf32>
  return %r : tensor<?x2xf32>
}

func.func @main() {
  %a = arith.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32>
  %at = arith.constant dense<[[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]> : tensor<3x2xf32>
  %b = arith.constant dense<[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]> : tensor<3x2xf32>
  %bt = arith.constant dense<[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]> : tensor<2x3xf32>
  %ad = tensor.cast %a : tensor<2x3xf32> to tensor<?x3xf32>
  %atd = tensor.cast %at : tensor<3x2xf32> to tensor<3x?xf32>
  %bd = tensor.cast %b : tensor<3x2xf32> to tensor<3x?xf32>
  %btd = tensor.cast %bt : tensor<2x3xf32> to tensor<?x3xf32>
  %r0 = call @plain(%ad, %atd, %bd, %btd)
      : (tensor<?x3xf32>, tensor<3x?xf32>, tensor<3x?xf32>, tensor<?x3xf32>) -> tensor<?x?xf32>
  %u0 = tensor.cast %r0 : tensor<?x?xf32> to tensor<*xf32>
  call @printMemrefF32(%u0) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [8, 2]
  // CHECK-NEXT: [4,   5],
  // CHECK-NEXT: [10,   11],
  // CHECK-NEXT: [4,   5],
  // CHECK-NEXT: [10,   11],
  // CHECK-NEXT: [4,   5],
  // CHECK-NEXT: [10,   11],
  // CHECK-NEXT: [4,   5],
  // CHECK-NEXT: [10,   11]]

  // Batch 1 of the lhs is 2 * a.
  %a3 = arith.constant dense<[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
                              [[2.0, 4.0, 6.0], [8.0, 10.0, 12.0]]]> : tensor<2x2x3xf32>
  %a3d = tensor.cast %a3 : tensor<2x2x3xf32> to tensor<?x?x3xf32>
  %r1 = call @shared_rhs(%a3d, %b) : (tensor<?x?x3xf32>, tensor<3x2xf32>) -> tensor<?x2xf32>
  %u1 = tensor.cast %r1 : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u1) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [4, 2]
  // CHECK-NEXT: [4,   5],
  // CHECK-NEXT: [10,   11],
  // CHECK-NEXT: [8,   10],
  // CHECK-NEXT: [20,   22]]

  // Batch 1 of the rhs is 2 * b.
  %b3 = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
                              [[2.0, 0.0], [0.0, 2.0], [2.0, 2.0]]]> : tensor<2x3x2xf32>
  %a1 = tensor.expand_shape %a [[0, 1], [2]] output_shape [1, 2, 3] : tensor<2x3xf32> into tensor<1x2x3xf32>
  %a1d = tensor.cast %a1 : tensor<1x2x3xf32> to tensor<1x?x3xf32>
  %r2 = call @broadcast_lhs(%a1d, %b3) : (tensor<1x?x3xf32>, tensor<2x3x2xf32>) -> tensor<?x2xf32>
  %u2 = tensor.cast %r2 : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u2) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [4, 2]
  // CHECK-NEXT: [4,   5],
  // CHECK-NEXT: [10,   11],
  // CHECK-NEXT: [8,   10],
  // CHECK-NEXT: [20,   22]]

  // Result [i, j] = (i + 1) * a @ ((j + 1) * b).
  %a4 = tensor.expand_shape %a3 [[0, 1], [2], [3]] output_shape [2, 1, 2, 3] : tensor<2x2x3xf32> into tensor<2x1x2x3xf32>
  %a4d = tensor.cast %a4 : tensor<2x1x2x3xf32> to tensor<2x1x?x3xf32>
  %b4t = arith.constant dense<[[[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]],
                                [[2.0, 0.0, 2.0], [0.0, 2.0, 2.0]]]]> : tensor<1x2x2x3xf32>
  %r3 = call @batch4(%a4d, %b4t) : (tensor<2x1x?x3xf32>, tensor<1x2x2x3xf32>) -> tensor<?x2xf32>
  %u3 = tensor.cast %r3 : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u3) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [8, 2]
  // CHECK-NEXT: [4,   5],
  // CHECK-NEXT: [10,   11],
  // CHECK-NEXT: [8,   10],
  // CHECK-NEXT: [20,   22],
  // CHECK-NEXT: [8,   10],
  // CHECK-NEXT: [20,   22],
  // CHECK-NEXT: [16,   20],
  // CHECK-NEXT: [40,   44]]

  %r4 = call @int_matmul(%ad, %bd) : (tensor<?x3xf32>, tensor<3x?xf32>) -> tensor<?x?xf32>
  %u4 = tensor.cast %r4 : tensor<?x?xf32> to tensor<*xf32>
  call @printMemrefF32(%u4) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [2, 2]
  // CHECK-NEXT: [4,   5],
  // CHECK-NEXT: [10,   11]]

  %bias = arith.constant dense<[100.0, 200.0]> : tensor<2xf32>
  %v = arith.constant dense<[1.0, 2.0, 3.0]> : tensor<3xf32>
  %a1dd = tensor.cast %a1 : tensor<1x2x3xf32> to tensor<?x?x3xf32>
  %r5 = call @linear(%a1dd, %bt, %bias, %v)
      : (tensor<?x?x3xf32>, tensor<2x3xf32>, tensor<2xf32>, tensor<3xf32>) -> tensor<?x2xf32>
  %u5 = tensor.cast %r5 : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u5) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [3, 2]
  // CHECK-NEXT: [104,   205],
  // CHECK-NEXT: [110,   211],
  // CHECK-NEXT: [4,   5]]
  return
}
