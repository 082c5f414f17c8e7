"""The full ICD-10-CM catalogue load (``kg seed --only catalogue``) into each backend.

Times the whole load as ``kg seed`` runs it (build the 98.5k codes from simple-icd-10-cm,
validate against the live graph, MERGE-write nodes and PARENT_OF edges) into an empty
graph, then the same load again over the loaded graph (the idempotent re-seed). Neo4j is
the server from NEO4J_URI, else a local one started here (scripts/neo4j-local); its JVM is
warmed with the SYMP ontology load first. Target: under 60 s into each backend. Prints
``BENCH <name> <value> <unit>`` lines.

    .venv/bin/python benchmarks/bench_kg_load.py [--skip-neo4j]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stores import embedded_store, neo4j_store

from kg.store import GraphStore
from loaders.icd10cm import icd10cm_batch, icd_rows
from loaders.seed import seed


def timed_seed(store: GraphStore) -> dict[str, float]:
    """Seconds of one catalogue load: total, and the build / validate / write phases."""
    marks: dict[str, float] = {}
    start = time.perf_counter()

    def progress(part: str, event: str) -> None:
        marks[event] = time.perf_counter() - start

    parts, _ = seed(store, ["catalogue"], progress)
    total = time.perf_counter() - start
    nodes = store.read("MATCH (c:IcdCode) RETURN count(c) AS n")[0]["n"]
    rels = store.read("MATCH (:IcdCode)-[r:PARENT_OF]->(:IcdCode) RETURN count(r) AS n")[0]["n"]
    assert (nodes, rels) == (98505, 98483), (nodes, rels)
    stats = parts[0].stats
    assert stats is not None
    return {
        "total": total,
        "build": marks["built"],
        "validate": marks["validated"] - marks["built"],
        "write": marks["written"] - marks["validated"],
        "nodes": float(stats.nodes),
        "rels": float(stats.relationships),
    }


def measure(name: str, store: GraphStore) -> dict[str, float]:
    store.clear()
    first = timed_seed(store)
    again = timed_seed(store)
    print(
        f"{name}: {first['nodes']:.0f} nodes + {first['rels']:.0f} PARENT_OF in "
        f"{first['total']:.1f} s (build {first['build']:.1f}, validate {first['validate']:.1f}, "
        f"write {first['write']:.1f}); again over the loaded graph {again['total']:.1f} s",
        flush=True,
    )
    store.clear()
    return {
        "s": first["total"],
        "write_s": first["write"],
        "nodes_per_s": first["nodes"] / first["total"],
        "write_rows_per_s": (first["nodes"] + first["rels"]) / first["write"],
        "reload_s": again["total"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-neo4j", action="store_true")
    args = parser.parse_args()
    t0 = time.perf_counter()
    icd_rows()  # imports simple_icd_10_cm (it parses its XML on import) and reads the list
    print(f"ICD-10-CM list read from the package in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    icd10cm_batch()
    build_s = time.perf_counter() - t0
    results: dict[str, dict[str, float]] = {}

    with embedded_store() as store:
        results["embedded"] = measure("embedded", store)

    if not args.skip_neo4j:
        with neo4j_store() as store:
            seed(store, ["symp"])
            results["neo4j"] = measure("neo4j", store)

    print(f"BENCH kg_build_icd10cm_s {build_s:.2f} s")
    for backend, fig in results.items():
        print(f"BENCH kg_load_icd10cm_{backend}_s {fig['s']:.1f} s")
        print(f"BENCH kg_load_icd10cm_{backend}_nodes_per_s {fig['nodes_per_s']:.0f} nodes/s")
        print(f"BENCH kg_load_icd10cm_{backend}_write_s {fig['write_s']:.1f} s")
        print(
            f"BENCH kg_load_icd10cm_{backend}_write_rows_per_s {fig['write_rows_per_s']:.0f} rows/s"
        )
        print(f"BENCH kg_reload_icd10cm_{backend}_s {fig['reload_s']:.1f} s")


if __name__ == "__main__":
    main()
