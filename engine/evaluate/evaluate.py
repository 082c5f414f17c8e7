"""One evaluation: every axis of a note set, as the versioned ``metrics.json`` document."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.annotate.model import AnnotatedNote
from engine.evaluate.diversity import SELF_BLEU_SAMPLE, diversity
from engine.evaluate.fidelity import F
from engine.evaluate.inputs import EvalNote
from engine.evaluate.privacy import dcr, near_duplicates, passages
from engine.gate.reference import ReferenceDoc
from kg.store import GraphStore

#: the version of the metrics.json layout (bump on a change of keys or meaning)
SCHEMA = "kgsynth.evaluate/2"


@dataclass(frozen=True)
class Settings:
    """Everything that changes a figure; written into metrics.json."""

    seed: int = 0
    self_bleu_sample: int = SELF_BLEU_SAMPLE
    ngram: int = 12
    near_duplicate: float = 0.8
    permutations: int = 200
    max_embed: int = 2000
    dcr_quantile: float = 0.05
    min_symptom_recall: float | None = None
    embeddings: bool = True
    model: Path | None = None

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "model"}
        out["model"] = str(self.model) if self.model else None
        return out


@dataclass
class Inputs:
    """A run to evaluate and what it is compared with."""

    path: Path
    notes: list[EvalNote]
    not_ok: int
    reference: list[ReferenceDoc] | None = None
    reference_path: Path | None = None
    annotations: list[AnnotatedNote] | None = None
    store: Callable[[], GraphStore] | None = None


@dataclass
class Shared:
    """What runs evaluated together share: the loaded model and the reference embeddings;
    ``synthetic`` gathers each run's note embeddings in turn (for the report's projection)."""

    embedder: Any = None
    reference: F | None = None
    synthetic: list[F] = field(default_factory=list)


def _recipe(n: EvalNote) -> str | None:
    return n.recipe


def _code(n: EvalNote) -> str | None:
    return n.code


def _groups(
    notes: Sequence[EvalNote], key: Callable[[EvalNote], str | None]
) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for n in notes:
        k = key(n)
        if k is not None:
            out[k].append(n.text)
    return dict(sorted(out.items()))


def _diversity(notes: Sequence[EvalNote], s: Settings) -> dict[str, Any]:
    texts = [n.text for n in notes]
    return {
        "overall": diversity(texts, sample=s.self_bleu_sample, seed=s.seed),
        "per_recipe": {
            k: diversity(v, sample=s.self_bleu_sample, seed=s.seed)
            for k, v in _groups(notes, _recipe).items()
        },
        "per_code": {
            k: diversity(v, sample=s.self_bleu_sample, seed=s.seed)
            for k, v in _groups(notes, _code).items()
        },
    }


def _examples(notes: Sequence[EvalNote]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for n in notes:
        for ex in n.spec.examples if n.spec else ():
            seen.setdefault(ex.id, ex.text)
    return sorted(seen.items())


def _embedded(inp: Inputs, s: Settings, shared: Shared, out: dict[str, Any]) -> None:
    """Dispersion, symptom recall and, with a reference, fidelity and DCR: the figures that
    need the embedding model."""
    from engine.evaluate.embed import Embedder
    from engine.evaluate.fidelity import dispersion
    from engine.evaluate.recall import symptom_recall

    if shared.embedder is None:
        shared.embedder = Embedder(s.model)
    embedder = shared.embedder
    syn = embedder.encode([n.text for n in inp.notes])
    shared.synthetic.append(syn)
    div = out["diversity"]
    div["overall"]["embedding_dispersion"] = round(dispersion(syn), 6)
    for group, key in (("per_recipe", _recipe), ("per_code", _code)):
        labels = np.array([key(n) or "" for n in inp.notes])
        for name, figures in div[group].items():
            figures["embedding_dispersion"] = round(dispersion(syn[labels == name]), 6)
    out["symptom_recall"] = {
        "model": str(embedder.path),
        **symptom_recall(embedder, inp.notes, s.min_symptom_recall),
    }
    if inp.reference is None:
        return
    if shared.reference is None:
        shared.reference = embedder.encode([d.text for d in inp.reference])
    out["fidelity"] = _fidelity(inp, s, syn, shared.reference, str(embedder.path))
    out["privacy"]["dcr"] = dcr(syn, shared.reference, seed=s.seed, quantile=s.dcr_quantile)
    out["privacy"]["dcr_per_code"] = {
        code: figures
        for code, x, y in _by_code(inp, syn, shared.reference)
        if (figures := dcr(x, y, seed=s.seed, quantile=s.dcr_quantile)) is not None
    }


def _by_code(inp: Inputs, syn: F, ref: F) -> list[tuple[str, F, F]]:
    """(code, its synthetic rows, its reference rows) for codes on both sides."""
    assert inp.reference is not None
    ref_codes = np.array([d.code or "" for d in inp.reference])
    syn_codes = np.array([n.code or "" for n in inp.notes])
    return [
        (code, syn[syn_codes == code], ref[ref_codes == code])
        for code in sorted(set(syn_codes) & set(ref_codes) - {""})
    ]


def _fidelity(inp: Inputs, s: Settings, syn: F, ref: F, model: str) -> dict[str, Any]:
    from engine.evaluate.fidelity import centroid_cosine, mmd, sample_rows

    def figures(x: F, y: F) -> dict[str, Any]:
        return {
            **mmd(
                sample_rows(x, s.max_embed, s.seed),
                sample_rows(y, s.max_embed, s.seed),
                permutations=s.permutations,
                seed=s.seed,
            ),
            "centroid_cosine": round(centroid_cosine(x, y), 6),
        }

    return {
        "model": model,
        "overall": figures(syn, ref),
        "per_code": {
            code: figures(x, y)
            for code, x, y in _by_code(inp, syn, ref)
            if len(x) >= 2 and len(y) >= 2
        },
    }


def evaluate(inp: Inputs, s: Settings, shared: Shared | None = None) -> dict[str, Any]:
    """The metrics document of one run (``shared``: the model and reference embeddings of an
    earlier run with the same reference and settings)."""
    shared = shared or Shared()
    from engine.evaluate.alignment import alignment, annotation_agreement

    texts = [n.text for n in inp.notes]
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "notes": {"path": str(inp.path), "ok": len(inp.notes), "not_ok": inp.not_ok},
        "reference": None,
        "settings": s.as_json(),
        "diversity": _diversity(inp.notes, s),
        "fidelity": None,
        "privacy": {},
        "alignment": None,
        "annotations": None,
        "symptom_recall": None,
    }
    ref_texts = [d.text for d in inp.reference] if inp.reference is not None else None
    if inp.reference is not None:
        out["reference"] = {"path": str(inp.reference_path), "documents": len(inp.reference)}
        out["privacy"]["reference_ngrams"] = passages(
            texts, [(d.id, d.text) for d in inp.reference], s.ngram
        )
    examples = _examples(inp.notes)
    if examples:
        out["privacy"]["example_ngrams"] = passages(texts, examples, s.ngram)
    out["privacy"]["near_duplicates"] = near_duplicates(
        texts, ref_texts, threshold=s.near_duplicate
    )
    if s.embeddings:
        _embedded(inp, s, shared, out)
    specs = [n.spec for n in inp.notes if n.spec is not None]
    if inp.store is not None and specs:
        with inp.store() as store:
            out["alignment"] = alignment(store, specs)
    if inp.annotations is not None:
        ids = {n.record_id for n in inp.notes}
        out["annotations"] = annotation_agreement(
            [a for a in inp.annotations if a.record_id in ids]
        )
    return out
