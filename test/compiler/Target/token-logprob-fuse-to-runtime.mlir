// RUN: loom-opt %s --split-input-file --loom-cpu-fuse-to-runtime --verify-diagnostics | FileCheck %s

// The bufferized kernels become calls of the runtime's host functions, their
// memrefs (ids too) cast to fully dynamic strided layouts, the temperature
// passed as f32, the vocabulary chunk as 0 (the kernel's default) and the
// backward's flags as 0, or LOOM_TOKEN_LOGPROB_ACCUMULATE (1) for
// `accumulate`.
// CHECK-DAG: func.func private @loom_rt_token_logprob_f32(memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?xi64, strided<[?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, f32, i64) attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @loom_rt_token_logprob_grad_f32(memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?xi64, strided<[?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, f32, i64, i64) attributes {llvm.emit_c_interface}
// CHECK-LABEL: func.func @both(
// CHECK-SAME: %[[H:[^:]*]]: memref<?x16xf32>, %[[W:[^:]*]]: memref<40x16xf32, strided<[32, 1]>>, %[[IDS:[^:]*]]: memref<?xi64>, %[[G:[^:]*]]: memref<?xf32>, %[[LP:[^:]*]]: memref<?xf32>, %[[LSE:[^:]*]]: memref<?xf32>, %[[DH:[^:]*]]: memref<?x16xf32>, %[[DW:[^:]*]]: memref<40x16xf32>
// CHECK-DAG: %[[T:.*]] = arith.constant 0.699999988 : f32
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : i64
// CHECK-DAG: %[[A:.*]] = memref.cast %[[H]]
// CHECK-DAG: %[[B:.*]] = memref.cast %[[W]]
// CHECK-DAG: %[[I:.*]] = memref.cast %[[IDS]] : memref<?xi64> to memref<?xi64, strided<[?], offset: ?>>
// CHECK-DAG: %[[P:.*]] = memref.cast %[[LP]]
// CHECK-DAG: %[[L:.*]] = memref.cast %[[LSE]]
// CHECK: call @loom_rt_token_logprob_f32(%[[A]], %[[B]], %[[I]], %[[P]], %[[L]], %[[T]], %[[C0]])
// CHECK-DAG: %[[A2:.*]] = memref.cast %[[H]]
// CHECK-DAG: %[[B2:.*]] = memref.cast %[[W]]
// CHECK-DAG: %[[I2:.*]] = memref.cast %[[IDS]]
// CHECK-DAG: %[[G2:.*]] = memref.cast %[[G]]
// CHECK-DAG: %[[L2:.*]] = memref.cast %[[LSE]]
// CHECK-DAG: %[[DH2:.*]] = memref.cast %[[DH]]
// CHECK-DAG: %[[DW2:.*]] = memref.cast %[[DW]]
// CHECK: arith.constant 0 : i64
// CHECK-NEXT: %[[F0:.*]] = arith.constant 0 : i64
// CHECK-NEXT: call @loom_rt_token_logprob_grad_f32(%[[A2]], %[[B2]], %[[I2]], %[[G2]], %[[L2]], %[[DH2]], %[[DW2]], %{{.*}}, %{{.*}}, %[[F0]])
// CHECK: %[[F1:.*]] = arith.constant 1 : i64
// CHECK-NEXT: call @loom_rt_token_logprob_grad_f32({{.*}}, %[[F1]])
// CHECK-NOT: fuse.
func.func @both(%h: memref<?x16xf32>, %w: memref<40x16xf32, strided<[32, 1]>>, %ids: memref<?xi64>,
                %g: memref<?xf32>, %lp: memref<?xf32>, %lse: memref<?xf32>,
                %dh: memref<?x16xf32>, %dw: memref<40x16xf32>) {
  fuse.token_logprob ins(%h, %w, %ids : memref<?x16xf32>, memref<40x16xf32, strided<[32, 1]>>, memref<?xi64>)
      outs(%lp, %lse : memref<?xf32>, memref<?xf32>) {temperature = 0.7 : f64}
  fuse.token_logprob_grad ins(%h, %w, %ids, %lse, %g : memref<?x16xf32>, memref<40x16xf32, strided<[32, 1]>>, memref<?xi64>, memref<?xf32>, memref<?xf32>)
      outs(%dh, %dw : memref<?x16xf32>, memref<40x16xf32>) {temperature = 0.7 : f64}
  fuse.token_logprob_grad ins(%h, %w, %ids, %lse, %g : memref<?x16xf32>, memref<40x16xf32, strided<[32, 1]>>, memref<?xi64>, memref<?xf32>, memref<?xf32>)
      outs(%dh, %dw : memref<?x16xf32>, memref<40x16xf32>) {accumulate, temperature = 0.7 : f64}
  return
}

// -----

func.func @tensors(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<4xi64>,
                   %lpi: tensor<4xf32>, %lsei: tensor<4xf32>) {
  // expected-error@+1 {{must be bufferized before it becomes a call}}
  %lp, %lse = fuse.token_logprob ins(%h, %w, %ids : tensor<4x16xf32>, tensor<40x16xf32>, tensor<4xi64>)
      outs(%lpi, %lsei : tensor<4xf32>, tensor<4xf32>) {temperature = 1.0 : f64}
      -> tensor<4xf32>, tensor<4xf32>
  return
}

// -----

func.func @f64(%h: memref<4x16xf64>, %w: memref<40x16xf64>, %ids: memref<4xi64>,
               %lse: memref<4xf64>, %g: memref<4xf64>, %dh: memref<4x16xf64>, %dw: memref<40x16xf64>) {
  // expected-error@+1 {{has a CPU kernel for f32 only, not 'f64'}}
  fuse.token_logprob_grad ins(%h, %w, %ids, %lse, %g : memref<4x16xf64>, memref<40x16xf64>, memref<4xi64>, memref<4xf64>, memref<4xf64>)
      outs(%dh, %dw : memref<4x16xf64>, memref<40x16xf64>) {temperature = 1.0 : f64}
  return
}

// -----

// The row-block ops become calls with their offset as i64 before the
// temperature (and no chunk), the backward's flags last.
// CHECK-DAG: func.func private @loom_rt_token_logprob_rows_f32(memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?xi64, strided<[?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, i64, f32) attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @loom_rt_token_logprob_rows_grad_f32(memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?xi64, strided<[?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, i64, f32, i64) attributes {llvm.emit_c_interface}
// CHECK-LABEL: func.func @rows(
// CHECK-SAME: %[[H:[^:]*]]: memref<?x16xf32>, %[[W:[^:]*]]: memref<40x16xf32>, %[[IDS:[^:]*]]: memref<?xi64>, %[[G:[^:]*]]: memref<?xf32>, %[[LP:[^:]*]]: memref<?xf32>, %[[LSE:[^:]*]]: memref<?xf32>, %[[S:[^:]*]]: memref<?x40xf32>, %[[DH:[^:]*]]: memref<?x16xf32>, %[[DW:[^:]*]]: memref<40x16xf32>, %[[N0:[^:]*]]: index
// CHECK-DAG: %[[T:.*]] = arith.constant 5.000000e-01 : f32
// CHECK-DAG: %[[O:.*]] = arith.index_cast %[[N0]] : index to i64
// CHECK-DAG: %[[SC:.*]] = memref.cast %[[S]] : memref<?x40xf32> to memref<?x?xf32, strided<[?, ?], offset: ?>>
// CHECK: call @loom_rt_token_logprob_rows_f32(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[SC]], %[[O]], %[[T]])
// CHECK: %[[F0:.*]] = arith.constant 0 : i64
// CHECK-NEXT: call @loom_rt_token_logprob_rows_grad_f32(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[F0]])
// CHECK: %[[F1:.*]] = arith.constant 1 : i64
// CHECK-NEXT: call @loom_rt_token_logprob_rows_grad_f32({{.*}}, %[[F1]])
// CHECK-NOT: fuse.
func.func @rows(%h: memref<?x16xf32>, %w: memref<40x16xf32>, %ids: memref<?xi64>,
                %g: memref<?xf32>, %lp: memref<?xf32>, %lse: memref<?xf32>, %s: memref<?x40xf32>,
                %dh: memref<?x16xf32>, %dw: memref<40x16xf32>, %n0: index) {
  fuse.token_logprob_rows ins(%h, %w, %ids : memref<?x16xf32>, memref<40x16xf32>, memref<?xi64>)
      offset(%n0) outs(%lp, %lse, %s : memref<?xf32>, memref<?xf32>, memref<?x40xf32>) {temperature = 0.5 : f64}
  fuse.token_logprob_rows_grad ins(%h, %w, %ids, %lse, %g : memref<?x16xf32>, memref<40x16xf32>, memref<?xi64>, memref<?xf32>, memref<?xf32>)
      offset(%n0) outs(%dh, %dw, %s : memref<?x16xf32>, memref<40x16xf32>, memref<?x40xf32>) {temperature = 0.5 : f64}
  fuse.token_logprob_rows_grad ins(%h, %w, %ids, %lse, %g : memref<?x16xf32>, memref<40x16xf32>, memref<?xi64>, memref<?xf32>, memref<?xf32>)
      offset(%n0) outs(%dh, %dw, %s : memref<?x16xf32>, memref<40x16xf32>, memref<?x40xf32>) {accumulate, temperature = 0.5 : f64}
  return
}
