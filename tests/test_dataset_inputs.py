"""Dataset inputs: notes from the real ``generate`` CLI, annotations made here, bad input.

The annotations are built in the test (sentences from the real segmenter, labels from the
keywords each spec requested), so the dataset's rows, splits and counts can be checked
against values computed here from them. Other dataset and export
tests import the helpers below.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from engine.annotate.model import (
    AnnotatedNote,
    Label,
    Mention,
    Realisation,
    SentenceAnnotation,
)
from engine.annotate.notes import note_text
from engine.annotate.segment import segment
from engine.dataset.inputs import read_annotations, read_notes
from engine.errors import EngineError
from engine.provenance import sha256_hex
from engine.runner.records import NoteRecord

pytestmark = pytest.mark.timeout(300)
REPO = Path(__file__).resolve().parents[1]
#: the subprocesses' HOME: the embedded server's GraphBLAS caches JIT kernels under it
HOME = Path(tempfile.mkdtemp(prefix="kgsynth-test-home-"))


def kgsynth(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``kgsynth ARGS`` through the real entry point (``engine.cli.main``) in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "engine.cli.main", *args],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(HOME), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=240,
    )


def generate(graph: Path, out: Path, *args: str) -> Path:
    """Template notes written by the real ``kgsynth generate`` in a subprocess."""
    done = kgsynth(
        "--uri", f"embedded:{graph}", "generate", "--backend", "template", "-o", str(out), *args
    )
    assert done.returncode == 0, done.stderr
    return out


def annotate(note: NoteRecord) -> AnnotatedNote:
    """Rule annotation: the real segmenter's sentences, each labelled by the first keyword
    of its spec found in it (every keyword found is a mention; the second one negated)."""
    assert note.spec is not None
    text = note_text(note.text, note.parsed)
    sentences = []
    realisations: dict[str, Realisation] = {}
    for sentence in segment(text):
        hits = [k for k in note.spec.keywords if k.text in sentence.text]
        label = (
            Label(category_id=hits[0].category_id, category=hits[0].category) if hits else Label()
        )
        at = [sentence.start + sentence.text.index(k.text) for k in hits]
        mentions = tuple(
            Mention(
                start=start,
                end=start + len(k.text),
                text=k.text,
                symptom_id=k.symptom_id,
                category_id=k.category_id,
                negated=i == 1,
            )
            for i, (k, start) in enumerate(zip(hits, at, strict=True))
        )
        sentences.append(SentenceAnnotation(sentence=sentence, label=label, mentions=mentions))
        for k in hits:
            agrees = label.category_id == k.category_id
            realisations.setdefault(
                k.text,
                Realisation(
                    keyword=k.text,
                    category_id=k.category_id,
                    sentence=sentence.index,
                    label_agrees=agrees,
                ),
            )
    for k in note.spec.keywords:
        realisations.setdefault(k.text, Realisation(keyword=k.text, category_id=k.category_id))
    disagree = any(r.label_agrees is False for r in realisations.values())
    return AnnotatedNote(
        record_id=note.record_id,
        status="ok",
        annotator="rules",
        backend="template",
        model="rule-based",
        scheme=note.spec.scheme,
        note_fingerprint=sha256_hex(text),
        fingerprint="a" * 64,
        sentences=tuple(sentences),
        realisations=tuple(realisations.values()),
        review=disagree,
        review_reasons=("label disagrees with a requested keyword",) if disagree else (),
    )


def rejected(note: NoteRecord) -> str:
    """A later line for ``note``: the gate rejected it (no text), as the runner writes one."""
    return note.model_copy(
        update={"status": "rejected", "text": None, "raw_response": None, "reason": "privacy"}
    ).model_dump_json()


def failed(note: NoteRecord) -> str:
    """A later line for ``note``: it failed (no text)."""
    return note.model_copy(
        update={"status": "failed", "text": None, "raw_response": None, "reason": "timeout"}
    ).model_dump_json()


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def notes_file(graph: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("notes") / "notes.jsonl"
    return generate(graph, out, "--recipe", "dualalign", "--icd", "G30.9", "-n", "4")


def test_last_line_per_record_wins_and_only_ok_notes_are_kept(
    notes_file: Path, tmp_path: Path
) -> None:
    lines = notes_file.read_text().splitlines()
    notes = [NoteRecord.model_validate_json(line) for line in lines]
    # record 0 rejected after it was ok; record 1 failed, then ok on a rerun; 2 failed
    path = write_jsonl(
        tmp_path / "n.jsonl",
        [*lines, rejected(notes[0]), failed(notes[2])],
    )
    path.write_text(failed(notes[1]) + "\n" + path.read_text())
    read = read_notes(path)
    assert sorted(read.ok) == [notes[1].record_id, notes[3].record_id]
    assert dict(read.statuses) == {"ok": 2, "rejected": 1, "failed": 1}
    assert read.ids == {n.record_id for n in notes}


def test_a_partial_last_line_is_dropped_a_whole_one_without_newline_is_kept(
    notes_file: Path, tmp_path: Path
) -> None:
    lines = notes_file.read_text().splitlines()
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    assert len(read_notes(cut).ok) == 3
    whole = tmp_path / "whole.jsonl"
    whole.write_text("\n".join(lines))
    assert len(read_notes(whole).ok) == 4


def test_bad_notes_input_is_one_message_naming_file_and_line(
    notes_file: Path, tmp_path: Path
) -> None:
    lines = notes_file.read_text().splitlines()
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(EngineError, match=f"^{re.escape(str(missing))}: no such notes file$"):
        read_notes(missing)
    broken = write_jsonl(tmp_path / "b.jsonl", [lines[0], '{"record_id": "x", ', lines[1]])
    with pytest.raises(EngineError, match=r"b\.jsonl, line 2: not valid JSON"):
        read_notes(broken)
    no_id = write_jsonl(tmp_path / "c.jsonl", [lines[0], "[1, 2]"])
    with pytest.raises(EngineError, match=r"c\.jsonl, line 2: no record_id"):
        read_notes(no_id)
    bad = json.loads(lines[1])
    bad["attempts"] = "many"
    wrong = write_jsonl(tmp_path / "d.jsonl", [lines[0], json.dumps(bad)])
    with pytest.raises(EngineError, match=r"d\.jsonl, line 2: not a note record: field attempts"):
        read_notes(wrong)


def test_annotations_of_notes_the_notes_file_does_not_hold_are_refused(
    notes_file: Path, tmp_path: Path
) -> None:
    notes = read_notes(notes_file)
    annotated = [annotate(n).model_dump_json() for n in notes.ok.values()]
    stranger = annotate(next(iter(notes.ok.values()))).model_copy(update={"record_id": "zz-1"})
    path = write_jsonl(tmp_path / "a.jsonl", [*annotated, stranger.model_dump_json()])
    with pytest.raises(
        EngineError, match=r"1 annotated note\(s\) are not in .*first: zz-1, line 5"
    ):
        read_annotations(path, notes)
    bad = json.loads(annotated[2])
    bad["annotator"] = "oracle"
    path = write_jsonl(tmp_path / "b.jsonl", [annotated[0], json.dumps(bad)])
    with pytest.raises(EngineError, match=r"line 2: not an annotation record: field annotator"):
        read_annotations(path, notes)
    assert set(read_annotations(write_jsonl(tmp_path / "c.jsonl", annotated), notes).notes) == set(
        notes.ok
    )
