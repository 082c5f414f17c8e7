"""The ICD-10-CM catalogue and the Disease Ontology associations, in memory."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import simple_icd_10_cm as cm

from kg.batch import GraphBatch
from kg.validate import check_graph
from loaders.disease_ontology import DO_SOURCE, UNWEIGHTED, do_batch, normalise_code
from loaders.icd10cm import catalogue_codes, icd10cm_batch
from loaders.obo import read_obo
from loaders.seed import VENDOR


@pytest.fixture(scope="module")
def catalogue() -> GraphBatch:
    return icd10cm_batch()


def ancestors(batch: GraphBatch, node_id: str) -> list[str]:
    parent = {r.end: r.start for r in batch.rels["PARENT_OF"].values()}
    out = []
    while node_id in parent:
        node_id = parent[node_id]
        out.append(node_id)
    return out


def test_catalogue_counts_match_the_package(catalogue: GraphBatch) -> None:
    codes = catalogue.nodes["IcdCode"]
    kinds: dict[str, int] = {}
    for node in codes.values():
        kinds[node.kind] = kinds.get(node.kind, 0) + 1  # type: ignore[attr-defined]
    assert kinds == {"chapter": 22, "block": 297, "category": 1918, "code": 96268}
    listed = cm.get_all_codes(True)
    single = {c for c in set(listed) if cm.is_block(c) and "-" not in c}
    # the package lists 39 one-category blocks under the category's own name
    assert len(single) == 39
    assert sum(cm.is_block(c) for c in listed) == 297 + 39 == 336
    assert sum(cm.is_category(c) for c in listed) == 1918 + 39 == 1957
    assert len(codes) == len(listed)  # every listed entry is one node
    billable = {n.code for n in codes.values() if n.billable}  # type: ignore[attr-defined]
    leaves = {c for c in set(listed) if cm.is_leaf(c)}
    assert billable == {c for c in leaves if not cm.is_block(c) or c in single}
    assert len(billable) == 74719 and len(billable) > 74_000
    assert len(catalogue.rels["PARENT_OF"]) == len(codes) - 22  # one parent each but chapters


def test_catalogue_hierarchy_facts(catalogue: GraphBatch) -> None:
    assert ancestors(catalogue, "ICD10CM:G30.9") == ["ICD10CM:G30", "ICD10CM:G30-G32", "ICD10CM:6"]
    assert ancestors(catalogue, "ICD10CM:N99.0") == ["ICD10CM:N99", "ICD10CM:N99-N99", "ICD10CM:14"]
    assert ancestors(catalogue, "ICD10CM:S72.001A")[:2] == ["ICD10CM:S72.001", "ICD10CM:S72.00"]
    g309 = catalogue.nodes["IcdCode"]["ICD10CM:G30.9"]
    assert (g309.title, g309.chapter, g309.block, g309.billable) == (  # type: ignore[attr-defined]
        "Alzheimer's disease, unspecified",
        "6",
        "G30-G32",
        True,
    )
    assert not catalogue.nodes["IcdCode"]["ICD10CM:G30"].billable  # type: ignore[attr-defined]
    assert catalogue.nodes["IcdCode"]["ICD10CM:QA0.0101"].billable  # type: ignore[attr-defined]
    (source,) = catalogue.nodes["Source"].values()
    assert "Centers for Disease Control" in source.citation  # type: ignore[attr-defined]
    assert "simple-icd-10-cm" in (source.remarks or "")
    assert check_graph(catalogue) == []


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("ICD10CM:G30.9", "G30.9"),
        ("icd10cm:g309", "G30.9"),
        ("G30.-", "G30"),
        ("G30", "G30"),
        (" ICD10CM:A00-A09 ", "A00-A09"),
        ("S72.001A", "S72.001A"),
        ("QA00101", "QA0.0101"),
    ],
)
def test_normalise_code(raw: str, code: str) -> None:
    assert normalise_code(raw) == code


def test_do_associations_from_the_vendored_files() -> None:
    items, _ = read_obo(VENDOR / "symp.obo")
    symptoms = {i.data["id"] for i in items if i.name == "Symptom"}
    batch, stats, problems = do_batch(VENDOR, catalogue_codes(), symptoms)
    assert problems == []
    assert (stats.diseases, stats.coded_as, stats.presents, stats.is_a) == (445, 465, 1283, 72)
    assert stats.codes_skipped == [] and stats.symptoms_skipped == []
    presents = list(batch.rels["PRESENTS"].values())
    assert {(r.weight, r.remarks, r.source) for r in presents} == {  # type: ignore[attr-defined]
        (None, UNWEIGHTED, DO_SOURCE.id)
    }
    assert batch.nodes["Source"][DO_SOURCE.id].license == "CC0-1.0"  # type: ignore[attr-defined]
    disease = batch.nodes["Disease"]["DOID:0050597"]
    assert disease.name == "intestinal schistosomiasis"  # type: ignore[attr-defined]
    assert disease.xrefs == ["ICD10CM:B65.1", "ICD10CM:B65.2"]  # type: ignore[attr-defined]
    assert {r.end for r in batch.rels["CODED_AS"].values() if r.start == disease.id} == {
        "ICD10CM:B65.1",
        "ICD10CM:B65.2",
    }


def test_do_skips_and_counts_what_it_cannot_link(tmp_path: Path) -> None:
    (tmp_path / "do-disease-symptom.tsv").write_text(
        "disease_id\tdisease_label\tsymptom_id\tsymptom_label\n"
        "DOID:1\tone\tSYMP:1\ts1\nDOID:1\tone\tSYMP:404\tgone\nDOID:2\ttwo\tSYMP:1\ts1\n"
        "DOID:3\tno xref\tSYMP:1\ts1\n",
        encoding="utf-8",
    )
    (tmp_path / "do-icd10cm-xrefs.tsv").write_text(
        'id\tlabel\txrefs\n"DOID:1"\t"one"\t"ICD10CM:G30.9, ICD10CM:Z99.999"\n'
        '"DOID:2"\t"two"\t"ICD10CM:G30"\n',
        encoding="utf-8",
    )
    (tmp_path / "do-hierarchy.tsv").write_text(
        'id\tlabel\tsubClassOf\n"DOID:1"\t"one"\t"two"\n"DOID:2"\t"two"\t"disease"\n',
        encoding="utf-8",
    )
    batch, stats, problems = do_batch(tmp_path, {"G30.9", "G30"}, {"SYMP:1"})
    assert problems == []
    assert sorted(batch.nodes["Disease"]) == ["DOID:1", "DOID:2"]
    assert stats.codes_skipped == ["DOID:1 ICD10CM:Z99.999"]
    assert stats.symptoms_skipped == ["DOID:1 SYMP:404"]
    assert [(r.start, r.end) for r in batch.rels["IS_A"].values()] == [("DOID:1", "DOID:2")]


def test_vendored_do_files_come_from_the_shared_release(shared_data: Path) -> None:
    onto = shared_data / "ontologies"
    for name in ("do-disease-symptom.tsv", "do-icd10cm-xrefs.tsv"):
        assert (
            hashlib.sha256((VENDOR / name).read_bytes()).hexdigest()
            == hashlib.sha256((onto / name).read_bytes()).hexdigest()
        )
    shared_rows = set((onto / "do-hierarchy.tsv").read_text(encoding="utf-8").splitlines())
    vendored = (VENDOR / "do-hierarchy.tsv").read_text(encoding="utf-8").splitlines()
    assert set(vendored) <= shared_rows and len(vendored) == 861
    assert (VENDOR / "PROVENANCE.md").is_file()
