// RUN: loom-opt %s --split-input-file --loom-cpu-matmul-to-runtime | FileCheck %s
// RUN: loom-opt %s --split-input-file --loom-cpu-matmul-to-runtime="min-flops=1000000" | FileCheck %s --check-prefix=SMALL

// CHECK-LABEL: func.func private @loom_rt_matmul_f32(memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, i64) attributes {llvm.emit_c_interface}
// CHECK-LABEL: func @plain
// CHECK-SAME: (%[[A:.*]]: memref<8x16xf32>, %[[B:.*]]: memref<16x4xf32>, %[[C:.*]]: memref<8x4xf32>)
// CHECK-DAG: %[[FA:.*]] = memref.cast %[[A]]
// CHECK-DAG: %[[FB:.*]] = memref.cast %[[B]]
// CHECK-DAG: %[[FC:.*]] = memref.cast %[[C]]
// CHECK-DAG: %[[FLAGS:.*]] = arith.constant 4 : i64
// CHECK: call @loom_rt_matmul_f32(%[[FA]], %[[FB]], %[[FC]], %[[FLAGS]])
// CHECK-NOT: linalg.matmul
// The product (2*8*4*16 flops) is below the threshold: it stays.
// SMALL-LABEL: func @plain
// SMALL: linalg.matmul
func.func @plain(%a: memref<8x16xf32>, %b: memref<16x4xf32>, %c: memref<8x4xf32>) {
  linalg.matmul ins(%a, %b : memref<8x16xf32>, memref<16x4xf32>) outs(%c : memref<8x4xf32>)
  return
}

// -----

// Transposed B (as `linear` produces) sets flag 2 next to accumulate (4).
// CHECK-LABEL: func @transposed_b
// CHECK: %[[FLAGS:.*]] = arith.constant 6 : i64
// CHECK: call @loom_rt_matmul_f32(%{{.*}}, %{{.*}}, %{{.*}}, %[[FLAGS]])
func.func @transposed_b(%a: memref<?x16xf32>, %b: memref<4x16xf32>, %c: memref<?x4xf32>) {
  linalg.matmul indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>,
                                 affine_map<(d0, d1, d2) -> (d1, d2)>,
                                 affine_map<(d0, d1, d2) -> (d0, d1)>]
      ins(%a, %b : memref<?x16xf32>, memref<4x16xf32>) outs(%c : memref<?x4xf32>)
  return
}

// -----

// Batched, with A transposed: flags 1 | 4.
// CHECK-LABEL: func @batched
// CHECK: %[[FLAGS:.*]] = arith.constant 5 : i64
// CHECK: call @loom_rt_batch_matmul_f32(%{{.*}}, %{{.*}}, %{{.*}}, %[[FLAGS]]) : (memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
func.func @batched(%a: memref<2x16x8xf32>, %b: memref<2x16x4xf32>, %c: memref<2x8x4xf32>) {
  linalg.batch_matmul indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d3, d1)>,
                                       affine_map<(d0, d1, d2, d3) -> (d0, d3, d2)>,
                                       affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>]
      ins(%a, %b : memref<2x16x8xf32>, memref<2x16x4xf32>) outs(%c : memref<2x8x4xf32>)
  return
}

// -----

// Not f32: generated loops handle it.
// CHECK-LABEL: func @f64_stays
// CHECK: linalg.matmul
// CHECK-NOT: call
func.func @f64_stays(%a: memref<8x16xf64>, %b: memref<16x4xf64>, %c: memref<8x4xf64>) {
  linalg.matmul ins(%a, %b : memref<8x16xf64>, memref<16x4xf64>) outs(%c : memref<8x4xf64>)
  return
}

// -----

// Tensors are not rewritten: the pass runs after bufferization.
// CHECK-LABEL: func @tensors_stay
// CHECK: linalg.matmul
func.func @tensors_stay(%a: tensor<8x16xf32>, %b: tensor<16x4xf32>, %c: tensor<8x4xf32>) -> tensor<8x4xf32> {
  %0 = linalg.matmul ins(%a, %b : tensor<8x16xf32>, tensor<16x4xf32>) outs(%c : tensor<8x4xf32>) -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

// The zero fill right before the product is dropped; the GEMM overwrites
// (flags without accumulate).
// CHECK-LABEL: func @zero_filled
// CHECK-NOT: linalg.fill
// CHECK: %[[FLAGS:.*]] = arith.constant 0 : i64
// CHECK: call @loom_rt_matmul_f32(%{{.*}}, %{{.*}}, %{{.*}}, %[[FLAGS]])
func.func @zero_filled(%a: memref<8x16xf32>, %b: memref<16x4xf32>, %c: memref<8x4xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%c : memref<8x4xf32>)
  linalg.matmul ins(%a, %b : memref<8x16xf32>, memref<16x4xf32>) outs(%c : memref<8x4xf32>)
  return
}

// -----

// A fill with another value, or one that an op in between may read, stays.
// CHECK-LABEL: func @fill_kept
// CHECK: linalg.fill ins(%{{.*}} : f32) outs(%[[C:.*]] : memref<8x4xf32>)
// CHECK: linalg.copy
// CHECK: %[[FLAGS:.*]] = arith.constant 4 : i64
// CHECK: call @loom_rt_matmul_f32(%{{.*}}, %{{.*}}, %{{.*}}, %[[FLAGS]])
func.func @fill_kept(%a: memref<8x16xf32>, %b: memref<16x4xf32>, %c: memref<8x4xf32>, %d: memref<8x4xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%c : memref<8x4xf32>)
  linalg.copy ins(%c : memref<8x4xf32>) outs(%d : memref<8x4xf32>)
  linalg.matmul ins(%a, %b : memref<8x16xf32>, memref<16x4xf32>) outs(%c : memref<8x4xf32>)
  return
}
