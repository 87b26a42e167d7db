// RUN: loom-opt --split-input-file --loom-fuse-attention=gpu-kernel-only=true %s | FileCheck %s

// With gpu-kernel-only, attention is fused only where the CUDA kernel
// compiles it: f16 or bf16, head dims static multiples of
// 16 up to 128. The rest stays loom.attention (or the composite).
// CHECK-LABEL: func.func @bf16_causal
// CHECK: fuse.attention
// CHECK-NOT: loom.attention
func.func @bf16_causal(%q: tensor<?x4x?x32xbf16>, %k: tensor<?x2x?x32xbf16>,
    %v: tensor<?x2x?x64xbf16>) -> tensor<?x4x?x64xbf16> {
  %o, %l = loom.attention %q, %k, %v {scale = 0.125 : f64}
      : tensor<?x4x?x32xbf16>, tensor<?x2x?x32xbf16>, tensor<?x2x?x64xbf16>
      -> tensor<?x4x?x64xbf16>, tensor<?x4x?xbf16>
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c = arith.cmpi ule, %j, %i : index
      loom.yield %c : i1
    }
  return %o : tensor<?x4x?x64xbf16>
}

// -----

// CHECK-LABEL: func.func @f32_stays
// CHECK: loom.attention
// CHECK-NOT: fuse.attention
func.func @f32_stays(%q: tensor<2x4x16x32xf32>) -> tensor<2x4x16x32xf32> {
  %o, %l = loom.attention %q, %q, %q {scale = 0.125 : f64}
      : tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>
      -> tensor<2x4x16x32xf32>, tensor<2x4x16xf32>
  return %o : tensor<2x4x16x32xf32>
}

// -----

// CHECK-LABEL: func.func @head_dim_24_stays
// CHECK: loom.attention
// CHECK-NOT: fuse.attention
func.func @head_dim_24_stays(%q: tensor<2x4x16x24xf16>) -> tensor<2x4x16x24xf16> {
  %o, %l = loom.attention %q, %q, %q {scale = 0.125 : f64}
      : tensor<2x4x16x24xf16>, tensor<2x4x16x24xf16>, tensor<2x4x16x24xf16>
      -> tensor<2x4x16x24xf16>, tensor<2x4x16xf16>
  return %o : tensor<2x4x16x24xf16>
}

// -----

// A score region is evaluated in the kernel.
// CHECK-LABEL: func.func @score
// CHECK: fuse.attention
// CHECK: score {
// CHECK-NOT: loom.attention
func.func @score(%q: tensor<2x4x16x32xbf16>) -> tensor<2x4x16x32xbf16> {
  %o, %l = loom.attention %q, %q, %q {scale = 0.125 : f64}
      : tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>
      -> tensor<2x4x16x32xbf16>, tensor<2x4x16xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %s: bf16):
      loom.yield %s : bf16
    }
  return %o : tensor<2x4x16x32xbf16>
}

// -----

// The composite: fused in bf16, left alone in f32.
// CHECK-LABEL: func.func @composite_bf16
// CHECK: fuse.attention
// CHECK-NOT: loom.softmax
func.func @composite_bf16(%q: tensor<2x4x16x16xbf16>, %k: tensor<2x4x16x16xbf16>,
    %v: tensor<2x4x16x16xbf16>) -> tensor<2x4x16x16xbf16> {
  %kt = loom.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<2x4x16x16xbf16> -> tensor<2x4x16x16xbf16>
  %s = loom.matmul %q, %kt : tensor<2x4x16x16xbf16>, tensor<2x4x16x16xbf16> -> tensor<2x4x16x16xbf16>
  %p = loom.softmax %s {axis = 3 : i64} : tensor<2x4x16x16xbf16> -> tensor<2x4x16x16xbf16>
  %o = loom.matmul %p, %v : tensor<2x4x16x16xbf16>, tensor<2x4x16x16xbf16> -> tensor<2x4x16x16xbf16>
  return %o : tensor<2x4x16x16xbf16>
}

// CHECK-LABEL: func.func @composite_f32
// CHECK: loom.softmax
// CHECK-NOT: fuse.attention
func.func @composite_f32(%q: tensor<2x4x16x16xf32>, %k: tensor<2x4x16x16xf32>,
    %v: tensor<2x4x16x16xf32>) -> tensor<2x4x16x16xf32> {
  %kt = loom.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %s = loom.matmul %q, %kt : tensor<2x4x16x16xf32>, tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %p = loom.softmax %s {axis = 3 : i64} : tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  %o = loom.matmul %p, %v : tensor<2x4x16x16xf32>, tensor<2x4x16x16xf32> -> tensor<2x4x16x16xf32>
  return %o : tensor<2x4x16x16xf32>
}
