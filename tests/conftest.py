"""Shared fixtures: a real Neo4j over Bolt (started once per session) and the embedded store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from kg.settings import GraphSettings
from kg.store import GraphStore, open_store

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
NEO4J_SERVER = pytest.StashKey[str]()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Name the Neo4j server the Neo4j tests ran against, so the log shows it was real."""
    server = config.stash.get(NEO4J_SERVER, None)
    if server is not None:
        terminalreporter.write_line(
            f"Neo4j tests ran against a real Neo4j over Bolt: Neo4j {server}"
        )


@pytest.fixture(scope="session")
def neo4j_settings(request: pytest.FixtureRequest) -> Iterator[GraphSettings]:
    """Settings for a real Neo4j: NEO4J_URI if set, else a local server started for the run.

    Under CI nothing Neo4j-related may skip: a server that cannot start fails the run.
    """
    from tests.neo4j_server import ensure_neo4j, stop

    try:
        conn = ensure_neo4j()
    except Exception as err:
        if IN_CI:
            raise
        pytest.skip(f"no Neo4j available ({err}); set NEO4J_URI or install Java 17 + Maven")
    request.config.stash[NEO4J_SERVER] = f"{conn.version} {conn.edition} at {conn.uri}"
    yield GraphSettings(
        uri=conn.uri, username=conn.username, password=SecretStr(conn.password), graph="kgsynth"
    )
    stop()


@pytest.fixture
def neo4j_store(neo4j_settings: GraphSettings) -> Iterator[GraphStore]:
    """An empty, schema-initialised graph on the real Neo4j server."""
    store = open_store(neo4j_settings)
    store.clear()
    yield store
    store.close()


@pytest.fixture
def embedded_store(tmp_path: Path) -> Iterator[GraphStore]:
    """An empty, schema-initialised embedded (FalkorDB) graph in a fresh file."""
    store = open_store(GraphSettings(uri=f"embedded:{tmp_path / 'graph.db'}"))
    store.apply_schema()
    yield store
    store.close()


@pytest.fixture(params=["embedded", "neo4j"])
def store(request: pytest.FixtureRequest) -> GraphStore:
    """Each test using ``store`` runs once on the embedded store and once on real Neo4j."""
    name = "embedded_store" if request.param == "embedded" else "neo4j_store"
    store: GraphStore = request.getfixturevalue(name)
    return store


@pytest.fixture(scope="session")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded database file holding the engine fixture graph (tests/engine_graph.py)."""
    from tests.engine_graph import open_engine_store

    path = tmp_path_factory.mktemp("graph") / "g.db"
    open_engine_store(path).close()
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real ontology files); missing data fails under CI, skips elsewhere."""
    if not SHARED_DATA.is_dir():
        if IN_CI:
            raise RuntimeError(f"{SHARED_DATA} is missing; CI needs the shared reference data")
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA
