#!/usr/bin/env python3
"""Inputs and float64 reference outputs for token-logprob-grad.mlir and
token-logprob-grad.loom (stdlib only).

usage: token-logprob-grad-ref.py inputs OUT.safetensors SEED
       token-logprob-grad-ref.py bad-ids OUT.safetensors SEED
       token-logprob-grad-ref.py expected IN.safetensors OUT.safetensors
       token-logprob-grad-ref.py check-nan IN.safetensors OUT.safetensors

`inputs` writes, for each entry, tensors named ENTRY.ARG (the prefix of
`loom-run --call ENTRY:ENTRY`): hidden states and lm-head weights in
[-1, 1), logits in [-4, 4) with a row of large logits (+-100), ids that
cover 0 and V - 1, and upstream gradients with one 0. `bad-ids` writes the
same with ids[0, 0] = -1 and ids[1, 2] = V. `expected` reads the inputs (as
stored, in f32) and writes every output in float64 from
test/objectives/reference.py's token_logprob and token_logprob_backward
(logits = h w^T, dh = dlogits w, dw = sum over tokens of dlogits^T h),
rounded to f32. `check-nan` checks the outputs of the bad-ids inputs: every
value of a token with a bad id is NaN (and so all of dw), every other value
is finite.
"""

import math
import os
import random
import sys

from safetensors_io import load, write

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "objectives"))
import reference  # noqa: E402

B, T, D, V = 2, 3, 8, 37
# entry: (temperature, weight form, ids dtype); the temperatures are those of
# token-logprob-grad.mlir.
ENTRIES = {
    "lp_w": (0.7, True, "I64"),
    "lp_grad": (1.0, False, "I64"),
    "lp_grad_hot": (0.7, False, "I64"),
    "lm_grad": (1.0, True, "I32"),
    "lm_grad_hot": (0.7, True, "I32"),
}


def uniform(rng, n, lo, hi):
    return [rng.uniform(lo, hi) for _ in range(n)]


def make(rng, name, bad):
    _, weighted, id_dtype = ENTRIES[name]
    tensors = []
    if weighted:
        tensors.append((name + ".h", "F32", [B, T, D],
                        uniform(rng, B * T * D, -1.0, 1.0)))
        tensors.append((name + ".w", "F32", [V, D],
                        uniform(rng, V * D, -1.5, 1.5)))
    else:
        logits = uniform(rng, B * T * V, -4.0, 4.0)
        # Row 1: one dominant token; row 4: everything near +100.
        for v in range(V):
            logits[V + v] = -100.0 + rng.uniform(0.0, 1.0)
            logits[4 * V + v] = 100.0 - rng.uniform(0.0, 3.0)
        logits[V + 5] = 100.0
        tensors.append((name + ".logits", "F32", [B, T, V], logits))
    ids = [0, 5, V - 1, rng.randrange(V), rng.randrange(V), V - 1]
    if bad:
        ids[0], ids[5] = -1, V
    tensors.append((name + ".ids", id_dtype, [B, T], ids))
    if name != "lp_w":
        g = uniform(rng, B * T, -2.0, 2.0)
        g[3] = 0.0
        tensors.append((name + ".g", "F32", [B, T], g))
    return tensors


def inputs(out, seed, bad):
    rng = random.Random(seed)
    tensors = []
    for name in ENTRIES:
        tensors += make(rng, name, bad)
    write(out, tensors)


def rows_of(flat, n):
    return [list(flat[i * n:(i + 1) * n]) for i in range(len(flat) // n)]


def expected(path, out):
    t = load(path)
    result = []
    for name, (temperature, weighted, _) in ENTRIES.items():
        ids = list(t[name + ".ids"][2])
        if weighted:
            h = rows_of(t[name + ".h"][2], D)
            w = rows_of(t[name + ".w"][2], D)
            logits = [[sum(x * y for x, y in zip(hr, wr)) for wr in w]
                      for hr in h]
        else:
            logits = rows_of(t[name + ".logits"][2], V)
        mask = [[1] * len(ids)]
        if name == "lp_w":
            lp = reference.token_logprob([logits], [ids], mask, temperature)
            result.append((name + ".lp", "F32", [B, T], lp[0]))
            continue
        g = list(t[name + ".g"][2])
        dlogits = reference.token_logprob_backward([logits], [ids], mask, [g],
                                                   temperature)[0]
        if not weighted:
            result.append((name + ".dlogits", "F32", [B, T, V],
                           [x for row in dlogits for x in row]))
            continue
        dh = [sum(d[v] * w[v][k] for v in range(V))
              for d in dlogits for k in range(D)]
        dw = [sum(d[v] * hr[k] for d, hr in zip(dlogits, h))
              for v in range(V) for k in range(D)]
        result.append((name + ".dh", "F32", [B, T, D], dh))
        result.append((name + ".dw", "F32", [V, D], dw))
    write(out, result)


def check_nan(inputs_path, outputs_path):
    t, out = load(inputs_path), load(outputs_path)
    problems = 0
    for name, (_, weighted, _) in ENTRIES.items():
        ids = list(t[name + ".ids"][2])
        bad = [not 0 <= i < V for i in ids]
        outputs = ([("lp", 1)] if name == "lp_w" else
                   [("dh", D), ("dw", None)] if weighted else [("dlogits", V)])
        for what, width in outputs:
            values = out[name + "." + what][2]
            for i, x in enumerate(values):
                want_nan = any(bad) if width is None else bad[i // width]
                if math.isnan(x) != want_nan:
                    print("%s.%s[%d] = %r" % (name, what, i, x))
                    problems += 1
    print("nan pattern: %s" % ("ok" if problems == 0 else "MISMATCH"))
    sys.exit(1 if problems else 0)


def main():
    if len(sys.argv) == 4 and sys.argv[1] in ("inputs", "bad-ids"):
        inputs(sys.argv[2], int(sys.argv[3]), sys.argv[1] == "bad-ids")
    elif len(sys.argv) == 4 and sys.argv[1] == "expected":
        expected(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "check-nan":
        check_nan(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
