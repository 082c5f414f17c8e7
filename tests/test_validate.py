"""Domain validation rules (kg.validate) on small batches, and against a live graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from kg.batch import GraphBatch, Location, Problem
from kg.model import (
    Disease,
    HasWindow,
    InCategory,
    IsA,
    Observes,
    ParentOf,
    Presents,
    PrevalenceIn,
    Risk,
    RiskFactor,
    Source,
    Stratum,
    Symptom,
    SymptomCategory,
    TrajectoryWindow,
)
from kg.store import GraphStore
from kg.store.writer import write_batch
from kg.validate import check_graph, overlay, validate, validate_store
from loaders.files import read_paths

BASELINE = Path(__file__).parent / "loaders_fixtures" / "baseline.yaml"
SRC = "KGS:source/v"
D = "KGS:disease/v"


def base() -> GraphBatch:
    b = GraphBatch()
    b.add_node(Source(id=SRC, citation="validation fixture"), Location("f.yaml", 1))
    b.add_node(Disease(id=D, name="d"), Location("f.yaml", 2))
    return b


def messages(problems: list[Problem]) -> list[str]:
    return [p.message for p in problems]


def test_baseline_is_clean() -> None:
    batch, problems = read_paths([BASELINE])
    assert problems == [] and check_graph(batch) == []


def test_references_and_end_labels() -> None:
    b = base()
    b.add_node(Symptom(id="S:1", name="s"))
    b.add_rel(Presents(start=D, end="S:404", weight=0.5, source=SRC), Location("f.yaml", 9))
    b.add_rel(IsA(start="S:1", end=D))
    got = messages(check_graph(b))
    assert any("PRESENTS ends at unknown Symptom 'S:404'" in m for m in got)
    assert any("IS_A cannot join 'S:1' to 'KGS:disease/v'" in m for m in got)


def test_cycles_in_is_a_and_parent_of() -> None:
    b = base()
    for i in range(3):
        b.add_node(Symptom(id=f"S:{i}", name=f"s{i}"))
    b.add_rel(IsA(start="S:0", end="S:1"))
    b.add_rel(IsA(start="S:1", end="S:2"))
    b.add_rel(IsA(start="S:2", end="S:0"))
    b.add_rel(ParentOf(start="ICD10CM:G30", end="ICD10CM:G30"))
    got = [m for m in messages(check_graph(b)) if "cycle" in m]
    assert got == [
        "PARENT_OF cycle: ICD10CM:G30 -> ICD10CM:G30",
        "IS_A cycle: S:0 -> S:1 -> S:2 -> S:0",
    ]


def test_prevalence_shares_sum_to_one_per_attribute() -> None:
    b = base()
    for sid, attr, share in [
        ("A:1", "age_group", 0.3),
        ("A:2", "age_group", 0.4),
        ("X:1", "sex", 0.6),
        ("X:2", "sex", 0.395),
    ]:
        b.add_node(Stratum(id=sid, attribute=attr, value=sid))
        b.add_rel(PrevalenceIn(start=D, end=sid, share=share, source=SRC))
    assert messages(check_graph(b)) == [
        "PREVALENCE shares of KGS:disease/v over age_group sum to 0.7, not 1 (±0.01) across 2 "
        "strata"
    ]


def window(wid: str, order: int, start: float, end: float) -> TrajectoryWindow:
    return TrajectoryWindow(
        id=wid, name=wid, order=order, start_months=start, end_months=end, source=SRC
    )


def test_windows_distinct_ordered_and_not_overlapping() -> None:
    b = base()
    for w in (
        window("W:1", 0, -60, -12),
        window("W:2", 1, -24, 0),
        window("W:3", 2, -120, -60),
        window("W:4", 2, 0, 12),
    ):
        b.add_node(w)
        b.add_rel(HasWindow(start=D, end=w.id))
    got = messages(check_graph(b))
    assert any("overlap: W:1 [-60, -12) and W:2 [-24, 0)" in m for m in got)
    assert any("not in time order: W:3" in m for m in got)
    assert any("share order 2" in m for m in got)


def test_window_category_frequencies_per_scheme() -> None:
    b = base()
    b.add_node(window("W:1", 0, -12, 0))
    b.add_rel(HasWindow(start=D, end="W:1"))
    for cid, scheme, freq in [("C:1", "a", 0.5), ("C:2", "a", 0.3), ("C:3", "b", 1.0)]:
        b.add_node(SymptomCategory(id=cid, name=cid, scheme=scheme))
        b.add_rel(Observes(start="W:1", end=cid, frequency=freq, source=SRC))
    b.add_node(Symptom(id="S:1", name="s"))
    b.add_rel(InCategory(start="S:1", end="C:3"))
    b.add_rel(Observes(start="W:1", end="S:1", frequency=0.9, source=SRC))  # not summed
    assert messages(check_graph(b)) == [
        "OBSERVES frequencies of window W:1 over the 'a' categories sum to 0.8, not 1 (±0.01)"
    ]


def test_numbers_need_sources_that_resolve_and_strata_that_exist() -> None:
    b = base()
    b.add_node(Disease(id="KGS:disease/p", name="p", prevalence=0.1))
    b.add_node(Symptom(id="S:1", name="s", source="KGS:source/missing"))
    b.add_node(RiskFactor(id="R:1", name="r"))
    b.add_node(TrajectoryWindow(id="W:1", name="w", order=0, start_months=-1, end_months=0))
    b.add_rel(Presents(start=D, end="S:1", weight=0.5))
    b.add_rel(Risk(start=D, end="R:1", prevalence=0.2, stratum="R:1", source=SRC))
    got = check_graph(b)
    fields = sorted((p.field, p.severity) for p in got)
    assert fields == [
        ("id", "warning"),
        ("prevalence", "error"),
        ("source", "error"),
        ("source", "error"),
        ("stratum", "error"),
        ("weight", "error"),
    ]
    text = " | ".join(messages(got))
    assert "cites 'KGS:source/missing', which is not a Source node" in text
    assert "stratum 'R:1' is not a Stratum node" in text
    assert "weight has no source" in text and "its months have no source" in text
    assert "Symptom S:1 has no IN_CATEGORY" in text


def test_overlay_replaces_by_identity() -> None:
    a, b = base(), GraphBatch()
    b.add_node(Disease(id=D, name="renamed"), Location("new.yaml", 3))
    merged = overlay(a, b)
    assert merged.nodes["Disease"][D].name == "renamed"  # type: ignore[attr-defined]
    assert merged.location_of(merged.nodes["Disease"][D]) == Location("new.yaml", 3)
    assert a.nodes["Disease"][D].name == "d"  # type: ignore[attr-defined]


def test_validate_against_the_live_graph(store: GraphStore) -> None:
    batch, _ = read_paths([BASELINE])
    write_batch(store, batch)
    assert validate_store(store) == []
    new = GraphBatch()  # a third age stratum breaks the live shares; live-only issues are not
    new.add_node(
        Stratum(id="KGS:stratum/age/85+", attribute="age_group", value="85+"),
        Location("more.yaml", 4),
    )
    new.add_rel(
        PrevalenceIn(
            start="KGS:disease/fix-ad",
            end="KGS:stratum/age/85+",
            share=0.2,
            source="KGS:source/fix-a",
        ),
        Location("more.yaml", 7),
    )
    new.add_rel(
        Presents(
            start="KGS:disease/fix-ad",
            end="KGS:symptom/memory",
            weight=0.4,
            source="KGS:source/nope",
        ),
        Location("more.yaml", 9),
    )
    got = sorted(validate(new, store))
    assert [(str(p.location), p.field) for p in got] == [
        ("more.yaml:7", "share"),
        ("more.yaml:9", "source"),
    ]
    assert "sum to 1.2" in got[0].message


@pytest.mark.parametrize("share", [0.406, 0.5])
def test_updating_a_live_share_is_checked_with_its_siblings(
    store: GraphStore, share: float
) -> None:
    batch, _ = read_paths([BASELINE])
    write_batch(store, batch)
    new = GraphBatch()
    new.add_rel(
        PrevalenceIn(
            start="KGS:disease/fix-ad",
            end="KGS:stratum/age/65-74",
            share=share,
            source="KGS:source/fix-a",
        ),
        Location("u.yaml", 2),
    )
    assert bool(validate(new, store)) is (share != 0.406)
