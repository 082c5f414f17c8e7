"""Timeline coherence of longitudinal patients (``plan --patients``) in ``kgsynth audit``.

Records carrying ``patient`` are grouped by patient id (in any order; a file may hold only
part of a patient's visits) and checked together once the file is read, each finding naming
the patient and visit (``SUBJECT`` = ``PATIENT visit J``):

* ``persona``: attributes, age at diagnosis or risk factors differ between visits; a visit
  before the diagnosis lists medications, or diagnosed visits list different ones;
* ``timeline``: disease, code, recipe, run seed, patient index or ``visits`` differ between
  visits; a visit index is out of range or repeated; visit months, ages or days go backwards;
  visit 0 is not day 0; days disagree with the months between visits (30.44 days a month);
  the visit ages fit no single exact age at diagnosis (``floor(X + visit_months / 12)`` for
  one ``X`` in ``[age_at_diagnosis, age_at_diagnosis + 1)``);
* ``history``: a visit's history is not exactly visits ``0 .. J-1`` in order, or an entry
  disagrees with that visit's own spec (symptom ids, visit month, age) or, where the spec is
  not in the file, with the same entry in another visit's history;
* ``persistence``: over transitions into windows before the diagnosis, the share of the
  previous visit's drawable symptoms documented again, against the windows' ``persistence``
  (a violation when ``|z| > 4`` over at least 100 opportunities, otherwise a note).

Visit months are written to 0.1 month; every comparison allows that rounding.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from math import isclose, sqrt
from typing import Any

from engine.audit.findings import Finding
from engine.samplers.patients import DAYS_PER_MONTH
from kg.coherence import age_allows, stage_allows

Record = dict[str, Any]
#: a symptom's age and sex requirement at the visit: (min age, max age, sex)
Need = tuple[int | None, int | None, str | None]

#: ``visit_months`` is written to 0.1 month.
MONTH_TOLERANCE = 0.05
#: |z| beyond which observed persistence contradicts the parameter, and the least evidence
Z_LIMIT = 4.0
MIN_OPPORTUNITIES = 100
#: patient-visits named in a persistence finding
NAMED = 3


@dataclass(frozen=True, slots=True)
class _Past:
    visit_index: int
    visit_months: float
    age: int | None
    symptom_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Visit:
    """What the timeline rules need of one patient record."""

    record_id: str
    index: int
    visits: int
    day: int
    #: what every visit of a patient shares: field -> value
    shared: tuple[tuple[str, Any], ...]
    attributes: Mapping[str, str]
    age_at_diagnosis: int | None
    age: int | None
    risk_factors: tuple[str, ...]
    medications: tuple[str, ...]
    diagnosed: bool | None
    stage: int | None
    persistence: float | None
    months: float | None
    #: documented symptom id -> its stage (``keyword.stage``)
    documented: Mapping[str, int | None]
    history: tuple[_Past, ...]
    needs: Mapping[str, Need]

    @property
    def sex(self) -> str | None:
        return self.attributes.get("sex")


def _visit(rec: Record, needs: Mapping[str, Need]) -> _Visit:
    patient = rec["patient"]
    persona = rec.get("persona") or {}
    window = rec.get("window")
    months = rec.get("visit_months")
    documented: dict[str, int | None] = {}
    for kw in rec.get("keywords") or ():
        documented.setdefault(kw["symptom_id"], kw.get("stage"))
    return _Visit(
        record_id=rec["record_id"],
        index=int(patient["visit_index"]),
        visits=int(patient["visits"]),
        day=int(patient["day"]),
        shared=(
            ("disease", rec["disease_id"]),
            ("icd code", rec.get("icd_code")),
            ("recipe", rec["recipe"]),
            ("run seed", rec.get("run_seed")),
            ("patient index", patient.get("patient_index")),
            ("visits", patient["visits"]),
        ),
        attributes=dict(persona.get("attributes") or {}),
        age_at_diagnosis=persona.get("age_at_diagnosis"),
        age=persona.get("age"),
        risk_factors=tuple(sorted(r["id"] for r in persona.get("risk_factors") or ())),
        medications=tuple(sorted(m["id"] for m in persona.get("medications") or ())),
        diagnosed=None if window is None else bool(window["diagnosed"]),
        stage=None if window is None else window.get("stage"),
        persistence=None if window is None else window.get("persistence"),
        months=None if months is None else float(months),
        documented=documented,
        history=tuple(
            _Past(
                int(h["visit_index"]),
                float(h["visit_months"]),
                h.get("age"),
                frozenset(h.get("symptom_ids") or ()),
            )
            for h in rec.get("history") or ()
        ),
        needs=needs,
    )


@dataclass
class _Persistence:
    """Transitions into undiagnosed windows of one persistence value."""

    kept: int = 0
    opportunities: int = 0
    transitions: int = 0
    patients: set[str] = field(default_factory=set)
    #: (patient, visit) -> (kept, opportunities)
    by_visit: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)


class Timeline:
    """Collects patient records as they stream past, then checks each patient whole."""

    def __init__(self) -> None:
        self.patients: dict[str, list[_Visit]] = defaultdict(list)

    def add(self, rec: Record, needs: Mapping[str, Need]) -> None:
        """Keep patient visit ``rec`` (``needs``: its disease's symptom requirements, for what
        is drawable at a visit)."""
        self.patients[str(rec["patient"]["patient_id"])].append(_visit(rec, needs))

    def findings(self) -> list[Finding]:
        """Every patient's findings (by patient, then visit), then the persistence ones."""
        out: list[Finding] = []
        rates: dict[float, _Persistence] = defaultdict(_Persistence)
        for pid in sorted(self.patients):
            visits = _distinct(pid, self.patients[pid], out)
            _shared(pid, visits, out)
            _persona(pid, visits, out)
            _times(pid, visits, out)
            _history(pid, visits, out)
            _count_persistence(pid, visits, rates)
        for rho in sorted(rates):
            out.append(_judge(rho, rates[rho]))
        return out

    def figures(self) -> dict[str, int]:
        return {
            "patients": len(self.patients),
            "visits": sum(len(v) for v in self.patients.values()),
        }


def _subject(pid: str, visit: _Visit | int) -> str:
    return f"{pid} visit {visit if isinstance(visit, int) else visit.index}"


def _add(out: list[Finding], rule: str, pid: str, visit: _Visit, message: str) -> None:
    out.append(
        Finding(rule=rule, subject=_subject(pid, visit), message=f"{message} [{visit.record_id}]")
    )


def _distinct(pid: str, visits: list[_Visit], out: list[Finding]) -> list[_Visit]:
    """The visits in index order, one per index (repeats and impossible indices reported)."""
    seen: dict[int, _Visit] = {}
    for v in sorted(visits, key=lambda v: (v.index, v.record_id)):
        if not 0 <= v.index < v.visits:
            _add(out, "timeline", pid, v, f"visit index {v.index} outside 0-{v.visits - 1}")
        if v.index in seen:
            _add(out, "timeline", pid, v, f"visit {v.index} again ({seen[v.index].record_id})")
            continue
        seen[v.index] = v
    return list(seen.values())


def _shared(pid: str, visits: list[_Visit], out: list[Finding]) -> None:
    first = visits[0]
    for v in visits[1:]:
        diff = [
            f"{name} {value!r} (visit {first.index}: {ref!r})"
            for (name, value), (_, ref) in zip(v.shared, first.shared, strict=True)
            if value != ref
        ]
        if diff:
            _add(out, "timeline", pid, v, "not the same patient: " + "; ".join(diff))


def _persona(pid: str, visits: list[_Visit], out: list[Finding]) -> None:
    first = visits[0]
    for v in visits[1:]:
        diff = [
            f"{k} {v.attributes.get(k)!r} (visit {first.index}: {first.attributes.get(k)!r})"
            for k in sorted(set(v.attributes) | set(first.attributes))
            if v.attributes.get(k) != first.attributes.get(k)
        ]
        if v.age_at_diagnosis != first.age_at_diagnosis:
            diff.append(
                f"age at diagnosis {v.age_at_diagnosis} (visit {first.index}: "
                f"{first.age_at_diagnosis})"
            )
        if v.risk_factors != first.risk_factors:
            diff.append(
                f"risk factors {list(v.risk_factors)} (visit {first.index}: "
                f"{list(first.risk_factors)})"
            )
        if diff:
            _add(out, "persona", pid, v, "persona changes: " + "; ".join(diff))
    treated: _Visit | None = None
    for v in visits:
        if v.diagnosed is False and v.medications:
            _add(out, "persona", pid, v, f"medications {list(v.medications)} before the diagnosis")
        elif v.diagnosed:
            if treated is None:
                treated = v
            elif v.medications != treated.medications:
                _add(
                    out,
                    "persona",
                    pid,
                    v,
                    f"medications {list(v.medications)} (visit {treated.index}: "
                    f"{list(treated.medications)})",
                )


def _times(pid: str, visits: list[_Visit], out: list[Finding]) -> None:
    """Months, ages and days in visit order, days against the months since the first visit
    in the file, and one exact age at diagnosis for all ages."""
    first = visits[0]
    if first.index == 0 and first.day != 0:
        _add(out, "timeline", pid, first, f"the first visit is on day {first.day}, not 0")
    backwards = False
    for a, b in pairwise(visits):
        if a.months is not None and b.months is not None and b.months < a.months:
            _add(
                out, "timeline", pid, b, f"month {b.months:g} before visit {a.index}'s {a.months:g}"
            )
        if a.age is not None and b.age is not None and b.age < a.age:
            backwards = True
            _add(out, "timeline", pid, b, f"age {b.age} below visit {a.index}'s {a.age}")
        if b.day < a.day:
            _add(out, "timeline", pid, b, f"day {b.day} before visit {a.index}'s day {a.day}")
    slack = 1 + 2 * MONTH_TOLERANCE * DAYS_PER_MONTH
    for v in visits[1:]:
        if first.months is None or v.months is None:
            continue
        expected = (v.months - first.months) * DAYS_PER_MONTH
        if abs(v.day - first.day - expected) > slack:
            _add(
                out,
                "timeline",
                pid,
                v,
                f"day {v.day}: {v.day - first.day} days after visit {first.index} (day "
                f"{first.day}), but {v.months - first.months:.1f} months (~{expected:.0f} days)",
            )
    if not backwards:
        _one_age_at_diagnosis(pid, visits, out)


def _one_age_at_diagnosis(pid: str, visits: list[_Visit], out: list[Finding]) -> None:
    """The visit ages must all be ``floor(X + months / 12)`` for one exact ``X``."""
    lo, hi = float("-inf"), float("inf")
    for v in visits:
        if v.age is None or v.months is None:
            continue
        if v.age_at_diagnosis is not None:
            lo, hi = max(lo, v.age_at_diagnosis), min(hi, v.age_at_diagnosis + 1)
        lo = max(lo, v.age - (v.months + MONTH_TOLERANCE) / 12)
        hi = min(hi, v.age + 1 - (v.months - MONTH_TOLERANCE) / 12)
        if lo >= hi + 1e-9:
            _add(
                out,
                "timeline",
                pid,
                v,
                f"age {v.age} at month {v.months:g} fits no single age at diagnosis with the "
                f"earlier visits (age at diagnosis {v.age_at_diagnosis})",
            )
            return


def _history(pid: str, visits: list[_Visit], out: list[Finding]) -> None:
    own = {v.index: v for v in visits}
    #: earlier visit -> (its documented record, where that came from), when not in the file
    told: dict[int, tuple[_Past, str]] = {}
    for v in visits:
        indices = [h.visit_index for h in v.history]
        if indices != list(range(v.index)):
            expected = f"0-{v.index - 1}" if v.index > 1 else ("0" if v.index else "none")
            _add(out, "history", pid, v, f"history holds visits {indices}; expected {expected}")
        for h in v.history:
            spec = own.get(h.visit_index)
            if spec is not None and h.visit_index < v.index:
                ref = _Past(spec.index, spec.months or 0.0, spec.age, frozenset(spec.documented))
                where = f"visit {spec.index}'s spec"
            elif h.visit_index in told:
                ref, where = told[h.visit_index]
            else:
                told[h.visit_index] = (h, f"visit {v.index}'s history")
                continue
            diff = _past_diff(h, ref)
            if diff:
                _add(
                    out,
                    "history",
                    pid,
                    v,
                    f"history of visit {h.visit_index} disagrees with {where}: {diff}",
                )


def _past_diff(h: _Past, ref: _Past) -> str:
    parts = []
    if h.symptom_ids != ref.symptom_ids:
        missing, extra = (
            sorted(ref.symptom_ids - h.symptom_ids),
            sorted(h.symptom_ids - ref.symptom_ids),
        )
        parts.append(
            "symptoms"
            + (f" missing {missing}" if missing else "")
            + (f" extra {extra}" if extra else "")
        )
    if not isclose(h.visit_months, ref.visit_months, abs_tol=2 * MONTH_TOLERANCE):
        parts.append(f"visit month {h.visit_months:g} vs {ref.visit_months:g}")
    if h.age != ref.age:
        parts.append(f"age {h.age} vs {ref.age}")
    return "; ".join(parts)


def _drawable(v: _Visit, symptom: str, stage: int | None) -> bool:
    """Whether ``symptom`` (first seen at ``stage``) may be documented at visit ``v``."""
    if not stage_allows(stage, v.stage):
        return False
    need = v.needs.get(symptom)
    if need is None:
        return True
    lo, hi, sex = need
    return age_allows(lo, hi, v.age) and (sex is None or v.sex == sex)


def _count_persistence(pid: str, visits: list[_Visit], rates: dict[float, _Persistence]) -> None:
    for a, b in pairwise(visits):
        if b.index != a.index + 1 or b.diagnosed is not False or b.persistence is None:
            continue
        pool = [s for s, stage in a.documented.items() if _drawable(b, s, stage)]
        kept = sum(s in b.documented for s in pool)
        tally = rates[b.persistence]
        tally.kept += kept
        tally.opportunities += len(pool)
        tally.transitions += 1
        tally.patients.add(pid)
        if pool:
            tally.by_visit[(pid, b.index)] = (kept, len(pool))


def _judge(rho: float, t: _Persistence) -> Finding:
    n, k = t.opportunities, t.kept
    rate = k / n if n else 0.0
    var = n * rho * (1 - rho)
    if var > 0:
        z = (k - n * rho) / sqrt(var)
    else:
        z = 0.0 if k == n * rho else float("inf") if k > n * rho else float("-inf")
    counts = (
        f"{k} of {n} previous-visit symptoms documented again ({rate:.3f}) against persistence "
        f"{rho:g} over {t.transitions} transitions into windows before the diagnosis of "
        f"{len(t.patients)} patients (z {z:+.1f})"
    )
    subject = f"persistence {rho:g}"
    if n < MIN_OPPORTUNITIES:
        return Finding(
            rule="persistence",
            subject=subject,
            message=f"{counts}; fewer than {MIN_OPPORTUNITIES} opportunities to judge",
            severity="note",
        )
    if abs(z) <= Z_LIMIT:
        return Finding(rule="persistence", subject=subject, message=counts, severity="note")
    sign = 1 if z > 0 else -1
    worst = sorted(t.by_visit.items(), key=lambda kv: (-sign * (kv[1][0] - rho * kv[1][1]), kv[0]))[
        :NAMED
    ]
    named = ", ".join(f"{_subject(pid, j)} ({kept} of {m})" for (pid, j), (kept, m) in worst)
    return Finding(
        rule="persistence",
        subject=subject,
        message=f"{counts}: |z| > {Z_LIMIT:g}; furthest off: {named}",
    )
