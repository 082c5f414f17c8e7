"""``generate --executor ray``: the record range in shards, one Ray task each, then a merge.

Shard ``k`` runs records ``lo .. hi-1`` through its own ``Runner`` into its own part file
``OUTPUT.parts/part-K.jsonl`` (with its manifest and request cache). Records depend only on
their index and the run seed, so the shards write exactly what one process would. Ray
retries a task whose worker died; the new attempt resumes the part (records already there
are skipped), and rerunning the command resumes every part. The merge appends to ``OUTPUT``
each part's records whose latest state it does not hold yet: the output stays append-only
and holds one latest line per record, as after a single-process run.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from engine.errors import EngineError
from engine.gate import GateConfig
from engine.gate.build import Reference, gate_for
from engine.llm.base import SamplingParams
from engine.llm.factory import BackendSettings, make_backend
from engine.plan import Planner
from engine.runner.cache import RequestCache
from engine.runner.output import (
    OutputLog,
    default_cache_path,
    manifest_path,
    read_manifest,
    write_manifest,
)
from engine.runner.run import RunConfig, Runner
from engine.runner.sources import from_planner, job_from_spec
from engine.runner.state import RunSummary

#: attempts Ray makes at a shard whose worker process died (each resumes the part)
SHARD_RETRIES = 3


class ShardedRun(BaseModel):
    """What the shards did and what the merge appended."""

    shards: list[RunSummary]
    appended: int
    records: dict[str, int]


def shard_bounds(total: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous, near-equal ``(lo, hi)`` ranges covering ``0 .. total-1``."""
    shards = max(1, min(shards, total))
    step, extra = divmod(total, shards)
    bounds, lo = [], 0
    for k in range(shards):
        hi = lo + step + (1 if k < extra else 0)
        bounds.append((lo, hi))
        lo = hi
    return bounds


def part_path(output: Path, shard: int) -> Path:
    return output.with_name(f"{output.name}.parts") / f"part-{shard:05d}.jsonl"


def run_shard(
    planner: Planner,
    lo: int,
    hi: int,
    settings: BackendSettings,
    part: Path,
    params: SamplingParams,
    config: RunConfig,
    gate: GateConfig | None,
    reference: Reference | None,
    cache: bool,
) -> RunSummary:
    """Records ``lo .. hi-1`` into ``part`` (resuming what it holds); runs in a Ray worker."""
    part.parent.mkdir(parents=True, exist_ok=True)
    (part.with_suffix(".pid")).write_text(str(os.getpid()), encoding="utf-8")
    source = from_planner(planner)

    async def go() -> RunSummary:
        backend = make_backend(settings)
        store = RequestCache(default_cache_path(part)) if cache and backend.cacheable else None
        try:
            runner = Runner(
                backend,
                part,
                params=params,
                config=config,
                cache=store,
                response_model=source.output,
                source=source.identity,
                provenance=source.provenance,
                gate=gate_for(gate, planner.profiles, reference) if gate is not None else None,
            )
            jobs = (job_from_spec(s) for s in planner.iter_specs(lo, hi))
            return await runner.run(jobs, total=hi - lo)
        finally:
            await backend.aclose()
            if store is not None:
                store.close()

    return asyncio.run(go())


def merge_parts(output: Path, parts: list[Path]) -> tuple[int, dict[str, int]]:
    """Append the parts' records ``output`` lacks (or holds in another state); the count
    appended and the latest state per record of the merged output."""
    log = OutputLog(output)
    held = log.load().records
    appended = 0
    try:
        for part in parts:
            if not part.exists():
                continue
            latest: dict[str, bytes] = {}
            with part.open("rb") as fh:
                for line in fh:
                    if line.endswith(b"\n") and line.strip():
                        latest[json.loads(line)["record_id"]] = line
            for record_id, line in latest.items():
                item = json.loads(line)
                state = held.get(record_id)
                if state is None or (state.status, state.fingerprint) != (
                    item["status"],
                    item["fingerprint"],
                ):
                    log.write(line)
                    appended += 1
    finally:
        log.close()
    counts: Counter[str] = Counter(str(s.status) for s in OutputLog(output).load().records.values())
    first = read_manifest(manifest_path(parts[0])) if parts else None
    if first is not None:
        merged: dict[str, Any] = {
            **first,
            "records": dict(counts),
            "executor": {"kind": "ray", "parts": [str(p) for p in parts]},
        }
        write_manifest(manifest_path(output), merged)
    return appended, dict(counts)


def run_on_ray(
    planner: Planner,
    settings: BackendSettings,
    output: Path,
    params: SamplingParams,
    config: RunConfig,
    gate: GateConfig | None,
    reference: Reference | None,
    *,
    workers: int,
    address: str | None,
    cache: bool,
) -> ShardedRun:
    """Shard the run over Ray (a local cluster of ``workers`` CPUs, or ``address``), merge."""
    try:
        import ray
    except ImportError:
        raise EngineError(
            "--executor ray needs Ray: pip install 'kgsynth[ray]' (or pip install 'ray[default]')"
        ) from None
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=address,
            num_cpus=None if address else workers,
            include_dashboard=False,
            log_to_driver=False,
        )
    try:
        task = ray.remote(num_cpus=1, max_retries=SHARD_RETRIES)(run_shard)
        shared, corpus = ray.put(planner), ray.put(reference)
        bounds = shard_bounds(planner.total, workers)
        parts = [part_path(output, k) for k in range(len(bounds))]
        worker_config = config.model_copy(update={"progress": False, "handle_signals": False})
        futures = [
            task.remote(shared, lo, hi, settings, part, params, worker_config, gate, corpus, cache)
            for (lo, hi), part in zip(bounds, parts, strict=True)
        ]
        summaries: list[RunSummary] = ray.get(futures)
    finally:
        if started:
            ray.shutdown()
    appended, records = merge_parts(output, parts)
    return ShardedRun(shards=summaries, appended=appended, records=records)
