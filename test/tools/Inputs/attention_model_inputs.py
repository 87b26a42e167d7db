#!/usr/bin/env python3
"""Inputs of every entry of models/masked_attention.loom (stdlib only).

usage: attention_model_inputs.py META.safetensors OUT.safetensors B H D SEED
                                 BLOCK [DTYPE]

META is the output of frontend/python/loom_codemeta.py for a source file; its
token count is S. Writes, for each entry, tensors named ENTRY.NAME (the
prefix of `loom-run --call ENTRY:ENTRY`): q, k, v [B, H, S, D] of
pseudo-random values in [-1, 1), of DTYPE (F32, the default, F16 or BF16),
and what the entry's mask reads:
  attend          mask bool[S, S], about half visible, and rows 1 and S - 2
                  hidden entirely
  attend_document seg i32[S], runs of 1 to 40 tokens
  attend_blocks   blocks bool[NB, NB], NB = ceil(S / BLOCK), about a third
                  visible, block row 1 hidden entirely
  attend_tree, attend_scope, attend_dataflow, attend_dataflow_bits,
  attend_code     the metadata tensors they name
"""

import random
import sys

from safetensors_io import load, write

def main():
    meta = load(sys.argv[1])
    out = sys.argv[2]
    b, h, d, seed, block = (int(x) for x in sys.argv[3:8])
    dtype = sys.argv[8] if len(sys.argv) > 8 else "F32"
    rng = random.Random(seed)
    s = meta["tin"][1][0]
    nb = (s + block - 1) // block
    tensors = []

    def qkv(prefix):
        for name in ("q", "k", "v"):
            tensors.append(("%s.%s" % (prefix, name), dtype, [b, h, s, d],
                            [rng.uniform(-1.0, 1.0) for _ in range(b * h * s * d)]))

    def metadata(prefix, names):
        for name in names:
            _, shape, values = meta[name]
            tensors.append(("%s.%s" % (prefix, name), "I32", shape, values))

    for entry in ("attend_full", "attend_causal", "attend_window"):
        qkv(entry)
    qkv("attend")
    mask = [rng.random() < 0.5 for _ in range(s * s)]
    for row in (1, s - 2):
        mask[row * s:(row + 1) * s] = [False] * s
    tensors.append(("attend.mask", "BOOL", [s, s], mask))
    qkv("attend_document")
    seg, doc = [], 0
    while len(seg) < s:
        seg += [doc] * rng.randint(1, 40)
        doc += 1
    tensors.append(("attend_document.seg", "I32", [s], seg[:s]))
    qkv("attend_blocks")
    blocks = [rng.random() < 0.33 for _ in range(nb * nb)]
    blocks[nb:2 * nb] = [False] * nb
    tensors.append(("attend_blocks.blocks", "BOOL", [nb, nb], blocks))
    for entry, names in (("attend_tree", ["tin", "tout"]),
                         ("attend_scope", ["scope_in", "scope_out"]),
                         ("attend_dataflow", ["df_indptr", "df_indices"]),
                         ("attend_dataflow_bits", ["df_bits"]),
                         ("attend_code", ["tin", "tout", "scope_in", "scope_out",
                                          "df_indptr", "df_indices"])):
        qkv(entry)
        metadata(entry, names)
    write(out, tensors)


if __name__ == "__main__":
    main()
