"""Any OpenAI-compatible chat endpoint (OpenAI, Azure v1, vLLM, Ollama, llama.cpp, ...).

Uses ``openai.AsyncOpenAI`` over its aiohttp transport with the client's own retries off
(``max_retries=0``): the runner retries with backoff and AIMD. Requests go through the
client's documented low-level ``post`` with a plain JSON body and come back as text, which
skips the SDK's per-request type transforms (about half its CPU cost per call) and lets
malformed bodies be parsed defensively. The API key is read from the environment only.
Every response's ``x-ratelimit-*`` headers pace the next requests (``RateLimits``).
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import openai

from engine.errors import EngineError
from engine.llm.base import (
    Backend,
    ConnectionFailed,
    LLMError,
    LLMRequest,
    LLMResponse,
    Overloaded,
    PermanentError,
    TransientError,
)
from engine.llm.body import OPENAI_URL, chat_body, is_openai, token_field
from engine.llm.factory import ENV_API_KEY, ENV_BASE_URL
from engine.llm.parsing import parse_chat_completion
from engine.llm.ratelimit import RateLimits
from kg.redact import display_url, scrub

#: a placeholder for local servers that ignore keys (vLLM, Ollama, llama.cpp)
NO_KEY = "EMPTY"
#: transport errors (httpx / httpx2 names) raised before any response arrived
_CONNECT_ERRORS = frozenset({"ConnectError", "ConnectTimeout"})


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def token_estimate(request: LLMRequest) -> int:
    """Tokens a request may count against a tokens-per-minute limit: prompt characters / 4
    (OpenAI's rule of thumb for English) plus the completion limit."""
    chars = sum(len(m.get("content", "")) for m in request.messages)
    return chars // 4 + request.params.max_tokens


def _error_message(err: openai.APIStatusError) -> str:
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    text = err.response.text if err.response is not None else ""
    return " ".join(text.split())[:200] or err.__class__.__name__


class OpenAIBackend(Backend):
    """Chat completions against ``base_url`` (flag, else ``OPENAI_BASE_URL``, else OpenAI)."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = ENV_API_KEY,
    ) -> None:
        self.model = model
        url = (base_url or os.environ.get(ENV_BASE_URL) or OPENAI_URL).rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EngineError(
                f"--base-url must be an http(s) URL such as http://localhost:8000/v1, "
                f"got {display_url(url)!r}"
            )
        if parts.username is not None or parts.password is not None:
            raise EngineError(
                f"--base-url {display_url(url)} holds credentials (user:password@): "
                f"give the endpoint without them and the key in {api_key_env}"
            )
        self.base_url = url
        self.display_url = display_url(url)
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env, "")
        if not key and is_openai(url):
            raise EngineError(f"no API key for {self.display_url}: set {api_key_env}")
        self._secrets = (key,)
        self._key = key or NO_KEY
        self._tokens = token_field(url)
        self._client: openai.AsyncOpenAI | None = None
        self.limits = RateLimits()

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    def _get_client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            hooks = {"response": [self._on_response]}
            try:
                http_client: Any = openai.DefaultAioHttpClient(event_hooks=hooks)
            except (AttributeError, RuntimeError):  # no aiohttp transport
                http_client = openai.DefaultAsyncHttpxClient(event_hooks=hooks)
            self._client = openai.AsyncOpenAI(
                api_key=self._key,
                base_url=self.base_url,
                max_retries=0,
                http_client=http_client,
            )
        return self._client

    async def _on_response(self, response: Any) -> None:
        self.limits.update(response.headers)

    def body(self, request: LLMRequest) -> dict[str, Any]:
        return chat_body(self.model, request, self._tokens)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        client = self._get_client()
        pause = self.limits.reserve(token_estimate(request))
        if pause:
            await asyncio.sleep(pause)
        try:
            text = await client.post("/chat/completions", cast_to=str, body=self.body(request))
        except openai.APIStatusError as err:
            raise self._status_error(err) from None
        except openai.APIConnectionError as err:  # includes APITimeoutError
            cause = err.__cause__ or err
            detail = self._scrub(str(cause)) or type(cause).__name__
            if type(cause).__name__ in _CONNECT_ERRORS:
                raise ConnectionFailed(f"cannot connect to {self.display_url}: {detail}") from None
            if isinstance(err, openai.APITimeoutError):
                raise TransientError("request timed out") from None
            raise TransientError(f"connection to {self.display_url} broke: {detail}") from None
        return parse_chat_completion(text)

    def _status_error(self, err: openai.APIStatusError) -> LLMError | EngineError:
        status = err.status_code
        message = self._scrub(_error_message(err))[:300]
        where = f"HTTP {status} from {self.display_url}: {message}"
        retry_after = parse_retry_after(err.response.headers)
        if status in (401, 403):
            return EngineError(
                f"{self.display_url} refused the credentials (HTTP {status}); "
                f"check {self.api_key_env}: {message}"
            )
        if status == 404:
            return EngineError(
                f"{self.display_url} has no model {self.model!r} or no /chat/completions "
                f"(HTTP 404): {message}; check --model and --base-url"
            )
        if status in (429, 503):
            return Overloaded(where, retry_after)
        if status in (408, 409) or status >= 500:
            return TransientError(where, retry_after)
        return PermanentError(where)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            "base_url": self.display_url,
            "api_key_env": self.api_key_env,
        }
