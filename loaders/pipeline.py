"""Validate first, then write: the one path by which files enter the graph.

Every file of a load is read and validated together, against the live graph, before
anything is written; any error raises ``ValidationFailed`` with every problem and the
store is untouched. Writing then MERGEs on ids (a second load of the same files changes
nothing). On Neo4j the whole write is one transaction; the embedded store makes each
``UNWIND`` batch atomic, so there the guarantee rests on validating first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kg.batch import GraphBatch, Problem
from kg.errors import ValidationFailed
from kg.store.base import GraphStore, WriteStats
from kg.store.writer import write_batch
from kg.validate import WARNING, errors, validate
from loaders.files import read_paths


@dataclass
class LoadResult:
    stats: WriteStats
    warnings: list[Problem] = field(default_factory=list)


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
    """The files read together and every problem (against ``store``'s graph when given)."""
    batch, problems = read_paths(paths)
    return batch, check_batch(batch, store, problems)


def write_checked(store: GraphStore, batch: GraphBatch, problems: list[Problem]) -> LoadResult:
    """Write ``batch`` if ``problems`` holds no error, else raise with all of them."""
    if errors(problems):
        raise ValidationFailed(problems)
    store.apply_schema()
    stats = write_batch(store, batch, atomic=True)
    return LoadResult(stats, [p for p in problems if p.severity == WARNING])


def load_paths(store: GraphStore, paths: Iterable[Path]) -> LoadResult:
    """Validate the files together and against the live graph, then write them."""
    batch, problems = check_paths(paths, store)
    return write_checked(store, batch, problems)
