#!/usr/bin/env python3
"""Reads a loom_codemeta safetensors file back and checks it (stdlib only).

usage: check_tensors.py OUT.safetensors SOURCE.py [OFFSETS.json]

Checks, independently of loom_codemeta.py:
  - the file layout: int32 tensors with the documented names and shapes;
  - df_bits holds exactly the edges of df_indptr/df_indices, rows sorted and
    without duplicates, every row holding its diagonal;
  - the syntax intervals: for every pair of tokens, "j is an ancestor-or-self
    of i" by tin/tout equals the same relation between the tokens' owners in
    the `ast` tree (the owner found here by a separate search: the deepest
    node whose span, widened to its descendants, holds the token), and the
    Module's interval holds every token;
  - the scope intervals form a tree with one interval per scope of the source;
  - padding tokens (token_start == -1) see nothing and are seen by nothing
    but themselves in all three masks;
  - edges join name tokens of the same identifier (with the default tokens).
Prints one summary line starting with "ok:" or exits 1 with the problem.
"""

import ast
import io
import json
import struct
import sys
import tokenize

NAMES = ("tin", "tout", "scope_in", "scope_out", "df_indptr", "df_indices",
         "df_bits", "token_start", "token_end")
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
          ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def fail(message):
    print("check_tensors: FAIL: " + message)
    sys.exit(1)


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "I32":
            fail("%s has dtype %s" % (name, info["dtype"]))
        lo, hi = info["data_offsets"]
        count = (hi - lo) // 4
        blob = data[base + lo:base + hi]
        out[name] = (info["shape"], list(struct.unpack("<%di" % count, blob)))
    return out


def char_offset_table(text):
    starts = [0]
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\r" and text[i + 1:i + 2] == "\n":
            i += 1
        if c in "\r\n":
            starts.append(i + 1)
        i += 1
    return starts


def node_spans(tree, text):
    """Own span of every positioned node in characters, widened to children."""
    starts = char_offset_table(text)

    def offset(line, col):
        line_start = starts[line - 1]
        line_text = text[line_start:]
        return line_start + len(
            line_text.encode("utf-8")[:col].decode("utf-8", "replace"))

    spans, depth, parent = {}, {}, {}

    def visit(node, d):
        span = None
        if getattr(node, "end_col_offset", None) is not None:
            span = (offset(node.lineno, node.col_offset),
                    offset(node.end_lineno, node.end_col_offset))
        for child in ast.iter_child_nodes(node):
            sub = visit(child, d + 1)
            if sub is not None:
                parent[id(child)] = node
                span = sub if span is None else (min(span[0], sub[0]),
                                                 max(span[1], sub[1]))
        if span is not None:
            spans[id(node)] = (node, span)
            depth[id(node)] = d
        return span

    visit(tree, 0)
    spans[id(tree)] = (tree, (0, len(text)))
    depth[id(tree)] = 0
    return spans, depth, parent


def main():
    tensors = read(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        text = f.read()
    for name in NAMES:
        if name not in tensors:
            fail("missing tensor " + name)
    S = tensors["tin"][0][0]
    W = (S + 31) // 32
    for name in ("tin", "tout", "scope_in", "scope_out", "token_start",
                 "token_end"):
        if tensors[name][0] != [S]:
            fail("%s has shape %s, expected [%d]" %
                 (name, tensors[name][0], S))
    if tensors["df_indptr"][0] != [S + 1]:
        fail("df_indptr shape")
    if tensors["df_bits"][0] != [S, W]:
        fail("df_bits has shape %s, expected [%d, %d]" %
             (tensors["df_bits"][0], S, W))
    tin, tout = tensors["tin"][1], tensors["tout"][1]
    sin, sout = tensors["scope_in"][1], tensors["scope_out"][1]
    indptr, indices = tensors["df_indptr"][1], tensors["df_indices"][1]
    bits = tensors["df_bits"][1]
    starts, ends = tensors["token_start"][1], tensors["token_end"][1]
    if indptr[0] != 0 or indptr[-1] != len(indices):
        fail("df_indptr does not span df_indices")

    # CSR against bits.
    rows = []
    for i in range(S):
        row = indices[indptr[i]:indptr[i + 1]]
        if row != sorted(set(row)):
            fail("row %d is not sorted and unique: %s" % (i, row))
        if i not in row:
            fail("row %d lacks its diagonal" % i)
        rows.append(set(row))
        for w in range(W):
            word = bits[i * W + w] & 0xFFFFFFFF
            for b in range(32):
                j = 32 * w + b
                if bool(word >> b & 1) != (j in rows[i]):
                    fail("df_bits[%d] bit %d disagrees with the CSR" % (i, j))

    real = [i for i in range(S) if starts[i] >= 0]
    pads = [i for i in range(S) if starts[i] < 0]
    if real != list(range(len(real))):
        fail("padding tokens are not at the end")

    def anc(a_in, a_out, j, i):
        return a_in[j] <= a_in[i] and a_out[i] <= a_out[j]

    # Padding isolation in all three masks.
    for p in pads:
        for j in range(S):
            for a_in, a_out in ((tin, tout), (sin, sout)):
                if j != p and (anc(a_in, a_out, j, p) or
                               anc(a_in, a_out, p, j)):
                    fail("padding token %d and token %d see each other" %
                         (p, j))
        if rows[p] != {p} or any(p in rows[j] for j in range(S) if j != p):
            fail("padding token %d has data-flow edges" % p)

    # Syntax intervals against the AST.
    tree = ast.parse(text)
    spans, depth, parent = node_spans(tree, text)
    owners = []
    for i in real:
        s, e = starts[i], ends[i]
        if not 0 <= s <= e <= len(text):
            fail("token %d has offsets [%d, %d]" % (i, s, e))
        best = [tree]
        if s < e:
            for node, (lo, hi) in spans.values():
                if lo <= s and e <= hi:
                    if depth[id(node)] > depth[id(best[0])]:
                        best = [node]
                    elif depth[id(node)] == depth[id(best[0])]:
                        best.append(node)
        # Sibling spans overlap only inside f-strings before Python 3.12;
        # such tokens have no single deepest node and are left out.
        owners.append(best[0] if len(best) == 1 else None)
    checked = [i for i in real if owners[i] is not None]
    # The Module is node 0 and holds every node: every interval lies in it.
    top = max([tout[i] for i in real] + [0])
    for i in real:
        if not 0 <= tin[i] <= tout[i] <= top:
            fail("token %d has interval [%d, %d] outside the Module's [0, %d]"
                 % (i, tin[i], tout[i], top))
        if owners[i] is tree and (tin[i], tout[i]) != (0, top):
            fail("token %d is owned by the Module but has [%d, %d]" %
                 (i, tin[i], tout[i]))
    ancestors = {}
    for i in checked:
        node, chain = owners[i], set()
        while node is not None:
            chain.add(id(node))
            node = parent.get(id(node))
        ancestors[i] = chain
    for i in checked:
        for j in checked:
            expected = id(owners[j]) in ancestors[i]
            if anc(tin, tout, j, i) != expected:
                fail("tokens %d (%r) and %d (%r): the intervals say %s, "
                     "the AST says %s" % (i, text[starts[i]:ends[i]], j,
                                          text[starts[j]:ends[j]],
                                          anc(tin, tout, j, i), expected))

    # Scope intervals: one per scope, nested or disjoint.
    intervals = sorted({(sin[i], sout[i]) for i in real})
    want = 1 + sum(isinstance(n, SCOPES) for n in ast.walk(tree))
    # Python's own tokens make an f-string one token: a scope inside one
    # holds no token of its own.
    hidden = sum(isinstance(n, SCOPES) for s in ast.walk(tree)
                 if isinstance(s, ast.JoinedStr) for n in ast.walk(s))
    if not want - hidden <= len(intervals) <= want:
        fail("%d distinct scope intervals, the source has %d scopes" %
             (len(intervals), want))
    for a in intervals:
        for b in intervals:
            nested = (a[0] <= b[0] and b[1] <= a[1] or
                      b[0] <= a[0] and a[1] <= b[1])
            if not nested and not (a[1] < b[0] or b[1] < a[0]):
                fail("scope intervals %s and %s overlap" % (a, b))
    outer = [iv for iv in intervals
             if all(iv[0] <= b[0] and b[1] <= iv[1] for b in intervals)]
    if len(outer) != 1:
        fail("no single Module scope encloses every scope")

    # Edges join occurrences of one identifier.
    if len(sys.argv) < 4:
        for i in real:
            word = text[starts[i]:ends[i]]
            for j in rows[i] - {i}:
                other = text[starts[j]:ends[j]]
                if not other.isidentifier():
                    fail("edge %d -> %d ends on %r" % (i, j, other))
                if word != other and other not in word:
                    fail("edge %d (%r) -> %d (%r)" % (i, word, j, other))
    print("ok: S=%d real=%d nnz=%d scopes=%d rows-with-edges=%d "
          "ast-checked=%d" % (S, len(real), len(indices), len(intervals),
                              sum(len(r) > 1 for r in rows), len(checked)))


if __name__ == "__main__":
    main()
