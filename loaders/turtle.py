"""The graph as RDF (Turtle) in the kgsynth vocabulary, and back.

A node is ``<https://w3id.org/kgsynth/id/LABEL/ID>`` typed ``kgs:LABEL`` with one
``kgs:FIELD`` per property (``rdfs:label`` repeats the name for RDF browsers). A
relationship is a direct triple ``start kgs:TYPE end`` (for SPARQL) plus a reified
``rdf:Statement`` carrying its properties. Lists are RDF collections (order kept);
floats are ``xsd:decimal`` with Python's shortest exact digits, so values round-trip.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from rdflib import RDF, RDFS, BNode, Graph, Literal, Namespace, URIRef
from rdflib.collection import Collection
from rdflib.term import Node

from kg.batch import GraphBatch, Location, Problem, RawItem
from kg.model import LABELS, REL_TYPES, node_props, rel_key, rel_props

KGS = Namespace("https://w3id.org/kgsynth/vocab#")
KGS_ID = Namespace("https://w3id.org/kgsynth/id/")


def node_iri(label: str, node_id: str) -> URIRef:
    return KGS_ID[f"{label}/{quote(node_id, safe=':/')}"]


def rel_iri(key: tuple[str, ...]) -> URIRef:
    digest = hashlib.sha1("\x1f".join(key).encode("utf-8")).hexdigest()[:20]
    return KGS_ID[f"rel/{key[0]}/{digest}"]


def _literal(value: Any) -> Literal:
    if isinstance(value, float):
        return Literal(Decimal(repr(value)))
    return Literal(value)


def _add_props(graph: Graph, subject: URIRef, props: dict[str, Any]) -> None:
    for key, value in props.items():
        if isinstance(value, list):
            head = BNode()
            Collection(graph, head, [_literal(v) for v in value])
            graph.add((subject, KGS[key], head if value else RDF.nil))
        else:
            graph.add((subject, KGS[key], _literal(value)))


def batch_to_rdf(batch: GraphBatch) -> Graph:
    graph = Graph()
    graph.bind("kgs", KGS)
    graph.bind("kgsid", KGS_ID)
    iris: dict[str, list[URIRef]] = {}
    for node in batch.iter_nodes():
        subject = node_iri(node.label, node.id)
        iris.setdefault(node.id, []).append(subject)
        graph.add((subject, RDF.type, KGS[node.label]))
        props = node_props(node)
        _add_props(graph, subject, props)
        display = props.get("name") or props.get("title")
        if isinstance(display, str):
            graph.add((subject, RDFS.label, Literal(display)))
    for rel in batch.iter_rels():
        props = rel_props(rel)
        key = rel_key(rel.type, rel.start, rel.end, props)
        stmt = rel_iri(key)
        starts = iris.get(rel.start, [KGS_ID[quote(rel.start, safe=":/")]])
        ends = iris.get(rel.end, [KGS_ID[quote(rel.end, safe=":/")]])
        for s in starts:
            for o in ends:
                graph.add((s, KGS[rel.type], o))
        graph.add((stmt, RDF.type, RDF.Statement))
        graph.add((stmt, RDF.subject, starts[0]))
        graph.add((stmt, RDF.predicate, KGS[rel.type]))
        graph.add((stmt, RDF.object, ends[0]))
        graph.add((stmt, KGS.start, Literal(rel.start)))
        graph.add((stmt, KGS.end, Literal(rel.end)))
        _add_props(graph, stmt, props)
    return graph


def write_turtle(batch: GraphBatch) -> str:
    return batch_to_rdf(batch).serialize(format="turtle")


def is_kgsynth_rdf(graph: Graph) -> bool:
    """True when the graph uses the kgsynth vocabulary (rather than being an ontology)."""
    return any(str(o).startswith(str(KGS)) for o in graph.objects(None, RDF.type)) or any(
        str(o).startswith(str(KGS)) for o in graph.objects(None, RDF.predicate)
    )


def _value(graph: Graph, obj: Node) -> Any:
    if obj == RDF.nil or (isinstance(obj, BNode) and graph.value(obj, RDF.first) is not None):
        return [_value(graph, item) for item in Collection(graph, obj)]
    if isinstance(obj, Literal):
        value = obj.toPython()
        return float(value) if isinstance(value, Decimal) else value
    return str(obj)


def _props(graph: Graph, subject: Node) -> dict[str, Any]:
    """The ``kgs:`` properties of ``subject`` (the direct relationship triples left out)."""
    props: dict[str, Any] = {}
    for pred, obj in graph.predicate_objects(subject):
        name = str(pred).removeprefix(str(KGS))
        if name != str(pred) and name not in REL_TYPES:
            props[name] = _value(graph, obj)
    return props


def rdf_items(graph: Graph, text: str, name: str) -> tuple[list[RawItem], list[Problem]]:
    """Raw items from a graph in the kgsynth vocabulary (as written by ``write_turtle``)."""
    prefix = graph.namespace_manager
    starts: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line and not line[0].isspace():
            starts.setdefault(line.split(" ", 1)[0], lineno)

    def where(subject: Node) -> Location:
        forms = (subject.n3(prefix), subject.n3()) if isinstance(subject, URIRef) else ()
        return Location(name, next((starts[f] for f in forms if f in starts), None))

    items: list[RawItem] = []
    problems: list[Problem] = []
    for subject, cls in sorted(graph.subject_objects(RDF.type), key=str):
        if not str(cls).startswith(str(KGS)):
            continue
        label = str(cls)[len(str(KGS)) :]
        if label not in LABELS:
            problems.append(
                Problem(
                    where(subject),
                    "rdf:type",
                    f"unknown label {label!r}; allowed: {', '.join(sorted(LABELS))}",
                )
            )
            continue
        items.append(RawItem("node", label, _props(graph, subject), where(subject)))
    for stmt in sorted(graph.subjects(RDF.type, RDF.Statement), key=str):
        pred = graph.value(stmt, RDF.predicate)
        rtype = str(pred)[len(str(KGS)) :] if pred is not None else ""
        if rtype not in REL_TYPES:
            problems.append(
                Problem(
                    where(stmt),
                    "rdf:predicate",
                    f"unknown relationship type {rtype!r}; allowed: {', '.join(sorted(REL_TYPES))}",
                )
            )
            continue
        items.append(RawItem("rel", rtype, _props(graph, stmt), where(stmt)))
    return items, problems
