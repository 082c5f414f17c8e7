"""The OpenAI backend's HTTP: the exact bytes it posts and the proxy the environment names.

A real aiohttp server on 127.0.0.1 records each request's target, headers and raw body.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from engine.llm.base import ConnectionFailed, LLMRequest, SamplingParams
from engine.llm.batch import batch_line
from engine.llm.openai_backend import OpenAIBackend, proxy_for

ANSWER = {
    "id": "chatcmpl-1",
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
}
REQUEST = LLMRequest(
    "rec-1",
    [
        {"role": "system", "content": "You write notes."},
        {"role": "user", "content": "Fièvre, toux — 3 jours"},
    ],
    SamplingParams(temperature=0.3, top_p=0.9, max_tokens=99, stop=("END",)),
    seed=11,
)
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")


@dataclass
class Seen:
    target: str
    authorization: str | None
    body: bytes


@dataclass
class Capture:
    port: int
    seen: list[Seen] = field(default_factory=list)


@asynccontextmanager
async def capture_server() -> AsyncIterator[Capture]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    capture = Capture(sock.getsockname()[1])

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        capture.seen.append(Seen(request.raw_path, request.headers.get("Authorization"), body))
        return web.json_response(ANSWER)

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield capture
    finally:
        await runner.cleanup()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_posted_bytes_are_the_batch_line_body(no_proxy_env: pytest.MonkeyPatch) -> None:
    no_proxy_env.setenv("OPENAI_API_KEY", "sk-local")

    async def go() -> list[Seen]:
        async with capture_server() as cap:
            backend = OpenAIBackend("m", base_url=f"http://127.0.0.1:{cap.port}/v1")
            try:
                answer = await backend.complete(REQUEST)
            finally:
                await backend.aclose()
            assert answer.text == "ok" and answer.response_id == "chatcmpl-1"
            return cap.seen

    (seen,) = asyncio.run(go())
    assert seen.target == "/v1/chat/completions"
    assert seen.authorization == "Bearer sk-local"
    # the batch file's body for the same request, byte for byte, but for the token field's
    # name (local servers read max_tokens; batch files carry max_completion_tokens)
    line = batch_line("m", REQUEST).encode()
    live = seen.body.replace(b'"max_tokens":', b'"max_completion_tokens":')
    assert b'"body":' + live + b"}" in line
    assert "Fièvre, toux — 3 jours".encode() in seen.body  # UTF-8, not \u escapes


def test_proxy_from_the_environment_and_no_proxy(no_proxy_env: pytest.MonkeyPatch) -> None:
    target = "http://127.0.0.2:9/v1"  # nothing listens there: only a proxy can answer

    async def go() -> list[Seen]:
        async with capture_server() as cap:
            no_proxy_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{cap.port}")
            backend = OpenAIBackend("m", base_url=target)
            try:
                await backend.complete(REQUEST)
            finally:
                await backend.aclose()
            no_proxy_env.setenv("NO_PROXY", "127.0.0.2")
            direct = OpenAIBackend("m", base_url=target)
            try:
                with pytest.raises(ConnectionFailed, match="cannot connect to"):
                    await direct.complete(REQUEST)
            finally:
                await direct.aclose()
            return cap.seen

    (seen,) = asyncio.run(go())
    assert seen.target == f"{target}/chat/completions"  # absolute form: sent through the proxy
    assert proxy_for("https://api.openai.com/v1") is None  # no HTTPS_PROXY set
