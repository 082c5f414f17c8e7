"""A real Neo4j server for tests: an external one named by the environment, or a private
local one started with ``scripts/neo4j-local`` (embedded Neo4j 5.26 Community, no Docker).

Standard library plus the ``neo4j`` driver; no pytest import. Typical use from conftest::

    from tests.neo4j_server import ensure_neo4j, stop

    @pytest.fixture(scope="session")
    def neo4j_conn():
        conn = ensure_neo4j()          # RuntimeError (Neo4jUnavailable) if it cannot start
        yield conn
        stop()

Behaviour:

* ``NEO4J_URI`` set  -> that server is used as is, with ``NEO4J_USERNAME`` (default
  ``neo4j``) and ``NEO4J_PASSWORD``; ``stop()`` leaves it alone.
* otherwise          -> ``scripts/neo4j-local start`` on a free port picked at run time
  (so it never clashes with a developer's server on 7687), with its own throw-away
  instance directory ``.local/neo4j-test-<port>``; ``stop()`` stops it and deletes that
  directory. The password is ``NEO4J_PASSWORD`` or the script's local dev default.

Either way connectivity is verified with the driver and the server version is read with
``CALL dbms.components()``. First start on a machine also fetches the jars (Maven).
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neo4j import Driver

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "scripts" / "neo4j-local"
DEFAULT_PASSWORD = "kgsynth-dev-password"  # same as scripts/neo4j-local; loopback dev server only
START_TIMEOUT_S = 180.0  # the script waits up to NEO4J_LOCAL_START_TIMEOUT (120 s) itself


class Neo4jUnavailable(RuntimeError):
    """The Neo4j server could not be started or reached. The message carries the details
    (for a local server: the tail of its log)."""


@dataclass(frozen=True)
class Neo4jConn:
    uri: str
    username: str
    password: str = field(repr=False)  # keep secrets out of test output
    version: str = field()  # e.g. "5.26.12"
    edition: str = ""  # "community" / "enterprise"
    database: str = "neo4j"
    managed: bool = False  # True when this module started the server (and stop() stops it)
    instance_dir: Path | None = None
    port: int | None = None

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)

    def driver(self, **kwargs: Any) -> Driver:
        """A new ``neo4j.Driver`` for this server (the caller closes it)."""
        from neo4j import GraphDatabase

        return GraphDatabase.driver(self.uri, auth=self.auth, **kwargs)

    def env(self) -> dict[str, str]:
        """The NEO4J_* variables a subprocess (e.g. the kgsynth CLI) needs to reach it."""
        return {
            "NEO4J_URI": self.uri,
            "NEO4J_USERNAME": self.username,
            "NEO4J_PASSWORD": self.password,
        }


_lock = threading.Lock()
_current: Neo4jConn | None = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _probe(uri: str, username: str, password: str, database: str) -> tuple[str, str]:
    """Connect, authenticate and return (version, edition); raise Neo4jUnavailable."""
    try:
        import neo4j
        from neo4j import GraphDatabase
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise Neo4jUnavailable("the 'neo4j' Python driver is not installed") from e
    try:
        with GraphDatabase.driver(uri, auth=(username, password)) as drv:
            drv.verify_connectivity()
            records, _, _ = drv.execute_query(
                "CALL dbms.components() YIELD name, versions, edition "
                "RETURN name, versions[0] AS version, edition",
                database_=database,
            )
    except neo4j.exceptions.AuthError as e:
        raise Neo4jUnavailable(
            f"Neo4j at {uri} rejected user {username!r}: {e} "
            "(check NEO4J_USERNAME / NEO4J_PASSWORD)"
        ) from e
    except Exception as e:  # ServiceUnavailable, DNS, TLS, ...
        raise Neo4jUnavailable(f"cannot reach Neo4j at {uri}: {type(e).__name__}: {e}") from e
    for rec in records:
        if rec["name"] == "Neo4j Kernel":
            return str(rec["version"]), str(rec["edition"])
    rec = records[0]
    return str(rec["version"]), str(rec["edition"])


def _text(out: str | bytes | None) -> str:
    if isinstance(out, bytes):
        return out.decode(errors="replace")
    return out or ""


def _run_script(
    *args: str, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _start_local() -> Neo4jConn:
    if not SCRIPT.exists():
        raise Neo4jUnavailable(f"{SCRIPT} is missing")
    password = os.environ.get("NEO4J_PASSWORD") or DEFAULT_PASSWORD
    env = dict(os.environ, NEO4J_PASSWORD=password)
    last_error = ""
    for _attempt in range(2):  # a second try only if the picked port was taken meanwhile
        port = _free_port()
        instance = REPO_ROOT / ".local" / f"neo4j-test-{port}"
        try:
            proc = _run_script(
                "start",
                "--port",
                str(port),
                "--data",
                str(instance),
                env=env,
                timeout=START_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as e:
            _run_script("stop", "--data", str(instance), env=env, timeout=90)
            raise Neo4jUnavailable(
                f"scripts/neo4j-local start did not finish in {START_TIMEOUT_S:.0f}s\n"
                f"{_text(e.stdout)}{_text(e.stderr)}{_log_tail(instance)}"
            ) from e
        if proc.returncode == 0:
            uri = f"bolt://127.0.0.1:{port}"
            try:
                version, edition = _probe(uri, "neo4j", password, "neo4j")
            except Neo4jUnavailable as e:
                _run_script("stop", "--data", str(instance), env=env, timeout=90)
                raise Neo4jUnavailable(f"{e}\n{_log_tail(instance)}") from e
            return Neo4jConn(
                uri=uri,
                username="neo4j",
                password=password,
                version=version,
                edition=edition,
                managed=True,
                instance_dir=instance,
                port=port,
            )
        last_error = (
            f"scripts/neo4j-local start --port {port} failed (exit {proc.returncode}):\n"
            f"{proc.stdout}{proc.stderr}"
        )
        shutil.rmtree(instance, ignore_errors=True)
        if "already in use" not in proc.stderr:
            break
    raise Neo4jUnavailable(last_error.rstrip())


def _log_tail(instance: Path, lines: int = 40) -> str:
    log = instance / "neo4j.log"
    try:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"---- last lines of {log} ----\n" + "\n".join(tail)


def ensure_neo4j() -> Neo4jConn:
    """Return a connection to a running, authenticated Neo4j (starting one if needed).

    Idempotent within a process. Raises ``Neo4jUnavailable`` (a RuntimeError) with the
    reason, and for a local server the tail of its log, when no server can be had.
    """
    global _current
    with _lock:
        if _current is not None:
            return _current
        uri = os.environ.get("NEO4J_URI")
        if uri:
            username = os.environ.get("NEO4J_USERNAME", "neo4j")
            password = os.environ.get("NEO4J_PASSWORD", "")
            database = os.environ.get("NEO4J_DATABASE", "neo4j")
            version, edition = _probe(uri, username, password, database)
            _current = Neo4jConn(
                uri=uri,
                username=username,
                password=password,
                version=version,
                edition=edition,
                database=database,
            )
        else:
            _current = _start_local()
            atexit.register(stop)  # in case the caller never calls stop()
        return _current


def stop(*, keep_data: bool = False) -> None:
    """Stop the server ``ensure_neo4j`` started (an external one is left alone) and,
    unless ``keep_data``, delete its instance directory. Safe to call more than once."""
    global _current
    with _lock:
        conn, _current = _current, None
    if conn is None or not conn.managed or conn.instance_dir is None:
        return
    proc = _run_script("stop", "--data", str(conn.instance_dir), env=dict(os.environ), timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(
            f"scripts/neo4j-local stop failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    if not keep_data:
        shutil.rmtree(conn.instance_dir, ignore_errors=True)


if __name__ == "__main__":  # manual check: python -m tests.neo4j_server
    c = ensure_neo4j()
    print(c)
    stop()
    print("stopped")
