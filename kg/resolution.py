"""ICD-10-CM code resolution: which disease a requested code stands for, and how it was found.

A code resolves in three steps, the first that finds a coded disease wins:

1. **exact**: a disease is coded as the code itself (distance 0);
2. **ancestor**: the nearest coded ancestor (``G30.1`` -> ``G30``; distance = levels up);
3. **descendant**: for a code with codes below it (a category such as ``E11`` or ``L40``),
   the nearest coded descendants (``E11`` -> ``E11.9``; distance = levels down).

When several diseases are found at the winning step and distance, the choice is fixed:
primary codings first, then curated diseases (``KGS:``) before imported ones, then the
richest profile (most frequency-weighted symptoms), then the lowest coded code (ICD
order), then the lowest disease id; the others are reported as alternatives, so a user can request
their code instead.
``engine.profile.Catalogue.icd`` and ``kg.coverage`` both resolve through :func:`pick`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

How = Literal["exact", "ancestor", "descendant"]
#: the id prefix of diseases curated in kgsynth's own modules (kg/seed/README.md)
CURATED_PREFIX = "KGS:"
#: the most PARENT_OF levels a resolution walks (chapter -> block -> ... -> 7th character)
MAX_LEVELS = 6


class Candidate(BaseModel):
    """A disease coded at (or above, or below) a requested code."""

    model_config = ConfigDict(frozen=True)

    disease_id: str
    disease: str
    coded_as: str
    distance: int
    primary: bool = False
    #: frequency-weighted symptoms of the disease (the richer profile wins a tie)
    weighted: int = 0


class CodeResolution(BaseModel):
    """How a requested code reached its disease: the coded code, the step and the distance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requested: str
    matched: str
    how: How
    distance: int

    def describe(self) -> str:
        """``exact`` or ``via G30 (ancestor, 1 level up)``."""
        if self.how == "exact":
            return "exact"
        direction = "up" if self.how == "ancestor" else "down"
        levels = "level" if self.distance == 1 else "levels"
        return f"via {self.matched} ({self.how}, {self.distance} {levels} {direction})"


def pick(candidates: Iterable[Candidate]) -> tuple[Candidate, list[Candidate]]:
    """The chosen candidate and one alternative per other disease, at the nearest distance.

    Ranked by: nearest first, primary codings first, curated diseases (``KGS:`` ids) before
    imported ones (Disease Ontology, HPO), most weighted symptoms, lowest coded code, lowest
    disease id.
    """
    ranked = sorted(
        candidates,
        key=lambda c: (
            c.distance,
            not c.primary,
            not c.disease_id.startswith(CURATED_PREFIX),
            -c.weighted,
            c.coded_as,
            c.disease_id,
        ),
    )
    if not ranked:
        raise ValueError("no candidates to pick from")
    best = ranked[0]
    others: dict[str, Candidate] = {}
    for c in ranked[1:]:
        if c.distance == best.distance and c.disease_id != best.disease_id:
            others.setdefault(c.disease_id, c)
    return best, list(others.values())


def resolution_of(requested: str, best: Candidate, how: How) -> CodeResolution:
    """The path from ``requested`` to ``best`` (a distance of 0 is always ``exact``)."""
    return CodeResolution(
        requested=requested,
        matched=best.coded_as,
        how="exact" if best.distance == 0 else how,
        distance=best.distance,
    )
