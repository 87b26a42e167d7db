// RUN: loom-opt --loom-cuda-mla-decode="wgmma=true p-registers=true" %s | FileCheck %s --check-prefix=PREG
// RUN: loom-opt --loom-cuda-mla-decode="wgmma=true wgmma-keys=32 stages=4" %s | FileCheck %s --check-prefix=STAGES
// RUN: loom-opt --loom-cuda-mla-decode="wgmma=true p-split=true" %s | FileCheck %s --check-prefix=SPLIT
// RUN: loom-opt --loom-cuda-mla-decode="wgmma=true p-split=true tma=true" %s | FileCheck %s --check-prefix=SPLIT-TMA
// RUN: loom-opt --loom-cuda-mla-decode="wgmma=true p-split=true tma=true overlap=true" %s | FileCheck %s --check-prefix=OVERLAP
// RUN: loom-opt --loom-cuda-mla-decode="wgmma=true tma=true" %s | FileCheck %s --check-prefix=TMA
// RUN: loom-opt --loom-cuda-mla-decode="wgmma=true tma=true swizzle=true" %s | FileCheck %s --check-prefix=TMA
// RUN: loom-opt --loom-cuda-mla-decode="target-blocks=100" %s | FileCheck %s --check-prefix=BLOCKS
// RUN: not loom-opt --loom-cuda-mla-decode="wgmma=true stages=5" %s 2>&1 | FileCheck %s --check-prefix=BAD-STAGES
// RUN: not loom-opt --loom-cuda-mla-decode="target-blocks=0" %s 2>&1 | FileCheck %s --check-prefix=BAD-BLOCKS
// RUN: not loom-opt --loom-cuda-mla-decode="wgmma=true p-registers=true p-split=true" %s 2>&1 | FileCheck %s --check-prefix=BAD-P
// RUN: not loom-opt --loom-cuda-mla-decode="wgmma=true p-split=true overlap=true" %s 2>&1 | FileCheck %s --check-prefix=BAD-OVERLAP

// P in registers (rank 64, rope 16, tiles of 64 positions): shared memory
// holds the query rows (64 x 80 columns, 10240 bytes) and two tiles
// ((2 x 64) x 80, from 10240), nothing else: 30720 bytes. Each tile waits
// for its copies, fences them for wgmma and meets at one barrier; each
// warpgroup scores all 64 keys (5 of m64n64k16, both operands from shared
// memory) and adds P times its 32 latent columns with m64n32k16 whose A is
// four registers (4 steps of 16 keys), without storing P.
// PREG-LABEL: func.func @decode
// PREG: loom.cuda.launch_shared = 30720 : index
// PREG: gpu.func @partial
// PREG: memref.view %{{.*}}[%c0][] : {{.*}} to memref<8x10x64xbf16, #gpu.address_space<workgroup>>
// PREG-NEXT: arith.constant
// PREG-NEXT: memref.view %{{.*}}[%c10240][] : {{.*}} to memref<2x8x10x64xbf16, #gpu.address_space<workgroup>>
// PREG-NOT: memref.view
// PREG: scf.for
// PREG: nvvm.cp.async.wait.group 0
// PREG-NEXT: llvm.inline_asm has_side_effects "fence.proxy.async.shared::cta;"
// PREG-NEXT: gpu.barrier
// PREG-NOT: gpu.barrier
// PREG-COUNT-5: wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {{.*}}, $32, $33, p, 1, 1, 0, 0;
// PREG-NOT: gpu.barrier
// PREG-NOT: vector.store
// PREG-COUNT-4: wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {{.*}}, {$16, $17, $18, $19}, $20, p, 1, 1, 1;
// PREG-NOT: wgmma.mma_async
// PREG: scf.yield
// PREG: nvvm.cp.async.wait.group 0
// PREG-NEXT: gpu.barrier

// The warpgroups' roles split (p-split): shared memory as the default's
// (rows, two tiles, P and the exchange rows: 39424 bytes), P's buffer also
// viewed as [4 chunks][128 threads][4] registers. Each tile meets at one
// block barrier, then the second warpgroup (warp / 4 == 1) alone copies
// the next tile, its thread index read again there. The first scores all
// 64 keys (5 of m64n64k16 from shared memory), writes its 16 P registers
// (4 stores of 16 bytes) and, from one thread of a row, the rows'
// rescaling factors, arrives at named barrier 1 without waiting and adds P
// times its 32 columns (4 of m64n32k16, A in registers). The second waits
// at barrier 1, reads the factors and P back and does the same with its
// columns. After the tiles, the first's row sums reach the second through
// the exchange rows' second row.
// SPLIT-LABEL: func.func @decode
// SPLIT: loom.cuda.launch_shared = 39424 : index
// SPLIT: gpu.func @partial
// SPLIT: %[[PS:.*]] = memref.view %{{.*}}[%c30720][] : {{.*}} to memref<8x8x64xbf16, #gpu.address_space<workgroup>>
// SPLIT: %[[PF:.*]] = memref.view %{{.*}}[%c30720{{.*}}][] : {{.*}} to memref<4x128x4xi32, #gpu.address_space<workgroup>>
// SPLIT: %[[EX:.*]] = memref.view %{{.*}}[%c38912][] : {{.*}} to memref<2x64xf32, #gpu.address_space<workgroup>>
// SPLIT: %[[WARP:.*]] = arith.index_cast %{{.*}} : i32 to index
// SPLIT: %[[HALF:.*]] = arith.divsi %[[WARP]], %c4{{.*}} : index
// SPLIT: scf.for
// SPLIT: nvvm.cp.async.wait.group 0
// SPLIT-NEXT: llvm.inline_asm has_side_effects "fence.proxy.async.shared::cta;"
// SPLIT-NEXT: gpu.barrier
// SPLIT: %[[SECOND:.*]] = arith.cmpi eq, %[[HALF]], %c1
// SPLIT: %[[ISSUE:.*]] = arith.andi %{{.*}}, %[[SECOND]] : i1
// SPLIT: scf.if %[[ISSUE]] {
// SPLIT: llvm.inline_asm has_side_effects "mov.u32 $0, %tid.x;", "=r"  : () -> i32
// SPLIT: nvgpu.device_async_copy
// SPLIT: nvvm.cp.async.commit.group
// SPLIT-NOT: gpu.barrier
// SPLIT: %[[FIRST:.*]] = arith.cmpi eq, %[[HALF]], %c0
// SPLIT: scf.if %[[FIRST]] -> (f32,
// SPLIT-COUNT-5: wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {{.*}}, $32, $33, p, 1, 1, 0, 0;
// SPLIT-NOT: gpu.barrier
// SPLIT-COUNT-4: vector.store %{{.*}}, %[[PF]][%{{.*}}, %{{.*}}, %{{.*}}] {alignment = 16 : i64} : memref<4x128x4xi32, #gpu.address_space<workgroup>>, vector<4xi32>
// SPLIT: memref.store %{{.*}}, %[[EX]][%c0{{.*}}, %{{.*}}]
// SPLIT: memref.store %{{.*}}, %[[EX]][%c0{{.*}}, %{{.*}}]
// SPLIT: llvm.inline_asm has_side_effects "bar.arrive 1, 256;"
// SPLIT-COUNT-4: wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {{.*}}, {$16, $17, $18, $19}, $20, p, 1, 1, 1;
// SPLIT: "wgmma.wait_group.sync.aligned 0;"
// SPLIT: } else {
// SPLIT-NEXT: llvm.inline_asm has_side_effects "bar.sync 1, 256;"
// SPLIT: memref.load %[[EX]][%c0{{.*}}, %{{.*}}]
// SPLIT: memref.load %[[EX]][%c0{{.*}}, %{{.*}}]
// SPLIT-COUNT-4: vector.load %[[PF]][%{{.*}}, %{{.*}}, %{{.*}}] {alignment = 16 : i64} : memref<4x128x4xi32, #gpu.address_space<workgroup>>, vector<4xi32>
// SPLIT-NOT: m64n64k16
// SPLIT-COUNT-4: wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {{.*}}, {$16, $17, $18, $19}, $20, p, 1, 1, 1;
// SPLIT: "wgmma.wait_group.sync.aligned 0;"
// SPLIT: scf.yield
// SPLIT: scf.yield
// SPLIT: nvvm.cp.async.wait.group 0
// SPLIT-NEXT: gpu.barrier
// SPLIT: memref.store %{{.*}}, %[[EX]][%c1{{.*}}, %{{.*}}]
// SPLIT: memref.store %{{.*}}, %[[EX]][%c1{{.*}}, %{{.*}}]
// SPLIT: gpu.barrier
// SPLIT: memref.load %[[EX]][%c1{{.*}}, %{{.*}}]
// SPLIT: memref.load %[[EX]][%c1{{.*}}, %{{.*}}]
// SPLIT: gpu.func @combine
// With TMA, the tiles' bulk copies are issued by warp 4, the first of the
// second warpgroup, which also acquires the tensor maps.
// SPLIT-TMA-LABEL: gpu.func @partial
// SPLIT-TMA: %[[WARP:.*]] = arith.index_cast %{{.*}} : i32 to index
// SPLIT-TMA: %[[ACQUIRE:.*]] = arith.cmpi eq, %[[WARP]], %c4{{.*}} : index
// SPLIT-TMA: arith.andi %[[ACQUIRE]], %{{.*}} : i1
// SPLIT-TMA: "fence.proxy.tensormap::generic.acquire.sys [$0], 128;"
// SPLIT-TMA: %[[LOADER:.*]] = arith.cmpi eq, %[[WARP]], %c4{{.*}} : index
// SPLIT-TMA-NEXT: scf.if %[[LOADER]] {
// SPLIT-TMA: "mbarrier.arrive.expect_tx.shared::cta.b64 _, [$0], $1;"
// SPLIT-TMA: cp.async.bulk.tensor.3d
// SPLIT-TMA: scf.for
// SPLIT-TMA: mbarrier.try_wait.parity
// SPLIT-TMA: "bar.arrive 1, 256;"
// SPLIT-TMA: "bar.sync 1, 256;"
// SPLIT-TMA: gpu.func @combine

// With overlap (p-split and tma), the shared memory ends with the stages'
// "full" then "empty" mbarriers (39424 + 2 * 16 bytes); the empty ones
// take the 256 threads' arrivals. The prologue issues both stages; the
// rows are published before the loop, which has no block barrier: every
// thread waits for the tile; the first warpgroup zeroes the tail, fences
// and meets itself (named barrier 2, 128 threads), scores, waits after
// the first tile for the second to have read the previous P (barrier 3),
// hands P over (barrier 1) and, after its P v, arrives at the stage's
// empty mbarrier. The second waits for P, reads it, signals barrier 3
// but for the last tile, multiplies, arrives at the empty mbarrier, and
// its warp 4 waits for the stage to be empty before issuing tile i + 2
// into it.
// OVERLAP-LABEL: func.func @decode
// OVERLAP: loom.cuda.launch_shared = 39456 : index
// OVERLAP: gpu.func @partial
// OVERLAP-COUNT-2: "mbarrier.init.shared::cta.b64 [$0], 1;"
// OVERLAP-COUNT-2: "mbarrier.init.shared::cta.b64 [$0], 256;"
// OVERLAP-NEXT: "fence.mbarrier_init.release.cluster;"
// OVERLAP-COUNT-2: cp.async.bulk.tensor.3d
// OVERLAP: nvvm.cp.async.wait.group 0
// OVERLAP-NEXT: "fence.proxy.async.shared::cta;"
// OVERLAP-NEXT: gpu.barrier
// OVERLAP: scf.for
// OVERLAP-NOT: gpu.barrier
// OVERLAP: mbarrier.try_wait.parity
// OVERLAP-NOT: gpu.barrier
// OVERLAP: "fence.proxy.async.shared::cta;"
// OVERLAP-NEXT: "bar.sync 2, 128;"
// OVERLAP-NOT: gpu.barrier
// OVERLAP: wgmma.mma_async.sync.aligned.m64n64k16
// OVERLAP-NOT: gpu.barrier
// OVERLAP: "bar.sync 3, 256;"
// OVERLAP-NOT: gpu.barrier
// OVERLAP: "bar.arrive 1, 256;"
// OVERLAP: "wgmma.wait_group.sync.aligned 0;"
// OVERLAP-NEXT: llvm.extractvalue
// OVERLAP: "mbarrier.arrive.shared::cta.b64 _, [$0];"
// OVERLAP: } else {
// OVERLAP-NEXT: "bar.sync 1, 256;"
// OVERLAP-NOT: gpu.barrier
// OVERLAP: "bar.arrive 3, 256;"
// OVERLAP-NOT: gpu.barrier
// OVERLAP: "wgmma.wait_group.sync.aligned 0;"
// OVERLAP: "mbarrier.arrive.shared::cta.b64 _, [$0];"
// OVERLAP: mbarrier.try_wait.parity
// OVERLAP: "mbarrier.arrive.expect_tx.shared::cta.b64 _, [$0], $1;"
// OVERLAP: cp.async.bulk.tensor.3d
// OVERLAP-NOT: gpu.barrier
// OVERLAP: scf.yield
// OVERLAP: nvvm.cp.async.wait.group 0
// OVERLAP-NEXT: gpu.barrier
// OVERLAP: gpu.func @combine

// With tma, the host gets a tensor map of each cache from the runtime
// (boxes of 8 columns by 64 positions) and passes both to the partial kernel,
// whose shared memory ends with the two stages' mbarriers: 10240 (rows) +
// 20480 (tiles) + 8192 (P) + 512 (maxima) + 16 = 39440 bytes. Thread 0
// makes the mbarriers; warp 0 issues a tile's 10 boxes (8 of the latent
// cache, 2 of the rope key: one round of its lanes) after lane 0 has set
// the bytes to expect; each step waits for its stage's phase, and the
// rows are the only cp.async copies. With swizzle, a rope dim of 16
// keeps these boxes of 8 columns, unswizzled (swizzled boxes take 64).
// TMA: func.func private @loom_rt_cuda_tensor_map_bf16(memref<?x?x?xbf16, strided<[?, ?, ?], offset: ?>>, i64, i64, i64) -> i64 attributes {llvm.emit_c_interface}
// TMA-LABEL: func.func @decode
// TMA: %[[KVC:.*]] = memref.cast %arg2 : memref<4x256x64xbf16> to memref<?x?x?xbf16, strided<[?, ?, ?], offset: ?>>
// TMA: %[[KVMAP:.*]] = call @loom_rt_cuda_tensor_map_bf16(%[[KVC]], %c8_i64, %c64_i64, %c0_i64)
// TMA: %[[PEC:.*]] = memref.cast %arg3 : memref<4x256x16xbf16> to memref<?x?x?xbf16, strided<[?, ?, ?], offset: ?>>
// TMA: %[[PEMAP:.*]] = call @loom_rt_cuda_tensor_map_bf16(%[[PEC]],
// TMA: call @loom_mla_decode_0_partial_launch({{.*}}, %[[KVMAP]], %[[PEMAP]], %{{.*}})
// TMA: loom.cuda.launch_shared = 39440 : index
// TMA: gpu.func @partial
// TMA: nvvm.cp.async.commit.group
// TMA-NOT: nvgpu.device_async_copy
// TMA-COUNT-2: "mbarrier.init.shared::cta.b64 [$0], 1;"
// TMA-NEXT: "fence.mbarrier_init.release.cluster;"
// TMA: gpu.barrier
// TMA: "trap;"
// TMA-COUNT-2: "fence.proxy.tensormap::generic.acquire.sys [$0], 128;"
// TMA: "mbarrier.arrive.expect_tx.shared::cta.b64 _, [$0], $1;"
// TMA: "bar.warp.sync -1;"
// TMA: cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes
// TMA-NOT: cp.async.bulk.tensor
// TMA: nvvm.cp.async.wait.group 0
// TMA: scf.for
// TMA: mbarrier.try_wait.parity.shared::cta.b64
// TMA: "fence.proxy.async.shared::cta;"
// TMA-NEXT: gpu.barrier
// TMA: "mbarrier.arrive.expect_tx.shared::cta.b64 _, [$0], $1;"
// TMA: cp.async.bulk.tensor.3d
// TMA-NOT: nvgpu.device_async_copy
// TMA-NOT: nvvm.cp.async.commit.group
// TMA: scf.yield

// Four tiles of 32 positions: rows, four tiles ((4 x 32) x 80), P (64 x
// 32) and the row maxima, 35328 bytes; each step waits for all but the two
// newest commit groups and issues the tile three on.
// STAGES: loom.cuda.launch_shared = 35328 : index
// STAGES: memref.view %{{.*}}[%c10240][] : {{.*}} to memref<4x4x10x64xbf16, #gpu.address_space<workgroup>>
// STAGES: scf.for %[[I:[^ ]*]] =
// STAGES: nvvm.cp.async.wait.group 2
// STAGES: %[[NEXT:.*]] = arith.addi %[[I]], %c3
// STAGES: arith.remsi %[[NEXT]], %c4

// The splits aim for target-blocks blocks: ceil(100 / (row blocks x batch)).
// BLOCKS: %[[T:.*]] = arith.constant 100 : index
// BLOCKS: arith.ceildivsi %[[T]], %{{.*}} : index

// BAD-STAGES: loom-cuda-mla-decode: stages must be 0 (the default), 2, 3 or 4, got 5
// BAD-BLOCKS: loom-cuda-mla-decode: target-blocks must be positive
// BAD-P: loom-cuda-mla-decode: p-registers and p-split are two places for P; set one
// BAD-OVERLAP: loom-cuda-mla-decode: overlap needs p-split and tma
func.func @decode(%ql: memref<?x?x16x64xbf16>, %qp: memref<?x?x16x16xbf16>,
                  %kv: memref<4x256x64xbf16>, %pe: memref<4x256x16xbf16>,
                  %pos: i64, %o: memref<?x?x16x64xbf16>) attributes {llvm.emit_c_interface} {
  fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%o) {scale = 0.1 : f64}
      : memref<?x?x16x64xbf16>, memref<?x?x16x16xbf16>, memref<4x256x64xbf16>,
        memref<4x256x16xbf16>, memref<?x?x16x64xbf16>
  return
}
