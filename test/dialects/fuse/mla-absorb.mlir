// RUN: loom-opt %s --split-input-file --loom-mla-absorb | FileCheck %s
// RUN: loom-opt %s --split-input-file --loom-fuse=mla=naive | FileCheck %s --check-prefix=NAIVE

// The K/V caches are states used only by mla_attention, and two entries
// share them: both are rewritten to cache the latent [MB, T, C] and the rope
// key [MB, T, R] (renamed kv_cache and pe_cache), the key up-projection goes
// into the queries, attention is fuse.mla_decode, and the value
// up-projection is applied to its output.

// CHECK-LABEL: func.func @decode(
// CHECK-SAME: %[[QN:[^:]*]]: tensor<?x?x2x8xf32>, %[[QP:[^:]*]]: tensor<?x?x2x4xf32>, %[[KV:[^:]*]]: tensor<?x?x16xf32>, %[[KPE:[^:]*]]: tensor<?x?x4xf32>, %[[W:[^:]*]]: tensor<32x16xf32>,
// CHECK-SAME: %[[KC:[^:]*]]: tensor<3x10x16xf32> {loom.binding = "layer.kv_cache", loom.dims = [3, 10, 16], loom.name = "layer.kv_cache", loom.role = "state"},
// CHECK-SAME: %[[VC:[^:]*]]: tensor<3x10x4xf32> {loom.binding = "layer.pe_cache", loom.dims = [3, 10, 4], loom.name = "layer.pe_cache", loom.role = "state"},
// CHECK-SAME: %[[POS:[^:]*]]: tensor<i64>
// CHECK-SAME: -> (tensor<?x?x2x8xf32>, tensor<3x10x16xf32> {loom.binding = "layer.kv_cache", {{.*}}}, tensor<3x10x4xf32> {loom.binding = "layer.pe_cache", {{.*}}})
// CHECK: %[[W3:.*]] = loom.reshape %[[W]] {shape = array<i64: 2, 16, 16>}
// CHECK: %[[WUK:.*]] = loom.slice %[[W3]] {axis = 1 : i64, end = 8 : i64, start = 0 : i64}
// CHECK: %[[WUV:.*]] = loom.slice %[[W3]] {axis = 1 : i64, end = 16 : i64, start = 8 : i64}
// CHECK: %[[QT:.*]] = loom.transpose %[[QN]] {permutation = array<i64: 2, 0, 1, 3>}
// CHECK: %[[QC:.*]] = tensor.collapse_shape %[[QT]] {{\[}}[0], [1, 2], [3]]
// CHECK: %[[QL:.*]] = loom.matmul %[[QC]], %[[WUK]]
// CHECK: %[[NEWKV:.*]] = loom.dynamic_update_slice %[[KC]], %[[KV]], %[[POS]] {axis = 1 : i64}
// CHECK: %[[NEWPE:.*]] = loom.dynamic_update_slice %[[VC]], %[[KPE]], %[[POS]] {axis = 1 : i64}
// CHECK: %[[P:.*]] = tensor.extract %[[POS]][]
// CHECK: %[[O:.*]] = fuse.mla_decode %{{.*}}, %[[QP]], %[[NEWKV]], %[[NEWPE]], %[[P]] outs(%{{.*}}) {scale = 2.500000e-01 : f64}
// CHECK: loom.matmul %{{.*}}, %[[WUV]] {transpose_b = true}
// CHECK-NOT: loom.mla_attention
// CHECK: return %{{.*}}, %[[NEWKV]], %[[NEWPE]]
// CHECK-LABEL: func.func @prefill(
// CHECK: fuse.mla_decode

// The naive pipeline keeps the per-head caches and writes the attention
// with elementary ops.
// NAIVE-LABEL: func.func @decode(
// NAIVE-SAME: tensor<3x10x2x12xf32> {loom.binding = "layer.k_cache"
// NAIVE-NOT: fuse.mla_decode
// NAIVE: loom.linear
// NAIVE: loom.dynamic_update_slice
// NAIVE: loom.softmax
// NAIVE-NOT: loom.mla_attention
func.func @decode(%qn: tensor<?x?x2x8xf32>, %qp: tensor<?x?x2x4xf32>,
                  %kv: tensor<?x?x16xf32>, %kpe: tensor<?x?x4xf32>,
                  %w: tensor<32x16xf32>,
                  %kc: tensor<3x10x2x12xf32> {loom.role = "state", loom.name = "layer.k_cache", loom.binding = "layer.k_cache", loom.dims = [3, 10, 2, 12]},
                  %vc: tensor<3x10x2x8xf32> {loom.role = "state", loom.name = "layer.v_cache", loom.binding = "layer.v_cache", loom.dims = [3, 10, 2, 8]},
                  %pos: tensor<i64>)
    -> (tensor<?x?x2x8xf32>,
        tensor<3x10x2x12xf32> {loom.role = "state", loom.name = "layer.k_cache", loom.binding = "layer.k_cache"},
        tensor<3x10x2x8xf32> {loom.role = "state", loom.name = "layer.v_cache", loom.binding = "layer.v_cache"}) {
  %o, %k2, %v2 = loom.mla_attention %qn, %qp, %kv, %kpe, %w, %kc, %vc, %pos {scale = 0.25 : f64}
      : tensor<?x?x2x8xf32>, tensor<?x?x2x4xf32>, tensor<?x?x16xf32>, tensor<?x?x4xf32>, tensor<32x16xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>, tensor<i64>
      -> tensor<?x?x2x8xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
  return %o, %k2, %v2 : tensor<?x?x2x8xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
}

func.func @prefill(%qn: tensor<?x?x2x8xf32>, %qp: tensor<?x?x2x4xf32>,
                   %kv: tensor<?x?x16xf32>, %kpe: tensor<?x?x4xf32>,
                   %w: tensor<32x16xf32>,
                   %kc: tensor<3x10x2x12xf32> {loom.role = "state", loom.name = "layer.k_cache", loom.binding = "layer.k_cache", loom.dims = [3, 10, 2, 12]},
                   %vc: tensor<3x10x2x8xf32> {loom.role = "state", loom.name = "layer.v_cache", loom.binding = "layer.v_cache", loom.dims = [3, 10, 2, 8]},
                   %pos: tensor<i64>)
    -> (tensor<?x?x2x8xf32>,
        tensor<3x10x2x12xf32> {loom.role = "state", loom.name = "layer.k_cache", loom.binding = "layer.k_cache"},
        tensor<3x10x2x8xf32> {loom.role = "state", loom.name = "layer.v_cache", loom.binding = "layer.v_cache"}) {
  %o, %k2, %v2 = loom.mla_attention %qn, %qp, %kv, %kpe, %w, %kc, %vc, %pos {scale = 0.25 : f64}
      : tensor<?x?x2x8xf32>, tensor<?x?x2x4xf32>, tensor<?x?x16xf32>, tensor<?x?x4xf32>, tensor<32x16xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>, tensor<i64>
      -> tensor<?x?x2x8xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
  return %o, %k2, %v2 : tensor<?x?x2x8xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
}

// -----

// Must not apply: another entry reads the K cache directly (it returns it as
// an output), so its layout is observable; no function changes, in either
// entry.
// CHECK-LABEL: func.func @decode(
// CHECK-SAME: tensor<3x10x2x12xf32> {loom.binding = "k_cache"
// CHECK: loom.mla_attention
// CHECK-NOT: fuse.mla_decode
// CHECK-LABEL: func.func @peek(
// CHECK-SAME: tensor<3x10x2x12xf32> {loom.binding = "k_cache"
func.func @decode(%qn: tensor<1x1x2x8xf32>, %qp: tensor<1x1x2x4xf32>,
                  %kv: tensor<1x1x16xf32>, %kpe: tensor<1x1x4xf32>,
                  %w: tensor<32x16xf32>,
                  %kc: tensor<3x10x2x12xf32> {loom.role = "state", loom.name = "k_cache", loom.binding = "k_cache"},
                  %vc: tensor<3x10x2x8xf32> {loom.role = "state", loom.name = "v_cache", loom.binding = "v_cache"},
                  %pos: tensor<i64>)
    -> (tensor<1x1x2x8xf32>,
        tensor<3x10x2x12xf32> {loom.role = "state", loom.name = "k_cache", loom.binding = "k_cache"},
        tensor<3x10x2x8xf32> {loom.role = "state", loom.name = "v_cache", loom.binding = "v_cache"}) {
  %o, %k2, %v2 = loom.mla_attention %qn, %qp, %kv, %kpe, %w, %kc, %vc, %pos {scale = 0.25 : f64}
      : tensor<1x1x2x8xf32>, tensor<1x1x2x4xf32>, tensor<1x1x16xf32>, tensor<1x1x4xf32>, tensor<32x16xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>, tensor<i64>
      -> tensor<1x1x2x8xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
  return %o, %k2, %v2 : tensor<1x1x2x8xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
}

func.func @peek(%kc: tensor<3x10x2x12xf32> {loom.role = "state", loom.name = "k_cache", loom.binding = "k_cache"})
    -> (tensor<3x10x2x12xf32> {loom.role = "output", loom.name = "keys"},
        tensor<3x10x2x12xf32> {loom.role = "state", loom.name = "k_cache", loom.binding = "k_cache"}) {
  return %kc, %kc : tensor<3x10x2x12xf32>, tensor<3x10x2x12xf32>
}

// -----

// Must not apply: the caches are inputs, not session states.
// CHECK-LABEL: func.func @inputs(
// CHECK: loom.mla_attention
// CHECK-NOT: fuse.mla_decode
func.func @inputs(%qn: tensor<1x1x2x8xf32>, %qp: tensor<1x1x2x4xf32>,
                  %kv: tensor<1x1x16xf32>, %kpe: tensor<1x1x4xf32>,
                  %w: tensor<32x16xf32>, %kc: tensor<3x10x2x12xf32>,
                  %vc: tensor<3x10x2x8xf32>, %pos: tensor<i64>) -> tensor<1x1x2x8xf32> {
  %o, %k2, %v2 = loom.mla_attention %qn, %qp, %kv, %kpe, %w, %kc, %vc, %pos {scale = 0.25 : f64}
      : tensor<1x1x2x8xf32>, tensor<1x1x2x4xf32>, tensor<1x1x16xf32>, tensor<1x1x4xf32>, tensor<32x16xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>, tensor<i64>
      -> tensor<1x1x2x8xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
  return %o : tensor<1x1x2x8xf32>
}

// -----

// Must not apply: the updated K cache is also read by another op (the graph
// outputs its sum), so the per-head keys must exist.
// CHECK-LABEL: func.func @reads_keys(
// CHECK: loom.mla_attention
// CHECK-NOT: fuse.mla_decode
func.func @reads_keys(%qn: tensor<1x1x2x8xf32>, %qp: tensor<1x1x2x4xf32>,
                      %kv: tensor<1x1x16xf32>, %kpe: tensor<1x1x4xf32>,
                      %w: tensor<32x16xf32>,
                      %kc: tensor<3x10x2x12xf32> {loom.role = "state", loom.name = "k_cache", loom.binding = "k_cache"},
                      %vc: tensor<3x10x2x8xf32> {loom.role = "state", loom.name = "v_cache", loom.binding = "v_cache"},
                      %pos: tensor<i64>)
    -> (tensor<f32>,
        tensor<3x10x2x12xf32> {loom.role = "state", loom.name = "k_cache", loom.binding = "k_cache"},
        tensor<3x10x2x8xf32> {loom.role = "state", loom.name = "v_cache", loom.binding = "v_cache"}) {
  %o, %k2, %v2 = loom.mla_attention %qn, %qp, %kv, %kpe, %w, %kc, %vc, %pos {scale = 0.25 : f64}
      : tensor<1x1x2x8xf32>, tensor<1x1x2x4xf32>, tensor<1x1x16xf32>, tensor<1x1x4xf32>, tensor<32x16xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>, tensor<i64>
      -> tensor<1x1x2x8xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
  %s = loom.sum %k2 {axes = array<i64: 0, 1, 2, 3>} : tensor<3x10x2x12xf32> -> tensor<f32>
  return %s, %k2, %v2 : tensor<f32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
}

// -----

// Must not apply: f64 has no fused kernel; the naive expansion runs instead.
// CHECK-LABEL: func.func @f64(
// CHECK: loom.mla_attention
// CHECK-NOT: fuse.mla_decode
func.func @f64(%qn: tensor<1x1x2x8xf64>, %qp: tensor<1x1x2x4xf64>,
               %kv: tensor<1x1x16xf64>, %kpe: tensor<1x1x4xf64>,
               %w: tensor<32x16xf64>,
               %kc: tensor<3x10x2x12xf64> {loom.role = "state", loom.name = "k_cache", loom.binding = "k_cache"},
               %vc: tensor<3x10x2x8xf64> {loom.role = "state", loom.name = "v_cache", loom.binding = "v_cache"},
               %pos: tensor<i64>)
    -> (tensor<1x1x2x8xf64>,
        tensor<3x10x2x12xf64> {loom.role = "state", loom.name = "k_cache", loom.binding = "k_cache"},
        tensor<3x10x2x8xf64> {loom.role = "state", loom.name = "v_cache", loom.binding = "v_cache"}) {
  %o, %k2, %v2 = loom.mla_attention %qn, %qp, %kv, %kpe, %w, %kc, %vc, %pos {scale = 0.25 : f64}
      : tensor<1x1x2x8xf64>, tensor<1x1x2x4xf64>, tensor<1x1x16xf64>, tensor<1x1x4xf64>, tensor<32x16xf64>, tensor<3x10x2x12xf64>, tensor<3x10x2x8xf64>, tensor<i64>
      -> tensor<1x1x2x8xf64>, tensor<3x10x2x12xf64>, tensor<3x10x2x8xf64>
  return %o, %k2, %v2 : tensor<1x1x2x8xf64>, tensor<3x10x2x12xf64>, tensor<3x10x2x8xf64>
}

// -----

// Must not apply: the updated K cache is also returned as an output, whose
// declared layout is the per-head one.
// CHECK-LABEL: func.func @outputs_keys(
// CHECK: loom.mla_attention
// CHECK-NOT: fuse.mla_decode
func.func @outputs_keys(%qn: tensor<1x1x2x8xf32>, %qp: tensor<1x1x2x4xf32>,
                        %kv: tensor<1x1x16xf32>, %kpe: tensor<1x1x4xf32>,
                        %w: tensor<32x16xf32>,
                        %kc: tensor<3x10x2x12xf32> {loom.role = "state", loom.name = "k_cache", loom.binding = "k_cache"},
                        %vc: tensor<3x10x2x8xf32> {loom.role = "state", loom.name = "v_cache", loom.binding = "v_cache"},
                        %pos: tensor<i64>)
    -> (tensor<3x10x2x12xf32> {loom.role = "output", loom.name = "keys"},
        tensor<3x10x2x12xf32> {loom.role = "state", loom.name = "k_cache", loom.binding = "k_cache"},
        tensor<3x10x2x8xf32> {loom.role = "state", loom.name = "v_cache", loom.binding = "v_cache"}) {
  %o, %k2, %v2 = loom.mla_attention %qn, %qp, %kv, %kpe, %w, %kc, %vc, %pos {scale = 0.25 : f64}
      : tensor<1x1x2x8xf32>, tensor<1x1x2x4xf32>, tensor<1x1x16xf32>, tensor<1x1x4xf32>, tensor<32x16xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>, tensor<i64>
      -> tensor<1x1x2x8xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
  return %k2, %k2, %v2 : tensor<3x10x2x12xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
}
