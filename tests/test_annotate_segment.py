"""Sentence segmentation on realistic note snippets: boundaries, offsets and sections written
out by hand (counted on the snippets, not taken from the segmenter)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from engine.annotate.model import Sentence
from engine.annotate.segment import Segmenter, segment, segment_many

SOAP = (
    "SUBJECTIVE:\n"
    "Pt. is a 78 y.o. male seen w/ his wife. Dr. Lee referred him in March. He takes donepezil "
    "5 mg b.i.d. and reports forgetting appointments.\n"
    "Chief Complaint: memory loss\n"
    "\n"
    "OBJECTIVE:\n"
    "BP 132/84, HR 72, T 98.6, RR 16\n"
    "MoCA 21/30, recalled 1 of 5 words.\n"
    "ASSESSMENT:\n"
    "1. Mild cognitive impairment, amnestic.\n"
    "2. Hypertension, stable.\n"
    "PLAN:\n"
    "- Check B12 and TSH.\n"
    "- Follow up in 3 mos. with PCP.\n"
)
#: (start, end, section): counted by hand on SOAP
SOAP_SENTENCES = [
    (12, 51, "subjective"),  # Pt. is a 78 y.o. male seen w/ his wife.
    (52, 82, "subjective"),  # Dr. Lee referred him in March.
    (83, 150, "subjective"),  # He takes donepezil 5 mg b.i.d. and ... appointments.
    (168, 179, "chief_complaint"),  # memory loss (inline header left out)
    (192, 223, "objective"),  # the vitals line
    (224, 258, "objective"),  # MoCA 21/30, recalled 1 of 5 words.
    (274, 310, "assessment"),  # numbered item 1 without "1. "
    (314, 335, "assessment"),  # numbered item 2
    (344, 362, "plan"),  # bullet without "- "
    (365, 394, "plan"),  # Follow up in 3 mos. with PCP.
]

MARKDOWN = (
    "## Mental Status Examination\n"
    "**Appearance:** Well groomed, cooperative.\n"
    'Mood "okay". Affect constricted. No SI/HI.\n'
    "\n"
    "**Risk assessment**\n"
    "Low acute risk; she denies\n"
    "suicidal ideation.\n"
    "Collateral from her daughter:\n"
    "She repeats the same stories daily.\n"
)
MARKDOWN_SENTENCES = [
    (45, 71, "appearance"),  # Well groomed, cooperative.
    (72, 84, "appearance"),  # Mood "okay".
    (85, 104, "appearance"),  # Affect constricted.
    (105, 114, "appearance"),  # No SI/HI.
    (136, 181, "risk_assessment"),  # a hard-wrapped sentence stays one sentence
    (212, 247, "collateral_from_her_daughter"),  # an unknown "Title:" line is a header
]


def _check(text: str, got: tuple[Sentence, ...], want: list[tuple[int, int, str]]) -> None:
    assert [(s.start, s.end, s.section) for s in got] == want
    assert [s.index for s in got] == list(range(len(want)))
    for s in got:
        assert s.text == text[s.start : s.end]
        assert s.text == s.text.strip()


def test_soap_note_headers_abbreviations_vitals_and_lists() -> None:
    _check(SOAP, segment(SOAP), SOAP_SENTENCES)


def test_markdown_headings_bold_titles_and_wrapped_lines() -> None:
    _check(MARKDOWN, segment(MARKDOWN), MARKDOWN_SENTENCES)


def test_sentence_texts_read_as_expected() -> None:
    texts = [s.text for s in segment(SOAP)]
    assert texts[0] == "Pt. is a 78 y.o. male seen w/ his wife."
    assert texts[2] == "He takes donepezil 5 mg b.i.d. and reports forgetting appointments."
    assert texts[4] == "BP 132/84, HR 72, T 98.6, RR 16"
    assert texts[6] == "Mild cognitive impairment, amnestic."
    assert texts[9] == "Follow up in 3 mos. with PCP."


@pytest.mark.parametrize("splitter", ["pysbd", "pyrush"])
def test_clinical_abbreviations_do_not_end_sentences(splitter: str) -> None:
    text = (
        "She takes ASA 81 mg p.o. q.d. with meals. Mr. Jones, a 72 yo M, c/o dizziness. "
        "F/u in 2 wks. with PCP."
    )
    got = Segmenter(splitter=splitter).segment(text)  # type: ignore[arg-type]
    assert [(s.start, s.end) for s in got] == [(0, 41), (42, 78), (79, 102)]
    assert all(s.section is None for s in got)


def test_header_lines_are_not_sentences() -> None:
    assert segment("SUBJECTIVE:\n\nOBJECTIVE:\n## Plan\n") == ()
    assert segment("") == ()
    assert segment("   \n\n  ") == ()


def test_a_header_word_opening_a_sentence_is_not_a_header() -> None:
    text = "Plan to repeat the MoCA in 6 months.\nAssessment of gait was deferred."
    got = segment(text)
    assert [(s.start, s.end, s.section) for s in got] == [(0, 36, None), (37, 69, None)]


def test_a_long_line_ending_in_a_colon_is_a_sentence() -> None:
    text = "Daughter reports the following new concerns:\n- Repeats questions.\nPt reports:\nNone."
    got = segment(text)
    assert [(s.start, s.end, s.section) for s in got] == [
        (0, 44, None),
        (47, 65, None),
        (78, 83, "pt_reports"),
    ]


def test_extra_headers_name_their_sections() -> None:
    text = "Occupational history\nRetired machinist.\nPlan\nReturn in 4 weeks."
    plain = segment(text)
    extra = Segmenter(headers=["Occupational history"]).segment(text)
    assert [(s.start, s.end, s.section) for s in extra] == [
        (21, 39, "occupational_history"),
        (45, 63, "plan"),
    ]
    # without the title the line is text (no colon, no markdown): a sentence of its own
    assert [(s.start, s.end, s.section) for s in plain] == [
        (0, 20, None),
        (21, 39, None),
        (45, 63, "plan"),
    ]


def test_segment_many_equals_segment() -> None:
    notes = [SOAP, MARKDOWN, "", "Denies falls. Sleeps well."]
    assert segment_many(notes) == [segment(n) for n in notes]


def test_every_report_section_of_the_seed_is_a_header() -> None:
    """Each report_section title of the curated seed, alone on its line as the mh_report
    recipe writes it, names the section of the text under it."""
    path = Path(__file__).resolve().parents[1] / "kg" / "seed" / "mental_health.yaml"
    seed = yaml.safe_load(path.read_text(encoding="utf-8"))
    titles = [g["title"] for g in seed["nodes"]["Guideline"] if g.get("kind") == "report_section"]
    assert len(titles) == 11
    note = "".join(f"{title}\nNothing of note.\n\n" for title in titles)
    got = segment(note)
    assert [s.text for s in got] == ["Nothing of note."] * len(titles)
    names = [s.section for s in got]
    assert len(set(names)) == len(titles) and None not in names
    assert names[titles.index("History of present illness")] == "history_of_present_illness"
    assert names[titles.index("Mental status examination")] == "mental_status_exam"


def test_invariants_on_assembled_notes() -> None:
    """Notes assembled at random from note pieces: offsets exact, trimmed, in order, no
    overlap, no header text in a sentence, every word of the prose kept."""
    pieces = [
        "SUBJECTIVE:",
        "**Plan:**",
        "## Assessment",
        "HPI: 81 yo F w/ 6 mo of forgetfulness.",
        "Pt. reports poor sleep. Dr. Lee saw her 3/4.",
        "- Check B12 and TSH.",
        "2) Donepezil 5 mg q.d. with meals.",
        "BP 132/84, HR 72, T 98.6",
        "she keeps losing\nher keys and glasses.",
        "",
        "   ",
        'Mood "okay". Affect flat!  Denies SI?',
    ]
    rng = random.Random(11)
    for _ in range(60):
        newline = rng.choice(["\n", "\r\n", "\n\n"])
        note = newline.join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        got = segment(note)
        end = 0
        for i, s in enumerate(got):
            assert s.index == i
            assert s.text == note[s.start : s.end] == s.text.strip() != ""
            assert s.start >= end
            end = s.end
            assert "SUBJECTIVE" not in s.text and "**" not in s.text and "##" not in s.text
        kept = " ".join(s.text for s in got)
        for word in ("forgetfulness", "sleep", "TSH", "meals", "98.6", "glasses", "SI"):
            assert (word in note) == (word in kept), (word, note)
