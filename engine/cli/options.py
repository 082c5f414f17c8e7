"""Command-line options shared by ``plan`` and ``generate`` (what to plan for)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer


class Weighting(StrEnum):
    prevalence = "prevalence"
    log_frequency = "log-frequency"
    uniform = "uniform"


IcdOpt = Annotated[str | None, typer.Option(help="ICD-10-CM code(s), comma-separated.")]
DiseaseOpt = Annotated[list[str] | None, typer.Option(help="Disease id or name (repeatable).")]
ByPrevalenceOpt = Annotated[
    bool, typer.Option("--by-prevalence", help="Draw codes by the graph's prevalence.")
]
WeightingOpt = Annotated[Weighting, typer.Option(help="Code weighting for --by-prevalence.")]
