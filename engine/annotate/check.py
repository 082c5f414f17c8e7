"""The constraint check: which requested keywords a note realises, where, and label agreement.

For each keyword of the note's spec, the realising sentence is the first whose normalised
text holds the keyword's rendered text; failing that, the first where its words appear with
the same stems (``engine.annotate.lexicon.locate``: "repeating the same questions" realises
"repeats the same question"); failing that, the first with a lexicon mention of
the keyword's symptom that is not negated; failing that, the first holding one of the
symptom's surface forms from the graph. The keyword's category (mapped into the annotation
scheme through its symptom when the schemes differ) must then be the sentence's label.
A keyword realised nowhere, or realised in a sentence labelled otherwise, marks the note
for review with a reason: the cheap way to find the label errors an LLM annotator makes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from engine.annotate.lexicon import locate
from engine.annotate.model import Realisation, SentenceAnnotation
from engine.annotate.scheme import LabelScheme
from engine.profile import DiseaseProfile
from engine.spec import Keyword

_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalise(text: str) -> str:
    """Lower case, every run of non-alphanumerics one space, padded: ``" word ... "``."""
    return f" {_NON_WORD.sub(' ', text.lower()).strip()} "


@dataclass(frozen=True, slots=True)
class CheckResult:
    realisations: tuple[Realisation, ...]
    reasons: tuple[str, ...]


def _expected_category(
    keyword: Keyword, scheme: LabelScheme, profile: DiseaseProfile | None
) -> str:
    if any(c.id == keyword.category_id for c in scheme.categories) or profile is None:
        return keyword.category_id
    symptom = next((s for s in profile.symptoms if s.id == keyword.symptom_id), None)
    ref = symptom.category_in(scheme.scheme) if symptom else None
    return ref.id if ref else keyword.category_id


def _surface_forms(keyword: Keyword, profile: DiseaseProfile | None) -> list[str]:
    symptom = next(
        (s for s in (profile.symptoms if profile else ()) if s.id == keyword.symptom_id), None
    )
    forms = symptom.surface_forms if symptom else (keyword.symptom,)
    return [normalise(f) for f in forms if "{" not in f and normalise(f).strip()]


def _find(
    keyword: Keyword,
    sentences: Sequence[SentenceAnnotation],
    texts: list[str],
    profile: DiseaseProfile | None,
    stems: dict[str, tuple[int, ...]],
) -> int | None:
    wanted = normalise(keyword.text)
    if wanted.strip():
        for sa, text in zip(sentences, texts, strict=True):
            if wanted in text:
                return sa.sentence.index
    if stems.get(keyword.text):
        return stems[keyword.text][0]
    for sa in sentences:
        if any(m.symptom_id == keyword.symptom_id and not m.negated for m in sa.mentions):
            return sa.sentence.index
    forms = _surface_forms(keyword, profile)
    for sa, text in zip(sentences, texts, strict=True):
        if any(form in text for form in forms):
            return sa.sentence.index
    return None


def check_note(
    keywords: Sequence[Keyword],
    sentences: Sequence[SentenceAnnotation],
    scheme: LabelScheme,
    profile: DiseaseProfile | None = None,
) -> CheckResult:
    """Each requested keyword's realisation in ``sentences``, and the reasons for review."""
    texts = [normalise(sa.sentence.text) for sa in sentences]
    literal = [k.text for k in keywords if not any(normalise(k.text) in t for t in texts)]
    stems = locate(literal, [sa.sentence for sa in sentences]) if literal else {}
    by_index = {sa.sentence.index: sa for sa in sentences}
    out, reasons = [], []
    for keyword in keywords:
        category = _expected_category(keyword, scheme, profile)
        index = _find(keyword, sentences, texts, profile, stems)
        if index is None:
            out.append(Realisation(keyword=keyword.text, category_id=category))
            reasons.append(f"keyword {keyword.text!r} not realised")
            continue
        label = by_index[index].label
        agrees = label.category_id == category
        out.append(
            Realisation(
                keyword=keyword.text, category_id=category, sentence=index, label_agrees=agrees
            )
        )
        if not agrees:
            reasons.append(
                f"keyword {keyword.text!r} ({scheme.name_of(category)}) in sentence {index} "
                f"labelled {label.category}"
            )
    return CheckResult(tuple(out), tuple(reasons))


@dataclass(slots=True)
class CheckCounts:
    """Run totals of the constraint check."""

    notes: int = 0
    review: int = 0
    requested: int = 0
    realised: int = 0
    disagree: int = 0

    def add(self, result: CheckResult) -> None:
        self.notes += 1
        self.review += bool(result.reasons)
        self.requested += len(result.realisations)
        realised = [r for r in result.realisations if r.sentence is not None]
        self.realised += len(realised)
        self.disagree += sum(r.label_agrees is False for r in realised)

    @property
    def realised_pct(self) -> float:
        return 100.0 * self.realised / self.requested if self.requested else 0.0

    @property
    def disagree_pct(self) -> float:
        return 100.0 * self.disagree / self.realised if self.realised else 0.0
