"""Planning throughput: specs per second with prompt rendering, against the naive way.

The planner reads each disease's profile once, compiles numpy tables and samples whole
batches; every spec is rendered to chat messages and serialised as an OpenAI Batch request
line (exactly what ``kgsynth plan --format openai-batch`` writes), in one process and, for
dualalign, in one forked worker per CPU (``plan --workers``; the same bytes). The naive way
touches the graph for every record:

* ``naive`` -- one graph query per record (the disease's symptom read, ``profile_symptoms``),
  with everything else served from memory and the same sampling and rendering: the cheapest
  per-record graph access there is, so the ratio against it is a lower bound;
* ``naive_full`` -- the whole profile read again (ten named queries) and the samplers compiled
  again for every record.

Both naive variants produce exactly the planner's specs (checked). Content: the curated seed
(kg/seed/*.yaml) plus the ICD-10-CM codes it references, written (MERGE) into a fresh
embedded store and into Neo4j (``NEO4J_URI``/``NEO4J_PASSWORD``, else a private local server
via tests/neo4j_server.py). Wall-clock seconds; the median of ``--repeat`` runs.

It also measures ``kgsynth audit`` over ``--n`` planned dualalign specs (a JSONL file streamed
with one profile read per disease) against the naive audit that reads the profile again for
every record.

    python benchmarks/bench_plan.py [--n 100000] [--naive 300] [--repeat 3] [--no-neo4j]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from pydantic import SecretStr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.audit.specs import SpecAuditor, audit_specs_file, read_records  # noqa: E402
from engine.plan import (  # noqa: E402
    CompiledRecipe,
    Planner,
    PlanRequest,
    openai_batch_line,
    plan_lines,
    sampling_params,
)
from engine.profile import Target, load_profile  # noqa: E402
from kg.queries import get_query  # noqa: E402
from kg.settings import GraphSettings  # noqa: E402
from kg.store import GraphStore, open_store  # noqa: E402
from kg.store.falkor_store import FalkorStore  # noqa: E402
from kg.store.writer import write_batch  # noqa: E402
from loaders.seed import curated_with_codes  # noqa: E402

CASES = [("dualalign", "G30.9"), ("medsyn", "G30.9"), ("mh_report", "F32.9")]


def timed(fn: Callable[[], int], repeat: int) -> tuple[float, float]:
    """Median items per second of ``fn`` (which returns how many it made): wall clock, and
    per second of this process's CPU time (less sensitive to other load on the machine)."""
    wall, cpu = [], []
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        count = fn()
        wall.append(count / (time.perf_counter() - started))
        cpu.append(count / max(time.process_time() - cpu_started, 1e-9))
    return statistics.median(wall), statistics.median(cpu)


def fast(
    store: GraphStore, recipe: str, code: str, n: int, sink: list[str], workers: int = 1
) -> int:
    """``kgsynth plan --format openai-batch`` end to end: resolve, read profiles once, sample,
    render, serialise (in ``workers`` forked processes); ``sink`` gets the text in chunks."""
    sink.clear()
    planner = Planner(store, PlanRequest(recipe=recipe, icd=(code,), n=n, seed=7))
    params = sampling_params(planner.recipe.generation)
    line = partial(openai_batch_line, "bench-model", params, None)
    count = 0
    for text, k in plan_lines(planner, line, workers=workers):
        sink.append(text)
        count += k
    return count


def naive(store: GraphStore, recipe: str, code: str, n: int, sink: list[str], full: bool) -> int:
    """One record at a time, going back to the graph for each."""
    sink.clear()
    planner = Planner(store, PlanRequest(recipe=recipe, icd=(code,), n=n, seed=7))
    compiled = planner.compiled[0]
    profile = compiled.profile
    target = Target(disease_id=profile.disease_id, disease=profile.disease, icd=profile.icd)
    symptoms = get_query("profile_symptoms").text
    params = sampling_params(planner.recipe.generation)
    for i in range(n):
        if full:
            fresh = load_profile(store, target)
            compiled = CompiledRecipe(planner.recipe, planner.params, fresh)
        else:
            store.read(symptoms, {"disease": profile.disease_id})
        spec = compiled.specs(7, np.array([i], dtype=np.int64))[0]
        sink.append(openai_batch_line("bench-model", params, None, spec))
    return len(sink)


def audit_file(store: GraphStore, path: Path) -> int:
    """``kgsynth audit``: stream the specs file, one profile read per disease."""
    report = audit_specs_file(store, path)
    if report.violations:
        raise SystemExit(f"the audit found violations: {report.counts()}")
    return report.checked


def audit_naive(store: GraphStore, path: Path, n: int) -> int:
    """The naive audit: the disease's profile read again for every record."""
    checked = 0
    for _, rec in read_records(path):
        auditor = SpecAuditor(store)
        auditor.check(rec)
        if auditor.findings:
            raise SystemExit("the naive audit found violations")
        checked += 1
        if checked == n:
            break
    return checked


def bench_audit(label: str, store: GraphStore, args: argparse.Namespace) -> None:
    """Audit throughput over ``--n`` planned dualalign specs, against the naive audit."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "specs.jsonl"
        planner = Planner(store, PlanRequest(recipe="dualalign", icd=("G30.9",), n=args.n, seed=7))
        with path.open("w", encoding="utf-8") as fh:
            for spec in planner.iter_specs():
                fh.write(spec.model_dump_json() + "\n")
        rate, cpu = timed(partial(audit_file, store, path), args.repeat)
        name = "audit_specs_per_s" + ("" if label == "embedded" else f"_{label}")
        print(f"BENCH {name} {rate:.0f} specs/s", flush=True)
        print(f"#   {name} per CPU-second of this process: {cpu:.0f} specs/s", flush=True)
        nrate, _ = timed(partial(audit_naive, store, path, max(20, args.naive // 5)), 1)
        print(f"BENCH audit_naive_specs_per_s_{label} {nrate:.1f} specs/s", flush=True)
        print(f"BENCH audit_vs_naive_{label} {rate / nrate:.0f} x", flush=True)


def bench(label: str, store: GraphStore, args: argparse.Namespace) -> None:
    fast_lines: list[str] = []
    naive_lines: list[str] = []
    for recipe, code in CASES:
        rate, cpu = timed(partial(fast, store, recipe, code, args.n, fast_lines), args.repeat)
        name = "plan_specs_per_s" + ("" if recipe == "dualalign" else f"_{recipe}")
        name += "" if (label, recipe) == ("embedded", "dualalign") else f"_{label}"
        print(f"BENCH {name} {rate:.0f} specs/s", flush=True)
        print(f"#   {name} per CPU-second of this process: {cpu:.0f} specs/s", flush=True)
        if recipe != "dualalign":
            continue
        workers = os.cpu_count() or 1
        if workers > 1:
            wrate, _ = timed(
                partial(fast, store, recipe, code, args.n, fast_lines, workers), args.repeat
            )
            print(f"BENCH {name}_{workers}_workers {wrate:.0f} specs/s", flush=True)
        head = "".join(fast_lines).splitlines()[: args.naive]
        for full in (False, True):
            count = args.naive if not full else max(20, args.naive // 5)
            nrate, _ = timed(partial(naive, store, recipe, code, count, naive_lines, full), 1)
            if naive_lines != head[:count]:
                raise SystemExit("the naive way produced different specs")
            tag = "naive_full" if full else "naive"
            print(f"BENCH plan_{tag}_specs_per_s_{label} {nrate:.1f} specs/s", flush=True)
            print(f"BENCH plan_vs_{tag}_{label} {rate / nrate:.0f} x", flush=True)
    bench_audit(label, store, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="specs per fast run")
    parser.add_argument("--naive", type=int, default=300, help="records for the naive way")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-neo4j", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {os.cpu_count()} CPUs, load average {load:.1f}; n={args.n}, naive={args.naive}")
    content = curated_with_codes()
    # Seeding loads the ICD-10-CM library (~650k objects) that ``kgsynth plan`` never loads;
    # kept out of the collector so its full collections scan what a planning process holds.
    gc.collect()
    gc.freeze()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(GraphSettings(uri=f"embedded:{tmp}/bench.db"))
        assert isinstance(store, FalkorStore)
        store.apply_schema()
        write_batch(store, content)
        bench("embedded", store, args)
        store.close()
    if args.no_neo4j:
        return
    from tests.neo4j_server import ensure_neo4j, stop

    conn = ensure_neo4j()
    neo = open_store(
        GraphSettings(uri=conn.uri, username=conn.username, password=SecretStr(conn.password))
    )
    try:
        print(f"# {neo.server_version()} at {conn.uri}")
        neo.apply_schema()
        write_batch(neo, content)
        bench("neo4j", neo, args)
    finally:
        neo.close()
        stop()


if __name__ == "__main__":
    main()
