"""A small byte-pair-encoding tokenizer: training, encoding and decoding."""

import json
import re
from collections import Counter, defaultdict

_CACHE = {}
_HITS = 0

WORD_RE = re.compile(r"\w+|[^\w\s]+|\s+")


def _pairs(word):
    """Adjacent symbol pairs of a word given as a tuple of symbols."""
    return {(a, b) for a, b in zip(word, word[1:])}


def count_words(texts):
    counts = Counter()
    for text in texts:
        for piece in WORD_RE.findall(text):
            counts[tuple(piece)] += 1
    return counts


def merge_word(word, pair, joined):
    out = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(joined)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


class Vocabulary:
    """Symbols and their ids; ids are assigned in insertion order."""

    unknown = "<unk>"

    def __init__(self, symbols=()):
        self.ids = {}
        self.symbols = []
        for s in [self.unknown, *symbols]:
            self.add(s)

    def add(self, symbol):
        if symbol not in self.ids:
            self.ids[symbol] = len(self.symbols)
            self.symbols.append(symbol)
        return self.ids[symbol]

    def __len__(self):
        return len(self.symbols)

    def lookup(self, symbol):
        return self.ids.get(symbol, self.ids[Vocabulary.unknown])


class BPE:
    def __init__(self, merges=None, vocab=None):
        self.merges = list(merges or [])
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self.vocab = vocab or Vocabulary()

    @classmethod
    def train(cls, texts, num_merges, min_count=2):
        words = count_words(texts)
        merges = []
        vocab = Vocabulary(sorted({c for w in words for c in w}))
        for step in range(num_merges):
            stats = defaultdict(int)
            for word, n in words.items():
                for pair in _pairs(word):
                    stats[pair] += n
            if not stats:
                break
            best, best_count = max(stats.items(), key=lambda kv: (kv[1], kv[0]))
            if best_count < min_count:
                break
            joined = "".join(best)
            words = {merge_word(w, best, joined): n for w, n in words.items()}
            merges.append(best)
            vocab.add(joined)
        return cls(merges, vocab)

    def _encode_word(self, piece):
        global _HITS
        if piece in _CACHE:
            _HITS += 1
            return _CACHE[piece]
        word = tuple(piece)
        while len(word) > 1:
            ranked = [(self.ranks.get(p, float("inf")), p) for p in _pairs(word)]
            rank, pair = min(ranked)
            if rank == float("inf"):
                break
            word = merge_word(word, pair, "".join(pair))
        _CACHE[piece] = word
        return word

    def encode(self, text):
        ids = []
        for piece in WORD_RE.findall(text):
            ids.extend(self.vocab.lookup(s) for s in self._encode_word(piece))
        return ids

    def decode(self, ids):
        symbols = self.vocab.symbols
        return "".join(symbols[i] if 0 <= i < len(symbols) else "?" for i in ids)

    def offsets(self, text):
        """Character offsets [start, end) of every token of `text`."""
        spans = []
        position = 0

        def emit(length):
            nonlocal position
            spans.append((position, position + length))
            position += length

        for piece in WORD_RE.findall(text):
            for symbol in self._encode_word(piece):
                emit(len(symbol))
        return spans

    def save(self, path):
        with open(path, "w") as f:
            json.dump({"merges": ["\t".join(m) for m in self.merges],
                       "symbols": self.vocab.symbols}, f)

    @staticmethod
    def load(path):
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as err:
            raise RuntimeError(f"cannot load {path}: {err}") from err
        merges = [tuple(m.split("\t")) for m in data["merges"]]
        return BPE(merges, Vocabulary(data["symbols"][1:]))


def cache_stats():
    return {"entries": len(_CACHE), "hits": _HITS}


if __name__ == "__main__":
    corpus = ["low lower lowest", "new newer newest", "wide wider widest"] * 3
    bpe = BPE.train(corpus, num_merges=20)
    for line in corpus[:3]:
        ids = bpe.encode(line)
        assert bpe.decode(ids) == line, (line, ids)
        print(line, "->", ids)
    print(cache_stats())
