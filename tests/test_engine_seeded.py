"""10,000 planned records per recipe on the curated seed, judged against the seed's own rows.

Every expectation is computed here from the seed content (the YAML rows, not the engine's
profile): stages, requirements, slots, restrictions and core criteria must never be
violated; counts, per-window symptom choices and risk-factor marginals must match the
graph's numbers statistically.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import EngineError
from engine.plan import Planner, PlanRequest
from engine.spec import GenerationSpec
from engine.thin import ThinPolicy
from kg.batch import GraphBatch
from kg.model import CodedAs, Presents, Symptom, SymptomCategory, TrajectoryWindow
from kg.settings import GraphSettings
from kg.store import GraphStore, open_store
from kg.store.writer import write_batch
from tests.engine_graph import curated_seed, open_embedded
from tests.engine_stats import chi2_gof, within_se

AD = "KGS:disease/alzheimers-disease"
N = 10_000
P_MIN = 0.001
#: docs/graph-model.md: the frequency a class stands for, and the unweighted default
CLASS_VALUE = {
    "obligate": 1.0,
    "very_frequent": 0.895,
    "frequent": 0.545,
    "occasional": 0.17,
    "very_rare": 0.025,
}
UNWEIGHTED = 0.3
IMPLIES = {
    "female": {"he", "him", "his", "himself", "wife"},
    "male": {"she", "her", "hers", "herself", "husband"},
}


@pytest.fixture(scope="module")
def content() -> GraphBatch:
    if not Path("kg/seed/alzheimers.yaml").is_file():
        pytest.fail("the curated seed files are missing")
    return curated_seed()


@pytest.fixture(scope="module", params=["embedded", "neo4j"])
def seeded(
    request: pytest.FixtureRequest,
    content: GraphBatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GraphStore]:
    if request.param == "embedded":
        store: GraphStore = open_embedded(tmp_path_factory.mktemp("seeded") / "g.db")
        store.apply_schema()
    else:
        settings: GraphSettings = request.getfixturevalue("neo4j_settings")
        store = open_store(settings)
        store.clear()
    write_batch(store, content)
    yield store
    store.close()


class Facts:
    """The seed rows the judgments need, indexed."""

    def __init__(self, b: GraphBatch) -> None:
        self.symptoms = {k: v for k, v in b.nodes["Symptom"].items() if isinstance(v, Symptom)}
        self.windows = {
            k: v for k, v in b.nodes["TrajectoryWindow"].items() if isinstance(v, TrajectoryWindow)
        }
        self.presents: dict[tuple[str, str], Presents] = {
            (r.start, r.end): r for r in b.rels["PRESENTS"].values() if isinstance(r, Presents)
        }
        self.core: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for r in b.rels["CORE_CRITERION"].values():
            self.core[r.start][str(getattr(r, "group", ""))].add(r.end)
        guidelines = b.nodes.get("Guideline", {})
        self.report_sections = {
            r.start
            for r in b.rels["GUIDED_BY"].values()
            if getattr(guidelines.get(r.end), "kind", None) == "report_section"
        }
        self.bounds = {
            r.end.removeprefix("ICD10CM:"): r
            for r in b.rels["CODED_AS"].values()
            if isinstance(r, CodedAs)
        }
        cats = {
            k: v for k, v in b.nodes["SymptomCategory"].items() if isinstance(v, SymptomCategory)
        }
        self.category: dict[tuple[str, str], str] = {}
        for r in sorted(b.rels["IN_CATEGORY"].values(), key=lambda r: r.end):
            scheme = cats[r.end].scheme
            self.category.setdefault((r.start, scheme), r.end)

    def frequency(self, disease: str, symptom: str) -> float:
        p = self.presents[(disease, symptom)]
        if p.weight is not None:
            return p.weight
        return CLASS_VALUE[p.frequency_class] if p.frequency_class else UNWEIGHTED

    def drawable(self, disease: str, symptom: str, window: str | None, age: int, sex: str) -> bool:
        p, s = self.presents[(disease, symptom)], self.symptoms[symptom]
        stage = self.windows[window].stage if window else None
        return (
            (p.stage is None or stage is None or p.stage <= stage)
            and (s.min_age is None or age >= s.min_age)
            and (s.max_age is None or age <= s.max_age)
            and (s.sex is None or s.sex == sex)
        )


@pytest.fixture(scope="module")
def facts(content: GraphBatch) -> Facts:
    return Facts(content)


def _plan(
    store: GraphStore, recipe: str, code: str, n: int, **params: object
) -> list[GenerationSpec]:
    request = PlanRequest(recipe=recipe, icd=(code,), n=n, seed=11, params=dict(params))
    return list(Planner(store, request).iter_specs())


def _violations(spec: GenerationSpec, facts: Facts, disease: str) -> list[str]:
    """Every pronoun, stage, age, attribute and core-criterion conflict of one record."""
    out = []
    persona = spec.persona
    assert persona is not None
    sex, age, dx = persona.get("sex") or "", persona.age, persona.age_at_diagnosis
    window = spec.window.id if spec.window else None
    chosen = {k.symptom_id for k in spec.keywords} | {s.id for s in spec.symptoms}
    for k in spec.keywords:
        words = set(re.findall(r"[a-z]+", k.text.lower()))
        if words & IMPLIES.get(sex, set()) or "{" in k.text:
            out.append(f"pronoun: {k.text!r} for a {sex} patient")
    for symptom in chosen:
        if age is not None and not facts.drawable(disease, symptom, window, age, sex):
            out.append(f"stage/attribute: {symptom} in {window} at age {age}, {sex}")
    bound = facts.bounds.get(spec.icd_code or "")
    if (
        bound is not None
        and dx is not None
        and (
            (bound.min_age is not None and dx < bound.min_age)
            or (bound.max_age is not None and dx > bound.max_age)
        )
    ):
        out.append(f"age: {dx} at diagnosis outside the bounds of {spec.icd_code}")
    if spec.window is not None and dx is not None and age is not None:
        w = facts.windows[spec.window.id]
        m = spec.visit_months or 0.0
        if not (w.start_months - 0.05 <= m <= w.end_months + 0.05):
            out.append(f"age: visit month {m} outside {w.id}")
        if not math.floor(dx + (m - 0.05) / 12) <= age <= math.floor(dx + 1 + (m + 0.05) / 12):
            out.append(f"age: visit age {age} from {dx} at diagnosis and {m} months")
    applies = spec.window is None or spec.window.start_months >= 0
    for group, members in facts.core.get(disease, {}).items():
        if applies and not members & chosen:
            out.append(f"core: no member of {group!r}")
    return out


def test_dualalign_records_are_coherent(seeded: GraphStore, facts: Facts) -> None:
    specs = _plan(seeded, "dualalign", "G30.9", N, window_weights="uniform")
    bad = [v for s in specs for v in _violations(s, facts, AD)]
    assert bad == []
    assert {s.window.id for s in specs if s.window} == set(facts.windows) & {
        s.window.id for s in specs if s.window
    }
    assert any(s.window and s.window.start_months >= 0 for s in specs)  # core checked


@pytest.mark.parametrize(("code", "low", "high"), [("G30.0", None, 64), ("G30.1", 65, None)])
def test_code_restrictions_hold(
    seeded: GraphStore, facts: Facts, code: str, low: int | None, high: int | None
) -> None:
    bound = facts.bounds[code]
    assert (bound.min_age, bound.max_age) == (low, high)
    for spec in _plan(seeded, "medsyn", code, 2000):
        assert spec.persona is not None and spec.persona.age_at_diagnosis is not None
        assert low is None or spec.persona.age_at_diagnosis >= low
        assert high is None or spec.persona.age_at_diagnosis <= high
        assert _violations(spec, facts, AD) == []


@pytest.mark.parametrize("multiplier", [1.0, 5.0, 10.0])
def test_keyword_counts_follow_multiplier_times_density(
    seeded: GraphStore, facts: Facts, multiplier: float
) -> None:
    specs = _plan(
        seeded, "dualalign", "G30.9", N, window_weights="uniform", keyword_multiplier=multiplier
    )
    counts: dict[str, list[int]] = defaultdict(list)
    for s in specs:
        assert s.window is not None
        counts[s.window.id].append(len(s.keywords))
    for wid, mine in counts.items():
        density = facts.windows[wid].keyword_density
        assert density is not None
        lam = multiplier * density
        lo = math.floor(lam + 1e-9)
        frac = lam - lo
        assert set(mine) <= {lo, lo + 1}, (wid, lam)
        if frac > 1e-9:
            assert within_se(sum(1 for c in mine if c == lo + 1), len(mine), frac), (wid, lam)


def test_per_window_symptom_choice_follows_the_frequencies(
    seeded: GraphStore, facts: Facts
) -> None:
    """A category that gets one keyword draws it with p_j ∝ f_j among the drawable."""
    specs = _plan(seeded, "dualalign", "G30.9", N, window_weights="uniform")
    members: dict[str, list[str]] = defaultdict(list)
    for (sid, scheme), cat in facts.category.items():
        if scheme == "dualalign" and (AD, sid) in facts.presents:
            members[cat].append(sid)
    observed: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    expected: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for s in specs:
        assert s.window is not None and s.persona is not None
        if s.window.start_months >= 0:
            continue  # core criteria reshape the draw after the diagnosis
        by_cat: dict[str, list[str]] = defaultdict(list)
        for k in s.keywords:
            by_cat[k.category_id].append(k.symptom_id)
        age, sex = s.persona.age or 0, s.persona.get("sex") or ""
        for cat, got in by_cat.items():
            if len(got) != 1:
                continue
            pool = [j for j in members[cat] if facts.drawable(AD, j, s.window.id, age, sex)]
            total = sum(facts.frequency(AD, j) for j in pool)
            key = (s.window.id, cat)
            observed[key][got[0]] += 1
            for j in pool:
                expected[key][j] += facts.frequency(AD, j) / total
    tested = 0
    for key, exp in expected.items():
        if sum(exp.values()) < 200 or len(exp) < 2:
            continue
        ids = sorted(exp)
        total = sum(exp.values())
        assert chi2_gof([observed[key][j] for j in ids], [exp[j] / total for j in ids]) > P_MIN, key
        tested += 1
    assert tested >= 8


def test_risk_factor_marginals_match_the_cited_figures(
    seeded: GraphStore, content: GraphBatch
) -> None:
    specs = _plan(seeded, "medsyn", "G30.9", 50_000)
    n = len(specs)
    for rel in content.rels["RISK"].values():
        if rel.start != AD:
            continue
        stratum = getattr(rel, "stratum", None)
        rate = float(getattr(rel, "prevalence", 0.0))
        if stratum is None:
            mine = specs
        else:
            value = str(getattr(content.nodes["Stratum"][stratum], "value", ""))
            mine = [s for s in specs if s.persona and s.persona.get("age_group") == value]
        hits = sum(
            1 for s in mine if s.persona and rel.end in {r.id for r in s.persona.risk_factors}
        )
        assert within_se(hits, len(mine), rate), (rel.end, stratum, hits / len(mine), rate)
    assert n == 50_000


def test_medsyn_and_mh_reports_meet_core_criteria(seeded: GraphStore, facts: Facts) -> None:
    checked = 0
    for code, disease in sorted(
        (c.end.removeprefix("ICD10CM:"), c.start)
        for c in facts.bounds.values()
        if c.start in facts.core and c.primary
    ):
        n = N if code in ("G30.9", "F32.9") else 1000
        recipes = ["medsyn"]
        if code.startswith("F") and disease in facts.report_sections:
            recipes.append("mh_report")
        for recipe in recipes:
            for spec in _plan(seeded, recipe, code, n):
                assert _violations(spec, facts, disease) == [], (code, recipe, spec.record_id)
            checked += 1
    assert checked >= 10


#: Census 2000 adult shares (women, men) the seed weights the NCS-R-era figures with
W, M = 0.517, 0.483


@pytest.mark.parametrize(
    ("code", "men"),
    [
        # relative incidence M:F 1.40 (McGrath et al. 2004)
        ("F20.9", 1.40 * M / (1.40 * M + W)),
        # lifetime prevalence F 0.9% / M 0.3%, F 1.5% / M 0.5% (Hudson et al. 2007)
        ("F50.00", 0.3 * M / (0.3 * M + 0.9 * W)),
        ("F50.20", 0.5 * M / (0.5 * M + 1.5 * W)),
        # past-year prevalence F 3.4% / M 1.9% (NIMH, NCS-R)
        ("F41.1", 1.9 * M / (1.9 * M + 3.4 * W)),
    ],
)
def test_mh_report_personas_follow_the_cited_sex_figures(
    seeded: GraphStore, code: str, men: float
) -> None:
    n = 4000
    request = PlanRequest(recipe="mh_report", icd=(code,), n=n, seed=5, thin=ThinPolicy())
    sexes = [
        s.persona.get("sex") if s.persona else None for s in Planner(seeded, request).iter_specs()
    ]
    assert set(sexes) == {"female", "male"}
    assert within_se(sexes.count("male"), n, men), (sexes.count("male") / n, men)
    assert not within_se(sexes.count("male"), n, 0.5)  # a sex-blind persona would fail


def test_a_disease_without_persona_figures_is_refused_as_thin(seeded: GraphStore) -> None:
    request = PlanRequest(recipe="mh_report", icd=("F25.9",), n=10, seed=1, thin=ThinPolicy())
    with pytest.raises(
        EngineError, match=r"F25\.9 -> Schizoaffective.*no persona figures.*--allow-thin"
    ):
        Planner(seeded, request)
