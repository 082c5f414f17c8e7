"""Prevalence over one stated population (issue 17): figures over different populations are
refused without ``--population``; with one, codes are drawn by the converted expected counts.

Fixture figures (not real data): the AD-like disease has point prevalence 10% in people 65+
(2023) and age-stratified 5% / 13% / 33% at 65-74 / 75-84 / 85+; the depressive episode
8% past-year and the anxiety 3% past-year in adults 18+ (a 2021 survey). The 2020 census of
the fixture area holds 250 M adults 18+, 51 M aged 65+, 30 M / 15 M / 6 M in the three bands.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.audit.graph import GraphView, audit_view
from engine.errors import EngineError
from engine.plan import Planner, PlanRequest
from kg.batch import GraphBatch
from kg.model import OccursIn, Population
from kg.store import GraphStore
from kg.store.falkor_store import FalkorStore
from kg.store.writer import write_batch
from tests.engine_graph import AD, GAD, MDD, SRC, engine_graph, open_embedded

REPO = Path(__file__).resolve().parents[1]
AREA = "Fixtureland"
ADULTS = "KGS:population/fx/2020/18+"
OLD = "KGS:population/fx/2020/65+"
BANDS = {"65-74": 30_000_000, "75-84": 15_000_000, "85+": 6_000_000}
AD_BANDS = {"65-74": 0.05, "75-84": 0.13, "85+": 0.33}


def _ages(text: str) -> tuple[int, int | None]:
    lo, _, hi = text.rstrip("+").partition("-")
    return int(lo), int(hi) if hi else None


def population_graph(*, with_bands: bool = True) -> GraphBatch:
    """The engine fixture graph plus populations and OCCURS_IN figures."""
    b = engine_graph()
    pops = [
        Population(
            id=ADULTS,
            name="Fixture adults 18+",
            synonyms=["FX adults"],
            area=AREA,
            min_age=18,
            year=2020,
            size=250_000_000,
            status="estimate",
            source=SRC,
            remarks="fixture",
        ),
        Population(id=OLD, name="Fixture 65+", area=AREA, min_age=65, year=2020, size=51_000_000),
        Population(
            id="KGS:population/fx/2023/65+",
            name="Fixture 65+ in 2023",
            area=AREA,
            min_age=65,
            year=2023,
        ),
        Population(
            id="KGS:population/fx/2021/18+",
            name="Fixture survey adults 18+",
            area=AREA,
            min_age=18,
            year=2021,
        ),
        Population(
            id="KGS:population/fx/2020/75+",
            name="Fixture 75+",
            area=AREA,
            min_age=75,
            year=2020,
            size=21_000_000,
        ),
    ]
    rels = [
        OccursIn(start=AD, end="KGS:population/fx/2023/65+", prevalence=0.1, measure="point"),
        OccursIn(start=MDD, end="KGS:population/fx/2021/18+", prevalence=0.08, measure="past_year"),
        OccursIn(start=GAD, end="KGS:population/fx/2021/18+", prevalence=0.03, measure="past_year"),
    ]
    for band, size in BANDS.items():
        lo, hi = _ages(band)
        if with_bands:
            pops.append(
                Population(
                    id=f"KGS:population/fx/2020/{band}",
                    name=f"Fixture {band}",
                    area=AREA,
                    min_age=lo,
                    max_age=hi,
                    year=2020,
                    size=size,
                )
            )
        survey = f"KGS:population/fx/2023/{band}"
        pops.append(
            Population(
                id=survey,
                name=f"Fixture {band} in 2023",
                area=AREA,
                min_age=lo,
                max_age=hi,
                year=2023,
            )
        )
        rels.append(OccursIn(start=AD, end=survey, prevalence=AD_BANDS[band], measure="point"))
    for item in pops:
        assert b.add_node(item) is None
    for rel in rels:
        assert b.add_rel(rel) is None
    return b


def _open(path: Path, batch: GraphBatch) -> FalkorStore:
    st = open_embedded(path)
    st.apply_schema()
    write_batch(st, batch)
    return st


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalkorStore]:
    st = _open(tmp_path_factory.mktemp("pop") / "g.db", population_graph())
    yield st
    st.close()


def _probs(planner: Planner) -> dict[str, float]:
    assert planner.code_probs is not None
    ids = [t.disease_id for t in planner.targets]
    return dict(zip(ids, planner.code_probs.tolist(), strict=True))


def _within_3se(counts: Counter[str], n: int, expected: dict[str, float]) -> None:
    assert set(counts) == set(expected)
    for key, p in expected.items():
        se = math.sqrt(p * (1 - p) / n)
        assert abs(counts[key] / n - p) <= 3 * se, (key, counts[key] / n, p)


def test_figures_over_different_populations_are_refused_without_a_population(
    store: GraphStore,
) -> None:
    with pytest.raises(EngineError) as err:
        Planner(store, PlanRequest(recipe="medsyn", by_prevalence=True, n=10, seed=1))
    text = str(err.value)
    assert "different populations" in text
    assert "Fixture Alzheimer" in text and "0.1 (point) in Fixture 65+ in 2023" in text
    assert "Fixture depressive episode: 0.08 (past-year) in Fixture survey adults 18+" in text
    assert "--population" in text


def test_one_population_draws_codes_by_converted_counts(store: GraphStore) -> None:
    n = 20_000
    planner = Planner(
        store,
        PlanRequest(recipe="medsyn", by_prevalence=True, population="fx adults", n=n, seed=3),
    )
    # by hand: AD from its age-stratified figures and the 2020 band sizes; MDD and GAD from
    # their 18+ rates and the 2020 adult count
    ad = 0.05 * 30e6 + 0.13 * 15e6 + 0.33 * 6e6  # 5.43 M
    mdd, gad = 0.08 * 250e6, 0.03 * 250e6  # 20 M, 7.5 M
    total = ad + mdd + gad
    expected = {AD: ad / total, MDD: mdd / total, GAD: gad / total}
    got = _probs(planner)
    assert got == pytest.approx(expected, rel=1e-12)
    counts = Counter(s.disease_id for s in planner.iter_specs())
    _within_3se(counts, n, expected)
    notes = "\n".join(planner.prevalence_notes)
    assert "250,000,000 people" in notes and "= 5,430,000" in notes
    assert "199,000,000 people no figure covers count 0" in notes  # AD: 18-64 not counted


def test_weighting_modes_use_the_converted_counts(store: GraphStore) -> None:
    ad, mdd, gad = 5.43e6, 20e6, 7.5e6
    log = {AD: math.log1p(ad / ad), MDD: math.log1p(mdd / ad), GAD: math.log1p(gad / ad)}
    total = sum(log.values())
    planner = Planner(
        store,
        PlanRequest(
            recipe="medsyn",
            by_prevalence=True,
            population=ADULTS,
            code_weighting="log-frequency",
            n=1,
            seed=0,
        ),
    )
    got = _probs(planner)
    assert got == pytest.approx({k: v / total for k, v in log.items()}, rel=1e-12)


def test_without_band_sizes_the_overall_figure_is_used(tmp_path: Path) -> None:
    st = _open(tmp_path / "g.db", population_graph(with_bands=False))
    try:
        planner = Planner(
            st,
            PlanRequest(recipe="medsyn", by_prevalence=True, population=ADULTS, n=1, seed=0),
        )
        notes = "\n".join(planner.prevalence_notes)
        assert "0.1 x 51,000,000 (65+) = 5,100,000" in notes
    finally:
        st.close()


def test_a_narrower_population_without_a_path_is_an_error(store: GraphStore) -> None:
    with pytest.raises(EngineError) as err:
        Planner(
            store,
            PlanRequest(recipe="medsyn", by_prevalence=True, population="Fixture 75+", n=5, seed=0),
        )
    text = str(err.value)
    assert "no conversion path from" in text
    assert "Fixture depressive episode: 0.08 (past-year) in Fixture survey adults 18+" in text
    assert "Fixture 75+ (Fixtureland, ages 75+, 2020)" in text


def test_a_narrower_population_uses_the_bands_inside_it(store: GraphStore) -> None:
    planner = Planner(
        store,
        PlanRequest(recipe="dualalign", by_prevalence=True, population="Fixture 75+", n=5, seed=0),
    )  # dualalign: only the AD-like disease has windows, so the MH figures are not needed
    assert "0.13 x 15,000,000 (75-84) + 0.33 x 6,000,000 (85+) = 3,930,000" in "\n".join(
        planner.prevalence_notes
    )


def test_unknown_population_names_the_known_ones(store: GraphStore) -> None:
    with pytest.raises(EngineError, match=r"unknown population 'Fixture adult'; closest: "):
        Planner(
            store,
            PlanRequest(
                recipe="medsyn", by_prevalence=True, population="Fixture adult", n=1, seed=0
            ),
        )


def test_population_only_with_by_prevalence() -> None:
    with pytest.raises(ValueError, match="only with by_prevalence"):
        PlanRequest(recipe="medsyn", icd=("G30.9",), population=ADULTS, n=1, seed=0)


def test_plans_stay_deterministic_per_seed(store: GraphStore) -> None:
    request = PlanRequest(recipe="medsyn", by_prevalence=True, population=ADULTS, n=3000, seed=9)
    a = [s.model_dump_json() for s in Planner(store, request).iter_specs()]
    b = [s.model_dump_json() for s in Planner(store, request).iter_specs(batch_size=77)]
    assert a == b


def test_kg_audit_notes_prevalence_figures_without_a_population() -> None:
    def noted(batch: GraphBatch) -> list[str]:
        report = audit_view(GraphView(batch))
        return sorted(f.subject for f in report.findings if f.rule == "prevalence-population")

    assert noted(engine_graph()) == sorted([AD, MDD, GAD])  # bare Disease.prevalence only
    assert noted(population_graph()) == []  # each prevalence is an OCCURS_IN figure
    counts = audit_view(GraphView(population_graph())).figures["numbers by status"]
    # sized populations: adults 18+ (estimate), 65+, 75+ and the three 2020 bands (no status)
    assert counts["(populations)"] == {"measured": 0, "estimate": 1, "no status": 5}


def test_cli_plan_with_and_without_a_population(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    _open(db, population_graph()).close()
    base = [sys.executable, "-m", "engine.cli.main", "--uri", f"embedded:{db}", "plan"]
    args = ["--recipe", "medsyn", "--by-prevalence", "-n", "50", "--seed", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}

    def run(*extra: str, out: str) -> subprocess.CompletedProcess[str]:
        cmd = [*base, *args, *extra, "-o", str(tmp_path / out)]
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)

    refused = run(out="a.jsonl")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "different populations" in refused.stderr and "Fixture 65+ in 2023" in refused.stderr
    assert not (tmp_path / "a.jsonl").exists()
    done = run("--population", "Fixture adults 18+", out="b.jsonl")
    assert done.returncode == 0, done.stderr
    assert "= 5,430,000" in done.stderr and "= 20,000,000" in done.stderr
    assert len((tmp_path / "b.jsonl").read_text().splitlines()) == 50
