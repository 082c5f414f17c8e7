"""MedSyn's filter: BERTScore-style recall of the symptoms a note was asked to mention.

The requested phrases are the spec's keyword texts and symptom names. Each phrase and each
sentence of the note is embedded word piece by word piece (contextual token embeddings of the
evaluation model, special tokens dropped, rows normalised). A phrase's recall is the mean, over
its word pieces, of the largest cosine with any word piece of the note (BERTScore's greedy
matching, no idf weights, no baseline rescaling); the note's recall is the mean over its
phrases. Formula in docs/evaluation.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from engine.evaluate.fidelity import F
from engine.evaluate.inputs import EvalNote
from engine.spec import GenerationSpec

#: where a note is cut into sentences for the token embeddings (each stays under the
#: model's length limit): after . ! ? followed by white space, and at every line break
SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")
#: width of the histogram bins of per-note recall
BIN = 0.05


class TokenEmbedder(Protocol):
    def token_vectors(self, texts: Sequence[str]) -> list[F]: ...


def requested(spec: GenerationSpec | None) -> list[str]:
    """The spec's keyword texts and symptom names, in order, without case-insensitive repeats."""
    if spec is None:
        return []
    seen: set[str] = set()
    out = []
    for phrase in [k.text for k in spec.keywords] + [s.name for s in spec.symptoms]:
        key = phrase.strip().lower()
        if key and key not in seen:
            seen.add(key)
            out.append(phrase.strip())
    return out


def sentences(text: str) -> list[str]:
    """The pieces of ``text`` embedded one at a time (``SENTENCE_BREAK``), blanks dropped."""
    return [s.strip() for s in SENTENCE_BREAK.split(text) if s.strip()]


def greedy_recall(phrases: Sequence[F], note: F) -> float:
    """Mean over ``phrases`` of the mean over a phrase's rows of the largest dot product with a
    row of ``note`` (rows normalised: cosines); 0 for a note without rows."""
    if not len(note):
        return 0.0
    return float(np.mean([(p @ note.T).max(axis=1).mean() for p in phrases]))


def symptom_recall(
    embedder: TokenEmbedder, notes: Sequence[EvalNote], threshold: float | None = None
) -> dict[str, Any]:
    """Per-note recall of the requested symptoms, its summary, and with ``threshold`` the notes
    at or above it (notes that requested nothing are not judged)."""
    asked = {n.record_id: requested(n.spec) for n in notes}
    judged = [n for n in notes if asked[n.record_id]]
    phrases = sorted({p for n in judged for p in asked[n.record_id]})
    vectors = dict(zip(phrases, embedder.token_vectors(phrases), strict=True))
    pieces = [sentences(n.text) for n in judged]
    flat = embedder.token_vectors([s for p in pieces for s in p])
    per_note: dict[str, float] = {}
    at = 0
    for note, parts in zip(judged, pieces, strict=True):
        rows = flat[at : at + len(parts)]
        at += len(parts)
        matrix = np.vstack(rows) if rows else np.zeros((0, 1), dtype=np.float32)
        per_note[note.record_id] = round(
            greedy_recall([vectors[p] for p in asked[note.record_id]], matrix), 4
        )
    values = np.array(list(per_note.values()), dtype=np.float64)
    out: dict[str, Any] = {
        "judged": len(judged),
        "unjudged": len(notes) - len(judged),
        "mean": round(float(values.mean()), 4) if len(values) else None,
        "median": round(float(np.median(values)), 4) if len(values) else None,
        "min": round(float(values.min()), 4) if len(values) else None,
        "threshold": threshold,
        "passed": None,
        "histogram": _histogram(values),
        "per_note": per_note,
    }
    if threshold is not None and len(values):
        out["passed"] = int(np.count_nonzero(values >= threshold))
    return out


def passing(figures: dict[str, Any]) -> set[str]:
    """Record ids at or above the threshold of ``symptom_recall``'s figures."""
    cut = figures["threshold"]
    return {rid for rid, v in figures["per_note"].items() if cut is not None and v >= cut}


def _histogram(values: F) -> dict[str, int]:
    """Notes per bin of width ``BIN`` (key: the bin's lower edge), empty bins left out."""
    out: dict[str, int] = {}
    for v in values:
        edge = min(int(v / BIN + 1e-9), int(1 / BIN) - 1) * BIN if v > 0 else 0.0
        key = f"{edge:.2f}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))
