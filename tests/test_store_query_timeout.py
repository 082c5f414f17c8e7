"""Read queries carry a timeout the server enforces; an interrupted query does not live on.

A cartesian product over 20,000 nodes (4e8 rows, or 8e12 with a filter Neo4j cannot answer
from its count store) runs far longer than the timeouts used here, so it is still running
when it is stopped. What is checked on the server itself:
Neo4j lists no transaction running it (SHOW TRANSACTIONS); the embedded store's server, whose
only user the interrupted command was, is gone (its pid and socket are in ``DB.server``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis

from kg.errors import QueryTimeout
from kg.settings import GraphSettings
from kg.store import GraphStore, open_store
from tests.cli import KGSYNTH, kgsynth, store_env

CARTESIAN = "MATCH (a:IcdCode),(b:IcdCode) RETURN count(*)"
# Neo4j answers CARTESIAN from its count store at once; no store can shortcut this one
SLOW = "MATCH (a:IcdCode),(b:IcdCode),(c:IcdCode) WHERE a.id <> c.id RETURN count(*)"
N = 20_000


def fill(store: GraphStore) -> None:
    store.write(
        "UNWIND range(1, $n) AS i CREATE (:IcdCode {id: 'ICD10CM:T' + toString(i)})", {"n": N}
    )


def cli_env(settings: GraphSettings) -> dict[str, str]:
    return store_env(settings, KGSYNTH_CONFIG="")


def module(tmp_path: Path) -> Path:
    path = tmp_path / "after.yaml"
    path.write_text(
        "kgsynth_seed: 1\nmodule: after-timeout\nnodes:\n  Symptom:\n"
        '    - {id: "KGS:symptom/after", name: "written after the interrupted query"}\n',
        encoding="utf-8",
    )
    return path


def running_on_neo4j(store: GraphStore) -> list[str]:
    rows = store.read("SHOW TRANSACTIONS YIELD currentQuery RETURN currentQuery AS q")
    return [r["q"] for r in rows if "(a:IcdCode),(b:IcdCode)" in (r["q"] or "")]


def next_commands_work(settings: GraphSettings, tmp_path: Path) -> None:
    """A write (which a read still running would hold up on FalkorDB) and a read, both fine."""
    env = cli_env(settings)
    load = kgsynth("kg", "load", str(module(tmp_path)), env=env)
    assert load.returncode == 0, load.stderr
    count = kgsynth("kg", "cypher", "MATCH (c:IcdCode) RETURN count(c) AS n", "--json", env=env)
    assert count.returncode == 0, count.stderr
    assert json.loads(count.stdout) == [{"n": N}]
    with open_store(settings) as store:
        assert store.read("MATCH (s:Symptom) RETURN s.id AS id") == [{"id": "KGS:symptom/after"}]


def test_store_read_past_its_timeout_raises_query_timeout(store: GraphStore) -> None:
    fill(store)
    short = open_store(store.settings.model_copy(update={"query_timeout": 0.5}))
    try:
        with pytest.raises(QueryTimeout, match=r"query timeout of 0\.5 s .* --query-timeout"):
            short.read(SLOW)
        assert short.read("MATCH (c:IcdCode) RETURN count(c) AS n") == [{"n": N}]
    finally:
        short.close()
    if store.backend == "neo4j":
        assert running_on_neo4j(store) == []


def test_cli_query_past_the_timeout_is_stopped_with_a_clear_message(
    store: GraphStore, tmp_path: Path
) -> None:
    fill(store)
    settings = store.settings
    if store.backend == "embedded":
        store.close()  # the command below is then the server's only user
    query = CARTESIAN if store.backend == "embedded" else SLOW
    r = kgsynth("--query-timeout", "1", "kg", "cypher", query, env=cli_env(settings))
    assert r.returncode == 2
    assert "the query ran past the query timeout of 1 s and was stopped on the server" in r.stderr
    assert "KGSYNTH_QUERY_TIMEOUT" in r.stderr and "Traceback" not in r.stderr
    if store.backend == "neo4j":
        assert running_on_neo4j(store) == []
    next_commands_work(settings, tmp_path)


def test_bad_query_timeouts_are_refused_naming_the_setting(tmp_path: Path) -> None:
    settings = GraphSettings(uri=f"embedded:{tmp_path / 'g.db'}")
    for args, env, named in [
        (["--query-timeout", "0"], {}, "--query-timeout"),
        (["--query-timeout", "-3"], {}, "--query-timeout"),
        ([], {"KGSYNTH_QUERY_TIMEOUT": "soon"}, "KGSYNTH_QUERY_TIMEOUT"),
        ([], {"KGSYNTH_QUERY_TIMEOUT": "inf"}, "KGSYNTH_QUERY_TIMEOUT"),
    ]:
        r = kgsynth(*args, "kg", "info", env=cli_env(settings) | env)
        assert r.returncode == 2, (args, env, r.stdout)
        assert f"{named}: the query timeout must be a positive number of seconds" in r.stderr
        assert "Traceback" not in r.stderr
    config = tmp_path / "kgsynth.toml"
    config.write_text('[graph]\nquery_timeout = "later"\n', encoding="utf-8")
    r = kgsynth("kg", "info", env=cli_env(settings) | {"KGSYNTH_CONFIG": str(config)})
    assert r.returncode == 2
    assert f"{config}: [graph].query_timeout: the query timeout must be" in r.stderr


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(condition: object, what: str, limit: float = 120) -> None:
    """Poll ``condition()`` until true (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never saw: {what}"
        time.sleep(0.05)


def test_an_interrupted_neo4j_write_raises_the_interrupt_and_is_rolled_back(
    neo4j_store: GraphStore,
) -> None:
    """Ctrl-C during a write: the interrupt itself comes out (not the driver's BufferError from
    cleaning up a socket read cut short), and the write's transaction ends uncommitted."""
    store = neo4j_store
    fill(store)
    slow_write = SLOW.replace("RETURN count(*)", "WITH count(*) AS n CREATE (:Symptom {n: n})")

    def interrupt_once_running() -> None:
        wait_for(lambda: running_on_neo4j(store), "the write running on Neo4j")
        signal.raise_signal(signal.SIGINT)

    threading.Thread(target=interrupt_once_running, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        store.write(slow_write)
    wait_for(lambda: not running_on_neo4j(store), "Neo4j ending the transaction")
    assert store.read("MATCH (s:Symptom) RETURN count(s) AS n") == [{"n": 0}]
    assert store.write("CREATE (:Symptom {id: 'KGS:symptom/after'})") == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_query_is_cancelled_on_the_server(
    store: GraphStore, tmp_path: Path, sig: signal.Signals
) -> None:
    fill(store)
    settings = store.settings
    env = cli_env(settings) | {"TMPDIR": str(tmp_path)}
    if store.backend == "embedded":
        store.close()
    proc = subprocess.Popen(
        # a timeout far beyond the test's patience: only the interrupt can end the query
        [str(KGSYNTH), "--query-timeout", "3600", "kg", "cypher", SLOW],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell's background job inherits SIGINT ignored; a user's terminal does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        if store.backend == "neo4j":
            wait_for(lambda: running_on_neo4j(store), "the query running on Neo4j")
        else:
            db = settings.embedded_path
            state = db.with_name(db.name + ".server")
            wait_for(state.exists, "the embedded server starting")
            info = json.loads(state.read_text())
            client = redis.Redis(unix_socket_path=info["socket"])
            wait_for(
                lambda: any(c.get("cmd") == "graph.RO_QUERY" for c in client.client_list()),
                "the query running on the embedded server",
            )
            client.close()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    if store.backend == "neo4j":
        wait_for(lambda: not running_on_neo4j(store), "Neo4j ending the transaction")
    else:
        assert not state.exists()
        assert not alive(info["pid"])
    next_commands_work(settings, tmp_path)
