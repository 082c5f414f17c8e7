"""OWL ontologies (RDF/XML, Turtle, N-Triples) read with rdflib into ontology terms.

Reads the OBO-in-OWL conventions: ``rdfs:label``, ``obo:IAO_0000115`` (definition),
``oboInOwl:has{Exact,Related,Broad,Narrow}Synonym``, ``oboInOwl:hasDbXref``,
``rdfs:subClassOf`` to named classes, ``owl:deprecated``, and the ontology header
(``dc:title``, ``owl:versionInfo``/``owl:versionIRI``, license, ``IAO:0000700`` root).
"""

from __future__ import annotations

import re
from pathlib import Path

from rdflib import OWL, RDF, RDFS, Graph, Literal, Namespace, URIRef

from kg.batch import Location, Problem, RawItem
from loaders.ontology import (
    OntologyInfo,
    OntologyTerm,
    license_name,
    ontology_items,
    release_version,
)

OBO = Namespace("http://purl.obolibrary.org/obo/")
OBO_IN_OWL = Namespace("http://www.geneontology.org/formats/oboInOwl#")
DC = Namespace("http://purl.org/dc/elements/1.1/")
DCTERMS = Namespace("http://purl.org/dc/terms/")
SYNONYMS = tuple(OBO_IN_OWL[f"has{s}Synonym"] for s in ("Exact", "Related", "Broad", "Narrow"))
_ABOUT = re.compile(r'rdf:about="([^"]+)"')


def rdf_format(path: Path) -> str:
    return {".ttl": "turtle", ".nt": "nt", ".n3": "n3", ".jsonld": "json-ld"}.get(
        path.suffix.lower(), "xml"
    )


def parse_rdf(text: str, name: str, fmt: str) -> tuple[Graph | None, list[Problem]]:
    """The parsed graph, or None and a problem with the parser's line where it gives one."""
    graph = Graph()
    try:
        graph.parse(data=text, format=fmt, publicID=f"file:///{Path(name).name}")
    except Exception as err:  # rdflib raises many unrelated types for bad input
        get_line = getattr(err, "getLineNumber", None)  # xml.sax errors
        lines = getattr(err, "lines", None)  # rdflib's notation3 BadSyntax (0-based)
        line = (
            int(get_line()) if callable(get_line) else lines + 1 if isinstance(lines, int) else None
        )
        why = getattr(err, "_why", None)  # BadSyntax keeps the reason apart from the context
        message = str(why or getattr(err, "message", None) or err).strip().splitlines()
        text = message[0] if message else type(err).__name__
        return None, [Problem(Location(name, line), "", f"not valid RDF ({fmt}): {text[:200]}")]
    return graph, []


def term_id(iri: URIRef) -> str:
    """``http://purl.obolibrary.org/obo/SYMP_0000001`` -> ``SYMP:0000001``."""
    local = re.split(r"[/#]", str(iri))[-1]
    return local.replace("_", ":", 1) if "_" in local else local


def _text(graph: Graph, subject: URIRef, pred: URIRef) -> str | None:
    values = sorted(str(o) for o in graph.objects(subject, pred) if isinstance(o, Literal))
    return values[0] if values else None


def _ontology_info(graph: Graph, fallback: str) -> OntologyInfo:
    onto = next((s for s in graph.subjects(RDF.type, OWL.Ontology) if isinstance(s, URIRef)), None)
    if onto is None:
        return OntologyInfo(ontology=fallback)
    ident = re.split(r"[/#]", str(onto).removesuffix(".owl"))[-1].lower() or fallback
    version = _text(graph, onto, OWL.versionInfo) or str(graph.value(onto, OWL.versionIRI) or "")
    lic = graph.value(onto, DCTERMS.license) or graph.value(onto, DC.license)
    root = graph.value(onto, OBO.IAO_0000700)
    return OntologyInfo(
        ontology=ident,
        title=_text(graph, onto, DC.title) or _text(graph, onto, DCTERMS.title),
        version=release_version(version),
        license=license_name(str(lic)) if lic is not None else None,
        root=term_id(root) if isinstance(root, URIRef) else None,
    )


def owl_terms(graph: Graph, lines: dict[str, int]) -> list[OntologyTerm]:
    terms = []
    for cls in sorted(s for s in graph.subjects(RDF.type, OWL.Class) if isinstance(s, URIRef)):
        tid = _text(graph, cls, OBO_IN_OWL.id) or term_id(cls)
        terms.append(
            OntologyTerm(
                id=tid,
                name=_text(graph, cls, RDFS.label),
                definition=_text(graph, cls, OBO.IAO_0000115),
                synonyms=tuple(sorted({str(o) for p in SYNONYMS for o in graph.objects(cls, p)})),
                xrefs=tuple(sorted(str(o) for o in graph.objects(cls, OBO_IN_OWL.hasDbXref))),
                parents=tuple(
                    sorted(
                        term_id(o)
                        for o in graph.objects(cls, RDFS.subClassOf)
                        if isinstance(o, URIRef) and o != OWL.Thing
                    )
                ),
                obsolete=any(str(o).lower() == "true" for o in graph.objects(cls, OWL.deprecated)),
                line=lines.get(str(cls)),
            )
        )
    return terms


def read_owl_graph(
    graph: Graph, text: str, name: str, label: str | None = None
) -> tuple[list[RawItem], list[Problem]]:
    """Raw items (see ``loaders.ontology``) from a parsed OWL ontology."""
    lines: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        for m in _ABOUT.finditer(line):
            lines.setdefault(m.group(1), lineno)
    terms = owl_terms(graph, lines)
    if not terms:
        return [], [Problem(Location(name, 1), "", "no owl:Class found: not an OWL ontology")]
    return ontology_items(_ontology_info(graph, Path(name).stem.lower()), terms, name, label)
