// RUN: loom-opt --loom-cuda-mla-decode="wgmma=true wgmma-keys=32" %s | FileCheck %s
// RUN: not loom-opt --loom-cuda-mla-decode="wgmma=true wgmma-keys=48" %s 2>&1 | FileCheck %s --check-prefix=BAD

// With tiles of 32 positions, three of them in shared memory: the query
// rows (64 x 80 columns, 10240 bytes), three tiles ((3 x 32) x 80, from
// 10240), P (64 x 32, from 25600) and the row maxima: 30208 bytes. The
// first two tiles go ahead in two commit groups; each step waits for all
// but the newest group (its tile has landed, the next may be in flight)
// and issues the tile two on into the buffer of the one before. Each
// warpgroup scores 16 keys (m64n16k16), and P v takes two steps of 16.
// CHECK-LABEL: func.func @decode
// CHECK: arith.ceildivsi %{{.*}}, %c32
// CHECK: loom.cuda.launch_shared = 30208 : index
// CHECK: gpu.func @partial
// CHECK: %[[KS:.*]] = memref.view %{{.*}}[%c10240][] : {{.*}} to memref<3x4x10x64xbf16, #gpu.address_space<workgroup>>
// CHECK: memref.view %{{.*}}[%c25600][] : {{.*}} to memref<8x4x64xbf16, #gpu.address_space<workgroup>>
// CHECK: nvvm.cp.async.commit.group
// CHECK: nvgpu.device_async_copy %{{.*}}, %[[KS]][%c1{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}], 8
// CHECK: nvvm.cp.async.commit.group
// CHECK: scf.for %[[I:[^ ]*]] =
// CHECK: arith.remsi %[[I]], %c3
// CHECK: nvvm.cp.async.wait.group 1
// CHECK-NEXT: llvm.inline_asm has_side_effects "fence.proxy.async.shared::cta;"
// CHECK-NEXT: gpu.barrier
// CHECK: %[[NEXT:.*]] = arith.addi %[[I]], %c2
// CHECK: arith.cmpi slt, %[[NEXT]]
// CHECK: arith.remsi %[[NEXT]], %c3
// CHECK: nvvm.cp.async.commit.group
// CHECK-COUNT-5: wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16
// CHECK-COUNT-2: wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 0, 1;
// CHECK-NOT: wgmma.mma_async
// CHECK: scf.yield
// CHECK: nvvm.cp.async.wait.group 0
// BAD: loom-cuda-mla-decode: wgmma-keys must be 32 or 64, got 48
func.func @decode(%ql: memref<?x?x16x64xbf16>, %qp: memref<?x?x16x16xbf16>,
                  %kv: memref<4x256x64xbf16>, %pe: memref<4x256x16xbf16>,
                  %pos: i64, %o: memref<?x?x16x64xbf16>) attributes {llvm.emit_c_interface} {
  fuse.mla_decode %ql, %qp, %kv, %pe, %pos outs(%o) {scale = 0.1 : f64}
      : memref<?x?x16x64xbf16>, memref<?x?x16x16xbf16>, memref<4x256x64xbf16>,
        memref<4x256x16xbf16>, memref<?x?x16x64xbf16>
  return
}
