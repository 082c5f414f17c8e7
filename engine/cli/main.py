"""The ``kgsynth`` command: connection options at the root, then kg / plan / generate."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from engine.cli import audit as audit_cli
from engine.cli import generate as generate_cli
from engine.cli import plan as plan_cli
from kg.cli import kg_app
from kg.errors import KgError, ValidationFailed
from kg.settings import resolve_settings
from loaders import cli as loaders_cli

app = typer.Typer(
    name="kgsynth",
    help="Clinically grounded synthetic clinical text from a curated knowledge graph.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    uri: Annotated[
        str | None,
        typer.Option(
            help="Graph URI: embedded:PATH (default), neo4j://HOST:PORT or bolt://...; "
            "env KGSYNTH_GRAPH_URI."
        ),
    ] = None,
    username: Annotated[str | None, typer.Option(help="Neo4j user; env NEO4J_USERNAME.")] = None,
    database: Annotated[
        str | None, typer.Option(help="Neo4j database; env NEO4J_DATABASE.")
    ] = None,
    graph: Annotated[
        str | None, typer.Option(help="Embedded graph name (default kgsynth).")
    ] = None,
) -> None:
    """Connection options apply to every command; the password comes from NEO4J_PASSWORD only."""
    ctx.obj = {"settings": resolve_settings(uri, username, database, graph)}


loaders_cli.register(kg_app)
app.add_typer(kg_app, name="kg")
plan_cli.register(app)
generate_cli.register(app)
audit_cli.register(app, kg_app)

_err = Console(stderr=True, soft_wrap=True)


def main() -> None:
    """Entry point: user errors become one clear message and a non-zero exit, no traceback."""
    try:
        app()  # standalone: usage errors print the usage and exit 2, typer.Exit(n) exits n
    except ValidationFailed as err:
        for problem in sorted(err.problems):
            colour = "red" if problem.severity == "error" else "yellow"
            _err.print(
                f"[{colour}]{problem.severity}[/{colour}] {escape(str(problem))}", highlight=False
            )
        _err.print(f"[red]error:[/red] {escape(str(err))}", highlight=False)
        sys.exit(1)
    except KgError as err:
        _err.print(f"[red]error:[/red] {escape(str(err))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        _err.print("[yellow]interrupted[/yellow]")
        sys.exit(130)


if __name__ == "__main__":
    main()
