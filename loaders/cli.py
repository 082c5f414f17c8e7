"""``kgsynth kg load / export / validate / seed``.

Problems print one per line as ``file:line: field: message`` on stderr; any error exits
with status 1 and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from kg.batch import Problem
from kg.cli import store_from_context
from kg.errors import ValidationFailed
from kg.store.writer import read_graph
from kg.validate import WARNING, errors, validate_store
from loaders.export import Format, disease_subgraph, export_batch, find_disease
from loaders.pipeline import check_paths, load_paths
from loaders.seed import PARTS, parse_parts, seed

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True, highlight=False)

PathsArg = Annotated[
    list[Path],
    typer.Argument(
        help="Files (.yaml .yml .json .csv .obo .owl .rdf .ttl) or directories of them."
    ),
]


def print_problems(problems: Sequence[Problem]) -> None:
    for problem in sorted(problems):
        suffix = " (warning)" if problem.severity == WARNING else ""
        err.print(f"{problem}{suffix}", markup=False)


def fail(problems: Sequence[Problem], what: str) -> typer.Exit:
    print_problems(problems)
    n = len(errors(problems))
    err.print(f"[red]{n} error(s)[/red]; {what}")
    return typer.Exit(1)


def load(ctx: typer.Context, paths: PathsArg) -> None:
    """Validate the files together and against the live graph, then write them.

    All or nothing: any error in any file prints one line per problem and writes nothing.
    Loading the same files again changes nothing (MERGE on ids).
    """
    with store_from_context(ctx) as store:
        try:
            result = load_paths(store, paths)
        except ValidationFailed as exc:
            raise fail(exc.problems, "nothing was written") from None
        print_problems(result.warnings)
        out.print(
            f"loaded {result.stats.nodes} nodes and {result.stats.relationships} "
            f"relationships into {store.display_uri} in {result.stats.seconds:.1f} s"
        )


def export(
    ctx: typer.Context,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="File (ttl, json) or directory (csv) to write.")
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help="ttl, json or csv.")] = "json",
    disease: Annotated[
        str | None, typer.Option(help="Only this disease's subgraph (id or name).")
    ] = None,
) -> None:
    """Write the graph (or one disease's self-contained subgraph) as Turtle, JSON or CSV."""
    if fmt not in ("ttl", "json", "csv"):
        raise typer.BadParameter(f"{fmt!r}; choose ttl, json or csv", param_hint="--format")
    with store_from_context(ctx) as store:
        batch = read_graph(store)
    if disease is not None:
        batch = disease_subgraph(batch, find_disease(batch, disease))
    files = export_batch(batch, cast(Format, fmt), output)
    out.print(
        f"wrote {batch.node_count()} nodes and {batch.rel_count()} relationships to "
        f"{output}" + (f" ({len(files)} files)" if fmt == "csv" else "")
    )


def validate(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files to check; none: the live graph.")
    ] = None,
    standalone: Annotated[
        bool, typer.Option(help="Check the files on their own, not against the live graph.")
    ] = False,
) -> None:
    """Check files (as `kg load` would, writing nothing) or, without paths, the live graph."""
    with store_from_context(ctx) as store:
        if paths:
            _, problems = check_paths(paths, None if standalone else store)
            what = f"{len(paths)} file(s)"
        else:
            problems = validate_store(store)
            what = f"the graph at {store.display_uri}"
    if errors(problems):
        raise fail(problems, f"{what} did not validate")
    print_problems(problems)
    warnings = len(problems)
    out.print(f"{what}: valid" + (f" ({warnings} warning(s))" if warnings else ""))


def seed_cmd(
    ctx: typer.Context,
    only: Annotated[
        str | None,
        typer.Option(
            help=f"Comma-separated parts: {', '.join(PARTS)} (default: all, in that order)."
        ),
    ] = None,
) -> None:
    """Load the shipped content: ICD-10-CM, SYMP, DO associations, curated YAML. Idempotent."""
    parts = parse_parts(only) if only else list(PARTS)
    with (
        store_from_context(ctx) as store,
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar,
    ):
        steps = [f"building {p}" for p in parts] + ["validating"] + [f"writing {p}" for p in parts]
        task = bar.add_task(steps[0], total=len(steps))

        def progress(part: str, event: str) -> None:
            bar.advance(task)
            done = int(bar.tasks[0].completed)
            if done < len(steps):
                bar.update(task, description=steps[done])

        try:
            built, warnings = seed(store, parts, progress)
        except ValidationFailed as exc:
            bar.stop()
            raise fail(exc.problems, "nothing was written") from None
        uri = store.display_uri
    print_problems(warnings)
    table = Table(title=f"seeded {uri}")
    for col in ("part", "nodes", "relationships", "seconds", "notes"):
        table.add_column(col, overflow="fold")
    for part in built:
        s = part.stats
        table.add_row(
            part.name,
            str(s.nodes if s else 0),
            str(s.relationships if s else 0),
            f"{s.seconds:.1f}" if s else "",
            "; ".join(part.notes),
        )
    out.print(table)


def register(kg_app: typer.Typer) -> None:
    """Add the loader commands to the ``kg`` command group."""
    kg_app.command("load")(load)
    kg_app.command("export")(export)
    kg_app.command("validate")(validate)
    kg_app.command("seed")(seed_cmd)
