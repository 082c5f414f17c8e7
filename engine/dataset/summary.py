"""The summary of a built dataset (``dataset.json``): counts, labels, provenance, quality."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from engine.dataset.splits import SplitConfig

SUMMARY_VERSION = 1


class SplitCounts(BaseModel):
    notes: int
    #: longitudinal patients in the split (None when no note has a patient)
    patients: int | None = None
    sentences: int
    labels: dict[str, int]
    binary: dict[str, int]


class DatasetSummary(BaseModel):
    """What a dataset holds and where it came from (``dataset.json``; the card renders it)."""

    model_config = ConfigDict(extra="forbid")

    kgsynth_dataset: int = SUMMARY_VERSION
    notes_file: str
    notes_sha256: str
    annotations_file: str
    annotations_sha256: str
    split: SplitConfig
    #: what a split holds whole: ``record``, or ``patient`` when a note has a patient
    split_unit: str = "record"
    scheme: str | None
    labels: list[str]
    category_ids: list[str | None]
    note_statuses: dict[str, int]
    notes_used: int
    excluded: dict[str, int]
    splits: dict[str, SplitCounts]
    kg_hashes: list[str]
    run_kg_hash: str | None
    diseases: dict[str, str]
    icd_codes: dict[str, int]
    recipes: dict[str, int]
    generators: dict[str, int]
    annotators: dict[str, int]
    review: dict[str, int]
    review_reasons: dict[str, int]
    constraints: dict[str, int]
    lexicon: dict[str, int]
    gate: dict[str, Any] | None
    manifest: str | None
