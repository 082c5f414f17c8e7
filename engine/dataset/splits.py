"""Deterministic train / validation / test splits by unit: a note is never in two splits,
and all visits of a longitudinal patient are in one split.

The split unit is the record, or for a record of a longitudinal patient (``spec.patient``)
the patient: every visit of a patient goes where its patient goes.

``hash`` (the default): each unit's bucket comes from sha256(split seed, unit id) alone (the
record id, or the patient id), so a unit keeps its split whatever else the dataset holds (a
grown dataset never moves a test note into train). ``stratified``: within each ICD code,
units ordered by the same hash fill the splits by exact quotas (largest remainders), so small
datasets get the ratios per code; adding records can move units near a quota boundary. A
patient counts once in the quotas, whatever its number of visits (with the planner's fixed
visit schedule every patient has the same number, so notes follow the same ratios unless
visits were left out); its stratum is the code of its first record by record id.
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


def unit(seed: int, unit_id: str) -> float:
    """A unit's point in [0, 1): the first 8 bytes of sha256("seed:unit_id") (the unit id is
    a record id, or a patient id for a longitudinal patient's records)."""
    digest = hashlib.sha256(f"{seed}:{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _bucket(point: float, ratios: tuple[float, float, float]) -> str:
    edge = 0.0
    for name, ratio in zip(SPLITS, ratios, strict=True):
        edge += ratio
        if point < edge:
            return name
    return next(n for n, r in zip(SPLITS[::-1], ratios[::-1], strict=True) if r > 0)


def _quotas(n: int, ratios: tuple[float, float, float]) -> list[int]:
    """Exact split sizes for ``n`` units by largest remainder (ties: earlier split)."""
    shares = [n * r for r in ratios]
    counts = [int(s) for s in shares]
    order = sorted(range(3), key=lambda i: (-(shares[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def assign(
    records: Mapping[str, str | None],
    config: SplitConfig,
    patients: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Split name per record id; ``records`` maps record id -> ICD code (the stratum) and
    ``patients`` record id -> patient id for the records of longitudinal patients (one unit
    per patient; every other record is a unit of its own)."""
    patients = patients or {}
    # unit -> its records; kinds keep a patient id apart from a record id that spells the same
    units: dict[tuple[str, str], list[str]] = {}
    for rid in sorted(records):
        pid = patients.get(rid)
        units.setdefault(("patient", pid) if pid is not None else ("record", rid), []).append(rid)
    if config.method is SplitMethod.hash:
        where = {key: _bucket(unit(config.seed, key[1]), config.ratios) for key in units}
    else:
        strata: dict[str | None, list[tuple[str, str]]] = {}
        for key, members in units.items():
            strata.setdefault(records[members[0]], []).append(key)
        where = {}
        for keys in strata.values():
            keys.sort(key=lambda k: (unit(config.seed, k[1]), k[1], k[0]))
            start = 0
            for name, count in zip(SPLITS, _quotas(len(keys), config.ratios), strict=True):
                where.update(dict.fromkeys(keys[start : start + count], name))
                start += count
    return {rid: where[key] for key, members in units.items() for rid in members}
