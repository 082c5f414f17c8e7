"""``generate --executor ray``: a local Ray with 2 workers against the local test server.

The sharded run writes the same records as one process with the same seed; a worker killed
mid-run is retried by Ray, its shard resumes from its part file, and the output ends with
exactly N unique records.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.llm_server import ServerConfig, ThreadServer

pytestmark = pytest.mark.timeout(600)
REPO = Path(__file__).resolve().parents[1]


def _generate(graph: Path, url: str, out: Path, n: int, *extra: str) -> list[str]:
    return [
        *(sys.executable, "-m", "engine.cli.main", "--uri", f"embedded:{graph}", "generate"),
        *("--recipe", "dualalign", "--icd", "G30.9", "-n", str(n), "--seed", "5"),
        *("--model", "test-model", "--base-url", url, "-o", str(out), *extra),
    ]


def _env(graph: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(graph.parent), "OPENAI_API_KEY": "sk-test"}


def _records(path: Path) -> dict[str, dict[str, object]]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        out[record["record_id"]] = record
    return out


def test_two_ray_workers_write_what_one_process_writes(graph: Path, tmp_path: Path) -> None:
    with ThreadServer() as llm:
        single, sharded = tmp_path / "single.jsonl", tmp_path / "ray.jsonl"
        one = subprocess.run(
            _generate(graph, llm.url, single, 12), env=_env(graph), capture_output=True, text=True
        )
        assert one.returncode == 0, one.stderr
        ray = subprocess.run(
            _generate(graph, llm.url, sharded, 12, "--executor", "ray", "--ray-workers", "2"),
            env=_env(graph),
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert ray.returncode == 0, ray.stderr
    assert "ray: 2 shard(s) wrote 12 ok" in ray.stderr
    a, b = _records(single), _records(sharded)
    assert len(b) == len(sharded.read_text().splitlines()) == 12  # one line per record
    assert a.keys() == b.keys()
    for rid in a:
        assert a[rid]["text"] == b[rid]["text"], rid
        assert a[rid]["spec"] == b[rid]["spec"], rid
    parts = sorted((tmp_path / "ray.jsonl.parts").glob("part-*.jsonl"))
    assert [len(p.read_text().splitlines()) for p in parts] == [6, 6]


def test_the_reference_corpus_reaches_every_worker(graph: Path, tmp_path: Path) -> None:
    """A --reference passage planted from one record's answer is rejected the same way by
    the Ray workers as by one process (the corpus travels with the shards)."""
    with ThreadServer() as llm:
        plain = tmp_path / "plain.jsonl"
        done = subprocess.run(
            _generate(graph, llm.url, plain, 8), env=_env(graph), capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        # the answer with the longest first line: the test server echoes its keywords there
        texts = {rid: str(r["text"]) for rid, r in _records(plain).items()}
        target = max(texts, key=lambda rid: len(texts[rid].splitlines()[0]))
        corpus = tmp_path / "corpus.jsonl"
        corpus.write_text(json.dumps({"id": "real-1", "text": texts[target].splitlines()[0]}))
        runs = {}
        for name, extra in (("single", ()), ("ray", ("--executor", "ray", "--ray-workers", "2"))):
            out = tmp_path / f"{name}.jsonl"
            done = subprocess.run(
                _generate(graph, llm.url, out, 8, "--reference", str(corpus), *extra),
                env=_env(graph),
                capture_output=True,
                text=True,
                cwd=REPO,
            )
            assert done.returncode == 0, done.stderr
            runs[name] = _records(out)
    single, ray = runs["single"], runs["ray"]
    assert single[target]["status"] == "rejected"
    gate = single[target]["gate"]
    assert isinstance(gate, dict) and gate["rejections"][0]["source"] == "reference:real-1"
    assert single.keys() == ray.keys() == texts.keys()
    for rid in single:
        assert (single[rid]["status"], single[rid].get("text")) == (
            ray[rid]["status"],
            ray[rid].get("text"),
        ), rid
        assert single[rid].get("gate") == ray[rid].get("gate"), rid


def test_a_killed_worker_is_retried_and_its_shard_resumes(graph: Path, tmp_path: Path) -> None:
    n = 40
    out = tmp_path / "notes.jsonl"
    part = tmp_path / "notes.jsonl.parts" / "part-00000.jsonl"
    with ThreadServer(ServerConfig(latency_s=0.3)) as slow:
        run = subprocess.Popen(
            _generate(graph, slow.url, out, n, "--executor", "ray", "--ray-workers", "2"),
            env=_env(graph),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        deadline = time.monotonic() + 300
        while not (part.exists() and len(part.read_text().splitlines()) >= 3):
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()
            time.sleep(0.1)
        worker = int(part.with_suffix(".pid").read_text())
        os.kill(worker, signal.SIGKILL)
        _, err = run.communicate(timeout=400)
        assert run.returncode == 0, err
        arrivals = slow.stats()["arrivals"]
    assert int(part.with_suffix(".pid").read_text()) != worker  # a new worker resumed it
    records = _records(out)
    assert len(records) == n
    assert all(r["status"] == "ok" for r in records.values())
    # every record paid for once, plus at most those in flight in the killed worker
    assert n <= arrivals <= n + 16
