#!/usr/bin/env python3
"""Copies a safetensors file, adding DELTA to one int32 element (stdlib only).

usage: corrupt_tensor.py IN.safetensors OUT.safetensors NAME INDEX DELTA
"""

import json
import struct
import sys


def main():
    src, dst, name, index, delta = sys.argv[1:6]
    with open(src, "rb") as f:
        data = bytearray(f.read())
    (n,) = struct.unpack("<Q", data[:8])
    lo = json.loads(data[8:8 + n])[name]["data_offsets"][0]
    at = 8 + n + lo + 4 * int(index)
    (value,) = struct.unpack_from("<i", data, at)
    struct.pack_into("<i", data, at, value + int(delta))
    with open(dst, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
