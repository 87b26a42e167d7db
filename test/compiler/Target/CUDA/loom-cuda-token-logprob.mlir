// RUN: loom-opt --loom-cuda-token-logprob --split-input-file --verify-diagnostics %s | FileCheck %s
// RUN: loom-opt --loom-cuda-token-logprob --loom-cpu-matmul-to-runtime %s --split-input-file --verify-diagnostics | FileCheck %s --check-prefix=GEMM
// RUN: loom-opt --loom-cuda-token-logprob=row-kernel=false %s --split-input-file --verify-diagnostics | FileCheck %s --check-prefix=LOOPS

// The forward: running maximum, sum and picked logit per token (-inf, 0,
// NaN), then a loop over chunks of 4096 vocabulary entries; each chunk's
// logits are a product with W's rows transposed into a [tokens, 4096]
// block, folded into the running values by the `rows` kernel (one block of
// 256 threads per token); after the loop lse = max + log(sum) and logp =
// picked - lse.
// CHECK-LABEL: func.func @forward
// CHECK-SAME: (%[[H:[^:]*]]: memref<?x64xf32>, %[[W:[^:]*]]: memref<10000x64xf32>, %[[IDS:[^:]*]]: memref<?xi64>, %[[LP:[^:]*]]: memref<?xf32>, %[[LSE:[^:]*]]: memref<?xf32>)
// CHECK: %[[N:.*]] = memref.dim %[[H]], %c0
// CHECK: %[[V:.*]] = memref.dim %[[W]], %c0
// CHECK: %[[BLOCK:.*]] = memref.alloc(%[[N]]) : memref<?x4096xf32>
// CHECK: %[[MAX:.*]] = memref.alloc(%[[N]]) : memref<?xf32>
// CHECK: %[[SUM:.*]] = memref.alloc(%[[N]]) : memref<?xf32>
// CHECK: %[[PICK:.*]] = memref.alloc(%[[N]]) : memref<?xf32>
// CHECK: linalg.fill ins(%{{.*}} : f32) outs(%[[MAX]]
// CHECK: linalg.fill ins(%{{.*}} : f32) outs(%[[SUM]]
// CHECK: linalg.fill ins(%{{.*}} : f32) outs(%[[PICK]]
// CHECK: scf.for %[[V0:.*]] = %{{.*}} to %[[V]] step %c4096
// CHECK: %[[C:.*]] = arith.minsi %c4096{{.*}}, %{{.*}}
// CHECK: %[[L:.*]] = memref.subview %[[BLOCK]][0, 0] [%{{.*}}, %[[C]]] [1, 1]
// CHECK: %[[WC:.*]] = memref.subview %[[W]][%[[V0]], 0] [%[[C]], %{{.*}}] [1, 1]
// CHECK: linalg.fill ins(%{{.*}} : f32) outs(%[[L]]
// CHECK: linalg.matmul indexing_maps = [#map, #map1, #map2] ins(%[[H]], %[[WC]] : {{.*}}) outs(%[[L]] :
// CHECK: call @loom_token_logprob_0_rows_launch(%[[N]], %{{.*}}, %{{.*}}, %[[L]], %[[IDS]], %[[MAX]], %[[SUM]], %[[PICK]], %[[V0]], %[[C]])
// CHECK: linalg.generic {{.*}} ins(%[[MAX]], %[[SUM]], %[[PICK]] : {{.*}}) outs(%[[LP]], %[[LSE]] :
// CHECK: math.log
// The backward: grad_hidden zeroed once; per chunk the logits again, turned
// in place into the gradient of the logits (NaN for ids outside the
// vocabulary), a product accumulated into grad_hidden and one written into
// the chunk's rows of grad_weight (G transposed).
// CHECK-LABEL: func.func @backward
// CHECK-SAME: %[[DH:[^:]*]]: memref<?x64xf32>, %[[DW:[^:]*]]: memref<10000x64xf32>)
// CHECK: linalg.fill ins(%{{.*}} : f32) outs(%[[DH]] :
// CHECK: scf.for
// CHECK: linalg.matmul indexing_maps = [#map, #map1, #map2]
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]} ins({{.*}}) outs(%[[G:.*]] : memref<?x?xf32, strided<[4096, 1]>>)
// CHECK: linalg.index 1
// CHECK: math.exp
// CHECK: arith.constant 0x7FC00000 : f32
// CHECK: linalg.matmul ins(%[[G]], %{{.*}} : {{.*}}) outs(%[[DH]] :
// CHECK: %[[DWC:.*]] = memref.subview %[[DW]]
// CHECK: linalg.fill ins(%{{.*}} : f32) outs(%[[DWC]] :
// CHECK: linalg.matmul indexing_maps = [#map6, #map7, #map2] ins(%[[G]], %{{.*}} : {{.*}}) outs(%[[DWC]] :
// The rows kernel: block-strided loops over the row, warp shuffles and
// shared memory for the block's maximum and sum, one thread updates the
// token's values.
// CHECK: gpu.module @loom_token_logprob_0
// CHECK: gpu.func @rows({{.*}}) workgroup(%[[SCRATCH:.*]] : memref<8xf32, #gpu.address_space<workgroup>>) kernel attributes {known_block_size = array<i32: 256, 1, 1>}
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c256
// CHECK: gpu.shuffle  xor
// CHECK: memref.store %{{.*}}, %[[SCRATCH]]
// CHECK: gpu.barrier
// CHECK: math.exp
// CHECK: gpu.shuffle  xor
// CHECK: gpu.barrier

// Through the runtime's matrix product: the forward one with B transposed (2),
// overwriting (its zero fill dropped); the backward's accumulates into
// grad_hidden (4) and writes grad_weight with A transposed (1).
// GEMM-LABEL: func.func @forward
// GEMM: call @loom_rt_matmul_f32({{.*}}, %c2_i64)
// GEMM-LABEL: func.func @backward
// GEMM: call @loom_rt_matmul_f32({{.*}}, %c2_i64)
// GEMM: call @loom_rt_matmul_f32({{.*}}, %c4_i64)
// GEMM: call @loom_rt_matmul_f32({{.*}}, %c1_i64)

// With row-kernel=false the rows are reduced by linalg ops: nothing is
// GPU-specific.
// LOOPS-LABEL: func.func @forward
// LOOPS: scf.for
// LOOPS: linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]
// LOOPS: arith.maxnumf
// LOOPS: linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]
// LOOPS: math.exp
// LOOPS: linalg.generic {{.*}} iterator_types = ["parallel"]
// LOOPS: memref.load
// LOOPS-NOT: gpu.module
func.func @forward(%h: memref<?x64xf32>, %w: memref<10000x64xf32>, %ids: memref<?xi64>,
                   %lp: memref<?xf32>, %lse: memref<?xf32>) attributes {llvm.emit_c_interface} {
  fuse.token_logprob ins(%h, %w, %ids : memref<?x64xf32>, memref<10000x64xf32>, memref<?xi64>)
      outs(%lp, %lse : memref<?xf32>, memref<?xf32>) {temperature = 0.5 : f64}
  return
}
func.func @backward(%h: memref<?x64xf32>, %w: memref<10000x64xf32>, %ids: memref<?xi64>,
                    %lse: memref<?xf32>, %g: memref<?xf32>, %dh: memref<?x64xf32>,
                    %dw: memref<10000x64xf32>) attributes {llvm.emit_c_interface} {
  fuse.token_logprob_grad ins(%h, %w, %ids, %lse, %g : memref<?x64xf32>, memref<10000x64xf32>,
      memref<?xi64>, memref<?xf32>, memref<?xf32>)
      outs(%dh, %dw : memref<?x64xf32>, memref<10000x64xf32>) {temperature = 0.5 : f64}
  return
}

// -----

// An accumulating backward adds the chunk's product to grad_weight's rows:
// no fill of grad_weight, a product into the chunk's subview (linalg's
// matmul accumulates), and through the runtime GEMM the accumulate flag
// (1 | 4) instead of an overwrite.
// CHECK-LABEL: func.func @accumulate
// CHECK-SAME: %[[DH:[^:]*]]: memref<?x64xf32>, %[[DW:[^:]*]]: memref<10000x64xf32>)
// CHECK: linalg.fill ins(%{{.*}} : f32) outs(%[[DH]] :
// CHECK: scf.for
// CHECK: %[[DWC:.*]] = memref.subview %[[DW]]
// CHECK-NOT: linalg.fill
// CHECK: linalg.matmul indexing_maps = [#map{{[0-9]*}}, #map{{[0-9]*}}, #map{{[0-9]*}}] ins(%{{.*}}, %{{.*}} : {{.*}}) outs(%[[DWC]] :
// GEMM-LABEL: func.func @accumulate
// GEMM: call @loom_rt_matmul_f32({{.*}}, %c2_i64)
// GEMM: call @loom_rt_matmul_f32({{.*}}, %c4_i64)
// GEMM: call @loom_rt_matmul_f32({{.*}}, %c5_i64)
func.func @accumulate(%h: memref<?x64xf32>, %w: memref<10000x64xf32>, %ids: memref<?xi64>,
                      %lse: memref<?xf32>, %g: memref<?xf32>, %dh: memref<?x64xf32>,
                      %dw: memref<10000x64xf32>) attributes {llvm.emit_c_interface} {
  fuse.token_logprob_grad ins(%h, %w, %ids, %lse, %g : memref<?x64xf32>, memref<10000x64xf32>,
      memref<?xi64>, memref<?xf32>, memref<?xf32>)
      outs(%dh, %dw : memref<?x64xf32>, memref<10000x64xf32>) {accumulate, temperature = 0.5 : f64}
  return
}

// -----

func.func @half(%h: memref<?x64xf16>, %w: memref<100x64xf16>, %ids: memref<?xi64>,
                %lp: memref<?xf16>, %lse: memref<?xf16>) {
  // expected-error @below {{reads f16; the GPU token log-prob kernels read f32 (compile with --logprob=unfused)}}
  fuse.token_logprob ins(%h, %w, %ids : memref<?x64xf16>, memref<100x64xf16>, memref<?xi64>)
      outs(%lp, %lse : memref<?xf16>, memref<?xf16>) {temperature = 1.0 : f64}
  return
}
