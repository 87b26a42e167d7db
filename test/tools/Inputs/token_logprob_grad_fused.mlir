// The backward of token_logprob with an lm-head, as loom-autodiff writes it:
// `grad` alone (the fused backward computes its own lse) and `both` with the
// forward in the same function (the backward reuses the forward's lse).
// The temperature is token_logprob_fused_ref.py's GRAD_TEMPERATURE;
// `grad_cold` is `grad` at temperature 1, which the reference must refuse.
module {
  func.func @grad(%h: tensor<?x8xf32> {loom.dims = ["N", 8], loom.name = "h", loom.role = "input"},
                  %ids: tensor<?xi64> {loom.dims = ["N"], loom.name = "ids", loom.role = "input"},
                  %g: tensor<?xf32> {loom.dims = ["N"], loom.name = "g", loom.role = "input"},
                  %w: tensor<300x8xf32> {loom.dims = [300, 8], loom.name = "w", loom.role = "input"})
      -> (tensor<?x8xf32> {loom.dims = ["N", 8], loom.name = "dh", loom.role = "output"},
          tensor<300x8xf32> {loom.dims = [300, 8], loom.name = "dw", loom.role = "output"}) {
    %dh, %dw = loom.token_logprob_grad %h, %ids, %g weight %w {temperature = 0.8 : f64}
        : tensor<?x8xf32>, tensor<?xi64>, tensor<?xf32>, tensor<300x8xf32>
        -> tensor<?x8xf32>, tensor<300x8xf32>
    return %dh, %dw : tensor<?x8xf32>, tensor<300x8xf32>
  }

  func.func @grad_cold(%h: tensor<?x8xf32> {loom.dims = ["N", 8], loom.name = "h", loom.role = "input"},
                       %ids: tensor<?xi64> {loom.dims = ["N"], loom.name = "ids", loom.role = "input"},
                       %g: tensor<?xf32> {loom.dims = ["N"], loom.name = "g", loom.role = "input"},
                       %w: tensor<300x8xf32> {loom.dims = [300, 8], loom.name = "w", loom.role = "input"})
      -> (tensor<?x8xf32> {loom.dims = ["N", 8], loom.name = "dh", loom.role = "output"},
          tensor<300x8xf32> {loom.dims = [300, 8], loom.name = "dw", loom.role = "output"}) {
    %dh, %dw = loom.token_logprob_grad %h, %ids, %g weight %w
        : tensor<?x8xf32>, tensor<?xi64>, tensor<?xf32>, tensor<300x8xf32>
        -> tensor<?x8xf32>, tensor<300x8xf32>
    return %dh, %dw : tensor<?x8xf32>, tensor<300x8xf32>
  }

  func.func @both(%h: tensor<?x8xf32> {loom.dims = ["N", 8], loom.name = "h", loom.role = "input"},
                  %ids: tensor<?xi64> {loom.dims = ["N"], loom.name = "ids", loom.role = "input"},
                  %g: tensor<?xf32> {loom.dims = ["N"], loom.name = "g", loom.role = "input"},
                  %w: tensor<300x8xf32> {loom.dims = [300, 8], loom.name = "w", loom.role = "input"})
      -> (tensor<?xf32> {loom.dims = ["N"], loom.name = "lp", loom.role = "output"},
          tensor<?x8xf32> {loom.dims = ["N", 8], loom.name = "dh", loom.role = "output"},
          tensor<300x8xf32> {loom.dims = [300, 8], loom.name = "dw", loom.role = "output"}) {
    %lp = loom.token_logprob %h, %ids weight %w {temperature = 0.8 : f64}
        : tensor<?x8xf32>, tensor<?xi64>, tensor<300x8xf32> -> tensor<?xf32>
    %dh, %dw = loom.token_logprob_grad %h, %ids, %g weight %w {temperature = 0.8 : f64}
        : tensor<?x8xf32>, tensor<?xi64>, tensor<?xf32>, tensor<300x8xf32>
        -> tensor<?x8xf32>, tensor<300x8xf32>
    return %lp, %dh, %dw : tensor<?xf32>, tensor<?x8xf32>, tensor<300x8xf32>
  }
}
