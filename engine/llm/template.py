"""A rule-based realizer: a plausible note from the spec alone, with no model at all.

For offline demos and pipeline tests. Every record it makes carries ``backend: template``
and ``model: rule-based``; its notes use every requested keyword but are formulaic, so they
are no substitute for an LLM in any experiment. The keywords of each symptom category get a
sentence of their own (concern by others in the family's words), so a sentence carries one
category, as sentence-level labels expect. The wording varies by the record seed only (so a
regeneration after a gate rejection repeats the note). A request for structured output gets
the same content as valid JSON of the requested model (``engine.outputs``).
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
_FAMILY = ("The family", "Relatives", "Those close to the patient")
_RAISE = ("raise", "mention", "bring up")
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


def _listed(terms: list[str]) -> str:
    return f"{', '.join(terms[:-1])} and {terms[-1]}" if len(terms) > 1 else terms[0]


def _groups(spec: GenerationSpec) -> list[tuple[str, list[str]]]:
    """``(category, terms)`` in the order categories first appear (symptoms: one group)."""
    if not spec.keywords:
        return [("", [s.name for s in spec.symptoms])] if spec.symptoms else []
    groups: dict[str, list[str]] = {}
    for k in spec.keywords:
        groups.setdefault(k.category, []).append(k.text)
    return list(groups.items())


def _pronoun(spec: GenerationSpec) -> str:
    sex = (spec.persona.get("sex") or "").lower() if spec.persona else ""
    return {"female": "She", "male": "He"}.get(sex, "They")


def _complaint(spec: GenerationSpec, rng: random.Random) -> tuple[str, str]:
    """The first category's clause (after the opener) and one sentence per other category."""
    groups = _groups(spec)
    if not groups:
        return "has no new complaints", ""
    (_, first), rest = groups[0], groups[1:]
    sentences = []
    for category, terms in rest:
        if "concern" in category.lower():
            sentences.append(f"{rng.choice(_FAMILY)} {rng.choice(_RAISE)} {_listed(terms)}.")
        else:
            sentences.append(f"{_pronoun(spec)} also {rng.choice(_REPORTS)} {_listed(terms)}.")
    return f"{rng.choice(_REPORTS)} {_listed(first)}", "".join(f" {s}" for s in sentences)


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
    who, assessment = _who(spec), _assessment(spec)
    complaint, more = _complaint(spec, rng)
    if spec.sections:
        first, *rest = spec.sections
        return [(first.title, f"{who} {complaint}.{more}"), *((s.title, assessment) for s in rest)]
    timing = f" This visit takes place {spec.window.phrase}." if spec.window else ""
    if spec.history:
        last = spec.history[-1]
        seen = f" for {_listed(list(last.symptoms))}" if last.symptoms else ""
        timing += f" Follow-up: visit {len(spec.history) + 1}, last seen{seen}."
    opener = rng.choice(_OPENERS)
    return [
        ("Subjective", f"{who} {opener} and {complaint}.{more}{_conditions(spec)}{timing}"),
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
