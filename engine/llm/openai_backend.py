"""Any OpenAI-compatible chat endpoint (OpenAI, Azure v1, vLLM, Ollama, llama.cpp, ...).

Posts ``chat_body`` as JSON to ``{base_url}/chat/completions`` over one ``aiohttp`` session
and parses the answer defensively. Connections are kept alive and opened as requests need
them, so the pool grows to the runner's concurrency (capped at ``MAX_CONNECTIONS``). No
retries here: the runner retries with backoff and AIMD and times each request out; the
session's own timeouts are the openai SDK's defaults (5 s to connect, 600 s in all). The
``openai`` SDK is not on this path: its per-request machinery (openai 3.57: httpx2 URL and
header models, an auth-retry layer, proxy and netrc look-ups in a thread, over its own
aiohttp transport) cost ~1.4 ms of client CPU per request against ~0.4 ms for the post
itself, most of the runner's CPU per record (docs/generation.md). The API key is read from
the environment only and sent only as the ``Authorization`` header. Every response's
``x-ratelimit-*`` headers pace the next requests (``RateLimits``).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
import orjson

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
#: most connections to the endpoint (the runner's concurrency is the real limit)
MAX_CONNECTIONS = 1000
#: the openai SDK's defaults: connect within 5 s, the whole request within 600 s
TIMEOUT = aiohttp.ClientTimeout(total=600, sock_connect=5)


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


def proxy_for(url: str) -> str | None:
    """The proxy ``HTTP(S)_PROXY`` / ``NO_PROXY`` give for ``url`` (read once per backend,
    not per request as aiohttp's ``trust_env`` does, in a thread)."""
    parts = urlsplit(url)
    proxy = getproxies().get(parts.scheme)
    if not proxy or proxy_bypass(parts.hostname or ""):
        return None
    return proxy


def _error_message(status: int, text: str) -> str:
    """The ``error.message`` of an error body, else its text (clipped), else the status."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return " ".join(text.split())[:200] or f"HTTP {status}"


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
        self._url = f"{url}/chat/completions"
        self._headers = {
            "Authorization": f"Bearer {key or NO_KEY}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._tokens = token_field(url)
        self._session: aiohttp.ClientSession | None = None
        self.limits = RateLimits()

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
                timeout=TIMEOUT,
                proxy=proxy_for(self.base_url),
            )
        return self._session

    def body(self, request: LLMRequest) -> dict[str, Any]:
        return chat_body(self.model, request, self._tokens)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        session = self._get_session()
        pause = self.limits.reserve(token_estimate(request))
        if pause:
            await asyncio.sleep(pause)
        data = orjson.dumps(self.body(request))
        try:
            async with session.post(self._url, data=data) as response:
                self.limits.update(response.headers)
                raw = await response.read()
                status, headers = response.status, response.headers
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
            detail = self._scrub(str(err)) or type(err).__name__
            raise ConnectionFailed(f"cannot connect to {self.display_url}: {detail}") from None
        except TimeoutError:  # the session's limit (the runner's own arrives as a cancellation)
            raise TransientError("request timed out") from None
        except aiohttp.ClientError as err:
            detail = self._scrub(str(err)) or type(err).__name__
            raise TransientError(f"connection to {self.display_url} broke: {detail}") from None
        if status >= 400:
            text = raw.decode("utf-8", errors="replace")
            raise self._status_error(status, text, headers)
        return parse_chat_completion(raw)

    def _status_error(
        self, status: int, text: str, headers: Mapping[str, str]
    ) -> LLMError | EngineError:
        message = self._scrub(_error_message(status, text))[:300]
        where = f"HTTP {status} from {self.display_url}: {message}"
        retry_after = parse_retry_after(headers)
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
        if self._session is not None:
            await self._session.close()
            self._session = None

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            "base_url": self.display_url,
            "api_key_env": self.api_key_env,
        }
