"""Ontology import: the OBO reader, the OWL/RDF reader, and the mapping onto the graph."""

from __future__ import annotations

import hashlib
from pathlib import Path

from kg.batch import GraphBatch, parse_items
from kg.validate import check_graph
from loaders.files import read_path
from loaders.obo import parse_obo, read_obo
from loaders.ontology import category_id
from loaders.seed import VENDOR

SMALL = """format-version: 1.2
data-version: releases/2025-01-02/tiny.obo
ontology: tiny
property_value: IAO:0000700 T:0 ! root
property_value: dc:title "Tiny \\"Ontology\\"" xsd:string
property_value: terms:license https://creativecommons.org/publicdomain/zero/1.0/

[Term]
id: T:0
name: symptom

[Term]
id: T:1
name: nervous symptom
def: "A symptom of the \\"nerves\\"; see \\[x\\]." [url:http\\://example.org]
is_a: T:0 ! symptom

[Term]
id: T:2
name: mood symptom
is_a: T:0

[Term]
id: T:3
name: low mood ! a comment
synonym: "feeling down" EXACT []
synonym: "the blues" RELATED [X:1]
xref: UMLS_CUI:C1 "label"
is_a: T:1 {source="x"}
is_a: T:2 ! two parents: two categories

[Term]
id: T:4
name: obsolete old thing
is_obsolete: true

[Typedef]
id: part_of
name: part of
"""


def batch_of(text: str, tmp_path: Path, name: str = "tiny.obo") -> tuple[GraphBatch, list]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    items, problems = read_obo(path)
    batch, more = parse_items(items)
    return batch, problems + more


def test_obo_terms_map_to_symptoms_categories_and_is_a(tmp_path: Path) -> None:
    batch, problems = batch_of(SMALL, tmp_path)
    assert problems == []
    symptoms = batch.nodes["Symptom"]
    assert sorted(symptoms) == ["T:1", "T:2", "T:3"]  # no root, no obsolete term
    low = symptoms["T:3"]
    assert low.name == "low mood"  # type: ignore[attr-defined]
    assert low.synonyms == ["feeling down", "the blues"]  # type: ignore[attr-defined]
    assert low.xrefs == ["UMLS_CUI:C1"]  # type: ignore[attr-defined]
    assert symptoms["T:1"].definition == 'A symptom of the "nerves"; see [x].'  # type: ignore[attr-defined]
    assert sorted((r.start, r.end) for r in batch.rels["IS_A"].values()) == [
        ("T:3", "T:1"),
        ("T:3", "T:2"),
    ]
    cats = batch.nodes["SymptomCategory"]
    assert sorted(cats) == [category_id("tiny", "T:1"), category_id("tiny", "T:2")]
    assert {c.scheme for c in cats.values()} == {"tiny"}  # type: ignore[attr-defined]
    assert sorted((r.start, r.end) for r in batch.rels["IN_CATEGORY"].values()) == sorted(
        [
            ("T:1", category_id("tiny", "T:1")),
            ("T:2", category_id("tiny", "T:2")),
            ("T:3", category_id("tiny", "T:1")),
            ("T:3", category_id("tiny", "T:2")),
        ]
    )
    (source,) = batch.nodes["Source"].values()
    assert source.id == "KGS:source/tiny-2025-01-02"
    assert source.citation == 'Tiny "Ontology" (TINY), release 2025-01-02'  # type: ignore[attr-defined]
    assert source.license == "CC0-1.0"  # type: ignore[attr-defined]
    assert all(n.source == source.id for n in batch.iter_nodes() if n.label != "Source")
    assert check_graph(batch) == []


def test_disease_ontologies_map_to_disease_nodes(tmp_path: Path) -> None:
    text = (
        "ontology: doid\n\n[Term]\nid: DOID:4\nname: disease\n\n"
        '[Term]\nid: DOID:10652\nname: Alzheimer\'s disease\ndef: "A dementia." []\n'
        "is_a: DOID:4\n\n[Term]\nid: DOID:9\nname: sub\nis_a: DOID:10652\n"
    )
    batch, problems = batch_of(text, tmp_path, "doid.obo")
    assert problems == []
    assert sorted(batch.nodes["Disease"]) == ["DOID:10652", "DOID:9"]  # the root is left out
    assert batch.nodes["Disease"]["DOID:10652"].description == "A dementia."  # type: ignore[attr-defined]
    assert "SymptomCategory" not in batch.nodes and "IN_CATEGORY" not in batch.rels
    assert [(r.start, r.end) for r in batch.rels["IS_A"].values()] == [("DOID:9", "DOID:10652")]


def test_broken_stanzas_are_reported_by_line_and_skipped() -> None:
    text = """ontology: x

[Term]
id: X:1
name: fine

[Term
id: X:2
name: under a broken header

[Term]
id: X:3
this line has no tag
name: broken line

[Term]
name: no id here

[Term]
id: X:5
def: "never closed
synonym: "s" SIDEWAYS []

[Term]
id: X:1
name: again
"""
    _, terms, problems = parse_obo(text, "x.obo")
    assert [t.id for t in terms] == ["X:1"]
    got = [(p.location.line, p.message) for p in problems]
    assert got[0][0] == 7 and "broken stanza header" in got[0][1]
    assert got[1][0] == 13 and "expected 'tag: value'" in got[1][1]
    assert got[2][0] == 16 and "without id" in got[2][1]
    assert got[3][0] == 21 and "unterminated" in got[3][1]
    assert got[4][0] == 22 and "unknown synonym scope 'SIDEWAYS'" in got[4][1]
    assert got[5][0] == 24 and "X:1 is defined again (first on line 3)" in got[5][1]


def test_truncated_rdf_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.owl"
    path.write_text(
        '<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        '22-rdf-syntax-ns#">\n  <rdf:Description rdf:about="http://x/1">\n',
        encoding="utf-8",
    )
    items, problems = read_path(path)
    assert items == [] and len(problems) == 1
    assert problems[0].location.line == 4 and "not valid RDF (xml)" in problems[0].message


def test_symp_obo_and_owl_yield_the_same_graph(shared_data: Path) -> None:
    onto = shared_data / "ontologies"
    obo, problems = read_path(onto / "symp.obo")
    assert problems == []
    owl, problems = read_path(onto / "symp.owl")
    assert problems == []
    from_obo, p1 = parse_items(obo)
    from_owl, p2 = parse_items(owl)
    assert p1 == p2 == []
    assert set(from_obo.nodes["Symptom"]) == set(from_owl.nodes["Symptom"])
    assert from_obo.canonical() == from_owl.canonical()  # names, synonyms, defs, xrefs, edges
    symptoms = from_obo.nodes["Symptom"]
    assert len(symptoms) == 894  # 1,020 terms - 125 obsolete - the root
    assert "SYMP:0000462" not in symptoms and "SYMP:0000003" not in symptoms
    assert symptoms["SYMP:0000001"].synonyms == ["stomach cramp"]  # type: ignore[attr-defined]
    assert len(from_obo.nodes["SymptomCategory"]) == 14
    assert {r.end for r in from_obo.rels["IN_CATEGORY"].values() if r.start == "SYMP:0000005"} == {
        category_id("symp", "SYMP:0000410")
    }
    assert [p for p in check_graph(from_obo) if p.severity == "error"] == []


def test_vendored_symp_is_the_shared_release(shared_data: Path) -> None:
    def sha(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    assert sha(VENDOR / "symp.obo") == sha(shared_data / "ontologies" / "symp.obo")
