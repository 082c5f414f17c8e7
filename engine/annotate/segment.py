"""Sentence segmentation of clinical notes with exact character offsets and sections.

Kept libraries do the work: medspaCy's tokenizer and Sectionizer find section headers, and
one of the two sentence splitters medspaCy ships splits prose: pysbd (default) or PyRuSH
(its clinical rules, about ten times slower in pure Python). Around them, rules for the
layout generated notes use:

- a header (``Subjective:``, ``## Plan``, ``**HPI:**``, ``Mental status examination``) is
  never part of a sentence: it names the ``section`` of the sentences after it, and a
  header alone on its line yields no sentence. Known titles get a fixed snake_case name
  (``history_of_present_illness``); any other short line ending in ``:``, markdown heading
  or bold ``**Title:**`` is a header too, named by its own words;
- a line break ends a sentence when the line before ends in ``.!?:;``, the next line starts
  a list item, a capital, a digit or ``[``, or a blank line follows; a line going on in
  lower case (hard-wrapped prose) continues the sentence. So each list item and each
  vitals line is a sentence;
- the splitter runs only on lines holding a possible sentence end followed by more text,
  and a split before a lower-case word is undone (``2 wks. with``, ``81 mg p.o. q.d.``);
- list markers (``-``, ``*``, ``•``, ``1.``, ``2)``) and surrounding whitespace are left
  out, so ``Sentence.text == note[start:end]`` is the item's own text.
"""

from __future__ import annotations

import itertools
import json
import re
import warnings
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from engine.annotate.model import Sentence

Splitter = Literal["pysbd", "pyrush"]

#: extra section titles by section name, beside medspaCy's packaged (MIMIC/VA) rules:
#: SOAP headings and the report sections of the recipes (kg/seed/*.yaml report_section).
SECTIONS: dict[str, tuple[str, ...]] = {
    "subjective": ("subjective", "s", "interval history"),
    "objective": ("objective", "o"),
    "assessment": ("assessment", "a", "impression", "clinical impression", "impressions"),
    "plan": ("plan", "p", "recommendations", "disposition", "follow-up", "follow up"),
    "assessment_and_plan": ("assessment and plan", "assessment/plan", "a/p", "a&p"),
    "chief_complaint": (
        "chief complaint",
        "chief complaints",
        "cc",
        "presenting complaint",
        "presenting complaints",
        "reason for visit",
    ),
    "history_of_present_illness": (
        "history of present illness",
        "history of the present illness",
        "hpi",
    ),
    "vital_signs": ("vital signs", "vitals"),
    "mental_status_exam": (
        "mental status exam",
        "mental status examination",
        "mse",
        "mental status",
    ),
    "cognitive_testing": ("cognitive testing", "cognitive screening", "neuropsychological testing"),
    "review_of_systems": ("review of systems", "ros"),
    "past_medical_history": ("past medical history", "pmh", "medical history"),
    "past_psychiatric_history": ("past psychiatric history", "psychiatric history"),
    "substance_use_history": ("substance use history", "substance use", "substance history"),
    "family_history": ("family history", "fh"),
    "social_history": ("social history", "sh"),
    "family_and_social_history": ("family and social history",),
    "medications": ("medications", "current medications", "meds"),
    "allergies": ("allergies",),
    "identifying_data": ("identifying data", "identification"),
    "risk_assessment": ("risk assessment",),
    "diagnosis_and_formulation": ("diagnosis and formulation", "formulation", "diagnosis"),
}
#: the name of a header no rule knows (its own words, snake_case, become the section)
GENERIC = "header"

_DECOR = r"[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*|__)?"
_CLOSE = r"(?:\*\*|__)?[ \t]*(?::(?:\*\*|__)?|(?=\r?\n|\Z))"
#: a line that is a header and nothing else (markdown heading, bold line, ``Title:`` of at
#: most four words), or a bold ``**Title:**`` opening a line
_GENERIC = (
    r"^[ \t]*(?:(?:#{1,6}[ \t]+[^\n]{1,60}?[ \t]*:?|\*\*[^\n*]{1,60}\*\*[ \t]*:?"
    r"|[A-Za-z][A-Za-z/&'()-]*(?:[ \t]+[A-Za-z/&'()-]+){0,3}[ \t]*(?:\*\*)?:(?:\*\*)?)"
    r"[ \t]*(?=\r?\n|\Z)"
    r"|\*\*[A-Za-z][^\n*]{0,48}(?::\*\*|\*\*[ \t]*:))"
)
_LIST_MARKER = re.compile(r"(?:[-*\u2022\u2013+]|\(?\d{1,2}[.)])[ \t]+")
_NEXT_LINE_STARTS = re.compile(r"[ \t]*(?:[-*\u2022\u2013+][ \t]|\(?\d{1,2}[.)][ \t]|[A-Z0-9\[#])")
_MAY_SPLIT = re.compile(r"[.!?][\"')\]]*[ \t]+\S")
_ENDS_SENTENCE = frozenset(".!?:;")
_WORDS = re.compile(r"[a-z0-9]+")


def _title_regex(titles: Iterable[str]) -> str:
    alternatives = sorted({re.escape(t) for t in titles}, key=lambda t: (-len(t), t))
    return rf"(?m)^{_DECOR}(?:{'|'.join(alternatives)}){_CLOSE}|{_GENERIC}"


def _packaged_titles() -> dict[str, list[str]]:
    """medspaCy's packaged English section titles, by category."""
    import medspacy

    path = (
        Path(medspacy.__file__).resolve().parents[1] / "resources" / "en" / "section_patterns.json"
    )
    out: dict[str, list[str]] = {}
    for rule in json.loads(path.read_text())["section_rules"]:
        out.setdefault(rule["category"], []).append(rule["literal"])
    return out


def _name(title: str) -> str:
    return "_".join(_WORDS.findall(title.lower())) or GENERIC


class _Pipeline:
    """The medspaCy parts, built once per configuration: the tokenizer and a Sectionizer
    holding one rule that finds every header line; the sentence splitter; and the section
    name of every known title."""

    def __init__(self, splitter: Splitter, extra: tuple[str, ...]) -> None:
        import medspacy
        from medspacy.section_detection import SectionRule

        groups = [*SECTIONS.items(), *_packaged_titles().items(), *((_name(t), [t]) for t in extra)]
        self.sections: dict[str, str] = {}  # title words -> section; ours first, so they win
        known: set[str] = set()
        for section, titles in groups:
            for title in titles:
                self.sections.setdefault(_name(title), section)
                known.add(title.strip().rstrip(":").strip())
        self.nlp = medspacy.load(medspacy_enable=["medspacy_tokenizer"])
        sectionizer = self.nlp.add_pipe(
            "medspacy_sectionizer", config={"rules": None, "span_attrs": None}
        )
        regex = _title_regex(sorted(t for t in known if t))
        sectionizer.add([SectionRule(literal=GENERIC, category=GENERIC, pattern=regex)])
        self.split = _splitter(splitter)


def _splitter(kind: Splitter) -> Any:
    """A function from a line of text to the offsets where its sentences start."""
    if kind == "pysbd":
        import pysbd

        seg = pysbd.Segmenter(language="en", clean=False, char_span=True)
        return lambda line: [span.start for span in seg.segment(line)]
    import PyRuSH
    from loguru import logger
    from PyRuSH import RuSH

    logger.disable("PyRuSH")
    rules = Path(PyRuSH.__file__).resolve().parents[1] / "conf" / "rush_rules.tsv"
    rush = RuSH(rules=str(rules), max_repeat=50, auto_fix_gaps=True)
    return lambda line: [span.begin for span in rush.segToSentenceSpans(line)]


@lru_cache(maxsize=8)
def _pipeline(splitter: Splitter, extra: tuple[str, ...]) -> _Pipeline:
    return _Pipeline(splitter, extra)


class Segmenter:
    """Splits notes into ``Sentence`` tuples.

    ``headers`` adds section titles (for instance a disease's report sections) to the
    built-in ones. ``splitter`` picks the sentence splitter medspaCy ships with: ``pysbd``
    (the default, faster) or ``pyrush`` (PyRuSH's clinical rules, pure Python).
    """

    def __init__(self, headers: Sequence[str] = (), splitter: Splitter = "pysbd") -> None:
        self.headers = tuple(sorted({h.strip() for h in headers if h.strip()}))
        self.splitter: Splitter = splitter

    def segment(self, text: str) -> tuple[Sentence, ...]:
        return self.segment_many([text])[0]

    def segment_many(
        self, texts: Iterable[str], batch_size: int = 64
    ) -> list[tuple[Sentence, ...]]:
        """``segment`` over many notes through ``nlp.pipe``."""
        pipeline = _pipeline(self.splitter, self.headers)
        items = list(texts)
        with warnings.catch_warnings():
            # the Sectionizer's token matcher is empty (its one rule is a regex): say nothing
            warnings.filterwarnings("ignore", message=r"\[W036\]")
            docs = pipeline.nlp.pipe(items, batch_size=batch_size)
            return [_sentences(t, doc, pipeline) for t, doc in zip(items, docs, strict=True)]


def segment(text: str) -> tuple[Sentence, ...]:
    """The sentences of ``text`` with offsets and sections (built-in section titles)."""
    return Segmenter().segment(text)


def segment_many(texts: Iterable[str]) -> list[tuple[Sentence, ...]]:
    """``segment`` for many notes at once (one ``nlp.pipe``)."""
    return Segmenter().segment_many(texts)


def _headers(doc: Any, sections: dict[str, str]) -> list[tuple[int, int, str]]:
    """(start, end, section name) of every header in ``doc``, in order."""
    out = []
    for section in doc._.sections:
        if section.category is None or section.title_end <= section.title_start:
            continue
        span = doc[section.title_start : section.title_end]
        name = _name(span.text)
        out.append((span.start_char, span.end_char, sections.get(name, name)))
    return out


def _line_breaks(text: str) -> list[int]:
    """Positions of the line breaks in ``text`` that end a sentence."""
    out = []
    pos = text.find("\n")
    while pos != -1:
        before = pos - 1  # the last character of the line, spaces aside
        while before >= 0 and text[before] in " \t\r":
            before -= 1
        after = pos + 1  # the first character of the next line, spaces aside
        while after < len(text) and text[after] in " \t":
            after += 1
        if (
            before < 0
            or text[before] in _ENDS_SENTENCE
            or text[before] == "\n"
            or after == len(text)
            or text[after] in "\r\n"
            or _NEXT_LINE_STARTS.match(text, after)
        ):
            out.append(pos)
        pos = text.find("\n", pos + 1)
    return out


def _continues(text: str, start: int) -> bool:
    """A splitter boundary before a lower-case word is an abbreviation's full stop
    (``2 wks. with``, ``81 mg p.o. q.d.``) or a wrapped line, not a sentence end (line
    breaks are judged by ``_line_breaks``)."""
    return text[start : start + 1].islower()


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` without surrounding whitespace and a leading list marker."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    marker = _LIST_MARKER.match(text, start, end)
    if marker is not None:
        start = marker.end()
        while start < end and text[start].isspace():
            start += 1
    return start, end


def _sentences(text: str, doc: Any, pipeline: _Pipeline) -> tuple[Sentence, ...]:
    headers = _headers(doc, pipeline.sections)
    breaks = _line_breaks(text)
    bounds: set[int] = {0, len(text), *breaks}
    line_start = 0
    for line in text.split("\n"):
        if _MAY_SPLIT.search(line):
            for start in pipeline.split(line):
                if (
                    0 < start < len(line)
                    and any(c.isalpha() for c in line[:start])  # not after a bare "1."
                    and not _continues(text, line_start + start)
                ):
                    bounds.add(line_start + start)
        line_start += len(line) + 1
    for start, end, _ in headers:
        bounds.update((start, end))
    marks = sorted(bounds)
    out: list[Sentence] = []
    h = 0
    section: str | None = None
    for lo, hi in itertools.pairwise(marks):
        while h < len(headers) and headers[h][0] <= lo:
            section = headers[h][2]
            h += 1
        if h > 0 and headers[h - 1][0] <= lo < headers[h - 1][1]:
            continue  # the header itself
        start, end = _trim(text, lo, hi)
        if start < end and any(c.isalnum() for c in text[start:end]):
            out.append(
                Sentence(
                    index=len(out), start=start, end=end, text=text[start:end], section=section
                )
            )
    return tuple(out)
