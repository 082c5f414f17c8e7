"""What ``kgsynth evaluate`` reads: notes (``kgsynth generate``), a reference corpus, annotations.

Every reader takes the last line per id (files are append-only) and turns bad input into one
``EngineError`` naming the file and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.annotate.model import AnnotatedNote
from engine.annotate.notes import note_text
from engine.errors import EngineError, validation_detail
from engine.runner.records import NoteRecord
from engine.spec import GenerationSpec
from kg.outfile import atomic_file


@dataclass(frozen=True, slots=True)
class EvalNote:
    """One ok note: its text, recipe and ICD code (``None`` when unknown) and its spec."""

    record_id: str
    text: str
    recipe: str | None
    code: str | None
    spec: GenerationSpec | None


def _lines(path: Path, what: str) -> Iterator[tuple[int, bytes]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise EngineError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise EngineError(f"{path} is a directory; name a {what} .jsonl file") from None
    except OSError as err:
        raise EngineError(f"{path}: {err.strerror or err}") from None
    for number, line in enumerate(raw.splitlines(), 1):
        if line.strip():
            yield number, line


def read_notes(path: Path) -> tuple[list[EvalNote], int]:
    """The ok notes of a ``kgsynth generate`` file (last line per record), and the count of
    records not ok."""
    latest: dict[str, NoteRecord] = {}
    for number, line in _lines(path, "notes"):
        try:
            record = NoteRecord.model_validate_json(line)
        except ValueError as err:
            raise EngineError(
                f"{path}:{number}: not a kgsynth note record ({validation_detail(err)}); "
                "evaluate reads the JSONL that `kgsynth generate` writes"
            ) from None
        latest[record.record_id] = record
    notes = [
        EvalNote(
            r.record_id,
            note_text(r.text, r.parsed),
            r.spec.recipe if r.spec else None,
            r.spec.icd_code if r.spec else None,
            r.spec,
        )
        for r in latest.values()
        if r.status == "ok"
    ]
    if not notes:
        raise EngineError(f"{path} holds no ok notes ({len(latest)} records, none ok)")
    return notes, len(latest) - len(notes)


def read_annotations(path: Path) -> list[AnnotatedNote]:
    """The ok annotated notes of a ``kgsynth annotate`` file (last line per record)."""
    latest: dict[str, AnnotatedNote] = {}
    for number, line in _lines(path, "annotations"):
        try:
            note = AnnotatedNote.model_validate_json(line)
        except ValueError as err:
            raise EngineError(
                f"{path}:{number}: not a kgsynth annotation ({validation_detail(err)}); "
                "--annotations reads the JSONL that `kgsynth annotate` writes"
            ) from None
        latest[note.record_id] = note
    ok = [n for n in latest.values() if n.status == "ok"]
    if not ok:
        raise EngineError(f"{path} holds no ok annotations")
    return ok


def write_filtered(path: Path, keep: set[str], target: Path) -> int:
    """Copy the last line of each kept record of the notes file ``path`` to ``target`` (in
    file order, replaced atomically); the number of lines written."""
    latest: dict[str, tuple[int, bytes]] = {}
    for number, line in _lines(path, "notes"):
        rid = NoteRecord.model_validate_json(line).record_id
        if rid in keep:
            latest[rid] = (number, line.rstrip(b"\r\n"))
    with atomic_file(target) as fh:
        fh.writelines(line.decode("utf-8") + "\n" for _, line in sorted(latest.values()))
    return len(latest)
