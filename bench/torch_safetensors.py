"""Safetensors files as torch tensors for the PyTorch baselines
(bench/torch_mla.py, bench/torch_objectives.py): numpy and torch, no
safetensors package."""

import json
import os
import struct

import numpy as np
import torch

NP_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64,
             "I32": np.int32}


def read_safetensors(path):
    """name -> torch tensor (a copy) for every tensor of a safetensors file;
    ValueError for a file that cannot be read."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
    except (OSError, ValueError, struct.error) as e:
        raise ValueError("cannot read %s: %s" % (path, e))
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        arr = np.frombuffer(raw[begin:end], dtype=NP_DTYPES[info["dtype"]])
        # Copied into torch's own (64-byte aligned) allocation, as weights
        # loaded by torch would be.
        t = torch.empty(info["shape"], dtype=getattr(torch, arr.dtype.name))
        t.numpy()[...] = arr.reshape(info["shape"])
        out[name] = t
    return out


def write_safetensors(path, tensors):
    """tensors: [(name, numpy array)] (float32, float64, int64 or int32),
    written to a temporary file first and then renamed."""
    names = {np.dtype(v): k for k, v in NP_DTYPES.items()}
    header, offset = {}, 0
    for name, arr in tensors:
        header[name] = {"dtype": names[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, arr in tensors:
            f.write(np.ascontiguousarray(arr).tobytes())
    os.replace(tmp, path)
