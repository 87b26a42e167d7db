#!/usr/bin/env python3
"""Writes small safetensors and .npy files for the tool tests (stdlib only).

usage: make_tensors.py OUT.safetensors NAME:DTYPE:D0xD1...[:FILL] ...
       make_tensors.py --npy OUT.npy DTYPE:D0xD1...[:FILL]
DTYPE is F32, F64, F16, BF16, I32, I64 or BOOL (any case). FILL is a number
(every element), `iota` (0, 1, 2, ...; the default) or `wave`
(0.5 sin(1.3 i + 0.7): varied values of order one), rounded to the dtype.
"""

import json
import math
import struct
import sys

from safetensors_io import FORMATS, to_bf16_bits

NPY = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8", "BOOL": "|b1"}


def values(dtype, shape, fill):
    count = 1
    for d in shape:
        count *= d
    if fill == "iota":
        vals = list(range(count))
    elif fill == "wave":
        vals = [0.5 * math.sin(1.3 * i + 0.7) for i in range(count)]
    else:
        vals = [float(fill)] * count
    if dtype in ("I32", "I64"):
        vals = [int(v) for v in vals]
    if dtype == "BOOL":
        vals = [bool(int(v) % 2) for v in vals]
    if dtype == "BF16":
        vals = [to_bf16_bits(v) for v in vals]
    return struct.pack("<%d%s" % (count, FORMATS[dtype]), *vals)


def parse(spec):
    parts = spec.split(":")
    shape = [int(d) for d in parts[1].split("x")] if parts[1] else []
    fill = parts[2] if len(parts) > 2 else "iota"
    return parts[0].upper(), shape, fill


def main():
    if sys.argv[1] == "--npy":
        dtype, shape, fill = parse(sys.argv[3])
        header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
            NPY[dtype], "".join("%d," % d for d in shape))
        header += " " * (-(len(header) + 11) % 64) + "\n"
        with open(sys.argv[2], "wb") as f:
            f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)))
            f.write(header.encode() + values(dtype, shape, fill))
        return
    header, blobs, offset = {}, [], 0
    for spec in sys.argv[2:]:
        name, rest = spec.split(":", 1)
        dtype, shape, fill = parse(rest)
        data = values(dtype, shape, fill)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    with open(sys.argv[1], "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


if __name__ == "__main__":
    main()
