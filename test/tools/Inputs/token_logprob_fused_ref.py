#!/usr/bin/env python3
"""Inputs and float64 references for the lm-head token log-probs (stdlib).

usage: token_logprob_fused_ref.py inputs INPUTS PARAMS SEED
       token_logprob_fused_ref.py expected INPUTS PARAMS OUT
       token_logprob_fused_ref.py grad-inputs INPUTS SEED
       token_logprob_fused_ref.py grad-expected INPUTS OUT NAMES

`inputs` writes the inputs of token_logprob_fused.loom's entries (tensors
f.h, f.ids, batched.h, batched.ids) and its params (w, head): values in
[-1, 1), with some token rows scaled by 20 so that logits reach about
+-100, and ids that cover 0, V - 1 and random tokens. `expected` computes,
from those tensors as stored (f32), the logits h . w^T in float64 and
test/objectives/reference.py's token_logprob at each entry's temperature
(f: 0.7, batched: 1.3), rounded to f32: f.lp and batched.lp.

`grad-inputs` writes h [N, d], ids [N], g [N] and w [V, d] for the backward
(token_logprob_grad with a weight); `grad-expected` writes those of lp, dh
and dw that NAMES (comma-separated) lists, in float64 at temperature
GRAD_TEMPERATURE: lp from reference.py's token_logprob, and from its
token_logprob_backward (d loss / d logits) dh = dlogits . w and
dw = dlogits^T . h.
"""

import os
import random
import sys

from safetensors_io import load, write

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "objectives"))
import reference  # noqa: E402

# entry: (leading shape, vocabulary, hidden size, ids dtype, temperature,
# param name); as in token_logprob_fused.loom.
ENTRIES = {
    "f": ([7], 40, 16, "I64", 0.7, "w"),
    "batched": ([2, 5], 600, 24, "I32", 1.3, "head"),
}
GRAD_SHAPE = (6, 300, 8)  # N, V, d
GRAD_TEMPERATURE = 0.8


def matrix(rng, rows, cols, big_rows=()):
    out = []
    for r in range(rows):
        scale = 20.0 if r in big_rows else 1.0
        out.append([scale * rng.uniform(-1.0, 1.0) for _ in range(cols)])
    return out


def flat(rows):
    return [x for row in rows for x in row]


def token_ids(rng, tokens, vocab):
    return [[0, vocab - 1][t] if t < 2 else rng.randrange(vocab)
            for t in range(tokens)]


def inputs(path, params_path, seed):
    rng = random.Random(seed)
    tensors, params = [], []
    for name, (shape, vocab, d, id_dtype, _, param) in ENTRIES.items():
        tokens = 1
        for n in shape:
            tokens *= n
        h = matrix(rng, tokens, d, big_rows=(1, tokens - 2))
        tensors.append(("%s.h" % name, "F32", shape + [d], flat(h)))
        tensors.append(("%s.ids" % name, id_dtype, shape,
                        token_ids(rng, tokens, vocab)))
        params.append((param, "F32", [vocab, d],
                       flat(matrix(rng, vocab, d))))
    write(path, tensors)
    write(params_path, params)


def logits_of(h, w):
    return [[sum(a * b for a, b in zip(row, wrow)) for wrow in w]
            for row in h]


def rows_of(values, cols):
    return [list(values[i * cols:(i + 1) * cols])
            for i in range(len(values) // cols)]


def expected(path, params_path, out):
    tensors, params = load(path), load(params_path)
    result = []
    for name, (shape, vocab, d, _, temperature, param) in ENTRIES.items():
        _, hshape, hv = tensors["%s.h" % name]
        _, ishape, ids = tensors["%s.ids" % name]
        _, wshape, wv = params[param]
        if hshape != shape + [d] or ishape != shape or wshape != [vocab, d]:
            sys.exit("error: %s has shapes %s, %s and %s" %
                     (name, hshape, ishape, wshape))
        logits = logits_of(rows_of(hv, d), rows_of(wv, d))
        lp = reference.token_logprob([logits], [list(ids)],
                                     [[1] * len(ids)], temperature)[0]
        result.append(("%s.lp" % name, "F32", shape, lp))
    write(out, result)


def grad_inputs(path, seed):
    rng = random.Random(seed)
    n, vocab, d = GRAD_SHAPE
    h = matrix(rng, n, d, big_rows=(2,))
    g = [rng.uniform(-1.0, 1.0) for _ in range(n)]
    g[3] = 0.0  # a token that does not reach the loss
    write(path, [("h", "F32", [n, d], flat(h)),
                 ("ids", "I64", [n], token_ids(rng, n, vocab)),
                 ("g", "F32", [n], g),
                 ("w", "F32", [vocab, d], flat(matrix(rng, vocab, d)))])


def grad_expected(path, out, names):
    t = load(path)
    n, vocab, d = GRAD_SHAPE
    h, w = rows_of(t["h"][2], d), rows_of(t["w"][2], d)
    ids, g = list(t["ids"][2]), list(t["g"][2])
    dlogits = reference.token_logprob_backward(
        [logits_of(h, w)], [ids], [[1] * n], [g], GRAD_TEMPERATURE)[0]
    dh = [[sum(dlogits[i][v] * w[v][k] for v in range(vocab))
           for k in range(d)] for i in range(n)]
    dw = [[sum(dlogits[i][v] * h[i][k] for i in range(n))
           for k in range(d)] for v in range(vocab)]
    lp = reference.token_logprob([logits_of(h, w)], [ids], [[1] * n],
                                 GRAD_TEMPERATURE)[0]
    tensors = {"lp": ("lp", "F32", [n], lp),
               "dh": ("dh", "F32", [n, d], flat(dh)),
               "dw": ("dw", "F32", [vocab, d], flat(dw))}
    write(out, [tensors[name] for name in names.split(",")])


def main():
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "inputs":
        inputs(args[1], args[2], int(args[3]))
    elif len(args) == 4 and args[0] == "expected":
        expected(args[1], args[2], args[3])
    elif len(args) == 3 and args[0] == "grad-inputs":
        grad_inputs(args[1], int(args[2]))
    elif len(args) == 4 and args[0] == "grad-expected":
        grad_expected(args[1], args[2], args[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
