"""The dataset card and summary on a small hand-made input: every figure written by hand."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
import yaml

from engine.annotate.model import AnnotatedNote, Label, Mention, Realisation, Sentence
from engine.annotate.model import SentenceAnnotation as SA
from engine.dataset.build import build_dataset
from engine.dataset.splits import SplitConfig
from engine.errors import EngineError
from engine.provenance import sha256_hex
from engine.runner.records import NoteRecord, Timings
from engine.spec import GenerationSpec, Keyword, Persona, WindowRef

COG = Label(category_id="T:cat/cognitive", category="cognitive")
MOOD = Label(category_id="T:cat/mood", category="mood")
NONE = Label()
TEXTS = {
    "toy-1": "Forgets names often. No fever today.",
    "toy-2": "Feels low. Got lost driving home. Plan: review.",
    "toy-3": "Sleeps well.",
    "toy-4": "Annotation of this one failed.",
    "toy-5": "Nobody annotated this one.",
    "toy-6": "The gate rejected this one later.",
}
KEYWORDS = {
    "toy-1": [("forgets names", "T:cat/cognitive", "cognitive")],
    "toy-2": [("feels low", "T:cat/mood", "mood"), ("got lost", "T:cat/cognitive", "cognitive")],
    "toy-3": [("insomnia", "T:cat/sleep", "sleep")],
}


def note(rid: str, index: int) -> NoteRecord:
    spec = GenerationSpec(
        recipe="dualalign",
        run_seed=1,
        record_index=index,
        record_id=rid,
        record_seed=index,
        icd_code="G30.9",
        icd_title="Alzheimer's disease, unspecified",
        disease_id="T:disease/ad",
        disease="Toy Alzheimer disease",
        persona=Persona(age=70 + index, attributes={"sex": "female", "region": "north"}),
        window=WindowRef(
            id="T:win/near",
            name="near",
            order=2,
            start_months=-12,
            end_months=0,
            phrase="within a year",
            diagnosed=False,
        ),
        scheme="toy",
        keywords=tuple(
            Keyword(text=t, symptom_id=f"T:sym/{t}", symptom=t, category_id=c, category=n)
            for t, c, n in KEYWORDS.get(rid, [])
        ),
        template_id="t.j2",
        template_hash="0" * 64,
        kg_hash="k" * 64,
    )
    return NoteRecord(
        record_id=rid,
        record_index=index,
        status="ok",
        text=TEXTS[rid],
        backend="template",
        model="rule-based",
        fingerprint="n" * 64,
        params={},
        spec=spec,
        attempts=1,
        timings=Timings(
            started_at="2026-12-01T00:00:00Z", finished_at="2026-12-01T00:00:01Z", elapsed_s=1.0
        ),
    )


def sentence(rid: str, index: int, piece: str, label: Label, *mentions: Mention) -> SA:
    start = TEXTS[rid].index(piece)
    return SA(
        sentence=Sentence(index=index, start=start, end=start + len(piece), text=piece),
        label=label,
        mentions=mentions,
    )


def mention(label: Label, **flags: bool) -> Mention:
    assert label.category_id is not None
    return Mention(
        start=0, end=1, text="x", symptom_id="T:sym/x", category_id=label.category_id, **flags
    )


def annotation(rid: str, *sentences: SA, **extra: object) -> str:
    return AnnotatedNote(
        record_id=rid,
        annotator="llm",
        backend="openai",
        model="judge-1",
        scheme="toy",
        note_fingerprint=sha256_hex(TEXTS[rid]),
        fingerprint="z" * 64,
        sentences=sentences,
        **{"status": "ok", **extra},  # type: ignore[arg-type]
    ).model_dump_json()


@pytest.fixture
def toy(tmp_path: Path) -> tuple[Path, Path]:
    notes = [note(rid, i) for i, rid in enumerate(TEXTS)]
    lines = [n.model_dump_json() for n in notes]
    lines.append(notes[5].model_copy(update={"status": "rejected", "text": None}).model_dump_json())
    annotations = [
        annotation(
            "toy-1",
            sentence("toy-1", 0, "Forgets names often.", COG, mention(COG)),
            # an uncertain mention counts for the cross-check, a hypothetical one does not
            sentence("toy-1", 1, "No fever today.", NONE, mention(COG, uncertain=True)),
            realisations=(
                Realisation(
                    keyword="forgets names",
                    category_id="T:cat/cognitive",
                    sentence=0,
                    label_agrees=True,
                ),
            ),
        ),
        annotation(
            "toy-2",
            sentence("toy-2", 0, "Feels low.", MOOD, mention(MOOD)),
            sentence(
                "toy-2", 1, "Got lost driving home.", COG, mention(MOOD), mention(COG, negated=True)
            ),
            sentence("toy-2", 2, "Plan: review.", NONE),
            realisations=(
                Realisation(
                    keyword="feels low", category_id="T:cat/mood", sentence=0, label_agrees=True
                ),
                Realisation(
                    keyword="got lost",
                    category_id="T:cat/cognitive",
                    sentence=1,
                    label_agrees=False,
                ),
            ),
            review=True,
            review_reasons=("label disagrees",),
        ),
        annotation(
            "toy-3",
            sentence("toy-3", 0, "Sleeps well.", NONE, mention(MOOD, hypothetical=True)),
            realisations=(Realisation(keyword="insomnia", category_id="T:cat/sleep"),),
        ),
        annotation("toy-4", status="failed", reason="unparseable"),
        annotation("toy-6", sentence("toy-6", 0, TEXTS["toy-6"], NONE)),
    ]
    notes_file = tmp_path / "notes.jsonl"
    notes_file.write_text("\n".join(lines) + "\n")
    annotations_file = tmp_path / "annotations.jsonl"
    annotations_file.write_text("\n".join(annotations) + "\n")
    manifest = {
        "gate": {"ngram": 12, "checks": ["privacy", "leakage"]},
        "runs": [
            {"gate": {"checked": 5, "rejected": {"privacy": 1}}},
            {"ok": 3},
            {"gate": {"checked": 2, "rejected": {"privacy": 2, "leakage": 1}}},
        ],
    }
    (tmp_path / "notes.manifest.json").write_text(json.dumps(manifest))
    return notes_file, annotations_file


def test_card_and_summary_figures_match_the_hand_counts(
    toy: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "ds"
    summary = build_dataset(*toy, out, SplitConfig(ratios=(1, 0, 0)), force=False)
    assert summary.labels == ["no symptom", "cognitive", "mood", "sleep"]
    assert summary.splits["train"].notes == 3 and summary.splits["train"].sentences == 6
    assert summary.splits["train"].labels == {
        "no symptom": 3,
        "cognitive": 2,
        "mood": 1,
        "sleep": 0,
    }
    assert summary.splits["train"].binary == {"no symptom": 3, "symptom": 3}
    assert summary.excluded == {"annotation failed": 1, "not annotated": 1, "note rejected": 1}
    assert summary.note_statuses == {"ok": 5, "rejected": 1}
    assert summary.constraints == {
        "label agrees": 2,
        "label disagrees": 1,
        "realised": 3,
        "requested keywords": 4,
    }
    assert summary.lexicon == {
        "label matches a mention's category": 2,
        "sentences with an affirmed mention": 4,
    }
    assert summary.review == {"flagged for review": 1, "not flagged": 2}
    assert summary.split_unit == "record" and summary.splits["train"].patients is None
    card = (out / "README.md").read_text()
    assert "Patients per split" not in card and "| patients |" not in card
    for line in (
        "| train | 3 | 6 | 3 | 3 |",
        "| validation | 0 | 0 | 0 | 0 |",
        "| test | 0 | 0 | 0 | 0 |",
        "| total | 3 | 6 | 3 | 3 |",
        "| 0 | no symptom | - | 3 | 0 | 0 | 3 |",
        "| 1 | cognitive | `T:cat/cognitive` | 2 | 0 | 0 | 2 |",
        "| 2 | mood | `T:cat/mood` | 1 | 0 | 0 | 1 |",
        "| 3 | sleep | `T:cat/sleep` | 0 | 0 | 0 | 0 |",
        "Notes file `notes.jsonl`: 5 ok, 1 rejected (latest line per record). Notes used: 3.",
        "- annotation failed: 1\n- not annotated: 1\n- note rejected: 1",
        "Empty, so not written: validation, test.",
        "By record (all sentences of a note are in one split): method `hash`, seed 0",
        "Rejected notes in the notes file: 1 (never in this dataset).",
        '- checks: ["privacy", "leakage"]\n- ngram: 12',
        '- checked: 7\n- rejected: {"leakage": 1, "privacy": 3}',
        "- flagged for review: 1\n- not flagged: 2",
        "- label disagrees: 1",
        "- Generators (backend/model, notes): template/rule-based (3)",
        "- Annotators (annotator (backend/model), notes): llm (openai/judge-1) (3)",
        "- ICD-10-CM codes: G30.9 (3)",
        "- `T:disease/ad`: Toy Alzheimer disease",
        f"- Knowledge graph content hash(es) of the disease profiles: `{'k' * 64}`",
        "**Synthetic data.**",
        "  - split: train\n    path: parquet/train.parquet\n---",
    ):
        assert line in card, line
    assert (
        "toy-6" not in card and "rejected this one" not in (out / "jsonl/train.jsonl").read_text()
    )
    hf = datasets.load_from_disk(str(out / "hf"))
    assert list(hf) == ["train"]
    rows = hf["train"].to_list()
    assert [(r["record_id"], r["sentence_index"], r["label"], r["binary_label"]) for r in rows] == [
        ("toy-1", 0, 1, 1),
        ("toy-1", 1, 0, 0),
        ("toy-2", 0, 2, 1),
        ("toy-2", 1, 1, 1),
        ("toy-2", 2, 0, 0),
        ("toy-3", 0, 0, 0),
    ]
    assert [r["age"] for r in rows] == [70, 70, 71, 71, 71, 72]
    assert {(r["sex"], r["persona_region"], r["window_name"]) for r in rows} == {
        ("female", "north", "near")
    }
    assert rows[0]["keywords"] == ["forgets names"] and rows[1]["keywords"] == []
    assert rows[3]["mentions"][1]["negated"] is True
    assert rows[5]["mentions"][0]["hypothetical"] is True


def test_all_notes_to_test_when_its_ratio_is_the_only_one(
    toy: tuple[Path, Path], tmp_path: Path
) -> None:
    summary = build_dataset(*toy, tmp_path / "ds", SplitConfig(ratios=(0, 0, 5)), force=False)
    assert [(n, c.notes, c.sentences) for n, c in summary.splits.items()] == [
        ("train", 0, 0),
        ("validation", 0, 0),
        ("test", 3, 6),
    ]
    assert sorted(p.name for p in (tmp_path / "ds" / "parquet").iterdir()) == ["test.parquet"]


def test_no_rows_is_an_error_and_writes_nothing(toy: tuple[Path, Path], tmp_path: Path) -> None:
    notes_file, _ = toy
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "ds"
    with pytest.raises(EngineError) as err:
        build_dataset(notes_file, empty, out, SplitConfig(), force=False)
    assert str(err.value) == (
        f"no annotated sentence of an ok note in {notes_file} and {empty} (notes left out: "
        "5 not annotated, 1 note rejected); nothing written"
    )
    assert not out.exists()


def test_the_card_front_matter_is_yaml_naming_the_parquet_files(
    toy: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "ds"
    build_dataset(*toy, out, SplitConfig(ratios=(1, 0, 1), seed=3), force=False)
    card = (out / "README.md").read_text()
    assert card.startswith("---\n")
    meta = yaml.safe_load(card.split("---\n")[1])
    files = meta["configs"][0]["data_files"]
    assert all((out / f["path"]).is_file() for f in files)
    assert sorted(f["split"] for f in files) == sorted(p.stem for p in (out / "parquet").iterdir())
    assert "synthetic" in meta["tags"]
