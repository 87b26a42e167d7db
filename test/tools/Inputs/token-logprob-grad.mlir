// token_logprob with an lm-head weight and token_logprob_grad (both forms,
// temperatures 1 and 0.7), compiled with --logprob=unfused by
// token-logprob-grad.test; the values are checked against
// token-logprob-grad-ref.py.


func.func @lp_w(
    %h: tensor<?x?x8xf32> {loom.dims = ["B", "T", 8], loom.name = "h", loom.role = "input"},
    %ids: tensor<?x?xi64> {loom.dims = ["B", "T"], loom.name = "ids", loom.role = "input"},
    %w: tensor<37x8xf32> {loom.name = "w", loom.role = "input"})
    -> (tensor<?x?xf32> {loom.dims = ["B", "T"], loom.name = "lp", loom.role = "output"}) {
  %lp = loom.token_logprob %h, %ids weight %w {temperature = 7.0e-01 : f64}
      : tensor<?x?x8xf32>, tensor<?x?xi64>, tensor<37x8xf32> -> tensor<?x?xf32>
  return %lp : tensor<?x?xf32>
}

func.func @lp_grad(
    %logits: tensor<?x?x?xf32> {loom.dims = ["B", "T", "V"], loom.name = "logits", loom.role = "input"},
    %ids: tensor<?x?xi64> {loom.dims = ["B", "T"], loom.name = "ids", loom.role = "input"},
    %g: tensor<?x?xf32> {loom.dims = ["B", "T"], loom.name = "g", loom.role = "input"})
    -> (tensor<?x?x?xf32> {loom.dims = ["B", "T", "V"], loom.name = "dlogits", loom.role = "output"}) {
  %g0 = loom.stop_gradient %g : tensor<?x?xf32> -> tensor<?x?xf32>
  %d = loom.token_logprob_grad %logits, %ids, %g0
      : tensor<?x?x?xf32>, tensor<?x?xi64>, tensor<?x?xf32> -> tensor<?x?x?xf32>
  return %d : tensor<?x?x?xf32>
}

func.func @lp_grad_hot(
    %logits: tensor<?x?x?xf32> {loom.dims = ["B", "T", "V"], loom.name = "logits", loom.role = "input"},
    %ids: tensor<?x?xi64> {loom.dims = ["B", "T"], loom.name = "ids", loom.role = "input"},
    %g: tensor<?x?xf32> {loom.dims = ["B", "T"], loom.name = "g", loom.role = "input"})
    -> (tensor<?x?x?xf32> {loom.dims = ["B", "T", "V"], loom.name = "dlogits", loom.role = "output"}) {
  %g0 = loom.stop_gradient %g : tensor<?x?xf32> -> tensor<?x?xf32>
  %d = loom.token_logprob_grad %logits, %ids, %g0 {temperature = 7.0e-01 : f64}
      : tensor<?x?x?xf32>, tensor<?x?xi64>, tensor<?x?xf32> -> tensor<?x?x?xf32>
  return %d : tensor<?x?x?xf32>
}

func.func @lm_grad(
    %h: tensor<?x?x8xf32> {loom.dims = ["B", "T", 8], loom.name = "h", loom.role = "input"},
    %ids: tensor<?x?xi32> {loom.dims = ["B", "T"], loom.name = "ids", loom.role = "input"},
    %g: tensor<?x?xf32> {loom.dims = ["B", "T"], loom.name = "g", loom.role = "input"},
    %w: tensor<37x8xf32> {loom.name = "w", loom.role = "input"})
    -> (tensor<?x?x8xf32> {loom.dims = ["B", "T", 8], loom.name = "dh", loom.role = "output"},
    tensor<37x8xf32> {loom.name = "dw", loom.role = "output"}) {
  %dh, %dw = loom.token_logprob_grad %h, %ids, %g weight %w
      : tensor<?x?x8xf32>, tensor<?x?xi32>, tensor<?x?xf32>, tensor<37x8xf32>
      -> tensor<?x?x8xf32>, tensor<37x8xf32>
  return %dh, %dw : tensor<?x?x8xf32>, tensor<37x8xf32>
}

func.func @lm_grad_hot(
    %h: tensor<?x?x8xf32> {loom.dims = ["B", "T", 8], loom.name = "h", loom.role = "input"},
    %ids: tensor<?x?xi32> {loom.dims = ["B", "T"], loom.name = "ids", loom.role = "input"},
    %g: tensor<?x?xf32> {loom.dims = ["B", "T"], loom.name = "g", loom.role = "input"},
    %w: tensor<37x8xf32> {loom.name = "w", loom.role = "input"})
    -> (tensor<?x?x8xf32> {loom.dims = ["B", "T", 8], loom.name = "dh", loom.role = "output"},
    tensor<37x8xf32> {loom.name = "dw", loom.role = "output"}) {
  %dh, %dw = loom.token_logprob_grad %h, %ids, %g weight %w {temperature = 7.0e-01 : f64}
      : tensor<?x?x8xf32>, tensor<?x?xi32>, tensor<?x?xf32>, tensor<37x8xf32>
      -> tensor<?x?x8xf32>, tensor<37x8xf32>
  return %dh, %dw : tensor<?x?x8xf32>, tensor<37x8xf32>
}
