"""``kgsynth experiment ablation`` end to end on tiny data (packaged MiniLM, LoRA, CPU, two
seeds): every arm and seed has its metrics file, the table's mean ± sd is recomputed here
from those files (accuracy from each confusion matrix), a rerun resumes without training,
and other settings in the same directory are refused."""

from __future__ import annotations

import csv
import json
import random
import statistics
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from engine.cli.experiment import register
from engine.errors import EngineError

pytestmark = pytest.mark.timeout(900)
torch.set_num_threads(1)
root = typer.Typer()
register(root)  # as the kgsynth root app does

MEMORY = ["forgetful", "confused", "misplaced", "repeating", "lost", "names", "dates", "keys"]
DAILY = ["walked", "garden", "breakfast", "sunny", "painted", "fence", "neighbour", "music"]
ARMS = ["gold", "unguided", "aligned", "gold+unguided", "gold+aligned"]


def rows(rng: random.Random, n: int, label: str, vocab: list[str], **extra: str) -> list[dict]:
    return [
        {"text": " ".join(rng.choice(vocab) for _ in range(5)), "label": label, **extra}
        for _ in range(n)
    ]


def write(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in items))
    return path


def test_ablation_runs_every_arm_and_seed_and_tables_them(tmp_path: Path) -> None:
    rng = random.Random(0)
    gold = []
    for split, n in (("train", 6), ("validation", 2), ("test", 6)):
        gold += rows(rng, n, "memory", MEMORY, split=split) + rows(rng, n, "no symptom", DAILY,
                                                                   split=split)  # fmt: skip
    gold_path = write(tmp_path / "gold.jsonl", gold)
    aligned = write(
        tmp_path / "aligned.jsonl",
        rows(rng, 8, "memory", MEMORY) + rows(rng, 8, "no symptom", DAILY),
    )
    # the unguided baseline: the same words with labels at random
    noise = rows(rng, 16, "memory", MEMORY + DAILY)
    for item in noise:
        item["label"] = rng.choice(["memory", "no symptom"])
    baseline = write(tmp_path / "unguided.jsonl", noise)
    out = tmp_path / "results"
    args = [
        "experiment", "ablation", "--gold", str(gold_path), "--synthetic", str(aligned),
        "--baseline", str(baseline), "-o", str(out), "--seeds", "0,1", "--epochs", "1",
        "--learning-rate", "3e-3", "--batch-size", "8", "--max-length", "16",
        "--task", "binary", "--no-progress",
    ]  # fmt: skip
    done = CliRunner().invoke(root, args)
    assert done.exit_code == 0, done.output

    config = json.loads((out / "config.json").read_text())
    assert config["labels"] == ["no symptom", "symptom"]  # binary: memory -> symptom
    assert config["rows"] == {"train": 12, "validation": 4, "test": 12}
    expected_rows = {"gold": 12, "unguided": 16, "aligned": 16, "gold+unguided": 28,
                     "gold+aligned": 28}  # fmt: skip
    table = json.loads((out / "table.json").read_text())
    assert [r["arm"] for r in table["rows"]] == ARMS
    assert table["metrics"] == ["accuracy", "macro_f1", "micro_f1", "binary_f1"]
    with (out / "table.csv").open() as fh:
        from_csv = list(csv.DictReader(fh))
    for row, csv_row in zip(table["rows"], from_csv, strict=True):
        arm = row["arm"]
        accuracies, f1s = [], []
        for seed in (0, 1):
            run = json.loads((out / "runs" / arm / f"seed-{seed}" / "metrics.json").read_text())
            assert run["arm"] == arm and run["seed"] == seed
            assert run["train_rows"] == expected_rows[arm]
            matrix = run["test"]["confusion_matrix"]["matrix"]
            assert sum(map(sum, matrix)) == 12
            accuracies.append((matrix[0][0] + matrix[1][1]) / 12)
            # binary F1 of "symptom" (class 1) from the same matrix
            tp, fp, fn = matrix[1][1], matrix[0][1], matrix[1][0]
            f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        assert row["seeds"] == 2
        assert row["accuracy_mean"] == pytest.approx(statistics.fmean(accuracies), abs=1e-6)
        assert row["accuracy_sd"] == pytest.approx(statistics.stdev(accuracies), abs=1e-6)
        assert row["binary_f1_mean"] == pytest.approx(statistics.fmean(f1s), abs=1e-6)
        assert float(csv_row["accuracy_mean"]) == row["accuracy_mean"]
    markdown = (out / "table.md").read_text()
    gold_row = table["rows"][0]
    assert f"| gold | 2 | {gold_row['accuracy_mean']:.4f} ± {gold_row['accuracy_sd']:.4f}" in (
        markdown
    )
    assert "plotly" in (out / "plot.html").read_text()[:100_000].lower()

    # a rerun resumes: nothing is trained again, the runs' files are untouched
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("metrics.json")}
    again = CliRunner().invoke(root, args)
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((out / "table.json").read_text()) == table

    # one more seed of one arm: only that run is trained, the table covers what was asked
    more = CliRunner().invoke(
        root, [*args[:-1], "--arms", "gold", "--seeds", "0,1,2", "--no-progress"]
    )
    assert more.exit_code == 0, more.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert (out / "runs" / "gold" / "seed-2" / "metrics.json").is_file()
    (only,) = json.loads((out / "table.json").read_text())["rows"]
    assert only["arm"] == "gold" and only["seeds"] == 3
    latest = json.loads((out / "config.json").read_text())
    assert latest["fingerprint"] == config["fingerprint"]
    assert latest["settings"]["seeds"] == [0, 1, 2] and latest["settings"]["arms"] == ["gold"]

    # other settings in the same directory: refused, nothing changed
    other = CliRunner().invoke(root, [*args[:-1], "--epochs", "2", "--no-progress"])
    assert isinstance(other.exception, EngineError)
    assert "--force" in str(other.exception)
    assert json.loads((out / "config.json").read_text()) == latest


def test_ablation_errors_name_the_option(tmp_path: Path) -> None:
    gold = write(tmp_path / "gold.jsonl", [{"text": "a b", "label": "x"}, {"text": "c"}])
    done = CliRunner().invoke(
        root, ["experiment", "ablation", "--gold", str(gold), "-o", str(tmp_path / "r")]
    )
    assert isinstance(done.exception, EngineError)
    assert "gold.jsonl:2: field 'label' is missing" in str(done.exception)
    assert "--gold-label-field" in str(done.exception)
    done = CliRunner().invoke(
        root,
        ["experiment", "ablation", "--gold", str(gold), "-o", str(tmp_path / "r"),
         "--arms", "gold+aligned"],
    )  # fmt: skip
    assert isinstance(done.exception, EngineError)
    assert str(done.exception) == "--arms gold+aligned: needs --synthetic"
    assert not (tmp_path / "r").exists()
