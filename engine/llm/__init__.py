"""LLM backends behind one small interface; nothing outside this package speaks to an LLM."""

from engine.llm.base import (
    Backend,
    BackendName,
    ConnectionFailed,
    LLMError,
    LLMRequest,
    LLMResponse,
    Overloaded,
    PermanentError,
    SamplingParams,
    TransientError,
    Usage,
)
from engine.llm.factory import BackendSettings, make_backend

__all__ = [
    "Backend",
    "BackendName",
    "BackendSettings",
    "ConnectionFailed",
    "LLMError",
    "LLMRequest",
    "LLMResponse",
    "Overloaded",
    "PermanentError",
    "SamplingParams",
    "TransientError",
    "Usage",
    "make_backend",
]
