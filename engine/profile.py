"""``DiseaseProfile``: everything a recipe needs about one disease and ICD code, read once.

A profile is read with a fixed handful of named queries per disease (never one per record)
and carries ``content_hash``, the sha256 of the canonical JSON of everything it holds, so a
change to the graph content a run used changes every record's provenance.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

from engine.errors import EngineError
from engine.provenance import sha256_hex
from kg.coherence import presents_frequency
from kg.hpo_onset import onset_min_age
from kg.icd import normalise_code
from kg.model import icd_code_error
from kg.queries import get_query
from kg.resolution import Candidate, CodeResolution, How, pick, resolution_of
from kg.store import GraphStore

Row = dict[str, Any]


def _canonical_float(value: float) -> float:
    """12 significant digits: FalkorDB returns doubles rounded to 15, Neo4j exactly, so the
    content hash would otherwise depend on the backend (0.1 + 0.05 reads back differently)."""
    return float(f"{value:.12g}")


Num = Annotated[float, AfterValidator(_canonical_float)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Bounds(_Frozen):
    """Inclusive ages and a sex a persona must meet (all optional)."""

    min_age: int | None = None
    max_age: int | None = None
    sex: str | None = None


class IcdRef(Bounds):
    """A code; its bounds restrict the persona at diagnosis (CODED_AS ``min_age`` ...)."""

    code: str
    title: str | None = None
    primary: bool = False


class CategoryRef(_Frozen):
    id: str
    name: str
    scheme: str


class SymptomInfo(Bounds):
    """A symptom of the disease: PRESENTS frequency and stage (``presented``), the persona
    it can be written for (visit age, sex) and its categories."""

    id: str
    name: str
    synonyms: tuple[str, ...] = ()
    presented: bool = False
    weight: Num | None = None
    frequency_class: str | None = None
    stage: int | None = None
    categories: tuple[CategoryRef, ...] = ()

    @property
    def frequency(self) -> float | None:
        """The PRESENTS frequency (weight, else its class's value); None when unweighted."""
        return presents_frequency(self.weight, self.frequency_class)

    @property
    def surface_forms(self) -> tuple[str, ...]:
        """The name then the synonyms, without case-insensitive repeats."""
        seen: set[str] = set()
        out = []
        for form in (self.name, *self.synonyms):
            key = form.strip().lower()
            if key and key not in seen:
                seen.add(key)
                out.append(form.strip())
        return tuple(out)

    def category_in(self, scheme: str) -> CategoryRef | None:
        """The symptom's category in ``scheme`` (the first by id when there are several)."""
        return next((c for c in self.categories if c.scheme == scheme), None)


class Observation(_Frozen):
    target_id: str
    kind: Literal["SymptomCategory", "Symptom"]
    name: str
    scheme: str | None = None
    frequency: Num


class WindowInfo(_Frozen):
    id: str
    name: str
    order: int
    start_months: Num
    end_months: Num
    weight: Num | None = None
    keyword_density: Num | None = None
    stage: int | None = None
    visits: int | None = None
    persistence: Num | None = None
    observations: tuple[Observation, ...] = ()


class StratumShare(_Frozen):
    id: str
    attribute: str
    value: str
    share: Num


class RiskInfo(_Frozen):
    id: str
    name: str
    kind: str
    prevalence: Num
    stratum_id: str | None = None
    attribute: str | None = None
    value: str | None = None


class GuidelineInfo(_Frozen):
    id: str
    title: str
    text: str
    kind: str
    order: int = 0
    category_id: str | None = None
    min_words: int | None = None
    max_words: int | None = None
    sections: tuple[str, ...] = ()
    voice: str | None = None
    note_type: str | None = None


class ExampleInfo(_Frozen):
    id: str
    origin: str
    text: str


class DrugInfo(_Frozen):
    id: str
    name: str
    drug_class: str | None = None
    line: str = "first"
    #: share of people diagnosed with the disease currently taking it (None: not drawn)
    share: Num | None = None


class CoreGroup(_Frozen):
    """A core criterion: every record holds at least one of ``symptom_ids``."""

    name: str
    symptom_ids: tuple[str, ...]


class DiseaseProfile(Bounds):
    """One disease (and the ICD code it is used for) as the engine sees it; its bounds
    restrict the persona at diagnosis."""

    disease_id: str
    disease: str
    synonyms: tuple[str, ...] = ()
    description: str | None = None
    prevalence: Num | None = None
    stage_scale: str | None = None
    core: tuple[CoreGroup, ...] = ()
    icd: IcdRef | None = None
    codes: tuple[IcdRef, ...] = ()
    symptoms: tuple[SymptomInfo, ...] = ()
    windows: tuple[WindowInfo, ...] = ()
    strata: tuple[StratumShare, ...] = ()
    risks: tuple[RiskInfo, ...] = ()
    guidelines: tuple[GuidelineInfo, ...] = ()
    examples: tuple[ExampleInfo, ...] = ()
    drugs: tuple[DrugInfo, ...] = ()
    content_hash: str = ""

    def for_code(self, icd: IcdRef | None) -> DiseaseProfile:
        """This profile used for ``icd``, re-hashed (the code is part of its content)."""
        profile = self.model_copy(update={"icd": icd})
        return profile.model_copy(update={"content_hash": profile.computed_hash()})

    def code_bounds(self) -> Bounds | None:
        """The bounds of the profile's code: those of the longest coded prefix of it."""
        if self.icd is None:
            return None
        held = [c for c in self.codes if self.icd.code.startswith(c.code)]
        return max(held, key=lambda c: len(c.code)) if held else None

    def computed_hash(self) -> str:
        """sha256 of the canonical JSON of every field but ``content_hash``."""
        return sha256_hex(self.model_dump(mode="json", exclude={"content_hash"}))

    def schemes(self) -> list[str]:
        """Category schemes with window observations, the most observed first."""
        counts: dict[str, int] = {}
        for window in self.windows:
            for obs in window.observations:
                if obs.kind == "SymptomCategory" and obs.scheme:
                    counts[obs.scheme] = counts.get(obs.scheme, 0) + 1
        return sorted(counts, key=lambda s: (-counts[s], s))

    def report_sections(self) -> tuple[GuidelineInfo, ...]:
        return tuple(g for g in self.guidelines if g.kind == "report_section")

    def style_guidelines(self, note_type: str | None) -> tuple[GuidelineInfo, ...]:
        """The disease's own ``style`` guidelines for ``note_type`` (or for any note), by
        ``order`` then id."""
        return tuple(
            g
            for g in self.guidelines
            if g.kind == "style" and g.category_id is None and g.note_type in (None, note_type)
        )


class Target(_Frozen):
    """A resolved request: the disease and the ICD code records are generated for, how the
    code reached the disease (None for a disease request) and the diseases passed over."""

    disease_id: str
    disease: str
    icd: IcdRef | None = None
    resolution: CodeResolution | None = None
    alternatives: tuple[str, ...] = ()


def _run(store: GraphStore, name: str, **params: Any) -> list[Row]:
    return store.read(get_query(name).text, params)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def load_profile(store: GraphStore, target: Target) -> DiseaseProfile:
    """Read ``target``'s profile: nine named-query reads (ten with shared report sections)."""
    disease = target.disease_id
    head = _run(store, "profile_disease", disease=disease)
    if not head:
        raise EngineError(f"disease {disease!r} is not in the graph")
    d = head[0]
    symptoms: dict[str, SymptomInfo] = {}
    for r in _run(store, "profile_symptoms", disease=disease):
        known = symptoms.get(r["symptom_id"])
        if known is not None and known.presented:
            continue
        symptoms[r["symptom_id"]] = SymptomInfo(
            id=r["symptom_id"],
            name=r["symptom"],
            synonyms=tuple(r["synonyms"] or ()),
            presented=bool(r["presented"]),
            weight=_float(r["weight"]),
            frequency_class=r["frequency_class"],
            stage=_int(r["stage"]),
            min_age=onset_min_age(_int(r["min_age"]), r["onset"]),
            max_age=_int(r["max_age"]),
            sex=r["sex"],
            categories=tuple(
                sorted((CategoryRef(**c) for c in r["categories"]), key=lambda c: c.id)
            ),
        )
    core: dict[str, list[str]] = {}
    for r in _run(store, "profile_core_criteria", disease=disease):
        core.setdefault(r["criterion"], []).append(r["symptom_id"])
    windows = [
        WindowInfo(
            id=r["window_id"],
            name=r["window"],
            order=int(r["order"]),
            start_months=float(r["start_months"]),
            end_months=float(r["end_months"]),
            weight=_float(r["weight"]),
            keyword_density=_float(r["keyword_density"]),
            stage=_int(r["stage"]),
            visits=_int(r["visits"]),
            persistence=_float(r["persistence"]),
            observations=tuple(
                sorted(
                    (
                        Observation(
                            target_id=o["target_id"],
                            kind=o["kind"],
                            name=o["name"],
                            scheme=o["scheme"],
                            frequency=float(o["frequency"]),
                        )
                        for o in r["observations"]
                    ),
                    key=lambda o: o.target_id,
                )
            ),
        )
        for r in _run(store, "profile_windows", disease=disease)
    ]
    strata = [
        StratumShare(
            id=r["stratum_id"], attribute=r["attribute"], value=r["value"], share=float(r["share"])
        )
        for r in _run(store, "demographic_strata", disease=disease)
    ]
    risks = [
        RiskInfo(
            id=r["risk_factor_id"],
            name=r["risk_factor"],
            kind=r["kind"] or "risk_factor",
            prevalence=float(r["prevalence"]),
            stratum_id=r["stratum_id"],
            attribute=r["attribute"],
            value=r["value"],
        )
        for r in _run(store, "profile_risks", disease=disease)
    ]
    guidelines = {
        (r["guideline_id"], r["category_id"]): _guideline(r)
        for r in _run(store, "profile_guidelines", disease=disease)
    }
    if not any(g.kind == "report_section" for g in guidelines.values()):
        for r in _run(store, "shared_report_sections"):
            guidelines[(r["guideline_id"], None)] = _guideline(r)
    examples = [
        ExampleInfo(id=r["note_id"], origin=r["origin"], text=r["text"])
        for r in _run(store, "profile_examples", disease=disease)
    ]
    drugs = [
        DrugInfo(
            id=r["drug_id"],
            name=r["drug"],
            drug_class=r["drug_class"],
            line=r["line"],
            share=_float(r["share"]),
        )
        for r in _run(store, "profile_drugs", disease=disease)
    ]
    fields: dict[str, Any] = {
        "disease_id": d["disease_id"],
        "disease": d["disease"],
        "synonyms": tuple(d["synonyms"] or ()),
        "description": d["description"],
        "prevalence": _float(d["prevalence"]),
        "stage_scale": d["stage_scale"],
        "min_age": _int(d["min_age"]),
        "max_age": _int(d["max_age"]),
        "sex": d["sex"],
        "core": tuple(
            CoreGroup(name=name, symptom_ids=tuple(sorted(ids)))
            for name, ids in sorted(core.items())
        ),
        "codes": tuple(
            sorted(
                (
                    IcdRef(
                        code=c["code"],
                        title=c["title"],
                        primary=bool(c["primary"]),
                        min_age=_int(c.get("min_age")),
                        max_age=_int(c.get("max_age")),
                        sex=c.get("sex"),
                    )
                    for c in d["codes"]
                ),
                key=lambda c: c.code,
            )
        ),
        "symptoms": tuple(sorted(symptoms.values(), key=lambda s: s.id)),
        "windows": tuple(sorted(windows, key=lambda w: (w.order, w.id))),
        "strata": tuple(sorted(strata, key=lambda s: (s.attribute, s.value, s.id))),
        "risks": tuple(sorted(risks, key=lambda r: (r.id, r.stratum_id or ""))),
        "guidelines": tuple(
            sorted(guidelines.values(), key=lambda g: (g.kind, g.order, g.id, g.category_id or ""))
        ),
        "examples": tuple(sorted(examples, key=lambda e: e.id)),
        "drugs": tuple(sorted(drugs, key=lambda x: x.id)),
    }
    return DiseaseProfile(**fields).for_code(target.icd)


def _guideline(r: Row) -> GuidelineInfo:
    return GuidelineInfo(
        id=r["guideline_id"],
        title=r["title"],
        text=r["text"],
        kind=r["kind"],
        order=int(r["order"]),
        category_id=r["category_id"],
        min_words=_int(r.get("min_words")),
        max_words=_int(r.get("max_words")),
        sections=tuple(r.get("sections") or ()),
        voice=r.get("voice"),
        note_type=r.get("note_type"),
    )


class Catalogue:
    """Every disease with its codes, read once: resolves names and codes, suggests matches."""

    def __init__(self, store: GraphStore) -> None:
        self.store = store
        self.rows = _run(store, "disease_catalogue")

    def _target(self, row: Row, icd: IcdRef | None) -> Target:
        return Target(disease_id=row["disease_id"], disease=row["disease"], icd=icd)

    @staticmethod
    def primary_code(row: Row) -> IcdRef | None:
        codes = sorted((IcdRef(**c) for c in row["codes"]), key=lambda c: (not c.primary, c.code))
        return codes[0] if codes else None

    def disease(self, text: str) -> Target:
        """The disease whose id, name or synonym is ``text`` (case-insensitive)."""
        key = text.strip().lower()
        for field in ("disease_id", "disease", "synonyms"):
            for row in self.rows:
                values = row[field] if field == "synonyms" else [row[field]]
                if any(str(v).lower() == key for v in values):
                    return self._target(row, self.primary_code(row))
        raise EngineError(f"unknown disease {text!r}; {self._suggest_diseases(key)}")

    def _suggest_diseases(self, key: str) -> str:
        names: dict[str, str] = {}
        for row in self.rows:
            label = f"{row['disease']} ({row['disease_id']})"
            for value in [row["disease"], row["disease_id"], *row["synonyms"]]:
                names.setdefault(str(value).lower(), label)
        hits = [names[n] for n in names if key and key in n]
        hits += [names[n] for n in difflib.get_close_matches(key, list(names), n=5, cutoff=0.5)]
        return _closest(hits, "diseases", "kgsynth kg query disease_search --param text=...")

    def icd(self, code: str) -> Target:
        """The disease coded as ``code``, else as its nearest coded ancestor, else (a
        category) as its nearest coded descendants; ``kg.resolution`` breaks ties."""
        code = normalise_code(code)
        if (problem := icd_code_error(code)) is not None:
            raise EngineError(f"{problem}; {self._suggest_codes(code)}")
        how: How = "ancestor"
        rows = _run(self.store, "disease_by_icd", icd=code)
        if not rows:
            how, rows = "descendant", _run(self.store, "disease_below_icd", icd=code)
        known = _run(self.store, "icd_lookup", icd=code)
        if rows:
            best, others = pick(Candidate.model_validate(r) for r in rows)
            title = known[0]["title"] if known else None
            return Target(
                disease_id=best.disease_id,
                disease=best.disease,
                icd=IcdRef(code=code, title=title, primary=best.primary),
                resolution=resolution_of(code, best, how),
                alternatives=tuple(f"{c.disease} ({c.disease_id}) at {c.coded_as}" for c in others),
            )
        if known:
            raise EngineError(
                f"ICD-10-CM {code} ({known[0]['title']}) is in the catalogue, but no disease in "
                f"the graph is coded as {code}, any of its ancestors or any code below it; "
                f"{self._suggest_codes(code)}"
            )
        raise EngineError(f"unknown ICD-10-CM code {code!r}; {self._suggest_codes(code)}")

    def _suggest_codes(self, code: str) -> str:
        coded: dict[str, str] = {}
        for row in self.rows:
            for c in row["codes"]:
                coded.setdefault(c["code"], f"{c['code']} {c['title'] or ''} ({row['disease']})")
        same = [c for n in (3, 2, 1) for c in sorted(coded) if c[:n] == code[:n]]
        close = difflib.get_close_matches(code, list(coded), n=5, cutoff=0.4)
        return _closest(
            [coded[c] for c in [*same[:5], *close]],
            "coded ICD-10-CM codes",
            "kgsynth kg query icd_subtree --param icd=...",
        )

    def prevalence_pool(
        self, with_figures: Collection[str] = ()
    ) -> list[tuple[Target, float | None]]:
        """Diseases with an ICD code and a prevalence (or an id in ``with_figures``: diseases
        with population figures), with that prevalence (None when it has none)."""
        pool = []
        for row in self.rows:
            icd = self.primary_code(row)
            has = row["prevalence"] is not None or row["disease_id"] in with_figures
            if has and icd is not None:
                value = None if row["prevalence"] is None else float(row["prevalence"])
                pool.append((self._target(row, icd), value))
        return pool


def _closest(hits: Iterable[str], what: str, hint: str) -> str:
    unique = list(dict.fromkeys(hits))[:5]
    if not unique:
        return f"no similar {what} in the graph (browse with `{hint}`)"
    return f"closest {what}: " + "; ".join(unique)
