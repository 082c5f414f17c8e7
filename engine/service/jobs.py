"""Generation jobs of the API: state on disk, run on worker threads, resumed after a restart.

A job is a directory ``<data>/jobs/<id>/`` holding ``job.json`` (the request and its state,
replaced atomically) and ``records.jsonl`` (the runner's append-only output, with its
manifest and request cache). A job a stopped server left ``queued`` or ``running`` is queued
again at start-up; the runner then skips every record already written, so a restart loses
nothing and pays for nothing twice.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.errors import EngineError, validation_detail
from engine.gate import GateConfig
from engine.gate.build import gate_for
from engine.llm.factory import BackendSettings, make_backend
from engine.plan import Planner, PlanRequest, sampling_params
from engine.runner.cache import RequestCache
from engine.runner.output import OutputLog, default_cache_path, write_manifest
from engine.runner.run import RunConfig, Runner, RunSummary
from engine.runner.sources import from_planner
from engine.runner.state import now_iso
from engine.thin import ThinPolicy
from kg.errors import KgError
from kg.store.base import GraphStore

JobStatus = Literal["queued", "running", "complete", "failed", "interrupted"]
RECORDS = "records.jsonl"


class GenerationRequest(BaseModel):
    """``POST /v1/generations``: one ICD code or one disease, ``n`` records of a recipe."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    icd: str | None = Field(default=None, min_length=1, max_length=16, examples=["G30.9"])
    disease: str | None = Field(
        default=None, min_length=1, max_length=200, examples=["Alzheimer's disease"]
    )
    n: int = Field(
        ge=1, description="records to generate, or patients with `patients` (the server caps it)"
    )
    patients: bool = Field(
        default=False,
        description="n counts longitudinal patients, each the disease's visits "
        "(docs/recipes.md#longitudinal-patients)",
    )
    recipe: str = Field(default="dualalign", min_length=1, max_length=64)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    allow_thin: bool = Field(
        default=False, description="plan a thin profile anyway (docs/curation.md#coverage)"
    )

    @model_validator(mode="after")
    def _one_target(self) -> GenerationRequest:
        if (self.icd is None) == (self.disease is None):
            raise ValueError("give exactly one of icd or disease")
        return self

    def plan_request(self) -> PlanRequest:
        try:
            return PlanRequest(
                recipe=self.recipe,
                icd=(self.icd,) if self.icd is not None else (),
                disease=(self.disease,) if self.disease is not None else (),
                n=self.n,
                patients=self.patients,
                seed=self.seed,
                thin=ThinPolicy(allow=self.allow_thin),
            )
        except ValidationError as err:
            raise EngineError(validation_detail(err)) from None


class Progress(BaseModel):
    total: int
    ok: int = 0
    failed: int = 0
    rejected: int = 0


class Job(BaseModel):
    """What ``GET /v1/generations/{id}`` returns (and ``job.json`` holds)."""

    id: str
    request: GenerationRequest
    status: JobStatus = "queued"
    created: str = Field(default_factory=now_iso)
    started: str | None = None
    finished: str | None = None
    error: str | None = None
    progress: Progress


class JobFull(EngineError):
    """Too many jobs are queued or running."""


class Jobs:
    """Jobs on disk, run ``concurrency`` at a time on threads (each with its event loop)."""

    def __init__(
        self,
        root: Path,
        store: GraphStore,
        backend: BackendSettings,
        *,
        concurrency: int = 2,
        max_pending: int = 64,
        gate: GateConfig | None = None,
    ) -> None:
        self.root = root / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.store, self.backend, self.gate = (
            store,
            backend,
            gate or GateConfig(checks=("privacy", "leakage")),
        )
        self.max_pending = max_pending
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="kgsynth-job")
        self._lock = threading.Lock()  # job.json read-modify-writes
        self._runners: dict[str, tuple[Runner, asyncio.AbstractEventLoop]] = {}
        self._stopping = False

    def _dir(self, job_id: str) -> Path:
        return self.root / job_id

    def _save(self, job: Job) -> None:
        write_manifest(self._dir(job.id) / "job.json", job.model_dump(mode="json"))

    def get(self, job_id: str) -> Job | None:
        """The job with its progress counted from its output, or None."""
        path = self._dir(job_id) / "job.json"
        if not job_id.isalnum() or not path.is_file():
            return None
        job = Job.model_validate_json(path.read_text(encoding="utf-8"))
        records = self.records_path(job_id)
        if records.exists():
            states = OutputLog(records).load().records.values()
            counts = {s: sum(1 for r in states if r.status == s) for s in ("ok", "failed")}
            rejected = sum(1 for r in states if r.status == "rejected")
            job.progress = Progress(total=job.progress.total, rejected=rejected, **counts)
        return job

    def records_path(self, job_id: str) -> Path:
        return self._dir(job_id) / RECORDS

    def _pending(self) -> int:
        return sum(1 for p in self.root.glob("*/job.json") if _active(p))

    def submit(self, request: GenerationRequest) -> Job:
        """Plan now (a bad code or recipe is the caller's error), run later."""
        if self._pending() >= self.max_pending:
            raise JobFull(f"{self.max_pending} jobs are already queued or running; retry later")
        planner = self._planner(request)
        job = Job(id=uuid.uuid4().hex, request=request, progress=Progress(total=planner.total))
        self._dir(job.id).mkdir()
        with self._lock:
            self._save(job)
        self._pool.submit(self._run, job.id)
        return job

    def resume_all(self) -> list[str]:
        """Queue again every job a stopped server left unfinished; their ids."""
        ids = []
        for path in sorted(self.root.glob("*/job.json")):
            if _active(path):
                ids.append(path.parent.name)
                self._pool.submit(self._run, path.parent.name)
        return ids

    def _planner(self, request: GenerationRequest) -> Planner:
        return Planner(self.store, request.plan_request())

    def _update(self, job_id: str, change: Callable[[Job], None]) -> None:
        with self._lock:
            job = Job.model_validate_json((self._dir(job_id) / "job.json").read_text("utf-8"))
            change(job)
            self._save(job)

    def _run(self, job_id: str) -> None:
        if self._stopping:
            return
        job = self.get(job_id)
        if job is None:
            return

        def started(j: Job) -> None:
            j.status, j.started, j.error = "running", now_iso(), None

        self._update(job_id, started)
        error: str | None = None
        try:
            summary = asyncio.run(self._generate(job))
        except (EngineError, KgError, OSError) as err:
            error = str(err)
        except Exception as err:  # reported on the job, never a dead worker thread
            error = f"{type(err).__name__}: {err}"
        if error is not None:
            self._update(job_id, lambda j: _finish(j, "failed", error))
            return
        status: JobStatus = "complete" if summary.status == "complete" else "interrupted"
        self._update(job_id, lambda j: _finish(j, status, None))

    async def _generate(self, job: Job) -> RunSummary:
        planner = self._planner(job.request)
        source = from_planner(planner)
        output = self.records_path(job.id)
        backend = make_backend(self.backend)
        cache = RequestCache(default_cache_path(output)) if backend.cacheable else None
        try:
            runner = Runner(
                backend,
                output,
                params=sampling_params(source.generation, None, None, None),
                config=RunConfig(concurrency=16, progress=False, handle_signals=False),
                cache=cache,
                response_model=source.output,
                source=source.identity,
                provenance=source.provenance,
                gate=gate_for(self.gate, planner.profiles),
            )
            self._runners[job.id] = (runner, asyncio.get_running_loop())
            if self._stopping:
                return RunSummary(status="interrupted", output=str(output), manifest="")
            return await runner.run(source.jobs, total=source.total)
        finally:
            self._runners.pop(job.id, None)
            await backend.aclose()
            if cache is not None:
                cache.close()

    def stop(self) -> None:
        """Stop taking jobs; running ones finish their in-flight requests and stay resumable."""
        self._stopping = True
        for runner, loop in list(self._runners.values()):
            loop.call_soon_threadsafe(runner.request_stop)
        self._pool.shutdown(wait=True, cancel_futures=True)


def _active(path: Path) -> bool:
    """Whether the job at ``path`` still has work: queued, running or interrupted."""
    job = Job.model_validate_json(path.read_text(encoding="utf-8"))
    return job.status in ("queued", "running", "interrupted")


def _finish(job: Job, status: JobStatus, error: str | None) -> None:
    job.status, job.finished, job.error = status, now_iso(), error
