"""A rule-based realizer: a plausible note from the spec alone, with no model at all.

For offline demos and pipeline tests. Every record it makes carries ``backend: template``
and ``model: rule-based``; its notes use every requested keyword but are formulaic, so they
are no substitute for an LLM in any experiment.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from engine.llm.base import Backend, LLMRequest, LLMResponse

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


def _who(spec: Mapping[str, Any]) -> str:
    persona = spec.get("persona") or {}
    attributes = persona.get("attributes") or {}
    age = persona.get("age")
    sex = str(attributes.get("sex", "")).lower() or "patient"
    person = {"female": "woman", "male": "man"}.get(sex, sex)
    if age is None:
        return f"The {person}"
    article = "An" if str(age).startswith("8") or age in (11, 18) else "A"
    return f"{article} {age}-year-old {person}"


def _conditions(spec: Mapping[str, Any]) -> str:
    risks = (spec.get("persona") or {}).get("risk_factors") or []
    names = [str(r.get("name")) for r in risks if isinstance(r, Mapping) and r.get("name")]
    return f" Past history includes {', '.join(names)}." if names else ""


def _terms(spec: Mapping[str, Any]) -> list[str]:
    keywords = [str(k["text"]) for k in spec.get("keywords") or [] if isinstance(k, Mapping)]
    symptoms = [str(s["name"]) for s in spec.get("symptoms") or [] if isinstance(s, Mapping)]
    return keywords or symptoms


def _names_diagnosis(spec: Mapping[str, Any]) -> bool:
    recipe = spec.get("recipe")
    if recipe == "medsyn":
        return False  # MedSyn: the patient has the disease, the doctor does not know yet
    window = spec.get("window")
    return not isinstance(window, Mapping) or bool(window.get("diagnosed", True))


def realize(spec: Mapping[str, Any]) -> str:
    """A note for ``spec`` (a ``GenerationSpec`` as JSON), varied by its record seed."""
    rng = random.Random(int(spec.get("record_seed", 0)))
    disease = str(spec.get("disease") or "the condition")
    code = spec.get("icd_code")
    terms = _terms(spec)
    sections = [s for s in spec.get("sections") or [] if isinstance(s, Mapping)]
    who = _who(spec)
    complaint = (
        f"{rng.choice(_REPORTS)} {', '.join(terms[:-1])} and {terms[-1]}"
        if len(terms) > 1
        else f"{rng.choice(_REPORTS)} {terms[0]}"
        if terms
        else "has no new complaints"
    )
    window = spec.get("window")
    timing = f" This visit takes place {window['phrase']}." if isinstance(window, Mapping) else ""
    if _names_diagnosis(spec):
        label = f"{disease} ({code})" if code else disease
        assessment = f"Presentation consistent with {label}."
    else:
        assessment = "Findings warrant further evaluation; no unifying diagnosis yet."
    if sections:
        body = [f"{s.get('title', 'Section')}:\n{who} {complaint}." for s in sections[:1]]
        body += [f"{s.get('title', 'Section')}:\n{assessment}" for s in sections[1:]]
        return "\n\n".join(body)
    return (
        f"Subjective: {who} {rng.choice(_OPENERS)} and {complaint}.{_conditions(spec)}{timing}\n"
        f"Objective: {rng.choice(_EXAMS)}\n"
        f"Assessment: {assessment}\n"
        f"Plan: {rng.choice(_PLANS)}"
    )


class TemplateBackend(Backend):
    """Realizes each request's spec; the prompt messages are ignored."""

    name = "template"
    cacheable = False
    local = True

    def __init__(self) -> None:
        self.model = MODEL

    async def complete(self, request: LLMRequest) -> LLMResponse:
        return LLMResponse(raw=realize(request.spec), finish_reason="stop")
