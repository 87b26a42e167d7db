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

// -----

// A product whose f32 result is only rounded to the operands' type (the
// lowering's form of a bf16 product with a bf16 result) writes that type
// directly: the zero fill, the f32 buffer and the rounding loop go. Fresh
// allocations between the product and the rounding are allowed; the call
// takes the rounding's place.
// CHECK-LABEL: func.func private @loom_rt_matmul_bf16(memref<?x?xbf16, strided<[?, ?], offset: ?>>, memref<?x?xbf16, strided<[?, ?], offset: ?>>, memref<?x?xbf16, strided<[?, ?], offset: ?>>, i64)
// CHECK-LABEL: func @bf16_rounded
// CHECK-SAME: (%[[A:.*]]: memref<4x8xbf16>, %[[B:.*]]: memref<8x2xbf16>, %[[OUT:.*]]: memref<4x2xbf16>)
// CHECK-NOT: memref.alloc
// CHECK: %[[C:.*]] = memref.cast %[[OUT]]
// CHECK: %[[FLAGS:.*]] = arith.constant 0 : i64
// CHECK: call @loom_rt_matmul_bf16(%{{.*}}, %{{.*}}, %[[C]], %[[FLAGS]])
// CHECK-NOT: linalg.
// CHECK: return
// OFF-LABEL: func @bf16_rounded
// OFF: linalg.matmul
// OFF: arith.truncf
func.func @bf16_rounded(%a: memref<4x8xbf16>, %b: memref<8x2xbf16>, %out: memref<4x2xbf16>) {
  %zero = arith.constant 0.0 : f32
  %acc = memref.alloc() : memref<4x2xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<4x2xf32>)
  linalg.matmul ins(%a, %b : memref<4x8xbf16>, memref<8x2xbf16>) outs(%acc : memref<4x2xf32>)
  linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>], iterator_types = ["parallel", "parallel"]} ins(%acc : memref<4x2xf32>) outs(%out : memref<4x2xbf16>) {
  ^bb0(%in: f32, %o: bf16):
    %t = arith.truncf %in : f32 to bf16
    linalg.yield %t : bf16
  }
  memref.dealloc %acc : memref<4x2xf32>
  return
}

// CHECK-LABEL: func @f16_batch_rounded
// CHECK: %[[OUT:.*]] = memref.alloc(%{{.*}}) : memref<3x?x2xf16>
// CHECK: call @loom_rt_batch_matmul_f16(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : {{.*}}memref<?x?x?xf16, strided<[?, ?, ?], offset: ?>>, i64) -> ()
// CHECK-NOT: linalg.
// CHECK: return %[[OUT]]
func.func @f16_batch_rounded(%a: memref<3x?x8xf16>, %b: memref<3x8x2xf16>) -> memref<3x?x2xf16> {
  %zero = arith.constant 0.0 : f32
  %c1 = arith.constant 1 : index
  %n = memref.dim %a, %c1 : memref<3x?x8xf16>
  %acc = memref.alloc(%n) : memref<3x?x2xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<3x?x2xf32>)
  linalg.batch_matmul ins(%a, %b : memref<3x?x8xf16>, memref<3x8x2xf16>) outs(%acc : memref<3x?x2xf32>)
  %out = memref.alloc(%n) : memref<3x?x2xf16>
  linalg.generic {indexing_maps = [affine_map<(g, i, j) -> (g, i, j)>, affine_map<(g, i, j) -> (g, i, j)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%acc : memref<3x?x2xf32>) outs(%out : memref<3x?x2xf16>) {
  ^bb0(%in: f32, %o: f16):
    %t = arith.truncf %in : f32 to f16
    linalg.yield %t : f16
  }
  return %out : memref<3x?x2xf16>
}

// -----

// Not folded, and the f32 result kept: a product that accumulates (no zero
// fill), an f32 result read again, a write to memory between the product
// and the rounding, a rounding that also scales, and an output that is a
// view of an operand.
// CHECK-LABEL: func @accumulating
// CHECK: call @loom_rt_matmul_bf16_f32
// CHECK: arith.truncf
// CHECK-LABEL: func @read_again
// CHECK: call @loom_rt_matmul_bf16_f32
// CHECK: arith.truncf
// CHECK: memref.copy
// CHECK-LABEL: func @write_between
// CHECK: call @loom_rt_matmul_bf16_f32
// CHECK: memref.store
// CHECK: arith.truncf
// CHECK-LABEL: func @scaled
// CHECK: call @loom_rt_matmul_bf16_f32
// CHECK: arith.mulf
// CHECK: arith.truncf
// CHECK-LABEL: func @aliased
// CHECK: call @loom_rt_matmul_bf16_f32
// CHECK: arith.truncf
#id = affine_map<(i, j) -> (i, j)>
func.func @accumulating(%a: memref<4x8xbf16>, %b: memref<8x2xbf16>, %acc: memref<4x2xf32>, %out: memref<4x2xbf16>) {
  linalg.matmul ins(%a, %b : memref<4x8xbf16>, memref<8x2xbf16>) outs(%acc : memref<4x2xf32>)
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%acc : memref<4x2xf32>) outs(%out : memref<4x2xbf16>) {
  ^bb0(%in: f32, %o: bf16):
    %t = arith.truncf %in : f32 to bf16
    linalg.yield %t : bf16
  }
  return
}
func.func @read_again(%a: memref<4x8xbf16>, %b: memref<8x2xbf16>, %out: memref<4x2xbf16>, %keep: memref<4x2xf32>) {
  %zero = arith.constant 0.0 : f32
  %acc = memref.alloc() : memref<4x2xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<4x2xf32>)
  linalg.matmul ins(%a, %b : memref<4x8xbf16>, memref<8x2xbf16>) outs(%acc : memref<4x2xf32>)
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%acc : memref<4x2xf32>) outs(%out : memref<4x2xbf16>) {
  ^bb0(%in: f32, %o: bf16):
    %t = arith.truncf %in : f32 to bf16
    linalg.yield %t : bf16
  }
  memref.copy %acc, %keep : memref<4x2xf32> to memref<4x2xf32>
  return
}
func.func @write_between(%a: memref<4x8xbf16>, %b: memref<8x2xbf16>, %out: memref<4x2xbf16>) {
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : bf16
  %c0 = arith.constant 0 : index
  %acc = memref.alloc() : memref<4x2xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<4x2xf32>)
  linalg.matmul ins(%a, %b : memref<4x8xbf16>, memref<8x2xbf16>) outs(%acc : memref<4x2xf32>)
  memref.store %one, %a[%c0, %c0] : memref<4x8xbf16>
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%acc : memref<4x2xf32>) outs(%out : memref<4x2xbf16>) {
  ^bb0(%in: f32, %o: bf16):
    %t = arith.truncf %in : f32 to bf16
    linalg.yield %t : bf16
  }
  return
}
func.func @scaled(%a: memref<4x8xbf16>, %b: memref<8x2xbf16>, %out: memref<4x2xbf16>) {
  %zero = arith.constant 0.0 : f32
  %acc = memref.alloc() : memref<4x2xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<4x2xf32>)
  linalg.matmul ins(%a, %b : memref<4x8xbf16>, memref<8x2xbf16>) outs(%acc : memref<4x2xf32>)
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%acc : memref<4x2xf32>) outs(%out : memref<4x2xbf16>) {
  ^bb0(%in: f32, %o: bf16):
    %s = arith.mulf %in, %in : f32
    %t = arith.truncf %s : f32 to bf16
    linalg.yield %t : bf16
  }
  return
}
func.func @aliased(%a: memref<4x8xbf16>, %b: memref<8x2xbf16>) {
  %zero = arith.constant 0.0 : f32
  %acc = memref.alloc() : memref<4x2xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<4x2xf32>)
  linalg.matmul ins(%a, %b : memref<4x8xbf16>, memref<8x2xbf16>) outs(%acc : memref<4x2xf32>)
  %view = memref.subview %a[0, 0] [4, 2] [1, 1] : memref<4x8xbf16> to memref<4x2xbf16, strided<[8, 1]>>
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%acc : memref<4x2xf32>) outs(%view : memref<4x2xbf16, strided<[8, 1]>>) {
  ^bb0(%in: f32, %o: bf16):
    %t = arith.truncf %in : f32 to bf16
    linalg.yield %t : bf16
  }
  return
}
