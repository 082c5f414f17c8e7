"""The named, parameterised Cypher library in ``cypher/`` and the per-backend schema DDL."""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

from pydantic import BaseModel, ConfigDict

from kg.errors import QueryError

_HEADER = re.compile(r"^//\s*(\w+)\s*:\s*(.*)$")


class NamedQuery(BaseModel):
    """One ``cypher/queries/NAME.cypher`` file: its header and its text."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    params: tuple[str, ...]
    columns: tuple[str, ...]
    text: str


def _cypher_dir() -> Traversable:
    return files("cypher")


def _split_names(value: str) -> tuple[str, ...]:
    """Names from ``a (what a is), b`` header lists; parenthesised notes are dropped."""
    bare = re.sub(r"\([^)]*\)", "", value)
    return tuple(p.strip().split(" ", 1)[0] for p in bare.split(",") if p.strip())


def parse_query(name: str, source: str) -> NamedQuery:
    header: dict[str, str] = {}
    body: list[str] = []
    for line in source.splitlines():
        m = _HEADER.match(line.strip())
        if m and not body:
            header[m.group(1).lower()] = m.group(2).strip()
        elif line.strip() and not line.strip().startswith("//"):
            body.append(line)
    params = header.get("params", "")
    return NamedQuery(
        name=name,
        description=header.get("description", ""),
        params=() if params in ("", "none", "-") else _split_names(params),
        columns=_split_names(header.get("columns", "")),
        text="\n".join(body).strip().rstrip(";"),
    )


@cache
def named_queries() -> dict[str, NamedQuery]:
    """Every named query, by name."""
    qdir = _cypher_dir() / "queries"
    out = {}
    for entry in sorted(qdir.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".cypher"):
            name = entry.name.removesuffix(".cypher")
            out[name] = parse_query(name, entry.read_text(encoding="utf-8"))
    return out


def get_query(name: str) -> NamedQuery:
    queries = named_queries()
    if name not in queries:
        raise QueryError(f"no named query {name!r}; available: {', '.join(sorted(queries))}")
    return queries[name]


def check_params(query: NamedQuery, params: dict[str, object]) -> None:
    missing = [p for p in query.params if p not in params]
    unknown = [p for p in params if p not in query.params]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing parameter(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown parameter(s) {', '.join(unknown)}")
        expected = ", ".join(query.params) or "none"
        raise QueryError(f"query {query.name!r}: {'; '.join(parts)} (expects: {expected})")


@cache
def schema_statements(backend: str) -> list[str]:
    """The DDL statements of ``cypher/schema/BACKEND.cypher``, in order."""
    text = (_cypher_dir() / "schema" / f"{backend}.cypher").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("//")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
