"""Errors a user can cause; each carries one message that says what to change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kg.batch import Problem


class KgError(Exception):
    """Base of the errors the CLI reports as one clear message, without a traceback."""


class StoreConnectionError(KgError):
    """The graph store cannot be reached or refused the credentials."""


class StoreBusy(StoreConnectionError):
    """The embedded server runs but does not answer in time (loading, saving, stuck)."""


class QueryError(KgError):
    """A Cypher statement failed (syntax, unknown query, missing parameter)."""


class QueryTimeout(QueryError):
    """A query ran past the query timeout and was stopped on the server."""


class ReadOnlyError(QueryError):
    """A write was attempted where only reads are allowed."""


class ValidationFailed(KgError):
    """Input did not validate; nothing was written."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        super().__init__(f"{len(errors)} problem(s) found; nothing was written")
