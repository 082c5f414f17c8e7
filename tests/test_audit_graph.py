"""``kgsynth kg audit``: one small fixture graph per rule, each with ONE planted violation.

The clean fixture passes every rule; each variant plants one violation, and the audit must
name exactly that rule and that node (or relationship), on the embedded store and on Neo4j.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypedDict

import pytest

from engine.audit.graph import audit_graph
from kg.batch import GraphBatch
from kg.model import (
    CodedAs,
    Disease,
    Entity,
    HasWindow,
    IcdCode,
    InCategory,
    IsA,
    Observes,
    ParentOf,
    Presents,
    PrevalenceIn,
    Relationship,
    Risk,
    RiskFactor,
    Source,
    Stratum,
    Symptom,
    SymptomCategory,
    TrajectoryWindow,
)
from kg.settings import GraphSettings
from kg.store import GraphStore, open_store
from kg.store.writer import write_batch
from tests.cli import kgsynth, store_env

SRC = "KGS:source/audit-fixture"
D = "KGS:disease/audit-fx"
FORGET = "KGS:symptom/audit-forgets"
AGITATED = "KGS:symptom/audit-agitated"
MEMORY = "KGS:symptom/audit-memory"
COG = "KGS:category/audit-cognitive"
BEH = "KGS:category/audit-behaviour"
EARLY = "KGS:window/audit-early"
LATE = "KGS:window/audit-late"
FEMALE = "KGS:stratum/audit-female"
MALE = "KGS:stratum/audit-male"
SMOKING = "KGS:risk/audit-smoking"
Items = dict[str, Entity | Relationship]
Plant = Callable[[Items], None]


class Cite(TypedDict):
    status: Literal["measured", "estimate"]
    source: str
    remarks: str


MEASURED: Cite = {"status": "measured", "source": SRC, "remarks": "Table 2, p. 4"}
ESTIMATE: Cite = {"status": "estimate", "source": SRC, "remarks": "shaped on the fixture source"}


def clean() -> Items:
    """A coherent little graph, keyed by a short name so variants can replace one item."""
    items: Items = {
        "source": Source(id=SRC, citation="Audit fixture source", year=2025),
        "disease": Disease(
            id=D, name="Audit fixture disease", prevalence=0.1, stage_scale="FX", **MEASURED
        ),
        "g30": IcdCode(id="ICD10CM:G30", code="G30", title="Fixture category", kind="category"),
        "g309": IcdCode(id="ICD10CM:G30.9", code="G30.9", title="Fixture code", billable=True),
        "parent": ParentOf(start="ICD10CM:G30", end="ICD10CM:G30.9"),
        "coded": CodedAs(start=D, end="ICD10CM:G30.9", primary=True),
        "forget": Symptom(
            id=FORGET,
            name="forgetfulness",
            synonyms=["{Spouse} says {subject} forgets {possessive} keys"],
        ),
        "agitated": Symptom(id=AGITATED, name="agitation", synonyms=["restless at night"]),
        "memory": Symptom(id=MEMORY, name="memory symptom"),
        "is_a": IsA(start=FORGET, end=MEMORY),
        "cog": SymptomCategory(id=COG, name="cognitive", scheme="fx"),
        "beh": SymptomCategory(id=BEH, name="behaviour", scheme="fx"),
        "in_cog": InCategory(start=FORGET, end=COG),
        "in_beh": InCategory(start=AGITATED, end=BEH),
        "p_forget": Presents(start=D, end=FORGET, weight=0.9, stage=1, **MEASURED),
        "p_agitated": Presents(start=D, end=AGITATED, weight=0.4, stage=2, **ESTIMATE),
        "early": TrajectoryWindow(
            id=EARLY,
            name="early",
            order=0,
            start_months=-24,
            end_months=-12,
            stage=1,
            keyword_density=1.0,
            **ESTIMATE,
        ),
        "late": TrajectoryWindow(
            id=LATE,
            name="late",
            order=1,
            start_months=-12,
            end_months=0,
            stage=2,
            keyword_density=2.0,
            **ESTIMATE,
        ),
        "has_early": HasWindow(start=D, end=EARLY),
        "has_late": HasWindow(start=D, end=LATE),
        "o_early": Observes(start=EARLY, end=COG, frequency=1.0, **ESTIMATE),
        "o_late_cog": Observes(start=LATE, end=COG, frequency=0.6, **ESTIMATE),
        "o_late_beh": Observes(start=LATE, end=BEH, frequency=0.4, **ESTIMATE),
        "female": Stratum(id=FEMALE, attribute="sex", value="female"),
        "male": Stratum(id=MALE, attribute="sex", value="male"),
        "prev_f": PrevalenceIn(start=D, end=FEMALE, share=0.6, **MEASURED),
        "prev_m": PrevalenceIn(start=D, end=MALE, share=0.4, **MEASURED),
        "smoking": RiskFactor(id=SMOKING, name="smoking"),
        "risk": Risk(start=D, end=SMOKING, prevalence=0.3, **MEASURED),
    }
    return items


def batch_of(items: Items) -> GraphBatch:
    b = GraphBatch()
    for item in items.values():
        problem = b.add_node(item) if isinstance(item, Entity) else b.add_rel(item)
        assert problem is None, problem
    return b


def _replace(key: str, **changes: object) -> Plant:
    def plant(items: Items) -> None:
        old = items[key]
        data = {k: v for k, v in old.model_dump(exclude_none=True).items()}
        data.update(changes)
        items[key] = type(old).model_validate({k: v for k, v in data.items() if v is not None})

    return plant


def _add(key: str, item: Entity | Relationship) -> Plant:
    def plant(items: Items) -> None:
        items[key] = item

    return plant


def _all(*plants: Plant) -> Plant:
    def plant(items: Items) -> None:
        for p in plants:
            p(items)

    return plant


# (rule, the subject the finding must name, how to plant it)
PLANTED: dict[str, tuple[str, str, Plant]] = {
    "is_a-cycle": ("cycle", FORGET, _add("back", IsA(start=MEMORY, end=FORGET))),
    "parent_of-cycle": (
        "cycle",
        "ICD10CM:G30",
        _add("back", ParentOf(start="ICD10CM:G30.9", end="ICD10CM:G30")),
    ),
    "orphan-node": (
        "orphan",
        "KGS:symptom/audit-lonely",
        _add("lonely", Symptom(id="KGS:symptom/audit-lonely", name="lonely symptom")),
    ),
    "orphan-source": (
        "orphan",
        "KGS:source/audit-uncited",
        _add("uncited", Source(id="KGS:source/audit-uncited", citation="Cited by nothing")),
    ),
    # the early window (stage 1) gives behaviour a share; agitation shows from stage 2 only
    "empty-category": (
        "empty-category",
        EARLY,
        _all(
            _replace("o_early", frequency=0.7),
            _add("o_early_beh", Observes(start=EARLY, end=BEH, frequency=0.3, **ESTIMATE)),
        ),
    ),
    "prevalence-sum": ("share-sum", D, _replace("prev_m", share=0.5)),
    "observes-sum": ("share-sum", LATE, _replace("o_late_beh", frequency=0.5)),
    "gendered-form": (
        "gendered-form",
        AGITATED,
        _replace("agitated", synonyms=["restless at night", "{Spouse} says he paces"]),
    ),
    "no-status": (
        "unsourced-number",
        f"RISK {D} -> {SMOKING}",
        _add("risk", Risk(start=D, end=SMOKING, prevalence=0.3, source=SRC, remarks="x")),
    ),
    "measured-without-source": (
        "unsourced-number",
        f"PREVALENCE {D} -> {MALE}",
        _add("prev_m", PrevalenceIn(start=D, end=MALE, share=0.4, status="measured", remarks="t")),
    ),
    "estimate-without-basis": (
        "evidence-basis",
        f"PRESENTS {D} -> {AGITATED}",
        _add(
            "p_agitated",
            Presents(start=D, end=AGITATED, weight=0.4, stage=2, status="estimate", source=SRC),
        ),
    ),
}


def test_the_clean_fixture_has_no_violation_and_counts_its_evidence(store: GraphStore) -> None:
    write_batch(store, batch_of(clean()))
    result = audit_graph(store)
    assert result.violations == [], result.violations
    # by hand: measured = disease, PRESENTS forget, 2 PREVALENCE, RISK; estimate = PRESENTS
    # agitated, 2 windows, 3 OBSERVES
    assert result.figures["numbers by status"] == {
        D: {"measured": 5, "estimate": 6, "no status": 0}
    }


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_each_planted_violation_is_named_with_its_node_and_rule(
    store: GraphStore, case: str
) -> None:
    rule, subject, plant = PLANTED[case]
    items = clean()
    plant(items)
    write_batch(store, batch_of(items))
    found = [(f.rule, f.subject) for f in audit_graph(store).violations]
    assert found == [(rule, subject)], found


def _embedded(path: Path, items: Items) -> GraphSettings:
    settings = GraphSettings(uri=f"embedded:{path}")
    with open_store(settings) as st:
        st.apply_schema()
        write_batch(st, batch_of(items))
    return settings


def test_cli_exit_codes_plain_and_json(tmp_path: Path) -> None:
    ok = kgsynth("kg", "audit", env=store_env(_embedded(tmp_path / "ok.db", clean())))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 violations" in ok.stdout
    assert "\x1b[" not in ok.stdout  # plain when piped
    items = clean()
    PLANTED["gendered-form"][2](items)
    env = store_env(_embedded(tmp_path / "bad.db", items))
    bad = kgsynth("kg", "audit", env=env)
    assert bad.returncode == 1
    line = next(x for x in bad.stdout.splitlines() if x.startswith("gendered-form"))
    assert AGITATED in line and "he" in line
    assert "1 violations (gendered-form 1)" in bad.stdout
    as_json = kgsynth("kg", "audit", "--json", env=env)
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert data["violations"] == 1
    assert data["findings"][0]["rule"] == "gendered-form"
    assert data["findings"][0]["subject"] == AGITATED


def test_a_thin_curated_profile_is_a_note_naming_what_it_lacks(
    embedded_store: GraphStore,
) -> None:
    # the clean fixture is curated (KGS:) with 2 weighted symptoms and sex shares only;
    # an imported disease just as thin is not the curator's to fix: no note
    items = clean()
    items["imported"] = Disease(id="DOID:0000001", name="imported fixture disease")
    items["p_imported"] = Presents(start="DOID:0000001", end=FORGET, weight=0.5, **ESTIMATE)
    write_batch(embedded_store, batch_of(items))
    notes = [f for f in audit_graph(embedded_store).findings if f.rule == "thin-profile"]
    assert [(f.subject, f.severity) for f in notes] == [(D, "note")]
    assert notes[0].message.startswith("2 weighted symptom(s), fewer than 5; no age shares")
