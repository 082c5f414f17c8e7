"""Validation rules of the graph's pydantic models."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kg.batch import Location, RawItem, parse_items
from kg.model import (
    LABELS,
    REL_TYPES,
    Disease,
    IcdCode,
    Observes,
    Presents,
    PrevalenceIn,
    Risk,
    Source,
    Stratum,
    TrajectoryWindow,
    icd_code_error,
)


@pytest.mark.parametrize("bad", ["", "nocolon", "has space:x", ":missingprefix", "1abc:x", "a: b"])
def test_ids_must_be_curies(bad: str) -> None:
    with pytest.raises(ValidationError, match="CURIE"):
        Disease(id=bad, name="x")


@pytest.mark.parametrize("good", ["ICD10CM:G30.9", "HP:0002354", "KGS:symptom/word-finding"])
def test_curies_accepted(good: str) -> None:
    assert Disease(id=good, name="x").id == good


@pytest.mark.parametrize("value", [-0.01, 1.01, 7.0])
def test_probabilities_in_unit_interval(value: float) -> None:
    with pytest.raises(ValidationError):
        Presents(start="a:b", end="c:d", weight=value)
    with pytest.raises(ValidationError):
        PrevalenceIn(start="a:b", end="c:d", share=value)
    with pytest.raises(ValidationError):
        Risk(start="a:b", end="c:d", prevalence=value)
    with pytest.raises(ValidationError):
        Observes(start="a:b", end="c:d", frequency=value)
    with pytest.raises(ValidationError):
        Disease(id="a:b", name="x", prevalence=value)


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_probability_bounds_inclusive(value: float) -> None:
    assert Presents(start="a:b", end="c:d", weight=value).weight == value


@pytest.mark.parametrize(
    ("code", "kind", "ok"),
    [
        ("G30.9", "code", True),
        ("F32.A", "code", True),
        ("S72.001A", "code", True),
        ("G30", "category", True),
        ("G30-G32", "block", True),
        ("6", "chapter", True),
        ("U07.1", "code", True),
        ("G3", "code", False),
        ("G30.", "code", False),
        ("g30.9", "code", False),
        ("G30.12345", "code", False),
        ("30.9", "code", False),
        ("G30-G3", "block", False),
        ("23x", "chapter", False),
    ],
)
def test_icd10cm_syntax(code: str, kind: str, ok: bool) -> None:
    assert (icd_code_error(code, kind) is None) is ok


def test_icd_code_id_must_match_code() -> None:
    with pytest.raises(ValidationError, match=r"id must be 'ICD10CM:G30\.9'"):
        IcdCode(id="ICD10CM:G30.1", code="G30.9", title="x")
    with pytest.raises(ValidationError, match="not a valid ICD-10-CM code"):
        IcdCode(id="ICD10CM:XX", code="XX", title="x")


def test_window_start_before_end() -> None:
    with pytest.raises(ValidationError, match="start_months"):
        TrajectoryWindow(id="w:1", name="w", order=0, start_months=-12, end_months=-24)
    with pytest.raises(ValidationError):
        TrajectoryWindow(id="w:1", name="w", order=-1, start_months=-24, end_months=-12)


def test_joint_stratum_needs_one_value_per_attribute() -> None:
    assert Stratum(id="s:1", attribute="age_group&sex", value="75-84&female").value
    assert Stratum(id="s:2", attribute="age_group", value="85+").value == "85+"
    with pytest.raises(ValidationError, match="one '&'-separated value"):
        Stratum(id="s:1", attribute="age_group&sex", value="75-84")
    with pytest.raises(ValidationError):
        Stratum(id="s:1", attribute="Age Group", value="x")


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        Source(id="s:1", citation="A source", colour="blue")  # type: ignore[call-arg]


def test_allow_lists_cover_the_design() -> None:
    assert {
        "Disease",
        "IcdCode",
        "Symptom",
        "SymptomCategory",
        "TrajectoryWindow",
        "Stratum",
        "RiskFactor",
        "Drug",
        "Source",
        "Guideline",
        "ExampleNote",
    } <= LABELS
    assert {
        "CODED_AS",
        "PARENT_OF",
        "PRESENTS",
        "IN_CATEGORY",
        "HAS_WINDOW",
        "OBSERVES",
        "PREVALENCE",
        "RISK",
        "TREATED_WITH",
        "GUIDED_BY",
    } <= REL_TYPES


def test_parse_items_reports_every_problem_with_location() -> None:
    items = [
        RawItem("node", "Disease", {"id": "KGS:d/1", "name": "one"}, Location("a.yaml", 3)),
        RawItem("node", "Disease", {"id": "KGS:d/1", "name": "other"}, Location("a.yaml", 7)),
        RawItem("node", "Diseaze", {"id": "KGS:d/2"}, Location("a.yaml", 9)),
        RawItem(
            "rel",
            "PRESENTS",
            {"start": "KGS:d/1", "end": "s:1", "weight": 2},
            Location("a.yaml", 12),
        ),
        RawItem("rel", "LIKES", {"start": "a:1", "end": "b:2"}, Location("a.yaml", 15)),
        RawItem("node", "Source", {"id": "s:1"}, Location("b.csv", 2)),
    ]
    batch, problems = parse_items(items)
    text = [str(p) for p in problems]
    assert batch.node_count() == 1
    assert any(t.startswith("a.yaml:7: id: Disease KGS:d/1 is defined twice") for t in text)
    assert any(t.startswith("a.yaml:9: label: unknown label 'Diseaze'") for t in text)
    assert any(t.startswith("a.yaml:12: weight:") for t in text)
    assert any(t.startswith("a.yaml:15: type: unknown relationship type 'LIKES'") for t in text)
    assert any(t.startswith("b.csv:2: citation: required field missing") for t in text)
    assert len(problems) == 5


def test_identical_duplicates_are_not_problems() -> None:
    row = {"id": "KGS:d/1", "name": "one"}
    batch, problems = parse_items(
        [
            RawItem("node", "Disease", row, Location("a", 1)),
            RawItem("node", "Disease", dict(row), Location("b", 1)),
        ]
    )
    assert problems == [] and batch.node_count() == 1
