"""Backend settings (from CLI flags or config) and the one function that builds a backend."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import EngineError
from engine.llm.base import Backend, BackendName

#: the standard variables of OpenAI's clients, honoured by the openai backend
ENV_BASE_URL = "OPENAI_BASE_URL"
ENV_API_KEY = "OPENAI_API_KEY"
#: batch sizes of the local backends unless told otherwise
DEFAULT_BATCH: dict[str, int] = {"transformers": 8, "vllm": 256}


class BackendSettings(BaseModel):
    """Which backend and how to reach it. Holds no secrets: keys stay in the environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: BackendName
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = ENV_API_KEY
    device: str = "auto"
    batch_size: int | None = Field(default=None, ge=1, description="local backends")
    ingest: Path | None = None


def make_backend(settings: BackendSettings) -> Backend:
    """Build the backend; a missing model or package is an ``EngineError`` naming the fix."""
    kind = settings.kind
    if kind == "template":
        from engine.llm.template import TemplateBackend

        return TemplateBackend()
    if not settings.model:
        raise EngineError(f"--backend {kind} needs --model")
    if kind == "openai":
        from engine.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(
            settings.model, base_url=settings.base_url, api_key_env=settings.api_key_env
        )
    if kind == "transformers":
        from engine.llm.transformers_backend import TransformersBackend

        return TransformersBackend(
            settings.model,
            device=settings.device,
            batch_size=settings.batch_size or DEFAULT_BATCH[kind],
        )
    if kind == "vllm":
        from engine.llm.vllm_backend import VLLMBackend

        return VLLMBackend(settings.model, batch_size=settings.batch_size or DEFAULT_BATCH[kind])
    if settings.ingest is None:
        raise EngineError("--backend batch reads results with --ingest FILE")
    from engine.llm.batch import BatchBackend

    return BatchBackend(settings.model, settings.ingest)
