"""A label scheme: one disease's symptom categories in one scheme, with their protocols.

The annotator labels each sentence with one category name of the scheme or ``no symptom``.
Categories and their annotation guidelines come from the ``DiseaseProfile`` (``IN_CATEGORY``
and window ``OBSERVES`` for the categories, ``GUIDED_BY`` for the guidelines).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from engine.annotate.model import NO_SYMPTOM, Label
from engine.errors import EngineError
from engine.profile import DiseaseProfile


class Category(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    guideline: str | None = None


class LabelScheme(BaseModel):
    """The categories of ``scheme`` for ``disease_id`` in protocol order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scheme: str
    disease_id: str
    disease: str
    categories: tuple[Category, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        """The answers an annotator may give: every category name, then ``no symptom``."""
        return (*(c.name for c in self.categories), NO_SYMPTOM)

    def label(self, name: str) -> Label:
        """The ``Label`` for an answer; ``KeyError`` when ``name`` is not in the scheme."""
        if name == NO_SYMPTOM:
            return Label()
        for c in self.categories:
            if c.name == name:
                return Label(category_id=c.id, category=c.name)
        raise KeyError(name)

    def name_of(self, category_id: str) -> str:
        return next((c.name for c in self.categories if c.id == category_id), category_id)


def scheme_of(profile: DiseaseProfile, scheme: str | None) -> LabelScheme:
    """``profile``'s categories in ``scheme`` (default: its most observed scheme).

    Raises ``EngineError`` when the disease has no category in that scheme.
    """
    known = profile.schemes() or sorted({c.scheme for s in profile.symptoms for c in s.categories})
    name = scheme or (known[0] if known else None)
    found: dict[str, str] = {}
    for symptom in profile.symptoms:
        for c in symptom.categories:
            if c.scheme == name:
                found[c.id] = c.name
    for window in profile.windows:
        for obs in window.observations:
            if obs.kind == "SymptomCategory" and obs.scheme == name:
                found[obs.target_id] = obs.name
    if not found:
        have = ", ".join(known) or "none"
        raise EngineError(
            f"{profile.disease} has no symptom category in scheme {name!r} "
            f"(its schemes: {have}); pass --scheme"
        )
    guides = {
        g.category_id: g for g in profile.guidelines if g.kind == "annotation" and g.category_id
    }
    order = sorted(found, key=lambda cid: (guides[cid].order if cid in guides else 1 << 30, cid))
    return LabelScheme(
        scheme=name or "",
        disease_id=profile.disease_id,
        disease=profile.disease,
        categories=tuple(
            Category(id=cid, name=found[cid], guideline=guides[cid].text if cid in guides else None)
            for cid in order
        ),
    )
