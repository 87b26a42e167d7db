// RUN: loom-opt --split-input-file --loom-cuda-mla-decode=wgmma=true %s | FileCheck %s

// With wgmma, the partial kernel's tiles are 64 positions (splits in
// multiples of 64) and its shared memory, as unpadded core matrices, the
// query rows and two tiles ((64 + 2 * 64) rows of 64 + 16 columns, 30720
// bytes; [rows / 8][columns / 8][8 x 8] each, the tiles 10240 bytes on),
// then P (64 rows x 64 keys, 8192 bytes) and the row maxima of the two
// warpgroups: 39424 bytes.
// CHECK-LABEL: func.func @decode
// CHECK: arith.ceildivsi %{{.*}}, %c64
// CHECK: %[[PER:.*]] = arith.muli %{{.*}}, %c64
// CHECK: call @loom_mla_decode_0_partial_launch({{.*}}, %[[PER]], %{{.*}})
// CHECK: func.func private @loom_mla_decode_0_partial_launch({{.*}}) attributes {loom.cuda.launch = @loom_mla_decode_0::@partial, loom.cuda.launch_shared = 39424 : index, loom.cuda.launch_threads = 256 : index}
// CHECK: gpu.func @partial
// CHECK: %[[QS:.*]] = memref.view %{{.*}}[%c0{{.*}}][] : {{.*}} to memref<8x10x64xbf16, #gpu.address_space<workgroup>>
// CHECK: %[[KS:.*]] = memref.view %{{.*}}[%c10240][] : {{.*}} to memref<2x8x10x64xbf16, #gpu.address_space<workgroup>>
// CHECK: %[[PS:.*]] = memref.view %{{.*}}[%c30720][] : {{.*}} to memref<8x8x64xbf16, #gpu.address_space<workgroup>>
// CHECK: %[[EX:.*]] = memref.view %{{.*}}[%c38912][] : {{.*}} to memref<2x64xf32, #gpu.address_space<workgroup>>
// The warp index is lane 0's, which ptxas then knows to be the same in
// the warp: the descriptors made from it stay in uniform registers.
// CHECK: gpu.thread_id  x
// CHECK: %[[WARP:.*]] = arith.divsi %thread_id_x, %c32{{.*}} : index
// CHECK: %[[WARP32:.*]] = arith.index_cast %[[WARP]] : index to i32
// CHECK: gpu.shuffle  idx %[[WARP32]], %c0_i32, %c32_i32
// CHECK: nvgpu.device_async_copy %{{.*}}, %[[QS]][%{{.*}}, %{{.*}}, %{{.*}}], 8, %{{.*}} {bypassL1}
// CHECK: nvgpu.device_async_copy %{{.*}}, %[[KS]][%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}], 8, %{{.*}} {bypassL1}
// Each tile: the copies made visible to the asynchronous proxy before the
// barrier, the next tile issued, then the warpgroup's half of the scores
// (32 keys): 5 wgmma m64n32k16 (80 columns), A and B from shared memory,
// K-major: 128 bytes between core matrices along the columns (8 << 16),
// 10 * 128 = 1280 bytes between groups of 8 rows (80 << 32):
// 343597907968. The first overwrites the accumulators. The descriptors of
// step 0 are made once; step k's are their low word plus its bytes / 16
// (step 1: 256 bytes on, 16), joined to the high word by a mov.b64.
// CHECK: scf.for
// CHECK: nvvm.cp.async.wait.group 0
// CHECK-NEXT: llvm.inline_asm has_side_effects "fence.proxy.async.shared::cta;"
// CHECK-NEXT: gpu.barrier
// CHECK: nvvm.cp.async.commit.group
// CHECK: memref.extract_aligned_pointer_as_index %[[QS]]
// CHECK: memref.extract_aligned_pointer_as_index %[[KS]]
// CHECK: %[[DA:.*]] = arith.ori %{{.*}}, %c343597907968_i64
// CHECK: %[[DB:.*]] = arith.ori %{{.*}}, %c343597907968_i64
// CHECK: llvm.inline_asm has_side_effects "wgmma.fence.sync.aligned;"
// CHECK: %[[DA0:.*]] = llvm.inline_asm "mov.b64 $0, {$1, $2};", "=l,r,r"
// CHECK: %[[DB0:.*]] = llvm.inline_asm "mov.b64 $0, {$1, $2};", "=l,r,r"
// CHECK: llvm.inline_asm has_side_effects "{\0A.reg .pred p;\0Asetp.ne.b32 p, 0, 0;\0Awgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {$0, {{.*}}, $15}, $16, $17, p, 1, 1, 0, 0;\0A}", "=f,{{.*}},=f,l,l" %[[DA0]], %[[DB0]]
// CHECK: %[[LA:.*]] = arith.trunci %[[DA]] : i64 to i32
// CHECK: %[[LA1:.*]] = arith.addi %[[LA]], %c16_i32
// CHECK: %[[DA1:.*]] = llvm.inline_asm "mov.b64 $0, {$1, $2};", "=l,r,r" %[[LA1]],
// CHECK: %[[LB:.*]] = arith.trunci %[[DB]] : i64 to i32
// CHECK: %[[LB1:.*]] = arith.addi %[[LB]], %c16_i32
// CHECK: %[[DB1:.*]] = llvm.inline_asm "mov.b64 $0, {$1, $2};", "=l,r,r" %[[LB1]],
// CHECK: wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 0, 0;\0A}", "=f,{{.*}},=f,l,l,0,1,{{.*}},15" %[[DA1]], %[[DB1]],
// CHECK-COUNT-3: wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 0, 0;\0A}", "=f,{{.*}},=f,l,l,0,1,{{.*}},15"
// CHECK: "wgmma.commit_group.sync.aligned;"
// CHECK: "wgmma.wait_group.sync.aligned 0;"
// A thread whose last key (its first + 8 * 3 + 1) is below both rows'
// limits only scales its 16 scores; otherwise each is masked too.
// CHECK: %[[LAST:.*]] = arith.addi %{{.*}}, %c25 : index
// CHECK: %[[VIS:.*]] = arith.cmpi slt, %[[LAST]], %{{.*}} : index
// CHECK-NEXT: scf.if %[[VIS]] -> (f32, {{.*}}) {
// CHECK-NEXT: arith.mulf
// CHECK-NOT: arith.select
// CHECK: } else {
// CHECK: arith.cmpi slt
// CHECK: arith.select
// The row maxima of the two halves exchanged through shared memory, P
// rounded to bf16 into its core matrices, made visible to the
// asynchronous proxy.
// CHECK: gpu.shuffle xor %{{.*}}, %c1_i32
// CHECK: gpu.shuffle xor %{{.*}}, %c2_i32
// CHECK: memref.store %{{.*}}, %[[EX]]
// CHECK: gpu.barrier
// CHECK: memref.load %[[EX]]
// CHECK: llvm.inline_asm "ex2.approx.ftz.f32 $0, $1;"
// CHECK: vector.store %{{.*}}, %[[PS]][%{{.*}}, %{{.*}}, %{{.*}}] {alignment = 4 : i64} : memref<8x8x64xbf16, #gpu.address_space<workgroup>>, vector<2xbf16>
// The accumulators keep their values where every lane's two factors are
// 1 (no row maximum of the warp moved), and are rescaled otherwise.
// CHECK: %[[UNIT:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT: %c-1_i32 = arith.constant -1 : i32
// CHECK-NEXT: %[[ONE0:.*]] = arith.cmpf oeq, %{{.*}}, %[[UNIT]] : f32
// CHECK-NEXT: %[[ONE1:.*]] = arith.cmpf oeq, %{{.*}}, %[[UNIT]] : f32
// CHECK-NEXT: %[[ONES:.*]] = arith.andi %[[ONE0]], %[[ONE1]] : i1
// CHECK-NEXT: %[[ALL:.*]] = nvvm.vote.sync  all %c-1_i32, %[[ONES]] -> i1
// CHECK-NEXT: scf.if %[[ALL]] -> (f32, {{.*}}) {
// CHECK-NEXT: scf.yield %arg{{[0-9]+}}, %arg
// CHECK-NEXT: } else {
// CHECK-NEXT: arith.mulf %arg{{[0-9]+}}, %{{.*}} : f32
// CHECK: "fence.proxy.async.shared::cta;"
// CHECK-NEXT: gpu.barrier
// P v: per 16 keys one wgmma of the warpgroup's 32 latent columns (N =
// 32). A is P: 128 bytes between chunks of 8 keys (8 << 16), 1024 between
// groups of 8 rows (64 << 32): 274878431232. B is the same tile MN-major
// (transpose-b 1): 1280 bytes between groups of 8 keys (80 << 16), 128
// between core matrices along the columns (8 << 32): 34364981248. The
// next 16 keys: P 256 bytes on (16), the tile 2 * 1280 (160).
// CHECK: memref.extract_aligned_pointer_as_index %[[PS]]
// CHECK: %[[DP:.*]] = arith.ori %{{.*}}, %c274878431232_i64
// CHECK: %[[DV:.*]] = arith.ori %{{.*}}, %c34364981248_i64
// CHECK: "wgmma.fence.sync.aligned;"
// CHECK: %[[DP0:.*]] = llvm.inline_asm "mov.b64 $0, {$1, $2};", "=l,r,r"
// CHECK: %[[DV0:.*]] = llvm.inline_asm "mov.b64 $0, {$1, $2};", "=l,r,r"
// CHECK: wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {$0, {{.*}}, $15}, $16, $17, p, 1, 1, 0, 1;\0A}", "=f,{{.*}},=f,l,l,0,{{.*}},15" %[[DP0]], %[[DV0]], 
// CHECK: %[[LP:.*]] = arith.trunci %[[DP]] : i64 to i32
// CHECK: %[[LP1:.*]] = arith.addi %[[LP]], %c16_i32
// CHECK: %[[DP1:.*]] = llvm.inline_asm "mov.b64 $0, {$1, $2};", "=l,r,r" %[[LP1]],
// CHECK: %[[LV:.*]] = arith.trunci %[[DV]] : i64 to i32
// CHECK: %[[LV1:.*]] = arith.addi %[[LV]], %c160_i32
// CHECK: %[[DV1:.*]] = llvm.inline_asm "mov.b64 $0, {$1, $2};", "=l,r,r" %[[LV1]],
// CHECK: wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 0, 1;\0A}", "=f,{{.*}},=f,l,l,0,{{.*}},15" %[[DP1]], %[[DV1]],
// CHECK-COUNT-2: wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 0, 1;
// CHECK: "wgmma.commit_group.sync.aligned;"
// CHECK: "wgmma.wait_group.sync.aligned 0;"
// After the tiles, the row sums of the two halves are exchanged too.
// CHECK: scf.yield
// CHECK: gpu.shuffle xor %{{.*}}#18, %c1_i32
// CHECK: memref.store %{{.*}}, %[[EX]]
// CHECK: gpu.barrier
// CHECK: memref.load %[[EX]]
// CHECK: gpu.func @combine
func.func @decode(%ql: memref<?x?x16x64xbf16>, %qp: memref<?x?x16x16xbf16>,
                  %kv: memref<4x256x64xbf16>, %pe: memref<4x256x16xbf16>,
                  %pos: i64, %o: memref<?x?x16x64xbf16>) attributes {llvm.emit_c_interface} {
  fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%o) {scale = 0.1 : f64}
      : memref<?x?x16x64xbf16>, memref<?x?x16x16xbf16>, memref<4x256x64xbf16>,
        memref<4x256x16xbf16>, memref<?x?x16x64xbf16>
  return
}

// -----

// DeepSeek-V3's rank 512 and rope 64: P v in chunks of 128 columns (two per
// warpgroup and 16 keys), 224.5 KB of shared memory.
// CHECK-LABEL: func.func @v3
// CHECK: loom.cuda.launch_shared = 229888 : index
// CHECK-COUNT-36: wgmma.mma_async.sync.aligned.m64n32k16
// CHECK-COUNT-8: wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16
func.func @v3(%ql: memref<?x1x128x512xf16>, %qp: memref<?x1x128x64xf16>,
              %kv: memref<?x4096x512xf16>, %pe: memref<?x4096x64xf16>,
              %pos: i64, %o: memref<?x1x128x512xf16>) {
  fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%o) {scale = 0.1 : f64}
      : memref<?x1x128x512xf16>, memref<?x1x128x64xf16>, memref<?x4096x512xf16>,
        memref<?x4096x64xf16>, memref<?x1x128x512xf16>
  return
}

// -----

// Where tiles of 64 positions do not fit in shared memory (rope 128:
// 254464 bytes), tiles of 32 in three stages do (209408 bytes).
// CHECK-LABEL: func.func @wide
// CHECK: arith.ceildivsi %{{.*}}, %c32
// CHECK: loom.cuda.launch_shared = 209408 : index
// CHECK: nvvm.cp.async.wait.group 1
// CHECK: wgmma.mma_async.sync.aligned.m64n16k16
// CHECK-NOT: nvvm.mma.sync
func.func @wide(%ql: memref<1x1x16x512xbf16>, %qp: memref<1x1x16x128xbf16>,
                %kv: memref<1x256x512xbf16>, %pe: memref<1x256x128xbf16>,
                %pos: i64, %o: memref<1x1x16x512xbf16>) {
  fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%o) {scale = 0.1 : f64}
      : memref<1x1x16x512xbf16>, memref<1x1x16x128xbf16>, memref<1x256x512xbf16>,
        memref<1x256x128xbf16>, memref<1x1x16x512xbf16>
  return
}

// -----

// Where neither fits (rope 256: 245760 bytes with tiles of 32), the
// mma.sync kernel (204288 bytes).
// CHECK-LABEL: func.func @wider
// CHECK: arith.ceildivsi %{{.*}}, %c32
// CHECK: loom.cuda.launch_shared = 204288 : index
// CHECK-NOT: wgmma
// CHECK: nvvm.mma.sync
// CHECK-NOT: wgmma
func.func @wider(%ql: memref<1x1x16x512xbf16>, %qp: memref<1x1x16x256xbf16>,
                 %kv: memref<1x256x512xbf16>, %pe: memref<1x256x256xbf16>,
                 %pos: i64, %o: memref<1x1x16x512xbf16>) {
  fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%o) {scale = 0.1 : f64}
      : memref<1x1x16x512xbf16>, memref<1x1x16x256xbf16>, memref<1x256x512xbf16>,
        memref<1x256x256xbf16>, memref<1x1x16x512xbf16>
  return
}
