"""Many texts' token hashes end to end, so one numpy pass hashes every text's n-grams."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from engine.gate.text import U64, ngram_hashes


class Packed:
    """Texts' token hashes end to end, with where each text starts and its length."""

    def __init__(self, hashes: Sequence[U64]) -> None:
        self.lengths = np.array([len(h) for h in hashes], dtype=np.int64)
        self.starts = np.cumsum(self.lengths) - self.lengths
        self.flat = np.concatenate(list(hashes)) if hashes else np.empty(0, np.uint64)

    def owners(self, count: int) -> NDArray[np.int64]:
        """The text each of the first ``count`` packed positions belongs to."""
        return np.repeat(np.arange(len(self.lengths)), self.lengths)[:count]

    def windows(self, n: int) -> tuple[U64, NDArray[np.bool_]]:
        """The hash of every ``n``-window of the packed array, and whether it lies inside one
        text (windows across a boundary are garbage and marked False)."""
        grams = ngram_hashes(self.flat, n)
        owner = self.owners(len(grams))
        offset = np.arange(len(grams)) - self.starts[owner]
        return grams, offset <= self.lengths[owner] - n
