"""How one record is tried: a slot from AIMD, the request under a timeout, parse, retry.

Errors stay typed end to end: each failed attempt becomes an ``AttemptError`` (kind and
message); a record's ``reason`` and ``failure`` come from its last one, never from text.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from engine.errors import EngineError
from engine.llm.base import (
    Backend,
    ConnectionFailed,
    ContentFiltered,
    LLMError,
    LLMRequest,
    LLMResponse,
    Overloaded,
    TransientError,
    Truncated,
)
from engine.llm.parsing import UnparseableOutput, check_response
from engine.runner.aimd import AimdLimiter, Outcome
from engine.runner.backoff import backoff_delay
from engine.runner.records import FailureKind

#: connection failures with no success yet in the run after which the endpoint is unreachable
UNREACHABLE_AFTER = 3


class AttemptTimeout(TransientError):
    """No answer within the per-request timeout."""


def failure_kind(error: LLMError) -> FailureKind:
    """The class of a failed attempt, from its exception type."""
    if isinstance(error, Overloaded):
        return "overloaded"
    if isinstance(error, ConnectionFailed):
        return "connection"
    if isinstance(error, UnparseableOutput):
        return "unparseable"
    if isinstance(error, Truncated):
        return "truncated"
    if isinstance(error, ContentFiltered):
        return "filtered"
    if isinstance(error, AttemptTimeout):
        return "timeout"
    return "transient" if error.retryable else "permanent"


@dataclass(frozen=True, slots=True)
class AttemptError:
    """One failed attempt: its number, kind and message."""

    attempt: int
    kind: FailureKind
    message: str

    def __str__(self) -> str:
        return f"attempt {self.attempt}: {self.message}"


@dataclass(slots=True)
class Tried:
    """The outcome of trying one record: an answer (and its parse) or only errors.

    ``stopped``: the run stopped before the record was settled (it stays pending).
    """

    response: LLMResponse | None = None
    stopped: bool = False
    parsed: Any = None
    errors: list[AttemptError] = field(default_factory=list)
    last_s: float | None = None

    @property
    def attempts(self) -> int:
        return len(self.errors) + (self.response is not None)


@dataclass(slots=True)
class AttemptCounters:
    """Per-run tallies the policy keeps (the summary reads them)."""

    attempts: int = 0
    overloads: int = 0
    successes: int = 0
    connect_failures: int = 0


@dataclass(frozen=True, slots=True)
class RetrySettings:
    max_attempts: int
    timeout_s: float | None
    backoff_base_s: float
    backoff_max_s: float
    max_retry_after_s: float


class AttemptPolicy:
    """Tries a request up to ``max_attempts`` times under the run's AIMD limiter.

    Every answer passes ``check_response`` (token limit, content filter, structured output).
    Retryable errors (5xx, 429, timeouts, malformed bodies, truncated, filtered or
    unparseable answers) back off with full jitter, never sooner than ``Retry-After``; a
    stop request ends the loop before the next attempt. ``EngineError`` (bad key, unknown
    model, an unreachable endpoint) propagates and ends the run.
    """

    def __init__(
        self,
        backend: Backend,
        settings: RetrySettings,
        limiter: AimdLimiter,
        stop: asyncio.Event,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.limiter = limiter
        self.stop = stop
        self.counters = AttemptCounters()
        self._timeout = None if backend.local else settings.timeout_s

    async def attempt(self, request: LLMRequest) -> Tried:
        cfg, tried = self.settings, Tried()
        for number in range(1, cfg.max_attempts + 1):
            if self.stop.is_set():
                tried.stopped = True
                return tried
            ticket = await self.limiter.acquire()
            if self.stop.is_set():
                self.limiter.release(ticket, Outcome.OTHER)
                tried.stopped = True
                return tried
            self.counters.attempts += 1
            outcome, t0 = Outcome.OTHER, time.monotonic()
            error: LLMError | None = None
            try:
                async with asyncio.timeout(self._timeout):
                    response = await self.backend.complete(request)
                parsed = check_response(request, response)
                outcome = Outcome.OK
            except TimeoutError:
                error = AttemptTimeout(f"no response within {self._timeout:g} s")
            except LLMError as err:
                error = err
                if isinstance(err, Overloaded):
                    outcome = Outcome.OVERLOAD
                    self.counters.overloads += 1
            finally:
                self.limiter.release(ticket, outcome)
            tried.last_s = time.monotonic() - t0
            if error is None:
                self.counters.successes += 1
                tried.response, tried.parsed = response, parsed
                return tried
            tried.errors.append(AttemptError(number, failure_kind(error), str(error)))
            self._check_reachable(error)
            if not error.retryable or number == cfg.max_attempts:
                break
            delay = backoff_delay(
                number,
                base_s=cfg.backoff_base_s,
                cap_s=cfg.backoff_max_s,
                retry_after=error.retry_after if isinstance(error, TransientError) else None,
                max_retry_after_s=cfg.max_retry_after_s,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay)
        return tried

    def _check_reachable(self, error: LLMError) -> None:
        if not isinstance(error, ConnectionFailed) or self.counters.successes:
            return
        self.counters.connect_failures += 1
        if self.counters.connect_failures >= UNREACHABLE_AFTER:
            raise EngineError(f"{error}; is the server running? (check --base-url)")
