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
// CHECK: %[[S:.*]] = memref.dim %[[Q]], %c2
// CHECK: %[[X:.*]] = arith.ceildivsi %[[S]], %c64
// CHECK: %[[Y:.*]] = arith.muli
// CHECK: call @loom_attention_0_kernel_launch(%[[X]], %[[Y]], %{{.*}}, %[[Q]], %[[K]], %[[V]], %[[O]], %[[L]])
// CHECK-NEXT: return
// CHECK: func.func private @loom_attention_0_kernel_launch(index, index, index, {{.*}}) attributes {loom.cuda.launch = @loom_attention_0::@kernel, loom.cuda.launch_threads = 128 : index}
// LAUNCH-LABEL: func.func @causal
// LAUNCH: %[[S:.*]] = memref.dim %{{.*}}, %c2
// LAUNCH: %[[X:.*]] = arith.ceildivsi %[[S]], %c64
// LAUNCH: %[[GX:.*]] = arith.maxsi %[[X]], %[[ONE:.*]] :
// LAUNCH: %[[GY:.*]] = arith.maxsi %{{.*}}, %[[ONE]] :
// LAUNCH: %[[GZ:.*]] = arith.maxsi %{{.*}}, %[[ONE]] :
// LAUNCH: %[[T0:.*]] = gpu.wait async
// LAUNCH: %[[T1:.*]] = gpu.launch_func async [%[[T0]]] @loom_attention_0::@kernel blocks in (%[[GX]], %[[GY]], %[[GZ]]) threads in (%c128, %[[ONE]], %[[ONE]])
// LAUNCH: gpu.wait [%[[T1]]]
// LAUNCH-NOT: loom_attention_0_kernel_launch
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
// CHECK: gpu.func @kernel({{.*}}) workgroup(%{{.*}} : memref<64x24xf16, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %{{.*}} : memref<64x72xf16, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
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

// A score region (here a soft cap and a bias read from a capture at
// [h, i, j]) is evaluated on each of a thread's 32 scaled scores of a
// tile, in the model's type: the f32 accumulator is rounded to bf16, the
// region's ops run, and the result is extended back before the base-2
// softmax (times log2(e)). Without a mask every tile is visited.
// CHECK-LABEL: func.func @score
// CHECK: call @loom_attention_0_kernel_launch(
// CHECK: gpu.func @kernel(
// CHECK-NOT: mask_block
// CHECK: nvvm.mma.sync
// CHECK: %[[SCALED:.*]] = arith.mulf %{{.*}}, %[[SCALE:.*]] : f32
// CHECK: %[[R:.*]] = arith.truncf %[[SCALED]] : f32 to bf16
// CHECK: %[[D:.*]] = arith.divf %[[R]], %{{.*}} : bf16
// CHECK: math.tanh %[[D]] : bf16
// CHECK: memref.load %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] : memref<?x?x?xbf16>
// CHECK: %[[Y:.*]] = arith.addf %{{.*}}, %{{.*}} : bf16
// CHECK: %[[E:.*]] = arith.extf %[[Y]] : bf16 to f32
// CHECK: arith.mulf %[[E]], %[[LOG2E:.*]] : f32
// CHECK-COUNT-31: math.tanh
// CHECK-NOT: math.tanh
// CHECK: gpu.return
func.func @score(%q: memref<?x?x?x32xbf16>, %o: memref<?x?x?x32xbf16>,
                 %l: memref<?x?x?xbf16>, %bias: memref<?x?x?xbf16>) {
  fuse.attention ins(%q, %q, %q : memref<?x?x?x32xbf16>, memref<?x?x?x32xbf16>, memref<?x?x?x32xbf16>)
      captures(%bias : memref<?x?x?xbf16>)
      outs(%o, %l : memref<?x?x?x32xbf16>, memref<?x?x?xbf16>) {scale = 0.125 : f64}
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %s: bf16, %bt: memref<?x?x?xbf16>):
      %cap = arith.constant 2.000000e+01 : bf16
      %d = arith.divf %s, %cap : bf16
      %t = math.tanh %d : bf16
      %c = arith.mulf %t, %cap : bf16
      %x = memref.load %bt[%h, %i, %j] : memref<?x?x?xbf16>
      %y = arith.addf %c, %x : bf16
      fuse.yield %y : bf16
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
