"""``kg export``: the whole graph or one disease's subgraph as Turtle, JSON or CSV.

A disease's subgraph is self-contained, so it loads into an empty store: the disease,
every node it points to (codes, symptoms, windows, strata, risk factors, drugs,
guidelines) and what those point to in turn (window observations, symptom categories,
category guidelines, ``RISK.stratum`` strata), its example notes, the ancestors of its
codes, every ``Source`` cited, and every relationship between nodes so selected.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Literal, TextIO

from kg.batch import GraphBatch
from kg.errors import KgError
from kg.model import Entity, Relationship
from loaders.csv_admin import write_csv_dir
from loaders.turtle import turtle_chunks
from loaders.yaml_seed import seed_json

Format = Literal["ttl", "json", "csv"]
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
