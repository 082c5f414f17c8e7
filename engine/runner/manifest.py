"""The run manifest beside an output: its identity, whole-file counts and one entry per run.

It tells the truth about the file: ``records`` counts the latest state per record, and the
runs' ``ok`` + ``failed`` + ``rejected`` add up to the lines in the file (a run that was
killed before it could finish its entry gets the lines it left, counted from the file).
With a gate, ``gate`` holds its settings and each run entry its counts (answers checked,
rejected per check, regenerations; ``engine.gate.GateCounts``).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.provenance import SHORT, RunIdentity, versions
from engine.runner.output import OutputContents
from engine.runner.state import RunState, now_iso

MANIFEST_VERSION = 2
_RUN_COUNTS = (
    "seen",
    "skipped",
    "ok",
    "failed",
    "rejected",
    "cached",
    "attempts",
    "overloads",
    "repaired_bytes",
    "cost_usd",
    "peak_in_flight",
)


def _stored_identity(old: dict[str, Any] | None) -> RunIdentity | None:
    data = (old or {}).get("identity")
    try:
        return RunIdentity.model_validate(data) if isinstance(data, dict) else None
    except ValueError:
        return None


def check_identity(
    output: Path, identity: RunIdentity, contents: OutputContents, old: dict[str, Any] | None
) -> None:
    """Refuse to resume into ``output`` when it holds records of another run identity."""
    if not contents.records:
        return
    mine = identity.fingerprint
    hint = (
        "resume with the settings that wrote it, write to another -o file, or pass "
        "--force-new to move it aside and start a fresh one"
    )
    stored = _stored_identity(old)
    if stored is not None and stored.fingerprint != mine:
        changes = "; ".join(identity.differences(stored))
        raise EngineError(
            f"{output} holds records of run {stored.fingerprint[:SHORT]}, and this run is "
            f"{mine[:SHORT]} (changed: {changes}): {hint}"
        )
    others = sorted(
        run[:SHORT] if run else "(none: an older kgsynth)" for run in contents.runs if run != mine
    )
    if others:
        named = ", ".join(others)
        raise EngineError(
            f"{output} holds records of run {named}, and this run is {mine[:SHORT]}"
            f"{'' if old else ' (its manifest is missing)'}: {hint}"
        )


def previous_runs(
    old: dict[str, Any] | None, identity: RunIdentity, contents: OutputContents
) -> list[dict[str, Any]]:
    """The earlier runs of this output, the last one's counts repaired if it was killed."""
    if not contents.records:
        return []  # nothing of theirs left: their entries would describe no record
    stored = _stored_identity(old)
    if stored is None or stored.fingerprint != identity.fingerprint:
        return []
    runs = [r for r in (old or {}).get("runs", []) if isinstance(r, dict)]
    if runs and runs[-1].get("status") == "running":
        last = runs[-1]
        last["status"] = "killed"  # it died before it could finish its entry
        for status in ("ok", "failed", "rejected"):
            before = sum(int(r.get(status) or 0) for r in runs[:-1])
            last[status] = contents.lines[status] - before
    return runs


def build(
    state: RunState,
    status: str,
    *,
    output: Path,
    identity: RunIdentity,
    backend: dict[str, Any],
    config: dict[str, Any],
    cache: Path | None,
    source: dict[str, Any],
    gate: dict[str, Any] | None = None,
) -> dict[str, Any]:
    s = state.summary
    limits = [limit for _, limit in state.limiter.trace]
    this_run = {
        "identity": identity.fingerprint,
        "status": status,
        "started_at": state.started_at,
        "finished_at": None if status == "running" else now_iso(),
        "elapsed_s": round(time.monotonic() - state.started, 3),
        **s.model_dump(include=set(_RUN_COUNTS)),
        "usage": s.usage.model_dump(),
        "concurrency": {"min": min(limits), "max": max(limits)},
        "failure_reasons": dict(state.failures.most_common(10)),
    }
    if state.gate is not None:
        this_run["gate"] = state.gate.counts.model_dump()
    fps = sorted(state.fingerprints)
    counts = Counter(record.status for record in state.records.values())
    records = {"ok": counts["ok"], "failed": counts["failed"]}
    if counts["rejected"]:  # only gated runs reject; other files keep their shape
        records["rejected"] = counts["rejected"]
    return {
        "kgsynth_manifest": MANIFEST_VERSION,
        "status": status,
        "output": output.name,
        "identity": identity.model_dump(mode="json"),
        "run_identity": identity.fingerprint,
        "fingerprint": fps[0] if len(fps) == 1 else None,
        "fingerprints": fps,
        "backend": backend,
        "params": identity.params,
        "structured_output": identity.structured_output,
        "config": config,
        "cache": str(cache) if cache else None,
        "records": records,
        "gate": gate,
        "source": source,
        "runs": [*state.history, this_run],
        "versions": versions("openai", "aiohttp", "pydantic"),
    }
