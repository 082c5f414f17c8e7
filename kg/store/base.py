"""The graph store interface shared by the Neo4j and embedded backends."""

from __future__ import annotations

import contextlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kg.errors import QueryError
from kg.model import LABELS, REL_KEYS, REL_TYPES
from kg.settings import GraphSettings

Params = Mapping[str, Any]
Rows = list[dict[str, Any]]
#: One statement and the batches of ``$rows`` it runs over.
Statement = tuple[str, list[Rows]]

SCHEMA_VERSION = 1
DEFAULT_BATCH = 10_000


@dataclass(frozen=True)
class WriteStats:
    nodes: int = 0
    relationships: int = 0
    seconds: float = 0.0


def checked_label(label: str) -> str:
    """``label`` if it is on the allow-list; Cypher never sees any other label."""
    if label not in LABELS:
        raise QueryError(f"label {label!r} is not allowed; allowed: {', '.join(sorted(LABELS))}")
    return label


def checked_type(rel_type: str) -> str:
    """``rel_type`` if it is on the allow-list of relationship types."""
    if rel_type not in REL_TYPES:
        raise QueryError(
            f"relationship type {rel_type!r} is not allowed; "
            f"allowed: {', '.join(sorted(REL_TYPES))}"
        )
    return rel_type


def node_merge_cypher(label: str) -> str:
    return f"UNWIND $rows AS r MERGE (n:{checked_label(label)} {{id: r.id}}) SET n = r"


def rel_merge_cypher(rel_type: str, start_label: str, end_label: str) -> str:
    """MERGE relationships from rows ``{s, e, p}`` (keyed types also carry ``p.rkey``)."""
    key = " {rkey: r.p.rkey}" if rel_type in REL_KEYS else ""
    return (
        f"UNWIND $rows AS r MATCH (a:{checked_label(start_label)} {{id: r.s}}) "
        f"MATCH (b:{checked_label(end_label)} {{id: r.e}}) "
        f"MERGE (a)-[x:{checked_type(rel_type)}{key}]->(b) SET x = r.p"
    )


def rel_create_cypher(rel_type: str, start_label: str, end_label: str) -> str:
    """CREATE relationships from rows; only for targets known to hold none of them."""
    return (
        f"UNWIND $rows AS r MATCH (a:{checked_label(start_label)} {{id: r.s}}) "
        f"MATCH (b:{checked_label(end_label)} {{id: r.e}}) "
        f"CREATE (a)-[x:{checked_type(rel_type)}]->(b) SET x = r.p"
    )


def chunks(rows: Sequence[dict[str, Any]], size: int) -> list[Rows]:
    return [list(rows[i : i + size]) for i in range(0, len(rows), size)]


_WRITE_CLAUSE = re.compile(
    r"\b(CREATE|MERGE|SET|DELETE|DETACH|REMOVE|DROP|LOAD\s+CSV|FOREACH)\b", re.IGNORECASE
)
_STRING_OR_COMMENT = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|//[^\n]*")


def looks_like_write(cypher: str) -> bool:
    """True when ``cypher`` has a write clause outside strings and comments.

    A guard for a clear message only; read transactions are what enforce read-only.
    """
    return bool(_WRITE_CLAUSE.search(_STRING_OR_COMMENT.sub(" ", cypher)))


class GraphStore(ABC):
    """A graph database holding the kgsynth schema, read and written through Cypher."""

    backend: str = ""

    def __init__(self, settings: GraphSettings) -> None:
        self.settings = settings

    @property
    def display_uri(self) -> str:
        return self.settings.display_uri

    @abstractmethod
    def read(self, cypher: str, params: Params | None = None) -> Rows:
        """Run ``cypher`` in a read-only transaction; writes are refused."""

    @abstractmethod
    def write(self, cypher: str, params: Params | None = None) -> Rows:
        """Run one statement in its own write transaction."""

    @abstractmethod
    def run_statements(self, statements: Iterable[Statement], *, atomic: bool) -> None:
        """Run each statement over each of its row batches.

        ``atomic``: all in one transaction where the backend has multi-statement
        transactions (Neo4j); the embedded store makes each batch atomic.
        """

    @abstractmethod
    def clear(self) -> None:
        """Delete every node and relationship, then re-apply the schema."""

    @abstractmethod
    def schema_statements(self) -> list[str]:
        """The backend's DDL: an index or constraint on every label's ``id``."""

    @abstractmethod
    def server_version(self) -> str:
        """The database product and version, e.g. ``Neo4j Kernel 5.26.12``."""

    @abstractmethod
    def close(self) -> None: ...

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """Keep other writers out while the block runs (re-entrant).

        The embedded store serialises writers from every process on its file this way;
        Neo4j's transactions isolate writes themselves, so there it holds nothing.
        """
        yield

    def apply_schema(self) -> None:
        """Create indexes/constraints and the schema-version node; idempotent."""
        for stmt in self.schema_statements():
            self.write(stmt)
        self.write(
            "MERGE (m:KgsynthMeta {id: 'schema'}) SET m.schema_version = $v",
            {"v": SCHEMA_VERSION},
        )

    def schema_version(self) -> int | None:
        rows = self.read("MATCH (m:KgsynthMeta {id: 'schema'}) RETURN m.schema_version AS v")
        return int(rows[0]["v"]) if rows and rows[0]["v"] is not None else None

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
