"""Tokens and n-gram hashes: the shared footing of the privacy and near-duplicate checks.

A token is a run of word characters of the lower-cased text (punctuation, spacing and case
never hide a copy). Each distinct token is hashed once (blake2b, 64 bits, the same in every
process); an n-gram's hash is the polynomial ``sum(t[i+j] * P**(n-1-j))`` mod 2**64 of its
token hashes, computed for all windows of a text with ``n`` numpy operations.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from numpy.typing import NDArray

U64 = NDArray[np.uint64]
_WORD = re.compile(r"\w+")
_P = np.uint64(0x100000001B3)  # the 64-bit FNV prime: odd, so every step is a bijection


def tokens(text: str) -> list[str]:
    """The lower-cased word tokens of ``text``."""
    return _WORD.findall(text.lower())


def token_spans(text: str) -> list[tuple[int, int]]:
    """Character offsets of each token of ``text`` (the same tokens as ``tokens``)."""
    return [m.span() for m in _WORD.finditer(text.lower())]


class TokenHasher:
    """Stable 64-bit token hashes, each distinct token hashed once."""

    def __init__(self) -> None:
        self._cache: dict[str, int] = {}

    def _new(self, token: str) -> int:
        value = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
        self._cache[token] = value
        return value

    def hashes(self, toks: list[str]) -> U64:
        cache, new = self._cache, self._new
        return np.fromiter(
            (cache[t] if t in cache else new(t) for t in toks), dtype=np.uint64, count=len(toks)
        )


def ngram_hashes(token_hashes: U64, n: int) -> U64:
    """The hash of every ``n``-token window, in order (empty when the text is shorter)."""
    count = len(token_hashes) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    out = token_hashes[:count].copy()
    for j in range(1, n):
        out *= _P
        out += token_hashes[j : j + count]
    return out
