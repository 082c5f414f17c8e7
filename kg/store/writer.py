"""Batched writes of a ``GraphBatch``: ``UNWIND $rows`` per label and relationship type."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Collection

from kg.batch import GraphBatch, Location, Problem, RawItem, live_item, parse_items
from kg.errors import ValidationFailed
from kg.model import NODE_MODELS, REL_KEYS, REL_MODELS, node_props, rel_key, rel_props
from kg.store.base import (
    DEFAULT_BATCH,
    GraphStore,
    Statement,
    WriteStats,
    checked_label,
    chunks,
    node_merge_cypher,
    rel_merge_cypher,
)

#: (relationship type, start id, end id) -> (start label, end label)
Endpoints = dict[tuple[str, str, str], tuple[str, str]]


def existing_ids(store: GraphStore, label: str, ids: list[str]) -> set[str]:
    """The subset of ``ids`` that exist as ``label`` nodes in ``store``."""
    found: set[str] = set()
    for start in range(0, len(ids), DEFAULT_BATCH):
        rows = store.read(
            f"UNWIND $ids AS i MATCH (n:{checked_label(label)} {{id: i}}) RETURN n.id AS id",
            {"ids": ids[start : start + DEFAULT_BATCH]},
        )
        found.update(r["id"] for r in rows)
    return found


def resolve_endpoints(
    batch: GraphBatch, store: GraphStore | None
) -> tuple[Endpoints, list[Problem]]:
    """Find each relationship's start and end labels in the batch, else in the live graph.

    A missing or ambiguous endpoint is a problem naming where the relationship came from.
    """
    wanted: dict[str, set[str]] = defaultdict(set)  # label -> ids not in the batch
    for rel in batch.iter_rels():
        for start_label, end_label in type(rel).ends:
            for label, node_id in ((start_label, rel.start), (end_label, rel.end)):
                if node_id not in batch.nodes.get(label, {}):
                    wanted[label].add(node_id)
    live: dict[str, set[str]] = {}
    if store is not None:
        live = {label: existing_ids(store, label, sorted(ids)) for label, ids in wanted.items()}

    def has(label: str, node_id: str) -> bool:
        return node_id in batch.nodes.get(label, {}) or node_id in live.get(label, set())

    endpoints: Endpoints = {}
    problems: list[Problem] = []
    for rel in batch.iter_rels():
        pairs = [(s, e) for s, e in type(rel).ends if has(s, rel.start) and has(e, rel.end)]
        if len(pairs) == 1:
            endpoints[(rel.type, rel.start, rel.end)] = pairs[0]
            continue
        loc = batch.location_of(rel)  # only for a problem: it hashes the relationship
        if len(pairs) > 1:
            problems.append(
                Problem(
                    loc,
                    "end",
                    f"{rel.type} {rel.start} -> {rel.end} is "
                    f"ambiguous: the ids exist under several labels {pairs}",
                )
            )
            continue
        starts = {s for s, _ in type(rel).ends}
        ends = {e for _, e in type(rel).ends}
        if not any(has(s, rel.start) for s in starts):
            problems.append(
                Problem(
                    loc,
                    "start",
                    f"{rel.type} starts at unknown {'/'.join(sorted(starts))} {rel.start!r}",
                )
            )
        elif not any(has(e, rel.end) for e in ends):
            problems.append(
                Problem(
                    loc, "end", f"{rel.type} ends at unknown {'/'.join(sorted(ends))} {rel.end!r}"
                )
            )
        else:
            problems.append(
                Problem(
                    loc,
                    "end",
                    f"{rel.type} cannot join {rel.start!r} to "
                    f"{rel.end!r}; allowed: {list(type(rel).ends)}",
                )
            )
    return endpoints, problems


def batch_statements(batch: GraphBatch, endpoints: Endpoints, batch_size: int) -> list[Statement]:
    """The MERGE statements and row batches that write ``batch``: nodes first."""
    statements: list[Statement] = []
    for label in sorted(batch.nodes):
        rows = [node_props(n) for n in batch.nodes[label].values()]
        if rows:
            statements.append((node_merge_cypher(label), chunks(rows, batch_size)))
    groups: dict[tuple[str, str, str], list[dict[str, object]]] = defaultdict(list)
    for rel in batch.iter_rels():
        start_label, end_label = endpoints[(rel.type, rel.start, rel.end)]
        props = rel_props(rel)
        if rel.type in REL_KEYS:
            props["rkey"] = "|".join(rel_key(rel.type, rel.start, rel.end, props)[3:])
        groups[(rel.type, start_label, end_label)].append(
            {"s": rel.start, "e": rel.end, "p": props}
        )
    for (rel_type, start_label, end_label), rows in sorted(groups.items()):
        rows.sort(key=lambda r: (str(r["s"]), str(r["e"])))
        statements.append(
            (rel_merge_cypher(rel_type, start_label, end_label), chunks(rows, batch_size))
        )
    return statements


def write_batch(
    store: GraphStore,
    batch: GraphBatch,
    *,
    batch_size: int = DEFAULT_BATCH,
    atomic: bool = True,
) -> WriteStats:
    """Write ``batch`` with MERGE on ids (so writing it twice changes nothing).

    Raises ``ValidationFailed`` before writing anything if an endpoint is missing.
    """
    with store.write_lock():  # endpoints found live stay there until the write is done
        endpoints, problems = resolve_endpoints(batch, store)
        if problems:
            raise ValidationFailed(problems)
        started = time.perf_counter()
        store.run_statements(batch_statements(batch, endpoints, batch_size), atomic=atomic)
    return WriteStats(batch.node_count(), batch.rel_count(), time.perf_counter() - started)


def read_graph(
    store: GraphStore,
    labels: Collection[str] | None = None,
    rel_types: Collection[str] | None = None,
) -> GraphBatch:
    """The whole graph (every allow-listed label and type) as a batch, for export and diffs.

    ``labels`` / ``rel_types`` restrict what is read (default: everything).
    """

    items: list[RawItem] = []
    where = Location("graph")
    for label in sorted(NODE_MODELS):
        if labels is not None and label not in labels:
            continue
        for row in store.read(f"MATCH (n:{checked_label(label)}) RETURN properties(n) AS p"):
            items.append(live_item("node", label, row["p"], where))
    for rel_type, model in sorted(REL_MODELS.items()):
        if rel_types is not None and rel_type not in rel_types:
            continue
        for start_label, end_label in model.ends:
            cypher = (
                f"MATCH (a:{checked_label(start_label)})-[r:{rel_type}]->"
                f"(b:{checked_label(end_label)}) RETURN a.id AS s, b.id AS e, properties(r) AS p"
            )
            for row in store.read(cypher):
                props = {"start": row["s"], "end": row["e"], **row["p"]}
                items.append(live_item("rel", rel_type, props, where))
    batch, problems = parse_items(items)
    if problems:
        raise ValidationFailed(problems)
    return batch
