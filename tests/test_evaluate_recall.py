"""Symptom recall (MedSyn's filter), dispersion per group and DCR per code: hand-sized inputs,
and the packaged all-MiniLM-L6-v2 checked against a second computation through transformers."""

from __future__ import annotations

from collections.abc import Iterator
from math import sqrt
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.evaluate.embed import Embedder, default_model_path
from engine.evaluate.evaluate import Inputs, Settings, evaluate
from engine.evaluate.fidelity import dispersion
from engine.evaluate.inputs import EvalNote
from engine.evaluate.recall import greedy_recall, requested, sentences, symptom_recall
from engine.gate.reference import ReferenceDoc
from engine.spec import GenerationSpec


def _spec(
    code: str = "G30.9", keywords: tuple[str, ...] = (), symptoms: tuple[str, ...] = ()
) -> GenerationSpec:
    return GenerationSpec.model_validate(
        {
            "recipe": "medsyn",
            "run_seed": 0,
            "record_index": 0,
            "record_id": "r",
            "record_seed": 0,
            "icd_code": code,
            "disease_id": "KGS:disease/x",
            "disease": "x",
            "keywords": [
                {"text": k, "symptom_id": "s", "symptom": k, "category_id": "c", "category": "c"}
                for k in keywords
            ],
            "symptoms": [{"id": f"s{i}", "name": s} for i, s in enumerate(symptoms)],
            "template_id": "t",
            "template_hash": "h",
            "kg_hash": "k",
        }
    )


def test_greedy_recall_by_hand() -> None:
    phrases = [np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.6, 0.8]])]
    note = np.array([[1.0, 0.0], [0.6, 0.8]])
    # phrase 1: (1,0) best 1, (0,1) best 0.8 -> 0.9; phrase 2: (0.6,0.8) matches itself -> 1
    assert greedy_recall(phrases, note) == pytest.approx((0.9 + 1.0) / 2)
    assert greedy_recall(phrases, np.zeros((0, 2))) == 0.0


def test_requested_phrases_and_sentences() -> None:
    spec = _spec(
        keywords=("Poor sleep", "poor sleep ", "getting lost"), symptoms=("Getting lost", "apathy")
    )
    assert requested(spec) == ["Poor sleep", "getting lost", "apathy"]
    assert requested(None) == [] and requested(_spec()) == []
    assert sentences("Subjective: A b. C d!\nE?  F\n\n") == ["Subjective: A b.", "C d!", "E?", "F"]


def test_dispersion_of_two_orthogonal_vectors() -> None:
    # centroid (0.5, 0.5) points along (1, 1)/sqrt2: each row's cosine with it is 1/sqrt2
    assert dispersion(np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(1 - 1 / sqrt(2))
    assert dispersion(np.array([[0.0, 2.0], [0.0, 3.0]])) == pytest.approx(0.0)


@pytest.fixture(scope="module")
def embedder() -> Iterator[Embedder]:
    yield Embedder()


def _second_recall(phrases: list[str], text: str) -> float:
    """The same recall through transformers directly: last hidden states, [CLS]/[SEP] cut by
    position, cosines in plain Python loops."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = default_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()

    def vectors(piece: str) -> list[list[float]]:
        enc = tok(piece, return_tensors="pt", truncation=True, max_length=256)
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state[0, 1:-1]
        return [[float(x) / float(v.norm()) for x in v] for v in hidden]

    note = [v for piece in sentences(text) for v in vectors(piece)]
    per_phrase = []
    for p in phrases:
        rows = vectors(p)
        per_phrase.append(
            sum(max(sum(a * b for a, b in zip(r, u, strict=True)) for u in note) for r in rows)
            / len(rows)
        )
    return sum(per_phrase) / len(per_phrase)


def test_symptom_recall_with_the_packaged_model(embedder: Embedder) -> None:
    asked = ("getting lost", "word-finding difficulty")
    notes = [
        EvalNote("says", "Subjective: She reports getting lost.\nShe has word-finding difficulty.",
                 "medsyn", "G30.9", _spec(symptoms=asked)),
        EvalNote("other", "Subjective: Ankle sprain after a football match. Ice and rest.",
                 "medsyn", "G30.9", _spec(symptoms=asked)),
        EvalNote("none", "Subjective: routine visit.", "unguided", "G30.9", _spec()),
    ]  # fmt: skip
    figures = symptom_recall(embedder, notes, threshold=0.7)
    per_note = figures["per_note"]
    assert set(per_note) == {"says", "other"}  # nothing requested: not judged
    assert figures["judged"] == 2 and figures["unjudged"] == 1
    for note in notes[:2]:
        assert per_note[note.record_id] == pytest.approx(
            _second_recall(list(asked), note.text), abs=2e-4
        )
    assert per_note["says"] > 0.7 > 0.3 > per_note["other"]  # about 0.78 and 0.15
    assert figures["passed"] == 1
    assert figures["mean"] == pytest.approx((per_note["says"] + per_note["other"]) / 2, abs=1e-4)
    assert sum(figures["histogram"].values()) == 2


def test_dispersion_per_group_and_dcr_per_code(embedder: Embedder) -> None:
    a_texts = [
        "She forgets appointments and repeats questions.",
        "He gets lost driving to familiar places.",
        "Word-finding difficulty has worsened over a year.",
        "The family reports poor sleep and agitation at night.",
    ]
    b_text = "Low mood, poor appetite and early waking for two months."
    notes = [EvalNote(f"a{i}", t, "medsyn", "A", _spec("A")) for i, t in enumerate(a_texts)] + [
        EvalNote("b0", b_text, "mh_report", "B", _spec("B")),
        EvalNote("b1", "Anxious most days.", "mh_report", "B", _spec("B")),
    ]
    reference = [ReferenceDoc(id=f"ra{i}", text=t, code="A") for i, t in enumerate(a_texts)]
    reference.append(ReferenceDoc(id="rb", text=b_text, code="B"))
    doc: dict[str, Any] = evaluate(
        Inputs(Path("notes.jsonl"), notes, 0, reference, Path("ref.jsonl")),
        Settings(permutations=10),
    )
    # dispersion per code and per recipe: each group's own centroid, by the formula here
    vecs = embedder.encode([n.text for n in notes])
    for group, key, members in (
        ("per_code", "A", slice(0, 4)),
        ("per_code", "B", slice(4, 6)),
        ("per_recipe", "mh_report", slice(4, 6)),
    ):
        x = vecs[members].astype(np.float64)
        c = x.sum(axis=0) / len(x)
        c /= np.linalg.norm(c)
        expected = sum(1 - float(row @ c) / float(np.linalg.norm(row)) for row in x) / len(x)
        assert doc["diversity"][group][key]["embedding_dispersion"] == pytest.approx(
            expected, abs=2e-6
        )
    # DCR per code: B has one reference note (no halves); A's synthetic notes copy A's
    # reference. Copies of half A are at distance 0; copies of half B at exactly the holdout
    # distances, so the smaller holdout distance (<= the 5% quantile of two) counts too.
    per_code = doc["privacy"]["dcr_per_code"]
    assert set(per_code) == {"A"}
    a = per_code["A"]
    assert a["reference_half"] == 2 and a["holdout"] == 2
    assert a["share_under_threshold"] == 0.75 and a["holdout_share_under_threshold"] == 0.5
    assert a["synthetic_mean"] == pytest.approx(a["holdout_mean"] / 2, abs=2e-6)
