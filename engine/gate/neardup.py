"""The near-duplicate check: MinHash (datasketch) over word shingles, LSH for candidates.

A note's shingles are its ``k``-token windows (hashed as in ``engine.gate.text``, folded to
32 bits); its sketch is datasketch's ``affine32`` MinHash of them (fixed seed, so the same in
every process): the values ``MinHash.update_batch`` computes, with its own permutations,
taken as one numpy expression instead of a Python loop over shingles, and held as a
``LeanMinHash`` (tests/test_gate.py checks them equal). ``MinHashLSH`` proposes candidates;
each is confirmed by the estimated Jaccard (the share of equal sketch values) against the
threshold, and the most similar confirmed one is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from engine.gate.text import U64, ngram_hashes

if TYPE_CHECKING:  # datasketch (and scipy under it) loads only when a gate is built
    from datasketch import LeanMinHash

_SCHEME = "affine32"


_S16, _S13 = np.uint32(16), np.uint32(13)
_M1, _M2 = np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35)


def _fmix32(values: NDArray[np.uint32]) -> NDArray[np.uint32]:
    """MurmurHash3's 32-bit finalizer, the pre-mix of datasketch's affine32 scheme."""
    h = values ^ (values >> _S16)
    h *= _M1
    h ^= h >> _S13
    h *= _M2
    h ^= h >> _S16
    return h


@dataclass(frozen=True, slots=True)
class Similar:
    """The accepted note a new one nearly duplicates, and their estimated Jaccard."""

    key: str
    jaccard: float


class NearDuplicateIndex:
    """Sketches of accepted notes; ``query`` finds the most similar one over the threshold."""

    def __init__(
        self, threshold: float, *, shingle: int = 3, num_perm: int = 128, seed: int = 1
    ) -> None:
        from datasketch import MinHash, MinHashLSH

        self.threshold = threshold
        self.shingle = shingle
        self.num_perm = num_perm
        self.seed = seed
        perms = MinHash(num_perm=num_perm, seed=seed, scheme=_SCHEME).permutations
        self._perms = (np.asarray(perms[0], np.uint32), np.asarray(perms[1], np.uint32))
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._rows: list[NDArray[np.uint32]] = []
        self._keys: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def shingles(self, token_hashes: U64) -> NDArray[np.uint32]:
        """A note's distinct shingle hashes (the whole note as one shingle when shorter)."""
        grams = ngram_hashes(token_hashes, min(self.shingle, max(len(token_hashes), 1)))
        return np.unique((grams ^ (grams >> np.uint64(32))).astype(np.uint32))

    def sketch(self, token_hashes: U64) -> LeanMinHash:
        """The MinHash of a note's shingles: ``MinHash.update_batch``'s values, vectorised."""
        from datasketch import LeanMinHash

        shingles = self.shingles(token_hashes)
        a, b = self._perms
        if len(shingles):
            mixed = _fmix32(shingles)[:, None]
            values = (mixed * a[None, :] + b[None, :]).min(axis=0)
        else:
            values = np.full(self.num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
        return LeanMinHash(seed=self.seed, hashvalues=values, scheme=_SCHEME)

    def query(self, sketch: LeanMinHash) -> Similar | None:
        """The most similar indexed note with estimated Jaccard >= threshold, or ``None``."""
        best: Similar | None = None
        for key in self._lsh.query(sketch):
            row = self._rows[self._keys[key]]
            jaccard = float(np.count_nonzero(row == sketch.hashvalues)) / self.num_perm
            if jaccard < self.threshold:
                continue
            if best is None or (-jaccard, key) < (-best.jaccard, best.key):
                best = Similar(key, jaccard)  # ties: the smaller key, whatever the set order
        return best

    def add(self, key: str, sketch: LeanMinHash) -> None:
        if key in self._keys:
            return
        self._keys[key] = len(self._rows)
        self._rows.append(np.asarray(sketch.hashvalues, dtype=np.uint32))
        self._lsh.insert(key, sketch, check_duplication=False)
