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
        assert body["temperature"] == 0.9 and body["max_tokens"] == 1200  # recipe defaults
        assert isinstance(body["seed"], int)

    # The provider answers four, fails one, and loses one.
    lines = provider_output(server, requests[:4])
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
    assert ingest.returncode == 0, ingest.stderr
    records = read_records(out)
    assert [r.status for r in records.values()].count("ok") == 4
    by_id = {req["custom_id"]: req for req in requests}
    for rid, rec in records.items():
        assert rec.backend == "batch" and rec.model == "gpt-4o-mini"
        assert rec.spec["record_id"] == rid and rec.seed == by_id[rid]["body"]["seed"]
        if rec.status == "ok":
            assert rec.text == note_text(by_id[rid]["body"]["messages"])
            assert rec.cost_usd is not None and rec.cost_usd > 0
    assert records[requests[4]["custom_id"]].reason == "batch error: boom"
    assert "no line for this record" in (records[requests[5]["custom_id"]].reason or "")

    # Writing again asks only for what is still missing; ingesting that completes the set.
    again = kgsynth(graph, *base)
    assert again.returncode == 0, again.stderr
    missing = [json.loads(line) for line in batch_file.read_text().splitlines()]
    assert [m["custom_id"] for m in missing] == [r["custom_id"] for r in requests[4:]]
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
