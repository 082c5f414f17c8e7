"""``kgsynth serve``: the REST API (docs/service.md) on uvicorn."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr

from engine.cli.backends import (
    ApiKeyEnvOpt,
    BackendOpt,
    BaseUrlOpt,
    DeviceOpt,
    ModelOpt,
    backend_settings,
)
from engine.errors import EngineError
from engine.llm.factory import ENV_API_KEY
from kg.cli import settings_from_context

DataDirOpt = Annotated[Path, typer.Option(help="Where jobs keep their state and records.")]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    data_dir: DataDirOpt = Path("kgsynth-service"),
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = ENV_API_KEY,
    device: DeviceOpt = "auto",
    max_n: Annotated[int, typer.Option(min=1, help="Most records one job may ask for.")] = 10_000,
    jobs: Annotated[int, typer.Option(min=1, help="Jobs running at once.")] = 2,
    max_pending: Annotated[int, typer.Option(min=1, help="Jobs queued or running.")] = 64,
) -> None:
    """Serve the REST API: generation jobs, named queries, disease lookup (OpenAPI at /docs).

    Bearer tokens come from KGSYNTH_API_TOKENS (comma-separated); without any, the server
    only listens on localhost. Jobs left unfinished by a stopped server resume at start-up.
    """
    import uvicorn

    from engine.service.app import ENV_TOKENS, ServiceConfig, create_app

    tokens = tuple(
        SecretStr(t.strip()) for t in os.environ.get(ENV_TOKENS, "").split(",") if t.strip()
    )
    if not tokens and not _loopback(host):
        raise EngineError(
            f"serve: refusing to listen on {host} without authentication; set {ENV_TOKENS} "
            "(comma-separated bearer tokens) or listen on 127.0.0.1"
        )
    config = ServiceConfig(
        data_dir=data_dir,
        backend=backend_settings(backend, model, base_url, api_key_env, device, None, None),
        graph=settings_from_context(ctx),
        tokens=tokens,
        max_n=max_n,
        concurrency=jobs,
        max_pending=max_pending,
    )
    uvicorn.run(create_app(config), host=host, port=port, log_level="info")


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to the root app."""
    app.command("serve")(serve)
