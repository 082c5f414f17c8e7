"""Batch files round trip through the CLI: plan -> request JSONL -> provider output -> records."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.runner import read_records
from tests.llm_server import ThreadServer, note_text

pytestmark = pytest.mark.timeout(300)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadServer]:
    with ThreadServer() as srv:
        yield srv


def kgsynth(graph: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(graph.parent)}
    return subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "--uri", f"embedded:{graph}", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def provider_output(server: ThreadServer, requests: list[dict[str, Any]]) -> list[str]:
    """What a Batch API (or ``vllm run-batch``) returns: real completions from the server."""
    lines = []
    for i, req in enumerate(requests):
        call = urllib.request.Request(
            server.url + "/chat/completions",
            data=json.dumps(req["body"]).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(call) as resp:
            body = json.loads(resp.read())
        lines.append(
            json.dumps(
                {
                    "id": f"batch_req_{i}",
                    "custom_id": req["custom_id"],
                    "response": {"status_code": 200, "request_id": f"req_{i}", "body": body},
                    "error": None,
                }
            )
        )
    return lines


def test_batch_round_trip(graph: Path, server: ThreadServer, tmp_path: Path) -> None:
    out = tmp_path / "notes.jsonl"
    base = [
        "generate",
        "--recipe",
        "dualalign",
        "--icd",
        "G30.9",
        "-n",
        "6",
        "--seed",
        "4",
        "--backend",
        "batch",
        "--model",
        "gpt-4o-mini",
        "-o",
        str(out),
    ]
    done = kgsynth(graph, *base)
    assert done.returncode == 0, done.stderr
    batch_file = tmp_path / "notes.batch.jsonl"
    requests = [json.loads(line) for line in batch_file.read_text().splitlines()]
    assert len(requests) == 6 and "vllm run-batch" in done.stderr
    for req in requests:
        assert set(req) == {"custom_id", "method", "url", "body"}
        assert req["method"] == "POST" and req["url"] == "/v1/chat/completions"
        body = req["body"]
        assert body["model"] == "gpt-4o-mini" and body["messages"][0]["role"] == "system"
        assert body["temperature"] == 0.9 and body["max_completion_tokens"] == 1200  # recipe's
        assert body["top_p"] == 1.0 and "response_format" not in body  # dualalign: free text
        assert isinstance(body["seed"], int)

    # The provider answers four (one cut at the token limit), fails one, and loses one.
    lines = provider_output(server, requests[:4])
    cut = json.loads(lines[3])
    cut["response"]["body"]["choices"][0]["finish_reason"] = "length"
    lines[3] = json.dumps(cut)
    lines.append(
        json.dumps(
            {
                "id": "x",
                "custom_id": requests[4]["custom_id"],
                "response": None,
                "error": {"code": "server_error", "message": "boom"},
            }
        )
    )
    results = tmp_path / "results.jsonl"
    results.write_text("\n".join(lines) + "\n")
    ingest = kgsynth(graph, *base, "--ingest", str(results))
    assert ingest.returncode == 3, ingest.stderr  # some records failed (EXIT_FAILED_RECORDS)
    records = read_records(out)
    assert [r.status for r in records.values()].count("ok") == 3
    by_id = {req["custom_id"]: req for req in requests}
    for rid, rec in records.items():
        assert rec.backend == "batch" and rec.model == "gpt-4o-mini"
        assert rec.spec is not None and rec.spec.record_id == rid
        assert rec.seed == by_id[rid]["body"]["seed"]
        if rec.status == "ok":
            assert rec.text == note_text(by_id[rid]["body"]["messages"])
            assert rec.cost_usd is not None and rec.cost_usd > 0
    truncated = records[requests[3]["custom_id"]]
    assert truncated.reason == "answer cut at the token limit (1200 max_tokens); raise --max-tokens"
    assert truncated.attempts == 1  # the file will not answer differently: no retries
    assert records[requests[4]["custom_id"]].reason == "batch error: boom"
    assert "no line for this record" in (records[requests[5]["custom_id"]].reason or "")

    # Writing again asks only for what is still missing; ingesting that completes the set.
    again = kgsynth(graph, *base)
    assert again.returncode == 0, again.stderr
    missing = [json.loads(line) for line in batch_file.read_text().splitlines()]
    assert [m["custom_id"] for m in missing] == [r["custom_id"] for r in requests[3:]]
    results.write_text("\n".join(provider_output(server, missing)) + "\n")
    final = kgsynth(graph, *base, "--ingest", str(results))
    assert final.returncode == 0, final.stderr
    records = read_records(out)
    assert len(records) == 6 and all(r.status == "ok" for r in records.values())
    manifest = json.loads((tmp_path / "notes.manifest.json").read_text())
    assert manifest["backend"] == {
        "backend": "batch",
        "model": "gpt-4o-mini",
        "ingested": "results.jsonl",
    }
    assert manifest["source"]["plan"]["icd"] == ["G30.9"] and manifest["source"]["kg_hash"]


def test_bad_batch_output_names_the_line(graph: Path, tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    results.write_text('{"custom_id": "a", "response": null, "error": null}\nnot json\n')
    done = kgsynth(
        graph,
        "generate",
        "--recipe",
        "dualalign",
        "--icd",
        "G30.9",
        "-n",
        "2",
        "--backend",
        "batch",
        "--model",
        "m",
        "--ingest",
        str(results),
        "-o",
        str(tmp_path / "n.jsonl"),
    )
    assert done.returncode == 2
    assert f"{results}, line 2: not a batch output line" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("recipe", "code", "sampling"),
    [
        ("mh_report", "F32.9", []),
        ("dualalign", "G30.9", ["--temperature", "0.25", "--top-p", "0.5", "--max-tokens", "77"]),
    ],
)
def test_plan_and_generate_write_the_same_batch_file(
    graph: Path, tmp_path: Path, recipe: str, code: str, sampling: list[str]
) -> None:
    common = ["--recipe", recipe, "--icd", code, "-n", "5", "--seed", "9", "--model", "gpt-x"]
    planned = tmp_path / "planned.jsonl"
    plan = kgsynth(
        graph, "plan", *common, *sampling, "--format", "openai-batch", "-o", str(planned)
    )
    assert plan.returncode == 0, plan.stderr
    generated = tmp_path / "generated.jsonl"
    out = ["-o", str(tmp_path / "notes.jsonl"), "--batch-file", str(generated)]
    gen = kgsynth(graph, "generate", *common, *sampling, "--backend", "batch", *out)
    assert gen.returncode == 0, gen.stderr
    assert planned.read_bytes() == generated.read_bytes()

    lines = [json.loads(line) for line in planned.read_text().splitlines()]
    assert len(lines) == 5
    body = lines[0]["body"]
    fields = {"model", "messages", "temperature", "top_p", "max_completion_tokens", "seed"}
    if recipe == "mh_report":  # declares output: sectioned_report
        assert set(body) == fields | {"response_format"}
        assert (body["temperature"], body["top_p"], body["max_completion_tokens"]) == (
            0.8,
            1.0,
            1500,
        )
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "SectionedReport"
        schema = fmt["json_schema"]["schema"]
        assert schema["required"] == ["sections"] and schema["additionalProperties"] is False
        section = schema["$defs"]["ReportSection"]
        assert section["required"] == ["title", "text"]
    else:
        assert set(body) == fields
        assert (body["temperature"], body["top_p"], body["max_completion_tokens"]) == (
            0.25,
            0.5,
            77,
        )
