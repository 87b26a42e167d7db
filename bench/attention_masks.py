#!/usr/bin/env python3
"""Attention masks of the masked-attention benchmark, for PyTorch.

  attention_masks.py stats [--s 1024,2048,4096] [--masks KINDS]
                           [--tree-meta FILE]
  attention_masks.py synth-meta S -o FILE [--tokens N] [--seed N]
  attention_masks.py selftest

A mask says which key j a query i sees. The kinds, over S positions:

  none       every key;
  causal     j <= i;
  window256  0 <= i - j < 256 (causal sliding window);
  tree       a mask computed from the code metadata of a source file
             (frontend/python/loom_codemeta.py writes it):
               (j <= i and (ancestor(j, i) or scope(j, i) or dataflow(i, j)))
               or j == i
             where ancestor(j, i) = tin[j] <= tin[i] and tout[i] <= tout[j]
             (the AST node of token j is an ancestor-or-self of token i's),
             scope(j, i) the same test on scope_in / scope_out, and
             dataflow(i, j) bit j % 32 of df_bits[i, j / 32];
  sparse10   block-sparse: about 10% of the 64x64 tiles visible (fixed seed),
             the diagonal tiles always, so that no row is empty.

Every kind keeps the diagonal, so that no row is fully masked (SDPA gives
NaN there). Each mask comes as a flex-attention mask_mod (torch ops on the
index tensors, broadcasting) and as a dense bool tensor [S, S] (the mask_mod
evaluated on the whole grid); `selftest` checks the dense tensors against a
per-pair Python reference built another way (the data-flow edges from the
CSR lists, not from the bit matrix).

Code metadata (safetensors, int32): tin, tout, scope_in, scope_out [S],
df_indptr [S + 1], df_indices [nnz], df_bits [S, ceil(S / 32)]. When the
file has a `valid` tensor [S] (1: a token of the source, 0: padding) or a
`tokens` entry in its __metadata__ (the first N positions are tokens), padding
rows see only themselves. `synth-meta` writes a synthetic file with the same
tensors (a random tree of nested intervals over the tokens, random scopes
and data-flow edges) for tests when no real file is at hand.

`stats` prints, per kind and S, the visible pairs, their fraction and the
fraction of 64x64 tiles with at least one visible pair (the tiles a
block-sparse kernel cannot skip), as JSON.
"""
import argparse
import json
import math
import os
import random
import struct
import sys

import numpy as np
import torch

KINDS = ("none", "causal", "window256", "tree", "sparse10")
WINDOW = 256
TILE = 64
SPARSE_FRACTION = 0.10
SPARSE_SEED = 10
META_TENSORS = ("tin", "tout", "scope_in", "scope_out", "df_indptr",
                "df_indices", "df_bits")

NP_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64,
             "I32": np.int32, "U8": np.uint8, "BOOL": np.bool_}
ST_DTYPES = {np.dtype(v): k for k, v in NP_DTYPES.items()}


class MaskError(Exception):
    """Bad input: an unknown kind, a malformed metadata file."""


# -- safetensors, numpy only --------------------------------------------------
def read_safetensors(path):
    """(name -> torch tensor (a copy), __metadata__ dict) of a file."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise MaskError("%s: not a safetensors file" % path)
            (n,) = struct.unpack("<Q", head)
            header = json.loads(f.read(n))
    except (OSError, ValueError) as e:
        raise MaskError("%s: %s" % (path, e))
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n) \
        if os.path.getsize(path) > 8 + n else np.zeros(0, np.uint8)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info.get("dtype") not in NP_DTYPES:
            raise MaskError("%s: tensor %s has unsupported dtype %s"
                            % (path, name, info.get("dtype")))
        begin, end = info["data_offsets"]
        if end > raw.size:
            raise MaskError("%s: tensor %s runs past the end of the file"
                            % (path, name))
        arr = np.frombuffer(raw[begin:end], dtype=NP_DTYPES[info["dtype"]])
        if arr.size != math.prod(info["shape"]):
            raise MaskError("%s: tensor %s has %d values for shape %s"
                            % (path, name, arr.size, info["shape"]))
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out, header.get("__metadata__", {}) or {}


def write_safetensors(path, tensors, metadata=None):
    """Writes name -> torch tensor (contiguous copies) to path."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        arr = np.ascontiguousarray(t.detach().cpu().numpy())
        blob = arr.tobytes()
        header[name] = {"dtype": ST_DTYPES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


# -- code metadata ------------------------------------------------------------
class CodeMeta:
    """The code metadata of S positions (checked for shapes and ranges)."""

    def __init__(self, tensors, metadata=None, path="<metadata>"):
        missing = [n for n in META_TENSORS if n not in tensors]
        if missing:
            raise MaskError("%s: missing tensors %s"
                            % (path, ", ".join(missing)))
        t = {n: tensors[n].to(torch.int64) for n in META_TENSORS}
        s = t["tin"].numel()
        for n in ("tin", "tout", "scope_in", "scope_out"):
            if list(t[n].shape) != [s]:
                raise MaskError("%s: %s has shape %s, expected [%d]"
                                % (path, n, list(t[n].shape), s))
        words = (s + 31) // 32
        if list(t["df_indptr"].shape) != [s + 1]:
            raise MaskError("%s: df_indptr has shape %s, expected [%d]"
                            % (path, list(t["df_indptr"].shape), s + 1))
        if list(t["df_bits"].shape) != [s, words]:
            raise MaskError("%s: df_bits has shape %s, expected [%d, %d]"
                            % (path, list(t["df_bits"].shape), s, words))
        indptr, indices = t["df_indptr"], t["df_indices"]
        if (indptr[0] != 0 or bool((indptr[1:] < indptr[:-1]).any())
                or indptr[-1] != indices.numel()):
            raise MaskError("%s: df_indptr is not a CSR row pointer of the %d "
                            "df_indices" % (path, indices.numel()))
        if indices.numel() and (indices.min() < 0 or indices.max() >= s):
            raise MaskError("%s: df_indices out of [0, %d)" % (path, s))
        self.s = s
        self.tin, self.tout = t["tin"], t["tout"]
        self.scope_in, self.scope_out = t["scope_in"], t["scope_out"]
        self.df_indptr, self.df_indices = indptr, indices
        # The bit matrix as int64 words of 32 bits (bit 31 positive).
        self.df_bits = t["df_bits"] & 0xFFFFFFFF
        valid = torch.ones(s, dtype=torch.bool)
        if "valid" in tensors:
            if list(tensors["valid"].shape) != [s]:
                raise MaskError("%s: valid has shape %s, expected [%d]"
                                % (path, list(tensors["valid"].shape), s))
            valid = tensors["valid"] != 0
        elif metadata and "tokens" in metadata:
            try:
                n = int(metadata["tokens"])
            except ValueError:
                raise MaskError("%s: __metadata__ tokens is not an integer: %r"
                                % (path, metadata["tokens"]))
            if not 0 < n <= s:
                raise MaskError("%s: __metadata__ tokens = %d out of (0, %d]"
                                % (path, n, s))
            valid[n:] = False
        self.valid = valid
        self.tokens = int(valid.sum())

    @staticmethod
    def load(path):
        tensors, metadata = read_safetensors(path)
        return CodeMeta(tensors, metadata, path)

    def tensors(self):
        """The metadata as int32 tensors, the names of the file format."""
        out = {"tin": self.tin, "tout": self.tout, "scope_in": self.scope_in,
               "scope_out": self.scope_out, "df_indptr": self.df_indptr,
               "df_indices": self.df_indices,
               "df_bits": self.df_bits.to(torch.int64)}
        out = {k: v.to(torch.int32) for k, v in out.items()}
        out["valid"] = self.valid.to(torch.int32)
        return out


def synthetic_meta(s, tokens=None, seed=0):
    """Synthetic code metadata of s positions, the first `tokens` real.

    A random walk over a tree: at each token a new AST node may open (a
    child of the current one) or the current one may close; the token
    belongs to the innermost open node. Euler-tour times give the nested
    intervals [tin, tout]. The root and every fourth node opened are scopes;
    a token's scope interval is its innermost open scope's. Each token has
    0-3 data-flow edges to earlier tokens, mostly near ones. Padding tokens
    get an interval of their own and no edges."""
    tokens = s if tokens is None else tokens
    if not 0 < tokens <= s:
        raise MaskError("tokens = %d out of (0, %d]" % (tokens, s))
    rng = random.Random(seed)
    clock = 0
    node_in, node_out, node_scope = [clock], [None], [True]
    clock += 1
    stack = [0]
    token_node, token_scope = [], []

    def close():
        nonlocal clock
        node_out[stack.pop()] = clock
        clock += 1

    for _ in range(tokens):
        r = rng.random()
        if r < 0.3 and len(stack) < 24:
            node_in.append(clock)
            node_out.append(None)
            node_scope.append(len(node_in) % 4 == 0)
            clock += 1
            stack.append(len(node_in) - 1)
        elif r < 0.55 and len(stack) > 1:
            close()
        token_node.append(stack[-1])
        token_scope.append(next(n for n in reversed(stack) if node_scope[n]))
    while stack:
        close()
    tin = [node_in[n] for n in token_node]
    tout = [node_out[n] for n in token_node]
    scope_in = [node_in[n] for n in token_scope]
    scope_out = [node_out[n] for n in token_scope]
    for _ in range(tokens, s):
        tin.append(clock)
        tout.append(clock + 1)
        scope_in.append(clock)
        scope_out.append(clock + 1)
        clock += 2
    words = (s + 31) // 32
    indptr, indices = [0], []
    bits = np.zeros((s, words), dtype=np.uint32)
    for i in range(s):
        row = set()
        if 0 < i < tokens:
            for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
                row.add(i - min(i, 1 + int(rng.expovariate(1 / 40.0))))
        for j in sorted(row):
            indices.append(j)
            bits[i, j // 32] |= np.uint32(1 << (j % 32))
        indptr.append(len(indices))

    def i32(v):
        return torch.tensor(v, dtype=torch.int32)

    valid = torch.zeros(s, dtype=torch.int32)
    valid[:tokens] = 1
    return {"tin": i32(tin), "tout": i32(tout), "scope_in": i32(scope_in),
            "scope_out": i32(scope_out), "df_indptr": i32(indptr),
            "df_indices": i32(indices),
            "df_bits": torch.from_numpy(bits.view(np.int32).copy()),
            "valid": valid}


# -- masks --------------------------------------------------------------------
class Mask:
    """One mask of S x S positions: kind, mask_mod, dense bool tensor, and
    the tensors the mask reads (`inputs`: what a compiled model gets)."""

    def __init__(self, kind, s, mask_mod, inputs=None):
        self.kind = kind
        self.s = s
        self.mask_mod = mask_mod
        self.inputs = inputs or {}
        self._dense = None

    def dense(self):
        """The mask as a bool tensor [S, S] (True: visible)."""
        if self._dense is None:
            idx = torch.arange(self.s)
            m = self.mask_mod(0, 0, idx[:, None], idx[None, :])
            self._dense = m.expand(self.s, self.s).contiguous().to(torch.bool)
        return self._dense

    def additive(self, dtype=torch.float32):
        """The mask as an additive float tensor [S, S]: 0 or -inf."""
        out = torch.zeros(self.s, self.s, dtype=dtype)
        out.masked_fill_(~self.dense(), float("-inf"))
        return out

    def stats(self, tile=TILE):
        """Visible pairs, their fraction, and the fractions of tile x tile
        blocks with some / all pairs visible (the last blocks of a size not
        divisible by tile are partial; their missing pairs count as
        visible for `full` and as masked for `some`)."""
        d = self.dense()
        s, nt = self.s, -(-self.s // tile)
        pad = nt * tile - s
        some = torch.nn.functional.pad(d, (0, pad, 0, pad), value=False)
        full = torch.nn.functional.pad(d, (0, pad, 0, pad), value=True)
        some = some.view(nt, tile, nt, tile).any(3).any(1)
        full = full.view(nt, tile, nt, tile).all(3).all(1)
        pairs = int(d.sum())
        return {"kind": self.kind, "s": s, "visible_pairs": pairs,
                "pair_fraction": pairs / float(s * s),
                "tile": tile, "tiles": nt * nt,
                "tile_fraction": int(some.sum()) / float(nt * nt),
                "full_tile_fraction": int(full.sum()) / float(nt * nt),
                "empty_rows": int((~d.any(1)).sum())}


def sparse_tiles(s, fraction=SPARSE_FRACTION, seed=SPARSE_SEED, tile=TILE):
    """bool [nt, nt]: the visible tiles of `sparse10`, about `fraction` of
    them, the diagonal always."""
    nt = -(-s // tile)
    g = torch.Generator().manual_seed(seed)
    p = max(0.0, (fraction * nt - 1) / (nt - 1)) if nt > 1 else 1.0
    tiles = torch.rand(nt, nt, generator=g) < p
    tiles.fill_diagonal_(True)
    return tiles


def tree_mask_mod(meta):
    """The mask_mod of `tree` over code metadata."""
    tin, tout = meta.tin, meta.tout
    sin, sout = meta.scope_in, meta.scope_out
    bits, valid = meta.df_bits, meta.valid

    def tree(b, h, q, kv):
        ancestor = (tin[kv] <= tin[q]) & (tout[q] <= tout[kv])
        scope = (sin[kv] <= sin[q]) & (sout[q] <= sout[kv])
        flow = ((bits[q, kv // 32] >> (kv % 32)) & 1) != 0
        seen = (kv <= q) & valid[q] & valid[kv] & (ancestor | scope | flow)
        return seen | (q == kv)

    return tree


def make_mask(kind, s, meta=None):
    """The Mask of `kind` over s positions; `tree` needs code metadata of s
    positions (a CodeMeta)."""
    if s <= 0:
        raise MaskError("S must be positive, got %d" % s)
    if kind == "none":
        return Mask(kind, s, lambda b, h, q, kv: (q >= 0) | (kv >= 0))
    if kind == "causal":
        return Mask(kind, s, lambda b, h, q, kv: kv <= q)
    if kind == "window256":
        return Mask(kind, s, lambda b, h, q, kv: (kv <= q) & (q - kv < WINDOW))
    if kind == "sparse10":
        tiles = sparse_tiles(s)
        return Mask(kind, s, lambda b, h, q, kv: tiles[q // TILE, kv // TILE],
                    {"tiles": tiles.to(torch.int32)})
    if kind == "tree":
        if meta is None:
            raise MaskError("the tree mask needs code metadata (--tree-meta)")
        if meta.s != s:
            raise MaskError("the code metadata has %d positions, S is %d"
                            % (meta.s, s))
        return Mask(kind, s, tree_mask_mod(meta), meta.tensors())
    raise MaskError("unknown mask kind %r (known: %s)"
                    % (kind, ", ".join(KINDS)))


def check_meta_bits(meta):
    """Raises MaskError when df_bits and the CSR lists disagree."""
    rows = torch.repeat_interleave(torch.arange(meta.s),
                                   meta.df_indptr[1:] - meta.df_indptr[:-1])
    cols = meta.df_indices
    if cols.numel():
        set_ = (meta.df_bits[rows, cols // 32] >> (cols % 32)) & 1
        if not bool(set_.all()):
            raise MaskError("df_bits lacks %d edges of df_indices"
                            % int((set_ == 0).sum()))
    packed = meta.df_bits.to(torch.int64).numpy().astype(np.uint32)
    ones = int(np.unpackbits(packed.view(np.uint8)).sum())
    unique = len(set(zip(rows.tolist(), cols.tolist())))
    if ones != unique:
        raise MaskError("df_bits has %d edges, df_indices %d" % (ones, unique))


# -- self test ----------------------------------------------------------------
def reference_dense(kind, s, meta=None):
    """A per-pair Python reference of the masks (data flow from CSR)."""
    ref = [[False] * s for _ in range(s)]
    if kind == "tree":
        tin, tout = meta.tin.tolist(), meta.tout.tolist()
        sin, sout = meta.scope_in.tolist(), meta.scope_out.tolist()
        valid = meta.valid.tolist()
        ptr, ind = meta.df_indptr.tolist(), meta.df_indices.tolist()
        flow = [set(ind[ptr[i]:ptr[i + 1]]) for i in range(s)]
    if kind == "sparse10":
        tiles = sparse_tiles(s).tolist()
    for i in range(s):
        for j in range(s):
            if kind == "none":
                v = True
            elif kind == "causal":
                v = j <= i
            elif kind == "window256":
                v = 0 <= i - j < WINDOW
            elif kind == "sparse10":
                v = tiles[i // TILE][j // TILE]
            else:
                v = i == j or (
                    j < i and valid[i] and valid[j]
                    and ((tin[j] <= tin[i] and tout[i] <= tout[j])
                         or (sin[j] <= sin[i] and sout[i] <= sout[j])
                         or j in flow[i]))
            ref[i][j] = v
    return torch.tensor(ref, dtype=torch.bool)


def check_nested(starts, ends, what):
    """Raises MaskError unless the intervals [start, end] are laminar."""
    iv = sorted(set(zip(starts, ends)))
    stack = []
    for a, b in iv:
        if b < a:
            raise MaskError("%s: empty interval [%d, %d]" % (what, a, b))
        while stack and stack[-1][1] < a:
            stack.pop()
        if stack and b > stack[-1][1]:
            raise MaskError("%s: intervals [%d, %d] and [%d, %d] cross"
                            % (what, stack[-1][0], stack[-1][1], a, b))
        stack.append((a, b))


def selftest():
    failures = 0
    for s, tokens in ((160, 130), (300, 300)):
        meta = CodeMeta(synthetic_meta(s, tokens, seed=s))
        check_meta_bits(meta)
        check_nested(meta.tin.tolist(), meta.tout.tolist(), "tin/tout")
        check_nested(meta.scope_in.tolist(), meta.scope_out.tolist(), "scope")
        for kind in KINDS:
            m = make_mask(kind, s, meta)
            got, ref = m.dense(), reference_dense(kind, s, meta)
            bad = int((got != ref).sum())
            st = m.stats()
            ok = bad == 0 and st["empty_rows"] == 0
            failures += not ok
            print("%-9s S=%d: %d mismatches, %d empty rows, pairs %.3f, "
                  "tiles %.3f %s" % (kind, s, bad, st["empty_rows"],
                                     st["pair_fraction"], st["tile_fraction"],
                                     "ok" if ok else "FAIL"))
        pad = make_mask("tree", s, meta).dense()[tokens:]
        if tokens < s and not bool((pad == torch.eye(s, dtype=torch.bool)
                                    [tokens:]).all()):
            print("tree S=%d: padding rows see more than themselves FAIL" % s)
            failures += 1
    # The file format round trip.
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"),
                        "attention_masks_selftest_%d.safetensors" % os.getpid())
    try:
        write_safetensors(path, synthetic_meta(200, 150, seed=3),
                          {"source": "synthetic"})
        back = CodeMeta.load(path)
        again = CodeMeta(synthetic_meta(200, 150, seed=3))
        same = torch.equal(make_mask("tree", 200, back).dense(),
                           make_mask("tree", 200, again).dense())
        print("safetensors round trip: %s" % ("ok" if same else "FAIL"))
        failures += not same
    finally:
        if os.path.exists(path):
            os.remove(path)
    # Bad metadata is refused with a message.
    broken = synthetic_meta(64)
    broken["df_bits"] = broken["df_bits"][:, :1][:10]
    try:
        CodeMeta(broken)
        print("malformed metadata accepted FAIL")
        failures += 1
    except MaskError as e:
        print("malformed metadata refused: %s ok" % e)
    frac = make_mask("sparse10", 4096).stats()["tile_fraction"]
    ok = 0.07 <= frac <= 0.13
    print("sparse10 S=4096 tile fraction %.3f %s"
          % (frac, "ok" if ok else "FAIL"))
    failures += not ok
    print("selftest: %s"
          % ("passed" if failures == 0 else "%d FAILED" % failures))
    return 1 if failures else 0


# -- command line -------------------------------------------------------------
def parse_list(text, conv=str):
    return [conv(v) for v in text.replace(" ", "").split(",") if v]


def load_meta(path):
    """The CodeMeta of path, its data-flow bits checked against its lists;
    None when path is None."""
    if not path:
        return None
    meta = CodeMeta.load(path)
    check_meta_bits(meta)
    meta.path = path
    return meta


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("stats", help="visible fractions of masks as JSON")
    st.add_argument("--s", default="1024,2048,4096")
    st.add_argument("--masks", default=",".join(KINDS))
    st.add_argument("--tree-meta", default=None,
                    help="code metadata (safetensors); a synthetic one of "
                         "each S when not given")
    sy = sub.add_parser("synth-meta", help="write synthetic code metadata")
    sy.add_argument("s", type=int)
    sy.add_argument("-o", "--output", required=True)
    sy.add_argument("--tokens", type=int, default=None)
    sy.add_argument("--seed", type=int, default=0)
    sub.add_parser("selftest", help="check the masks against a reference")
    a = p.parse_args(argv)
    try:
        if a.cmd == "selftest":
            return selftest()
        if a.cmd == "synth-meta":
            if a.s <= 0:
                raise MaskError("S must be positive, got %d" % a.s)
            write_safetensors(a.output, synthetic_meta(a.s, a.tokens, a.seed),
                              {"source": "synthetic", "seed": a.seed})
            return 0
        meta = load_meta(a.tree_meta)
        out = []
        for s in parse_list(a.s, int):
            for kind in parse_list(a.masks):
                m = meta if meta is not None else (
                    CodeMeta(synthetic_meta(s)) if kind == "tree" else None)
                out.append(make_mask(kind, s, m).stats())
        print(json.dumps(out, indent=1))
        return 0
    except (MaskError, ValueError) as e:
        print("attention_masks: error: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
