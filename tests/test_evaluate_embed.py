"""Fidelity and DCR with the packaged all-MiniLM-L6-v2 (loaded once for the module)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from engine.evaluate.embed import Embedder, default_model_path
from engine.evaluate.fidelity import centroid_cosine, mmd
from engine.evaluate.privacy import dcr

CLINICAL = [
    "The patient reports forgetting appointments and repeating questions.",
    "Her daughter says she gets lost driving to the shop she has used for years.",
    "He struggles to find words and has stopped managing his finances.",
    "Memory complaints have worsened over six months; she misplaces keys daily.",
    "The family notes apathy, poor sleep and missed medications.",
    "He was found wandering at night and could not recall his address.",
    "She repeats the same story several times within one visit.",
    "Word-finding difficulty and trouble following conversations are reported.",
]
COOKING = [
    "Whisk the eggs with sugar until pale, then fold in the flour.",
    "Roast the vegetables at 200 degrees for forty minutes.",
    "Simmer the tomato sauce with garlic and basil for an hour.",
    "Knead the dough for ten minutes and let it rise overnight.",
    "Grill the fish skin side down and finish with lemon butter.",
    "Toast the cumin seeds before grinding them into the curry paste.",
    "Chill the custard, then pour it over the sliced strawberries.",
    "Stir the risotto constantly, adding stock one ladle at a time.",
]


@pytest.fixture(scope="module")
def embedder() -> Iterator[Embedder]:
    yield Embedder()


def test_default_model_is_the_packaged_one(embedder: Embedder) -> None:
    assert embedder.path == default_model_path() and (embedder.path / "modules.json").is_file()
    rows = embedder.encode(CLINICAL[:2])
    assert rows.shape == (2, 384)
    assert np.linalg.norm(rows, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)


def test_same_set_is_not_distinguished(embedder: Embedder) -> None:
    x = embedder.encode(CLINICAL)
    result = mmd(x, embedder.encode(list(CLINICAL)), permutations=50, seed=0)
    assert result["mmd2"] == pytest.approx(0.0, abs=1e-6) and result["p_value"] == 1.0
    assert centroid_cosine(x, x) == pytest.approx(1.0, abs=1e-6)


def test_clinical_notes_against_recipes(embedder: Embedder) -> None:
    x, y = embedder.encode(CLINICAL), embedder.encode(COOKING)
    result = mmd(x, y, permutations=99, seed=0)
    assert result["mmd2"] > 0.1 and result["p_value"] <= 0.02
    within = mmd(x[:4], x[4:], permutations=99, seed=0)
    assert within["mmd2"] < result["mmd2"]
    assert centroid_cosine(x, y) < centroid_cosine(x[:4], x[4:])


def test_planted_copies_have_zero_distance_to_closest_record(embedder: Embedder) -> None:
    reference = embedder.encode(CLINICAL + COOKING)
    copies = dcr(reference, reference, seed=0)
    assert copies is not None
    assert copies["synthetic_median"] <= copies["holdout_median"]
    # half A's copies are at distance 0, under any threshold
    assert copies["share_under_threshold"] >= 0.5
