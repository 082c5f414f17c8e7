"""Sharded generation on Ray: records/s with 1 and 2 local workers, against one process.

The engine fixture graph is planned once (dualalign, G30.9); the local OpenAI-compatible
test server (its own process) answers after ``--latency`` s. Each shard runs the normal
runner at concurrency 16, so 2 workers offer twice the concurrency of 1. The baseline is
the single-process runner at the same concurrency. Ray starts once, before the timings.

Run: ``python benchmarks/bench_ray.py``. Ends with ``BENCH <name> <value> <unit>`` lines.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray

from engine.llm.factory import BackendSettings
from engine.plan import Planner, PlanRequest, sampling_params
from engine.runner.ray_executor import run_on_ray, run_shard
from engine.runner.run import RunConfig
from tests.engine_graph import open_engine_store
from tests.llm_server import ProcessServer, ServerConfig

CONCURRENCY = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1600, help="records per run")
    parser.add_argument("--latency", type=float, default=0.2, help="server latency, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = open_engine_store(root / "g.db")
        planner = Planner(store, PlanRequest(recipe="dualalign", icd=("G30.9",), n=args.n, seed=1))
        store.close()
        params = sampling_params(planner.recipe.generation, None, None, None)
        config = RunConfig(concurrency=CONCURRENCY, progress=False, timeout_s=30)
        with ProcessServer(ServerConfig(latency_s=args.latency)) as server:
            settings = BackendSettings(kind="openai", model="bench", base_url=server.url)
            started = time.perf_counter()
            single = run_shard(
                planner,
                0,
                args.n,
                settings,
                root / "single.jsonl",
                params,
                config,
                None,
                None,
                False,
            )
            one_process = single.ok / (time.perf_counter() - started)
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            rates = {}
            for workers in (1, 2):
                out = root / f"ray-{workers}.jsonl"
                started = time.perf_counter()
                run = run_on_ray(
                    planner, settings, out, params, config, None, None,
                    workers=workers, address=None, cache=False,
                )  # fmt: skip
                rates[workers] = sum(s.ok for s in run.shards) / (time.perf_counter() - started)
            ray.shutdown()
    theory = CONCURRENCY / args.latency
    print(f"{args.n} records, server latency {args.latency * 1000:.0f} ms, concurrency 16/shard")
    print(f"one process: {one_process:7.1f} rec/s ({one_process / theory:.0%} of {theory:.0f})")
    for workers, rate in rates.items():
        print(
            f"ray, {workers} worker(s): {rate:7.1f} rec/s ({rate / one_process:.2f}x one process)"
        )
    print(f"BENCH ray_one_process {one_process:.1f} rec/s")
    print(f"BENCH ray_1_worker {rates[1]:.1f} rec/s")
    print(f"BENCH ray_2_workers {rates[2]:.1f} rec/s")
    print(f"BENCH ray_scaling_2_over_1 {rates[2] / rates[1]:.2f} x")


if __name__ == "__main__":
    main()
