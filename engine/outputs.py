"""Structured outputs a recipe (or the annotator) may declare, by name.

A recipe's ``output: NAME`` in ``engine/prompts/recipes.yaml`` picks a model here; every
backend then constrains or checks its answer against the model's JSON schema, and each
record's ``parsed`` holds the validated value. Names are an allow-list: YAML never imports
code.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReportSection(_Output):
    title: str = Field(min_length=1, description="The section title, as requested.")
    text: str = Field(min_length=1, description="The section's content.")


class SectionedReport(_Output):
    """A report as its sections, in the requested order."""

    sections: list[ReportSection] = Field(min_length=1)


class SentenceLabel(_Output):
    sentence: int = Field(ge=0, description="The sentence's number, as given in brackets.")
    label: str = Field(min_length=1, description="One label of the scheme, or 'no symptom'.")


class SentenceLabels(_Output):
    """The annotator's answer for a chunk of sentences: one label per sentence given."""

    labels: list[SentenceLabel] = Field(min_length=1)


@cache
def sentence_labels_for(labels: tuple[str, ...]) -> type[SentenceLabels]:
    """``SentenceLabels`` whose ``label`` is one of ``labels`` (an ``enum`` in the JSON
    schema, so constrained decoding cannot leave the scheme)."""
    allowed: Any = Literal.__getitem__(labels)
    described = Field(description="One label of the scheme, or 'no symptom'.")
    item = create_model("SentenceLabel", __base__=SentenceLabel, label=(allowed, described))
    return create_model(
        "SentenceLabels",
        __base__=SentenceLabels,
        labels=(list[item], Field(min_length=1)),  # type: ignore[valid-type]
    )


OUTPUTS: dict[str, type[BaseModel]] = {"sectioned_report": SectionedReport}
