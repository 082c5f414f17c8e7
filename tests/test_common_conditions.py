"""Issue 18: the 24 common conditions a user asked for plan rich, persona-aligned records.

The graph is every seed part of ``loaders.seed.PARTS`` (the curated modules, the Symptom
Ontology and the imported disease associations, which code several of the same ICD-10-CM
codes as imported diseases) with the catalogue codes all of them use, written once to an
embedded store. Each condition plans 1,000 ``medsyn`` records by its ICD-10-CM code, and
the records are judged against the common-conditions YAML files (``kg/seed/common_*.yaml``,
read here with PyYAML, not through the engine):

* the code reaches the curated disease the YAML codes it as (exactly, else at its nearest
  ancestor by trimming the code), never an imported disease coded the same;
* every record has a persona with an age inside one of the disease's age strata and a sex;
  at least 5 distinct symptoms occur across the records;
* each symptom's inclusion rate, and the share of women, match their expectation within
  3 SE, family-wise over every comparison of the 24 conditions (Bonferroni, as in
  tests/test_coherence_seeded.py);
* with ``symptom_draw=frequency`` each symptom's inclusion rate is its curated frequency
  (core-criterion members: plus the group's top-up), within the same family-wise limit.

Expected inclusion follows the documented MedSyn rule (docs/recipes.md,
engine/samplers/medsyn.py docstring), computed here from the YAML weights: ``k`` uniform on
``min_symptoms..max_symptoms`` (capped by the symptoms the disease has, then by those the
persona may have), ``k`` symptoms drawn one at a time with probability proportional to
``frequency ** (1 / T)`` without replacement, then each core-criterion group with no drawn
member takes its first member in the draw order in place of the last drawn symptom no
earlier group relies on. With at most one group the inclusion probability is computed
exactly (a recursion over the sets of the first ``k - 1`` draws); with more groups by an
independent simulation (exponential clocks, 20,000 draws per persona cell) whose own
variance is added to the SE. The persona's age and sex decide which symptoms it may have.
"""

from __future__ import annotations

import math
import random
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.plan import Planner, PlanRequest
from kg.batch import GraphBatch
from kg.model import Relationship
from kg.store import GraphStore
from kg.store.writer import write_batch
from kg.validate import check_graph, errors
from loaders.seed import CURATED, PARTS, build_part
from tests.engine_graph import open_embedded

SEED = Path(__file__).resolve().parent.parent / "kg" / "seed"
#: issue 18's 24 conditions and the ICD-10-CM code a user would pass for each
CONDITIONS = {
    "L40.9": "psoriasis",
    "I83.90": "varicose veins",
    "A01.00": "typhoid",
    "B01.9": "chickenpox",
    "L01.00": "impetigo",
    "A90": "dengue",
    "B35.9": "fungal infection",
    "J00": "common cold",
    "J18.9": "pneumonia",
    "K64.9": "haemorrhoids",
    "M19.90": "arthritis",
    "L70.0": "acne",
    "J45.909": "asthma",
    "I10": "hypertension",
    "G43.909": "migraine",
    "M47.812": "cervical spondylosis",
    "R17": "jaundice",
    "B54": "malaria",
    "N39.0": "urinary tract infection",
    "T78.40XA": "allergy",
    "K21.9": "GERD",
    "L27.0": "drug reaction",
    "K27.9": "peptic ulcer",
    "E11.9": "type 2 diabetes",
}
N = 1000
RUN_SEED = 18
TEMPERATURE, MIN_SYMPTOMS, MAX_SYMPTOMS = 1.0, 3, 6
PARAMS: dict[str, Any] = {
    "symptom_temperature": TEMPERATURE,
    "min_symptoms": MIN_SYMPTOMS,
    "max_symptoms": MAX_SYMPTOMS,
}
N_SIM = 20_000
FAMILY_LEVEL = 0.0027  # two-sided level of 3 SE
#: docs/graph-model.md: the frequency a class stands for when a row gives no weight
CLASS_VALUE = {
    "obligate": 1.0,
    "very_frequent": 0.895,
    "frequent": 0.545,
    "occasional": 0.17,
    "very_rare": 0.025,
}
OPEN_SPAN = 10  # docs/recipes.md: an open age group (``75+``) spans 10 years


# ---------------------------------------------------------------- the YAML, read directly


@dataclass
class Curated:
    """One curated disease of the common-conditions files, as its rows say."""

    disease: str
    weights: dict[str, float] = field(default_factory=dict)  # symptom -> frequency
    core: dict[str, set[str]] = field(default_factory=dict)  # group -> symptoms
    ages: dict[str, float] = field(default_factory=dict)  # age group -> share
    sexes: dict[str, float] = field(default_factory=dict)  # sex -> share


@dataclass
class Content:
    diseases: dict[str, Curated] = field(default_factory=dict)
    codes: dict[str, list[tuple[str, bool]]] = field(
        default_factory=dict
    )  # code -> (disease, primary)
    requirement: dict[str, tuple[int | None, int | None, str | None]] = field(default_factory=dict)
    age_bounds: dict[tuple[str, str], tuple[int | None, int | None]] = field(default_factory=dict)


@cache
def content() -> Content:
    files = sorted(SEED.glob("common_*.yaml"))
    if not files:
        pytest.fail("no kg/seed/common_*.yaml module is present")
    c = Content()
    strata: dict[str, tuple[str, str]] = {}
    docs = [yaml.safe_load(f.read_text(encoding="utf-8")) for f in files]
    for doc in docs:
        for s in doc["nodes"].get("Stratum", []):
            strata[s["id"]] = (s["attribute"], str(s["value"]))
        for s in doc["nodes"].get("Symptom", []):
            c.requirement[s["id"]] = (s.get("min_age"), s.get("max_age"), s.get("sex"))
        for d in doc["nodes"].get("Disease", []):
            c.diseases[d["id"]] = Curated(d["id"])
    for doc in docs:
        rels = doc["relationships"]
        for r in rels.get("CODED_AS", []):
            code = r["end"].removeprefix("ICD10CM:")
            c.codes.setdefault(code, []).append((r["start"], bool(r.get("primary"))))
            c.age_bounds[(r["start"], code)] = (r.get("min_age"), r.get("max_age"))
        for r in rels.get("PRESENTS", []):
            w = r.get("weight")
            c.diseases[r["start"]].weights[r["end"]] = (
                float(w) if w is not None else CLASS_VALUE[r["frequency_class"]]
            )
        for r in rels.get("CORE_CRITERION", []):
            c.diseases[r["start"]].core.setdefault(r["group"], set()).add(r["end"])
        for r in rels.get("PREVALENCE", []):
            attribute, value = strata[r["end"]]
            d = c.diseases[r["start"]]
            if attribute == "age_group":
                d.ages[value] = float(r["share"])
            elif attribute == "sex":
                d.sexes[value] = float(r["share"])
    return c


def coded_disease(code: str) -> tuple[str, str]:
    """(disease, code it is coded at): the code itself, else its nearest ancestor by trimming
    characters (``T78.40XA`` -> ``T78.40`` -> ``T78.4`` -> ``T78``); a primary link first."""
    c = content()
    at = code
    while at:
        hits = c.codes.get(at)
        if hits:
            return sorted(hits, key=lambda h: (not h[1], h[0]))[0][0], at
        at = at[:-1].rstrip(".")
    pytest.fail(f"no common-conditions disease is coded as {code} or an ancestor of it")


def age_range(group: str) -> tuple[int, int]:
    nums = [int(n) for n in re.findall(r"\d+", group)]
    if group.endswith("+"):
        return nums[0], nums[0] + OPEN_SPAN - 1
    return nums[0], nums[1]


def comparisons() -> int:
    """Every symptom-rate and sex-share comparison of the 24 conditions (the family)."""
    total = 0
    for code in CONDITIONS:
        d = content().diseases[coded_disease(code)[0]]
        total += len(d.weights) + 1
    return total


def z_limit() -> float:
    return statistics.NormalDist().inv_cdf(1 - FAMILY_LEVEL / (2 * comparisons()))


# ------------------------------------------------------------- the documented rule, by hand


def first_draws(weights: dict[str, float], m: int) -> dict[frozenset[str], float]:
    """P(the first ``m`` draws without replacement, each proportional to weight, are S)."""
    total = sum(weights.values())
    level: dict[frozenset[str], float] = {frozenset(): 1.0}
    for _ in range(m):
        nxt: dict[frozenset[str], float] = defaultdict(float)
        for chosen, p in level.items():
            rest = total - sum(weights[s] for s in chosen)
            for s, w in weights.items():
                if s not in chosen:
                    nxt[chosen | {s}] += p * w / rest
        level = nxt
    return level


def exact_inclusion(weights: dict[str, float], group: set[str], k: int) -> dict[str, float]:
    """Inclusion probabilities for ``k`` draws and at most one core group (empty: none).

    The final set is the first ``k - 1`` draws S plus one more symptom: the next draw when S
    already holds a group member (or there is no group), else the group's first member in
    the draw order, which is member ``g`` with probability ``w_g / w(group)``."""
    inclusion = dict.fromkeys(weights, 0.0)
    total = sum(weights.values())
    group_weight = sum(weights[g] for g in group)
    for chosen, p in first_draws(weights, k - 1).items():
        for s in chosen:
            inclusion[s] += p
        if not group or chosen & group:
            rest = total - sum(weights[s] for s in chosen)
            for s, w in weights.items():
                if s not in chosen:
                    inclusion[s] += p * w / rest
        else:
            for g in group:
                inclusion[g] += p * weights[g] / group_weight
    return inclusion


def simulated_inclusion(
    weights: dict[str, float], groups: list[set[str]], k: int, rng: random.Random
) -> dict[str, float]:
    """The same rule for several groups, simulated: a draw order by exponential clocks
    (symptom ``s`` rings at ``Exp(1) / w_s``; ordering the rings draws proportionally to
    weight without replacement), then the groups met in order."""
    names = list(weights)
    counts = dict.fromkeys(names, 0)
    for _ in range(N_SIM):
        order = sorted(names, key=lambda s: rng.expovariate(1.0) / weights[s])
        rank = {s: i for i, s in enumerate(order)}
        chosen = set(order[:k])
        needed: set[str] = set()
        for members in groups:
            held = chosen & members
            if held:
                needed.add(min(held, key=rank.__getitem__))
                continue
            best = min(members, key=rank.__getitem__)
            spare = chosen - needed
            if spare:
                chosen.discard(max(spare, key=rank.__getitem__))
            chosen.add(best)
            needed.add(best)
        for s in chosen:
            counts[s] += 1
    return {s: counts[s] / N_SIM for s in names}


def allowed(requirement: tuple[int | None, int | None, str | None], age: int, sex: str) -> bool:
    lo, hi, need = requirement
    return (lo is None or age >= lo) and (hi is None or age <= hi) and (need in (None, sex))


@dataclass
class Expectation:
    mean: dict[str, float]  # expected number of records holding each symptom
    variance: dict[str, float]  # its variance (Poisson binomial plus simulation error)


def expectation(disease: Curated, personas: list[tuple[int, str]]) -> Expectation:
    """Expected inclusion counts over the planned personas, cell by cell."""
    c = content()
    weights = {s: f ** (1 / TEMPERATURE) for s, f in disease.weights.items()}
    no_requirement = (None, None, None)
    cells = Counter(
        frozenset(s for s in weights if allowed(c.requirement.get(s, no_requirement), age, sex))
        for age, sex in personas
    )
    k_low = min(MIN_SYMPTOMS, len(weights))
    k_high = min(MAX_SYMPTOMS, len(weights))
    rng = random.Random(20261201)
    mean = dict.fromkeys(weights, 0.0)
    variance = dict.fromkeys(weights, 0.0)
    for cell, count in cells.items():
        w = {s: weights[s] for s in weights if s in cell}
        groups = [g & cell for _, g in sorted(disease.core.items()) if g & cell]
        p = dict.fromkeys(w, 0.0)
        for k in range(k_low, k_high + 1):
            k_cell = min(k, len(w))
            if len(groups) <= 1:
                inc = exact_inclusion(w, groups[0] if groups else set(), k_cell)
            else:
                inc = simulated_inclusion(w, groups, k_cell, rng)
            for s in w:
                p[s] += inc[s] / (k_high - k_low + 1)
        for s, raw in p.items():
            ps = min(max(raw, 0.0), 1.0)  # rounding can leave a certain inclusion at 1 + 1e-16
            mean[s] += count * ps
            variance[s] += count * ps * (1 - ps)
            if len(groups) > 1:
                variance[s] += count**2 * ps * (1 - ps) / (N_SIM * (k_high - k_low + 1))
    return Expectation(mean, variance)


def frequency_expectation(disease: Curated, personas: list[tuple[int, str]]) -> Expectation:
    """The frequency draw by hand (docs/recipes.md): each symptom the persona may have at its
    own frequency; a core group none of whose members was drawn adds member ``g`` with
    probability ``w_g / w(the members the persona may have)`` (T = 1; disjoint groups)."""
    c = content()
    no_requirement = (None, None, None)
    mean = dict.fromkeys(disease.weights, 0.0)
    variance = dict.fromkeys(disease.weights, 0.0)
    for (age, sex), count in Counter(personas).items():
        w = {
            s: f
            for s, f in disease.weights.items()
            if allowed(c.requirement.get(s, no_requirement), age, sex)
        }
        p = dict(w)
        for members in disease.core.values():
            group = {g: w[g] for g in members if g in w}
            none = math.prod(1 - f for f in group.values())
            for g, f in group.items():
                p[g] += none * f / sum(group.values())
        for s, ps in p.items():
            mean[s] += count * ps
            variance[s] += count * ps * (1 - ps)
    return Expectation(mean, variance)


# ------------------------------------------------------------------------------- the graph


@cache
def seeded_content() -> GraphBatch:
    """Every seed part (the curated modules and the imported ontologies and associations)
    with the catalogue codes they use and their ancestors: the shipped seed minus the
    catalogue codes nobody links."""
    batch = GraphBatch()
    for name in (p for p in PARTS if p != "catalogue"):
        part, problems = build_part(name)
        assert not errors(problems), problems[:3]
        assert not errors(batch.merge(part.batch))
    catalogue = build_part("catalogue")[0].batch
    parent: dict[str, Relationship] = {r.end: r for r in catalogue.rels["PARENT_OF"].values()}
    wanted = {r.end for r in batch.rels["CODED_AS"].values()}
    todo = list(wanted)
    while todo:
        rel = parent.get(todo.pop())
        if rel is not None and rel.start not in wanted:
            wanted.add(rel.start)
            todo.append(rel.start)
    for source in catalogue.nodes["Source"].values():
        batch.add_node(source)
    for code in sorted(wanted):
        batch.add_node(catalogue.nodes["IcdCode"][code])
        if code in parent:
            batch.add_rel(parent[code])
    return batch


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphStore]:
    batch = seeded_content()
    problems = errors(check_graph(batch))
    assert not problems, problems[:5]
    s = open_embedded(tmp_path_factory.mktemp("common") / "g.db")
    s.apply_schema()
    write_batch(s, batch)
    yield s
    s.close()


def plan(store: GraphStore, code: str, params: dict[str, Any] = PARAMS) -> list[dict[str, Any]]:
    request = PlanRequest(recipe="medsyn", icd=(code,), n=N, seed=RUN_SEED, params=params)
    return [s.model_dump(mode="json") for s in Planner(store, request).iter_specs()]


# ------------------------------------------------------------------------------- the tests


def test_every_module_file_is_registered() -> None:
    files = {p.name for p in SEED.glob("common_*.yaml")}
    assert files <= set(CURATED.values()), files - set(CURATED.values())


def test_first_draws_by_hand() -> None:
    """The recursion against hand arithmetic: weights 1, 2, 3, two draws."""
    p = first_draws({"a": 1.0, "b": 2.0, "c": 3.0}, 2)
    # P({a, b}) = 1/6 * 2/5 + 2/6 * 1/4 = 1/15 + 1/12
    assert p[frozenset("ab")] == pytest.approx(1 / 15 + 1 / 12)
    assert p[frozenset("bc")] == pytest.approx(2 / 6 * 3 / 4 + 3 / 6 * 2 / 3)
    assert sum(p.values()) == pytest.approx(1.0)


def test_exact_and_simulated_inclusion_agree() -> None:
    """The two independent ways of computing the rule agree on a one-group case."""
    weights = {"a": 0.9, "b": 0.5, "c": 0.2, "d": 0.1, "e": 0.05}
    exact = exact_inclusion(weights, {"d", "e"}, 2)
    simulated = simulated_inclusion(weights, [{"d", "e"}], 2, random.Random(3))
    for s in weights:
        se = math.sqrt(exact[s] * (1 - exact[s]) / N_SIM)
        assert abs(simulated[s] - exact[s]) <= 4 * se + 1e-12, (s, exact[s], simulated[s])
    # two symptoms per record; the group is met in every record, so P(d) + P(e) >= 1 although
    # without the rule d and e would be drawn far less often
    assert sum(exact.values()) == pytest.approx(2.0)
    assert exact["d"] + exact["e"] >= 1.0
    plain = exact_inclusion(weights, set(), 2)
    assert plain["d"] + plain["e"] < 0.5


def test_imported_diseases_compete_for_the_codes() -> None:
    """The store holds imported diseases (Disease Ontology, and others where the seed has
    them) coded as some of the 24 codes themselves, so the resolution checks below are a real
    contest: the curated disease must win."""
    batch = seeded_content()
    contested = {
        r.end.removeprefix("ICD10CM:")
        for r in batch.rels["CODED_AS"].values()
        if not r.start.startswith("KGS:") and r.end.removeprefix("ICD10CM:") in CONDITIONS
    }
    assert len(contested) >= 5, sorted(contested)


@pytest.mark.parametrize("code", list(CONDITIONS), ids=lambda c: f"{c}-{CONDITIONS[c]}")
def test_condition_plans_rich_aligned_records(store: GraphStore, code: str) -> None:
    disease_id, coded_at = coded_disease(code)
    disease = content().diseases[disease_id]
    assert len(disease.weights) >= 8, f"{disease_id}: only {len(disease.weights)} weighted symptoms"
    assert disease.ages and disease.sexes, f"{disease_id}: no age or sex shares"
    specs = plan(store, code)
    assert len(specs) == N
    assert {s["disease_id"] for s in specs} == {disease_id}, f"{code} reached another disease"

    lo, hi = content().age_bounds.get((disease_id, coded_at), (None, None))
    personas: list[tuple[int, str]] = []
    for s in specs:
        persona = s["persona"]
        age, sex, group = persona["age"], persona["attributes"].get("sex"), None
        assert isinstance(age, int), f"record {s['record_index']} has no age"
        assert sex in ("female", "male"), f"record {s['record_index']} has no sex"
        group = persona["attributes"].get("age_group")
        assert group in disease.ages, (group, sorted(disease.ages))
        g_lo, g_hi = age_range(group)
        assert max(g_lo, lo or 0) <= age <= min(g_hi, hi if hi is not None else 200), (age, group)
        personas.append((age, sex))

    seen = Counter(sym["id"] for s in specs for sym in s["symptoms"])
    assert len(seen) >= 5, f"only {len(seen)} distinct symptoms"
    assert set(seen) <= set(disease.weights), set(seen) - set(disease.weights)
    no_requirement = (None, None, None)
    for group, members in disease.core.items():
        for s, (age, sex) in zip(specs, personas, strict=True):
            if any(
                allowed(content().requirement.get(m, no_requirement), age, sex) for m in members
            ):
                held = members & {sym["id"] for sym in s["symptoms"]}
                assert held, f"record {s['record_index']} lacks core group {group!r}"

    limit = z_limit()
    exp = expectation(disease, personas)
    worst = []
    for symptom, mean in exp.mean.items():
        sd = math.sqrt(exp.variance[symptom])
        if sd > 1e-9:
            z = (seen[symptom] - mean) / sd
        else:  # never (or always) drawable for these personas: the count is certain
            z = 0.0 if seen[symptom] == round(mean) else math.inf
        worst.append((abs(z), symptom, seen[symptom], round(mean, 1)))
    women = sum(sex == "female" for _, sex in personas)
    p = disease.sexes.get("female", 0.0) / sum(disease.sexes.values())
    z_sex = abs(women - N * p) / math.sqrt(N * p * (1 - p)) if 0 < p < 1 else women - N * p
    worst.append((abs(z_sex), "sex=female", women, N * p))
    worst.sort(reverse=True)
    assert worst[0][0] <= limit, f"|z| {worst[0][0]:.2f} > {limit:.2f}: {worst[:3]}"


@pytest.mark.parametrize("code", list(CONDITIONS), ids=lambda c: f"{c}-{CONDITIONS[c]}")
def test_the_frequency_draw_tracks_the_curated_frequencies(store: GraphStore, code: str) -> None:
    """``symptom_draw=frequency``: each symptom's inclusion rate is its curated frequency
    (core-criterion members a little more), not the MedSyn rule's pick of 3-6."""
    disease = content().diseases[coded_disease(code)[0]]
    members = [m for group in disease.core.values() for m in group]
    assert len(members) == len(set(members)), "the rule by hand needs disjoint core groups"
    specs = plan(store, code, {"symptom_draw": "frequency"})
    personas = [(s["persona"]["age"], s["persona"]["attributes"]["sex"]) for s in specs]
    seen = Counter(sym["id"] for s in specs for sym in s["symptoms"])
    exp = frequency_expectation(disease, personas)
    worst = []
    for symptom, mean in exp.mean.items():
        sd = math.sqrt(exp.variance[symptom])
        if sd > 1e-9:
            z = abs(seen[symptom] - mean) / sd
        else:  # never (or always) drawable for these personas: the count is certain
            z = 0.0 if seen[symptom] == round(mean) else math.inf
        worst.append((z, symptom, seen[symptom], round(mean, 1)))
    worst.sort(reverse=True)
    assert worst[0][0] <= z_limit(), worst[:3]
