"""The annotations output: append-only ``AnnotatedNote`` lines, the run summary, the manifest.

``annotations.jsonl`` gets one line per note written (readers take the last per
``record_id``; a partial last line left by a kill is cut off on load); beside it
``annotations.chunks.jsonl`` holds the runner's chunk records of an LLM run and
``annotations.manifest.json`` one entry per run with the constraint check's totals.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.annotate.check import CheckCounts
from engine.annotate.model import AnnotatedNote
from engine.annotate.notes import Note
from engine.errors import EngineError
from engine.runner.output import OutputLog, manifest_path, read_manifest, write_manifest
from engine.runner.run import RunSummary
from engine.runner.state import now_iso


def chunks_path(output: Path) -> Path:
    """``annotations.jsonl`` -> ``annotations.chunks.jsonl``: the runner's per-chunk records."""
    return output.with_name(f"{output.stem}.chunks.jsonl")


@dataclass(frozen=True, slots=True)
class Held:
    status: str
    fingerprint: str
    note_fingerprint: str


class AnnotationLog:
    """The annotations output: what it holds (a partial last line cut off), then appends."""

    def __init__(self, path: Path, fsync_interval_s: float = 1.0) -> None:
        self.path = path
        self._log = OutputLog(path, fsync_interval_s)
        self.held: dict[str, Held] = {}
        self.repaired_bytes = 0

    def load(self) -> AnnotationLog:
        self.repaired_bytes = self._log.load().repaired_bytes  # cuts a partial last line
        if not self.path.exists():
            return self
        with self.path.open("rb") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    self.held[item["record_id"]] = Held(
                        item["status"], item["fingerprint"], item["note_fingerprint"]
                    )
                except (ValueError, KeyError, TypeError):
                    raise EngineError(
                        f"{self.path}, line {number}: not an annotation record; "
                        "choose another -o file"
                    ) from None
        return self

    def done(self, note: Note, fp: str) -> bool:
        held = self.held.get(note.record_id)
        return (
            held is not None
            and held.status == "ok"
            and held.fingerprint == fp
            and held.note_fingerprint == note.digest
        )

    def write(self, notes: Sequence[AnnotatedNote]) -> None:
        if notes:
            self._log.write(b"".join(n.model_dump_json().encode() + b"\n" for n in notes))
            for n in notes:
                self.held[n.record_id] = Held(n.status, n.fingerprint, n.note_fingerprint)

    def close(self) -> None:
        self._log.close()


@dataclass(slots=True)
class AnnotateSummary:
    """What one ``annotate`` did, and the constraint check's totals over the notes it wrote."""

    annotator: str
    backend: str
    model: str
    output: str
    notes: int = 0
    not_ok_notes: int = 0
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    pending: int = 0
    sentences: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False
    check: CheckCounts = field(default_factory=CheckCounts)
    failure_reasons: dict[str, int] = field(default_factory=dict)
    run: RunSummary | None = None

    def figures(self) -> dict[str, Any]:
        """The summary as plain JSON-able figures (for the manifest and reports)."""
        c = self.check
        return {
            "annotator": self.annotator,
            "backend": self.backend,
            "model": self.model,
            "notes": self.notes,
            "skipped": self.skipped,
            "ok": self.ok,
            "failed": self.failed,
            "pending": self.pending,
            "sentences": self.sentences,
            "review": c.review,
            "keywords_requested": c.requested,
            "keywords_realised": c.realised,
            "realised_pct": round(c.realised_pct, 2),
            "label_disagreements": c.disagree,
            "disagreement_pct": round(c.disagree_pct, 2),
        }


def write_run_manifest(output: Path, summary: AnnotateSummary, source: dict[str, Any]) -> Path:
    """Add this run's figures to ``STEM.manifest.json`` beside the annotations (atomically).

    Holds the notes file and its sha256, who labelled (annotator, backend, model), the
    whole file's ok/failed notes, and one entry per run with the constraint check's counts.
    """
    path = manifest_path(output)
    old = read_manifest(path) or {}
    runs = [r for r in old.get("runs", []) if isinstance(r, dict)]
    held = AnnotationLog(output).load().held if output.exists() else {}
    data = {
        "kgsynth_annotations": 1,
        "output": output.name,
        **source,
        "annotator": summary.annotator,
        "backend": summary.backend,
        "model": summary.model,
        "chunks": chunks_path(output).name if summary.run is not None else old.get("chunks"),
        "notes_in_file": {
            "ok": sum(h.status == "ok" for h in held.values()),
            "failed": sum(h.status != "ok" for h in held.values()),
        },
        "runs": [
            *runs,
            {"finished_at": now_iso(), "elapsed_s": summary.elapsed_s, **summary.figures()},
        ],
    }
    write_manifest(path, data)
    return path
