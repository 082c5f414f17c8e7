"""Structured output end to end: a recipe's output model through ``kgsynth generate``.

mh_report declares ``output: sectioned_report``; the local OpenAI-compatible server answers
with JSON built from the schema it was sent, or with the faults a real model produces
(prose, JSON cut short, JSON of the wrong shape, answers stopped by the token limit or a
content filter). Bad answers are retried, then recorded ``failed`` with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.runner import read_records
from tests.llm_server import ServerConfig, ThreadServer
from tests.test_llm_batch import kgsynth

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadServer]:
    with ThreadServer() as srv:
        yield srv


def generate(graph: Path, server: ThreadServer, out: Path) -> int:
    """One mh_report record against the server, two attempts at most; the exit code."""
    done = kgsynth(
        graph,
        "generate",
        "--recipe",
        "mh_report",
        "--icd",
        "F32.9",
        "-n",
        "1",
        "--backend",
        "openai",
        "--base-url",
        server.url,
        "--model",
        "test-model",
        "--max-attempts",
        "2",
        "--no-cache",
        "-o",
        str(out),
    )
    assert "Traceback" not in done.stderr
    return done.returncode


def test_a_wrong_shape_is_retried_and_the_good_answer_parsed(
    graph: Path, server: ThreadServer, tmp_path: Path
) -> None:
    server.configure(ServerConfig(schedule=["wrong_schema", None]))
    server.reset()
    out = tmp_path / "reports.jsonl"
    assert generate(graph, server, out) == 0
    sent = [entry["body"] for entry in server.requests()]
    assert len(sent) == 2 and sent[0] == sent[1]
    assert sent[0]["response_format"]["json_schema"]["name"] == "SectionedReport"
    assert sent[0]["max_tokens"] == 1500  # a local server: max_tokens, mh_report's limit
    (record,) = read_records(out).values()
    assert (record.status, record.attempts) == ("ok", 2)
    assert record.errors[0].startswith("attempt 1: model output does not match SectionedReport")
    assert record.parsed == json.loads(record.text or "")  # the validated value is the answer
    assert record.parsed["sections"][0]["title"] and record.parsed["sections"][0]["text"]


@pytest.mark.parametrize(
    ("schedule", "first", "last"),
    [
        (["prose", "broken_json"], "no JSON found", "no JSON found in model output: '{"),
        (["length", "content_filter"], "token limit (1500 max_tokens)", "content filter"),
    ],
)
def test_bad_answers_are_retried_then_recorded_failed(
    graph: Path,
    server: ThreadServer,
    tmp_path: Path,
    schedule: list[str | None],
    first: str,
    last: str,
) -> None:
    server.configure(ServerConfig(schedule=schedule))
    server.reset()
    out = tmp_path / "reports.jsonl"
    assert generate(graph, server, out) == 3  # finished, with a failed record
    assert len(server.requests()) == 2
    (record,) = read_records(out).values()
    assert (record.status, record.attempts, record.parsed) == ("failed", 2, None)
    assert first in record.errors[0] and last in (record.reason or "")
