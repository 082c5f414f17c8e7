"""Clinical coherence on the real seed: 10,000 planned records per recipe, embedded and Neo4j.

The curated seed (kg/seed/*.yaml, validated by the load rules, with the catalogue codes it
uses) is written once per backend. The graph's figures are read back with ``read_graph``
(not through the engine's profile) and every check below is computed here from them:

* zero pronoun, stage, age, attribute and core-criterion violations (this file's own
  checks, then ``kgsynth audit``'s, which must agree);
* per-window symptom distributions: among records with exactly one keyword of a category,
  that keyword is symptom ``s`` with probability ``w_s / sum of the drawable w`` (drawable:
  stage within the window's, persona within the symptom's requirements); counts within 3 SE;
* risk-factor marginals of an unrestricted code equal the cited overall prevalence (3 SE);
* keyword counts per window follow ``multiplier x density`` at 1x, 5x and 10x: the mean
  count equals ``E[min(k, D)]`` with ``k = clip(sround(m x density))`` and ``D`` the record's
  drawable symptoms in the window's categories (slots a category cannot fill move to the
  others), so ``m x density`` exactly whenever ``D >= k``; within 3 SE.

"3 SE" is family-wise: with ``m`` comparisons in a check, each is held to the two-sided
level ``0.0027 / m`` (Bonferroni), so a correct sampler passes at the stated 3-SE level.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest

from engine.audit.graph import audit_graph
from engine.audit.specs import audit_specs
from engine.plan import Planner, PlanRequest
from engine.recipes import get_recipe
from kg.batch import GraphBatch
from kg.model import NODE_MODELS, REL_MODELS
from kg.settings import GraphSettings
from kg.store import GraphStore, open_store
from kg.store.writer import read_graph, write_batch
from kg.validate import check_graph, errors
from loaders.seed import curated_with_codes

AD = "KGS:disease/alzheimers-disease"
N = 10_000
FAMILY_LEVEL = 0.0027  # two-sided level of 3 SE
MALE_WORDS = {"he", "him", "his", "himself", "wife"}
FEMALE_WORDS = {"she", "her", "hers", "herself", "husband"}
# the classes' documented values (docs/graph-model.md) and the unweighted default
CLASS_VALUE = {
    "obligate": 1.0,
    "very_frequent": 0.895,
    "frequent": 0.545,
    "occasional": 0.17,
    "very_rare": 0.025,
}
UNWEIGHTED = 0.3
Record = dict[str, Any]


def z_limit(comparisons: int) -> float:
    """The |z| a family of ``comparisons`` tests may reach at the 3-SE family level."""
    return statistics.NormalDist().inv_cdf(1 - FAMILY_LEVEL / (2 * max(comparisons, 1)))


@cache
def curated_content() -> GraphBatch:
    """The curated seed modules plus the catalogue codes they reference (and ancestors)."""
    batch = curated_with_codes()
    problems = errors(check_graph(batch))
    assert not problems, problems[:3]
    return batch


@dataclass
class Facts:
    """The graph's figures, read back from the store, indexed for the checks."""

    presents: dict[str, dict[str, tuple[float, int | None]]] = field(default_factory=dict)
    requirement: dict[str, tuple[int | None, int | None, str | None]] = field(default_factory=dict)
    categories: dict[str, dict[str, str]] = field(default_factory=dict)  # symptom -> scheme -> cat
    windows: dict[str, dict[str, Any]] = field(default_factory=dict)
    bounds: dict[tuple[str, str], tuple[int | None, int | None, str | None]] = field(
        default_factory=dict
    )
    disease_bounds: dict[str, tuple[int | None, int | None, str | None]] = field(
        default_factory=dict
    )
    core: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    overall_risk: dict[str, dict[str, float]] = field(default_factory=dict)


def read_facts(store: GraphStore) -> Facts:
    batch = read_graph(store, set(NODE_MODELS) - {"IcdCode"}, set(REL_MODELS) - {"PARENT_OF"})
    f = Facts()
    scheme = {c.id: getattr(c, "scheme", "") for c in batch.nodes["SymptomCategory"].values()}
    for s in batch.nodes["Symptom"].values():
        f.requirement[s.id] = (
            getattr(s, "min_age", None),
            getattr(s, "max_age", None),
            getattr(s, "sex", None),
        )
    for d in batch.nodes["Disease"].values():
        f.disease_bounds[d.id] = (
            getattr(d, "min_age", None),
            getattr(d, "max_age", None),
            getattr(d, "sex", None),
        )
    for r in batch.rels["PRESENTS"].values():
        weight, cls = getattr(r, "weight", None), getattr(r, "frequency_class", None)
        freq = weight if weight is not None else CLASS_VALUE[cls] if cls else UNWEIGHTED
        f.presents.setdefault(r.start, {})[r.end] = (freq, getattr(r, "stage", None))
    for r in batch.rels["IN_CATEGORY"].values():
        f.categories.setdefault(r.start, {})[scheme[r.end]] = r.end
    windows = batch.nodes["TrajectoryWindow"]
    for r in batch.rels["HAS_WINDOW"].values():
        node = windows[r.end]
        f.windows[node.id] = {
            "disease": r.start,
            "name": getattr(node, "name", ""),
            "start": getattr(node, "start_months", 0.0),
            "end": getattr(node, "end_months", 0.0),
            "stage": getattr(node, "stage", None),
            "density": getattr(node, "keyword_density", None) or 1.0,
            "shares": {},
            "observed": {},
        }
    for r in batch.rels["OBSERVES"].values():
        w = f.windows[r.start]
        if r.end in scheme:
            w["shares"].setdefault(scheme[r.end], {})[r.end] = getattr(r, "frequency", 0.0)
        else:
            w["observed"][r.end] = getattr(r, "frequency", 0.0)
    for r in batch.rels["CODED_AS"].values():
        code = r.end.removeprefix("ICD10CM:")
        f.bounds[(r.start, code)] = (
            getattr(r, "min_age", None),
            getattr(r, "max_age", None),
            getattr(r, "sex", None),
        )
    for r in batch.rels.get("CORE_CRITERION", {}).values():
        f.core.setdefault(r.start, {}).setdefault(getattr(r, "group", ""), set()).add(r.end)
    for r in batch.rels["RISK"].values():
        if getattr(r, "stratum", None) is None:
            f.overall_risk.setdefault(r.start, {})[r.end] = getattr(r, "prevalence", 0.0)
    return f


@dataclass
class Seeded:
    backend: str
    store: GraphStore
    facts: Facts


@pytest.fixture(scope="module", params=["embedded", "neo4j"])
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    """The curated seed on one backend, written once for the module."""
    if request.param == "embedded":
        path = tmp_path_factory.mktemp("coherence") / "graph.db"
        store = open_store(GraphSettings(uri=f"embedded:{path}"))
        store.apply_schema()
    else:
        settings: GraphSettings = request.getfixturevalue("neo4j_settings")
        store = open_store(settings)
        store.clear()
    write_batch(store, curated_content())
    yield Seeded(request.param, store, read_facts(store))
    store.close()


def plan(store: GraphStore, recipe: str, **request: Any) -> list[Record]:
    planner = Planner(store, PlanRequest(recipe=recipe, seed=7, **request))
    return [s.model_dump(mode="json") for s in planner.iter_specs()]


# ------------------------------------------------------------------------ independent checks


def _age_ok(lo: int | None, hi: int | None, age: int) -> bool:
    return (lo is None or age >= lo) and (hi is None or age <= hi)


def _group_span(group: str) -> tuple[int, int]:
    nums = [int(x) for x in re.findall(r"\d+", group)]
    if len(nums) == 2:
        return nums[0], nums[1]
    if "+" in group:
        return nums[0], 200
    return 0, nums[0] - (0 if "=" in group else 1)


def _code_bounds(
    f: Facts, disease: str, code: str | None
) -> tuple[int | None, int | None, str | None]:
    """The disease's bounds and those of its longest coded prefix of ``code``, intersected."""
    lo, hi, sex = f.disease_bounds.get(disease, (None, None, None))
    if code is not None:
        held = [c for (d, c) in f.bounds if d == disease and code.startswith(c)]
        if held:
            clo, chi, csex = f.bounds[(disease, max(held, key=len))]
            lo = clo if lo is None else (lo if clo is None else max(lo, clo))
            hi = chi if hi is None else (hi if chi is None else min(hi, chi))
            sex = csex or sex
    return lo, hi, sex


def drawable(
    f: Facts, disease: str, window: dict[str, Any], symptom: str, age: int, sex: str | None
) -> bool:
    stage = f.presents.get(disease, {}).get(symptom, (0.0, None))[1]
    if symptom not in window["observed"] and not (
        stage is None or window["stage"] is None or stage <= window["stage"]
    ):
        return False
    lo, hi, need = f.requirement.get(symptom, (None, None, None))
    return _age_ok(lo, hi, age) and (need is None or need == sex)


def violations(f: Facts, rec: Record) -> list[tuple[str, str]]:
    """(rule, detail) of every incoherence of ``rec``, by this file's reading of the rules."""
    out: list[tuple[str, str]] = []
    disease, persona = rec["disease_id"], rec.get("persona")
    window = rec.get("window")
    keywords = rec.get("keywords") or []
    symptoms = [s["id"] for s in rec.get("symptoms") or []]
    sex = (persona or {}).get("attributes", {}).get("sex")
    age = (persona or {}).get("age")
    for kw in keywords:
        words = set(re.findall(r"[a-z]+", kw["text"].lower()))
        implied = ({"male"} if words & MALE_WORDS else set()) | (
            {"female"} if words & FEMALE_WORDS else set()
        )
        if "{" in kw["text"] or (implied and implied != {sex}):
            out.append(("pronoun", kw["text"]))
    if persona and persona["age_at_diagnosis"] is not None:
        at_dx = persona["age_at_diagnosis"]
        lo, hi, need = _code_bounds(f, disease, rec.get("icd_code"))
        if not _age_ok(lo, hi, at_dx) or (need is not None and sex != need):
            out.append(("age", f"age at diagnosis {at_dx}, bounds {lo}-{hi} {need}"))
        group = persona["attributes"].get("age_group")
        if group and not _age_ok(*_group_span(group), at_dx):
            out.append(("age", f"{at_dx} outside {group}"))
        months = rec.get("visit_months") or 0.0
        if window is not None and not window["start_months"] <= months <= window["end_months"]:
            out.append(("age", f"visit month {months} outside the window"))
        # visit age = floor(X + months / 12) with X in [at_dx, at_dx + 1); months to 0.1
        if (
            not math.floor(at_dx + (months - 0.05) / 12)
            <= age
            <= math.floor(at_dx + 1 + (months + 0.05) / 12)
        ):
            out.append(("age", f"visit age {age} vs {at_dx} at diagnosis, month {months}"))
    if window is not None:
        w = f.windows[window["id"]]
        for kw in keywords:
            sid = kw["symptom_id"]
            stage = f.presents[disease].get(sid, (0.0, None))[1]
            if sid not in w["observed"] and not (
                sid in f.presents[disease]
                and (stage is None or w["stage"] is None or stage <= w["stage"])
            ):
                out.append(("stage", f"{sid} stage {stage} in window stage {w['stage']}"))
    for sid in [kw["symptom_id"] for kw in keywords] + symptoms:
        lo, hi, need = f.requirement.get(sid, (None, None, None))
        if (age is not None and not _age_ok(lo, hi, age)) or (need is not None and need != sex):
            out.append(("attribute", f"{sid} for {sex} aged {age}"))
    components = get_recipe(rec["recipe"]).components
    held = set(symptoms) if "symptoms" in components else None
    if "trajectory" in components and window is not None and window["start_months"] >= 0:
        held = {kw["symptom_id"] for kw in keywords}
    if held is not None:
        for group, members in f.core.get(disease, {}).items():
            if not held & members:
                out.append(("core", group))
    return out


def assert_coherent(seeded: Seeded, records: list[Record]) -> None:
    found = Counter(rule for rec in records for rule, _ in violations(seeded.facts, rec))
    assert found == Counter(), found
    audit = audit_specs(seeded.store, records)
    assert audit.checked == len(records)
    assert audit.counts() == {}, audit.violations[:5]


def test_the_curated_graph_passes_the_graph_audit(seeded: Seeded) -> None:
    report = audit_graph(seeded.store)
    assert report.violations == [], report.violations[:5]
    by_status = report.figures["numbers by status"]
    assert by_status[AD]["measured"] >= 5 and by_status[AD]["estimate"] >= 5
    assert all(row["no status"] == 0 for row in by_status.values())


# ------------------------------------------------------------------------ the recipes


@pytest.fixture(scope="module")
def dualalign(seeded: Seeded) -> list[Record]:
    return plan(seeded.store, "dualalign", icd=("G30.9",), n=N)


def test_dualalign_records_are_coherent(seeded: Seeded, dualalign: list[Record]) -> None:
    early = plan(seeded.store, "dualalign", icd=("G30.0",), n=2_000)
    assert all(r["persona"]["age_at_diagnosis"] <= 64 for r in early)
    assert_coherent(seeded, dualalign + early)


def test_medsyn_records_are_coherent(seeded: Seeded) -> None:
    records = plan(seeded.store, "medsyn", icd=("G30.0", "G30.1", "G30.9", "F32.9"), n=N // 4)
    assert {r["icd_code"] for r in records} == {"G30.0", "G30.1", "G30.9", "F32.9"}
    assert_coherent(seeded, records)


def test_mh_report_records_are_coherent(seeded: Seeded) -> None:
    records = plan(seeded.store, "mh_report", by_prevalence=True, population="US adults 18+", n=N)
    assert len({r["disease_id"] for r in records}) >= 5
    assert_coherent(seeded, records)


def test_unguided_records_are_coherent(seeded: Seeded) -> None:
    records = plan(seeded.store, "unguided", icd=("G30.9",), n=N)
    assert all(not r["keywords"] and not r["symptoms"] for r in records)
    assert_coherent(seeded, records)


def _drawable_by_category(f: Facts, rec: Record, scheme: str) -> dict[str, list[tuple[str, float]]]:
    """Category -> (symptom, weight) drawable for ``rec`` in its window."""
    disease, w = rec["disease_id"], f.windows[rec["window"]["id"]]
    age, sex = rec["persona"]["age"], rec["persona"]["attributes"].get("sex")
    out: dict[str, list[tuple[str, float]]] = defaultdict(list)
    pool = set(f.presents[disease]) | set(w["observed"])
    for sid in sorted(pool):
        category = f.categories.get(sid, {}).get(scheme)
        if category is not None and drawable(f, disease, w, sid, age, sex):
            weight = w["observed"].get(sid, f.presents[disease].get(sid, (UNWEIGHTED,))[0])
            out[category].append((sid, weight))
    return out


def test_window_symptom_distributions_match_the_graph(
    seeded: Seeded, dualalign: list[Record]
) -> None:
    f = seeded.facts
    expected: dict[tuple[str, str], float] = defaultdict(float)
    variance: dict[tuple[str, str], float] = defaultdict(float)
    observed: Counter[tuple[str, str]] = Counter()
    conditioned = 0
    for rec in dualalign:
        if rec["window"]["start_months"] >= 0:
            continue  # after diagnosis the core criteria steer the draw
        per_category = Counter(kw["category_id"] for kw in rec["keywords"])
        pools = _drawable_by_category(f, rec, rec["scheme"])
        for kw in rec["keywords"]:
            if per_category[kw["category_id"]] != 1:
                continue
            conditioned += 1
            wid = rec["window"]["id"]
            members = pools[kw["category_id"]]
            total = sum(w for _, w in members)
            for sid, w in members:
                p = w / total
                expected[(wid, sid)] += p
                variance[(wid, sid)] += p * (1 - p)
            observed[(wid, kw["symptom_id"])] += 1
    assert conditioned > N  # most records hold several single-keyword categories
    cells = [k for k in expected if variance[k] > 0]
    assert set(observed) <= set(expected), set(observed) - set(expected)
    limit = z_limit(len(cells))
    worst = max(cells, key=lambda k: abs(observed[k] - expected[k]) / math.sqrt(variance[k]))
    z = (observed[worst] - expected[worst]) / math.sqrt(variance[worst])
    assert abs(z) <= limit, (worst, observed[worst], expected[worst], z, limit)


def test_risk_factor_marginals_match_the_cited_overall_figures(
    seeded: Seeded, dualalign: list[Record]
) -> None:
    cited = seeded.facts.overall_risk[AD]
    assert len(cited) >= 5
    drawn = Counter(rf["id"] for r in dualalign for rf in r["persona"]["risk_factors"])
    limit = z_limit(len(cited))
    for factor, p in cited.items():
        se = math.sqrt(p * (1 - p) / len(dualalign))
        assert abs(drawn[factor] / len(dualalign) - p) <= limit * se, (factor, drawn[factor], p)


@pytest.mark.parametrize("multiplier", [1.0, 5.0, 10.0])
def test_keyword_counts_follow_multiplier_times_density(
    seeded: Seeded, dualalign: list[Record], multiplier: float
) -> None:
    f = seeded.facts
    records = (
        dualalign
        if multiplier == 5.0
        else plan(
            seeded.store,
            "dualalign",
            icd=("G30.9",),
            n=N,
            params={"keyword_multiplier": multiplier},
        )
    )
    params = get_recipe("dualalign").params
    counts: dict[str, list[int]] = defaultdict(list)
    expected: dict[str, float] = defaultdict(float)
    for rec in records:
        wid = rec["window"]["id"]
        w = f.windows[wid]
        if w["start"] >= 0:
            continue
        target = multiplier * w["density"]
        low = math.floor(target)
        pools = _drawable_by_category(f, rec, rec["scheme"])
        room = sum(len(pools.get(c, [])) for c, s in w["shares"][rec["scheme"]].items() if s > 0)
        mean = 0.0
        for k, pk in ((low, 1 - (target - low)), (low + 1, target - low)):
            mean += pk * min(min(max(k, params.min_keywords), params.max_keywords), room)
        counts[wid].append(len(rec["keywords"]))
        expected[wid] += mean
    assert len(counts) >= 3
    limit = z_limit(len(counts))
    for wid, drawn in counts.items():
        n = len(drawn)
        mean, want = statistics.fmean(drawn), expected[wid] / n
        se = statistics.stdev(drawn) / math.sqrt(n)
        assert abs(mean - want) <= limit * se, (f.windows[wid]["name"], mean, want, se)
        if multiplier == 1.0:  # nothing runs short at 1x: the mean is multiplier x density
            assert want == pytest.approx(multiplier * f.windows[wid]["density"], rel=1e-9)
