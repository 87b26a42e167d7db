#!/usr/bin/env python3
"""Inputs and float64 reference outputs for kl-gae.loom and kl-gae.mlir
(stdlib only).

usage: kl-gae-ref.py inputs OUT.safetensors SEED
       kl-gae-ref.py expected IN.safetensors OUT.safetensors

`inputs` writes kl_all.logp, kl_all.ref [3, 4] and kl_all.row [4]
(log-probabilities in [-3, 0), with one pair far apart so that k3's
exponential is large), and gae_adv.rewards, gae_adv.values, gae_adv.mask
[5, 7] whose rows are: valid positions with masked gaps, an empty row, a row
with one valid position, a full row, and a row whose first and last
positions are masked. `expected` reads them (as stored, in f32) and writes
kl_all.k1, k2, k3, k3_row (k3 against the row broadcast over the batch) and
gae_adv.adv from test/objectives/reference.py (kl_k1/2/3 and gae with gamma
0.99 and lam 0.95, the attributes of the graphs) in float64, rounded to f32.
"""

import os
import random
import sys

from safetensors_io import load, write

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "objectives"))
import reference  # noqa: E402

GAMMA, LAM = 0.99, 0.95
MASK = [
    [1, 1, 0, 1, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 1, 0, 0, 0],
    [1, 1, 1, 1, 1, 1, 1],
    [0, 1, 1, 0, 1, 1, 0],
]


def inputs(out, seed):
    rng = random.Random(seed)
    logp = [rng.uniform(-3.0, 0.0) for _ in range(12)]
    ref = [rng.uniform(-3.0, 0.0) for _ in range(12)]
    logp[5], ref[5] = -6.0, -0.5  # exp(ref - logp) = exp(5.5)
    row = [rng.uniform(-3.0, 0.0) for _ in range(4)]
    b, t = len(MASK), len(MASK[0])
    rewards = [rng.uniform(-1.0, 1.0) for _ in range(b * t)]
    values = [rng.uniform(-2.0, 2.0) for _ in range(b * t)]
    write(out, [
        ("kl_all.logp", "F32", [3, 4], logp),
        ("kl_all.ref", "F32", [3, 4], ref),
        ("kl_all.row", "F32", [4], row),
        ("gae_adv.rewards", "F32", [b, t], rewards),
        ("gae_adv.values", "F32", [b, t], values),
        ("gae_adv.mask", "F32", [b, t],
         [float(m) for r in MASK for m in r]),
    ])


def rows_of(flat, n):
    return [list(flat[i * n:(i + 1) * n]) for i in range(len(flat) // n)]


def expected(path, out):
    t = load(path)
    logp, ref, row = (list(t["kl_all." + n][2])
                      for n in ("logp", "ref", "row"))
    result = [
        ("kl_all.k1", "F32", [3, 4], [reference.kl_k1(a, b)
                                  for a, b in zip(logp, ref)]),
        ("kl_all.k2", "F32", [3, 4], [reference.kl_k2(a, b)
                                  for a, b in zip(logp, ref)]),
        ("kl_all.k3", "F32", [3, 4], [reference.kl_k3(a, b)
                                  for a, b in zip(logp, ref)]),
        ("kl_all.k3_row", "F32", [3, 4], [reference.kl_k3(a, row[i % 4])
                                      for i, a in enumerate(logp)]),
    ]
    _, shape, _ = t["gae_adv.rewards"]
    rewards, values, mask = (rows_of(t["gae_adv." + n][2], shape[1])
                             for n in ("rewards", "values", "mask"))
    adv, _ = reference.gae(rewards, values, mask, GAMMA, LAM)
    result.append(("gae_adv.adv", "F32", shape, [x for r in adv for x in r]))
    write(out, result)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "inputs":
        inputs(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "expected":
        expected(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
