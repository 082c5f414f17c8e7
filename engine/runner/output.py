"""Append-only JSONL output, its run manifest, and reading both back.

Every record is one ``write`` of one line (so a kill leaves at most one partial last line);
the file is fsync'd at intervals and on close. On resume the partial line is cut off and
reported. Readers take the last line per ``record_id``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.runner.records import NoteRecord, Status

log = logging.getLogger("kgsynth.runner")


def manifest_path(output: Path) -> Path:
    """``notes.jsonl`` -> ``notes.manifest.json``, beside it."""
    return output.with_name(f"{output.stem}.manifest.json")


def default_cache_path(output: Path) -> Path:
    """``notes.jsonl`` -> ``notes.cache.sqlite``, beside it."""
    return output.with_name(f"{output.stem}.cache.sqlite")


@dataclass(frozen=True, slots=True)
class RecordState:
    status: Status
    fingerprint: str


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
    """The output file of a run: load (and repair) its state, then append records."""

    def __init__(self, path: Path, fsync_interval_s: float = 1.0) -> None:
        self.path = path
        self.fsync_interval_s = fsync_interval_s
        self._fd: int | None = None
        self._last_sync = time.monotonic()
        self._dirty = False
        self.repaired_bytes = 0

    def load(self) -> dict[str, RecordState]:
        """State of every record already in the file; cuts off a partial last line."""
        state: dict[str, RecordState] = {}
        if not self.path.exists():
            return state
        keep = 0
        try:
            with self.path.open("rb") as fh:
                for number, line in enumerate(fh, 1):
                    if not line.endswith(b"\n"):
                        break  # a partial last line, left by a kill mid-write
                    keep += len(line)
                    if line.strip():
                        record_id, record_state = self._parse_state(number, line)
                        state[record_id] = record_state
                size = fh.seek(0, os.SEEK_END)
        except OSError as err:
            raise EngineError(f"cannot read {self.path}: {err.strerror}") from None
        if keep < size:
            self.repaired_bytes = size - keep
            log.warning(
                "%s: dropped a partial last line (%d bytes) left by an interrupted run",
                self.path,
                self.repaired_bytes,
            )
            with self.path.open("r+b") as fh:
                fh.truncate(keep)
                os.fsync(fh.fileno())
        return state

    def _parse_state(self, number: int, line: bytes) -> tuple[str, RecordState]:
        try:
            item = json.loads(line)
            return item["record_id"], RecordState(item["status"], item["fingerprint"])
        except (ValueError, KeyError, TypeError):
            raise EngineError(
                f"{self.path}, line {number}: not a kgsynth record; choose another -o file"
            ) from None

    def append(self, record: NoteRecord) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        line = record.model_dump_json(exclude_none=True).encode("utf-8") + b"\n"
        written = os.write(self._fd, line)
        while written < len(line):  # a short write on a full disk or signal: finish it
            written += os.write(self._fd, line[written:])
        self._dirty = True
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_interval_s:
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
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
