"""The runner: jobs in, one JSONL record out per job, at the endpoint's full speed.

``Runner.run()`` owns the output for the run (one writer: ``OutputLock``), refuses an output
holding another run identity, then schedules jobs under AIMD concurrency. Each record is
tried by the ``AttemptPolicy`` (retries, backoff, timeouts) and handed to the ``RecordSink``,
which writes output, cache and manifest on its own thread. With a ``Gate``, every answer
passes it before its record is written (``engine.runner.gated``: regenerations, decisions
in input order for the near-duplicate check). Ctrl-C / SIGTERM: the first
signal stops new requests and lets in-flight ones finish and be written; a second abandons
them (nothing is half-written either way). Each ``run()`` has its own ``RunState``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console

from engine.errors import EngineError
from engine.gate import Gate
from engine.llm.base import Backend, LLMError, LLMRequest, SamplingParams, json_schema_for
from engine.llm.parsing import check_response
from engine.llm.pricing import PriceTable
from engine.provenance import SHORT, RunIdentity, fingerprint, request_key, sha256_hex
from engine.runner import manifest
from engine.runner.aimd import AimdLimiter
from engine.runner.attempts import AttemptPolicy, RetrySettings, Tried
from engine.runner.cache import CachedAnswer, RequestCache
from engine.runner.gated import Settled, accepted_notes, settle
from engine.runner.lock import OutputLock
from engine.runner.output import (
    OutputLog,
    RecordState,
    manifest_path,
    read_manifest,
    write_manifest,
)
from engine.runner.progress import RunProgress
from engine.runner.records import GenerationJob, NoteRecord, Status, Timings
from engine.runner.sink import RecordSink
from engine.runner.state import RunState, RunSummary, Turns, now_iso

log = logging.getLogger("kgsynth.runner")
#: records being worked on at once (in flight, waiting for a slot or backing off)
LIVE_RECORDS = 1024
#: records per cache query: the first batch small (requests start at once), then doubling
FIRST_BATCH, MAX_BATCH = 16, 512


class RunConfig(BaseModel):
    """How a run behaves; none of it enters the fingerprint or the run identity."""

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


class Runner:
    """Runs jobs through one backend into one output file (resuming what it holds).

    ``source`` is what decides the jobs (the plan request and KG hash, or a specs file's
    digest): with backend, model, sampling and structured output it is the run identity,
    and so are the settings of ``gate`` (when one with checks is given).
    """

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
        source: Mapping[str, Any] | None = None,
        provenance: Mapping[str, Any] | None = None,
        console: Console | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.backend = backend
        self.gate = gate if gate is not None and gate.enabled else None
        self.params = params
        self.config = config or RunConfig()
        self.cache = cache if backend.cacheable else None
        self.prices = prices
        self.response_model = response_model
        schema = json_schema_for(response_model) if response_model else None
        self.output = output
        self.manifest = manifest_path(output)
        self.provenance = dict(provenance or {})
        self._console = console or Console(stderr=True, markup=False, emoji=False, highlight=False)
        self._params_json = params.model_dump(mode="json")
        decided_by = dict(source or {})
        if self.gate is not None:
            decided_by["gate"] = self.gate.identity()
        self.identity = RunIdentity(
            source=decided_by,
            backend=backend.name,
            model=backend.model,
            params=self._params_json,
            structured_output=(
                f"{schema['name']}:{sha256_hex(schema)[:SHORT]}" if schema else None
            ),
        )
        self._run: RunState | None = None

    # -- control ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Start no new requests; in-flight ones finish and are written."""
        if self._run is not None:
            self._run.stop.set()

    def abandon(self) -> None:
        """Cancel in-flight requests too (their records stay pending for the next run)."""
        if self._run is not None:
            self._run.stop.set()
            for task in list(self._run.tasks):
                task.cancel()

    def _on_signal(self) -> None:
        run = self._run
        if run is None:
            return
        if run.stop.is_set():
            self._console.print("second interrupt: abandoning in-flight requests", style="yellow")
            self.abandon()
            return
        self._console.print(
            f"stopping: finishing {len(run.tasks)} in-flight record(s); "
            "interrupt again to abandon them",
            style="yellow",
        )
        self.request_stop()

    # -- the run ---------------------------------------------------------------------------

    def job_fingerprint(self, job: GenerationJob) -> str:
        spec = job.spec
        return fingerprint(
            kg_hash=spec.kg_hash if spec else None,
            recipe=spec.recipe if spec else None,
            template_hash=spec.template_hash if spec else None,
            backend=self.backend.name,
            model=self.backend.model,
            params=self._params_json,
        )

    async def run(self, jobs: Iterable[GenerationJob], total: int | None = None) -> RunSummary:
        """Generate every job not already ``ok`` in the output; returns this run's summary."""
        with OutputLock(self.output):
            return await self._locked_run(jobs, total)

    def _new_state(self, out: OutputLog, old: dict[str, Any] | None, total: int | None) -> RunState:
        cfg = self.config
        contents = out.load()
        manifest.check_identity(self.output, self.identity, contents, old)
        limiter = AimdLimiter(
            cfg.concurrency,
            minimum=min(cfg.min_concurrency, cfg.concurrency),
            initial=cfg.initial_concurrency,
            increase_every=cfg.increase_every,
        )
        stop = asyncio.Event()
        retry = RetrySettings(
            cfg.max_attempts,
            cfg.timeout_s,
            cfg.backoff_base_s,
            cfg.backoff_max_s,
            cfg.max_retry_after_s,
        )
        state = RunState(
            summary=RunSummary(
                status="complete",
                output=str(self.output),
                manifest=str(self.manifest),
                identity=self.identity.fingerprint,
                repaired_bytes=contents.repaired_bytes,
            ),
            contents=contents,
            history=manifest.previous_runs(old, self.identity, contents),
            limiter=limiter,
            policy=AttemptPolicy(self.backend, retry, limiter, stop),
            sink=RecordSink(out, self.cache),
            progress=RunProgress(total, enabled=cfg.progress, console=self._console),
            stop=stop,
        )
        if self.gate is not None:
            state.gate = self.gate.start()
            state.turns = Turns() if self.gate.ordered else None
            if any(r.status == "ok" for r in contents.records.values()):
                state.gate.load_accepted(accepted_notes(self.output))
        return state

    async def _locked_run(self, jobs: Iterable[GenerationJob], total: int | None) -> RunSummary:
        out = OutputLog(self.output, self.config.fsync_interval_s)
        old = await asyncio.to_thread(read_manifest, self.manifest)
        run = await asyncio.to_thread(self._new_state, out, old, total)
        self._run = run
        loop = asyncio.get_running_loop()
        signals: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM) if self.config.handle_signals else ():
            with contextlib.suppress(NotImplementedError):  # no loop signal handlers here
                loop.add_signal_handler(sig, self._on_signal)
                signals.append(sig)
        run.sink.start()
        status = "aborted"
        try:
            with run.progress:
                await self._schedule(run, jobs, total)
            if run.fatal is None:
                run.summary.status = "interrupted" if run.stop.is_set() else "complete"
                status = run.summary.status
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            for task in list(run.tasks):
                task.cancel()
            await asyncio.gather(*run.tasks, return_exceptions=True)
            if run.manifest_started or status != "aborted":
                self._finalise(run, status)
            self._run = None
            await run.sink.aclose()
        if run.fatal is not None:
            raise run.fatal
        return run.summary

    async def _schedule(
        self, run: RunState, jobs: Iterable[GenerationJob], total: int | None
    ) -> None:
        room = asyncio.Semaphore(max(8 * self.config.concurrency, LIVE_RECORDS))
        seen: set[str] = set()
        batch: list[tuple[GenerationJob, str]] = []
        size = FIRST_BATCH
        for job in jobs:
            if run.stop.is_set():
                break
            if job.record_id in seen:
                raise EngineError(f"record_id {job.record_id!r} appears twice in the input")
            seen.add(job.record_id)
            run.summary.seen += 1
            fp = self.job_fingerprint(job)
            run.fingerprints.add(fp)
            prev = run.records.get(job.record_id)
            if prev is not None and prev.fingerprint != fp:
                raise EngineError(
                    f"{self.output} already holds record {job.record_id} made another way "
                    f"(fingerprint {prev.fingerprint[:SHORT]}, now {fp[:SHORT]}: graph, recipe, "
                    "template, backend, model or sampling changed); write to a new -o file"
                )
            if not run.manifest_started:  # only once the output is known to be ours
                run.manifest_started = True
                self._write_manifest(run, "running")
            if prev is not None and prev.status in ("ok", "rejected"):
                run.summary.skipped += 1
                if total is not None:
                    run.progress.set_total(total - run.summary.skipped)
                continue
            batch.append((job, fp))
            if len(batch) >= size:
                await self._dispatch(run, batch, room)
                batch, size = [], min(2 * size, MAX_BATCH)
        await self._dispatch(run, batch, room)
        while run.tasks:
            await asyncio.wait(list(run.tasks))

    async def _dispatch(
        self, run: RunState, batch: list[tuple[GenerationJob, str]], room: asyncio.Semaphore
    ) -> None:
        """Answer the batch's cached records (one cache query), start tasks for the rest."""
        backend = self.backend
        work = []
        for job, fp in batch:
            request = LLMRequest(
                request_id=job.record_id,
                messages=job.messages,
                params=self.params,
                seed=job.seed,
                output=self.response_model,
                spec=job.spec,
            )
            key = None
            if self.cache is not None:
                key = request_key(backend.name, backend.model, job.messages, request.key_params())
            work.append((job, fp, request, key))
        hits = await run.sink.lookup([k for *_, k in work if k is not None]) if self.cache else {}
        for job, fp, request, key in work:
            if run.stop.is_set():
                return
            hit = hits.get(key) if key is not None else None
            cached = None
            if hit is not None:
                try:
                    cached = Tried(response=hit, parsed=check_response(request, hit))
                except LLMError:
                    pass  # unusable cached answer: ask again
                else:
                    if run.gate is None:
                        self._write(run, job, fp, cached, time.monotonic(), now_iso(), cached=True)
                        continue
            await room.acquire()
            if run.stop.is_set():
                room.release()
                return
            seq, run.next_seq = run.next_seq, run.next_seq + 1
            task = asyncio.create_task(self._process(run, job, fp, request, key, seq, cached))
            run.tasks.add(task)
            task.add_done_callback(lambda t: self._task_done(run, t))
            task.add_done_callback(lambda _: room.release())

    def _task_done(self, run: RunState, task: asyncio.Task[None]) -> None:
        run.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and run.fatal is None:
            run.fatal = exc
            run.stop.set()
            for other in list(run.tasks):
                other.cancel()

    # -- one record ------------------------------------------------------------------------

    async def _process(
        self,
        run: RunState,
        job: GenerationJob,
        fp: str,
        request: LLMRequest,
        key: str | None,
        seq: int = 0,
        cached: Tried | None = None,
    ) -> None:
        started, started_at = time.monotonic(), now_iso()
        tried = cached or await run.policy.attempt(request)
        if tried.stopped:
            if run.turns is not None:
                run.turns.abandon(seq)
            return  # stopping: the record stays pending for the next run
        answer = None
        backend = self.backend
        if tried.response is not None and key is not None and cached is None:
            answer = CachedAnswer(key, backend.name, backend.model, job.record_id, tried.response)
        if run.gate is None:
            self._write(run, job, fp, tried, started, started_at, answer=answer)
            return
        answers = [answer] if answer is not None else []
        settled = await settle(
            run,
            job,
            request,
            tried,
            seq,
            backend=(backend.name, backend.model),
            cache=self.cache,
            first_cached=cached is not None,
            answers=answers,
        )
        if answers and self.cache is not None:  # before the record, even if it stays pending
            cache = self.cache
            run.sink.call(lambda: cache.put_many(answers))
        if settled is None:
            if run.turns is not None:
                run.turns.abandon(seq)
            return  # stopping before the gate decided: the record stays pending
        self._write(
            run,
            job,
            fp,
            settled.tried,
            started,
            started_at,
            cached=cached is not None,
            settled=settled,
        )
        if run.turns is not None:
            run.turns.settle(seq)

    def _write(
        self,
        run: RunState,
        job: GenerationJob,
        fp: str,
        tried: Tried,
        started: float,
        started_at: str,
        *,
        cached: bool = False,
        answer: CachedAnswer | None = None,
        settled: Settled | None = None,
    ) -> None:
        response = tried.response
        usage = response.usage if response else None
        status: Status = "ok" if response is not None else "failed"
        last = tried.errors[-1] if response is None and tried.errors else None
        reason = last.message if last else None
        if settled is not None:  # gated: usage of every answer; a rejection's reason
            usage, status = settled.usage, settled.status
            if status == "rejected":
                last, final = None, settled.report.rejections[-1]
                reason = f"{final.check}: {final.detail}"
        cost = self.prices.cost(self.backend.model, usage) if self.prices else None
        record = NoteRecord(
            record_id=job.record_id,
            record_index=job.record_index,
            status=status,
            reason=reason,
            failure=last.kind if last else None,
            text=response.text if response else None,
            parsed=tried.parsed,
            backend=self.backend.name,
            model=self.backend.model,
            fingerprint=fp,
            run=self.identity.fingerprint,
            params=self._params_json,
            seed=job.seed,
            spec=job.spec,
            raw_response=response.raw if response else None,
            finish_reason=response.finish_reason if response else None,
            response_id=response.response_id if response else None,
            usage=usage,
            cost_usd=cost,
            attempts=settled.attempts if settled else 0 if cached else tried.attempts,
            cached=cached,
            errors=[str(e) for e in tried.errors],
            gate=settled.report if settled else None,
            timings=Timings(
                started_at=started_at,
                finished_at=now_iso(),
                elapsed_s=round(time.monotonic() - started, 6),
                last_attempt_s=None if tried.last_s is None else round(tried.last_s, 6),
            ),
        )
        run.sink.write(record, answer)
        run.records[job.record_id] = RecordState(record.status, fp)
        s = run.summary
        if record.status == "ok":
            s.ok += 1
        elif record.status == "rejected":
            s.rejected += 1
        else:
            s.failed += 1
            run.failures[record.reason or "unknown"] += 1
        if cached:
            s.cached += 1
        if usage is not None and (settled is not None or not cached):
            s.usage = s.usage + usage
            if cost is not None:
                s.cost_usd = (s.cost_usd or 0.0) + cost
        run.progress.advance(ok=s.ok, failed=s.failed, cached=s.cached, limit=run.limiter.limit)

    # -- manifest --------------------------------------------------------------------------

    def _finalise(self, run: RunState, status: str) -> None:
        s = run.summary
        s.elapsed_s = round(time.monotonic() - run.started, 3)
        s.attempts = run.policy.counters.attempts
        s.overloads = run.policy.counters.overloads
        s.peak_in_flight = run.limiter.peak_in_flight
        s.concurrency_trace = list(run.limiter.trace)
        s.trace_started = run.limiter.started
        s.file_ok = sum(r.status == "ok" for r in run.records.values())
        s.file_rejected = sum(r.status == "rejected" for r in run.records.values())
        s.file_failed = len(run.records) - s.file_ok - s.file_rejected
        s.gate = run.gate.counts if run.gate else None
        s.failure_reasons = dict(run.failures.most_common())
        if s.cost_usd is not None:
            s.cost_usd = round(s.cost_usd, 6)
        self._write_manifest(run, status)

    def _write_manifest(self, run: RunState, status: str) -> None:
        run.summary.attempts = run.policy.counters.attempts
        run.summary.overloads = run.policy.counters.overloads
        data = manifest.build(
            run,
            status,
            output=self.output,
            identity=self.identity,
            backend=self.backend.describe(),
            config=self.config.model_dump(exclude={"progress", "handle_signals"}),
            cache=self.cache.path if self.cache else None,
            source=self.provenance,
            gate=self.gate.identity() if self.gate else None,
        )
        run.sink.call(lambda: write_manifest(self.manifest, data))
