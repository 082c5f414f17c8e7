"""Graph stores: Neo4j over Bolt and the embedded FalkorDB, chosen by URI."""

from __future__ import annotations

from kg.settings import GraphSettings, resolve_settings
from kg.store.base import GraphStore, WriteStats


def open_store(settings: GraphSettings | None = None) -> GraphStore:
    """Open the store that ``settings`` (default: resolved from env/config) points to."""
    settings = settings or resolve_settings()
    if settings.backend == "neo4j":
        from kg.store.neo4j_store import Neo4jStore

        return Neo4jStore(settings)
    from kg.store.falkor_store import FalkorStore

    return FalkorStore(settings)


__all__ = ["GraphStore", "WriteStats", "open_store"]
