"""The annotation contract: what ``kgsynth annotate`` writes and ``kgsynth dataset`` reads.

One ``AnnotatedNote`` JSON line per note (readers take the last line per ``record_id``). A
sentence's ``text`` is always ``note_text[start:end]``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: the label of a sentence that shows none of the scheme's categories
NO_SYMPTOM = "no symptom"

#: who labelled: an LLM through the runner, the model-free rule labeller standing in for
#: the template backend, or the lexicon annotator (keywords + ConText)
Annotator = Literal["llm", "rules", "lexicon"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Sentence(_Frozen):
    """One sentence of a note, with character offsets into the note's text."""

    index: int = Field(ge=0)
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str
    section: str | None = None


class Label(_Frozen):
    """A sentence's category in the graph's scheme; ``category_id`` None means no symptom."""

    category_id: str | None = None
    category: str = NO_SYMPTOM

    @property
    def symptomatic(self) -> bool:
        """The binary label: does the sentence show any of the scheme's categories."""
        return self.category_id is not None


class Mention(_Frozen):
    """A keyword or synonym of a graph symptom found in a sentence (lexicon annotator)."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str
    symptom_id: str
    category_id: str | None = None
    negated: bool = False
    uncertain: bool = False
    hypothetical: bool = False
    historical: bool = False
    family: bool = False


class Realisation(_Frozen):
    """Constraint check: one requested keyword, where (if anywhere) the note realises it,
    and whether the sentence's label agrees with the keyword's category."""

    keyword: str
    category_id: str
    sentence: int | None = None
    label_agrees: bool | None = None


class SentenceAnnotation(_Frozen):
    sentence: Sentence
    label: Label
    mentions: tuple[Mention, ...] = ()


class AnnotatedNote(BaseModel):
    """All annotations of one generated note, with the provenance to trace them back."""

    model_config = ConfigDict(extra="forbid")

    record_id: str
    status: Literal["ok", "failed"]
    reason: str | None = None
    annotator: Annotator
    backend: str
    model: str
    scheme: str | None = None
    note_fingerprint: str
    fingerprint: str
    sentences: tuple[SentenceAnnotation, ...] = ()
    realisations: tuple[Realisation, ...] = ()
    review: bool = False
    review_reasons: tuple[str, ...] = ()
