#!/usr/bin/env python3
"""Writes the weights and inputs of models/quickstart.loom as safetensors.

Pure standard library, so the quick start needs no numpy:
    python3 models/quickstart_data.py OUT_DIR
writes OUT_DIR/params.safetensors and OUT_DIR/inputs.safetensors.
"""

import json
import random
import struct
import sys
from pathlib import Path


def write_safetensors(path, tensors):
    """tensors: name -> (shape, list of floats), stored as f32."""
    header, blobs, offset = {}, [], 0
    for name, (shape, values) in tensors.items():
        data = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def uniform(rng, shape, scale):
    count = 1
    for d in shape:
        count *= d
    return shape, [rng.uniform(-scale, scale) for _ in range(count)]


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    dim, hidden, batch = 8, 16, 3
    write_safetensors(out / "params.safetensors", {
        "block.fc1.weight": uniform(rng, [hidden, dim], 0.5),
        "block.fc1.bias": uniform(rng, [hidden], 0.1),
        "block.fc2.weight": uniform(rng, [dim, hidden], 0.5),
    })
    write_safetensors(out / "inputs.safetensors", {
        "x": uniform(rng, [batch, dim], 1.0),
    })


if __name__ == "__main__":
    main()
