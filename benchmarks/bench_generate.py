"""Generation throughput against the local OpenAI-compatible test server (in its own process).

1. 2,000 records at concurrency 32 with 200 ms server latency (theory: 32 / 0.2 = 160 req/s),
   through the full runner (cache, JSONL output, provenance, AIMD); median of ``--repeats``;
   then the same at concurrency 64 and 128 (theory 320 and 640 req/s).
2. The same load through a plain ``AsyncOpenAI`` + semaphore loop, for reference.
3. The naive way: sequential awaits (measured on ``--naive`` records, same server).
4. A rerun of the same 2,000 records served by the request cache.
5. The peak request rate the runner sustains at zero latency as concurrency grows.

Run: ``python benchmarks/bench_generate.py``. Ends with ``BENCH <name> <value> <unit>`` lines.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.llm.base import SamplingParams
from engine.llm.openai_backend import OpenAIBackend
from engine.runner import GenerationJob, RequestCache, RunConfig, Runner
from tests.llm_server import ProcessServer, ServerConfig

LATENCY = 0.2
PARAMS = SamplingParams(temperature=0.7, max_tokens=256)


def make_jobs(n: int, tag: str) -> list[GenerationJob]:
    return [
        GenerationJob(
            record_id=f"{tag}-{i:06d}",
            record_index=i,
            messages=[
                {"role": "system", "content": "You write concise outpatient SOAP notes."},
                {"role": "user", "content": f"Patient {tag}-{i}.\nKeywords: cough, fatigue"},
            ],
            seed=i,
        )
        for i in range(n)
    ]


async def runner_rate(
    url: str, jobs: list[GenerationJob], concurrency: int, out: Path, cache: Path | None
) -> tuple[float, int]:
    """(records per second, records served from cache) for one full runner pass."""
    backend = OpenAIBackend("bench-model", base_url=url)
    db = RequestCache(cache) if cache else None
    config = RunConfig(concurrency=concurrency, progress=False, timeout_s=30)
    try:
        runner = Runner(backend, out, params=PARAMS, config=config, cache=db)
        start = time.perf_counter()
        summary = await runner.run(jobs, total=len(jobs))
        elapsed = time.perf_counter() - start
    finally:
        await backend.aclose()
        if db:
            db.close()
    assert summary.ok == len(jobs), summary
    return len(jobs) / elapsed, summary.cached


async def plain_rate(url: str, jobs: list[GenerationJob], concurrency: int) -> float:
    """The reference: ``AsyncOpenAI.chat.completions.create`` under a semaphore."""
    client = openai.AsyncOpenAI(base_url=url, api_key="bench", max_retries=0)
    sem = asyncio.Semaphore(concurrency)

    async def one(job: GenerationJob) -> None:
        async with sem:
            await client.chat.completions.create(
                model="bench-model",
                messages=job.messages,  # type: ignore[arg-type]
                temperature=PARAMS.temperature,
                max_tokens=PARAMS.max_tokens,
                seed=job.seed,
            )

    start = time.perf_counter()
    await asyncio.gather(*(one(job) for job in jobs))
    elapsed = time.perf_counter() - start
    await client.close()
    return len(jobs) / elapsed


async def naive_rate(url: str, jobs: list[GenerationJob]) -> float:
    """One request at a time: what a plain ``for`` loop over the backend does."""
    backend = OpenAIBackend("bench-model", base_url=url)
    from engine.llm.base import LLMRequest

    start = time.perf_counter()
    for job in jobs:
        await backend.complete(LLMRequest(job.record_id, job.messages, PARAMS, job.seed))
    elapsed = time.perf_counter() - start
    await backend.aclose()
    return len(jobs) / elapsed


def headline(url: str, work: Path, n: int, concurrency: int, repeats: int, tag: str) -> list[float]:
    """``repeats`` full runner passes of ``n`` fresh records at 200 ms latency (req/s each)."""
    theory = concurrency / LATENCY
    rates = []
    for rep in range(repeats):
        jobs = make_jobs(n, f"{tag}{rep}")
        out, cache = work / f"run-{tag}{rep}.jsonl", work / f"cache-{tag}{rep}.sqlite"
        rate, _ = asyncio.run(runner_rate(url, jobs, concurrency, out, cache))
        rates.append(rate)
        print(
            f"runner c={concurrency} pass {rep + 1}: {rate:.1f} req/s "
            f"({100 * rate / theory:.1f}% of {theory:.0f})",
            flush=True,
        )
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="records per pass")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="passes for the headline figure")
    parser.add_argument("--naive", type=int, default=40, help="records for the sequential pass")
    parser.add_argument("--scale", default="64,128", help="more concurrencies at 200 ms latency")
    parser.add_argument("--peak", default="8,32,64,128", help="concurrencies at zero latency")
    args = parser.parse_args()
    theory = args.concurrency / LATENCY
    work = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    results: list[tuple[str, float, str]] = []

    server = ProcessServer(ServerConfig(latency_s=LATENCY, log_bodies=False))
    try:
        rates = headline(server.url, work, args.n, args.concurrency, args.repeats, "r")
        rate = statistics.median(rates)
        plain = asyncio.run(plain_rate(server.url, make_jobs(args.n, "plain"), args.concurrency))
        print(f"plain AsyncOpenAI + semaphore: {plain:.1f} req/s", flush=True)
        naive = asyncio.run(naive_rate(server.url, make_jobs(args.naive, "naive")))
        print(f"naive sequential awaits: {naive:.2f} req/s", flush=True)
        start = time.perf_counter()
        _, cached = asyncio.run(
            runner_rate(
                server.url,
                make_jobs(args.n, "r0"),
                args.concurrency,
                work / "rerun.jsonl",
                work / "cache-r0.sqlite",
            )
        )
        rerun_s = time.perf_counter() - start
        assert cached == args.n, f"only {cached} of {args.n} came from the cache"
        print(f"cache rerun of {args.n} records: {rerun_s:.2f} s", flush=True)
        results += [
            (f"generate_c{args.concurrency}_pct_of_theory", 100 * rate / theory, "%"),
            (f"generate_c{args.concurrency}_req_per_s", rate, "req/s"),
            (f"plain_openai_c{args.concurrency}_pct_of_theory", 100 * plain / theory, "%"),
            ("naive_sequential_req_per_s", naive, "req/s"),
            ("speedup_vs_naive", rate / naive, "x"),
            (f"cache_rerun_{args.n}_s", rerun_s, "s"),
        ]
        for conc in (int(c) for c in args.scale.split(",") if c):
            scaled = statistics.median(
                headline(server.url, work, args.n, conc, args.repeats, f"c{conc}-")
            )
            results += [
                (f"generate_c{conc}_pct_of_theory", 100 * scaled * LATENCY / conc, "%"),
                (f"generate_c{conc}_req_per_s", scaled, "req/s"),
            ]

        server.configure(ServerConfig(latency_s=0.0, log_bodies=False))
        peak = 0.0
        for conc in (int(c) for c in args.peak.split(",")):
            r, _ = asyncio.run(
                runner_rate(
                    server.url,
                    make_jobs(args.n, f"p{conc}"),
                    conc,
                    work / f"peak-{conc}.jsonl",
                    None,
                )
            )
            print(f"latency 0, concurrency {conc}: {r:.1f} req/s", flush=True)
            results.append((f"peak_req_per_s_c{conc}", r, "req/s"))
            peak = max(peak, r)
        results.append(("peak_req_per_s", peak, "req/s"))
    finally:
        server.stop()
    for name, value, unit in results:
        print(f"BENCH {name} {value:.2f} {unit}")


if __name__ == "__main__":
    main()
