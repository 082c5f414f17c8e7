"""``kg seed``: the shipped content, part by part, validated together and then written.

Parts, in load order: ``catalogue`` (ICD-10-CM from simple-icd-10-cm), ``symp`` (the
Symptom Ontology), ``do`` (Disease Ontology associations; needs catalogue and symp),
``alzheimers`` and ``mental_health`` (curated YAML in kg/seed/). A later part's node
replaces an earlier one with the same id, exactly as writing them in order would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path

import kg
from kg.batch import GraphBatch, Location, Problem, parse_items
from kg.errors import KgError, ValidationFailed
from kg.store.base import GraphStore, WriteStats
from kg.store.writer import write_batch
from kg.validate import errors, overlay, validate
from loaders.disease_ontology import do_batch
from loaders.obo import read_obo
from loaders.yaml_seed import read_seed

SEED_DIR = Path(kg.__file__).resolve().parent / "seed"
VENDOR = SEED_DIR / "vendor"
CURATED = {"alzheimers": "alzheimers.yaml", "mental_health": "mental_health.yaml"}
PARTS = ("catalogue", "symp", "do", *CURATED)

#: Called with (part, event): event is "built", "validated" or "written".
Progress = Callable[[str, str], None]


@dataclass
class SeedPart:
    name: str
    batch: GraphBatch
    notes: list[str] = field(default_factory=list)
    stats: WriteStats | None = None


def parse_parts(text: str) -> list[str]:
    """``catalogue,do`` -> the parts in load order; unknown names are an error."""
    wanted = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in PARTS]
    if unknown or not wanted:
        raise KgError(
            f"--only: unknown part(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(PARTS)}"
        )
    return [p for p in PARTS if p in wanted]


def build_part(name: str) -> tuple[SeedPart, list[Problem]]:
    """The batch of one part, read from the package, vendored files or curated YAML."""
    # simple_icd_10_cm parses its XML on import (seconds): import it only when needed
    from loaders.icd10cm import catalogue_codes, icd10cm_batch

    if name == "catalogue":
        batch = icd10cm_batch()
        codes = batch.nodes["IcdCode"].values()
        kinds = Counter(getattr(n, "kind", "") for n in codes)
        billable = sum(bool(getattr(n, "billable", False)) for n in codes)
        note = (
            f"{kinds['chapter']} chapters, {kinds['block']} blocks, {kinds['category']} "
            f"categories, {kinds['code']} codes ({billable} billable)"
        )
        return SeedPart(name, batch, [note]), []
    if name == "symp":
        items, problems = read_obo(VENDOR / "symp.obo")
        batch, more = parse_items(items)
        return SeedPart(
            name,
            batch,
            [
                f"{len(batch.nodes.get('Symptom', {}))} symptoms in "
                f"{len(batch.nodes.get('SymptomCategory', {}))} categories"
            ],
        ), problems + more
    if name == "do":
        items, problems = read_obo(VENDOR / "symp.obo")
        symp, more = parse_items(items)
        batch, st, found = do_batch(VENDOR, catalogue_codes(), set(symp.nodes.get("Symptom", {})))
        return SeedPart(
            name,
            batch,
            [
                f"{st.diseases} diseases, {st.coded_as} CODED_AS, {st.presents} PRESENTS, "
                f"{st.is_a} IS_A; skipped {len(st.codes_skipped)} xrefs to codes not in the "
                f"catalogue and {len(st.symptoms_skipped)} associations to unknown symptoms"
            ],
        ), problems + more + found
    path = SEED_DIR / CURATED[name]
    if not path.is_file():
        return SeedPart(name, GraphBatch()), [
            Problem(Location(str(path)), "", "the curated seed file is missing")
        ]
    items, problems = read_seed(path)
    batch, more = parse_items(items)
    return SeedPart(
        name, batch, [f"{batch.node_count()} nodes, {batch.rel_count()} relationships"]
    ), problems + more


def seed(
    store: GraphStore, parts: Sequence[str] = PARTS, progress: Progress | None = None
) -> tuple[list[SeedPart], list[Problem]]:
    """Build every part, validate them together against the live graph, then write each.

    Raises ``ValidationFailed`` (nothing written) on any error; returns the parts and the
    warnings otherwise. Seeding twice changes nothing.
    """

    def tell(part: str, event: str) -> None:
        if progress is not None:
            progress(part, event)

    built: list[SeedPart] = []
    problems: list[Problem] = []
    for name in parts:
        part, found = build_part(name)
        built.append(part)
        problems += found
        tell(name, "built")
    if not errors(problems):
        problems += validate(reduce(overlay, (p.batch for p in built), GraphBatch()), store)
    tell("all", "validated")
    if errors(problems):
        raise ValidationFailed(sorted(problems))
    store.apply_schema()
    for part in built:
        part.stats = write_batch(store, part.batch, atomic=True)
        tell(part.name, "written")
    return built, sorted(problems)
