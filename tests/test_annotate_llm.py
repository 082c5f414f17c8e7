"""LLM annotation through the real CLI, runner and HTTP against the local test server.

Notes are written by hand (one sentence per line, headers on their own lines) on specs
planned from the engine fixture graph, with hand-picked keywords; the server labels each
"[N] text" line by ``label_rules`` (substring -> label), so every expected label, failure
reason and constraint-check result below is written by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.annotate.model import AnnotatedNote
from engine.runner import read_records
from engine.spec import GenerationSpec, Keyword
from tests.llm_server import ServerConfig, ThreadServer

REPO = Path(__file__).resolve().parents[1]
ENV = {"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "test-key"}
COG, CONCERN = "KGS:cat/fx-da-cognitive", "KGS:cat/fx-da-concern"
NPS = "KGS:cat/fx-da-neuropsychiatric"
RULES: dict[str, str | None] = {
    "memory lapses": "cognitive (dualalign)",
    "daughter worried": "concern (dualalign)",
    "agitated": "neuropsychiatric (dualalign)",
}
NOTE_A = (
    "Subjective:\n"
    "Pt reports memory lapses most days.\n"
    "Daughter worried about her safety at home.\n"
    "Objective:\n"
    "Alert and oriented.\n"
    "Plan:\n"
    "Follow up in three months.\n"
)
SENTENCES_A = [
    "Pt reports memory lapses most days.",
    "Daughter worried about her safety at home.",
    "Alert and oriented.",
    "Follow up in three months.",
]
# 14 sentences: two chunks of 12 and 2; sentence 12 is the only symptomatic one
LONG = "\n".join(
    [f"Line {n} of the history is unremarkable." for n in range(12)]
    + ["Becomes agitated in the evenings.", "Return in six weeks."]
)


def kw(text: str, suffix: str, category: str) -> Keyword:
    return Keyword(
        text=text,
        symptom_id=f"KGS:sym/fx-{suffix}",
        symptom=suffix,
        category_id=category,
        category="",
    )


KEYWORDS_A = (
    kw("memory lapses", "forgetful", COG),
    kw("daughter worried", "worry", CONCERN),
    kw("withdrawn", "apathy", NPS),  # not in NOTE_A
)


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory, graph: Path) -> list[GenerationSpec]:
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
            "3",
            "--seed",
            "3",
            "-o",
            str(path),
        ],
        work,
    )
    assert done.returncode == 0, done.stderr
    return [GenerationSpec.model_validate_json(line) for line in path.read_text().splitlines()]


def run_cli(
    args: list[str], home: Path, timeout: float = 240, *, api_key: bool = True
) -> subprocess.CompletedProcess[str]:
    """``kgsynth ARGS`` in a subprocess; ``api_key=False``: no endpoint configured at all."""
    env = {**ENV, "HOME": str(home)}
    if not api_key:
        del env["OPENAI_API_KEY"]
    return subprocess.run(
        [sys.executable, "-m", "engine.cli.main", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def note_line(spec: GenerationSpec, text: str, keywords: tuple[Keyword, ...]) -> str:
    spec = spec.model_copy(update={"keywords": keywords})
    record: dict[str, Any] = {
        "record_id": spec.record_id,
        "record_index": spec.record_index,
        "status": "ok",
        "text": text,
        "backend": "openai",
        "model": "writer",
        "fingerprint": "f" * 64,
        "params": {},
        "spec": spec.model_dump(mode="json"),
        "attempts": 1,
        "timings": {"started_at": "t0", "finished_at": "t1", "elapsed_s": 0.1},
    }
    return json.dumps(record)


@pytest.fixture
def notes(tmp_path: Path, planned: list[GenerationSpec]) -> Path:
    path = tmp_path / "notes.jsonl"
    path.write_text(
        note_line(planned[0], NOTE_A, KEYWORDS_A)
        + "\n"
        + note_line(planned[1], LONG, (kw("agitated", "agitation", NPS),))
        + "\n"
    )
    return path


@pytest.fixture
def server() -> Iterator[ThreadServer]:
    with ThreadServer(ServerConfig(label_rules=RULES)) as srv:
        yield srv


def annotate(
    graph: Path, notes: Path, out: Path, url: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        [
            "--uri",
            f"embedded:{graph}",
            "annotate",
            str(notes),
            "-o",
            str(out),
            "--backend",
            "openai",
            "--model",
            "labeller",
            "--base-url",
            url,
            *extra,
        ],
        out.parent,
    )


def read(out: Path) -> dict[str, AnnotatedNote]:
    lines = [AnnotatedNote.model_validate_json(x) for x in out.read_text().splitlines()]
    return {n.record_id: n for n in lines}


def test_labels_chunks_protocol_and_constraint_check(
    graph: Path, notes: Path, server: ThreadServer, tmp_path: Path, planned: list[GenerationSpec]
) -> None:
    out = tmp_path / "ann.jsonl"
    done = annotate(graph, notes, out, server.url)  # with the lexicon cross-check (default)
    assert done.returncode == 0, done.stderr
    got = read(out)
    a, long = got[planned[0].record_id], got[planned[1].record_id]
    assert (a.status, a.annotator, a.backend, a.model, a.scheme) == (
        "ok",
        "llm",
        "openai",
        "labeller",
        "dualalign",
    )
    assert [s.sentence.text for s in a.sentences] == SENTENCES_A
    assert [s.label.category_id for s in a.sentences] == [COG, CONCERN, None, None]
    assert [s.label.symptomatic for s in a.sentences] == [True, True, False, False]
    # the lexicon's mentions ride along: synonyms of forgetfulness and family concern
    assert [[m.symptom_id for m in s.mentions] for s in a.sentences] == [
        ["KGS:sym/fx-forgetful"],
        ["KGS:sym/fx-worry"],
        [],
        [],
    ]
    assert [(r.keyword, r.sentence, r.label_agrees) for r in a.realisations] == [
        ("memory lapses", 0, True),
        ("daughter worried", 1, True),
        ("withdrawn", None, None),
    ]
    assert a.review and a.review_reasons == ("keyword 'withdrawn' not realised",)
    assert len(long.sentences) == 14
    assert [s.sentence.index for s in long.sentences if s.label.symptomatic] == [12]
    assert long.realisations[0].sentence == 12 and not long.review

    # one request per chunk: 1 for NOTE_A, 2 for LONG (12 + 2 sentences)
    chunks = read_records(tmp_path / "ann.chunks.jsonl")
    spans = sorted(rid.rsplit("/", 1)[1] for rid in chunks)
    assert spans == ["s0-11", "s0-3", "s12-13"]
    bodies = [entry["body"] for entry in server.requests()]
    assert len(bodies) == 3
    systems = {b["messages"][0]["content"] for b in bodies}
    assert len(systems) == 1  # the static prefix, the same for every chunk
    system = systems.pop()
    for guideline in ("Label cognitive sentences.", "Label concern sentences."):
        assert guideline in system  # the protocol stored in the graph
    users = sorted(b["messages"][1]["content"] for b in bodies)
    assert "[12] Becomes agitated in the evenings." in "".join(users)
    assert all(b["response_format"]["json_schema"]["name"] == "SentenceLabels" for b in bodies)
    assert all(b["temperature"] == 0.0 for b in bodies)
    assert "3/4 requested keywords realised (75.0%)" in done.stderr
    assert "0 label disagreement(s)" in done.stderr

    # a rerun skips every note and asks nothing
    again = annotate(graph, notes, out, server.url)
    assert again.returncode == 0, again.stderr
    assert len(server.requests()) == 3
    assert len(out.read_text().splitlines()) == 2
    manifest = json.loads((tmp_path / "ann.manifest.json").read_text())
    assert manifest["notes_in_file"] == {"ok": 2, "failed": 0}
    assert [r["skipped"] for r in manifest["runs"]] == [0, 2]
    assert manifest["runs"][0]["keywords_realised"] == 3


def test_malformed_then_good_answers_are_retried(
    graph: Path, notes: Path, server: ThreadServer, tmp_path: Path, planned: list[GenerationSpec]
) -> None:
    server.configure(
        ServerConfig(label_rules=RULES, schedule=["broken_json", "wrong_schema", "prose"])
    )
    out = tmp_path / "ann.jsonl"
    done = annotate(graph, notes, out, server.url, "--concurrency", "1", "--no-cross-check")
    assert done.returncode == 0, done.stderr
    assert all(n.status == "ok" for n in read(out).values())
    chunks = read_records(tmp_path / "ann.chunks.jsonl")
    # three bad answers (to whichever chunks asked first), each retried: 6 requests in all
    assert len(server.requests()) == 6
    assert sum(r.attempts for r in chunks.values()) == 6
    assert sum(len(r.errors) for r in chunks.values()) == 3


def test_partial_answer_fails_the_note_with_its_reason(
    graph: Path, notes: Path, server: ThreadServer, tmp_path: Path, planned: list[GenerationSpec]
) -> None:
    # the server leaves sentence 2 of NOTE_A out of every answer
    server.configure(ServerConfig(label_rules={**RULES, "alert and oriented": None}))
    out = tmp_path / "ann.jsonl"
    done = annotate(graph, notes, out, server.url, "--max-attempts", "2", "--no-cross-check")
    assert done.returncode == 3, done.stderr
    got = read(out)
    a = got[planned[0].record_id]
    assert a.status == "failed"
    assert a.reason == "sentences 0-3: no label for sentence(s) 2 of 4"
    assert a.sentences == () and a.realisations == ()
    assert got[planned[1].record_id].status == "ok"
    assert "1 failed" in done.stderr

    # the answer comes right: a rerun retries only the failed chunk
    server.configure(ServerConfig(label_rules=RULES))
    before = len(server.requests())
    again = annotate(graph, notes, out, server.url, "--no-cross-check")
    assert again.returncode == 0, again.stderr
    assert len(server.requests()) - before == 1
    assert read(out)[planned[0].record_id].status == "ok"


def test_label_outside_the_scheme_is_unparseable(
    graph: Path, notes: Path, server: ThreadServer, tmp_path: Path, planned: list[GenerationSpec]
) -> None:
    server.configure(ServerConfig(label_rules={**RULES, "alert and oriented": "sleepiness"}))
    out = tmp_path / "ann.jsonl"
    done = annotate(graph, notes, out, server.url, "--max-attempts", "1", "--no-cross-check")
    assert done.returncode == 3, done.stderr
    reason = read(out)[planned[0].record_id].reason
    assert reason is not None
    assert reason.startswith(
        "sentences 0-3: model output does not match SentenceLabels: labels.2.label"
    )
    chunks = read_records(tmp_path / "ann.chunks.jsonl")
    assert {r.failure for r in chunks.values() if r.status == "failed"} == {"unparseable"}


def test_answer_cut_at_the_token_limit_says_so(
    graph: Path, notes: Path, server: ThreadServer, tmp_path: Path, planned: list[GenerationSpec]
) -> None:
    # the first request (NOTE_A's chunk, concurrency 1) stops at the token limit
    server.configure(ServerConfig(label_rules=RULES, schedule=["length"]))
    out = tmp_path / "ann.jsonl"
    done = annotate(
        graph, notes, out, server.url, "--max-attempts", "1", "--concurrency", "1",
        "--no-cross-check",
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert read(out)[planned[0].record_id].reason == (
        "sentences 0-3: answer cut at the token limit (1024 max_tokens); raise --max-tokens"
    )
    chunks = read_records(tmp_path / "ann.chunks.jsonl")
    assert {r.failure for r in chunks.values() if r.status == "failed"} == {"truncated"}


def test_batch_file_then_ingest(
    graph: Path, notes: Path, tmp_path: Path, planned: list[GenerationSpec]
) -> None:
    out = tmp_path / "ann.jsonl"
    base = ["--uri", f"embedded:{graph}", "annotate", str(notes), "-o", str(out)]
    done = run_cli([*base, "--backend", "batch", "--model", "m"], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in (tmp_path / "ann.batch.jsonl").read_text().splitlines()]
    ids = {line["custom_id"].rsplit("/", 1)[1]: line["custom_id"] for line in lines}
    assert sorted(ids) == ["s0-11", "s0-3", "s12-13"]
    assert all(
        x["body"]["response_format"]["json_schema"]["name"] == "SentenceLabels" for x in lines
    )
    da = "(dualalign)"
    answers = {  # written by hand for NOTE_A and LONG
        "s0-3": [
            (0, f"cognitive {da}"),
            (1, f"concern {da}"),
            (2, "no symptom"),
            (3, "no symptom"),
        ],
        "s0-11": [(n, "no symptom") for n in range(12)],
        "s12-13": [(12, f"neuropsychiatric {da}"), (13, "no symptom")],
    }
    results = tmp_path / "results.jsonl"
    results.write_text(
        "".join(
            json.dumps(
                {
                    "custom_id": ids[span],
                    "response": {
                        "status_code": 200,
                        "body": {
                            "choices": [
                                {
                                    "message": {
                                        "content": json.dumps(
                                            {
                                                "labels": [
                                                    {"sentence": n, "label": lab}
                                                    for n, lab in labels
                                                ]
                                            }
                                        )
                                    },
                                    "finish_reason": "stop",
                                }
                            ]
                        },
                    },
                }
            )
            + "\n"
            for span, labels in answers.items()
        )
    )
    done = run_cli(
        [*base, "--backend", "batch", "--model", "m", "--ingest", str(results)], tmp_path
    )
    assert done.returncode == 0, done.stderr
    got = read(out)
    a, long = got[planned[0].record_id], got[planned[1].record_id]
    assert (a.backend, a.model) == ("batch", "m")
    assert [s.label.category_id for s in a.sentences] == [COG, CONCERN, None, None]
    assert [s.sentence.index for s in long.sentences if s.label.symptomatic] == [12]
    assert long.sentences[12].label.category_id == NPS
