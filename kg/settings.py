"""Connection settings: flags, then environment, then config file, then the embedded default."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from platformdirs import user_config_dir, user_data_dir
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from kg.errors import KgError
from kg.redact import display_url

ENV_URI = "KGSYNTH_GRAPH_URI"
ENV_NEO4J_URI = "NEO4J_URI"  # the Neo4j convention (scripts/neo4j-local env, Aura files)
ENV_USER = "NEO4J_USERNAME"
ENV_PASSWORD = "NEO4J_PASSWORD"
ENV_DATABASE = "NEO4J_DATABASE"
ENV_CONFIG = "KGSYNTH_CONFIG"
ENV_QUERY_TIMEOUT = "KGSYNTH_QUERY_TIMEOUT"
DEFAULT_QUERY_TIMEOUT = 60.0
NEO4J_SCHEMES = ("neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc")


def default_embedded_uri() -> str:
    return f"embedded:{Path(user_data_dir('kgsynth')) / 'graph.db'}"


class GraphSettings(BaseModel):
    """Where the graph lives. The password is a secret: never printed or written."""

    model_config = ConfigDict(frozen=True)

    uri: str
    username: str = "neo4j"
    password: SecretStr | None = None
    database: str | None = None
    graph: str = "kgsynth"
    #: seconds a read query may run before the server stops it
    query_timeout: float = Field(default=DEFAULT_QUERY_TIMEOUT, gt=0)
    #: which flag, variable or file chose ``uri`` (shown by ``kg info``)
    uri_source: str = "default"

    @model_validator(mode="before")
    @classmethod
    def _move_userinfo(cls, data: Any) -> Any:
        """Take ``user:password@`` out of a URI: it would leak into messages and logs."""
        if not isinstance(data, dict) or "@" not in str(data.get("uri", "")):
            return data
        parts = urlsplit(str(data["uri"]))
        if parts.username is None:
            return data
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        out = dict(data, uri=urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))
        out.setdefault("username", unquote(parts.username))
        if parts.password is not None and not out.get("password"):
            out["password"] = SecretStr(unquote(parts.password))
        return out

    @property
    def backend(self) -> str:
        scheme = self.uri.split(":", 1)[0].lower()
        if scheme == "embedded":
            return "embedded"
        if scheme in NEO4J_SCHEMES:
            return "neo4j"
        raise KgError(
            f"unsupported graph URI {self.display_uri!r}: use embedded:PATH, neo4j://HOST:PORT "
            f"or bolt://HOST:PORT (set --uri or {ENV_URI})"
        )

    @property
    def embedded_path(self) -> Path:
        return Path(self.uri.split(":", 1)[1]).expanduser()

    @property
    def display_uri(self) -> str:
        """The URI with any user:password part removed."""
        return self.uri if self.uri.startswith("embedded:") else display_url(self.uri)


def config_table(name: str) -> tuple[Path, dict[str, Any]] | None:
    """The config file (``KGSYNTH_CONFIG``, ./kgsynth.toml, the user config) and its ``[name]``
    table (empty when absent); None when there is no config file."""
    path = _config_file()
    if path is None:
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise KgError(f"{path}: not valid TOML: {err}") from None
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise KgError(f"{path}: [{name}] must be a table")
    return path, table


def _config_file() -> Path | None:
    explicit = os.environ.get(ENV_CONFIG)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise KgError(f"{ENV_CONFIG} points to {path}, which is not a file")
        return path
    for candidate in (Path("kgsynth.toml"), Path(user_config_dir("kgsynth")) / "config.toml"):
        if candidate.is_file():
            return candidate
    return None


def _file_settings() -> dict[str, str]:
    found = config_table("graph")
    if found is None:
        return {}
    path, graph = found
    if "password" in graph:
        raise KgError(f"{path}: [graph].password is not read from files; set {ENV_PASSWORD}")
    allowed = {"uri", "username", "database", "graph", "query_timeout"}
    unknown = set(graph) - allowed
    if unknown:
        raise KgError(f"{path}: unknown [graph] keys {sorted(unknown)}; allowed {sorted(allowed)}")
    return {k: str(v) for k, v in graph.items()} | {"file": str(path)}


def _query_timeout(flag: float | None, fileset: dict[str, str]) -> float:
    """The query timeout: flag, then environment, then config file; a bad value names its source."""
    for value, source in (
        (flag, "--query-timeout"),
        (os.environ.get(ENV_QUERY_TIMEOUT), ENV_QUERY_TIMEOUT),
        (fileset.get("query_timeout"), f"{fileset.get('file')}: [graph].query_timeout"),
    ):
        if value is None or value == "":
            continue
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not seconds > 0 or seconds == float("inf"):
            raise KgError(
                f"{source}: the query timeout must be a positive number of seconds, not {value!r}"
            )
        return seconds
    return DEFAULT_QUERY_TIMEOUT


def _uri(flag: str | None, fileset: dict[str, str]) -> tuple[str, str]:
    """The graph URI and what chose it: flag, then environment, then config file, then default."""
    for value, source in (
        (flag, "--uri"),
        (os.environ.get(ENV_URI), f"env {ENV_URI}"),
        (os.environ.get(ENV_NEO4J_URI), f"env {ENV_NEO4J_URI}"),
        (fileset.get("uri"), f"config {fileset.get('file')}"),
    ):
        if value:
            return value, source
    return default_embedded_uri(), "default"


def resolve_settings(
    uri: str | None = None,
    username: str | None = None,
    database: str | None = None,
    graph: str | None = None,
    query_timeout: float | None = None,
) -> GraphSettings:
    """Settings from flags, else environment, else config file, else the embedded default.

    The URI comes from ``--uri``, ``KGSYNTH_GRAPH_URI``, ``NEO4J_URI``, the config file's
    ``[graph].uri`` or the embedded default, the first that is set.
    """
    fileset = _file_settings()
    password = os.environ.get(ENV_PASSWORD)
    chosen_uri, uri_source = _uri(uri, fileset)
    timeout = _query_timeout(query_timeout, fileset)
    given: dict[str, Any] = {
        "uri": chosen_uri,
        "uri_source": uri_source,
        "username": username or os.environ.get(ENV_USER) or fileset.get("username"),
        "password": SecretStr(password) if password else None,
        "database": database or os.environ.get(ENV_DATABASE) or fileset.get("database"),
        "graph": graph or fileset.get("graph"),
        "query_timeout": timeout,
    }
    settings = GraphSettings(**{k: v for k, v in given.items() if v is not None})
    _ = settings.backend  # fail early on an unsupported scheme
    return settings
