"""The runner: jobs in, one JSONL record out per job, at the endpoint's full speed.

Bounded async concurrency under AIMD, retries with exponential backoff and full jitter
(honouring ``Retry-After``), a per-request timeout, the SQLite request cache, append-only
output with a manifest, resume by rerunning, and a clean stop on Ctrl-C / SIGTERM: the
first signal stops new requests and lets in-flight ones finish and be written; a second
abandons them (nothing is half-written either way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console

from engine.errors import EngineError
from engine.llm.base import (
    Backend,
    ConnectionFailed,
    LLMError,
    LLMRequest,
    LLMResponse,
    Overloaded,
    SamplingParams,
    TransientError,
    Usage,
)
from engine.llm.parsing import json_schema_for, parse_structured
from engine.llm.pricing import PriceTable
from engine.provenance import fingerprint, request_key, versions
from engine.runner.aimd import AimdLimiter, Outcome
from engine.runner.backoff import backoff_delay
from engine.runner.cache import RequestCache
from engine.runner.output import (
    OutputLog,
    RecordState,
    manifest_path,
    read_manifest,
    write_manifest,
)
from engine.runner.progress import RunProgress
from engine.runner.records import GenerationJob, NoteRecord, Status, Timings

log = logging.getLogger("kgsynth.runner")
#: connection failures with no success yet in the run after which the endpoint is unreachable
UNREACHABLE_AFTER = 3
#: records being worked on at once (in flight, waiting for a slot or backing off)
LIVE_RECORDS = 1024


class RunConfig(BaseModel):
    """How a run behaves; none of it enters the fingerprint."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    concurrency: int = Field(default=16, ge=1, description="maximum requests in flight")
    min_concurrency: int = Field(default=1, ge=1)
    initial_concurrency: int | None = Field(default=None, ge=1)
    increase_every: int | None = Field(
        default=None, ge=1, description="successes per +1 of the limit (default: the current limit)"
    )
    max_attempts: int = Field(default=5, ge=1)
    timeout_s: float | None = Field(default=120.0, gt=0, description="per request; None for none")
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    max_retry_after_s: float = Field(default=300.0, ge=0)
    fsync_interval_s: float = Field(default=1.0, ge=0)
    progress: bool = True
    handle_signals: bool = False


class RunSummary(BaseModel):
    """What one run did (``ok``/``failed``/``cached`` count records written by this run)."""

    status: Literal["complete", "interrupted"]
    output: str
    manifest: str
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
    peak_in_flight: int = 0
    concurrency_trace: list[tuple[float, int]] = Field(default_factory=list)
    trace_started: float = 0.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Runner:
    """Runs jobs through one backend into one output file (resuming what it holds)."""

    def __init__(
        self,
        backend: Backend,
        output: Path,
        *,
        params: SamplingParams,
        config: RunConfig | None = None,
        cache: RequestCache | None = None,
        prices: PriceTable | None = None,
        response_model: type[BaseModel] | None = None,
        manifest_extra: dict[str, Any] | None = None,
        console: Console | None = None,
    ) -> None:
        self.backend = backend
        self.params = params
        self.config = config or RunConfig()
        self.cache = cache if backend.cacheable else None
        self.prices = prices
        self.response_model = response_model
        self._schema = json_schema_for(response_model) if response_model else None
        self.output = output
        self.manifest = manifest_path(output)
        self.manifest_extra = manifest_extra or {}
        self._console = console or Console(stderr=True)
        self._out = OutputLog(output, self.config.fsync_interval_s)
        self._params_json = params.model_dump(mode="json")
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._fatal: BaseException | None = None
        self._connect_failures = 0
        self._successes = 0

    # -- control ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Start no new requests; in-flight ones finish and are written."""
        self._stop.set()

    def abandon(self) -> None:
        """Cancel in-flight requests too (their records stay pending for the next run)."""
        self._stop.set()
        for task in list(self._tasks):
            task.cancel()

    def _on_signal(self) -> None:
        if self._stop.is_set():
            self._console.print("[yellow]second interrupt: abandoning in-flight requests[/]")
            self.abandon()
            return
        self._console.print(
            f"[yellow]stopping: finishing {len(self._tasks)} in-flight record(s); "
            "interrupt again to abandon them[/]"
        )
        self.request_stop()

    # -- the run ---------------------------------------------------------------------------

    def job_fingerprint(self, job: GenerationJob) -> str:
        spec = job.spec
        return fingerprint(
            kg_hash=spec.get("kg_hash"),
            recipe=spec.get("recipe"),
            template_hash=spec.get("template_hash"),
            backend=self.backend.name,
            model=self.backend.model,
            params=self._params_json,
        )

    async def run(self, jobs: Iterable[GenerationJob], total: int | None = None) -> RunSummary:
        """Generate every job not already ``ok`` in the output; returns this run's summary."""
        cfg = self.config
        self._state = self._out.load()
        self._summary = RunSummary(
            status="complete",
            output=str(self.output),
            manifest=str(self.manifest),
            repaired_bytes=self._out.repaired_bytes,
        )
        self._fingerprints: set[str] = set()
        self._limiter = AimdLimiter(
            cfg.concurrency,
            minimum=min(cfg.min_concurrency, cfg.concurrency),
            initial=cfg.initial_concurrency,
            increase_every=cfg.increase_every,
        )
        self._started, self._started_at = time.monotonic(), _now()
        self._history = self._previous_runs()
        self._manifest_started = False
        loop = asyncio.get_running_loop()
        signals: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM) if cfg.handle_signals else ():
            with contextlib.suppress(NotImplementedError):  # no loop signal handlers here
                loop.add_signal_handler(sig, self._on_signal)
                signals.append(sig)
        self._progress = RunProgress(total, enabled=cfg.progress, console=self._console)
        status = "aborted"
        try:
            with self._progress:
                await self._schedule(jobs, total)
            if self._fatal is None:
                self._summary.status = "interrupted" if self._stop.is_set() else "complete"
                status = self._summary.status
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._out.close()
            if self._manifest_started or status != "aborted":
                self._finalise(status)
        if self._fatal is not None:
            raise self._fatal
        return self._summary

    async def _schedule(self, jobs: Iterable[GenerationJob], total: int | None) -> None:
        room = asyncio.Semaphore(max(8 * self.config.concurrency, LIVE_RECORDS))
        seen: set[str] = set()
        for job in jobs:
            if self._stop.is_set():
                break
            if job.record_id in seen:
                raise EngineError(f"record_id {job.record_id!r} appears twice in the input")
            seen.add(job.record_id)
            self._summary.seen += 1
            fp = self.job_fingerprint(job)
            self._fingerprints.add(fp)
            prev = self._state.get(job.record_id)
            if prev is not None and prev.fingerprint != fp:
                raise EngineError(
                    f"{self.output} already holds record {job.record_id} made another way "
                    f"(fingerprint {prev.fingerprint[:12]}, now {fp[:12]}: graph, recipe, "
                    "template, backend, model or sampling changed); write to a new -o file"
                )
            if not self._manifest_started:  # only once the output is known to be ours
                self._manifest_started = True
                self._write_manifest("running")
            if prev is not None and prev.status == "ok":
                self._summary.skipped += 1
                if total is not None:
                    self._progress.set_total(total - self._summary.skipped)
                continue
            await room.acquire()
            if self._stop.is_set():
                room.release()
                break
            task = asyncio.create_task(self._process(job, fp))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
            task.add_done_callback(lambda _: room.release())
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self._fatal is None:
            self._fatal = exc
            self.abandon()

    # -- one record ------------------------------------------------------------------------

    async def _process(self, job: GenerationJob, fp: str) -> None:
        cfg, backend = self.config, self.backend
        request = LLMRequest(
            request_id=job.record_id,
            messages=job.messages,
            params=self.params,
            seed=job.seed,
            json_schema=self._schema,
            spec=job.spec,
        )
        started, started_at = time.monotonic(), _now()
        key = None
        if self.cache is not None:
            key = request_key(backend.name, backend.model, job.messages, request.key_params())
            hit = self.cache.get(key)
            if hit is not None:
                try:
                    parsed = self._parse(hit)
                except LLMError:
                    pass  # unusable cached answer: ask again
                else:
                    self._write(
                        job,
                        fp,
                        "ok",
                        started,
                        started_at,
                        response=hit,
                        parsed=parsed,
                        attempts=0,
                        cached=True,
                    )
                    return
        errors: list[str] = []
        last_s: float | None = None
        timeout = None if backend.local else cfg.timeout_s
        for attempt in range(1, cfg.max_attempts + 1):
            if self._stop.is_set():
                return  # stopping: the record stays pending for the next run
            ticket = await self._limiter.acquire()
            if self._stop.is_set():
                self._limiter.release(ticket, Outcome.OTHER)
                return
            self._summary.attempts += 1
            outcome, t0 = Outcome.OTHER, time.monotonic()
            error: LLMError | None = None
            try:
                async with asyncio.timeout(timeout):
                    response = await backend.complete(request)
                parsed = self._parse(response)
                outcome = Outcome.OK
            except TimeoutError:
                error = TransientError(f"no response within {timeout:g} s")
            except LLMError as err:
                error = err
                if isinstance(err, Overloaded):
                    outcome = Outcome.OVERLOAD
                    self._summary.overloads += 1
            finally:
                self._limiter.release(ticket, outcome)
            last_s = time.monotonic() - t0
            if error is None:
                self._successes += 1
                if key is not None and self.cache is not None:
                    self.cache.put(key, backend.name, backend.model, job.record_id, response)
                self._write(
                    job,
                    fp,
                    "ok",
                    started,
                    started_at,
                    response=response,
                    parsed=parsed,
                    attempts=attempt,
                    errors=errors,
                    last_s=last_s,
                )
                return
            errors.append(f"attempt {attempt}: {error}")
            self._check_reachable(error)
            if not error.retryable or attempt == cfg.max_attempts:
                break
            delay = backoff_delay(
                attempt,
                base_s=cfg.backoff_base_s,
                cap_s=cfg.backoff_max_s,
                retry_after=getattr(error, "retry_after", None),
                max_retry_after_s=cfg.max_retry_after_s,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        self._write(
            job,
            fp,
            "failed",
            started,
            started_at,
            attempts=len(errors),
            errors=errors,
            last_s=last_s,
            reason=errors[-1].split(": ", 1)[1],
        )

    def _check_reachable(self, error: LLMError) -> None:
        if not isinstance(error, ConnectionFailed) or self._successes:
            return
        self._connect_failures += 1
        if self._connect_failures >= UNREACHABLE_AFTER:
            raise EngineError(f"{error}; is the server running? (check --base-url)")

    def _parse(self, response: LLMResponse) -> Any:
        if self.response_model is None:
            return None
        return parse_structured(response.raw, self.response_model).model_dump(mode="json")

    def _write(
        self,
        job: GenerationJob,
        fp: str,
        status: Status,
        started: float,
        started_at: str,
        *,
        attempts: int,
        response: LLMResponse | None = None,
        parsed: Any = None,
        cached: bool = False,
        errors: list[str] | None = None,
        last_s: float | None = None,
        reason: str | None = None,
    ) -> None:
        usage = response.usage if response else None
        cost = self.prices.cost(self.backend.model, usage) if self.prices else None
        record = NoteRecord(
            record_id=job.record_id,
            record_index=job.record_index,
            status=status,
            reason=reason,
            text=response.text if response else None,
            parsed=parsed,
            backend=self.backend.name,
            model=self.backend.model,
            fingerprint=fp,
            params=self._params_json,
            seed=job.seed,
            spec=job.spec,
            raw_response=response.raw if response else None,
            finish_reason=response.finish_reason if response else None,
            response_id=response.response_id if response else None,
            usage=usage,
            cost_usd=cost,
            attempts=attempts,
            cached=cached,
            errors=errors or [],
            timings=Timings(
                started_at=started_at,
                finished_at=_now(),
                elapsed_s=round(time.monotonic() - started, 6),
                last_attempt_s=None if last_s is None else round(last_s, 6),
            ),
        )
        self._out.append(record)
        self._state[job.record_id] = RecordState(status, fp)
        s = self._summary
        if status == "ok":
            s.ok += 1
        else:
            s.failed += 1
        if cached:
            s.cached += 1
        elif usage is not None:
            s.usage = s.usage + usage
            if cost is not None:
                s.cost_usd = (s.cost_usd or 0.0) + cost
        self._progress.advance(ok=s.ok, failed=s.failed, cached=s.cached, limit=self._limiter.limit)

    # -- manifest --------------------------------------------------------------------------

    def _finalise(self, status: str) -> None:
        s = self._summary
        s.elapsed_s = round(time.monotonic() - self._started, 3)
        s.peak_in_flight = self._limiter.peak_in_flight
        s.concurrency_trace = list(self._limiter.trace)
        s.trace_started = self._limiter.started
        counts = Counter(state.status for state in self._state.values())
        s.file_ok, s.file_failed = counts["ok"], counts["failed"]
        if s.cost_usd is not None:
            s.cost_usd = round(s.cost_usd, 6)
        self._write_manifest(status)

    def _previous_runs(self) -> list[dict[str, Any]]:
        old = read_manifest(self.manifest) or {}
        runs = [r for r in old.get("runs", []) if isinstance(r, dict)]
        if runs and runs[-1].get("status") == "running":
            runs[-1]["status"] = "killed"  # it died before it could finish its entry
        return runs

    def _write_manifest(self, status: str) -> None:
        s = self._summary
        limits = [limit for _, limit in self._limiter.trace]
        this_run = {
            "status": status,
            "started_at": self._started_at,
            "finished_at": None if status == "running" else _now(),
            "elapsed_s": round(time.monotonic() - self._started, 3),
            **s.model_dump(
                include={
                    "seen",
                    "skipped",
                    "ok",
                    "failed",
                    "cached",
                    "attempts",
                    "overloads",
                    "repaired_bytes",
                    "cost_usd",
                    "peak_in_flight",
                }
            ),
            "usage": s.usage.model_dump(),
            "concurrency": {"min": min(limits), "max": max(limits)},
        }
        fps = sorted(self._fingerprints)
        counts = Counter(state.status for state in self._state.values())
        manifest = {
            "kgsynth_manifest": 1,
            "status": status,
            "output": self.output.name,
            "fingerprint": fps[0] if len(fps) == 1 else None,
            "fingerprints": fps,
            "backend": self.backend.describe(),
            "params": self._params_json,
            "structured_output": self._schema["name"] if self._schema else None,
            "config": self.config.model_dump(exclude={"progress", "handle_signals"}),
            "cache": str(self.cache.path) if self.cache else None,
            "records": {"ok": counts["ok"], "failed": counts["failed"]},
            **self.manifest_extra,
            "runs": [*self._history, this_run],
            "versions": versions("openai", "aiohttp", "pydantic"),
        }
        write_manifest(self.manifest, manifest)
