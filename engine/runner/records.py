"""What goes in and out of a run: ``GenerationJob`` in, one ``NoteRecord`` line out per try."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.llm.base import Messages, Usage

Status = Literal["ok", "failed"]


class GenerationJob(BaseModel):
    """One record to generate: its id and index, prompt, sampling seed and the spec it came from.

    ``spec`` is provenance (and the template backend's input); the runner reads only
    ``kg_hash``, ``recipe`` and ``template_hash`` from it, for the fingerprint.
    """

    model_config = ConfigDict(frozen=True)

    record_id: str = Field(min_length=1)
    record_index: int = Field(ge=0)
    messages: Messages
    seed: int | None = None
    spec: dict[str, Any] = Field(default_factory=dict)


class Timings(BaseModel):
    """Wall-clock times: ISO start/end of the record's work and seconds spent."""

    started_at: str
    finished_at: str
    elapsed_s: float
    last_attempt_s: float | None = None


class NoteRecord(BaseModel):
    """One output line. Readers take the last line per ``record_id`` (resume appends)."""

    record_id: str
    record_index: int
    status: Status
    reason: str | None = None
    text: str | None = None
    parsed: Any = None
    backend: str
    model: str
    fingerprint: str
    params: dict[str, Any]
    seed: int | None = None
    spec: dict[str, Any]
    raw_response: str | None = None
    finish_reason: str | None = None
    response_id: str | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    attempts: int
    cached: bool = False
    errors: list[str] = Field(default_factory=list)
    timings: Timings
