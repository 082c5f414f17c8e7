"""``kgsynth generate`` as a user would hit it: one writer per output, run identities, safe
``-o`` targets, and exit codes that say when records failed (real processes, real HTTP)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.llm_server import ServerConfig, ThreadServer

pytestmark = pytest.mark.timeout(300)
REPO = Path(__file__).resolve().parents[1]
ENV = {"PATH": "/usr/bin:/bin"}
N = 24


@pytest.fixture(scope="module")
def module_server() -> Iterator[ThreadServer]:
    with ThreadServer() as srv:
        yield srv


@pytest.fixture
def server(module_server: ThreadServer) -> ThreadServer:
    module_server.configure(ServerConfig())
    module_server.reset()
    return module_server


def command(graph: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli.main", "--uri", f"embedded:{graph}", *args]


def kgsynth(graph: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(graph, *args),
        cwd=REPO,
        env={**ENV, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture(scope="module")
def specs(graph: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("specs")
    path = work / "specs.jsonl"
    done = kgsynth(
        graph,
        work,
        "plan",
        "--recipe",
        "dualalign",
        "--icd",
        "G30.9",
        "-n",
        str(N),
        "--seed",
        "4",
        "-o",
        str(path),
    )
    assert done.returncode == 0, done.stderr
    return path


def openai_args(url: str, out: Path, *extra: str) -> list[str]:
    return [
        "generate",
        "--backend",
        "openai",
        "--model",
        "test-model",
        "--base-url",
        url,
        "-o",
        str(out),
        *extra,
    ]


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def seeds_asked(server: ThreadServer) -> Counter[int]:
    return Counter(int(entry["body"]["seed"]) for entry in server.requests())


def test_a_second_generate_on_the_same_output_refuses_at_once(
    graph: Path, specs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "notes.jsonl"
    with ThreadServer(ServerConfig(latency_s=2.0)) as slow:  # slow until the second is done
        args = openai_args(slow.url, out, "--specs", str(specs), "--concurrency", "2")
        first = subprocess.Popen(
            command(graph, *args),
            cwd=REPO,
            env={**ENV, "HOME": str(tmp_path)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        while not out.exists() and first.poll() is None:
            time.sleep(0.01)  # the first run is writing records now
        second = kgsynth(graph, tmp_path, *args)
        slow.configure(ServerConfig())
        _, first_err = first.communicate(timeout=240)
        asked = seeds_asked(slow)
    assert first.returncode == 0, first_err
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert f"is being written by another kgsynth (pid {first.pid} on {socket.gethostname()}" in (
        second.stderr
    )
    assert "--specs" in second.stderr  # the holder's command line, as it was started
    assert f"--base-url {slow.url}" in second.stderr
    # Every record asked once, written once: the refused run sent nothing.
    assert len(asked) == N and set(asked.values()) == {1}
    written = Counter(str(r["record_id"]) for r in lines(out))
    assert len(written) == N and set(written.values()) == {1}
    assert not (tmp_path / "notes.lock").exists()  # released on exit


def test_a_lock_left_by_a_killed_run_is_taken_over(
    graph: Path, specs: Path, server: ThreadServer, tmp_path: Path
) -> None:
    out = tmp_path / "notes.jsonl"
    server.configure(ServerConfig(latency_s=0.1))
    args = openai_args(server.url, out, "--specs", str(specs), "--concurrency", "2")
    victim = subprocess.Popen(
        command(graph, *args),
        cwd=REPO,
        env={**ENV, "HOME": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not (out.exists() and out.stat().st_size) and victim.poll() is None:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    stale = json.loads((tmp_path / "notes.lock").read_text())
    assert stale["pid"] == victim.pid  # the dead process's lock file is still there
    server.configure(ServerConfig())
    rerun = kgsynth(graph, tmp_path, *args)
    assert rerun.returncode == 0, rerun.stderr
    assert f"took over the lock of pid {victim.pid}" in rerun.stderr
    assert len({r["record_id"] for r in lines(out)}) == N


def test_resume_with_another_seed_is_refused_and_force_new_sets_the_old_file_aside(
    graph: Path, server: ThreadServer, tmp_path: Path
) -> None:
    out = tmp_path / "r.jsonl"
    plan = ["--recipe", "dualalign", "--icd", "G30.9", "-n", "3"]
    first = kgsynth(graph, tmp_path, *openai_args(server.url, out, *plan, "--seed", "1"))
    assert first.returncode == 0, first.stderr
    manifest = json.loads((tmp_path / "r.manifest.json").read_text())
    before = out.read_bytes()
    server.reset()
    other = kgsynth(graph, tmp_path, *openai_args(server.url, out, *plan, "--seed", "2"))
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert f"holds records of run {manifest['run_identity'][:12]}" in other.stderr
    assert "source.plan.seed: 1 -> 2" in other.stderr and "--force-new" in other.stderr
    medsyn = ["--recipe", "medsyn", "--icd", "G30.9", "-n", "3", "--seed", "1"]
    recipe = kgsynth(graph, tmp_path, *openai_args(server.url, out, *medsyn))
    assert recipe.returncode == 2 and 'source.plan.recipe: "dualalign" -> "medsyn"' in (
        recipe.stderr
    )
    assert server.stats()["arrivals"] == 0 and out.read_bytes() == before

    fresh = kgsynth(
        graph, tmp_path, *openai_args(server.url, out, *plan, "--seed", "2", "--force-new")
    )
    assert fresh.returncode == 0, fresh.stderr
    aside = tmp_path / "r.old-1.jsonl"
    assert f"moved the previous output aside to {aside}" in fresh.stderr
    assert aside.read_bytes() == before  # nothing lost
    assert json.loads((tmp_path / "r.old-1.manifest.json").read_text()) == manifest
    records = lines(out)
    assert sorted(str(r["record_id"]) for r in records) == [
        f"dualalign-2-{i:08d}" for i in range(3)
    ]
    new = json.loads((tmp_path / "r.manifest.json").read_text())
    assert new["run_identity"] != manifest["run_identity"] and len(new["runs"]) == 1
    assert new["records"] == {"ok": 3, "failed": 0}


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("wrong_type", "malformed response (not JSON): '<html><body>502 Bad Gateway"),
        ("400", "HTTP 400 from"),
        ("no_choices", "malformed response (no choices[0].message)"),
    ],
)
def test_an_endpoint_that_fails_every_request_exits_non_zero_with_the_reason(
    graph: Path, specs: Path, server: ThreadServer, tmp_path: Path, fault: str, reason: str
) -> None:
    server.configure(ServerConfig(fault_rates={fault: 1.0}))
    out = tmp_path / "notes.jsonl"
    done = kgsynth(
        graph, tmp_path, *openai_args(server.url, out, "--specs", str(specs), "--max-attempts", "2")
    )
    assert done.returncode == 3, done.stderr
    assert f"wrote 0 ok, {N} failed" in done.stderr and reason in done.stderr
    assert "Traceback" not in done.stderr
    records = lines(out)
    assert len(records) == N and all(r["status"] == "failed" for r in records)
    assert all(reason in str(r["reason"]) for r in records)
    attempts = 1 if fault == "400" else 2  # a 400 is not worth a retry
    assert server.stats()["arrivals"] == N * attempts


def test_some_failed_records_exit_3_and_a_clean_rerun_exits_0(
    graph: Path, specs: Path, server: ThreadServer, tmp_path: Path
) -> None:
    server.configure(ServerConfig(schedule=["400", None, None, "400"]))
    out = tmp_path / "notes.jsonl"
    args = openai_args(server.url, out, "--specs", str(specs), "--concurrency", "1")
    first = kgsynth(graph, tmp_path, *args)
    assert first.returncode == 3, first.stderr
    assert f"wrote {N - 2} ok, 2 failed" in first.stderr and "2 x HTTP 400" in first.stderr
    server.configure(ServerConfig())
    again = kgsynth(graph, tmp_path, *args)
    assert again.returncode == 0, again.stderr
    assert f"wrote 2 ok, 0 failed (0 from cache, {N - 2} already done)" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "gpt-4o-mini"], "--model gpt-4o-mini needs an endpoint"),
        (["--backend", "openai", "--model", "m"], "--backend openai needs an endpoint"),
    ],
)
def test_asking_for_a_model_without_an_endpoint_is_an_error(
    graph: Path, specs: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "notes.jsonl"
    done = kgsynth(graph, tmp_path, "generate", "--specs", str(specs), "-o", str(out), *args)
    assert done.returncode == 2 and message in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


def test_a_missing_directory_is_one_clear_message(graph: Path, specs: Path, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "dir" / "x.jsonl"
    done = kgsynth(
        graph,
        tmp_path,
        "generate",
        "--specs",
        str(specs),
        "--backend",
        "template",
        "-o",
        str(target),
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"the directory {target.parent} does not exist" in done.stderr
    assert not (tmp_path / "missing").exists()


def test_a_symlinked_output_is_followed_and_stays_a_symlink(
    graph: Path, specs: Path, tmp_path: Path
) -> None:
    real_dir = tmp_path / "data"
    real_dir.mkdir()
    link = tmp_path / "notes.jsonl"
    link.symlink_to(real_dir / "notes.jsonl")  # dangling until the first record
    args = ["generate", "--specs", str(specs), "--backend", "template", "-o", str(link)]
    done = kgsynth(graph, tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and len(lines(real_dir / "notes.jsonl")) == N
    assert (real_dir / "notes.manifest.json").exists()
    again = kgsynth(graph, tmp_path, *args)  # resumes through the link
    assert again.returncode == 0 and f"{N} already done" in again.stderr
    assert link.is_symlink() and len(lines(real_dir / "notes.jsonl")) == N


def test_a_fifo_or_directory_output_is_refused_untouched(
    graph: Path, specs: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    done = kgsynth(
        graph, tmp_path, "generate", "--specs", str(specs), "--backend", "template", "-o", str(fifo)
    )
    assert done.returncode == 2 and "is a FIFO, not a regular file" in done.stderr
    assert fifo.is_fifo() and "Traceback" not in done.stderr
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    done = kgsynth(
        graph,
        tmp_path,
        "generate",
        "--specs",
        str(specs),
        "--backend",
        "template",
        "-o",
        str(folder),
    )
    assert done.returncode == 2 and "is a directory" in done.stderr
    assert folder.is_dir() and not any(folder.iterdir())
