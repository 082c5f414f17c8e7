"""The near-duplicate check: MinHash (datasketch) over word shingles, LSH for candidates.

A note's shingles are its ``k``-token windows (hashed as in ``engine.gate.text``, folded to
32 bits); its sketch is a datasketch ``MinHash`` (scheme ``affine32``, fixed seed, so the
same in every process) filled with ``update_batch``. ``MinHashLSH`` proposes candidates;
each is confirmed by the estimated Jaccard (the share of equal sketch values) against the
threshold, and the most similar confirmed one is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH
from numpy.typing import NDArray

from engine.gate.text import U64, ngram_hashes

_SCHEME = "affine32"


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
        self.threshold = threshold
        self.shingle = shingle
        self.num_perm = num_perm
        self.seed = seed
        self._perms = MinHash(num_perm=num_perm, seed=seed, scheme=_SCHEME).permutations
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._rows: list[NDArray[np.uint32]] = []
        self._keys: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def sketch(self, token_hashes: U64) -> LeanMinHash:
        """The MinHash of a note's shingles (the whole note as one shingle when shorter)."""
        grams = ngram_hashes(token_hashes, min(self.shingle, max(len(token_hashes), 1)))
        folded = np.unique((grams ^ (grams >> np.uint64(32))).astype(np.uint32))
        m = MinHash(
            num_perm=self.num_perm,
            seed=self.seed,
            hashfunc=int,
            permutations=self._perms,
            scheme=_SCHEME,
        )
        if len(folded):
            m.update_batch(folded.tolist())
        return LeanMinHash(m)

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
