"""``-o`` never destroys what it points at: symlinks, FIFOs, pipes, foreign outputs, kills.

Real ``kgsynth`` processes on the engine fixture graph; every expectation is read back from
the file system (file types, bytes, line counts), not from kgsynth's own code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.cli import KGSYNTH, kgsynth

pytestmark = pytest.mark.timeout(600)
REPO = Path(__file__).resolve().parents[1]
PLAN = ["plan", "--recipe", "medsyn", "--icd", "G30.9", "--seed", "3"]


def env_for(graph: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KGSYNTH_", "NEO4J_"))}
    return env | {"KGSYNTH_GRAPH_URI": f"embedded:{graph}", "KGSYNTH_CONFIG": ""}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def spec_ids(text: str) -> list[str]:
    """The record ids of plan output lines (each line must be one JSON object)."""
    return [json.loads(line)["record_id"] for line in text.splitlines()]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def test_a_symlink_is_followed_and_stays_a_link(graph: Path, tmp_path: Path) -> None:
    real = tmp_path / "data" / "specs.jsonl"
    real.parent.mkdir()
    real.write_text("")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(real)
    out = kgsynth(*PLAN, "-n", "6", "-o", str(link), env=env_for(graph), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert len(spec_ids(real.read_text())) == 6
    assert leftovers(tmp_path) == [] and leftovers(real.parent) == []


def test_a_fifo_is_written_directly_and_stays_a_fifo(graph: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "specs.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def read() -> None:
        with fifo.open("rb") as fh:  # blocks until kgsynth opens the other end
            received.append(fh.read())

    reader = threading.Thread(target=read)
    reader.start()
    out = kgsynth(*PLAN, "-n", "5", "-o", str(fifo), env=env_for(graph), cwd=tmp_path)
    reader.join(timeout=60)
    assert out.returncode == 0, out.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert len(spec_ids(received[0].decode())) == 5
    assert leftovers(tmp_path) == []


def test_a_process_substitution_pipe_receives_the_plan(graph: Path, tmp_path: Path) -> None:
    """``plan -o >(wc -l)``: the path is /dev/fd/N, a pipe that cannot be renamed onto."""
    count = tmp_path / "count"
    script = f'"{KGSYNTH}" {" ".join(PLAN)} -n 7 -o >(wc -l > "{count}"); echo "rc=$?"'
    out = subprocess.run(
        ["bash", "-c", script + "; wait"],
        env=env_for(graph),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "rc=0" in out.stdout, out.stderr
    assert "Traceback" not in out.stderr
    for _ in range(100):  # wc finishes just after kgsynth closes the pipe
        if count.exists() and count.read_text().strip():
            break
        time.sleep(0.1)
    assert count.read_text().strip() == "7"


def test_dev_stdout_is_a_pipe_too(graph: Path, tmp_path: Path) -> None:
    out = kgsynth(*PLAN, "-n", "4", "-o", "/dev/stdout", env=env_for(graph), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(spec_ids(out.stdout)) == 4


@pytest.fixture(scope="module")
def notes(graph: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``generate`` output (template backend: no LLM needed) with its manifest."""
    folder = tmp_path_factory.mktemp("notes")
    path = folder / "notes.jsonl"
    args = ["generate", "--backend", "template", *PLAN[1:], "-n", "3", "-o", str(path)]
    out = kgsynth(*args, env=env_for(graph), cwd=folder)
    assert out.returncode == 0, out.stderr
    assert len(path.read_text().splitlines()) == 3
    return path


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ([*PLAN, "-n", "2"], "plan"),
        (["kg", "export", "-f", "json"], "kg export"),
        (["kg", "export", "-f", "ttl"], "kg export"),
    ],
    ids=["plan", "export-json", "export-ttl"],
)
def test_generate_notes_are_never_overwritten_without_force(
    graph: Path, notes: Path, tmp_path: Path, command: list[str], name: str
) -> None:
    target = tmp_path / notes.name
    shutil.copy(notes, target)
    before = digest(target)
    out = kgsynth(*command, "-o", str(target), env=env_for(graph), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: {target} holds `generate` notes; `{name}` will not overwrite it: "
        "choose another -o or pass --force"
    )
    assert digest(target) == before and leftovers(tmp_path) == []


def test_a_file_kgsynth_did_not_write_is_kept_and_force_overwrites(
    graph: Path, tmp_path: Path
) -> None:
    target = tmp_path / "thesis.txt"
    target.write_text("three years of work\n")
    out = kgsynth(*PLAN, "-n", "2", "-o", str(target), env=env_for(graph), cwd=tmp_path)
    assert out.returncode == 2 and "holds content kgsynth did not write" in out.stderr
    assert target.read_text() == "three years of work\n"
    out = kgsynth(*PLAN, "-n", "2", "-o", str(target), "--force", env=env_for(graph), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(spec_ids(target.read_text())) == 2


def test_plan_replaces_its_own_previous_output(graph: Path, tmp_path: Path) -> None:
    target = tmp_path / "specs.jsonl"
    for n in ("5", "3"):
        out = kgsynth(*PLAN, "-n", n, "-o", str(target), env=env_for(graph), cwd=tmp_path)
        assert out.returncode == 0, out.stderr
    assert len(spec_ids(target.read_text())) == 3


def test_export_csv_onto_an_existing_file_is_one_message(graph: Path, tmp_path: Path) -> None:
    target = tmp_path / "graph.json"
    target.write_text("keep me\n")
    out = kgsynth("kg", "export", "-f", "csv", "-o", str(target), env=env_for(graph))
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"error: {target} is a file, and -f csv writes a directory of CSV files "
        "(one per label and relationship type): give a directory path"
    )
    assert target.read_text() == "keep me\n"


def test_export_csv_replaces_a_previous_export_but_not_other_files(
    graph: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "csv"
    env = env_for(graph)
    first = kgsynth("kg", "export", "-f", "csv", "-o", str(folder), env=env)
    assert first.returncode == 0, first.stderr
    names = sorted(p.name for p in folder.iterdir())
    assert names and all(n.endswith(".csv") for n in names)
    (folder / "Stale.csv").write_text("id:ID(Stale),:LABEL\n")  # looks like an old export
    again = kgsynth("kg", "export", "-f", "csv", "-o", str(folder), env=env)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in folder.iterdir()) == names  # the stale file went with it
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine\n")
    out = kgsynth("kg", "export", "-f", "csv", "-o", str(mine), env=env)
    assert out.returncode == 2 and "holds content kgsynth did not write" in out.stderr
    assert (mine / "notes.txt").read_text() == "mine\n" and len(list(mine.iterdir())) == 1
    assert leftovers(tmp_path) == []


def test_sigterm_mid_plan_leaves_no_temporary_file_and_keeps_the_old_output(
    graph: Path, tmp_path: Path
) -> None:
    target = tmp_path / "specs.jsonl"
    small = kgsynth(*PLAN, "-n", "2", "-o", str(target), env=env_for(graph), cwd=tmp_path)
    assert small.returncode == 0, small.stderr
    before = digest(target)
    with (tmp_path / "stderr").open("w") as err:
        proc = subprocess.Popen(
            [str(KGSYNTH), *PLAN, "-n", "5000000", "-o", str(target)],
            env=env_for(graph),
            cwd=tmp_path,
            stderr=err,
        )
        try:
            temp: list[Path] = []
            for _ in range(3000):  # wait until the temporary file holds data
                temp = [p for p in tmp_path.iterdir() if p.name.startswith(".specs.jsonl.tmp-")]
                if temp and temp[0].stat().st_size > 1_000_000:
                    break
                assert proc.poll() is None, (tmp_path / "stderr").read_text()
                time.sleep(0.1)
            assert temp, "plan never started writing"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=120) == 130
        finally:
            if proc.poll() is None:
                proc.kill()
    assert leftovers(tmp_path) == []
    assert digest(target) == before
    last = (tmp_path / "stderr").read_text().strip().splitlines()[-1]
    assert last == f"interrupted: nothing written to {target}"


def test_a_temporary_file_of_a_killed_process_is_removed_by_the_next_write(
    graph: Path, tmp_path: Path
) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid is free now, as a process killed with -9 leaves it
    stale = tmp_path / f".specs.jsonl.tmp-{gone.pid}"
    stale.write_text("half a plan\n")
    out = kgsynth(*PLAN, "-n", "2", "-o", str(tmp_path / "specs.jsonl"), env=env_for(graph))
    assert out.returncode == 0, out.stderr
    assert not stale.exists() and leftovers(tmp_path) == []


def test_export_replaces_an_export_but_not_a_curated_module(graph: Path, tmp_path: Path) -> None:
    env = env_for(graph)
    target = tmp_path / "graph.out"
    for fmt in ("json", "ttl", "json"):  # an export of either format replaces the other
        out = kgsynth("kg", "export", "-f", fmt, "-o", str(target), env=env)
        assert out.returncode == 0, out.stderr
    assert json.loads(target.read_text())["module"] == "export"
    module = tmp_path / "mental_health.yaml"
    shutil.copy(REPO / "kg" / "seed" / "mental_health.yaml", module)
    before = digest(module)
    out = kgsynth("kg", "export", "-f", "json", "-o", str(module), env=env)
    assert out.returncode == 2 and "will not overwrite it" in out.stderr
    assert digest(module) == before and leftovers(tmp_path) == []
