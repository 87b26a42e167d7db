// RUN: loom-opt %s --split-input-file --verify-diagnostics | FileCheck %s

// fuse.mla_decode on tensors returns its result; on memrefs it writes outs.
// CHECK-LABEL: func @mla_decode
func.func @mla_decode(%ql: tensor<?x1x16x512xf32>, %qp: tensor<?x1x16x64xf32>,
                      %kv: tensor<8x4096x512xf32>, %pe: tensor<8x4096x64xf32>,
                      %pos: i64, %init: tensor<?x1x16x512xf32>,
                      %mql: memref<1x1x16x512xf32>, %mqp: memref<1x1x16x64xf32>,
                      %mkv: memref<8x4096x512xf32>, %mpe: memref<8x4096x64xf32>,
                      %mout: memref<1x1x16x512xf32>) -> tensor<?x1x16x512xf32> {
  // CHECK: fuse.mla_decode %{{.*}} outs(%{{.*}}) {scale = 1.250000e-01 : f64} : {{.*}} -> tensor<?x1x16x512xf32>
  %o = fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%init) {scale = 0.125 : f64}
      : tensor<?x1x16x512xf32>, tensor<?x1x16x64xf32>, tensor<8x4096x512xf32>,
        tensor<8x4096x64xf32>, tensor<?x1x16x512xf32> -> tensor<?x1x16x512xf32>
  // CHECK: fuse.mla_decode %{{.*}} outs(%{{.*}}) {scale = 1.250000e-01 : f64} : {{.*}}, memref<1x1x16x512xf32>{{$}}
  fuse.mla_decode %mql, %mqp, %mkv, %mpe, %pos outs(%mout) {scale = 0.125 : f64}
      : memref<1x1x16x512xf32>, memref<1x1x16x64xf32>, memref<8x4096x512xf32>,
        memref<8x4096x64xf32>, memref<1x1x16x512xf32>
  return %o : tensor<?x1x16x512xf32>
}

// -----

func.func @latent_mismatch(%ql: tensor<1x1x16x512xf32>, %qp: tensor<1x1x16x64xf32>,
                           %kv: tensor<8x4096x256xf32>, %pe: tensor<8x4096x64xf32>,
                           %pos: i64, %init: tensor<1x1x16x512xf32>) {
  // expected-error@+1 {{the latent rank is 512 in q_lat but 256 in kv_cache}}
  %o = fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%init) {scale = 0.125 : f64}
      : tensor<1x1x16x512xf32>, tensor<1x1x16x64xf32>, tensor<8x4096x256xf32>,
        tensor<8x4096x64xf32>, tensor<1x1x16x512xf32> -> tensor<1x1x16x512xf32>
  return
}

// -----

func.func @cache_length(%ql: tensor<1x1x16x512xf32>, %qp: tensor<1x1x16x64xf32>,
                        %kv: tensor<8x4096x512xf32>, %pe: tensor<8x2048x64xf32>,
                        %pos: i64, %init: tensor<1x1x16x512xf32>) {
  // expected-error@+1 {{the cache length is 4096 in kv_cache but 2048 in pe_cache}}
  %o = fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%init) {scale = 0.125 : f64}
      : tensor<1x1x16x512xf32>, tensor<1x1x16x64xf32>, tensor<8x4096x512xf32>,
        tensor<8x2048x64xf32>, tensor<1x1x16x512xf32> -> tensor<1x1x16x512xf32>
  return
}

// -----

func.func @mixed(%ql: tensor<1x1x16x512xf32>, %qp: tensor<1x1x16x64xf32>,
                 %kv: tensor<8x4096x512xf32>, %pe: tensor<8x4096x64xf32>,
                 %pos: i64, %out: memref<1x1x16x512xf32>) {
  // expected-error@+1 {{operands must be all tensors or all memrefs}}
  fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%out) {scale = 0.125 : f64}
      : tensor<1x1x16x512xf32>, tensor<1x1x16x64xf32>, tensor<8x4096x512xf32>,
        tensor<8x4096x64xf32>, memref<1x1x16x512xf32>
  return
}

// -----

func.func @no_result(%ql: tensor<1x1x16x512xf32>, %qp: tensor<1x1x16x64xf32>,
                     %kv: tensor<8x4096x512xf32>, %pe: tensor<8x4096x64xf32>,
                     %pos: i64, %init: tensor<1x1x16x512xf32>) {
  // expected-error@+1 {{on tensors must return its result}}
  fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%init) {scale = 0.125 : f64}
      : tensor<1x1x16x512xf32>, tensor<1x1x16x64xf32>, tensor<8x4096x512xf32>,
        tensor<8x4096x64xf32>, tensor<1x1x16x512xf32>
  return
}
