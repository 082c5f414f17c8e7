"""``kg export``: the whole graph or one disease's subgraph as Turtle, JSON or CSV.

A disease's subgraph is self-contained, so it loads into an empty store: the disease,
every node it points to (codes, symptoms, windows, strata, risk factors, drugs,
guidelines) and what those point to in turn (window observations, symptom categories,
category guidelines, ``RISK.stratum`` strata), its example notes, the ancestors of its
codes, every ``Source`` cited, and every relationship between nodes so selected.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, TextIO

from kg.batch import GraphBatch, Location, RawItem, live_item, parse_items
from kg.errors import KgError, ValidationFailed
from kg.model import NODE_MODELS, REL_MODELS, Entity, Relationship
from kg.store.base import GraphStore, checked_label, checked_type
from loaders.csv_admin import write_csv_dir
from loaders.turtle import PREFIXES, node_turtle, rel_turtle, turtle_chunks
from loaders.yaml_seed import seed_json

Format = Literal["ttl", "json", "csv"]
#: Rows read per query when streaming the whole graph.
PAGE = 10_000
#: Relationship types followed outwards from a disease, hop by hop.
FIRST_HOP = (
    "CODED_AS",
    "PRESENTS",
    "HAS_WINDOW",
    "PREVALENCE",
    "RISK",
    "TREATED_WITH",
    "GUIDED_BY",
)
#: Relationship types followed from there on, until nothing new is reached.
ONWARDS = ("OBSERVES", "IN_CATEGORY", "GUIDED_BY")


def find_disease(batch: GraphBatch, key: str) -> str:
    """A Disease id from its id or (case-insensitive) name."""
    diseases = batch.nodes.get("Disease", {})
    if key in diseases:
        return key
    matches = sorted(
        d.id for d in diseases.values() if getattr(d, "name", "").lower() == key.lower()
    )
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise KgError(
            f"--disease {key!r} names several diseases: {', '.join(matches)}; give the id"
        )
    raise KgError(
        f"no Disease {key!r} in the graph (give a Disease id or exact name; "
        "`kgsynth kg query disease_search --param text=...` finds ids)"
    )


def disease_subgraph(batch: GraphBatch, disease: str) -> GraphBatch:
    """The self-contained subgraph of ``disease`` (see the module docstring)."""
    out_edges: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for rel in batch.iter_rels():
        out_edges[rel.start].append((rel.type, rel.end))
    frontier = {end for rtype, end in out_edges[disease] if rtype in FIRST_HOP}
    keep = {disease} | frontier
    while frontier:
        frontier = {
            end for start in frontier for rtype, end in out_edges[start] if rtype in ONWARDS
        } - keep
        keep |= frontier
    for rel in batch.rels.get("RISK", {}).values():
        if rel.start == disease and getattr(rel, "stratum", None):
            keep.add(rel.stratum)  # type: ignore[attr-defined]
    keep |= {r.start for r in batch.rels.get("EXAMPLE_OF", {}).values() if r.end == disease}
    parents = {r.end: r.start for r in batch.rels.get("PARENT_OF", {}).values()}
    for code in [k for k in keep if k in batch.nodes.get("IcdCode", {})]:
        seen = {code}
        while code in parents and parents[code] not in seen:
            code = parents[code]
            seen.add(code)
            keep.add(code)

    sub = GraphBatch()
    nodes: list[Entity] = [n for n in batch.iter_nodes() if n.id in keep and n.label != "Source"]
    rels = [r for r in batch.iter_rels() if r.start in keep and r.end in keep]
    items: list[Entity | Relationship] = [*nodes, *rels]
    cited = {x.source for x in items if x.source}
    nodes += [n for n in batch.nodes.get("Source", {}).values() if n.id in cited]
    for node in nodes:
        sub.add_node(node, batch.location_of(node))
    for rel in rels:
        sub.add_rel(rel, batch.location_of(rel))
    return sub


def store_items(store: GraphStore, page: int = PAGE) -> Iterator[Entity | Relationship]:
    """Every node, then every relationship of ``store``, read ``page`` rows at a time.

    Nodes are paged by id; relationships by chunks of their start nodes' ids, so memory
    holds one page, not the graph.
    """
    where = Location("graph")
    ids: dict[str, list[str]] = {}
    for label in sorted(NODE_MODELS):
        ids[label] = []
        cypher = (
            f"MATCH (n:{checked_label(label)}) WHERE n.id > $after "
            "RETURN properties(n) AS p ORDER BY n.id LIMIT $page"
        )
        after = ""
        while True:
            rows = store.read(cypher, {"after": after, "page": page})
            nodes = _parsed([live_item("node", label, r["p"], where) for r in rows])
            ids[label] += nodes.nodes.get(label, {})
            yield from nodes.iter_nodes()
            if len(rows) < page:
                break
            after = str(rows[-1]["p"]["id"])
    for rtype, model in sorted(REL_MODELS.items()):
        for start_label, end_label in model.ends:
            cypher = (
                f"UNWIND $ids AS i MATCH (a:{checked_label(start_label)} {{id: i}})"
                f"-[r:{checked_type(rtype)}]->(b:{checked_label(end_label)}) "
                "RETURN a.id AS s, b.id AS e, properties(r) AS p"
            )
            starts = ids[start_label]
            for first in range(0, len(starts), page):
                rows = store.read(cypher, {"ids": starts[first : first + page]})
                props = [{"start": r["s"], "end": r["e"], **r["p"]} for r in rows]
                yield from _parsed([live_item("rel", rtype, p, where) for p in props]).iter_rels()


def _parsed(items: list[RawItem]) -> GraphBatch:
    batch, problems = parse_items(items)
    if problems:
        raise ValidationFailed(problems)
    return batch


def stream_turtle(store: GraphStore, fh: TextIO, page: int = PAGE) -> tuple[int, int]:
    """The whole graph of ``store`` as Turtle to ``fh``, page by page: (nodes, relationships).

    Memory holds one page and the ids seen, whatever the graph's size.
    """
    fh.write(PREFIXES)
    iris: dict[str, list[str]] = {}
    counts = [0, 0]
    for item in store_items(store, page):
        if isinstance(item, Entity):
            fh.write(node_turtle(item, iris))
            counts[0] += 1
        else:
            fh.write(rel_turtle(item, iris))
            counts[1] += 1
    return counts[0], counts[1]


def write_export(batch: GraphBatch, fmt: Format, fh: TextIO) -> None:
    """Write ``batch`` as Turtle (streamed, subject by subject) or seed JSON to ``fh``."""
    if fmt == "ttl":
        for chunk in turtle_chunks(batch):
            fh.write(chunk)
    else:
        fh.write(seed_json(batch))


def export_batch(batch: GraphBatch, fmt: Format, out: Path) -> list[Path]:
    """Write ``batch`` to ``out`` (a file for ttl/json, a directory for csv)."""
    if fmt == "csv":
        return write_csv_dir(batch, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        write_export(batch, fmt, fh)
    return [out]
