#!/usr/bin/env python3
"""Inputs and a float64 reference for attention_masks.loom (stdlib only).

usage: attention_ref.py inputs OUT.safetensors
       attention_ref.py check OUTPUTS.safetensors RTOL ATOL

`inputs` writes the inputs of every graph of attention_masks.loom, prefixed
by the graph's name (`tree.q`, `tree.tin`, ...), as `loom-run --call
tree:tree` reads them. `check` recomputes every case from the same inputs
with masks written from their definitions (tree ancestry by walking parent
links, CSR and bit masks from the adjacency they were built from), and
compares the outputs: a value passes when |got - want| <= ATOL + RTOL *
|want|, -inf must be -inf, and no output may be NaN.
"""

import math
import random
import struct
import sys

from safetensors_io import load, write

B, H, S, D = 2, 4, 6, 4


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def shape_of(nested):
    shape = []
    while isinstance(nested, list):
        shape.append(len(nested))
        nested = nested[0] if nested else None
    return shape


def flat(nested):
    if isinstance(nested, list):
        return [x for item in nested for x in flat(item)]
    return [nested]


def tensor(rng, *shape):
    if not shape:
        return f32(rng.uniform(-1.5, 1.5))
    return [tensor(rng, *shape[1:]) for _ in range(shape[0])]


def intervals(parent):
    """Entry and exit times of a DFS over the tree given by parent links."""
    n = len(parent)
    children = [[] for _ in range(n)]
    for node, p in enumerate(parent):
        if p >= 0:
            children[p].append(node)
    tin, tout, clock = [0] * n, [0] * n, [0]

    def visit(node):
        tin[node] = clock[0]
        clock[0] += 1
        for c in children[node]:
            visit(c)
        tout[node] = clock[0]
        clock[0] += 1

    for node in range(n):
        if parent[node] < 0:
            visit(node)
    return tin, tout


def is_ancestor(parent, j, i):
    """Whether token j's node is an ancestor of (or is) token i's node."""
    while i >= 0:
        if i == j:
            return True
        i = parent[i]
    return False


SYNTAX = [-1, 0, 1, 1, 0, 4]
SCOPES = [-1, 0, 0, 2, 2, -1]


def cases():
    rng = random.Random(7)
    out = {}

    def qkv(hq=H, hkv=H, s=S, dk=D, dv=D):
        return {"q": tensor(rng, B, hq, s, dk), "k": tensor(rng, B, hkv, s, dk),
                "v": tensor(rng, B, hkv, s, dv)}

    out["plain"] = (qkv(), {}, lambda b, h, i, j: True, None, 0.3)
    out["causal"] = (qkv(), {}, lambda b, h, i, j: j <= i, None, None)

    tin, tout = intervals(SYNTAX)
    sin, sout = intervals(SCOPES)
    meta = {"tin": ("I32", tin), "tout": ("I32", tout)}
    out["tree"] = (qkv(), meta,
                   lambda b, h, i, j: is_ancestor(SYNTAX, j, i), None, None)

    adj = [[rng.random() < 0.4 for _ in range(S)] for _ in range(S)]
    adj[3] = [False] * S  # a row with no edge: only i == j is visible
    indptr, indices = [0], []
    for row in adj:
        indices += [c for c in range(S) if row[c]]
        indptr.append(len(indices))
    meta = {"indptr": ("I32", indptr), "indices": ("I32", indices)}
    out["csr"] = (qkv(), meta, lambda b, h, i, j: adj[i][j] or i == j,
                  None, None)

    # 40 keys: two words per row, bit 31 set in some of them (negative i32).
    sb = 40
    bitmask = [[rng.random() < 0.5 for _ in range(sb)] for _ in range(sb)]
    for i in range(sb):
        bitmask[i][31] = i % 2 == 0
        bitmask[i][i] = True
    words = []
    for row in bitmask:
        ws = []
        for w in range(2):
            u = sum(1 << (c - 32 * w) for c in range(32 * w, min(32 * w + 32, sb))
                    if row[c])
            ws.append(u - (1 << 32) if u >= 1 << 31 else u)
        words.append(ws)
    out["bits"] = (qkv(hq=2, hkv=2, s=sb), {"words": ("I32", words)},
                   lambda b, h, i, j: bitmask[i][j], None, None)

    dense = [[[rng.random() < 0.6 for _ in range(S)] for _ in range(S)]
             for _ in range(B)]
    out["dense"] = (qkv(), {"m": ("BOOL", dense)},
                    lambda b, h, i, j: dense[b][i][j], None, None)

    seg = [[0, 0, 0, 1, 1, 1], [0, 1, 1, 1, 2, 2]]
    out["doc"] = (qkv(), {"seg": ("I64", seg)},
                  lambda b, h, i, j: seg[b][i] == seg[b][j] and (j < 2 or j <= i),
                  None, None)

    def perhead(b, h, i, j):
        if h % 2 == 0:
            m = is_ancestor(SYNTAX, j, i)
        else:
            m = is_ancestor(SCOPES, j, i)
        return m and (h < 2 or tin[j] + 1 >= tin[i])

    meta = {"tin": ("I32", tin), "tout": ("I32", tout), "sin": ("I32", sin),
            "sout": ("I32", sout)}
    out["perhead"] = (qkv(), meta, perhead, None, None)

    bias = tensor(rng, H, S, S)
    slopes = [f32(2.0 ** -(h + 1)) for h in range(H)]

    def modify(b, h, i, j, s):
        s = s * 2.0 + (0.5 if j == 0 else 0.0) - (i - j) / 4
        s = s + bias[h][i][j]
        s = s + slopes[h] * (j - i)
        return 5.0 * math.tanh(s / 5.0)

    meta = {"bias": ("F32", bias), "slopes": ("F32", slopes)}
    out["modifiers"] = (qkv(), meta, lambda b, h, i, j: j <= i, modify, 0.4)

    out["gqa"] = (qkv(hq=4, hkv=2, dk=4, dv=3), {},
                  lambda b, h, i, j: 0 <= i - j < 3, None, None)
    t = {"q": tensor(rng, B, H, 2, D), "k": tensor(rng, B, H, S, D),
         "v": tensor(rng, B, H, S, D)}
    out["offset"] = (t, {"pos": ("I64", 3)}, lambda b, h, i, j: j <= i + 3,
                     None, None)
    out["empty_rows"] = (qkv(), {},
                         lambda b, h, i, j: j <= i and i != 2 and
                         not (b == 1 and i == 0) and -(j + 1) // 2 != -2 and
                         (j - i) % 4 != 3, None, None)
    return out


def reference(case):
    t, _, mask, score, scale = case
    q, k, v = t["q"], t["k"], t["v"]
    hq, hkv = len(q[0]), len(k[0])
    sq, skv, dk, dv = len(q[0][0]), len(k[0][0]), len(q[0][0][0]), len(v[0][0][0])
    if scale is None:
        scale = 1.0 / math.sqrt(dk)
    out = [[[[0.0] * dv for _ in range(sq)] for _ in range(hq)] for _ in range(B)]
    lse = [[[-math.inf] * sq for _ in range(hq)] for _ in range(B)]
    for b in range(B):
        for h in range(hq):
            kh = h // (hq // hkv)
            for i in range(sq):
                s = {}
                for j in range(skv):
                    if not mask(b, h, i, j):
                        continue
                    x = scale * sum(q[b][h][i][d] * k[b][kh][j][d]
                                    for d in range(dk))
                    s[j] = score(b, h, i, j, x) if score else x
                if not s:
                    continue
                top = max(s.values())
                total = sum(math.exp(x - top) for x in s.values())
                lse[b][h][i] = top + math.log(total)
                for j, x in s.items():
                    p = math.exp(x - top) / total
                    for d in range(dv):
                        out[b][h][i][d] += p * v[b][kh][j][d]
    return out, lse


def main():
    all_cases = cases()
    if sys.argv[1] == "inputs":
        tensors = {}
        for name, (t, meta, _, _, _) in all_cases.items():
            for key, value in t.items():
                tensors["%s.%s" % (name, key)] = ("F32", value)
            for key, value in meta.items():
                tensors["%s.%s" % (name, key)] = value
        write(sys.argv[2], [(name, dtype, shape_of(nested), flat(nested))
                            for name, (dtype, nested) in tensors.items()])
        return
    got = load(sys.argv[2])
    rtol, atol = float(sys.argv[3]), float(sys.argv[4])
    ok = True
    for name, case in sorted(all_cases.items()):
        out, lse = reference(case)
        worst, masked_rows = 0.0, 0
        for key, want in (("out", out), ("lse", lse)):
            full = "%s.%s" % (name, key)
            if full not in got:
                print("%s: missing" % full)
                ok = False
                continue
            _, shape, values = got[full]
            want_flat = flat(want)
            if shape != shape_of(want) or len(values) != len(want_flat):
                print("%s: shape %s, expected %s" % (full, shape, shape_of(want)))
                ok = False
                continue
            for x, y in zip(values, want_flat):
                if math.isnan(x):
                    print("%s: NaN" % full)
                    ok = False
                    break
                if y == -math.inf:
                    masked_rows += 1
                    if x != -math.inf:
                        print("%s: %r where -inf is expected" % (full, x))
                        ok = False
                    continue
                diff = abs(x - y)
                worst = max(worst, diff)
                if not diff <= atol + rtol * abs(y):
                    print("%s: %r, expected %r" % (full, x, y))
                    ok = False
        print("%s: max abs diff %.3g, fully masked rows %d" %
              (name, worst, masked_rows))
    print("ok" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
