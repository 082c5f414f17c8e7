"""``kgsynth kg coverage`` against tests/coverage_graph.py, every number counted by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kg.coverage import DEFAULT_MIN_WEIGHTED, ENV_MIN_WEIGHTED, coverage, min_weighted_symptoms
from kg.errors import KgError
from kg.settings import GraphSettings
from kg.store import GraphStore, open_store
from kg.store.writer import write_batch
from tests.cli import kgsynth, store_env
from tests.coverage_graph import BARE, HTN, LONE, PSO_A, PSO_B, T1D, T2D, coverage_graph

# (codes, resolved, exact, ancestor, descendant, weighted>=5, persona, windows, rich), by hand:
# chapter 4: E11 (descendant E11.9: T2D), E11.6 and E11.65 (nothing above or below is coded),
#   E11.9 (exact T2D), E10 (exact T1D), E10.9 (ancestor E10: T1D). T2D: 6 weighted, age&sex,
#   a window; T1D: 2 weighted, sex.
CH4 = (6, 4, 2, 1, 1, 2, 4, 2, 2)
# chapter 12: L40 (descendants L40.0 and L40.9: the primary coding wins, psoriasis A), L40.0
#   (exact A: 5 weighted, no persona), L40.9 (exact B: 8 weighted, age; the bare imported
#   disease coded there too loses: fewer weighted symptoms), L41 (nothing).
CH12 = (4, 3, 2, 0, 1, 3, 1, 0, 1)
# chapter 9: I10 (exact hypertension: 1 weighted, no persona)
CH9 = (1, 1, 1, 0, 0, 0, 0, 0, 0)
# R17: no parent, no disease
NONE = (1, 0, 0, 0, 0, 0, 0, 0, 0)
TOTAL = tuple(sum(x) for x in zip(CH4, CH12, CH9, NONE, strict=True))
FIELDS = (
    "codes",
    "resolved",
    "exact",
    "ancestor",
    "descendant",
    "weighted",
    "persona",
    "windows",
    "rich",
)


def counts(group: dict[str, int]) -> tuple[int, ...]:
    return tuple(group[f] for f in FIELDS)


@pytest.fixture
def loaded(store: GraphStore) -> GraphStore:
    write_batch(store, coverage_graph())
    return store


def test_counts_per_chapter_and_block(loaded: GraphStore) -> None:
    report = coverage(loaded).model_dump()
    assert TOTAL == (12, 8, 5, 1, 2, 5, 5, 2, 3)
    assert counts(report["total"]) == TOTAL
    chapters = {g["key"]: counts(g) for g in report["chapters"]}
    assert chapters == {"4": CH4, "12": CH12, "9": CH9, "(none)": NONE}
    assert [g["key"] for g in report["chapters"]] == ["4", "9", "12", "(none)"]
    blocks = {g["key"]: counts(g) for g in report["blocks"]}
    assert blocks == {"E08-E13": CH4, "L40-L45": CH12, "I10-I16": CH9, "(none)": NONE}
    titles = {g["key"]: g["title"] for g in report["blocks"]}
    assert titles["E08-E13"] == "Diabetes mellitus"


def test_profiles_and_their_shortfalls(loaded: GraphStore) -> None:
    rows = {p["disease_id"]: p for p in coverage(loaded).model_dump()["profiles"]}
    expected = {  # symptoms, weighted, age, sex, windows, codes resolving
        T2D: (6, 6, True, True, 1, 2),  # E11, E11.9
        T1D: (3, 2, False, True, 0, 2),  # E10, E10.9 (one weight, one frequency class)
        PSO_A: (5, 5, False, False, 0, 2),  # L40, L40.0
        PSO_B: (8, 8, True, False, 0, 1),
        HTN: (1, 1, False, False, 0, 1),
        LONE: (5, 5, False, False, 0, 0),
        BARE: (1, 0, False, False, 0, 0),
    }
    got = {
        d: (r["symptoms"], r["weighted"], r["age"], r["sex"], r["windows"], r["codes_resolving"])
        for d, r in rows.items()
    }
    assert got == expected
    assert rows[T2D]["thin"] == rows[PSO_B]["thin"] == ""
    assert rows[T1D]["thin"] == "has 2 weighted symptoms (need 5)"
    assert rows[PSO_A]["thin"] == "has no persona figures (age or sex shares)"
    assert rows[HTN]["thin"] == (
        "has 1 weighted symptom (need 5) and no persona figures (age or sex shares)"
    )


def test_threshold_changes_the_weighted_counts(loaded: GraphStore) -> None:
    # at 6: psoriasis A (5) drops out; T2D (6) and psoriasis B (8) stay
    six = coverage(loaded, 6).model_dump()["total"]
    assert (six["weighted"], six["rich"]) == (3, 3)
    # at 2: T1D (2) joins: E10, E10.9; hypertension (1) still out
    two = coverage(loaded, 2).model_dump()["total"]
    assert (two["weighted"], two["rich"]) == (7, 5)


def test_threshold_setting_flag_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_MIN_WEIGHTED, raising=False)
    monkeypatch.delenv("KGSYNTH_CONFIG", raising=False)
    assert min_weighted_symptoms() == DEFAULT_MIN_WEIGHTED == 5
    (tmp_path / "kgsynth.toml").write_text("[profiles]\nmin_weighted_symptoms = 3\n")
    assert min_weighted_symptoms() == 3
    monkeypatch.setenv(ENV_MIN_WEIGHTED, "7")
    assert min_weighted_symptoms() == 7
    assert min_weighted_symptoms(2) == 2
    monkeypatch.setenv(ENV_MIN_WEIGHTED, "many")
    with pytest.raises(KgError, match=f"{ENV_MIN_WEIGHTED}: expected a whole number"):
        min_weighted_symptoms()
    monkeypatch.delenv(ENV_MIN_WEIGHTED)
    (tmp_path / "kgsynth.toml").write_text("[profiles]\nmin_symptoms = 3\n")
    with pytest.raises(KgError, match=r"kgsynth.toml: unknown \[profiles\] keys"):
        min_weighted_symptoms()
    (tmp_path / "kgsynth.toml").write_text("[profiles]\nmin_weighted_symptoms = -1\n")
    with pytest.raises(KgError, match=r"\[profiles\].min_weighted_symptoms: expected"):
        min_weighted_symptoms()


def test_cli_json_and_table(tmp_path: Path) -> None:
    settings = GraphSettings(uri=f"embedded:{tmp_path / 'g.db'}")
    with open_store(settings) as st:
        st.apply_schema()
        write_batch(st, coverage_graph())
    env = store_env(settings, HOME=str(tmp_path))
    out = kgsynth("kg", "coverage", "--json", env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert counts(report["total"]) == TOTAL and report["min_weighted_symptoms"] == 5
    out = kgsynth("kg", "coverage", "--profiles", env=env | {ENV_MIN_WEIGHTED: "6"}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    head = out.stdout.splitlines()[0]
    assert head.startswith("3 of 12 ICD-10-CM codes resolve to a profile with >= 6 ")
    assert "8 resolve to a disease (5 exact, 1 through an ancestor, 2 through descendants)" in head
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert ["4", "Endocrine, nutritional and metabolic diseases", "6", "4", "2", "1", "1"] in [
        r[:7] for r in rows
    ]
    assert any(r[0] == "Hypertension (KGS:disease/cov-htn)" for r in rows)
    bad = kgsynth("kg", "coverage", env=env | {ENV_MIN_WEIGHTED: "x"}, cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert f"{ENV_MIN_WEIGHTED}: expected a whole number >= 0, not 'x'" in bad.stderr
