"""Which setting chose the graph: flag, KGSYNTH_GRAPH_URI, NEO4J_URI, config file, default.

`kg info` names it; `eval "$(scripts/neo4j-local env)"` (the README's two lines) switches
kgsynth to that Neo4j.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from kg.settings import GraphSettings
from tests.cli import KGSYNTH, kgsynth

REPO = Path(__file__).resolve().parents[1]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No KGSYNTH_* / NEO4J_* from the caller; the default embedded graph under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KGSYNTH_", "NEO4J_"))}
    env |= {
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "TMPDIR": str(tmp_path),
    }
    return env | extra


def info(env: dict[str, str], *args: str, cwd: Path | None = None) -> dict[str, object]:
    r = kgsynth(*args, "kg", "info", "--json", env=env, cwd=cwd)
    assert r.returncode == 0, r.stderr
    row: dict[str, object] = json.loads(r.stdout)
    return row


def test_kg_info_names_what_chose_the_embedded_graph(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    default = tmp_path / "data" / "kgsynth" / "graph.db"
    got = info(clean_env(tmp_path), cwd=work)
    assert (got["backend"], got["uri"], got["chosen_by"]) == (
        "embedded",
        f"embedded:{default}",
        "default",
    )
    config = work / "kgsynth.toml"
    config.write_text(f'[graph]\nuri = "embedded:{tmp_path / "c.db"}"\n', encoding="utf-8")
    got = info(clean_env(tmp_path), cwd=work)
    assert (got["uri"], got["chosen_by"]) == (
        f"embedded:{tmp_path / 'c.db'}",
        "config kgsynth.toml",
    )
    # NEO4J_URI beats the file, KGSYNTH_GRAPH_URI beats NEO4J_URI, --uri beats both
    env = clean_env(tmp_path, NEO4J_URI=f"embedded:{tmp_path / 'n.db'}")
    assert info(env, cwd=work)["chosen_by"] == "env NEO4J_URI"
    env["KGSYNTH_GRAPH_URI"] = f"embedded:{tmp_path / 'k.db'}"
    got = info(env, cwd=work)
    assert (got["uri"], got["chosen_by"]) == (
        f"embedded:{tmp_path / 'k.db'}",
        "env KGSYNTH_GRAPH_URI",
    )
    got = info(env, "--uri", f"embedded:{tmp_path / 'f.db'}", cwd=work)
    assert (got["uri"], got["chosen_by"]) == (f"embedded:{tmp_path / 'f.db'}", "--uri")
    assert got["query_timeout_s"] == 60.0
    env["KGSYNTH_QUERY_TIMEOUT"] = "2.5"
    assert info(env, cwd=work)["query_timeout_s"] == 2.5
    assert info(env, "--query-timeout", "7", cwd=work)["query_timeout_s"] == 7.0


def test_help_states_the_query_timeout_default() -> None:
    r = subprocess.run(
        [str(KGSYNTH), "--help"],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="200"),
        check=False,
    )
    assert r.returncode == 0
    line = next(ln for ln in r.stdout.splitlines() if "--query-timeout" in ln)
    assert "(default 60)" in line and "KGSYNTH_QUERY_TIMEOUT" in line


def test_neo4j_local_env_switches_kgsynth_to_that_server(
    neo4j_settings: GraphSettings, tmp_path: Path
) -> None:
    """The README's `eval "$(scripts/neo4j-local env)"`, then `kgsynth kg info`."""
    parts = urlsplit(neo4j_settings.uri)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        pytest.skip(f"the tests use an external Neo4j ({parts.hostname}), not a local one")
    assert neo4j_settings.password is not None
    env = clean_env(tmp_path, NEO4J_PASSWORD=neo4j_settings.password.get_secret_value())
    script = (
        f'eval "$({REPO}/scripts/neo4j-local env --port {parts.port})" && '
        f'env | grep -E "^(KGSYNTH_GRAPH_URI|NEO4J_URI|NEO4J_USERNAME)=" | sort && '
        f'"{KGSYNTH}" kg info --json'
    )
    r = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    exported, _, shown = r.stdout.partition("{")
    uri = f"bolt://127.0.0.1:{parts.port}"
    assert exported.split() == [
        f"KGSYNTH_GRAPH_URI={uri}",
        f"NEO4J_URI={uri}",
        "NEO4J_USERNAME=neo4j",
    ]
    got = json.loads("{" + shown)
    assert (got["backend"], got["uri"], got["chosen_by"]) == ("neo4j", uri, "env KGSYNTH_GRAPH_URI")
    assert str(got["server"]).startswith("Neo4j Kernel")
    # the Neo4j convention alone is enough too
    env |= {"NEO4J_URI": uri, "NEO4J_USERNAME": "neo4j"}
    got = info(env, cwd=tmp_path)
    assert (got["backend"], got["chosen_by"]) == ("neo4j", "env NEO4J_URI")
