"""A tiny hand-built graph (in the spirit of Synthea's fixture modules) for query tests."""

from __future__ import annotations

from kg.batch import GraphBatch
from kg.model import (
    CodedAs,
    Disease,
    Drug,
    GuidedBy,
    Guideline,
    HasWindow,
    IcdCode,
    InCategory,
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
    TreatedWith,
)

SRC = "KGS:source/fixture"
SRC2 = "KGS:source/fixture-2"
AD = "KGS:disease/fixture-ad"
MDD = "KGS:disease/fixture-mdd"


def tiny_graph() -> GraphBatch:
    """Two diseases, a five-level ICD branch, symptoms in two categories, windows, strata."""
    b = GraphBatch()
    nodes = [
        Source(id=SRC, citation="Fixture source one", year=2024, url="https://example.org/1"),
        Source(id=SRC2, citation="Fixture source two", year=2023),
        Disease(
            id=AD,
            name="Fixture Alzheimer disease",
            synonyms=["fixture AD"],
            prevalence=0.1,
            source=SRC,
        ),
        Disease(id=MDD, name="Fixture depression", source=SRC2, prevalence=0.08),
        IcdCode(id="ICD10CM:6", code="6", title="Diseases of the nervous system", kind="chapter"),
        IcdCode(
            id="ICD10CM:G30-G32",
            code="G30-G32",
            title="Other degenerative diseases",
            kind="block",
            chapter="6",
        ),
        IcdCode(
            id="ICD10CM:G30",
            code="G30",
            title="Alzheimer's disease",
            kind="category",
            chapter="6",
            block="G30-G32",
        ),
        IcdCode(
            id="ICD10CM:G30.9",
            code="G30.9",
            title="Alzheimer's disease, unspecified",
            chapter="6",
            block="G30-G32",
            billable=True,
        ),
        IcdCode(
            id="ICD10CM:G30.1",
            code="G30.1",
            title="Alzheimer's disease with late onset",
            chapter="6",
            block="G30-G32",
            billable=True,
        ),
        IcdCode(
            id="ICD10CM:F32.9",
            code="F32.9",
            title="Major depressive disorder, single episode, unspecified",
            billable=True,
        ),
        SymptomCategory(id="KGS:cat/cognitive", name="cognitive impairment", scheme="fixture"),
        SymptomCategory(id="KGS:cat/mood", name="neuropsychiatric symptoms", scheme="fixture"),
        Symptom(id="KGS:sym/forgetful", name="forgetfulness", synonyms=["forgetful"]),
        Symptom(id="KGS:sym/lost", name="getting lost", synonyms=["got lost driving"]),
        Symptom(id="KGS:sym/low-mood", name="low mood", synonyms=["feels down"]),
        TrajectoryWindow(
            id="KGS:win/far",
            name="5-1 years before",
            order=0,
            start_months=-60,
            end_months=-12,
            source=SRC,
        ),
        TrajectoryWindow(
            id="KGS:win/near", name="last year", order=1, start_months=-12, end_months=0, source=SRC
        ),
        Stratum(id="KGS:str/age/65-74", attribute="age_group", value="65-74"),
        Stratum(id="KGS:str/age/75+", attribute="age_group", value="75+"),
        RiskFactor(id="KGS:rf/htn", name="hypertension", kind="comorbidity"),
        Drug(id="KGS:drug/donepezil", name="donepezil", drug_class="cholinesterase inhibitor"),
        Guideline(
            id="KGS:gl/cognitive",
            title="Cognitive impairment",
            text="Label sentences that describe memory or thinking problems.",
        ),
    ]
    rels = [
        CodedAs(start=AD, end="ICD10CM:G30.9", primary=True),
        CodedAs(start=AD, end="ICD10CM:G30", primary=False),
        CodedAs(start=MDD, end="ICD10CM:F32.9", primary=True),
        ParentOf(start="ICD10CM:6", end="ICD10CM:G30-G32"),
        ParentOf(start="ICD10CM:G30-G32", end="ICD10CM:G30"),
        ParentOf(start="ICD10CM:G30", end="ICD10CM:G30.9"),
        ParentOf(start="ICD10CM:G30", end="ICD10CM:G30.1"),
        Presents(start=AD, end="KGS:sym/forgetful", weight=0.9, source=SRC),
        Presents(start=AD, end="KGS:sym/lost", weight=0.5, source=SRC),
        Presents(start=AD, end="KGS:sym/low-mood", weight=0.2, source=SRC2),
        Presents(start=MDD, end="KGS:sym/low-mood", weight=1.0, source=SRC2),
        InCategory(start="KGS:sym/forgetful", end="KGS:cat/cognitive"),
        InCategory(start="KGS:sym/lost", end="KGS:cat/cognitive"),
        InCategory(start="KGS:sym/low-mood", end="KGS:cat/mood"),
        HasWindow(start=AD, end="KGS:win/far"),
        HasWindow(start=AD, end="KGS:win/near"),
        Observes(start="KGS:win/far", end="KGS:cat/cognitive", frequency=0.3, source=SRC),
        Observes(start="KGS:win/far", end="KGS:cat/mood", frequency=0.7, source=SRC),
        Observes(start="KGS:win/near", end="KGS:cat/cognitive", frequency=0.8, source=SRC),
        Observes(start="KGS:win/near", end="KGS:cat/mood", frequency=0.2, source=SRC),
        PrevalenceIn(start=AD, end="KGS:str/age/65-74", share=0.4, source=SRC),
        PrevalenceIn(start=AD, end="KGS:str/age/75+", share=0.6, source=SRC),
        Risk(start=AD, end="KGS:rf/htn", prevalence=0.73, source=SRC),
        Risk(start=AD, end="KGS:rf/htn", prevalence=0.6, stratum="KGS:str/age/65-74", source=SRC),
        TreatedWith(start=AD, end="KGS:drug/donepezil", line="first", source=SRC2),
        GuidedBy(start="KGS:cat/cognitive", end="KGS:gl/cognitive"),
    ]
    for node in nodes:
        assert b.add_node(node) is None
    for rel in rels:
        assert b.add_rel(rel) is None
    return b
