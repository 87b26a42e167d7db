// RUN: loom-opt --loom-cuda-attention=wgmma=true %s | FileCheck %s

// With wgmma, K goes to shared memory as the 8 x 8 core matrices of a
// wgmma descriptor ([key / 8][dim / 8][8 (key % 8) + dim % 8], 16-byte
// aligned), the copies of K are made visible to the asynchronous proxy
// before the barrier, and q k^T is one wgmma.mma_async m64n64k16 per 16
// head dims: the q fragments from registers, the descriptor of K's core
// matrices at 256 bytes per step (bits 0-13: address / 16), 128 bytes
// between core matrices along the head dim (leading offset 8 << 16) and
// d / 8 * 128 = 512 bytes along the keys (stride offset 32 << 32; with
// the leading one, 137439477760). The
// first overwrites the accumulators, the others add to them; then commit
// and wait. P v stays mma.sync.
// CHECK-LABEL: gpu.func @kernel
// CHECK-SAME: workgroup(%[[KS:.*]] : memref<8x4x64xbf16, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %{{.*}} : memref<64x40xbf16, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}
// CHECK: nvgpu.device_async_copy {{.*}}, %[[KS]][%{{.*}}, %{{.*}}, %{{.*}}], 8
// CHECK: nvvm.cp.async.wait.group 1
// CHECK-NEXT: llvm.inline_asm has_side_effects "fence.proxy.async.shared::cta;"
// CHECK-NEXT: gpu.barrier
// CHECK: %[[BASE:.*]] = memref.extract_aligned_pointer_as_index %[[KS]]
// CHECK: %[[ADDR:.*]] = arith.index_cast %[[BASE]] : index to i64
// CHECK: llvm.inline_asm has_side_effects "wgmma.fence.sync.aligned;"
// CHECK: %[[A0:.*]] = arith.addi %[[ADDR]], %c0_i64
// CHECK: %[[S0:.*]] = arith.shrui %[[A0]], %c4_i64
// CHECK: %[[M0:.*]] = arith.andi %[[S0]], %c16383_i64
// CHECK: %[[D0:.*]] = arith.ori %[[M0]], %c137439477760_i64
// CHECK: llvm.inline_asm has_side_effects "{\0A.reg .pred p;\0Asetp.ne.b32 p, 0, 0;\0Awgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {$0, {{.*}}, $31}, {$32, $33, $34, $35}, $36, p, 1, 1, 0;\0A}", "=f,{{.*}},=f,r,r,r,r,l" %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[D0]]
// CHECK: arith.addi %[[ADDR]], %c256_i64
// CHECK: llvm.inline_asm has_side_effects "{\0A.reg .pred p;\0Asetp.ne.b32 p, 1, 0;\0Awgmma.mma_async{{.*}}", "=f,{{.*}},=f,r,r,r,r,l,0,1,{{.*}},31"
// CHECK: llvm.inline_asm has_side_effects "wgmma.commit_group.sync.aligned;"
// The wait passes the accumulators through (tied operands): nothing reads
// them before it.
// CHECK-NEXT: %[[W:.*]] = llvm.inline_asm has_side_effects "wgmma.wait_group.sync.aligned 0;", "=f,{{.*}},=f,0,1,{{.*}},31"
// CHECK: llvm.extractvalue %[[W]][0]
// CHECK-NOT: wgmma.mma_async
// CHECK: nvvm.mma.sync
func.func @causal(%q: memref<?x?x?x32xbf16>, %k: memref<?x?x?x32xbf16>,
                  %v: memref<?x?x?x32xbf16>, %o: memref<?x?x?x32xbf16>,
                  %l: memref<?x?x?xbf16>) attributes {llvm.emit_c_interface} {
  fuse.attention ins(%q, %k, %v : memref<?x?x?x32xbf16>, memref<?x?x?x32xbf16>, memref<?x?x?x32xbf16>)
      outs(%o, %l : memref<?x?x?x32xbf16>, memref<?x?x?xbf16>) {scale = 0.125 : f64}
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c = arith.cmpi ule, %j, %i : index
      fuse.yield %c : i1
    }
  return
}
