// The attention mode of the fuse pipeline and of the driver.
// RUN: loom-opt %s --loom-fuse | FileCheck %s --check-prefix=FUSED
// RUN: loom-opt %s --loom-fuse="attention=unfused" | FileCheck %s --check-prefix=UNFUSED
// RUN: loom-compile %s --emit=fuse | FileCheck %s --check-prefix=FUSED
// RUN: loom-compile %s --attention=unfused --emit=fuse | FileCheck %s --check-prefix=UNFUSED
// RUN: loom-compile %s --attention=unfused --emit=linalg | FileCheck %s --check-prefix=LINALG
// RUN: loom-compile %s --attention=unfused -o %t.so && test -s %t.so
// RUN: loom-compile %S/Inputs/attention_composite.loom --emit=fuse | FileCheck %s --check-prefix=LOOM-FUSED
// RUN: loom-compile %S/Inputs/attention_composite.loom --attention=unfused --emit=fuse | FileCheck %s --check-prefix=LOOM-UNFUSED
// RUN: loom-compile %S/Inputs/attention_composite.loom --attention=unfused -o %t2.so && test -s %t2.so
// RUN: not loom-compile %s --attention=sideways --emit=fuse 2>&1 | FileCheck %s --check-prefix=BAD

// FUSED-LABEL: func.func @causal
// FUSED-NOT:   loom.attention
// FUSED:       fuse.attention
// FUSED:       fuse.yield

// UNFUSED-LABEL: func.func @causal
// UNFUSED-NOT:   fuse.attention
// UNFUSED:       loom.attention
// UNFUSED:       loom.yield

// LINALG-LABEL: func.func @causal
// LINALG-NOT:   = loom.
// LINALG-NOT:   fuse.attention
// LINALG:       linalg.batch_matmul
// LINALG:       math.exp
// LINALG:       linalg.batch_matmul

// LOOM-FUSED-LABEL: func.func @sdpa
// LOOM-FUSED-NOT:   loom.softmax
// LOOM-FUSED:       fuse.attention {{.*}} captures(%{{.*}} : tensor<?x?xf32>) {{.*}} {scale = 0.34999999403953552 : f64}
// LOOM-FUSED:       score {
// LOOM-FUSED:         arith.addf

// LOOM-UNFUSED-LABEL: func.func @sdpa
// LOOM-UNFUSED-NOT:   fuse.attention
// LOOM-UNFUSED:       loom.softmax

// BAD: Cannot find option named 'sideways'

func.func @causal(
    %q: tensor<?x2x?x8xf32> {loom.role = "input", loom.name = "q", loom.dims = ["B", 2, "S", 8]},
    %k: tensor<?x2x?x8xf32> {loom.role = "input", loom.name = "k", loom.dims = ["B", 2, "S", 8]},
    %v: tensor<?x2x?x8xf32> {loom.role = "input", loom.name = "v", loom.dims = ["B", 2, "S", 8]})
    -> (tensor<?x2x?x8xf32> {loom.role = "output", loom.name = "out", loom.dims = ["B", 2, "S", 8]},
        tensor<?x2x?xf32> {loom.role = "output", loom.name = "lse", loom.dims = ["B", 2, "S"]}) {
  %o, %l = loom.attention %q, %k, %v {scale = 0.35 : f64}
      : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
      -> tensor<?x2x?x8xf32>, tensor<?x2x?xf32>
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      loom.yield %m : i1
    }
  return %o, %l : tensor<?x2x?x8xf32>, tensor<?x2x?xf32>
}
