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

from engine.evaluate.fidelity import F
from engine.gate.privacy import NgramIndex
from engine.gate.text import U64, TokenHasher, tokens


class SharedNgrams:
    """Longest passage each note shares with a corpus (``n``-gram indexes built on demand)."""

    def __init__(self, corpus: Sequence[tuple[str, str]]) -> None:
        self.hasher = TokenHasher()
        self.corpus = list(corpus)
        self._indexes: dict[int, NgramIndex] = {}

    def index(self, n: int) -> NgramIndex:
        idx = self._indexes.get(n)
        if idx is None:
            idx = self._indexes[n] = NgramIndex(n, self.hasher)
            idx.add(self.corpus)
        return idx

    def _shares(self, toks: list[str], hashes: U64, n: int) -> bool:
        return self.index(n).find(toks, hashes) is not None

    def longest(self, text: str) -> int:
        """Tokens in the longest passage of ``text`` that some corpus text also holds."""
        toks = tokens(text)
        hashes = self.hasher.hashes(toks)
        if not toks or not self._shares(toks, hashes, 1):
            return 0
        lo, hi = 1, 2  # lo shares; find hi that does not
        while hi <= len(toks) and self._shares(toks, hashes, hi):
            lo, hi = hi, hi * 2
        hi = min(hi, len(toks) + 1)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._shares(toks, hashes, mid):
                lo = mid
            else:
                hi = mid
        return lo


def passages(
    texts: Sequence[str], corpus: Sequence[tuple[str, str]], threshold: int
) -> dict[str, Any]:
    """Longest shared n-gram per note against ``corpus``: max, mean, and the share >= threshold."""
    finder = SharedNgrams(corpus)
    lengths = [finder.longest(t) for t in texts]
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
    Jaccard >= threshold, and notes with such a reference note."""
    from engine.gate.neardup import NearDuplicateIndex

    hasher = TokenHasher()
    within = NearDuplicateIndex(threshold, shingle=shingle, num_perm=num_perm)
    sketches = [within.sketch(hasher.hashes(tokens(t))) for t in texts]
    dups = 0
    for i, sketch in enumerate(sketches):
        dups += within.query(sketch) is not None
        within.add(str(i), sketch)
    out: dict[str, Any] = {
        "threshold": threshold,
        "shingle": shingle,
        "num_perm": num_perm,
        "within_rate": round(dups / len(texts), 4) if texts else 0.0,
    }
    if reference is not None:
        ref = NearDuplicateIndex(threshold, shingle=shingle, num_perm=num_perm)
        for i, t in enumerate(reference):
            ref.add(str(i), ref.sketch(hasher.hashes(tokens(t))))
        hits = sum(ref.query(s) is not None for s in sketches)
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
