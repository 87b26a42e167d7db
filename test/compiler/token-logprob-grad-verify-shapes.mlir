// RUN: loom-opt %s --split-input-file --loom-verify-shapes --verify-diagnostics | FileCheck %s

// loom-verify-shapes on token_logprob with a weight, token_logprob_grad,
// stop_gradient, kl and gae: the results take the joined symbols, and
// different symbols where sizes must be equal are refused.

// CHECK-LABEL: func @ok
// CHECK-NOT: loom.unproven_dims
func.func @ok(%h: tensor<?x?x?xf32> {loom.dims = ["B", "T", "D"]},
              %i: tensor<?x?xi64> {loom.dims = ["B", "T"]},
              %g: tensor<?x?xf32> {loom.dims = ["B", "T"]},
              %w: tensor<?x?xf32> {loom.dims = ["V", "D"]},
              %r: tensor<?x?xf32> {loom.dims = ["B", "T"]})
    -> (tensor<?x?xf32> {loom.dims = ["B", "T"]},
        tensor<?x?x?xf32> {loom.dims = ["B", "T", "D"]},
        tensor<?x?xf32> {loom.dims = ["V", "D"]},
        tensor<?x?xf32> {loom.dims = ["B", "T"]},
        tensor<?x?xf32> {loom.dims = ["B", "T"]}) {
  %lp = loom.token_logprob %h, %i weight %w
      : tensor<?x?x?xf32>, tensor<?x?xi64>, tensor<?x?xf32> -> tensor<?x?xf32>
  %s = loom.stop_gradient %g : tensor<?x?xf32> -> tensor<?x?xf32>
  %dh, %dw = loom.token_logprob_grad %h, %i, %s weight %w
      : tensor<?x?x?xf32>, tensor<?x?xi64>, tensor<?x?xf32>, tensor<?x?xf32>
      -> tensor<?x?x?xf32>, tensor<?x?xf32>
  %k = loom.kl %lp, %r {estimator = "k3"}
      : tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
  %a = loom.gae %r, %k, %g {gamma = 1.0 : f64, lam = 0.95 : f64}
      : tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
  return %lp, %dh, %dw, %k, %a : tensor<?x?xf32>, tensor<?x?x?xf32>,
      tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32>
}

// -----

func.func @hidden(%h: tensor<?x?xf32> {loom.dims = ["N", "D"]},
                  %i: tensor<?xi64> {loom.dims = ["N"]},
                  %w: tensor<?x?xf32> {loom.dims = ["V", "E"]}) {
  // expected-error@+1 {{the hidden dimension is D on one operand and E on the other}}
  %lp = loom.token_logprob %h, %i weight %w
      : tensor<?x?xf32>, tensor<?xi64>, tensor<?x?xf32> -> tensor<?xf32>
  return
}

// -----

func.func @grad_tokens(%l: tensor<?x?xf32> {loom.dims = ["N", "V"]},
                       %i: tensor<?xi64> {loom.dims = ["N"]},
                       %g: tensor<?xf32> {loom.dims = ["M"]}) {
  // expected-error@+1 {{dimension 0 is N on one operand and M on the other}}
  %d = loom.token_logprob_grad %l, %i, %g
      : tensor<?x?xf32>, tensor<?xi64>, tensor<?xf32> -> tensor<?x?xf32>
  return
}

// -----

// The weight gradient has the weight's symbols; a declared output that
// names them otherwise is refused.
func.func @weight_grad(%h: tensor<?x?xf32> {loom.dims = ["N", "D"]},
                       %i: tensor<?xi64> {loom.dims = ["N"]},
                       %g: tensor<?xf32> {loom.dims = ["N"]},
                       %w: tensor<?x?xf32> {loom.dims = ["V", "D"]})
    -> (tensor<?x?xf32> {loom.dims = ["D", "D"], loom.name = "dw"}) {
  %dh, %dw = loom.token_logprob_grad %h, %i, %g weight %w
      : tensor<?x?xf32>, tensor<?xi64>, tensor<?xf32>, tensor<?x?xf32>
      -> tensor<?x?xf32>, tensor<?x?xf32>
  // expected-error@+1 {{output 'dw' is declared with dimension 0 = D but the graph computes V}}
  return %dw : tensor<?x?xf32>
}

// -----

func.func @gae_rows(%r: tensor<?x?xf32> {loom.dims = ["B", "T"]},
                    %v: tensor<?x?xf32> {loom.dims = ["B", "T"]},
                    %m: tensor<?x?xf32> {loom.dims = ["B", "S"]}) {
  // expected-error@+1 {{dimension 1 is T on one operand and S on the other}}
  %a = loom.gae %r, %v, %m {gamma = 1.0 : f64, lam = 0.95 : f64}
      : tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
  return
}

// -----

func.func @kl_rows(%p: tensor<?xf32> {loom.dims = ["N"]},
                   %q: tensor<?xf32> {loom.dims = ["M"]}) {
  // expected-error@+1 {{dimension 0 is N on one operand and M on the other}}
  %k = loom.kl %p, %q {estimator = "k1"}
      : tensor<?xf32>, tensor<?xf32> -> tensor<?xf32>
  return
}
