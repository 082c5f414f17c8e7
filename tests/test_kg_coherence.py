"""Load-time coherence rules: one clear problem (file, line, field) per planted mistake."""
# ruff: noqa: E501  (the YAML fixture and the expected messages are kept on one line each)

from __future__ import annotations

from pathlib import Path

import pytest

from kg.batch import parse_items
from kg.validate import check_graph, errors
from loaders.yaml_seed import read_seed

BASE = """\
kgsynth_seed: 1
module: t
nodes:
  Source:
    - {id: "KGS:source/s", citation: "A source"}
  Disease:
    - {id: "KGS:disease/d", name: d, stage_scale: "scale", source: "KGS:source/s"}
  SymptomCategory:
    - {id: "KGS:category/c", name: c, scheme: s}
  Symptom:
    - {id: "KGS:symptom/a", name: a, synonyms: ["{spouse} says {subject} forgets"]}
    - {id: "KGS:symptom/b", name: b}
  TrajectoryWindow:
    - {id: "KGS:window/w0", name: w0, order: 0, start_months: -24, end_months: -12, stage: 1, keyword_density: 0.5, source: "KGS:source/s"}
    - {id: "KGS:window/w1", name: w1, order: 1, start_months: -12, end_months: 0, stage: 3, keyword_density: 1.5, source: "KGS:source/s"}
  Stratum:
    - {id: "KGS:stratum/old", attribute: age_group, value: "65-74"}
    - {id: "KGS:stratum/f", attribute: sex, value: female}
    - {id: "KGS:stratum/m", attribute: sex, value: male}
  RiskFactor:
    - {id: "KGS:rf/r", name: r}
relationships:
  PRESENTS:
    - {start: "KGS:disease/d", end: "KGS:symptom/a", weight: 0.9, frequency_class: very_frequent, stage: 1, source: "KGS:source/s"}
    - {start: "KGS:disease/d", end: "KGS:symptom/b", weight: 0.4, stage: 2, source: "KGS:source/s"}
  IN_CATEGORY:
    - {start: "KGS:symptom/a", end: "KGS:category/c"}
    - {start: "KGS:symptom/b", end: "KGS:category/c"}
  HAS_WINDOW:
    - {start: "KGS:disease/d", end: "KGS:window/w0"}
    - {start: "KGS:disease/d", end: "KGS:window/w1"}
  OBSERVES:
    - {start: "KGS:window/w0", end: "KGS:category/c", frequency: 1.0, source: "KGS:source/s"}
    - {start: "KGS:window/w1", end: "KGS:category/c", frequency: 1.0, source: "KGS:source/s"}
  PREVALENCE:
    - {start: "KGS:disease/d", end: "KGS:stratum/old", share: 1.0, source: "KGS:source/s"}
    - {start: "KGS:disease/d", end: "KGS:stratum/f", share: 0.6, source: "KGS:source/s"}
    - {start: "KGS:disease/d", end: "KGS:stratum/m", share: 0.4, source: "KGS:source/s"}
  RISK:
    - {start: "KGS:disease/d", end: "KGS:rf/r", prevalence: 0.5, source: "KGS:source/s"}
    - {start: "KGS:disease/d", end: "KGS:rf/r", prevalence: 0.6, stratum: "KGS:stratum/f", source: "KGS:source/s"}
  CORE_CRITERION:
    - {start: "KGS:disease/d", end: "KGS:symptom/a", group: g}
"""


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "t.yaml"
    path.write_text(text, encoding="utf-8")
    items, problems = read_seed(path)
    batch, more = parse_items(items)
    return [str(p) for p in problems + more + errors(check_graph(batch))]


def test_the_base_graph_is_clean(tmp_path: Path) -> None:
    assert _problems(tmp_path, BASE) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'says {subject} forgets"',
            'says {pronoun} forgets"',
            ":11: synonyms.0: Symptom KGS:symptom/a: unknown slot {pronoun}",
        ),
        (
            "weight: 0.9, frequency_class: very_frequent",
            "weight: 0.5, frequency_class: very_frequent",
            ":24: frequency_class: PRESENTS KGS:disease/d -> KGS:symptom/a: weight 0.5 is not very_frequent",
        ),
        ('stage_scale: "scale", ', "", ":7: stage_scale: Disease KGS:disease/d has stages"),
        (
            "weight: 0.9, frequency_class: very_frequent, stage: 1",
            "weight: 0.9, frequency_class: very_frequent, stage: 2",
            ":33: frequency: window KGS:window/w0 gives category KGS:category/c a share of 1 but KGS:disease/d has no symptom of that category to draw at its stage",
        ),
        (
            "stage: 3, keyword_density: 1.5",
            "stage: 0, keyword_density: 1.5",
            ":15: stage: window KGS:window/w1 of KGS:disease/d reaches stage 0, below the stage 1",
        ),
        (
            ", keyword_density: 1.5",
            "",
            ":15: keyword_density: windows of KGS:disease/d without keyword_density: KGS:window/w1",
        ),
        (
            "name: d, stage_scale",
            "name: d, max_age: 60, stage_scale",
            ":7: max_age: Disease KGS:disease/d: no age stratum of KGS:disease/d (65-74) overlaps ages 0-60",
        ),
        (
            "name: d, stage_scale",
            "name: d, sex: male, min_age: 70, max_age: 60, stage_scale",
            ":7: Disease: min_age (70) is above max_age (60)",
        ),
        ('end: "KGS:symptom/a", group: g', 'end: "KGS:symptom/x", group: g', "CORE_CRITERION"),
        (
            "prevalence: 0.6, stratum",
            "prevalence: 0.9, stratum",
            ":40: prevalence: RISK KGS:disease/d -> KGS:rf/r: overall 0.5 cannot hold with the stratum rates given: the remaining 40.0% of the population would need -0.1",
        ),
        (
            "name: b}",
            'name: "b {Subject}"}',
            ":12: name: Symptom KGS:symptom/b: the name must be neutral text, no slots",
        ),
    ],
)
def test_each_mistake_is_one_clear_problem(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert BASE.count(old) == 1
    found = _problems(tmp_path, BASE.replace(old, new))
    assert found and any(expected in p for p in found), found


def test_gendered_words_are_warnings_naming_the_form(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(BASE.replace("{spouse} says {subject}", "wife says he"), encoding="utf-8")
    items, _ = read_seed(path)
    batch, _ = parse_items(items)
    found = [p for p in check_graph(batch) if p.severity == "warning" and "implies" in p.message]
    assert len(found) == 1 and found[0].field == "synonyms.0" and found[0].location.line == 11
    assert "(wife, he)" in found[0].message


def test_provenance_splits_measured_and_estimate(tmp_path: Path) -> None:
    from kg.queries import get_query
    from kg.store.writer import write_batch
    from tests.engine_graph import open_embedded

    text = (
        BASE.replace("stage: 1, source:", "stage: 1, status: measured, source:")
        .replace("prevalence: 0.5, source", "prevalence: 0.5, status: estimate, source")
        .replace("prevalence: 0.6, stratum", "prevalence: 0.6, status: estimate, stratum")
        .replace("keyword_density: 0.5, source", "keyword_density: 0.5, status: estimate, source")
    )
    path = tmp_path / "t.yaml"
    path.write_text(text, encoding="utf-8")
    batch, problems = parse_items(read_seed(path)[0])
    assert problems == []
    store = open_embedded(tmp_path / "g.db")
    try:
        store.apply_schema()
        write_batch(store, batch)
        rows = store.read(get_query("provenance").text, {"disease": "KGS:disease/d"})
    finally:
        store.close()
    # the disease, 2 windows, 2 PRESENTS, 2 OBSERVES, 3 PREVALENCE, 2 RISK cite the source;
    # one PRESENTS is measured, two RISK and one window are estimates
    assert [(r["figures"], r["measured"], r["estimate"], r["unstated"]) for r in rows] == [
        (12, 1, 3, 8)
    ]
