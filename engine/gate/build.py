"""The gate of a run: the planned profiles' example notes and diagnosis terms, a corpus."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from engine.errors import EngineError
from engine.gate.gate import Gate, GateConfig
from engine.gate.reference import load_reference
from engine.profile import DiseaseProfile


def gate_for(
    config: GateConfig,
    profiles: Iterable[DiseaseProfile],
    reference: Path | None = None,
    reference_field: str = "text",
) -> Gate | None:
    """The gate ``config`` asks for (None when it asks for no check).

    The privacy check protects the profiles' example notes and the ``reference`` corpus;
    the leakage check looks for each disease's names, codes and code titles.
    """
    if reference is not None and "privacy" not in config.checks:
        raise EngineError("--reference is read by the privacy check: add it to --gate")
    if not config.checks:
        return None
    docs, digest = [], None
    if reference is not None:
        docs = load_reference(reference, reference_field)
        with reference.open("rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    terms: dict[str, list[str]] = {}
    examples: dict[str, str] = {}
    for p in profiles:
        named = terms.setdefault(p.disease_id, [p.disease, *p.synonyms])
        for code in (*p.codes, *([p.icd] if p.icd else [])):
            named += [code.code, *([code.title] if code.title else [])]
        examples.update((e.id, e.text) for e in p.examples)
    return Gate(
        config,
        references=docs,
        examples=examples.items(),
        leakage=terms,
        reference_digest=f"sha256:{digest}:{reference_field}" if digest else None,
    )
