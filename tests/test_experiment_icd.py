"""``kgsynth experiment icd`` end to end on tiny data (packaged MiniLM, LoRA, CPU, two seeds):
rare codes and the upsampled training counts are recomputed here from the inputs, the table's
mean ± sd from the per-run files (hit@1 equals the accuracy of each confusion matrix)."""

from __future__ import annotations

import json
import os
import random
import statistics
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from engine.cli.experiment import register
from engine.errors import EngineError
from engine.experiment.icd import Level, code_at, upsample
from engine.finetune.data import Example
from tests.cli import kgsynth

pytestmark = pytest.mark.timeout(900)
torch.set_num_threads(1)
root = typer.Typer()
register(root)
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}

VOCAB = {
    "G30.9": ["forgetful", "confused", "misplaced", "repeating", "lost", "names"],
    "G30.1": ["forgetful", "confused", "wandering", "repeating", "keys", "dates"],
    "I10": ["pressure", "systolic", "headache", "amlodipine", "salt", "readings"],
    "E11.9": ["glucose", "thirst", "polyuria", "metformin", "insulin", "a1c"],
    "F32.A": ["sad", "mood", "hopeless", "sleep", "appetite", "tearful"],
}


def notes(rng: random.Random, code: str, n: int, **extra: str) -> list[dict]:
    return [
        {"note": " ".join(rng.choice(VOCAB[code]) for _ in range(8)), "code": code, **extra}
        for _ in range(n)
    ]


def test_icd_experiment_upsamples_rare_codes_and_tables_hits(tmp_path: Path) -> None:
    rng = random.Random(0)
    real: list[dict] = []
    train = {"G30.9": 5, "G30.1": 3, "I10": 8, "E11.9": 2, "F32.A": 1}
    for code, n in train.items():
        real += notes(rng, code, n, split="train")
    for code in ("G30.9", "I10", "E11.9", "F32.A"):
        real += notes(rng, code, 1, split="validation") + notes(rng, code, 3, split="test")
    synthetic = [
        *notes(rng, "E11.9", 6), *notes(rng, "F32.A", 6), *notes(rng, "G30.9", 4),
        *notes(rng, "I10", 4),
    ]  # fmt: skip
    real_path, syn_path = tmp_path / "real.jsonl", tmp_path / "synthetic.jsonl"
    real_path.write_text("".join(json.dumps(r) + "\n" for r in real))
    syn_path.write_text("".join(json.dumps(r) + "\n" for r in synthetic))
    out = tmp_path / "icd"
    done = kgsynth(
        "experiment", "icd", "--real", str(real_path), "--synthetic", str(syn_path),
        "-o", str(out), "--text-field", "note", "--code-field", "code", "--seeds", "0,1",
        "--epochs", "1", "--learning-rate", "3e-3", "--batch-size", "8",
        "--max-length", "16", "--no-progress", env=ONE_THREAD,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| real+synthetic | 2 |" in done.stdout  # the printed table

    # categories: G30 8, I10 8, E11 2, F32 1 training notes -> median 5: E11, F32 are rare
    config = json.loads((out / "config.json").read_text())
    assert config["labels"] == ["E11", "F32", "G30", "I10"]
    assert config["target"] == 5 and config["rare_codes"] == ["E11", "F32"]
    expected_codes = {
        "real": {"E11": 2, "F32": 1, "G30": 8, "I10": 8},
        "real+synthetic": {"E11": 5, "F32": 5, "G30": 8, "I10": 8},
        "synthetic": {"E11": 6, "F32": 6, "G30": 4, "I10": 4},
    }
    table = json.loads((out / "table.json").read_text())
    assert [r["arm"] for r in table["rows"]] == ["real", "real+synthetic", "synthetic"]
    for row in table["rows"]:
        hits: dict[str, list[float]] = {"hit@1": [], "hit@3": [], "hit@5": [], "rare_hit@1": []}
        for seed in (0, 1):
            run = json.loads(
                (out / "runs" / row["arm"] / f"seed-{seed}" / "metrics.json").read_text()
            )
            assert run["train_codes"] == expected_codes[row["arm"]]
            assert run["rare_test_rows"] == 6
            matrix = run["test"]["confusion_matrix"]["matrix"]
            accuracy = sum(matrix[i][i] for i in range(4)) / 12
            assert run["summary"]["hit@1"] == pytest.approx(accuracy, abs=1e-6)
            s = run["summary"]
            assert s["hit@1"] <= s["hit@3"] <= s["hit@5"] == 1.0  # 4 classes: top 5 has all
            # rare hit@1 from the confusion matrix's E11 and F32 rows
            assert s["rare_hit@1"] == pytest.approx((matrix[0][0] + matrix[1][1]) / 6, abs=1e-6)
            for key in hits:
                hits[key].append(s[key])
        for key, values in hits.items():
            assert row[f"{key}_mean"] == pytest.approx(statistics.fmean(values), abs=1e-6)
            assert row[f"{key}_sd"] == pytest.approx(statistics.stdev(values), abs=1e-6)
    assert "| real+synthetic | 2 |" in (out / "table.md").read_text()
    assert (out / "plot.html").is_file()


def test_code_levels_and_upsampling_by_hand() -> None:
    assert code_at(" g30.9 ", Level.category) == "G30"
    assert code_at("G309", Level.category) == "G30"
    assert code_at("g30.9", Level.full) == "G30.9"
    real = [Example(f"r{i}", "A") for i in range(4)] + [Example("r", "B")]
    synthetic = [Example(f"s{i}", "B") for i in range(2)] + [Example("sa", "A")]
    out = upsample(real, synthetic, {"B"}, target=4, seed=0)
    # B needs 3 more but only 2 synthetic B notes exist; A is not rare
    assert [e.text for e in out[:5]] == [e.text for e in real]
    assert sorted(e.text for e in out[5:]) == ["s0", "s1"]


def test_icd_input_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text(json.dumps({"text": "a", "icd_code": "I10"}) + "\n" + '{"text": 3}\n')
    done = CliRunner().invoke(
        root, ["experiment", "icd", "--real", str(real), "-o", str(tmp_path / "r"),
               "--arms", "real,synthetic"],
    )  # fmt: skip
    assert isinstance(done.exception, EngineError)
    assert str(done.exception) == "--arms synthetic: needs --synthetic"
    done = CliRunner().invoke(
        root, ["experiment", "icd", "--real", str(real), "-o", str(tmp_path / "r"),
               "--level", "chapter"],
    )  # fmt: skip
    assert str(done.exception) == "--level 'chapter': choose category or full"
    # through the real console script: one line on stderr, exit 2, nothing written
    proc = kgsynth("experiment", "icd", "--real", str(real), "-o", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: {real}:2: field 'text' is not text; expected the text as a string "
        "(choose the field with --real-text-field)"
    )
    assert not (tmp_path / "r").exists()
