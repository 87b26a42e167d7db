// RUN: loom-opt --split-input-file --convert-loom-to-linalg %s | FileCheck %s

// The unfused lowering of loom.attention materializes the scores. With 8
// query heads on 2 key/value heads, q is read as [B * 2, 4 * Sq, Dk] so one
// batched product q . k^T gives the [B, 8, Sq, Skv] scores; one generic
// applies the scale, the score region and the mask region (the CSR lookup
// expanded into a binary search), then max, exp, sum, lse and the product
// with v, normalized by the row sum with fully hidden rows guarded.
// CHECK-DAG: #[[$QK_Q:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG: #[[$QK_K:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d2, d3)>
// CHECK-DAG: #[[$ROW:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-DAG: #[[$ID4:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @gqa_csr_score
// CHECK-SAME:    %[[Q:[^:]*]]: tensor<?x8x?x64xf32>, %[[K:[^:]*]]: tensor<?x2x?x64xf32>, %[[V:[^:]*]]: tensor<?x2x?x32xf32>, %[[P:[^:]*]]: tensor<?xi32>, %[[X:[^:]*]]: tensor<?xi32>
// CHECK:         %[[B:.*]] = tensor.dim %[[Q]], %{{.*}} : tensor<?x8x?x64xf32>
// CHECK:         %[[SQ:.*]] = tensor.dim %[[Q]], %{{.*}} : tensor<?x8x?x64xf32>
// CHECK:         %[[SKV:.*]] = tensor.dim %[[K]], %{{.*}} : tensor<?x2x?x64xf32>
// CHECK:         %[[BH:.*]] = arith.muli %[[B]], %c2
// CHECK:         %[[GS:.*]] = arith.muli %c4{{.*}}, %[[SQ]]
// CHECK:         %[[QS:.*]] = tensor.from_elements %[[BH]], %[[GS]], %c64
// CHECK:         %[[Q3:.*]] = tensor.reshape %[[Q]](%[[QS]]) : (tensor<?x8x?x64xf32>, tensor<3xindex>) -> tensor<?x?x64xf32>
// CHECK:         %[[K3:.*]] = tensor.reshape %[[K]]
// CHECK:         %[[V3:.*]] = tensor.reshape %[[V]]
// CHECK:         %[[QK:.*]] = linalg.batch_matmul indexing_maps = [#[[$QK_Q]], #[[$QK_K]], #[[$ROW]]] ins(%[[Q3]], %[[K3]] : tensor<?x?x64xf32>, tensor<?x?x64xf32>)
// CHECK:         %[[S4:.*]] = tensor.reshape %[[QK]]({{.*}}) : (tensor<?x?x?xf32>, tensor<4xindex>) -> tensor<?x8x?x?xf32>
// CHECK-DAG:     %[[SCALE:.*]] = arith.constant 1.250000e-01 : f32
// CHECK-DAG:     %[[NINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK:         %[[MASKED:.*]] = linalg.generic {indexing_maps = [#[[$ID4]], #[[$ID4]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[S4]] : tensor<?x8x?x?xf32>)
// CHECK:           %[[SS:.*]] = arith.mulf %{{.*}}, %[[SCALE]] : f32
// CHECK:           %[[I:.*]] = linalg.index 2 : index
// CHECK:           %[[J:.*]] = linalg.index 3 : index
// CHECK:           %[[T:.*]] = math.tanh %[[SS]] : f32
// CHECK:           %[[IN:.*]] = scf.if
// CHECK:             tensor.extract %[[P]][%[[I]]] : tensor<?xi32>
// CHECK:             scf.while
// CHECK:               tensor.extract %[[X]]
// CHECK:           %[[M:.*]] = arith.select %[[IN]], %[[T]], %[[NINF]] : f32
// CHECK:           linalg.yield %[[M]] : f32
// CHECK:         %[[MAX:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[MASKED]] : tensor<?x8x?x?xf32>)
// CHECK:           arith.maximumf
// CHECK:         %[[SHIFT:.*]] = linalg.generic {{.*}} ins(%[[MAX]] : tensor<?x8x?xf32>)
// CHECK:           %[[HID:.*]] = arith.cmpf oeq, %{{.*}}, %[[NINF]] : f32
// CHECK:           arith.select %[[HID]], %cst{{.*}}, %{{.*}} : f32
// CHECK:         %[[E:.*]] = linalg.generic {indexing_maps = [#[[$ID4]], #[[$ROW]], #[[$ID4]]], {{.*}} ins(%[[MASKED]], %[[SHIFT]] : tensor<?x8x?x?xf32>, tensor<?x8x?xf32>)
// CHECK:           arith.subf
// CHECK:           math.exp
// CHECK:         %[[SUM:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[E]] : tensor<?x8x?x?xf32>)
// CHECK:           arith.addf
// CHECK:         %[[LSE:.*]] = linalg.generic {{.*}} ins(%[[MAX]], %[[SHIFT]], %[[SUM]] : tensor<?x8x?xf32>, tensor<?x8x?xf32>, tensor<?x8x?xf32>)
// CHECK:           math.log
// CHECK:         %[[E3:.*]] = tensor.reshape %[[E]]
// CHECK:         %[[PV:.*]] = linalg.batch_matmul ins(%[[E3]], %[[V3]] : tensor<?x?x?xf32>, tensor<?x?x32xf32>)
// CHECK:         %[[PV4:.*]] = tensor.reshape %[[PV]]
// CHECK:         %[[OUT:.*]] = linalg.generic {indexing_maps = [#[[$ID4]], #[[$ROW]], #[[$ID4]]], {{.*}} ins(%[[PV4]], %[[SUM]] : tensor<?x8x?x32xf32>, tensor<?x8x?xf32>)
// CHECK:           %[[SEEN:.*]] = arith.cmpf ogt
// CHECK:           %[[R:.*]] = arith.divf
// CHECK:           arith.select %[[SEEN]], %[[R]], %{{.*}} : f32
// CHECK:         return %[[OUT]], %[[LSE]] : tensor<?x8x?x32xf32>, tensor<?x8x?xf32>
func.func @gqa_csr_score(%q: tensor<?x8x?x64xf32>, %k: tensor<?x2x?x64xf32>,
    %v: tensor<?x2x?x32xf32>, %ip: tensor<?xi32>, %ix: tensor<?xi32>)
    -> (tensor<?x8x?x32xf32>, tensor<?x8x?xf32>) {
  %o, %l = loom.attention %q, %k, %v captures(%ip, %ix : tensor<?xi32>, tensor<?xi32>)
      {scale = 0.125 : f64}
      : tensor<?x8x?x64xf32>, tensor<?x2x?x64xf32>, tensor<?x2x?x32xf32>
      -> tensor<?x8x?x32xf32>, tensor<?x8x?xf32>
    mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %p: tensor<?xi32>, %x: tensor<?xi32>):
      %e = loom.csr_contains %p, %x, %i, %j : tensor<?xi32>, tensor<?xi32>
      loom.yield %e : i1
    }
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %s: f32, %p: tensor<?xi32>, %x: tensor<?xi32>):
      %t = math.tanh %s : f32
      loom.yield %t : f32
    }
  return %o, %l : tensor<?x8x?x32xf32>, tensor<?x8x?xf32>
}

// -----

// Static shapes and no region: the scores are only scaled; with as many
// key/value heads as query heads the operands are merely collapsed.
// CHECK-LABEL: func.func @plain_static
// CHECK:         tensor.reshape %arg0({{.*}}) : (tensor<2x4x16x8xf32>, tensor<3xindex>) -> tensor<8x16x8xf32>
// CHECK:         linalg.batch_matmul {{.*}} -> tensor<8x16x16xf32>
// CHECK:         linalg.generic
// CHECK-NEXT:    ^bb0(%[[IN:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT:      %[[S:.*]] = arith.mulf %[[IN]], %{{.*}} : f32
// CHECK-COUNT-4:   linalg.index
// CHECK-NEXT:      linalg.yield %[[S]] : f32
// CHECK-NOT:     loom.
func.func @plain_static(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>,
    %v: tensor<2x4x16x4xf32>) -> (tensor<2x4x16x4xf32>, tensor<2x4x16xf32>) {
  %o, %l = loom.attention %q, %k, %v {scale = 0.35 : f64}
      : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x4xf32>
      -> tensor<2x4x16x4xf32>, tensor<2x4x16xf32>
  return %o, %l : tensor<2x4x16x4xf32>, tensor<2x4x16xf32>
}
