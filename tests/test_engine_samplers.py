"""Statistical tests of the samplers: what they draw follows the graph's numbers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.errors import EngineError
from engine.profile import (
    Catalogue,
    CategoryRef,
    DiseaseProfile,
    Observation,
    StratumShare,
    SymptomInfo,
    WindowInfo,
    load_profile,
)
from engine.samplers.medsyn import ExampleSampler, SymptomSampler, code_probabilities
from engine.samplers.mh import report_sections
from engine.samplers.persona import PersonaSampler, age_range
from engine.samplers.trajectory import TrajectorySampler, describe_window
from tests.engine_graph import (
    AD,
    AD_CORE,
    AD_SYMPTOMS,
    AGE_SHARES,
    FEMALE_SHARE,
    FLU,
    GAD,
    MARITAL_SHARES,
    MDD,
    RACE_SHARES,
    open_engine_store,
)
from tests.engine_stats import chi2_gof, chi2_independence, within_se

N = 100_000
P_MIN = 0.001
IDX = np.arange(N, dtype=np.int64)


@pytest.fixture(scope="module")
def profiles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DiseaseProfile]]:
    store = open_engine_store(tmp_path_factory.mktemp("samplers") / "graph.db")
    catalogue = Catalogue(store)
    yield {d: load_profile(store, catalogue.disease(d)) for d in (AD, MDD, GAD, FLU)}
    store.close()


Personas = tuple[PersonaSampler, dict[str, np.ndarray], np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def personas(profiles: dict[str, DiseaseProfile]) -> Personas:
    sampler = PersonaSampler(profiles[AD])
    batch = sampler.sample(11, IDX)
    names = {
        a: np.array(sampler.values[a], dtype=object)[batch.values[a]] for a in sampler.attributes
    }
    return sampler, names, batch.ages, batch.risks


def _counts(values: np.ndarray, keys: list[str]) -> list[int]:
    c = Counter(values.tolist())
    assert set(c) <= set(keys)
    return [c[k] for k in keys]


# ---- persona --------------------------------------------------------------------------


def test_age_group_and_joint_age_sex_follow_the_shares(personas: Personas) -> None:
    _, names, _, _ = personas
    ages = list(AGE_SHARES)
    assert chi2_gof(_counts(names["age_group"], ages), list(AGE_SHARES.values())) > P_MIN
    cells = [f"{a}&{s}" for a in ages for s in ("female", "male")]
    joint = np.char.add(np.char.add(names["age_group"].astype(str), "&"), names["sex"].astype(str))
    probs = [
        AGE_SHARES[a] * (FEMALE_SHARE[a] if s == "female" else 1 - FEMALE_SHARE[a])
        for a in ages
        for s in ("female", "male")
    ]
    assert chi2_gof(_counts(joint.astype(object), cells), [p / sum(probs) for p in probs]) > P_MIN


def test_a_joint_table_wins_over_a_marginal_of_the_same_attribute(personas: Personas) -> None:
    _, names, _, _ = personas
    female = int((names["sex"] == "female").sum())
    implied = sum(AGE_SHARES[a] * FEMALE_SHARE[a] for a in AGE_SHARES) / sum(AGE_SHARES.values())
    assert within_se(female, N, implied)
    assert not within_se(female, N, 0.64)  # the graph's plain sex marginal is not used


def test_independent_attributes(personas: Personas) -> None:
    _, names, _, _ = personas
    races, maritals = list(RACE_SHARES), list(MARITAL_SHARES)
    assert chi2_gof(_counts(names["race_ethnicity"], races), list(RACE_SHARES.values())) > P_MIN
    assert (
        chi2_gof(_counts(names["marital_status"], maritals), list(MARITAL_SHARES.values())) > P_MIN
    )
    table = [
        [int(((names["age_group"] == a) & (names["race_ethnicity"] == r)).sum()) for r in races]
        for a in AGE_SHARES
    ]
    assert chi2_independence(table) > P_MIN


def test_exact_age_is_uniform_within_the_group(personas: Personas) -> None:
    _, names, ages, _ = personas
    groups = {"55-64": (55, 64), "65-74": (65, 74), "75-84": (75, 84), "85+": (85, 94)}
    for group, (lo, hi) in groups.items():
        mine = ages[names["age_group"] == group]
        assert mine.min() >= lo and mine.max() <= hi
        counts = [int((mine == a).sum()) for a in range(lo, hi + 1)]
        assert chi2_gof(counts, [1 / len(counts)] * len(counts)) > P_MIN


# Solved by hand from the fixture: hypertension 0.73 overall and 0.85 at 85+ (share 0.33)
# leaves (0.73 - 0.33 x 0.85) / (1 - 0.33) to everyone under 85. Depression 0.30 overall,
# 0.35 for women and 0.45 for women 75-84: women are sum(age share x female share), the
# rest (men) take (0.30 - 0.45 x P(75-84 & f) - 0.35 x P(other f)) / P(m).
_F = {a: AGE_SHARES[a] * FEMALE_SHARE[a] for a in AGE_SHARES}
HTN_REST = (0.73 - AGE_SHARES["85+"] * 0.85) / (1 - AGE_SHARES["85+"])
DEP_REST = (0.30 - 0.45 * _F["75-84"] - 0.35 * (sum(_F.values()) - _F["75-84"])) / (
    1 - sum(_F.values())
)


@pytest.mark.parametrize(
    ("factor", "where", "p"),
    [
        ("KGS:rf/fx-htn", {"age_group": "85+"}, 0.85),
        ("KGS:rf/fx-htn", {"age_group": "75-84"}, HTN_REST),
        ("KGS:rf/fx-htn", {}, 0.73),
        ("KGS:rf/fx-dm", {}, 0.37),
        ("KGS:rf/fx-dep", {"age_group": "75-84", "sex": "female"}, 0.45),
        ("KGS:rf/fx-dep", {"age_group": "65-74", "sex": "female"}, 0.35),
        ("KGS:rf/fx-dep", {"sex": "male"}, DEP_REST),
        ("KGS:rf/fx-dep", {}, 0.30),
        ("KGS:rf/fx-smoke", {"marital_status": "single"}, 0.1),
        ("KGS:rf/fx-smoke", {"marital_status": "married"}, 0.0),
    ],
)
def test_risk_factors_follow_the_most_specific_prevalence(
    personas: Personas, factor: str, where: dict[str, str], p: float
) -> None:
    sampler, names, _, risks = personas
    mask = np.ones(N, dtype=bool)
    for attr, value in where.items():
        mask &= names[attr] == value
    hits = int(risks[mask, sampler.factors.index(factor)].sum())
    if p == 0:
        assert hits == 0
    else:
        assert within_se(hits, int(mask.sum()), p)


def _profile(**fields: Any) -> DiseaseProfile:
    return DiseaseProfile(disease_id="KGS:disease/synthetic", disease="Synthetic", **fields)


def test_joint_tables_sharing_an_attribute_are_chained() -> None:
    strata = [
        StratumShare(id=f"KGS:s/{a}{b}", attribute=attr, value=f"{a}&{b}", share=s)
        for attr, rows in [
            ("age_group&sex", [("y", "f", 0.3), ("y", "m", 0.2), ("o", "f", 0.4), ("o", "m", 0.1)]),
            (
                "age_group&race",
                [("y", "a", 0.4), ("y", "b", 0.1), ("o", "a", 0.1), ("o", "b", 0.4)],
            ),
        ]
        for a, b, s in rows
    ]
    sampler = PersonaSampler(_profile(strata=tuple(strata)))
    batch = sampler.sample(3, IDX[:50_000])
    age = np.array(sampler.values["age_group"])[batch.values["age_group"]]
    race = np.array(sampler.values["race"])[batch.values["race"]]
    assert within_se(int((age == "y").sum()), 50_000, 0.5)
    young = age == "y"
    assert within_se(int((race[young] == "a").sum()), int(young.sum()), 0.8)
    assert within_se(int((race[~young] == "a").sum()), int((~young).sum()), 0.2)


def test_age_range_labels() -> None:
    assert age_range("65-74", 10) == (65, 74)
    assert age_range("85+", 10) == (85, 94)
    assert age_range("≥85", 5) == (85, 89)
    assert age_range("85 and over", 10) == (85, 94)
    assert age_range("<18", 10) == (8, 17)
    assert age_range("unknown", 10) is None


# ---- trajectory -----------------------------------------------------------------------


def test_windows_follow_their_weights(profiles: dict[str, DiseaseProfile]) -> None:
    sampler = TrajectorySampler(profiles[AD], scheme="dualalign")
    batch = sampler.sample(5, IDX[:30_000])
    assert chi2_gof(np.bincount(batch.windows, minlength=3).tolist(), [0.2, 0.3, 0.5]) > P_MIN
    uniform = TrajectorySampler(profiles[AD], scheme="dualalign", window_weights="uniform")
    counts = np.bincount(uniform.sample(5, IDX[:30_000]).windows, minlength=3).tolist()
    assert chi2_gof(counts, [1 / 3] * 3) > P_MIN


def test_keywords_are_distinct_surface_forms_of_the_scheme(
    profiles: dict[str, DiseaseProfile],
) -> None:
    profile = profiles[AD]
    forms = {s.id: set(s.surface_forms) for s in profile.symptoms}
    sampler = TrajectorySampler(profile, scheme="dualalign", keyword_multiplier=5)
    for record in sampler.sample(9, IDX[:5000]).keywords:
        assert record
        assert len({k.symptom_id for k in record}) == len(record)
        assert len({k.text.lower() for k in record}) == len(record)
        for k in record:
            assert k.form in forms[k.symptom_id]
            assert "{" not in k.text
            assert k.category_id == f"KGS:cat/fx-da-{AD_SYMPTOMS[k.symptom_id.split('fx-')[1]][3]}"


def test_the_default_scheme_is_the_most_observed(profiles: dict[str, DiseaseProfile]) -> None:
    assert TrajectorySampler(profiles[AD]).scheme == "jmir-adrd"
    with pytest.raises(EngineError, match="schemes with frequencies"):
        TrajectorySampler(profiles[AD], scheme="nope")
    with pytest.raises(EngineError, match="no trajectory windows"):
        TrajectorySampler(profiles[FLU])


FREQS = [[0.4, 0.3, 0.2, 0.1], [0.1, 0.1, 0.4, 0.4], [0.25, 0.25, 0.25, 0.25]]


def _big_pool_profile(densities: tuple[float, ...] = (1.0, 1.0, 1.0)) -> DiseaseProfile:
    cats = [CategoryRef(id=f"KGS:c/{c}", name=f"cat {c}", scheme="s") for c in range(4)]
    symptoms = tuple(
        SymptomInfo(
            id=f"KGS:sym/{c}-{j:02d}",
            name=f"symptom {c}-{j}",
            synonyms=(f"syn {c}-{j}",),
            presented=True,
            weight=0.5,
            categories=(cats[c],),
        )
        for c in range(4)
        for j in range(40)
    )
    windows = tuple(
        WindowInfo(
            id=f"KGS:w/{w}",
            name=f"w{w}",
            order=w,
            start_months=-12.0 * (w + 1),
            end_months=-12.0 * w,
            weight=1.0,
            keyword_density=densities[w],
            observations=tuple(
                Observation(
                    target_id=cats[c].id,
                    kind="SymptomCategory",
                    name=cats[c].name,
                    scheme="s",
                    frequency=FREQS[w][c],
                )
                for c in range(4)
            ),
        )
        for w in range(3)
    )
    return _profile(symptoms=symptoms, windows=windows)


def test_category_proportions_follow_each_window() -> None:
    sampler = TrajectorySampler(_big_pool_profile(), keyword_multiplier=5)
    batch = sampler.sample(21, IDX[:40_000])
    names = [c[1] for c in sampler.categories]
    for w in range(3):
        cats = [
            k.category
            for rec, win in zip(batch.keywords, batch.windows, strict=True)
            if win == w
            for k in rec
        ]
        assert chi2_gof(_counts(np.array(cats, dtype=object), names), FREQS[w]) > P_MIN


@pytest.mark.parametrize("multiplier", [1.0, 5.0, 10.0])
def test_keyword_count_is_the_multiplier_times_the_window_density(multiplier: float) -> None:
    densities = (0.3, 1.07, 2.25)
    sampler = TrajectorySampler(
        _big_pool_profile(densities), keyword_multiplier=multiplier, max_keywords=30
    )
    batch = sampler.sample(4, IDX[:30_000])
    lengths = np.array([len(r) for r in batch.keywords])
    for w, density in enumerate(densities):
        mine = lengths[batch.windows == w]
        lam = multiplier * density
        lo, frac = int(np.floor(lam)), lam - np.floor(lam)
        assert set(mine.tolist()) <= {lo, lo + 1}
        # stochastic rounding: floor(lam) + Bernoulli(frac), so the count of lo + 1 is binomial
        if frac > 0:
            assert within_se(int((mine == lo + 1).sum()), len(mine), frac)
        else:
            assert set(mine.tolist()) == {lo}


def test_within_a_category_symptoms_follow_their_weights() -> None:
    cat = CategoryRef(id="KGS:c/x", name="x", scheme="s")
    symptoms = tuple(
        SymptomInfo(
            id=f"KGS:sym/{i}", name=f"s{i}", presented=True, weight=float(i), categories=(cat,)
        )
        for i in (1, 2, 3)
    )
    obs = Observation(target_id=cat.id, kind="SymptomCategory", name="x", scheme="s", frequency=0.2)
    override = Observation(target_id="KGS:sym/1", kind="Symptom", name="s1", frequency=3.0)
    windows = (
        WindowInfo(
            id="KGS:w/a",
            name="a",
            order=0,
            start_months=-24,
            end_months=-12,
            weight=1.0,
            observations=(obs,),
        ),
        WindowInfo(
            id="KGS:w/b",
            name="b",
            order=1,
            start_months=-12,
            end_months=0,
            weight=1.0,
            observations=(obs, override),
        ),
    )
    sampler = TrajectorySampler(
        _profile(symptoms=symptoms, windows=windows), keyword_multiplier=5.0, max_keywords=1
    )
    batch = sampler.sample(8, IDX[:30_000])
    for w, weights in [(0, [1, 2, 3]), (1, [3, 2, 3])]:
        picks = [
            rec[0].symptom
            for rec, win in zip(batch.keywords, batch.windows, strict=True)
            if win == w
        ]
        total = sum(weights)
        assert (
            chi2_gof(
                _counts(np.array(picks, dtype=object), ["s1", "s2", "s3"]),
                [x / total for x in weights],
            )
            > P_MIN
        )


def test_windows_in_words() -> None:
    assert describe_window(-120, -60) == "between 5 and 10 years before the diagnosis"
    assert describe_window(-12, 0) == "within the year before the diagnosis"
    assert describe_window(-18, -12) == "between 1 year and 18 months before the diagnosis"
    assert describe_window(0, 24) == "within the first 2 years after the diagnosis"
    assert describe_window(-6, 6).startswith("around the time of the diagnosis")


# ---- MedSyn symptoms, codes, examples; mental-health sections -------------------------


def test_low_temperature_picks_the_top_weights(profiles: dict[str, DiseaseProfile]) -> None:
    sampler = SymptomSampler(profiles[AD], temperature=1e-4, min_symptoms=3, max_symptoms=6)
    weights = sorted((s.weight or 0.0 for s in profiles[AD].symptoms), reverse=True)
    for record in sampler.sample(2, IDX[:2000]).chosen:
        assert 3 <= len(record) <= 6
        assert sorted((s.weight or 0.0 for s in record), reverse=True) == weights[: len(record)]


def _no_core(profile: DiseaseProfile) -> DiseaseProfile:
    return profile.model_copy(update={"core": ()})


def test_high_temperature_tends_to_uniform(profiles: dict[str, DiseaseProfile]) -> None:
    sampler = SymptomSampler(
        _no_core(profiles[AD]), temperature=1e6, min_symptoms=3, max_symptoms=3
    )
    chosen = sampler.sample(2, IDX[:20_000]).chosen
    counts = Counter(s.id for record in chosen for s in record)
    assert len(counts) == len(AD_SYMPTOMS)
    for c in counts.values():
        assert within_se(c, 20_000, 3 / len(AD_SYMPTOMS))


@pytest.mark.parametrize("temperature", [1.0, 0.2])
def test_one_draw_follows_the_softmax_over_log_frequency(
    profiles: dict[str, DiseaseProfile], temperature: float
) -> None:
    sampler = SymptomSampler(
        _no_core(profiles[AD]), temperature=temperature, min_symptoms=1, max_symptoms=1
    )
    chosen = sampler.sample(6, IDX[:50_000]).chosen
    ids = [r.id for r in sampler.refs]
    # softmax(log f / T) is f^(1/T) normalised; at T = 1 the draw follows the frequencies
    f = np.array([AD_SYMPTOMS[i.split("fx-")[1]][2] for i in ids]) ** (1 / temperature)
    probs = f / f.sum()
    counts = Counter(record[0].id for record in chosen)
    assert chi2_gof([counts[i] for i in ids], probs.tolist()) > P_MIN


def test_symptom_counts_are_uniform_and_distinct(profiles: dict[str, DiseaseProfile]) -> None:
    chosen = SymptomSampler(profiles[AD], 1.0, 2, 5).sample(1, IDX[:20_000]).chosen
    assert (
        chi2_gof(np.bincount([len(r) for r in chosen], minlength=6)[2:].tolist(), [0.25] * 4)
        > P_MIN
    )
    assert all(len({s.id for s in r}) == len(r) for r in chosen)
    flu = SymptomSampler(profiles[FLU], 1.0, 3, 6).sample(1, IDX[:100]).chosen
    assert {len(r) for r in flu} == {3}  # capped by the three symptoms the disease has
    with pytest.raises(EngineError):
        SymptomSampler(profiles[AD], temperature=0)


def test_the_frequency_draw_includes_each_symptom_at_its_frequency(
    profiles: dict[str, DiseaseProfile],
) -> None:
    n = 20_000
    sampler = SymptomSampler(profiles[AD], min_symptoms=3, max_symptoms=6, draw="frequency")
    chosen = sampler.sample(4, IDX[:n]).chosen
    counts = Counter(s.id for record in chosen for s in record)
    weight = {f"KGS:sym/fx-{k}": v[2] for k, v in AD_SYMPTOMS.items()}
    core = {f"KGS:sym/fx-{k}" for k in AD_CORE["memory"]}
    # a core member: its own rate, plus (no member drawn) x (its softmax share in the group)
    none = np.prod([1 - weight[c] for c in core])
    expected = {
        i: w + (none * w / sum(weight[c] for c in core) if i in core else 0.0)
        for i, w in weight.items()
    }
    assert expected["KGS:sym/fx-mood"] == 0.3  # by hand: not in the group
    assert abs(expected["KGS:sym/fx-forgetful"] - (0.9 + 0.1 * 0.2 * 0.9 / 1.7)) < 1e-12
    for i, p in expected.items():
        assert within_se(counts[i], n, p, k=4.0), (i, counts[i] / n, p)
    # k no longer applies: the count is a sum of independent draws, so some records have 2
    sizes = Counter(len(r) for r in chosen)
    assert sizes[2] > 0 and max(sizes) > 6
    assert all(core & {s.id for s in r} for r in chosen)


def test_code_weighting_formulas() -> None:
    f = [0.01, 0.1, 1.0]
    assert np.allclose(code_probabilities(f, "prevalence"), np.array(f) / sum(f))
    logs = np.log1p(np.array(f) / 0.01)
    assert np.allclose(code_probabilities(f, "log-frequency"), logs / logs.sum())
    assert np.allclose(code_probabilities(f, "uniform"), [1 / 3] * 3)


def test_example_notes_with_a_probability(profiles: dict[str, DiseaseProfile]) -> None:
    picks = ExampleSampler(profiles[AD], 0.3).sample(4, IDX[:20_000])
    used = sum(1 for p in picks if p)
    assert within_se(used, 20_000, 0.3)
    assert {p[0].id for p in picks if p} == {"KGS:note/fx-ad-1"}
    assert not any(ExampleSampler(profiles[FLU]).sample(4, IDX[:10]))


def test_report_sections(profiles: dict[str, DiseaseProfile]) -> None:
    own = [s.title for s in report_sections(profiles[MDD])]
    assert own == [
        "Identifying data",
        "History of present illness",
        "Mental status examination",
        "Assessment and plan",
    ]
    assert [s.title for s in report_sections(profiles[GAD])] == [
        "Reason for referral",
        "History",
        "Formulation",
    ]  # the shared, disease-free sections


def test_profiles_are_read_from_the_fixture(tmp_path: Path) -> None:
    store = open_engine_store(tmp_path / "graph.db")
    try:
        profile = load_profile(store, Catalogue(store).disease(AD))
    finally:
        store.close()
    assert profile.icd is not None and profile.icd.code == "G30.9"
    assert len(profile.symptoms) == len(AD_SYMPTOMS)
    assert [w.order for w in profile.windows] == [0, 1, 2]
    assert profile.content_hash == profile.computed_hash()
