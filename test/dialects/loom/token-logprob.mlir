// RUN: loom-opt %s --split-input-file --verify-diagnostics | FileCheck %s
// RUN: loom-opt %s --split-input-file --verify-diagnostics | loom-opt --split-input-file | FileCheck %s

// The result has the shape of the ids; the default temperature is not
// printed.
// CHECK-LABEL: func @roundtrip
// CHECK: loom.token_logprob %{{.*}}, %{{.*}} : tensor<?x?x32xf32>, tensor<?x?xi64> -> tensor<?x?xf32>
// CHECK: loom.token_logprob %{{.*}}, %{{.*}} {temperature = 0.69999999999999996 : f64} : tensor<4x32xf32>, tensor<4xi32> -> tensor<4xf32>
// CHECK: loom.token_logprob %{{.*}}, %{{.*}} : tensor<8xf64>, tensor<i64> -> tensor<f64>
func.func @roundtrip(%a: tensor<?x?x32xf32>, %ia: tensor<?x?xi64>,
    %b: tensor<4x32xf32>, %ib: tensor<4xi32>, %c: tensor<8xf64>,
    %ic: tensor<i64>) -> (tensor<?x?xf32>, tensor<4xf32>, tensor<f64>) {
  %0 = loom.token_logprob %a, %ia : tensor<?x?x32xf32>, tensor<?x?xi64> -> tensor<?x?xf32>
  %1 = loom.token_logprob %b, %ib {temperature = 0.7 : f64} : tensor<4x32xf32>, tensor<4xi32> -> tensor<4xf32>
  %2 = loom.token_logprob %c, %ic : tensor<8xf64>, tensor<i64> -> tensor<f64>
  return %0, %1, %2 : tensor<?x?xf32>, tensor<4xf32>, tensor<f64>
}

// -----

// A dynamic dimension on either side agrees with a static one.
// CHECK-LABEL: func @dynamic_vs_static
// CHECK: loom.token_logprob %{{.*}}, %{{.*}} : tensor<2x?x16xf32>, tensor<?x3xi64> -> tensor<?x3xf32>
func.func @dynamic_vs_static(%a: tensor<2x?x16xf32>, %i: tensor<?x3xi64>) -> tensor<?x3xf32> {
  %0 = loom.token_logprob %a, %i : tensor<2x?x16xf32>, tensor<?x3xi64> -> tensor<?x3xf32>
  return %0 : tensor<?x3xf32>
}

// -----

func.func @leading_dim(%a: tensor<2x3x16xf32>, %i: tensor<2x4xi64>) {
  // expected-error@+2 {{ids dimension 1 is 4 but logits dimension 1 is 3: ids [2, 4] vs logits [2, 3, 16]}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.token_logprob %a, %i : tensor<2x3x16xf32>, tensor<2x4xi64> -> tensor<2x4xf32>
  return
}

// -----

func.func @ids_rank(%a: tensor<2x3x16xf32>, %i: tensor<2x3x16xi64>) {
  // expected-error@+2 {{ids must have rank 2 (the leading dimensions of logits [2, 3, 16]), got [2, 3, 16]}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.token_logprob %a, %i : tensor<2x3x16xf32>, tensor<2x3x16xi64> -> tensor<2x3x16xf32>
  return
}

// -----

func.func @logits_rank(%a: tensor<f32>, %i: tensor<i64>) {
  // expected-error@+2 {{logits must have rank >= 1 (a vocabulary dimension), got tensor<f32>}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.token_logprob %a, %i : tensor<f32>, tensor<i64> -> tensor<f32>
  return
}

// -----

func.func @ids_float(%a: tensor<4x16xf32>, %i: tensor<4xf32>) {
  // expected-error@+2 {{ids must be i32 or i64, got 'f32'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.token_logprob %a, %i : tensor<4x16xf32>, tensor<4xf32> -> tensor<4xf32>
  return
}

// -----

func.func @logits_int(%a: tensor<4x16xi64>, %i: tensor<4xi64>) {
  // expected-error@+2 {{logits must have a float type elements, got 'i64'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.token_logprob %a, %i : tensor<4x16xi64>, tensor<4xi64> -> tensor<4xi64>
  return
}

// -----

func.func @temperature_zero(%a: tensor<4x16xf32>, %i: tensor<4xi64>) {
  // expected-error@+2 {{temperature must be finite and > 0, got 0.0}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.token_logprob %a, %i {temperature = 0.0 : f64} : tensor<4x16xf32>, tensor<4xi64> -> tensor<4xf32>
  return
}

// -----

func.func @temperature_negative(%a: tensor<4x16xf32>, %i: tensor<4xi64>) {
  // expected-error@+2 {{temperature must be finite and > 0, got -1.5}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.token_logprob %a, %i {temperature = -1.5 : f64} : tensor<4x16xf32>, tensor<4xi64> -> tensor<4xf32>
  return
}

// -----

func.func @result_type(%a: tensor<4x16xf32>, %i: tensor<4xi64>) {
  // expected-error@+2 {{inferred type(s) 'tensor<4xf32>' are incompatible with return type(s) of operation 'tensor<4xf64>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.token_logprob %a, %i : tensor<4x16xf32>, tensor<4xi64> -> tensor<4xf64>
  return
}
