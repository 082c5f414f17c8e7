"""Persona alignment (DualAlign): demographics from the graph's shares, risk factors by prevalence.

The persona is drawn AT DIAGNOSIS. Strata tables are sampled in a chain: joint tables first
(most attributes first), each conditioned on the attributes already drawn; then
single-attribute tables for attributes no joint table covered. Attributes that share no joint
table are drawn **independently** (the graph gives no joint information to do otherwise).

Restrictions (the disease's and its code's ``min_age``/``max_age``/``sex``) condition the
draw: an age-group row keeps ``share x (years of the group inside the bounds / years of the
group)``, a row of another sex keeps 0, and the table is renormalised (no rejection). The
exact age at diagnosis ``X`` is uniform (continuous) over the allowed years of the drawn
group; ``age_at_diagnosis = floor(X)`` and the visit age is ``floor(X + m / 12)`` for a visit
``m`` months from the diagnosis (``m = 0`` without a window).

Risk factors: a Bernoulli draw with the rate of the most specific RISK stratum matching the
persona; persona cells no cited stratum covers take the rate solved so that the population
marginal equals the overall RISK figure (``kg.coherence.solved_rest_rate``); a factor with
no overall figure is absent outside its cited strata.

Medications: the disease's drugs with a ``share`` (TREATED_WITH), drawn from uniforms that
follow the persona's in its stream (so the persona draws do not change). Drugs of one
``drug_class`` are alternatives: one categorical draw per class, drug ``d`` with probability
``share_d`` and none with ``1 - sum share``; classes are drawn independently. The draw is
made for every record but kept only where the record's visit is at or after the diagnosis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import EngineError
from engine.profile import DiseaseProfile, RiskInfo
from engine.samplers.rng import Stage, stage_uniforms
from engine.samplers.tables import FloatArray, IntArray, cumulative, draw, normalised
from engine.spec import DrugRef, Persona, RiskFactorRef, assemble
from kg.coherence import JOINT, age_range, intersect_bounds, persona_cells, solved_rest_rate

__all__ = ["JOINT", "PersonaBatch", "PersonaSampler", "age_range"]

AGE_ATTRIBUTES = ("age_group", "age")
#: Sex codes of ``PersonaBatch.sex`` (the slot voices of ``engine.samplers.surface``).
FEMALE, MALE, UNKNOWN_SEX = 0, 1, 2
_SEX_CODES = {"female": FEMALE, "male": MALE}
_CACHE_LIMIT = 200_000


@dataclass(frozen=True)
class _Table:
    attributes: tuple[str, ...]
    codes: IntArray  # (rows, len(attributes)) value codes
    probs: FloatArray  # (rows,)


@dataclass(frozen=True)
class PersonaBatch:
    """Sampled personas of a batch: value codes per attribute, exact ages at diagnosis,
    sex codes and risk-factor flags."""

    values: dict[str, IntArray]
    exact_ages: FloatArray  # NaN where no age could be derived
    sex: IntArray  # FEMALE, MALE or UNKNOWN_SEX
    risks: np.ndarray  # (n, factors) bool
    #: (n, drug classes): 0 none, else 1 + the drug's place in its class (None: not drawn)
    medications: IntArray | None = None

    @property
    def ages(self) -> IntArray:
        """Whole years at diagnosis (-1 where unknown)."""
        return whole_years(self.exact_ages)

    def take(self, rows: IntArray) -> PersonaBatch:
        """The personas of ``rows`` (repeats allowed), as a batch."""
        return PersonaBatch(
            {a: v[rows] for a, v in self.values.items()},
            self.exact_ages[rows],
            self.sex[rows],
            self.risks[rows],
            None if self.medications is None else self.medications[rows],
        )

    def visit_ages(self, visit_months: FloatArray | None) -> IntArray:
        """Whole years at the visit ``visit_months`` from the diagnosis (-1 where unknown)."""
        if visit_months is None:
            return self.ages
        return whole_years(self.exact_ages + visit_months / 12.0)


def whole_years(exact: FloatArray) -> IntArray:
    return np.where(np.isnan(exact), -1, np.floor(np.nan_to_num(exact))).astype(np.int64)


class PersonaSampler:
    """A profile's strata and risk factors compiled into cumulative tables."""

    def __init__(self, profile: DiseaseProfile, open_age_span: int = 10) -> None:
        self.disease = profile.disease
        self.min_age, self.max_age, self.sex_only = intersect_bounds(profile, profile.code_bounds())
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
        self.age_attribute = next((a for a in AGE_ATTRIBUTES if a in self.values), None)
        self._ages = self._age_table(open_age_span)
        self.tables = self._chain(by_attr, parts)
        self.factors = sorted({r.id for r in profile.risks})
        self._factor_refs = {
            r.id: RiskFactorRef(id=r.id, name=r.name, kind=r.kind) for r in profile.risks
        }
        cells = persona_cells((s.attribute, s.value, s.share) for s in profile.strata)
        self._risk_rules = {
            f: self._solved_rules([r for r in profile.risks if r.id == f], cells)
            for f in self.factors
        }
        self.n_uniforms = len(self.tables) + 1 + len(self.factors)
        self.drug_classes = _drug_classes(profile)
        #: one medications tuple per drawn combination (kept beside its key, as factors)
        self._medications: dict[bytes, tuple[DrugRef, ...]] = {}
        #: one attributes dict per drawn row and one factor tuple per set of risk flags
        self._rows: dict[tuple[str, ...], dict[str, str]] = {}
        self._factors: dict[bytes, tuple[RiskFactorRef, ...]] = {}

    def _solved_rules(
        self, rules: list[RiskInfo], cells: list[tuple[dict[str, str], float]]
    ) -> list[RiskInfo]:
        """``rules`` with the overall rate replaced by the rate of the uncited cells."""
        overall = [r for r in rules if r.stratum_id is None]
        cited = [
            (r.attribute, r.value, r.prevalence)
            for r in rules
            if r.stratum_id is not None and r.attribute is not None and r.value is not None
        ]
        if not overall or not cited:
            return rules
        rate, _ = solved_rest_rate(cells, overall[0].prevalence, cited)
        if rate is None:
            return [r for r in rules if r.stratum_id is not None]
        if not -1e-9 <= rate <= 1 + 1e-9:
            raise EngineError(
                f"{self.disease}: risk factor {overall[0].name}: the overall prevalence "
                f"{overall[0].prevalence:g} cannot hold with its stratum rates (the other "
                f"strata would need {rate:.4g})"
            )
        solved = overall[0].model_copy(update={"prevalence": min(max(rate, 0.0), 1.0)})
        return [solved, *(r for r in rules if r.stratum_id is not None)]

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
            kept = np.array([s for _, s in rows]) * self._allowed(names, codes)
            if kept.sum() <= 0:
                raise EngineError(
                    f"{self.disease}: no {attr} stratum is left by the restriction "
                    f"{self._restriction()}; add a stratum that meets it"
                )
            probs = normalised(kept, f"{self.disease}: shares of {attr}")
            tables.append(_Table(tuple(names), codes, probs))
            covered.update(names)
        return tables

    def _restriction(self) -> str:
        parts = []
        if self.min_age is not None or self.max_age is not None:
            lo = self.min_age if self.min_age is not None else 0
            parts.append(f"age {lo}-{self.max_age if self.max_age is not None else 'any'}")
        if self.sex_only is not None:
            parts.append(f"sex {self.sex_only}")
        return ", ".join(parts)

    def _allowed(self, names: list[str], codes: IntArray) -> FloatArray:
        """The share of each row's persona that the restriction keeps (0..1)."""
        keep = np.ones(len(codes))
        for i, name in enumerate(names):
            if name == self.age_attribute and self._ages is not None:
                full = self._ages[2][codes[:, i]]
                lo, hi = self._ages[0][codes[:, i]], self._ages[1][codes[:, i]]
                inside = np.where(lo >= 0, np.maximum(hi - lo + 1, 0), full)
                keep *= np.where(full > 0, inside / np.maximum(full, 1), 1.0)
            elif name == "sex" and self.sex_only is not None:
                values = np.array(self.values["sex"], dtype=object)[codes[:, i]]
                keep *= values == self.sex_only
        return keep

    def _age_table(self, span: int) -> tuple[IntArray, IntArray, IntArray] | None:
        """Per age group: the lowest and highest allowed age and the group's full years."""
        if self.age_attribute is None:
            return None
        ranges = [age_range(v, span) for v in self.values[self.age_attribute]]
        lo = np.array([r[0] if r else -1 for r in ranges], dtype=np.int64)
        hi = np.array([r[1] if r else -1 for r in ranges], dtype=np.int64)
        full = np.where(lo >= 0, hi - lo + 1, 0)
        if self.min_age is not None:
            lo = np.where(lo >= 0, np.maximum(lo, self.min_age), lo)
        if self.max_age is not None:
            hi = np.where(hi >= 0, np.minimum(hi, self.max_age), hi)
        return lo, hi, full

    def sample(self, run_seed: int, indices: IntArray) -> PersonaBatch:
        n = len(indices)
        classes = self.drug_classes
        u = stage_uniforms(run_seed, indices, Stage.PERSONA, self.n_uniforms + len(classes))
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
        ages = np.full(n, np.nan)
        if self._ages is not None and self.age_attribute is not None:
            group = drawn[self.age_attribute]
            lo, hi = self._ages[0][group], self._ages[1][group]
            exact = lo + u[:, len(self.tables)] * (hi - lo + 1)
            ages = np.where(lo >= 0, exact, np.nan)
        sex = np.full(n, UNKNOWN_SEX, dtype=np.int64)
        if "sex" in drawn:
            codes = np.array([_SEX_CODES.get(v, UNKNOWN_SEX) for v in self.values["sex"]])
            sex = codes[drawn["sex"]].astype(np.int64)
        risks = np.zeros((n, len(self.factors)), dtype=bool)
        base = len(self.tables) + 1
        for j, factor in enumerate(self.factors):
            p = self._risk_probability(self._risk_rules[factor], drawn, n)
            risks[:, j] = u[:, base + j] < p
        meds = np.zeros((n, len(classes)), dtype=np.int64)
        for j, (_, cum) in enumerate(classes):
            meds[:, j] = draw(cum, u[:, self.n_uniforms + j])
        return PersonaBatch(drawn, ages, sex, risks, meds)

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

    def personas(
        self,
        batch: PersonaBatch,
        visit_ages: IntArray | None = None,
        diagnosed: np.ndarray | None = None,
    ) -> list[Persona]:
        """The batch as ``Persona`` objects.

        ``visit_ages`` are the ages at the visit (default: the ages at diagnosis);
        ``diagnosed`` marks the records whose visit is at or after the diagnosis, the only
        ones that carry their drawn medications (default: none). Personas
        with the same drawn row share one attributes dict, and those with the same risk flags
        one factor tuple (keyed by the flags as packed bytes, so any number of factors is
        exact): renderers cache their lines by those objects' identity.
        """
        names = [
            np.array(self.values[a], dtype=object)[batch.values[a]].tolist()
            for a in self.attributes
        ]
        n = len(batch.exact_ages)
        packed = np.ascontiguousarray(np.packbits(batch.risks, axis=1))
        flags = (
            packed.view(np.dtype((np.void, packed.shape[1]))).ravel().tolist()
            if packed.shape[1]
            else [b""] * n
        )
        dx = batch.ages
        visit = dx if visit_ages is None else visit_ages
        refs = [self._factor_refs[f] for f in self.factors]
        rows, factors = self._rows, self._factors
        medications = self._medication_tuples(batch, diagnosed)
        out = []
        for i, (row, age, age_dx, flag) in enumerate(
            zip(
                zip(*names, strict=True) if names else [()] * n,
                visit.tolist(),
                dx.tolist(),
                flags,
                strict=True,
            )
        ):
            attributes = rows.get(row)
            if attributes is None:
                attributes = rows[row] = dict(zip(self.attributes, row, strict=True))
            key = bytes(flag)
            risk = factors.get(key)
            if risk is None:
                if len(factors) >= _CACHE_LIMIT:
                    factors.clear()
                on = batch.risks[i].tolist()
                risk = factors[key] = tuple(
                    r for r, flagged in zip(refs, on, strict=True) if flagged
                )
            out.append(
                assemble(
                    Persona,
                    {
                        "age": age if age >= 0 else None,
                        "age_at_diagnosis": age_dx if age_dx >= 0 else None,
                        "attributes": attributes,
                        "risk_factors": risk,
                        "medications": medications[i],
                    },
                )
            )
        return out

    def _medication_tuples(
        self, batch: PersonaBatch, diagnosed: np.ndarray | None
    ) -> list[tuple[DrugRef, ...]]:
        """Each record's medications: its drawn drugs where ``diagnosed``, else none."""
        n = len(batch.exact_ages)
        if (
            not self.drug_classes
            or batch.medications is None
            or diagnosed is None
            or not diagnosed.any()
        ):
            return [()] * n
        choice = np.where(diagnosed[:, None], batch.medications, 0)
        keys = np.ascontiguousarray(choice.astype(np.uint8))
        cache = self._medications
        out = []
        for raw in keys.view(np.dtype((np.void, keys.shape[1]))).ravel().tolist():
            key = bytes(raw)
            meds = cache.get(key)
            if meds is None:
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                picks = np.frombuffer(key, dtype=np.uint8)
                meds = cache[key] = tuple(
                    drugs[k - 1]
                    for (drugs, _), k in zip(self.drug_classes, picks.tolist(), strict=True)
                    if k
                )
            out.append(meds)
        return out


def _drug_classes(profile: DiseaseProfile) -> list[tuple[tuple[DrugRef, ...], FloatArray]]:
    """The drugs with a share, by class (a drug without a class is its own class): the
    class's drugs and the cumulative table of (none, drug 1, drug 2, ...)."""
    groups: dict[str, list[tuple[DrugRef, float]]] = {}
    for d in profile.drugs:
        if d.share:
            ref = DrugRef(id=d.id, name=d.name, drug_class=d.drug_class)
            groups.setdefault(d.drug_class or d.id, []).append((ref, d.share))
    out = []
    for name, drugs in sorted(groups.items()):
        total = sum(s for _, s in drugs)
        if total > 1 + 1e-9:
            raise EngineError(
                f"{profile.disease}: the shares of the {name} drugs sum to {total:.4g} > 1; "
                "drugs of one class are alternatives (docs/recipes.md#medications)"
            )
        probs = np.array([max(1.0 - total, 0.0), *(s for _, s in drugs)])
        out.append((tuple(r for r, _ in drugs), cumulative(probs / probs.sum())))
    if any(len(drugs) > 254 for drugs, _ in out):
        raise EngineError(f"{profile.disease}: a drug class with more than 254 drugs")
    return out
