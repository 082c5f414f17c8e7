"""Clinical coherence of sampled records: stages, slots, ages, restrictions, core criteria."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest

from engine.profile import (
    Catalogue,
    CategoryRef,
    CoreGroup,
    DiseaseProfile,
    RiskInfo,
    SymptomInfo,
    load_profile,
)
from engine.samplers.medsyn import SymptomSampler
from engine.samplers.persona import PersonaBatch, PersonaSampler
from engine.samplers.trajectory import TrajectoryBatch, TrajectorySampler
from tests.engine_graph import AD, AD_STAGES, AGE_SHARES, FLU, MDD, open_engine_store
from tests.engine_stats import chi2_gof, within_se

N = 40_000
IDX = np.arange(N, dtype=np.int64)
P_MIN = 0.001


@pytest.fixture(scope="module")
def profiles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DiseaseProfile]]:
    store = open_engine_store(tmp_path_factory.mktemp("coherence") / "graph.db")
    catalogue = Catalogue(store)
    out = {d: load_profile(store, catalogue.disease(d)) for d in (AD, MDD, FLU)}
    early = catalogue.icd("G30.0")
    out["G30.0"] = load_profile(store, early)
    yield out
    store.close()


Records = tuple[PersonaSampler, PersonaBatch, TrajectoryBatch]


@pytest.fixture(scope="module")
def ad_records(profiles: dict[str, DiseaseProfile]) -> Records:
    persona = PersonaSampler(profiles[AD])
    drawn = persona.sample(17, IDX)
    traj = TrajectorySampler(profiles[AD], scheme="dualalign").sample(17, IDX, drawn)
    return persona, drawn, traj


def _suffix(symptom_id: str) -> str:
    return symptom_id.split("fx-")[1]


def test_no_keyword_beyond_the_window_stage(ad_records: Records) -> None:
    _, _, traj = ad_records
    seen: dict[int, Counter[str]] = {0: Counter(), 1: Counter(), 2: Counter()}
    for win, record in zip(traj.windows.tolist(), traj.keywords, strict=True):
        seen[win].update(_suffix(k.symptom_id) for k in record)
    # fixture window stages: far 2, mid 3, near 4; agitation from stage 3, cooking from 4
    assert seen[0]["agitation"] == 0 and seen[0]["cooking"] == 0
    assert seen[1]["cooking"] == 0 and seen[1]["agitation"] > 0
    assert seen[2]["cooking"] > 0 and seen[2]["agitation"] > 0
    assert AD_STAGES == {"agitation": 3, "cooking": 4}


def test_slots_follow_the_persona_sex(ad_records: Records) -> None:
    persona, drawn, traj = ad_records
    sex = np.array(persona.values["sex"], dtype=object)[drawn.values["sex"]]
    rendered: dict[str, set[str]] = {"female": set(), "male": set()}
    for s, record in zip(sex.tolist(), traj.keywords, strict=True):
        for k in record:
            assert "{" not in k.text and "}" not in k.text
            if k.form != k.text:
                rendered[s].add(k.text)
    assert rendered["female"] == {"husband says she forgets her keys"}
    assert rendered["male"] == {"wife says he forgets his keys"}


def test_visit_age_follows_the_window(ad_records: Records) -> None:
    persona, drawn, traj = ad_records
    people = persona.personas(drawn, traj.visit_ages)
    spans = {0: (-120, -36), 1: (-36, -12), 2: (-12, 0)}
    for i in range(0, N, 37):
        p, win, m = people[i], int(traj.windows[i]), float(traj.visit_months[i])
        lo, hi = spans[win]
        assert lo <= m < hi
        x = float(drawn.exact_ages[i])
        assert p.age_at_diagnosis == math.floor(x)
        assert p.age == math.floor(x + m / 12)
        assert 0 <= p.age_at_diagnosis - p.age <= math.ceil(-lo / 12)


def test_symptom_age_requirements_are_honoured(ad_records: Records) -> None:
    _, _, traj = ad_records
    assert traj.visit_ages is not None
    ages_with_bills = [
        age
        for age, record in zip(traj.visit_ages.tolist(), traj.keywords, strict=True)
        for k in record
        if _suffix(k.symptom_id) == "bills"
    ]
    assert ages_with_bills and max(ages_with_bills) <= 84


def test_a_code_restriction_conditions_the_persona(profiles: dict[str, DiseaseProfile]) -> None:
    early = PersonaSampler(profiles["G30.0"]).sample(5, IDX)
    ages = early.ages
    assert ages.min() >= 55 and ages.max() <= 64  # the only stratum under 65 is 55-64
    counts = np.bincount(ages - 55, minlength=10).tolist()
    assert chi2_gof(counts, [0.1] * 10) > P_MIN
    unrestricted = PersonaSampler(profiles[AD]).sample(5, IDX).ages
    assert within_se(int((unrestricted < 65).sum()), N, AGE_SHARES["55-64"])


def test_core_criteria_hold_in_every_record(profiles: dict[str, DiseaseProfile]) -> None:
    for disease, members in [
        (MDD, {"KGS:sym/fx-mh-sad", "KGS:sym/fx-mh-anhedonia"}),
        (AD, {"KGS:sym/fx-forgetful", "KGS:sym/fx-repeats"}),
    ]:
        sampler = SymptomSampler(profiles[disease], 1.0, 1, 4)
        for record in sampler.sample(3, IDX[:20_000]).chosen:
            assert members & {s.id for s in record}
            assert len({s.id for s in record}) == len(record)


def test_the_core_draw_follows_its_documented_law() -> None:
    # a, b, c with frequencies 0.5, 0.3, 0.2; two symptoms; core group {c}. c is always drawn;
    # the other is the first-drawn symptom when c was not among the two, else the other of
    # them: P(a) = p_a + p_c p_a / (1 - p_c) with p = f / sum f (successive sampling).
    cat = CategoryRef(id="KGS:c/x", name="x", scheme="s")
    symptoms = tuple(
        SymptomInfo(id=f"KGS:s/{n}", name=n, presented=True, weight=f, categories=(cat,))
        for n, f in [("a", 0.5), ("b", 0.3), ("c", 0.2)]
    )
    profile = DiseaseProfile(
        disease_id="KGS:d/x",
        disease="x",
        symptoms=symptoms,
        core=(CoreGroup(name="g", symptom_ids=("KGS:s/c",)),),
    )
    chosen = SymptomSampler(profile, 1.0, 2, 2).sample(9, IDX).chosen
    others = Counter(next(s.name for s in r if s.name != "c") for r in chosen)
    assert all({"c"} < {s.name for s in r} for r in chosen)
    p_a = 0.5 + 0.2 * 0.5 / 0.8
    assert within_se(others["a"], N, p_a)


def test_unweighted_associations_get_the_documented_default(
    profiles: dict[str, DiseaseProfile],
) -> None:
    refs = {r.name: r for r in SymptomSampler(profiles[FLU]).refs}
    assert (refs["myalgia"].weight, refs["myalgia"].unweighted) == (0.3, True)
    assert (refs["cough"].weight, refs["cough"].unweighted) == (0.8, False)


def test_the_persona_cache_is_exact_beyond_63_risk_factors() -> None:
    risks = tuple(
        RiskInfo(id=f"KGS:rf/{i:03d}", name=f"factor {i}", kind="risk_factor", prevalence=0.5)
        for i in range(100)
    )
    sampler = PersonaSampler(DiseaseProfile(disease_id="KGS:d/x", disease="x", risks=risks))
    batch = sampler.sample(1, IDX[:3000])
    # factors {0, 64} and {0} must not share a persona: force both patterns into the batch
    flags = batch.risks.copy()
    flags[0, :] = False
    flags[0, [0, 64]] = True
    flags[1, :] = False
    flags[1, 0] = True
    batch = type(batch)(batch.values, batch.exact_ages, batch.sex, flags)
    people = sampler.personas(batch)
    for i, person in enumerate(people):
        expected = {f"KGS:rf/{j:03d}" for j in np.flatnonzero(flags[i]).tolist()}
        assert {r.id for r in person.risk_factors} == expected
    assert people[0] is not people[1]
