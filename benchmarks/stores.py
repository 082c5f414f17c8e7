"""The two stores every benchmark measures: a fresh embedded file and a real Neo4j."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kg.settings import GraphSettings
from kg.store import GraphStore, open_store


@contextmanager
def embedded_store() -> Iterator[GraphStore]:
    """An empty embedded store in a temporary file."""
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(GraphSettings(uri=f"embedded:{Path(tmp) / 'bench.db'}"))
        try:
            yield store
        finally:
            store.close()


@contextmanager
def neo4j_store() -> Iterator[GraphStore]:
    """An emptied Neo4j: NEO4J_URI if set, else a private local server started here."""
    from tests.neo4j_server import ensure_neo4j, stop

    conn = ensure_neo4j()
    try:
        settings = GraphSettings(
            uri=conn.uri, username=conn.username, password=SecretStr(conn.password)
        )
        store = open_store(settings)
        print(f"neo4j: {conn.version} at {conn.uri}; warming the JVM", flush=True)
        store.clear()
        try:
            yield store
        finally:
            store.close()
    finally:
        stop()
