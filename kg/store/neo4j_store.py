"""Neo4j backend over Bolt with the official driver: managed transactions, batched writes."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import neo4j
from neo4j import GraphDatabase, ManagedTransaction, Query, RoutingControl, unit_of_work
from neo4j.exceptions import (
    AuthError,
    ClientError,
    ConfigurationError,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
)

from kg.errors import QueryError, QueryTimeout, ReadOnlyError, StoreConnectionError
from kg.queries import schema_statements
from kg.settings import ENV_PASSWORD, ENV_QUERY_TIMEOUT, ENV_URI, ENV_USER, GraphSettings
from kg.store.base import GraphStore, Params, Rows, Statement


def _plain(value: Any) -> Any:
    """Driver values to plain Python: nodes and relationships become property dicts."""
    if isinstance(value, neo4j.graph.Node | neo4j.graph.Relationship):
        return dict(value.items())
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class Neo4jStore(GraphStore):
    backend = "neo4j"

    def __init__(self, settings: GraphSettings) -> None:
        super().__init__(settings)
        password = settings.password.get_secret_value() if settings.password else ""
        try:
            self._driver = GraphDatabase.driver(
                settings.uri,
                auth=(settings.username, password),
                connection_timeout=10.0,
                max_transaction_retry_time=30.0,
                notifications_min_severity="OFF",
            )
            self._driver.verify_connectivity()
        except AuthError:
            self._close_quietly()
            raise StoreConnectionError(
                f"Neo4j at {settings.display_uri} refused user {settings.username!r}: wrong "
                f"username or password (set {ENV_USER} / {ENV_PASSWORD})"
            ) from None
        except (ServiceUnavailable, OSError, ConfigurationError, DriverError) as err:
            self._close_quietly()
            raise StoreConnectionError(
                f"cannot reach Neo4j at {settings.display_uri}: {type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else 'no answer'} "
                f"(is the server running? set --uri or {ENV_URI})"
            ) from None

    def _close_quietly(self) -> None:
        driver = getattr(self, "_driver", None)
        if driver is not None:
            driver.close()

    def _query_error(self, err: Neo4jError, cypher: str) -> QueryError:
        code = err.code or ""
        if "AccessMode" in code or "ForbiddenOnReadOnlyDatabase" in code:
            return ReadOnlyError(
                "this statement writes to the graph, but only read-only Cypher is allowed here"
            )
        if "TransactionTimedOut" in code:
            return QueryTimeout(
                f"the query ran past the query timeout of {self.settings.query_timeout:g} s "
                "and was stopped on the server; raise it with --query-timeout SECONDS or "
                f"{ENV_QUERY_TIMEOUT}"
            )
        first = cypher.strip().splitlines()[0][:80] if cypher.strip() else ""
        return QueryError(f"Neo4j rejected the query ({code}): {err.message} [{first}]")

    def _execute(
        self,
        cypher: str,
        params: Params | None,
        routing: RoutingControl,
        metadata: dict[str, Any],
    ) -> Rows:
        try:
            timeout = self.settings.query_timeout if routing == RoutingControl.READ else None
            records, _, _ = self._driver.execute_query(
                Query(cypher, timeout=timeout, metadata=metadata),
                dict(params or {}),
                routing_=routing,
                database_=self.settings.database,
            )
        except ClientError as err:
            raise self._query_error(err, cypher) from None
        except ServiceUnavailable as err:
            raise StoreConnectionError(f"lost Neo4j at {self.display_uri}: {err}") from None
        return [{k: _plain(v) for k, v in r.items()} for r in records]

    def _off_main[T](self, work: Callable[[dict[str, Any]], T]) -> T:
        """Run driver work in a worker thread, so that Ctrl-C / SIGTERM never lands inside the
        driver's socket I/O (whose clean-up then fails with a BufferError instead).

        Interrupted, the driver would wait for the query to finish; instead its transactions,
        tagged with a token in their metadata, are terminated (rolled back) from a second
        session, and the interrupt is raised.
        """
        token = uuid.uuid4().hex
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["value"] = work({"kgsynth_query": token})
            except BaseException as err:  # handed to the caller's thread below
                outcome["error"] = err

        worker = threading.Thread(target=run, name="kgsynth-neo4j", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.1)
        except BaseException:
            for _ in range(50):  # the transaction may not be registered yet
                self._terminate(token)
                worker.join(0.2)
                if not worker.is_alive():
                    break
            raise
        if "error" in outcome:
            raise outcome["error"]
        value: T = outcome["value"]
        return value

    def _terminate(self, token: str) -> None:
        """Terminate this process's transactions tagged with ``token`` (best effort)."""
        with (
            contextlib.suppress(Neo4jError, DriverError, OSError),
            self._driver.session(database=self.settings.database) as session,
        ):
            ids = [
                r["id"]
                for r in session.run(
                    "SHOW TRANSACTIONS YIELD transactionId AS id, metaData "
                    "WHERE metaData.kgsynth_query = $token RETURN id",
                    token=token,
                )
            ]
            if ids:
                session.run("TERMINATE TRANSACTIONS $ids", ids=ids).consume()

    def read(self, cypher: str, params: Params | None = None) -> Rows:
        return self._off_main(lambda meta: self._execute(cypher, params, RoutingControl.READ, meta))

    def write(self, cypher: str, params: Params | None = None) -> Rows:
        return self._off_main(
            lambda meta: self._execute(cypher, params, RoutingControl.WRITE, meta)
        )

    def run_statements(self, statements: Iterable[Statement], *, atomic: bool) -> None:
        stmts = list(statements)
        self._off_main(lambda meta: self._run_statements(stmts, atomic, meta))

    def _run_statements(
        self, stmts: list[Statement], atomic: bool, metadata: dict[str, Any]
    ) -> None:
        @unit_of_work(metadata=metadata)
        def work(tx: ManagedTransaction, todo: list[Statement]) -> None:
            for cypher, batches in todo:
                for rows in batches:
                    tx.run(cypher, rows=rows).consume()

        try:
            with self._driver.session(database=self.settings.database) as session:
                if atomic:
                    session.execute_write(work, stmts)
                else:
                    for cypher, batches in stmts:
                        for rows in batches:
                            session.execute_write(work, [(cypher, [rows])])
        except ClientError as err:
            raise self._query_error(err, stmts[0][0] if stmts else "") from None
        except ServiceUnavailable as err:
            raise StoreConnectionError(f"lost Neo4j at {self.display_uri}: {err}") from None

    def clear(self) -> None:
        def work(metadata: dict[str, Any]) -> None:
            with self._driver.session(database=self.settings.database) as session:
                session.run(
                    Query(
                        "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 20000 ROWS",
                        metadata=metadata,
                    )
                ).consume()

        self._off_main(work)
        self.apply_schema()

    def schema_statements(self) -> list[str]:
        return schema_statements("neo4j")

    def server_version(self) -> str:
        rows = self.read(
            "CALL dbms.components() YIELD name, versions, edition "
            "RETURN name, versions[0] AS version, edition"
        )
        if not rows:
            return "Neo4j (unknown version)"
        r = rows[0]
        return f"{r['name']} {r['version']} {r['edition']}"

    def close(self) -> None:
        """Best effort: after an interrupt a worker thread may still hold a connection, whose
        goodbye then fails (BufferError); nothing is lost (writes are whole transactions)."""
        with contextlib.suppress(DriverError, OSError, BufferError):
            self._driver.close()
