// RUN: loom-opt %s --split-input-file --verify-diagnostics

func.func @add_mismatch(%a: tensor<4x8xf32>, %b: tensor<4x7xf32>) {
  // expected-error@+2 {{operands are not broadcast-compatible: [4, 8] vs [4, 7]}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.add %a, %b : tensor<4x8xf32>, tensor<4x7xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @add_dynamic_vs_static(%a: tensor<?xf32>, %b: tensor<4xf32>) {
  // expected-error@+2 {{operands are not broadcast-compatible: [?] vs [4]}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.add %a, %b : tensor<?xf32>, tensor<4xf32> -> tensor<?xf32>
  return
}

// -----

func.func @add_types(%a: tensor<4xf32>, %b: tensor<4xf64>) {
  // expected-error@+2 {{operand element types differ: 'f32' vs 'f64'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.add %a, %b : tensor<4xf32>, tensor<4xf64> -> tensor<4xf32>
  return
}

// -----

func.func @add_bool(%a: tensor<4xi1>) {
  // expected-error@+2 {{operand must have a number type elements, got 'i1'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.add %a, %a : tensor<4xi1>, tensor<4xi1> -> tensor<4xi1>
  return
}

// -----

func.func @unsupported_element(%a: tensor<4xi8>) {
  // expected-error@+2 {{operand has unsupported element type 'i8'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.neg %a : tensor<4xi8> -> tensor<4xi8>
  return
}

// -----

func.func @exp_int(%a: tensor<4xi32>) {
  // expected-error@+2 {{operand must have a float type elements, got 'i32'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.exp %a : tensor<4xi32> -> tensor<4xi32>
  return
}

// -----

func.func @and_float(%a: tensor<4xf32>) {
  // expected-error@+2 {{operand must have i1 (bool) elements, got 'f32'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.and %a, %a : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
  return
}

// -----

func.func @wrong_result(%a: tensor<4xf32>) {
  // expected-error@+2 {{inferred type(s) 'tensor<4xf32>' are incompatible with return type(s) of operation 'tensor<5xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.add %a, %a : tensor<4xf32>, tensor<4xf32> -> tensor<5xf32>
  return
}

// -----

func.func @cmp_predicate(%a: tensor<4xf32>) {
  // expected-error@+2 {{unknown predicate 'lq' (expected eq, ne, lt, le, gt or ge)}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.cmp "lq" %a, %a : tensor<4xf32>, tensor<4xf32> -> tensor<4xi1>
  return
}

// -----

func.func @cmp_types(%a: tensor<4xf32>, %b: tensor<4xi32>) {
  // expected-error@+2 {{operand element types differ: 'f32' vs 'i32'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.cmp "eq" %a, %b : tensor<4xf32>, tensor<4xi32> -> tensor<4xi1>
  return
}

// -----

func.func @select_cond(%a: tensor<4xf32>) {
  // expected-error@+2 {{condition must have i1 elements, got 'f32'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.select %a, %a, %a : tensor<4xf32>, tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
  return
}

// -----

func.func @select_branches(%c: tensor<4xi1>, %a: tensor<4xf32>, %b: tensor<4xf64>) {
  // expected-error@+2 {{branch element types differ: 'f32' vs 'f64'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.select %c, %a, %b : tensor<4xi1>, tensor<4xf32>, tensor<4xf64> -> tensor<4xf32>
  return
}

// -----

func.func @select_shapes(%c: tensor<3xi1>, %a: tensor<4xf32>) {
  // expected-error@+2 {{operands are not broadcast-compatible: [3] vs [4]}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.select %c, %a, %a : tensor<3xi1>, tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
  return
}

// -----

func.func @constant_dynamic() {
  // expected-error@+2 {{value must be a statically shaped tensor}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = "loom.constant"() {value = dense<1.0> : vector<2xf32>} : () -> tensor<2xf32>
  return
}

// -----

func.func @constant_element() {
  // expected-error@+1 {{value has unsupported element type 'i8'}}
  %0 = loom.constant dense<1> : tensor<2xi8>
  return
}

// -----

func.func @iota_bool() {
  // expected-error@+1 {{result must have number elements, got 'i1'}}
  %0 = loom.iota {axis = 0 : i64} -> tensor<4xi1>
  return
}

// -----

func.func @iota_axis() {
  // expected-error@+1 {{axis 1 is out of range for rank 1}}
  %0 = loom.iota {axis = 1 : i64} -> tensor<4xi64>
  return
}

// -----

func.func @iota_like(%x: tensor<?x4xf32>) {
  // expected-error@+1 {{result shape [?, 5] differs from the shape [?, 4] of 'like'}}
  %0 = loom.iota like %x : tensor<?x4xf32> {axis = 0 : i64} -> tensor<?x5xi64>
  return
}

// -----

func.func @iota_dynamic() {
  // expected-error@+1 {{result shape [?] has symbolic dimensions: give a 'like' operand}}
  %0 = loom.iota {axis = 0 : i64} -> tensor<?xi64>
  return
}

// -----

func.func @cast_shape(%x: tensor<4xf32>) {
  // expected-error@+1 {{result shape [5] differs from operand shape [4]}}
  %0 = loom.cast %x : tensor<4xf32> -> tensor<5xi32>
  return
}

// -----

func.func @cast_type(%x: tensor<4xf32>) {
  // expected-error@+1 {{unsupported element types 'f32' -> 'i8'}}
  %0 = loom.cast %x : tensor<4xf32> -> tensor<4xi8>
  return
}

// -----

func.func @reduce_axis(%x: tensor<4x8xf32>) {
  // expected-error@+2 {{axis 2 is out of range for rank 2}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.sum %x {axes = array<i64: 2>} : tensor<4x8xf32> -> tensor<4xf32>
  return
}

// -----

func.func @reduce_twice(%x: tensor<4x8xf32>) {
  // expected-error@+2 {{axis 1 is listed twice}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.sum %x {axes = array<i64: 1, 1>} : tensor<4x8xf32> -> tensor<4xf32>
  return
}

// -----

func.func @mean_int(%x: tensor<4x8xi32>) {
  // expected-error@+2 {{operand must have a float type elements, got 'i32'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.mean %x {axes = array<i64: 1>} : tensor<4x8xi32> -> tensor<4xi32>
  return
}

// -----

func.func @softmax_axis(%x: tensor<4x8xf32>) {
  // expected-error@+2 {{axis -1 is out of range for rank 2}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.softmax %x {axis = -1 : i64} : tensor<4x8xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @softmax_int(%x: tensor<4x8xi64>) {
  // expected-error@+2 {{operand must have a float type elements, got 'i64'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.log_softmax %x {axis = 1 : i64} : tensor<4x8xi64> -> tensor<4x8xi64>
  return
}

// -----

func.func @rms_norm_weight(%x: tensor<4x8xf32>, %w: tensor<4xf32>) {
  // expected-error@+2 {{weight shape [4] must be [last dimension of operand] = [8]}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.rms_norm %x, %w {eps = 1.0e-6 : f64} : tensor<4x8xf32>, tensor<4xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @rms_norm_types(%x: tensor<4x8xf32>, %w: tensor<8xf64>) {
  // expected-error@+2 {{weight element type 'f64' differs from operand's 'f32'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.rms_norm %x, %w {eps = 1.0e-6 : f64} : tensor<4x8xf32>, tensor<8xf64> -> tensor<4x8xf32>
  return
}

// -----

func.func @rms_norm_rank(%x: tensor<f32>, %w: tensor<1xf32>) {
  // expected-error@+2 {{operand must have rank >= 1}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.rms_norm %x, %w {eps = 1.0e-6 : f64} : tensor<f32>, tensor<1xf32> -> tensor<f32>
  return
}

// -----

func.func @rms_norm_eps(%x: tensor<4x8xf32>, %w: tensor<8xf32>) {
  // expected-error@+2 {{eps must be >= 0}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.rms_norm %x, %w {eps = -1.0 : f64} : tensor<4x8xf32>, tensor<8xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @matmul_contraction(%a: tensor<4x8xf32>, %b: tensor<7x5xf32>) {
  // expected-error@+2 {{contraction dimensions differ: [4, 8] @ [7, 5]}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.matmul %a, %b : tensor<4x8xf32>, tensor<7x5xf32> -> tensor<4x5xf32>
  return
}

// -----

func.func @matmul_rank(%a: tensor<8xf32>, %b: tensor<8x5xf32>) {
  // expected-error@+2 {{operands must have rank >= 2, got [8] and [8, 5]}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.matmul %a, %b : tensor<8xf32>, tensor<8x5xf32> -> tensor<5xf32>
  return
}

// -----

func.func @matmul_types(%a: tensor<4x8xf32>, %b: tensor<8x5xf64>) {
  // expected-error@+2 {{operand element types differ: 'f32' vs 'f64'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.matmul %a, %b : tensor<4x8xf32>, tensor<8x5xf64> -> tensor<4x5xf32>
  return
}

// -----

func.func @matmul_batch(%a: tensor<2x4x8xf32>, %b: tensor<3x8x5xf32>) {
  // expected-error@+2 {{batch dimensions are not broadcast-compatible: [2] vs [3]}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.matmul %a, %b : tensor<2x4x8xf32>, tensor<3x8x5xf32> -> tensor<2x4x5xf32>
  return
}

// -----

func.func @matmul_bool(%a: tensor<4x8xi1>) {
  // expected-error@+2 {{operand must have a number type elements, got 'i1'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.matmul %a, %a {transpose_b = true} : tensor<4x8xi1>, tensor<4x8xi1> -> tensor<4x4xi1>
  return
}

// -----

func.func @linear_features(%x: tensor<4x8xf32>, %w: tensor<16x7xf32>) {
  // expected-error@+2 {{input features differ: operand [4, 8] vs weight [16, 7]}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.linear %x, %w : tensor<4x8xf32>, tensor<16x7xf32> -> tensor<4x16xf32>
  return
}

// -----

func.func @linear_rank(%x: tensor<4x8xf32>, %w: tensor<8xf32>) {
  // expected-error@+2 {{expects operand [..., in] and weight [out, in], got [4, 8] and [8]}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.linear %x, %w : tensor<4x8xf32>, tensor<8xf32> -> tensor<4xf32>
  return
}

// -----

func.func @linear_types(%x: tensor<4x8xf32>, %w: tensor<16x8xf64>) {
  // expected-error@+2 {{weight element type 'f64' differs from operand's 'f32'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.linear %x, %w : tensor<4x8xf32>, tensor<16x8xf64> -> tensor<4x16xf32>
  return
}

// -----

func.func @linear_bias(%x: tensor<4x8xf32>, %w: tensor<16x8xf32>, %b: tensor<8xf32>) {
  // expected-error@+2 {{bias tensor<8xf32> must be a vector of 16 'f32'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.linear %x, %w, %b : tensor<4x8xf32>, tensor<16x8xf32>, tensor<8xf32> -> tensor<4x16xf32>
  return
}

// -----

func.func @reshape_count(%x: tensor<4x8xf32>) {
  // expected-error@+2 {{cannot reshape [4, 8] (32 elements outside copied dimensions) to [5, 6] (30)}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.reshape %x {shape = array<i64: 5, 6>} : tensor<4x8xf32> -> tensor<5x6xf32>
  return
}

// -----

func.func @reshape_two_inferred(%x: tensor<4x8xf32>) {
  // expected-error@+2 {{at most one shape entry may be -1}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.reshape %x {shape = array<i64: -1, -1>} : tensor<4x8xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @reshape_bad_entry(%x: tensor<4x8xf32>) {
  // expected-error@+2 {{invalid shape entry -3}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.reshape %x {shape = array<i64: -3, 8>} : tensor<4x8xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @reshape_copy_missing(%x: tensor<32xf32>) {
  // expected-error@+2 {{shape entry 1 copies a dimension the operand (rank 1) does not have}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.reshape %x {shape = array<i64: 4, 0>} : tensor<32xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @reshape_indivisible(%x: tensor<4x8xf32>) {
  // expected-error@+2 {{cannot reshape [4, 8] to [5, -1]}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.reshape %x {shape = array<i64: 5, -1>} : tensor<4x8xf32> -> tensor<5x?xf32>
  return
}

// -----

func.func @reshape_symbolic(%x: tensor<?x8xf32>) {
  // expected-error@+2 {{operand [?, 8] has a symbolic dimension that the shape neither copies (0) nor infers (-1)}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.reshape %x {shape = array<i64: 4, 2, 4>} : tensor<?x8xf32> -> tensor<4x2x4xf32>
  return
}

// -----

func.func @transpose_size(%x: tensor<4x8xf32>) {
  // expected-error@+2 {{permutation has 3 entries for rank 2}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.transpose %x {permutation = array<i64: 0, 1, 2>} : tensor<4x8xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @transpose_perm(%x: tensor<4x8xf32>) {
  // expected-error@+2 {{permutation [1, 1] is not a permutation}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.transpose %x {permutation = array<i64: 1, 1>} : tensor<4x8xf32> -> tensor<8x8xf32>
  return
}

// -----

func.func @slice_axis(%x: tensor<4x8xf32>) {
  // expected-error@+2 {{axis 2 is out of range for rank 2}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.slice %x {axis = 2 : i64, start = 0 : i64, end = 1 : i64} : tensor<4x8xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @slice_step(%x: tensor<4x8xf32>) {
  // expected-error@+2 {{step must be >= 1, got 0}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.slice %x {axis = 1 : i64, start = 0 : i64, end = 1 : i64, step = 0 : i64} : tensor<4x8xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @concat_empty() {
  // expected-error@+2 {{needs at least one operand}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = "loom.concat"() {axis = 0 : i64} : () -> tensor<4xf32>
  return
}

// -----

func.func @concat_axis(%a: tensor<4xf32>) {
  // expected-error@+2 {{axis 1 is out of range for rank 1}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.concat %a, %a {axis = 1 : i64} : tensor<4xf32>, tensor<4xf32> -> tensor<8xf32>
  return
}

// -----

func.func @concat_types(%a: tensor<4xf32>, %b: tensor<4xf64>) {
  // expected-error@+2 {{operand 1 tensor<4xf64> does not match operand 0 tensor<4xf32> in rank and element type}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.concat %a, %b {axis = 0 : i64} : tensor<4xf32>, tensor<4xf64> -> tensor<8xf32>
  return
}

// -----

func.func @concat_shapes(%a: tensor<4x2xf32>, %b: tensor<4x3xf32>) {
  // expected-error@+2 {{operand 1 has shape [4, 3], which differs from [4, 2] outside axis 0}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.concat %a, %b {axis = 0 : i64} : tensor<4x2xf32>, tensor<4x3xf32> -> tensor<8x2xf32>
  return
}

// -----

func.func @gather_axis(%x: tensor<4x8xf32>, %i: tensor<3xi64>) {
  // expected-error@+2 {{axis 2 is out of range for rank 2}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.gather %x, %i {axis = 2 : i64} : tensor<4x8xf32>, tensor<3xi64> -> tensor<4x8xf32>
  return
}

// -----

func.func @gather_indices(%x: tensor<4x8xf32>, %i: tensor<3xf32>) {
  // expected-error@+2 {{indices must be i32 or i64, got 'f32'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.gather %x, %i {axis = 0 : i64} : tensor<4x8xf32>, tensor<3xf32> -> tensor<3x8xf32>
  return
}

// -----

func.func @broadcast_both(%x: tensor<4xf32>, %y: tensor<2x4xf32>) {
  // expected-error@+2 {{takes either 'like' or 'shape', not both}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.broadcast %x like %y {shape = array<i64: 2, 4>} : tensor<4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
  return
}

// -----

func.func @broadcast_neither(%x: tensor<4xf32>) {
  // expected-error@+2 {{needs 'like' or 'shape'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.broadcast %x : tensor<4xf32> -> tensor<4xf32>
  return
}

// -----

func.func @broadcast_dynamic_shape(%x: tensor<4xf32>) {
  // expected-error@+2 {{shape [?, 4] must be static}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.broadcast %x {shape = array<i64: -9223372036854775808, 4>} : tensor<4xf32> -> tensor<?x4xf32>
  return
}

// -----

func.func @broadcast_incompatible(%x: tensor<3xf32>) {
  // expected-error@+2 {{cannot broadcast [3] to [2, 4]}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.broadcast %x {shape = array<i64: 2, 4>} : tensor<3xf32> -> tensor<2x4xf32>
  return
}

// -----

func.func @sin_int(%a: tensor<4xi64>) {
  // expected-error@+2 {{operand must have a float type elements, got 'i64'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.sin %a : tensor<4xi64> -> tensor<4xi64>
  return
}

// -----

func.func @cos_bool(%a: tensor<4xi1>) {
  // expected-error@+2 {{operand must have a float type elements, got 'i1'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.cos %a : tensor<4xi1> -> tensor<4xi1>
  return
}

// -----

func.func @dynamic_slice_axis(%x: tensor<4x8xf32>, %s: tensor<i64>, %n: tensor<i64>) {
  // expected-error@+2 {{axis 2 is out of range for rank 2}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.dynamic_slice %x, %s, %n {axis = 2 : i64} : tensor<4x8xf32>, tensor<i64>, tensor<i64> -> tensor<4x?xf32>
  return
}

// -----

func.func @dynamic_slice_start_rank(%x: tensor<4x8xf32>, %s: tensor<1xi64>, %n: tensor<i64>) {
  // expected-error@+2 {{start must be a rank-0 tensor of i32 or i64, got tensor<1xi64>}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.dynamic_slice %x, %s, %n {axis = 1 : i64} : tensor<4x8xf32>, tensor<1xi64>, tensor<i64> -> tensor<4x?xf32>
  return
}

// -----

func.func @dynamic_slice_start_float(%x: tensor<4x8xf32>, %s: tensor<f32>) {
  // expected-error@+2 {{start must be a rank-0 tensor of i32 or i64, got tensor<f32>}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.dynamic_slice %x, %s {axis = 1 : i64, size = 2 : i64} : tensor<4x8xf32>, tensor<f32> -> tensor<4x2xf32>
  return
}

// -----

func.func @dynamic_slice_length_type(%x: tensor<4x8xf32>, %s: tensor<i64>, %n: tensor<i1>) {
  // expected-error@+2 {{length must be a rank-0 tensor of i32 or i64, got tensor<i1>}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.dynamic_slice %x, %s, %n {axis = 1 : i64} : tensor<4x8xf32>, tensor<i64>, tensor<i1> -> tensor<4x?xf32>
  return
}

// -----

func.func @dynamic_slice_both(%x: tensor<4x8xf32>, %s: tensor<i64>, %n: tensor<i64>) {
  // expected-error@+2 {{takes either a 'length' operand or a 'size' attribute, not both}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.dynamic_slice %x, %s, %n {axis = 1 : i64, size = 2 : i64} : tensor<4x8xf32>, tensor<i64>, tensor<i64> -> tensor<4x2xf32>
  return
}

// -----

func.func @dynamic_slice_neither(%x: tensor<4x8xf32>, %s: tensor<i64>) {
  // expected-error@+2 {{needs a 'length' operand or a 'size' attribute}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.dynamic_slice %x, %s {axis = 1 : i64} : tensor<4x8xf32>, tensor<i64> -> tensor<4x8xf32>
  return
}

// -----

func.func @dynamic_slice_negative_size(%x: tensor<4x8xf32>, %s: tensor<i64>) {
  // expected-error@+2 {{size must be >= 0, got -1}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.dynamic_slice %x, %s {axis = 1 : i64, size = -1 : i64} : tensor<4x8xf32>, tensor<i64> -> tensor<4x8xf32>
  return
}

// -----

func.func @dynamic_slice_size_too_large(%x: tensor<4x8xf32>, %s: tensor<i64>) {
  // expected-error@+2 {{size 9 needs a static dimension of at least that along axis 1, got [4, 8] (use a 'length' operand for a run-time length)}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.dynamic_slice %x, %s {axis = 1 : i64, size = 9 : i64} : tensor<4x8xf32>, tensor<i64> -> tensor<4x9xf32>
  return
}

// -----

func.func @dynamic_slice_size_dynamic_dim(%x: tensor<4x?xf32>, %s: tensor<i64>) {
  // expected-error@+2 {{size 2 needs a static dimension of at least that along axis 1, got [4, ?]}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.dynamic_slice %x, %s {axis = 1 : i64, size = 2 : i64} : tensor<4x?xf32>, tensor<i64> -> tensor<4x2xf32>
  return
}

// -----

func.func @dynamic_slice_wrong_result(%x: tensor<4x8xf32>, %s: tensor<i64>) {
  // expected-error@+2 {{inferred type(s) 'tensor<4x2xf32>' are incompatible with return type(s) of operation 'tensor<4x3xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.dynamic_slice %x, %s {axis = 1 : i64, size = 2 : i64} : tensor<4x8xf32>, tensor<i64> -> tensor<4x3xf32>
  return
}

// -----

func.func @dynamic_update_slice_axis(%t: tensor<4x8xf32>, %u: tensor<4x2xf32>, %s: tensor<i64>) {
  // expected-error@+2 {{axis -1 is out of range for rank 2}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.dynamic_update_slice %t, %u, %s {axis = -1 : i64} : tensor<4x8xf32>, tensor<4x2xf32>, tensor<i64> -> tensor<4x8xf32>
  return
}

// -----

func.func @dynamic_update_slice_start(%t: tensor<4x8xf32>, %u: tensor<4x2xf32>, %s: tensor<2xi32>) {
  // expected-error@+2 {{start must be a rank-0 tensor of i32 or i64, got tensor<2xi32>}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.dynamic_update_slice %t, %u, %s {axis = 1 : i64} : tensor<4x8xf32>, tensor<4x2xf32>, tensor<2xi32> -> tensor<4x8xf32>
  return
}

// -----

func.func @dynamic_update_slice_element(%t: tensor<4x8xf32>, %u: tensor<4x2xf64>, %s: tensor<i64>) {
  // expected-error@+2 {{update tensor<4x2xf64> does not match target tensor<4x8xf32> in rank and element type}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.dynamic_update_slice %t, %u, %s {axis = 1 : i64} : tensor<4x8xf32>, tensor<4x2xf64>, tensor<i64> -> tensor<4x8xf32>
  return
}

// -----

func.func @dynamic_update_slice_rank(%t: tensor<4x8xf32>, %u: tensor<2xf32>, %s: tensor<i64>) {
  // expected-error@+2 {{update tensor<2xf32> does not match target tensor<4x8xf32> in rank and element type}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.dynamic_update_slice %t, %u, %s {axis = 1 : i64} : tensor<4x8xf32>, tensor<2xf32>, tensor<i64> -> tensor<4x8xf32>
  return
}

// -----

func.func @dynamic_update_slice_other_dim(%t: tensor<4x8xf32>, %u: tensor<5x2xf32>, %s: tensor<i64>) {
  // expected-error@+2 {{update [5, 2] does not fit target [4, 8]: dimension 0 is 5, more than 4}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.dynamic_update_slice %t, %u, %s {axis = 1 : i64} : tensor<4x8xf32>, tensor<5x2xf32>, tensor<i64> -> tensor<4x8xf32>
  return
}

// -----

func.func @dynamic_update_slice_too_long(%t: tensor<4x8xf32>, %u: tensor<?x9xf32>, %s: tensor<i64>) {
  // expected-error@+2 {{update [?, 9] does not fit target [4, 8]: dimension 1 is 9, more than 8}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.dynamic_update_slice %t, %u, %s {axis = 1 : i64} : tensor<4x8xf32>, tensor<?x9xf32>, tensor<i64> -> tensor<4x8xf32>
  return
}

// -----

func.func @dynamic_update_slice_wrong_result(%t: tensor<4x8xf32>, %u: tensor<4x2xf32>, %s: tensor<i64>) {
  // expected-error@+2 {{inferred type(s) 'tensor<4x8xf32>' are incompatible with return type(s) of operation 'tensor<4x2xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %0 = loom.dynamic_update_slice %t, %u, %s {axis = 1 : i64} : tensor<4x8xf32>, tensor<4x2xf32>, tensor<i64> -> tensor<4x2xf32>
  return
}

// -----

func.func @mla_attention_heads(%qn: tensor<1x1x2x8xf32>, %qp: tensor<1x1x3x4xf32>,
                               %kv: tensor<1x1x16xf32>, %kpe: tensor<1x1x4xf32>,
                               %w: tensor<32x16xf32>, %kc: tensor<3x10x2x12xf32>,
                               %vc: tensor<3x10x2x8xf32>, %pos: tensor<i64>) {
  // expected-error@+2 {{the head count is 2 in q_nope (dimension 2) but 3 in q_pe (dimension 2)}}
  // expected-error@+1 {{failed to infer returned types}}
  %o, %k2, %v2 = loom.mla_attention %qn, %qp, %kv, %kpe, %w, %kc, %vc, %pos {scale = 0.25 : f64}
      : tensor<1x1x2x8xf32>, tensor<1x1x3x4xf32>, tensor<1x1x16xf32>, tensor<1x1x4xf32>, tensor<32x16xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>, tensor<i64>
      -> tensor<1x1x2x8xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
  return
}

// -----

func.func @mla_attention_wkv_b(%qn: tensor<1x1x2x8xf32>, %qp: tensor<1x1x2x4xf32>,
                               %kv: tensor<1x1x16xf32>, %kpe: tensor<1x1x4xf32>,
                               %w: tensor<30x16xf32>, %kc: tensor<3x10x2x12xf32>,
                               %vc: tensor<3x10x2x8xf32>, %pos: tensor<i64>) {
  // expected-error@+2 {{wkv_b has 30 rows, not n_heads * (qk_nope_head_dim + v_head_dim) = 32}}
  // expected-error@+1 {{failed to infer returned types}}
  %o, %k2, %v2 = loom.mla_attention %qn, %qp, %kv, %kpe, %w, %kc, %vc, %pos {scale = 0.25 : f64}
      : tensor<1x1x2x8xf32>, tensor<1x1x2x4xf32>, tensor<1x1x16xf32>, tensor<1x1x4xf32>, tensor<30x16xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>, tensor<i64>
      -> tensor<1x1x2x8xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
  return
}

// -----

func.func @mla_attention_k_cache(%qn: tensor<1x1x2x8xf32>, %qp: tensor<1x1x2x4xf32>,
                                 %kv: tensor<1x1x16xf32>, %kpe: tensor<1x1x4xf32>,
                                 %w: tensor<32x16xf32>, %kc: tensor<3x10x2x8xf32>,
                                 %vc: tensor<3x10x2x8xf32>, %pos: tensor<i64>) {
  // expected-error@+2 {{k_cache holds 8 values per head, not qk_nope_head_dim + qk_rope_head_dim = 12}}
  // expected-error@+1 {{failed to infer returned types}}
  %o, %k2, %v2 = loom.mla_attention %qn, %qp, %kv, %kpe, %w, %kc, %vc, %pos {scale = 0.25 : f64}
      : tensor<1x1x2x8xf32>, tensor<1x1x2x4xf32>, tensor<1x1x16xf32>, tensor<1x1x4xf32>, tensor<32x16xf32>, tensor<3x10x2x8xf32>, tensor<3x10x2x8xf32>, tensor<i64>
      -> tensor<1x1x2x8xf32>, tensor<3x10x2x8xf32>, tensor<3x10x2x8xf32>
  return
}

// -----

func.func @mla_attention_rank(%qn: tensor<1x2x8xf32>, %qp: tensor<1x1x2x4xf32>,
                              %kv: tensor<1x1x16xf32>, %kpe: tensor<1x1x4xf32>,
                              %w: tensor<32x16xf32>, %kc: tensor<3x10x2x12xf32>,
                              %vc: tensor<3x10x2x8xf32>, %pos: tensor<f32>) {
  // expected-error@+2 {{start_pos must be a rank-0 tensor of i32 or i64, got tensor<f32>}}
  // expected-error@+1 {{failed to infer returned types}}
  %o, %k2, %v2 = loom.mla_attention %qn, %qp, %kv, %kpe, %w, %kc, %vc, %pos {scale = 0.25 : f64}
      : tensor<1x2x8xf32>, tensor<1x1x2x4xf32>, tensor<1x1x16xf32>, tensor<1x1x4xf32>, tensor<32x16xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>, tensor<f32>
      -> tensor<1x1x2x8xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
  return
}

// -----

func.func @mla_attention_q_rank(%qn: tensor<1x2x8xf32>, %qp: tensor<1x1x2x4xf32>,
                                %kv: tensor<1x1x16xf32>, %kpe: tensor<1x1x4xf32>,
                                %w: tensor<32x16xf32>, %kc: tensor<3x10x2x12xf32>,
                                %vc: tensor<3x10x2x8xf32>, %pos: tensor<i64>) {
  // expected-error@+2 {{q_nope must have rank 4, got tensor<1x2x8xf32>}}
  // expected-error@+1 {{failed to infer returned types}}
  %o, %k2, %v2 = loom.mla_attention %qn, %qp, %kv, %kpe, %w, %kc, %vc, %pos {scale = 0.25 : f64}
      : tensor<1x2x8xf32>, tensor<1x1x2x4xf32>, tensor<1x1x16xf32>, tensor<1x1x4xf32>, tensor<32x16xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>, tensor<i64>
      -> tensor<1x1x2x8xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
  return
}
