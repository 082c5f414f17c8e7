"""Reading generated notes and their annotations: the last line per record, clear errors.

Both files are JSONL written append-only (resume appends, readers take the last line per
``record_id``). A last line without its newline is a write cut short by a kill: it is used
when it parses and dropped when it does not, as the runner does. Any other line that is not
JSON, or not a record, stops the build with the file and line named.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from engine.annotate.model import AnnotatedNote
from engine.annotate.notes import note_text
from engine.errors import EngineError
from engine.runner.records import NoteRecord

OK = "ok"


@dataclass(frozen=True, slots=True)
class Line:
    """One parsed JSON line, its bytes and where it came from."""

    number: int
    data: dict[str, Any]
    raw: bytes


def _lines(path: Path, what: str) -> Iterator[Line]:
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise EngineError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise EngineError(f"{path} is a directory; name a {what} JSONL file") from None
    with fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as err:
                if not raw.endswith(b"\n"):
                    return  # a partial last line left by an interrupted writer
                raise EngineError(f"{path}, line {number}: not valid JSON ({err})") from None
            if not isinstance(data, dict) or not isinstance(data.get("record_id"), str):
                raise EngineError(
                    f"{path}, line {number}: no record_id, so not a kgsynth {what} line; "
                    f"is this a {what} file?"
                )
            yield Line(number, data, raw)


def _validate[M: BaseModel](model: type[M], line: Line, path: Path, what: str) -> M:
    try:
        return model.model_validate_json(line.raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(line)"
        raise EngineError(
            f"{path}, line {line.number}: not {what} record: field {where}: {first['msg']}"
        ) from None


@dataclass(slots=True)
class Notes:
    """The latest state of every note in a notes file; only ``ok`` notes are kept whole.

    ``texts`` holds each ok note as text, as ``kgsynth annotate`` reads it (a structured
    report's sections rendered as ``Title:`` blocks): annotation offsets point into it.
    """

    path: Path
    ok: dict[str, NoteRecord] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    ids: set[str] = field(default_factory=set)


def read_notes(path: Path) -> Notes:
    """The last line per record of a ``kgsynth generate`` output, counted by status.

    Notes that are not ``ok`` (failed, rejected by the gate, ...) are counted and dropped
    here: their text never reaches a dataset or an export.
    """
    latest: dict[str, Line] = {}
    for line in _lines(path, "notes"):
        latest[line.data["record_id"]] = line
    notes = Notes(path, ids=set(latest))
    for record_id, line in latest.items():
        status = str(line.data.get("status"))
        notes.statuses[status] += 1
        if status == OK:
            note = _validate(NoteRecord, line, path, "a note")
            if note.text is None:
                raise EngineError(f"{path}, line {line.number}: ok note {record_id} has no text")
            notes.ok[record_id] = note
            notes.texts[record_id] = note_text(note.text, note.parsed)
    return notes


@dataclass(frozen=True, slots=True)
class Annotations:
    """The latest annotation per record, with the line it came from (for messages)."""

    path: Path
    notes: dict[str, AnnotatedNote]
    lines: dict[str, int]


def read_annotations(path: Path, notes: Notes) -> Annotations:
    """The last line per record of a ``kgsynth annotate`` output.

    Every annotated record must be in ``notes`` (in any status): annotations of notes the
    file does not hold were made from another notes file.
    """
    latest: dict[str, Line] = {}
    for line in _lines(path, "annotations"):
        latest[line.data["record_id"]] = line
    strangers = sorted(set(latest) - notes.ids)
    if strangers:
        first = latest[strangers[0]]
        raise EngineError(
            f"{path}: {len(strangers)} annotated note(s) are not in {notes.path} (first: "
            f"{strangers[0]}, line {first.number}); annotate this notes file, or pass the "
            "notes file these annotations were made from"
        )
    parsed = {
        record_id: _validate(AnnotatedNote, line, path, "an annotation")
        for record_id, line in latest.items()
    }
    return Annotations(path, parsed, {rid: line.number for rid, line in latest.items()})
