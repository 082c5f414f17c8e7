"""Disease Ontology disease -> symptom associations for diseases with an ICD-10-CM xref.

For every DO disease of ``do-disease-symptom.tsv`` that has an ICD10CM xref in
``do-icd10cm-xrefs.tsv``: a ``Disease`` (``DOID:...``, name, xrefs), ``CODED_AS`` to each
xref code the catalogue holds (others are skipped and counted), ``PRESENTS`` without a
weight (an unweighted association: DO gives no frequency; remarks "unweighted DO
association") to each symptom that is loaded, and ``IS_A`` between loaded diseases from
``do-hierarchy.tsv`` (which names parents by label).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kg.batch import GraphBatch, Location, Problem, RawItem, parse_items
from kg.icd import normalise_code
from kg.model import Source
from loaders.textfile import display_name, read_text

DO_COMMIT = "9fbefd66"
DO_SOURCE = Source(
    id=f"KGS:source/doid-{DO_COMMIT}",
    citation="Human Disease Ontology (DO), DOreports disease-symptom.tsv, ICD10inDO.tsv and "
    f"HumanDO.tsv at commit {DO_COMMIT}",
    url=f"https://github.com/DiseaseOntology/HumanDiseaseOntology/tree/{DO_COMMIT}/DOreports",
    license="CC0-1.0",
)
UNWEIGHTED = "unweighted DO association"


@dataclass
class DoStats:
    """What the DO load kept and what it skipped, for the seed report."""

    diseases: int = 0
    coded_as: int = 0
    presents: int = 0
    is_a: int = 0
    codes_skipped: list[str] = field(default_factory=list)
    symptoms_skipped: list[str] = field(default_factory=list)


def _rows(path: Path) -> tuple[Iterator[tuple[int, dict[str, str]]], list[Problem]]:
    text, problems = read_text(path)
    if text is None:
        return iter(()), problems
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t")

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        for row in reader:
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}

    return rows(), problems


def do_batch(
    vendor: Path, codes: Collection[str], symptoms: Collection[str]
) -> tuple[GraphBatch, DoStats, list[Problem]]:
    """The DO associations, given the catalogue's codes and the loaded symptom ids."""
    stats = DoStats()
    problems: list[Problem] = []
    files = {k: vendor / f"do-{k}.tsv" for k in ("disease-symptom", "icd10cm-xrefs", "hierarchy")}
    names = {k: display_name(p) for k, p in files.items()}

    xrefs: dict[str, list[str]] = {}
    labels: dict[str, str] = {}
    rows, found = _rows(files["icd10cm-xrefs"])
    problems += found
    for _, row in rows:
        refs = [normalise_code(x) for x in row.get("xrefs", "").split(",") if x.strip()]
        if refs:
            xrefs.setdefault(row["id"], []).extend(refs)
            labels.setdefault(row["id"], row.get("label", ""))

    items: list[RawItem] = [
        RawItem(
            "node",
            "Source",
            DO_SOURCE.model_dump(exclude_none=True),
            Location(names["disease-symptom"], 1),
        )
    ]
    src = DO_SOURCE.id
    loaded: dict[str, str] = {}
    rows, found = _rows(files["disease-symptom"])
    problems += found
    for line, row in rows:
        did = row.get("disease_id", "")
        if did not in xrefs:
            continue
        loc = Location(names["disease-symptom"], line)
        if did not in loaded:
            loaded[did] = labels[did] or row.get("disease_label", "")
            refs = sorted(set(xrefs[did]))
            items.append(
                RawItem(
                    "node",
                    "Disease",
                    {
                        "id": did,
                        "name": loaded[did],
                        "xrefs": [f"ICD10CM:{c}" for c in refs],
                        "source": src,
                    },
                    loc,
                )
            )
            for code in refs:
                if code in codes:
                    items.append(
                        RawItem(
                            "rel",
                            "CODED_AS",
                            {"start": did, "end": f"ICD10CM:{code}", "source": src},
                            loc,
                        )
                    )
                    stats.coded_as += 1
                else:
                    stats.codes_skipped.append(f"{did} ICD10CM:{code}")
        sid = row.get("symptom_id", "")
        if sid not in symptoms:
            stats.symptoms_skipped.append(f"{did} {sid}")
            continue
        items.append(
            RawItem(
                "rel",
                "PRESENTS",
                {"start": did, "end": sid, "source": src, "remarks": UNWEIGHTED},
                loc,
            )
        )
    by_label = {name: did for did, name in loaded.items()}
    rows, found = _rows(files["hierarchy"])
    problems += found
    for line, row in rows:
        child, parent = row.get("id", ""), by_label.get(row.get("subClassOf", ""))
        if child in loaded and parent is not None and parent != child:
            items.append(
                RawItem(
                    "rel",
                    "IS_A",
                    {"start": child, "end": parent, "source": src},
                    Location(names["hierarchy"], line),
                )
            )
    batch, found = parse_items(items)
    problems += found
    stats.diseases = len(batch.nodes.get("Disease", {}))
    stats.presents = len(batch.rels.get("PRESENTS", {}))
    stats.is_a = len(batch.rels.get("IS_A", {}))
    return batch, stats, problems
