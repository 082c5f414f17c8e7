"""What a load would change in the live graph, and who owns what it would change.

Every node and relationship written by ``kg load`` or ``kg seed`` records the module
that defined it (the store's ``module`` property: a seed file's ``module:``, else the
file's stem; seed parts are named for the part). ``diff_batch`` compares a batch with
the live graph item by item: *added* (not in the graph), *changed* (in the graph with
other properties; each field's old and new value) or *unchanged*. Changing an item that
another module defines is a clobber: refused unless the user asks for it (``--replace``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from kg.batch import BOOKKEEPING, MODULE, GraphBatch, Problem, identity
from kg.model import REL_MODELS, Entity, Relationship, node_props, rel_key, rel_props
from kg.store.base import DEFAULT_BATCH, GraphStore, checked_label, checked_type

Kind = Literal["added", "changed", "unchanged"]
#: Above this many ids of one label (pairs of one type), the label (type) is read whole.
SCAN_ABOVE = 5_000
#: How a field absent on one side is shown.
ABSENT = "(absent)"


@dataclass(frozen=True)
class Change:
    """One item of a batch against the live graph."""

    kind: Kind
    key: tuple[str, ...]
    item: Entity | Relationship
    #: the module that defines the live item ("" when none is recorded)
    owner: str = ""
    #: field -> (live value, new value), for changed items
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def what(self) -> str:
        return describe(self.item)

    def field_lines(self) -> list[str]:
        return [f"{name}: {show(old)} -> {show(new)}" for name, (old, new) in self.fields.items()]


@dataclass
class Diff:
    changes: list[Change] = field(default_factory=list)

    def of(self, kind: Kind) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    def clobbers(self, batch: GraphBatch, allowed: Collection[str] = ()) -> list[Change]:
        """Changed items whose live owner is neither the item's module nor in ``allowed``."""
        return [
            c
            for c in self.of("changed")
            if c.owner != batch.module_of(c.item) and c.owner not in allowed
        ]

    def lines(self) -> list[str]:
        """The diff as text: ``+`` added, ``~`` changed (one indented line per field), ``=``."""
        marks = {"added": "+", "changed": "~", "unchanged": "="}
        out: list[str] = []
        for change in self.changes:
            owner = "" if change.kind == "added" else f" (module {show_owner(change.owner)})"
            out.append(f"{marks[change.kind]} {change.what}{owner}")
            out += [f"    {line}" for line in change.field_lines()]
        out.append(", ".join(f"{len(self.of(k))} {k}" for k in ("added", "changed", "unchanged")))
        return out


def show_owner(owner: str) -> str:
    return repr(owner) if owner else "(none recorded)"


def describe(item: Entity | Relationship) -> str:
    """``Disease KGS:disease/x`` or ``RISK a -> b (stratum s)``."""
    if isinstance(item, Entity):
        return f"{item.label} {item.id}"
    key = identity(item)[3:]
    extra = f" (stratum {key[0]})" if key and key[0] else ""
    return f"{item.type} {item.start} -> {item.end}{extra}"


def show(value: Any) -> str:
    return ABSENT if value is None else json.dumps(value, ensure_ascii=False)


def _props(item: Entity | Relationship) -> dict[str, Any]:
    return node_props(item) if isinstance(item, Entity) else rel_props(item)


def _chunked(rows: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(rows), DEFAULT_BATCH):
        yield rows[start : start + DEFAULT_BATCH]


def _stored(props: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return {k: v for k, v in props.items() if k not in BOOKKEEPING}, str(props.get(MODULE) or "")


def live_versions(
    store: GraphStore, batch: GraphBatch
) -> dict[tuple[str, ...], tuple[dict[str, Any], str]]:
    """Identity -> (stored properties, module) of the live items ``batch`` also holds.

    Up to ``SCAN_ABOVE`` ids of a label (or pairs of a type) are looked up by id; more are
    found by reading the label (type) whole, which is several times faster per row.
    """
    out: dict[tuple[str, ...], tuple[dict[str, Any], str]] = {}
    for label, bucket in sorted(batch.nodes.items()):
        match = f"MATCH (n:{checked_label(label)}"
        if len(bucket) > SCAN_ABOVE:
            rows = store.read(f"{match}) RETURN properties(n) AS p")
        else:
            cypher = f"UNWIND $ids AS i {match} {{id: i}}) RETURN properties(n) AS p"
            rows = [r for ids in _chunked(sorted(bucket)) for r in store.read(cypher, {"ids": ids})]
        for row in rows:
            if row["p"]["id"] in bucket:
                out[(label, row["p"]["id"])] = _stored(row["p"])
    for rtype, rbucket in sorted(batch.rels.items()):
        pairs = {(r.start, r.end) for r in rbucket.values()}
        for start_label, end_label in REL_MODELS[rtype].ends:
            a, b = checked_label(start_label), checked_label(end_label)
            ret = "RETURN a.id AS s, b.id AS e, properties(r) AS p"
            if len(pairs) > SCAN_ABOVE:
                rows = store.read(f"MATCH (a:{a})-[r:{checked_type(rtype)}]->(b:{b}) {ret}")
            else:
                cypher = (
                    f"UNWIND $pairs AS p MATCH (a:{a} {{id: p[0]}})"
                    f"-[r:{checked_type(rtype)}]->(b:{b} {{id: p[1]}}) {ret}"
                )
                chunks = _chunked([list(p) for p in sorted(pairs)])
                rows = [r for chunk in chunks for r in store.read(cypher, {"pairs": chunk})]
            for row in rows:
                props, module = _stored(row["p"])
                key = rel_key(rtype, row["s"], row["e"], props)
                if key in rbucket:
                    out[key] = props, module
    return out


def _in_order(batch: GraphBatch) -> Iterator[tuple[tuple[str, ...], Entity | Relationship]]:
    """``(identity, item)``: nodes by label and id, then relationships by identity."""
    for label in sorted(batch.nodes):
        for node_id, node in sorted(batch.nodes[label].items()):
            yield (label, node_id), node
    for rtype in sorted(batch.rels):
        yield from sorted(batch.rels[rtype].items())


def diff_batch(store: GraphStore, batch: GraphBatch) -> Diff:
    """Each item of ``batch`` as added, changed (with its fields) or unchanged.

    Stored properties are compared with the item's as it would be written.
    """
    live = live_versions(store, batch)
    diff = Diff()
    for key, item in _in_order(batch):
        if key not in live:
            diff.changes.append(Change("added", key, item))
            continue
        before, owner = live[key]
        after = _props(item)
        fields = {
            name: (before.get(name), after.get(name))
            for name in sorted(before.keys() | after.keys())
            if before.get(name) != after.get(name)
        }
        diff.changes.append(Change("changed" if fields else "unchanged", key, item, owner, fields))
    return diff


def clobber_problems(batch: GraphBatch, clobbers: Iterable[Change]) -> list[Problem]:
    """One problem per clobber, at the item's line: the item, its owner, the fields."""
    return [
        Problem(
            batch.location_of(c.item),
            ", ".join(c.fields),
            f"would change {c.what}, defined by module {show_owner(c.owner)} "
            f"({'; '.join(c.field_lines())}); nothing is changed without --replace",
        )
        for c in clobbers
    ]


def subset(batch: GraphBatch, keys: Collection[tuple[str, ...]]) -> GraphBatch:
    """The items of ``batch`` with the identities ``keys``, with locations and modules."""
    out = GraphBatch()
    for key, item in batch.keyed_items():
        if key not in keys:
            continue
        if isinstance(item, Entity):
            out.nodes.setdefault(item.label, {})[item.id] = item
        else:
            out.rels.setdefault(item.type, {})[key] = item
        if key in batch.locations:
            out.locations[key] = batch.locations[key]
        if key in batch.modules:
            out.modules[key] = batch.modules[key]
    return out


def changed_part(batch: GraphBatch, diff: Diff) -> GraphBatch:
    """The items of ``batch`` that ``diff`` finds added or changed."""
    return subset(batch, {c.key for c in diff.changes if c.kind != "unchanged"})


def by_module(batch: GraphBatch, default: str) -> dict[str, GraphBatch]:
    """``batch`` split by the module that defines each item (``default`` when none)."""
    modules = {batch.modules.get(key, default) for key, _ in batch.keyed_items()}
    if len(modules) == 1:  # one module (a seed part, a file): the batch is the only part
        return {modules.pop(): GraphBatch(nodes=batch.nodes, rels=batch.rels)}
    parts: dict[str, GraphBatch] = defaultdict(GraphBatch)
    for key, item in batch.keyed_items():
        part = parts[batch.modules.get(key, default)]
        if isinstance(item, Entity):
            part.nodes.setdefault(item.label, {})[item.id] = item
        else:
            part.rels.setdefault(item.type, {})[key] = item
    return dict(parts)
