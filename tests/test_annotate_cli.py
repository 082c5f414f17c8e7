"""``kgsynth annotate`` as a user runs it: bad input, the rule and lexicon paths, SIGKILL resume."""

from __future__ import annotations

import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.annotate.model import AnnotatedNote
from engine.runner import read_records
from engine.spec import GenerationSpec
from tests.llm_server import ServerConfig, ThreadServer
from tests.test_annotate_llm import ENV, KEYWORDS_A, NOTE_A, REPO, SENTENCES_A, note_line, run_cli

N = 60  # notes of 14 sentences: 120 chunk requests
KILLS = 4


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory, graph: Path) -> list[GenerationSpec]:
    work = tmp_path_factory.mktemp("plan")
    path = work / "specs.jsonl"
    done = run_cli(
        [
            "--uri",
            f"embedded:{graph}",
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
        ],
        work,
    )
    assert done.returncode == 0, done.stderr
    return [GenerationSpec.model_validate_json(line) for line in path.read_text().splitlines()]


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_missing_notes_file(graph: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    done = run_cli(
        [
            "--uri",
            f"embedded:{graph}",
            "annotate",
            str(missing),
            "--lexicon",
            "-o",
            str(tmp_path / "a.jsonl"),
        ],
        tmp_path,
    )
    assert one_line_error(done) == (
        f"error: {missing}: no such notes file (write one with `kgsynth generate`)"
    )
    assert not (tmp_path / "a.jsonl").exists()


def test_malformed_notes_line_is_named(
    graph: Path, tmp_path: Path, specs: list[GenerationSpec]
) -> None:
    notes = tmp_path / "notes.jsonl"
    notes.write_text(note_line(specs[0], NOTE_A, KEYWORDS_A) + "\n" + '{"record_id": "x"}\n')
    done = run_cli(
        [
            "--uri",
            f"embedded:{graph}",
            "annotate",
            str(notes),
            "--lexicon",
            "-o",
            str(tmp_path / "a.jsonl"),
        ],
        tmp_path,
    )
    line = one_line_error(done)
    assert line.startswith(f"error: {notes}, line 2: not a kgsynth note record (")
    notes.write_text("not json\n")
    done = run_cli(
        [
            "--uri",
            f"embedded:{graph}",
            "annotate",
            str(notes),
            "--lexicon",
            "-o",
            str(tmp_path / "a.jsonl"),
        ],
        tmp_path,
    )
    assert one_line_error(done).startswith(f"error: {notes}, line 1: not a kgsynth note record")
    assert not (tmp_path / "a.jsonl").exists()


def test_lexicon_refuses_an_llm(graph: Path, tmp_path: Path) -> None:
    done = run_cli(
        [
            "--uri",
            f"embedded:{graph}",
            "annotate",
            str(tmp_path / "n.jsonl"),
            "--lexicon",
            "--backend",
            "openai",
            "-o",
            str(tmp_path / "a.jsonl"),
        ],
        tmp_path,
    )
    assert one_line_error(done) == (
        "error: --lexicon uses no LLM: drop --backend/--model, or drop --lexicon"
    )


@pytest.mark.parametrize(
    ("args", "annotator", "backend"),
    [([], "rules", "template"), (["--lexicon"], "lexicon", "lexicon")],
)
def test_rules_and_lexicon_paths_say_who_labelled(
    graph: Path,
    tmp_path: Path,
    specs: list[GenerationSpec],
    args: list[str],
    annotator: str,
    backend: str,
) -> None:
    notes = tmp_path / "notes.jsonl"
    notes.write_text(note_line(specs[0], NOTE_A, KEYWORDS_A) + "\n")
    out = tmp_path / "a.jsonl"
    done = run_cli(
        ["--uri", f"embedded:{graph}", "annotate", str(notes), *args, "-o", str(out)],
        tmp_path,
        api_key=False,
    )
    assert done.returncode == 0, done.stderr
    (note,) = [AnnotatedNote.model_validate_json(x) for x in out.read_text().splitlines()]
    assert (note.status, note.annotator, note.backend) == ("ok", annotator, backend)
    assert [s.sentence.text for s in note.sentences] == SENTENCES_A
    # the fixture graph's keywords: "memory lapses" (cognitive), "daughter worried" (concern)
    assert [s.label.category_id for s in note.sentences] == [
        "KGS:cat/fx-da-cognitive",
        "KGS:cat/fx-da-concern",
        None,
        None,
    ]
    assert [(r.keyword, r.sentence, r.label_agrees) for r in note.realisations] == [
        ("memory lapses", 0, True),
        ("daughter worried", 1, True),
        ("withdrawn", None, None),
    ]
    if annotator == "rules":
        assert "no LLM was used" in done.stderr
    again = run_cli(
        ["--uri", f"embedded:{graph}", "annotate", str(notes), *args, "-o", str(out)],
        tmp_path,
        api_key=False,
    )
    assert again.returncode == 0, again.stderr
    assert len(out.read_text().splitlines()) == 1  # resumed: nothing to do


# -- SIGKILL mid-run, then rerun ------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadServer]:
    with ThreadServer(ServerConfig(latency_s=0.05)) as srv:
        yield srv


def long_note(i: int) -> str:
    return "\n".join(f"Visit {i}, finding {n}: nothing new to report." for n in range(14))


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def cached_chunks(db: Path, index_of: dict[str, int]) -> set[tuple[int, int]]:
    """(note number, first sentence) of every chunk whose answer the cache holds."""
    if not db.exists():
        return set()
    with sqlite3.connect(db) as conn:
        ids = [row[0] for row in conn.execute("SELECT record_id FROM responses")]
    out = set()
    for rid in ids:
        note, _, span = rid.split("/")
        out.add((index_of[note], int(span[1:].split("-")[0])))
    return out


def asked_chunk(content: str) -> tuple[int, int]:
    """(note number, first sentence) of a request, read from its first sentence line."""
    match = re.search(r"(?m)^\[(\d+)\] Visit (\d+),", content)
    assert match, content
    return int(match.group(2)), int(match.group(1))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_and_rerun(
    graph: Path, server: ThreadServer, specs: list[GenerationSpec], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(note_line(s, long_note(i), ()) + "\n" for i, s in enumerate(specs)))
    out, db = tmp_path / "ann.jsonl", tmp_path / "cache.db"
    chunks = tmp_path / "ann.chunks.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "engine.cli.main",
        "--uri",
        f"embedded:{graph}",
        "annotate",
        str(notes),
        "--backend",
        "openai",
        "--model",
        "labeller",
        "--base-url",
        server.url,
        "--concurrency",
        "8",
        "--cache",
        str(db),
        "--no-cross-check",
        "-o",
        str(out),
    ]
    index_of = {s.record_id: i for i, s in enumerate(specs)}
    rng = random.Random(20261201)
    seen_log, partial_kills = 0, 0
    cached_before: set[tuple[int, int]] = set()
    for attempt in range(KILLS + 1):
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env={**ENV, "HOME": str(tmp_path)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if attempt == 0:
            time.sleep(rng.uniform(0.2, 1.0))  # while starting up
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
        elif attempt < KILLS:
            done = line_count(chunks)
            target = done + rng.randint(1, max((2 * N - done) // 2, 1))
            while line_count(chunks) < target and proc.poll() is None:
                time.sleep(0.002)
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            time.sleep(0.2)
        else:
            _, stderr = proc.communicate(timeout=240)
            assert proc.returncode == 0, stderr
        log = server.requests()
        asked = {asked_chunk(e["body"]["messages"][1]["content"]) for e in log[seen_log:]}
        seen_log = len(log)
        # nothing the cache held when this process started was asked for again
        assert not asked & cached_before, f"run {attempt} re-paid cached chunks"
        cached_before = cached_chunks(db, index_of)
        partial_kills += 0 < attempt < KILLS and line_count(chunks) < 2 * N

    assert partial_kills == KILLS - 1  # the kills landed mid-run
    raw = out.read_bytes()
    assert raw.endswith(b"\n")
    lines = [AnnotatedNote.model_validate_json(x) for x in raw.splitlines()]
    ids = Counter(n.record_id for n in lines)
    assert set(ids) == {s.record_id for s in specs} and max(ids.values()) == 1
    assert all(n.status == "ok" and len(n.sentences) == 14 for n in lines)
    final = read_records(chunks)
    assert len(final) == 2 * N and all(r.status == "ok" for r in final.values())
    contents = Counter(asked_chunk(e["body"]["messages"][1]["content"]) for e in server.requests())
    assert set(contents) == {(i, first) for i in range(N) for first in (0, 12)}
    # a chunk is asked again only when a kill caught it in flight (at most 8 per kill)
    assert sum(c - 1 for c in contents.values()) <= 8 * KILLS
    assert len(cached_chunks(db, index_of)) == 2 * N
    chunk_ids = Counter(json.loads(x)["record_id"] for x in chunks.read_bytes().splitlines())
    assert max(chunk_ids.values()) == 1
