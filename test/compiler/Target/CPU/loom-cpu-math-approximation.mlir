// RUN: loom-opt %s --split-input-file --loom-cpu-math-approximation | FileCheck %s

// CHECK-LABEL: func @f32_exp_tanh_erf_log
// CHECK-NOT: math.exp
// CHECK-NOT: math.tanh
// CHECK-NOT: math.erf
// CHECK-NOT: math.log
// CHECK: arith.mulf
// CHECK: return
func.func @f32_exp_tanh_erf_log(%x: f32) -> (f32, f32, f32, f32) {
  %a = math.exp %x : f32
  %b = math.tanh %x : f32
  %c = math.erf %x : f32
  %d = math.log %x : f32
  return %a, %b, %c, %d : f32, f32, f32, f32
}

// -----

// f64 keeps the library functions; sin and cos are not approximated.
// CHECK-LABEL: func @kept
// CHECK: math.exp {{.*}} : f64
// CHECK: math.sin {{.*}} : f32
// CHECK: math.cos {{.*}} : f32
func.func @kept(%x: f64, %y: f32) -> (f64, f32, f32) {
  %a = math.exp %x : f64
  %b = math.sin %y : f32
  %c = math.cos %y : f32
  return %a, %b, %c : f64, f32, f32
}
