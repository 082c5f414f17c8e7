"""``kgsynth dataset build`` on real template notes: three forms, splits, exclusions, errors.

Expected values are computed here from the inputs (a second method), never read back from
the code under test: class names from the annotations, split buckets from sha256 directly.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest

from engine.annotate.model import NO_SYMPTOM, AnnotatedNote
from engine.dataset.build import build_dataset
from engine.dataset.splits import SplitConfig, SplitMethod, parse_ratios
from engine.errors import EngineError
from engine.provenance import sha256_hex
from engine.runner.records import NoteRecord
from tests.test_dataset_inputs import annotate, failed, generate, kgsynth, rejected, write_jsonl

pytestmark = pytest.mark.timeout(600)
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Inputs:
    notes: Path
    annotations: Path
    ok_lines: list[str]
    tail: list[str]
    annotation_lines: list[str]
    used: dict[str, tuple[NoteRecord, AnnotatedNote]]
    excluded: dict[str, str]


@pytest.fixture(scope="module")
def inputs(graph: Path, tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    """24 notes (12 per code); 0 rejected, 1 failed (later lines), 2's annotation failed,
    3 not annotated: 20 notes used."""
    root = tmp_path_factory.mktemp("ds")
    path = generate(
        graph, root / "gen.jsonl", "--recipe", "dualalign", "--icd", "G30.9,G30.0", "-n", "12"
    )
    ok_lines = path.read_text().splitlines()
    notes = [NoteRecord.model_validate_json(line) for line in ok_lines]
    assert [n.spec.icd_code for n in notes if n.spec] == ["G30.9"] * 12 + ["G30.0"] * 12
    tail = [rejected(notes[0]), failed(notes[1])]
    annotated = {n.record_id: annotate(n) for n in notes}
    annotated[notes[2].record_id] = annotated[notes[2].record_id].model_copy(
        update={"status": "failed", "sentences": (), "reason": "unparseable"}
    )
    del annotated[notes[3].record_id]
    lines = [a.model_dump_json() for a in annotated.values()]
    excluded = {
        notes[0].record_id: "note rejected",
        notes[1].record_id: "note failed",
        notes[2].record_id: "annotation failed",
        notes[3].record_id: "not annotated",
    }
    used = {n.record_id: (n, annotated[n.record_id]) for n in notes[4:]}
    return Inputs(
        notes=write_jsonl(root / "notes.jsonl", [*ok_lines, *tail]),
        annotations=write_jsonl(root / "annotations.jsonl", lines),
        ok_lines=ok_lines,
        tail=tail,
        annotation_lines=lines,
        used=used,
        excluded=excluded,
    )


def build(
    inputs: Inputs,
    out: Path,
    *args: str,
    notes: Path | None = None,
    annotations: Path | None = None,
) -> Path:
    done = kgsynth(
        "dataset",
        "build",
        "--notes",
        str(notes or inputs.notes),
        "--annotations",
        str(annotations or inputs.annotations),
        "-o",
        str(out),
        *args,
    )
    assert done.returncode == 0, done.stderr
    return out


def build_here(
    inputs: Inputs,
    out: Path,
    split: SplitConfig | None = None,
    notes: Path | None = None,
    annotations: Path | None = None,
) -> Path:
    """The same build in this process (no interpreter start per build)."""
    notes, annotations = notes or inputs.notes, annotations or inputs.annotations
    build_dataset(notes, annotations, out, split or SplitConfig(), force=False)
    return out


def expected_names(used: dict[str, tuple[NoteRecord, AnnotatedNote]]) -> list[str]:
    """Class names: no symptom, then categories (labels and requested) by category id."""
    names: dict[str, str] = {}
    for note, annotation in used.values():
        assert note.spec is not None
        names.update({k.category_id: k.category for k in note.spec.keywords})
        for s in annotation.sentences:
            if s.label.category_id:
                names[s.label.category_id] = s.label.category
    return [NO_SYMPTOM, *(names[i] for i in sorted(names))]


def bucket(seed: int, record_id: str, ratios: tuple[float, ...] = (0.8, 0.1, 0.1)) -> str:
    point = int(hashlib.sha256(f"{seed}:{record_id}".encode()).hexdigest()[:16], 16) / 16**16
    if point < ratios[0]:
        return "train"
    return "validation" if point < ratios[0] + ratios[1] else "test"


def jsonl_rows(out: Path, split: str) -> list[dict[str, Any]]:
    path = out / "jsonl" / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_jsonl_parquet_and_hf_hold_the_same_rows_with_class_labels(
    inputs: Inputs, tmp_path: Path
) -> None:
    out = build(inputs, tmp_path / "ds", "--ratios", "60/20/20")
    hf = datasets.load_from_disk(str(out / "hf"))
    assert isinstance(hf, datasets.DatasetDict)
    names = expected_names(inputs.used)
    seen_records: dict[str, str] = {}
    for split in hf:
        feats = hf[split].features
        assert feats["label"] == datasets.ClassLabel(names=names)
        assert feats["binary_label"] == datasets.ClassLabel(names=[NO_SYMPTOM, "symptom"])
        assert feats["text"] == datasets.Value("string")
        assert feats["risk_factors"] == datasets.List(datasets.Value("string"))
        rows = hf[split].to_list()
        assert pq.read_table(out / "parquet" / f"{split}.parquet").to_pylist() == rows
        assert jsonl_rows(out, split) == rows
        # the parquet file carries the features: datasets reads the class labels back
        again = datasets.load_dataset(
            "parquet", data_files={split: str(out / "parquet" / f"{split}.parquet")}
        )[split]
        assert again.features == feats
        for row in rows:
            assert seen_records.setdefault(row["record_id"], split) == split
    assert set(seen_records) == set(inputs.used)

    # every sentence of every used annotation, with its label, offsets and note context
    expected = {
        (rid, s.sentence.index): (s.sentence.text, s.sentence.start, s.label, note)
        for rid, (note, a) in inputs.used.items()
        for s in a.sentences
    }
    rows = [r for split in hf for r in hf[split].to_list()]
    assert len(rows) == len(expected)
    for row in rows:
        text, start, label, note = expected[(row["record_id"], row["sentence_index"])]
        assert (row["text"], row["start"]) == (text, start)
        assert note.text is not None and note.text[row["start"] : row["end"]] == row["text"]
        assert row["note_fingerprint"] == sha256_hex(note.text)
        assert row["generation_fingerprint"] == note.fingerprint
        assert (
            names[row["label"]]
            == row["label_name"]
            == (label.category if label.category_id else NO_SYMPTOM)
        )
        assert row["binary_label"] == int(label.category_id is not None)
        assert note.spec is not None and note.spec.persona is not None and note.spec.window
        assert row["icd_code"] == note.spec.icd_code
        assert row["age"] == note.spec.persona.age
        assert row["sex"] == note.spec.persona.attributes["sex"]
        assert row["persona_race_ethnicity"] == note.spec.persona.attributes["race_ethnicity"]
        assert row["window_name"] == note.spec.window.name
        assert row["window_order"] == note.spec.window.order
        assert row["kg_hash"] == note.spec.kg_hash
        assert (row["annotator"], row["annotation_fingerprint"]) == ("rules", "a" * 64)
        assert (row["backend"], row["model"]) == ("template", "rule-based")


def test_rejected_failed_and_unannotated_notes_never_appear_and_are_counted(
    inputs: Inputs, tmp_path: Path
) -> None:
    out = build_here(inputs, tmp_path / "ds")
    every_file = [p for p in out.rglob("*") if p.is_file() and p.suffix != ".parquet"]
    for rid in inputs.excluded:
        assert not any(rid.encode() in p.read_bytes() for p in every_file), rid
    for split in SPLITS:
        path = out / "parquet" / f"{split}.parquet"
        if path.exists():
            ids = set(pq.read_table(path, columns=["record_id"]).column(0).to_pylist())
            assert not ids & set(inputs.excluded)
    summary = json.loads((out / "dataset.json").read_text())
    assert summary["excluded"] == dict(sorted(Counter(inputs.excluded.values()).items()))
    assert summary["note_statuses"] == {"failed": 1, "ok": 22, "rejected": 1}
    assert summary["notes_used"] == len(inputs.used) == 20
    card = (out / "README.md").read_text()
    assert (
        "Notes left out:\n- annotation failed: 1\n- not annotated: 1\n- note failed: 1\n"
        "- note rejected: 1\n"
    ) in card
    assert "Rejected notes in the notes file: 1 (never in this dataset)." in card


def test_splits_are_by_record_deterministic_and_independent_of_input_order(
    inputs: Inputs, tmp_path: Path
) -> None:
    first = build_here(inputs, tmp_path / "a")
    shuffled = list(inputs.ok_lines)
    random.Random(5).shuffle(shuffled)
    annotations = list(inputs.annotation_lines)
    random.Random(6).shuffle(annotations)
    second = build_here(
        inputs,
        tmp_path / "b",
        notes=write_jsonl(tmp_path / "n2.jsonl", [*shuffled, *inputs.tail]),
        annotations=write_jsonl(tmp_path / "a2.jsonl", annotations),
    )
    for split in SPLITS:
        a, b = first / "jsonl" / f"{split}.jsonl", second / "jsonl" / f"{split}.jsonl"
        assert a.exists() == b.exists()
        if a.exists():
            assert a.read_bytes() == b.read_bytes()
    strip = {"notes_sha256", "annotations_sha256", "notes_file", "annotations_file"}
    one, two = (json.loads((d / "dataset.json").read_text()) for d in (first, second))
    assert {k: v for k, v in one.items() if k not in strip} == {
        k: v for k, v in two.items() if k not in strip
    }
    where = {r["record_id"]: s for s in SPLITS for r in jsonl_rows(first, s)}
    assert where == {rid: bucket(0, rid) for rid in inputs.used}
    other = build_here(inputs, tmp_path / "c", SplitConfig(seed=7, ratios=(2, 1, 1)))
    moved = {r["record_id"]: s for s in SPLITS for r in jsonl_rows(other, s)}
    assert moved == {rid: bucket(7, rid, (0.5, 0.25, 0.25)) for rid in inputs.used}


def test_stratified_splits_give_exact_ratios_per_icd_code(inputs: Inputs, tmp_path: Path) -> None:
    split = SplitConfig(ratios=(50, 25, 25), method=SplitMethod.stratified)
    out = build_here(inputs, tmp_path / "s", split)
    where = {r["record_id"]: (s, r["icd_code"]) for s in SPLITS for r in jsonl_rows(out, s)}
    per_code = Counter(where.values())
    # 8 G30.9 notes are used (4 excluded) and 12 G30.0: 4/2/2 and 6/3/3
    assert per_code == {
        ("train", "G30.9"): 4,
        ("validation", "G30.9"): 2,
        ("test", "G30.9"): 2,
        ("train", "G30.0"): 6,
        ("validation", "G30.0"): 3,
        ("test", "G30.0"): 3,
    }
    for code, n_train in (("G30.9", 4), ("G30.0", 6)):
        ids = sorted(
            (r for r, (_, c) in where.items() if c == code),
            key=lambda r: hashlib.sha256(f"0:{r}".encode()).hexdigest(),
        )
        assert {where[r][0] for r in ids[:n_train]} == {"train"}


def test_a_rebuild_replaces_the_dataset_other_directories_need_force(
    inputs: Inputs, tmp_path: Path
) -> None:
    out = build_here(inputs, tmp_path / "ds")
    (out / "stray.txt").write_text("from an earlier build")
    build_here(inputs, out)
    assert not (out / "stray.txt").exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    done = kgsynth(
        "dataset",
        "build",
        "--notes",
        str(inputs.notes),
        "--annotations",
        str(inputs.annotations),
        "-o",
        str(other),
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: -o {other} holds files that are not a kgsynth dataset; name a new "
        "directory, or pass --force to replace it"
    ]
    assert (other / "keep.txt").read_text() == "mine"
    build(inputs, other, "--force")
    assert (other / "dataset.json").is_file() and not (other / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_input_errors_are_one_line_and_write_nothing(inputs: Inputs, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    base = ["dataset", "build", "--notes", str(inputs.notes), "-o", str(out)]

    def error(*args: str) -> str:
        done = kgsynth(*base, *args)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
        assert not out.exists()
        return lines[0]

    missing = tmp_path / "none.jsonl"
    assert error("--annotations", str(missing)) == f"error: {missing}: no such annotations file"
    # an annotation whose offsets do not match the note (made from another text)
    stale = [json.loads(line) for line in inputs.annotation_lines]
    stale[5]["sentences"][1]["sentence"]["start"] += 1
    stale_file = write_jsonl(tmp_path / "stale.jsonl", [json.dumps(a) for a in stale])
    message = error("--annotations", str(stale_file))
    assert f"stale.jsonl, line 6: record {stale[5]['record_id']}, sentence 1: offsets" in message
    # a second label scheme
    other_text = [json.loads(line) for line in inputs.annotation_lines]
    other_text[4]["note_fingerprint"] = sha256_hex("another text")
    other_file = write_jsonl(tmp_path / "other.jsonl", [json.dumps(a) for a in other_text])
    with pytest.raises(EngineError, match=r"other\.jsonl, line 5: record \S+ was annotated from "):
        build_here(inputs, out, annotations=other_file)
    mixed = [json.loads(line) for line in inputs.annotation_lines]
    mixed[7]["scheme"] = "jmir"
    mixed_file = write_jsonl(tmp_path / "mixed.jsonl", [json.dumps(a) for a in mixed])
    with pytest.raises(EngineError, match=r"use 2 label schemes \(dualalign, jmir\); build one"):
        build_here(inputs, out, annotations=mixed_file)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    for bad in ("80/20", "a/b/c", "80/-10/30"):
        with pytest.raises(EngineError, match=f"^--ratios '{bad}': "):
            parse_ratios(bad)
    assert parse_ratios("0.8,0.1,0.1") == (0.8, 0.1, 0.1)


def test_generate_gate_annotate_dataset_and_fhir_end_to_end(graph: Path, tmp_path: Path) -> None:
    """Real commands throughout: the gate rejects the two notes whose opening line is in the
    reference corpus; `kgsynth annotate` labels the rest; dataset and bundle leave them out."""
    plain = generate(
        graph,
        tmp_path / "plain.jsonl",
        "--recipe",
        "dualalign",
        "--icd",
        "G30.9",
        "-n",
        "6",
        "--seed",
        "5",
    )
    first_lines = [
        json.loads(line)["text"].splitlines()[0] for line in plain.read_text().splitlines()
    ]
    reference = write_jsonl(
        tmp_path / "reference.jsonl", [json.dumps({"text": first_lines[i]}) for i in (0, 3)]
    )
    gated = generate(
        graph,
        tmp_path / "gated.jsonl",
        "--recipe",
        "dualalign",
        "--icd",
        "G30.9",
        "-n",
        "6",
        "--seed",
        "5",
        "--gate",
        "privacy",
        "--reference",
        str(reference),
    )
    records = [json.loads(line) for line in gated.read_text().splitlines()]
    status = {r["record_id"]: r["status"] for r in records}
    bad = {rid for rid, s in status.items() if s == "rejected"}
    assert bad == {"dualalign-5-00000000", "dualalign-5-00000003"}
    annotations = tmp_path / "annotations.jsonl"
    done = kgsynth(
        "--uri",
        f"embedded:{graph}",
        "annotate",
        str(gated),
        "--backend",
        "template",
        "-o",
        str(annotations),
    )
    assert done.returncode == 0, done.stderr
    annotated = [json.loads(line) for line in annotations.read_text().splitlines()]
    assert {a["record_id"] for a in annotated} == set(status) - bad
    out = tmp_path / "ds"
    done = kgsynth(
        "dataset", "build", "--notes", str(gated), "--annotations", str(annotations), "-o", str(out)
    )
    assert done.returncode == 0, done.stderr
    rows = [r for s in SPLITS for r in jsonl_rows(out, s)]
    assert {r["record_id"] for r in rows} == set(status) - bad
    assert len(rows) == sum(len(a["sentences"]) for a in annotated)
    card = (out / "README.md").read_text()
    assert (
        "- Annotators (annotator (backend/model), notes): rules (template/rule-based) (4)" in card
    )
    assert "Rejected notes in the notes file: 2 (never in this dataset)." in card
    assert "- records_rejected: 2" in card
    assert '- checks: ["privacy"]' in card
    for rid in bad:
        assert rid not in card
    # the rejected notes' opening sentences (as the ungated run wrote them) are in no row
    plain_notes = [NoteRecord.model_validate_json(line) for line in plain.read_text().splitlines()]
    opening = {annotate(plain_notes[i]).sentences[0].sentence.text for i in (0, 3)}
    assert len(opening) == 2 and not opening & {r["text"] for r in rows}
    bundle = tmp_path / "bundle.json"
    done = kgsynth("export", "fhir", str(gated), "-o", str(bundle))
    assert done.returncode == 0, done.stderr
    assert "left out 2 rejected" in done.stderr
    entries = json.loads(bundle.read_text())["entry"]
    assert sorted(e["resource"]["identifier"][0]["value"] for e in entries) == sorted(
        set(status) - bad
    )
