//===- Passes.td - Loom conversion passes ------------------*- tablegen -*-===//
//
// This file declares the passes that lower the `loom` dialect to upstream
// dialects.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_COMPILER_CONVERSION_PASSES_TD
#define LOOM_COMPILER_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertLoomToLinalgPass : Pass<"convert-loom-to-linalg", "ModuleOp"> {
  let summary = "Lowers every loom op to linalg, tensor, arith and math ops";
  let description = [{
    Rewrites the graph-level `loom` ops into upstream ops on tensors (value
    semantics), ready for one-shot bufferization:

    - elementwise ops, with broadcasting expressed by indexing maps, become
      `linalg.generic` ops over a `tensor.empty` init;
    - reductions, softmax, log-softmax and RMSNorm become `linalg.generic`
      ops with reduction iterators over a `linalg.fill`ed init;
    - `loom.matmul` and `loom.linear` become `linalg.matmul` (rank 2) or
      `linalg.batch_matmul` (rank 3, batch dimensions broadcast and
      collapsed) on a zero-filled init; transposed operands are expressed
      with the ops' `indexing_maps`;
    - data movement becomes `tensor.collapse_shape`/`tensor.expand_shape`,
      `linalg.transpose`, `tensor.extract_slice`, `tensor.insert_slice` and
      `tensor.extract` in a `linalg.generic`.

    Symbolic dimensions are read at run time with `tensor.dim`. After the
    pass no `loom` op is left; an op that cannot be lowered fails the pass.

    ```mlir
    %r = loom.add %a, %b : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
    ```

    becomes

    ```mlir
    %c0 = arith.constant 0 : index
    %d0 = tensor.dim %a, %c0 : tensor<?x64xf32>
    %e = tensor.empty(%d0) : tensor<?x64xf32>
    %r = linalg.generic {
        indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>,
                         affine_map<(d0, d1) -> (d1)>,
                         affine_map<(d0, d1) -> (d0, d1)>],
        iterator_types = ["parallel", "parallel"]}
        ins(%a, %b : tensor<?x64xf32>, tensor<64xf32>)
        outs(%e : tensor<?x64xf32>) {
    ^bb0(%x: f32, %y: f32, %out: f32):
      %s = arith.addf %x, %y : f32
      linalg.yield %s : f32
    } -> tensor<?x64xf32>
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

#endif // LOOM_COMPILER_CONVERSION_PASSES_TD
