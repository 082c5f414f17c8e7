"""MinHash near-duplicates of whole sets at once: the gate's sketches, banded with numpy.

The sketches are the values ``engine.gate.neardup.NearDuplicateIndex.sketch`` gives (datasketch's
``affine32`` MinHash of 3-token shingles folded to 32 bits, fixed seed): every note's shingles
are hashed in one pass over the packed token hashes and the per-permutation minima taken per
note with ``np.minimum.reduceat``. Candidates are what datasketch's ``MinHashLSH`` would
propose (same bands: its ``b`` x ``r`` for the threshold; rows equal on a whole band), each
confirmed by the estimated Jaccard (share of equal values) against the threshold, as the gate
does. Notes with identical sketches are folded into one before the bands are compared.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from numpy.typing import NDArray

from engine.evaluate.packed import Packed
from engine.gate.text import U64, ngram_hashes

U32 = NDArray[np.uint32]
_CHUNK = 1 << 16  # shingles per block of the (shingles x permutations) product
_S16, _S13 = np.uint32(16), np.uint32(13)
_M1, _M2 = np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35)
_P = np.uint64(0x100000001B3)


def _fmix32(values: U32) -> U32:
    """MurmurHash3's 32-bit finalizer (datasketch's affine32 pre-mix)."""
    h = values ^ (values >> _S16)
    h *= _M1
    h ^= h >> _S13
    h *= _M2
    h ^= h >> _S16
    return h


class Sketcher:
    """MinHash sketches (one row per text) and datasketch's LSH bands for a threshold."""

    def __init__(
        self, threshold: float, *, shingle: int = 3, num_perm: int = 128, seed: int = 1
    ) -> None:
        from datasketch import MinHash, MinHashLSH

        self.threshold = threshold
        self.shingle = shingle
        self.num_perm = num_perm
        perms = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
        self.a = np.asarray(perms[0], np.uint32)
        self.b = np.asarray(perms[1], np.uint32)
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.bands = [(i * lsh.r, (i + 1) * lsh.r) for i in range(lsh.b)]

    def sketches(self, hashes: Sequence[U64]) -> U32:
        """One row of ``num_perm`` values per text (all ones-bits for a text without tokens;
        a text shorter than a shingle is one shingle)."""
        out = np.full((len(hashes), self.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        long = [i for i, h in enumerate(hashes) if len(h) >= self.shingle]
        short = [i for i, h in enumerate(hashes) if 0 < len(h) < self.shingle]
        packed = Packed([hashes[i] for i in long])
        grams, inside = packed.windows(self.shingle)
        owner = np.asarray(long, dtype=np.int64)[packed.owners(len(grams))[inside]]
        grams = grams[inside]
        for i in short:
            grams = np.append(grams, ngram_hashes(hashes[i], len(hashes[i])))
            owner = np.append(owner, i)
        order = np.argsort(owner, kind="stable")
        owner, grams = owner[order], grams[order]
        mixed = _fmix32((grams ^ (grams >> np.uint64(32))).astype(np.uint32))
        for start in range(0, len(mixed), _CHUNK):
            part, who = mixed[start : start + _CHUNK], owner[start : start + _CHUNK]
            values = part[:, None] * self.a[None, :] + self.b[None, :]
            firsts = np.flatnonzero(np.r_[True, who[1:] != who[:-1]])
            mins = np.minimum.reduceat(values, firsts, axis=0)
            rows = who[firsts]
            out[rows] = np.minimum(out[rows], mins)
        return out

    def band_keys(self, rows: U32) -> Iterator[U64]:
        """Per band, one 64-bit key per row (equal bands give equal keys)."""
        for lo, hi in self.bands:
            key = np.zeros(len(rows), dtype=np.uint64)
            for col in range(lo, hi):
                key = key * _P + rows[:, col].astype(np.uint64)
            yield key

    def confirmed(self, x: U32, y: U32, pairs: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Whether each candidate pair (row of ``x``, row of ``y``) reaches the threshold."""
        ok = np.zeros(len(pairs), dtype=bool)
        for start in range(0, len(pairs), _CHUNK):
            p = pairs[start : start + _CHUNK]
            same = np.count_nonzero(x[p[:, 0]] == y[p[:, 1]], axis=1)
            ok[start : start + _CHUNK] = same / self.num_perm >= self.threshold
        return ok


def _runs(key: U64) -> Iterator[NDArray[np.int64]]:
    """Indices of each group of two or more equal keys."""
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    sizes = np.diff(np.r_[starts, len(key)])
    for start, size in zip(starts[sizes > 1], sizes[sizes > 1], strict=True):
        yield order[start : start + size]


def _fold(rows: U32) -> tuple[U32, NDArray[np.int64], NDArray[np.int64]]:
    """Distinct rows, the first index of each, and each row's distinct row: grouped by a
    64-bit key of the whole row, checked equal (``np.unique(axis=0)`` when keys collide)."""
    key = np.zeros(len(rows), dtype=np.uint64)
    for col in range(rows.shape[1]):
        key = key * _P + rows[:, col].astype(np.uint64)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if not np.array_equal(rows, rows[first][inverse]):
        _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
    return rows[first], first, inverse


def similar_earlier(rows: U32, sketcher: Sketcher) -> NDArray[np.bool_]:
    """Per row: does an earlier row share a band and reach the threshold?"""
    if not len(rows):
        return np.zeros(0, dtype=bool)
    unique, first, inverse = _fold(rows)
    dup = np.arange(len(rows)) != first[inverse]  # a later copy of an identical sketch
    pairs = []
    for key in sketcher.band_keys(unique):
        for group in _runs(key):
            i, j = np.triu_indices(len(group), k=1)
            pairs.append(np.stack([group[i], group[j]], axis=1))
    if pairs:
        cand = np.unique(np.concatenate(pairs), axis=0)
        cand = cand[sketcher.confirmed(unique, unique, cand)]
        later = np.where(first[cand[:, 0]] > first[cand[:, 1]], cand[:, 0], cand[:, 1])
        dup[first[later]] = True
    return dup


def similar_to(rows: U32, reference: U32, sketcher: Sketcher) -> NDArray[np.bool_]:
    """Per row: does a reference row share a band and reach the threshold?"""
    hit = np.zeros(len(rows), dtype=bool)
    if not len(rows) or not len(reference):
        return hit
    ref = _fold(reference)[0]
    for key, ref_key in zip(sketcher.band_keys(rows), sketcher.band_keys(ref), strict=True):
        order = np.argsort(ref_key, kind="stable")
        sorted_key = ref_key[order]
        lo = np.searchsorted(sorted_key, key, side="left")
        hi = np.searchsorted(sorted_key, key, side="right")
        todo = np.flatnonzero((hi > lo) & ~hit)
        if not len(todo):
            continue
        counts = hi[todo] - lo[todo]
        left = np.repeat(todo, counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        right = order[np.repeat(lo[todo], counts) + offsets]
        pairs = np.stack([left, right], axis=1)
        hit[left[sketcher.confirmed(rows, ref, pairs)]] = True
    return hit
