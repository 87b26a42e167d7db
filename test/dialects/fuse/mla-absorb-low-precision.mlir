// RUN: loom-opt %s --loom-mla-absorb | FileCheck %s --check-prefix=DEFAULT
// RUN: loom-opt %s --loom-mla-absorb=low-precision=true | FileCheck %s --check-prefix=LOW

// bf16 MLA: without `low-precision` (the CPU, whose kernel reads f32) the op
// stays for the naive expansion; with it (the CUDA target) the caches become
// the bf16 latent and rope key and the attention one bf16 fuse.mla_decode.
// DEFAULT-LABEL: func.func @decode(
// DEFAULT: loom.mla_attention
// DEFAULT-NOT: fuse.mla_decode
// LOW-LABEL: func.func @decode(
// LOW-SAME: tensor<3x10x16xbf16> {loom.binding = "kv_cache"
// LOW-SAME: tensor<3x10x4xbf16> {loom.binding = "pe_cache"
// LOW: fuse.mla_decode {{.*}} : tensor<?x?x2x16xbf16>, tensor<?x?x2x4xbf16>, tensor<3x10x16xbf16>, tensor<3x10x4xbf16>, tensor<?x?x2x16xbf16> -> tensor<?x?x2x16xbf16>
// LOW-NOT: loom.mla_attention
func.func @decode(%qn: tensor<?x?x2x8xbf16>, %qp: tensor<?x?x2x4xbf16>,
                  %kv: tensor<?x?x16xbf16>, %kpe: tensor<?x?x4xbf16>,
                  %w: tensor<32x16xbf16>,
                  %kc: tensor<3x10x2x12xbf16> {loom.role = "state", loom.name = "k_cache", loom.binding = "k_cache", loom.dims = [3, 10, 2, 12]},
                  %vc: tensor<3x10x2x8xbf16> {loom.role = "state", loom.name = "v_cache", loom.binding = "v_cache", loom.dims = [3, 10, 2, 8]},
                  %pos: tensor<i64>)
    -> (tensor<?x?x2x8xbf16>,
        tensor<3x10x2x12xbf16> {loom.role = "state", loom.name = "k_cache", loom.binding = "k_cache"},
        tensor<3x10x2x8xbf16> {loom.role = "state", loom.name = "v_cache", loom.binding = "v_cache"}) {
  %o, %k2, %v2 = loom.mla_attention %qn, %qp, %kv, %kpe, %w, %kc, %vc, %pos {scale = 0.25 : f64}
      : tensor<?x?x2x8xbf16>, tensor<?x?x2x4xbf16>, tensor<?x?x16xbf16>, tensor<?x?x4xbf16>, tensor<32x16xbf16>, tensor<3x10x2x12xbf16>, tensor<3x10x2x8xbf16>, tensor<i64>
      -> tensor<?x?x2x8xbf16>, tensor<3x10x2x12xbf16>, tensor<3x10x2x8xbf16>
  return %o, %k2, %v2 : tensor<?x?x2x8xbf16>, tensor<3x10x2x12xbf16>, tensor<3x10x2x8xbf16>
}
