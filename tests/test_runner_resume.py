"""Runner behaviour over real HTTP: resume, repair, cache, fingerprints, stop, manifest."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from engine.errors import EngineError
from engine.llm.base import SamplingParams
from engine.llm.openai_backend import OpenAIBackend
from engine.llm.pricing import PriceTable
from engine.provenance import fingerprint
from engine.runner import GenerationJob, RequestCache, RunConfig, Runner, RunSummary, read_records
from engine.runner.output import manifest_path
from engine.spec import GenerationSpec
from tests.llm_server import ServerConfig, ThreadServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def module_server() -> Iterator[ThreadServer]:
    with ThreadServer() as srv:
        yield srv


@pytest.fixture
def server(module_server: ThreadServer) -> ThreadServer:
    module_server.configure(ServerConfig())
    module_server.reset()
    return module_server


def make_spec(i: int, recipe: str = "unit", run_seed: int = 0) -> GenerationSpec:
    return GenerationSpec(
        recipe=recipe,
        run_seed=run_seed,
        record_index=i,
        record_id=f"rec-{i:05d}",
        record_seed=i,
        disease_id="KGS:disease/unit",
        disease="Unit disease",
        template_id="unit",
        template_hash="t0",
        kg_hash="kg0",
    )


def make_jobs(n: int, start: int = 0, recipe: str = "unit") -> list[GenerationJob]:
    return [
        GenerationJob(
            record_id=f"rec-{i:05d}",
            record_index=i,
            messages=[{"role": "user", "content": f"Record {i}.\nKeywords: cough, fever"}],
            seed=i,
            spec=make_spec(i, recipe),
        )
        for i in range(start, start + n)
    ]


def run(
    url: str,
    out: Path,
    jobs: list[GenerationJob],
    *,
    cache: Path | None = None,
    params: SamplingParams | None = None,
    stop_after: float | None = None,
    response_model: type[BaseModel] | None = None,
    source: dict[str, Any] | None = None,
    **config: Any,
) -> RunSummary:
    async def go() -> RunSummary:
        backend = OpenAIBackend("gpt-4o-mini", base_url=url)
        db = RequestCache(cache) if cache else None
        cfg = {
            "concurrency": 8,
            "timeout_s": 2.0,
            "backoff_base_s": 0.01,
            "progress": False,
            **config,
        }
        runner = Runner(
            backend,
            out,
            params=params or SamplingParams(),
            config=RunConfig(**cfg),
            cache=db,
            prices=PriceTable(),
            response_model=response_model,
            source=source,
        )
        if stop_after is not None:
            asyncio.get_running_loop().call_later(stop_after, runner.request_stop)
        try:
            return await runner.run(jobs, total=len(jobs))
        finally:
            await backend.aclose()
            if db:
                db.close()

    return asyncio.run(go())


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_carry_provenance(server: ThreadServer, tmp_path: Path) -> None:
    out = tmp_path / "notes.jsonl"
    summary = run(server.url, out, make_jobs(20))
    assert summary.ok == 20 and summary.status == "complete"
    rec = lines(out)[0]
    assert rec["status"] == "ok" and rec["backend"] == "openai" and rec["model"] == "gpt-4o-mini"
    assert rec["spec"]["recipe"] == "unit" and len(rec["fingerprint"]) == 64
    assert rec["raw_response"].startswith("SUBJECTIVE") and "cough, fever" in rec["text"]
    assert rec["params"] == {"temperature": 0.7, "top_p": 1.0, "max_tokens": 1024, "stop": []}
    assert rec["attempts"] == 1 and rec["usage"]["total_tokens"] > 0
    assert rec["cost_usd"] > 0  # gpt-4o-mini is priced
    assert rec["timings"]["elapsed_s"] >= rec["timings"]["last_attempt_s"] > 0
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["status"] == "complete" and manifest["fingerprint"] == rec["fingerprint"]
    assert manifest["records"] == {"ok": 20, "failed": 0}
    assert manifest["backend"]["base_url"] == server.url
    assert manifest["versions"]["openai"]


def test_failed_records_are_retried_on_rerun_and_ok_ones_skipped(
    server: ThreadServer, tmp_path: Path
) -> None:
    out = tmp_path / "notes.jsonl"
    server.configure(ServerConfig(schedule=["500", None, "429", None, "500"], retry_after="0"))
    first = run(server.url, out, make_jobs(10), max_attempts=1, concurrency=1)
    assert (first.ok, first.failed) == (7, 3)
    failed = [r for r in lines(out) if r["status"] == "failed"]
    assert all(r["reason"].startswith("HTTP ") and r["attempts"] == 1 for r in failed)

    server.configure(ServerConfig())
    server.reset()
    second = run(server.url, out, make_jobs(10))
    assert (second.skipped, second.ok, second.failed) == (7, 3, 0)
    assert server.stats()["arrivals"] == 3  # only the failed records were asked again
    assert len(lines(out)) == 13  # appended, never rewritten
    final = read_records(out)
    assert len(final) == 10 and all(r.status == "ok" for r in final.values())
    runs = json.loads(manifest_path(out).read_text())["runs"]
    assert [r["failed"] for r in runs] == [3, 0] and [r["skipped"] for r in runs] == [0, 7]


def test_partial_last_line_is_repaired(server: ThreadServer, tmp_path: Path) -> None:
    out = tmp_path / "notes.jsonl"
    run(server.url, out, make_jobs(5))
    data = out.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    out.write_bytes(data[: last_start + 40])  # a kill in the middle of the last write
    summary = run(server.url, out, make_jobs(5))
    assert summary.repaired_bytes == 40 and summary.skipped == 4 and summary.ok == 1
    assert len(lines(out)) == 5 and len(read_records(out)) == 5


def test_cache_makes_a_rerun_free(server: ThreadServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite"
    first = run(server.url, tmp_path / "a.jsonl", make_jobs(30), cache=cache)
    assert first.cached == 0 and server.stats()["arrivals"] == 30
    server.reset()
    second = run(server.url, tmp_path / "b.jsonl", make_jobs(30), cache=cache)
    assert second.cached == 30 and second.ok == 30 and second.usage.total_tokens == 0
    assert server.stats()["arrivals"] == 0
    a, b = read_records(tmp_path / "a.jsonl"), read_records(tmp_path / "b.jsonl")
    assert all(a[k].text == b[k].text and b[k].cached and b[k].attempts == 0 for k in a)
    # Other sampling parameters are other requests: the cache does not answer them.
    third = run(
        server.url,
        tmp_path / "c.jsonl",
        make_jobs(5),
        cache=cache,
        params=SamplingParams(temperature=0.1),
    )
    assert third.cached == 0 and server.stats()["arrivals"] == 5


def test_changed_configuration_refuses_to_mix_into_old_output(
    server: ThreadServer, tmp_path: Path
) -> None:
    out = tmp_path / "notes.jsonl"
    run(server.url, out, make_jobs(3))
    manifest = manifest_path(out).read_text()
    with pytest.raises(EngineError, match=r"params\.temperature: 0\.7 -> 0\.2.* another -o"):
        run(server.url, out, make_jobs(3), params=SamplingParams(temperature=0.2))
    assert manifest_path(out).read_text() == manifest  # the refused run left no trace
    assert not (tmp_path / "notes.lock").exists()
    with pytest.raises(EngineError, match="appears twice"):
        run(server.url, tmp_path / "dup.jsonl", make_jobs(3) + make_jobs(1))


def plan_source(seed: int, recipe: str = "unit", n: int = 3) -> dict[str, Any]:
    return {"plan": {"recipe": recipe, "seed": seed, "n": n}, "kg_hash": "kg0"}


def test_resume_with_another_seed_or_recipe_is_refused_naming_both_runs(
    server: ThreadServer, tmp_path: Path
) -> None:
    out = tmp_path / "notes.jsonl"
    run(server.url, out, make_jobs(3), source=plan_source(1))
    first = json.loads(manifest_path(out).read_text())
    old_id = first["run_identity"]
    assert len(old_id) == 64 and {r["run"] for r in lines(out)} == {old_id}
    server.reset()
    # Other seeds plan other record ids: without the identity these would simply be added.
    other_ids = [
        GenerationJob(**{**job.model_dump(), "record_id": f"s2-{job.record_id}"})
        for job in make_jobs(3)
    ]
    with pytest.raises(EngineError) as refused:
        run(server.url, out, other_ids, source=plan_source(2))
    message = str(refused.value)
    assert f"holds records of run {old_id[:12]}" in message
    assert "source.plan.seed: 1 -> 2" in message and "--force-new" in message
    new_id = message.split("this run is ")[1][:12]
    assert new_id != old_id[:12]
    with pytest.raises(EngineError, match=r'source\.plan\.recipe: "unit" -> "medsyn"'):
        run(server.url, out, make_jobs(3, recipe="medsyn"), source=plan_source(1, "medsyn"))
    assert server.stats()["arrivals"] == 0  # nothing was asked for the refused runs
    assert len(lines(out)) == 3
    assert json.loads(manifest_path(out).read_text()) == first
    # The same identity resumes (and finds nothing left to do).
    again = run(server.url, out, make_jobs(3), source=plan_source(1))
    assert again.skipped == 3 and again.identity == old_id


def test_records_without_a_manifest_are_not_mixed(server: ThreadServer, tmp_path: Path) -> None:
    out = tmp_path / "notes.jsonl"
    run(server.url, out, make_jobs(2), source=plan_source(1))
    manifest_path(out).unlink()
    with pytest.raises(EngineError, match="its manifest is missing"):
        run(server.url, out, make_jobs(2), source=plan_source(2))
    resumed = run(server.url, out, make_jobs(4), source=plan_source(1))
    assert resumed.skipped == 2 and resumed.ok == 2


def test_stop_finishes_in_flight_records_then_resume_completes(
    server: ThreadServer, tmp_path: Path
) -> None:
    out = tmp_path / "notes.jsonl"
    server.configure(ServerConfig(latency_s=0.2))
    summary = run(server.url, out, make_jobs(100), concurrency=10, stop_after=0.5)
    assert summary.status == "interrupted"
    assert 0 < summary.ok < 100 and summary.failed == 0
    assert summary.ok == server.stats()["arrivals"]  # every request sent was written
    assert json.loads(manifest_path(out).read_text())["status"] == "interrupted"
    server.configure(ServerConfig())
    rest = run(server.url, out, make_jobs(100))
    assert rest.skipped == summary.ok and rest.ok == 100 - summary.ok
    assert len(lines(out)) == 100


def assert_manifest_tells_the_truth(out: Path) -> dict[str, Any]:
    """Counted from the file itself, independently of the runner's own bookkeeping."""
    written = lines(out)
    latest: dict[str, str] = {}
    for rec in written:
        latest[rec["record_id"]] = rec["status"]
    manifest = json.loads(manifest_path(out).read_text())
    statuses = list(latest.values())
    assert manifest["records"] == {"ok": statuses.count("ok"), "failed": statuses.count("failed")}
    runs = manifest["runs"]
    assert sum(r["ok"] + r["failed"] for r in runs) == len(written)
    assert sum(r["ok"] for r in runs) == sum(rec["status"] == "ok" for rec in written)
    assert {r["identity"] for r in runs} == {manifest["run_identity"]}
    assert {rec["run"] for rec in written} == {manifest["run_identity"]}
    return manifest


def test_a_second_run_of_one_runner_after_an_interrupt_completes(
    server: ThreadServer, tmp_path: Path
) -> None:
    out = tmp_path / "notes.jsonl"
    server.configure(ServerConfig(latency_s=0.1, schedule=[None] * 5 + ["400"]))
    jobs = make_jobs(60)

    async def go() -> tuple[RunSummary, RunSummary]:
        backend = OpenAIBackend("gpt-4o-mini", base_url=server.url)
        config = RunConfig(concurrency=4, progress=False, backoff_base_s=0.01)
        runner = Runner(backend, out, params=SamplingParams(), config=config, source={"t": 1})

        async def stop_after_eight_arrivals() -> None:  # the 400 (arrival 6) is in by then
            while (await asyncio.to_thread(server.stats))["arrivals"] < 8:
                await asyncio.sleep(0.01)
            runner.request_stop()

        stopper = asyncio.create_task(stop_after_eight_arrivals())
        try:
            first = await runner.run(jobs, total=len(jobs))
            await stopper
            second = await runner.run(jobs, total=len(jobs))  # the same object, again
        finally:
            await backend.aclose()
        return first, second

    first, second = asyncio.run(go())
    assert first.status == "interrupted" and 0 < first.ok + first.failed < 60
    assert first.failed == 1  # the 400 is not retried: one attempt, failed with its reason
    assert second.status == "complete"
    assert second.skipped == first.ok and second.ok == 60 - first.ok and second.failed == 0
    final = read_records(out)
    assert len(final) == 60 and all(r.status == "ok" for r in final.values())
    manifest = assert_manifest_tells_the_truth(out)
    assert [r["status"] for r in manifest["runs"]] == ["interrupted", "complete"]
    failed_line = next(r for r in lines(out) if r["status"] == "failed")
    assert failed_line["failure"] == "permanent" and "HTTP 400" in failed_line["reason"]
    assert "Unsupported parameter" in failed_line["reason"] and failed_line["attempts"] == 1


def test_unreachable_endpoint_stops_the_run_with_one_message(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"cannot connect to .*is the server running"):
        run("http://127.0.0.1:9/v1", tmp_path / "notes.jsonl", make_jobs(50), max_attempts=5)
    manifest = json.loads(manifest_path(tmp_path / "notes.jsonl").read_text())
    assert manifest["status"] == "aborted"


class Summary(BaseModel):
    text: str


def test_unparseable_structured_output_is_retried_then_failed_with_its_reason(
    server: ThreadServer, tmp_path: Path
) -> None:
    out = tmp_path / "notes.jsonl"
    server.configure(ServerConfig(schedule=["prose", "prose", "prose"]))
    summary = run(server.url, out, make_jobs(1), response_model=Summary, max_attempts=3)
    assert (summary.ok, summary.failed) == (0, 1) and server.stats()["arrivals"] == 3
    (failed,) = lines(out)
    assert failed["status"] == "failed" and failed["failure"] == "unparseable"
    assert failed["attempts"] == 3 and len(failed["errors"]) == 3
    assert "no JSON found" in failed["reason"] and "cannot do that" in failed["reason"]
    server.configure(ServerConfig(schedule=["prose"]))
    server.reset()
    again = run(server.url, out, make_jobs(1), response_model=Summary, max_attempts=3)
    assert (again.ok, again.failed) == (1, 0) and server.stats()["arrivals"] == 2
    ok = lines(out)[-1]
    assert ok["status"] == "ok" and ok["attempts"] == 2 and ok["parsed"]["text"]


def test_structured_output_is_parsed_into_records(server: ThreadServer, tmp_path: Path) -> None:
    out = tmp_path / "notes.jsonl"
    summary = run(server.url, out, make_jobs(4), response_model=Summary)
    assert summary.ok == 4
    rec = lines(out)[0]
    assert rec["parsed"]["text"].startswith("SUBJECTIVE")
    assert json.loads(manifest_path(out).read_text())["structured_output"].startswith("Summary:")


def test_fingerprint_covers_what_the_data_depends_on_only(
    server: ThreadServer, tmp_path: Path
) -> None:
    base: dict[str, Any] = {
        "kg_hash": "k",
        "recipe": "r",
        "template_hash": "t",
        "backend": "openai",
        "model": "m",
        "params": {"temperature": 0.7, "max_tokens": 10},
    }
    fp = fingerprint(**base)
    assert fp == fingerprint(**{**base, "params": {"max_tokens": 10, "temperature": 0.7}})
    for field, value in [
        ("kg_hash", "k2"),
        ("recipe", "r2"),
        ("template_hash", "t2"),
        ("backend", "vllm"),
        ("model", "m2"),
        ("params", {"temperature": 0.8, "max_tokens": 10}),
    ]:
        assert fingerprint(**{**base, field: value}) != fp
    # Speed settings are not in it: a rerun with other concurrency/timeouts resumes.
    out = tmp_path / "notes.jsonl"
    run(server.url, out, make_jobs(6), concurrency=2, timeout_s=5.0, max_attempts=2)
    again = run(server.url, out, make_jobs(6), concurrency=9, timeout_s=1.0, max_attempts=7)
    assert again.skipped == 6
