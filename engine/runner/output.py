"""Append-only JSONL output, its run manifest, and reading both back.

Records are appended whole lines at a time (a batch of lines per ``write``), so a kill
leaves at most one partial last line; the file is fsync'd at intervals and on close. On
resume the partial line is cut off and reported. Readers take the last line per
``record_id``. The output is always a regular file written in place (a symlink is followed):
nothing is ever renamed over it.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.runner.records import NoteRecord, Status
from kg.outfile import atomic_file

log = logging.getLogger("kgsynth.runner")


def manifest_path(output: Path) -> Path:
    """``notes.jsonl`` -> ``notes.manifest.json``, beside it."""
    return output.with_name(f"{output.stem}.manifest.json")


def default_cache_path(output: Path) -> Path:
    """``notes.jsonl`` -> ``notes.cache.sqlite``, beside it."""
    return output.with_name(f"{output.stem}.cache.sqlite")


def check_output(path: Path) -> Path:
    """The regular file ``path`` names (a symlink followed), or one clear error.

    A FIFO, device, socket or directory is refused (records are appended to a regular
    file); so is a missing directory.
    """
    target = path.resolve() if path.is_symlink() else path
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        parent = target.parent
        if not parent.is_dir():
            raise EngineError(
                f"-o {path}: the directory {parent} does not exist; create it first"
            ) from None
        if not os.access(parent, os.W_OK | os.X_OK):
            raise EngineError(f"-o {path}: the directory {parent} is not writable") from None
        return target
    except OSError as err:
        raise EngineError(f"-o {path}: {err.strerror or err}") from None
    if stat.S_ISDIR(mode):
        raise EngineError(f"-o {path} is a directory; name a .jsonl file in it")
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise EngineError(
            f"-o {path} is {kind}, not a regular file: generate appends records to a "
            "regular file it can resume; name one"
        )
    return target


def set_aside(output: Path) -> Path | None:
    """Move ``output`` and its manifest to the first free ``STEM.old-N`` name (``--force-new``).

    Returns the new path of the output, or ``None`` when there was nothing to move.
    """
    manifest = manifest_path(output)
    if not output.exists() and not manifest.exists():
        return None
    for n in range(1, 10_000):
        aside = output.with_name(f"{output.stem}.old-{n}{output.suffix}")
        if not aside.exists() and not manifest_path(aside).exists():
            break
    else:
        raise EngineError(f"no free name to move {output} aside; clean up {output.stem}.old-*")
    if output.exists():
        os.rename(output, aside)
    if manifest.exists():
        os.rename(manifest, manifest_path(aside))
    return aside


@dataclass(frozen=True, slots=True)
class RecordState:
    status: Status
    fingerprint: str


@dataclass(slots=True)
class OutputContents:
    """What an output file holds: the latest state per record, its run identities, lines."""

    records: dict[str, RecordState] = field(default_factory=dict)
    runs: set[str | None] = field(default_factory=set)
    lines: Counter[str] = field(default_factory=Counter)
    repaired_bytes: int = 0


def read_records(path: Path) -> dict[str, NoteRecord]:
    """The latest record per ``record_id`` (a partial last line is ignored)."""
    out: dict[str, NoteRecord] = {}
    with path.open("rb") as fh:
        for line in fh:
            if line.endswith(b"\n") and line.strip():
                record = NoteRecord.model_validate_json(line)
                out[record.record_id] = record
    return out


class OutputLog:
    """The output file of a run: load (and repair) what it holds, then append lines."""

    def __init__(self, path: Path, fsync_interval_s: float = 1.0) -> None:
        self.path = path
        self.fsync_interval_s = fsync_interval_s
        self._fd: int | None = None
        self._last_sync = time.monotonic()
        self._dirty = False

    def load(self) -> OutputContents:
        """Every record already in the file; cuts off a partial last line."""
        contents = OutputContents()
        if not self.path.exists():
            return contents
        keep = 0
        try:
            with self.path.open("rb") as fh:
                for number, line in enumerate(fh, 1):
                    if not line.endswith(b"\n"):
                        break  # a partial last line, left by a kill mid-write
                    keep += len(line)
                    if line.strip():
                        self._parse_state(contents, number, line)
                size = fh.seek(0, os.SEEK_END)
        except OSError as err:
            raise EngineError(f"cannot read {self.path}: {err.strerror}") from None
        if keep < size:
            contents.repaired_bytes = size - keep
            log.warning(
                "%s: dropped a partial last line (%d bytes) left by an interrupted run",
                self.path,
                contents.repaired_bytes,
            )
            with self.path.open("r+b") as fh:
                fh.truncate(keep)
                os.fsync(fh.fileno())
        return contents

    def _parse_state(self, contents: OutputContents, number: int, line: bytes) -> None:
        try:
            item = json.loads(line)
            state = RecordState(item["status"], item["fingerprint"])
            contents.records[item["record_id"]] = state
        except (ValueError, KeyError, TypeError):
            raise EngineError(
                f"{self.path}, line {number}: not a kgsynth record; choose another -o file"
            ) from None
        contents.runs.add(item.get("run"))
        contents.lines[state.status] += 1

    def write(self, data: bytes) -> None:
        """Append ``data`` (whole lines); fsync if the interval has passed."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        view = memoryview(data)
        while view:  # a short write on a full disk or signal: finish it
            view = view[os.write(self._fd, view) :]
        self._dirty = True
        if time.monotonic() - self._last_sync >= self.fsync_interval_s:
            self.sync()

    def sync(self) -> None:
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
            self._dirty = False
        self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
            self._fd = None


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise EngineError(f"cannot read the run manifest {path}: {err}") from None
    return data if isinstance(data, dict) else None


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write atomically (temp file + rename), so a kill never leaves half a manifest."""
    with atomic_file(path) as fh:
        fh.write(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
