"""Alignment of planned records with the graph: what was drawn against what the graph says.

Per disease and code: the total variation distance (TVD, half the L1 distance) between the
drawn and the graph's distribution of each persona attribute (the graph's strata shares,
restricted to the code's ages and sex), each risk factor's drawn rate against its cited
overall prevalence, and per window the mean keyword count against the window's density,
the TVD of keyword categories against the window's category shares, and the TVD of keyword
symptoms against ``share(category) x weight / sum of the category's drawable weights``
(exact for one keyword per category; more keywords per category, drawn without replacement,
flatten it, so it is a guide rather than a test).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from engine.profile import DiseaseProfile
from kg.coherence import (
    OPEN_AGE_SPAN,
    UNWEIGHTED_FREQUENCY,
    age_range,
    intersect_bounds,
    persona_cells,
    stage_allows,
)


def tvd(observed: Mapping[str, float], expected: Mapping[str, float]) -> float:
    """Total variation distance between two distributions given as (unnormalised) counts."""
    n_obs, n_exp = sum(observed.values()), sum(expected.values())
    if n_obs <= 0 or n_exp <= 0:
        return 0.0
    keys = set(observed) | set(expected)
    return 0.5 * sum(abs(observed.get(k, 0) / n_obs - expected.get(k, 0) / n_exp) for k in keys)


Restriction = tuple[int | None, int | None, str | None]


def restriction(profile: DiseaseProfile) -> Restriction:
    """(min age, max age, sex) at diagnosis: the disease's bounds and its code's, intersected
    (a sex conflict gives ``"none"``, which no persona meets)."""
    return intersect_bounds(profile, profile.code_bounds())


def expected_attributes(profile: DiseaseProfile) -> dict[str, dict[str, float]]:
    """Attribute -> value -> probability at diagnosis, under the code's restriction.

    An age group keeps the part of its years inside the restriction (ages uniform within the
    group); cells of the other sex are dropped; the rest is renormalised."""
    lo, hi, sex = restriction(profile)
    rows = [(s.attribute, s.value, s.share) for s in profile.strata]
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for cell, p in persona_cells(rows):
        if sex is not None and cell.get("sex", sex) != sex:
            continue
        group = cell.get("age_group")
        span = age_range(group, OPEN_AGE_SPAN) if group else None
        if span is not None and (lo is not None or hi is not None):
            a, b = (
                max(span[0], lo if lo is not None else span[0]),
                min(span[1], hi if hi is not None else span[1]),
            )
            p *= max(0, b - a + 1) / (span[1] - span[0] + 1)
        for attribute, value in cell.items():
            out[attribute][value] += p
    return {a: dict(v) for a, v in out.items()}


class _WindowTally:
    def __init__(self) -> None:
        self.records = 0
        self.keywords = 0
        self.categories: Counter[str] = Counter()
        self.symptoms: Counter[str] = Counter()


class Tally:
    """Counts of one disease and code's records, and the figures they give."""

    def __init__(self, profile: DiseaseProfile) -> None:
        self.profile = profile
        self.records = 0
        self.personas = 0
        self.attributes: dict[str, Counter[str]] = defaultdict(Counter)
        self.risks: Counter[str] = Counter()
        self.windows: dict[str, _WindowTally] = defaultdict(_WindowTally)
        self.scheme: str | None = None

    def add(self, rec: dict[str, Any]) -> None:
        self.records += 1
        persona = rec.get("persona")
        if persona:
            self.personas += 1
            for attribute, value in (persona.get("attributes") or {}).items():
                self.attributes[attribute][value] += 1
            for factor in persona.get("risk_factors") or ():
                self.risks[factor["id"]] += 1
        window = rec.get("window")
        if window is not None:
            w = self.windows[window["id"]]
            keywords = rec.get("keywords") or ()
            w.records += 1
            w.keywords += len(keywords)
            for kw in keywords:
                w.categories[kw["category_id"]] += 1
                w.symptoms[kw["symptom_id"]] += 1
            self.scheme = rec.get("scheme") or self.scheme

    def figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {"records": self.records}
        expected = expected_attributes(self.profile)
        if self.attributes:
            out["persona TVD"] = {
                a: round(tvd(counts, expected.get(a, {})), 4)
                for a, counts in sorted(self.attributes.items())
            }
        overall = {r.id: r for r in self.profile.risks if r.stratum_id is None}
        if overall and self.personas:
            out["risk factors (drawn vs cited overall)"] = {
                r.name: f"{self.risks[i] / self.personas:.4f} vs {r.prevalence:.4f}"
                for i, r in sorted(overall.items())
            }
        if self.windows:
            out["windows"] = {
                w.name: self._window(w.id, self.windows[w.id])
                for w in self.profile.windows
                if w.id in self.windows
            }
        return out

    def _window(self, window_id: str, t: _WindowTally) -> dict[str, Any]:
        info = next(w for w in self.profile.windows if w.id == window_id)
        shares = {
            o.target_id: o.frequency
            for o in info.observations
            if o.kind == "SymptomCategory" and o.scheme == self.scheme
        }
        weights = {o.target_id: o.frequency for o in info.observations if o.kind == "Symptom"}
        members: dict[str, dict[str, float]] = defaultdict(dict)
        for s in self.profile.symptoms:
            category = s.category_in(self.scheme) if self.scheme else None
            if category is None or not stage_allows(s.stage, info.stage):
                continue
            weight = weights.get(
                s.id, s.frequency if s.frequency is not None else UNWEIGHTED_FREQUENCY
            )
            members[category.id][s.id] = weight
        expected_symptoms: dict[str, float] = {}
        for cid, share in shares.items():
            total = sum(members[cid].values())
            for sid, w in members[cid].items():
                expected_symptoms[sid] = share * w / total if total > 0 else 0.0
        figures: dict[str, Any] = {
            "records": t.records,
            "keywords per record": round(t.keywords / t.records, 3),
        }
        if info.keyword_density is not None:
            figures["keyword density"] = info.keyword_density
            figures["multiplier (keywords / density)"] = round(
                t.keywords / t.records / info.keyword_density, 3
            )
        figures["category TVD"] = round(tvd(t.categories, shares), 4)
        figures["symptom TVD"] = round(tvd(t.symptoms, expected_symptoms), 4)
        return figures
