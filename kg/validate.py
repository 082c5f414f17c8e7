"""Domain rules a graph must satisfy before anything is written, as pure functions.

``check_graph`` runs every rule over one batch taken as the whole graph. ``validate``
checks a batch as it would be after writing it over the live graph, reading only the
batch's neighbourhood (``neighbourhood``): references are looked up id by id; the rules
run over what they need of the live graph (the sources and strata cited, the sibling
shares, windows and frequencies of what the batch touches, the categories of its
symptoms, the ancestors of its hierarchy edges) with the batch laid over it as
``MERGE ... SET`` would leave it, and only the problems that involve the batch are
reported: the same verdict as the rules over the whole graph. ``validate_store`` checks
the live graph as it is. A live graph that cannot be read as valid raises
``ValidationFailed``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from itertools import pairwise

from kg import coherence
from kg.batch import GraphBatch, Location, Problem, RawItem, live_item, parse_items
from kg.errors import ValidationFailed
from kg.model import REL_MODELS, Entity, Relationship, TrajectoryWindow
from kg.store.base import DEFAULT_BATCH, GraphStore, checked_label, checked_type
from kg.store.writer import read_graph, resolve_endpoints

ERROR = "error"
WARNING = "warning"
#: How far a distribution (shares, category frequencies) may sum from 1.
SUM_TOLERANCE = 0.01
#: The location ``read_graph`` gives to everything already in the store.
LIVE = "graph"
#: Relationship types whose number must cite a source, and that number's field.
CITED_NUMBERS = {
    "PRESENTS": "weight",
    "OBSERVES": "frequency",
    "PREVALENCE": "share",
    "RISK": "prevalence",
}
HIERARCHIES = ("PARENT_OF", "IS_A")

Item = Entity | Relationship
Rule = Callable[[GraphBatch], list[Problem]]


def overlay(base: GraphBatch, *tops: GraphBatch) -> GraphBatch:
    """``base`` with each of ``tops`` written over it in turn: same ids/identities are
    replaced."""
    out = GraphBatch()
    for label, bucket in base.nodes.items():
        out.nodes[label] = dict(bucket)
    for rtype, rbucket in base.rels.items():
        out.rels[rtype] = dict(rbucket)
    out.locations = dict(base.locations)
    out.modules = dict(base.modules)
    for top in tops:
        for label, bucket in top.nodes.items():
            out.nodes.setdefault(label, {}).update(bucket)
        for rtype, rbucket in top.rels.items():
            out.rels.setdefault(rtype, {}).update(rbucket)
        out.locations.update(top.locations)
        out.modules.update(top.modules)
    return out


def _where(batch: GraphBatch, items: Iterable[Item]) -> Location:
    """The first location of ``items`` outside the live graph, else the first one."""
    locations = [batch.location_of(i) for i in items]
    return next(
        (loc for loc in locations if loc.file != LIVE),
        locations[0] if locations else Location(LIVE),
    )


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def referential_integrity(batch: GraphBatch) -> list[Problem]:
    """Every relationship joins existing nodes of the labels its type allows."""
    return resolve_endpoints(batch, None)[1]


def sources_resolve(batch: GraphBatch) -> list[Problem]:
    """Every ``source`` names a ``Source`` node; every ``RISK.stratum`` a ``Stratum``."""
    sources = batch.nodes.get("Source", {})
    strata = batch.nodes.get("Stratum", {})
    problems = []
    items: list[Item] = [*batch.iter_nodes(), *batch.iter_rels()]
    for item in items:
        if item.source is not None and item.source not in sources:
            what = (
                f"{item.label} {item.id}"
                if isinstance(item, Entity)
                else f"{item.type} {item.start} -> {item.end}"
            )
            problems.append(
                Problem(
                    batch.location_of(item),
                    "source",
                    f"{what} cites {item.source!r}, which is not a Source node",
                )
            )
    for rel in batch.rels.get("RISK", {}).values():
        stratum = getattr(rel, "stratum", None)
        if stratum is not None and stratum not in strata:
            problems.append(
                Problem(
                    batch.location_of(rel),
                    "stratum",
                    f"RISK {rel.start} -> {rel.end}: stratum {stratum!r} is not a Stratum node",
                )
            )
    return problems


def numbers_cited(batch: GraphBatch) -> list[Problem]:
    """Every curated number carries a ``source``."""
    problems = []
    for rtype, field in CITED_NUMBERS.items():
        for rel in batch.rels.get(rtype, {}).values():
            if rel.source is None:
                problems.append(
                    Problem(
                        batch.location_of(rel),
                        field,
                        f"{rtype} {rel.start} -> {rel.end}: {field} has no "
                        "source; cite a Source node",
                    )
                )
    for node in batch.nodes.get("Disease", {}).values():
        if getattr(node, "prevalence", None) is not None and node.source is None:
            problems.append(
                Problem(
                    batch.location_of(node),
                    "prevalence",
                    f"Disease {node.id}: prevalence has no source",
                )
            )
    for node in batch.nodes.get("TrajectoryWindow", {}).values():
        if node.source is None:
            problems.append(
                Problem(
                    batch.location_of(node),
                    "source",
                    f"TrajectoryWindow {node.id}: its months have no source",
                )
            )
    return problems


def _cycles(rels: Iterable[Relationship]) -> list[list[Relationship]]:
    """One list of edges per cycle found by an iterative depth-first search.

    Each cycle starts at its smallest id, so it reads the same whichever node the search
    entered it by.
    """
    out: dict[str, list[Relationship]] = defaultdict(list)
    for rel in rels:
        out[rel.start].append(rel)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles: list[list[Relationship]] = []
    for root in sorted(out):
        if root in state:
            continue
        path: list[Relationship] = []
        stack = [(root, iter(out[root]))]
        state[root] = 1
        while stack:
            node, edges = stack[-1]
            edge = next(edges, None)
            if edge is None:
                state[node] = 2
                stack.pop()
                if path:
                    path.pop()
                continue
            seen = state.get(edge.end)
            if seen == 1:
                ids = [n for n, _ in stack]
                cycle = [*path[ids.index(edge.end) :], edge]
                first = min(range(len(cycle)), key=lambda i: cycle[i].start)
                cycles.append(cycle[first:] + cycle[:first])
            elif seen is None:
                state[edge.end] = 1
                path.append(edge)
                stack.append((edge.end, iter(out.get(edge.end, []))))
    return cycles


def no_cycles(batch: GraphBatch) -> list[Problem]:
    """``PARENT_OF`` and ``IS_A`` are acyclic."""
    problems = []
    for rtype in HIERARCHIES:
        for cycle in _cycles(batch.rels.get(rtype, {}).values()):
            ids = [cycle[0].start] + [r.end for r in cycle]
            shown = " -> ".join(ids if len(ids) <= 8 else [*ids[:4], "...", *ids[-3:]])
            problems.append(Problem(_where(batch, cycle), "end", f"{rtype} cycle: {shown}"))
    return problems


def prevalence_shares(batch: GraphBatch) -> list[Problem]:
    """A disease's ``PREVALENCE`` shares over one stratum attribute sum to 1."""
    strata = batch.nodes.get("Stratum", {})
    groups: dict[tuple[str, str], list[Relationship]] = defaultdict(list)
    for rel in batch.rels.get("PREVALENCE", {}).values():
        stratum = strata.get(rel.end)
        if stratum is not None:
            groups[(rel.start, getattr(stratum, "attribute", ""))].append(rel)
    problems = []
    for (disease, attribute), rels in sorted(groups.items()):
        total = sum(getattr(r, "share", 0.0) for r in rels)
        if abs(total - 1.0) > SUM_TOLERANCE:
            problems.append(
                Problem(
                    _where(batch, rels),
                    "share",
                    f"PREVALENCE shares of {disease} over {attribute} sum to "
                    f"{_fmt(total)}, not 1 (±{SUM_TOLERANCE}) across "
                    f"{len(rels)} strata",
                )
            )
    return problems


def windows_ordered(batch: GraphBatch) -> list[Problem]:
    """A disease's trajectory windows have distinct orders, ascend in time, don't overlap."""
    windows = batch.nodes.get("TrajectoryWindow", {})
    by_disease: dict[str, list[tuple[TrajectoryWindow, Relationship]]] = defaultdict(list)
    for rel in batch.rels.get("HAS_WINDOW", {}).values():
        window = windows.get(rel.end)
        if isinstance(window, TrajectoryWindow):
            by_disease[rel.start].append((window, rel))
    problems = []
    for disease, pairs in sorted(by_disease.items()):
        pairs.sort(key=lambda p: (p[0].order, p[0].start_months))
        for (a, ra), (b, rb) in pairwise(pairs):
            loc = _where(batch, [b, rb, a, ra])
            span_a = f"{a.id} [{_fmt(a.start_months)}, {_fmt(a.end_months)})"
            span_b = f"{b.id} [{_fmt(b.start_months)}, {_fmt(b.end_months)})"
            if a.order == b.order:
                problems.append(
                    Problem(
                        loc,
                        "order",
                        f"windows {a.id} and {b.id} of {disease} share order {a.order}",
                    )
                )
            elif b.start_months < a.start_months:
                problems.append(
                    Problem(
                        loc,
                        "order",
                        f"windows of {disease} are not in time "
                        f"order: {span_b} comes after {span_a}",
                    )
                )
            elif b.start_months < a.end_months:
                problems.append(
                    Problem(
                        loc, "start_months", f"windows of {disease} overlap: {span_a} and {span_b}"
                    )
                )
    return problems


def window_frequencies(batch: GraphBatch) -> list[Problem]:
    """Per window and category scheme, ``OBSERVES`` category frequencies sum to 1."""
    categories = batch.nodes.get("SymptomCategory", {})
    groups: dict[tuple[str, str], list[Relationship]] = defaultdict(list)
    for rel in batch.rels.get("OBSERVES", {}).values():
        category = categories.get(rel.end)
        if category is not None:
            groups[(rel.start, getattr(category, "scheme", ""))].append(rel)
    problems = []
    for (window, scheme), rels in sorted(groups.items()):
        total = sum(getattr(r, "frequency", 0.0) for r in rels)
        if abs(total - 1.0) > SUM_TOLERANCE:
            problems.append(
                Problem(
                    _where(batch, rels),
                    "frequency",
                    f"OBSERVES frequencies of window {window} over the "
                    f"{scheme!r} categories sum to {_fmt(total)}, not 1 "
                    f"(±{SUM_TOLERANCE})",
                )
            )
    return problems


def symptoms_categorised(batch: GraphBatch) -> list[Problem]:
    """Every symptom is in at least one category (a warning: it is still usable)."""
    categorised = {r.start for r in batch.rels.get("IN_CATEGORY", {}).values()}
    return [
        Problem(
            batch.location_of(s),
            "id",
            f"Symptom {s.id} has no IN_CATEGORY; category-stratified sampling will never pick it",
            WARNING,
        )
        for s in batch.nodes.get("Symptom", {}).values()
        if s.id not in categorised
    ]


#: The rules besides referential integrity.
RULES: tuple[Rule, ...] = (
    sources_resolve,
    numbers_cited,
    no_cycles,
    prevalence_shares,
    windows_ordered,
    window_frequencies,
    symptoms_categorised,
    *coherence.RULES,
)


def check_graph(batch: GraphBatch) -> list[Problem]:
    """Every rule over ``batch`` taken as the whole graph."""
    return referential_integrity(batch) + [p for rule in RULES for p in rule(batch)]


def validate(batch: GraphBatch, store: GraphStore | None = None) -> list[Problem]:
    """Problems of ``batch`` written over the live graph of ``store`` (or on its own)."""
    if store is None:
        return check_graph(batch)
    problems = resolve_endpoints(batch, store)[1]
    # nothing live around the batch when the graph holds nothing (a first seed or load)
    merged = overlay(neighbourhood(batch, store), batch) if holds_data(store) else batch
    return problems + [p for rule in RULES for p in rule(merged) if p.location.file != LIVE]


def holds_data(store: GraphStore) -> bool:
    """Whether the live graph has any node besides kgsynth's bookkeeping."""
    return bool(store.read("MATCH (n) WHERE NOT n:KgsynthMeta RETURN 1 AS x LIMIT 1"))


def validate_store(store: GraphStore) -> list[Problem]:
    """Problems of the live graph as it is (``ValidationFailed`` if it cannot be read)."""
    return check_graph(read_graph(store))


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == ERROR]


# ---------------------------------------------------------------------- neighbourhood


def _chunked(ids: Collection[str]) -> Iterable[list[str]]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), DEFAULT_BATCH):
        yield ordered[start : start + DEFAULT_BATCH]


def _nodes(store: GraphStore, label: str, ids: Collection[str]) -> list[RawItem]:
    """The live ``label`` nodes among ``ids``."""
    cypher = (
        f"UNWIND $ids AS i MATCH (n:{checked_label(label)} {{id: i}}) RETURN properties(n) AS p"
    )
    return [
        live_item("node", label, row["p"], Location(LIVE))
        for chunk in _chunked(ids)
        for row in store.read(cypher, {"ids": chunk})
    ]


def _rels(
    store: GraphStore, rtype: str, ids: Collection[str], *, into: bool = False
) -> list[tuple[str, RawItem]]:
    """The live ``rtype`` relationships out of (``into``: into) the nodes ``ids``.

    Each comes with the label of its far end.
    """
    out: list[tuple[str, RawItem]] = []
    for start_label, end_label in REL_MODELS[rtype].ends:
        a_key, b_key = ("", " {id: i}") if into else (" {id: i}", "")
        cypher = (
            f"UNWIND $ids AS i MATCH (a:{checked_label(start_label)}{a_key})"
            f"-[r:{checked_type(rtype)}]->(b:{checked_label(end_label)}{b_key}) "
            "RETURN a.id AS s, b.id AS e, properties(r) AS p"
        )
        far = start_label if into else end_label
        for chunk in _chunked(ids):
            for row in store.read(cypher, {"ids": chunk}):
                props = {"start": row["s"], "end": row["e"], **row["p"]}
                out.append((far, live_item("rel", rtype, props, Location(LIVE))))
    return out


def _ancestors(store: GraphStore, batch: GraphBatch, rtype: str) -> list[RawItem]:
    """The live ``rtype`` edges on any path into a start of the batch's ``rtype`` edges.

    A cycle through a batch edge ``u -> v`` is a path ``v -> ... -> u``: every edge of it
    leads into ``u``, so these edges (with the batch's) hold every such cycle.
    """
    batch_into: dict[str, list[str]] = defaultdict(list)
    for rel in batch.rels.get(rtype, {}).values():
        batch_into[rel.end].append(rel.start)
    items: list[RawItem] = []
    seen = {rel.start for rel in batch.rels.get(rtype, {}).values()}
    frontier = set(seen)
    while frontier:
        found = _rels(store, rtype, frontier, into=True)
        items += [item for _, item in found]
        parents = {item.data["start"] for _, item in found}
        parents |= {p for node in frontier for p in batch_into.get(node, [])}
        frontier = parents - seen
        seen |= frontier
    return items


def neighbourhood(batch: GraphBatch, store: GraphStore) -> GraphBatch:
    """What the rules need of the live graph to judge ``batch`` (see the module docstring).

    Every disease the batch touches comes with its context: the disease, its outgoing
    relationships and their far nodes, its windows' ``OBSERVES``, its symptoms'
    ``IN_CATEGORY`` and their categories. Also read: the ``Source``s and ``RISK`` strata
    cited, the batch symptoms' categories and the ancestors of its hierarchy edges.
    """
    items: list[RawItem] = []
    wanted: dict[str, set[str]] = defaultdict(set)  # label -> live node ids to read
    diseases = _touched_diseases(batch, store)
    wanted["Disease"] |= diseases
    windows = set(batch.nodes.get("TrajectoryWindow", {}))
    windows |= {r.start for r in batch.rels.get("OBSERVES", {}).values()}
    symptoms = set(batch.nodes.get("Symptom", {}))

    def add(found: list[tuple[str, RawItem]]) -> None:
        for far, item in found:
            items.append(item)
            wanted[far].add(item.data["end"])

    for rtype, model in sorted(REL_MODELS.items()):
        if any(start == "Disease" for start, _ in model.ends):
            found = _rels(store, rtype, diseases)
            add(found)
            windows |= {i.data["end"] for f, i in found if f == "TrajectoryWindow"}
            symptoms |= {i.data["end"] for f, i in found if f == "Symptom"}
    add(_rels(store, "OBSERVES", windows))
    add(_rels(store, "IN_CATEGORY", symptoms))
    for rtype in HIERARCHIES:
        if batch.rels.get(rtype):
            items += _ancestors(store, batch, rtype)
    cited: list[Entity | Relationship] = list(batch.iter_items())
    wanted["Source"] |= {x.source for x in cited if x.source is not None}
    risks = [*batch.rels.get("RISK", {}).values()]
    wanted["Stratum"] |= {s for r in risks if (s := getattr(r, "stratum", None))}
    wanted["Stratum"] |= {
        str(i.data["stratum"]) for i in items if i.name == "RISK" and i.data.get("stratum")
    }
    for label, ids in sorted(wanted.items()):
        items += _nodes(store, label, ids - set(batch.nodes.get(label, {})))
    live, problems = parse_items(items)
    if problems:
        raise ValidationFailed(problems)
    return live


def _touched_diseases(batch: GraphBatch, store: GraphStore) -> set[str]:
    """Diseases the batch defines, starts relationships at, or reaches through windows
    and symptoms it adds or changes."""
    diseases = set(batch.nodes.get("Disease", {}))
    for rtype, bucket in batch.rels.items():
        if any(start == "Disease" for start, _ in REL_MODELS[rtype].ends):
            diseases |= {r.start for r in bucket.values()}
    windows = set(batch.nodes.get("TrajectoryWindow", {}))
    windows |= {r.start for r in batch.rels.get("OBSERVES", {}).values()}
    symptoms = set(batch.nodes.get("Symptom", {}))
    symptoms |= {r.start for r in batch.rels.get("IN_CATEGORY", {}).values()}
    for rtype, ends in (("HAS_WINDOW", windows), ("PRESENTS", symptoms)):
        diseases |= {item.data["start"] for _, item in _rels(store, rtype, ends, into=True)}
    return diseases
