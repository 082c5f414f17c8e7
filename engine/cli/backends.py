"""What ``generate`` and ``annotate`` share: the backend choice, exit codes, logging."""

from __future__ import annotations

import logging
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.logging import RichHandler

from engine.errors import EngineError
from engine.llm.factory import ENV_BASE_URL, BackendSettings
from kg.cli import make_console

ENV_MODEL = "KGSYNTH_MODEL"
#: exit status when the run finished but some records failed
EXIT_FAILED_RECORDS = 3
#: exit status of an interrupted run (as for SIGINT)
EXIT_INTERRUPTED = 130


class BackendChoice(StrEnum):
    openai = "openai"
    transformers = "transformers"
    vllm = "vllm"
    batch = "batch"
    template = "template"


# the backend and run options generate and annotate share
BackendOpt = Annotated[
    BackendChoice | None,
    typer.Option(
        help="LLM backend (default: openai when an endpoint is configured, else template)."
    ),
]
ModelOpt = Annotated[str | None, typer.Option(help=f"Model name or local path; env {ENV_MODEL}.")]
BaseUrlOpt = Annotated[
    str | None, typer.Option(help=f"OpenAI-compatible endpoint; env {ENV_BASE_URL}.")
]
ApiKeyEnvOpt = Annotated[str, typer.Option(help="Environment variable holding the API key.")]
ConcurrencyOpt = Annotated[
    int | None, typer.Option(min=1, help="Most requests in flight (AIMD lowers it on 429/503).")
]
CacheOpt = Annotated[Path | None, typer.Option(help="Request cache (default: beside -o).")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not use the request cache.")]
PricesOpt = Annotated[Path | None, typer.Option(help="JSON price table, USD per 1M tokens.")]
BatchFileOpt = Annotated[
    Path | None, typer.Option(help="Batch requests to write (--backend batch).")
]
IngestOpt = Annotated[Path | None, typer.Option(help="Batch output to ingest (--backend batch).")]
DeviceOpt = Annotated[str, typer.Option(help="transformers device: auto, cpu, cuda, mps.")]
ProgressOpt = Annotated[
    bool | None,
    typer.Option("--progress/--no-progress", help="Default: when stderr is a terminal."),
]
_err = make_console(stderr=True)  # no markup or emoji: messages carry paths and reasons


def backend_settings(
    backend: BackendChoice | None,
    model: str | None,
    base_url: str | None,
    api_key_env: str,
    device: str,
    batch_size: int | None,
    ingest: Path | None,
) -> BackendSettings:
    """The backend asked for; the template backend only when nothing at all was asked."""
    model = model or os.environ.get(ENV_MODEL)
    endpoint = base_url or os.environ.get(ENV_BASE_URL) or os.environ.get(api_key_env)
    where = f"--base-url URL (or {ENV_BASE_URL}), or set {api_key_env} for api.openai.com"
    if backend is None:
        if not endpoint and not model:
            _err.print(
                f"no LLM endpoint configured (--base-url, {ENV_BASE_URL} or "
                f"{api_key_env}): using the template backend, which writes rule-based notes "
                "labelled backend=template, not LLM text",
                style="yellow",
            )
            backend = BackendChoice.template
        elif not endpoint:
            raise EngineError(
                f"--model {model} needs an endpoint: pass {where}; or choose a local "
                "backend (--backend transformers / vllm)"
            )
        elif not model:
            raise EngineError(
                f"an LLM endpoint is configured: pass --model (or set "
                f"{ENV_MODEL}), or choose --backend template"
            )
        else:
            backend = BackendChoice.openai
    elif backend is BackendChoice.openai and model and not endpoint:
        raise EngineError(f"--backend openai needs an endpoint: pass {where}")
    return BackendSettings(
        kind=backend.value,
        model=model,
        base_url=base_url,
        api_key_env=api_key_env,
        device=device,
        batch_size=batch_size,
        ingest=ingest,
    )


def setup_logging() -> None:
    """Runner warnings on stderr (once per process)."""
    logger = logging.getLogger("kgsynth")
    if not logger.handlers:
        logger.addHandler(RichHandler(console=_err, show_time=False, show_path=False))
        logger.setLevel(logging.WARNING)
