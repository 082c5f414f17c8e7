"""Turtle export of the whole seeded graph (``kg export -f ttl``): streamed text vs rdflib.

Seeds an embedded store with everything ``kg seed`` ships (or uses ``--uri`` of a seeded
graph) and writes Turtle the way ``kg export -f ttl`` does (``stream_turtle``: the store
read page by page, text written subject by subject). The naive way, as ``kg export`` did
before, builds an rdflib ``Graph`` of the same triples and serialises it; it is timed on a
sample (``--naive-nodes``; for the whole graph it took 167 s and 2.6 GB) against our writer
on the same sample. Peak memory is this process's max RSS, measured before the sample.
Prints ``BENCH <name> <value> <unit>`` lines.

    .venv/bin/python benchmarks/bench_kg_export.py [--uri embedded:PATH] [--naive-nodes N]
"""

from __future__ import annotations

import argparse
import io
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rdflib import Graph
from stores import embedded_store

from kg.batch import GraphBatch
from kg.settings import GraphSettings
from kg.store import GraphStore, open_store
from kg.store.writer import read_graph
from loaders.export import stream_turtle, write_export
from loaders.seed import seed


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sample(batch: GraphBatch, nodes: int) -> GraphBatch:
    """The first ``nodes`` nodes of ``batch`` (by label, then id) and the edges among them."""
    out = GraphBatch()
    for node in sorted(batch.iter_nodes(), key=lambda n: (n.label, n.id))[:nodes]:
        out.add_node(node)
    kept = {n.id for n in out.iter_nodes()}
    for rel in batch.iter_rels():
        if rel.start in kept and rel.end in kept:
            out.add_rel(rel)
    return out


def measure(store: GraphStore, naive_nodes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "graph.ttl"
        started = time.perf_counter()
        cpu = time.process_time()
        with out.open("w", encoding="utf-8") as fh:
            nodes, rels = stream_turtle(store, fh)
        stream_s, stream_cpu = time.perf_counter() - started, time.process_time() - cpu
        size_mb = out.stat().st_size / 1e6
    rss = max_rss_mb()
    print(
        f"streamed Turtle of {nodes} nodes and {rels} relationships: {size_mb:.0f} MB in "
        f"{stream_s:.1f} s ({stream_cpu:.1f} s CPU; max RSS {rss:.0f} MB)",
        flush=True,
    )
    part = sample(read_graph(store), naive_nodes)
    text = io.StringIO()
    started = time.perf_counter()
    write_export(part, "ttl", text)
    stream_part_s = time.perf_counter() - started
    graph = Graph().parse(data=text.getvalue(), format="turtle")  # the same triples
    started = time.perf_counter()
    graph.serialize(format="turtle")
    naive_part_s = time.perf_counter() - started
    ratio = naive_part_s / stream_part_s
    print(
        f"sample of {part.node_count()} nodes, {len(graph)} triples: written as text "
        f"{stream_part_s:.2f} s, rdflib Graph.serialize {naive_part_s:.2f} s ({ratio:.0f}x)",
        flush=True,
    )
    print(f"BENCH kg_export_ttl_s {stream_s:.1f} s")
    print(f"BENCH kg_export_ttl_cpu_s {stream_cpu:.1f} s")
    print(f"BENCH kg_export_ttl_max_rss_mb {rss:.0f} MB")
    print(f"BENCH kg_export_ttl_vs_rdflib_serialize_ratio {ratio:.1f} x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", help="a seeded graph (default: seed a fresh embedded one)")
    parser.add_argument("--naive-nodes", type=int, default=5_000)
    args = parser.parse_args()
    if args.uri:
        with open_store(GraphSettings(uri=args.uri)) as store:
            measure(store, args.naive_nodes)
        return
    with embedded_store() as store:
        started = time.perf_counter()
        seed(store)
        print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)
        measure(store, args.naive_nodes)


if __name__ == "__main__":
    main()
