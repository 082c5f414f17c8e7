"""Deterministic train / validation / test splits by record: a note is never in two splits.

``hash`` (the default): each record's bucket comes from sha256(split seed, record id) alone,
so a record keeps its split whatever else the dataset holds (a grown dataset never moves a
test note into train). ``stratified``: within each ICD code, records ordered by the same
hash fill the splits by exact quotas (largest remainders), so small datasets get the ratios
per code; adding records can move records near a quota boundary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, model_validator

from engine.errors import EngineError

SPLITS = ("train", "validation", "test")


class SplitMethod(StrEnum):
    hash = "hash"
    stratified = "stratified"


class SplitConfig(BaseModel):
    """Split ratios (normalised to sum 1), seed and method."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    method: SplitMethod = SplitMethod.hash

    @model_validator(mode="after")
    def _normalised(self) -> SplitConfig:
        if any(r < 0 for r in self.ratios) or sum(self.ratios) <= 0:
            raise ValueError("split ratios must be >= 0 with a positive sum")
        total = sum(self.ratios)
        object.__setattr__(self, "ratios", tuple(r / total for r in self.ratios))
        return self


def parse_ratios(text: str) -> tuple[float, float, float]:
    """``80/10/10`` or ``0.8,0.1,0.1`` -> three non-negative numbers (normalised later)."""
    try:
        a, b, c = (float(part) for part in text.replace("/", ",").split(","))
    except ValueError:
        raise EngineError(
            f"--ratios {text!r}: give train/validation/test as three numbers, e.g. 80/10/10"
        ) from None
    if min(a, b, c) < 0 or a + b + c <= 0:
        raise EngineError(f"--ratios {text!r}: ratios must be >= 0 with a positive sum")
    return a, b, c


def unit(seed: int, record_id: str) -> float:
    """The record's point in [0, 1): the first 8 bytes of sha256("seed:record_id")."""
    digest = hashlib.sha256(f"{seed}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _bucket(point: float, ratios: tuple[float, float, float]) -> str:
    edge = 0.0
    for name, ratio in zip(SPLITS, ratios, strict=True):
        edge += ratio
        if point < edge:
            return name
    return next(n for n, r in zip(SPLITS[::-1], ratios[::-1], strict=True) if r > 0)


def _quotas(n: int, ratios: tuple[float, float, float]) -> list[int]:
    """Exact split sizes for ``n`` records by largest remainder (ties: earlier split)."""
    shares = [n * r for r in ratios]
    counts = [int(s) for s in shares]
    order = sorted(range(3), key=lambda i: (-(shares[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def assign(records: Mapping[str, str | None], config: SplitConfig) -> dict[str, str]:
    """Split name per record id; ``records`` maps record id -> ICD code (the stratum)."""
    if config.method is SplitMethod.hash:
        return {rid: _bucket(unit(config.seed, rid), config.ratios) for rid in records}
    strata: dict[str | None, list[str]] = {}
    for rid, code in records.items():
        strata.setdefault(code, []).append(rid)
    out: dict[str, str] = {}
    for members in strata.values():
        members.sort(key=lambda rid: (unit(config.seed, rid), rid))
        start = 0
        for name, count in zip(SPLITS, _quotas(len(members), config.ratios), strict=True):
            out.update(dict.fromkeys(members[start : start + count], name))
            start += count
    return out
