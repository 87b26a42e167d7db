#!/usr/bin/env python3
"""Compares every tensor of two safetensors files (stdlib only).

usage: allclose.py A.safetensors B.safetensors RTOL ATOL
Prints the largest absolute difference and exits 1 when a tensor is missing,
has another dtype (an f16 or bf16 tensor may be compared with an f32 or f64
one) or shape, or differs by more than ATOL + RTOL * |b|. Equal
values pass (infinities of the same sign included); NaN never does.
"""

import sys

from safetensors_io import load


def main():
    a, b = load(sys.argv[1]), load(sys.argv[2])
    rtol, atol = float(sys.argv[3]), float(sys.argv[4])
    worst, ok = 0.0, True
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            print("missing:", name)
            ok = False
            continue
        (da, sa, va), (db, sb, vb) = a[name], b[name]
        # The interpreter returns f16 and bf16 results in f32 (unrounded):
        # a low-precision float compares with any float of the same shape.
        floats = ("F16", "BF16", "F32", "F64")
        comparable = da == db or (da in floats and db in floats and
                                  ("F16" in (da, db) or "BF16" in (da, db)))
        if not comparable or sa != sb:
            print("%s: %s%s vs %s%s" % (name, da, sa, db, sb))
            ok = False
            continue
        for x, y in zip(va, vb):
            if x == y:  # also equal infinities (-inf lse of masked rows)
                continue
            d = abs(x - y)
            worst = max(worst, d)
            if not d <= atol + rtol * abs(y):
                ok = False
    print("tensors: %d, max abs diff: %.3g, %s" %
          (len(a), worst, "ok" if ok else "MISMATCH"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
