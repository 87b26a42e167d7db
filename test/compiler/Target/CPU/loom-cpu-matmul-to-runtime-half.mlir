// RUN: loom-opt %s --split-input-file --loom-cpu-matmul-to-runtime="half-precision=true" | FileCheck %s
// RUN: loom-opt %s --split-input-file --loom-cpu-matmul-to-runtime | FileCheck %s --check-prefix=OFF

// bf16 operands into an f32 result (the lowering's form of bf16 products)
// call the f32-accumulating GEMM, with 16-bit operand descriptors.
// CHECK-LABEL: func.func private @loom_rt_matmul_bf16_f32(memref<?x?xbf16, strided<[?, ?], offset: ?>>, memref<?x?xbf16, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, i64)
// CHECK-LABEL: func @bf16
// CHECK: call @loom_rt_matmul_bf16_f32(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}})
// CHECK-NOT: linalg.matmul
// OFF-LABEL: func @bf16
// OFF: linalg.matmul
func.func @bf16(%a: memref<4x8xbf16>, %b: memref<8x2xbf16>, %c: memref<4x2xf32>) {
  linalg.matmul ins(%a, %b : memref<4x8xbf16>, memref<8x2xbf16>) outs(%c : memref<4x2xf32>)
  return
}

// -----

// f16 batches likewise.
// CHECK-LABEL: func @f16_batch
// CHECK: call @loom_rt_batch_matmul_f16_f32
func.func @f16_batch(%a: memref<3x4x8xf16>, %b: memref<3x8x2xf16>, %c: memref<3x4x2xf32>) {
  linalg.batch_matmul ins(%a, %b : memref<3x4x8xf16>, memref<3x8x2xf16>) outs(%c : memref<3x4x2xf32>)
  return
}

// -----

// Not applied: a bf16 result (no f32 accumulation) and mixed operand types.
// CHECK-LABEL: func @bf16_result
// CHECK: linalg.matmul
// CHECK-LABEL: func @mixed
// CHECK: linalg.matmul
func.func @bf16_result(%a: memref<4x8xbf16>, %b: memref<8x2xbf16>, %c: memref<4x2xbf16>) {
  linalg.matmul ins(%a, %b : memref<4x8xbf16>, memref<8x2xbf16>) outs(%c : memref<4x2xbf16>)
  return
}
func.func @mixed(%a: memref<4x8xbf16>, %b: memref<8x2xf16>, %c: memref<4x2xf32>) {
  linalg.matmul ins(%a, %b : memref<4x8xbf16>, memref<8x2xf16>) outs(%c : memref<4x2xf32>)
  return
}
