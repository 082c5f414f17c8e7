"""Per-run state: everything one ``Runner.run()`` creates, uses and reports, then drops."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from engine.llm.base import Usage
from engine.runner.aimd import AimdLimiter
from engine.runner.attempts import AttemptPolicy
from engine.runner.output import OutputContents, RecordState
from engine.runner.progress import RunProgress
from engine.runner.sink import RecordSink


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class RunSummary(BaseModel):
    """What one run did (``ok``/``failed``/``cached`` count records written by this run)."""

    status: Literal["complete", "interrupted"]
    output: str
    manifest: str
    identity: str = ""
    seen: int = 0
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    cached: int = 0
    attempts: int = 0
    overloads: int = 0
    repaired_bytes: int = 0
    usage: Usage = Usage()
    cost_usd: float | None = None
    elapsed_s: float = 0.0
    file_ok: int = 0
    file_failed: int = 0
    failure_reasons: dict[str, int] = Field(default_factory=dict)
    peak_in_flight: int = 0
    concurrency_trace: list[tuple[float, int]] = Field(default_factory=list)
    trace_started: float = 0.0


@dataclass(slots=True)
class RunState:
    """One run's mutable state; a new one per ``run()``, so a second run starts clean."""

    summary: RunSummary
    contents: OutputContents
    history: list[dict[str, Any]]
    limiter: AimdLimiter
    policy: AttemptPolicy
    sink: RecordSink
    progress: RunProgress
    stop: asyncio.Event
    started: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=now_iso)
    fingerprints: set[str] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    failures: Counter[str] = field(default_factory=Counter)
    fatal: BaseException | None = None
    manifest_started: bool = False

    @property
    def records(self) -> dict[str, RecordState]:
        return self.contents.records
