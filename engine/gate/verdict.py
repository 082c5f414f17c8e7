"""What the gate decides, as records and manifests carry it (no heavy imports here)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Check = Literal["privacy", "leakage", "near-duplicate"]
#: every check, in the order they run
CHECKS: tuple[Check, ...] = ("privacy", "leakage", "near-duplicate")


class Rejection(BaseModel):
    """Why one answer was rejected: the check, the answer's number and seed, the evidence.

    ``attempt`` 0 is the first answer, 1.. the regenerations. Evidence per check: privacy
    ``ngram`` (the shared words) and ``source``; near-duplicate ``similar_to`` (a record id)
    and ``jaccard``; leakage ``term`` (as curated) and ``found`` (as written).
    """

    model_config = ConfigDict(frozen=True)

    check: Check
    attempt: int = 0
    seed: int | None = None
    detail: str
    ngram: str | None = None
    source: str | None = None
    similar_to: str | None = None
    jaccard: float | None = None
    term: str | None = None
    found: str | None = None


class GateCounts(BaseModel):
    """One run's gate tallies: answers checked, rejected per check, regenerations asked,
    records accepted after a regeneration and records finally rejected."""

    checked: int = 0
    accepted: int = 0
    rejected: dict[str, int] = Field(default_factory=lambda: {str(c): 0 for c in CHECKS})
    regenerated: int = 0
    accepted_after_regeneration: int = 0
    records_rejected: int = 0
