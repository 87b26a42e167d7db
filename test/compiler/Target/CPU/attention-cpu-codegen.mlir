// RUN: loom-opt %s --loom-cpu-codegen | FileCheck %s

// An entry with fuse.attention on tensors goes all the way to the LLVM
// dialect: bufferized in place into the outputs, the regions outlined, and
// the op a call of the launch, whose memref arguments are expanded into
// their descriptors' fields (q, k, v, out: 11 each; lse: 9), then scale,
// flags and the captures (5 each). The object emitter defines the launch.
// CHECK-NOT: fuse.
// CHECK-LABEL: llvm.func @main(
// CHECK: llvm.call @__loom_attention_launch_0(
// CHECK-SAME: -> ()
// CHECK-NOT: llvm.call @__loom_parallel_launch
// CHECK: llvm.return
// CHECK-DAG: llvm.func @__loom_attention_mask_row_0(%{{[^:]*}}: i64, %{{[^:]*}}: i64, %{{[^:]*}}: i64, %{{[^:]*}}: i64, %{{[^:]*}}: i64, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: i64, %{{[^:]*}}: i64, %{{[^:]*}}: i64, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: i64, %{{[^:]*}}: i64, %{{[^:]*}}: i64)
// CHECK-DAG: llvm.func @__loom_attention_mask_block_0({{.*}}) -> i32
// CHECK-DAG: llvm.func @__loom_attention_score_row_0(
// CHECK-DAG: llvm.func @__loom_attention_launch_0(!llvm.ptr, !llvm.ptr, i64, i64, i64, i64, i64, i64, i64, i64, i64, !llvm.ptr, !llvm.ptr, i64, i64, i64, i64, i64, i64, i64, i64, i64, !llvm.ptr, !llvm.ptr, i64, i64, i64, i64, i64, i64, i64, i64, i64, !llvm.ptr, !llvm.ptr, i64, i64, i64, i64, i64, i64, i64, i64, i64, !llvm.ptr, !llvm.ptr, i64, i64, i64, i64, i64, i64, i64, f32, i32, !llvm.ptr, !llvm.ptr, i64, i64, i64) attributes {sym_visibility = "private"}
// CHECK-NOT: memref.
// CHECK-NOT: scf.
func.func @main(
    %q: tensor<?x2x?x8xf32> {loom.role = "input", loom.name = "q", loom.dims = ["B", 2, "S", 8]},
    %kv: tensor<?x1x?x8xf32> {loom.role = "input", loom.name = "kv", loom.dims = ["B", 1, "S", 8]},
    %doc: tensor<?xi32> {loom.role = "input", loom.name = "doc", loom.dims = ["S"]})
    -> (tensor<?x2x?x8xf32> {loom.role = "output", loom.name = "out", loom.dims = ["B", 2, "S", 8]},
        tensor<?x2x?xf32> {loom.role = "output", loom.name = "lse", loom.dims = ["B", 2, "S"]}) {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %nb = tensor.dim %q, %c0 : tensor<?x2x?x8xf32>
  %ns = tensor.dim %q, %c2 : tensor<?x2x?x8xf32>
  %oi = tensor.empty(%nb, %ns) : tensor<?x2x?x8xf32>
  %li = tensor.empty(%nb, %ns) : tensor<?x2x?xf32>
  %r:2 = fuse.attention ins(%q, %kv, %kv : tensor<?x2x?x8xf32>, tensor<?x1x?x8xf32>, tensor<?x1x?x8xf32>)
      captures(%doc : tensor<?xi32>)
      outs(%oi, %li : tensor<?x2x?x8xf32>, tensor<?x2x?xf32>) {scale = 0.35 : f64}
      -> tensor<?x2x?x8xf32>, tensor<?x2x?xf32>
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %d: tensor<?xi32>):
      %di = tensor.extract %d[%i] : tensor<?xi32>
      %dj = tensor.extract %d[%j] : tensor<?xi32>
      %same = arith.cmpi eq, %di, %dj : i32
      %past = arith.cmpi ule, %j, %i : index
      %m = arith.andi %same, %past : i1
      fuse.yield %m : i1
    }
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %s: f32, %d: tensor<?xi32>):
      %cap = arith.constant 20.0 : f32
      %x = arith.divf %s, %cap : f32
      %t = math.tanh %x : f32
      %y = arith.mulf %t, %cap : f32
      fuse.yield %y : f32
    }
  return %r#0, %r#1 : tensor<?x2x?x8xf32>, tensor<?x2x?xf32>
}
