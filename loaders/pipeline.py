"""Validate first, then write: the one path by which files enter the graph.

Every file of a load is read and validated together, against the live graph, before
anything is written; any error raises ``ValidationFailed`` with every problem and the
store is untouched. The load is then compared with the live graph (``loaders.changes``):
changing a node or relationship that another module defines is refused, naming the
item, its module and the fields, unless ``replace`` is asked for; a dry run stops here.
Writing then MERGEs only the added and changed items on ids, each recording its module
(a second load of the same files writes nothing). On Neo4j the whole write is one
transaction; the embedded store makes each ``UNWIND`` batch atomic, so there the
guarantee rests on validating first.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from kg.batch import MODULE, GraphBatch, Problem
from kg.errors import ValidationFailed
from kg.store.base import DEFAULT_BATCH, GraphStore, Statement, WriteStats
from kg.store.writer import batch_statements, resolve_endpoints
from kg.validate import WARNING, errors, overlay, validate
from loaders.changes import Change, Diff, by_module, changed_part, clobber_problems, diff_batch
from loaders.files import read_paths


@dataclass
class LoadResult:
    batch: GraphBatch
    stats: WriteStats
    diff: Diff
    warnings: list[Problem] = field(default_factory=list)
    #: changed items another module defined, overwritten because ``replace`` was asked for
    replaced: list[Change] = field(default_factory=list)


def check_batch(
    batch: GraphBatch, store: GraphStore | None, problems: Iterable[Problem] = ()
) -> list[Problem]:
    """``problems`` so far plus the domain rules; the rules run only when no error yet."""
    found = list(problems)
    if not errors(found):
        found += validate(batch, store)
    return sorted(found)


def check_paths(
    paths: Iterable[Path], store: GraphStore | None
) -> tuple[GraphBatch, list[Problem]]:
    """The files read together and every problem (against ``store``'s graph when given).

    Against a graph, a change to an item another module defines is a problem too.
    """
    batch, problems = read_paths(paths)
    if store is None:  # codes come from the shipped catalogue, not the files
        # simple_icd_10_cm parses its XML on import (seconds): import it only when needed
        from loaders.icd10cm import catalogue_context

        problems = check_batch(overlay(catalogue_context(batch), batch), None, problems)
        return batch, problems
    problems = check_batch(batch, store, problems)
    if not errors(problems):
        diff = diff_batch(store, batch)
        problems = sorted(problems + clobber_problems(batch, diff.clobbers(batch)))
    return batch, problems


def owned_statements(store: GraphStore, batch: GraphBatch, default_module: str) -> list[Statement]:
    """The MERGE statements writing ``batch``, each row carrying its module: nodes first."""
    endpoints, problems = resolve_endpoints(batch, store)
    if problems:
        raise ValidationFailed(problems)
    nodes: list[Statement] = []
    rels: list[Statement] = []
    for module, part in sorted(by_module(batch, default_module).items()):
        for out, sub in ((nodes, GraphBatch(nodes=part.nodes)), (rels, GraphBatch(rels=part.rels))):
            for cypher, row_batches in batch_statements(sub, endpoints, DEFAULT_BATCH):
                for rows in row_batches:
                    for row in rows:
                        (row if "id" in row else row["p"])[MODULE] = module
                out.append((cypher, row_batches))
    return nodes + rels


def write_owned(store: GraphStore, batch: GraphBatch, default_module: str) -> WriteStats:
    """Write ``batch`` (MERGE on ids, one transaction where the backend has them)."""
    started = time.perf_counter()
    store.apply_schema()
    store.run_statements(owned_statements(store, batch, default_module), atomic=True)
    return WriteStats(batch.node_count(), batch.rel_count(), time.perf_counter() - started)


def load_batch(
    store: GraphStore,
    batch: GraphBatch,
    problems: Sequence[Problem],
    *,
    replace: bool = False,
    dry_run: bool = False,
) -> LoadResult:
    """Write what ``batch`` adds or changes, unless an error or a clobber stops it."""
    if errors(problems):
        raise ValidationFailed(problems)
    diff = diff_batch(store, batch)
    clobbers = diff.clobbers(batch)
    if clobbers and not replace and not dry_run:
        raise ValidationFailed(sorted([*problems, *clobber_problems(batch, clobbers)]))
    warnings = [p for p in problems if p.severity == WARNING]
    if dry_run:
        return LoadResult(batch, WriteStats(), diff, warnings, clobbers)
    stats = write_owned(store, changed_part(batch, diff), "unknown")
    return LoadResult(batch, stats, diff, warnings, clobbers)


def load_paths(
    store: GraphStore, paths: Iterable[Path], *, replace: bool = False, dry_run: bool = False
) -> LoadResult:
    """Validate the files together and against the live graph, then write them.

    The check and the write hold the store's write lock, so they see the same graph.
    """
    batch, problems = read_paths(paths)
    with nullcontext() if dry_run else store.write_lock():
        problems = check_batch(batch, store, problems)
        return load_batch(store, batch, problems, replace=replace, dry_run=dry_run)
