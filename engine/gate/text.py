"""Tokens and n-gram hashes: the shared footing of the privacy and near-duplicate checks.

A token is a run of word characters of the lower-cased text (punctuation, spacing and case
never hide a copy). Each distinct token is hashed once (blake2b, 64 bits, the same in every
process); an n-gram's hash is the polynomial ``sum(t[i+j] * P**(n-1-j))`` mod 2**64 of its
token hashes, computed for all windows of a text at once: by ``n`` multiply-adds for short
n-grams, else from a prefix sum (a handful of numpy operations whatever ``n``; P is odd, so
it has an inverse mod 2**64).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from numpy.typing import NDArray

U64 = NDArray[np.uint64]
_WORD = re.compile(r"\w+")
_P = 0x100000001B3  # the 64-bit FNV prime: odd, so invertible mod 2**64
_P_INV = pow(_P, -1, 1 << 64)
_SHORT = 4


class _Powers:
    """``P**i`` and ``P**-i`` mod 2**64 for ``i < len``, grown on demand."""

    def __init__(self) -> None:
        self.up = self.down = np.ones(1, dtype=np.uint64)

    @staticmethod
    def _series(base: int, size: int) -> U64:
        steps = np.full(size, base, dtype=np.uint64)
        steps[0] = 1
        return np.multiply.accumulate(steps)  # wraps mod 2**64

    def upto(self, length: int) -> tuple[U64, U64]:
        if len(self.up) < length:
            size = max(length, 2 * len(self.up), 1024)
            self.up, self.down = self._series(_P, size), self._series(_P_INV, size)
        return self.up, self.down


_POWERS = _Powers()


def tokens(text: str) -> list[str]:
    """The lower-cased word tokens of ``text``."""
    return _WORD.findall(text.lower())


class TokenHasher:
    """Stable 64-bit token hashes, each distinct token hashed once."""

    def __init__(self) -> None:
        self._cache: dict[str, int] = {}

    def _new(self, token: str) -> int:
        value = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
        self._cache[token] = value
        return value

    def hashes(self, toks: list[str]) -> U64:
        values = list(map(self._cache.get, toks))
        if None in values:
            values = [self._new(t) if v is None else v for t, v in zip(toks, values, strict=True)]
        return np.array(values, dtype=np.uint64)


def ngram_hashes(token_hashes: U64, n: int) -> U64:
    """The hash of every ``n``-token window, in order (empty when the text is shorter)."""
    length = len(token_hashes)
    count = length - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    if n <= _SHORT:  # a few multiply-adds beat the prefix sum's fixed cost
        out = token_hashes[:count].copy()
        for j in range(1, n):
            out *= np.uint64(_P)
            out += token_hashes[j : j + count]
        return out
    up, down = _POWERS.upto(length)
    # t[m] * P**(L-1-m) summed over a window is the window's hash times P**(L-n-i)
    sums = np.zeros(length + 1, dtype=np.uint64)
    np.cumsum(token_hashes * up[length - 1 :: -1], out=sums[1:])
    return (sums[n:] - sums[:count]) * down[count - 1 :: -1]
