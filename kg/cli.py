"""``kgsynth kg ...``: schema, named queries, read-only Cypher, statistics and info."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from kg.errors import KgError, ReadOnlyError
from kg.queries import check_params, get_query, named_queries
from kg.settings import GraphSettings, resolve_settings
from kg.store import GraphStore, open_store
from kg.store.base import looks_like_write

console = Console(soft_wrap=True)

ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="Query parameter as KEY=VALUE (a string)."),
]
JsonParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param-json", help="Query parameter as KEY=JSON (number, list, ...)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print rows as JSON.")]


def settings_from_context(ctx: typer.Context) -> GraphSettings:
    """The connection settings the root command resolved (flags, env, config file)."""
    obj = ctx.find_root().obj
    if isinstance(obj, dict) and isinstance(obj.get("settings"), GraphSettings):
        return obj["settings"]
    return resolve_settings()


def store_from_context(ctx: typer.Context) -> GraphStore:
    """Open the graph store for this command; the caller closes it (use ``with``)."""
    return open_store(settings_from_context(ctx))


def parse_params(params: list[str] | None, json_params: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw, as_json in [(p, False) for p in params or []] + [(p, True) for p in json_params or []]:
        key, sep, value = raw.partition("=")
        if not sep or not key:
            raise KgError(f"parameter {raw!r} must look like KEY=VALUE")
        if as_json:
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError as err:
                raise KgError(f"--param-json {key}: not valid JSON ({err.msg})") from None
        else:
            out[key] = value
    return out


def print_rows(rows: list[dict[str, Any]], as_json: bool, title: str | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    if not rows:
        console.print("[dim](no rows)[/dim]")
        return
    table = Table(title=title)
    for col in rows[0]:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(v) for v in row.values()))
    console.print(table)


def _cell(value: Any) -> str:
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return "" if value is None else str(value)


kg_app = typer.Typer(help="The knowledge graph: schema, queries, statistics.", no_args_is_help=True)


@kg_app.command("init")
def init(ctx: typer.Context) -> None:
    """Apply the schema (indexes/constraints, schema version). Safe to run again."""
    with store_from_context(ctx) as store:
        store.apply_schema()
        console.print(
            f"schema v{store.schema_version()} applied to [bold]{store.display_uri}[/bold] "
            f"({store.backend})"
        )


@kg_app.command("query")
def query(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Named query (see --list).")] = None,
    param: ParamOpt = None,
    param_json: JsonParamOpt = None,
    as_json: JsonOpt = False,
    list_: Annotated[bool, typer.Option("--list", help="List the named queries.")] = False,
) -> None:
    """Run a named, parameterised query from cypher/queries/."""
    if list_ or name is None:
        rows = [
            {"name": q.name, "params": ", ".join(q.params), "description": q.description}
            for q in named_queries().values()
        ]
        print_rows(rows, as_json, title="named queries")
        return
    nq = get_query(name)
    params = parse_params(param, param_json)
    check_params(nq, params)
    with store_from_context(ctx) as store:
        print_rows(store.read(nq.text, params), as_json, title=name)


@kg_app.command("cypher")
def cypher(
    ctx: typer.Context,
    statement: Annotated[str, typer.Argument(help="A read-only Cypher statement.")],
    param: ParamOpt = None,
    param_json: JsonParamOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run read-only Cypher (writes are refused; change the graph with `kg load`)."""
    if looks_like_write(statement):
        raise ReadOnlyError(
            "`kg cypher` is read-only and this statement writes (CREATE/MERGE/SET/DELETE/...); "
            "change the graph with `kgsynth kg load FILE`"
        )
    params = parse_params(param, param_json)
    with store_from_context(ctx) as store:
        print_rows(store.read(statement, params), as_json)


@kg_app.command("stats")
def stats(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Count nodes per label and relationships per type."""
    with store_from_context(ctx) as store:
        rows = store.read(get_query("graph_stats").text)
    rows.sort(key=lambda r: (r["kind"] != "node", r["name"]))
    if not as_json:
        console.print(f"graph at [bold]{store.display_uri}[/bold]")
        if not rows:
            console.print("[dim]empty: load content with `kgsynth kg seed`[/dim]")
            return
    print_rows(rows, as_json, title="graph statistics")


@kg_app.command("info")
def info(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Backend, URI (never the password), server version and schema version."""
    with store_from_context(ctx) as store:
        row = {
            "backend": store.backend,
            "uri": store.display_uri,
            "server": store.server_version(),
            "schema_version": store.schema_version(),
            "named_queries": len(named_queries()),
        }
    if as_json:
        typer.echo(json.dumps(row, indent=2))
    else:
        for key, value in row.items():
            console.print(f"[bold]{key}[/bold]: {'(not initialised)' if value is None else value}")
