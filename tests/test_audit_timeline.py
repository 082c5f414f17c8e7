"""``kgsynth audit``: timeline coherence of longitudinal patients (``plan --patients``).

Hand-built patients on the spec-audit fixture graph (tests/test_audit_specs.py): four visits
(early and late windows before the diagnosis, two after it) of one exact age at diagnosis,
days from the months, histories from the earlier visits' keywords. A clean patient passes in
any order and in part; each hand corruption is named with its rule and the patient's visit.
Persistence is counted by hand over patients whose repeats are set by the test.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from itertools import pairwise
from math import floor
from pathlib import Path
from typing import Any

import pytest

from engine.audit.specs import audit_specs, audit_specs_file
from engine.errors import EngineError
from engine.spec import GenerationSpec, patient_id
from kg.batch import GraphBatch
from kg.settings import GraphSettings
from kg.store import GraphStore, open_store
from kg.store.writer import write_batch
from tests.cli import kgsynth, store_env
from tests.engine_graph import curated_seed, open_embedded
from tests.test_audit_specs import (
    AFTER,
    AGITATED,
    EARLY,
    FORGET,
    KW,
    LATE,
    SMOKING,
    WORK,
    fixture_graph,
    keyword,
    spec,
)

Record = dict[str, Any]
#: the fixture symptoms' PRESENTS stages
STAGE = {FORGET: 1, WORK: 1, AGITATED: 2}
#: (window, visit month): visits 0-3, in time order
SCHEDULE = [(EARLY, -90.0), (LATE, -11.0), (AFTER, 11.0), (AFTER, 20.0)]
EXACT_AGE = 70.3  # at diagnosis: ages 62, 69, 71, 71 at the four visits
DAYS_PER_MONTH = 365.2425 / 12
RHO = 0.5
DRUG = {"id": "KGS:drug/audit-timeline", "name": "a drug", "drug_class": None}


@pytest.fixture(scope="module")
def graph_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audit-timeline") / "graph.db"
    with open_store(GraphSettings(uri=f"embedded:{path}")) as st:
        st.apply_schema()
        write_batch(st, fixture_graph())
    return path


@pytest.fixture(scope="module")
def store(graph_file: Path) -> Iterator[GraphStore]:
    st = open_store(GraphSettings(uri=f"embedded:{graph_file}"))
    yield st
    st.close()


def pid(p: int) -> str:
    return patient_id("dualalign", 1, p)


def patient(p: int, keep: bool = True) -> list[Record]:
    """Patient ``p``'s four visits; ``keep``: forgetfulness is documented again at visit 1."""
    documented = [
        [FORGET, WORK],
        [FORGET, AGITATED] if keep else [AGITATED],
        [FORGET, AGITATED],
        [FORGET],
    ]
    ages = [floor(EXACT_AGE + m / 12) for _, m in SCHEDULE]
    out: list[Record] = []
    for j, ((window, months), symptoms) in enumerate(zip(SCHEDULE, documented, strict=True)):
        rec = json.loads(
            spec(
                4 * p + j,
                window=window,
                months=months,
                at_diagnosis=70,
                age=ages[j],
                keywords=[keyword(s) | {"stage": STAGE[s]} for s in symptoms],
            )
        )
        rec["window"]["persistence"] = RHO
        rec["persona"]["risk_factors"] = [{"id": SMOKING, "name": "smoking", "kind": "risk_factor"}]
        rec["persona"]["medications"] = [DRUG] if months >= 0 else []
        rec["patient"] = {
            "patient_id": pid(p),
            "patient_index": p,
            "visit_index": j,
            "visits": len(SCHEDULE),
            "day": round((months - SCHEDULE[0][1]) * DAYS_PER_MONTH),
        }
        rec["history"] = [
            {
                "visit_index": i,
                "visit_months": SCHEDULE[i][1],
                "age": ages[i],
                "symptom_ids": documented[i],
                "symptoms": [KW[s][0] for s in documented[i]],
            }
            for i in range(j)
        ]
        out.append(GenerationSpec.model_validate(rec).model_dump(mode="json"))
    return out


def test_hand_built_patient_is_a_valid_plan() -> None:
    # the builder's own arithmetic, checked against the numbers written out
    visits = patient(0)
    assert [v["persona"]["age"] for v in visits] == [62, 69, 71, 71]
    assert [v["patient"]["day"] for v in visits] == [0, 2405, 3074, 3348]
    assert [len(v["history"]) for v in visits] == [0, 1, 2, 3]


def found(store: GraphStore, records: list[Record]) -> set[tuple[str, str]]:
    return {(f.rule, f.subject) for f in audit_specs(store, records).violations}


def test_clean_patients_pass_in_any_order_and_in_part(store: GraphStore) -> None:
    records = [r for p in range(3) for r in patient(p)]
    result = audit_specs(store, records)
    assert result.violations == [], result.violations
    assert result.figures["longitudinal patients"] == {"patients": 3, "visits": 12}
    shuffled = records[:]
    random.Random(5).shuffle(shuffled)
    part = [
        r
        for r in shuffled
        if r["record_id"] not in (records[1]["record_id"], records[4]["record_id"])
    ]
    assert found(store, part) == set()


def visit(records: list[Record], j: int) -> Record:
    return next(r for r in records if r["patient"]["visit_index"] == j)


def setp(path: str, value: Any) -> Callable[[list[Record]], None]:
    """A corruption: set field ``path`` (``visit.field.field...``) to ``value``."""
    j, *keys = path.split(".")

    def apply(records: list[Record]) -> None:
        target: Any = visit(records, int(j))
        for k in keys[:-1]:
            target = target[int(k)] if isinstance(target, list) else target[k]
        if isinstance(target, list):
            target[int(keys[-1])] = value
        else:
            target[keys[-1]] = value

    return apply


def duplicate_visit_2(records: list[Record]) -> None:
    copy_ = copy.deepcopy(visit(records, 2))
    copy_["record_id"] = "dualalign-1-99999999"
    records.append(copy_)


def drop_history_entry(records: list[Record]) -> None:
    del visit(records, 2)["history"][1]


def stage_beyond_window(records: list[Record]) -> None:
    """Agitation (stage 2) at the stage-1 visit 0, its histories agreeing."""
    visit(records, 0)["keywords"].append(keyword(AGITATED) | {"stage": 2})
    for rec in records[1:]:
        rec["history"][0]["symptom_ids"].append(AGITATED)


def rid(j: int) -> str:
    return f"dualalign-1-{j:08d}"


P0 = pid(0)
# case -> (corruption of patient 0, the (rule, subject) pairs it must give)
CASES: dict[str, tuple[Callable[[list[Record]], None], set[tuple[str, str]]]] = {
    "sex": (setp("1.persona.attributes.sex", "male"), {("persona", f"{P0} visit 1")}),
    "age at diagnosis": (
        setp("2.persona.age_at_diagnosis", 71),
        {("persona", f"{P0} visit 2"), ("timeline", f"{P0} visit 2")},
    ),
    "risk factors": (setp("2.persona.risk_factors", []), {("persona", f"{P0} visit 2")}),
    "medication before diagnosis": (
        setp("0.persona.medications", [DRUG]),
        {("persona", f"{P0} visit 0")},
    ),
    "medications differ": (setp("3.persona.medications", []), {("persona", f"{P0} visit 3")}),
    # 71 -> 70 at month 20 is also outside the visit's own age range
    "age backwards": (
        setp("3.persona.age", 70),
        {("age", rid(3)), ("timeline", f"{P0} visit 3")},
    ),
    # 70 at month -11 fits the visit alone (exact age at diagnosis >= 70.92) but not visit 0's
    # 62 at month -90 (< 70.51); the histories still say 69
    "age fits no single age at diagnosis": (
        setp("1.persona.age", 70),
        {("timeline", f"{P0} visit 1"), ("history", f"{P0} visit 2"), ("history", f"{P0} visit 3")},
    ),
    "month backwards": (setp("3.visit_months", 10.0), {("timeline", f"{P0} visit 3")}),
    "day off the months": (setp("2.patient.day", 3074 + 40), {("timeline", f"{P0} visit 2")}),
    "first visit not day 0": (setp("0.patient.day", 3), {("timeline", f"{P0} visit 0")}),
    "visits differ": (setp("2.patient.visits", 5), {("timeline", f"{P0} visit 2")}),
    "code differs": (setp("1.icd_code", "G30.8"), {("timeline", f"{P0} visit 1")}),
    "run seed differs": (setp("3.run_seed", 2), {("timeline", f"{P0} visit 3")}),
    "duplicate visit": (duplicate_visit_2, {("timeline", f"{P0} visit 2")}),
    "history entry dropped": (drop_history_entry, {("history", f"{P0} visit 2")}),
    "history symptom altered": (
        setp("3.history.0.symptom_ids", [FORGET]),
        {("history", f"{P0} visit 3")},
    ),
    "history month altered": (
        setp("2.history.1.visit_months", -8.0),
        {("history", f"{P0} visit 2")},
    ),
    "stage on a patient visit": (stage_beyond_window, {("stage", rid(0))}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_corruption_names_rule_patient_and_visit(store: GraphStore, case: str) -> None:
    corrupt, expected = CASES[case]
    bad = patient(0)
    corrupt(bad)
    others = [r for p in (1, 2) for r in patient(p)]
    result = audit_specs(store, [*others, *bad])
    assert {(f.rule, f.subject) for f in result.violations} == expected
    # every finding names the patient and visit (per-record ones in their message)
    for f in result.violations:
        assert re.search(rf"{P0} visit \d", f.subject + f.message), f


def test_history_checked_against_another_history_when_the_visit_is_absent(
    store: GraphStore,
) -> None:
    records = [r for r in patient(1) if r["patient"]["visit_index"] != 0]
    assert found(store, records) == set()
    setp("3.history.0.symptom_ids", [WORK])(records)
    result = audit_specs(store, records)
    assert [(f.rule, f.subject) for f in result.violations] == [("history", f"{pid(1)} visit 3")]
    assert "visit 1's history" in result.violations[0].message


def test_a_malformed_patient_names_file_and_line(store: GraphStore, tmp_path: Path) -> None:
    records = patient(0)
    del records[2]["patient"]["day"]
    path = tmp_path / "specs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(EngineError, match=r"specs.jsonl:3: not a kgsynth spec .*'day'"):
        audit_specs_file(store, path)


def persistence(store: GraphStore, records: list[Record]) -> list[Any]:
    return [f for f in audit_specs(store, records).findings if f.rule == "persistence"]


def test_persistence_counted_by_hand(store: GraphStore) -> None:
    # one transition into a window before the diagnosis per patient (visit 0 -> 1); of visit
    # 0's symptoms only forgetfulness is drawable at 69 (decline in work performance needs 64
    # or younger): one opportunity per patient; every second patient documents it again
    n = 150
    records = [r for p in range(n) for r in patient(p, keep=p % 2 == 0)]
    (note,) = persistence(store, records)
    assert note.severity == "note"
    assert note.subject == "persistence 0.5"
    assert note.message.startswith("75 of 150 previous-visit symptoms documented again (0.500)")
    assert "over 150 transitions" in note.message and "150 patients" in note.message
    # the same patients, none documenting it again: z = (0 - 75) / sqrt(150 / 4) = -12.2
    kept_none = [r for p in range(n) for r in patient(p, keep=False)]
    (violation,) = persistence(store, kept_none)
    assert violation.severity == "violation"
    assert "0 of 150" in violation.message and "z -12.2" in violation.message
    named = re.findall(r"(dualalign-1-p\d+) visit (\d) \((\d+) of (\d+)\)", violation.message)
    assert named and all(j == "1" and kept == "0" and of == "1" for _, j, kept, of in named)
    # fewer than 100 opportunities: a note however far off
    (few,) = persistence(store, kept_none[: 4 * 99])
    assert few.severity == "note" and "fewer than 100" in few.message


def test_cli_prints_timeline_findings(graph_file: Path, tmp_path: Path) -> None:
    bad = patient(0)
    setp("1.persona.attributes.sex", "male")(bad)
    path = tmp_path / "specs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in bad))
    env = store_env(GraphSettings(uri=f"embedded:{graph_file}"))
    out = kgsynth("audit", str(path), env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("persona"))
    assert f"{P0} visit 1" in line and "sex 'male'" in line and rid(1) in line
    assert "persistence (note)  persistence 0.5  1 of 1" in out.stdout
    assert "longitudinal patients: patients 1, visits 4" in out.stdout


# --- patients planned by ``kgsynth plan --patients`` on the curated seed ---------------------

AD_CODE = "G30.9"
PATIENTS = 200


@pytest.fixture(scope="module")
def seed_content() -> GraphBatch:
    return curated_seed()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, seed_content: GraphBatch) -> Path:
    path = tmp_path_factory.mktemp("audit-timeline-seeded") / "graph.db"
    with open_embedded(path) as st:
        st.apply_schema()
        write_batch(st, seed_content)
    return path


@pytest.fixture(scope="module")
def planned(seeded: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audit-timeline-plan") / "specs.jsonl"
    env = store_env(GraphSettings(uri=f"embedded:{seeded}"))
    args = ("--recipe", "dualalign", "--icd", AD_CODE, "--patients", str(PATIENTS), "--seed", "7")
    done = kgsynth("plan", *args, "-o", str(out), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture(scope="module")
def seeded_store(seeded: Path) -> Iterator[GraphStore]:
    st = open_embedded(seeded)
    yield st
    st.close()


def plan_records(planned: Path) -> list[Record]:
    return [json.loads(line) for line in planned.read_text().splitlines()]


def by_patient(records: list[Record]) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        out[r["patient"]["patient_id"]].append(r)
    for visits in out.values():
        visits.sort(key=lambda r: r["patient"]["visit_index"])
    return out


def recount_persistence(
    records: list[Record], content: GraphBatch
) -> tuple[int, int, dict[tuple[str, int], tuple[int, int]]]:
    """(kept, opportunities, per patient visit) by hand: the symptom requirements from the seed
    rows, each transition into a window before the diagnosis of consecutive visits."""
    needs = {
        s.id: (getattr(s, "min_age", None), getattr(s, "max_age", None), getattr(s, "sex", None))
        for s in content.nodes["Symptom"].values()
    }
    kept = total = 0
    per: dict[tuple[str, int], tuple[int, int]] = {}
    for p, visits in by_patient(records).items():
        for a, b in pairwise(visits):
            if b["window"]["diagnosed"]:
                continue
            age, sex = b["persona"]["age"], b["persona"]["attributes"].get("sex")
            stage = b["window"]["stage"]
            previous = {k["symptom_id"]: k["stage"] for k in a["keywords"]}
            pool = []
            for sid, s_stage in previous.items():
                lo, hi, need_sex = needs[sid]
                if s_stage is not None and stage is not None and s_stage > stage:
                    continue
                if (lo is not None and age < lo) or (hi is not None and age > hi):
                    continue
                if need_sex is not None and sex != need_sex:
                    continue
                pool.append(sid)
            now = {k["symptom_id"] for k in b["keywords"]}
            k = sum(s in now for s in pool)
            kept, total = kept + k, total + len(pool)
            if pool:
                per[(p, b["patient"]["visit_index"])] = (k, len(pool))
    return kept, total, per


def test_planned_patients_pass_and_persistence_matches_a_recount(
    planned: Path, seeded: Path, seeded_store: GraphStore, seed_content: GraphBatch
) -> None:
    env = store_env(GraphSettings(uri=f"embedded:{seeded}"))
    out = kgsynth("audit", str(planned), env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    records = plan_records(planned)
    patients = by_patient(records)
    assert len(patients) == PATIENTS
    visits = len(next(iter(patients.values())))
    assert f"{PATIENTS * visits} records checked, 0 violations" in out.stdout
    assert f"longitudinal patients: patients {PATIENTS}, visits {PATIENTS * visits}" in out.stdout
    kept, total, _ = recount_persistence(records, seed_content)
    rho = {r["window"]["persistence"] for r in records if not r["window"]["diagnosed"]}
    assert len(rho) == 1  # the seed gives the windows before the diagnosis one persistence
    (note,) = [f for f in audit_specs(seeded_store, records).findings if f.rule == "persistence"]
    assert note.severity == "note" and note.subject == f"persistence {rho.pop():g}"
    assert note.message.startswith(f"{kept} of {total} previous-visit symptoms")
    assert total >= 100
    # any order, any part: shuffled, every third record left out
    part = records[:]
    random.Random(3).shuffle(part)
    assert audit_specs(seeded_store, part[::3]).violations == []


def planted(seeded_store: GraphStore, records: list[Record], patient: str) -> set[tuple[str, str]]:
    """The (rule, subject) pairs of the violations, each of which must name ``patient``."""
    violations = audit_specs(seeded_store, records).violations
    assert violations
    for f in violations:
        assert patient in f.subject + f.message, f
    return {(f.rule, f.subject) for f in violations}


def test_corrupted_plans_name_the_patient(planned: Path, seeded_store: GraphStore) -> None:
    records = plan_records(planned)

    def fresh(p: int) -> tuple[list[Record], list[Record], str]:
        copy_ = copy.deepcopy(records)
        pid_ = by_patient(copy_)
        name = patient_id("dualalign", 7, p)
        return copy_, pid_[name], name

    # one visit's sex flipped (its keywords may also mention the sex: pronoun findings)
    recs, visits, name = fresh(5)
    sex = visits[3]["persona"]["attributes"]["sex"]
    visits[3]["persona"]["attributes"]["sex"] = "male" if sex == "female" else "female"
    assert ("persona", f"{name} visit 3") in planted(seeded_store, recs, name)
    # an age going backwards (later histories still hold the old age)
    recs, visits, name = fresh(7)
    visits[5]["persona"]["age"] = visits[4]["persona"]["age"] - 1
    assert ("timeline", f"{name} visit 5") in planted(seeded_store, recs, name)
    # a history entry dropped
    recs, visits, name = fresh(9)
    del visits[6]["history"][2]
    assert planted(seeded_store, recs, name) == {("history", f"{name} visit 6")}
    # a history symptom altered: the entry of visit 1 at visit 4 loses a symptom
    recs, visits, name = fresh(11)
    assert visits[4]["history"][1]["symptom_ids"]
    visits[4]["history"][1]["symptom_ids"].pop(0)
    assert planted(seeded_store, recs, name) == {("history", f"{name} visit 4")}


def test_persistence_forced_to_zero_is_a_violation(
    planned: Path, seeded_store: GraphStore, seed_content: GraphBatch
) -> None:
    # every even patient: at each visit before the diagnosis, the previous visit's symptoms
    # are deleted (and the later histories follow), so none persists
    records = plan_records(planned)
    for p, visits in by_patient(records).items():
        if int(p.rsplit("p", 1)[1]) % 2:
            continue
        for j in range(1, len(visits)):
            b = visits[j]
            if b["window"]["diagnosed"]:
                continue
            previous = {k["symptom_id"] for k in visits[j - 1]["keywords"]}
            b["keywords"] = [k for k in b["keywords"] if k["symptom_id"] not in previous]
            left = [k["symptom_id"] for k in b["keywords"]]
            for later in visits[j + 1 :]:
                later["history"][j]["symptom_ids"] = list(dict.fromkeys(left))
    kept, total, per = recount_persistence(records, seed_content)
    rho = 0.6
    z = (kept - total * rho) / (total * rho * (1 - rho)) ** 0.5
    assert z < -4
    violations = audit_specs(seeded_store, records).violations
    assert [(f.rule, f.subject) for f in violations] == [("persistence", f"persistence {rho:g}")]
    message = violations[0].message
    assert message.startswith(f"{kept} of {total} previous-visit symptoms")
    assert f"z {z:+.1f}" in message
    named = re.findall(r"(dualalign-7-p\d+) visit (\d+) \((\d+) of (\d+)\)", message)
    assert named
    worst = min(k - rho * m for k, m in per.values())
    for p, j, k, m in named:
        assert per[(p, int(j))] == (int(k), int(m))
    first = named[0]
    assert int(first[2]) - rho * int(first[3]) == pytest.approx(worst)
