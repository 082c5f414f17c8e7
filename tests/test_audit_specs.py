"""``kgsynth audit SPECS.jsonl``: hand-written spec lines, each with ONE planted violation.

The fixture graph has an early-onset code (G30.0: diagnosed at 64 or younger), a code for
women only (G30.8, a fixture restriction), staged symptoms, a symptom that needs working
age at the visit, and a core criterion. A clean record of each recipe passes; each planted
record is named with exactly the rule it breaks. Alignment figures are checked by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TypedDict

import pytest

from engine.audit.specs import audit_specs, audit_specs_file
from engine.errors import EngineError
from engine.recipes import compiled_template
from engine.spec import GenerationSpec
from kg.batch import GraphBatch
from kg.model import (
    CodedAs,
    CoreCriterion,
    Disease,
    Entity,
    HasWindow,
    IcdCode,
    InCategory,
    Observes,
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

SRC = "KGS:source/audit-spec-fixture"
D = "KGS:disease/audit-spec-fx"
FORGET = "KGS:symptom/audit-spec-forgets"
AGITATED = "KGS:symptom/audit-spec-agitated"
WORK = "KGS:symptom/audit-spec-work"
COG = "KGS:category/audit-spec-cognitive"
BEH = "KGS:category/audit-spec-behaviour"
EARLY = "KGS:window/audit-spec-early"
LATE = "KGS:window/audit-spec-late"
AFTER = "KGS:window/audit-spec-after"
SMOKING = "KGS:risk/audit-spec-smoking"


class Cite(TypedDict):
    status: Literal["measured", "estimate"]
    source: str
    remarks: str


CITED: Cite = {"status": "measured", "source": SRC, "remarks": "Table 1"}
# window id -> (order, start, end, stage)
WINDOWS = {EARLY: (0, -120.0, -60.0, 1), LATE: (1, -12.0, 0.0, 2), AFTER: (2, 0.0, 24.0, 2)}


def fixture_graph() -> GraphBatch:
    items: list[Entity | Relationship] = [
        Source(id=SRC, citation="Audit spec fixture", year=2025),
        Disease(id=D, name="Audit spec disease", prevalence=0.1, stage_scale="FX", **CITED),
        *(
            IcdCode(id=f"ICD10CM:{c}", code=c, title=f"Fixture {c}", billable=True)
            for c in ("G30.0", "G30.8", "G30.9")
        ),
        CodedAs(start=D, end="ICD10CM:G30.9", primary=True),
        CodedAs(start=D, end="ICD10CM:G30.0", max_age=64, **CITED),
        CodedAs(start=D, end="ICD10CM:G30.8", sex="female", **CITED),
        Symptom(
            id=FORGET, name="forgetfulness", synonyms=["{spouse} says {subject} forgets things"]
        ),
        Symptom(id=AGITATED, name="agitation"),
        Symptom(id=WORK, name="decline in work performance", max_age=64, **CITED),
        SymptomCategory(id=COG, name="cognitive", scheme="fx"),
        SymptomCategory(id=BEH, name="behaviour", scheme="fx"),
        InCategory(start=FORGET, end=COG),
        InCategory(start=WORK, end=COG),
        InCategory(start=AGITATED, end=BEH),
        Presents(start=D, end=FORGET, weight=0.9, stage=1, **CITED),
        Presents(start=D, end=WORK, weight=0.3, stage=1, **CITED),
        Presents(start=D, end=AGITATED, weight=0.6, stage=2, **CITED),
        CoreCriterion(start=D, end=FORGET, group="A: memory", source=SRC),
        RiskFactor(id=SMOKING, name="smoking"),
        Risk(start=D, end=SMOKING, prevalence=0.25, **CITED),
    ]
    for wid, (order, start, end, stage) in WINDOWS.items():
        items += [
            TrajectoryWindow(
                id=wid,
                name=wid.rsplit("-", 1)[1],
                order=order,
                start_months=start,
                end_months=end,
                stage=stage,
                keyword_density=1.0 + order,
                **CITED,
            ),
            HasWindow(start=D, end=wid),
            Observes(start=wid, end=COG, frequency=1.0 if stage == 1 else 0.6, **CITED),
        ]
        if stage > 1:
            items.append(Observes(start=wid, end=BEH, frequency=0.4, **CITED))
    for attribute, shares in {
        "sex": {"female": 0.6, "male": 0.4},
        "age_group": {"30-64": 0.1, "65-84": 0.5, "85+": 0.4},
    }.items():
        for value, share in shares.items():
            sid = f"KGS:stratum/audit-spec/{attribute}/{value}"
            items += [
                Stratum(id=sid, attribute=attribute, value=value),
                PrevalenceIn(start=D, end=sid, share=share, **CITED),
            ]
    batch = GraphBatch()
    for item in items:
        problem = batch.add_node(item) if isinstance(item, Entity) else batch.add_rel(item)
        assert problem is None, problem
    return batch


@pytest.fixture(scope="module")
def graph_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audit-specs") / "graph.db"
    with open_store(GraphSettings(uri=f"embedded:{path}")) as st:
        st.apply_schema()
        write_batch(st, fixture_graph())
    return path


@pytest.fixture(scope="module")
def store(graph_file: Path) -> Iterator[GraphStore]:
    st = open_store(GraphSettings(uri=f"embedded:{graph_file}"))
    yield st
    st.close()


KW = {
    FORGET: ("forgetfulness", COG, "cognitive"),
    AGITATED: ("agitation", BEH, "behaviour"),
    WORK: ("decline in work performance", COG, "cognitive"),
}


def keyword(symptom: str, text: str | None = None) -> dict[str, Any]:
    name, cid, cname = KW[symptom]
    return {
        "text": text or name,
        "form": text or name,
        "symptom_id": symptom,
        "symptom": name,
        "category_id": cid,
        "category": cname,
    }


def spec(
    index: int,
    recipe: str = "dualalign",
    code: str = "G30.9",
    sex: str | None = "female",
    group: str = "65-84",
    at_diagnosis: int = 70,
    age: int | None = None,
    window: str | None = LATE,
    months: float | None = -6.0,
    keywords: list[dict[str, Any]] | None = None,
    symptoms: list[str] | None = None,
) -> str:
    """One spec line as the planner writes it (validated as a ``GenerationSpec``)."""
    attributes = {"age_group": group} | ({"sex": sex} if sex else {})
    if age is None:
        age = int((at_diagnosis + 0.5) + (months or 0.0) / 12)
    data: dict[str, Any] = {
        "recipe": recipe,
        "run_seed": 1,
        "record_index": index,
        "record_id": f"{recipe}-1-{index:08d}",
        "record_seed": index,
        "icd_code": code,
        "disease_id": D,
        "disease": "Audit spec disease",
        "persona": {"age": age, "age_at_diagnosis": at_diagnosis, "attributes": attributes},
        "template_id": compiled_template(recipe).name,
        "template_hash": compiled_template(recipe).hash,
        "kg_hash": "0" * 64,
    }
    if recipe == "dualalign" and window is not None:
        order, start, end, stage = WINDOWS[window]
        data |= {
            "window": {
                "id": window,
                "name": window.rsplit("-", 1)[1],
                "order": order,
                "start_months": start,
                "end_months": end,
                "phrase": "fixture window",
                "diagnosed": start >= 0,
                "stage": stage,
                "keyword_density": 1.0 + order,
            },
            "visit_months": months,
            "scheme": "fx",
            "keywords": keywords if keywords is not None else [keyword(FORGET)],
        }
    if recipe in ("medsyn", "mh_report"):
        data["symptoms"] = [
            {"id": s, "name": KW[s][0], "weight": 0.5} for s in (symptoms or [FORGET])
        ]
    return GenerationSpec.model_validate(data).model_dump_json()


CLEAN = [
    spec(0),
    spec(1, sex="male", keywords=[keyword(FORGET, "wife says he forgets things")]),
    spec(
        2,
        window=EARLY,
        months=-90.0,
        keywords=[keyword(FORGET), keyword(WORK)],
        group="30-64",
        at_diagnosis=60,
    ),
    spec(3, window=AFTER, months=12.0, keywords=[keyword(FORGET), keyword(AGITATED)]),
    spec(4, recipe="medsyn", symptoms=[AGITATED, FORGET]),
    spec(5, code="G30.0", group="30-64", at_diagnosis=58, months=-1.0),
    spec(6, code="G30.8", sex="female"),
]

# case -> (rule, the planted line)
PLANTED: dict[str, tuple[str, str]] = {
    "pronoun-sex": (
        "pronoun",
        spec(10, sex="female", keywords=[keyword(FORGET, "wife says he forgets things")]),
    ),
    "pronoun-slot": ("pronoun", spec(11, keywords=[keyword(FORGET, "{subject} forgets")])),
    "stage-beyond-window": (
        "stage",
        spec(12, window=EARLY, months=-90.0, keywords=[keyword(AGITATED), keyword(FORGET)]),
    ),
    "age-early-onset": ("age", spec(13, code="G30.0", group="65-84", at_diagnosis=70)),
    "age-group": ("age", spec(14, group="85+", at_diagnosis=70)),
    "age-visit": (
        "age",
        spec(15, window=EARLY, months=-100.0, at_diagnosis=60, group="30-64", age=60),
    ),
    "age-visit-month": ("age", spec(16, months=-30.0, age=67)),
    "attribute-working-age": (
        "attribute",
        spec(17, window=LATE, keywords=[keyword(FORGET), keyword(WORK)], at_diagnosis=80),
    ),
    "strata-sex": ("strata", spec(18, code="G30.8", sex="male")),
    "core-medsyn": ("core", spec(19, recipe="medsyn", symptoms=[AGITATED])),
    "core-after-diagnosis": (
        "core",
        spec(20, window=AFTER, months=3.0, keywords=[keyword(AGITATED)]),
    ),
}


def records(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


def test_clean_records_of_every_recipe_pass(store: GraphStore) -> None:
    result = audit_specs(store, records(CLEAN))
    assert result.checked == len(CLEAN)
    assert result.violations == [], result.violations


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_each_planted_violation_names_record_and_rule(store: GraphStore, case: str) -> None:
    rule, line = PLANTED[case]
    result = audit_specs(store, records([*CLEAN, line]))
    found = [(f.rule, f.subject) for f in result.violations]
    assert found == [(rule, json.loads(line)["record_id"])], found


def test_alignment_figures_by_hand(store: GraphStore) -> None:
    # four G30.9 records in the late window: 3 female, 1 male; keywords 2 cognitive, 2 behaviour
    lines = [
        spec(30, keywords=[keyword(FORGET), keyword(AGITATED)]),
        spec(31, keywords=[keyword(FORGET)]),
        spec(32, keywords=[keyword(AGITATED)]),
        spec(33, sex="male", keywords=[]),
    ]
    figures = audit_specs(store, records(lines)).figures["G30.9 Audit spec disease"]
    assert figures["records"] == 4
    # sex: drawn (0.75, 0.25) against (0.6, 0.4): TVD 0.15; age groups all 65-84: 1 - 0.5
    assert figures["persona TVD"] == {"age_group": 0.5, "sex": 0.15}
    late = figures["windows"]["late"]
    assert late["records"] == 4
    assert late["keywords per record"] == 1.0
    assert late["keyword density"] == 2.0
    assert late["multiplier (keywords / density)"] == 0.5
    # categories drawn (0.5, 0.5) against (0.6, 0.4)
    assert late["category TVD"] == 0.1
    # symptoms: forget 0.6 x 0.9 / 1.2, work 0.6 x 0.3 / 1.2, agitation 0.4; drawn 0.5 / 0 / 0.5
    assert late["symptom TVD"] == pytest.approx(0.5 * (0.05 + 0.15 + 0.1), abs=1e-4)
    assert figures["risk factors (drawn vs cited overall)"] == {"smoking": "0.0000 vs 0.2500"}


def test_a_file_streams_and_bad_lines_name_file_and_line(store: GraphStore, tmp_path: Path) -> None:
    path = tmp_path / "specs.jsonl"
    path.write_text("\n".join([*CLEAN, PLANTED["stage-beyond-window"][1]]) + "\n")
    assert [f.rule for f in audit_specs_file(store, path).violations] == ["stage"]
    path.write_text(CLEAN[0] + "\n{not json\n")
    with pytest.raises(EngineError, match=rf"{path.name}:2: not JSON"):
        audit_specs_file(store, path)
    path.write_text(json.dumps({"recipe": "dualalign", "disease_id": D}) + "\n")
    with pytest.raises(EngineError, match=r":1: record_id: missing"):
        audit_specs_file(store, path)
    broken = json.loads(CLEAN[0])
    del broken["keywords"][0]["text"]
    path.write_text(CLEAN[1] + "\n" + json.dumps(broken) + "\n")
    with pytest.raises(EngineError, match=r":2: not a kgsynth spec .*'text'"):
        audit_specs_file(store, path)
    unknown = json.loads(CLEAN[0]) | {"disease_id": "KGS:disease/not-there"}
    path.write_text(json.dumps(unknown) + "\n")
    with pytest.raises(
        EngineError, match=r":1: disease 'KGS:disease/not-there' is not in the graph"
    ):
        audit_specs_file(store, path)


def test_cli_exit_codes_plain_and_json(graph_file: Path, tmp_path: Path) -> None:
    env = store_env(GraphSettings(uri=f"embedded:{graph_file}"))
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(CLEAN) + "\n")
    ok = kgsynth("audit", str(good), env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"{len(CLEAN)} records checked, 0 violations" in ok.stdout
    assert "persona TVD" in ok.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([*CLEAN, PLANTED["pronoun-sex"][1]]) + "\n")
    out = kgsynth("audit", str(bad), env=env)
    assert out.returncode == 1
    line = next(x for x in out.stdout.splitlines() if x.startswith("pronoun"))
    assert "dualalign-1-00000010" in line and "wife says he" in line
    as_json = kgsynth("audit", "--json", str(bad), env=env)
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert data["violations_by_rule"] == {"pronoun": 1}
    assert data["checked"] == len(CLEAN) + 1
    broken = tmp_path / "broken.jsonl"
    broken.write_text("[1, 2]\n")
    err = kgsynth("audit", str(broken), env=env)
    assert err.returncode == 2
    assert f"{broken}:1: a spec is a JSON object" in err.stderr
    assert "Traceback" not in err.stderr
