"""The ``kgsynth`` command: connection options at the root, then kg / plan / generate."""

from __future__ import annotations

import functools
import signal
import sys
from importlib.metadata import version
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from engine.cli import annotate as annotate_cli
from engine.cli import audit as audit_cli
from engine.cli import dataset as dataset_cli
from engine.cli import evaluate as evaluate_cli
from engine.cli import experiment as experiment_cli
from engine.cli import export as export_cli
from engine.cli import finetune as finetune_cli
from engine.cli import generate as generate_cli
from engine.cli import plan as plan_cli
from engine.cli import serve as serve_cli
from engine.cli import timeline as timeline_cli
from kg.cli import kg_app, make_console
from kg.errors import KgError, ValidationFailed
from kg.settings import DEFAULT_QUERY_TIMEOUT, resolve_settings
from loaders import cli as loaders_cli

if TYPE_CHECKING:
    from typer._click import Command

app = typer.Typer(
    name="kgsynth",
    help="Clinically grounded synthetic clinical text from a curated knowledge graph.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"kgsynth {version('kgsynth')}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    uri: Annotated[
        str | None,
        typer.Option(
            help="Graph URI: embedded:PATH (default), neo4j://HOST:PORT or bolt://...; "
            "env KGSYNTH_GRAPH_URI, else NEO4J_URI."
        ),
    ] = None,
    username: Annotated[str | None, typer.Option(help="Neo4j user; env NEO4J_USERNAME.")] = None,
    database: Annotated[
        str | None, typer.Option(help="Neo4j database; env NEO4J_DATABASE.")
    ] = None,
    graph: Annotated[
        str | None, typer.Option(help="Embedded graph name (default kgsynth).")
    ] = None,
    query_timeout: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            help="Stop a read query on the server after this long "
            f"(default {DEFAULT_QUERY_TIMEOUT:g}); env KGSYNTH_QUERY_TIMEOUT.",
        ),
    ] = None,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Connection options apply to every command; the password comes from NEO4J_PASSWORD only."""
    # resolved when a command first needs the graph: a broken kgsynth.toml must not break --help
    ctx.obj = {
        "resolve_settings": functools.partial(
            resolve_settings, uri, username, database, graph, query_timeout=query_timeout
        )
    }


loaders_cli.register(kg_app)
app.add_typer(kg_app, name="kg")
plan_cli.register(app)
generate_cli.register(app)
annotate_cli.register(app)
audit_cli.register(app, kg_app)
dataset_cli.register(app)
export_cli.register(app)
evaluate_cli.register(app)
finetune_cli.register(app)
experiment_cli.register(app)
serve_cli.register(app)
timeline_cli.register(app)

_err = make_console(stderr=True)


def _say(label: str, style: str, message: str) -> None:
    """``label message`` on stderr; the message is printed as it is (no markup, no emoji)."""
    _err.print(Text.assemble((label, style), " ", message))


def _flags_without_type(command: Command) -> Command:
    """Flags take no value: their --help line shows no ``<bool>`` (typer prints one)."""
    help_option = command.get_help_option(command.context_class(command))
    for param in [*command.params, *([help_option] if help_option else [])]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _flags_without_type(sub)
    return command


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> None:
    """Entry point: user errors become one clear message and a non-zero exit, no traceback.

    SIGTERM and SIGHUP unwind like Ctrl-C: open stores close, temporary files go, exit 130.
    """
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    try:
        # standalone: usage errors print the usage and exit 2, typer.Exit(n) exits n
        _flags_without_type(typer.main.get_command(app))()
    except ValidationFailed as err:
        for problem in sorted(err.problems):
            _say(problem.severity, "red" if problem.severity == "error" else "yellow", str(problem))
        _say("error:", "red", str(err))
        sys.exit(1)
    except KgError as err:
        _say("error:", "red", str(err))
        sys.exit(2)
    except KeyboardInterrupt:
        _say("interrupted", "yellow", "")
        sys.exit(130)
    except OSError as err:  # a file the command could not read or write
        where = f"{err.filename}: " if err.filename else ""
        _say("error:", "red", f"{where}{err.strerror or err}")
        sys.exit(2)


if __name__ == "__main__":
    main()
