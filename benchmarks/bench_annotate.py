"""Annotation throughput: segmentation, the lexicon annotator, and LLM labelling via the runner.

Notes: ``-n`` DualAlign specs planned from the curated seed (real annotation protocols in the
prompt), written by the template realizer (no model).

1. Segmentation (medspaCy): notes and sentences per second.
2. Lexicon annotator: sentences per second over the segmented notes, beside the naive way
   (one annotator call per sentence) measured on the same sentences.
3. LLM annotation against the local OpenAI-compatible test server (own process) with 200 ms
   latency at concurrency 32 (theory: 32 / 0.2 = 160 chunk requests/s): chunk requests per
   second in the runner phase (the headline, target >= 90% of theory), the whole pass
   (segmentation + runner + assembly + constraint check), and the naive way (sequential
   awaits on ``--naive`` chunks) beside it.

Run: ``python benchmarks/bench_annotate.py``. Ends with ``BENCH <name> <value> <unit>`` lines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.annotate.llm import annotation_prompt, chunk_job, output_model
from engine.annotate.notes import Note
from engine.annotate.output import AnnotationLog
from engine.annotate.pipeline import (
    LlmRun,
    Prepared,
    annotate_llm,
    chunk_plan,
)
from engine.annotate.scheme import scheme_of
from engine.annotate.segment import segment
from engine.llm.base import LLMRequest, SamplingParams
from engine.llm.openai_backend import OpenAIBackend
from engine.llm.template import realize
from engine.plan import Planner, PlanRequest
from engine.profile import DiseaseProfile, Target, load_profile
from engine.provenance import sha256_hex
from engine.runner import RunConfig
from kg.settings import GraphSettings
from kg.store import open_store
from kg.store.writer import write_batch
from loaders.seed import curated_with_codes
from tests.llm_server import ProcessServer, ServerConfig

LATENCY = 0.2
PARAMS = SamplingParams(temperature=0.0, max_tokens=1024)


def planned_notes(n: int) -> tuple[list[Prepared], DiseaseProfile]:
    """``n`` template notes on DualAlign specs from the curated seed, ready to annotate."""
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(GraphSettings(uri=f"embedded:{tmp}/bench.db"))
        try:
            store.apply_schema()
            write_batch(store, curated_with_codes())
            planner = Planner(store, PlanRequest(recipe="dualalign", icd=("G30.9",), n=n, seed=11))
            specs = list(planner.iter_specs())
            target = Target(disease_id=specs[0].disease_id, disease=specs[0].disease)
            profile = load_profile(store, target)
        finally:
            store.close()
    scheme = scheme_of(profile, specs[0].scheme)
    items = []
    for spec in specs:
        text = realize(spec)
        note = Note(spec.record_id, spec.record_index, text, spec, sha256_hex(text))
        items.append(Prepared(note, profile, scheme))
    return items, profile


def bench_segment(items: list[Prepared]) -> tuple[float, float, int]:
    start = time.perf_counter()
    sentences = sum(len(segment(item.note.text)) for item in items)
    elapsed = time.perf_counter() - start
    return len(items) / elapsed, sentences / elapsed, sentences


async def llm_pass(
    url: str, items: list[Prepared], work: Path, concurrency: int
) -> tuple[float, float, int]:
    """(runner chunk req/s, whole-pass chunk req/s, chunks) of one annotate pass."""
    backend = OpenAIBackend("bench-model", base_url=url)
    config = RunConfig(concurrency=concurrency, progress=False, timeout_s=30)
    log = AnnotationLog(work / "ann.jsonl").load()
    start = time.perf_counter()
    try:
        summary = await annotate_llm(items, log, LlmRun(backend, PARAMS, config))
    finally:
        log.close()
        await backend.aclose()
    elapsed = time.perf_counter() - start
    run = summary.run
    assert run is not None and run.failed == 0 and summary.ok == len(items), summary
    return run.ok / run.elapsed_s, run.ok / elapsed, run.ok


async def naive_rate(url: str, items: list[Prepared], n: int) -> float:
    """Sequential awaits, one chunk after another, through the same backend."""
    plan = chunk_plan(items, 12)
    model = output_model(item.scheme for item, _ in plan if item.scheme)
    jobs = [chunk_job(c, i) for i, c in enumerate(c for _, cs in plan for c in cs)][:n]
    backend = OpenAIBackend("bench-model", base_url=url)
    start = time.perf_counter()
    for job in jobs:
        await backend.complete(LLMRequest(job.record_id, job.messages, PARAMS, job.seed, model))
    elapsed = time.perf_counter() - start
    await backend.aclose()
    return len(jobs) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="notes per LLM pass")
    parser.add_argument(
        "--lexicon-notes", type=int, default=500, help="notes for segmentation/lexicon"
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="LLM passes for the headline")
    parser.add_argument("--naive", type=int, default=40, help="chunks for the sequential pass")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {os.cpu_count()} CPUs, load average {load:.1f}; n={args.n}")
    items, profile = planned_notes(max(args.n, args.lexicon_notes))
    print(f"# template prompt sha256 {annotation_prompt().hash[:12]}", flush=True)
    segment("Warm up. The pipeline loads once.")
    results: list[tuple[str, float, str]] = []

    sample = items[: args.lexicon_notes]
    notes_s, sent_s, n_sent = bench_segment(sample)
    print(f"segmentation: {notes_s:.1f} notes/s, {sent_s:.1f} sentences/s ({n_sent} sentences)")
    results += [
        ("segment_notes_per_s", notes_s, "notes/s"),
        ("segment_sentences_per_s", sent_s, "sent/s"),
    ]
    results += bench_lexicon(sample, profile)

    theory = args.concurrency / LATENCY
    server = ProcessServer(ServerConfig(latency_s=LATENCY, log_bodies=False))
    try:
        runner_rates, whole_rates = [], []
        for rep in range(args.repeats):
            work = Path(tempfile.mkdtemp(prefix="bench-annotate-"))
            # fresh record ids per pass: nothing comes from an earlier pass
            batch = [
                replace(i, note=replace(i.note, record_id=f"{i.note.record_id}-r{rep}"))
                for i in items[: args.n]
            ]
            runner_rate, whole, chunks = asyncio.run(
                llm_pass(server.url, batch, work, args.concurrency)
            )
            runner_rates.append(runner_rate)
            whole_rates.append(whole)
            print(
                f"LLM pass {rep + 1}: {chunks} chunks, runner {runner_rate:.1f} req/s "
                f"({100 * runner_rate / theory:.1f}% of {theory:.0f}), "
                f"whole pass {whole:.1f} req/s",
                flush=True,
            )
        naive = asyncio.run(naive_rate(server.url, items, args.naive))
        print(f"naive sequential awaits: {naive:.2f} req/s", flush=True)
    finally:
        server.stop()
    rate = statistics.median(runner_rates)
    results += [
        (f"annotate_llm_c{args.concurrency}_pct_of_theory", 100 * rate / theory, "%"),
        (f"annotate_llm_c{args.concurrency}_req_per_s", rate, "req/s"),
        ("annotate_llm_whole_pass_req_per_s", statistics.median(whole_rates), "req/s"),
        ("annotate_llm_naive_req_per_s", naive, "req/s"),
        ("annotate_llm_speedup_vs_naive", rate / naive, "x"),
    ]
    for name, value, unit in results:
        print(f"BENCH {name} {value:.2f} {unit}")


def bench_lexicon(items: list[Prepared], profile: DiseaseProfile) -> list[tuple[str, float, str]]:
    """Lexicon annotator sentences/s (all notes through one pipe) beside one call per sentence."""
    from engine.annotate.lexicon import LexiconAnnotator

    scheme = items[0].scheme
    assert scheme is not None
    annotator = LexiconAnnotator.from_profiles(profile, scheme.scheme)
    notes = [(item.note.text, segment(item.note.text)) for item in items]
    total = sum(len(s) for _, s in notes)
    start = time.perf_counter()
    annotator.annotate_many(notes)
    rate = total / (time.perf_counter() - start)
    few = [(text, s) for text, sentences in notes[: max(1, len(notes) // 10)] for s in sentences]
    start = time.perf_counter()
    for text, sentence in few:
        annotator.annotate(text, [sentence])
    naive = len(few) / (time.perf_counter() - start)
    print(f"lexicon annotator: {rate:.1f} sentences/s; one call per sentence {naive:.1f}/s")
    return [
        ("lexicon_sentences_per_s", rate, "sent/s"),
        ("lexicon_naive_per_sentence_per_s", naive, "sent/s"),
        ("lexicon_speedup_vs_naive", rate / naive, "x"),
    ]


if __name__ == "__main__":
    main()
