"""Reads and writes safetensors files with the standard library only; shared
by the scripts of this folder (they import it from their own directory)."""

import json
import struct

FORMATS = {"F32": "f", "F64": "d", "I32": "i", "I64": "q", "BOOL": "?",
           "F16": "e", "BF16": "H"}


def to_bf16_bits(value):
    """The bfloat16 nearest to `value` (ties to even), as its 16 bits."""
    (bits,) = struct.unpack("<I", struct.pack("<f", value))
    if (bits & 0x7f800000) == 0x7f800000 and bits & 0x7fffff:
        return (bits >> 16) | 0x40  # NaN stays NaN
    return (bits + 0x7fff + ((bits >> 16) & 1)) >> 16


def from_bf16_bits(bits):
    return struct.unpack("<f", struct.pack("<I", bits << 16))[0]


def load(path):
    """{name: (dtype, shape, values)}, values a flat tuple."""
    with open(path, "rb") as f:
        data = f.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    base = 8 + size
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        fmt = FORMATS[info["dtype"]]
        count = (end - begin) // struct.calcsize(fmt)
        values = struct.unpack("<%d%s" % (count, fmt),
                               data[base + begin:base + end])
        if info["dtype"] == "BF16":
            values = tuple(from_bf16_bits(v) for v in values)
        tensors[name] = (info["dtype"], info["shape"], values)
    return tensors


def write(path, tensors):
    """tensors: (name, dtype, shape, flat values) in file order."""
    header, blobs, offset = {}, [], 0
    for name, dtype, shape, values in tensors:
        if dtype == "BF16":
            values = [to_bf16_bits(v) for v in values]
        blob = struct.pack("<%d%s" % (len(values), FORMATS[dtype]), *values)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
