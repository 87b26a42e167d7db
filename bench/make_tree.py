#!/usr/bin/env python3
"""A random syntax tree over S tokens as Euler-tour intervals (stdlib only).

usage: make_tree.py OUT.safetensors S SEED

Token i > 0 hangs under a uniformly chosen earlier token (a random recursive
tree); tin and tout i32[S] are the entry and exit times of a depth-first
walk, so that key j is an ancestor of query i exactly when
tin[j] <= tin[i] and tout[i] <= tout[j] (the `ancestor` mask of
models/masked_attention.loom). Shared by bench/gpu_pack.py (Loom's
attend_tree) and bench/torch_gpu.py (FlexAttention's mask_mod).
"""

import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "test", "tools", "Inputs"))
from safetensors_io import load, write  # noqa: E402


def tree_intervals(s, seed):
    rng = random.Random(seed)
    children = [[] for _ in range(s)]
    for i in range(1, s):
        children[rng.randrange(i)].append(i)
    tin, tout, clock, stack = [0] * s, [0] * s, 0, [(0, False)] if s else []
    while stack:
        node, done = stack.pop()
        if done:
            tout[node] = clock
            clock += 1
            continue
        tin[node] = clock
        clock += 1
        stack.append((node, True))
        for c in reversed(children[node]):
            stack.append((c, False))
    return tin, tout


def read(path):
    tensors = load(path)
    return list(tensors["tin"][2]), list(tensors["tout"][2])


def main():
    out, s, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    tin, tout = tree_intervals(s, seed)
    write(out, [("tin", "I32", [s], tin), ("tout", "I32", [s], tout)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
