// RUN: loom-opt %s --split-input-file --verify-diagnostics | FileCheck %s
// RUN: loom-opt %s --split-input-file --verify-diagnostics | loom-opt --split-input-file | FileCheck %s

// fuse.token_logprob and its backward on tensors return their outs; on
// memrefs they write them.
// CHECK-LABEL: func @token_logprob
// CHECK: %{{.*}}:2 = fuse.token_logprob ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>) outs(%{{.*}}, %{{.*}} : tensor<?xf32>, tensor<?xf32>) {temperature = 7.500000e-01 : f64} -> tensor<?xf32>, tensor<?xf32>
// CHECK: fuse.token_logprob ins({{.*}} : memref<4x16xf32>, memref<40x16xf32, strided<[32, 1]>>, memref<4xi64>) outs({{.*}} : memref<4xf32>, memref<4xf32>) {temperature = 1.000000e+00 : f64}{{$}}
func.func @token_logprob(%h: tensor<?x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<?xi64>,
                         %lpi: tensor<?xf32>, %lsei: tensor<?xf32>,
                         %mh: memref<4x16xf32>, %mw: memref<40x16xf32, strided<[32, 1]>>,
                         %mids: memref<4xi64>, %mlp: memref<4xf32>, %mlse: memref<4xf32>)
    -> (tensor<?xf32>, tensor<?xf32>) {
  %lp, %lse = fuse.token_logprob ins(%h, %w, %ids : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>)
      outs(%lpi, %lsei : tensor<?xf32>, tensor<?xf32>) {temperature = 0.75 : f64}
      -> tensor<?xf32>, tensor<?xf32>
  fuse.token_logprob ins(%mh, %mw, %mids : memref<4x16xf32>, memref<40x16xf32, strided<[32, 1]>>, memref<4xi64>)
      outs(%mlp, %mlse : memref<4xf32>, memref<4xf32>) {temperature = 1.0 : f64}
  return %lp, %lse : tensor<?xf32>, tensor<?xf32>
}

// CHECK-LABEL: func @token_logprob_grad
// CHECK: %{{.*}}:2 = fuse.token_logprob_grad ins(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>) outs(%{{.*}}, %{{.*}} : tensor<?x16xf32>, tensor<40x16xf32>) {temperature = 2.500000e+00 : f64} -> tensor<?x16xf32>, tensor<40x16xf32>
// CHECK: fuse.token_logprob_grad ins({{.*}}) outs({{.*}} : memref<4x16xf32>, memref<40x16xf32>) {temperature = 1.000000e+00 : f64}{{$}}
func.func @token_logprob_grad(%h: tensor<?x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<?xi64>,
                              %lse: tensor<?xf32>, %g: tensor<?xf32>,
                              %dhi: tensor<?x16xf32>, %dwi: tensor<40x16xf32>,
                              %mh: memref<4x16xf32>, %mw: memref<40x16xf32>, %mids: memref<4xi64>,
                              %mlse: memref<4xf32>, %mg: memref<4xf32>,
                              %mdh: memref<4x16xf32>, %mdw: memref<40x16xf32>)
    -> (tensor<?x16xf32>, tensor<40x16xf32>) {
  %dh, %dw = fuse.token_logprob_grad ins(%h, %w, %ids, %lse, %g : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
      outs(%dhi, %dwi : tensor<?x16xf32>, tensor<40x16xf32>) {temperature = 2.5 : f64}
      -> tensor<?x16xf32>, tensor<40x16xf32>
  fuse.token_logprob_grad ins(%mh, %mw, %mids, %mlse, %mg : memref<4x16xf32>, memref<40x16xf32>, memref<4xi64>, memref<4xf32>, memref<4xf32>)
      outs(%mdh, %mdw : memref<4x16xf32>, memref<40x16xf32>) {temperature = 1.0 : f64}
  return %dh, %dw : tensor<?x16xf32>, tensor<40x16xf32>
}

// -----

// The row-block ops of the single-pass loss: an index offset, three outs
// (read and written) returned on tensors, written on memrefs.
// CHECK-LABEL: func @rows
// CHECK: %{{.*}}:3 = fuse.token_logprob_rows ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>) offset(%{{.*}}) outs(%{{.*}}, %{{.*}}, %{{.*}} : tensor<?xf32>, tensor<?xf32>, tensor<?x40xf32>) {temperature = 5.000000e-01 : f64} -> tensor<?xf32>, tensor<?xf32>, tensor<?x40xf32>
// CHECK: %{{.*}}:3 = fuse.token_logprob_rows_grad ins(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>) offset(%{{.*}}) outs(%{{.*}}, %{{.*}}, %{{.*}} : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?x40xf32>) {temperature = 5.000000e-01 : f64} -> tensor<?x16xf32>, tensor<40x16xf32>, tensor<?x40xf32>
// CHECK: fuse.token_logprob_rows ins({{.*}} : memref<4x16xf32>, memref<40x16xf32>, memref<4xi64>) offset(%{{.*}}) outs({{.*}} : memref<4xf32>, memref<4xf32>, memref<2x40xf32>) {temperature = 1.000000e+00 : f64}{{$}}
// CHECK: fuse.token_logprob_rows_grad ins({{.*}}) offset(%{{.*}}) outs({{.*}} : memref<4x16xf32>, memref<40x16xf32>, memref<2x40xf32>) {temperature = 1.000000e+00 : f64}{{$}}
func.func @rows(%h: tensor<?x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<?xi64>,
                %lpi: tensor<?xf32>, %lsei: tensor<?xf32>, %si: tensor<?x40xf32>,
                %g: tensor<?xf32>, %dhi: tensor<?x16xf32>, %dwi: tensor<40x16xf32>,
                %n0: index,
                %mh: memref<4x16xf32>, %mw: memref<40x16xf32>, %mids: memref<4xi64>,
                %mlp: memref<4xf32>, %mlse: memref<4xf32>, %ms: memref<2x40xf32>,
                %mg: memref<4xf32>, %mdh: memref<4x16xf32>, %mdw: memref<40x16xf32>)
    -> (tensor<?x16xf32>, tensor<40x16xf32>) {
  %lp, %lse, %s = fuse.token_logprob_rows ins(%h, %w, %ids : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>)
      offset(%n0) outs(%lpi, %lsei, %si : tensor<?xf32>, tensor<?xf32>, tensor<?x40xf32>) {temperature = 0.5 : f64}
      -> tensor<?xf32>, tensor<?xf32>, tensor<?x40xf32>
  %dh, %dw, %s2 = fuse.token_logprob_rows_grad ins(%h, %w, %ids, %lse, %g : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?xf32>)
      offset(%n0) outs(%dhi, %dwi, %s : tensor<?x16xf32>, tensor<40x16xf32>, tensor<?x40xf32>) {temperature = 0.5 : f64}
      -> tensor<?x16xf32>, tensor<40x16xf32>, tensor<?x40xf32>
  fuse.token_logprob_rows ins(%mh, %mw, %mids : memref<4x16xf32>, memref<40x16xf32>, memref<4xi64>)
      offset(%n0) outs(%mlp, %mlse, %ms : memref<4xf32>, memref<4xf32>, memref<2x40xf32>) {temperature = 1.0 : f64}
  fuse.token_logprob_rows_grad ins(%mh, %mw, %mids, %mlse, %mg : memref<4x16xf32>, memref<40x16xf32>, memref<4xi64>, memref<4xf32>, memref<4xf32>)
      offset(%n0) outs(%mdh, %mdw, %ms : memref<4x16xf32>, memref<40x16xf32>, memref<2x40xf32>) {temperature = 1.0 : f64}
  return %dh, %dw : tensor<?x16xf32>, tensor<40x16xf32>
}
