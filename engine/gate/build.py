"""The gate of a run: the planned profiles' example notes and diagnosis terms, a corpus."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError
from engine.gate.gate import Gate, GateConfig
from engine.gate.reference import ReferenceDoc, load_reference
from engine.profile import DiseaseProfile


@dataclass(frozen=True, slots=True)
class Reference:
    """A ``--reference`` corpus read once (shipped as is to Ray workers) and its identity."""

    docs: list[ReferenceDoc]
    digest: str


def read_reference(path: Path, field: str = "text") -> Reference:
    """The corpus at ``path`` (text in ``field``); its digest names file content and field."""
    docs = load_reference(path, field)
    with path.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return Reference(docs, f"sha256:{digest}:{field}")


def gate_for(
    config: GateConfig,
    profiles: Iterable[DiseaseProfile],
    reference: Reference | None = None,
) -> Gate | None:
    """The gate ``config`` asks for (None when it asks for no check).

    The privacy check protects the profiles' example notes and the ``reference`` corpus;
    the leakage check looks for each disease's names, codes and code titles.
    """
    if reference is not None and "privacy" not in config.checks:
        raise EngineError("--reference is read by the privacy check: add it to --gate")
    if not config.checks:
        return None
    terms: dict[str, list[str]] = {}
    examples: dict[str, str] = {}
    for p in profiles:
        named = terms.setdefault(p.disease_id, [p.disease, *p.synonyms])
        for code in (*p.codes, *([p.icd] if p.icd else [])):
            named += [code.code, *([code.title] if code.title else [])]
        examples.update((e.id, e.text) for e in p.examples)
    return Gate(
        config,
        references=reference.docs if reference else (),
        examples=examples.items(),
        leakage=terms,
        reference_digest=reference.digest if reference else None,
    )
