"""A validated set of nodes and relationships to write or export, with where each came from.

Each item may also record the module (a seed file's ``module:``, else the file's stem)
that defines it; the store keeps that name in the item's ``module`` property.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import total_ordering
from typing import Any

from pydantic import ValidationError

from kg.model import (
    NODE_MODELS,
    REL_MODELS,
    Entity,
    Relationship,
    node_props,
    rel_key,
    rel_props,
)

#: The property that names the module defining a node or relationship in the store.
MODULE = "module"
#: Stored properties that are bookkeeping, not model fields.
BOOKKEEPING = frozenset({MODULE, "rkey"})


@total_ordering
@dataclass(frozen=True)
class Location:
    """Where an item was read from: a file (or ``graph``) and a 1-based line or row."""

    file: str
    line: int | None = None

    def __lt__(self, other: Location) -> bool:
        # a file-level location (no line) sorts before the file's lines
        return (self.file, self.line or 0) < (other.file, other.line or 0)

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the input, precise enough to fix without a traceback."""

    location: Location
    field: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location.file else ""
        fld = f"{self.field}: " if self.field else ""
        return f"{where}{fld}{self.message}"


@dataclass(frozen=True)
class RawItem:
    """An unvalidated node (``kind='node'``, ``name`` a label) or relationship."""

    kind: str
    name: str
    data: dict[str, Any]
    location: Location
    module: str = ""


@dataclass
class GraphBatch:
    """Nodes by label and relationships by type, deduplicated by identity."""

    nodes: dict[str, dict[str, Entity]] = field(default_factory=dict)
    rels: dict[str, dict[tuple[str, ...], Relationship]] = field(default_factory=dict)
    locations: dict[tuple[str, ...], Location] = field(default_factory=dict)
    #: identity -> the module that defines the item (absent: unknown)
    modules: dict[tuple[str, ...], str] = field(default_factory=dict)

    def add_node(self, node: Entity, location: Location | None = None) -> Problem | None:
        """Add ``node``; a different node under the same id is a problem, a copy is not."""
        bucket = self.nodes.setdefault(node.label, {})
        old = bucket.get(node.id)
        if old is not None and old != node:
            where = self.locations.get((node.label, node.id))
            return Problem(
                location or Location(""),
                "id",
                f"{node.label} {node.id} is defined twice with different properties"
                + (f" (first at {where})" if where else ""),
            )
        bucket[node.id] = node
        if location is not None:
            self.locations.setdefault((node.label, node.id), location)
        return None

    def add_rel(self, rel: Relationship, location: Location | None = None) -> Problem | None:
        """Add ``rel``; a different relationship with the same identity is a problem."""
        key = rel_key(rel.type, rel.start, rel.end, rel_props(rel))
        bucket = self.rels.setdefault(rel.type, {})
        old = bucket.get(key)
        if old is not None and old != rel:
            return Problem(
                location or Location(""),
                "start",
                f"{rel.type} {rel.start} -> {rel.end} is defined twice with different properties",
            )
        bucket[key] = rel
        if location is not None:
            self.locations.setdefault(key, location)
        return None

    def merge(self, other: GraphBatch) -> list[Problem]:
        """Add everything of ``other``; return the conflicts."""
        problems: list[Problem] = []
        for bucket in other.nodes.values():
            for node in bucket.values():
                loc = other.locations.get((node.label, node.id))
                if (p := self.add_node(node, loc)) is not None:
                    problems.append(p)
        for rbucket in other.rels.values():
            for key, rel in rbucket.items():
                if (p := self.add_rel(rel, other.locations.get(key))) is not None:
                    problems.append(p)
        for key, module in other.modules.items():
            self.modules.setdefault(key, module)
        return problems

    def iter_nodes(self) -> Iterator[Entity]:
        for label in sorted(self.nodes):
            yield from self.nodes[label].values()

    def iter_rels(self) -> Iterator[Relationship]:
        for rtype in sorted(self.rels):
            yield from self.rels[rtype].values()

    def iter_items(self) -> Iterator[Entity | Relationship]:
        """Every node, then every relationship."""
        yield from self.iter_nodes()
        yield from self.iter_rels()

    def keyed_items(self) -> Iterator[tuple[tuple[str, ...], Entity | Relationship]]:
        """``(identity, item)`` for every node, then every relationship."""
        for label in sorted(self.nodes):
            for node_id, node in self.nodes[label].items():
                yield (label, node_id), node
        for rtype in sorted(self.rels):
            yield from self.rels[rtype].items()

    def node_count(self) -> int:
        return sum(len(b) for b in self.nodes.values())

    def rel_count(self) -> int:
        return sum(len(b) for b in self.rels.values())

    def location_of(self, item: Entity | Relationship) -> Location:
        return self.locations.get(identity(item), Location(""))

    def module_of(self, item: Entity | Relationship) -> str | None:
        return self.modules.get(identity(item))

    def canonical(self) -> dict[str, Any]:
        """A sorted, JSON-ready form: equal graphs give equal values."""
        return {
            "nodes": {
                label: sorted((node_props(n) for n in bucket.values()), key=lambda d: d["id"])
                for label, bucket in sorted(self.nodes.items())
                if bucket
            },
            "relationships": {
                rtype: sorted(
                    ({"start": r.start, "end": r.end, **rel_props(r)} for r in bucket.values()),
                    key=lambda d: (d["start"], d["end"], str(d.get("stratum", ""))),
                )
                for rtype, bucket in sorted(self.rels.items())
                if bucket
            },
        }


def identity(item: Entity | Relationship) -> tuple[str, ...]:
    """``(label, id)`` for a node, ``rel_key`` for a relationship."""
    if isinstance(item, Entity):
        return (item.label, item.id)
    return rel_key(item.type, item.start, item.end, rel_props(item))


def _pydantic_problems(err: ValidationError, location: Location, what: str) -> list[Problem]:
    problems = []
    for e in err.errors():
        fld = ".".join(str(p) for p in e["loc"]) or what
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown field for {what}"
        elif e["type"] == "missing":
            msg = f"required field missing for {what}"
        problems.append(Problem(location, fld, msg))
    return problems


def parse_items(items: Iterable[RawItem]) -> tuple[GraphBatch, list[Problem]]:
    """Validate raw items into a batch; every problem is reported, none raised."""
    batch = GraphBatch()
    problems: list[Problem] = []
    for item in items:
        if item.kind == "node":
            model: type[Entity] | type[Relationship] | None = NODE_MODELS.get(item.name)
            allowed = sorted(NODE_MODELS)
        else:
            model = REL_MODELS.get(item.name)
            allowed = sorted(REL_MODELS)
        if model is None:
            problems.append(
                Problem(
                    item.location,
                    "label" if item.kind == "node" else "type",
                    f"unknown {'label' if item.kind == 'node' else 'relationship type'} "
                    f"{item.name!r}; allowed: {', '.join(allowed)}",
                )
            )
            continue
        try:
            obj = model.model_validate(item.data)
        except ValidationError as err:
            problems.extend(_pydantic_problems(err, item.location, item.name))
            continue
        if isinstance(obj, Entity):
            problem = batch.add_node(obj, item.location)
        else:
            assert isinstance(obj, Relationship)
            problem = batch.add_rel(obj, item.location)
        if problem is not None:
            problems.append(problem)
        elif item.module:
            batch.modules.setdefault(identity(obj), item.module)
    return batch, problems


def live_item(kind: str, name: str, props: dict[str, Any], location: Location) -> RawItem:
    """A raw item from a stored node's or relationship's properties (bookkeeping split off)."""
    data = {k: v for k, v in props.items() if k not in BOOKKEEPING}
    return RawItem(kind, name, data, location, str(props.get(MODULE) or ""))
