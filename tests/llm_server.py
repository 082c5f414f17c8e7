"""A local OpenAI-compatible chat server with deterministic answers and fault injection.

Used by the LLM and runner tests and by ``benchmarks/bench_generate.py``. It answers
``POST /v1/chat/completions`` and ``GET /v1/models`` on 127.0.0.1, writes a text derived
from a hash of the messages that echoes the prompt's ``Keywords:`` / ``Symptoms:`` line,
and injects faults by rate or by a per-arrival schedule:

``429`` (with ``Retry-After`` / ``retry-after-ms``), ``500``, ``503``, ``hang`` (sleeps
past any sane client timeout), ``malformed`` (invalid JSON with a JSON content type),
``truncated`` (the connection closes mid-body), ``wrong_type`` (an HTML page), ``400`` (a
bad-request error), ``no_choices`` (200 with an empty ``choices`` list), ``prose`` (a valid
completion whose text is prose, not the JSON a ``response_format`` asked for),
``broken_json`` (the asked-for JSON cut in half), ``wrong_schema`` (valid JSON that does not
match the asked-for schema), ``length`` and ``content_filter`` (answers with that
``finish_reason``).

Control and observation go through ``/_admin/*`` endpoints so the same handle works for
a server in a thread of the test process or in a subprocess (``python -m tests.llm_server``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

from aiohttp import web
from pydantic import BaseModel, Field

FAULTS = (
    "429",
    "500",
    "503",
    "hang",
    "malformed",
    "truncated",
    "wrong_type",
    "400",
    "no_choices",
    "prose",
    "broken_json",
    "wrong_schema",
    "length",
    "content_filter",
)
_KEYWORDS = re.compile(r"(?im)^\s*(?:keywords|symptoms)\s*:\s*(.+)$")
_QUOTED = re.compile(r'(?m)^\s*-\s*"([^"]+)"')


class ServerConfig(BaseModel):
    """Behaviour of the server; replaceable at run time through ``/_admin/config``."""

    latency_s: float = 0.0
    fault_rates: dict[str, float] = Field(default_factory=dict)
    schedule: list[str | None] = Field(default_factory=list)
    seed: int = 0
    hang_s: float = 30.0
    retry_after: str | None = "1"
    retry_after_ms: float | None = None
    require_key: str | None = None
    log_bodies: bool = True
    #: headers sent with every answer, e.g. ``x-ratelimit-remaining-requests``
    headers: dict[str, str] = Field(default_factory=dict)
    #: annotation answers (``SentenceLabels``): sentence substring -> label (None: left out)
    label_rules: dict[str, str | None] = Field(default_factory=dict)


def note_text(messages: list[dict[str, Any]]) -> str:
    """The deterministic answer to ``messages``: a short note echoing its keywords."""
    blob = json.dumps(messages, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
    prompt = "\n".join(str(m.get("content", "")) for m in messages)
    found = _KEYWORDS.findall(prompt)
    keywords = [k.strip() for k in found[-1].split(",") if k.strip()] if found else []
    keywords = keywords or _QUOTED.findall(prompt)
    complaint = ", ".join(keywords) if keywords else "no specific complaint"
    return (
        f"SUBJECTIVE: The patient reports {complaint}.\n"
        f"OBJECTIVE: Vital signs stable. Examination unremarkable.\n"
        f"ASSESSMENT: Findings consistent with the presenting history.\n"
        f"PLAN: Follow up in clinic. [ref {digest}]"
    )


def _schema_instance(schema: dict[str, Any], text: str, defs: dict[str, Any] | None = None) -> Any:
    """An instance of ``schema`` (``$ref``s into ``$defs`` resolved; arrays get one item)."""
    defs = schema.get("$defs", defs or {})
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return _schema_instance(defs[ref.removeprefix("#/$defs/")], text, defs)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: _schema_instance(sub, text, defs) for name, sub in props.items()}
    if kind == "array":
        return [_schema_instance(schema.get("items", {}), text, defs)]
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    return text


_SENTENCE_LINE = re.compile(r"(?m)^\[(\d+)\] (.*)$")


def _enum_values(schema: Any) -> list[str]:
    """The first ``enum`` anywhere in ``schema`` (the label set of ``SentenceLabels``)."""
    if isinstance(schema, dict):
        if "enum" in schema:
            return [str(v) for v in schema["enum"]]
        values = [_enum_values(v) for v in schema.values()]
    elif isinstance(schema, list):
        values = [_enum_values(v) for v in schema]
    else:
        return []
    return next((v for v in values if v), [])


def label_answer(
    schema: dict[str, Any], messages: list[dict[str, Any]], rules: dict[str, str | None]
) -> dict[str, Any]:
    """One label per "[N] text" line of the last message: the label of the first rule whose
    key occurs in the sentence (case-insensitive), else "no symptom" (else the first enum
    value); a rule mapping to None leaves that sentence out (a partial answer)."""
    label = schema.get("$defs", {}).get("SentenceLabel", {}).get("properties", {}).get("label", {})
    enum = label["enum"] if "enum" in label else _enum_values(schema)
    default = "no symptom" if "no symptom" in enum or not enum else enum[0]
    items = []
    for number, text in _SENTENCE_LINE.findall(str(messages[-1].get("content", ""))):
        hit = next((k for k in rules if k.lower() in text.lower()), None)
        label = rules[hit] if hit is not None else default
        if label is not None:
            items.append({"sentence": int(number), "label": label})
    return {"labels": items}


def _completion(body: dict[str, Any], rules: dict[str, str | None] | None = None) -> dict[str, Any]:
    messages = body.get("messages", [])
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema" and fmt["json_schema"].get("name") == "SentenceLabels":
        # no note text for label answers: hashing a long protocol prompt costs the server
        # ~0.5 ms a request, which a benchmark at 160 req/s on a small box would feel
        schema = fmt["json_schema"].get("schema", {})
        text = json.dumps(label_answer(schema, messages, rules or {}))
    else:
        text = note_text(messages)
        if fmt.get("type") == "json_schema":
            text = json.dumps(_schema_instance(fmt["json_schema"].get("schema", {}), text))
        elif fmt.get("type") == "json_object":
            text = json.dumps({"text": text})
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
    completion_tokens = len(text.split())
    return {
        "id": "chatcmpl-" + hashlib.sha256(text.encode()).hexdigest()[:16],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "test-model"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class FaultServer:
    """The aiohttp application plus its request log and in-flight accounting."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self.arrivals = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.log: list[dict[str, Any]] = []
        self.started = time.monotonic()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/_admin/stats", self.stats)
        app.router.add_get("/_admin/requests", self.requests)
        app.router.add_post("/_admin/config", self.set_config)
        app.router.add_post("/_admin/reset", self.reset)
        return app

    def _fault(self, index: int) -> str | None:
        cfg = self.config
        if cfg.schedule:
            return cfg.schedule[index] if index < len(cfg.schedule) else None
        draw = self._rng.random()
        for name, rate in sorted(cfg.fault_rates.items()):
            if draw < rate:
                return name
            draw -= rate
        return None

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": "test-model", "object": "model"}]}
        )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        cfg = self.config
        index = self.arrivals
        self.arrivals += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        entry: dict[str, Any] = {
            "index": index,
            "t": time.monotonic() - self.started,
            "at": time.monotonic(),
            "in_flight": self.in_flight,
            "auth": request.headers.get("Authorization", ""),
        }
        self.log.append(entry)
        try:
            body = await request.json()
            if cfg.log_bodies:
                entry["body"] = body
            if cfg.require_key and entry["auth"] != f"Bearer {cfg.require_key}":
                entry["fault"] = "401"
                return web.json_response(
                    {"error": {"message": "invalid api key", "type": "invalid_request_error"}},
                    status=401,
                )
            fault = self._fault(index)
            entry["fault"] = fault
            if cfg.latency_s:
                await asyncio.sleep(cfg.latency_s)
            return await self._answer(request, body, fault)
        finally:
            self.in_flight -= 1
            entry["done"] = time.monotonic() - self.started

    async def _answer(
        self, request: web.Request, body: dict[str, Any], fault: str | None
    ) -> web.StreamResponse:
        cfg = self.config
        if fault in ("429", "503"):
            headers = {}
            if cfg.retry_after is not None:
                headers["Retry-After"] = cfg.retry_after
            if cfg.retry_after_ms is not None:
                headers["retry-after-ms"] = str(cfg.retry_after_ms)
            message = "rate limit exceeded" if fault == "429" else "server overloaded"
            return web.json_response(
                {"error": {"message": message, "type": "rate_limit"}},
                status=int(fault),
                headers=headers,
            )
        if fault == "500":
            return web.json_response({"error": {"message": "internal error"}}, status=500)
        if fault == "400":
            message = "Unsupported parameter: 'temperature'"
            return web.json_response(
                {"error": {"message": message, "type": "invalid_request_error"}}, status=400
            )
        if fault == "no_choices":
            return web.json_response({"id": "chatcmpl-empty", "object": "chat.completion"})
        if fault == "hang":
            await asyncio.sleep(cfg.hang_s)
        if fault == "malformed":
            return web.Response(
                body=b'{"id": "x", "choices": [{"message": ', content_type="application/json"
            )
        if fault == "wrong_type":
            return web.Response(
                text="<html><body>502 Bad Gateway</body></html>", content_type="text/html"
            )
        completion = _completion(body, cfg.label_rules)
        choice = completion["choices"][0]
        if fault == "prose":
            choice["message"]["content"] = "I am sorry, I cannot do that."
        if fault == "broken_json":
            content = choice["message"]["content"]
            choice["message"]["content"] = content[: len(content) // 2]
        if fault == "wrong_schema":
            choice["message"]["content"] = json.dumps({"unexpected": [1, 2, 3]})
        if fault in ("length", "content_filter"):
            choice["finish_reason"] = fault
        payload = json.dumps(completion).encode()
        if fault == "truncated":
            response = web.StreamResponse(
                headers={"Content-Type": "application/json", "Content-Length": str(len(payload))}
            )
            await response.prepare(request)
            await response.write(payload[: len(payload) // 2])
            if request.transport is not None:
                request.transport.close()
            return response
        return web.Response(body=payload, content_type="application/json", headers=cfg.headers)

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "arrivals": self.arrivals,
                "in_flight": self.in_flight,
                "peak_in_flight": self.peak_in_flight,
            }
        )

    async def requests(self, request: web.Request) -> web.Response:
        return web.json_response(self.log)

    async def set_config(self, request: web.Request) -> web.Response:
        self.config = ServerConfig.model_validate(await request.json())
        self._rng = random.Random(self.config.seed)
        return web.json_response({"ok": True})

    async def reset(self, request: web.Request) -> web.Response:
        self.arrivals = self.in_flight = self.peak_in_flight = 0
        self.log = []
        self.started = time.monotonic()
        return web.json_response({"ok": True})


async def _serve(server: FaultServer, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(server.app(), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    return runner, int(runner.addresses[0][1])


class ServerHandle:
    """Talks to a running server over HTTP, wherever it runs; ``stop()`` ends it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/v1"

    def _call(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            headers={"Content-Type": "application/json"},
            method="GET" if data is None else "POST",
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def configure(self, config: ServerConfig) -> None:
        self._call("/_admin/config", config.model_dump())

    def reset(self) -> None:
        self._call("/_admin/reset", {})

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("/_admin/stats")
        return result

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("/_admin/requests")
        return result

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ThreadServer(ServerHandle):
    """The server on its own event loop in a daemon thread of this process."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._server = FaultServer(config or ServerConfig())
        ready = threading.Event()
        box: dict[str, Any] = {}

        def main() -> None:
            asyncio.set_event_loop(self._loop)
            box["runner"], box["port"] = self._loop.run_until_complete(_serve(self._server, 0))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, name="llm-test-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        self._runner: web.AppRunner = box["runner"]
        super().__init__(box["port"])

    def stop(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        try:
            fut.result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


class ProcessServer(ServerHandle):
    """The server in a subprocess, so it does not share the client's GIL (benchmarks)."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        cfg = (config or ServerConfig()).model_dump_json()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.llm_server", "--config", cfg],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        match = re.search(r"port (\d+)", line)
        if not match:
            self._proc.kill()
            raise RuntimeError(f"test server did not start: {line!r}")
        super().__init__(int(match.group(1)))

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--config", default="{}", help="ServerConfig as JSON")
    args = parser.parse_args()
    server = FaultServer(ServerConfig.model_validate_json(args.config))

    async def run() -> None:
        runner, port = await _serve(server, args.port)
        print(f"llm test server listening on port {port}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
