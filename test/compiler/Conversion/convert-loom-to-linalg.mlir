// RUN: loom-opt --split-input-file --convert-loom-to-linalg %s | FileCheck %s

// A function without loom ops is left alone.
// CHECK-LABEL: func.func @no_loom_ops
// CHECK-NEXT:    %[[R:.*]] = arith.addf %{{.*}}, %{{.*}} : f32
// CHECK-NEXT:    return %[[R]] : f32
func.func @no_loom_ops(%a: f32, %b: f32) -> f32 {
  %r = arith.addf %a, %b : f32
  return %r : f32
}

// -----

// CHECK-DAG: #[[$ID:.*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-DAG: #[[$ROW:.*]] = affine_map<(d0, d1) -> (d1)>
// CHECK-LABEL: func.func @add_broadcast
// CHECK-SAME:    %[[A:.*]]: tensor<?x64xf32>, %[[B:.*]]: tensor<64xf32>
// CHECK:         %[[C0:.*]] = arith.constant 0 : index
// CHECK:         %[[D0:.*]] = tensor.dim %[[A]], %[[C0]]
// CHECK:         %[[E:.*]] = tensor.empty(%[[D0]]) : tensor<?x64xf32>
// CHECK:         linalg.generic {indexing_maps = [#[[$ID]], #[[$ROW]], #[[$ID]]], iterator_types = ["parallel", "parallel"]}
// CHECK-SAME:      ins(%[[A]], %[[B]] : tensor<?x64xf32>, tensor<64xf32>) outs(%[[E]] : tensor<?x64xf32>)
// CHECK:           arith.addf
// CHECK-NOT:     loom.
func.func @add_broadcast(%a: tensor<?x64xf32>, %b: tensor<64xf32>) -> tensor<?x64xf32> {
  %r = loom.add %a, %b : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
  return %r : tensor<?x64xf32>
}

// -----

// A static 1 facing a larger dimension reads index 0; a rank-0 operand has
// an empty map. Dynamic result sizes come from the operand that has them.
// CHECK-DAG: #[[$COL:.*]] = affine_map<(d0, d1) -> (d0, 0)>
// CHECK-DAG: #[[$ROW:.*]] = affine_map<(d0, d1) -> (0, d1)>
// CHECK-DAG: #[[$SCALAR:.*]] = affine_map<(d0, d1) -> ()>
// CHECK-LABEL: func.func @stretch
// CHECK-SAME:    %[[A:.*]]: tensor<?x1xf32>, %[[B:.*]]: tensor<1x?xf32>
// CHECK-DAG:     %[[D0:.*]] = tensor.dim %[[A]], %c0
// CHECK-DAG:     %[[D1:.*]] = tensor.dim %[[B]], %c1
// CHECK:         tensor.empty(%[[D0]], %[[D1]]) : tensor<?x?xf32>
// CHECK:         linalg.generic {indexing_maps = [#[[$COL]], #[[$ROW]], #{{.*}}]
// CHECK:           arith.maximumf
// CHECK:         linalg.generic {indexing_maps = [#{{.*}}, #[[$SCALAR]], #{{.*}}]
// CHECK:           arith.minimumf
func.func @stretch(%a: tensor<?x1xf32>, %b: tensor<1x?xf32>, %s: tensor<f32>) -> tensor<?x?xf32> {
  %r = loom.max %a, %b : tensor<?x1xf32>, tensor<1x?xf32> -> tensor<?x?xf32>
  %m = loom.min %r, %s : tensor<?x?xf32>, tensor<f32> -> tensor<?x?xf32>
  return %m : tensor<?x?xf32>
}

// -----

// CHECK-LABEL: func.func @integer_and_bool
// CHECK:         arith.divsi %{{.*}}, %{{.*}} : i64
// CHECK:         arith.maxsi %{{.*}}, %{{.*}} : i64
// CHECK:         math.absi %{{.*}} : i64
// CHECK:         arith.cmpi slt, %{{.*}}, %{{.*}} : i64
// CHECK:         arith.xori %{{.*}}, %true : i1
// CHECK:         arith.andi %{{.*}}, %{{.*}} : i1
// CHECK:         arith.select %{{.*}}, %{{.*}}, %{{.*}} : i64
func.func @integer_and_bool(%a: tensor<?xi64>, %b: tensor<?xi64>) -> tensor<?xi64> {
  %d = loom.div %a, %b : tensor<?xi64>, tensor<?xi64> -> tensor<?xi64>
  %m = loom.max %d, %b : tensor<?xi64>, tensor<?xi64> -> tensor<?xi64>
  %x = loom.abs %m : tensor<?xi64> -> tensor<?xi64>
  %lt = loom.cmp "lt" %x, %a : tensor<?xi64>, tensor<?xi64> -> tensor<?xi1>
  %n = loom.not %lt : tensor<?xi1> -> tensor<?xi1>
  %c = loom.and %n, %lt : tensor<?xi1>, tensor<?xi1> -> tensor<?xi1>
  %r = loom.select %c, %a, %x : tensor<?xi1>, tensor<?xi64>, tensor<?xi64> -> tensor<?xi64>
  return %r : tensor<?xi64>
}

// -----

// CHECK-LABEL: func.func @float_math
// CHECK:         arith.cmpf une
// CHECK:         math.powf
// CHECK:         math.rsqrt
// sigmoid
// CHECK:         arith.negf
// CHECK-NEXT:    math.exp
// CHECK-NEXT:    arith.addf
// CHECK-NEXT:    arith.divf
// silu
// CHECK:         math.exp
// CHECK:         arith.mulf
// gelu
// CHECK:         %[[S:.*]] = arith.constant 0.7071067
// CHECK:         arith.mulf %{{.*}}, %[[S]]
// CHECK:         math.erf
func.func @float_math(%a: tensor<4xf32>, %b: tensor<4xf32>) -> (tensor<4xi1>, tensor<4xf32>) {
  %ne = loom.cmp "ne" %a, %b : tensor<4xf32>, tensor<4xf32> -> tensor<4xi1>
  %p = loom.pow %a, %b : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
  %r = loom.rsqrt %p : tensor<4xf32> -> tensor<4xf32>
  %s = loom.sigmoid %r : tensor<4xf32> -> tensor<4xf32>
  %si = loom.silu %s : tensor<4xf32> -> tensor<4xf32>
  %g = loom.gelu %si : tensor<4xf32> -> tensor<4xf32>
  return %ne, %g : tensor<4xi1>, tensor<4xf32>
}

// -----

// CHECK-LABEL: func.func @casts
// CHECK:         arith.fptosi %{{.*}} : f32 to i32
// CHECK:         arith.cmpi ne, %{{.*}}, %{{.*}} : i32
// CHECK:         arith.uitofp %{{.*}} : i1 to f16
// CHECK:         arith.extf %{{.*}} : f16 to f64
// CHECK:         arith.extui %{{.*}} : i1 to i64
func.func @casts(%x: tensor<?xf32>) -> (tensor<?xf64>, tensor<?xi64>) {
  %i = loom.cast %x : tensor<?xf32> -> tensor<?xi32>
  %b = loom.cast %i : tensor<?xi32> -> tensor<?xi1>
  %h = loom.cast %b : tensor<?xi1> -> tensor<?xf16>
  %d = loom.cast %h : tensor<?xf16> -> tensor<?xf64>
  %l = loom.cast %b : tensor<?xi1> -> tensor<?xi64>
  return %d, %l : tensor<?xf64>, tensor<?xi64>
}

// -----

// CHECK-DAG: #[[$IN:.*]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG: #[[$OUT:.*]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-LABEL: func.func @sum_keepdim
// CHECK-SAME:    %[[X:.*]]: tensor<?x8x?xf32>
// CHECK:         %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK:         %[[FILL:.*]] = linalg.fill ins(%[[ZERO]] : f32) outs(%{{.*}} : tensor<?x?xf32>)
// CHECK:         %[[SUM:.*]] = linalg.generic {indexing_maps = [#[[$IN]], #[[$OUT]]], iterator_types = ["parallel", "reduction", "parallel"]}
// CHECK-SAME:      ins(%[[X]] : tensor<?x8x?xf32>) outs(%[[FILL]] : tensor<?x?xf32>)
// CHECK:           arith.addf
// CHECK:         tensor.expand_shape %[[SUM]] {{\[}}[0], [1, 2]] output_shape [%{{.*}}, 1, %{{.*}}] : tensor<?x?xf32> into tensor<?x1x?xf32>
func.func @sum_keepdim(%x: tensor<?x8x?xf32>) -> tensor<?x1x?xf32> {
  %r = loom.sum %x {axes = array<i64: 1>, keepdim = true} : tensor<?x8x?xf32> -> tensor<?x1x?xf32>
  return %r : tensor<?x1x?xf32>
}

// -----

// The mean divides by the reduced element count, read at run time.
// CHECK-LABEL: func.func @mean_dynamic
// CHECK-SAME:    %[[X:.*]]: tensor<?x8x?xf32>
// CHECK:         linalg.generic {{.*}} iterator_types = ["parallel", "reduction", "reduction"]
// CHECK:         %[[D2:.*]] = tensor.dim %[[X]], %c2
// CHECK:         %[[N:.*]] = arith.muli %{{.*}}, %[[D2]] : index
// CHECK:         %[[NI:.*]] = arith.index_cast %[[N]] : index to i64
// CHECK:         %[[NF:.*]] = arith.sitofp %[[NI]] : i64 to f32
// CHECK:         linalg.generic
// CHECK:           arith.divf %{{.*}}, %[[NF]] : f32
func.func @mean_dynamic(%x: tensor<?x8x?xf32>) -> tensor<?xf32> {
  %r = loom.mean %x {axes = array<i64: 1, 2>} : tensor<?x8x?xf32> -> tensor<?xf32>
  return %r : tensor<?xf32>
}

// -----

// CHECK-LABEL: func.func @reduce_max_min
// CHECK:         arith.constant 0xFF800000 : f32
// CHECK:         arith.maximumf
// CHECK:         arith.constant 2147483647 : i32
// CHECK:         arith.minsi
func.func @reduce_max_min(%x: tensor<?x4xf32>, %y: tensor<4x?xi32>) -> (tensor<4xf32>, tensor<4xi32>) {
  %a = loom.reduce_max %x {axes = array<i64: 0>} : tensor<?x4xf32> -> tensor<4xf32>
  %b = loom.reduce_min %y {axes = array<i64: 1>} : tensor<4x?xi32> -> tensor<4xi32>
  return %a, %b : tensor<4xf32>, tensor<4xi32>
}

// -----

// CHECK-LABEL: func.func @softmax
// CHECK:         %[[MAX:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]
// CHECK:           arith.maximumf
// CHECK:         %[[SUM:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]
// CHECK-SAME:      ins(%{{.*}}, %[[MAX]] :
// CHECK:           arith.subf
// CHECK:           math.exp
// CHECK:           arith.addf
// CHECK:         linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]
// CHECK-SAME:      ins(%{{.*}}, %[[MAX]], %[[SUM]] :
// CHECK:           arith.subf
// CHECK:           math.exp
// CHECK:           arith.divf
// CHECK-LABEL: func.func @log_softmax
// CHECK:         linalg.generic {{.*}} iterator_types = ["reduction", "parallel"]
// CHECK:         linalg.generic {{.*}} iterator_types = ["reduction", "parallel"]
// CHECK:         linalg.generic
// CHECK:           %[[SHIFTED:.*]] = arith.subf
// CHECK:           %[[LOG:.*]] = math.log
// CHECK:           arith.subf %[[SHIFTED]], %[[LOG]]
func.func @softmax(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %p = loom.softmax %x {axis = 1 : i64} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %p : tensor<?x64xf32>
}
func.func @log_softmax(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %p = loom.log_softmax %x {axis = 0 : i64} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %p : tensor<?x64xf32>
}

// -----

// CHECK-DAG: #[[$W:.*]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-LABEL: func.func @rms_norm
// CHECK-SAME:    %[[X:.*]]: tensor<?x?x64xf32>, %[[W:.*]]: tensor<64xf32>
// CHECK:         %[[SS:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
// CHECK:           arith.mulf
// CHECK:           arith.addf
// CHECK:         %[[N:.*]] = arith.constant 6.400000e+01 : f32
// CHECK:         %[[EPS:.*]] = arith.constant 9.99999997E-7 : f32
// CHECK:         linalg.generic {indexing_maps = [#{{.*}}, #{{.*}}, #[[$W]], #{{.*}}]
// CHECK-SAME:      ins(%[[X]], %[[SS]], %[[W]] :
// CHECK:           arith.divf %{{.*}}, %[[N]]
// CHECK:           arith.addf %{{.*}}, %[[EPS]]
// CHECK:           math.rsqrt
// CHECK:           arith.mulf
// CHECK:           arith.mulf
func.func @rms_norm(%x: tensor<?x?x64xf32>, %w: tensor<64xf32>) -> tensor<?x?x64xf32> {
  %y = loom.rms_norm %x, %w {eps = 1.0e-06 : f64} : tensor<?x?x64xf32>, tensor<64xf32> -> tensor<?x?x64xf32>
  return %y : tensor<?x?x64xf32>
}

// -----

// Plain matmuls keep the default maps; a transposed operand is expressed by
// the op's indexing_maps.
// CHECK-DAG: #[[$AT:.*]] = affine_map<(d0, d1, d2) -> (d2, d0)>
// CHECK-DAG: #[[$BT:.*]] = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-DAG: #[[$A:.*]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG: #[[$B:.*]] = affine_map<(d0, d1, d2) -> (d2, d1)>
// CHECK-DAG: #[[$C:.*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @matmul_2d
// CHECK-SAME:    %[[A:.*]]: tensor<?x64xf32>, %[[B:.*]]: tensor<64x?xf32>, %[[BT:.*]]: tensor<?x64xf32>, %[[AT:.*]]: tensor<64x?xf32>
// CHECK:         %[[E:.*]] = tensor.empty(%{{.*}}, %{{.*}}) : tensor<?x?xf32>
// CHECK:         %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK:         %[[FILL:.*]] = linalg.fill ins(%[[ZERO]] : f32) outs(%[[E]] : tensor<?x?xf32>)
// CHECK:         linalg.matmul ins(%[[A]], %[[B]] : tensor<?x64xf32>, tensor<64x?xf32>) outs(%[[FILL]] : tensor<?x?xf32>)
// CHECK:         linalg.matmul indexing_maps = [#[[$A]], #[[$BT]], #[[$C]]] ins(%[[A]], %[[BT]] :
// CHECK:         linalg.matmul indexing_maps = [#[[$AT]], #[[$B]], #[[$C]]] ins(%[[AT]], %[[B]] :
func.func @matmul_2d(%a: tensor<?x64xf32>, %b: tensor<64x?xf32>, %bt: tensor<?x64xf32>, %at: tensor<64x?xf32>)
    -> (tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32>) {
  %0 = loom.matmul %a, %b : tensor<?x64xf32>, tensor<64x?xf32> -> tensor<?x?xf32>
  %1 = loom.matmul %a, %bt {transpose_b = true} : tensor<?x64xf32>, tensor<?x64xf32> -> tensor<?x?xf32>
  %2 = loom.matmul %at, %b {transpose_a = true} : tensor<64x?xf32>, tensor<64x?xf32> -> tensor<?x?xf32>
  return %0, %1, %2 : tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32>
}

// -----

// CHECK-DAG: #[[$A:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG: #[[$BT:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d2, d3)>
// CHECK-DAG: #[[$C:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @batch_matmul_transposed
// CHECK-SAME:    %[[A:.*]]: tensor<?x?x64xf32>, %[[B:.*]]: tensor<?x128x64xf32>
// CHECK:         %[[FILL:.*]] = linalg.fill
// CHECK:         linalg.batch_matmul indexing_maps = [#[[$A]], #[[$BT]], #[[$C]]] ins(%[[A]], %[[B]] : tensor<?x?x64xf32>, tensor<?x128x64xf32>) outs(%[[FILL]] : tensor<?x?x128xf32>)
func.func @batch_matmul_transposed(%a: tensor<?x?x64xf32>, %b: tensor<?x128x64xf32>) -> tensor<?x?x128xf32> {
  %c = loom.matmul %a, %b {transpose_b = true} : tensor<?x?x64xf32>, tensor<?x128x64xf32> -> tensor<?x?x128xf32>
  return %c : tensor<?x?x128xf32>
}

// -----

// A stretching batch is materialized, then the batch dims collapse into one.
// CHECK-DAG: #[[$STRETCH:.*]] = affine_map<(d0, d1, d2, d3) -> (0, d1, d2, d3)>
// CHECK-LABEL: func.func @batch_matmul_broadcast
// CHECK-SAME:    %[[A:.*]]: tensor<1x?x?x64xf32>, %[[B:.*]]: tensor<2x?x64x16xf32>
// CHECK:         %[[FULL:.*]] = linalg.generic {indexing_maps = [#[[$STRETCH]], #{{.*}}]
// CHECK-SAME:      ins(%[[A]] : tensor<1x?x?x64xf32>) outs(%{{.*}} : tensor<2x?x?x64xf32>)
// CHECK:         %[[A3:.*]] = tensor.collapse_shape %[[FULL]] {{\[}}[0, 1], [2], [3]] : tensor<2x?x?x64xf32> into tensor<?x?x64xf32>
// CHECK:         %[[B3:.*]] = tensor.collapse_shape %[[B]] {{\[}}[0, 1], [2], [3]] : tensor<2x?x64x16xf32> into tensor<?x64x16xf32>
// CHECK:         %[[P:.*]] = linalg.batch_matmul ins(%[[A3]], %[[B3]] : tensor<?x?x64xf32>, tensor<?x64x16xf32>)
// CHECK:         tensor.expand_shape %[[P]] {{\[}}[0, 1], [2], [3]] output_shape [2, %{{.*}}, %{{.*}}, 16] : tensor<?x?x16xf32> into tensor<2x?x?x16xf32>
func.func @batch_matmul_broadcast(%a: tensor<1x?x?x64xf32>, %b: tensor<2x?x64x16xf32>) -> tensor<2x?x?x16xf32> {
  %c = loom.matmul %a, %b : tensor<1x?x?x64xf32>, tensor<2x?x64x16xf32> -> tensor<2x?x?x16xf32>
  return %c : tensor<2x?x?x16xf32>
}

// -----

// A shared rhs folds the lhs batch into M: one linalg.matmul.
// CHECK-LABEL: func.func @matmul_shared_rhs
// CHECK-SAME:    %[[A:.*]]: tensor<4x?x64xf32>, %[[B:.*]]: tensor<64x16xf32>
// CHECK:         %[[A2:.*]] = tensor.collapse_shape %[[A]] {{\[}}[0, 1], [2]] : tensor<4x?x64xf32> into tensor<?x64xf32>
// CHECK:         %[[P:.*]] = linalg.matmul ins(%[[A2]], %[[B]] : tensor<?x64xf32>, tensor<64x16xf32>)
// CHECK:         tensor.expand_shape %[[P]] {{\[}}[0, 1], [2]] output_shape [4, %{{.*}}, 16] : tensor<?x16xf32> into tensor<4x?x16xf32>
func.func @matmul_shared_rhs(%a: tensor<4x?x64xf32>, %b: tensor<64x16xf32>) -> tensor<4x?x16xf32> {
  %c = loom.matmul %a, %b : tensor<4x?x64xf32>, tensor<64x16xf32> -> tensor<4x?x16xf32>
  return %c : tensor<4x?x16xf32>
}

// -----

// linear flattens x to [M, in], multiplies by w^T, adds the bias, then
// restores the leading dims; two dynamic dims in one group use
// tensor.reshape.
// CHECK-DAG: #[[$A:.*]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG: #[[$BT:.*]] = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-DAG: #[[$C:.*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @linear
// CHECK-SAME:    %[[X:.*]]: tensor<?x?x64xf32>, %[[W:.*]]: tensor<256x64xf32>, %[[BIAS:.*]]: tensor<256xf32>
// CHECK:         %[[X2:.*]] = tensor.collapse_shape %[[X]] {{\[}}[0, 1], [2]] : tensor<?x?x64xf32> into tensor<?x64xf32>
// CHECK:         %[[FILL:.*]] = linalg.fill
// CHECK:         %[[P:.*]] = linalg.matmul indexing_maps = [#[[$A]], #[[$BT]], #[[$C]]] ins(%[[X2]], %[[W]] : tensor<?x64xf32>, tensor<256x64xf32>) outs(%[[FILL]] : tensor<?x256xf32>)
// CHECK:         %[[Y:.*]] = linalg.generic {{.*}} ins(%[[P]], %[[BIAS]] : tensor<?x256xf32>, tensor<256xf32>)
// CHECK:           arith.addf
// CHECK:         %[[SHAPE:.*]] = tensor.from_elements %{{.*}}, %{{.*}}, %{{.*}} : tensor<3xindex>
// CHECK:         tensor.reshape %[[Y]](%[[SHAPE]]) : (tensor<?x256xf32>, tensor<3xindex>) -> tensor<?x?x256xf32>
func.func @linear(%x: tensor<?x?x64xf32>, %w: tensor<256x64xf32>, %b: tensor<256xf32>) -> tensor<?x?x256xf32> {
  %y = loom.linear %x, %w, %b : tensor<?x?x64xf32>, tensor<256x64xf32>, tensor<256xf32> -> tensor<?x?x256xf32>
  return %y : tensor<?x?x256xf32>
}

// -----

// CHECK-LABEL: func.func @reshape
// CHECK-SAME:    %[[X:.*]]: tensor<?x?x512xf32>
// CHECK:         %[[FLAT:.*]] = tensor.collapse_shape %[[X]] {{\[}}[0, 1, 2]] : tensor<?x?x512xf32> into tensor<?xf32>
// CHECK:         tensor.reshape %[[FLAT]](%{{.*}}) : (tensor<?xf32>, tensor<4xindex>) -> tensor<?x?x8x64xf32>
// CHECK-LABEL: func.func @reshape_infer
// CHECK-SAME:    %[[X:.*]]: tensor<?x6xf32>
// CHECK:         %[[D0:.*]] = tensor.dim %[[X]], %c0
// CHECK:         %[[N:.*]] = arith.muli %[[D0]], %c6
// CHECK:         %[[INFERRED:.*]] = arith.divui %[[N]], %c2
// CHECK:         %[[FLAT:.*]] = tensor.collapse_shape %[[X]] {{\[}}[0, 1]] : tensor<?x6xf32> into tensor<?xf32>
// CHECK:         tensor.expand_shape %[[FLAT]] {{\[}}[0, 1]] output_shape [%[[INFERRED]], 2] : tensor<?xf32> into tensor<?x2xf32>
func.func @reshape(%x: tensor<?x?x512xf32>) -> tensor<?x?x8x64xf32> {
  %r = loom.reshape %x {shape = array<i64: 0, 0, 8, -1>} : tensor<?x?x512xf32> -> tensor<?x?x8x64xf32>
  return %r : tensor<?x?x8x64xf32>
}
func.func @reshape_infer(%x: tensor<?x6xf32>) -> tensor<?x2xf32> {
  %r = loom.reshape %x {shape = array<i64: -1, 2>} : tensor<?x6xf32> -> tensor<?x2xf32>
  return %r : tensor<?x2xf32>
}

// -----

// CHECK-LABEL: func.func @transpose
// CHECK-SAME:    %[[X:.*]]: tensor<?x?x8x64xf32>
// CHECK:         %[[E:.*]] = tensor.empty(%{{.*}}, %{{.*}}) : tensor<?x8x?x64xf32>
// CHECK:         linalg.transpose ins(%[[X]] : tensor<?x?x8x64xf32>) outs(%[[E]] : tensor<?x8x?x64xf32>) permutation = [0, 2, 1, 3]
func.func @transpose(%x: tensor<?x?x8x64xf32>) -> tensor<?x8x?x64xf32> {
  %t = loom.transpose %x {permutation = array<i64: 0, 2, 1, 3>} : tensor<?x?x8x64xf32> -> tensor<?x8x?x64xf32>
  return %t : tensor<?x8x?x64xf32>
}

// -----

// Static dims slice statically; dynamic ones clamp at run time.
// CHECK-LABEL: func.func @slice
// CHECK-SAME:    %[[X:.*]]: tensor<?x192xf32>, %[[Y:.*]]: tensor<?x?xf32>
// CHECK:         tensor.extract_slice %[[X]][0, 64] [%{{.*}}, 64] [1, 2] : tensor<?x192xf32> to tensor<?x64xf32>
// CHECK:         %[[D1:.*]] = tensor.dim %[[Y]], %c1
// CHECK:         %[[FROM_END:.*]] = arith.addi %[[D1]], %c-5
// CHECK:         %[[START:.*]] = arith.maxsi %[[FROM_END]], %c0
// CHECK:         %[[END:.*]] = arith.minsi %c100, %[[D1]]
// CHECK:         %[[LEN:.*]] = arith.subi %[[END]], %[[START]]
// CHECK:         %[[POS:.*]] = arith.maxsi %[[LEN]], %c0
// CHECK:         %[[BUMP:.*]] = arith.addi %[[POS]], %c2
// CHECK:         %[[SIZE:.*]] = arith.divui %[[BUMP]], %c3
// CHECK:         tensor.extract_slice %[[Y]][0, %[[START]]] [%{{.*}}, %[[SIZE]]] [1, 3] : tensor<?x?xf32> to tensor<?x?xf32>
func.func @slice(%x: tensor<?x192xf32>, %y: tensor<?x?xf32>) -> (tensor<?x64xf32>, tensor<?x?xf32>) {
  %a = loom.slice %x {axis = 1 : i64, start = 64 : i64, end = 1000 : i64, step = 2 : i64} : tensor<?x192xf32> -> tensor<?x64xf32>
  %b = loom.slice %y {axis = 1 : i64, start = -5 : i64, end = 100 : i64, step = 3 : i64} : tensor<?x?xf32> -> tensor<?x?xf32>
  return %a, %b : tensor<?x64xf32>, tensor<?x?xf32>
}

// -----

// CHECK-LABEL: func.func @concat
// CHECK-SAME:    %[[A:.*]]: tensor<?x?x128xf32>, %[[B:.*]]: tensor<?x?x64xf32>
// CHECK:         %[[E:.*]] = tensor.empty(%{{.*}}, %{{.*}}) : tensor<?x?x192xf32>
// CHECK:         %[[I0:.*]] = tensor.insert_slice %[[A]] into %[[E]][0, 0, 0] [%{{.*}}, %{{.*}}, 128] [1, 1, 1]
// CHECK:         tensor.insert_slice %[[B]] into %[[I0]][0, 0, 128] [%{{.*}}, %{{.*}}, 64] [1, 1, 1]
func.func @concat(%a: tensor<?x?x128xf32>, %b: tensor<?x?x64xf32>) -> tensor<?x?x192xf32> {
  %c = loom.concat %a, %b {axis = 2 : i64} : tensor<?x?x128xf32>, tensor<?x?x64xf32> -> tensor<?x?x192xf32>
  return %c : tensor<?x?x192xf32>
}

// -----

// CHECK-DAG: #[[$IDS:.*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @gather
// CHECK-SAME:    %[[T:.*]]: tensor<1000x64xf32>, %[[I:.*]]: tensor<?x?xi64>
// CHECK:         %[[LAST:.*]] = arith.subi %c1000, %c1
// CHECK:         linalg.generic {indexing_maps = [#[[$IDS]], #{{.*}}], iterator_types = ["parallel", "parallel", "parallel"]}
// CHECK-SAME:      ins(%[[I]] : tensor<?x?xi64>) outs(%{{.*}} : tensor<?x?x64xf32>)
// CHECK:           %[[IDX:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           %[[LO:.*]] = arith.maxsi %[[IDX]], %c0
// CHECK:           %[[CLAMPED:.*]] = arith.minsi %[[LO]], %[[LAST]]
// CHECK:           %[[COL:.*]] = linalg.index 2 : index
// CHECK:           tensor.extract %[[T]][%[[CLAMPED]], %[[COL]]] : tensor<1000x64xf32>
func.func @gather(%t: tensor<1000x64xf32>, %i: tensor<?x?xi64>) -> tensor<?x?x64xf32> {
  %e = loom.gather %t, %i {axis = 0 : i64} : tensor<1000x64xf32>, tensor<?x?xi64> -> tensor<?x?x64xf32>
  return %e : tensor<?x?x64xf32>
}

// -----

// CHECK-DAG: #[[$BIAS:.*]] = affine_map<(d0, d1) -> (d1)>
// CHECK-DAG: #[[$SCALAR:.*]] = affine_map<(d0, d1) -> ()>
// CHECK-LABEL: func.func @broadcast
// CHECK-SAME:    %[[B:.*]]: tensor<64xf32>, %[[X:.*]]: tensor<?x64xf32>
// CHECK:         %[[D0:.*]] = tensor.dim %[[X]], %c0
// CHECK:         %[[E:.*]] = tensor.empty(%[[D0]]) : tensor<?x64xf32>
// CHECK:         linalg.generic {indexing_maps = [#[[$BIAS]], #{{.*}}]
// CHECK-SAME:      ins(%[[B]] : tensor<64xf32>) outs(%[[E]] : tensor<?x64xf32>)
// CHECK:         %[[C:.*]] = arith.constant dense<5.000000e-01> : tensor<f32>
// CHECK:         linalg.generic {indexing_maps = [#[[$SCALAR]], #{{.*}}]
// CHECK-SAME:      ins(%[[C]] : tensor<f32>) outs(%{{.*}} : tensor<4x8xf32>)
func.func @broadcast(%b: tensor<64xf32>, %x: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<4x8xf32>) {
  %r = loom.broadcast %b like %x : tensor<64xf32>, tensor<?x64xf32> -> tensor<?x64xf32>
  %c = loom.constant dense<5.000000e-01> : tensor<f32>
  %s = loom.broadcast %c {shape = array<i64: 4, 8>} : tensor<f32> -> tensor<4x8xf32>
  return %r, %s : tensor<?x64xf32>, tensor<4x8xf32>
}

// -----

// CHECK-LABEL: func.func @iota
// CHECK-SAME:    %[[LIKE:.*]]: tensor<?x?x64xf32>
// CHECK-DAG:     %[[D0:.*]] = tensor.dim %[[LIKE]], %c0
// CHECK-DAG:     %[[D1:.*]] = tensor.dim %[[LIKE]], %c1
// CHECK:         %[[E:.*]] = tensor.empty(%[[D0]], %[[D1]]) : tensor<?x?x64xi64>
// CHECK:         linalg.generic {{.*}} outs(%[[E]] : tensor<?x?x64xi64>)
// CHECK:           %[[I:.*]] = linalg.index 1 : index
// CHECK:           arith.index_cast %[[I]] : index to i64
// CHECK:         linalg.generic {{.*}} outs(%{{.*}} : tensor<8xf32>)
// CHECK:           %[[J:.*]] = linalg.index 0 : index
// CHECK:           %[[JI:.*]] = arith.index_cast %[[J]] : index to i64
// CHECK:           arith.sitofp %[[JI]] : i64 to f32
func.func @iota(%x: tensor<?x?x64xf32>) -> (tensor<?x?x64xi64>, tensor<8xf32>) {
  %p = loom.iota like %x : tensor<?x?x64xf32> {axis = 1 : i64} -> tensor<?x?x64xi64>
  %r = loom.iota {axis = 0 : i64} -> tensor<8xf32>
  return %p, %r : tensor<?x?x64xi64>, tensor<8xf32>
}

// -----

// sin and cos stay math ops (the CPU target calls libm for them).
// CHECK-LABEL: func.func @sin_cos
// CHECK:         linalg.generic
// CHECK:           math.sin %{{.*}} : f32
// CHECK:         linalg.generic
// CHECK:           math.cos %{{.*}} : f32
func.func @sin_cos(%a: tensor<4xf32>) -> tensor<4xf32> {
  %s = loom.sin %a : tensor<4xf32> -> tensor<4xf32>
  %c = loom.cos %s : tensor<4xf32> -> tensor<4xf32>
  return %c : tensor<4xf32>
}

// -----

// A run-time length clamps start to [0, dim] and the length to
// [0, dim - start]; a static size clamps start to [0, dim - size].
// CHECK-LABEL: func.func @dynamic_slice
// CHECK-SAME:    %[[X:.*]]: tensor<?x16x8xf32>, %[[S:.*]]: tensor<i64>, %[[N:.*]]: tensor<i32>
// CHECK:         %[[SV:.*]] = tensor.extract %[[S]][] : tensor<i64>
// CHECK:         %[[SI:.*]] = arith.index_cast %[[SV]] : i64 to index
// CHECK:         %[[SLO:.*]] = arith.maxsi %[[SI]], %{{.*}} : index
// CHECK:         %[[START:.*]] = arith.minsi %[[SLO]], %c16 : index
// CHECK:         %[[ROOM:.*]] = arith.subi %c16, %[[START]] : index
// CHECK:         %[[NV:.*]] = tensor.extract %[[N]][] : tensor<i32>
// CHECK:         %[[NI:.*]] = arith.index_cast %[[NV]] : i32 to index
// CHECK:         %[[NLO:.*]] = arith.maxsi %[[NI]], %{{.*}} : index
// CHECK:         %[[LEN:.*]] = arith.minsi %[[NLO]], %[[ROOM]] : index
// CHECK:         tensor.extract_slice %[[X]][0, %[[START]], 0] [%{{.*}}, %[[LEN]], 8] [1, 1, 1] : tensor<?x16x8xf32> to tensor<?x?x8xf32>
// CHECK:         %[[SV2:.*]] = tensor.extract %[[S]][] : tensor<i64>
// CHECK:         %[[SI2:.*]] = arith.index_cast %[[SV2]] : i64 to index
// CHECK:         %[[LAST:.*]] = arith.subi %{{.*}}, %c4 : index
// CHECK:         %[[SLO2:.*]] = arith.maxsi %[[SI2]], %{{.*}} : index
// CHECK:         %[[START2:.*]] = arith.minsi %[[SLO2]], %[[LAST]] : index
// CHECK:         tensor.extract_slice %[[X]][0, %[[START2]], 0] [%{{.*}}, 4, 8] [1, 1, 1] : tensor<?x16x8xf32> to tensor<?x4x8xf32>
func.func @dynamic_slice(%x: tensor<?x16x8xf32>, %s: tensor<i64>, %n: tensor<i32>) -> (tensor<?x?x8xf32>, tensor<?x4x8xf32>) {
  %a = loom.dynamic_slice %x, %s, %n {axis = 1 : i64} : tensor<?x16x8xf32>, tensor<i64>, tensor<i32> -> tensor<?x?x8xf32>
  %b = loom.dynamic_slice %x, %s {axis = 1 : i64, size = 4 : i64} : tensor<?x16x8xf32>, tensor<i64> -> tensor<?x4x8xf32>
  return %a, %b : tensor<?x?x8xf32>, tensor<?x4x8xf32>
}

// -----

// A static update is inserted whole at a start clamped to [0, 16 - 3]; a
// symbolic one is first cut to the target, and start clamps to what is left.
// CHECK-LABEL: func.func @dynamic_update_slice
// CHECK-SAME:    %[[T:.*]]: tensor<4x16x8xf32>, %[[U:.*]]: tensor<4x3x8xf32>, %[[K:.*]]: tensor<?x?x8xf32>, %[[S:.*]]: tensor<i32>
// CHECK:         %[[LAST:.*]] = arith.subi %c16, %c3 : index
// CHECK:         %[[SV:.*]] = tensor.extract %[[S]][] : tensor<i32>
// CHECK:         %[[SI:.*]] = arith.index_cast %[[SV]] : i32 to index
// CHECK:         %[[SLO:.*]] = arith.maxsi %[[SI]], %{{.*}} : index
// CHECK:         %[[START:.*]] = arith.minsi %[[SLO]], %[[LAST]] : index
// CHECK:         tensor.insert_slice %[[U]] into %[[T]][0, %[[START]], 0] [4, 3, 8] [1, 1, 1] : tensor<4x3x8xf32> into tensor<4x16x8xf32>
// CHECK:         %[[D0:.*]] = tensor.dim %[[K]], %{{.*}} : tensor<?x?x8xf32>
// CHECK:         %[[E0:.*]] = arith.minsi %[[D0]], %c4 : index
// CHECK:         %[[D1:.*]] = tensor.dim %[[K]], %{{.*}} : tensor<?x?x8xf32>
// CHECK:         %[[E1:.*]] = arith.minsi %[[D1]], %{{.*}} : index
// CHECK:         %[[CUT:.*]] = tensor.extract_slice %[[K]][0, 0, 0] [%[[E0]], %[[E1]], 8] [1, 1, 1] : tensor<?x?x8xf32> to tensor<?x?x8xf32>
// CHECK:         %[[LAST2:.*]] = arith.subi %{{.*}}, %[[E1]] : index
// CHECK:         %[[SV2:.*]] = tensor.extract %[[S]][] : tensor<i32>
// CHECK:         %[[SI2:.*]] = arith.index_cast %[[SV2]] : i32 to index
// CHECK:         %[[SLO2:.*]] = arith.maxsi %[[SI2]], %{{.*}} : index
// CHECK:         %[[START2:.*]] = arith.minsi %[[SLO2]], %[[LAST2]] : index
// CHECK:         tensor.insert_slice %[[CUT]] into %[[T]][0, %[[START2]], 0] [%[[E0]], %[[E1]], 8] [1, 1, 1] : tensor<?x?x8xf32> into tensor<4x16x8xf32>
func.func @dynamic_update_slice(%t: tensor<4x16x8xf32>, %u: tensor<4x3x8xf32>, %k: tensor<?x?x8xf32>, %s: tensor<i32>) -> (tensor<4x16x8xf32>, tensor<4x16x8xf32>) {
  %a = loom.dynamic_update_slice %t, %u, %s {axis = 1 : i64} : tensor<4x16x8xf32>, tensor<4x3x8xf32>, tensor<i32> -> tensor<4x16x8xf32>
  %b = loom.dynamic_update_slice %t, %k, %s {axis = 1 : i64} : tensor<4x16x8xf32>, tensor<?x?x8xf32>, tensor<i32> -> tensor<4x16x8xf32>
  return %a, %b : tensor<4x16x8xf32>, tensor<4x16x8xf32>
}
