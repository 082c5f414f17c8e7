"""One record through the gate: check each answer, ask again with a derived seed, settle.

The first answer (fresh or cached) is screened (privacy, leakage); a survivor then waits
for its turn (every record earlier in the input settled) and is checked for near-duplicates
against the notes accepted so far. A rejected answer is followed by a new request with
``regeneration_seed(record seed, n)``, from the cache when it holds one, up to
``regenerate`` times; then the record is written ``rejected``, with no text. Every answer is
cached, rejected ones included, so a rerun pays for none of them again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import orjson

from engine.gate import Rejection, regeneration_seed
from engine.llm.base import LLMError, LLMRequest, Usage
from engine.llm.parsing import check_response
from engine.provenance import request_key
from engine.runner.attempts import Tried
from engine.runner.cache import CachedAnswer, RequestCache
from engine.runner.records import GateReport, GenerationJob, Status
from engine.runner.state import RunState


@dataclass(slots=True)
class Settled:
    """A gated record's outcome: the kept answer (if any) and what it took to get there."""

    tried: Tried
    report: GateReport
    status: Status = "failed"
    attempts: int = 0
    usage: Usage | None = None


async def _answer(
    run: RunState, request: LLMRequest, cache: RequestCache | None, key: str | None
) -> tuple[Tried, bool]:
    """An answer to ``request``: from the cache when it holds a usable one, else asked."""
    if cache is not None and key is not None:
        hit = (await run.sink.lookup([key])).get(key)
        if hit is not None:
            try:
                return Tried(response=hit, parsed=check_response(request, hit)), True
            except LLMError:
                pass  # unusable cached answer: ask again
    return await run.policy.attempt(request), False


async def settle(
    run: RunState,
    job: GenerationJob,
    request: LLMRequest,
    first: Tried,
    seq: int,
    *,
    backend: tuple[str, str],
    cache: RequestCache | None,
    first_cached: bool,
    answers: list[CachedAnswer],
) -> Settled | None:
    """Gate ``first`` and any regenerations; ``None`` when the run stopped first (pending).

    Fresh answers to regenerations are appended to ``answers`` (the caller caches them
    whatever the outcome, so a record left pending pays for nothing twice).
    """
    gate, turns = run.gate, run.turns
    assert gate is not None
    limit = gate.gate.config.regenerate
    base_seed = job.seed if job.seed is not None else job.record_index
    report = GateReport()
    outcome = Settled(Tried(), report)
    errors = []
    tried, cached, n, my_turn = first, first_cached, 0, turns is None
    key: str | None = None  # the regeneration's cache key (the caller caches the first answer)
    while True:
        if tried.stopped:
            return None
        outcome.attempts += tried.attempts
        errors.extend(tried.errors)
        response = tried.response
        if response is None:
            break  # no usable answer: failed (a rerun retries the record)
        if response.usage is not None and not cached:
            outcome.usage = response.usage + outcome.usage if outcome.usage else response.usage
        if key is not None and not cached:
            answers.append(CachedAnswer(key, *backend, job.record_id, response))
        rejection: Rejection | None = gate.screen(response.text, job.spec, n, request.seed)
        sketch = None
        if rejection is None and gate.near is not None:
            if not my_turn:
                if turns is None or not await turns.wait(seq):
                    return None  # an earlier record was left pending: so is this one
                my_turn = True
            sketch = gate.sketch(response.text)
            rejection = gate.near_duplicate(sketch, n, request.seed)
        if rejection is None:
            gate.accept(job.record_id, sketch, regenerated=n > 0)
            outcome.tried = Tried(response=response, parsed=tried.parsed, last_s=tried.last_s)
            outcome.status = "ok"
            report.seed = request.seed
            break
        report.rejections.append(rejection)
        if n >= limit:
            gate.counts.records_rejected += 1
            outcome.status = "rejected"
            break
        n += 1
        gate.counts.regenerated += 1
        request = dataclasses.replace(request, seed=regeneration_seed(base_seed, n))
        key = request_key(*backend, request.messages, request.key_params()) if cache else None
        tried, cached = await _answer(run, request, cache, key)
    report.regenerations = n
    outcome.tried.errors = errors
    return outcome


def accepted_notes(path: Path) -> list[tuple[str, str]]:
    """``(record_id, text)`` of every ``ok`` record in an output, by its latest line, in file
    order (the gate's near-duplicate state on resume). Partial last lines are skipped."""
    latest: dict[str, tuple[str, str | None]] = {}
    with path.open("rb") as fh:
        for line in fh:
            if line.endswith(b"\n") and line.strip():
                item = orjson.loads(line)
                latest.pop(item["record_id"], None)  # re-insert: order of the latest line
                latest[item["record_id"]] = (item["status"], item.get("text"))
    return [(rid, text) for rid, (status, text) in latest.items() if status == "ok" and text]
