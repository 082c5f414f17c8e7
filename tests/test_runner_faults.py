"""2,000 records through a faulty endpoint: every record accounted for, AIMD visibly at work.

The server runs in its own process (so it does not share the runner's GIL) and injects
20% 429 / 10% 5xx / 5% hangs past the timeout / 5% malformed bodies at random.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import statistics
from collections import Counter
from pathlib import Path

import pytest

from engine.llm.base import SamplingParams
from engine.llm.openai_backend import OpenAIBackend
from engine.runner import GenerationJob, RequestCache, RunConfig, Runner, RunSummary
from tests.llm_server import ProcessServer, ServerConfig

N = 2000
MAX_CONCURRENCY = 32
MIN_CONCURRENCY = 4
MAX_ATTEMPTS = 8
FAULTS = {"429": 0.20, "500": 0.05, "503": 0.05, "hang": 0.05, "malformed": 0.05}


def jobs() -> list[GenerationJob]:
    return [
        GenerationJob(
            record_id=f"f{i:05d}",
            record_index=i,
            messages=[{"role": "user", "content": f"Note {i}.\nKeywords: cough, night sweats"}],
            seed=i,
        )
        for i in range(N)
    ]


async def run(url: str, out: Path) -> RunSummary:
    backend = OpenAIBackend("test-model", base_url=url)
    cache = RequestCache(out.with_suffix(".sqlite"))
    config = RunConfig(
        concurrency=MAX_CONCURRENCY,
        max_attempts=MAX_ATTEMPTS,
        timeout_s=0.3,
        backoff_base_s=0.02,
        backoff_max_s=0.5,
        min_concurrency=MIN_CONCURRENCY,
        increase_every=1,
        progress=False,
    )
    try:
        runner = Runner(backend, out, params=SamplingParams(), config=config, cache=cache)
        return await runner.run(jobs(), total=N)
    finally:
        await backend.aclose()
        cache.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_record_ok_or_failed_with_reason_and_concurrency_cut(tmp_path: Path) -> None:
    config = ServerConfig(
        latency_s=0.01,
        fault_rates=FAULTS,
        seed=7,
        hang_s=3,
        retry_after=None,
        retry_after_ms=20,
        log_bodies=False,
    )
    with ProcessServer(config) as server:
        out = tmp_path / "notes.jsonl"
        summary = asyncio.run(run(server.url, out))
        log = server.requests()

    records = [json.loads(line) for line in out.read_text().splitlines()]
    ids = Counter(r["record_id"] for r in records)
    assert len(ids) == N and max(ids.values()) == 1  # every record once: no loss, no duplicate
    statuses = Counter(r["status"] for r in records)
    assert statuses["ok"] + statuses["failed"] == N
    assert statuses["ok"] >= N * 0.99
    for r in records:
        if r["status"] == "failed":
            assert r["reason"] and r["attempts"] == len(r["errors"]) == MAX_ATTEMPTS
        else:
            assert r["text"].startswith("SUBJECTIVE") and r["attempts"] == len(r["errors"]) + 1
    reasons = " ".join(e for r in records for e in r["errors"])
    for kind in ("HTTP 429", "HTTP 500", "HTTP 503", "no response within", "malformed"):
        assert kind in reasons

    faults = Counter(e.get("fault") for e in log)
    assert faults["429"] > 0.15 * len(log) and faults["hang"] > 0.03 * len(log)
    # Every 429/503 the client saw was counted (one a loaded machine delays past the
    # client's timeout is seen as a timeout instead, so the server may have sent more).
    seen = sum(
        e.split(": ", 1)[1].startswith(("HTTP 429", "HTTP 503"))
        for r in records
        for e in r["errors"]
    )
    assert summary.overloads == seen
    assert 0.9 * (faults["429"] + faults["503"]) <= seen <= faults["429"] + faults["503"]
    # Every attempt is in the records; each one the server never saw timed out on the way
    # (a loaded machine can starve the server's accept loop past the 0.3 s timeout).
    assert summary.attempts == sum(r["attempts"] for r in records)
    timeouts = sum("no response within" in e for r in records for e in r["errors"])
    assert len(log) <= summary.attempts <= len(log) + timeouts

    # The runner's own trace: the limit was cut while 429s came, far below the maximum.
    trace = summary.concurrency_trace
    assert min(limit for _, limit in trace) == MIN_CONCURRENCY
    times = [t for t, _ in trace]
    end = times[-1]
    weighted = sum((b[0] - a[0]) * a[1] for a, b in itertools.pairwise(trace)) / end
    # Time-weighted, so it depends on how fast answers are handled: 14-17 measured on the
    # loaded 2-core box (the server-side median below is the sharper check).
    assert weighted < 0.6 * MAX_CONCURRENCY

    # The server's view agrees: after the first 429 the requests it saw in flight stayed
    # within the runner's limit (its highest value over the last timeout: a cut does not
    # recall requests already sent), and well below the configured maximum.
    first_429 = min(e["at"] for e in log if e.get("fault") == "429")
    late = [e for e in log if e["at"] > first_429 + 0.1]
    assert statistics.median(e["in_flight"] for e in late) < MAX_CONCURRENCY / 2
    limits = [limit for _, limit in trace]

    def recent_limit(at: float) -> int:
        lo = max(bisect.bisect_right(times, at - summary.trace_started - 0.35) - 1, 0)
        hi = max(bisect.bisect_right(times, at - summary.trace_started), 1)
        return max(limits[lo:hi])

    within = sum(e["in_flight"] <= recent_limit(e["at"]) + 1 for e in late)
    assert within >= 0.99 * len(late)
