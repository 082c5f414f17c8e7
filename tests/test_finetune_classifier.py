"""Classifier fine-tuning on the packaged all-MiniLM-L6-v2 (LoRA, CPU): a learnable task of
two disjoint vocabularies beats the majority class on held-out rows; save/reload predicts the
same; the CLI writes metrics that match a recount from the saved classifier's predictions;
metrics and readers checked by hand."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from engine.cli.finetune import register
from engine.errors import EngineError
from engine.finetune.classifier import (
    CLASSIFIER_FILE,
    ClassifierConfig,
    load_classifier,
    train_classifier,
)
from engine.finetune.data import Example, Fields, Task, read_labelled, split
from engine.finetune.metrics import classification, hits_at_k

pytestmark = pytest.mark.timeout(600)
root = typer.Typer()
register(root)  # as the kgsynth root app does
torch.set_num_threads(1)  # 2 shared cores: one thread trains fastest here

MEMORY = [
    "forgetful",
    "confused",
    "misplaced",
    "repeating",
    "lost",
    "names",
    "dates",
    "keys",
    "wandering",
]
DAILY = [
    "walked",
    "garden",
    "breakfast",
    "sunny",
    "painted",
    "fence",
    "neighbour",
    "music",
    "bicycle",
]
#: tiny and fast: the task is learnable in one or two epochs at this size
FAST = ClassifierConfig(epochs=3, learning_rate=3e-3, batch_size=8, max_length=24)


def sentences(n: int, vocab: list[str], rng: random.Random) -> list[str]:
    return [" ".join(rng.choice(vocab) for _ in range(6)) for _ in range(n)]


def task(seed: int) -> dict[str, list[Example]]:
    """2:1 imbalanced (majority baseline 2/3 on test): memory vs daily-life sentences."""
    rng = random.Random(seed)

    def part(a: int, b: int) -> list[Example]:
        rows = [Example(t, "memory") for t in sentences(a, MEMORY, rng)]
        rows += [Example(t, "daily") for t in sentences(b, DAILY, rng)]
        return rows

    return {"train": part(20, 10), "validation": part(4, 2), "test": part(12, 6)}


def test_lora_classifier_beats_majority_and_reloads_identically(tmp_path: Path) -> None:
    data = task(1)
    config = FAST.model_copy(update={"seed": 3})
    clf = train_classifier(config, data["train"], ["daily", "memory"], data["validation"])
    texts = [e.text for e in data["test"]]
    truth = [e.label for e in data["test"]]
    predicted = clf.predict(texts)
    accuracy = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
    top = Counter(e.label for e in data["train"]).most_common(1)[0][0]
    majority = sum(t == top for t in truth) / len(truth)
    assert majority == pytest.approx(2 / 3)
    assert accuracy > majority
    assert clf.evaluate(data["test"])["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    # only the adapter and the head were trained: the backbone's own weights are frozen
    trained = {n for n, p in clf.model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n or "classifier" in n for n in trained)

    clf.save(tmp_path / "clf")
    again = load_classifier(tmp_path / "clf")
    assert again.labels == ["daily", "memory"]
    np.testing.assert_array_equal(again.predict_proba(texts), clf.predict_proba(texts))
    saved = json.loads((tmp_path / "clf" / CLASSIFIER_FILE).read_text())
    assert saved["config"]["seed"] == 3 and saved["config"]["method"] == "lora"
    assert (tmp_path / "clf" / "adapter" / "adapter_config.json").is_file()
    # early stopping bookkeeping: the kept epoch has the best validation macro-F1
    epochs = saved["history"]["epochs"]
    best = max(e["validation_macro_f1"] for e in epochs)
    assert epochs[saved["history"]["best_epoch"] - 1]["validation_macro_f1"] == best


def test_cli_writes_classifier_metrics_and_fingerprints(tmp_path: Path) -> None:
    data = task(2)
    rows = [
        {"sentence": e.text, "category": e.label, "split": name}
        for name, part in data.items()
        for e in part
    ]
    train = tmp_path / "gold.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "clf"
    args = [
        "finetune", "classifier", "--train", str(train), "--text-field", "sentence",
        "--label-field", "category", "-o", str(out), "--epochs", "2", "--learning-rate", "3e-3",
        "--batch-size", "8", "--max-length", "24", "--seed", "1", "--no-progress",
    ]  # fmt: skip
    done = CliRunner().invoke(root, args)
    assert done.exit_code == 0, done.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows"] == {"train": 30, "validation": 6, "test": 18}
    assert metrics["labels"] == ["daily", "memory"]

    # recount the test metrics from the saved classifier's predictions
    clf = load_classifier(out)
    test = data["test"]
    predicted = clf.predict([e.text for e in test])
    names = ["daily", "memory"]
    matrix = [[0, 0], [0, 0]]
    for e, p in zip(test, predicted, strict=True):
        matrix[names.index(e.label)][names.index(p)] += 1
    assert metrics["test"]["confusion_matrix"] == {"labels": names, "matrix": matrix}
    assert metrics["test"]["accuracy"] == pytest.approx((matrix[0][0] + matrix[1][1]) / 18, 1e-6)
    assert metrics["majority_baseline"]["accuracy"] == pytest.approx(12 / 18, 1e-6)
    assert metrics["test"]["accuracy"] > metrics["majority_baseline"]["accuracy"]

    # the fingerprint of what it trained on: sha256 of the file, rows counted
    import hashlib

    config = json.loads((out / "config.json").read_text())
    source = config["datasets"]["train"]
    assert source["file_sha256"] == hashlib.sha256(train.read_bytes()).hexdigest()
    assert source["rows"] == 54
    assert json.loads((out / CLASSIFIER_FILE).read_text())["datasets"] == config["datasets"]

    # a directory holding something else is refused without --force, nothing written
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    refused = CliRunner().invoke(root, [*args[:9], str(other), *args[10:]])
    assert refused.exit_code != 0
    assert isinstance(refused.exception, EngineError)
    assert "--force" in str(refused.exception)
    assert sorted(p.name for p in other.iterdir()) == ["keep.txt"]


def test_classification_metrics_by_hand() -> None:
    truth = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "b", "a", "b", "c", "c"]
    m = classification(truth, pred, ["a", "b", "c"])
    # a: tp 2, fp 0, fn 1; b: tp 1, fp 1, fn 1; c: tp 1, fp 1, fn 0
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.666667, "f1": 0.8, "support": 3}
    assert m["per_class"]["b"]["f1"] == 0.5
    assert m["per_class"]["c"]["precision"] == 0.5 and m["per_class"]["c"]["recall"] == 1.0
    assert m["accuracy"] == round(4 / 6, 6) and m["micro_f1"] == round(4 / 6, 6)
    assert m["macro_f1"] == round((0.8 + 0.5 + 2 / 3) / 3, 6)
    assert m["confusion_matrix"]["matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert "binary_f1" not in m
    binary = classification(["n", "y", "y"], ["n", "y", "n"], ["n", "y"])
    assert binary["binary_f1"] == round(2 * 1.0 * 0.5 / 1.5, 6)

    scores = np.array([[0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]])
    # row 0 ranks 1,2,0; row 1 ranks 2,0,1 (tie: lower index first); row 2 ranks 0,1,2
    assert hits_at_k(scores, [2, 1, 0], (1, 2, 3)) == {
        "hit@1": round(1 / 3, 6),
        "hit@2": round(2 / 3, 6),
        "hit@3": 1.0,
    }


def test_readers_name_file_line_and_field(tmp_path: Path) -> None:
    good = tmp_path / "gold.jsonl"
    good.write_text('{"text": "a b", "label": "x"}\n\n{"text": "c d", "label": 3}\n')
    data = read_labelled(good)
    assert [(e.text, e.label) for e in data.examples] == [("a b", "x"), ("c d", "3")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a b", "label": "x"}\n{"text": "c d"}\n')
    with pytest.raises(EngineError, match=r"bad.jsonl:2: field 'label' is missing"):
        read_labelled(bad)
    with pytest.raises(EngineError, match=r"bad.jsonl:2: field 'label'.*--gold-label-field"):
        read_labelled(bad, flag="gold-")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "a", "label": "x"}\n{"text": \n')
    with pytest.raises(EngineError, match=r"broken.jsonl:2: not JSON"):
        read_labelled(broken)
    table = tmp_path / "gold.csv"
    table.write_text("sentence,label\nthe cat,x\n,y\n")
    with pytest.raises(EngineError, match=r"gold.csv:1: no column 'text'"):
        read_labelled(table)
    with pytest.raises(EngineError, match=r"gold.csv:3: field 'sentence' is empty"):
        read_labelled(table, Fields(text="sentence"))
    binary = read_labelled(good, Fields(task=Task.binary, negative="x"))
    assert [e.label for e in binary.examples] == ["no symptom", "symptom"]


def test_hash_split_is_stratified_and_order_free() -> None:
    rows = [Example(f"sentence {i}", "a" if i % 3 else "b") for i in range(30)]
    from engine.finetune.data import LabelledSet

    one = split(LabelledSet("x", tuple(rows), ""), (0.6, 0.2, 0.2), seed=4)
    two = split(LabelledSet("x", tuple(reversed(rows)), ""), (0.6, 0.2, 0.2), seed=4)
    assert {k: sorted(e.text for e in v) for k, v in one.items()} == {
        k: sorted(e.text for e in v) for k, v in two.items()
    }
    # exact quotas per label: 20 "a" -> 12/4/4, 10 "b" -> 6/2/2
    counts = {k: Counter(e.label for e in v) for k, v in one.items()}
    assert counts == {
        "train": Counter(a=12, b=6),
        "validation": Counter(a=4, b=2),
        "test": Counter(a=4, b=2),
    }


def test_a_patient_s_rows_stay_in_one_split(tmp_path: Path) -> None:
    # 30 patients x 4 visits, each visit its own record; labels vary within a patient
    rows = [
        {"text": f"p{p} v{v}", "label": "ab"[(p + v) % 2], "record_id": f"r{p}-{v}"}
        | {"patient_id": f"p{p}"}
        for p in range(30)
        for v in range(4)
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    parts = split(read_labelled(path), (0.6, 0.2, 0.2), seed=1)
    where: dict[str, set[str]] = {}
    for name, examples in parts.items():
        for e in examples:
            where.setdefault(e.text.split(" ")[0], set()).add(name)
    assert len(where) == 30 and all(len(s) == 1 for s in where.values())
    assert all(parts.values())  # 30 units fill every split
    # without patient ids the same rows split by record: some patient lands in two splits
    for r in rows:
        del r["patient_id"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    by_record: dict[str, set[str]] = {}
    for name, examples in split(read_labelled(path), (0.6, 0.2, 0.2), seed=1).items():
        for e in examples:
            by_record.setdefault(e.text.split(" ")[0], set()).add(name)
    assert any(len(s) > 1 for s in by_record.values())


def test_dataset_directory_keeps_splits_records_and_label_names(tmp_path: Path) -> None:
    """The layout ``kgsynth dataset build`` writes: ``dataset.json`` + ``jsonl/SPLIT.jsonl``."""
    data = tmp_path / "ds"
    (data / "jsonl").mkdir(parents=True)
    (data / "dataset.json").write_text("{}")
    lines = {
        "train": [("r1", "She forgets names.", 2, "memory"), ("r1", "She walks.", 0, "no symptom")],
        "test": [("r2", "Lost keys again.", 2, "memory")],
    }
    for name, items in lines.items():
        (data / "jsonl" / f"{name}.jsonl").write_text(
            "".join(
                json.dumps({"record_id": r, "text": t, "label": i, "label_name": n}) + "\n"
                for r, t, i, n in items
            )
        )
    got = read_labelled(data, Fields(task=Task.binary))
    assert [(e.text, e.label, e.split, e.group) for e in got.examples] == [
        ("She forgets names.", "symptom", "train", "r1"),
        ("She walks.", "no symptom", "train", "r1"),
        ("Lost keys again.", "symptom", "test", "r2"),
    ]
    assert {k: len(v) for k, v in split(got).items()} == {"train": 2, "validation": 0, "test": 1}
    with pytest.raises(EngineError, match="not a kgsynth dataset"):
        read_labelled(tmp_path)
