"""The gate: settings, verdicts and counts, and the per-run state of the three checks.

``Gate`` holds what never changes during a run (settings, the protected n-grams, the
diagnosis terms); ``Gate.start()`` gives a ``GateRun`` with the accepted notes' sketches
and the counts of one run. Checks run cheapest first (privacy, leakage, near-duplicate)
and a note is rejected by the first that fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.gate.leakage import LeakageTerms
from engine.gate.neardup import NearDuplicateIndex
from engine.gate.privacy import NgramIndex
from engine.gate.reference import ReferenceDoc
from engine.gate.text import U64, TokenHasher, tokens
from engine.gate.verdict import CHECKS, Check, GateCounts, Rejection
from engine.spec import GenerationSpec

if TYPE_CHECKING:
    from datasketch import LeanMinHash


def regeneration_seed(record_seed: int, regeneration: int) -> int:
    """The 31-bit sampling seed of a record's ``regeneration``-th retry after a rejection:
    ``SeedSequence(record_seed, spawn_key=(regeneration,))``'s first word, as
    ``engine.samplers.rng.record_seeds`` derives record seeds."""
    seq = np.random.SeedSequence(entropy=record_seed, spawn_key=(regeneration,))
    return int(seq.generate_state(1)[0] & 0x7FFFFFFF)


class GateConfig(BaseModel):
    """Which checks run and their thresholds; part of the run identity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    checks: tuple[Check, ...] = CHECKS
    ngram: int = Field(default=12, ge=1, description="privacy: shared passage length in tokens")
    near_duplicate: float = Field(default=0.8, gt=0, le=1, description="MinHash Jaccard threshold")
    shingle: int = Field(default=3, ge=1, description="near-duplicate: tokens per shingle")
    num_perm: int = Field(default=128, ge=16, le=1024, description="near-duplicate: MinHash size")
    regenerate: int = Field(default=3, ge=0, description="new answers asked for after a rejection")

    @field_validator("checks")
    @classmethod
    def _ordered(cls, value: tuple[Check, ...]) -> tuple[Check, ...]:
        return tuple(c for c in CHECKS if c in value)


class Gate:
    """The gate's fixed parts: settings, protected n-grams and diagnosis terms.

    ``references``: the user's corpus; ``examples``: ``(id, text)`` example notes (the
    graph's); example notes named by a spec are added when first seen. ``leakage``: disease
    id -> extra terms (synonyms, every code and title) beyond those a spec names itself.
    ``reference_digest`` identifies the corpus in the run identity.
    """

    def __init__(
        self,
        config: GateConfig | None = None,
        *,
        references: Iterable[ReferenceDoc] = (),
        examples: Iterable[tuple[str, str]] = (),
        leakage: Mapping[str, Sequence[str]] | None = None,
        reference_digest: str | None = None,
    ) -> None:
        self.config = config or GateConfig()
        self.hasher = TokenHasher()
        self.privacy: NgramIndex | None = None
        if "privacy" in self.config.checks:
            self.privacy = NgramIndex(self.config.ngram, self.hasher)
            self.privacy.add((f"reference:{d.id}", d.text) for d in references)
            self.privacy.add(examples)
        self._extra_terms = {k: tuple(v) for k, v in (leakage or {}).items()}
        self._terms: dict[tuple[str, str | None, str | None], LeakageTerms] = {}
        self.reference_digest = reference_digest

    @property
    def enabled(self) -> bool:
        return bool(self.config.checks)

    @property
    def ordered(self) -> bool:
        """Whether decisions need the input order (the near-duplicate check does)."""
        return "near-duplicate" in self.config.checks

    def identity(self) -> dict[str, object]:
        """What of the gate decides records (the run identity holds it)."""
        return {**self.config.model_dump(mode="json"), "reference": self.reference_digest}

    def start(self) -> GateRun:
        return GateRun(self)

    def terms(self, spec: GenerationSpec) -> LeakageTerms:
        key = (spec.disease_id, spec.icd_code, spec.icd_title)
        found = self._terms.get(key)
        if found is None:
            extra = self._extra_terms.get(spec.disease_id, ())
            named = (spec.disease, spec.icd_code or "", spec.icd_title or "")
            found = self._terms[key] = LeakageTerms((*named, *extra))
        return found


class GateRun:
    """One run's gate: the accepted notes' sketches and the counts."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        cfg = gate.config
        self.counts = GateCounts()
        self.near: NearDuplicateIndex | None = (
            NearDuplicateIndex(cfg.near_duplicate, shingle=cfg.shingle, num_perm=cfg.num_perm)
            if gate.ordered
            else None
        )
        self._last: tuple[str, list[str], U64] | None = None

    def _prepare(self, text: str) -> tuple[list[str], U64]:
        """Tokens and token hashes of ``text`` (the last text's are kept: ``screen`` and
        ``sketch`` of one answer tokenise it once)."""
        if self._last is None or self._last[0] != text:
            toks = tokens(text)
            self._last = (text, toks, self.gate.hasher.hashes(toks))
        return self._last[1], self._last[2]

    def _reject(self, rejection: Rejection) -> Rejection:
        self.counts.rejected[rejection.check] += 1
        return rejection

    def screen(
        self, text: str, spec: GenerationSpec | None, attempt: int = 0, seed: int | None = None
    ) -> Rejection | None:
        """The order-free checks (privacy, leakage); counts the answer as checked."""
        self.counts.checked += 1
        privacy = self.gate.privacy
        if privacy is not None:
            if spec is not None and spec.examples:
                privacy.add((e.id, e.text) for e in spec.examples if e.id not in privacy)
            shared = privacy.find(*self._prepare(text))
            if shared is not None:
                return self._reject(
                    Rejection(
                        check="privacy",
                        attempt=attempt,
                        seed=seed,
                        detail=(
                            f"shares a {privacy.n}-token passage with {shared.source}: "
                            f'"{shared.ngram}"'
                        ),
                        ngram=shared.ngram,
                        source=shared.source,
                    )
                )
        window = spec.window if spec is not None else None
        if "leakage" in self.gate.config.checks and window is not None and not window.diagnosed:
            assert spec is not None
            leak = self.gate.terms(spec).find(text)
            if leak is not None:
                return self._reject(
                    Rejection(
                        check="leakage",
                        attempt=attempt,
                        seed=seed,
                        detail=(
                            f'names the diagnosis ("{leak.found}" for {leak.term}) in the '
                            f"pre-diagnosis window {window.name}"
                        ),
                        term=leak.term,
                        found=leak.found,
                    )
                )
        return None

    def sketch(self, text: str) -> LeanMinHash | None:
        if self.near is None:
            return None
        return self.near.sketch(self._prepare(text)[1])

    def near_duplicate(
        self, sketch: LeanMinHash | None, attempt: int = 0, seed: int | None = None
    ) -> Rejection | None:
        """The near-duplicate check against every note accepted so far."""
        if self.near is None or sketch is None:
            return None
        similar = self.near.query(sketch)
        if similar is None:
            return None
        return self._reject(
            Rejection(
                check="near-duplicate",
                attempt=attempt,
                seed=seed,
                detail=(
                    f"near-duplicate of {similar.key} (estimated Jaccard {similar.jaccard:.3f} "
                    f">= {self.near.threshold:g})"
                ),
                similar_to=similar.key,
                jaccard=similar.jaccard,
            )
        )

    def accept(self, record_id: str, sketch: LeanMinHash | None, regenerated: bool) -> None:
        self.counts.accepted += 1
        self.counts.accepted_after_regeneration += regenerated
        if self.near is not None and sketch is not None:
            self.near.add(record_id, sketch)

    def load_accepted(self, notes: Iterable[tuple[str, str]]) -> int:
        """Index notes accepted by earlier runs (resume), uncounted; returns how many."""
        if self.near is None:
            return 0
        before = len(self.near)
        for record_id, text in notes:
            sketch = self.sketch(text)
            assert sketch is not None
            self.near.add(record_id, sketch)
        return len(self.near) - before
