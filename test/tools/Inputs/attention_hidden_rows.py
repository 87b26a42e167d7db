#!/usr/bin/env python3
"""Checks a row that no key is visible to (stdlib only).

usage: attention_hidden_rows.py OUT.safetensors PREFIX ROW
Reads PREFIX.out [B, H, S, D] and PREFIX.lse [B, H, S]; query ROW must have
lse -inf and out 0 in every batch row and head, and no value may be NaN.
"""

import math
import sys

from safetensors_io import load


def main():
    tensors = load(sys.argv[1])
    prefix, row = sys.argv[2], int(sys.argv[3])
    _, (b, h, s, d), out = tensors[prefix + ".out"]
    _, _, lse = tensors[prefix + ".lse"]
    if any(math.isnan(x) for x in out) or any(math.isnan(x) for x in lse):
        sys.exit("NaN in the outputs")
    for bh in range(b * h):
        if lse[bh * s + row] != -math.inf:
            sys.exit("lse of row %d is %r" % (row, lse[bh * s + row]))
        base = (bh * s + row) * d
        if any(x != 0.0 for x in out[base:base + d]):
            sys.exit("out of row %d is not 0" % row)
    print("hidden row: lse -inf, out 0, no NaN")


if __name__ == "__main__":
    main()
