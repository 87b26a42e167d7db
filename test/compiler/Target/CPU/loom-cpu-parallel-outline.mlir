// RUN: loom-opt %s --split-input-file --loom-cpu-parallel-outline | FileCheck %s

// A dynamic 2-D loop: split along its first dimension; constants are cloned
// into the body so the inner bounds stay static.
// CHECK-LABEL: func.func @scale(
// CHECK-SAME: %[[A:.*]]: memref<?x64xf32>, %[[N:.*]]: index)
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[C1:.*]] = arith.constant 1 : index
// CHECK: %[[SPAN:.*]] = arith.subi %[[N]], %[[C0]]
// CHECK: %[[TRIPS:.*]] = arith.ceildivsi %[[SPAN]], %[[C1]]
// CHECK: %[[POS:.*]] = arith.maxsi %[[TRIPS]], %{{.*}}
// CHECK: call @__loom_parallel_launch_0(%[[POS]], %[[A]], %[[N]]) : (index, memref<?x64xf32>, index) -> ()
// CHECK-NOT: scf.parallel
// CHECK: return
// CHECK-LABEL: func.func private @__loom_parallel_body_0(
// CHECK-SAME: %[[B:.*]]: index, %[[E:.*]]: index, %[[BA:.*]]: memref<?x64xf32>, %{{.*}}: index)
// CHECK-DAG: arith.constant 64 : index
// CHECK: scf.for %[[K:.*]] = %[[B]] to %[[E]]
// CHECK: scf.parallel (%[[J:.*]]) = (%{{.*}}) to (%{{.*}}) step
// CHECK: memref.load %[[BA]][%{{.*}}, %[[J]]]
// CHECK-LABEL: func.func private @__loom_parallel_launch_0(index, memref<?x64xf32>, index)
func.func @scale(%a: memref<?x64xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %two = arith.constant 2.0 : f32
  scf.parallel (%i, %j) = (%c0, %c0) to (%n, %c64) step (%c1, %c1) {
    %v = memref.load %a[%i, %j] : memref<?x64xf32>
    %w = arith.mulf %v, %two : f32
    memref.store %w, %a[%i, %j] : memref<?x64xf32>
  }
  return
}

// -----

// Too little static work: the loop stays serial.
// CHECK-LABEL: func.func @small
// CHECK: scf.parallel
// CHECK-NOT: __loom_parallel
func.func @small(%a: memref<4x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  scf.parallel (%i, %j) = (%c0, %c0) to (%c4, %c8) step (%c1, %c1) {
    %v = memref.load %a[%i, %j] : memref<4x8xf32>
    memref.store %v, %a[%i, %j] : memref<4x8xf32>
  }
  return
}

// -----

// Only the outermost loop is outlined; loops with reductions are left alone.
// CHECK-LABEL: func.func @reduction
// CHECK: scf.parallel {{.*}} -> f32
// CHECK-NOT: call @__loom_parallel
func.func @reduction(%a: memref<?xf32>, %n: index) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %r = scf.parallel (%i) = (%c0) to (%n) step (%c1) init (%zero) -> f32 {
    %v = memref.load %a[%i] : memref<?xf32>
    scf.reduce(%v : f32) {
    ^bb0(%x: f32, %y: f32):
      %s = arith.addf %x, %y : f32
      scf.reduce.return %s : f32
    }
  }
  return %r : f32
}
