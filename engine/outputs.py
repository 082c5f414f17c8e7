"""Structured outputs a recipe (or the annotator) may declare, by name.

A recipe's ``output: NAME`` in ``engine/prompts/recipes.yaml`` picks a model here; every
backend then constrains or checks its answer against the model's JSON schema, and each
record's ``parsed`` holds the validated value. Names are an allow-list: YAML never imports
code.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReportSection(_Output):
    title: str = Field(min_length=1, description="The section title, as requested.")
    text: str = Field(min_length=1, description="The section's content.")


class SectionedReport(_Output):
    """A report as its sections, in the requested order."""

    sections: list[ReportSection] = Field(min_length=1)


OUTPUTS: dict[str, type[BaseModel]] = {"sectioned_report": SectionedReport}
