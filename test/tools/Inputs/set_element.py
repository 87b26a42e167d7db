#!/usr/bin/env python3
"""Sets one element of a tensor in a safetensors file (stdlib only).

usage: set_element.py FILE.safetensors NAME INDEX VALUE
INDEX is the flat index; VALUE is parsed as an int for integer tensors and a
float otherwise.
"""

import sys

from safetensors_io import load, write


def main():
    path, name, index, text = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    tensors = load(path)
    dtype, shape, values = tensors[name]
    values = list(values)
    values[index] = int(text) if dtype in ("I32", "I64") else float(text)
    tensors[name] = (dtype, shape, values)
    write(path, [(n, d, s, v) for n, (d, s, v) in tensors.items()])


if __name__ == "__main__":
    main()
