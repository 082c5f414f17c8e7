"""The leakage check: a pre-diagnosis note must not name the diagnosis.

Terms come from the graph: the disease name and synonyms, its ICD-10 codes and their titles.
Matching is whole-word (no letter or digit may touch a match) and case-insensitive, with
three allowances: an apostrophe may be missing or curly ("Alzheimers", "Alzheimer’s"), words
may be joined by any run of spaces or hyphens, and a code's dot is optional ("G309").
Acronyms (terms of at most five characters with no lower-case letter, e.g. "AD", "MCI")
match in upper case only, so "ad lib" is not a mention of AD.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_APOSTROPHE = re.compile(r"['’]")
_SPACE = re.compile(r"[\s\-]+")
_FIRST = re.compile(r"[^\W_]+")
_CODE = re.compile(r"^[A-Z]\d[0-9A-Z](?:\.[0-9A-Z]{1,4})?$")


def _acronym(term: str) -> bool:
    return len(term) <= 5 and not any(c.islower() for c in term) and not _CODE.match(term)


def _pattern(term: str) -> str:
    if _CODE.match(term):
        return "(?i:" + re.escape(term).replace(r"\.", r"\.?") + ")"
    parts = []
    for word in _SPACE.split(term.strip()):
        pieces = _APOSTROPHE.split(word)
        parts.append("['’]?".join(re.escape(p) for p in pieces))
    body = r"[\s\-]+".join(parts)
    return body if _acronym(term) else f"(?i:{body})"


@dataclass(frozen=True, slots=True)
class Leak:
    """A diagnosis term found in a note: the term as curated and the text that matched."""

    term: str
    found: str
    start: int


class LeakageTerms:
    """The diagnosis terms of one disease, compiled into one pattern."""

    def __init__(self, terms: Iterable[str]) -> None:
        unique: dict[str, str] = {}
        for term in terms:
            term = term.strip()
            if term and term.lower() not in unique:
                unique[term.lower()] = term
        # longest first, so "Alzheimer's disease, unspecified" wins over "Alzheimer's disease"
        self.terms = tuple(sorted(unique.values(), key=lambda t: (-len(t), t)))
        alternatives = "|".join(f"(?P<t{i}>{_pattern(t)})" for i, t in enumerate(self.terms))
        pattern = rf"(?<![^\W_])(?:{alternatives})(?![^\W_])"
        self._regex = re.compile(pattern) if self.terms else None
        # a cheap pre-test: every match starts with a term's first word (acronyms as written)
        self._acronyms = tuple(t for t in self.terms if _acronym(t))
        heads = (_FIRST.match(t) for t in self.terms if not _acronym(t))
        self._heads = tuple({m.group(0).lower() for m in heads if m})

    def find(self, text: str) -> Leak | None:
        """The first mention of a term in ``text``, or ``None``."""
        if self._regex is None:
            return None
        lowered = text.lower()
        if not any(h in lowered for h in self._heads) and not any(
            a in text for a in self._acronyms
        ):
            return None
        match = self._regex.search(text)
        if match is None:
            return None
        name = match.lastgroup
        assert name is not None
        return Leak(self.terms[int(name[1:])], match.group(0), match.start())
