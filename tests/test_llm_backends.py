"""The OpenAI-compatible backend against a real local HTTP server; parsing, template, pricing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from engine.errors import EngineError
from engine.llm.base import (
    ConnectionFailed,
    ContentFiltered,
    LLMError,
    LLMRequest,
    LLMResponse,
    Overloaded,
    PermanentError,
    SamplingParams,
    TransientError,
    Truncated,
    Usage,
)
from engine.llm.body import chat_body
from engine.llm.factory import BackendSettings, make_backend
from engine.llm.openai_backend import OpenAIBackend, parse_retry_after
from engine.llm.parsing import UnparseableOutput, check_response, extract_json, parse_structured
from engine.llm.pricing import PriceTable
from engine.llm.ratelimit import MAX_PAUSE_S, RateLimits, parse_reset
from engine.llm.template import TemplateBackend, realize
from engine.outputs import SectionedReport
from engine.spec import GenerationSpec
from kg.redact import display_url, scrub
from tests.llm_server import ServerConfig, ThreadServer, note_text

MESSAGES = [
    {"role": "system", "content": "You write notes."},
    {"role": "user", "content": "Write a note.\nKeywords: night sweats, cough"},
]


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadServer]:
    with ThreadServer() as srv:
        yield srv


@pytest.fixture
def fresh(server: ThreadServer) -> ThreadServer:
    server.configure(ServerConfig())
    server.reset()
    return server


def request(**kw: object) -> LLMRequest:
    fields: dict[str, object] = {
        "request_id": "r1",
        "messages": MESSAGES,
        "params": SamplingParams(),
        "seed": 5,
    }
    fields.update(kw)
    return LLMRequest(**fields)  # type: ignore[arg-type]


async def complete(url: str, req: LLMRequest, timeout: float = 2.0, **kw: str) -> LLMResponse:
    backend = OpenAIBackend("test-model", base_url=url, **kw)
    try:
        async with asyncio.timeout(timeout):
            return await backend.complete(req)
    finally:
        await backend.aclose()


def test_answer_text_usage_and_body(fresh: ThreadServer) -> None:
    resp = asyncio.run(complete(fresh.url, request()))
    assert resp.text == note_text(MESSAGES)
    assert "night sweats, cough" in resp.text
    assert resp.usage is not None and resp.usage.completion_tokens > 0
    assert resp.finish_reason == "stop" and resp.served_model == "test-model"
    body = fresh.requests()[0]["body"]
    assert body["messages"] == MESSAGES
    assert body["seed"] == 5 and body["temperature"] == 0.7 and body["max_tokens"] == 1024
    assert "response_format" not in body


@pytest.mark.parametrize(
    ("fault", "error", "text"),
    [
        ("429", Overloaded, "HTTP 429"),
        ("503", Overloaded, "HTTP 503"),
        ("500", TransientError, "HTTP 500"),
        ("malformed", TransientError, "malformed response \\(not JSON\\)"),
        ("wrong_type", TransientError, "malformed response \\(not JSON\\)"),
        ("truncated", TransientError, "broke"),
    ],
)
def test_faults_map_to_error_kinds(
    fresh: ThreadServer, fault: str, error: type[LLMError], text: str
) -> None:
    fresh.configure(ServerConfig(schedule=[fault], retry_after="2"))
    with pytest.raises(error, match=text) as info:
        asyncio.run(complete(fresh.url, request()))
    assert info.value.retryable
    if fault in ("429", "503"):
        assert isinstance(info.value, TransientError) and info.value.retry_after == 2.0
    if fault == "truncated":
        assert not isinstance(info.value, ConnectionFailed)


def test_hang_is_cut_by_the_caller_timeout(fresh: ThreadServer) -> None:
    fresh.configure(ServerConfig(schedule=["hang"], hang_s=5))
    with pytest.raises(TimeoutError):
        asyncio.run(complete(fresh.url, request(), timeout=0.3))


def test_retry_after_ms_wins_and_http_dates_parse() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_bad_request_is_permanent_and_auth_stops_the_run(
    fresh: ThreadServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentinel = "sk-test-SENTINEL-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", sentinel)
    fresh.configure(ServerConfig(require_key="another-key"))
    with pytest.raises(EngineError, match="refused the credentials") as info:
        asyncio.run(complete(fresh.url, request()))
    assert sentinel not in str(info.value)
    assert fresh.requests()[0]["auth"] == f"Bearer {sentinel}"  # sent, never echoed back


def test_unreachable_endpoint_is_a_connection_failure() -> None:
    with pytest.raises(ConnectionFailed, match=r"cannot connect to http://127\.0\.0\.1:9/v1"):
        asyncio.run(complete("http://127.0.0.1:9/v1", request()))


def test_settings_errors_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(EngineError, match="set OPENAI_API_KEY"):
        OpenAIBackend("gpt-4o-mini")
    with pytest.raises(EngineError, match="must be an http"):
        OpenAIBackend("m", base_url="localhost:8000")
    with pytest.raises(EngineError, match="holds credentials") as info:
        OpenAIBackend("m", base_url="http://user:s3cret@127.0.0.1:8000/v1")
    assert "s3cret" not in str(info.value) and "http://127.0.0.1:8000/v1" in str(info.value)
    with pytest.raises(EngineError, match="needs --model"):
        make_backend(BackendSettings(kind="openai"))
    with pytest.raises(EngineError, match="--ingest"):
        make_backend(BackendSettings(kind="batch", model="m"))
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1234/v1")
    backend = make_backend(BackendSettings(kind="openai", model="m"))
    assert backend.describe()["base_url"] == "http://127.0.0.1:1234/v1"
    assert display_url("https://user:pw@host:8443/v1?key=abc") == "https://host:8443/v1"
    assert scrub("key sk-1 and sk-1, not sk-2", ["sk-1", ""]) == "key *** and ***, not sk-2"


class Finding(BaseModel):
    label: str
    confidence: float


def test_structured_output_request_and_parse(fresh: ThreadServer) -> None:
    req = request(output=Finding)
    resp = asyncio.run(complete(fresh.url, req))
    body = fresh.requests()[0]["body"]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "Finding",
            "schema": {
                "title": "Finding",
                "type": "object",
                "properties": {
                    "label": {"title": "Label", "type": "string"},
                    "confidence": {"title": "Confidence", "type": "number"},
                },
                "required": ["label", "confidence"],
            },
        },
    }
    parsed = check_response(req, resp)
    assert parsed["confidence"] == 0 and "SUBJECTIVE" in parsed["label"]
    assert check_response(request(), resp) is None  # free text asks for nothing


@pytest.mark.parametrize(
    ("fault", "error", "text"),
    [
        ("prose", UnparseableOutput, "no JSON found"),
        ("broken_json", UnparseableOutput, "no JSON found"),
        ("wrong_schema", UnparseableOutput, "does not match Finding: label: Field required"),
        ("length", Truncated, "token limit \\(1024 max_tokens\\)"),
        ("content_filter", ContentFiltered, "content filter"),
    ],
)
def test_bad_answers_are_typed_retryable_errors(
    fresh: ThreadServer, fault: str, error: type[LLMError], text: str
) -> None:
    fresh.configure(ServerConfig(schedule=[fault]))
    req = request(output=Finding)
    resp = asyncio.run(complete(fresh.url, req))  # the transport itself succeeded
    with pytest.raises(error, match=text) as info:
        check_response(req, resp)
    assert info.value.retryable and isinstance(info.value, TransientError)


def test_token_limit_field_follows_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    openai = OpenAIBackend("gpt-4o-mini", base_url="https://api.openai.com/v1")
    local = OpenAIBackend("m", base_url="http://127.0.0.1:8000/v1")
    assert openai.body(request())["max_completion_tokens"] == 1024
    assert "max_tokens" not in openai.body(request())
    assert local.body(request())["max_tokens"] == 1024
    assert "max_completion_tokens" not in local.body(request())
    # batch files carry OpenAI's field; otherwise the body is the live OpenAI call's
    assert chat_body("gpt-4o-mini", request()) == openai.body(request())


@pytest.mark.parametrize(
    "text",
    [
        '{"label": "memory", "confidence": 0.9}',
        'Sure! ```json\n{"label": "memory", "confidence": 0.9}\n``` Hope that helps.',
        '[{"label": "memory", "confidence": 0.9}]',
        'Here it is: {"label": "memory", "confidence": 0.9} -- done {not json',
        '```\n{"label": "memory", "confidence": 0.9}\n```',
    ],
)
def test_defensive_json_parsing(text: str) -> None:
    assert parse_structured(text, Finding) == Finding(label="memory", confidence=0.9)


def test_unparseable_output_is_retryable() -> None:
    with pytest.raises(UnparseableOutput, match="no JSON"):
        extract_json("I cannot do that.")
    with pytest.raises(UnparseableOutput, match="confidence"):
        parse_structured('{"label": "x"}', Finding)
    assert UnparseableOutput("x").retryable
    assert not PermanentError("x").retryable


def make_spec(**fields: object) -> GenerationSpec:
    base: dict[str, object] = {
        "recipe": "dualalign",
        "run_seed": 0,
        "record_index": 0,
        "record_id": "dualalign-0-00000000",
        "record_seed": 11,
        "disease_id": "DOID:10652",
        "disease": "Alzheimer's disease",
        "icd_code": "G30.9",
        "persona": {
            "age": 81,
            "attributes": {"sex": "female"},
            "risk_factors": [{"id": "r", "name": "hypertension", "kind": "condition"}],
        },
        "window": {
            "id": "w",
            "name": "-2y",
            "order": 1,
            "start_months": -24,
            "end_months": -12,
            "phrase": "two years before the diagnosis",
            "diagnosed": False,
        },
        "keywords": [
            {
                "text": kw,
                "symptom_id": "s",
                "symptom": "memory loss",
                "category_id": "c",
                "category": "cognitive",
            }
            for kw in ("forgetful", "got lost driving")
        ],
        "template_id": "dualalign.j2",
        "template_hash": "0" * 64,
        "kg_hash": "1" * 64,
    }
    return GenerationSpec.model_validate(base | fields)


REPORT = {
    "recipe": "mh_report",
    "disease": "Depression",
    "icd_code": "F32.9",
    "window": None,
    "keywords": [],
    "symptoms": [{"id": "s", "name": "low mood"}],
    "sections": [
        {"id": "a", "title": "History", "guidance": ""},
        {"id": "b", "title": "Formulation", "guidance": ""},
    ],
}


def test_template_backend_uses_the_spec_and_labels_itself() -> None:
    backend = TemplateBackend()
    spec = make_spec()
    resp = asyncio.run(backend.complete(request(spec=spec)))
    assert backend.name == "template" and backend.model == "rule-based"
    assert "forgetful" in resp.text and "got lost driving" in resp.text
    assert "An 81-year-old woman" in resp.text and "hypertension" in resp.text
    assert "Alzheimer" not in resp.text  # not diagnosed yet at this visit
    assert realize(spec) == resp.raw  # deterministic
    window = {**spec.model_dump()["window"], "phrase": "at diagnosis", "diagnosed": True}
    assert "Alzheimer's disease (G30.9)" in realize(make_spec(window=window))
    text = realize(make_spec(**REPORT))
    assert text.startswith("History:") and "Formulation:" in text and "low mood" in text


def test_template_backend_writes_valid_structured_output() -> None:
    spec = make_spec(**REPORT)
    req = request(spec=spec, output=SectionedReport)
    resp = asyncio.run(TemplateBackend().complete(req))
    parsed = check_response(req, resp)
    assert [s["title"] for s in parsed["sections"]] == ["History", "Formulation"]
    assert "low mood" in parsed["sections"][0]["text"]
    with pytest.raises(PermanentError, match="cannot write Finding"):
        asyncio.run(TemplateBackend().complete(request(spec=spec, output=Finding)))
    with pytest.raises(PermanentError, match="GenerationSpec"):
        asyncio.run(TemplateBackend().complete(request()))


def test_prices_exact_prefix_unknown_and_file(tmp_path: Path) -> None:
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000, total_tokens=2_000_000)
    table = PriceTable()
    assert table.cost("gpt-4o-mini", usage) == pytest.approx(0.75)
    assert table.cost("gpt-4o-mini-2024-07-18", usage) == pytest.approx(0.75)
    assert table.cost("gpt-4o-2024-08-06", usage) == pytest.approx(12.5)
    assert table.cost("llama-3.1-8b", usage) is None
    assert table.cost("gpt-4o", None) is None
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"llama-3.1-8b": {"input": 0.1, "output": 0.2}}))
    assert PriceTable.load(path, discount=0.5).cost("llama-3.1-8b", usage) == pytest.approx(0.15)
    path.write_text(json.dumps({"m": {"input": "cheap"}}))
    with pytest.raises(EngineError, match="--prices"):
        PriceTable.load(path)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("20ms", 0.02), ("1s", 1.0), ("6m0s", 360.0), ("1h2m3.5s", 3723.5), ("2.5", 2.5)],
)
def test_rate_limit_reset_formats(value: str, seconds: float) -> None:
    assert parse_reset(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, "", "soon", "5x", "1s later"])
def test_unreadable_resets_are_ignored(value: str | None) -> None:
    assert parse_reset(value) is None


def test_rate_limits_count_down_and_pause_until_the_reset() -> None:
    now = [100.0]
    limits = RateLimits(clock=lambda: now[0])
    assert limits.reserve(10_000) == 0.0  # nothing known yet: no pause
    limits.update(
        {
            "x-ratelimit-remaining-requests": "2",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-remaining-tokens": "1000",
            "x-ratelimit-reset-tokens": "3s",
        }
    )
    assert limits.reserve(400) == 0.0  # 1 request, 600 tokens left
    assert limits.reserve(700) == 3.0  # too many tokens: wait for the token window
    assert limits.reserve(100) == 0.0  # 0 requests, 500 tokens left
    now[0] += 0.25
    assert limits.reserve(100) == 0.75  # no request left for 0.75 s
    now[0] += 0.75  # the request window reset: unknown again; 3 s - 1 s for tokens
    assert limits.reserve(100) == 0.0
    assert limits.reserve(900) == 2.0
    limits.update({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1h"})
    assert limits.reserve(1) == MAX_PAUSE_S  # capped: the next response says more


def test_rate_limit_headers_of_real_responses_pace_the_backend(fresh: ThreadServer) -> None:
    fresh.configure(
        ServerConfig(
            headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20s"}
        )
    )
    backend = OpenAIBackend("test-model", base_url=fresh.url)

    async def go() -> float:
        try:
            await backend.complete(request())
            return backend.limits.reserve(1)
        finally:
            await backend.aclose()

    assert 19.0 < asyncio.run(go()) <= 20.0
