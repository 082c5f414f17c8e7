"""A small but complete fixture graph for the engine: every component a recipe can use.

Alzheimer-like disease with joint and marginal strata, conditional risk factors, two category
schemes and three windows; two mental-health diseases (own and shared report sections); a
catalogue-only disease with symptoms and nothing else.
"""

from __future__ import annotations

from pathlib import Path

from kg.batch import GraphBatch
from kg.model import (
    CodedAs,
    CoreCriterion,
    Disease,
    Drug,
    Entity,
    ExampleNote,
    ExampleOf,
    GuidedBy,
    Guideline,
    HasWindow,
    IcdCode,
    InCategory,
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
    TreatedWith,
)
from kg.settings import GraphSettings
from kg.store import open_store
from kg.store.falkor_store import FalkorStore
from kg.store.writer import write_batch
from loaders.seed import curated_with_codes

SRC = "KGS:source/engine-fixture"
AD = "KGS:disease/fx-ad"
MDD = "KGS:disease/fx-mdd"
GAD = "KGS:disease/fx-gad"
FLU = "KGS:disease/fx-flu"

AGE_SHARES = {"55-64": 0.05, "65-74": 0.25, "75-84": 0.37, "85+": 0.33}
FEMALE_SHARE = {"55-64": 0.5, "65-74": 0.55, "75-84": 0.62, "85+": 0.70}
RACE_SHARES = {"white": 0.7, "black": 0.14, "hispanic": 0.12, "other": 0.04}
MARITAL_SHARES = {"married": 0.45, "widowed": 0.4, "single": 0.15}

# symptom id suffix -> (name, synonyms, PRESENTS weight, dualalign category, jmir category)
AD_SYMPTOMS: dict[str, tuple[str, list[str], float, str, str]] = {
    "forgetful": ("forgetfulness", ["forgetful", "memory lapses"], 0.9, "cognitive", "memory"),
    "repeats": ("repeats questions", ["asks the same question"], 0.8, "cognitive", "memory"),
    "word": ("word-finding difficulty", ["trouble finding words"], 0.7, "cognitive", "language"),
    "lost": ("getting lost", ["got lost driving"], 0.6, "cognitive", "visuospatial"),
    "bills": ("trouble managing bills", [], 0.5, "functional", "executive"),
    "cooking": ("difficulty cooking", ["burned food"], 0.4, "functional", "executive"),
    "meds": ("missed medications", [], 0.4, "functional", "memory"),
    "agitation": ("agitation", ["agitated"], 0.5, "neuropsychiatric", "neuropsychiatric"),
    "apathy": ("apathy", ["withdrawn"], 0.5, "neuropsychiatric", "neuropsychiatric"),
    "mood": ("low mood", ["feels down"], 0.3, "neuropsychiatric", "neuropsychiatric"),
    "sleep": ("poor sleep", ["insomnia"], 0.3, "neuropsychiatric", "sleep"),
    "worry": ("family concern", ["daughter worried"], 0.6, "concern", "neuropsychiatric"),
}
#: symptom suffix -> the earliest stage it shows (others: any stage)
AD_STAGES = {"agitation": 3, "cooking": 4}
#: symptom suffix -> (min_age, max_age) at the visit
AD_AGE_LIMITS = {"bills": (None, 84)}
#: slot-bearing surface forms added to a symptom's synonyms
AD_SLOT_FORMS = {"worry": ["{spouse} says {subject} forgets {possessive} keys"]}
#: core criterion group -> member suffixes
AD_CORE = {"memory": ["forgetful", "repeats"]}
MDD_CORE = {"mood": ["sad", "anhedonia"]}
#: window suffix -> (stage, keyword density)
AD_WINDOW_STAGES = {"far": (2, 0.4), "mid": (3, 1.0), "near": (4, 2.2)}
# window suffix -> (order, start, end, weight, dualalign frequencies)
AD_WINDOWS: dict[str, tuple[int, float, float, float, dict[str, float]]] = {
    "far": (
        0,
        -120,
        -36,
        0.2,
        {"cognitive": 0.1, "functional": 0.05, "neuropsychiatric": 0.15, "concern": 0.1},
    ),
    "mid": (
        1,
        -36,
        -12,
        0.3,
        {"cognitive": 0.4, "functional": 0.2, "neuropsychiatric": 0.2, "concern": 0.2},
    ),
    "near": (
        2,
        -12,
        0,
        0.5,
        {"cognitive": 1.0, "functional": 0.6, "neuropsychiatric": 0.3, "concern": 0.5},
    ),
}
JMIR = ["memory", "language", "visuospatial", "executive", "neuropsychiatric", "sleep"]


def add_items(b: GraphBatch, *items: Entity | Relationship) -> None:
    for item in items:
        problem = b.add_node(item) if isinstance(item, Entity) else b.add_rel(item)
        assert problem is None, problem


def _alzheimer(b: GraphBatch) -> None:
    add_items(
        b,
        Disease(
            id=AD,
            name="Fixture Alzheimer disease",
            synonyms=["fixture AD"],
            prevalence=0.1,
            stage_scale="fixture stages 1-7",
            source=SRC,
        ),
        IcdCode(
            id="ICD10CM:G30.0",
            code="G30.0",
            title="Alzheimer's disease with early onset",
            billable=True,
        ),
        IcdCode(id="ICD10CM:G30", code="G30", title="Alzheimer's disease", kind="category"),
        IcdCode(
            id="ICD10CM:G30.9",
            code="G30.9",
            title="Alzheimer's disease, unspecified",
            billable=True,
        ),
        IcdCode(
            id="ICD10CM:G30.1",
            code="G30.1",
            title="Alzheimer's disease with late onset",
            billable=True,
        ),
        IcdCode(
            id="ICD10CM:G31.1",
            code="G31.1",
            title="Senile degeneration of brain, NEC",
            billable=True,
        ),
        CodedAs(start=AD, end="ICD10CM:G30.9", primary=True),
        CodedAs(start=AD, end="ICD10CM:G30"),
        CodedAs(start=AD, end="ICD10CM:G30.0", max_age=64),
        ParentOf(start="ICD10CM:G30", end="ICD10CM:G30.0"),
        ParentOf(start="ICD10CM:G30", end="ICD10CM:G30.9"),
        ParentOf(start="ICD10CM:G30", end="ICD10CM:G30.1"),
        Drug(id="KGS:drug/fx-donepezil", name="donepezil", drug_class="cholinesterase inhibitor"),
        TreatedWith(start=AD, end="KGS:drug/fx-donepezil", source=SRC),
        ExampleNote(
            id="KGS:note/fx-ad-1",
            origin="synthetic",
            text="S: Patient reports misplacing keys. O: MMSE 27/30. A: Mild memory "
            "complaints. P: Follow up in 6 months.",
        ),
        ExampleOf(start="KGS:note/fx-ad-1", end=AD),
    )
    for cat in ["cognitive", "functional", "neuropsychiatric", "concern"]:
        cid = f"KGS:cat/fx-da-{cat}"
        add_items(
            b,
            SymptomCategory(id=cid, name=f"{cat} (dualalign)", scheme="dualalign"),
            Guideline(id=f"KGS:gl/fx-{cat}", title=cat, text=f"Label {cat} sentences."),
            GuidedBy(start=cid, end=f"KGS:gl/fx-{cat}"),
        )
    for cat in JMIR:
        add_items(b, SymptomCategory(id=f"KGS:cat/fx-jm-{cat}", name=cat, scheme="jmir-adrd"))
    for key, (name, syns, weight, da, jm) in AD_SYMPTOMS.items():
        sid = f"KGS:sym/fx-{key}"
        lo, hi = AD_AGE_LIMITS.get(key, (None, None))
        add_items(
            b,
            Symptom(
                id=sid,
                name=name,
                synonyms=syns + AD_SLOT_FORMS.get(key, []),
                min_age=lo,
                max_age=hi,
            ),
            Presents(start=AD, end=sid, weight=weight, stage=AD_STAGES.get(key), source=SRC),
            InCategory(start=sid, end=f"KGS:cat/fx-da-{da}"),
            InCategory(start=sid, end=f"KGS:cat/fx-jm-{jm}"),
        )
    for group, members in AD_CORE.items():
        for m in members:
            add_items(b, CoreCriterion(start=AD, end=f"KGS:sym/fx-{m}", group=group))
    for key, (order, start, end, weight, freqs) in AD_WINDOWS.items():
        wid = f"KGS:win/fx-{key}"
        stage, density = AD_WINDOW_STAGES[key]
        add_items(
            b,
            TrajectoryWindow(
                id=wid,
                name=f"{key} window",
                order=order,
                start_months=start,
                end_months=end,
                weight=weight,
                stage=stage,
                keyword_density=density,
                source=SRC,
            ),
            HasWindow(start=AD, end=wid),
        )
        for cat, f in freqs.items():
            add_items(b, Observes(start=wid, end=f"KGS:cat/fx-da-{cat}", frequency=f, source=SRC))
        for i, cat in enumerate(JMIR):
            add_items(
                b,
                Observes(
                    start=wid, end=f"KGS:cat/fx-jm-{cat}", frequency=0.1 + 0.05 * i, source=SRC
                ),
            )
    add_items(
        b, Observes(start="KGS:win/fx-near", end="KGS:sym/fx-lost", frequency=0.05, source=SRC)
    )
    for age, share in AGE_SHARES.items():
        aid = f"KGS:str/fx-age/{age}"
        add_items(
            b,
            Stratum(id=aid, attribute="age_group", value=age),
            PrevalenceIn(start=AD, end=aid, share=share, source=SRC),
        )
        for sex in ["female", "male"]:
            joint = share * (FEMALE_SHARE[age] if sex == "female" else 1 - FEMALE_SHARE[age])
            sid = f"KGS:str/fx-agesex/{age}-{sex}"
            add_items(
                b,
                Stratum(id=sid, attribute="age_group&sex", value=f"{age}&{sex}"),
                PrevalenceIn(start=AD, end=sid, share=round(joint, 6), source=SRC),
            )
    for attr, shares in [
        ("sex", {"female": 0.64, "male": 0.36}),
        ("race_ethnicity", RACE_SHARES),
        ("marital_status", MARITAL_SHARES),
    ]:
        for value, share in shares.items():
            sid = f"KGS:str/fx-{attr}/{value}"
            add_items(
                b,
                Stratum(id=sid, attribute=attr, value=value),
                PrevalenceIn(start=AD, end=sid, share=share, source=SRC),
            )
    for rid, name in [("htn", "hypertension"), ("dm", "diabetes"), ("dep", "depression")]:
        add_items(b, RiskFactor(id=f"KGS:rf/fx-{rid}", name=name, kind="comorbidity"))
    add_items(b, RiskFactor(id="KGS:rf/fx-smoke", name="smoking", kind="exposure"))
    add_items(
        b,
        Risk(start=AD, end="KGS:rf/fx-htn", prevalence=0.73, source=SRC),
        Risk(
            start=AD, end="KGS:rf/fx-htn", prevalence=0.85, stratum="KGS:str/fx-age/85+", source=SRC
        ),
        Risk(start=AD, end="KGS:rf/fx-dm", prevalence=0.37, source=SRC),
        Risk(start=AD, end="KGS:rf/fx-dep", prevalence=0.3, source=SRC),
        Risk(
            start=AD,
            end="KGS:rf/fx-dep",
            prevalence=0.35,
            stratum="KGS:str/fx-sex/female",
            source=SRC,
        ),
        Risk(
            start=AD,
            end="KGS:rf/fx-dep",
            prevalence=0.45,
            stratum="KGS:str/fx-agesex/75-84-female",
            source=SRC,
        ),
        Risk(
            start=AD,
            end="KGS:rf/fx-smoke",
            prevalence=0.1,
            stratum="KGS:str/fx-marital_status/single",
            source=SRC,
        ),
    )


def _mental_health(b: GraphBatch) -> None:
    add_items(
        b,
        Disease(id=MDD, name="Fixture depressive episode", prevalence=0.08, source=SRC),
        Disease(id=GAD, name="Fixture generalized anxiety", prevalence=0.03, source=SRC),
        IcdCode(
            id="ICD10CM:F32.9",
            code="F32.9",
            title="Major depressive disorder, single episode, unspecified",
            billable=True,
        ),
        IcdCode(
            id="ICD10CM:F41.1", code="F41.1", title="Generalized anxiety disorder", billable=True
        ),
        CodedAs(start=MDD, end="ICD10CM:F32.9", primary=True),
        CodedAs(start=GAD, end="ICD10CM:F41.1", primary=True),
        SymptomCategory(id="KGS:cat/fx-mh-mood", name="mood", scheme="mh"),
        SymptomCategory(id="KGS:cat/fx-mh-anx", name="anxiety", scheme="mh"),
    )
    for i, (key, cat, diseases) in enumerate(
        [
            ("sad", "mood", [MDD]),
            ("anhedonia", "mood", [MDD]),
            ("guilt", "mood", [MDD]),
            ("fatigue", "mood", [MDD, GAD]),
            ("worry", "anx", [GAD]),
            ("tension", "anx", [GAD]),
            ("restless", "anx", [GAD, MDD]),
            ("insomnia", "mood", [MDD, GAD]),
        ]
    ):
        sid = f"KGS:sym/fx-mh-{key}"
        add_items(
            b,
            Symptom(id=sid, name=key.replace("-", " ")),
            InCategory(start=sid, end=f"KGS:cat/fx-mh-{cat}"),
        )
        for d in diseases:
            add_items(b, Presents(start=d, end=sid, weight=round(0.3 + 0.08 * i, 2), source=SRC))
    for group, members in MDD_CORE.items():
        for m in members:
            add_items(b, CoreCriterion(start=MDD, end=f"KGS:sym/fx-mh-{m}", group=group))
    for order, title in enumerate(
        [
            "Identifying data",
            "History of present illness",
            "Mental status examination",
            "Assessment and plan",
        ]
    ):
        gid = f"KGS:gl/fx-mdd-{order}"
        add_items(
            b,
            Guideline(
                id=gid,
                title=title,
                text=f"Write the {title.lower()}.",
                kind="report_section",
                order=order,
            ),
            GuidedBy(start=MDD, end=gid),
        )
    for order, title in enumerate(["Reason for referral", "History", "Formulation"]):
        add_items(
            b,
            Guideline(
                id=f"KGS:gl/fx-shared-{order}",
                title=title,
                text=f"{title} here.",
                kind="report_section",
                order=order,
            ),
        )
    for sex, share in [("female", 0.6), ("male", 0.4)]:
        sid = f"KGS:str/fx-mh-sex/{sex}"
        add_items(
            b,
            Stratum(id=sid, attribute="sex", value=sex),
            PrevalenceIn(start=MDD, end=sid, share=share, source=SRC),
        )


def _catalogue_only(b: GraphBatch) -> None:
    add_items(
        b,
        Disease(id=FLU, name="Fixture influenza", xrefs=["DOID:8469"]),
        IcdCode(
            id="ICD10CM:J11.1",
            code="J11.1",
            title="Influenza with other respiratory manifestations",
            billable=True,
        ),
        CodedAs(start=FLU, end="ICD10CM:J11.1"),
        Symptom(id="KGS:sym/fx-fever", name="fever", synonyms=["pyrexia"]),
        Symptom(id="KGS:sym/fx-cough", name="cough"),
        Symptom(id="KGS:sym/fx-myalgia", name="myalgia", synonyms=["muscle aches"]),
        Presents(start=FLU, end="KGS:sym/fx-fever", weight=1.0),
        Presents(start=FLU, end="KGS:sym/fx-cough", weight=0.8, frequency_class="very_frequent"),
        Presents(start=FLU, end="KGS:sym/fx-myalgia"),
    )


def engine_graph() -> GraphBatch:
    """The whole engine fixture graph."""
    b = GraphBatch()
    add_items(b, Source(id=SRC, citation="Engine fixture figures (not real data)", year=2026))
    _alzheimer(b)
    _mental_health(b)
    _catalogue_only(b)
    return b


def curated_seed() -> GraphBatch:
    """The curated seed modules (kg/seed/*.yaml) plus the ICD-10-CM codes they use."""
    return curated_with_codes()


def open_embedded(path: Path) -> FalkorStore:
    """An embedded store at ``path``; ``close()`` saves and stops its server."""
    store = open_store(GraphSettings(uri=f"embedded:{path}"))
    assert isinstance(store, FalkorStore)
    return store


def open_engine_store(path: Path) -> FalkorStore:
    """A fresh embedded store at ``path`` holding the engine fixture graph."""
    store = open_embedded(path)
    store.apply_schema()
    write_batch(store, engine_graph())
    return store
