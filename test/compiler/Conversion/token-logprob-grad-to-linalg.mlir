// RUN: loom-opt %s --convert-loom-to-linalg | FileCheck %s

// token_logprob with an lm-head weight materializes the logits with one
// matmul (the weight read transposed through the indexing maps, as
// loom.linear does) and reads each token's logit at a clamped id.

// CHECK-DAG: #[[LHS:.+]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG: #[[RHS_T:.+]] = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-DAG: #[[OUT:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-DAG: #[[LHS_T:.+]] = affine_map<(d0, d1, d2) -> (d2, d0)>
// CHECK-DAG: #[[RHS:.+]] = affine_map<(d0, d1, d2) -> (d2, d1)>

// CHECK-LABEL: func.func @lp_w(
// CHECK-SAME: %[[H:.+]]: tensor<?x?x8xf32>, %[[IDS:.+]]: tensor<?x?xi32>, %[[W:.+]]: tensor<37x8xf32>
// CHECK: scf.if
// CHECK: %[[FLAT:.+]] = tensor.reshape %[[H]]
// CHECK: %[[LOGITS:.+]] = linalg.matmul indexing_maps = [#[[LHS]], #[[RHS_T]], #[[OUT]]] ins(%[[FLAT]], %[[W]] : tensor<?x8xf32>, tensor<37x8xf32>)
// CHECK: arith.maxsi
// CHECK: arith.minsi
// CHECK: tensor.extract %[[LOGITS]]
// CHECK: } else {
// CHECK: linalg.fill ins(%{{.*}} : f32)
// CHECK-NOT: linalg.transpose
func.func @lp_w(%h: tensor<?x?x8xf32>, %ids: tensor<?x?xi32>,
                %w: tensor<37x8xf32>) -> tensor<?x?xf32> {
  %lp = loom.token_logprob %h, %ids weight %w {temperature = 7.0e-01 : f64}
      : tensor<?x?x8xf32>, tensor<?x?xi32>, tensor<37x8xf32> -> tensor<?x?xf32>
  return %lp : tensor<?x?xf32>
}

// The backward materializes dlogits in one generic that never reads at an
// id (it compares the id with the vocabulary index), then
// input_grad = dlogits @ weight and weight_grad = dlogits^T @ input, the
// transpose expressed by the indexing maps.

// CHECK-LABEL: func.func @lm_grad(
// CHECK-SAME: %[[X:.+]]: tensor<?x8xf32>, %[[ID:.+]]: tensor<?xi64>, %[[G:.+]]: tensor<?xf32>, %[[WT:.+]]: tensor<37x8xf32>
// CHECK: scf.if
// CHECK: %[[L:.+]] = linalg.matmul indexing_maps = [#[[LHS]], #[[RHS_T]], #[[OUT]]] ins(%[[X]], %[[WT]]
// CHECK: %[[MAX:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]{{.*}} ins(%[[L]] :
// CHECK: arith.maximumf
// CHECK: %[[SUM:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]{{.*}} ins(%[[L]], %[[MAX]] :
// CHECK: math.exp
// CHECK: %[[D:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel"]{{.*}} ins(%[[L]], %[[ID]], %[[G]], %[[MAX]], %[[SUM]] :
// CHECK-NOT: tensor.extract
// CHECK: linalg.index 1
// CHECK: arith.cmpi eq
// CHECK: linalg.yield
// CHECK: %[[DX:.+]] = linalg.matmul ins(%[[D]], %[[WT]] : tensor<?x37xf32>, tensor<37x8xf32>)
// CHECK: %[[DW:.+]] = linalg.matmul indexing_maps = [#[[LHS_T]], #[[RHS]], #[[OUT]]] ins(%[[D]], %[[X]] : tensor<?x37xf32>, tensor<?x8xf32>) outs(%{{.*}} : tensor<37x8xf32>)
// CHECK: scf.yield %[[DX]], %[[DW]]
// CHECK: } else {
// CHECK-NOT: linalg.transpose
func.func @lm_grad(%h: tensor<?x8xf32>, %ids: tensor<?xi64>, %g: tensor<?xf32>,
                   %w: tensor<37x8xf32>) -> (tensor<?x8xf32>, tensor<37x8xf32>) {
  %dh, %dw = loom.token_logprob_grad %h, %ids, %g weight %w
      {temperature = 7.0e-01 : f64}
      : tensor<?x8xf32>, tensor<?xi64>, tensor<?xf32>, tensor<37x8xf32>
      -> tensor<?x8xf32>, tensor<37x8xf32>
  return %dh, %dw : tensor<?x8xf32>, tensor<37x8xf32>
}

// A weight gradient summed into a value that exists before the backward
// (a state: acc = acc + grad) is added by its product: the matmul's outs
// are the accumulator, the add is gone, and on mismatched shapes the
// accumulator is filled with NaN (NaN + acc).
// CHECK-LABEL: func.func @lm_grad_accumulate(
// CHECK-SAME: %[[ACC:[^:]*]]: tensor<37x8xf32>) ->
// CHECK: %[[R:.+]]:2 = scf.if
// CHECK: %[[DW:.+]] = linalg.matmul indexing_maps = [#[[LHS_T]], #[[RHS]], #[[OUT]]] ins(%{{.*}}, %{{.*}} : tensor<?x37xf32>, tensor<?x8xf32>) outs(%[[ACC]] : tensor<37x8xf32>)
// CHECK: scf.yield %{{.*}}, %[[DW]]
// CHECK: } else {
// CHECK: %[[NAN:.+]] = linalg.fill ins(%{{.*}} : f32) outs(%[[ACC]] : tensor<37x8xf32>)
// CHECK: scf.yield %{{.*}}, %[[NAN]]
// CHECK-NOT: linalg.generic
// CHECK: return %[[R]]#0, %[[R]]#1
func.func @lm_grad_accumulate(%h: tensor<?x8xf32>, %ids: tensor<?xi64>, %g: tensor<?xf32>,
                              %w: tensor<37x8xf32>, %acc: tensor<37x8xf32>)
    -> (tensor<?x8xf32>, tensor<37x8xf32>) {
  %dh, %dw = loom.token_logprob_grad %h, %ids, %g weight %w
      {temperature = 7.0e-01 : f64}
      : tensor<?x8xf32>, tensor<?xi64>, tensor<?xf32>, tensor<37x8xf32>
      -> tensor<?x8xf32>, tensor<37x8xf32>
  %sum = loom.add %acc, %dw : tensor<37x8xf32>, tensor<37x8xf32> -> tensor<37x8xf32>
  return %dh, %sum : tensor<?x8xf32>, tensor<37x8xf32>
}

// Without a weight the gradient is dlogits itself; stop_gradient is its
// operand.

// CHECK-LABEL: func.func @lp_grad(
// CHECK-SAME: %[[LG:.+]]: tensor<?x?x?xf32>, %[[I:.+]]: tensor<?x?xi64>, %[[GR:.+]]: tensor<?x?xf32>
// CHECK-NOT: loom.
// CHECK-NOT: linalg.matmul
// CHECK: scf.if
// CHECK: tensor.reshape %[[GR]]
// CHECK: linalg.generic
// CHECK: return
func.func @lp_grad(%logits: tensor<?x?x?xf32>, %ids: tensor<?x?xi64>,
                   %g: tensor<?x?xf32>) -> tensor<?x?x?xf32> {
  %g0 = loom.stop_gradient %g : tensor<?x?xf32> -> tensor<?x?xf32>
  %d = loom.token_logprob_grad %logits, %ids, %g0
      : tensor<?x?x?xf32>, tensor<?x?xi64>, tensor<?x?xf32> -> tensor<?x?x?xf32>
  return %d : tensor<?x?x?xf32>
}
