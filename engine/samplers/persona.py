"""Persona alignment (DualAlign): demographics from the graph's shares, risk factors by prevalence.

Strata tables are sampled in a chain: joint tables first (most attributes first), each
conditioned on the attributes already drawn; then single-attribute tables for attributes no
joint table covered. Attributes that share no joint table are drawn **independently** (the
graph gives no joint information to do otherwise). The exact age is uniform over the integer
years of the drawn age group. Each risk factor is a Bernoulli draw with the prevalence of the
most specific RISK stratum that matches the persona, else the overall prevalence (a factor
with neither is absent).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from engine.errors import EngineError
from engine.profile import DiseaseProfile, RiskInfo
from engine.samplers.rng import Stage, stage_uniforms
from engine.samplers.tables import FloatArray, IntArray, cumulative, draw, normalised
from engine.spec import Persona, RiskFactorRef

AGE_ATTRIBUTES = ("age_group", "age")
#: Separator of a joint stratum's attributes and values (``age_group&sex`` = ``75-84&female``).
JOINT = "&"
_CACHE_LIMIT = 200_000
_NUM = re.compile(r"\d+")
_LOWER_OPEN = re.compile(r"(\+|>=|≥|>|and over|and older|or older|or over|plus)", re.IGNORECASE)
_UPPER_OPEN = re.compile(r"(<=|≤|<|under|younger than|below)", re.IGNORECASE)


def age_range(group: str, open_span: int) -> tuple[int, int] | None:
    """Inclusive integer ages of an age-group label: ``65-74``, ``85+``, ``≥85``, ``<65``."""
    nums = [int(x) for x in _NUM.findall(group)]
    if len(nums) == 2 and nums[0] <= nums[1]:
        return nums[0], nums[1]
    if len(nums) != 1:
        return None
    (a,) = nums
    if _UPPER_OPEN.search(group):
        hi = a if ("=" in group or "≤" in group) else a - 1
        return max(0, hi - open_span + 1), hi
    if _LOWER_OPEN.search(group):
        lo = a + 1 if (">" in group and "=" not in group) else a
        return lo, lo + open_span - 1
    return a, a


@dataclass(frozen=True)
class _Table:
    attributes: tuple[str, ...]
    codes: IntArray  # (rows, len(attributes)) value codes
    probs: FloatArray  # (rows,)


@dataclass(frozen=True)
class PersonaBatch:
    """Sampled personas of a batch: value codes per attribute, ages, risk-factor flags."""

    values: dict[str, IntArray]
    ages: IntArray  # -1 where no age could be derived
    risks: np.ndarray  # (n, factors) bool


class PersonaSampler:
    """A profile's strata and risk factors compiled into cumulative tables."""

    def __init__(self, profile: DiseaseProfile, open_age_span: int = 10) -> None:
        self.disease = profile.disease
        by_attr: dict[str, list[tuple[str, float]]] = {}
        for s in profile.strata:
            by_attr.setdefault(s.attribute, []).append((s.value, s.share))
        parts = {a: a.split(JOINT) for a in by_attr}
        values: dict[str, list[str]] = {}
        for attr, rows in by_attr.items():
            for value, _ in rows:
                pieces = value.split(JOINT)
                if len(pieces) != len(parts[attr]):
                    raise EngineError(
                        f"{profile.disease}: stratum value {value!r} does not match "
                        f"joint attribute {attr!r}"
                    )
                for name, piece in zip(parts[attr], pieces, strict=True):
                    values.setdefault(name, [])
                    if piece not in values[name]:
                        values[name].append(piece)
        self.attributes = sorted(values)
        self.values = {a: sorted(v) for a, v in values.items()}
        self._code = {a: {v: i for i, v in enumerate(vs)} for a, vs in self.values.items()}
        self.tables = self._chain(by_attr, parts)
        self.age_attribute = next((a for a in AGE_ATTRIBUTES if a in self.values), None)
        self._ages = self._age_table(open_age_span)
        self.factors = sorted({r.id for r in profile.risks})
        self._factor_refs = {
            r.id: RiskFactorRef(id=r.id, name=r.name, kind=r.kind) for r in profile.risks
        }
        self._risk_rules = {f: [r for r in profile.risks if r.id == f] for f in self.factors}
        self.n_uniforms = len(self.tables) + 1 + len(self.factors)
        self._cache: dict[tuple[tuple[str, ...], int, int], Persona] = {}

    def _chain(
        self, by_attr: dict[str, list[tuple[str, float]]], parts: dict[str, list[str]]
    ) -> list[_Table]:
        order = sorted(by_attr, key=lambda a: (-len(parts[a]), a))
        covered: set[str] = set()
        tables = []
        for attr in order:
            names = parts[attr]
            if len(names) == 1 and names[0] in covered:
                continue  # a joint table already gives this marginal
            rows = by_attr[attr]
            codes = np.array(
                [
                    [self._code[n][p] for n, p in zip(names, v.split(JOINT), strict=True)]
                    for v, _ in rows
                ],
                dtype=np.int64,
            )
            probs = normalised([s for _, s in rows], f"{self.disease}: shares of {attr}")
            tables.append(_Table(tuple(names), codes, probs))
            covered.update(names)
        return tables

    def _age_table(self, span: int) -> tuple[IntArray, IntArray] | None:
        if self.age_attribute is None:
            return None
        ranges = [age_range(v, span) for v in self.values[self.age_attribute]]
        lo = np.array([r[0] if r else -1 for r in ranges], dtype=np.int64)
        hi = np.array([r[1] if r else -1 for r in ranges], dtype=np.int64)
        return lo, hi

    def sample(self, run_seed: int, indices: IntArray) -> PersonaBatch:
        n = len(indices)
        u = stage_uniforms(run_seed, indices, Stage.PERSONA, self.n_uniforms)
        drawn: dict[str, IntArray] = {}
        for t, table in enumerate(self.tables):
            known = [i for i, a in enumerate(table.attributes) if a in drawn]
            rows = np.empty(n, dtype=np.int64)
            if not known:
                rows[:] = draw(cumulative(table.probs), u[:, t])
            else:
                key = np.stack([drawn[table.attributes[i]] for i in known], axis=1)
                groups, inverse = np.unique(key, axis=0, return_inverse=True)
                for g, combo in enumerate(groups):
                    members = np.flatnonzero(inverse.ravel() == g)
                    match = np.all(table.codes[:, known] == combo, axis=1)
                    probs = np.where(match, table.probs, 0.0)
                    if probs.sum() <= 0:  # no joint row for this combination: the marginal
                        probs = table.probs
                    rows[members] = draw(cumulative(probs / probs.sum()), u[members, t])
            for i, attr in enumerate(table.attributes):
                if attr not in drawn:
                    drawn[attr] = table.codes[rows, i]
        ages = np.full(n, -1, dtype=np.int64)
        if self._ages is not None and self.age_attribute is not None:
            group = drawn[self.age_attribute]
            lo, hi = self._ages[0][group], self._ages[1][group]
            offset = np.floor(u[:, len(self.tables)] * (hi - lo + 1))
            ages = np.where(lo >= 0, lo + offset, -1).astype(np.int64)
        risks = np.zeros((n, len(self.factors)), dtype=bool)
        base = len(self.tables) + 1
        for j, factor in enumerate(self.factors):
            p = self._risk_probability(self._risk_rules[factor], drawn, n)
            risks[:, j] = u[:, base + j] < p
        return PersonaBatch(drawn, ages, risks)

    def _risk_probability(
        self, rules: list[RiskInfo], drawn: dict[str, IntArray], n: int
    ) -> FloatArray:
        p = np.zeros(n)
        specificity = np.full(n, -1)
        for rule in rules:
            if rule.stratum_id is None:
                level, match = 0, np.ones(n, dtype=bool)
            elif rule.attribute is None or rule.value is None:
                continue  # a stratum id the graph does not hold: validation reports it
            else:
                names, pieces = rule.attribute.split(JOINT), rule.value.split(JOINT)
                match = np.ones(n, dtype=bool)
                for name, piece in zip(names, pieces, strict=False):
                    code = self._code.get(name, {}).get(piece)
                    if name not in drawn or code is None:
                        match[:] = False
                        break
                    match &= drawn[name] == code
                level = len(names)
            take = match & (level > specificity)
            p[take] = rule.prevalence
            specificity[take] = level
        return p

    def personas(self, batch: PersonaBatch) -> list[Persona]:
        """The batch as ``Persona`` objects (equal personas share one frozen object)."""
        names = [
            np.array(self.values[a], dtype=object)[batch.values[a]].tolist()
            for a in self.attributes
        ]
        masks = (batch.risks * (1 << np.arange(len(self.factors)))).sum(axis=1).tolist()
        out = []
        for row, age, mask in zip(
            zip(*names, strict=True) if names else [()] * len(masks),
            batch.ages.tolist(),
            masks,
            strict=True,
        ):
            key = (row, age, mask)
            persona = self._cache.get(key)
            if persona is None:
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                persona = Persona(
                    age=age if age >= 0 else None,
                    attributes=dict(zip(self.attributes, row, strict=True)),
                    risk_factors=tuple(
                        self._factor_refs[f] for j, f in enumerate(self.factors) if mask >> j & 1
                    ),
                )
                self._cache[key] = persona
            out.append(persona)
        return out
