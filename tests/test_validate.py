"""Domain validation rules (kg.validate) on small batches, and against a live graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from kg.batch import GraphBatch, Location, Problem
from kg.errors import ValidationFailed
from kg.model import (
    Disease,
    Entity,
    HasWindow,
    InCategory,
    IsA,
    Observes,
    ParentOf,
    Presents,
    PrevalenceIn,
    Relationship,
    Risk,
    RiskFactor,
    Source,
    Stratum,
    Symptom,
    SymptomCategory,
    TrajectoryWindow,
)
from kg.store import GraphStore
from kg.store.writer import read_graph, resolve_endpoints, write_batch
from kg.validate import RULES, check_graph, overlay, validate, validate_store
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


def whole_graph_verdict(batch: GraphBatch, store: GraphStore) -> list[Problem]:
    """The second method: every rule over the whole live graph with ``batch`` laid over it."""
    merged = overlay(read_graph(store), batch)
    found = resolve_endpoints(batch, store)[1]
    found += [p for rule in RULES for p in rule(merged) if p.location.file != "graph"]
    return sorted(found)


AT = Location("plant.yaml", 3)
FAR, NEAR = "KGS:window/fix-ad/far", "KGS:window/fix-ad/near"
AD = "KGS:disease/fix-ad"
#: A planted problem per case: the items to load over the baseline, the expected message.
PLANTED: dict[str, tuple[list[Entity | Relationship], str]] = {
    "parent_of_cycle_through_live_ancestors": (
        [ParentOf(start="ICD10CM:G30.9", end="ICD10CM:6")],
        "PARENT_OF cycle: ICD10CM:6 -> ICD10CM:G30-G32 -> ICD10CM:G30 -> ICD10CM:G30.9 "
        "-> ICD10CM:6",
    ),
    "is_a_cycle_with_a_live_edge": (
        [IsA(start="KGS:symptom/memory", end="KGS:symptom/forgetful")],
        "IS_A cycle: KGS:symptom/forgetful -> KGS:symptom/memory -> KGS:symptom/forgetful",
    ),
    "new_window_overlaps_a_live_one": (
        [
            TrajectoryWindow(
                id="KGS:window/fix-ad/mid",
                name="mid",
                order=2,
                start_months=-6,
                end_months=6,
                source="KGS:source/fix-a",
            ),
            HasWindow(start=AD, end="KGS:window/fix-ad/mid"),
        ],
        f"windows of {AD} overlap: {NEAR} [-12, 0) and KGS:window/fix-ad/mid [-6, 6)",
    ),
    "changed_live_window_shares_an_order": (
        [
            TrajectoryWindow(
                id=FAR,
                name="far",
                order=1,
                start_months=-60,
                end_months=-12,
                source="KGS:source/fix-a",
            )
        ],
        f"windows {FAR} and {NEAR} of {AD} share order 1",
    ),
    "frequency_with_live_siblings": (
        [
            Observes(
                start=NEAR,
                end="KGS:category/fix/cognitive",
                frequency=0.9,
                source="KGS:source/fix-a",
            )
        ],
        f"OBSERVES frequencies of window {NEAR} over the 'fix' categories sum to 1.1, "
        "not 1 (±0.01)",
    ),
    "share_with_live_siblings": (
        [PrevalenceIn(start=AD, end="KGS:stratum/age/75+", share=0.5, source="KGS:source/fix-a")],
        f"PREVALENCE shares of {AD} over age_group sum to 0.906, not 1 (±0.01) across 2 strata",
    ),
    "live_stratum_and_missing_source": (
        [
            Risk(
                start=AD,
                end="KGS:risk/htn",
                prevalence=0.5,
                stratum="KGS:stratum/age/75+",
                source="KGS:source/missing",
            )
        ],
        f"RISK {AD} -> KGS:risk/htn cites 'KGS:source/missing', which is not a Source node",
    ),
    "symptom_without_category": (
        [Symptom(id="KGS:symptom/new", name="new"), Symptom(id="KGS:symptom/memory", name="m")],
        "Symptom KGS:symptom/new has no IN_CATEGORY; category-stratified sampling will never "
        "pick it",
    ),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_scoped_validation_gives_the_whole_graph_verdict(store: GraphStore, case: str) -> None:
    batch, _ = read_paths([BASELINE])
    write_batch(store, batch)
    items, expected = PLANTED[case]
    new = GraphBatch()
    for item in items:
        if isinstance(item, Entity):
            new.add_node(item, AT)
        else:
            new.add_rel(item, AT)
    scoped = sorted(validate(new, store))
    assert expected in messages(scoped)  # the planted problem is found ...
    assert scoped == whole_graph_verdict(new, store)  # ... with the whole graph's verdict


def test_an_unreadable_live_graph_raises(store: GraphStore) -> None:
    batch, _ = read_paths([BASELINE])
    write_batch(store, batch)
    store.write("MATCH (w:TrajectoryWindow {id: $id}) SET w.order = -1", {"id": FAR})
    new = GraphBatch()
    new.add_rel(HasWindow(start=AD, end=FAR), AT)
    with pytest.raises(ValidationFailed) as err:
        validate(new, store)
    assert [(str(p.location), p.field) for p in err.value.problems] == [("graph", "order")]
    with pytest.raises(ValidationFailed):
        validate_store(store)
