"""Sentence rows: one per annotated sentence of an ``ok`` note, with its note's context.

The label scheme is read from the data: label 0 is ``no symptom``, then every category the
annotations use or the notes' specs request (in the same scheme), ordered by category id,
so the same inputs give the same class ids whatever their order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.annotate.model import NO_SYMPTOM, AnnotatedNote
from engine.dataset.inputs import Annotations, Notes
from engine.errors import EngineError
from engine.provenance import sha256_hex
from engine.runner.records import NoteRecord

#: names of the binary label's two classes
BINARY_NAMES = (NO_SYMPTOM, "symptom")


@dataclass(frozen=True, slots=True)
class LabelScheme:
    """The multi-class label's names (index = class id) and the category id of each."""

    name: str | None
    category_ids: tuple[str | None, ...]
    names: tuple[str, ...]

    def index(self, category_id: str | None) -> int:
        return self.category_ids.index(category_id)


def label_scheme(notes: Iterable[NoteRecord], annotated: Iterable[AnnotatedNote]) -> LabelScheme:
    """The scheme shared by all ``annotated`` notes; more than one scheme is an error."""
    annotated = list(annotated)
    schemes = sorted({a.scheme for a in annotated if a.scheme is not None})
    if len(schemes) > 1:
        raise EngineError(
            f"the annotations use {len(schemes)} label schemes ({', '.join(schemes)}); "
            "build one dataset per scheme"
        )
    scheme = schemes[0] if schemes else None
    found: dict[str, str] = {}
    for a in annotated:
        for s in a.sentences:
            if s.label.category_id is not None:
                found.setdefault(s.label.category_id, s.label.category)
    for note in notes:
        if note.spec is not None and note.spec.scheme == scheme:
            for k in note.spec.keywords:
                found.setdefault(k.category_id, k.category)
    ids = sorted(found)
    names = [found[i] for i in ids]
    clashes = {n for n, c in Counter([NO_SYMPTOM, *names]).items() if c > 1}
    names = [f"{n} ({i})" if n in clashes else n for n, i in zip(names, ids, strict=True)]
    return LabelScheme(scheme, (None, *ids), (NO_SYMPTOM, *names))


def _persona(note: NoteRecord, keys: tuple[str, ...]) -> dict[str, Any]:
    persona = note.spec.persona if note.spec else None
    attributes = persona.attributes if persona else {}
    return {
        "age": persona.age if persona else None,
        "age_at_diagnosis": persona.age_at_diagnosis if persona else None,
        "sex": attributes.get("sex"),
        **{f"persona_{key}": attributes.get(key) for key in keys},
        "risk_factors": [r.name for r in persona.risk_factors] if persona else [],
    }


def persona_keys(notes: Iterable[NoteRecord]) -> tuple[str, ...]:
    """Persona attributes other than sex found in any note (each becomes a column)."""
    keys = {
        key
        for note in notes
        if note.spec is not None and note.spec.persona is not None
        for key in note.spec.persona.attributes
    }
    return tuple(sorted(keys - {"sex"}))


def _note_fields(note: NoteRecord, annotation: AnnotatedNote) -> dict[str, Any]:
    spec = note.spec
    window = spec.window if spec else None
    visit = spec.patient if spec else None
    return {
        "record_id": note.record_id,
        "recipe": spec.recipe if spec else None,
        "icd_code": spec.icd_code if spec else None,
        "icd_title": spec.icd_title if spec else None,
        "disease_id": spec.disease_id if spec else None,
        "window_name": window.name if window else None,
        "window_order": window.order if window else None,
        "window_diagnosed": window.diagnosed if window else None,
        "visit_months": spec.visit_months if spec else None,
        "patient_id": visit.patient_id if visit else None,
        "visit_index": visit.visit_index if visit else None,
        "visit_day": visit.day if visit else None,
        "backend": note.backend,
        "model": note.model,
        "kg_hash": spec.kg_hash if spec else None,
        "generation_fingerprint": note.fingerprint,
        "note_fingerprint": annotation.note_fingerprint,
        "annotation_fingerprint": annotation.fingerprint,
        "annotator": annotation.annotator,
        "annotation_backend": annotation.backend,
        "annotation_model": annotation.model,
        "review": annotation.review,
    }


@dataclass(frozen=True, slots=True)
class Rows:
    """Sentence rows, the notes they come from, the notes left out (by reason), columns."""

    rows: list[dict[str, Any]]
    used: dict[str, tuple[NoteRecord, AnnotatedNote]]
    excluded: Counter[str]
    scheme: LabelScheme
    persona_keys: tuple[str, ...]


def sentence_rows(notes: Notes, annotations: Annotations) -> Rows:
    """Rows of every ok note with an ok annotation, and the notes left out, by reason."""
    excluded: Counter[str] = Counter()
    for status, count in notes.statuses.items():
        if status != "ok":
            excluded[f"note {status}"] += count
    used: list[tuple[NoteRecord, AnnotatedNote]] = []
    for record_id in sorted(notes.ok):
        annotation = annotations.notes.get(record_id)
        if annotation is None:
            excluded["not annotated"] += 1
        elif annotation.status != "ok":
            excluded["annotation failed"] += 1
        else:
            used.append((notes.ok[record_id], annotation))
    scheme = label_scheme((n for n, _ in used), (a for _, a in used))
    keys = persona_keys(n for n, _ in used)
    rows: list[dict[str, Any]] = []
    for note, annotation in used:
        text = notes.texts[note.record_id]
        line = annotations.lines[note.record_id]
        if annotation.note_fingerprint != sha256_hex(text):
            raise EngineError(
                f"{annotations.path}, line {line}: record {note.record_id} was annotated from "
                f"another text than {notes.path} holds (note_fingerprint differs); annotate "
                "the notes again"
            )
        shared = _note_fields(note, annotation) | _persona(note, keys)
        realised: dict[int, list[str]] = {}
        for r in annotation.realisations:
            if r.sentence is not None:
                realised.setdefault(r.sentence, []).append(r.keyword)
        for item in annotation.sentences:
            s = item.sentence
            if text[s.start : s.end] != s.text:
                raise EngineError(
                    f"{annotations.path}, line {line}: record {note.record_id}, sentence "
                    f"{s.index}: offsets {s.start}-{s.end} do not match the note's text in "
                    f"{notes.path}; the notes changed since they were annotated: annotate "
                    "them again"
                )
            label = scheme.index(item.label.category_id)
            rows.append(
                {
                    "sentence_index": s.index,
                    "text": s.text,
                    "start": s.start,
                    "end": s.end,
                    "section": s.section,
                    "label": label,
                    "label_name": scheme.names[label],
                    "category_id": item.label.category_id,
                    "binary_label": int(item.label.symptomatic),
                    "keywords": realised.get(s.index, []),
                    "mentions": [m.model_dump() for m in item.mentions],
                    **shared,
                }
            )
    return Rows(rows, {n.record_id: (n, a) for n, a in used}, excluded, scheme, keys)
