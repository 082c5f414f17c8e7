"""Longitudinal patients (issue 15): ``plan|generate --patients P`` on the curated seed.

Every expectation comes from kg/seed/alzheimers.yaml read here with ``yaml.safe_load``
(windows, their ``visits``, ``persistence`` and stages, the symptoms' PRESENTS stages and
age/sex requirements), never from the engine's profile or samplers. One cohort of 5,000
G30.9 patients is planned once (Planner API) and judged by several tests; the CLI runs
(``plan --workers``, ``generate`` killed with SIGKILL and resumed, errors) are real
subprocesses against the same embedded file and the local OpenAI-compatible test server.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.plan import Planner, PlanRequest
from engine.recipes import render_messages
from engine.runner import read_records
from engine.spec import GenerationSpec
from kg.store.falkor_store import FalkorStore
from kg.store.writer import write_batch
from tests.engine_graph import curated_seed, open_embedded
from tests.llm_server import ServerConfig, ThreadServer

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[1]
SEED_FILE = REPO / "kg" / "seed" / "alzheimers.yaml"
AD = "KGS:disease/alzheimers-disease"
RUN_SEED = 15
#: patients in the shared cohort (the persistence test needs thousands of opportunities)
COHORT = 5000
ENV = {"PATH": "/usr/bin:/bin"}
#: docs/recipes.md: visits of a window without ``visits`` (0 when its weight is 0), and the
#: persistence of a window without one
DEFAULT_VISITS, DEFAULT_PERSISTENCE = 1, 0.5
DAYS_PER_YEAR = 365.2425
#: specs carry visit_months rounded to 0.1: at most this far from the exact time
MONTHS_ROUNDING = 0.05 + 1e-9


@dataclass(frozen=True)
class Window:
    id: str
    order: int
    start: float
    end: float
    stage: int
    visits: int
    persistence: float


class Facts:
    """What the seed file says about Alzheimer's disease, read straight from the YAML."""

    def __init__(self, doc: dict[str, Any]) -> None:
        nodes, rels = doc["nodes"], doc["relationships"]
        mine = {r["end"] for r in rels["HAS_WINDOW"] if r["start"] == AD}
        windows = []
        for w in nodes["TrajectoryWindow"]:
            if w["id"] not in mine:
                continue
            default = 0 if w.get("weight") == 0 else DEFAULT_VISITS
            windows.append(
                Window(
                    id=w["id"],
                    order=w["order"],
                    start=float(w["start_months"]),
                    end=float(w["end_months"]),
                    stage=w["stage"],
                    visits=w.get("visits", default),
                    persistence=w.get("persistence", DEFAULT_PERSISTENCE),
                )
            )
        self.windows = sorted(windows, key=lambda w: w.order)
        self.window = {w.id: w for w in self.windows}
        #: the window of each visit, in visit order
        self.schedule = [w.id for w in self.windows for _ in range(w.visits)]
        self.stage = {r["end"]: r["stage"] for r in rels["PRESENTS"] if r["start"] == AD}
        symptoms = {s["id"]: s for s in nodes["Symptom"]}
        missing = set(self.stage) - set(symptoms)
        assert not missing, f"AD symptoms defined outside the module: {missing}"
        self.name = {s: symptoms[s]["name"] for s in self.stage}
        self.min_age = {s: symptoms[s].get("min_age") for s in self.stage}
        self.max_age = {s: symptoms[s].get("max_age") for s in self.stage}
        self.sex = {s: symptoms[s].get("sex") for s in self.stage}

    @property
    def visits(self) -> int:
        return len(self.schedule)

    def allows(self, symptom: str, age: int | None, sex: str | None) -> bool:
        """Whether a persona of ``age`` and ``sex`` meets the symptom's requirements."""
        lo, hi, need = self.min_age[symptom], self.max_age[symptom], self.sex[symptom]
        if age is not None and ((lo is not None and age < lo) or (hi is not None and age > hi)):
            return False
        return need is None or need == sex


@pytest.fixture(scope="module")
def facts() -> Facts:
    return Facts(yaml.safe_load(SEED_FILE.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FalkorStore, Path]]:
    """The curated modules (and the ICD-10-CM codes they use) in an embedded file."""
    path = tmp_path_factory.mktemp("patients") / "g.db"
    store = open_embedded(path)
    store.apply_schema()
    write_batch(store, curated_seed())
    yield store, path
    store.close()  # also stops the server the CLI subprocesses reconnected to


def request(n: int, *codes: str, seed: int = RUN_SEED) -> PlanRequest:
    return PlanRequest(recipe="dualalign", icd=codes, n=n, patients=True, seed=seed)


@pytest.fixture(scope="module")
def cohort(seeded: tuple[FalkorStore, Path]) -> list[GenerationSpec]:
    """COHORT patients of G30.9, every visit, in record order (default batch size)."""
    return list(Planner(seeded[0], request(COHORT, "G30.9")).iter_specs())


def patient_of(spec: GenerationSpec) -> Any:
    assert spec.patient is not None, spec.record_id
    return spec.patient


@pytest.fixture(scope="module")
def histories(cohort: list[GenerationSpec]) -> list[list[GenerationSpec]]:
    """The cohort's visits grouped by patient id (whatever the record layout), in visit order."""
    by: dict[str, list[GenerationSpec]] = defaultdict(list)
    for spec in cohort:
        by[patient_of(spec).patient_id].append(spec)
    return [sorted(v, key=lambda s: patient_of(s).visit_index) for v in by.values()]


def symptom_ids(spec: GenerationSpec) -> set[str]:
    return {k.symptom_id for k in spec.keywords}


def sex_of(spec: GenerationSpec) -> str | None:
    assert spec.persona is not None
    return spec.persona.get("sex")


# 1. Schedule and record layout


def test_every_patient_has_the_yaml_schedule_in_patient_major_order(
    facts: Facts, cohort: list[GenerationSpec], histories: list[list[GenerationSpec]]
) -> None:
    v = facts.visits
    assert len(cohort) == COHORT * v
    assert len(histories) == COHORT
    for i, spec in enumerate(cohort):
        p = patient_of(spec)
        assert spec.record_index == i
        assert (p.patient_index, p.visit_index, p.visits) == (i // v, i % v, v)
        assert p.patient_id == f"dualalign-{RUN_SEED}-p{i // v:07d}"
        assert spec.window is not None and spec.window.id == facts.schedule[i % v]
    for visits in histories:
        counts = Counter(s.window.id for s in visits if s.window)
        assert counts == {w.id: w.visits for w in facts.windows if w.visits}


def test_two_codes_each_get_p_patients_of_v_visits(
    facts: Facts, seeded: tuple[FalkorStore, Path]
) -> None:
    p, v = 30, facts.visits
    specs = list(Planner(seeded[0], request(p, "G30.9", "G30.1")).iter_specs())
    assert len(specs) == 2 * p * v
    assert [s.icd_code for s in specs] == ["G30.9"] * (p * v) + ["G30.1"] * (p * v)
    ids = Counter(patient_of(s).patient_id for s in specs)
    assert len(ids) == 2 * p and set(ids.values()) == {v}
    for i, spec in enumerate(specs):
        visit = patient_of(spec)
        assert (visit.patient_index, visit.visit_index) == (i // v, i % v)
    late = [s for s in specs if s.icd_code == "G30.1"]
    # G30.1 is late onset (CODED_AS min_age 65 in the seed): its personas are 65+ at diagnosis
    assert all(s.persona and (s.persona.age_at_diagnosis or 0) >= 65 for s in late)


# 2. One persona, ages, times, days and medications


def test_persona_is_constant_and_times_follow_the_windows(
    facts: Facts, histories: list[list[GenerationSpec]]
) -> None:
    medicated = 0
    for visits in histories:
        first = visits[0].persona
        assert first is not None and first.age_at_diagnosis is not None
        ages: list[int] = []
        for k, spec in enumerate(visits):
            persona, window = spec.persona, spec.window
            assert persona is not None and window is not None and spec.visit_months is not None
            assert persona.attributes == first.attributes
            assert persona.age_at_diagnosis == first.age_at_diagnosis
            assert persona.risk_factors == first.risk_factors
            assert persona.age is not None
            ages.append(persona.age)
            # age = floor(exact age at diagnosis + months / 12), age_at_diagnosis = floor(exact),
            # so they differ from months / 12 by less than a year (plus the months' rounding)
            gap = persona.age - first.age_at_diagnosis - spec.visit_months / 12
            assert abs(gap) < 1 + MONTHS_ROUNDING / 12, spec.record_id
            w = facts.window[window.id]
            assert w.start <= spec.visit_months <= w.end
            # the k-th of a window's c visits falls in the k-th of c equal slots
            slot = facts.schedule[:k].count(w.id)
            width = (w.end - w.start) / w.visits
            lo, hi = w.start + slot * width, w.start + (slot + 1) * width
            assert lo - MONTHS_ROUNDING <= spec.visit_months <= hi + MONTHS_ROUNDING
            days = (spec.visit_months - (visits[0].visit_months or 0.0)) * DAYS_PER_YEAR / 12
            assert (
                abs(patient_of(spec).day - days) <= 2 * MONTHS_ROUNDING * DAYS_PER_YEAR / 12 + 0.5
            )
            if w.start < 0:
                assert persona.medications == (), spec.record_id
            medicated += bool(persona.medications)
        assert ages == sorted(ages)
        months = [s.visit_months or 0.0 for s in visits]
        assert months == sorted(months)
        offsets = [patient_of(s).day for s in visits]
        assert offsets[0] == 0 and offsets == sorted(offsets)
    assert medicated > 0  # diagnosed visits do carry medications (the check above can bite)


# 3. Stages


def test_no_keyword_is_beyond_its_window_stage_or_its_persona(
    facts: Facts, cohort: list[GenerationSpec]
) -> None:
    seen_stage: Counter[int] = Counter()
    for spec in cohort:
        assert spec.window is not None and spec.persona is not None
        w = facts.window[spec.window.id]
        assert (spec.window.stage, spec.window.persistence) == (w.stage, w.persistence)
        for k in spec.keywords:
            assert facts.stage[k.symptom_id] <= w.stage, (spec.record_id, k.symptom_id)
            assert facts.allows(k.symptom_id, spec.persona.age, sex_of(spec)), spec.record_id
            seen_stage[facts.stage[k.symptom_id]] += 1
    # every stage the windows allow is used somewhere (the stage bound is not vacuous)
    assert set(seen_stage) == {s for s in facts.stage.values() if s <= facts.windows[-1].stage}


# 4. Persistence


@dataclass
class Tally:
    """Opportunities (a symptom of visit j-1 still drawable at j) and how many persisted."""

    n: int = 0
    kept: int = 0
    expected: float = 0.0  # sum of the YAML persistence over the opportunities
    variance: float = 0.0
    independent: float = 0.0  # expected kept if visit j were drawn without regard to j-1
    independent_var: float = 0.0

    def z(self, expected: float, variance: float) -> float:
        return (self.kept - expected) / math.sqrt(variance)


def test_symptoms_persist_at_the_yaml_rate_before_the_diagnosis(
    facts: Facts, histories: list[list[GenerationSpec]]
) -> None:
    v = facts.visits
    # how often each symptom is documented at visit j among patients it is drawable for:
    # the chance of documenting it again if visit j ignored visit j-1
    drawable: Counter[tuple[int, str]] = Counter()
    documented: Counter[tuple[int, str]] = Counter()
    bound = {s for s in facts.stage if facts.min_age[s] or facts.max_age[s] or facts.sex[s]}
    for j, window in enumerate(facts.schedule):
        for s, stage in facts.stage.items():
            if stage <= facts.window[window].stage and s not in bound:
                drawable[j, s] = len(histories)
    for visits in histories:
        for j, spec in enumerate(visits):
            assert spec.persona is not None
            for s in bound:
                stage_ok = facts.stage[s] <= facts.window[facts.schedule[j]].stage
                drawable[j, s] += stage_ok and facts.allows(s, spec.persona.age, sex_of(spec))
            for s in symptom_ids(spec):
                documented[j, s] += 1
    tallies: dict[str, Tally] = defaultdict(Tally)
    after = Tally()
    for visits in histories:
        for j in range(1, v):
            spec, w = visits[j], facts.window[facts.schedule[j]]
            assert spec.persona is not None
            now = symptom_ids(spec)
            for s in symptom_ids(visits[j - 1]):
                if facts.stage[s] > w.stage or not facts.allows(s, spec.persona.age, sex_of(spec)):
                    continue
                t = tallies[w.id] if w.start < 0 else after
                q = documented[j, s] / drawable[j, s]
                t.n += 1
                t.kept += s in now
                t.expected += w.persistence
                t.variance += w.persistence * (1 - w.persistence)
                t.independent += q
                t.independent_var += q * (1 - q)
    into = {facts.schedule[j] for j in range(1, v)}
    before = [w for w in facts.windows if w.start < 0 and w.id in into]
    assert before and set(tallies) == {w.id for w in before}
    pooled = Tally()
    for w in before:
        t = tallies[w.id]
        assert t.n >= 1000, (w.id, t.n)
        z = t.z(t.expected, t.variance)
        assert abs(z) < 3, f"{w.id}: {t.kept}/{t.n} kept, YAML persistence {w.persistence}"
        for name in ("n", "kept", "expected", "variance", "independent", "independent_var"):
            setattr(pooled, name, getattr(pooled, name) + getattr(t, name))
    assert abs(pooled.z(pooled.expected, pooled.variance)) < 3
    # the test can tell other models apart: no persistence at all, or each visit drawn
    # afresh (the share would be the symptom's cross-sectional rate at that visit)
    assert pooled.kept > 0 and abs(pooled.z(0.0, pooled.n * 0.25)) > 3
    assert abs(pooled.z(pooled.independent, pooled.independent_var)) > 3
    wrong = pooled.expected + 0.05 * pooled.n  # persistence off by 0.05
    assert abs(pooled.z(wrong, pooled.variance)) > 3
    # after the diagnosis a core-criterion group may pull a dropped symptom back: at least rho
    assert after.n > 0 and after.z(after.expected, after.variance) > -3


# 5. History and the prompt


def test_history_is_the_earlier_visits_as_their_own_specs_documented(
    histories: list[list[GenerationSpec]],
) -> None:
    for visits in histories:
        for j, spec in enumerate(visits):
            assert len(spec.history) == j
            for i, past in enumerate(spec.history):
                earlier = visits[i]
                assert earlier.persona is not None
                assert past.visit_index == i
                assert past.visit_months == earlier.visit_months
                assert past.age == earlier.persona.age
                assert past.symptom_ids == tuple(k.symptom_id for k in earlier.keywords)
                assert past.symptoms == tuple(k.symptom for k in earlier.keywords)


HEADER = re.compile(r"Earlier visits in this patient's record \((\d+)\)[^\n]*\n")


def test_the_prompt_lists_each_earlier_visit_with_its_symptoms(
    histories: list[list[GenerationSpec]],
) -> None:
    for visits in histories[:25]:
        for j, spec in enumerate(visits):
            user = render_messages(spec)[-1]["content"]
            found = HEADER.search(user)
            if j == 0:
                assert found is None and "Earlier visits" not in user
                continue
            assert found is not None and int(found.group(1)) == j, spec.record_id
            block = user[found.end() :].split("\n\n", 1)[0]
            lines = [line for line in block.splitlines() if line.strip()]
            assert len(lines) == j, block
            for line, earlier in zip(lines, visits[:j], strict=True):
                assert earlier.persona is not None
                assert line.startswith("- ") and " earlier" in line
                assert f"(age {earlier.persona.age})" in line
                names = [k.symptom for k in earlier.keywords]
                assert all(name in line for name in names), (line, names)
                if not names:
                    assert "no symptom documented" in line


# 6. Invariance


def dumps(specs: Iterator[GenerationSpec] | list[GenerationSpec]) -> list[str]:
    return [s.model_dump_json() for s in specs]


def test_specs_do_not_depend_on_batch_size_or_slice(
    facts: Facts, seeded: tuple[FalkorStore, Path], cohort: list[GenerationSpec]
) -> None:
    full, v = dumps(cohort), facts.visits
    planner = Planner(seeded[0], request(COHORT, "G30.9"))  # a fresh planner
    assert dumps(planner.iter_specs(0, 2 * v + 5, batch_size=1)) == full[: 2 * v + 5]
    mid = 40 * v + 6  # in the middle of patient 40; batches cut patients anywhere
    assert dumps(planner.iter_specs(mid, mid + 120, batch_size=7)) == full[mid : mid + 120]
    assert dumps(planner.iter_specs(4080, 4130, batch_size=3)) == full[4080:4130]
    tail = len(full) - 2 * v - 3
    assert dumps(planner.iter_specs(tail, None, batch_size=4096)) == full[tail:]
    # a patient's history does not depend on how many patients the run has
    few = Planner(seeded[0], request(7, "G30.9"))
    assert dumps(few.iter_specs()) == full[: 7 * v]
    other = Planner(seeded[0], request(7, "G30.9", seed=RUN_SEED + 1))
    assert dumps(other.iter_specs()) != full[: 7 * v]


def run_cli(
    graph: Path, home: Path, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "--uri", f"embedded:{graph}", *args],
        cwd=REPO,
        env={**ENV, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_plan_workers_write_the_same_bytes(
    facts: Facts, seeded: tuple[FalkorStore, Path], cohort: list[GenerationSpec], tmp_path: Path
) -> None:
    p = 400  # 5,200 records: two planning chunks, so two workers really split the work
    texts = []
    runs = [("1", ()), ("2", ()), ("2", ("--start", "20", "--stop", "4500"))]
    for i, (workers, bounds) in enumerate(runs):
        out = tmp_path / f"run{i}.jsonl"
        done = run_cli(
            seeded[1],
            tmp_path,
            "plan",
            "--recipe",
            "dualalign",
            "--icd",
            "G30.9",
            "--patients",
            str(p),
            "--seed",
            str(RUN_SEED),
            "--workers",
            workers,
            *bounds,
            "-o",
            str(out),
        )
        assert done.returncode == 0, done.stderr
        texts.append(out.read_bytes())
    assert texts[0] == texts[1]
    lines = texts[0].decode().splitlines()
    assert lines == dumps(cohort[: p * facts.visits])
    # a slice starting and ending inside patients (20 = patient 1, visit 7 of 13)
    assert texts[2].decode().splitlines() == lines[20:4500]


# 7. Kill and resume


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
def test_generate_patients_resumes_after_sigkill(
    facts: Facts, seeded: tuple[FalkorStore, Path], tmp_path: Path
) -> None:
    p, v = 12, facts.visits
    total = p * v
    out = tmp_path / "notes.jsonl"
    args = [
        sys.executable,
        "-m",
        "engine.cli.main",
        "--uri",
        f"embedded:{seeded[1]}",
        "generate",
        "--recipe",
        "dualalign",
        "--icd",
        "G30.9",
        "--patients",
        str(p),
        "--seed",
        str(RUN_SEED),
        "--backend",
        "openai",
        "--model",
        "test-model",
        "--concurrency",
        "4",
        "-o",
        str(out),
    ]
    env = {**ENV, "HOME": str(tmp_path)}
    kills = 0
    with ThreadServer(ServerConfig(latency_s=0.05)) as server:
        cmd = [*args, "--base-url", server.url]
        for target in (total // 4, total // 2):
            proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            while line_count(out) < target and proc.poll() is None:
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            _, stderr = proc.communicate()
            kills += proc.returncode == -signal.SIGKILL and line_count(out) < total
        assert kills == 2, stderr  # both kills landed mid-run
        done = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
        )
    assert done.returncode == 0, done.stderr
    raw = out.read_bytes()
    ids = Counter(json.loads(line)["record_id"] for line in raw.splitlines())
    assert len(ids) == total and max(ids.values()) == 1  # none lost, none written twice
    records = read_records(out)
    assert all(r.status == "ok" for r in records.values())
    visits: Counter[tuple[str, int]] = Counter()
    for r in records.values():
        assert r.spec is not None
        visit = patient_of(r.spec)
        visits[visit.patient_id, visit.visit_index] += 1
    assert len(visits) == total
    assert {pid for pid, _ in visits} == {f"dualalign-{RUN_SEED}-p{i:07d}" for i in range(p)}
    planned = {s.record_id: s for s in Planner(seeded[0], request(p, "G30.9")).iter_specs()}
    assert {i: r.spec for i, r in records.items()} == planned


# 8. Errors


@pytest.mark.parametrize("command", ["plan", "generate"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--icd", "G30.9", "-n", "5"), "--patients P replaces -n N"),
        (("--by-prevalence",), "--patients plans P patients per code or disease"),
        (("--icd", "G30.9", "--recipe", "medsyn"), "need a recipe with trajectory windows"),
    ],
    ids=["with-n", "by-prevalence", "medsyn"],
)
def test_bad_patient_requests_are_one_clear_message(
    seeded: tuple[FalkorStore, Path],
    tmp_path: Path,
    command: str,
    args: tuple[str, ...],
    message: str,
) -> None:
    recipe = () if "--recipe" in args else ("--recipe", "dualalign")
    backend = ("--backend", "template") if command == "generate" else ()
    out = tmp_path / "out.jsonl"
    done = run_cli(
        seeded[1], tmp_path, command, *recipe, *args, "--patients", "3", *backend, "-o", str(out)
    )
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and message in errors[0], done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not out.exists()
