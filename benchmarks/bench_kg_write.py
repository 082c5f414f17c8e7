"""Batched graph writes (UNWIND $rows) against one transaction per row, on both backends.

Writes 100k nodes and 300k relationships with ``kg.store.writer.write_batch`` into each
backend, and a 2k-row sample the naive way (one write transaction per row). Neo4j is the
server from NEO4J_URI, else a local one started here (scripts/neo4j-local); its JVM is
warmed with a throwaway load first. Prints ``BENCH <name> <value> <unit>`` lines.

    .venv/bin/python benchmarks/bench_kg_write.py [--nodes 100000] [--rels 300000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stores import embedded_store, neo4j_store

from kg.batch import GraphBatch
from kg.model import Disease, Presents, Symptom
from kg.store import GraphStore
from kg.store.base import DEFAULT_BATCH, node_merge_cypher, rel_merge_cypher
from kg.store.writer import batch_statements, resolve_endpoints, write_batch

SAMPLE = 2_000


def make_batches(
    n_nodes: int, n_rels: int, seed: int, prefix: str
) -> tuple[GraphBatch, GraphBatch]:
    """``n_nodes`` nodes (1 disease per 10 symptoms) and ``n_rels`` distinct PRESENTS edges."""
    n_dis = max(1, n_nodes // 10)
    n_sym = n_nodes - n_dis
    nodes = GraphBatch()
    for i in range(n_dis):
        nodes.add_node(
            Disease.model_construct(
                id=f"BENCH:{prefix}d{i}", name=f"disease {i}", synonyms=[], xrefs=[]
            )
        )
    for i in range(n_sym):
        nodes.add_node(
            Symptom.model_construct(
                id=f"BENCH:{prefix}s{i}", name=f"symptom {i}", synonyms=[f"kw {i}"], xrefs=[]
            )
        )
    rng = np.random.default_rng(seed)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < n_rels:
        d = rng.integers(0, n_dis, n_rels)
        s = rng.integers(0, n_sym, n_rels)
        pairs.update(zip(d.tolist(), s.tolist(), strict=True))
    rels = GraphBatch()
    for d_i, s_i in sorted(pairs)[:n_rels]:
        rels.add_rel(
            Presents.model_construct(
                start=f"BENCH:{prefix}d{d_i}",
                end=f"BENCH:{prefix}s{s_i}",
                weight=0.5,
                source="BENCH:source",
            )
        )
    return nodes, rels


def measure(name: str, store: GraphStore, n_nodes: int, n_rels: int) -> dict[str, float]:
    """Write one batch of both kinds (as `kg load` does), timing nodes and relationships apart."""
    store.clear()
    nodes, rels = make_batches(n_nodes, n_rels, seed=1, prefix="")
    batch = GraphBatch()
    batch.merge(nodes)
    batch.merge(rels)
    endpoints, problems = resolve_endpoints(batch, store)
    assert not problems, problems[:3]
    statements = batch_statements(batch, endpoints, DEFAULT_BATCH)
    node_stmts = [s for s in statements if s[0].startswith("UNWIND $rows AS r MERGE (n:")]
    rel_stmts = [s for s in statements if s not in node_stmts]
    t0 = time.perf_counter()
    store.run_statements(node_stmts, atomic=False)
    node_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.run_statements(rel_stmts, atomic=False)
    rel_s = time.perf_counter() - t0
    count = store.read("MATCH (:Disease)-[r:PRESENTS]->(:Symptom) RETURN count(r) AS n")[0]["n"]
    assert count == n_rels, f"{name}: wrote {count} relationships, expected {n_rels}"
    store.clear()
    s_nodes, s_rels = make_batches(SAMPLE, SAMPLE, seed=2, prefix="r")
    row_nodes, row_rels = per_row_sample(store, s_nodes, s_rels)
    out = {
        "nodes_per_s": n_nodes / node_s,
        "rels_per_s": n_rels / rel_s,
        "row_nodes_per_s": row_nodes,
        "row_rels_per_s": row_rels,
    }
    out["batch_vs_row"] = out["rels_per_s"] / row_rels
    print(
        f"{name}: {n_nodes} nodes in {node_s:.1f}s ({out['nodes_per_s']:,.0f}/s), {n_rels} "
        f"rels in {rel_s:.1f}s ({out['rels_per_s']:,.0f}/s); per-row: "
        f"{row_nodes:,.0f} nodes/s, {row_rels:,.0f} rels/s; ratio {out['batch_vs_row']:.0f}x",
        flush=True,
    )
    return out


def per_row_sample(store: GraphStore, nodes: GraphBatch, rels: GraphBatch) -> tuple[float, float]:
    node_rows = [(n.label, n.model_dump(exclude_none=True)) for n in nodes.iter_nodes()][:SAMPLE]
    t0 = time.perf_counter()
    for label, row in node_rows:
        store.write(node_merge_cypher(label), {"rows": [row]})
    node_rate = len(node_rows) / (time.perf_counter() - t0)
    write_batch(store, nodes, atomic=False)  # every endpoint of the relationship sample
    cypher = rel_merge_cypher("PRESENTS", "Disease", "Symptom")
    rel_rows = [
        {"s": r.start, "e": r.end, "p": {"weight": 0.5, "source": "BENCH:source"}}
        for r in rels.iter_rels()
    ][:SAMPLE]
    t0 = time.perf_counter()
    for row in rel_rows:
        store.write(cypher, {"rows": [row]})
    return node_rate, len(rel_rows) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--rels", type=int, default=300_000)
    parser.add_argument("--skip-neo4j", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}

    with embedded_store() as store:
        results["embedded"] = measure("embedded", store, args.nodes, args.rels)

    if not args.skip_neo4j:
        with neo4j_store() as store:
            warm_nodes, warm_rels = make_batches(20_000, 60_000, seed=3, prefix="w")
            write_batch(store, warm_nodes, atomic=False)
            write_batch(store, warm_rels, atomic=False)
            results["neo4j"] = measure("neo4j", store, args.nodes, args.rels)
            store.clear()

    for backend, figures in results.items():
        print(f"BENCH {backend}_nodes_per_s {figures['nodes_per_s']:.0f} rows/s")
        print(f"BENCH {backend}_rels_per_s {figures['rels_per_s']:.0f} rows/s")
        print(f"BENCH {backend}_row_rels_per_s {figures['row_rels_per_s']:.0f} rows/s")
        print(f"BENCH {backend}_batch_vs_row {figures['batch_vs_row']:.0f} x")


if __name__ == "__main__":
    main()
