#!/usr/bin/env python3
"""Writes token offsets of a made-up tokenizer as JSON (stdlib only).

usage: fake_offsets.py MODE SOURCE.py OUT.json
MODE is `chars` (one token per character), `bpe` (GPT-2-like pieces: a word
with its leading space, punctuation runs, whitespace runs; a word piece of 4
or more characters is cut in two at its middle) or `special` (the `bpe`
tokens between two empty [0, 0] tokens, as a Hugging Face tokenizer reports
for its BOS and EOS tokens).
"""

import json
import re
import sys

PIECE = re.compile(r" ?\w+| ?[^\s\w]+|\s+")


def bpe(text):
    spans = []
    for m in PIECE.finditer(text):
        start, end = m.span()
        if m.group().strip().isidentifier() and end - start >= 4:
            mid = (start + end) // 2
            spans += [[start, mid], [mid, end]]
        else:
            spans.append([start, end])
    return spans


def main():
    mode, source, out = sys.argv[1:4]
    with open(source, encoding="utf-8") as f:
        text = f.read()
    if mode == "chars":
        spans = [[i, i + 1] for i in range(len(text))]
    elif mode == "bpe":
        spans = bpe(text)
    elif mode == "special":
        spans = [[0, 0]] + bpe(text) + [[0, 0]]
    else:
        sys.exit("unknown mode " + mode)
    with open(out, "w") as f:
        json.dump(spans, f)


if __name__ == "__main__":
    main()
