"""SIGKILL ``kgsynth generate`` at random points and rerun: exactly N records, nothing re-paid.

The specs come from the real planner (``kgsynth plan`` on the engine fixture graph); the
killed processes read them with ``--specs`` so no kill lands inside the embedded store.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.runner import read_records
from tests.engine_graph import open_engine_store
from tests.llm_server import ServerConfig, ThreadServer

REPO = Path(__file__).resolve().parents[1]
N = 300
KILLS = 5
ENV = {"PATH": "/usr/bin:/bin"}


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadServer]:
    with ThreadServer(ServerConfig(latency_s=0.05)) as srv:
        yield srv


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N dualalign specs planned from the fixture graph, and the record id of each seed."""
    work = tmp_path_factory.mktemp("plan")
    open_engine_store(work / "g.db").close()
    path = work / "specs.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli.main",
            "--uri",
            f"embedded:{work / 'g.db'}",
            "plan",
            "--recipe",
            "dualalign",
            "--icd",
            "G30.9",
            "-n",
            str(N),
            "--seed",
            "5",
            "-o",
            str(path),
        ],
        cwd=REPO,
        env={**ENV, "HOME": str(work)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    return path


def seed_map(specs: Path) -> dict[int, str]:
    out = {}
    for line in specs.read_text().splitlines():
        spec = json.loads(line)
        out[spec["record_seed"]] = spec["record_id"]
    assert len(out) == N  # seeds identify records
    return out


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def cached_ids(db: Path) -> set[str]:
    if not db.exists():
        return set()
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT record_id FROM responses")}


def requested_ids(entries: list[dict[str, object]], seeds: dict[int, str]) -> list[str]:
    out = []
    for entry in entries:
        body = entry["body"]
        assert isinstance(body, dict)
        out.append(seeds[body["seed"]])
    return out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_and_rerun(server: ThreadServer, specs: Path, tmp_path: Path) -> None:
    out, db = tmp_path / "notes.jsonl", tmp_path / "cache.db"
    seeds = seed_map(specs)
    cmd = [
        sys.executable,
        "-m",
        "engine.cli.main",
        "generate",
        "--specs",
        str(specs),
        "--backend",
        "openai",
        "--model",
        "test-model",
        "--base-url",
        server.url,
        "--concurrency",
        "8",
        "--cache",
        str(db),
        "-o",
        str(out),
    ]
    env = {**ENV, "HOME": str(tmp_path)}
    rng = random.Random(20261123)
    seen_log, partial_kills = 0, 0
    cached_before: set[str] = set()
    for attempt in range(KILLS + 1):
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        if attempt == 0:
            time.sleep(rng.uniform(0.2, 1.0))  # while starting up
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
        elif attempt < KILLS:
            done = line_count(out)
            target = done + rng.randint(1, max((N - done) // 2, 1))
            while line_count(out) < target and proc.poll() is None:
                time.sleep(0.002)
            proc.send_signal(signal.SIGKILL)  # somewhere in the middle of writing records
            proc.communicate()
            time.sleep(0.2)  # let the server log whatever the dead process had sent
        else:
            _, stderr = proc.communicate(timeout=240)
            assert proc.returncode == 0, stderr
        log = server.requests()
        asked = requested_ids(log[seen_log:], seeds)
        seen_log = len(log)
        # Nothing the cache held when this process started was asked for again.
        assert not set(asked) & cached_before, f"run {attempt} re-paid cached records"
        cached_before = cached_ids(db)
        partial_kills += 0 < attempt < KILLS and line_count(out) < N

    assert partial_kills == KILLS - 1  # the kills really landed mid-run
    raw = out.read_bytes()
    assert raw.endswith(b"\n")
    records = [json.loads(line) for line in raw.splitlines()]  # no truncated line anywhere
    ids = Counter(r["record_id"] for r in records)
    assert len(ids) == N and max(ids.values()) == 1  # exactly N, none written twice
    final = read_records(out)
    assert all(r.status == "ok" and r.spec and r.spec.recipe == "dualalign" for r in final.values())
    asked_total = Counter(requested_ids(server.requests(), seeds))
    assert set(asked_total) == set(ids)
    # A record is asked again only when a kill caught its request in flight (at most the
    # concurrency per kill); everything answered before a kill came from the cache.
    repeats = sum(count - 1 for count in asked_total.values())
    assert repeats <= 8 * KILLS
    assert len(cached_ids(db)) == N
    # The manifest tells the truth: each killed run's entry holds the lines it left.
    manifest = json.loads((tmp_path / "notes.manifest.json").read_text())
    runs = manifest["runs"]
    assert manifest["records"] == {"ok": N, "failed": 0}
    assert sum(r["ok"] + r["failed"] for r in runs) == len(records)
    assert runs[-1]["status"] == "complete" and {r["status"] for r in runs[:-1]} <= {"killed"}
    assert len(runs) >= KILLS  # every kill after start-up left its entry


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigterm_finishes_in_flight_records_and_exits_cleanly(specs: Path, tmp_path: Path) -> None:
    out = tmp_path / "notes.jsonl"
    with ThreadServer(ServerConfig(latency_s=0.3)) as slow:
        cmd = [
            sys.executable,
            "-m",
            "engine.cli.main",
            "generate",
            "--specs",
            str(specs),
            "--backend",
            "openai",
            "--model",
            "test-model",
            "--base-url",
            slow.url,
            "--concurrency",
            "16",
            "-o",
            str(out),
        ]
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env={**ENV, "HOME": str(tmp_path)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        while line_count(out) < 20 and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        arrivals = slow.stats()["arrivals"]
    assert proc.returncode == 130, stderr
    assert "finishing" in stderr and "rerun the same command to resume" in stderr
    assert "Traceback" not in stderr
    assert line_count(out) == arrivals < N  # every request sent was finished and written
    assert json.loads((tmp_path / "notes.manifest.json").read_text())["status"] == "interrupted"
