"""Every named query runs unchanged on both backends against the tiny fixture graph."""

from __future__ import annotations

from typing import Any

import pytest

from kg.queries import check_params, get_query, named_queries, schema_statements
from kg.store import GraphStore
from kg.store.writer import write_batch
from tests.fixture_graph import AD, MDD, SRC, SRC2, tiny_graph


def run(store: GraphStore, name: str, **params: object) -> list[dict[str, Any]]:
    query = get_query(name)
    check_params(query, params)
    rows = store.read(query.text, params)
    if rows:
        assert list(rows[0]) == list(query.columns), f"{name}: header columns differ"
    return rows


@pytest.fixture
def loaded(store: GraphStore) -> GraphStore:
    write_batch(store, tiny_graph())
    return store


def test_every_query_has_a_header() -> None:
    queries = named_queries()
    assert len(queries) >= 9
    for q in queries.values():
        assert q.description and q.columns, q.name
        assert "$" not in q.description


def test_disease_profile(loaded: GraphStore) -> None:
    rows = run(loaded, "disease_profile", icd="G30.9")
    assert [(r["symptom_id"], r["weight"]) for r in rows] == [
        ("KGS:sym/forgetful", 0.9),
        ("KGS:sym/lost", 0.5),
        ("KGS:sym/low-mood", 0.2),
    ]
    assert {r["disease_id"] for r in rows} == {AD}
    assert rows[0]["categories"] == ["cognitive impairment"]
    assert rows[0]["synonyms"] == ["forgetful"]
    assert rows[2]["category_ids"] == ["KGS:cat/mood"]
    assert run(loaded, "disease_profile", icd="G30.1") == []


def test_disease_by_icd_walks_up_to_the_nearest_coded_ancestor(loaded: GraphStore) -> None:
    direct = run(loaded, "disease_by_icd", icd="G30.9")
    assert [(r["disease_id"], r["coded_as"], r["distance"]) for r in direct] == [
        (AD, "G30.9", 0),
        (AD, "G30", 1),
    ]
    assert direct[0]["primary"] is True
    inherited = run(loaded, "disease_by_icd", icd="G30.1")
    assert [(r["disease_id"], r["coded_as"], r["distance"]) for r in inherited] == [(AD, "G30", 1)]
    assert run(loaded, "disease_by_icd", icd="F32.9")[0]["disease_id"] == MDD
    assert run(loaded, "disease_by_icd", icd="Z99.9") == []


def test_icd_subtree_and_ancestors(loaded: GraphStore) -> None:
    sub = run(loaded, "icd_subtree", icd="G30-G32")
    assert [(r["code"], r["depth"]) for r in sub] == [
        ("G30-G32", 0),
        ("G30", 1),
        ("G30.1", 2),
        ("G30.9", 2),
    ]
    assert [r["billable"] for r in sub] == [False, False, True, True]
    anc = run(loaded, "icd_ancestors", icd="G30.9")
    assert [(r["code"], r["kind"], r["distance"]) for r in anc] == [
        ("G30", "category", 1),
        ("G30-G32", "block", 2),
        ("6", "chapter", 3),
    ]


def test_trajectory_windows(loaded: GraphStore) -> None:
    rows = run(loaded, "trajectory_windows", disease=AD)
    assert [(r["window_id"], r["start_months"], r["end_months"]) for r in rows] == [
        ("KGS:win/far", -60, -12),
        ("KGS:win/near", -12, 0),
    ]
    near = {o["target_id"]: o["frequency"] for o in rows[1]["observations"]}
    assert near == {"KGS:cat/cognitive": 0.8, "KGS:cat/mood": 0.2}
    assert {o["kind"] for o in rows[0]["observations"]} == {"SymptomCategory"}
    by_name = run(loaded, "trajectory_windows", disease="fixture alzheimer DISEASE")
    assert len(by_name) == 2
    assert run(loaded, "trajectory_windows", disease=MDD) == []


def test_demographic_strata_and_risk_factors(loaded: GraphStore) -> None:
    strata = run(loaded, "demographic_strata", disease=AD)
    assert [(r["value"], r["share"]) for r in strata] == [("65-74", 0.4), ("75+", 0.6)]
    assert sum(r["share"] for r in strata) == pytest.approx(1.0)
    risks = run(loaded, "risk_factors", disease=AD)
    assert sorted((r["prevalence"], r["stratum"]) for r in risks) == [
        (0.6, "KGS:str/age/65-74"),
        (0.73, None),
    ]


def test_provenance_counts_the_figures_each_source_backs(loaded: GraphStore) -> None:
    rows = run(loaded, "provenance", disease=AD)
    figures = {r["source_id"]: r["figures"] for r in rows}
    # SRC: 2 PRESENTS + 2 PREVALENCE + 2 RISK + 4 OBSERVES + 2 windows + the disease itself
    assert figures == {SRC: 13, SRC2: 2}
    assert rows[0]["citation"] == "Fixture source one" and rows[0]["year"] == 2024


def test_graph_stats_and_search(loaded: GraphStore) -> None:
    stats = {(r["kind"], r["name"]): r["count"] for r in run(loaded, "graph_stats")}
    assert stats[("node", "IcdCode")] == 6
    assert stats[("node", "Disease")] == 2
    assert stats[("relationship", "PARENT_OF")] == 4
    assert stats[("relationship", "RISK")] == 2
    found = run(loaded, "disease_search", text="fixture ad")
    assert [r["disease_id"] for r in found] == [AD]
    assert sorted(found[0]["codes"]) == ["G30", "G30.9"]


def test_schema_is_idempotent_and_versioned(store: GraphStore) -> None:
    store.apply_schema()
    store.apply_schema()
    assert store.schema_version() == 1
    assert len(schema_statements(store.backend if store.backend == "neo4j" else "falkordb")) >= 11
