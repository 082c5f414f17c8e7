"""Per-run state: everything one ``Runner.run()`` creates, uses and reports, then drops."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from engine.gate.verdict import GateCounts
from engine.llm.base import Usage
from engine.runner.aimd import AimdLimiter
from engine.runner.attempts import AttemptPolicy
from engine.runner.output import OutputContents, RecordState
from engine.runner.progress import RunProgress
from engine.runner.sink import RecordSink

if TYPE_CHECKING:
    from engine.gate.gate import GateRun


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
    rejected: int = 0
    cached: int = 0
    attempts: int = 0
    overloads: int = 0
    repaired_bytes: int = 0
    usage: Usage = Usage()
    cost_usd: float | None = None
    elapsed_s: float = 0.0
    file_ok: int = 0
    file_failed: int = 0
    file_rejected: int = 0
    gate: GateCounts | None = None
    failure_reasons: dict[str, int] = Field(default_factory=dict)
    peak_in_flight: int = 0
    concurrency_trace: list[tuple[float, int]] = Field(default_factory=list)
    trace_started: float = 0.0


class Turns:
    """Gate decisions in input order: record ``seq`` decides once every earlier one settled.

    A record the run stops before it settles (it stays pending) is ``abandon``ed: every
    later record then gives up its turn (``wait`` returns ``False``) and stays pending too,
    since it cannot be decided without it. Records before it still finish and are written.
    """

    def __init__(self) -> None:
        self._next = 0
        self._settled: set[int] = set()
        self._waiters: dict[int, asyncio.Future[bool]] = {}
        self._hole: int | None = None

    async def wait(self, seq: int) -> bool:
        if self._hole is not None and seq > self._hole:
            return False
        if seq == self._next:
            return True
        turn = self._waiters[seq] = asyncio.get_running_loop().create_future()
        try:
            return await turn
        finally:
            self._waiters.pop(seq, None)

    def settle(self, seq: int) -> None:
        self._settled.add(seq)
        while self._next in self._settled:
            self._settled.discard(self._next)
            self._next += 1
        turn = self._waiters.get(self._next)
        if turn is not None and not turn.done():
            turn.set_result(True)

    def abandon(self, seq: int) -> None:
        self._hole = seq if self._hole is None else min(self._hole, seq)
        for later, turn in self._waiters.items():
            if later > seq and not turn.done():
                turn.set_result(False)


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
    gate: GateRun | None = None
    turns: Turns | None = None
    next_seq: int = 0

    @property
    def records(self) -> dict[str, RecordState]:
        return self.contents.records
