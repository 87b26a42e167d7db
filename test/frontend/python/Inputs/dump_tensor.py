#!/usr/bin/env python3
"""Prints tensors of a safetensors file: `NAME: DTYPE [SHAPE] = values`.

usage: dump_tensor.py FILE.safetensors NAME...   (stdlib only; I32 only)
"""

import json
import struct
import sys


def main():
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    for name in sys.argv[2:]:
        info = header[name]
        lo, hi = info["data_offsets"]
        vals = struct.unpack("<%di" % ((hi - lo) // 4),
                             data[8 + n + lo:8 + n + hi])
        print("%s: %s %s = %s" % (name, info["dtype"], info["shape"],
                                  " ".join(map(str, vals))))


if __name__ == "__main__":
    main()
