// RUN: loom-opt %s --split-input-file --loom-cpu-fuse-to-runtime --verify-diagnostics | FileCheck %s

// A causal fuse.attention becomes a call of its launch function; the mask
// region becomes mask_row (a loop over the keys of a row storing 0/1 bytes)
// and mask_block (the interval analysis). The mask reads neither b nor h:
// flags 0.
// CHECK-LABEL: func.func @causal(
// CHECK-SAME: %[[Q:[^:]*]]: memref<?x4x?x16xf32>, %[[K:[^:]*]]: memref<?x2x?x16xf32>, %[[O:[^:]*]]: memref<?x4x?x16xf32>, %[[L:[^:]*]]: memref<?x4x?xf32>
// CHECK-DAG: %[[CQ:.*]] = memref.cast %[[Q]] : memref<?x4x?x16xf32> to memref<?x?x?x?xf32, strided<[?, ?, ?, ?], offset: ?>>
// CHECK-DAG: %[[CK:.*]] = memref.cast %[[K]]
// CHECK-DAG: %[[CO:.*]] = memref.cast %[[O]]
// CHECK-DAG: %[[CL:.*]] = memref.cast %[[L]] : memref<?x4x?xf32> to memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
// CHECK-DAG: %[[SCALE:.*]] = arith.constant 2.500000e-01 : f32
// CHECK-DAG: %[[FLAGS:.*]] = arith.constant 0 : i32
// CHECK: call @__loom_attention_launch_0(%[[CQ]], %{{.*}}, %{{.*}}, %[[CO]], %[[CL]], %[[SCALE]], %[[FLAGS]])
// CHECK-NOT: fuse.attention

// CHECK-LABEL: func.func @__loom_attention_mask_row_0(
// CHECK-SAME: %{{[^:]*}}: index, %{{[^:]*}}: index, %[[I:[^:]*]]: index, %[[J0:[^:]*]]: index, %[[N:[^:]*]]: index, %[[OUT:[^:]*]]: memref<?xi8>)
// CHECK: scf.for %[[T:.*]] = %{{.*}} to %[[N]] step
// CHECK-NEXT: %[[J:.*]] = arith.addi %[[J0]], %[[T]] : index
// CHECK-NEXT: %[[V:.*]] = arith.cmpi ule, %[[J]], %[[I]] : index
// CHECK-NEXT: %[[BYTE:.*]] = arith.extui %[[V]] : i1 to i8
// CHECK-NEXT: memref.store %[[BYTE]], %[[OUT]][%[[T]]] : memref<?xi8>

// The interval analysis of j <= i over i in [i0, i1 - 1], j in [j0, j1 - 1]:
// some pair is visible when j0 <= i1 - 1, some hidden when j1 - 1 > i0
// (unsigned: both lower ends must be non-negative to decide); NONE when
// nothing can be visible or the block is empty, ALL when nothing can be
// hidden, else SOME.
// CHECK-LABEL: func.func @__loom_attention_mask_block_0(
// CHECK-SAME: %{{[^:]*}}: index, %{{[^:]*}}: index, %[[I0:[^:]*]]: index, %[[I1:[^:]*]]: index, %[[J0:[^:]*]]: index, %[[J1:[^:]*]]: index) -> i32
// CHECK-DAG: %[[LI0:.*]] = arith.index_cast %[[I0]] : index to i64
// CHECK-DAG: %[[LI1:.*]] = arith.index_cast %[[I1]] : index to i64
// CHECK-DAG: %[[LJ0:.*]] = arith.index_cast %[[J0]] : index to i64
// CHECK-DAG: %[[LJ1:.*]] = arith.index_cast %[[J1]] : index to i64
// CHECK-DAG: %[[IHI:.*]] = arith.subi %[[LI1]], %{{.*}} : i64
// CHECK-DAG: %[[JHI:.*]] = arith.subi %[[LJ1]], %{{.*}} : i64
// CHECK-DAG: %[[CANT:.*]] = arith.cmpi sle, %[[LJ0]], %[[IHI]] : i64
// CHECK-DAG: %[[CANF:.*]] = arith.cmpi sgt, %[[JHI]], %[[LI0]] : i64
// CHECK-DAG: arith.cmpi slt, %[[LI0]], %[[LI1]] : i64
// CHECK-DAG: arith.cmpi slt, %[[LJ0]], %[[LJ1]] : i64
// CHECK-DAG: %[[NONE:.*]] = arith.constant 0 : i32
// CHECK-DAG: %[[ALL:.*]] = arith.constant 1 : i32
// CHECK-DAG: %[[SOME:.*]] = arith.constant 2 : i32
// CHECK: %[[R:.*]] = arith.select %{{.*}}, %[[ALL]], %[[SOME]] : i32
// CHECK: %[[R2:.*]] = arith.select %{{.*}}, %[[NONE]], %[[R]] : i32
// CHECK: return %[[R2]] : i32

// The launch is declared only; the object emitter defines it.
// CHECK: func.func private @__loom_attention_launch_0(memref<?x?x?x?xf32, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?x?x?xf32, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?x?x?xf32, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?x?x?xf32, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, f32, i32)
// CHECK-NOT: score_row
func.func @causal(%q: memref<?x4x?x16xf32>, %k: memref<?x2x?x16xf32>,
                  %o: memref<?x4x?x16xf32>, %l: memref<?x4x?xf32>) {
  fuse.attention ins(%q, %k, %k : memref<?x4x?x16xf32>, memref<?x2x?x16xf32>, memref<?x2x?x16xf32>)
      outs(%o, %l : memref<?x4x?x16xf32>, memref<?x4x?xf32>) {scale = 0.25 : f64}
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c = arith.cmpi ule, %j, %i : index
      fuse.yield %c : i1
    }
  return
}

// -----

// An ancestor mask on Euler-tour intervals with a per-head score bias. The
// captures are passed to the launch and to every outlined function;
// mask_row loads tin[i] and tout[i] once, before its loop; mask_block scans
// each capture over the index range for its minimum and maximum; score_row
// rewrites the scores in place. The score region reads h, the mask does not:
// flags stay 0.
// CHECK-LABEL: func.func @tree(
// CHECK-SAME: %[[TIN:[^:]*]]: memref<?xi32, strided<[?], offset: ?>>, %[[TOUT:[^:]*]]: memref<?xi32, strided<[?], offset: ?>>
// CHECK: %[[FLAGS:.*]] = arith.constant 0 : i32
// CHECK: call @__loom_attention_launch_0(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[FLAGS]], %[[TIN]], %[[TOUT]])

// CHECK-LABEL: func.func @__loom_attention_mask_row_0(
// CHECK-SAME: %[[I:[^:]*]]: index, %[[J0:[^:]*]]: index, %{{[^:]*}}: index, %[[OUT:[^:]*]]: memref<?xi8>, %[[A:[^:]*]]: memref<?xi32, strided<[?], offset: ?>>, %[[C:[^:]*]]: memref<?xi32, strided<[?], offset: ?>>)
// CHECK-DAG: %[[TI:.*]] = memref.load %[[A]][%[[I]]]
// CHECK-DAG: %[[OI:.*]] = memref.load %[[C]][%[[I]]]
// CHECK: scf.for %[[T:.*]] =
// CHECK-NEXT: %[[J:.*]] = arith.addi %[[J0]], %[[T]] : index
// CHECK-DAG: %[[TJ:.*]] = memref.load %[[A]][%[[J]]]
// CHECK-DAG: %[[OJ:.*]] = memref.load %[[C]][%[[J]]]
// CHECK-DAG: %[[X:.*]] = arith.cmpi sle, %[[TJ]], %[[TI]] : i32
// CHECK-DAG: %[[Y:.*]] = arith.cmpi sle, %[[OI]], %[[OJ]] : i32
// CHECK: arith.andi %[[X]], %[[Y]] : i1

// CHECK-LABEL: func.func @__loom_attention_mask_block_0(
// CHECK-SAME: %[[A:[^:]*]]: memref<?xi32, strided<[?], offset: ?>>, %[[C:[^:]*]]: memref<?xi32, strided<[?], offset: ?>>) -> i32
// CHECK: memref.dim %[[A]]
// CHECK: %[[SCAN:.*]]:2 = scf.for %[[K:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[MIN:.*]] = %{{.*}}, %[[MAX:.*]] = %{{.*}}) -> (i64, i64) {
// CHECK-NEXT: %[[E:.*]] = memref.load %[[A]][%[[K]]]
// CHECK-NEXT: %[[W:.*]] = arith.extsi %[[E]] : i32 to i64
// CHECK-NEXT: %[[MIN2:.*]] = arith.minsi %[[MIN]], %[[W]] : i64
// CHECK-NEXT: %[[MAX2:.*]] = arith.maxsi %[[MAX]], %[[W]] : i64
// CHECK-NEXT: scf.yield %[[MIN2]], %[[MAX2]] : i64, i64
// CHECK-COUNT-3: scf.for
// CHECK: return

// CHECK-LABEL: func.func @__loom_attention_score_row_0(
// CHECK-SAME: %{{[^:]*}}: index, %[[H:[^:]*]]: index, %{{[^:]*}}: index, %[[J0:[^:]*]]: index, %[[N:[^:]*]]: index, %[[S:[^:]*]]: memref<?xf32>, %{{[^:]*}}: memref<?xi32, strided<[?], offset: ?>>, %{{[^:]*}}: memref<?xi32, strided<[?], offset: ?>>)
// CHECK: %[[HI:.*]] = arith.index_cast %[[H]] : index to i32
// CHECK: %[[HF:.*]] = arith.sitofp %[[HI]] : i32 to f32
// CHECK: scf.for %[[T:.*]] = %{{.*}} to %[[N]] step
// CHECK: %[[X:.*]] = memref.load %[[S]][%[[T]]] : memref<?xf32>
// CHECK-NEXT: %[[Y:.*]] = arith.subf %[[X]], %[[HF]] : f32
// CHECK-NEXT: memref.store %[[Y]], %[[S]][%[[T]]] : memref<?xf32>
// CHECK: func.func private @__loom_attention_launch_0(
// CHECK-SAME: f32, i32, memref<?xi32, strided<[?], offset: ?>>, memref<?xi32, strided<[?], offset: ?>>)
func.func @tree(%q: memref<1x2x64x8xf32>, %tin: memref<?xi32, strided<[?], offset: ?>>,
                %tout: memref<?xi32, strided<[?], offset: ?>>,
                %o: memref<1x2x64x8xf32>, %l: memref<1x2x64xf32>) {
  fuse.attention ins(%q, %q, %q : memref<1x2x64x8xf32>, memref<1x2x64x8xf32>, memref<1x2x64x8xf32>)
      captures(%tin, %tout : memref<?xi32, strided<[?], offset: ?>>, memref<?xi32, strided<[?], offset: ?>>)
      outs(%o, %l : memref<1x2x64x8xf32>, memref<1x2x64xf32>) {scale = 0.125 : f64}
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %a: memref<?xi32, strided<[?], offset: ?>>, %c: memref<?xi32, strided<[?], offset: ?>>):
      %tj = memref.load %a[%j] : memref<?xi32, strided<[?], offset: ?>>
      %ti = memref.load %a[%i] : memref<?xi32, strided<[?], offset: ?>>
      %oi = memref.load %c[%i] : memref<?xi32, strided<[?], offset: ?>>
      %oj = memref.load %c[%j] : memref<?xi32, strided<[?], offset: ?>>
      %x = arith.cmpi sle, %tj, %ti : i32
      %y = arith.cmpi sle, %oi, %oj : i32
      %m = arith.andi %x, %y : i1
      fuse.yield %m : i1
    }
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %s: f32, %a: memref<?xi32, strided<[?], offset: ?>>, %c: memref<?xi32, strided<[?], offset: ?>>):
      %hf = arith.index_cast %h : index to i32
      %f = arith.sitofp %hf : i32 to f32
      %r = arith.subf %s, %f : f32
      fuse.yield %r : f32
    }
  return
}

// -----

// Masks that read b and h set LOOM_ATTENTION_MASK_USES_B | _USES_H = 3; a
// score-only attention has no mask functions.
// CHECK-LABEL: func.func @heads(
// CHECK: %[[FLAGS:.*]] = arith.constant 3 : i32
// CHECK: call @__loom_attention_launch_0(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[FLAGS]])
// CHECK: %[[NOFLAGS:.*]] = arith.constant 0 : i32
// CHECK: call @__loom_attention_launch_1(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[NOFLAGS]])
// CHECK-DAG: func.func @__loom_attention_mask_row_0(
// CHECK-DAG: func.func @__loom_attention_mask_block_0(
// CHECK-DAG: func.func @__loom_attention_score_row_1(
// CHECK-NOT: @__loom_attention_mask_row_1
func.func @heads(%q: memref<2x2x4x8xf32>, %o: memref<2x2x4x8xf32>, %l: memref<2x2x4xf32>) {
  fuse.attention ins(%q, %q, %q : memref<2x2x4x8xf32>, memref<2x2x4x8xf32>, memref<2x2x4x8xf32>)
      outs(%o, %l : memref<2x2x4x8xf32>, memref<2x2x4xf32>) {scale = 1.0 : f64}
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c = arith.cmpi ule, %b, %h : index
      fuse.yield %c : i1
    }
  fuse.attention ins(%q, %q, %q : memref<2x2x4x8xf32>, memref<2x2x4x8xf32>, memref<2x2x4x8xf32>)
      outs(%o, %l : memref<2x2x4x8xf32>, memref<2x2x4xf32>) {scale = 1.0 : f64}
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %s: f32):
      fuse.yield %s : f32
    }
  return
}

// -----

func.func @tensors(%q: tensor<1x1x4x8xf32>, %l: tensor<1x1x4xf32>) -> tensor<1x1x4x8xf32> {
  // expected-error@+1 {{must be bufferized before it becomes a call}}
  %r:2 = fuse.attention ins(%q, %q, %q : tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>)
      outs(%q, %l : tensor<1x1x4x8xf32>, tensor<1x1x4xf32>) {scale = 1.0 : f64}
      -> tensor<1x1x4x8xf32>, tensor<1x1x4xf32>
  return %r#0 : tensor<1x1x4x8xf32>
}

// -----

func.func @f64(%q: memref<1x1x4x8xf64>, %l: memref<1x1x4xf64>) {
  // expected-error@+1 {{has a CPU kernel for f32 only, not 'f64'}}
  fuse.attention ins(%q, %q, %q : memref<1x1x4x8xf64>, memref<1x1x4x8xf64>, memref<1x1x4x8xf64>)
      outs(%q, %l : memref<1x1x4x8xf64>, memref<1x1x4xf64>) {scale = 1.0 : f64}
  return
}

// -----

// A block table read at [i / 32, j / 32]: mask_block scans the box of both
// index ranges with nested loops (a single element for a block inside one
// table cell), so such a mask is classified exactly.
// CHECK-LABEL: func.func @block_table(
// CHECK: func.func @__loom_attention_mask_block_0(
// CHECK-SAME: %{{.*}}: memref<?x?xi1>) -> i32
// CHECK: scf.for
// CHECK: scf.for
// CHECK: memref.load %{{.*}}[%{{.*}}, %{{.*}}] : memref<?x?xi1>
// CHECK: arith.minsi
// CHECK: arith.maxsi
func.func @block_table(%q: memref<?x4x?x16xf32>, %t: memref<?x?xi1>,
                       %o: memref<?x4x?x16xf32>, %l: memref<?x4x?xf32>) {
  fuse.attention ins(%q, %q, %q : memref<?x4x?x16xf32>, memref<?x4x?x16xf32>, memref<?x4x?x16xf32>)
      captures(%t : memref<?x?xi1>)
      outs(%o, %l : memref<?x4x?x16xf32>, memref<?x4x?xf32>) {scale = 0.25 : f64}
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %tab: memref<?x?xi1>):
      %c32 = arith.constant 32 : index
      %bi = arith.divui %i, %c32 : index
      %bj = arith.divui %j, %c32 : index
      %v = memref.load %tab[%bi, %bj] : memref<?x?xi1>
      fuse.yield %v : i1
    }
  return
}
