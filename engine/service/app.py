"""The REST API (FastAPI): generation jobs, read-only named queries, disease lookup.

Every ``/v1`` route needs ``Authorization: Bearer <token>`` when tokens are configured
(``KGSYNTH_API_TOKENS``); ``kgsynth serve`` refuses to listen beyond localhost without them.
``/healthz`` says the process is up, ``/readyz`` that the graph and the LLM answer.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from engine.errors import EngineError
from engine.llm.factory import BackendSettings
from engine.profile import Catalogue, DiseaseProfile, load_profile
from engine.service.card import AuditCache, render_card
from engine.service.jobs import GenerationRequest, Job, JobFull, Jobs
from kg.errors import KgError
from kg.queries import check_params, get_query, named_queries
from kg.settings import GraphSettings
from kg.store import open_store
from kg.store.base import GraphStore

ENV_TOKENS = "KGSYNTH_API_TOKENS"
#: route annotations are resolved in this module's globals, so the scheme lives here
BEARER = HTTPBearer(auto_error=False)
#: rows a query answer holds at most (the rest is cut, and the answer says so)
MAX_ROWS = 5000


class ServiceConfig(BaseModel):
    """How the service runs; tokens come from the environment only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path
    backend: BackendSettings
    graph: GraphSettings | None = None
    tokens: tuple[SecretStr, ...] = ()
    max_n: int = Field(default=10_000, ge=1)
    concurrency: int = Field(default=2, ge=1, description="jobs running at once")
    max_pending: int = Field(default=64, ge=1, description="jobs queued or running")


class QueryInfo(BaseModel):
    name: str
    description: str
    params: tuple[str, ...]
    columns: tuple[str, ...]


class QueryCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict)


class QueryAnswer(BaseModel):
    name: str
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    truncated: bool = False


class Problem(BaseModel):
    detail: str


def create_app(config: ServiceConfig) -> FastAPI:
    """The application; the graph store opens at start-up and jobs left unfinished resume."""
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store = open_store(config.graph)
        jobs = Jobs(
            config.data_dir,
            store,
            config.backend,
            concurrency=config.concurrency,
            max_pending=config.max_pending,
        )
        state["store"], state["jobs"] = store, jobs
        jobs.resume_all()
        try:
            yield
        finally:
            jobs.stop()
            store.close()

    app = FastAPI(
        title="kgsynth",
        summary="Clinically grounded synthetic clinical notes from a curated knowledge graph",
        version=_version(),
        lifespan=lifespan,
    )

    def known(header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        given = token.strip().encode() if scheme.lower() == "bearer" else b""
        return not config.tokens or any(
            secrets.compare_digest(given, t.get_secret_value().encode()) for t in config.tokens
        )

    @app.middleware("http")
    async def require_token(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Before routing and body parsing: an anonymous caller learns nothing but 401."""
        if request.url.path.startswith("/v1") and not known(request.headers.get("authorization")):
            return JSONResponse(
                {"detail": "missing or unknown bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await call_next(request)

    def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> None:
        """The security scheme in the OpenAPI document (the middleware has checked it)."""

    def store() -> GraphStore:
        return state["store"]

    def jobs() -> Jobs:
        return state["jobs"]

    @app.exception_handler(EngineError)
    @app.exception_handler(KgError)
    async def _bad_request(_: Request, err: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=400)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": Problem}})
    def readyz() -> JSONResponse:
        """The graph answers a query and the LLM endpoint answers ``GET /models``."""
        checks = {"graph": _graph_ready(store()), "llm": _llm_ready(config.backend)}
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", **checks},
            status_code=200 if ready else 503,
        )

    v1 = [Depends(authorised)]

    @app.post(
        "/v1/generations",
        status_code=202,
        tags=["generations"],
        dependencies=v1,
        responses={400: {"model": Problem}, 429: {"model": Problem}},
    )
    def start_generation(request: GenerationRequest) -> Job:
        """Plan the records now (an unknown code or recipe is a 400) and run them as a job."""
        if request.n > config.max_n:
            raise HTTPException(422, f"n is {request.n:,}; this server allows {config.max_n:,}")
        try:
            return jobs().submit(request)
        except JobFull as err:
            raise HTTPException(429, str(err)) from None

    @app.get(
        "/v1/generations/{job_id}",
        tags=["generations"],
        dependencies=v1,
        responses={404: {"model": Problem}},
    )
    def generation(job_id: str) -> Job:
        """The job's status and progress (records ok, failed, rejected of the total)."""
        return _job(jobs(), job_id)

    @app.get(
        "/v1/generations/{job_id}/records",
        tags=["generations"],
        dependencies=v1,
        response_class=StreamingResponse,
        responses={200: {"content": {"application/x-ndjson": {}}}, 404: {"model": Problem}},
    )
    def generation_records(job_id: str) -> StreamingResponse:
        """The records written so far, one JSON object a line (complete lines only)."""
        _job(jobs(), job_id)
        path = jobs().records_path(job_id)
        return StreamingResponse(_lines(path), media_type="application/x-ndjson")

    @app.get("/v1/kg/queries", tags=["graph"], dependencies=v1)
    def queries() -> list[QueryInfo]:
        """The named read-only queries (docs/cypher-cookbook.md), with their parameters."""
        return [
            QueryInfo(name=q.name, description=q.description, params=q.params, columns=q.columns)
            for q in named_queries().values()
        ]

    @app.post(
        "/v1/kg/queries/{name}",
        tags=["graph"],
        dependencies=v1,
        responses={400: {"model": Problem}, 404: {"model": Problem}},
    )
    def run_query(name: str, call: QueryCall) -> QueryAnswer:
        """Run one named query, read-only, with its parameters as values (never as text)."""
        if name not in named_queries():
            raise HTTPException(404, f"no named query {name!r}; GET /v1/kg/queries lists them")
        query = get_query(name)
        check_params(query, call.params)
        rows = store().read(query.text, call.params)
        return QueryAnswer(
            name=name,
            columns=query.columns,
            rows=[dict(r) for r in rows[:MAX_ROWS]],
            truncated=len(rows) > MAX_ROWS,
        )

    audit = AuditCache()

    def target(icd: str | None, name: str | None) -> DiseaseProfile:
        if (icd is None) == (name is None):
            raise HTTPException(422, "give exactly one of icd or name")
        catalogue = Catalogue(store())
        found = catalogue.icd(icd) if icd is not None else catalogue.disease(str(name))
        return load_profile(store(), found)

    @app.get(
        "/v1/cards/disease",
        tags=["graph"],
        dependencies=v1,
        response_class=HTMLResponse,
        responses={400: {"model": Problem}},
    )
    def disease_card(
        icd: Annotated[str | None, Query(max_length=16, examples=["G30.9"])] = None,
        name: Annotated[str | None, Query(max_length=200)] = None,
        recipe: Annotated[str | None, Query(max_length=64)] = None,
    ) -> HTMLResponse:
        """The disease card: the profile with every figure's evidence, audit findings and
        a few planned records with their prompts (one self-contained page)."""
        return HTMLResponse(render_card(store(), target(icd, name), audit, recipe))

    @app.get(
        "/v1/kg/diseases",
        tags=["graph"],
        dependencies=v1,
        responses={400: {"model": Problem}},
    )
    def disease(
        icd: Annotated[str | None, Query(max_length=16, examples=["G30.9"])] = None,
        name: Annotated[str | None, Query(max_length=200)] = None,
    ) -> DiseaseProfile:
        """The profile the engine reads for an ICD-10-CM code or a disease name."""
        return target(icd, name)

    return app


def _job(jobs: Jobs, job_id: str) -> Job:
    job = jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no generation job {job_id!r}")
    return job


def _lines(path: Path) -> Iterator[bytes]:
    """Complete lines, about 1 MiB at a time (a line still being written is left out)."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        batch: list[bytes] = []
        held = 0
        for line in fh:
            if not line.endswith(b"\n"):
                break
            batch.append(line)
            held += len(line)
            if held >= 1 << 20:
                yield b"".join(batch)
                batch, held = [], 0
        if batch:
            yield b"".join(batch)


def _graph_ready(store: GraphStore) -> str:
    try:
        store.read("RETURN 1 AS one")
    except (KgError, OSError) as err:
        return f"unreachable: {err}"
    return "ok"


def _llm_ready(backend: BackendSettings) -> str:
    if backend.kind != "openai" or not backend.base_url:
        return "ok"  # template and local backends: nothing to reach
    try:
        answer = httpx.get(backend.base_url.rstrip("/") + "/models", timeout=3.0)
    except httpx.HTTPError as err:
        return f"unreachable: {type(err).__name__}"
    return "ok" if answer.status_code < 500 else f"HTTP {answer.status_code}"


def _version() -> str:
    from importlib.metadata import version

    return version("kgsynth")
