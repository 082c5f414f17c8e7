"""The lexicon annotator against the curated AD profile read from a seeded embedded store:
hand-written sentences for negation, uncertainty, experiencer and the label rule, and the
hand-labelled set tests/data/lexicon_gold.jsonl scored by macro-F1 (computed here by hand)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.annotate.lexicon import LexiconAnnotator, locate
from engine.annotate.model import NO_SYMPTOM, Sentence, SentenceAnnotation
from engine.annotate.segment import segment
from engine.errors import EngineError
from engine.profile import Catalogue, DiseaseProfile, load_profile
from kg.store.writer import write_batch
from tests.engine_graph import curated_seed, open_embedded

AD = "KGS:disease/alzheimers-disease"
MDD = "KGS:disease/major-depressive-disorder-single-episode"
CAT = "KGS:category/dualalign/"
CI, CO, FI, PC, NP = (
    CAT + c
    for c in (
        "cognitive-impairment",
        "concern-by-others",
        "functional-impairment",
        "physiological-changes",
        "neuropsychiatric-symptoms",
    )
)
GOLD = Path(__file__).parent / "data" / "lexicon_gold.jsonl"
#: measured 0.883 on the set (lexicon of the curated AD profile, dualalign scheme)
MACRO_F1_FLOOR = 0.85


@pytest.fixture(scope="module")
def profiles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DiseaseProfile]]:
    store = open_embedded(tmp_path_factory.mktemp("lexicon") / "g.db")
    store.apply_schema()
    write_batch(store, curated_seed())
    catalogue = Catalogue(store)
    yield {d: load_profile(store, catalogue.disease(d)) for d in (AD, MDD)}
    store.close()


@pytest.fixture(scope="module")
def profile(profiles: dict[str, DiseaseProfile]) -> DiseaseProfile:
    return profiles[AD]


@pytest.fixture(scope="module")
def annotator(profile: DiseaseProfile) -> LexiconAnnotator:
    return LexiconAnnotator.from_profiles(profile, scheme="dualalign")


def one(annotator: LexiconAnnotator, text: str) -> SentenceAnnotation:
    (out,) = annotator.annotate(text, [Sentence(index=0, start=0, end=len(text), text=text)])
    return out


def test_scheme_categories_and_informant_category(annotator: LexiconAnnotator) -> None:
    assert set(annotator.categories) == {CI, CO, FI, PC, NP}
    assert annotator.categories[CO] == "concern expressed by others"
    assert annotator.informant_category == CO


def test_a_scheme_without_a_family_category_has_no_informant_category(
    profiles: dict[str, DiseaseProfile],
) -> None:
    mdd = LexiconAnnotator.from_profiles(profiles[MDD])
    assert mdd.scheme == "mh" and mdd.informant_category is None
    both = LexiconAnnotator.from_profiles([profiles[AD], profiles[MDD]], scheme="dualalign")
    assert both.informant_category == CO


def test_affirmed_mention_labels_its_category(annotator: LexiconAnnotator) -> None:
    got = one(annotator, "Pt reports trouble sleeping most nights.")
    assert [(m.text, m.symptom_id) for m in got.mentions] == [
        ("trouble sleeping", "KGS:symptom/sleep-disturbance")
    ]
    assert got.label.category_id == PC and got.label.category == "physiological changes"
    assert got.label.symptomatic


@pytest.mark.parametrize(
    "text",
    ["Pt denies memory loss.", "No falls since the last visit.", "Negative for confusion."],
)
def test_negated_mentions_give_no_symptom(annotator: LexiconAnnotator, text: str) -> None:
    got = one(annotator, text)
    assert len(got.mentions) == 1 and got.mentions[0].negated
    assert got.label.category_id is None and got.label.category == NO_SYMPTOM


def test_negation_stops_at_but_and_semicolon(annotator: LexiconAnnotator) -> None:
    got = one(annotator, "Denies falls; reports poor sleep.")
    assert [(m.text, m.negated) for m in got.mentions] == [("falls", True), ("poor sleep", False)]
    assert got.label.category_id == PC
    got = one(annotator, "No hallucinations but is irritable with staff.")
    assert [(m.text, m.negated) for m in got.mentions] == [
        ("hallucinations", True),
        ("irritable", False),
    ]
    assert got.label.category_id == NP


def test_a_cue_inside_a_keyword_does_not_negate_it(annotator: LexiconAnnotator) -> None:
    got = one(annotator, "He can't follow group discussions anymore.")
    assert [(m.text, m.negated) for m in got.mentions] == [
        ("can't follow group discussions", False)
    ]
    assert got.label.category_id == CI


def test_uncertain_mentions_count(annotator: LexiconAnnotator) -> None:
    got = one(annotator, "Possible word-finding difficulty during the interview.")
    assert [(m.text, m.uncertain, m.negated) for m in got.mentions] == [
        ("word-finding difficulty", True, False)
    ]
    assert got.label.category_id == CI


def test_hypothetical_historical_and_family_mentions_do_not_count(
    annotator: LexiconAnnotator,
) -> None:
    got = one(annotator, "Return if confusion worsens.")
    assert got.mentions[0].hypothetical and got.label.category_id is None
    got = one(annotator, "Discussed the risks of falls with sedatives.")
    assert got.mentions[0].hypothetical and got.label.category_id is None
    got = one(annotator, "History of depressed mood after retirement, resolved.")
    assert got.mentions[0].historical and got.label.category_id is None
    got = one(annotator, "Mother had memory loss in her 80s.")
    assert got.mentions[0].family and got.label.category_id is None


def test_told_by_an_informant_is_concern_by_others(annotator: LexiconAnnotator) -> None:
    got = one(annotator, "Wife reports he repeats questions all day.")
    assert [(m.text, m.category_id, m.family) for m in got.mentions] == [
        ("repeats questions", CI, False)
    ]
    assert got.label.category_id == CO


def test_slot_forms_are_matched_for_every_voice(annotator: LexiconAnnotator) -> None:
    for text in ("Husband worried about her memory.", "Wife worried about his memory."):
        got = one(annotator, text)
        assert [m.symptom_id for m in got.mentions] == ["KGS:symptom/family-concern-memory"]
        assert got.label.category_id == CO


def test_longest_counted_mention_decides(annotator: LexiconAnnotator) -> None:
    got = one(annotator, "Irritable, and unintentional weight loss since May.")
    assert [m.category_id for m in got.mentions] == [NP, PC]
    assert got.label.category_id == PC  # "unintentional weight loss" is the longer mention
    got = one(annotator, "Anxious and tearful.")
    assert got.label.category_id == NP


def test_inflections_match_by_stem(annotator: LexiconAnnotator) -> None:
    got = one(annotator, "He was repeating the same stories at dinner.")
    assert [m.text for m in got.mentions] == ["repeating the same stories"]
    assert got.label.category_id == CI


def test_offsets_point_into_the_note(annotator: LexiconAnnotator) -> None:
    note = (
        "S:\nPt denies falls. Wife reports he gets lost.\nO:\nBP 120/80.\nConfused about the date."
    )
    sentences = segment(note)
    out = annotator.annotate(note, sentences)
    spans = [(m.start, m.end, m.text) for a in out for m in a.mentions]
    # counted by hand on `note`
    assert spans == [(13, 18, "falls"), (61, 84, "Confused about the date")]
    for start, end, text in spans:
        assert note[start:end] == text
    assert [a.label.category_id for a in out] == [None, None, None, CI]


def test_annotate_many_equals_annotate(annotator: LexiconAnnotator) -> None:
    notes = ["Denies anxiety. Poor appetite.", "Needs help bathing.\nNo hallucinations.", ""]
    pairs = [(n, segment(n)) for n in notes]
    assert annotator.annotate_many(pairs) == [annotator.annotate(n, s) for n, s in pairs]


def test_sentences_must_match_the_note(annotator: LexiconAnnotator) -> None:
    with pytest.raises(EngineError, match=r"note 0, sentence 0: text is not note\[0:5\]"):
        annotator.annotate("Confused.", [Sentence(index=0, start=0, end=5, text="Other")])


def test_a_profile_without_symptoms_is_refused() -> None:
    with pytest.raises(EngineError, match="no keywords"):
        LexiconAnnotator.from_profiles(DiseaseProfile(disease_id="KGS:disease/x", disease="x"))


def test_locate_finds_requested_keywords() -> None:
    note = "Trouble sleeping. Denies falls.\nShe keeps misplacing things; trouble sleeping again."
    sentences = segment(note)
    got = locate(["trouble sleeping", "falls", "misplacing things", "hallucinations"], sentences)
    assert got == {
        "trouble sleeping": (0, 2),
        "falls": (1,),  # negated, but realised
        "misplacing things": (2,),
        "hallucinations": (),
    }


def _gold() -> list[dict[str, str | None]]:
    return [json.loads(line) for line in GOLD.read_text().splitlines() if line.strip()]


def test_gold_set_covers_the_scheme_and_the_hard_cases() -> None:
    rows = _gold()
    assert len(rows) >= 200
    assert {r["category_id"] for r in rows} == {CI, CO, FI, PC, NP, None}
    notes = [r["note"] for r in rows]
    for kind, least in [
        ("negated", 20),
        ("uncertain", 6),
        ("historical", 8),
        ("family", 8),
        ("hypothetical", 6),
        ("none", 20),
    ]:
        assert notes.count(kind) >= least, kind
    # the guideline: negated, hypothetical, historical and family sentences are no symptom
    assert all(
        r["category_id"] is None
        for r in rows
        if r["note"] in ("negated", "hypothetical", "historical", "family", "none")
    )


def macro_f1(gold: list[str | None], pred: list[str | None]) -> float:
    """Mean over the gold labels (categories and no symptom) of per-label F1."""
    scores = []
    for label in set(gold):
        tp = sum(g == label and p == label for g, p in zip(gold, pred, strict=True))
        fp = sum(g != label and p == label for g, p in zip(gold, pred, strict=True))
        fn = sum(g == label and p != label for g, p in zip(gold, pred, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def test_macro_f1_helper_by_hand() -> None:
    # a: tp 1 fp 0 fn 1 -> 2/3; b: tp 1 fp 1 fn 0 -> 2/3; None: tp 1 -> 1
    assert macro_f1(["a", "a", "b", None], ["a", "b", "b", None]) == pytest.approx(7 / 9)


def test_gold_macro_f1_above_floor(annotator: LexiconAnnotator) -> None:
    rows = _gold()
    pairs = [
        (str(r["text"]), [Sentence(index=0, start=0, end=len(str(r["text"])), text=str(r["text"]))])
        for r in rows
    ]
    pred = [a[0].label.category_id for a in annotator.annotate_many(pairs)]
    score = macro_f1([r["category_id"] for r in rows], pred)
    print(f"lexicon macro-F1 on {len(rows)} gold sentences: {score:.3f}")
    assert score >= MACRO_F1_FLOOR
