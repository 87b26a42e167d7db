// RUN: loom-opt %s --split-input-file --loom-cpu-fold-transposes | FileCheck %s

// MLA's absorbed query projection: [B, S, H, D] -> [H, B * S, D] per head,
// times [H, D, C], back to [B, S, H, C]. Both transposes become views: the
// input one of %x (strides [D, H * D, 1] in %x's order), the result one of
// %y, which moves up to where the product's buffer was allocated.
// CHECK-LABEL: func @per_head
// CHECK-SAME: (%[[X:.*]]: memref<?x?x8x16xf32>, %[[W:.*]]: memref<8x16x32xf32>)
// CHECK-NOT: linalg.transpose
// CHECK: %[[Y:.*]] = memref.alloc(%{{.*}}, %{{.*}}) : memref<?x?x8x32xf32>
// CHECK: %[[YB:.*]], %[[YO:.*]], %{{.*}}:4, %[[YS:.*]]:4 = memref.extract_strided_metadata %[[Y]]
// CHECK: %[[C:.*]] = memref.reinterpret_cast %[[YB]] to offset: [%[[YO]]], sizes: [%{{.*}}, %{{.*}}, %{{.*}}], strides: [%[[YS]]#2, %[[YS]]#1, %[[YS]]#3]
// CHECK: %[[XB:.*]], %[[XO:.*]], %{{.*}}:4, %[[XS:.*]]:4 = memref.extract_strided_metadata %[[X]]
// CHECK: %[[A:.*]] = memref.reinterpret_cast %[[XB]] to offset: [%[[XO]]], sizes: [%{{.*}}, %{{.*}}, %{{.*}}], strides: [%[[XS]]#2, %[[XS]]#1, %[[XS]]#3]
// CHECK: call @loom_rt_batch_matmul_f32(%[[A]], %{{.*}}, %[[C]], %{{.*}})
// CHECK-NOT: linalg.transpose
// CHECK: return %[[Y]]
func.func private @loom_rt_batch_matmul_f32(memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64)
func.func @per_head(%x: memref<?x?x8x16xf32>, %w: memref<8x16x32xf32>) -> memref<?x?x8x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c32 = arith.constant 32 : index
  %flags = arith.constant 0 : i64
  %b = memref.dim %x, %c0 : memref<?x?x8x16xf32>
  %s = memref.dim %x, %c1 : memref<?x?x8x16xf32>
  %t = memref.alloc(%b, %s) : memref<8x?x?x16xf32>
  linalg.transpose ins(%x : memref<?x?x8x16xf32>) outs(%t : memref<8x?x?x16xf32>) permutation = [2, 0, 1, 3]
  %m = memref.collapse_shape %t [[0], [1, 2], [3]] : memref<8x?x?x16xf32> into memref<8x?x16xf32>
  %bs = memref.dim %m, %c1 : memref<8x?x16xf32>
  %p = memref.alloc(%bs) : memref<8x?x32xf32>
  %a = memref.cast %m : memref<8x?x16xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %wc = memref.cast %w : memref<8x16x32xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %pc = memref.cast %p : memref<8x?x32xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  call @loom_rt_batch_matmul_f32(%a, %wc, %pc, %flags) : (memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64) -> ()
  %shape = memref.alloc() : memref<4xindex>
  memref.store %c8, %shape[%c0] : memref<4xindex>
  memref.store %b, %shape[%c1] : memref<4xindex>
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  memref.store %s, %shape[%c2] : memref<4xindex>
  memref.store %c32, %shape[%c3] : memref<4xindex>
  %e = memref.reshape %p(%shape) : (memref<8x?x32xf32>, memref<4xindex>) -> memref<8x?x?x32xf32>
  %y = memref.alloc(%b, %s) : memref<?x?x8x32xf32>
  linalg.transpose ins(%e : memref<8x?x?x32xf32>) outs(%y : memref<?x?x8x32xf32>) permutation = [1, 2, 0, 3]
  return %y : memref<?x?x8x32xf32>
}

// -----

// The result through expand_shape into a function argument; the input is
// a view of a strided source whose merged dimensions are contiguous.
// CHECK-LABEL: func @expand_into_argument
// CHECK-NOT: linalg.transpose
// CHECK: memref.extract_strided_metadata %arg2
// CHECK: memref.extract_strided_metadata %arg0
// CHECK: call @loom_rt_batch_matmul_f32
// CHECK-NOT: linalg.transpose
func.func private @loom_rt_batch_matmul_f32(memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64)
func.func @expand_into_argument(%x: memref<2x3x4x5xf32, strided<[90, 30, 6, 1], offset: 7>>, %w: memref<4x5x6xf32>, %y: memref<2x3x4x6xf32>) {
  %flags = arith.constant 0 : i64
  %t = memref.alloc() : memref<4x2x3x5xf32>
  linalg.transpose ins(%x : memref<2x3x4x5xf32, strided<[90, 30, 6, 1], offset: 7>>) outs(%t : memref<4x2x3x5xf32>) permutation = [2, 0, 1, 3]
  %m = memref.collapse_shape %t [[0], [1, 2], [3]] : memref<4x2x3x5xf32> into memref<4x6x5xf32>
  %p = memref.alloc() : memref<4x6x6xf32>
  %a = memref.cast %m : memref<4x6x5xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %wc = memref.cast %w : memref<4x5x6xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %pc = memref.cast %p : memref<4x6x6xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  call @loom_rt_batch_matmul_f32(%a, %wc, %pc, %flags) : (memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64) -> ()
  %e = memref.expand_shape %p [[0], [1, 2], [3]] output_shape [4, 2, 3, 6] : memref<4x6x6xf32> into memref<4x2x3x6xf32>
  linalg.transpose ins(%e : memref<4x2x3x6xf32>) outs(%y : memref<2x3x4x6xf32>) permutation = [1, 2, 0, 3]
  memref.dealloc %t : memref<4x2x3x5xf32>
  memref.dealloc %p : memref<4x6x6xf32>
  return
}

// -----

// Not folded:
// - the source changes between the transpose and the call;
// - the destination is read between the call and the transpose;
// - the product accumulates into its result buffer (which it reads);
// - the merged dimensions are not contiguous in the source (S before B);
// - the merged dimensions have a gap between them in the source;
// - the copy has another reader.
// CHECK-LABEL: func @source_written
// CHECK: linalg.transpose
// CHECK: linalg.fill
// CHECK: call @loom_rt_batch_matmul_f32
// CHECK-LABEL: func @destination_read
// CHECK: call @loom_rt_batch_matmul_f32
// CHECK: linalg.copy
// CHECK: linalg.transpose
// CHECK-LABEL: func @accumulates
// CHECK: call @loom_rt_batch_matmul_f32
// CHECK: linalg.transpose
// CHECK-LABEL: func @not_contiguous
// CHECK: linalg.transpose
// CHECK: call @loom_rt_batch_matmul_f32
// CHECK-LABEL: func @strided_gap
// CHECK: linalg.transpose
// CHECK: call @loom_rt_batch_matmul_f32
// CHECK-LABEL: func @copy_read_again
// CHECK: linalg.transpose
// CHECK: call @loom_rt_batch_matmul_f32
func.func private @loom_rt_batch_matmul_f32(memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64)
func.func @source_written(%x: memref<2x3x4x5xf32>, %w: memref<4x5x6xf32>, %c: memref<4x6x6xf32>) {
  %flags = arith.constant 0 : i64
  %zero = arith.constant 0.0 : f32
  %t = memref.alloc() : memref<4x2x3x5xf32>
  linalg.transpose ins(%x : memref<2x3x4x5xf32>) outs(%t : memref<4x2x3x5xf32>) permutation = [2, 0, 1, 3]
  linalg.fill ins(%zero : f32) outs(%x : memref<2x3x4x5xf32>)
  %m = memref.collapse_shape %t [[0], [1, 2], [3]] : memref<4x2x3x5xf32> into memref<4x6x5xf32>
  %a = memref.cast %m : memref<4x6x5xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %wc = memref.cast %w : memref<4x5x6xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %cc = memref.cast %c : memref<4x6x6xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  call @loom_rt_batch_matmul_f32(%a, %wc, %cc, %flags) : (memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64) -> ()
  return
}
func.func @destination_read(%a: memref<4x6x5xf32>, %w: memref<4x5x6xf32>, %y: memref<2x3x4x6xf32>, %z: memref<2x3x4x6xf32>) {
  %flags = arith.constant 0 : i64
  %p = memref.alloc() : memref<4x6x6xf32>
  %ac = memref.cast %a : memref<4x6x5xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %wc = memref.cast %w : memref<4x5x6xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %pc = memref.cast %p : memref<4x6x6xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  call @loom_rt_batch_matmul_f32(%ac, %wc, %pc, %flags) : (memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64) -> ()
  linalg.copy ins(%y : memref<2x3x4x6xf32>) outs(%z : memref<2x3x4x6xf32>)
  %e = memref.expand_shape %p [[0], [1, 2], [3]] output_shape [4, 2, 3, 6] : memref<4x6x6xf32> into memref<4x2x3x6xf32>
  linalg.transpose ins(%e : memref<4x2x3x6xf32>) outs(%y : memref<2x3x4x6xf32>) permutation = [1, 2, 0, 3]
  return
}
func.func @accumulates(%a: memref<4x6x5xf32>, %w: memref<4x5x6xf32>, %y: memref<2x3x4x6xf32>) {
  %flags = arith.constant 4 : i64
  %p = memref.alloc() : memref<4x6x6xf32>
  %ac = memref.cast %a : memref<4x6x5xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %wc = memref.cast %w : memref<4x5x6xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %pc = memref.cast %p : memref<4x6x6xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  call @loom_rt_batch_matmul_f32(%ac, %wc, %pc, %flags) : (memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64) -> ()
  %e = memref.expand_shape %p [[0], [1, 2], [3]] output_shape [4, 2, 3, 6] : memref<4x6x6xf32> into memref<4x2x3x6xf32>
  linalg.transpose ins(%e : memref<4x2x3x6xf32>) outs(%y : memref<2x3x4x6xf32>) permutation = [1, 2, 0, 3]
  return
}
func.func @not_contiguous(%x: memref<3x2x4x5xf32>, %w: memref<4x5x6xf32>, %c: memref<4x6x6xf32>) {
  %flags = arith.constant 0 : i64
  %t = memref.alloc() : memref<4x2x3x5xf32>
  linalg.transpose ins(%x : memref<3x2x4x5xf32>) outs(%t : memref<4x2x3x5xf32>) permutation = [2, 1, 0, 3]
  %m = memref.collapse_shape %t [[0], [1, 2], [3]] : memref<4x2x3x5xf32> into memref<4x6x5xf32>
  %a = memref.cast %m : memref<4x6x5xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %wc = memref.cast %w : memref<4x5x6xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %cc = memref.cast %c : memref<4x6x6xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  call @loom_rt_batch_matmul_f32(%a, %wc, %cc, %flags) : (memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64) -> ()
  return
}
func.func @strided_gap(%x: memref<2x3x4x5xf32, strided<[120, 30, 6, 1]>>, %w: memref<4x5x6xf32>, %c: memref<4x6x6xf32>) {
  %flags = arith.constant 0 : i64
  %t = memref.alloc() : memref<4x2x3x5xf32>
  linalg.transpose ins(%x : memref<2x3x4x5xf32, strided<[120, 30, 6, 1]>>) outs(%t : memref<4x2x3x5xf32>) permutation = [2, 0, 1, 3]
  %m = memref.collapse_shape %t [[0], [1, 2], [3]] : memref<4x2x3x5xf32> into memref<4x6x5xf32>
  %a = memref.cast %m : memref<4x6x5xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %wc = memref.cast %w : memref<4x5x6xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %cc = memref.cast %c : memref<4x6x6xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  call @loom_rt_batch_matmul_f32(%a, %wc, %cc, %flags) : (memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64) -> ()
  return
}
func.func @copy_read_again(%x: memref<2x3x4x5xf32>, %w: memref<4x5x6xf32>, %c: memref<4x6x6xf32>, %z: memref<4x2x3x5xf32>) {
  %flags = arith.constant 0 : i64
  %t = memref.alloc() : memref<4x2x3x5xf32>
  linalg.transpose ins(%x : memref<2x3x4x5xf32>) outs(%t : memref<4x2x3x5xf32>) permutation = [2, 0, 1, 3]
  %m = memref.collapse_shape %t [[0], [1, 2], [3]] : memref<4x2x3x5xf32> into memref<4x6x5xf32>
  %a = memref.cast %m : memref<4x6x5xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %wc = memref.cast %w : memref<4x5x6xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %cc = memref.cast %c : memref<4x6x6xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  call @loom_rt_batch_matmul_f32(%a, %wc, %cc, %flags) : (memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64) -> ()
  linalg.copy ins(%t : memref<4x2x3x5xf32>) outs(%z : memref<4x2x3x5xf32>)
  return
}

// -----

// Attention over heads split from [B, S, H, D]: q, k and v are read in
// place through [B, H, S, D] views (the static head count and head dim
// kept), and the output is written into its [B, S, H, D] destination.
// CHECK-LABEL: func @attention_heads
// CHECK-SAME: (%[[Q:[^:]*]]: memref<?x?x4x16xf32>, %[[K:[^:]*]]: memref<?x?x4x16xf32>, %[[V:[^:]*]]: memref<?x?x4x16xf32>, %[[Y:[^:]*]]: memref<?x?x4x16xf32>)
// CHECK-NOT: linalg.transpose
// CHECK: %[[YB:.*]], %[[YO:.*]], %{{.*}}:4, %[[YS:.*]]:4 = memref.extract_strided_metadata %[[Y]]
// CHECK: %[[O:.*]] = memref.reinterpret_cast %[[YB]] to offset: [%[[YO]]], sizes: [%{{.*}}, 4, %{{.*}}, 16], strides: [%[[YS]]#0, %[[YS]]#2, %[[YS]]#1, %[[YS]]#3] : memref<f32> to memref<?x4x?x16xf32, strided<[?, ?, ?, ?], offset: ?>>
// CHECK: %[[QB:.*]], %[[QO:.*]], %{{.*}}:4, %[[QS:.*]]:4 = memref.extract_strided_metadata %[[Q]]
// CHECK: %[[QV:.*]] = memref.reinterpret_cast %[[QB]] to offset: [%[[QO]]], sizes: [%{{.*}}, 4, %{{.*}}, 16], strides: [%[[QS]]#0, %[[QS]]#2, %[[QS]]#1, %[[QS]]#3]
// CHECK: memref.extract_strided_metadata %[[K]]
// CHECK: %[[KV:.*]] = memref.reinterpret_cast
// CHECK: memref.extract_strided_metadata %[[V]]
// CHECK: %[[VV:.*]] = memref.reinterpret_cast
// CHECK: fuse.attention ins(%[[QV]], %[[KV]], %[[VV]] : memref<?x4x?x16xf32, strided<[?, ?, ?, ?], offset: ?>>, memref<?x4x?x16xf32, strided<[?, ?, ?, ?], offset: ?>>, memref<?x4x?x16xf32, strided<[?, ?, ?, ?], offset: ?>>) outs(%[[O]], %{{.*}} : memref<?x4x?x16xf32, strided<[?, ?, ?, ?], offset: ?>>, memref<?x4x?xf32>)
// CHECK-NOT: linalg.transpose
func.func @attention_heads(%q: memref<?x?x4x16xf32>, %k: memref<?x?x4x16xf32>, %v: memref<?x?x4x16xf32>, %y: memref<?x?x4x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %b = memref.dim %q, %c0 : memref<?x?x4x16xf32>
  %s = memref.dim %q, %c1 : memref<?x?x4x16xf32>
  %tq = memref.alloc(%b, %s) : memref<?x4x?x16xf32>
  linalg.transpose ins(%q : memref<?x?x4x16xf32>) outs(%tq : memref<?x4x?x16xf32>) permutation = [0, 2, 1, 3]
  %tk = memref.alloc(%b, %s) : memref<?x4x?x16xf32>
  linalg.transpose ins(%k : memref<?x?x4x16xf32>) outs(%tk : memref<?x4x?x16xf32>) permutation = [0, 2, 1, 3]
  %tv = memref.alloc(%b, %s) : memref<?x4x?x16xf32>
  linalg.transpose ins(%v : memref<?x?x4x16xf32>) outs(%tv : memref<?x4x?x16xf32>) permutation = [0, 2, 1, 3]
  %o = memref.alloc(%b, %s) : memref<?x4x?x16xf32>
  %l = memref.alloc(%b, %s) : memref<?x4x?xf32>
  fuse.attention ins(%tq, %tk, %tv : memref<?x4x?x16xf32>, memref<?x4x?x16xf32>, memref<?x4x?x16xf32>)
      outs(%o, %l : memref<?x4x?x16xf32>, memref<?x4x?xf32>) {scale = 0.25 : f64}
    mask {
    ^bb0(%bi: index, %h: index, %i: index, %j: index):
      %c = arith.cmpi ule, %j, %i : index
      fuse.yield %c : i1
    }
  linalg.transpose ins(%o : memref<?x4x?x16xf32>) outs(%y : memref<?x?x4x16xf32>) permutation = [0, 2, 1, 3]
  return
}

// -----

// Not folded: k and v are one transposed copy (two operands of the op),
// and the source of q changes before the op reads it.
// CHECK-LABEL: func @attention_shared_and_overwritten
// CHECK: linalg.transpose ins(%arg0
// CHECK: linalg.transpose ins(%arg1
// CHECK: linalg.fill
// CHECK: fuse.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : memref<?x4x?x16xf32>, memref<?x4x?x16xf32>, memref<?x4x?x16xf32>)
func.func @attention_shared_and_overwritten(%q: memref<?x?x4x16xf32>, %k: memref<?x?x4x16xf32>, %o: memref<?x4x?x16xf32>, %l: memref<?x4x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %b = memref.dim %q, %c0 : memref<?x?x4x16xf32>
  %s = memref.dim %q, %c1 : memref<?x?x4x16xf32>
  %tq = memref.alloc(%b, %s) : memref<?x4x?x16xf32>
  linalg.transpose ins(%q : memref<?x?x4x16xf32>) outs(%tq : memref<?x4x?x16xf32>) permutation = [0, 2, 1, 3]
  %tk = memref.alloc(%b, %s) : memref<?x4x?x16xf32>
  linalg.transpose ins(%k : memref<?x?x4x16xf32>) outs(%tk : memref<?x4x?x16xf32>) permutation = [0, 2, 1, 3]
  linalg.fill ins(%zero : f32) outs(%q : memref<?x?x4x16xf32>)
  fuse.attention ins(%tq, %tk, %tk : memref<?x4x?x16xf32>, memref<?x4x?x16xf32>, memref<?x4x?x16xf32>)
      outs(%o, %l : memref<?x4x?x16xf32>, memref<?x4x?xf32>) {scale = 0.25 : f64}
    mask {
    ^bb0(%bi: index, %h: index, %i: index, %j: index):
      %c = arith.cmpi ule, %j, %i : index
      fuse.yield %c : i1
    }
  return
}

// -----

// MLA's q_nope: the first 128 of 192 columns of [B, S, 16, 192] (a reshape
// of a flat buffer whose shape buffer holds B and S) are split by heads
// for a per-head product. The subview takes all of S, so B and S merge
// into one stride (S x 3072, dynamic): the copy folds.
// CHECK-LABEL: func @subview_of_reshape
// CHECK-NOT: linalg.transpose
// CHECK: %[[BASE:.*]], %[[OFF:.*]], %{{.*}}:4, %[[STRIDES:.*]]:4 = memref.extract_strided_metadata %{{.*}} : memref<?x?x16x128xf32, strided<[?, 3072, 192, 1]>>
// CHECK: memref.reinterpret_cast %[[BASE]] to offset: [%[[OFF]]], sizes: [%{{.*}}, %{{.*}}, %{{.*}}], strides: [%[[STRIDES]]#2, %[[STRIDES]]#1, %[[STRIDES]]#3]
// CHECK: call @loom_rt_batch_matmul_f32
//
// Not when the subview takes fewer positions than the buffer has (B and S
// do not merge), or when the shape buffer is written twice at S's index.
// CHECK-LABEL: func @subview_of_part
// CHECK: linalg.transpose
// CHECK: call @loom_rt_batch_matmul_f32
// CHECK-LABEL: func @shape_written_twice
// CHECK: linalg.transpose
// CHECK: call @loom_rt_batch_matmul_f32
func.func private @loom_rt_batch_matmul_f32(memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64)
func.func @subview_of_reshape(%flat: memref<?xf32>, %b: index, %s: index, %w: memref<16x128x64xf32>, %c: memref<16x?x64xf32>) {
  %flags = arith.constant 0 : i64
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c16 = arith.constant 16 : index
  %c192 = arith.constant 192 : index
  %shape = memref.alloc() : memref<4xindex>
  memref.store %b, %shape[%c0] : memref<4xindex>
  memref.store %s, %shape[%c1] : memref<4xindex>
  memref.store %c16, %shape[%c2] : memref<4xindex>
  memref.store %c192, %shape[%c3] : memref<4xindex>
  %r = memref.reshape %flat(%shape) : (memref<?xf32>, memref<4xindex>) -> memref<?x?x16x192xf32>
  %q = memref.subview %r[0, 0, 0, 0] [%b, %s, 16, 128] [1, 1, 1, 1] : memref<?x?x16x192xf32> to memref<?x?x16x128xf32, strided<[?, 3072, 192, 1]>>
  %t = memref.alloc(%b, %s) : memref<16x?x?x128xf32>
  linalg.transpose ins(%q : memref<?x?x16x128xf32, strided<[?, 3072, 192, 1]>>) outs(%t : memref<16x?x?x128xf32>) permutation = [2, 0, 1, 3]
  %m = memref.collapse_shape %t [[0], [1, 2], [3]] : memref<16x?x?x128xf32> into memref<16x?x128xf32>
  %a = memref.cast %m : memref<16x?x128xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %wc = memref.cast %w : memref<16x128x64xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %cc = memref.cast %c : memref<16x?x64xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  call @loom_rt_batch_matmul_f32(%a, %wc, %cc, %flags) : (memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64) -> ()
  return
}
func.func @subview_of_part(%flat: memref<?xf32>, %b: index, %s: index, %n: index, %w: memref<16x128x64xf32>, %c: memref<16x?x64xf32>) {
  %flags = arith.constant 0 : i64
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c16 = arith.constant 16 : index
  %c192 = arith.constant 192 : index
  %shape = memref.alloc() : memref<4xindex>
  memref.store %b, %shape[%c0] : memref<4xindex>
  memref.store %s, %shape[%c1] : memref<4xindex>
  memref.store %c16, %shape[%c2] : memref<4xindex>
  memref.store %c192, %shape[%c3] : memref<4xindex>
  %r = memref.reshape %flat(%shape) : (memref<?xf32>, memref<4xindex>) -> memref<?x?x16x192xf32>
  %q = memref.subview %r[0, 0, 0, 0] [%b, %n, 16, 128] [1, 1, 1, 1] : memref<?x?x16x192xf32> to memref<?x?x16x128xf32, strided<[?, 3072, 192, 1]>>
  %t = memref.alloc(%b, %n) : memref<16x?x?x128xf32>
  linalg.transpose ins(%q : memref<?x?x16x128xf32, strided<[?, 3072, 192, 1]>>) outs(%t : memref<16x?x?x128xf32>) permutation = [2, 0, 1, 3]
  %m = memref.collapse_shape %t [[0], [1, 2], [3]] : memref<16x?x?x128xf32> into memref<16x?x128xf32>
  %a = memref.cast %m : memref<16x?x128xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %wc = memref.cast %w : memref<16x128x64xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %cc = memref.cast %c : memref<16x?x64xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  call @loom_rt_batch_matmul_f32(%a, %wc, %cc, %flags) : (memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64) -> ()
  return
}
func.func @shape_written_twice(%flat: memref<?xf32>, %b: index, %s: index, %n: index, %w: memref<16x128x64xf32>, %c: memref<16x?x64xf32>) {
  %flags = arith.constant 0 : i64
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c16 = arith.constant 16 : index
  %c192 = arith.constant 192 : index
  %shape = memref.alloc() : memref<4xindex>
  memref.store %b, %shape[%c0] : memref<4xindex>
  memref.store %s, %shape[%c1] : memref<4xindex>
  memref.store %c16, %shape[%c2] : memref<4xindex>
  memref.store %c192, %shape[%c3] : memref<4xindex>
  memref.store %n, %shape[%c1] : memref<4xindex>
  %r = memref.reshape %flat(%shape) : (memref<?xf32>, memref<4xindex>) -> memref<?x?x16x192xf32>
  %q = memref.subview %r[0, 0, 0, 0] [%b, %s, 16, 128] [1, 1, 1, 1] : memref<?x?x16x192xf32> to memref<?x?x16x128xf32, strided<[?, 3072, 192, 1]>>
  %t = memref.alloc(%b, %s) : memref<16x?x?x128xf32>
  linalg.transpose ins(%q : memref<?x?x16x128xf32, strided<[?, 3072, 192, 1]>>) outs(%t : memref<16x?x?x128xf32>) permutation = [2, 0, 1, 3]
  %m = memref.collapse_shape %t [[0], [1, 2], [3]] : memref<16x?x?x128xf32> into memref<16x?x128xf32>
  %a = memref.cast %m : memref<16x?x128xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %wc = memref.cast %w : memref<16x128x64xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  %cc = memref.cast %c : memref<16x?x64xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
  call @loom_rt_batch_matmul_f32(%a, %wc, %cc, %flags) : (memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64) -> ()
  return
}
