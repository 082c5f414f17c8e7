"""Gendered words in surface forms: which sex a text implies about the patient.

A surface form is written about the patient ("wife says he is up all night"). A word in
``MALE`` implies a male patient, one in ``FEMALE`` a female patient (a spouse word names the
patient's partner: "wife" implies a male patient). Text inside a slot (``{...}``) is filled
from the persona when the record is planned, so the graph audit ignores it.
"""

from __future__ import annotations

import re
from functools import lru_cache

MALE = frozenset({"he", "him", "his", "himself", "wife", "widower", "girlfriend"})
FEMALE = frozenset({"she", "her", "hers", "herself", "husband", "widow", "boyfriend"})
GENDERED = MALE | FEMALE
_WORD = re.compile(r"[A-Za-z]+")
_SLOT = re.compile(r"\{[^{}]*\}")
#: terms whose gendered word says nothing about the patient (HPO's "Widow's peak")
_TERMS = re.compile(r"\bwidow'?s peak\b", re.IGNORECASE)


def gendered_words(text: str) -> list[str]:
    """The gendered words of ``text`` outside slots, lower-cased, in order."""
    bare = _TERMS.sub(" ", _SLOT.sub(" ", text))
    return [w for w in (m.group().lower() for m in _WORD.finditer(bare)) if w in GENDERED]


@lru_cache(maxsize=65_536)
def implied_sexes(text: str) -> frozenset[str]:
    """``{"male"}``, ``{"female"}``, both or neither: what ``text`` implies about the patient."""
    words = {m.group().lower() for m in _WORD.finditer(_TERMS.sub(" ", text))}
    out = set()
    if words & MALE:
        out.add("male")
    if words & FEMALE:
        out.add("female")
    return frozenset(out)
