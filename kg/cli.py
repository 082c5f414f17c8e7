"""``kgsynth kg ...``: schema, named queries, read-only Cypher, statistics and info."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from kg.coverage import Group, coverage
from kg.coverage import min_weighted_symptoms as min_weighted_symptoms_setting
from kg.errors import KgError, ReadOnlyError
from kg.queries import check_params, get_query, named_queries
from kg.settings import GraphSettings, resolve_settings
from kg.store import GraphStore, open_store
from kg.store.base import looks_like_write


def make_console(*, stderr: bool = False) -> Console:
    """A console for messages that carry user data: no markup, emoji codes or highlighting.

    ``:ID:`` or ``[red]`` in a file name or a CSV header is printed as written; styles come
    from ``Text`` objects. Not a terminal: plain text, lines never wrapped.
    """
    return Console(stderr=stderr, soft_wrap=True, markup=False, emoji=False, highlight=False)


console = make_console()
notes = make_console(stderr=True)

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
    """The connection settings (flags, env, config file), resolved on first use and kept."""
    obj = ctx.find_root().obj
    if not isinstance(obj, dict):
        return resolve_settings()
    if not isinstance(obj.get("settings"), GraphSettings):
        resolve: Callable[[], GraphSettings] = obj.get("resolve_settings", resolve_settings)
        obj["settings"] = resolve()
    settings: GraphSettings = obj["settings"]
    return settings


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
    """Rows as JSON, a table on a terminal, else tab-separated (a header line, then rows)."""
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    if not console.is_terminal:
        if rows:
            typer.echo("\t".join(rows[0]))
        for row in rows:
            typer.echo("\t".join(_tsv(_cell(v)) for v in row.values()))
        return
    if not rows:
        console.print("(no rows)", style="dim")
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


def _tsv(cell: str) -> str:
    """A cell on one line: tab, newline and backslash escaped as in PostgreSQL's text format."""
    return cell.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


kg_app = typer.Typer(help="The knowledge graph: schema, queries, statistics.", no_args_is_help=True)


@kg_app.command("init")
def init(ctx: typer.Context) -> None:
    """Apply the schema (indexes/constraints, schema version). Safe to run again."""
    with store_from_context(ctx) as store:
        store.apply_schema()
        console.print(
            f"schema v{store.schema_version()} applied to {store.display_uri} ({store.backend})"
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
        notes.print(f"graph at {store.display_uri}")
        if not rows:
            notes.print("empty: load content with `kgsynth kg seed`", style="dim")
            return
    print_rows(rows, as_json, title="graph statistics")


@kg_app.command("coverage")
def coverage_cmd(
    ctx: typer.Context,
    as_json: JsonOpt = False,
    min_weighted_symptoms: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Frequency-weighted symptoms a profile needs (default 5; "
            "env KGSYNTH_MIN_WEIGHTED_SYMPTOMS, kgsynth.toml [profiles]).",
        ),
    ] = None,
    all_blocks: Annotated[
        bool, typer.Option("--all-blocks", help="List blocks no code of resolves, too.")
    ] = False,
    profiles: Annotated[
        bool, typer.Option("--profiles", help="List each disease's profile counts too.")
    ] = False,
) -> None:
    """Per ICD-10-CM chapter and block: codes resolving to a disease, and how rich."""
    threshold = min_weighted_symptoms_setting(min_weighted_symptoms)
    with store_from_context(ctx) as store:
        report = coverage(store, threshold)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    console.print(report.headline())
    print_rows([_group_row(g, "chapter") for g in report.chapters], False, title="chapters")
    blocks = [g for g in report.blocks if all_blocks or g.resolved]
    print_rows([_group_row(g, "block") for g in blocks], False, title="blocks")
    if profiles:
        rows = [
            {
                "disease": f"{p.disease} ({p.disease_id})",
                "codes": p.codes_resolving,
                "symptoms": p.symptoms,
                "weighted": p.weighted,
                "age": p.age,
                "sex": p.sex,
                "windows": p.windows,
                "thin": p.thin,
            }
            for p in report.profiles
        ]
        print_rows(rows, False, title="profiles")


def _group_row(g: Group, kind: str) -> dict[str, Any]:
    return {
        kind: g.key,
        "title": g.title,
        "codes": g.codes,
        "resolved": g.resolved,
        "exact": g.exact,
        "ancestor": g.ancestor,
        "descendant": g.descendant,
        "weighted": g.weighted,
        "persona": g.persona,
        "windows": g.windows,
        "rich": g.rich,
    }


@kg_app.command("info")
def info(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Backend, URI (never the password) and what chose it, server and schema version."""
    with store_from_context(ctx) as store:
        row = {
            "backend": store.backend,
            "uri": store.display_uri,
            "chosen_by": store.settings.uri_source,
            "query_timeout_s": store.settings.query_timeout,
            "server": store.server_version(),
            "schema_version": store.schema_version(),
            "named_queries": len(named_queries()),
        }
    if as_json:
        typer.echo(json.dumps(row, indent=2))
    else:
        for key, value in row.items():
            console.print(f"{key}: {'(not initialised)' if value is None else value}")
