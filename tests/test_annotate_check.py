"""The constraint check on hand-made notes: every expected realisation written by hand."""

from __future__ import annotations

from engine.annotate.check import CheckCounts, check_note, normalise
from engine.annotate.model import Label, Mention, Realisation, Sentence, SentenceAnnotation
from engine.annotate.scheme import Category, LabelScheme
from engine.profile import CategoryRef, DiseaseProfile, SymptomInfo
from engine.spec import Keyword

COG, FUN, NPS = "KGS:cat/cog", "KGS:cat/fun", "KGS:cat/nps"
JM_MEM = "KGS:cat/jm-memory"
SCHEME = LabelScheme(
    scheme="da",
    disease_id="KGS:disease/x",
    disease="X disease",
    categories=(
        Category(id=COG, name="cognitive impairment"),
        Category(id=FUN, name="functional impairment"),
        Category(id=NPS, name="neuropsychiatric symptoms"),
    ),
)
PROFILE = DiseaseProfile(
    disease_id="KGS:disease/x",
    disease="X disease",
    symptoms=(
        SymptomInfo(
            id="KGS:sym/forget",
            name="forgetfulness",
            synonyms=("memory lapses", "{subject} forgets {possessive} keys"),
            categories=(
                CategoryRef(id=COG, name="cognitive impairment", scheme="da"),
                CategoryRef(id=JM_MEM, name="memory", scheme="jm"),
            ),
        ),
        SymptomInfo(
            id="KGS:sym/bills",
            name="trouble managing bills",
            categories=(CategoryRef(id=FUN, name="functional impairment", scheme="da"),),
        ),
        SymptomInfo(
            id="KGS:sym/apathy",
            name="apathy",
            synonyms=("withdrawn",),
            categories=(CategoryRef(id=NPS, name="neuropsychiatric symptoms", scheme="da"),),
        ),
    ),
)
NOTE = (
    "S: Pt reports Word-Finding difficulty at work. Son now pays the bills after "
    "trouble managing bills last spring. Has memory lapses most days. Denies apathy. "
    "Plan: follow up."
)
# (text, label category id or None); offsets below are where each text sits in NOTE
SENTENCES = [
    ("Pt reports Word-Finding difficulty at work.", COG),
    ("Son now pays the bills after trouble managing bills last spring.", NPS),
    ("Has memory lapses most days.", COG),
    ("Denies apathy.", None),
    ("follow up.", None),
]
NAMES = {
    COG: "cognitive impairment",
    FUN: "functional impairment",
    NPS: "neuropsychiatric symptoms",
}


def labelled(mentions: dict[int, tuple[Mention, ...]] | None = None) -> list[SentenceAnnotation]:
    out = []
    for index, (text, category) in enumerate(SENTENCES):
        start = NOTE.index(text)
        label = Label(category_id=category, category=NAMES[category]) if category else Label()
        out.append(
            SentenceAnnotation(
                sentence=Sentence(index=index, start=start, end=start + len(text), text=text),
                label=label,
                mentions=(mentions or {}).get(index, ()),
            )
        )
    return out


def keyword(text: str, symptom: str, category: str) -> Keyword:
    return Keyword(
        text=text,
        symptom_id=f"KGS:sym/{symptom}",
        symptom=symptom,
        category_id=category,
        category="",
    )


def test_offsets_of_the_hand_made_note() -> None:
    for sa in labelled():
        assert NOTE[sa.sentence.start : sa.sentence.end] == sa.sentence.text


def test_normalise_folds_case_hyphens_and_punctuation() -> None:
    assert normalise("Word-Finding  difficulty,") == " word finding difficulty "
    assert normalise("...") == "  "


def test_realised_exactly_and_normalised_with_agreeing_labels() -> None:
    kws = [
        keyword("word-finding difficulty", "word", COG),  # case and hyphen differ in the note
        keyword("memory lapses", "forget", COG),
    ]
    result = check_note(kws, labelled(), SCHEME, PROFILE)
    assert result.realisations == (
        Realisation(
            keyword="word-finding difficulty", category_id=COG, sentence=0, label_agrees=True
        ),
        Realisation(keyword="memory lapses", category_id=COG, sentence=2, label_agrees=True),
    )
    assert result.reasons == ()


def test_disagreement_and_unrealised_keyword_are_marked_for_review() -> None:
    kws = [
        keyword("trouble managing bills", "bills", FUN),  # sentence 1 is labelled NPS
        keyword("getting lost", "lost", COG),  # nowhere in the note, no symptom in the profile
    ]
    result = check_note(kws, labelled(), SCHEME, PROFILE)
    assert result.realisations == (
        Realisation(
            keyword="trouble managing bills", category_id=FUN, sentence=1, label_agrees=False
        ),
        Realisation(keyword="getting lost", category_id=COG, sentence=None, label_agrees=None),
    )
    assert result.reasons == (
        "keyword 'trouble managing bills' (functional impairment) in sentence 1 labelled "
        "neuropsychiatric symptoms",
        "keyword 'getting lost' not realised",
    )


def test_paraphrased_keyword_found_through_its_symptom_surface_forms() -> None:
    # the rendered slot form is not in the note, but the symptom's synonym is (sentence 2);
    # the slot-bearing synonym itself is never used as a pattern
    kws = [keyword("he forgets his keys", "forget", COG)]
    result = check_note(kws, labelled(), SCHEME, PROFILE)
    assert result.realisations == (
        Realisation(keyword="he forgets his keys", category_id=COG, sentence=2, label_agrees=True),
    )


def test_negated_lexicon_mention_does_not_realise_but_a_positive_one_does() -> None:
    negated = Mention(start=0, end=6, text="apathy", symptom_id="KGS:sym/apathy", negated=True)
    positive = Mention(start=0, end=3, text="son", symptom_id="KGS:sym/apathy")
    kws = [keyword("no interest in hobbies", "apathy", NPS)]
    # only the negated mention: the surface form "apathy" still matches sentence 3 (Denies
    # apathy), whose label (no symptom) disagrees: the check reports it for review
    only_negated = check_note(kws, labelled({3: (negated,)}), SCHEME, PROFILE)
    assert only_negated.realisations == (
        Realisation(
            keyword="no interest in hobbies", category_id=NPS, sentence=3, label_agrees=False
        ),
    )
    assert only_negated.reasons == (
        "keyword 'no interest in hobbies' (neuropsychiatric symptoms) in sentence 3 labelled "
        "no symptom",
    )
    both = check_note(kws, labelled({1: (positive,), 3: (negated,)}), SCHEME, PROFILE)
    assert both.realisations == (
        Realisation(
            keyword="no interest in hobbies", category_id=NPS, sentence=1, label_agrees=True
        ),
    )
    assert both.reasons == ()


def test_keyword_of_another_scheme_is_mapped_through_its_symptom() -> None:
    kws = [keyword("memory lapses", "forget", JM_MEM)]  # planned under scheme jm
    result = check_note(kws, labelled(), SCHEME, PROFILE)
    assert result.realisations == (
        Realisation(keyword="memory lapses", category_id=COG, sentence=2, label_agrees=True),
    )


def test_run_counts() -> None:
    counts = CheckCounts()
    counts.add(check_note([keyword("memory lapses", "forget", COG)], labelled(), SCHEME, PROFILE))
    counts.add(
        check_note(
            [keyword("trouble managing bills", "bills", FUN), keyword("getting lost", "lost", COG)],
            labelled(),
            SCHEME,
            PROFILE,
        )
    )
    assert (counts.notes, counts.review, counts.requested, counts.realised, counts.disagree) == (
        2,
        1,
        3,
        2,
        1,
    )
    assert counts.realised_pct == 100 * 2 / 3
    assert counts.disagree_pct == 50.0


def test_inflected_keyword_is_realised_through_its_stems() -> None:
    text = "Keeps repeating the same questions at dinner."
    sentence = SentenceAnnotation(
        sentence=Sentence(index=0, start=0, end=len(text), text=text),
        label=Label(category_id=COG, category=NAMES[COG]),
    )
    kws = [keyword("repeats the same question", "repeats", COG)]
    result = check_note(kws, [sentence], SCHEME, PROFILE)
    assert result.realisations == (
        Realisation(
            keyword="repeats the same question", category_id=COG, sentence=0, label_agrees=True
        ),
    )
