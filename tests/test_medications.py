"""Current medications (issue 17): drawn from the graph's TREATED_WITH shares, only for
records whose window is at or after the diagnosis, listed in the prompt.

The engine fixture graph's AD-like disease has three pre-diagnosis windows; this module adds
a window after the diagnosis and drug shares: two cholinesterase inhibitors (alternatives,
0.3 and 0.1) and memantine (0.2, its own class). Drugs without a share (the fixture's
donepezil, lecanemab) are never drawn. Expected shares are computed by hand from these.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import EngineError
from engine.plan import Planner, PlanRequest
from engine.recipes import render_messages
from engine.spec import GenerationSpec
from kg.batch import GraphBatch
from kg.model import Drug, Entity, HasWindow, Observes, Relationship, TrajectoryWindow, TreatedWith
from kg.store.falkor_store import FalkorStore
from kg.store.writer import write_batch
from tests.engine_graph import AD, SRC, engine_graph, open_embedded

AFTER = "KGS:win/fx-after"
SHARES = {
    "KGS:drug/fx-galantamine": 0.3,
    "KGS:drug/fx-rivastigmine": 0.1,
    "KGS:drug/fx-memantine": 0.2,
}
N = 20_000


def medication_graph(shares: dict[str, float] = SHARES) -> GraphBatch:
    b = engine_graph()
    items = [
        TrajectoryWindow(
            id=AFTER, name="first year after", order=3, start_months=0, end_months=12, stage=4
        ),
        HasWindow(start=AD, end=AFTER),
        Observes(start=AFTER, end="KGS:cat/fx-da-cognitive", frequency=1.0, source=SRC),
        Drug(
            id="KGS:drug/fx-galantamine", name="galantamine", drug_class="cholinesterase inhibitor"
        ),
        Drug(
            id="KGS:drug/fx-rivastigmine",
            name="rivastigmine",
            drug_class="cholinesterase inhibitor",
        ),
        Drug(id="KGS:drug/fx-memantine", name="memantine", drug_class="NMDA receptor antagonist"),
        Drug(id="KGS:drug/fx-lecanemab", name="lecanemab", drug_class="anti-amyloid antibody"),
        TreatedWith(start=AD, end="KGS:drug/fx-lecanemab", line="adjunct"),
    ]
    items += [
        TreatedWith(start=AD, end=drug, share=share, status="estimate", source=SRC, remarks="fx")
        for drug, share in shares.items()
    ]
    for item in items:
        if isinstance(item, Entity):
            assert b.add_node(item) is None
        else:
            assert isinstance(item, Relationship) and b.add_rel(item) is None
    return b


def _open(path: Path, batch: GraphBatch) -> FalkorStore:
    st = open_embedded(path)
    st.apply_schema()
    write_batch(st, batch)
    return st


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[GenerationSpec]]:
    st = _open(tmp_path_factory.mktemp("meds") / "g.db", medication_graph())
    try:
        request = PlanRequest(
            recipe="dualalign",
            icd=("G30.9",),
            n=N,
            seed=5,
            params={"window_weights": "uniform", "scheme": "dualalign"},
        )
        yield list(Planner(st, request).iter_specs())
    finally:
        st.close()


def _close(count: int, n: int, p: float) -> None:
    se = math.sqrt(p * (1 - p) / n)
    assert abs(count / n - p) <= 3 * se, (count / n, p, se)


def test_medications_only_at_or_after_the_diagnosis(specs: list[GenerationSpec]) -> None:
    before = [s for s in specs if s.window is not None and s.window.end_months <= 0]
    after = [s for s in specs if s.window is not None and s.window.id == AFTER]
    assert len(before) + len(after) == N and after
    assert all(s.persona is not None and not s.persona.medications for s in before)
    assert all(s.window is not None and s.window.diagnosed for s in after)


def test_medication_shares_follow_the_graph(specs: list[GenerationSpec]) -> None:
    after = [s for s in specs if s.window is not None and s.window.id == AFTER]
    n = len(after)
    taken = Counter(d.id for s in after if s.persona for d in s.persona.medications)
    for drug, share in SHARES.items():
        _close(taken[drug], n, share)
    # no share (the fixture's donepezil, lecanemab): never drawn
    assert not {"KGS:drug/fx-lecanemab", "KGS:drug/fx-donepezil"} & set(taken)
    # cholinesterase inhibitors are alternatives: never two at once
    both = sum(
        1
        for s in after
        if s.persona
        and {"KGS:drug/fx-galantamine", "KGS:drug/fx-rivastigmine"}
        <= {d.id for d in s.persona.medications}
    )
    assert both == 0
    # classes are independent: P(no medication) = (1 - 0.3 - 0.1) * (1 - 0.2) = 0.48
    none = sum(1 for s in after if s.persona and not s.persona.medications)
    _close(none, n, 0.6 * 0.8)


def test_the_prompt_lists_the_medications(specs: list[GenerationSpec]) -> None:
    with_meds = next(s for s in specs if s.persona and len(s.persona.medications) == 2)
    user = render_messages(with_meds)[1]["content"]
    assert with_meds.persona is not None
    names = [f"{d.name} ({d.drug_class})" for d in with_meds.persona.medications]
    assert f"- Current medications: {', '.join(names)}" in user
    without = next(s for s in specs if s.persona and not s.persona.medications)
    assert "Current medications" not in render_messages(without)[1]["content"]


def test_shares_of_one_class_above_one_are_an_error(tmp_path: Path) -> None:
    shares = {"KGS:drug/fx-galantamine": 0.7, "KGS:drug/fx-rivastigmine": 0.5}
    st = _open(tmp_path / "g.db", medication_graph(shares))
    try:
        with pytest.raises(EngineError, match=r"cholinesterase inhibitor drugs sum to 1\.2"):
            Planner(st, PlanRequest(recipe="dualalign", icd=("G30.9",), n=1, seed=0))
    finally:
        st.close()
