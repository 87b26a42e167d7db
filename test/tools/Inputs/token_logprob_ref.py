#!/usr/bin/env python3
"""Inputs and float64 reference outputs for token_logprob.loom (stdlib only).

usage: token_logprob_ref.py inputs OUT.safetensors SEED
       token_logprob_ref.py expected IN.safetensors OUT.safetensors

`inputs` writes, for each entry of token_logprob.loom, tensors named
ENTRY.logits and ENTRY.ids (the prefix of `loom-run --call ENTRY:ENTRY`):
pseudo-random logits in [-4, 4) with rows of large logits (+-100: one
dominant token, all near +100, all near -100, a mix) and ids that cover 0,
V - 1 and the dominant and dominated tokens. `expected` reads those inputs
(as stored, in f32) and writes ENTRY.lp from test/objectives/reference.py's
token_logprob in float64, rounded to f32.
"""

import os
import random
import sys

from safetensors_io import load, write

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "objectives"))
import reference  # noqa: E402

# entry: (leading shape, vocabulary, ids dtype, temperature); the
# temperatures are those of token_logprob.loom.
ENTRIES = {
    "logp": ([3, 5], 37, "I64", 1.0),
    "logp_hot": ([2, 6], 50, "I64", 0.7),
    "logp_flat": ([9], 23, "I32", 2.5),
}


def make_rows(rng, rows, vocab):
    logits, ids = [], []
    for r in range(rows):
        kind = r % 6
        row = [rng.uniform(-4.0, 4.0) for _ in range(vocab)]
        top = rng.randrange(vocab)
        if kind == 1:  # one dominant token
            row = [-100.0 + rng.uniform(0.0, 1.0) for _ in range(vocab)]
            row[top] = 100.0
        elif kind == 2:  # everything near +100
            row = [100.0 - rng.uniform(0.0, 3.0) for _ in range(vocab)]
        elif kind == 3:  # everything near -100
            row = [-100.0 + rng.uniform(0.0, 3.0) for _ in range(vocab)]
        elif kind == 4:  # a mix of +-100 and small values
            row = [rng.choice([-100.0, 100.0, rng.uniform(-1.0, 1.0)])
                   for _ in range(vocab)]
        choice = [0, vocab - 1, top, rng.randrange(vocab)][r % 4]
        if kind == 1 and r % 2:
            choice = top  # log-prob close to 0
        logits.append(row)
        ids.append(choice)
    return logits, ids


def inputs(out, seed):
    rng = random.Random(seed)
    tensors = []
    for name, (shape, vocab, id_dtype, _) in ENTRIES.items():
        rows = 1
        for d in shape:
            rows *= d
        logits, ids = make_rows(rng, rows, vocab)
        tensors.append(("%s.logits" % name, "F32", shape + [vocab],
                        [x for row in logits for x in row]))
        tensors.append(("%s.ids" % name, id_dtype, shape, ids))
    write(out, tensors)


def expected(path, out):
    tensors = load(path)
    result = []
    for name, (shape, vocab, _, temperature) in ENTRIES.items():
        _, lshape, flat = tensors["%s.logits" % name]
        _, ishape, ids = tensors["%s.ids" % name]
        if lshape != shape + [vocab] or ishape != shape:
            sys.exit("error: %s has shapes %s and %s" % (name, lshape, ishape))
        rows = [list(flat[i * vocab:(i + 1) * vocab])
                for i in range(len(ids))]
        lp = reference.token_logprob([rows], [list(ids)],
                                     [[1] * len(ids)], temperature)[0]
        result.append(("%s.lp" % name, "F32", shape, lp))
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
