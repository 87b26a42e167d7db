// RUN: loom-opt --split-input-file --loom-cuda-mla-decode --verify-diagnostics %s | FileCheck %s
// RUN: loom-opt --split-input-file --loom-cuda-mla-decode --loom-cuda-map-to-gpu --verify-diagnostics %s | FileCheck %s --check-prefix=LAUNCH

// A bf16 fuse.mla_decode (16 heads, rank 64, rope 16) becomes two kernels:
// the host computes the rows (S * 16, none for an empty batch), the visible
// length clamp(start_pos + S, 0, T), the splits (about 128 blocks, at
// least one tile of 32 positions each), allocates the f32 partial outputs
// and log-sum-exps, and calls the two launch declarations: the partial
// kernel, which also takes the output (with one split it writes the
// result itself), and the combine: a block per row of a batch row, or
// with one split a single block, which does nothing.
// CHECK-LABEL: func.func @decode
// CHECK-SAME: (%[[QL:[^:]*]]: memref<?x?x16x64xbf16>, %[[QP:[^:]*]]: memref<?x?x16x16xbf16>, %[[KV:[^:]*]]: memref<4x256x64xbf16>, %[[PE:[^:]*]]: memref<4x256x16xbf16>, %[[POS:[^:]*]]: i64, %[[O:[^:]*]]: memref<?x?x16x64xbf16>)
// CHECK: %[[B:.*]] = memref.dim %[[QL]], %c0
// CHECK: %[[S:.*]] = memref.dim %[[QL]], %c1
// CHECK: %[[T:.*]] = memref.dim %[[KV]], %c1
// CHECK: %[[EMPTY:.*]] = arith.cmpi eq, %[[B]], %[[ZERO:.*]] : index
// CHECK: %[[SH:.*]] = arith.muli %[[S]], %c16
// CHECK: %[[ROWS:.*]] = arith.select %[[EMPTY]], %[[ZERO]], %[[SH]]
// CHECK: %[[START:.*]] = arith.index_cast %[[POS]] : i64 to index
// CHECK: %[[END:.*]] = arith.addi %[[START]], %[[S]]
// CHECK: %[[LO:.*]] = arith.maxsi %[[END]], %[[ZERO]]
// CHECK: %[[VIS0:.*]] = arith.minsi %[[LO]], %[[T]]
// CHECK: %[[VIS:.*]] = arith.select %{{.*}}, %[[ZERO]], %[[VIS0]]
// CHECK: %[[RB:.*]] = arith.ceildivsi %[[ROWS]], %c64
// CHECK: arith.ceildivsi %[[VIS]], %c32
// CHECK: arith.ceildivsi %c128,
// CHECK: %[[PERT:.*]] = arith.ceildivsi %[[TILES:.*]], %{{.*}}
// CHECK: %[[SPLITS:.*]] = arith.ceildivsi %[[TILES]], %[[PERT]]
// CHECK: %[[PER:.*]] = arith.muli %[[PERT]], %c32
// CHECK: %[[PART:.*]] = memref.alloc(%[[SPLITS]], %[[B]], %[[ROWS]]) : memref<?x?x?x64xf32>
// CHECK: %[[LSE:.*]] = memref.alloc(%[[SPLITS]], %[[B]], %[[ROWS]]) : memref<?x?x?xf32>
// CHECK: call @loom_mla_decode_0_partial_launch(%[[RB]], %[[B]], %[[SPLITS]], %[[QL]], %[[QP]], %[[KV]], %[[PE]], %[[PART]], %[[LSE]], %[[START]], %[[ROWS]], %[[VIS]], %[[PER]], %[[O]])
// CHECK: %[[MANY:.*]] = arith.cmpi slt, %c1{{.*}}, %[[SPLITS]] : index
// CHECK-NEXT: %[[CX:.*]] = arith.select %[[MANY]], %[[ROWS]], %c1{{.*}} : index
// CHECK-NEXT: %[[CY:.*]] = arith.select %[[MANY]], %[[B]], %c1{{.*}} : index
// CHECK-NEXT: call @loom_mla_decode_0_combine_launch(%[[CX]], %[[CY]], %{{.*}}, %[[PART]], %[[LSE]], %[[O]], %[[SPLITS]], %[[ROWS]])
// CHECK: func.func private @loom_mla_decode_0_partial_launch({{.*}}) attributes {loom.cuda.launch = @loom_mla_decode_0::@partial, loom.cuda.launch_shared = 28160 : index, loom.cuda.launch_threads = 256 : index}
// CHECK: func.func private @loom_mla_decode_0_combine_launch({{.*}}) attributes {loom.cuda.launch = @loom_mla_decode_0::@combine, loom.cuda.launch_threads = 16 : index}
// The partial kernel: dynamic shared memory for the 64 query rows and two
// cache tiles of 32 positions (rows of 64 + 16 columns, padded by 8), P
// and the exchanged row maxima; cp.async copies, ldmatrix fragments and
// tensor-core products for the scores, the maxima exchanged through shared
// memory, and the output product with V's fragments transposed from the
// same cache tile.
// CHECK: gpu.module @loom_mla_decode_0
// CHECK: gpu.func @partial({{.*}}) kernel attributes {known_block_size = array<i32: 256, 1, 1>, nvvm.minctasm = 1 : i32}
// CHECK: %[[SMEM:.*]] = gpu.dynamic_shared_memory
// CHECK: %[[QS:.*]] = memref.view %[[SMEM]][%c0{{.*}}][] : {{.*}} to memref<64x88xbf16, #gpu.address_space<workgroup>>
// CHECK: %[[KS:.*]] = memref.view %[[SMEM]][%c11264][] : {{.*}} to memref<2x32x88xbf16, #gpu.address_space<workgroup>>
// CHECK: %[[PS:.*]] = memref.view %[[SMEM]][%c22528][] : {{.*}} to memref<64x40xbf16, #gpu.address_space<workgroup>>
// CHECK: %[[EX:.*]] = memref.view %[[SMEM]][%c27648][] : {{.*}} to memref<2x64xf32, #gpu.address_space<workgroup>>
// CHECK: nvgpu.device_async_copy %{{.*}}, %[[QS]][%{{.*}}, %{{.*}}], 8, %{{.*}} {bypassL1}
// CHECK: nvgpu.device_async_copy %{{.*}}, %[[KS]][%{{.*}}, %{{.*}}, %{{.*}}], 8, %{{.*}} {bypassL1}
// CHECK: nvvm.cp.async.commit.group
// CHECK: scf.for
// CHECK: nvvm.cp.async.wait.group 0
// CHECK: gpu.barrier
// CHECK: nvgpu.ldmatrix %[[QS]][%{{.*}}, %{{.*}}] {numTiles = 4 : i32, transpose = false}
// CHECK: nvgpu.ldmatrix %[[KS]][%{{.*}}, %{{.*}}, %{{.*}}] {numTiles = 4 : i32, transpose = false}
// CHECK: nvvm.mma.sync {{.*}}shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK: gpu.shuffle xor
// CHECK: memref.store %{{.*}}, %[[EX]]
// CHECK: gpu.barrier
// CHECK: memref.load %[[EX]]
// CHECK: llvm.inline_asm "ex2.approx.ftz.f32 $0, $1;"
// CHECK: vector.store %{{.*}}, %[[PS]]
// CHECK: gpu.barrier
// CHECK: nvgpu.ldmatrix %[[PS]][%{{.*}}, %{{.*}}] {numTiles = 4 : i32, transpose = false}
// CHECK: nvgpu.ldmatrix %[[KS]][%{{.*}}, %{{.*}}, %{{.*}}] {numTiles = 4 : i32, transpose = true}
// After the tiles: with one split (grid z of 1) the rows, normalized and
// rounded to bf16, go to the output at [b, row / 16, row % 16, column];
// else to the split's f32 output and log-sum-exp.
// CHECK: %[[NZ:.*]] = gpu.grid_dim z
// CHECK: %[[ONE:.*]] = arith.cmpi eq, %[[NZ]], %c1{{.*}} : index
// CHECK: llvm.inline_asm "lg2.approx.ftz.f32 $0, $1;"
// CHECK: scf.if %[[ONE]] {
// CHECK: %[[R:.*]] = arith.truncf %{{.*}} : f32 to bf16
// CHECK: memref.store %[[R]], %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<?x?x16x64xbf16>
// CHECK: } else {
// CHECK: memref.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<?x?x?x64xf32>
// CHECK: memref.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] : memref<?x?x?xf32>
// The combine kernel merges the splits by their log-sum-exps: a block per
// row of a batch row, 4 columns a thread (rank 64: 16 threads), one
// 16-byte load of each split's output.
// CHECK: gpu.func @combine({{.*}}) kernel attributes {known_block_size = array<i32: 16, 1, 1>, nvvm.minctasm = 8 : i32}
// CHECK: %[[CROW:.*]] = gpu.block_id x
// CHECK: %[[CB:.*]] = gpu.block_id y
// CHECK: %[[TX:.*]] = gpu.thread_id x
// CHECK: %[[C:.*]] = arith.muli %[[TX]], %c4
// CHECK: %[[SEVERAL:.*]] = arith.cmpi slt, %c1{{.*}}, %arg3 : index
// CHECK-NEXT: %[[WORK:.*]] = arith.andi %{{.*}}, %[[SEVERAL]] : i1
// CHECK-NEXT: scf.if %[[WORK]] {
// CHECK: scf.for
// CHECK: arith.maxnumf
// CHECK: scf.for
// CHECK: llvm.inline_asm "ex2.approx.ftz.f32 $0, $1;"
// CHECK: vector.load %{{.*}}[%{{.*}}, %[[CB]], %[[CROW]], %[[C]]] {alignment = 16 : i64} : memref<?x?x?x64xf32>, vector<4xf32>
// CHECK: vector.fma
// CHECK-COUNT-4: arith.truncf %{{.*}} : f32 to bf16
// The launches, on the entry's stream: the partial kernel with its dynamic
// shared memory, the combine kernel after it.
// LAUNCH-LABEL: func.func @decode
// LAUNCH: gpu.alloc async
// LAUNCH: gpu.alloc async
// LAUNCH: %[[P:.*]] = gpu.launch_func async [%{{.*}}] @loom_mla_decode_0::@partial blocks in (%{{.*}}, %{{.*}}, %{{.*}}) threads in (%c256, %{{.*}}, %{{.*}}) dynamic_shared_memory_size %c28160_i32
// LAUNCH: gpu.launch_func async [%[[P]]] @loom_mla_decode_0::@combine
// LAUNCH-NOT: _launch(
func.func @decode(%ql: memref<?x?x16x64xbf16>, %qp: memref<?x?x16x16xbf16>,
                  %kv: memref<4x256x64xbf16>, %pe: memref<4x256x16xbf16>,
                  %pos: i64, %o: memref<?x?x16x64xbf16>) attributes {llvm.emit_c_interface} {
  fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%o) {scale = 0.1 : f64}
      : memref<?x?x16x64xbf16>, memref<?x?x16x16xbf16>, memref<4x256x64xbf16>,
        memref<4x256x16xbf16>, memref<?x?x16x64xbf16>
  return
}

// -----

// f16: mma on f16 pairs, the result rounded to f16.
// CHECK-LABEL: func.func @f16
// CHECK: nvvm.mma.sync {{.*}} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK: gpu.func @combine
// CHECK: arith.truncf %{{.*}} : f32 to f16
func.func @f16(%ql: memref<1x1x4x32xf16>, %qp: memref<1x1x4x16xf16>,
               %kv: memref<1x64x32xf16>, %pe: memref<1x64x16xf16>,
               %pos: i64, %o: memref<1x1x4x32xf16>) attributes {llvm.emit_c_interface} {
  fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%o) {scale = 0.1 : f64}
      : memref<1x1x4x32xf16>, memref<1x1x4x16xf16>, memref<1x64x32xf16>,
        memref<1x64x16xf16>, memref<1x1x4x32xf16>
  return
}

// -----

func.func @f32(%ql: memref<1x1x4x32xf32>, %qp: memref<1x1x4x16xf32>,
               %kv: memref<1x64x32xf32>, %pe: memref<1x64x16xf32>,
               %pos: i64, %o: memref<1x1x4x32xf32>) {
  // expected-error @below {{reads f32; the GPU MLA decode kernel reads f16 or bf16}}
  fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%o) {scale = 0.1 : f64}
      : memref<1x1x4x32xf32>, memref<1x1x4x16xf32>, memref<1x64x32xf32>,
        memref<1x64x16xf32>, memref<1x1x4x32xf32>
  return
}

// -----

func.func @rank(%ql: memref<1x1x4x48xbf16>, %qp: memref<1x1x4x16xbf16>,
                %kv: memref<1x64x48xbf16>, %pe: memref<1x64x16xbf16>,
                %pos: i64, %o: memref<1x1x4x48xbf16>) {
  // expected-error @below {{has latent rank 48 and rope dim 16 (24064 bytes of shared memory); the GPU MLA decode kernel needs a static head count, a rank that is a multiple of 32 up to 512}}
  fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%o) {scale = 0.1 : f64}
      : memref<1x1x4x48xbf16>, memref<1x1x4x16xbf16>, memref<1x64x48xbf16>,
        memref<1x64x16xbf16>, memref<1x1x4x48xbf16>
  return
}
