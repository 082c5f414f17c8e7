"""The gate inside generation, over real HTTP: regenerate-then-accept, regenerate-then-reject,
manifest counts, resume, and decisions that do not depend on completion order.

The local OpenAI-compatible test server answers chosen request seeds with chosen texts (a
copied passage, a diagnosis mention, a near-copy of another note) and every other seed with
a clean note of its own; the expected counts are worked out by hand from that script.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine.gate import Gate, GateConfig, regeneration_seed
from engine.llm.base import SamplingParams
from engine.llm.openai_backend import OpenAIBackend
from engine.plan import Planner, PlanRequest
from engine.runner import GenerationJob, RequestCache, RunConfig, Runner, RunSummary, read_records
from engine.runner.output import manifest_path
from engine.spec import GenerationSpec
from tests.engine_graph import open_embedded
from tests.llm_server import FaultServer, ServerConfig, _completion, _serve

pytestmark = pytest.mark.timeout(300)
REPO = Path(__file__).resolve().parents[1]
#: the fixture graph's example note (tests/engine_graph.py) and a passage of 13 of its words
EXAMPLE_ID = "KGS:note/fx-ad-1"
COPIED = "Patient reports misplacing keys. O: MMSE 27/30. A: Mild memory complaints. P: Follow"
REFERENCE_TEXT = (
    "Seen with her son, who says she can no longer manage her tablets and has stopped "
    "cooking for herself since the spring; tearful when asked about it."
)
VOCAB = [
    "patient",
    "daughter",
    "son",
    "wife",
    "husband",
    "reports",
    "notes",
    "describes",
    "memory",
    "recall",
    "keys",
    "bills",
    "stove",
    "driving",
    "routes",
    "lists",
    "errands",
    "sleep",
    "night",
    "wandering",
    "mood",
    "appetite",
    "weight",
    "gait",
    "balance",
    "falls",
    "tablets",
    "dosette",
    "pharmacy",
    "clinic",
    "review",
    "bloods",
    "scan",
    "referral",
    "leaflet",
    "support",
    "carer",
    "week",
    "month",
    "year",
    "morning",
    "evening",
    "calm",
    "anxious",
    "tired",
    "alert",
    "pleasant",
    "oriented",
    "repeated",
    "questions",
    "appointments",
    "calendar",
    "reminders",
    "kitchen",
    "garden",
    "church",
]


def clean_note(tag: str) -> str:
    """A note of its own: 60 words drawn for ``tag`` (two such notes share few shingles)."""
    rng = random.Random(tag)
    return f"Note {tag}. " + " ".join(rng.choice(VOCAB) for _ in range(60)) + "."


class ScriptedServer(FaultServer):
    """The test server; requests whose seed is in ``replies`` get that text (after ``delays``)."""

    def __init__(self) -> None:
        super().__init__(ServerConfig())
        self.replies: dict[int, str] = {}
        self.delays: dict[int, float] = {}

    async def _answer(
        self, request: web.Request, body: dict[str, Any], fault: str | None
    ) -> web.StreamResponse:
        seed = body.get("seed")
        if fault is not None or seed not in self.replies:
            return await super()._answer(request, body, fault)
        await asyncio.sleep(self.delays.get(seed, 0.0))
        completion = _completion(body)
        completion["choices"][0]["message"]["content"] = self.replies[seed]
        return web.json_response(completion)


class Served:
    """A ``ScriptedServer`` on its own loop in a daemon thread."""

    def __init__(self) -> None:
        self.app = ScriptedServer()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        box: dict[str, Any] = {}

        def main() -> None:
            asyncio.set_event_loop(self._loop)
            box["runner"], box["port"] = self._loop.run_until_complete(_serve(self.app, 0))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        ready.wait(30)
        self._runner: web.AppRunner = box["runner"]
        self.url = f"http://127.0.0.1:{box['port']}/v1"

    def seeds(self) -> list[int]:
        return [entry["body"]["seed"] for entry in list(self.app.log)]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def server() -> Iterator[Served]:
    served = Served()
    yield served
    served.stop()


def kgsynth(graph: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "--uri", f"embedded:{graph}", *args],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(graph.parent), "OPENAI_API_KEY": "sk-test"},
        capture_output=True,
        text=True,
        timeout=240,
    )


def planned(graph: Path, n: int, seed: int) -> list[GenerationSpec]:
    store = open_embedded(graph)
    try:
        planner = Planner(store, PlanRequest(recipe="dualalign", icd=("G30.9",), n=n, seed=seed))
        return list(planner.iter_specs())
    finally:
        store.close()


def test_generate_regenerates_rejects_and_counts(
    graph: Path, server: Served, tmp_path: Path
) -> None:
    n, run_seed = 8, 3
    specs = planned(graph, n, run_seed)
    assert all(s.window is not None and not s.window.diagnosed for s in specs)  # pre-diagnosis
    seeds = [s.record_seed for s in specs]

    def regen(i: int, k: int) -> int:
        return regeneration_seed(seeds[i], k)

    replies = server.app.replies
    for i, spec in enumerate(specs):  # by default every answer is a clean note of its own
        replies[seeds[i]] = clean_note(spec.record_id)
        for k in (1, 2, 3):
            replies[regen(i, k)] = clean_note(f"{spec.record_id}/{k}")
    leak = f"{clean_note('leak')} Impression: early Fixture Alzheimer disease."
    copied = f"{clean_note('copy')} {COPIED} up in clinic."
    referenced = f"{clean_note('ref')} {REFERENCE_TEXT}"
    replies[seeds[1]] = leak  # record 1: leakage, then a clean regeneration
    replies[seeds[2]] = copied  # record 2: the example note copied, then clean
    for k in (0, 1, 2, 3):  # record 4: copies every time: rejected after 3 regenerations
        replies[regen(4, k) if k else seeds[4]] = f"{clean_note(f'c{k}')} {COPIED} soon."
    accepted_1 = replies[regen(1, 1)]
    near = accepted_1.replace("Note", "Record", 1)  # one word changed
    replies[seeds[5]] = near  # record 5: a near-copy of record 1's accepted note, then clean
    replies[seeds[6]] = referenced  # record 6: a passage of the reference corpus, then clean

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        json.dumps({"id": "real-1", "body": REFERENCE_TEXT})
        + "\n"
        + json.dumps({"id": "real-2", "body": "An unrelated clinic letter."})
        + "\n"
    )
    out = tmp_path / "notes.jsonl"
    args = [
        "generate", "--recipe", "dualalign", "--icd", "G30.9", "-n", str(n), "--seed",
        str(run_seed), "--model", "test-model", "--base-url", server.url, "-o", str(out),
        "--reference", str(corpus), "--reference-field", "body", "--concurrency", "4",
        "--gate", "all",
    ]  # fmt: skip
    done = kgsynth(graph, *args)
    assert done.returncode == 0, done.stderr
    assert "wrote 7 ok, 0 failed" in done.stderr
    assert "gate: 15 answer(s) checked" in done.stderr

    records = read_records(out)
    ids = [s.record_id for s in specs]
    status = {rid: records[rid].status for rid in ids}
    assert status == {rid: "rejected" if i == 4 else "ok" for i, rid in enumerate(ids)}
    by_index = [records[rid] for rid in ids]
    gates = [r.gate for r in by_index]
    assert all(g is not None for g in gates)
    checks = [[x.check for x in g.rejections] for g in gates if g is not None]
    assert checks == [
        [],
        ["leakage"],
        ["privacy"],
        [],
        ["privacy"] * 4,
        ["near-duplicate"],
        ["privacy"],
        [],
    ]
    r1, r2, r4, r5, r6 = (gates[i] for i in (1, 2, 4, 5, 6))
    assert r1 is not None and r1.rejections[0].term == "Fixture Alzheimer disease"
    assert r1.seed == regen(1, 1) and by_index[1].text == accepted_1
    assert r2 is not None and r2.rejections[0].source == EXAMPLE_ID
    assert r5 is not None and r5.rejections[0].similar_to == ids[1]
    assert r6 is not None and r6.rejections[0].source == "reference:real-1"
    assert r4 is not None and [x.seed for x in r4.rejections] == [seeds[4]] + [
        regen(4, k) for k in (1, 2, 3)
    ]
    assert r4.regenerations == 3 and r4.seed is None
    rejected = by_index[4]
    assert rejected.text is None and rejected.raw_response is None and rejected.parsed is None
    assert rejected.reason is not None and rejected.reason.startswith("privacy: shares a 12-token")
    # the server saw each record's first seed, then exactly the derived seeds asked for
    sent = server.seeds()
    assert sorted(sent) == sorted(
        [*seeds, regen(1, 1), regen(2, 1), regen(4, 1), regen(4, 2), regen(4, 3), regen(5, 1),
         regen(6, 1)]
    )  # fmt: skip

    # no rejected answer is kept as text anywhere in the output
    blob = out.read_text()
    rejected_texts = [leak, copied, near, referenced] + [
        replies[regen(4, k) if k else seeds[4]] for k in range(4)
    ]
    for text in rejected_texts:
        assert text not in blob
        assert all(text != r.text and text != r.raw_response for r in records.values())

    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["records"] == {"ok": 7, "failed": 0, "rejected": 1}
    assert manifest["gate"]["checks"] == ["privacy", "leakage", "near-duplicate"]
    assert manifest["gate"]["reference"].endswith(":body")
    # by hand: 8 first answers + 7 regenerations (records 1, 2, 5, 6 once; record 4 three times)
    assert manifest["runs"][-1]["gate"] == {
        "checked": 15,
        "accepted": 7,
        "rejected": {"privacy": 1 + 4 + 1, "leakage": 1, "near-duplicate": 1},
        "regenerated": 7,
        "accepted_after_regeneration": 4,
        "records_rejected": 1,
    }
    assert manifest["runs"][-1]["rejected"] == 1

    # rerun: everything settled (rejected records are final), nothing asked again
    again = kgsynth(graph, *args)
    assert again.returncode == 0, again.stderr
    assert "wrote 0 ok, 0 failed (0 from cache, 8 already done)" in again.stderr
    assert len(server.seeds()) == len(sent)

    # another gate is another run identity: refused, with the change named
    other = kgsynth(graph, *args, "--ngram", "8")
    assert other.returncode == 2 and "source.gate.ngram: 12 -> 8" in other.stderr


def test_gate_options_and_a_malformed_reference_corpus(graph: Path, tmp_path: Path) -> None:
    base = ["generate", "--recipe", "medsyn", "--icd", "G30.9", "-n", "3", "--backend", "template"]
    bad = tmp_path / "corpus.jsonl"
    bad.write_text('{"text": "a note"}\n{"text": "an unfinished line\n')
    out = tmp_path / "a.jsonl"
    refused = kgsynth(graph, *base, "-o", str(out), "--reference", str(bad))
    assert refused.returncode == 2 and f"--reference {bad}, line 2: not JSON" in refused.stderr
    assert "Traceback" not in refused.stderr and not out.exists()
    unknown = kgsynth(graph, *base, "-o", str(out), "--gate", "privacy,plagiarism")
    assert unknown.returncode == 2 and "--gate 'privacy,plagiarism': expected all, none" in (
        unknown.stderr
    )
    off = kgsynth(graph, *base, "-o", str(out), "--gate", "none")
    assert off.returncode == 0, off.stderr
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["gate"] is None and "gate" not in manifest["runs"][-1]
    assert all(r.gate is None for r in read_records(out).values())


def gate_run(
    url: str,
    out: Path,
    jobs: list[GenerationJob],
    *,
    concurrency: int,
    stop_after: float | None = None,
    cache: Path | None = None,
) -> RunSummary:
    async def go() -> RunSummary:
        backend = OpenAIBackend("test-model", base_url=url)
        db = RequestCache(cache) if cache else None
        runner = Runner(
            backend,
            out,
            params=SamplingParams(),
            config=RunConfig(concurrency=concurrency, timeout_s=10.0, progress=False),
            source={"test": "gate"},
            cache=db,
            gate=Gate(GateConfig(checks=("near-duplicate",), regenerate=2)),
        )
        if stop_after is not None:
            asyncio.get_running_loop().call_later(stop_after, runner.request_stop)
        try:
            return await runner.run(jobs, total=len(jobs))
        finally:
            await backend.aclose()
            if db is not None:
                db.close()

    return asyncio.run(go())


def jobs(n: int) -> list[GenerationJob]:
    return [
        GenerationJob(
            record_id=f"rec-{i}",
            record_index=i,
            messages=[{"role": "user", "content": f"Write note {i}."}],
            seed=1000 + i,
        )
        for i in range(n)
    ]


def test_resume_rebuilds_the_near_duplicate_state_from_the_output(
    server: Served, tmp_path: Path
) -> None:
    all_jobs = jobs(6)
    replies = server.app.replies
    for job in all_jobs:
        assert job.seed is not None
        replies[job.seed] = clean_note(job.record_id)
        replies[regeneration_seed(job.seed, 1)] = clean_note(f"{job.record_id}/1")
    replies[1004] = replies[1001].replace("Note", "Copy", 1)  # rec-4 nearly copies rec-1
    out = tmp_path / "notes.jsonl"
    first = gate_run(server.url, out, all_jobs[:3], concurrency=4)
    assert first.ok == 3 and first.gate is not None and first.gate.checked == 3
    second = gate_run(server.url, out, all_jobs, concurrency=4)
    assert second.skipped == 3 and second.ok == 3
    records = read_records(out)
    report = records["rec-4"].gate
    assert report is not None and [x.similar_to for x in report.rejections] == ["rec-1"]
    assert records["rec-4"].text == replies[regeneration_seed(1004, 1)]
    manifest = json.loads(manifest_path(out).read_text())
    assert [r["gate"]["checked"] for r in manifest["runs"]] == [3, 4]
    assert manifest["runs"][1]["gate"]["rejected"]["near-duplicate"] == 1


def test_near_duplicate_decisions_follow_input_order_not_completion_order(
    server: Served, tmp_path: Path
) -> None:
    all_jobs = jobs(6)
    replies, delays = server.app.replies, server.app.delays
    for job in all_jobs:
        assert job.seed is not None
        replies[job.seed] = clean_note(job.record_id)
        for k in (1, 2):
            replies[regeneration_seed(job.seed, k)] = clean_note(f"{job.record_id}/{k}")
    shared = clean_note("shared")
    replies[1001] = shared
    delays[1001] = 1.0  # rec-1 answers last ...
    replies[1002] = shared.replace("Note", "Copy", 1)  # ... but rec-2 and rec-3 copy it
    replies[1003] = shared.replace("Note", "Draft", 1)
    outcomes, before = [], 0
    for concurrency in (1, 6):
        before = len(server.app.log)
        out = tmp_path / f"c{concurrency}.jsonl"
        summary = gate_run(server.url, out, all_jobs, concurrency=concurrency)
        assert summary.ok == 6 and summary.rejected == 0
        records = read_records(out)
        outcomes.append(
            {
                rid: (
                    r.text,
                    [(x.check, x.similar_to) for x in (r.gate.rejections if r.gate else [])],
                )
                for rid, r in records.items()
            }
        )
    assert outcomes[0] == outcomes[1]
    assert outcomes[1]["rec-1"] == (shared, [])
    for rid in ("rec-2", "rec-3"):
        assert outcomes[1][rid][1] == [("near-duplicate", "rec-1")]
    # with 6 in flight rec-2 and rec-3 were answered before rec-1 and still waited for it
    log = list(server.app.log)[before:]
    assert len(log) == 6 + 2  # two regenerations
    done = {e["body"]["seed"]: e["done"] for e in log}
    assert done[1002] < done[1001] and done[1003] < done[1001]


def test_a_stop_writes_what_can_be_decided_and_leaves_the_rest_pending(
    server: Served, tmp_path: Path
) -> None:
    all_jobs = jobs(6)
    replies, delays = server.app.replies, server.app.delays
    for job in all_jobs:
        assert job.seed is not None
        replies[job.seed] = clean_note(job.record_id)
        replies[regeneration_seed(job.seed, 1)] = clean_note(f"{job.record_id}/1")
    # in flight at the stop: rec-1 answers late and is still decided, rec-2..5 wait for it
    delays[1001] = 1.0
    out = tmp_path / "late.jsonl"
    first = gate_run(server.url, out, all_jobs, concurrency=6, stop_after=0.3)
    assert first.status == "interrupted" and first.ok == 6
    assert len(out.read_text().splitlines()) == len(server.app.log) == 6

    # rec-1's late answer nearly copies rec-0: its regeneration would start after the stop,
    # so rec-1 stays pending, and so do rec-2..5 (answered, but not decidable without it)
    server.app.log.clear()
    replies[1001] = replies[1000].replace("Note", "Copy", 1)
    out, db = tmp_path / "hole.jsonl", tmp_path / "hole.sqlite"
    second = gate_run(server.url, out, all_jobs, concurrency=6, stop_after=0.3, cache=db)
    assert second.status == "interrupted" and second.ok == 1
    assert list(read_records(out)) == ["rec-0"] and len(server.app.log) == 6
    # the rerun pays only for rec-1's regeneration: the pending records' answers were cached
    third = gate_run(server.url, out, all_jobs, concurrency=6, cache=db)
    assert [e["body"]["seed"] for e in server.app.log[6:]] == [regeneration_seed(1001, 1)]
    assert third.status == "complete" and third.skipped == 1 and third.ok == 5
    records = read_records(out)
    assert all(r.status == "ok" for r in records.values()) and len(records) == 6
    report = records["rec-1"].gate
    assert report is not None and [x.similar_to for x in report.rejections] == ["rec-0"]
