"""Labelled texts for training and evaluation: JSONL, CSV or a kgsynth dataset directory.

- JSONL: one JSON object per line with a text field and a label field (names configurable);
  optional ``split`` (train / validation / test), ``record_id`` (rows of one record stay
  in one split) and ``patient_id`` (rows of one longitudinal patient stay in one split)
  fields.
- CSV: a header row naming the same columns.
- a directory built by ``kgsynth dataset build``: its ``jsonl/SPLIT.jsonl`` rows; the label
  is ``label_name`` (multi-class) and every split and record id is kept.
- a notes JSONL written by ``kgsynth generate`` (for ICD prediction): ok notes, label the
  spec's ICD code; a longitudinal patient's visits stay in one split.

Labels are strings. The binary task maps every label other than the negative one (default
``no symptom``) to ``symptom``. Every set carries a fingerprint: the sha256 of its rows
(text, label, split, group) in file order, and the sha256 of the file(s) read.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from engine.dataset.splits import SPLITS, SplitConfig, SplitMethod, assign
from engine.errors import EngineError
from engine.jsonl import json_objects
from engine.provenance import sha256_hex

#: names of the binary task's classes (as in ``kgsynth dataset build``)
NEGATIVE = "no symptom"
POSITIVE = "symptom"


class Task(StrEnum):
    multiclass = "multiclass"
    binary = "binary"


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled text; ``group`` keeps related rows in one split (record or patient id)."""

    text: str
    label: str
    split: str | None = None
    group: str | None = None


@dataclass(frozen=True, slots=True)
class LabelledSet:
    """The examples read from ``path`` and how to recognise them again."""

    path: str
    examples: tuple[Example, ...]
    file_sha256: str

    @property
    def fingerprint(self) -> str:
        return sha256_hex([[e.text, e.label, e.split, e.group] for e in self.examples])

    def provenance(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rows": len(self.examples),
            "fingerprint": self.fingerprint,
            "file_sha256": self.file_sha256,
        }


@dataclass(frozen=True, slots=True)
class Fields:
    """Which fields hold the text and the label, and how labels map to the task."""

    text: str = "text"
    label: str = "label"
    task: Task = Task.multiclass
    negative: str = NEGATIVE

    def map(self, label: str) -> str:
        if self.task is Task.binary:
            return NEGATIVE if label == self.negative else POSITIVE
        return label


def _file_sha(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _label(value: Any) -> str | None:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | str) and str(value).strip():
        return str(value).strip()
    return None


def _example(item: dict[str, Any], fields: Fields, where: str, flags: str) -> Example:
    text = item.get(fields.text)
    if not isinstance(text, str) or not text.strip():
        found = "missing" if text is None else "empty" if isinstance(text, str) else "not text"
        raise EngineError(
            f"{where}: field {fields.text!r} is {found}; expected the text as a string "
            f"(choose the field with {flags}text-field)"
        )
    label = _label(item.get(fields.label))
    if label is None:
        raise EngineError(
            f"{where}: field {fields.label!r} is missing or empty; expected a string or "
            f"integer label (choose the field with {flags}label-field)"
        )
    split = item.get("split")
    if split is not None and split not in SPLITS:
        raise EngineError(f"{where}: field 'split' is {split!r}; expected one of {SPLITS}")
    group = item.get("patient_id") or item.get("record_id")
    return Example(text, fields.map(label), split, None if group is None else str(group))


def _jsonl(path: Path, fields: Fields, flags: str) -> Iterator[Example]:
    expected = f"a JSON object with {fields.text!r} and {fields.label!r} fields"
    for _, where, item in json_objects(
        path.read_bytes().splitlines(), lambda n: f"{path}:{n}", expected
    ):
        yield _example(item, fields, where, flags)


def _csv(path: Path, fields: Fields, flags: str) -> Iterator[Example]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise EngineError(f"{path}: not UTF-8 text ({err.reason})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    for name in (fields.text, fields.label):
        if name not in columns:
            raise EngineError(
                f"{path}:1: no column {name!r} in the header (columns: {', '.join(columns)}); "
                f"choose the columns with {flags}text-field / {flags}label-field"
            )
    for row in reader:
        yield _example(dict(row), fields, f"{path}:{reader.line_num}", flags)


def _dataset_dir(path: Path, fields: Fields) -> tuple[list[Example], list[Path]]:
    files = [path / "jsonl" / f"{name}.jsonl" for name in SPLITS]
    files = [f for f in files if f.is_file()]
    if not files:
        raise EngineError(f"{path}: a kgsynth dataset without jsonl/SPLIT.jsonl files")
    out: list[Example] = []
    for file in files:
        for number, raw in enumerate(file.read_bytes().splitlines(), 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
                text, label, rid = str(row["text"]), str(row["label_name"]), row["record_id"]
            except (ValueError, KeyError, TypeError) as err:
                raise EngineError(f"{file}:{number}: not a kgsynth dataset row ({err})") from None
            out.append(Example(text, fields.map(label), file.stem, str(rid)))
    return out, files


def _is_notes(path: Path) -> bool:
    """A ``kgsynth generate`` notes file: its first line is a record with a spec."""
    with path.open("rb") as fh:
        first = next((line for line in fh if line.strip()), b"")
    try:
        item = json.loads(first)
    except ValueError:
        return False
    return isinstance(item, dict) and {"record_id", "status", "spec"} <= item.keys()


def _notes(path: Path, fields: Fields) -> list[Example]:
    from engine.evaluate.inputs import read_notes

    notes, _ = read_notes(path)
    out = []
    for note in notes:
        if note.code is None:
            raise EngineError(f"{path}: note {note.record_id} has no ICD code in its spec")
        patient = note.spec.patient if note.spec else None
        group = patient.patient_id if patient else note.record_id
        out.append(Example(note.text, fields.map(note.code), None, group))
    return out


def read_labelled(path: Path, fields: Fields = Fields(), flag: str = "") -> LabelledSet:
    """Every labelled example at ``path``; one ``EngineError`` naming file, line and field.

    ``flag`` prefixes the option names in messages (``--gold-`` -> ``--gold-text-field``).
    """
    flags = f"--{flag}" if flag else "--"
    if path.is_dir():
        if not (path / "dataset.json").is_file():
            raise EngineError(f"{path}: a directory but not a kgsynth dataset (no dataset.json)")
        examples, files = _dataset_dir(path, fields)
    elif not path.exists():
        raise EngineError(f"{path}: no such file")
    elif path.suffix.lower() == ".csv":
        examples, files = list(_csv(path, fields, flags)), [path]
    elif _is_notes(path):
        examples, files = _notes(path, fields), [path]
    else:
        examples, files = list(_jsonl(path, fields, flags)), [path]
    if not examples:
        raise EngineError(f"{path}: no labelled rows")
    return LabelledSet(str(path), tuple(examples), _file_sha(files))


def split(
    data: LabelledSet, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, list[Example]]:
    """Examples per split: the rows' own ``split`` when every row has one, else by a hash of
    the row's group (patient id, else record id, else its text), stratified by label
    (``kgsynth dataset``'s stratified method: exact quotas per label)."""
    given = [e.split for e in data.examples]
    if all(given):
        out: dict[str, list[Example]] = {name: [] for name in SPLITS}
        for e in data.examples:
            out[str(e.split)].append(e)
        return out
    if any(given):
        raise EngineError(
            f"{data.path}: some rows have a 'split' field and some do not; give every row "
            "one, or none (then splits are drawn by hash)"
        )
    groups: dict[str, str] = {}
    for e in data.examples:
        groups.setdefault(e.group or e.text, e.label)
    where = assign(groups, SplitConfig(ratios=ratios, seed=seed, method=SplitMethod.stratified))
    out = {name: [] for name in SPLITS}
    for e in data.examples:
        out[where[e.group or e.text]].append(e)
    return out


def label_names(*sets: Sequence[Example]) -> list[str]:
    """Class names: ``no symptom`` first when present, then the rest sorted."""
    names = sorted({e.label for s in sets for e in s})
    if NEGATIVE in names:
        names.remove(NEGATIVE)
        names.insert(0, NEGATIVE)
    return names


@dataclass(frozen=True, slots=True)
class Splits:
    """Train / validation / test examples and the sets they came from."""

    train: list[Example]
    validation: list[Example]
    test: list[Example]
    sources: dict[str, dict[str, Any]]


def read_splits(
    train: Path,
    validation: Path | None,
    test: Path | None,
    fields: Fields,
    ratios: tuple[float, float, float],
    seed: int,
) -> Splits:
    """``train``'s own splits (a dataset directory, rows with ``split``), else drawn by
    ``ratios`` unless ``validation`` / ``test`` files are given; given files win."""
    data = read_labelled(train, fields)
    own = all(e.split for e in data.examples)
    parts = (
        split(data, ratios, seed)
        if own or (validation is None and test is None)
        else {"train": list(data.examples), "validation": [], "test": []}
    )
    sources = {"train": data.provenance()}
    for name, path in (("validation", validation), ("test", test)):
        if path is not None:
            other = read_labelled(path, fields)
            parts[name] = list(other.examples)
            sources[name] = other.provenance()
    if not parts["train"]:
        raise EngineError(f"{train}: no training rows after splitting (ratios {ratios})")
    return Splits(parts["train"], parts["validation"], parts["test"], sources)
