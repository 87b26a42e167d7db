// RUN: loom-opt --split-input-file --loom-cuda-map-to-gpu --verify-diagnostics %s | FileCheck %s
// RUN: not loom-opt --loom-cuda-map-to-gpu=block-size=2048 %s 2>&1 | FileCheck %s --check-prefix=BLOCK

// BLOCK: block-size must be in [1, 1024], got 2048

// A parallel loop becomes a launch over its flattened iteration space, with
// the last dimension fastest and a tail guard; an empty space still launches
// one block (CUDA refuses empty grids), whose threads all fail the guard.
// Temporaries become gpu.alloc / gpu.dealloc, and all GPU work is chained on
// one stream, waited for once before the return.
// CHECK-LABEL: func.func @elementwise
// CHECK-SAME: (%[[IN:.*]]: memref<?x64xf32>, %[[OUT:.*]]: memref<?x64xf32>)
// CHECK: %[[T0:.*]] = gpu.wait async
// CHECK: %[[TMP:.*]], %[[T1:.*]] = gpu.alloc async [%[[T0]]] (%{{.*}}) : memref<?x64xf32>
// CHECK: arith.muli
// CHECK: %[[TOTAL:.*]] = arith.muli
// CHECK: %[[CEIL:.*]] = arith.ceildivsi %[[TOTAL]], %[[C256:.*]] : index
// CHECK: %[[BLOCKS:.*]] = arith.maxsi %[[CEIL]], %{{.*}} : index
// CHECK-NOT: scf.if
// CHECK: %[[T2:.*]] = gpu.launch async [%[[T1]]] blocks(%[[BX:.*]], %{{.*}}, %{{.*}}) in (%{{.*}} = %[[BLOCKS]], %{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) threads(%[[TX:.*]], %{{.*}}, %{{.*}}) in (%{{.*}} = %[[C256]]
// CHECK: %[[ID:.*]] = arith.addi
// CHECK: arith.cmpi slt, %[[ID]], %[[TOTAL]]
// The indices: unsigned divisions, in 32 bits below 2^32 iterations.
// CHECK: %[[SMALL:.*]] = arith.cmpi ult, %[[TOTAL]], %c4294967296
// CHECK: scf.if %[[SMALL]] -> (index, index)
// CHECK: %[[ID32:.*]] = arith.index_castui %[[ID]] : index to i32
// CHECK: arith.remui %[[ID32]], %{{.*}} : i32
// CHECK: arith.divui %[[ID32]], %{{.*}} : i32
// CHECK: } else {
// CHECK: arith.remui %[[ID]], %{{.*}} : index
// CHECK: arith.divui %[[ID]], %{{.*}} : index
// CHECK: memref.load %[[IN]]
// CHECK: memref.store %{{.*}}, %[[TMP]]
// CHECK: gpu.terminator
// CHECK-NOT: gpu.wait
// CHECK: %[[T3:.*]] = gpu.launch async [%[[T2]]]
// CHECK: memref.store %{{.*}}, %[[OUT]]
// CHECK: %[[T4:.*]] = gpu.dealloc async [%[[T3]]] %[[TMP]] : memref<?x64xf32>
// CHECK-NEXT: gpu.wait [%[[T4]]]
// CHECK-NEXT: return
// CHECK-NOT: memref.alloc
func.func @elementwise(%in: memref<?x64xf32>, %out: memref<?x64xf32>) -> i32 attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %c0_i32 = arith.constant 0 : i32
  %n = memref.dim %in, %c0 : memref<?x64xf32>
  %tmp = memref.alloc(%n) : memref<?x64xf32>
  scf.parallel (%i, %j) = (%c0, %c0) to (%n, %c64) step (%c1, %c1) {
    %x = memref.load %in[%i, %j] : memref<?x64xf32>
    %y = math.exp %x : f32
    memref.store %y, %tmp[%i, %j] : memref<?x64xf32>
    scf.reduce
  }
  scf.parallel (%i, %j) = (%c0, %c0) to (%n, %c64) step (%c1, %c1) {
    %x = memref.load %tmp[%i, %j] : memref<?x64xf32>
    memref.store %x, %out[%i, %j] : memref<?x64xf32>
    scf.reduce
  }
  memref.dealloc %tmp : memref<?x64xf32>
  return %c0_i32 : i32
}

// -----

// A full reduction runs on one thread, and the 0-d arithmetic after it joins
// the same launch; the constant it uses stays on the host.
// CHECK-LABEL: func.func @full_reduction
// CHECK: %[[SCALE:.*]] = arith.constant 5.000000e-01 : f32
// CHECK: %[[ONE:.*]] = arith.constant 1 : index
// CHECK: gpu.launch async [%{{.*}}] blocks(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %[[ONE]], %{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) threads(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %[[ONE]]
// CHECK-NEXT: scf.for
// CHECK: }
// CHECK-NEXT: memref.load %{{.*}}[] : memref<f32>
// CHECK-NEXT: arith.mulf %{{.*}}, %[[SCALE]]
// CHECK-NEXT: memref.store
// CHECK-NEXT: gpu.terminator
// CHECK: gpu.wait [%{{.*}}]
// CHECK-NEXT: return
func.func @full_reduction(%in: memref<?xf32>, %out: memref<f32>) -> i32 attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c0_i32 = arith.constant 0 : i32
  %n = memref.dim %in, %c0 : memref<?xf32>
  scf.for %i = %c0 to %n step %c1 {
    %x = memref.load %in[%i] : memref<?xf32>
    %acc = memref.load %out[] : memref<f32>
    %s = arith.addf %acc, %x : f32
    memref.store %s, %out[] : memref<f32>
  }
  %total = memref.load %out[] : memref<f32>
  %half = arith.constant 0.5 : f32
  %scaled = arith.mulf %total, %half : f32
  memref.store %scaled, %out[] : memref<f32>
  return %c0_i32 : i32
}

// -----

// An integer scalar that decides a size is copied to the host first; the
// shape buffer of memref.reshape stays in host memory.
// The host waits for the copy (and only for it) before it reads.
// CHECK-LABEL: func.func @host_scalar
// CHECK: %[[HOST:.*]] = memref.alloca() : memref<i64>
// CHECK: %[[T0:.*]] = gpu.wait async
// CHECK: %[[T1:.*]] = gpu.memcpy async [%[[T0]]] %[[HOST]], %{{.*}} : memref<i64>, memref<i64>
// CHECK-NEXT: gpu.wait [%[[T1]]]
// CHECK-NEXT: memref.load %[[HOST]][] : memref<i64>
// CHECK: %[[SHAPE:.*]] = memref.alloc() : memref<1xindex>
// CHECK: memref.store %{{.*}}, %[[SHAPE]]
// CHECK: memref.reshape %{{.*}}(%[[SHAPE]])
// CHECK: memref.dealloc %[[SHAPE]] : memref<1xindex>
func.func @host_scalar(%pos: memref<i64>, %in: memref<?x4xf32>, %out: memref<?xf32>) -> i32 attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %c0_i32 = arith.constant 0 : i32
  %p = memref.load %pos[] : memref<i64>
  %len = arith.index_cast %p : i64 to index
  %shape = memref.alloc() : memref<1xindex>
  memref.store %len, %shape[%c0] : memref<1xindex>
  %flat = memref.reshape %in(%shape) : (memref<?x4xf32>, memref<1xindex>) -> memref<?xf32>
  memref.copy %flat, %out : memref<?xf32> to memref<?xf32>
  memref.dealloc %shape : memref<1xindex>
  return %c0_i32 : i32
}

// -----

// Functions without the C interface (the deallocation helper) are host code
// and stay as they are.
// CHECK-LABEL: func.func private @helper
// CHECK-NOT: gpu.launch
// CHECK: return
func.func private @helper(%flags: memref<?xi1>) {
  %c0 = arith.constant 0 : index
  %true = arith.constant true
  memref.store %true, %flags[%c0] : memref<?xi1>
  return
}

// -----

func.func @host_needs_float(%in: memref<f32>, %out: memref<?xf32>) -> i32 attributes {llvm.emit_c_interface} {
  %c0_i32 = arith.constant 0 : i32
  %x = memref.load %in[] : memref<f32>
  %n = arith.fptosi %x : f32 to i64
  %i = arith.index_cast %n : i64 to index
  // expected-error@+1 {{'memref.alloc' op needs on the host a value read from device memory; the CUDA target cannot run it}}
  %buf = memref.alloc(%i) : memref<?xf32>
  memref.dealloc %buf : memref<?xf32>
  return %c0_i32 : i32
}

// -----

// GPU work inside a host region: the chain before it is waited for, and the
// region's block gets a chain of its own, waited for before its terminator.
// CHECK-LABEL: func.func @nested
// CHECK: %[[A:.*]] = gpu.wait async
// CHECK: gpu.launch async [%[[A]]]
// CHECK: gpu.wait [%{{.*}}]
// CHECK-NEXT: scf.if
// CHECK: %[[B:.*]] = gpu.wait async
// CHECK-NEXT: %{{.*}}, %[[C:.*]] = gpu.alloc async [%[[B]]]
// CHECK: gpu.launch async [%[[C]]]
// CHECK: gpu.dealloc async
// CHECK-NEXT: gpu.wait [%{{.*}}]
// CHECK-NEXT: }
// CHECK-NEXT: return
func.func @nested(%cond: i1, %in: memref<?xf32>) -> i32 attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c0_i32 = arith.constant 0 : i32
  %zero = arith.constant 0.0 : f32
  %n = memref.dim %in, %c0 : memref<?xf32>
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %zero, %in[%i] : memref<?xf32>
    scf.reduce
  }
  scf.if %cond {
    %tmp = memref.alloc(%n) : memref<?xf32>
    scf.parallel (%i) = (%c0) to (%n) step (%c1) {
      %x = memref.load %in[%i] : memref<?xf32>
      memref.store %x, %tmp[%i] : memref<?xf32>
      scf.reduce
    }
    memref.dealloc %tmp : memref<?xf32>
  }
  return %c0_i32 : i32
}

// -----

// A launch declaration must say how its blocks are made, and its calls
// start with the grid.
// expected-error @below {{needs loom.cuda.launch_threads and a grid of three index operands}}
func.func private @k_launch(memref<?x?x?x16xbf16>) attributes {loom.cuda.launch = @k::@kernel}
func.func @unsized(%q: memref<?x?x?x16xbf16>) attributes {llvm.emit_c_interface} {
  call @k_launch(%q) : (memref<?x?x?x16xbf16>) -> ()
  return
}

// -----

// The runtime's matrix products (cuBLAS, on the legacy default stream, with
// which the runtime's blocking streams are ordered) join the chain: the
// kernels before and after them are enqueued without a wait. Another
// runtime function waits for the chain first.
// CHECK-LABEL: func.func @products
// CHECK: %[[T0:.*]] = gpu.wait async
// CHECK: %[[T1:.*]] = gpu.launch async [%{{.*}}]
// CHECK-NOT: gpu.wait
// CHECK: call @loom_rt_matmul_f32
// CHECK-NOT: gpu.wait
// CHECK: gpu.launch async [%[[T1]]]
// CHECK-NOT: gpu.wait
// CHECK: call @loom_rt_batch_matmul_f32
// CHECK-NEXT: gpu.wait [%{{.*}}]
// CHECK-NEXT: call @loom_rt_other
// CHECK-NEXT: return
func.func private @loom_rt_matmul_f32(memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, i64)
func.func private @loom_rt_batch_matmul_f32(memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, i64)
func.func private @loom_rt_other(memref<?x?xf32>)
func.func @products(%a: memref<?x?xf32>, %b: memref<?x?xf32>, %c: memref<?x?xf32>, %a3: memref<?x?x?xf32>) -> i32 attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c0_i32 = arith.constant 0 : i32
  %c0_i64 = arith.constant 0 : i64
  %zero = arith.constant 0.0 : f32
  %n = memref.dim %a, %c0 : memref<?x?xf32>
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %zero, %a[%i, %c0] : memref<?x?xf32>
    scf.reduce
  }
  call @loom_rt_matmul_f32(%a, %b, %c, %c0_i64) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, i64) -> ()
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    %x = memref.load %c[%i, %c0] : memref<?x?xf32>
    memref.store %x, %b[%i, %c0] : memref<?x?xf32>
    scf.reduce
  }
  call @loom_rt_batch_matmul_f32(%a3, %a3, %a3, %c0_i64) : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, i64) -> ()
  call @loom_rt_other(%c) : (memref<?x?xf32>) -> ()
  return %c0_i32 : i32
}

// -----

// An integer scalar argument that the entry only reads is copied to the
// host first, before any GPU work, so that the copy waits for nothing; all
// its reads take that value.
// CHECK-LABEL: func.func @hoisted_scalar
// CHECK-NEXT: %[[HOST:.*]] = memref.alloca() : memref<i64>
// CHECK-NEXT: %[[T0:.*]] = gpu.wait async
// CHECK-NEXT: %[[T1:.*]] = gpu.memcpy async [%[[T0]]] %[[HOST]], %arg0 : memref<i64>, memref<i64>
// CHECK-NEXT: gpu.wait [%[[T1]]]
// CHECK-NEXT: %[[P:.*]] = memref.load %[[HOST]][] : memref<i64>
// CHECK-NOT: gpu.wait [
// CHECK: gpu.launch async
// CHECK-NOT: gpu.wait [
// CHECK-NOT: memref.load %arg0
// CHECK: arith.index_cast %[[P]]
// CHECK-NOT: gpu.wait [
// CHECK: gpu.launch async
// CHECK-NOT: memref.load %arg0
// CHECK: return
func.func @hoisted_scalar(%pos: memref<i64>, %buf: memref<?xf32>) -> i32 attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c0_i32 = arith.constant 0 : i32
  %zero = arith.constant 0.0 : f32
  %n = memref.dim %buf, %c0 : memref<?xf32>
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %zero, %buf[%i] : memref<?xf32>
    scf.reduce
  }
  %p = memref.load %pos[] : memref<i64>
  %len = arith.index_cast %p : i64 to index
  %m = arith.minsi %len, %n : index
  scf.parallel (%i) = (%c0) to (%m) step (%c1) {
    %x = memref.load %buf[%i] : memref<?xf32>
    %y = arith.addf %x, %x : f32
    memref.store %y, %buf[%i] : memref<?xf32>
    scf.reduce
  }
  return %c0_i32 : i32
}

// -----

// One the entry also writes is read where it is, after the kernels before
// the read are done.
// CHECK-LABEL: func.func @written_scalar
// CHECK: gpu.launch async
// CHECK: %[[HOST:.*]] = memref.alloca() : memref<i64>
// CHECK: gpu.memcpy async [%{{.*}}] %[[HOST]], %arg0
// CHECK-NEXT: gpu.wait
// CHECK-NEXT: memref.load %[[HOST]][]
func.func @written_scalar(%pos: memref<i64>, %buf: memref<?xi64>) -> i32 attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c0_i32 = arith.constant 0 : i32
  %n = memref.dim %buf, %c0 : memref<?xi64>
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    %x = memref.load %buf[%i] : memref<?xi64>
    memref.store %x, %pos[] : memref<i64>
    scf.reduce
  }
  %p = memref.load %pos[] : memref<i64>
  %len = arith.index_cast %p : i64 to index
  scf.parallel (%i) = (%c0) to (%len) step (%c1) {
    memref.store %p, %buf[%i] : memref<?xi64>
    scf.reduce
  }
  return %c0_i32 : i32
}
