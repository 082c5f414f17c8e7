"""Evaluation metrics without the embedding model, on inputs small enough to check by hand."""

from __future__ import annotations

import random
from math import log2

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare

from engine.annotate.model import AnnotatedNote, Realisation
from engine.evaluate.alignment import annotation_agreement, chi_square, js_divergence
from engine.evaluate.diversity import distinct_n, diversity, mattr, self_bleu
from engine.evaluate.fidelity import centroid_cosine, median_bandwidth, mmd
from engine.evaluate.privacy import SharedNgrams, dcr, near_duplicates, passages
from engine.gate.text import tokens


def test_distinct_n_counted_by_hand() -> None:
    docs = [["a", "b", "a"], ["a", "b"]]
    assert distinct_n(docs, 1) == pytest.approx(2 / 5)  # a b a a b
    assert distinct_n(docs, 2) == pytest.approx(2 / 3)  # ab ba ab
    assert distinct_n(docs, 3) == 1.0  # aba
    assert distinct_n([["a"]], 2) == 0.0


def test_identical_notes_distinct_ratios_and_self_bleu_100() -> None:
    figures = diversity(["The cat sat.", "the cat  sat"] * 2, sample=4, seed=0)
    # 12 unigrams of 3 kinds, 8 bigrams of 2, 4 trigrams of 1
    assert figures["distinct_1"] == pytest.approx(3 / 12, abs=1e-4)
    assert figures["distinct_2"] == pytest.approx(2 / 8, abs=1e-4)
    assert figures["distinct_3"] == pytest.approx(1 / 4, abs=1e-4)
    assert figures["mattr"] == 1.0
    same = self_bleu(["the patient reports poor sleep at night"] * 5, sample=3, seed=1)
    assert same == {"value": 100.0, "sample": 3, "seed": 1}


def test_self_bleu_of_notes_sharing_no_word_is_zero_and_sample_is_fixed() -> None:
    assert self_bleu(["alpha beta gamma delta", "one two three four"])["value"] == 0.0
    texts = [f"note {i} says {' '.join(str(j) for j in range(i))}" for i in range(30)]
    first, again = self_bleu(texts, sample=10, seed=7), self_bleu(texts, sample=10, seed=7)
    assert first == again and first["sample"] == 10
    assert self_bleu(["only one"])["value"] is None


def test_mattr_by_hand() -> None:
    assert mattr(list("abac"), window=2) == 1.0  # ab ba ac
    assert mattr(list("aabb"), window=2) == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert mattr(list("aab"), window=5) == pytest.approx(2 / 3)  # shorter: plain TTR
    assert mattr([], window=5) == 0.0


def _longest_common_run(a: list[str], b: list[str]) -> int:
    """Second method: dynamic programming over token positions."""
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def test_planted_copy_gives_its_length() -> None:
    reference = [("r1", "Alpha beta gamma delta epsilon zeta eta theta."), ("r2", "iota kappa")]
    finder = SharedNgrams(reference)
    assert finder.longest(
        [
            "We saw BETA, gamma delta epsilon here today.",
            "nothing in common",
            "alpha beta gamma delta epsilon zeta eta theta",
            "",
            "theta iota kappa",  # across two reference texts: 2, not 3
        ]
    ) == [4, 0, 8, 0, 2]
    figures = passages(
        ["we saw beta gamma delta epsilon", "kappa only", "no overlap"], reference, threshold=4
    )
    assert figures["longest_max"] == 4
    assert figures["share_at_threshold"] == pytest.approx(1 / 3, abs=1e-4)
    assert figures["histogram"] == {0: 1, 1: 1, 4: 1}


def test_longest_shared_ngram_matches_dynamic_programming() -> None:
    rng = random.Random(3)
    words = ["a", "b", "c", "d", "e", "f"]
    corpus = [(f"r{i}", " ".join(rng.choices(words, k=40))) for i in range(3)]
    notes = [" ".join(rng.choices(words, k=rng.randint(1, 30))) for _ in range(30)]
    notes += [corpus[0][1][5:60], corpus[2][1]]  # planted passages, long ones
    notes += ["a b", "c d", "e f", "b"]  # short texts last: past the end of the windows
    expected = [
        max(_longest_common_run(tokens(note), tokens(t)) for _, t in corpus) for note in notes
    ]
    assert SharedNgrams(corpus).longest(notes) == expected  # all at once


def test_near_duplicates_within_and_against_the_reference() -> None:
    note = "the patient forgets appointments and repeats the same question every day"
    other = "blood pressure was stable and the wound healed well after surgery last month"
    figures = near_duplicates([note, note, note, other], [other], threshold=0.8)
    assert figures["within_rate"] == 0.5  # the second and third copies
    assert figures["reference_rate"] == 0.25  # only ``other``
    assert near_duplicates([note, other], None)["within_rate"] == 0.0


def test_mmd_two_points_by_hand_and_identical_sets() -> None:
    x, y = np.array([[0.0]]), np.array([[1.0]])
    # sigma = median distance = 1; MMD² = k(x,x) + k(y,y) - 2 k(x,y) = 2 - 2 exp(-1/2)
    assert mmd(x, y, permutations=10)["mmd2"] == pytest.approx(2 - 2 * np.exp(-0.5), abs=1e-6)
    assert median_bandwidth(np.array([[0.0], [0.0]])) == 1.0
    rng = np.random.default_rng(0)
    same = rng.normal(size=(20, 4))
    result = mmd(same, same.copy(), permutations=50, seed=1)
    assert result["mmd2"] == pytest.approx(0.0, abs=1e-9) and result["p_value"] == 1.0


def test_mmd_of_clearly_different_sets() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 4)), rng.normal(loc=3.0, size=(20, 4))
    result = mmd(x, y, permutations=99, seed=1)
    assert result["mmd2"] > 0.5 and result["p_value"] == 0.01  # (1 + 0) / (1 + 99)
    assert mmd(x, y, permutations=99, seed=1) == result


def test_centroid_cosine_by_hand() -> None:
    assert centroid_cosine(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])) == 0.0
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert centroid_cosine(x, np.array([[1.0, 1.0]])) == pytest.approx(1.0)


def test_dcr_copies_against_the_holdout() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(40, 8))
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    copies = dcr(ref.copy(), ref, seed=0)
    assert copies is not None
    assert copies["reference_half"] == 20 and copies["holdout"] == 20
    # half of the copies are half A itself (distance 0); the rest are half B, the holdout
    assert copies["share_under_threshold"] == pytest.approx(
        0.5 + 0.5 * copies["holdout_share_under_threshold"], abs=1e-4
    )
    assert copies["synthetic_median"] <= copies["holdout_median"]
    fresh = rng.normal(size=(40, 8))
    fresh /= np.linalg.norm(fresh, axis=1, keepdims=True)
    given = dcr(fresh, ref, threshold=0.0)
    assert given is not None and given["share_under_threshold"] == 0.0
    assert dcr(fresh, ref[:1]) is None


def test_js_and_chi_square_by_hand_and_by_scipy() -> None:
    assert js_divergence({"a": 3}, {"b": 5}) == pytest.approx(1.0)
    assert js_divergence({"a": 2, "b": 2}, {"a": 1}) == pytest.approx(
        0.5 * (0.5 * log2(0.5 / 0.75) + 0.5 * log2(0.5 / 0.25)) + 0.5 * log2(1 / 0.75)
    )
    assert js_divergence({"a": 2, "b": 6}, {"a": 0.4, "b": 0.6}) == pytest.approx(
        jensenshannon([0.25, 0.75], [0.4, 0.6], base=2) ** 2
    )
    result = chi_square({"female": 30, "male": 70}, {"female": 0.5, "male": 0.5})
    assert result["statistic"] == 16.0 and result["df"] == 1  # 2 x (20² / 50)
    assert result["p_value"] == pytest.approx(chisquare([30, 70]).pvalue, abs=1e-4)
    assert chi_square({"x": 1, "female": 1}, {"female": 1.0})["unexpected"] == ["x"]


def test_annotation_agreement_counts() -> None:
    def note(rid: str, *reals: Realisation) -> AnnotatedNote:
        return AnnotatedNote(
            record_id=rid,
            status="ok",
            annotator="rules",
            backend="template",
            model="rule-based",
            note_fingerprint="n",
            fingerprint="f",
            realisations=reals,
        )

    notes = [
        note(
            "r1",
            Realisation(keyword="a", category_id="c1", sentence=0, label_agrees=True),
            Realisation(keyword="b", category_id="c2", sentence=1, label_agrees=False),
        ),
        note("r2", Realisation(keyword="c", category_id="c1")),
        note("r3", Realisation(keyword="d", category_id="c1", sentence=2, label_agrees=True)),
    ]
    figures = annotation_agreement(notes)
    assert figures["keywords"] == 4
    assert figures["keyword_realisation_rate"] == 0.75
    assert figures["label_agreement"] == pytest.approx(2 / 3, abs=1e-4)


def test_self_bleu_equals_sacrebleu_sentence_scores() -> None:
    """Second method: sacrebleu's ``sentence_score`` per note against the others, averaged."""
    from sacrebleu.metrics import BLEU

    rng = random.Random(5)
    words = ["she", "he", "forgets", "names", "keys", "daily", "often", "and", "the", "sleep"]
    texts = [" ".join(rng.choices(words, k=rng.randint(3, 25))) + "." for _ in range(12)]
    texts += [texts[0], texts[0]]  # ties: the largest count held by several notes
    bleu = BLEU(effective_order=True)
    scores = [bleu.sentence_score(t, texts[:i] + texts[i + 1 :]).score for i, t in enumerate(texts)]
    assert self_bleu(texts, sample=len(texts))["value"] == round(sum(scores) / len(scores), 4)


def test_mmd_equals_the_kernel_means_computed_directly() -> None:
    """Second method: the three kernel means by explicit sums over pairs."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(5, 3)), rng.normal(loc=0.5, size=(7, 3))
    z = np.vstack([x, y])
    dists = [np.linalg.norm(z[i] - z[j]) for i in range(12) for j in range(i + 1, 12)]
    sigma = float(np.median(dists))

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2)))

    def mean_k(p: np.ndarray, q: np.ndarray) -> float:
        return sum(k(a, b) for a in p for b in q) / (len(p) * len(q))

    expected = mean_k(x, x) + mean_k(y, y) - 2 * mean_k(x, y)
    result = mmd(x, y, permutations=5)
    assert result["bandwidth"] == pytest.approx(sigma, abs=1e-6)
    assert result["mmd2"] == pytest.approx(expected, abs=1e-6)


def test_batch_minhash_equals_the_gate_note_by_note() -> None:
    """Sketches, within-set and reference near-duplicates against the gate's sequential
    ``NearDuplicateIndex`` (sketch, query, add one note at a time): the second method."""
    from engine.evaluate.minhash import Sketcher, similar_earlier, similar_to
    from engine.gate.neardup import NearDuplicateIndex
    from engine.gate.text import TokenHasher

    rng = random.Random(5)
    words = [f"w{i}" for i in range(40)]
    base = [" ".join(rng.choices(words, k=rng.randint(0, 25))) for _ in range(60)]
    notes = (
        base
        + [
            " ".join([*t.split()[:-1], "zz"])
            for t in base[:20]  # one word changed: near copies
        ]
        + base[:5]
        + ["w1", "w1 w2"]
    )  # exact copies and texts shorter than a shingle
    reference = base[30:45] + [" ".join(rng.choices(words, k=20)) for _ in range(10)]
    hasher = TokenHasher()
    sketcher = Sketcher(0.8)
    rows = sketcher.sketches([hasher.hashes(tokens(t)) for t in notes])
    gate = NearDuplicateIndex(0.8)
    expected_within = []
    for i, t in enumerate(notes):
        sketch = gate.sketch(hasher.hashes(tokens(t)))
        assert list(rows[i]) == list(sketch.hashvalues)
        expected_within.append(gate.query(sketch) is not None)
        gate.add(str(i), sketch)
    ref_gate = NearDuplicateIndex(0.8)
    for i, t in enumerate(reference):
        ref_gate.add(str(i), ref_gate.sketch(hasher.hashes(tokens(t))))
    expected_ref = [
        ref_gate.query(ref_gate.sketch(hasher.hashes(tokens(t)))) is not None for t in notes
    ]
    assert list(similar_earlier(rows, sketcher)) == expected_within
    assert sum(expected_within) >= 5  # the exact copies at least
    ref_rows = sketcher.sketches([hasher.hashes(tokens(t)) for t in reference])
    assert list(similar_to(rows, ref_rows, sketcher)) == expected_ref
    assert sum(expected_ref) >= 15
