"""Generation through the REST API against the CLI, on the same local endpoint.

The engine fixture graph (dualalign, G30.9); the local OpenAI-compatible test server (its
own process) answers after ``--latency`` s. The CLI is ``kgsynth generate`` (a process,
timed from start to exit); the API is ``kgsynth serve`` (started before the timing), timed
from ``POST /v1/generations`` until ``GET`` says ``complete`` (polled every 50 ms). Both run
16 requests at a time. The ratio is the API's time over the CLI's.

Run: ``python benchmarks/bench_api.py``. Ends with ``BENCH <name> <value> <unit>`` lines.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.engine_graph import open_engine_store
from tests.llm_server import ProcessServer, ServerConfig

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="records per run")
    parser.add_argument("--latency", type=float, default=0.1, help="server latency, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        open_engine_store(root / "g.db").close()
        base = [sys.executable, "-m", "engine.cli.main", "--uri", f"embedded:{root / 'g.db'}"]
        env = {**os.environ, "HOME": tmp, "OPENAI_API_KEY": "sk-bench", "KGSYNTH_API_TOKENS": TOKEN}
        with ProcessServer(ServerConfig(latency_s=args.latency)) as llm:
            backend = ["--model", "bench", "--base-url", llm.url]
            started = time.perf_counter()
            subprocess.run(
                [*base, "generate", "--recipe", "dualalign", "--icd", "G30.9", "-n", str(args.n),
                 "--seed", "1", "--concurrency", "16", *backend, "-o", str(root / "cli.jsonl")],
                env=env, cwd=REPO, check=True, capture_output=True,
            )  # fmt: skip
            cli_s = time.perf_counter() - started
            port = _port()
            serve = subprocess.Popen(
                [*base, "serve", "--port", str(port), "--data-dir", str(root / "svc"), *backend],
                env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {TOKEN}"}
            try:
                while True:
                    try:
                        if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.1)
                body = {"icd": "G30.9", "n": args.n, "seed": 1, "recipe": "dualalign"}
                started = time.perf_counter()
                job = httpx.post(f"{url}/v1/generations", json=body, headers=auth).json()
                while True:
                    state = httpx.get(f"{url}/v1/generations/{job['id']}", headers=auth).json()
                    if state["status"] in ("complete", "failed"):
                        break
                    time.sleep(0.05)
                api_s = time.perf_counter() - started
                assert state["progress"]["ok"] == args.n, state
            finally:
                serve.terminate()
                serve.wait(60)
    theory = 16 / args.latency
    print(f"{args.n} records, server latency {args.latency * 1000:.0f} ms, 16 in flight")
    print(f"CLI (process start to exit): {cli_s:6.2f} s = {args.n / cli_s:6.1f} rec/s")
    print(f"API (POST to complete):      {api_s:6.2f} s = {args.n / api_s:6.1f} rec/s")
    print(f"theory {theory:.0f} rec/s; API/CLI time ratio {api_s / cli_s:.2f}")
    print(f"BENCH api_records_per_s {args.n / api_s:.1f} rec/s")
    print(f"BENCH cli_records_per_s {args.n / cli_s:.1f} rec/s")
    print(f"BENCH api_over_cli_time {api_s / cli_s:.2f} x")


if __name__ == "__main__":
    main()
