// RUN: loom-opt %s --split-input-file --loom-verify-shapes --verify-diagnostics | FileCheck %s

// Matching symbols pass and the IR is unchanged.
// CHECK-LABEL: func @ok
// CHECK: loom.add
func.func @ok(%x: tensor<?x64xf32> {loom.dims = ["B", 64]},
              %y: tensor<?x64xf32> {loom.dims = ["B", 64]})
    -> (tensor<?x64xf32> {loom.dims = ["B", 64]}) {
  %0 = loom.add %x, %y : tensor<?x64xf32>, tensor<?x64xf32> -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @different_symbols(%x: tensor<?x64xf32> {loom.dims = ["B", 64]},
                             %y: tensor<?x64xf32> {loom.dims = ["S", 64]}) {
  // expected-error@+1 {{dimension 0 is B on one operand and S on the other}}
  %0 = loom.add %x, %y : tensor<?x64xf32>, tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @contraction(%x: tensor<?x?xf32> {loom.dims = ["M", "K"]},
                       %y: tensor<?x?xf32> {loom.dims = ["N", "P"]}) {
  // expected-error@+1 {{the contraction dimension is K on one operand and N on the other}}
  %0 = loom.matmul %x, %y : tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
  return
}

// -----

// Symbols flow through transpose and reductions to the result check.
func.func @result(%x: tensor<?x?xf32> {loom.dims = ["B", "S"]})
    -> (tensor<?xf32> {loom.dims = ["S"], loom.name = "y"}) {
  %0 = loom.transpose %x {permutation = array<i64: 1, 0>} : tensor<?x?xf32> -> tensor<?x?xf32>
  %1 = loom.sum %0 {axes = array<i64: 0>} : tensor<?x?xf32> -> tensor<?xf32>
  // expected-error@+1 {{output 'y' is declared with dimension 0 = S but the graph computes B}}
  return %1 : tensor<?xf32>
}

// -----

func.func @linear(%x: tensor<?x?xf32> {loom.dims = ["B", "D"]},
                  %w: tensor<8x?xf32> {loom.dims = [8, "E"]}) {
  // expected-error@+1 {{the input-feature dimension is D on one operand and E on the other}}
  %0 = loom.linear %x, %w : tensor<?x?xf32>, tensor<8x?xf32> -> tensor<?x8xf32>
  return
}

// -----

// A static 1 broadcasts against any symbol.
// CHECK-LABEL: func @broadcast_one
func.func @broadcast_one(%x: tensor<?x?xf32> {loom.dims = ["B", "S"]},
                         %y: tensor<1x?xf32> {loom.dims = [1, "S"]})
    -> (tensor<?x?xf32> {loom.dims = ["B", "S"]}) {
  %0 = loom.mul %x, %y : tensor<?x?xf32>, tensor<1x?xf32> -> tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}

// -----

// dynamic_slice keeps the operand's symbols outside the axis (so adding a
// tensor of other symbols is reported) and names nothing along it.
func.func @dynamic_slice_keeps_symbols(%x: tensor<?x16xf32> {loom.dims = ["B", 16]},
                                       %y: tensor<?x4xf32> {loom.dims = ["S", 4]},
                                       %s: tensor<i64> {loom.dims = []}) {
  %0 = loom.dynamic_slice %x, %s {axis = 1 : i64, size = 4 : i64} : tensor<?x16xf32>, tensor<i64> -> tensor<?x4xf32>
  // expected-error@+1 {{dimension 0 is B on one operand and S on the other}}
  %1 = loom.add %0, %y : tensor<?x4xf32>, tensor<?x4xf32> -> tensor<?x4xf32>
  return
}

// -----

// dynamic_update_slice has the target's symbols; the update's are cut to
// them at run time and need not match.
// CHECK-LABEL: func @dynamic_update_slice_symbols
// CHECK: loom.dynamic_update_slice
func.func @dynamic_update_slice_symbols(%t: tensor<?x16xf32> {loom.dims = ["B", 16]},
                                        %u: tensor<?x?xf32> {loom.dims = ["N", "S"]},
                                        %s: tensor<i64> {loom.dims = []})
    -> (tensor<?x16xf32> {loom.dims = ["B", 16]}) {
  %0 = loom.dynamic_update_slice %t, %u, %s {axis = 1 : i64} : tensor<?x16xf32>, tensor<?x?xf32>, tensor<i64> -> tensor<?x16xf32>
  return %0 : tensor<?x16xf32>
}

// -----

// A slice of a symbolic dimension is not provably B: the result is marked
// for a run-time check; the proven output is not.
// CHECK-LABEL: func @unproven
// CHECK-SAME: -> (tensor<?xf32> {loom.dims = ["B"], loom.unproven_dims = array<i64: 0>}, tensor<?xf32> {loom.dims = ["B"]})
func.func @unproven(%x: tensor<?xf32> {loom.dims = ["B"]})
    -> (tensor<?xf32> {loom.dims = ["B"]}, tensor<?xf32> {loom.dims = ["B"]}) {
  %0 = loom.slice %x {axis = 0 : i64, start = 0 : i64, end = 3 : i64} : tensor<?xf32> -> tensor<?xf32>
  return %0, %x : tensor<?xf32>, tensor<?xf32>
}

// -----

// mla_attention's output takes the batch and token symbols of its queries:
// the output needs no run-time size check.
// CHECK-LABEL: func @mla
// CHECK-NOT: loom.unproven_dims
func.func @mla(%qn: tensor<?x?x2x8xf32> {loom.dims = ["B", "S", 2, 8]}, %qp: tensor<?x?x2x4xf32> {loom.dims = ["B", "S", 2, 4]},
                  %kv: tensor<?x?x16xf32> {loom.dims = ["B", "S", 16]}, %kpe: tensor<?x?x4xf32> {loom.dims = ["B", "S", 4]},
                  %w: tensor<32x16xf32>, %kc: tensor<3x10x2x12xf32>, %vc: tensor<3x10x2x8xf32>, %pos: tensor<i64>)
    -> (tensor<?x?x2x8xf32> {loom.dims = ["B", "S", 2, 8]}) {
  %o, %k2, %v2 = loom.mla_attention %qn, %qp, %kv, %kpe, %w, %kc, %vc, %pos {scale = 0.25 : f64}
      : tensor<?x?x2x8xf32>, tensor<?x?x2x4xf32>, tensor<?x?x16xf32>, tensor<?x?x4xf32>, tensor<32x16xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>, tensor<i64>
      -> tensor<?x?x2x8xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
  return %o : tensor<?x?x2x8xf32>
}

// -----

func.func @mla_tokens(%qn: tensor<?x?x2x8xf32> {loom.dims = ["B", "S", 2, 8]}, %qp: tensor<?x?x2x4xf32> {loom.dims = ["B", "T", 2, 4]},
                  %kv: tensor<?x?x16xf32> {loom.dims = ["B", "S", 16]}, %kpe: tensor<?x?x4xf32> {loom.dims = ["B", "S", 4]},
                  %w: tensor<32x16xf32>, %kc: tensor<3x10x2x12xf32>, %vc: tensor<3x10x2x8xf32>, %pos: tensor<i64>)
    -> (tensor<?x?x2x8xf32> {loom.dims = ["B", "S", 2, 8]}) {
  // expected-error@+1 {{the token count}}
  %o, %k2, %v2 = loom.mla_attention %qn, %qp, %kv, %kpe, %w, %kc, %vc, %pos {scale = 0.25 : f64}
      : tensor<?x?x2x8xf32>, tensor<?x?x2x4xf32>, tensor<?x?x16xf32>, tensor<?x?x4xf32>, tensor<32x16xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>, tensor<i64>
      -> tensor<?x?x2x8xf32>, tensor<3x10x2x12xf32>, tensor<3x10x2x8xf32>
  return %o : tensor<?x?x2x8xf32>
}

// -----

// attention's outputs take the batch, heads and queries of q: no run-time
// size check is needed.
// CHECK-LABEL: func @attention
// CHECK-NOT: loom.unproven_dims
func.func @attention(%q: tensor<?x?x?x8xf32> {loom.dims = ["B", "H", "S", 8]},
                     %k: tensor<?x?x?x8xf32> {loom.dims = ["B", "H", "T", 8]})
    -> (tensor<?x?x?x8xf32> {loom.dims = ["B", "H", "S", 8]},
        tensor<?x?x?xf32> {loom.dims = ["B", "H", "S"]}) {
  %o, %l = loom.attention %q, %k, %k {scale = 0.35 : f64}
      : tensor<?x?x?x8xf32>, tensor<?x?x?x8xf32>, tensor<?x?x?x8xf32>
      -> tensor<?x?x?x8xf32>, tensor<?x?x?xf32>
  return %o, %l : tensor<?x?x?x8xf32>, tensor<?x?x?xf32>
}

// -----

func.func @attention_batch(%q: tensor<?x?x?x8xf32> {loom.dims = ["B", "H", "S", 8]},
                           %k: tensor<?x?x?x8xf32> {loom.dims = ["C", "H", "T", 8]}) {
  // expected-error@+1 {{the batch is B on one operand and C on the other}}
  %o, %l = loom.attention %q, %k, %k {scale = 0.35 : f64}
      : tensor<?x?x?x8xf32>, tensor<?x?x?x8xf32>, tensor<?x?x?x8xf32>
      -> tensor<?x?x?x8xf32>, tensor<?x?x?xf32>
  return
}

// -----

// token_logprob's result takes the symbols of its ids.
// CHECK-LABEL: func @token_logprob
// CHECK-NOT: loom.unproven_dims
func.func @token_logprob(%l: tensor<?x?x?xf32> {loom.dims = ["B", "T", "V"]},
                         %i: tensor<?x?xi64> {loom.dims = ["B", "T"]})
    -> (tensor<?x?xf32> {loom.dims = ["B", "T"]}) {
  %p = loom.token_logprob %l, %i {temperature = 1.0 : f64}
      : tensor<?x?x?xf32>, tensor<?x?xi64> -> tensor<?x?xf32>
  return %p : tensor<?x?xf32>
}

// -----

func.func @token_logprob_tokens(%l: tensor<?x?xf32> {loom.dims = ["N", "V"]},
                                %i: tensor<?xi64> {loom.dims = ["M"]}) {
  // expected-error@+1 {{dimension 0 is N on one operand and M on the other}}
  %p = loom.token_logprob %l, %i {temperature = 1.0 : f64}
      : tensor<?x?xf32>, tensor<?xi64> -> tensor<?xf32>
  return
}

// -----

// A slice along a static dimension keeps the other dimensions' symbols; a
// slice along a symbolic one leaves that dimension to the run-time check.
// CHECK-LABEL: func @slices
// CHECK-SAME: -> (tensor<?x4xf32> {loom.dims = ["B", 4]}, tensor<?x8xf32> {loom.dims = ["B", 8], loom.unproven_dims = array<i64: 0>})
func.func @slices(%x: tensor<?x8xf32> {loom.dims = ["B", 8]})
    -> (tensor<?x4xf32> {loom.dims = ["B", 4]}, tensor<?x8xf32> {loom.dims = ["B", 8]}) {
  %a = loom.slice %x {axis = 1 : i64, start = 0 : i64, end = 4 : i64} : tensor<?x8xf32> -> tensor<?x4xf32>
  %b = loom.slice %x {axis = 0 : i64, start = 1 : i64, end = 9223372036854775807 : i64} : tensor<?x8xf32> -> tensor<?x8xf32>
  return %a, %b : tensor<?x4xf32>, tensor<?x8xf32>
}
