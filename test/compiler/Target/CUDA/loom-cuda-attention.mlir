// RUN: loom-opt --split-input-file --loom-cuda-attention --verify-diagnostics %s | FileCheck %s
// RUN: loom-opt --split-input-file --loom-cuda-attention --loom-cuda-map-to-gpu --verify-diagnostics %s | FileCheck %s --check-prefix=LAUNCH

// A bf16 fuse.attention with a causal mask becomes the call of a marked
// declaration and a kernel of its own GPU module: shared memory for K, V
// (64 keys, rows padded by 8) and the tile classes, the interval analysis
// of the mask as a device function, the or-reducing barrier that skips
// hidden tiles, cp.async copies, ldmatrix fragments (V's transposed) and
// tensor-core products with f32 accumulators.
// CHECK-LABEL: func.func @causal
// CHECK-SAME: (%[[Q:.*]]: memref<?x?x?x32xbf16>, %[[K:.*]]: memref<?x?x?x32xbf16>, %[[V:.*]]: memref<?x?x?x32xbf16>, %[[O:.*]]: memref<?x?x?x32xbf16>, %[[L:.*]]: memref<?x?x?xbf16>)
// CHECK-NEXT: call @loom_attention_0_launch(%[[Q]], %[[K]], %[[V]], %[[O]], %[[L]])
// CHECK-NEXT: return
// CHECK: func.func private @loom_attention_0_launch({{.*}}) attributes {loom.cuda.launch = @loom_attention_0::@kernel, loom.cuda.launch_rows = 64 : index, loom.cuda.launch_threads = 128 : index}
// CHECK: gpu.module @loom_attention_0
// CHECK: gpu.func @kernel({{.*}}) workgroup(%[[KS:.*]] : memref<64x40xbf16, #gpu.address_space<workgroup>>, %[[VS:.*]] : memref<64x40xbf16, #gpu.address_space<workgroup>>, %[[CLS:.*]] : memref<128xi32, #gpu.address_space<workgroup>>) kernel attributes {known_block_size = array<i32: 128, 1, 1>, nvvm.minctasm = 3 : i32}
// CHECK: func.call @mask_block(
// CHECK: memref.store %{{.*}}, %[[CLS]]
// CHECK: memref.load %[[CLS]]
// CHECK: arith.cmpi ule
// CHECK: nvvm.barrier #nvvm.reduction<or>
// CHECK: nvgpu.device_async_copy %{{.*}}, %[[KS]][%{{.*}}, %{{.*}}], 8, %{{.*}} {bypassL1}
// CHECK: nvvm.cp.async.commit.group
// CHECK: nvgpu.device_async_copy %{{.*}}, %[[VS]][%{{.*}}, %{{.*}}], 8, %{{.*}} {bypassL1}
// CHECK: nvvm.cp.async.wait.group 1
// CHECK: nvgpu.ldmatrix %[[KS]][%{{.*}}, %{{.*}}] {numTiles = 4 : i32, transpose = false}
// CHECK: nvvm.mma.sync {{.*}} multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK: llvm.inline_asm "ex2.approx.ftz.f32 $0, $1;"
// CHECK: nvgpu.ldmatrix %[[VS]][%{{.*}}, %{{.*}}] {numTiles = 4 : i32, transpose = true}
// CHECK: nvvm.cp.async.wait.group 0
// CHECK: llvm.inline_asm "lg2.approx.ftz.f32 $0, $1;"
// CHECK: func.func @mask_block(%{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index) -> i32

// loom-cuda-map-to-gpu launches it on the entry's stream: grid
// (ceil(S / 64), B * H), both at least 1, 128 threads.
// LAUNCH-LABEL: func.func @causal
// LAUNCH: %[[S:.*]] = memref.dim %{{.*}}, %c2
// LAUNCH: %[[X:.*]] = arith.ceildivsi %[[S]], %c64
// LAUNCH: %[[GX:.*]] = arith.maxsi %[[X]], %c1
// LAUNCH: %[[GY:.*]] = arith.maxsi %{{.*}}, %c1
// LAUNCH: %[[T0:.*]] = gpu.wait async
// LAUNCH: %[[T1:.*]] = gpu.launch_func async [%[[T0]]] @loom_attention_0::@kernel blocks in (%[[GX]], %[[GY]], %c1) threads in (%c128, %c1, %c1)
// LAUNCH: gpu.wait [%[[T1]]]
// LAUNCH-NOT: loom_attention_0_launch
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

// -----

// Without a mask there is no classification: every tile is visited.
// CHECK-LABEL: func.func @full
// CHECK: gpu.func @kernel({{.*}}) workgroup(%{{.*}} : memref<64x24xf16, #gpu.address_space<workgroup>>, %{{.*}} : memref<64x72xf16, #gpu.address_space<workgroup>>) kernel
// CHECK-NOT: mask_block
// CHECK: nvvm.mma.sync {{.*}}shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
func.func @full(%q: memref<2x4x?x16xf16>, %k: memref<2x2x?x16xf16>,
                %v: memref<2x2x?x64xf16>, %o: memref<2x4x?x64xf16>,
                %l: memref<2x4x?xf16>) attributes {llvm.emit_c_interface} {
  fuse.attention ins(%q, %k, %v : memref<2x4x?x16xf16>, memref<2x2x?x16xf16>, memref<2x2x?x64xf16>)
      outs(%o, %l : memref<2x4x?x64xf16>, memref<2x4x?xf16>) {scale = 0.25 : f64}
  return
}

// -----

func.func @f32(%q: memref<?x?x?x32xf32>, %o: memref<?x?x?x32xf32>,
               %l: memref<?x?x?xf32>) {
  // expected-error @below {{reads f32; the GPU attention kernel reads f16 or bf16 (compile with --attention=unfused, or give the model f16 or bf16 q, k, v)}}
  fuse.attention ins(%q, %q, %q : memref<?x?x?x32xf32>, memref<?x?x?x32xf32>, memref<?x?x?x32xf32>)
      outs(%o, %l : memref<?x?x?x32xf32>, memref<?x?x?xf32>) {scale = 0.125 : f64}
  return
}

// -----

func.func @score(%q: memref<?x?x?x32xbf16>, %o: memref<?x?x?x32xbf16>,
                 %l: memref<?x?x?xbf16>) {
  // expected-error @below {{has a score region, which the GPU attention kernel does not compile yet (compile with --attention=unfused)}}
  fuse.attention ins(%q, %q, %q : memref<?x?x?x32xbf16>, memref<?x?x?x32xbf16>, memref<?x?x?x32xbf16>)
      outs(%o, %l : memref<?x?x?x32xbf16>, memref<?x?x?xbf16>) {scale = 0.125 : f64}
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %s: bf16):
      fuse.yield %s : bf16
    }
  return
}

// -----

func.func @wide(%q: memref<?x?x?x256xbf16>, %o: memref<?x?x?x256xbf16>,
                %l: memref<?x?x?xbf16>) {
  // expected-error @below {{has head dims 256 and 256; the GPU attention kernel needs static multiples of 16 up to 128 (compile with --attention=unfused)}}
  fuse.attention ins(%q, %q, %q : memref<?x?x?x256xbf16>, memref<?x?x?x256xbf16>, memref<?x?x?x256xbf16>)
      outs(%o, %l : memref<?x?x?x256xbf16>, memref<?x?x?xbf16>) {scale = 0.0625 : f64}
  return
}
