"""What goes in and out of a run: ``GenerationJob`` in, one ``NoteRecord`` line out per try.

A record is ``ok`` (its ``text`` passed the gate, if one ran), ``failed`` (no usable answer;
a rerun retries it) or ``rejected`` (every answer the gate allowed was rejected: no text is
kept, ``gate`` says why; final, a rerun skips it).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.gate.verdict import Rejection
from engine.llm.base import Messages, Usage
from engine.spec import GenerationSpec

Status = Literal["ok", "failed", "rejected"]
#: why a record failed: the class of its last error (see ``engine.runner.attempts``)
FailureKind = Literal[
    "transient",
    "overloaded",
    "timeout",
    "connection",
    "unparseable",
    "truncated",
    "filtered",
    "permanent",
]


class GenerationJob(BaseModel):
    """One record to generate: its id and index, prompt, sampling seed and the spec it came from.

    ``spec`` is the typed ``GenerationSpec`` (provenance, fingerprint input and the template
    backend's input); ``None`` for a ready-made prompt with no spec behind it.
    """

    model_config = ConfigDict(frozen=True)

    record_id: str = Field(min_length=1)
    record_index: int = Field(ge=0)
    messages: Messages
    seed: int | None = None
    spec: GenerationSpec | None = None


class Timings(BaseModel):
    """Wall-clock times: ISO start/end of the record's work and seconds spent."""

    started_at: str
    finished_at: str
    elapsed_s: float
    last_attempt_s: float | None = None


class GateReport(BaseModel):
    """What the gate did with a record: the answers it rejected, in order, and the seed of
    the answer kept (``None`` when none was). A rejected answer's text is never stored."""

    regenerations: int = 0
    seed: int | None = None
    rejections: list[Rejection] = Field(default_factory=list)


class NoteRecord(BaseModel):
    """One output line. Readers take the last line per ``record_id`` (resume appends)."""

    record_id: str
    record_index: int
    status: Status
    reason: str | None = None
    failure: FailureKind | None = None
    text: str | None = None
    parsed: Any = None
    backend: str
    model: str
    fingerprint: str
    run: str | None = None
    params: dict[str, Any]
    seed: int | None = None
    spec: GenerationSpec | None = None
    raw_response: str | None = None
    finish_reason: str | None = None
    response_id: str | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    attempts: int
    cached: bool = False
    errors: list[str] = Field(default_factory=list)
    gate: GateReport | None = None
    timings: Timings
