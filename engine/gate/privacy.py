"""The privacy check: does a note share an ``n``-token passage with a protected text?

Protected texts (example notes, a reference corpus) are indexed once as sorted arrays of
their n-gram hashes with the source of each; a note's n-grams are looked up with
``searchsorted`` (a few microseconds per note, whatever the corpus size). Texts added later
(an example note first seen in a spec) form further small segments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from engine.gate.text import U64, TokenHasher, ngram_hashes, tokens


@dataclass(frozen=True, slots=True)
class SharedPassage:
    """The first protected n-gram found in a note: its position, words and source."""

    position: int
    ngram: str
    source: str


@dataclass(slots=True)
class _Segment:
    hashes: U64
    sources: NDArray[np.int32]


class NgramIndex:
    """Protected n-gram hashes; ``find`` returns a note's first shared passage."""

    def __init__(self, n: int, hasher: TokenHasher | None = None) -> None:
        if n < 1:
            raise ValueError("n must be at least 1")
        self.n = n
        self.hasher = hasher or TokenHasher()
        self.sources: list[str] = []
        self._known: set[str] = set()
        self._segments: list[_Segment] = []

    def __contains__(self, source: str) -> bool:
        return source in self._known

    @property
    def size(self) -> int:
        """Distinct-position n-grams indexed (repeats included)."""
        return sum(len(s.hashes) for s in self._segments)

    def add(self, docs: Iterable[tuple[str, str]]) -> int:
        """Index ``(source id, text)`` pairs (ids already indexed are skipped); returns how many."""
        parts: list[U64] = []
        owners: list[NDArray[np.int32]] = []
        added = 0
        for source, text in docs:
            if source in self._known:
                continue
            self._known.add(source)
            grams = ngram_hashes(self.hasher.hashes(tokens(text)), self.n)
            parts.append(grams)
            owners.append(np.full(len(grams), len(self.sources), dtype=np.int32))
            self.sources.append(source)
            added += 1
        if parts:
            hashes = np.concatenate(parts)
            order = np.argsort(hashes, kind="stable")
            self._segments.append(_Segment(hashes[order], np.concatenate(owners)[order]))
        return added

    def find(self, toks: list[str], token_hashes: U64) -> SharedPassage | None:
        """The first n-gram of a text (its tokens and their hashes, by this index's hasher)
        that a protected text holds, or ``None``."""
        grams = ngram_hashes(token_hashes, self.n)
        if not len(grams):
            return None
        best: tuple[int, int] | None = None
        for seg in self._segments:
            if not len(seg.hashes):
                continue
            at = np.searchsorted(seg.hashes, grams)
            np.minimum(at, len(seg.hashes) - 1, out=at)
            hit = np.flatnonzero(seg.hashes[at] == grams)
            if len(hit) and (best is None or int(hit[0]) < best[0]):
                best = (int(hit[0]), int(seg.sources[at[hit[0]]]))
        if best is None:
            return None
        pos, source = best
        return SharedPassage(pos, " ".join(toks[pos : pos + self.n]), self.sources[source])
