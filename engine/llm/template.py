"""A rule-based realizer: a plausible note from the spec alone, with no model at all.

For offline demos and pipeline tests. Every record it makes carries ``backend: template``
and ``model: rule-based``; its notes use every requested keyword but are formulaic, so they
are no substitute for an LLM in any experiment. A request for structured output gets the
same content as valid JSON of the requested model (``engine.outputs``).
"""

from __future__ import annotations

import random

from pydantic import BaseModel

from engine.llm.base import Backend, LLMRequest, LLMResponse, PermanentError
from engine.outputs import ReportSection, SectionedReport
from engine.spec import GenerationSpec

MODEL = "rule-based"

_OPENERS = (
    "presents for a routine follow-up visit",
    "is seen in clinic today",
    "comes in accompanied by a family member",
    "attends a scheduled review",
)
_REPORTS = ("reports", "describes", "mentions", "notes")
_EXAMS = (
    "Alert and cooperative. Vital signs within normal limits.",
    "Well-appearing, in no acute distress. Vital signs stable.",
    "Pleasant and engaged. Blood pressure and heart rate unremarkable.",
)
_PLANS = (
    "Review in three months, sooner if symptoms progress.",
    "Arrange further assessment and follow up with results.",
    "Discuss findings with the patient and family; follow up in clinic.",
)


def _who(spec: GenerationSpec) -> str:
    persona = spec.persona
    sex = (persona.get("sex") or "").lower() if persona else ""
    person = {"female": "woman", "male": "man"}.get(sex, sex or "patient")
    age = persona.age if persona else None
    if age is None:
        return f"The {person}"
    article = "An" if str(age).startswith("8") or age in (11, 18) else "A"
    return f"{article} {age}-year-old {person}"


def _conditions(spec: GenerationSpec) -> str:
    names = [r.name for r in spec.persona.risk_factors] if spec.persona else []
    return f" Past history includes {', '.join(names)}." if names else ""


def _complaint(spec: GenerationSpec, rng: random.Random) -> str:
    terms = [k.text for k in spec.keywords] or [s.name for s in spec.symptoms]
    if not terms:
        return "has no new complaints"
    listed = f"{', '.join(terms[:-1])} and {terms[-1]}" if len(terms) > 1 else terms[0]
    return f"{rng.choice(_REPORTS)} {listed}"


def _assessment(spec: GenerationSpec) -> str:
    # MedSyn: the patient has the disease, the doctor does not know yet
    named = spec.recipe != "medsyn" and (spec.window is None or spec.window.diagnosed)
    if not named:
        return "Findings warrant further evaluation; no unifying diagnosis yet."
    label = f"{spec.disease} ({spec.icd_code})" if spec.icd_code else spec.disease
    return f"Presentation consistent with {label}."


def sections(spec: GenerationSpec) -> list[tuple[str, str]]:
    """``(title, text)`` of each part of the note: the spec's sections, else SOAP."""
    rng = random.Random(spec.record_seed)
    who, complaint, assessment = _who(spec), _complaint(spec, rng), _assessment(spec)
    if spec.sections:
        first, *rest = spec.sections
        return [(first.title, f"{who} {complaint}."), *((s.title, assessment) for s in rest)]
    timing = f" This visit takes place {spec.window.phrase}." if spec.window else ""
    return [
        ("Subjective", f"{who} {rng.choice(_OPENERS)} and {complaint}.{_conditions(spec)}{timing}"),
        ("Objective", rng.choice(_EXAMS)),
        ("Assessment", assessment),
        ("Plan", rng.choice(_PLANS)),
    ]


def realize(spec: GenerationSpec) -> str:
    """A note for ``spec``, varied by its record seed."""
    parts = sections(spec)
    if spec.sections:
        return "\n\n".join(f"{title}:\n{text}" for title, text in parts)
    return "\n".join(f"{title}: {text}" for title, text in parts)


def realize_output(spec: GenerationSpec, output: type[BaseModel]) -> str:
    """The note as JSON of ``output``; only the models in ``engine.outputs`` are known."""
    if output is not SectionedReport:
        raise PermanentError(f"the template backend cannot write {output.__name__} output")
    report = SectionedReport(
        sections=[ReportSection(title=title, text=text) for title, text in sections(spec)]
    )
    return report.model_dump_json()


class TemplateBackend(Backend):
    """Realizes each request's spec; the prompt messages are ignored."""

    name = "template"
    cacheable = False
    local = True

    def __init__(self) -> None:
        self.model = MODEL

    async def complete(self, request: LLMRequest) -> LLMResponse:
        spec = request.spec
        if spec is None:
            raise PermanentError(
                "the template backend writes notes from a GenerationSpec; this job has only "
                "a prompt (use an LLM backend)"
            )
        raw = realize(spec) if request.output is None else realize_output(spec, request.output)
        return LLMResponse(raw=raw, finish_reason="stop")
