// kl (each estimator, with a broadcast reference row) and gae (gamma 0.99,
// lam 0.95), compiled by kl-gae.test and checked against kl-gae-ref.py.


func.func @kl_all(
    %logp: tensor<?x?xf32> {loom.dims = ["B", "T"], loom.name = "logp", loom.role = "input"},
    %ref: tensor<?x?xf32> {loom.dims = ["B", "T"], loom.name = "ref", loom.role = "input"},
    %row: tensor<?xf32> {loom.dims = ["T"], loom.name = "row", loom.role = "input"})
    -> (tensor<?x?xf32> {loom.dims = ["B", "T"], loom.name = "k1", loom.role = "output"},
    tensor<?x?xf32> {loom.dims = ["B", "T"], loom.name = "k2", loom.role = "output"},
    tensor<?x?xf32> {loom.dims = ["B", "T"], loom.name = "k3", loom.role = "output"},
    tensor<?x?xf32> {loom.dims = ["B", "T"], loom.name = "k3_row", loom.role = "output"}) {
  %k1 = loom.kl %logp, %ref {estimator = "k1"}
      : tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
  %k2 = loom.kl %logp, %ref {estimator = "k2"}
      : tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
  %k3 = loom.kl %logp, %ref {estimator = "k3"}
      : tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
  %k3r = loom.kl %logp, %row {estimator = "k3"}
      : tensor<?x?xf32>, tensor<?xf32> -> tensor<?x?xf32>
  return %k1, %k2, %k3, %k3r : tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32>
}

func.func @gae_adv(
    %rewards: tensor<?x?xf32> {loom.dims = ["B", "T"], loom.name = "rewards", loom.role = "input"},
    %values: tensor<?x?xf32> {loom.dims = ["B", "T"], loom.name = "values", loom.role = "input"},
    %mask: tensor<?x?xf32> {loom.dims = ["B", "T"], loom.name = "mask", loom.role = "input"})
    -> (tensor<?x?xf32> {loom.dims = ["B", "T"], loom.name = "adv", loom.role = "output"}) {
  %adv = loom.gae %rewards, %values, %mask {gamma = 9.9e-01 : f64, lam = 9.5e-01 : f64}
      : tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
  return %adv : tensor<?x?xf32>
}
