"""The graph as RDF (Turtle) in the kgsynth vocabulary, and back.

A node is ``<https://w3id.org/kgsynth/id/LABEL/ID>`` typed ``kgs:LABEL`` with one
``kgs:FIELD`` per property (``rdfs:label`` repeats the name for RDF browsers). A
relationship is a direct triple ``start kgs:TYPE end`` (for SPARQL) plus a reified
``rdf:Statement`` carrying its properties. Lists are RDF collections (order kept);
floats are ``xsd:decimal`` with Python's shortest exact digits, so values round-trip.
Writing streams Turtle text subject by subject (no in-memory RDF graph); reading parses
with rdflib.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from rdflib import RDF, RDFS, BNode, Graph, Literal, Namespace, URIRef
from rdflib.collection import Collection
from rdflib.term import Node

from kg.batch import GraphBatch, Location, Problem, RawItem
from kg.model import LABELS, REL_TYPES, Entity, Relationship, node_props, rel_key, rel_props

KGS = Namespace("https://w3id.org/kgsynth/vocab#")
KGS_ID = Namespace("https://w3id.org/kgsynth/id/")


def node_iri(label: str, node_id: str) -> URIRef:
    return KGS_ID[f"{label}/{quote(node_id, safe=':/')}"]


def rel_iri(key: tuple[str, ...]) -> URIRef:
    digest = hashlib.sha1("\x1f".join(key).encode("utf-8")).hexdigest()[:20]
    return KGS_ID[f"rel/{key[0]}/{digest}"]


PREFIXES = (
    f"@prefix kgs: <{KGS}> .\n"
    f"@prefix rdf: <{RDF}> .\n"
    f"@prefix rdfs: <{RDFS}> .\n"
    "@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n\n"
)
#: Characters a Turtle string escapes (the rest of Unicode is written as is, in UTF-8).
_ESCAPES = {ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\r"): "\\r"}
_ESCAPES |= {c: f"\\u{c:04X}" for c in range(0x20) if c not in _ESCAPES}
_NEEDS_ESCAPE = re.compile(r'[\\"\x00-\x1f]')


def _term(value: Any) -> str:
    """``value`` as a Turtle term: a string, boolean, integer, decimal or collection."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return f'"{"INF" if value > 0 else "-INF" if value < 0 else "NaN"}"^^xsd:double'
        digits = format(Decimal(repr(value)), "f")  # shortest exact digits, as xsd:decimal
        return digits if "." in digits else f"{digits}.0"
    if isinstance(value, list):
        return f"( {' '.join(_term(v) for v in value)} )" if value else "rdf:nil"
    text = str(value)
    return f'"{text.translate(_ESCAPES) if _NEEDS_ESCAPE.search(text) else text}"'


def _subject(iri: str, pairs: list[tuple[str, str]]) -> str:
    """One Turtle subject block: ``<iri> p1 o1 ; p2 o2 .``, one pair per line."""
    return f"<{iri}> " + " ;\n    ".join(f"{p} {o}" for p, o in pairs) + " .\n\n"


def _pairs(props: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f"kgs:{key}", _term(value)) for key, value in props.items()]


def node_turtle(node: Entity, iris: dict[str, list[str]]) -> str:
    """One node as a Turtle block; its IRI is added to ``iris`` (id -> IRIs)."""
    subject = node_iri(node.label, node.id)
    iris.setdefault(node.id, []).append(str(subject))
    props = node_props(node)
    pairs = [("a", f"kgs:{node.label}"), *_pairs(props)]
    display = props.get("name") or props.get("title")
    if isinstance(display, str):
        pairs.append(("rdfs:label", _term(display)))
    return _subject(subject, pairs)


def rel_turtle(rel: Relationship, iris: dict[str, list[str]]) -> str:
    """One relationship: its direct triples and its ``rdf:Statement`` block."""
    props = rel_props(rel)
    starts = iris.get(rel.start, [str(KGS_ID[quote(rel.start, safe=":/")])])
    ends = iris.get(rel.end, [str(KGS_ID[quote(rel.end, safe=":/")])])
    direct = "".join(f"<{s}> kgs:{rel.type} <{o}> .\n" for s in starts for o in ends)
    pairs = [
        ("a", "rdf:Statement"),
        ("rdf:subject", f"<{starts[0]}>"),
        ("rdf:predicate", f"kgs:{rel.type}"),
        ("rdf:object", f"<{ends[0]}>"),
        *_pairs({"start": rel.start, "end": rel.end, **props}),
    ]
    return direct + _subject(rel_iri(rel_key(rel.type, rel.start, rel.end, props)), pairs)


def turtle_chunks(batch: GraphBatch) -> Iterator[str]:
    """``batch`` as Turtle, one subject (node or relationship statement) per chunk.

    Written as text, without building an RDF graph: memory stays at the batch's.
    """
    yield PREFIXES
    iris: dict[str, list[str]] = {}
    for node in batch.iter_nodes():
        yield node_turtle(node, iris)
    for rel in batch.iter_rels():
        yield rel_turtle(rel, iris)


def write_turtle(batch: GraphBatch) -> str:
    return "".join(turtle_chunks(batch))


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
