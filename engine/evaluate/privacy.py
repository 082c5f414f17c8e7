"""Privacy and plagiarism: shared passages, near-duplicates and distance to closest record.

Passages reuse the gate's tokens, token hashes and ``NgramIndex``: a note's longest shared
n-gram with a corpus is found by galloping (1, 2, 4, ...) then bisecting over ``n``, each ``n``
indexed once for all notes. Near-duplicates reuse the gate's MinHash sketches
(``NearDuplicateIndex``). DCR is the cosine distance of each synthetic note to its closest
reference note, beside the same figure for one half of the reference against the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.evaluate.fidelity import F
from engine.evaluate.packed import Packed
from engine.gate.text import U64, TokenHasher, tokens


class SharedNgrams:
    """Longest passage each text shares with a corpus, for many texts at once.

    For one ``n`` the texts' windows are hashed together (one ``ngram_hashes`` over the
    packed hashes) and looked up in the corpus' sorted distinct ``n``-gram hashes; whether a
    text shares an ``n``-gram is a difference of a cumulative count over its windows. The
    search over ``n`` gallops (1, 2, 4, ...) then bisects, all texts with the same next
    ``n`` in one step (sharing is monotone in ``n``, so the answer does not depend on the
    path)."""

    def __init__(self, corpus: Sequence[tuple[str, str]]) -> None:
        self.hasher = TokenHasher()
        self.corpus = Packed([self.hasher.hashes(tokens(t)) for _, t in corpus])
        self._index: dict[int, U64] = {}

    def index(self, n: int) -> U64:
        """The corpus' distinct ``n``-gram hashes, sorted."""
        found = self._index.get(n)
        if found is None:
            grams, inside = self.corpus.windows(n)
            found = self._index[n] = np.unique(grams[inside])
        return found

    def _shares(self, hashes: list[U64], n: int) -> NDArray[np.bool_]:
        packed = Packed(hashes)
        grams, _ = packed.windows(n)
        index = self.index(n)
        if not len(grams) or not len(index):
            return np.zeros(len(hashes), dtype=bool)
        at = np.minimum(np.searchsorted(index, grams), len(index) - 1)
        seen = np.concatenate([[0], np.cumsum(index[at] == grams)])
        count = np.maximum(packed.lengths - n + 1, 0)  # a text's windows (0: too short)
        last = len(seen) - 1
        lo = np.minimum(packed.starts, last)
        return np.asarray((count > 0) & (seen[np.minimum(lo + count, last)] - seen[lo] > 0))

    def longest(self, texts: Sequence[str]) -> list[int]:
        """Tokens in the longest passage of each text that some corpus text also holds."""
        hashes = [self.hasher.hashes(tokens(t)) for t in texts]
        lo = np.zeros(len(texts), dtype=np.int64)  # shared (0: nothing yet)
        hi = np.zeros(len(texts), dtype=np.int64)  # not shared (0: unknown yet)
        gallop = np.arange(len(texts))
        n = 1
        while len(gallop):
            ok = self._shares([hashes[i] for i in gallop], n)
            lo[gallop[ok]] = n
            hi[gallop[~ok]] = n
            gallop = gallop[ok]
            n *= 2
        while True:
            todo = np.flatnonzero(hi - lo > 1)
            if not len(todo):
                break
            mid = (lo[todo] + hi[todo]) // 2
            for m in np.unique(mid):
                group = todo[mid == m]
                ok = self._shares([hashes[i] for i in group], int(m))
                lo[group[ok]] = m
                hi[group[~ok]] = m
        return [int(v) for v in lo]


def passages(
    texts: Sequence[str], corpus: Sequence[tuple[str, str]], threshold: int
) -> dict[str, Any]:
    """Longest shared n-gram per note against ``corpus``: max, mean, and the share >= threshold."""
    lengths = SharedNgrams(corpus).longest(texts)
    over = [i for i, n in enumerate(lengths) if n >= threshold]
    return {
        "corpus": len(corpus),
        "threshold": threshold,
        "longest_max": max(lengths, default=0),
        "longest_mean": round(float(np.mean(lengths)), 4) if lengths else 0.0,
        "share_at_threshold": round(len(over) / len(texts), 4) if texts else 0.0,
        "notes_at_threshold": len(over),
        "histogram": dict(sorted(_counts(lengths).items())),
    }


def _counts(values: Sequence[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def near_duplicates(
    texts: Sequence[str],
    reference: Sequence[str] | None,
    *,
    threshold: float = 0.8,
    shingle: int = 3,
    num_perm: int = 128,
) -> dict[str, Any]:
    """MinHash near-duplicate rates: notes with an earlier note of the set at estimated
    Jaccard >= threshold, and notes with such a reference note (engine.evaluate.minhash)."""
    from engine.evaluate.minhash import Sketcher, similar_earlier, similar_to

    hasher = TokenHasher()
    sketcher = Sketcher(threshold, shingle=shingle, num_perm=num_perm)
    rows = sketcher.sketches([hasher.hashes(tokens(t)) for t in texts])
    dups = int(np.count_nonzero(similar_earlier(rows, sketcher)))
    out: dict[str, Any] = {
        "threshold": threshold,
        "shingle": shingle,
        "num_perm": num_perm,
        "within_rate": round(dups / len(texts), 4) if texts else 0.0,
    }
    if reference is not None:
        ref = sketcher.sketches([hasher.hashes(tokens(t)) for t in reference])
        hits = int(np.count_nonzero(similar_to(rows, ref, sketcher)))
        out["reference_rate"] = round(hits / len(texts), 4) if texts else 0.0
    return out


def _closest(x: F, y: F) -> F:
    """Cosine distance of each (normalised) row of ``x`` to its nearest row of ``y``."""
    best = np.full(len(x), -np.inf)
    for start in range(0, len(y), 4096):
        np.maximum(best, (x @ y[start : start + 4096].T).max(axis=1), out=best)
    return np.clip(1.0 - best, 0.0, 2.0)


def dcr(
    synthetic: F,
    reference: F,
    *,
    seed: int = 0,
    quantile: float = 0.05,
    threshold: float | None = None,
) -> dict[str, Any] | None:
    """Distance to closest record against half A of the reference, beside half B's (the
    real-vs-real holdout baseline); ``None`` below two reference rows. The plagiarism threshold
    is ``threshold`` or the baseline's ``quantile``."""
    if len(reference) < 2:
        return None
    order = np.random.default_rng(seed).permutation(len(reference))
    half = len(reference) // 2
    a, b = reference[order[:half]], reference[order[half:]]
    syn = _closest(synthetic, a)
    base = _closest(b, a)
    cut = float(np.quantile(base, quantile)) if threshold is None else threshold
    return {
        "seed": seed,
        "reference_half": len(a),
        "holdout": len(b),
        "synthetic_median": round(float(np.median(syn)), 6),
        "synthetic_mean": round(float(np.mean(syn)), 6),
        "holdout_median": round(float(np.median(base)), 6),
        "holdout_mean": round(float(np.mean(base)), 6),
        "threshold": round(cut, 6),
        "threshold_from": "given" if threshold is not None else f"holdout quantile {quantile}",
        "share_under_threshold": round(float(np.mean(syn <= cut)), 4),
        "holdout_share_under_threshold": round(float(np.mean(base <= cut)), 4),
    }
