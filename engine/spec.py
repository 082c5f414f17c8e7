"""``GenerationSpec``: the complete, self-contained constraints for generating one record.

A spec is a pure function of (graph content, recipe, recipe parameters, run seed, record
index): the same inputs give byte-identical JSON whatever the batch size or worker count.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from kg.resolution import CodeResolution


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RiskFactorRef(_Frozen):
    id: str
    name: str
    kind: str


class DrugRef(_Frozen):
    """A current medication: a TREATED_WITH drug of the record's disease."""

    id: str
    name: str
    drug_class: str | None = None


class Persona(_Frozen):
    """Demographics (stratum attribute -> value) at diagnosis, ages and risk factors.

    ``age`` is the age at the visit (the window's time before or after the diagnosis
    applied to ``age_at_diagnosis``); without a window the two are equal.
    """

    age: int | None = None
    age_at_diagnosis: int | None = None
    attributes: dict[str, str] = {}
    risk_factors: tuple[RiskFactorRef, ...] = ()
    #: current medications for the disease (only at or after the diagnosis)
    medications: tuple[DrugRef, ...] = ()

    def get(self, attribute: str) -> str | None:
        return self.attributes.get(attribute)


class WindowRef(_Frozen):
    """The time-to-diagnosis window of a record (months relative to diagnosis)."""

    id: str
    name: str
    order: int
    start_months: float
    end_months: float
    phrase: str
    diagnosed: bool
    stage: int | None = None
    keyword_density: float | None = None
    #: longitudinal patients: the chance a symptom of the previous visit is documented again
    persistence: float | None = None


class PatientVisit(_Frozen):
    """Where a record sits in a longitudinal patient's history (``plan --patients``).

    ``day``: days from the patient's first visit (the record's date offset).
    """

    patient_id: str
    patient_index: int
    visit_index: int
    visits: int
    day: int


class PastVisit(_Frozen):
    """An earlier visit of the same patient as its spec documented it: the prompt's history
    summary is built from these, never from earlier LLM output."""

    visit_index: int
    visit_months: float
    age: int | None = None
    symptom_ids: tuple[str, ...] = ()
    symptoms: tuple[str, ...] = ()


class Keyword(_Frozen):
    """A symptom keyword and the category it stands for: ``text`` is the surface ``form``
    with its slots (``{subject}``, ``{spouse}``, ...) rendered for the persona."""

    text: str
    form: str = ""
    stage: int | None = None
    symptom_id: str
    symptom: str
    category_id: str
    category: str


class SymptomRef(_Frozen):
    """A symptom with the frequency it was drawn by (``unweighted``: the default one)."""

    id: str
    name: str
    weight: float | None = None
    unweighted: bool = False
    categories: tuple[str, ...] = ()


class Section(_Frozen):
    """One report section (from a ``report_section`` guideline), in order."""

    id: str
    title: str
    guidance: str


class StyleRef(_Frozen):
    """A style guideline (``Guideline`` of kind ``style``) rendered into the prompt."""

    id: str
    title: str
    text: str
    min_words: int | None = None
    max_words: int | None = None
    sections: tuple[str, ...] = ()
    voice: str | None = None


class ExampleRef(_Frozen):
    """An example note given as style context; outputs must never copy it."""

    id: str
    origin: str
    text: str


class GenerationSpec(_Frozen):
    """Everything needed to prompt for one record, plus what provenance needs."""

    recipe: str
    run_seed: int
    record_index: int
    record_id: str
    record_seed: int
    icd_code: str | None = None
    icd_title: str | None = None
    #: how ``icd_code`` reached the disease (kg.resolution); None for a disease request
    resolution: CodeResolution | None = None
    disease_id: str
    disease: str
    persona: Persona | None = None
    #: longitudinal patients: the patient and visit, and the visits before this one
    patient: PatientVisit | None = None
    history: tuple[PastVisit, ...] = ()
    window: WindowRef | None = None
    visit_months: float | None = None
    scheme: str | None = None
    keywords: tuple[Keyword, ...] = ()
    symptoms: tuple[SymptomRef, ...] = ()
    sections: tuple[Section, ...] = ()
    style: tuple[StyleRef, ...] = ()
    examples: tuple[ExampleRef, ...] = ()
    template_id: str
    template_hash: str
    kg_hash: str

    @property
    def example_note_ids(self) -> tuple[str, ...]:
        return tuple(e.id for e in self.examples)


def assemble[M: BaseModel](cls: type[M], values: dict[str, Any]) -> M:
    """An instance of ``cls`` from ``values``: every field, typed, in declaration order.

    For the planner's hot path: the samplers build each value from a validated profile, so
    validating it again per record would cost more than sampling it. The seeded tests check
    that each recipe's specs validate back to themselves and dump like validated ones.
    """
    if len(values) != len(cls.__pydantic_fields__):
        missing = set(cls.__pydantic_fields__) ^ set(values)
        raise TypeError(f"{cls.__name__}: fields missing or unknown: {sorted(missing)}")
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


def record_id(recipe: str, run_seed: int, index: int) -> str:
    """Stable, readable record id: recipe, run seed and zero-padded index."""
    return f"{recipe}-{run_seed}-{index:08d}"


def patient_id(recipe: str, run_seed: int, patient: int) -> str:
    """Stable, readable patient id: recipe, run seed and zero-padded patient index."""
    return f"{recipe}-{run_seed}-p{patient:07d}"
