// RUN: loom-opt %s --split-input-file --pass-pipeline='builtin.module(gpu.module(loom-cuda-native-math))' | FileCheck %s

// libdevice calls that are one PTX instruction become LLVM intrinsics, and
// their declarations go when nothing calls them any more.
// CHECK-LABEL: gpu.module @kernels
// CHECK-NOT: llvm.func @__nv_fmaf
// CHECK-NOT: llvm.func @__nv_sqrtf
// CHECK: llvm.func @__nv_sinf(f32) -> f32
// CHECK-LABEL: llvm.func @k
// CHECK: %[[F:.*]] = llvm.intr.fma(%arg0, %arg1, %arg2) : (f32, f32, f32) -> f32
// CHECK: %[[A:.*]] = llvm.intr.fabs(%[[F]]) : (f32) -> f32
// CHECK: %[[L:.*]] = llvm.intr.floor(%[[A]]) : (f32) -> f32
// CHECK: %[[S:.*]] = llvm.intr.sqrt(%[[L]]) : (f32) -> f32
// CHECK: %[[R:.*]] = llvm.intr.sqrt(%[[S]]) : (f32) -> f32
// CHECK: %[[ONE:.*]] = llvm.mlir.constant(1.000000e+00 : f32) : f32
// CHECK: %[[Q:.*]] = llvm.fdiv %[[ONE]], %[[R]] : f32
// CHECK: %[[D:.*]] = llvm.intr.fma(%arg3, %arg3, %arg3) : (f64, f64, f64) -> f64
// sin has no PTX instruction of libdevice's accuracy: it stays a call.
// CHECK: llvm.call @__nv_sinf(%[[Q]])
gpu.module @kernels {
  llvm.func @__nv_fmaf(f32, f32, f32) -> f32
  llvm.func @__nv_fma(f64, f64, f64) -> f64
  llvm.func @__nv_fabsf(f32) -> f32
  llvm.func @__nv_floorf(f32) -> f32
  llvm.func @__nv_sqrtf(f32) -> f32
  llvm.func @__nv_rsqrtf(f32) -> f32
  llvm.func @__nv_sinf(f32) -> f32
  llvm.func @k(%a: f32, %b: f32, %c: f32, %d: f64) -> f32 {
    %0 = llvm.call @__nv_fmaf(%a, %b, %c) : (f32, f32, f32) -> f32
    %1 = llvm.call @__nv_fabsf(%0) : (f32) -> f32
    %2 = llvm.call @__nv_floorf(%1) : (f32) -> f32
    %3 = llvm.call @__nv_sqrtf(%2) : (f32) -> f32
    %4 = llvm.call @__nv_rsqrtf(%3) : (f32) -> f32
    %5 = llvm.call @__nv_fma(%d, %d, %d) : (f64, f64, f64) -> f64
    %6 = llvm.call @__nv_sinf(%4) : (f32) -> f32
    llvm.return %6 : f32
  }
}
