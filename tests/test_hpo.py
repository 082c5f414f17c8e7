"""The HPO annotations importer (loaders.hpo) on a hand-written HPOA/OBO miniature.

tests/data/hpo/ holds files in the layouts of ``phenotype.hpoa`` and ``hp.obo`` written for
these tests (no HPO content). Expected values are worked out by hand from those rows and the
mapping in docs/curation.md: class values 1.0 / 0.895 / 0.545 / 0.17 / 0.025, ``n/m`` and
``p%`` as printed, several fractions for one pair pooled.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kg.batch import GraphBatch, Problem
from kg.model import CodedAs, IcdCode, Presents, Symptom
from kg.queries import get_query
from kg.store.base import GraphStore
from kg.validate import errors
from loaders.hpo import HpoStats, hpo_batch, parse_frequency
from loaders.pipeline import check_batch, load_batch

DATA = Path(__file__).resolve().parent / "data" / "hpo"
CODES = frozenset({"G11.3", "Q87.1"})


def build(hpoa: Path = DATA / "phenotype.hpoa") -> tuple[GraphBatch, HpoStats, list[Problem]]:
    return hpo_batch(hpoa, DATA / "hp.obo", DATA / "bridge.tsv", CODES)


def presents(batch: GraphBatch) -> dict[tuple[str, str], Presents]:
    out = {}
    for rel in batch.rels["PRESENTS"].values():
        assert isinstance(rel, Presents)
        out[(rel.start, rel.end)] = rel
    return out


def test_frequencies_are_mapped_as_documented() -> None:
    batch, _, problems = build()
    assert problems == []
    p = presents(batch)
    a = "OMIM:100001"
    # (weight, class, status, source) written by hand from the fixture rows
    expected = {
        (a, "HP:0001251"): (1.0, "obligate", "estimate", "KGS:source/pmid-11111"),
        (a, "HP:0001250"): (0.895, "very_frequent", "estimate", "KGS:source/pmid-11111"),
        (a, "HP:0001252"): (0.75, "frequent", "measured", "KGS:source/pmid-22222"),  # alt_id
        (a, "HP:0001635"): (0.17, "occasional", "measured", "KGS:source/pmid-22222"),
        (a, "HP:0001640"): (None, None, None, "KGS:source/omim-100001"),  # no frequency
        (a, "HP:0002361"): (0.4, "frequent", "estimate", "KGS:source/pmid-44444"),  # (1+3)/(2+8)
        ("ORPHA:200002", "HP:0001635"): (0.17, "occasional", "estimate", "KGS:source/orpha-200002"),
        ("ORPHA:200002", "HP:0001640"): (0.025, "very_rare", "estimate", "KGS:source/orpha-200002"),
        ("ORPHA:200002", "HP:0001250"): (0.545, "frequent", "estimate", "KGS:source/orpha-200002"),
        # 1/3 rounded to 4 decimals (reads back from a store unchanged)
        ("ORPHA:200002", "HP:0001264"): (0.3333, "frequent", "measured", "KGS:source/pmid-66666"),
    }
    got = {k: (r.weight, r.frequency_class, r.status, r.source) for k, r in p.items()}
    assert got.keys() == expected.keys()
    for key, (weight, cls, status, source) in expected.items():
        assert got[key][0] == (pytest.approx(weight) if weight is not None else None), key
        assert got[key][1:] == (cls, status, source), key
    assert "PMID:33333" in (p[(a, "HP:0001635")].remarks or "")
    assert "1/2 (PMID:44444), 3/8 (PMID:55555) = 4/10" in (p[(a, "HP:0002361")].remarks or "")
    assert "unweighted" in (p[(a, "HP:0001640")].remarks or "")


def test_onset_sex_and_modifiers_are_kept() -> None:
    p = presents(build()[0])
    heart = p[("ORPHA:200002", "HP:0001635")]
    assert (heart.onset, heart.sex, heart.modifiers) == ("HP:0003577", "male", ["HP:0012828"])
    assert "onset Congenital onset" in (heart.remarks or "")
    seizure = p[("ORPHA:200002", "HP:0001250")]
    assert (seizure.onset, seizure.sex, seizure.modifiers) == ("HP:0003581", "female", None)
    ataxia = p[("OMIM:100001", "HP:0001251")]
    assert (ataxia.onset, ataxia.sex, ataxia.modifiers) == (None, None, None)


def test_skipped_rows_and_unmapped_diseases_are_counted() -> None:
    batch, stats, _ = build()
    assert stats.unmapped == ["DECIPHER:9", "OMIM:100003", "OMIM:100004"]  # OMIM:100004: X99.9
    assert stats.skipped == {
        "NOT rows": 1,
        "Excluded (HP:0040285) rows": 1,
        "aspect I rows": 1,
        "pairs with frequency 0": 1,  # 0/5 on the obsolete id's replacement
        "synonyms with gendered words": 1,
    }
    assert (stats.diseases, stats.presents, stats.weighted, stats.coded_as) == (2, 10, 9, 2)
    note = stats.note()
    assert "3 diseases unmapped to ICD-10-CM (e.g. DECIPHER:9, OMIM:100003, OMIM:100004)" in note
    assert set(batch.nodes["Disease"]) == {"OMIM:100001", "ORPHA:200002"}


def test_diseases_are_coded_non_primary_with_the_bridge_as_source() -> None:
    batch = build()[0]
    coded = {(r.start, r.end): r for r in batch.rels["CODED_AS"].values() if isinstance(r, CodedAs)}
    assert set(coded) == {("OMIM:100001", "ICD10CM:G11.3"), ("ORPHA:200002", "ICD10CM:Q87.1")}
    assert not any(r.primary for r in coded.values())
    assert coded[("OMIM:100001", "ICD10CM:G11.3")].source == "KGS:source/doid-xrefs-9fbefd66"
    assert coded[("ORPHA:200002", "ICD10CM:Q87.1")].source == "KGS:source/orphanet-import-02694238"
    assert "DOID:0000001" in (coded[("OMIM:100001", "ICD10CM:G11.3")].remarks or "")


def test_phenotypes_become_symptoms_with_lay_forms_first() -> None:
    batch = build()[0]
    symptoms = {k: v for k, v in batch.nodes["Symptom"].items() if isinstance(v, Symptom)}
    # the phenotypes the imported PRESENTS use (HP:0001290 is an alt_id of HP:0001252)
    assert set(symptoms) == {
        "HP:0001250",
        "HP:0001251",
        "HP:0001252",
        "HP:0001264",
        "HP:0001635",
        "HP:0001640",
        "HP:0002361",
    }
    assert symptoms["HP:0001250"].synonyms == ["Fits", "Epileptic seizure"]
    assert symptoms["HP:0001251"].synonyms == ["Unsteady walking"]
    assert set(batch.nodes["SymptomCategory"]) == {
        "KGS:category/hp/HP_0000707",
        "KGS:category/hp/HP_0001626",
    }
    cats = {(r.start, r.end) for r in batch.rels["IN_CATEGORY"].values()}
    assert len(cats) == 8  # one per symptom, HP:0002361 in both
    assert ("HP:0002361", "KGS:category/hp/HP_0001626") in cats
    assert ("HP:0002361", "KGS:category/hp/HP_0000707") in cats
    assert ("HP:0001264", "KGS:category/hp/HP_0000707") in cats  # through Ataxia
    # is_a between loaded terms only
    assert {(r.start, r.end) for r in batch.rels["IS_A"].values()} == {("HP:0001264", "HP:0001251")}


@pytest.mark.parametrize(
    ("text", "weight", "cls"),
    [
        ("HP:0040280", 1.0, "obligate"),
        ("HP:0040281", 0.895, "very_frequent"),
        ("HP:0040282", 0.545, "frequent"),
        ("HP:0040283", 0.17, "occasional"),
        ("HP:0040284", 0.025, "very_rare"),
        ("HP:0040285", 0.0, None),
        ("4/5", 0.8, "very_frequent"),
        ("1/20", 0.05, "occasional"),
        ("7%", 0.07, "occasional"),
        ("19/183", 0.1038, "occasional"),  # rounded to 4 decimals
        ("", None, None),
    ],
)
def test_frequency_cells(text: str, weight: float | None, cls: str | None) -> None:
    f = parse_frequency(text)
    assert (f.weight, f.frequency_class) == (
        pytest.approx(weight) if weight is not None else None,
        cls,
    )


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("\t3/4\t", "\t3/x\t", "frequency: '3/x' is not an HPO frequency term"),
        ("\t3/4\t", "\t5/4\t", "frequency: fraction '5/4' is not n/m"),
        ("\tHP:0001290\t", "\tHP:12\t", "hpo_id: 'HP:12' is not an HPO term id"),
        ("\t17%\t\t", "\t17%\tboth\t", "sex: 'both' is not a sex"),
        ("\tPMID:22222\tPCS\t\t3/4\t\t\tP\t", "\tPMID:22222\tPCS\t\t3/4\t\tP\t", "expected 12"),
    ],
)
def test_a_malformed_line_is_one_clear_problem(
    tmp_path: Path, old: str, new: str, where: str
) -> None:
    text = (DATA / "phenotype.hpoa").read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if old in line)
    lines[index] = lines[index].replace(old, new, 1)
    bad = tmp_path / "bad.hpoa"
    bad.write_text("".join(lines), encoding="utf-8")
    _, _, problems = build(bad)
    assert len(problems) == 1, problems
    assert str(problems[0]).startswith(f"{bad}:{index + 1}: ")
    assert where in str(problems[0])


def test_an_onset_that_is_no_onset_term_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "phenotype.hpoa"
    shutil.copy(DATA / "phenotype.hpoa", bad)
    text = bad.read_text(encoding="utf-8").replace("\tHP:0003581\t", "\tHP:0001250\t")
    bad.write_text(text, encoding="utf-8")
    problems = build(bad)[2]
    assert [(p.field, "HP:0001250 is not an onset term" in p.message) for p in problems] == [
        ("onset", True)
    ]


def _with_codes(batch: GraphBatch) -> GraphBatch:
    """The batch plus the two catalogue codes it points at (titles written by hand)."""
    for code, title in (("G11.3", "Test cerebellar ataxia code"), ("Q87.1", "Test syndrome code")):
        batch.add_node(IcdCode(id=f"ICD10CM:{code}", code=code, title=title, kind="code"))
    return batch


def test_reimport_is_idempotent(embedded_store: GraphStore) -> None:
    stats_query = get_query("graph_stats").text
    batch, _, problems = build()
    batch = _with_codes(batch)
    problems = check_batch(batch, embedded_store, problems)
    assert not errors(problems), problems
    first = load_batch(embedded_store, batch, problems)
    assert (first.stats.nodes, first.stats.relationships) == (
        batch.node_count(),
        batch.rel_count(),
    )
    counts = sorted((x["kind"], x["name"], x["count"]) for x in embedded_store.read(stats_query))
    assert ("relationship", "PRESENTS", 10) in counts
    again, _, problems = build()
    again = _with_codes(again)
    second = load_batch(embedded_store, again, check_batch(again, embedded_store, problems))
    assert (second.stats.nodes, second.stats.relationships) == (0, 0)
    assert (
        sorted((x["kind"], x["name"], x["count"]) for x in embedded_store.read(stats_query))
        == counts
    )
    row = embedded_store.read(
        "MATCH (:Disease {id: 'ORPHA:200002'})-[p:PRESENTS]->(:Symptom {id: 'HP:0001635'}) "
        "RETURN p.weight AS w, p.onset AS onset, p.sex AS sex, p.modifiers AS mods"
    )
    assert row == [{"w": 0.17, "onset": "HP:0003577", "sex": "male", "mods": ["HP:0012828"]}]
