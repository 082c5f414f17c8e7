"""``kgsynth audit SPECS.jsonl``: planned records checked against the graph, streaming.

Each record is checked against its disease's profile (read once per disease, then once per
ICD code from memory) by these rules, each finding naming the record:

* ``pronoun``: a keyword's rendered text implies a sex other than the persona's (or still
  holds a slot);
* ``stage``: a keyword's symptom is not drawable in the record's window (its ``PRESENTS``
  stage is beyond the window's stage, or the disease does not have it);
* ``age``: the age at diagnosis lies outside the code's or disease's restriction or the
  persona's age group, or the visit age does not follow the visit month;
* ``strata``: the persona's sex is outside the code's or disease's sex restriction;
* ``attribute``: a symptom requires an age at the visit or a sex the persona lacks;
* ``core``: a record misses every symptom of one of the disease's core-criterion groups.

Records of longitudinal patients (``patient``) are also collected per patient and checked
together at the end (``engine.audit.timeline``: ``persona``, ``timeline``, ``history``,
``persistence``); the findings above name their patient and visit in the message.

Alongside, it counts what it reads and reports alignment against the graph (``alignment``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from math import floor
from pathlib import Path
from typing import Any

from pydantic_core import from_json

from engine.audit.alignment import Tally, restriction
from engine.audit.findings import AuditReport, Finding
from engine.audit.gender import implied_sexes
from engine.audit.timeline import MONTH_TOLERANCE, Need, Timeline
from engine.errors import EngineError
from engine.profile import DiseaseProfile, IcdRef, Target, load_profile
from engine.recipes import get_recipe
from kg.coherence import age_allows, age_range, stage_allows
from kg.store import GraphStore

Record = dict[str, Any]
#: An open age group (``85+``) is checked on its closed side only.
_OPEN_SPAN = 200


@dataclass(frozen=True)
class _Symptom:
    stage: int | None
    min_age: int | None
    max_age: int | None
    sex: str | None


@dataclass(frozen=True)
class _Window:
    stage: int | None
    start: float
    end: float
    observed: frozenset[str]


class DiseaseRules:
    """What the rules need of one disease and code, taken from its profile once."""

    def __init__(self, profile: DiseaseProfile) -> None:
        self.profile = profile
        self.min_age, self.max_age, self.sex = restriction(profile)
        self.symptoms = {
            s.id: _Symptom(s.stage, s.min_age, s.max_age, s.sex) for s in profile.symptoms
        }
        self.windows = {
            w.id: _Window(
                w.stage,
                w.start_months,
                w.end_months,
                frozenset(o.target_id for o in w.observations if o.kind == "Symptom"),
            )
            for w in profile.windows
        }
        self.required = {
            sid: s
            for sid, s in self.symptoms.items()
            if (s.min_age, s.max_age, s.sex) != (None, None, None)
        }
        #: symptom -> its age and sex requirement at the visit (longitudinal timelines)
        self.needs: dict[str, Need] = {
            sid: (s.min_age, s.max_age, s.sex) for sid, s in self.required.items()
        }
        self.core = [(g.name, frozenset(g.symptom_ids)) for g in profile.core]
        self.tally = Tally(profile)

    def check(self, rec: Record, out: list[Finding]) -> None:
        """Append the findings of ``rec`` to ``out`` and count it for the alignment."""
        rid = rec["record_id"]
        persona = rec.get("persona") or {}
        attributes = persona.get("attributes") or {}
        sex = attributes.get("sex")
        age = persona.get("age")
        window = rec.get("window")
        keywords = rec.get("keywords") or ()
        symptoms = rec.get("symptoms") or ()
        self.tally.add(rec)
        if persona:
            self._persona(rid, persona, attributes, window, rec.get("visit_months"), out)
        if window is not None:
            self._stage(rid, window, keywords, out)
        for kw in keywords:
            text = kw["text"]
            implied = implied_sexes(text)
            if "{" in text or "}" in text:
                out.append(
                    Finding(rule="pronoun", subject=rid, message=f"unrendered slot in {text!r}")
                )
            elif implied and (sex is None or implied != {sex}):
                who = f"a {sex} persona" if sex else "a persona without a sex"
                out.append(
                    Finding(
                        rule="pronoun",
                        subject=rid,
                        message=f"keyword {text!r} ({kw['symptom_id']}) implies "
                        f"{' and '.join(sorted(implied))}, for {who}",
                    )
                )
        drawn = [kw["symptom_id"] for kw in keywords] + [s["id"] for s in symptoms]
        for sid in drawn:
            need = self.required.get(sid)
            if need is None:
                continue
            if not age_allows(need.min_age, need.max_age, age) or (
                need.sex is not None and sex != need.sex
            ):
                out.append(
                    Finding(
                        rule="attribute",
                        subject=rid,
                        message=f"{sid} needs {_bounds(need.min_age, need.max_age, need.sex)} "
                        f"at the visit; the persona is {_who(age, sex)}",
                    )
                )
        if self.core:
            self._core(rid, rec, window, keywords, symptoms, out)

    def _persona(
        self,
        rid: str,
        persona: Record,
        attributes: dict[str, str],
        window: Record | None,
        visit_months: float | None,
        out: list[Finding],
    ) -> None:
        age = persona.get("age")
        at_diagnosis = persona.get("age_at_diagnosis", age)
        sex = attributes.get("sex")
        if self.sex is not None and sex != self.sex:
            out.append(
                Finding(
                    rule="strata",
                    subject=rid,
                    message=f"the persona is {sex or 'without a sex'}; {self._code()} is "
                    f"for {self.sex} patients only",
                )
            )
        if at_diagnosis is None:
            return
        if not age_allows(self.min_age, self.max_age, at_diagnosis):
            out.append(
                Finding(
                    rule="age",
                    subject=rid,
                    message=f"age at diagnosis {at_diagnosis} is outside "
                    f"{_bounds(self.min_age, self.max_age, None)} of {self._code()}",
                )
            )
        group = attributes.get("age_group")
        span = _group_span(group) if group else None
        if span is not None and not span[0] <= at_diagnosis <= span[1]:
            out.append(
                Finding(
                    rule="age",
                    subject=rid,
                    message=f"age at diagnosis {at_diagnosis} is outside its age group {group}",
                )
            )
        if age is None:
            return
        if window is None:
            months = 0.0 if visit_months is None else float(visit_months)
        elif visit_months is None:
            out.append(Finding(rule="age", subject=rid, message="no visit_months for its window"))
            return
        else:
            months = float(visit_months)
            lo, hi = window["start_months"], window["end_months"]
            if not lo - MONTH_TOLERANCE <= months <= hi + MONTH_TOLERANCE:
                out.append(
                    Finding(
                        rule="age",
                        subject=rid,
                        message=f"visit month {months:g} is outside its window "
                        f"[{lo:g}, {hi:g}) ({window['id']})",
                    )
                )
        first = floor(at_diagnosis + (months - MONTH_TOLERANCE) / 12)
        last = floor(at_diagnosis + 1 + (months + MONTH_TOLERANCE) / 12)
        if not first <= age <= last:
            out.append(
                Finding(
                    rule="age",
                    subject=rid,
                    message=f"visit age {age} does not follow age at diagnosis {at_diagnosis} "
                    f"and visit month {months:g} (expected {first}-{last})",
                )
            )

    def _stage(
        self, rid: str, window: Record, keywords: Iterable[Record], out: list[Finding]
    ) -> None:
        known = self.windows.get(window["id"])
        if known is None:
            out.append(
                Finding(
                    rule="stage",
                    subject=rid,
                    message=f"window {window['id']} is not a window of {self.profile.disease_id}",
                )
            )
            return
        for kw in keywords:
            sid = kw["symptom_id"]
            symptom = self.symptoms.get(sid)
            if sid in known.observed:
                continue
            if symptom is None:
                out.append(
                    Finding(
                        rule="stage",
                        subject=rid,
                        message=f"keyword {kw['text']!r}: {sid} is not a symptom of "
                        f"{self.profile.disease_id}",
                    )
                )
            elif not stage_allows(symptom.stage, known.stage):
                out.append(
                    Finding(
                        rule="stage",
                        subject=rid,
                        message=f"keyword {kw['text']!r}: {sid} shows from stage "
                        f"{symptom.stage}; window {window['id']} reaches stage {known.stage}",
                    )
                )

    def _core(
        self,
        rid: str,
        rec: Record,
        window: Record | None,
        keywords: Iterable[Record],
        symptoms: Iterable[Record],
        out: list[Finding],
    ) -> None:
        components = _components(rec["recipe"])
        drawn: set[str] = set()
        checked = False
        if "symptoms" in components:
            drawn |= {s["id"] for s in symptoms}
            checked = True
        if "trajectory" in components and window is not None and window["start_months"] >= 0:
            drawn |= {kw["symptom_id"] for kw in keywords}
            checked = True
        if not checked:
            return
        for name, members in self.core:
            if not drawn & members:
                out.append(
                    Finding(
                        rule="core",
                        subject=rid,
                        message=f"no symptom of core criterion {name!r} "
                        f"({', '.join(sorted(members))})",
                    )
                )

    def _code(self) -> str:
        icd = self.profile.icd
        return f"ICD-10-CM {icd.code}" if icd else self.profile.disease


@cache
def _components(recipe: str) -> tuple[str, ...]:
    return get_recipe(recipe).components


@cache
def _group_span(group: str) -> tuple[int, int] | None:
    return age_range(group, _OPEN_SPAN)


def _bounds(lo: int | None, hi: int | None, sex: str | None) -> str:
    parts = []
    if lo is not None or hi is not None:
        parts.append(f"ages {lo if lo is not None else 0}-{hi if hi is not None else 'any'}")
    if sex:
        parts.append(sex)
    return ", ".join(parts) or "nothing"


def _who(age: int | None, sex: str | None) -> str:
    return f"{sex or 'of unknown sex'}, {'age unknown' if age is None else f'aged {age}'}"


def read_records(path: Path) -> Iterator[tuple[int, Record]]:
    """(line number, record) of every non-blank line of a specs JSONL file, streamed."""
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = from_json(line)
            except ValueError as err:
                raise EngineError(f"{path}:{number}: not JSON ({err})") from None
            if not isinstance(rec, dict):
                raise EngineError(f"{path}:{number}: a spec is a JSON object")
            for field in ("record_id", "recipe", "disease_id"):
                if not isinstance(rec.get(field), str):
                    raise EngineError(f"{path}:{number}: {field}: missing (not a kgsynth spec)")
            yield number, rec


class SpecAuditor:
    """Checks records one at a time; profiles are read on first sight of a disease."""

    def __init__(self, store: GraphStore) -> None:
        self.store = store
        self.profiles: dict[str, DiseaseProfile] = {}
        self.rules: dict[tuple[str, str | None], DiseaseRules] = {}
        self.findings: list[Finding] = []
        self.timeline = Timeline()
        self.checked = 0

    def _rules(self, rec: Record) -> DiseaseRules:
        key = (rec["disease_id"], rec.get("icd_code"))
        rules = self.rules.get(key)
        if rules is None:
            disease = self.profiles.get(key[0])
            if disease is None:
                target = Target(disease_id=key[0], disease=rec.get("disease") or key[0])
                disease = self.profiles[key[0]] = load_profile(self.store, target)
            icd = next((c for c in disease.codes if c.code == key[1]), None)
            if key[1] is not None and icd is None:
                icd = IcdRef(code=key[1], title=rec.get("icd_title"))
            rules = self.rules[key] = DiseaseRules(disease.for_code(icd))
        return rules

    def check(self, rec: Record) -> None:
        rules = self._rules(rec)
        before = len(self.findings)
        rules.check(rec, self.findings)
        patient = rec.get("patient")
        if patient is not None:
            self.timeline.add(rec, rules.needs)
            where = f" ({patient['patient_id']} visit {patient['visit_index']})"
            for i in range(before, len(self.findings)):
                f = self.findings[i]
                self.findings[i] = f.model_copy(update={"message": f.message + where})
        self.checked += 1

    def report(self) -> AuditReport:
        figures: dict[str, Any] = {
            _label(r.profile): r.tally.figures()
            for _, r in sorted(self.rules.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
        }
        findings = self.findings
        if self.timeline.patients:
            findings = findings + self.timeline.findings()
            figures["longitudinal patients"] = self.timeline.figures()
        return AuditReport(kind="specs", checked=self.checked, findings=findings, figures=figures)


def _label(profile: DiseaseProfile) -> str:
    code = profile.icd.code if profile.icd else "-"
    return f"{code} {profile.disease}"


def audit_specs(store: GraphStore, records: Iterable[Record]) -> AuditReport:
    auditor = SpecAuditor(store)
    for rec in records:
        auditor.check(rec)
    return auditor.report()


def audit_specs_file(store: GraphStore, path: Path) -> AuditReport:
    """Audit every spec of a JSONL file (streamed: memory grows with findings only)."""
    auditor = SpecAuditor(store)
    for number, rec in read_records(path):
        try:
            auditor.check(rec)
        except EngineError as err:
            raise EngineError(f"{path}:{number}: {err}") from None
        except (KeyError, TypeError, AttributeError) as err:
            raise EngineError(
                f"{path}:{number}: not a kgsynth spec (a field is missing or malformed: {err})"
            ) from None
    return auditor.report()
