"""Pydantic models for every node and relationship of the clinical knowledge graph.

Nodes are identified by CURIE-style ids unique per label. Relationships are identified
by (type, start, end) plus the type's extra key properties (see ``REL_KEYS``). Every
curated number may carry ``source`` (a ``Source`` id) and ``remarks``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

CURIE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*:[^\s]+$")
# ICD-10-CM 2026 added category QA0 (letter, 'A', digit) beside the letter-digit-digit form
ICD10CM_CODE_RE = re.compile(r"^[A-Z](?:[0-9][0-9AB]|A[0-9])(\.[0-9A-Z]{1,4})?$")
ICD10CM_BLOCK_RE = re.compile(r"^[A-Z][0-9A][0-9A-Z]-[A-Z][0-9A][0-9A-Z]$")
ICD10CM_CHAPTER_RE = re.compile(r"^[1-9][0-9]?$")


def _curie(value: str) -> str:
    if not CURIE_RE.match(value):
        raise ValueError(f"{value!r} is not a CURIE-style id (prefix:local, no spaces)")
    return value


Curie = Annotated[str, AfterValidator(_curie)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Age = Annotated[int, Field(ge=0, le=130)]
#: How a curated number stands to its source (see docs/curation.md).
Status = Literal["measured", "estimate"]
Sex = Literal["female", "male"]
FrequencyClass = Literal["obligate", "very_frequent", "frequent", "occasional", "very_rare"]
#: What a prevalence figure counts: people with the condition now (``point``), at any time in
#: the past year (``past_year``) or ever (``lifetime``).
Measure = Literal["point", "past_year", "lifetime"]


def icd_code_error(code: str, kind: str = "code") -> str | None:
    """Return why ``code`` is not valid ICD-10-CM syntax for ``kind``, or None."""
    pattern = {
        "chapter": ICD10CM_CHAPTER_RE,
        "block": ICD10CM_BLOCK_RE,
    }.get(kind, ICD10CM_CODE_RE)
    if pattern.match(code):
        return None
    return f"{code!r} is not a valid ICD-10-CM {kind}"


class Entity(BaseModel):
    """Base of every node: an id plus optional citation and remarks."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    label: ClassVar[str] = ""

    id: Curie
    source: Curie | None = None
    remarks: str | None = None


class Curated(BaseModel):
    """``status`` of every number of the row: ``measured`` (the cited source prints it) or
    ``estimate`` (derived, mapped or chosen; ``remarks`` give the basis)."""

    status: Status | None = None


class Bounded(BaseModel):
    """Inclusive age bounds (years) and a sex that a persona must meet."""

    min_age: Age | None = None
    max_age: Age | None = None
    sex: Sex | None = None

    @model_validator(mode="after")
    def _check_bounds(self) -> Bounded:
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise ValueError(f"min_age ({self.min_age}) is above max_age ({self.max_age})")
        return self


class Source(Entity):
    label: ClassVar[str] = "Source"
    citation: str = Field(min_length=3)
    year: int | None = Field(default=None, ge=1800, le=2100)
    url: str | None = None
    license: str | None = None


class Disease(Bounded, Curated, Entity):
    """``min_age``/``max_age``/``sex`` restrict the persona at diagnosis; ``stage_scale``
    names the scale of the ``stage`` numbers of its PRESENTS and windows."""

    label: ClassVar[str] = "Disease"
    name: str = Field(min_length=1)
    synonyms: list[str] = Field(default_factory=list)
    description: str | None = None
    prevalence: Probability | None = None
    xrefs: list[str] = Field(default_factory=list)
    stage_scale: str | None = Field(default=None, min_length=1)


class IcdCode(Entity):
    label: ClassVar[str] = "IcdCode"
    system: Literal["ICD-10-CM"] = "ICD-10-CM"
    code: str
    title: str = Field(min_length=1)
    kind: Literal["chapter", "block", "category", "code"] = "code"
    chapter: str | None = None
    block: str | None = None
    billable: bool = False

    @model_validator(mode="after")
    def _check_code(self) -> IcdCode:
        error = icd_code_error(self.code, "code" if self.kind == "category" else self.kind)
        if error:
            raise ValueError(error)
        if self.id != f"ICD10CM:{self.code}":
            raise ValueError(f"id must be 'ICD10CM:{self.code}', got {self.id!r}")
        return self


class Symptom(Bounded, Curated, Entity):
    """``min_age``/``max_age``/``sex``: who the symptom can be written for (visit age)."""

    label: ClassVar[str] = "Symptom"
    name: str = Field(min_length=1)
    synonyms: list[str] = Field(default_factory=list)
    definition: str | None = None
    xrefs: list[str] = Field(default_factory=list)


class SymptomCategory(Entity):
    label: ClassVar[str] = "SymptomCategory"
    name: str = Field(min_length=1)
    scheme: str = Field(min_length=1)
    description: str | None = None


class TrajectoryWindow(Curated, Entity):
    """``weight``: share of records in the window; ``keyword_density``: mean symptom
    keyword mentions per note; ``stage``: the most advanced stage the window reaches.
    Longitudinal patients (``plan --patients``): ``visits`` each patient has in the window,
    ``persistence`` the probability that a symptom documented at a patient's previous visit
    is documented again at a visit in this window."""

    label: ClassVar[str] = "TrajectoryWindow"
    name: str = Field(min_length=1)
    order: int = Field(ge=0)
    start_months: float
    end_months: float
    weight: Probability | None = None
    keyword_density: float | None = Field(default=None, gt=0.0)
    stage: int | None = Field(default=None, ge=0)
    visits: int | None = Field(default=None, ge=0, le=100)
    persistence: Probability | None = None

    @model_validator(mode="after")
    def _check_span(self) -> TrajectoryWindow:
        if self.start_months >= self.end_months:
            raise ValueError(
                f"start_months ({self.start_months}) must be below end_months ({self.end_months})"
            )
        return self


class Stratum(Entity):
    label: ClassVar[str] = "Stratum"
    attribute: str = Field(pattern=r"^[a-z_]+(&[a-z_]+)*$")
    value: str = Field(min_length=1)

    @model_validator(mode="after")
    def _check_parts(self) -> Stratum:
        if self.attribute.count("&") != self.value.count("&"):
            raise ValueError("a joint stratum needs one '&'-separated value per attribute")
        return self


class RiskFactor(Entity):
    label: ClassVar[str] = "RiskFactor"
    name: str = Field(min_length=1)
    kind: Literal["comorbidity", "risk_factor", "exposure", "social"] = "risk_factor"
    synonyms: list[str] = Field(default_factory=list)


class Drug(Entity):
    label: ClassVar[str] = "Drug"
    name: str = Field(min_length=1)
    drug_class: str | None = None
    rxnorm: str | None = None


class Guideline(Entity):
    """A protocol text. A ``style`` guideline may also state the note's length in words
    (``min_words``..``max_words``), its ``sections`` in order, its register (``voice``) and
    the kind of note it is for (``note_type``)."""

    label: ClassVar[str] = "Guideline"
    title: str = Field(min_length=1)
    text: str = Field(min_length=1)
    kind: Literal["annotation", "report_section", "style"] = "annotation"
    order: int = 0
    min_words: int | None = Field(default=None, ge=1)
    max_words: int | None = Field(default=None, ge=1)
    sections: list[str] = Field(default_factory=list)
    voice: str | None = None
    #: the kind of note a ``style`` guideline is for (a recipe's ``note_type``); None: any
    note_type: str | None = Field(default=None, pattern=r"^[a-z_]+$")

    @model_validator(mode="after")
    def _check_length(self) -> Guideline:
        if self.min_words and self.max_words and self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) is above max_words ({self.max_words})")
        return self


class Population(Bounded, Curated, Entity):
    """Who a prevalence figure counts, or the people a run is sized for: ``area``, the ages
    ``min_age``..``max_age`` (open above without ``max_age``), ``sex``, ``year`` and ``size``
    (people; its ``source`` and ``status``, e.g. a census count by age group)."""

    label: ClassVar[str] = "Population"
    name: str = Field(min_length=1)
    synonyms: list[str] = Field(default_factory=list)
    area: str = Field(min_length=1)
    year: int = Field(ge=1800, le=2100)
    size: int | None = Field(default=None, gt=0)


class ExampleNote(Entity):
    label: ClassVar[str] = "ExampleNote"
    text: str = Field(min_length=1)
    origin: Literal["real", "synthetic"]
    license: str | None = None


NODE_MODELS: dict[str, type[Entity]] = {
    m.label: m
    for m in (
        Source,
        Disease,
        IcdCode,
        Symptom,
        SymptomCategory,
        TrajectoryWindow,
        Stratum,
        RiskFactor,
        Drug,
        Guideline,
        ExampleNote,
        Population,
    )
}


class Relationship(BaseModel):
    """Base of every relationship: start and end node ids plus citation."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: ClassVar[str] = ""
    ends: ClassVar[tuple[tuple[str, str], ...]] = ()

    start: Curie
    end: Curie
    source: Curie | None = None
    remarks: str | None = None


class CodedAs(Bounded, Curated, Relationship):
    """``min_age``/``max_age``/``sex`` restrict the persona at diagnosis for this code."""

    type: ClassVar[str] = "CODED_AS"
    ends: ClassVar[tuple[tuple[str, str], ...]] = (("Disease", "IcdCode"),)
    primary: bool = False


class ParentOf(Relationship):
    type: ClassVar[str] = "PARENT_OF"
    ends: ClassVar[tuple[tuple[str, str], ...]] = (("IcdCode", "IcdCode"),)


class IsA(Relationship):
    type: ClassVar[str] = "IS_A"
    ends: ClassVar[tuple[tuple[str, str], ...]] = (
        ("Symptom", "Symptom"),
        ("Disease", "Disease"),
        ("SymptomCategory", "SymptomCategory"),
    )


class Presents(Curated, Relationship):
    """``weight``: frequency (share of patients with the symptom); absent with no
    ``frequency_class``: an unweighted association. ``stage``: earliest stage it shows.
    ``onset`` (an HPO onset term id: the youngest visit age, kg.hpo_onset), ``sex`` (the row
    holds for that sex only) and ``modifiers`` (HPO clinical modifier ids, not sampled) keep an
    HPO annotation's qualifiers."""

    type: ClassVar[str] = "PRESENTS"
    ends: ClassVar[tuple[tuple[str, str], ...]] = (("Disease", "Symptom"),)
    weight: Probability | None = None
    frequency_class: FrequencyClass | None = None
    stage: int | None = Field(default=None, ge=0)
    onset: Curie | None = None
    sex: Sex | None = None
    modifiers: list[Curie] | None = None


class InCategory(Relationship):
    type: ClassVar[str] = "IN_CATEGORY"
    ends: ClassVar[tuple[tuple[str, str], ...]] = (("Symptom", "SymptomCategory"),)


class HasWindow(Relationship):
    type: ClassVar[str] = "HAS_WINDOW"
    ends: ClassVar[tuple[tuple[str, str], ...]] = (("Disease", "TrajectoryWindow"),)


class Observes(Curated, Relationship):
    type: ClassVar[str] = "OBSERVES"
    ends: ClassVar[tuple[tuple[str, str], ...]] = (
        ("TrajectoryWindow", "SymptomCategory"),
        ("TrajectoryWindow", "Symptom"),
    )
    frequency: Probability


class PrevalenceIn(Curated, Relationship):
    type: ClassVar[str] = "PREVALENCE"
    ends: ClassVar[tuple[tuple[str, str], ...]] = (("Disease", "Stratum"),)
    share: Probability


class Risk(Curated, Relationship):
    """Risk factor prevalence among people with the disease, optionally within a stratum.

    A conditional table is several RISK relationships between the same pair, one per
    ``stratum`` (a ``Stratum`` id); ``stratum`` absent means the whole population.
    """

    type: ClassVar[str] = "RISK"
    ends: ClassVar[tuple[tuple[str, str], ...]] = (("Disease", "RiskFactor"),)
    prevalence: Probability
    stratum: Curie | None = None


class CoreCriterion(Relationship):
    """The disease requires at least one symptom of each ``group`` (one row per member)."""

    type: ClassVar[str] = "CORE_CRITERION"
    ends: ClassVar[tuple[tuple[str, str], ...]] = (("Disease", "Symptom"),)
    group: str = Field(min_length=1)


class TreatedWith(Curated, Relationship):
    """``share``: the share of people diagnosed with the disease currently taking the drug."""

    type: ClassVar[str] = "TREATED_WITH"
    ends: ClassVar[tuple[tuple[str, str], ...]] = (("Disease", "Drug"),)
    line: Literal["first", "second", "adjunct"] = "first"
    share: Probability | None = None


class OccursIn(Curated, Relationship):
    """A prevalence figure: the share ``prevalence`` of the ``Population`` has the disease,
    counted by ``measure``."""

    type: ClassVar[str] = "OCCURS_IN"
    ends: ClassVar[tuple[tuple[str, str], ...]] = (("Disease", "Population"),)
    prevalence: Probability
    measure: Measure


class GuidedBy(Relationship):
    type: ClassVar[str] = "GUIDED_BY"
    ends: ClassVar[tuple[tuple[str, str], ...]] = (
        ("SymptomCategory", "Guideline"),
        ("Disease", "Guideline"),
    )


class ExampleOf(Relationship):
    type: ClassVar[str] = "EXAMPLE_OF"
    ends: ClassVar[tuple[tuple[str, str], ...]] = (("ExampleNote", "Disease"),)


REL_MODELS: dict[str, type[Relationship]] = {
    m.type: m
    for m in (
        CodedAs,
        ParentOf,
        IsA,
        Presents,
        InCategory,
        HasWindow,
        Observes,
        PrevalenceIn,
        Risk,
        TreatedWith,
        GuidedBy,
        ExampleOf,
        CoreCriterion,
        OccursIn,
    )
}

#: Extra properties that, with (type, start, end), identify a relationship.
REL_KEYS: dict[str, tuple[str, ...]] = {"RISK": ("stratum",), "CORE_CRITERION": ("group",)}

#: The allow-list of labels and relationship types that may appear in any Cypher text.
LABELS: frozenset[str] = frozenset(NODE_MODELS)
REL_TYPES: frozenset[str] = frozenset(REL_MODELS)


def node_props(node: Entity) -> dict[str, Any]:
    """Properties to store for ``node`` (None values dropped; the id included)."""
    return node.model_dump(exclude_none=True)


def rel_props(rel: Relationship) -> dict[str, Any]:
    """Properties to store on ``rel`` (start/end excluded, None values dropped)."""
    return rel.model_dump(exclude_none=True, exclude={"start", "end"})


def rel_key(rel_type: str, start: str, end: str, props: dict[str, Any]) -> tuple[str, ...]:
    """The identity of a relationship: type, ends and the type's key properties."""
    extra = tuple(str(props.get(k) or "") for k in REL_KEYS.get(rel_type, ()))
    return (rel_type, start, end, *extra)
