"""``kgsynth kg ...`` as a user runs it: real subprocesses, real stores, one-line errors."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from kg.settings import GraphSettings
from kg.store import GraphStore
from kg.store.writer import write_batch
from tests.cli import kgsynth, store_env
from tests.fixture_graph import tiny_graph


def cli_env(store: GraphStore, **extra: str) -> dict[str, str]:
    settings = store.settings
    env = store_env(settings, **extra)
    if settings.backend == "embedded":
        env["KGSYNTH_CONFIG"] = ""
        return env | {"KGSYNTH_GRAPH_URI": settings.uri}
    return env


def graph_args(store: GraphStore) -> list[str]:
    return ["--graph", store.settings.graph] if store.backend == "embedded" else []


def test_init_and_stats_on_the_embedded_default_without_configuration(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KGSYNTH_", "NEO4J_"))}
    env |= {
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    init = kgsynth("kg", "init", env=env, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert f"embedded:{tmp_path / 'data' / 'kgsynth' / 'graph.db'}" in init.stdout
    stats = kgsynth("kg", "stats", "--json", env=env, cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    rows = json.loads(stats.stdout)
    assert {"kind": "node", "name": "KgsynthMeta", "count": 1} in rows
    info = kgsynth("kg", "info", "--json", env=env, cwd=tmp_path)
    assert json.loads(info.stdout)["schema_version"] == 1
    assert json.loads(info.stdout)["server"].startswith("FalkorDB")


def test_query_and_cypher_print_rows(store: GraphStore) -> None:
    write_batch(store, tiny_graph())
    env = cli_env(store)
    out = kgsynth(
        *graph_args(store),
        "kg",
        "query",
        "disease_profile",
        "--param",
        "icd=G30.9",
        "--json",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["symptom"] for r in rows] == ["forgetfulness", "getting lost", "low mood"]
    table = kgsynth(*graph_args(store), "kg", "query", "icd_ancestors", "-p", "icd=G30.9", env=env)
    assert table.returncode == 0 and "G30-G32" in table.stdout
    cy = kgsynth(
        *graph_args(store),
        "kg",
        "cypher",
        "MATCH (c:IcdCode) WHERE c.code STARTS WITH $p RETURN c.code AS code ORDER BY code",
        "--param",
        "p=G30.",
        "--json",
        env=env,
    )
    assert json.loads(cy.stdout) == [{"code": "G30.1"}, {"code": "G30.9"}]


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE (n:Disease {id: 'a:b', name: 'x'})",
        "MATCH (n) DETACH DELETE n",
        "match (m:KgsynthMeta) set m.schema_version = 99",
    ],
)
def test_cypher_refuses_writes(store: GraphStore, statement: str) -> None:
    out = kgsynth(*graph_args(store), "kg", "cypher", statement, env=cli_env(store))
    assert out.returncode == 2
    assert "read-only" in out.stderr and "Traceback" not in out.stderr
    assert store.schema_version() == 1


def test_missing_parameter_and_unknown_query_are_one_line(store: GraphStore) -> None:
    env = cli_env(store)
    out = kgsynth(*graph_args(store), "kg", "query", "disease_profile", env=env)
    assert out.returncode == 2
    assert (
        out.stderr.strip() == "error: query 'disease_profile': missing parameter(s) icd "
        "(expects: icd)"
    )
    out = kgsynth(*graph_args(store), "kg", "query", "nope", env=env)
    assert out.returncode == 2 and "no named query 'nope'" in out.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_neo4j_is_one_clear_message() -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KGSYNTH_", "NEO4J_"))}
    out = kgsynth("--uri", f"bolt://127.0.0.1:{port}", "kg", "stats", env=env, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith(f"error: cannot reach Neo4j at bolt://127.0.0.1:{port}")


def test_wrong_password_is_one_clear_message(neo4j_settings: GraphSettings) -> None:
    env = store_env(neo4j_settings, NEO4J_PASSWORD="definitely-wrong-SENTINEL")
    out = kgsynth("kg", "info", env=env, timeout=60)
    assert out.returncode == 2
    assert "wrong username or password" in out.stderr
    assert "SENTINEL" not in out.stderr + out.stdout
    assert len(out.stderr.strip().splitlines()) == 1


def test_info_never_shows_the_password(neo4j_settings: GraphSettings) -> None:
    assert neo4j_settings.password is not None
    secret = neo4j_settings.password.get_secret_value()
    host = neo4j_settings.uri.split("//", 1)[1]
    env = store_env(neo4j_settings)
    out = kgsynth("--uri", f"bolt://neo4j:{secret}@{host}", "kg", "info", "--json", env=env)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["server"].startswith("Neo4j Kernel 5.26")
    assert secret not in out.stdout + out.stderr
    assert info["uri"] == f"bolt://{host}"


def test_unsupported_uri_and_bad_config_file(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KGSYNTH_", "NEO4J_"))}
    out = kgsynth("--uri", "mysql://x", "kg", "stats", env=env)
    assert out.returncode == 2 and "unsupported graph URI 'mysql://x'" in out.stderr
    cfg = tmp_path / "kgsynth.toml"
    cfg.write_text('[graph]\nuri = "embedded:/tmp/x.db"\npassword = "nope"\n')
    out = kgsynth("kg", "stats", env=env | {"KGSYNTH_CONFIG": str(cfg)})
    assert out.returncode == 2 and "password is not read from files" in out.stderr
