"""A small ICD-10-CM branch with diseases of every richness, for coverage and resolution tests.

```
4  -> E08-E13 -> E11 -> E11.6 -> E11.65      E11.9 coded: type 2 diabetes (rich)
              -> E10 -> E10.9                E10 coded: type 1 diabetes (2 weighted, sex only)
12 -> L40-L45 -> L40 -> L40.0, L40.9         L40.0 psoriasis A (primary, 5 weighted, no
              -> L41                           persona); L40.9 psoriasis B (8 weighted, age)
                                               and a bare "imported" psoriasis (0 weighted)
9  -> I10-I16 -> I10                         I10 coded: hypertension (1 weighted, nothing else)
R17 (no parent, no disease)                  and an uncoded disease with 5 weighted symptoms
```
"""

from __future__ import annotations

from kg.batch import GraphBatch
from kg.model import (
    CodedAs,
    Disease,
    HasWindow,
    IcdCode,
    ParentOf,
    Presents,
    PrevalenceIn,
    Source,
    Stratum,
    Symptom,
    TrajectoryWindow,
)
from tests.engine_graph import add_items

SRC = "KGS:source/coverage-fixture"
T2D = "KGS:disease/cov-t2d"
T1D = "KGS:disease/cov-t1d"
PSO_A = "KGS:disease/cov-pso-a"
PSO_B = "KGS:disease/cov-pso-b"
HTN = "KGS:disease/cov-htn"
LONE = "KGS:disease/cov-uncoded"
BARE = "KGS:disease/cov-imported"

HEADINGS = [
    ("4", "chapter", None, "Endocrine, nutritional and metabolic diseases"),
    ("E08-E13", "block", "4", "Diabetes mellitus"),
    ("12", "chapter", None, "Diseases of the skin and subcutaneous tissue"),
    ("L40-L45", "block", "12", "Papulosquamous disorders"),
    ("9", "chapter", None, "Diseases of the circulatory system"),
    ("I10-I16", "block", "9", "Hypertensive diseases"),
]
CODES = [  # code, parent, title
    ("E11", "E08-E13", "Type 2 diabetes mellitus"),
    ("E11.6", "E11", "Type 2 diabetes mellitus with other specified complications"),
    ("E11.65", "E11.6", "Type 2 diabetes mellitus with hyperglycemia"),
    ("E11.9", "E11", "Type 2 diabetes mellitus without complications"),
    ("E10", "E08-E13", "Type 1 diabetes mellitus"),
    ("E10.9", "E10", "Type 1 diabetes mellitus without complications"),
    ("L40", "L40-L45", "Psoriasis"),
    ("L40.0", "L40", "Psoriasis vulgaris"),
    ("L40.9", "L40", "Psoriasis, unspecified"),
    ("L41", "L40-L45", "Parapsoriasis"),
    ("I10", "I10-I16", "Essential (primary) hypertension"),
    ("R17", None, "Unspecified jaundice"),
]
#: disease -> (name, prevalence, coded as [(code, primary)], weights of its PRESENTS
#: (None: unweighted, a str: a frequency class only), stratum attributes, windows)
DISEASES: dict[
    str,
    tuple[str, float | None, list[tuple[str, bool]], list[float | str | None], list[str], int],
] = {
    T2D: (
        "Type 2 diabetes",
        0.1,
        [("E11.9", True)],
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
        ["age_group&sex"],
        1,
    ),
    T1D: ("Type 1 diabetes", 0.01, [("E10", True)], [0.9, "frequent", None], ["sex"], 0),
    PSO_A: ("Psoriasis A", None, [("L40.0", True)], [0.9, 0.8, 0.7, 0.6, 0.5], [], 0),
    PSO_B: ("Psoriasis B", None, [("L40.9", False)], [0.5] * 8, ["age_group"], 0),
    HTN: ("Hypertension", 0.3, [("I10", True)], [1.0], [], 0),
    LONE: ("Uncoded disease", None, [], [0.5] * 5, [], 0),
    BARE: ("Imported psoriasis", None, [("L40.9", False)], [None], [], 0),
}
STRATA = {
    "age_group&sex": [
        ("45-64&female", 0.3),
        ("45-64&male", 0.3),
        ("65+&female", 0.2),
        ("65+&male", 0.2),
    ],
    "age_group": [("18-44", 0.4), ("45-64", 0.6)],
    "sex": [("female", 0.5), ("male", 0.5)],
}


def coverage_graph() -> GraphBatch:
    """The whole fixture (module docstring)."""
    b = GraphBatch()
    add_items(b, Source(id=SRC, citation="Coverage fixture (not real data)", year=2026))
    for code, kind, parent, title in HEADINGS:
        add_items(b, IcdCode(id=f"ICD10CM:{code}", code=code, title=title, kind=kind))  # type: ignore[arg-type]
        if parent:
            add_items(b, ParentOf(start=f"ICD10CM:{parent}", end=f"ICD10CM:{code}"))
    for code, parent, title in CODES:
        kind = "category" if "." not in code else "code"
        add_items(b, IcdCode(id=f"ICD10CM:{code}", code=code, title=title, kind=kind))  # type: ignore[arg-type]
        if parent:
            add_items(b, ParentOf(start=f"ICD10CM:{parent}", end=f"ICD10CM:{code}"))
    for did, (name, prevalence, coded, weights, attributes, windows) in DISEASES.items():
        key = did.rsplit("/", 1)[1]
        add_items(b, Disease(id=did, name=name, prevalence=prevalence, source=SRC))
        for code, primary in coded:
            add_items(b, CodedAs(start=did, end=f"ICD10CM:{code}", primary=primary))
        for i, w in enumerate(weights):
            sid = f"KGS:sym/{key}-{i}"
            add_items(
                b,
                Symptom(id=sid, name=f"{name} symptom {i}"),
                Presents(
                    start=did,
                    end=sid,
                    weight=w if isinstance(w, float) else None,
                    frequency_class=w if isinstance(w, str) else None,  # type: ignore[arg-type]
                    source=SRC,
                ),
            )
        for attribute in attributes:
            for value, share in STRATA[attribute]:
                stratum = f"KGS:str/{key}/{attribute}/{value}"
                add_items(
                    b,
                    Stratum(id=stratum, attribute=attribute, value=value),
                    PrevalenceIn(start=did, end=stratum, share=share, source=SRC),
                )
        for w in range(windows):
            wid = f"KGS:win/{key}-{w}"
            add_items(
                b,
                TrajectoryWindow(
                    id=wid, name=f"window {w}", order=w, start_months=-12, end_months=0, source=SRC
                ),
                HasWindow(start=did, end=wid),
            )
    return b
