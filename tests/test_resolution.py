"""Code resolution (exact, ancestor, descendant) and its provenance; thin profiles refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import EngineError
from engine.plan import Planner, PlanRequest
from engine.profile import Catalogue
from engine.thin import ThinPolicy
from kg.resolution import CodeResolution
from kg.settings import GraphSettings
from kg.store import GraphStore, open_store
from kg.store.writer import write_batch
from tests.cli import kgsynth, store_env
from tests.coverage_graph import HTN, PSO_A, PSO_B, T1D, T2D, coverage_graph

HTN_THIN = (
    "ICD-10-CM I10 -> Hypertension (KGS:disease/cov-htn) has 1 weighted symptom (need 5) "
    "and no persona figures (age or sex shares)"
)
T1D_THIN = "ICD-10-CM E10 -> Type 1 diabetes (KGS:disease/cov-t1d) has 2 weighted symptoms (need 5)"


@pytest.fixture
def loaded(store: GraphStore) -> GraphStore:
    write_batch(store, coverage_graph())
    return store


def test_exact_then_ancestor_then_descendant(loaded: GraphStore) -> None:
    catalogue = Catalogue(loaded)
    exact = catalogue.icd("E11.9")
    assert (exact.disease_id, exact.resolution) == (
        T2D,
        CodeResolution(requested="E11.9", matched="E11.9", how="exact", distance=0),
    )
    up = catalogue.icd("e109")  # normalised to E10.9
    assert (up.disease_id, up.resolution) == (
        T1D,
        CodeResolution(requested="E10.9", matched="E10", how="ancestor", distance=1),
    )
    down = catalogue.icd("E11")  # only E11.9 is coded
    assert down.disease_id == T2D and down.icd is not None
    assert (down.icd.code, down.icd.title) == ("E11", "Type 2 diabetes mellitus")
    assert down.resolution == CodeResolution(
        requested="E11", matched="E11.9", how="descendant", distance=1
    )
    assert down.resolution.describe() == "via E11.9 (descendant, 1 level down)"
    assert down.alternatives == ()


def test_several_descendant_diseases_choose_the_primary_coding(loaded: GraphStore) -> None:
    target = Catalogue(loaded).icd("L40")  # L40.0: psoriasis A (primary), L40.9: B (not)
    assert target.disease_id == PSO_A
    assert target.resolution is not None and target.resolution.matched == "L40.0"
    assert target.alternatives == (
        "Psoriasis B (KGS:disease/cov-pso-b) at L40.9",
        "Imported psoriasis (KGS:disease/cov-imported) at L40.9",
    )


def test_the_richer_profile_wins_an_equal_coding(loaded: GraphStore) -> None:
    # L40.9: psoriasis B (8 weighted) and the imported one (0), neither primary; by id alone
    # the imported one ("cov-imported" < "cov-pso-b") would win
    target = Catalogue(loaded).icd("L40.9")
    assert target.disease_id == PSO_B
    assert target.alternatives == ("Imported psoriasis (KGS:disease/cov-imported) at L40.9",)


def test_no_coded_code_above_or_below(loaded: GraphStore) -> None:
    # E11.6: E11.65 below it and E11, E08-E13, 4 above it are not coded (E11.9 is a sibling)
    with pytest.raises(EngineError) as err:
        Catalogue(loaded).icd("E11.6")
    assert "no disease in the graph is coded as E11.6, any of its ancestors or any code below" in (
        str(err.value)
    )


def test_specs_carry_the_resolution_path(loaded: GraphStore) -> None:
    planner = Planner(loaded, PlanRequest(recipe="medsyn", icd=("E11", "E11.9"), n=3, seed=1))
    specs = list(planner.iter_specs())
    assert [s.icd_code for s in specs] == ["E11"] * 3 + ["E11.9"] * 3
    assert {s.resolution for s in specs[:3]} == {
        CodeResolution(requested="E11", matched="E11.9", how="descendant", distance=1)
    }
    assert {s.resolution for s in specs[3:]} == {
        CodeResolution(requested="E11.9", matched="E11.9", how="exact", distance=0)
    }
    assert json.loads(specs[0].model_dump_json())["resolution"] == {
        "requested": "E11",
        "matched": "E11.9",
        "how": "descendant",
        "distance": 1,
    }
    by_name = Planner(
        loaded, PlanRequest(recipe="medsyn", disease=("Type 2 diabetes",), n=1, seed=1)
    )
    assert next(by_name.iter_specs()).resolution is None  # no code was requested


def test_thin_profiles_are_refused_with_their_counts(loaded: GraphStore) -> None:
    request = PlanRequest(recipe="medsyn", icd=("I10", "E11.9", "E10"), n=2, seed=1)
    with pytest.raises(EngineError) as err:
        Planner(loaded, request.model_copy(update={"thin": ThinPolicy()}))
    assert str(err.value) == (
        f"{HTN_THIN}; {T1D_THIN}; curate them (docs/curation.md#coverage) or pass --allow-thin"
    )
    allowed = Planner(loaded, request.model_copy(update={"thin": ThinPolicy(allow=True)}))
    assert [t.disease_id for t in allowed.targets] == [HTN, T2D, T1D]
    # T1D has sex shares: at 2 weighted symptoms it is not thin; hypertension still is
    with pytest.raises(EngineError, match=r"Hypertension .* has no persona figures"):
        Planner(loaded, request.model_copy(update={"thin": ThinPolicy(min_weighted_symptoms=1)}))
    two = request.model_copy(update={"icd": ("E10",), "thin": ThinPolicy(min_weighted_symptoms=2)})
    assert [t.disease_id for t in Planner(loaded, two).targets] == [T1D]
    # the unguided baseline samples nothing from the profile: nothing is thin for it
    unguided = PlanRequest(recipe="unguided", icd=("I10",), n=1, seed=1, thin=ThinPolicy())
    assert [t.disease_id for t in Planner(loaded, unguided).targets] == [HTN]
    with pytest.raises(EngineError, match=r"^Hypertension \(KGS:disease/cov-htn\) has 1 weighted"):
        Planner(
            loaded,
            PlanRequest(recipe="medsyn", disease=("hypertension",), n=1, seed=1, thin=ThinPolicy()),
        )
    # the policy never reaches the run identity
    assert "thin" not in request.model_copy(update={"thin": ThinPolicy()}).model_dump()


def test_prevalence_mode_skips_thin_profiles(loaded: GraphStore) -> None:
    # prevalences: T2D 0.1, T1D 0.01, hypertension 0.3; only T2D is rich
    strict = PlanRequest(recipe="medsyn", by_prevalence=True, n=10, seed=1, thin=ThinPolicy())
    planner = Planner(loaded, strict)
    assert [t.disease_id for t in planner.targets] == [T2D]
    assert any(s.startswith("Hypertension: has 1 weighted symptom") for s in planner.skipped)
    assert {s.disease_id for s in planner.iter_specs()} == {T2D}
    allowed = strict.model_copy(update={"thin": ThinPolicy(allow=True)})
    assert {t.disease_id for t in Planner(loaded, allowed).targets} == {T2D, T1D, HTN}


def test_cli_refuses_thin_and_records_the_path(tmp_path: Path) -> None:
    settings = GraphSettings(uri=f"embedded:{tmp_path / 'g.db'}")
    with open_store(settings) as st:
        st.apply_schema()
        write_batch(st, coverage_graph())
    env = store_env(settings, HOME=str(tmp_path))
    out = tmp_path / "specs.jsonl"
    plan = ["plan", "--recipe", "medsyn", "-n", "2", "-o", str(out)]
    refused = kgsynth(*plan, "--icd", "I10", env=env, cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"{HTN_THIN}; curate it (docs/curation.md#coverage) or pass --allow-thin" in (
        refused.stderr
    )
    assert not out.exists()
    ok = kgsynth(*plan, "--icd", "I10,L40", "--allow-thin", env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "L40 -> Psoriasis A (KGS:disease/cov-pso-a) via L40.0 (descendant, 1 level down)" in (
        ok.stderr
    )
    assert (
        "also found: Psoriasis B (KGS:disease/cov-pso-b) at L40.9; Imported psoriasis "
        "(KGS:disease/cov-imported) at L40.9; pass --disease ID to plan for one of those"
    ) in ok.stderr
    specs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["resolution"]["how"] for s in specs] == ["exact"] * 2 + ["descendant"] * 2
    lowered = kgsynth(*plan, "--icd", "E10", "--min-weighted-symptoms", "2", env=env, cwd=tmp_path)
    assert lowered.returncode == 0, lowered.stderr
    notes = tmp_path / "notes.jsonl"
    gen = kgsynth(
        "generate",
        "--recipe",
        "medsyn",
        "--icd",
        "E11",
        "-n",
        "2",
        "--backend",
        "template",
        "-o",
        str(notes),
        env=env,
        cwd=tmp_path,
    )
    assert gen.returncode == 0, gen.stderr
    records = [json.loads(line) for line in notes.read_text().splitlines()]
    assert len(records) == 2
    for rec in records:
        assert rec["spec"]["resolution"] == {
            "requested": "E11",
            "matched": "E11.9",
            "how": "descendant",
            "distance": 1,
        }
