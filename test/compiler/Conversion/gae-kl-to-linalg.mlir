// RUN: loom-opt %s --convert-loom-to-linalg --canonicalize | FileCheck %s

// gae walks each row backwards with scf.for on tensors, carrying the next
// valid position's value and advantage; a masked position writes 0 and
// carries both unchanged. Operands whose dynamic sizes differ at run time
// give NaN instead of being read.

// CHECK-LABEL: func.func @gae(
// CHECK-SAME: %[[R:.+]]: tensor<?x?xf32>, %[[V:.+]]: tensor<?x?xf32>, %[[M:.+]]: tensor<?x?xf32>
// CHECK-DAG: %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG: %[[NAN:.+]] = arith.constant 0x7FC00000 : f32
// CHECK-DAG: %[[GAMMA:.+]] = arith.constant 9.900000e-01 : f32
// CHECK-DAG: %[[GL:.+]] = arith.constant 9.405000e-01 : f32
// CHECK-COUNT-4: arith.cmpi eq
// CHECK: %[[OK:.+]] = arith.andi
// CHECK-NEXT: scf.if %[[OK]]
// CHECK: scf.for %[[B:.+]] = {{.*}} iter_args(%[[ACC:.+]] = %{{.*}})
// CHECK: scf.for %[[I:.+]] = {{.*}} iter_args(%[[ROW:.+]] = %[[ACC]], %[[NV:.+]] = %[[ZERO]], %[[NA:.+]] = %[[ZERO]])
// CHECK: %[[T:.+]] = arith.subi %{{.*}}, %[[I]] : index
// CHECK: %[[MT:.+]] = tensor.extract %[[M]][%[[B]], %[[T]]]
// CHECK: %[[RT:.+]] = tensor.extract %[[R]][%[[B]], %[[T]]]
// CHECK: %[[VT:.+]] = tensor.extract %[[V]][%[[B]], %[[T]]]
// CHECK: %[[VALID:.+]] = arith.cmpf une, %[[MT]], %[[ZERO]]
// CHECK: %[[GV:.+]] = arith.mulf %[[NV]], %[[GAMMA]]
// CHECK: %[[RGV:.+]] = arith.addf %[[RT]], %[[GV]]
// CHECK: %[[DELTA:.+]] = arith.subf %[[RGV]], %[[VT]]
// CHECK: %[[GA:.+]] = arith.mulf %[[NA]], %[[GL]]
// CHECK: %[[A:.+]] = arith.addf %[[DELTA]], %[[GA]]
// CHECK: %[[OUT:.+]] = arith.select %[[VALID]], %[[A]], %[[ZERO]]
// CHECK: %[[INS:.+]] = tensor.insert %[[OUT]] into %[[ROW]][%[[B]], %[[T]]]
// CHECK: %[[NV2:.+]] = arith.select %[[VALID]], %[[VT]], %[[NV]]
// CHECK: %[[NA2:.+]] = arith.select %[[VALID]], %[[A]], %[[NA]]
// CHECK: scf.yield %[[INS]], %[[NV2]], %[[NA2]]
// CHECK: } else {
// CHECK: linalg.fill ins(%[[NAN]] : f32)
func.func @gae(%r: tensor<?x?xf32>, %v: tensor<?x?xf32>,
               %m: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %adv = loom.gae %r, %v, %m {gamma = 9.9e-01 : f64, lam = 9.5e-01 : f64}
      : tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
  return %adv : tensor<?x?xf32>
}

// kl is one elementwise generic on x = logp - ref, broadcast like a binary
// op.

// CHECK-LABEL: func.func @kl(
// CHECK: linalg.generic
// CHECK: %[[X1:.+]] = arith.subf
// CHECK-NEXT: linalg.yield %[[X1]]
// CHECK: linalg.generic
// CHECK: %[[X2:.+]] = arith.subf
// CHECK-NEXT: %[[SQ:.+]] = arith.mulf %[[X2]], %[[X2]]
// CHECK-NEXT: %[[K2:.+]] = arith.mulf %[[SQ]], %{{.*}}
// CHECK-NEXT: linalg.yield %[[K2]]
// CHECK: linalg.generic {indexing_maps = [#{{.*}}, #[[ROWMAP:.+]], #{{.*}}]
// CHECK: %[[X3:.+]] = arith.subf
// CHECK-NEXT: %[[NEG:.+]] = arith.negf %[[X3]]
// CHECK-NEXT: %[[E:.+]] = math.exp %[[NEG]]
// CHECK-NEXT: %[[S:.+]] = arith.addf %[[E]], %[[X3]]
// CHECK-NEXT: %[[K3:.+]] = arith.subf %[[S]], %{{.*}}
// CHECK-NEXT: linalg.yield %[[K3]]
func.func @kl(%logp: tensor<?x?xf32>, %ref: tensor<?x?xf32>,
              %row: tensor<?xf32>)
    -> (tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32>) {
  %k1 = loom.kl %logp, %ref {estimator = "k1"}
      : tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
  %k2 = loom.kl %logp, %ref {estimator = "k2"}
      : tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
  %k3 = loom.kl %logp, %row {estimator = "k3"}
      : tensor<?x?xf32>, tensor<?xf32> -> tensor<?x?xf32>
  return %k1, %k2, %k3 : tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32>
}
