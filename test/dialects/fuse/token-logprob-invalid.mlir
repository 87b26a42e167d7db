// RUN: loom-opt %s --split-input-file --verify-diagnostics

func.func @hidden_size(%h: tensor<4x16xf32>, %w: tensor<40x8xf32>, %ids: tensor<4xi64>,
                       %lpi: tensor<4xf32>, %lsei: tensor<4xf32>) {
  // expected-error@+1 {{the hidden size is 16 in hidden but 8 in weight}}
  %lp, %lse = fuse.token_logprob ins(%h, %w, %ids : tensor<4x16xf32>, tensor<40x8xf32>, tensor<4xi64>)
      outs(%lpi, %lsei : tensor<4xf32>, tensor<4xf32>) {temperature = 1.0 : f64}
      -> tensor<4xf32>, tensor<4xf32>
  return
}

// -----

func.func @token_count(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<5xi64>,
                       %lpi: tensor<4xf32>, %lsei: tensor<4xf32>) {
  // expected-error@+1 {{the token count is 4 in hidden but 5 in ids}}
  %lp, %lse = fuse.token_logprob ins(%h, %w, %ids : tensor<4x16xf32>, tensor<40x16xf32>, tensor<5xi64>)
      outs(%lpi, %lsei : tensor<4xf32>, tensor<4xf32>) {temperature = 1.0 : f64}
      -> tensor<4xf32>, tensor<4xf32>
  return
}

// -----

func.func @lse_count(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<4xi64>,
                     %lpi: tensor<4xf32>, %lsei: tensor<3xf32>) {
  // expected-error@+1 {{the token count is 4 in hidden but 3 in lse}}
  %lp, %lse = fuse.token_logprob ins(%h, %w, %ids : tensor<4x16xf32>, tensor<40x16xf32>, tensor<4xi64>)
      outs(%lpi, %lsei : tensor<4xf32>, tensor<3xf32>) {temperature = 1.0 : f64}
      -> tensor<4xf32>, tensor<3xf32>
  return
}

// -----

func.func @i32_ids(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<4xi32>,
                   %lpi: tensor<4xf32>, %lsei: tensor<4xf32>) {
  // expected-error@+1 {{ids must be a rank-1 i64 tensor, got 'tensor<4xi32>'}}
  %lp, %lse = fuse.token_logprob ins(%h, %w, %ids : tensor<4x16xf32>, tensor<40x16xf32>, tensor<4xi32>)
      outs(%lpi, %lsei : tensor<4xf32>, tensor<4xf32>) {temperature = 1.0 : f64}
      -> tensor<4xf32>, tensor<4xf32>
  return
}

// -----

func.func @rank(%h: tensor<2x4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<8xi64>,
                %lpi: tensor<8xf32>, %lsei: tensor<8xf32>) {
  // expected-error@+1 {{hidden must have rank 2, got 'tensor<2x4x16xf32>'}}
  %lp, %lse = fuse.token_logprob ins(%h, %w, %ids : tensor<2x4x16xf32>, tensor<40x16xf32>, tensor<8xi64>)
      outs(%lpi, %lsei : tensor<8xf32>, tensor<8xf32>) {temperature = 1.0 : f64}
      -> tensor<8xf32>, tensor<8xf32>
  return
}

// -----

func.func @int_hidden(%h: tensor<4x16xi32>, %w: tensor<40x16xi32>, %ids: tensor<4xi64>,
                      %lpi: tensor<4xi32>, %lsei: tensor<4xi32>) {
  // expected-error@+1 {{hidden must hold floats, got 'i32'}}
  %lp, %lse = fuse.token_logprob ins(%h, %w, %ids : tensor<4x16xi32>, tensor<40x16xi32>, tensor<4xi64>)
      outs(%lpi, %lsei : tensor<4xi32>, tensor<4xi32>) {temperature = 1.0 : f64}
      -> tensor<4xi32>, tensor<4xi32>
  return
}

// -----

func.func @element(%h: tensor<4x16xf32>, %w: tensor<40x16xf64>, %ids: tensor<4xi64>,
                   %lpi: tensor<4xf32>, %lsei: tensor<4xf32>) {
  // expected-error@+1 {{weight has element type 'f64', not 'f32'}}
  %lp, %lse = fuse.token_logprob ins(%h, %w, %ids : tensor<4x16xf32>, tensor<40x16xf64>, tensor<4xi64>)
      outs(%lpi, %lsei : tensor<4xf32>, tensor<4xf32>) {temperature = 1.0 : f64}
      -> tensor<4xf32>, tensor<4xf32>
  return
}

// -----

func.func @temperature(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<4xi64>,
                       %lpi: tensor<4xf32>, %lsei: tensor<4xf32>) {
  // expected-error@+1 {{temperature must be finite and > 0, got 0}}
  %lp, %lse = fuse.token_logprob ins(%h, %w, %ids : tensor<4x16xf32>, tensor<40x16xf32>, tensor<4xi64>)
      outs(%lpi, %lsei : tensor<4xf32>, tensor<4xf32>) {temperature = 0.0 : f64}
      -> tensor<4xf32>, tensor<4xf32>
  return
}

// -----

func.func @no_results(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<4xi64>,
                      %lpi: tensor<4xf32>, %lsei: tensor<4xf32>) {
  // expected-error@+1 {{on tensors must return its outs}}
  fuse.token_logprob ins(%h, %w, %ids : tensor<4x16xf32>, tensor<40x16xf32>, tensor<4xi64>)
      outs(%lpi, %lsei : tensor<4xf32>, tensor<4xf32>) {temperature = 1.0 : f64}
  return
}

// -----

func.func @result_type(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<4xi64>,
                       %lpi: tensor<4xf32>, %lsei: tensor<4xf32>) {
  // expected-error@+1 {{result types must equal the outs types}}
  %lp, %lse = fuse.token_logprob ins(%h, %w, %ids : tensor<4x16xf32>, tensor<40x16xf32>, tensor<4xi64>)
      outs(%lpi, %lsei : tensor<4xf32>, tensor<4xf32>) {temperature = 1.0 : f64}
      -> tensor<?xf32>, tensor<4xf32>
  return
}

// -----

func.func @memref_results(%h: memref<4x16xf32>, %w: memref<40x16xf32>, %ids: memref<4xi64>,
                          %lp: memref<4xf32>, %lse: memref<4xf32>) {
  // expected-error@+1 {{on memrefs returns nothing}}
  %a, %b = fuse.token_logprob ins(%h, %w, %ids : memref<4x16xf32>, memref<40x16xf32>, memref<4xi64>)
      outs(%lp, %lse : memref<4xf32>, memref<4xf32>) {temperature = 1.0 : f64}
      -> tensor<4xf32>, tensor<4xf32>
  return
}

// -----

func.func @mixed(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: memref<4xi64>,
                 %lpi: tensor<4xf32>, %lsei: tensor<4xf32>) {
  // expected-error@+1 {{operands must be all tensors or all memrefs}}
  %lp, %lse = fuse.token_logprob ins(%h, %w, %ids : tensor<4x16xf32>, tensor<40x16xf32>, memref<4xi64>)
      outs(%lpi, %lsei : tensor<4xf32>, tensor<4xf32>) {temperature = 1.0 : f64}
      -> tensor<4xf32>, tensor<4xf32>
  return
}

// -----

func.func @grad_hidden_rows(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<4xi64>,
                            %lse: tensor<4xf32>, %g: tensor<4xf32>,
                            %dhi: tensor<5x16xf32>, %dwi: tensor<40x16xf32>) {
  // expected-error@+1 {{the token count is 4 in hidden but 5 in grad_hidden}}
  %dh, %dw = fuse.token_logprob_grad ins(%h, %w, %ids, %lse, %g : tensor<4x16xf32>, tensor<40x16xf32>, tensor<4xi64>, tensor<4xf32>, tensor<4xf32>)
      outs(%dhi, %dwi : tensor<5x16xf32>, tensor<40x16xf32>) {temperature = 1.0 : f64}
      -> tensor<5x16xf32>, tensor<40x16xf32>
  return
}

// -----

func.func @grad_count(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<4xi64>,
                      %lse: tensor<4xf32>, %g: tensor<2xf32>,
                      %dhi: tensor<4x16xf32>, %dwi: tensor<40x16xf32>) {
  // expected-error@+1 {{the token count is 4 in hidden but 2 in grad}}
  %dh, %dw = fuse.token_logprob_grad ins(%h, %w, %ids, %lse, %g : tensor<4x16xf32>, tensor<40x16xf32>, tensor<4xi64>, tensor<4xf32>, tensor<2xf32>)
      outs(%dhi, %dwi : tensor<4x16xf32>, tensor<40x16xf32>) {temperature = 1.0 : f64}
      -> tensor<4x16xf32>, tensor<40x16xf32>
  return
}

// -----

func.func @grad_hidden_size(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<4xi64>,
                            %lse: tensor<4xf32>, %g: tensor<4xf32>,
                            %dhi: tensor<4x8xf32>, %dwi: tensor<40x16xf32>) {
  // expected-error@+1 {{the hidden size is 16 in hidden but 8 in grad_hidden}}
  %dh, %dw = fuse.token_logprob_grad ins(%h, %w, %ids, %lse, %g : tensor<4x16xf32>, tensor<40x16xf32>, tensor<4xi64>, tensor<4xf32>, tensor<4xf32>)
      outs(%dhi, %dwi : tensor<4x8xf32>, tensor<40x16xf32>) {temperature = 1.0 : f64}
      -> tensor<4x8xf32>, tensor<40x16xf32>
  return
}

// -----

func.func @grad_vocabulary(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<4xi64>,
                           %lse: tensor<4xf32>, %g: tensor<4xf32>,
                           %dhi: tensor<4x16xf32>, %dwi: tensor<30x16xf32>) {
  // expected-error@+1 {{the vocabulary is 40 in weight but 30 in grad_weight}}
  %dh, %dw = fuse.token_logprob_grad ins(%h, %w, %ids, %lse, %g : tensor<4x16xf32>, tensor<40x16xf32>, tensor<4xi64>, tensor<4xf32>, tensor<4xf32>)
      outs(%dhi, %dwi : tensor<4x16xf32>, tensor<30x16xf32>) {temperature = 1.0 : f64}
      -> tensor<4x16xf32>, tensor<30x16xf32>
  return
}

// -----

func.func @grad_weight_size(%h: tensor<4x16xf32>, %w: tensor<40x?xf32>, %ids: tensor<4xi64>,
                            %lse: tensor<4xf32>, %g: tensor<4xf32>,
                            %dhi: tensor<4x16xf32>, %dwi: tensor<40x8xf32>) {
  // expected-error@+1 {{the hidden size is 16 in hidden but 8 in grad_weight}}
  %dh, %dw = fuse.token_logprob_grad ins(%h, %w, %ids, %lse, %g : tensor<4x16xf32>, tensor<40x?xf32>, tensor<4xi64>, tensor<4xf32>, tensor<4xf32>)
      outs(%dhi, %dwi : tensor<4x16xf32>, tensor<40x8xf32>) {temperature = 1.0 : f64}
      -> tensor<4x16xf32>, tensor<40x8xf32>
  return
}

// -----

func.func @grad_lse_element(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<4xi64>,
                            %lse: tensor<4xf16>, %g: tensor<4xf32>,
                            %dhi: tensor<4x16xf32>, %dwi: tensor<40x16xf32>) {
  // expected-error@+1 {{lse has element type 'f16', not 'f32'}}
  %dh, %dw = fuse.token_logprob_grad ins(%h, %w, %ids, %lse, %g : tensor<4x16xf32>, tensor<40x16xf32>, tensor<4xi64>, tensor<4xf16>, tensor<4xf32>)
      outs(%dhi, %dwi : tensor<4x16xf32>, tensor<40x16xf32>) {temperature = 1.0 : f64}
      -> tensor<4x16xf32>, tensor<40x16xf32>
  return
}

// -----

func.func @rows_scratch_vocab(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<4xi64>,
                              %lpi: tensor<4xf32>, %lsei: tensor<4xf32>, %si: tensor<2x30xf32>, %n0: index) {
  // expected-error@+1 {{the vocabulary is 40 in weight but 30 in scratch}}
  %lp, %lse, %s = fuse.token_logprob_rows ins(%h, %w, %ids : tensor<4x16xf32>, tensor<40x16xf32>, tensor<4xi64>)
      offset(%n0) outs(%lpi, %lsei, %si : tensor<4xf32>, tensor<4xf32>, tensor<2x30xf32>) {temperature = 1.0 : f64}
      -> tensor<4xf32>, tensor<4xf32>, tensor<2x30xf32>
  return
}

// -----

func.func @rows_scratch_rank(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<4xi64>,
                             %lpi: tensor<4xf32>, %lsei: tensor<4xf32>, %si: tensor<40xf32>, %n0: index) {
  // expected-error@+1 {{scratch must have rank 2, got 'tensor<40xf32>'}}
  %lp, %lse, %s = fuse.token_logprob_rows ins(%h, %w, %ids : tensor<4x16xf32>, tensor<40x16xf32>, tensor<4xi64>)
      offset(%n0) outs(%lpi, %lsei, %si : tensor<4xf32>, tensor<4xf32>, tensor<40xf32>) {temperature = 1.0 : f64}
      -> tensor<4xf32>, tensor<4xf32>, tensor<40xf32>
  return
}

// -----

func.func @rows_grad_scratch_vocab(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<4xi64>,
                                   %lse: tensor<4xf32>, %g: tensor<4xf32>, %dhi: tensor<4x16xf32>,
                                   %dwi: tensor<40x16xf32>, %si: tensor<2x41xf32>, %n0: index) {
  // expected-error@+1 {{the vocabulary is 40 in weight but 41 in scratch}}
  %dh, %dw, %s = fuse.token_logprob_rows_grad ins(%h, %w, %ids, %lse, %g : tensor<4x16xf32>, tensor<40x16xf32>, tensor<4xi64>, tensor<4xf32>, tensor<4xf32>)
      offset(%n0) outs(%dhi, %dwi, %si : tensor<4x16xf32>, tensor<40x16xf32>, tensor<2x41xf32>) {temperature = 1.0 : f64}
      -> tensor<4x16xf32>, tensor<40x16xf32>, tensor<2x41xf32>
  return
}

// -----

func.func @rows_grad_token_count(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<4xi64>,
                                 %lse: tensor<4xf32>, %g: tensor<5xf32>, %dhi: tensor<4x16xf32>,
                                 %dwi: tensor<40x16xf32>, %si: tensor<2x40xf32>, %n0: index) {
  // expected-error@+1 {{the token count is 4 in hidden but 5 in grad}}
  %dh, %dw, %s = fuse.token_logprob_rows_grad ins(%h, %w, %ids, %lse, %g : tensor<4x16xf32>, tensor<40x16xf32>, tensor<4xi64>, tensor<4xf32>, tensor<5xf32>)
      offset(%n0) outs(%dhi, %dwi, %si : tensor<4x16xf32>, tensor<40x16xf32>, tensor<2x40xf32>) {temperature = 1.0 : f64}
      -> tensor<4x16xf32>, tensor<40x16xf32>, tensor<2x40xf32>
  return
}

// -----

func.func @rows_temperature(%h: tensor<4x16xf32>, %w: tensor<40x16xf32>, %ids: tensor<4xi64>,
                            %lpi: tensor<4xf32>, %lsei: tensor<4xf32>, %si: tensor<2x40xf32>, %n0: index) {
  // expected-error@+1 {{temperature must be finite and > 0, got 0}}
  %lp, %lse, %s = fuse.token_logprob_rows ins(%h, %w, %ids : tensor<4x16xf32>, tensor<40x16xf32>, tensor<4xi64>)
      offset(%n0) outs(%lpi, %lsei, %si : tensor<4xf32>, tensor<4xf32>, tensor<2x40xf32>) {temperature = 0.0 : f64}
      -> tensor<4xf32>, tensor<4xf32>, tensor<2x40xf32>
  return
}
