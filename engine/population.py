"""Prevalence over one stated population: figures, populations and the conversion to counts.

Every prevalence figure is a ``(Disease)-[:OCCURS_IN {prevalence, measure}]->(Population)``
row. ``--by-prevalence --population P`` converts each disease's figures into the expected
number of people with the disease in ``P``:

* usable figures: same ``area`` as ``P``, ages (and sex) inside ``P``'s, measure ``point`` or
  ``past_year`` (a lifetime share counts people who ever had the condition, not patients);
* of those, the disjoint set (one measure) that covers the most people of ``P``, then the
  most figures (age-stratified figures win over their overall figure);
* ``E_d = sum_b p_b x N_b``, ``N_b`` the size of band ``b`` in ``P``'s census (a
  ``Population`` with ``P``'s area and year and the band's ages and sex; ``P`` itself when
  the band is ``P``). People of ``P`` no figure covers count no cases; the plan says so.

No usable figure, or no census size for any usable band, is an error naming the figures.
Without ``--population`` the figures must all count one and the same population.
"""

from __future__ import annotations

import difflib
from itertools import combinations
from typing import Any

from pydantic import BaseModel, ConfigDict

from engine.errors import EngineError
from engine.profile import Target
from kg.queries import get_query
from kg.store import GraphStore

#: the oldest age an open age range (no ``max_age``) reaches
AGE_CAP = 130
#: measures a count of current patients can be made from
PERIOD_MEASURES = ("point", "past_year")
#: at most this many usable figures per disease are searched exhaustively for the best set
MAX_FIGURES = 14


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PopulationInfo(_Frozen):
    id: str
    name: str
    synonyms: tuple[str, ...] = ()
    area: str
    min_age: int | None = None
    max_age: int | None = None
    sex: str | None = None
    year: int
    size: int | None = None
    status: str | None = None
    source: str | None = None

    @property
    def ages(self) -> tuple[int, int]:
        return (self.min_age or 0, AGE_CAP if self.max_age is None else self.max_age)

    @property
    def band(self) -> tuple[int, int, str | None]:
        return (*self.ages, self.sex)

    def age_text(self) -> str:
        lo, hi = self.ages
        return f"{lo}+" if hi >= AGE_CAP else f"{lo}-{hi}"

    def describe(self) -> str:
        sex = f", {self.sex}" if self.sex else ""
        return f"{self.name} ({self.area}, ages {self.age_text()}{sex}, {self.year})"

    def holds(self, other: PopulationInfo) -> bool:
        """Whether ``other`` lies inside this population (area, ages, sex)."""
        lo, hi = self.ages
        olo, ohi = other.ages
        return (
            other.area == self.area
            and lo <= olo
            and ohi <= hi
            and (self.sex is None or other.sex == self.sex)
        )


class Figure(_Frozen):
    disease_id: str
    disease: str
    prevalence: float
    measure: str
    status: str | None = None
    source: str | None = None
    population: PopulationInfo

    def describe(self) -> str:
        measure = self.measure.replace("_", "-")
        return (
            f"{self.disease}: {self.prevalence:.4g} ({measure}) in "
            f"{self.population.describe()} [{self.population.id}]"
        )


class Band(_Frozen):
    """One figure used in a conversion and the census size it is applied to."""

    figure: Figure
    size: PopulationInfo

    @property
    def cases(self) -> float:
        assert self.size.size is not None
        return self.figure.prevalence * self.size.size


class Conversion(_Frozen):
    """A disease's expected count of people with it in the target population."""

    disease_id: str
    disease: str
    bands: tuple[Band, ...]
    expected: float
    uncovered: int

    def describe(self) -> str:
        parts = " + ".join(
            f"{b.figure.prevalence:.4g} x {b.size.size:,} ({b.size.age_text()})" for b in self.bands
        )
        measures = sorted({b.figure.measure.replace("_", "-") for b in self.bands})
        gap = f"; {self.uncovered:,} people no figure covers count 0" if self.uncovered else ""
        return f"{self.disease}: {parts} = {self.expected:,.0f} ({', '.join(measures)}){gap}"


class Prevalence:
    """The graph's populations and prevalence figures, read once (two named queries)."""

    def __init__(self, store: GraphStore) -> None:
        self.populations = {r["population_id"]: _population(r) for r in _run(store, "populations")}
        self.figures: dict[str, list[Figure]] = {}
        for r in _run(store, "prevalence_figures"):
            pop = self.populations[r["population_id"]]
            self.figures.setdefault(r["disease_id"], []).append(
                Figure(
                    disease_id=r["disease_id"],
                    disease=r["disease"],
                    prevalence=float(r["prevalence"]),
                    measure=r["measure"],
                    status=r["status"],
                    source=r["source"],
                    population=pop,
                )
            )

    def population(self, text: str) -> PopulationInfo:
        """The population whose id, name or synonym is ``text`` (case-insensitive)."""
        key = text.strip().lower()
        for pop in self.populations.values():
            if key in {pop.id.lower(), pop.name.lower(), *(s.lower() for s in pop.synonyms)}:
                return pop
        names = {p.name.lower(): p.describe() for p in self.populations.values()}
        close = [names[n] for n in difflib.get_close_matches(key, list(names), n=5, cutoff=0.4)]
        known = close or [p.describe() for p in self.populations.values()][:5]
        hint = "; ".join(known) if known else "the graph holds no Population node"
        raise EngineError(f"unknown population {text!r}; {'closest' if close else 'known'}: {hint}")

    def census(self, target: PopulationInfo, band: PopulationInfo) -> PopulationInfo | None:
        """The population of ``target``'s area and year with ``band``'s ages and sex, sized."""
        if band.band == target.band and target.size is not None:
            return target
        hits = [
            p
            for p in self.populations.values()
            if p.area == target.area
            and p.year == target.year
            and p.band == band.band
            and p.size is not None
        ]
        return min(hits, key=lambda p: p.id) if hits else None

    def convert(self, disease: Target, target: PopulationInfo) -> Conversion:
        """``disease``'s expected count of people with it in ``target``."""
        figures = self.figures.get(disease.disease_id, [])
        if not figures:
            raise EngineError(
                f"{disease.disease} has no prevalence figure with a population "
                "(OCCURS_IN); add one, or leave --population out"
            )
        inside = [f for f in figures if target.holds(f.population)]
        usable: list[Band] = []
        unsized = []
        for f in inside:
            if f.measure not in PERIOD_MEASURES:
                continue
            size = self.census(target, f.population)
            if size is None:
                unsized.append(f.population.describe())
            else:
                usable.append(Band(figure=f, size=size))
        if not usable:
            why = (
                f"no census size of {target.area} {target.year} for "
                + "; ".join(sorted(set(unsized)))
                if unsized
                else "no figure counts people inside it with a point or past-year measure"
            )
            raise EngineError(
                f"no conversion path from {'; '.join(f.describe() for f in figures)} to "
                f"{target.describe()}: {why}"
            )
        best = _best_set(usable)
        covered = sum(b.size.size or 0 for b in best)
        expected = float(sum(b.cases for b in best))
        return Conversion(
            disease_id=disease.disease_id,
            disease=disease.disease,
            bands=best,
            expected=expected,
            uncovered=max((target.size or covered) - covered, 0),
        )

    def frequencies(
        self, pool: list[tuple[Target, float | None]], population: str | None
    ) -> tuple[list[float], list[str]]:
        """The frequency each pooled disease is drawn by, and lines saying how it was found.

        With ``population``: the expected count of people with each disease in it. Without:
        the diseases' prevalences, which must all be figures over one population (or, in a
        graph without any ``OCCURS_IN`` figure, the bare ``Disease.prevalence`` values).
        """
        if population is not None:
            target = self.population(population)
            if target.size is None:
                raise EngineError(f"population {target.describe()} has no size in the graph")
            conversions, problems = [], []
            for t, _ in pool:
                try:
                    conversions.append(self.convert(t, target))
                except EngineError as err:
                    problems.append(str(err))
            if problems:
                raise EngineError("; ".join(problems))
            notes = [f"population {target.describe()}: {target.size:,} people"]
            return [c.expected for c in conversions], notes + [c.describe() for c in conversions]
        heads = [(t, self.headline(t, p), p) for t, p in pool]
        if not self.figures and all(p is not None for _, _, p in heads):
            return [float(p) for _, _, p in heads if p is not None], []
        populations = {h.population.id for _, h, _ in heads if h is not None}
        if len(populations) != 1 or any(h is None for _, h, _ in heads):
            named = "; ".join(
                h.describe() if h is not None else f"{t.disease}: {p} (no population)"
                for t, h, p in heads
            )
            known = ", ".join(sorted(repr(p.name) for p in self.populations.values() if p.size))
            raise EngineError(
                "--by-prevalence: the prevalence figures count different populations, so "
                f"their mix matches none: {named}; choose one with --population "
                f"(known: {known or 'none'})"
            )
        head = [h for _, h, _ in heads if h is not None]
        return [h.prevalence for h in head], [f"prevalence in {head[0].population.describe()}"]

    def headline(self, target: Target, prevalence: float | None) -> Figure | None:
        """The figure a disease's ``prevalence`` stands for: the one with that value, else
        the one over the widest population (None without figures)."""
        figures = self.figures.get(target.disease_id, [])
        if not figures:
            return None
        same = [
            f for f in figures if prevalence is not None and abs(f.prevalence - prevalence) < 1e-12
        ]
        pool = same or figures
        return max(
            pool, key=lambda f: (f.population.ages[1] - f.population.ages[0], f.population.id)
        )


def _overlap(a: PopulationInfo, b: PopulationInfo) -> bool:
    (alo, ahi), (blo, bhi) = a.ages, b.ages
    sexes = a.sex is None or b.sex is None or a.sex == b.sex
    return alo <= bhi and blo <= ahi and sexes


def _best_set(bands: list[Band]) -> tuple[Band, ...]:
    """The disjoint bands of one measure covering the most people, then the most bands."""
    best: tuple[tuple[int, int, int], tuple[Band, ...]] | None = None
    for measure in PERIOD_MEASURES:
        pool = sorted(
            (b for b in bands if b.figure.measure == measure),
            key=lambda b: (b.size.ages, b.figure.population.id),
        )[:MAX_FIGURES]
        for k in range(len(pool), 0, -1):
            for combo in combinations(pool, k):
                if any(
                    _overlap(x.figure.population, y.figure.population)
                    for x, y in combinations(combo, 2)
                ):
                    continue
                key = (sum(b.size.size or 0 for b in combo), k, -PERIOD_MEASURES.index(measure))
                if best is None or key > best[0]:
                    best = (key, combo)
    assert best is not None
    return best[1]


def _run(store: GraphStore, name: str, **params: Any) -> list[dict[str, Any]]:
    return store.read(get_query(name).text, params)


def _population(r: dict[str, Any]) -> PopulationInfo:
    return PopulationInfo(
        id=r["population_id"],
        name=r["name"],
        synonyms=tuple(r["synonyms"] or ()),
        area=r["area"],
        min_age=None if r["min_age"] is None else int(r["min_age"]),
        max_age=None if r["max_age"] is None else int(r["max_age"]),
        sex=r["sex"],
        year=int(r["year"]),
        size=None if r["size"] is None else int(r["size"]),
        status=r["status"],
        source=r["source"],
    )
