"""Profiles read from the graph: named queries on both backends, hashing, resolution errors."""

from __future__ import annotations

import pytest

from engine.errors import EngineError
from engine.profile import Catalogue, DiseaseProfile, Target, load_profile, normalise_code
from kg.batch import GraphBatch
from kg.model import Presents
from kg.queries import get_query
from kg.store import GraphStore
from kg.store.writer import write_batch
from tests.engine_graph import AD, FLU, GAD, MDD, engine_graph

ENGINE_QUERIES = [
    "disease_catalogue",
    "icd_lookup",
    "profile_disease",
    "profile_symptoms",
    "profile_windows",
    "profile_risks",
    "profile_guidelines",
    "profile_examples",
    "profile_drugs",
    "shared_report_sections",
]


@pytest.fixture
def loaded(store: GraphStore) -> GraphStore:
    write_batch(store, engine_graph())
    return store


def _profiles(store: GraphStore) -> dict[str, DiseaseProfile]:
    catalogue = Catalogue(store)
    return {d: load_profile(store, catalogue.disease(d)) for d in (AD, MDD, GAD, FLU)}


@pytest.mark.parametrize("name", ENGINE_QUERIES)
def test_engine_queries_run_with_their_declared_columns(loaded: GraphStore, name: str) -> None:
    query = get_query(name)
    params = {p: {"disease": AD, "icd": "G30.9"}[p] for p in query.params}
    rows = loaded.read(query.text, params)
    assert rows, name
    assert list(rows[0]) == list(query.columns)
    assert query.description


def test_profile_content(loaded: GraphStore) -> None:
    profiles = _profiles(loaded)
    ad = profiles[AD]
    assert ad.icd is not None and (ad.icd.code, ad.icd.primary) == ("G30.9", True)
    assert [c.code for c in ad.codes] == ["G30", "G30.0", "G30.9"]
    early = next(c for c in ad.codes if c.code == "G30.0")
    assert (early.min_age, early.max_age, early.sex) == (None, 64, None)
    assert ad.stage_scale == "fixture stages 1-7"
    assert [(g.name, len(g.symptom_ids)) for g in ad.core] == [("memory", 2)]
    assert [(w.stage, w.keyword_density) for w in ad.windows] == [(2, 0.4), (3, 1.0), (4, 2.2)]
    staged = {s.id.split("fx-")[1]: s.stage for s in ad.symptoms if s.stage is not None}
    assert staged == {"agitation": 3, "cooking": 4}
    lost = next(s for s in ad.symptoms if s.id == "KGS:sym/fx-lost")
    assert lost.weight == 0.6 and {c.scheme for c in lost.categories} == {"dualalign", "jmir-adrd"}
    assert [w.name for w in ad.windows] == ["far window", "mid window", "near window"]
    assert ad.windows[2].observations[-1].kind in ("Symptom", "SymptomCategory")
    assert any(o.kind == "Symptom" for o in ad.windows[2].observations)
    assert ad.schemes() == ["jmir-adrd", "dualalign"]
    joint = [s for s in ad.strata if s.attribute == "age_group&sex"]
    assert len(joint) == 8
    dep = [r for r in ad.risks if r.name == "depression"]
    assert [(r.attribute, r.value) for r in dep] == [
        (None, None),
        ("age_group&sex", "75-84&female"),
        ("sex", "female"),
    ]
    assert [e.id for e in ad.examples] == ["KGS:note/fx-ad-1"]
    assert [d.name for d in ad.drugs] == ["donepezil"]
    assert {g.kind for g in ad.guidelines} == {"annotation", "report_section"}  # shared sections
    assert profiles[MDD].report_sections()[0].title == "Identifying data"
    assert profiles[FLU].strata == () and profiles[FLU].windows == ()


def test_profiles_and_hashes_are_identical_on_both_backends(
    embedded_store: GraphStore, neo4j_store: GraphStore
) -> None:
    for store in (embedded_store, neo4j_store):
        write_batch(store, engine_graph())
    a, b = _profiles(embedded_store), _profiles(neo4j_store)
    for disease in a:
        assert a[disease] == b[disease]
        assert a[disease].content_hash == b[disease].content_hash == a[disease].computed_hash()


def test_a_graph_change_changes_the_content_hash(loaded: GraphStore) -> None:
    before = _profiles(loaded)
    write_batch(
        loaded,
        _one_rel(
            Presents(
                start=AD, end="KGS:sym/fx-lost", weight=0.61, source="KGS:source/engine-fixture"
            )
        ),
    )
    after = _profiles(loaded)
    assert after[AD].content_hash != before[AD].content_hash
    assert after[MDD].content_hash == before[MDD].content_hash


def _one_rel(rel: Presents) -> GraphBatch:
    b = GraphBatch()
    b.add_rel(rel)
    return b


def test_resolution_by_code_and_name(loaded: GraphStore) -> None:
    catalogue = Catalogue(loaded)
    assert catalogue.icd("g309").disease_id == AD
    inherited = catalogue.icd("ICD10CM:G30.1")  # coded only at its parent G30
    assert inherited.disease_id == AD and inherited.icd is not None
    assert inherited.icd.code == "G30.1" and inherited.icd.title is not None
    assert catalogue.disease("fixture ad").disease_id == AD  # a synonym
    assert catalogue.disease(AD).icd is not None
    assert catalogue.disease("FIXTURE INFLUENZA").disease_id == FLU


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("G31.1", "is in the catalogue, but no disease in the graph is coded as G31.1"),
        ("Z99.9", "unknown ICD-10-CM code 'Z99.9'"),
        ("G3O.9", "is not a valid ICD-10-CM code"),
    ],
)
def test_unknown_codes_say_why_and_suggest(loaded: GraphStore, code: str, message: str) -> None:
    with pytest.raises(EngineError, match="closest coded ICD-10-CM codes") as err:
        Catalogue(loaded).icd(code)
    assert message in str(err.value)
    assert "G30.9" in str(err.value)


def test_unknown_diseases_suggest_close_names(loaded: GraphStore) -> None:
    with pytest.raises(EngineError, match=r"closest diseases: Fixture Alzheimer disease"):
        Catalogue(loaded).disease("alzheimer")
    with pytest.raises(EngineError, match="no similar diseases"):
        Catalogue(loaded).disease("zzzzzzzz")
    with pytest.raises(EngineError, match="not in the graph"):
        load_profile(loaded, Target(disease_id="KGS:disease/none", disease="none"))


def test_code_normalisation() -> None:
    assert normalise_code(" g30.9 ") == "G30.9"
    assert normalise_code("G309") == "G30.9"
    assert normalise_code("ICD10CM:F32.A") == "F32.A"
    assert normalise_code("G30") == "G30"
