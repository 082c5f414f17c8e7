"""Surface forms rendered for the persona: slots (``{subject}``, ``{spouse}``, ...) filled in.

A *voice* is what the slots depend on: the persona's sex (female, male, unknown) and whether
the patient is a minor at the visit. Every form is rendered once per voice when a sampler
is compiled, so a record only picks the pre-rendered text by index. The slot table is
``kg.coherence.SLOTS`` (the one the graph is validated against).
"""

from __future__ import annotations

import re

import numpy as np

from engine.samplers.persona import UNKNOWN_SEX
from engine.samplers.tables import IntArray
from kg.coherence import ADULT_AGE, RELATIVE_SLOT, SLOTS

#: Voices: sex code (female 0, male 1, unknown 2) + 3 x (minor at the visit).
N_VOICES = 6
_SLOT = re.compile(r"\{([A-Za-z]+)\}")
_MINOR_RELATIVE = "parent"


def render(form: str, sex: int, minor: bool) -> str:
    """``form`` with every slot filled for a patient of ``sex`` (a sex code)."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        key = name.lower()
        if key == RELATIVE_SLOT:
            word = _MINOR_RELATIVE if minor else SLOTS["spouse"][sex]
        else:
            word = SLOTS[key][sex]
        return word[:1].upper() + word[1:] if name[:1].isupper() else word

    return _SLOT.sub(fill, form)


def voices(form: str) -> tuple[str, ...]:
    """``form`` rendered for each voice, in voice order."""
    return tuple(render(form, v % 3, v >= 3) for v in range(N_VOICES))


def voice_of(sex: IntArray, visit_ages: IntArray) -> IntArray:
    """The voice of each record from its sex code and visit age (-1: unknown, an adult)."""
    minor = (visit_ages >= 0) & (visit_ages < ADULT_AGE)
    return (np.where((sex >= 0) & (sex <= UNKNOWN_SEX), sex, UNKNOWN_SEX) + 3 * minor).astype(
        np.int64
    )
