"""The one small interface every backend implements: messages + sampling in, text + usage out."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.spec import GenerationSpec

BackendName = Literal["openai", "transformers", "vllm", "batch", "template"]
Messages = list[dict[str, str]]


class SamplingParams(BaseModel):
    """Run-level sampling parameters; part of the fingerprint and of every cache key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(default=0.7, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=1024, ge=1)
    stop: tuple[str, ...] = ()


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def counted(cls, prompt: int, completion: int) -> Usage:
        """Usage of a local engine that counted its own tokens."""
        return cls(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


@cache
def json_schema_for(model: type[BaseModel]) -> dict[str, Any]:
    """``{"name", "schema"}`` of ``model``: the ``json_schema`` of a ``response_format``.

    Computed once per model class; callers must not mutate it.
    """
    return {"name": model.__name__, "schema": model.model_json_schema()}


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """One chat request. ``spec`` (the record's typed spec) is read only by the template backend.

    ``seed`` is the record's sampling seed (sent where the backend supports it);
    ``output`` asks for structured output: the answer must be JSON valid for that model.
    """

    request_id: str
    messages: Messages
    params: SamplingParams
    seed: int | None = None
    output: type[BaseModel] | None = None
    spec: GenerationSpec | None = None

    @property
    def json_schema(self) -> dict[str, Any] | None:
        """``{"name", "schema"}`` of ``output``, or None for free text."""
        return None if self.output is None else json_schema_for(self.output)

    def key_params(self) -> dict[str, Any]:
        """What besides model and messages decides the answer (the cache key's params)."""
        out = self.params.model_dump(mode="json")
        out["seed"] = self.seed
        if self.json_schema is not None:
            out["json_schema"] = self.json_schema
        return out


@dataclass(frozen=True, slots=True)
class LLMResponse:
    """``raw`` is the model's text exactly as returned; ``text`` is it stripped."""

    raw: str
    usage: Usage | None = None
    finish_reason: str | None = None
    response_id: str | None = None
    served_model: str | None = None

    @property
    def text(self) -> str:
        return self.raw.strip()


class LLMError(Exception):
    """A failed request; ``retryable`` says whether another attempt may succeed."""

    retryable = False


class TransientError(LLMError):
    """Worth retrying: 5xx, timeouts, dropped connections, malformed or unparseable output."""

    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(TransientError):
    """429 or 503: the endpoint asks for less load; the runner cuts its concurrency."""


class ConnectionFailed(TransientError):
    """The endpoint could not be reached at all (refused, DNS, reset before a response)."""


class Truncated(TransientError):
    """The answer stopped at the token limit (``finish_reason: length``)."""


class ContentFiltered(TransientError):
    """The provider's filter cut the answer (``finish_reason: content_filter``)."""


class PermanentError(LLMError):
    """The request itself is wrong (400, 422): retrying will not help."""


class Backend(abc.ABC):
    """A text generator. ``complete`` is called concurrently from one event loop."""

    name: BackendName
    model: str
    #: whether answers are worth keeping in the request cache
    cacheable: bool = True
    #: ask the runner for no per-request timeout (local backends cannot be interrupted)
    local: bool = False

    @abc.abstractmethod
    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Answer one request or raise an ``LLMError`` (or ``EngineError`` to stop the run)."""

    async def aclose(self) -> None:
        """Release connections, threads or devices."""
        return None

    def describe(self) -> dict[str, Any]:
        """Configuration for the run manifest, without secrets."""
        return {"backend": self.name, "model": self.model}
