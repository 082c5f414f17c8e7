"""A full ``kg seed`` (every part, HPO included) into a fresh embedded file, now and the old way.

Each seed runs in its own Python process (so each pays the imports, as ``kgsynth kg seed``
does) on its own fresh file. The old way, measured in the same run: the embedded store
builds each batch's parameter header and then waits for the server, one batch after the
other, with the client's own ``query(cypher, params)``, and the cyclic garbage collector
runs throughout. The HPO parsing, diff and validation speed-ups have no switch and are in
both. Prints wall time, the client's CPU time and the FalkorDB server's CPU time, then
``BENCH <name> <value> <unit>`` lines.

    .venv/bin/python benchmarks/bench_seed.py [--no-baseline]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _server_cpu(db: Path) -> float:
    """CPU seconds (user + system) the FalkorDB server of ``db`` has used so far."""
    pid = int(json.loads(Path(f"{db}.server").read_text())["pid"])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _old_way() -> None:
    """Put back the write path and collector behaviour from before the speed-ups."""
    import loaders.seed
    from kg.store.base import Statement
    from kg.store.falkor_store import FalkorStore

    def run_statements(self: FalkorStore, statements: list[Statement], *, atomic: bool) -> None:
        with self.write_lock():
            for cypher, batches in statements:
                for rows in batches:
                    self._graph.query(cypher, {"rows": rows})

    FalkorStore.run_statements = run_statements  # type: ignore[assignment,method-assign]
    loaders.seed._collector_paused = contextlib.nullcontext  # type: ignore[assignment]


def child(way: str, db: Path) -> None:
    """Seed ``db`` in this process and print the figures as JSON."""
    if way == "old":
        _old_way()
    from kg.settings import GraphSettings
    from kg.store import open_store
    from loaders.seed import seed

    store = open_store(GraphSettings(uri=f"embedded:{db}"))
    started, cpu = time.perf_counter(), time.process_time()
    built, _ = seed(store, freeze=True)  # as `kgsynth kg seed` does: the child ends here
    out = {
        "seed_s": time.perf_counter() - started,
        "client_cpu_s": time.process_time() - cpu,
        "server_cpu_s": _server_cpu(db),
        "nodes": sum(p.batch.node_count() for p in built),
        "rels": sum(p.batch.rel_count() for p in built),
        "counts": store.read("MATCH (n) RETURN count(n) AS n")[0]["n"],
    }
    store.close()
    print(json.dumps(out))


def measure(way: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "seed.db"
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--child", way, "--db", str(db)],
            check=True,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
    figures: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["wall_s"] = wall
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-baseline", action="store_true", help="skip the old way")
    parser.add_argument("--child", choices=("new", "old"), help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.db)
        return
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ways = ["new"] if args.no_baseline else ["new", "old"]
    results = {way: measure(way) for way in ways}
    print(f"{'way':4s} {'wall s':>7s} {'seed() s':>8s} {'client CPU s':>12s} {'server CPU s':>12s}")
    for way, r in results.items():
        print(
            f"{way:4s} {r['wall_s']:7.1f} {r['seed_s']:8.1f} {r['client_cpu_s']:12.1f} "
            f"{r['server_cpu_s']:12.1f}"
        )
    new = results["new"]
    print(f"{new['nodes']:.0f} nodes and {new['rels']:.0f} relationships seeded")
    if "old" in results:
        print(f"old/new wall: {results['old']['wall_s'] / new['wall_s']:.2f}x")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"BENCH kg_seed_full_s {new['wall_s']:.1f} s")
    print(f"BENCH kg_seed_full_client_cpu_s {new['client_cpu_s']:.1f} s")
    if "old" in results:
        print(f"BENCH kg_seed_full_old_way_s {results['old']['wall_s']:.1f} s")


if __name__ == "__main__":
    main()
