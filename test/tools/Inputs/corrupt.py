#!/usr/bin/env python3
"""Damages a file for the bad-input tests.

usage: corrupt.py flip FILE OFFSET   (OFFSET < 0 counts from the end)
       corrupt.py truncate FILE SIZE  (SIZE < 0 drops that many bytes)
"""

import sys

mode, path, arg = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = bytearray(open(path, "rb").read())
if mode == "flip":
    data[arg] ^= 0xFF
elif mode == "truncate":
    data = data[:arg] if arg >= 0 else data[:len(data) + arg]
open(path, "wb").write(bytes(data))
