"""Longitudinal planning throughput (``plan --patients``) against ordinary planning and the
naive way.

``kgsynth plan --recipe dualalign --icd G30.9 --patients P --format openai-batch`` end to end:
resolve, read the profile once, sample whole batches of patients (each patient's history once
per batch, shared by its visits), render every visit's chat messages and serialise the OpenAI
Batch request line; in one process and in two forked workers (``plan --workers 2``). Compared
with the same number of ordinary dualalign records (no patients) and with the naive way: each
record planned alone (``planner.iter_specs(i, i + 1)``), so every visit samples its patient's
whole history by itself; the naive lines are checked to be exactly the batched ones.

Content: the curated seed modules with the Symptom Ontology symptoms and ICD-10-CM codes they
use (``loaders.seed.curated_with_codes``), written into a fresh embedded store. Wall
clock; the median of ``--repeat`` runs. The load average is printed at the start and the end:
figures taken on a busy machine are indicative only.

    python benchmarks/bench_patients.py [--patients 7700] [--naive 26] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stores import embedded_store  # noqa: E402

from engine.plan import (  # noqa: E402
    Planner,
    PlanRequest,
    openai_batch_line,
    plan_lines,
    sampling_params,
)
from kg.store import GraphStore  # noqa: E402
from kg.store.writer import write_batch  # noqa: E402
from loaders.seed import curated_with_codes  # noqa: E402

ICD = "G30.9"
SEED = 7


def timed(fn: Callable[[], int], repeat: int) -> tuple[float, float]:
    """Median items per second of ``fn`` (which returns how many it made): wall clock, and per
    second of this process's CPU time (forked workers' time not included)."""
    wall, cpu = [], []
    for _ in range(repeat):
        gc.collect()
        started, cpu_started = time.perf_counter(), time.process_time()
        count = fn()
        wall.append(count / (time.perf_counter() - started))
        cpu.append(count / max(time.process_time() - cpu_started, 1e-9))
    return statistics.median(wall), statistics.median(cpu)


def batched(planner: Planner, head: list[str], keep: int, workers: int = 1) -> int:
    """``plan --format openai-batch`` over the planner's whole run; ``head`` gets the first
    ``keep`` lines (the rest is counted and dropped, as a file write would)."""
    head.clear()
    line = partial(openai_batch_line, "bench-model", sampling_params(planner.recipe.generation))
    count = 0
    for text, k in plan_lines(planner, partial(line, None), workers=workers):
        if len(head) < keep:
            head.extend(text.splitlines()[: keep - len(head)])
        count += k
    return count


def naive(planner: Planner, out: list[str], n: int) -> int:
    """Each record planned alone: a batch of one, its patient's whole history sampled again."""
    out.clear()
    params = sampling_params(planner.recipe.generation)
    for i in range(n):
        (spec,) = planner.iter_specs(i, i + 1)
        out.append(openai_batch_line("bench-model", params, None, spec))
    return n


def planner(store: GraphStore, n: int, patients: bool) -> Planner:
    return Planner(
        store, PlanRequest(recipe="dualalign", icd=(ICD,), n=n, patients=patients, seed=SEED)
    )


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench(store: GraphStore, args: argparse.Namespace) -> None:
    patients = planner(store, args.patients, True)
    compiled = patients.compiled[0].patients
    assert compiled is not None
    visits, total = compiled.visits, patients.total
    print(f"# {args.patients} patients x {visits} visits = {total} records", flush=True)
    head: list[str] = []
    rate, cpu = timed(partial(batched, patients, head, args.naive), args.repeat)
    print(f"#   patients, 1 process: {rate:.0f} specs/s ({cpu:.0f} per CPU-second)", flush=True)
    workers = 2
    heads2: list[str] = []
    wrate, _ = timed(partial(batched, patients, heads2, args.naive, workers), args.repeat)
    if heads2 != head:
        raise SystemExit("two workers produced different lines")
    print(f"#   patients, {workers} workers: {wrate:.0f} specs/s", flush=True)
    ordinary = planner(store, total, False)
    orate, ocpu = timed(partial(batched, ordinary, [], 0), args.repeat)
    print(f"#   ordinary dualalign: {orate:.0f} specs/s ({ocpu:.0f} per CPU-second)", flush=True)
    naive_lines: list[str] = []
    nrate, _ = timed(partial(naive, patients, naive_lines, args.naive), 1)
    if naive_lines != head:
        raise SystemExit("the naive way produced different specs")
    print(
        f"#   naive (a batch of one per record, {args.naive} records, identical lines): "
        f"{nrate:.1f} specs/s",
        flush=True,
    )
    print(f"# ratio per CPU-second (less sensitive to load): {cpu / ocpu:.2f}", flush=True)
    print(f"# load average at the end: {load()}", flush=True)
    print(f"BENCH patients_plan_specs_per_s {rate:.0f} specs/s")
    print(f"BENCH patients_plan_workers{workers}_specs_per_s {wrate:.0f} specs/s")
    print(f"BENCH patients_vs_independent_ratio {rate / orate:.2f}")
    print(f"BENCH patients_vs_naive_speedup {rate / nrate:.0f} x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=7700, help="patients per fast run")
    parser.add_argument(
        "--naive", type=int, default=26, help="records for the naive way (2 patients)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(
        f"# {os.cpu_count()} CPUs, load average {load()}; patients={args.patients}, "
        f"naive={args.naive}, repeat={args.repeat}",
        flush=True,
    )
    content = curated_with_codes()
    # Seeding loads the ICD-10-CM library (~650k objects) that ``kgsynth plan`` never loads;
    # kept out of the collector so its full collections scan what a planning process holds.
    gc.collect()
    gc.freeze()
    with embedded_store() as store:
        store.apply_schema()
        write_batch(store, content)
        bench(store, args)


if __name__ == "__main__":
    main()
