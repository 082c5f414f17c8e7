"""The notes ``kgsynth annotate`` reads: ``kgsynth generate`` output, latest line per record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import EngineError, validation_detail
from engine.provenance import sha256_hex
from engine.runner.records import NoteRecord
from engine.spec import GenerationSpec


@dataclass(frozen=True, slots=True)
class Note:
    """One generated note to annotate; ``digest`` is the sha256 of its text."""

    record_id: str
    record_index: int
    text: str
    spec: GenerationSpec | None
    digest: str


@dataclass(slots=True)
class NotesFile:
    """The notes of a file (ok records, in file order) and how many were not ok."""

    path: Path
    notes: list[Note]
    not_ok: int
    sha256: str


def note_text(text: str | None, parsed: Any) -> str:
    """The note as text: a structured report's sections as ``Title:`` blocks, else the text."""
    if isinstance(parsed, dict) and isinstance(parsed.get("sections"), list):
        return "\n\n".join(
            f"{s.get('title', '')}:\n{s.get('text', '')}"
            for s in parsed["sections"]
            if isinstance(s, dict)
        )
    return text or ""


def read_notes(path: Path) -> NotesFile:
    """Every note of ``path`` (latest line per ``record_id``); one clear error for bad input."""
    latest: dict[str, NoteRecord] = {}
    try:
        with path.open("rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise EngineError(
            f"{path}: no such notes file (write one with `kgsynth generate`)"
        ) from None
    except IsADirectoryError:
        raise EngineError(f"{path} is a directory; name a notes .jsonl file") from None
    except OSError as err:
        raise EngineError(f"{path}: {err.strerror or err}") from None
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = NoteRecord.model_validate_json(line)
        except ValueError as err:
            raise EngineError(
                f"{path}, line {number}: not a kgsynth note record ({validation_detail(err)}); "
                "annotate reads the JSONL that `kgsynth generate` writes"
            ) from None
        latest[record.record_id] = record
    if not latest:
        raise EngineError(f"{path} holds no notes")
    notes = []
    for record in latest.values():
        if record.status != "ok":
            continue
        text = note_text(record.text, record.parsed)
        notes.append(
            Note(
                record_id=record.record_id,
                record_index=record.record_index,
                text=text,
                spec=record.spec,
                digest=sha256_hex(text),
            )
        )
    return NotesFile(
        path, notes, len(latest) - len(notes), sha256_hex(raw.decode("utf-8", "replace"))
    )
