"""``kgsynth kg load / export / validate / seed``.

Problems print one per line as ``file:line: field: message`` on stderr; any error exits
with status 1 and writes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from kg.batch import Problem
from kg.cli import print_rows, store_from_context
from kg.errors import ValidationFailed
from kg.outfile import open_output, output_dir
from kg.store.writer import read_graph
from kg.validate import WARNING, errors, validate_store
from loaders.changes import clobber_problems, show_owner
from loaders.csv_admin import write_csv_dir
from loaders.export import Format, disease_subgraph, find_disease, stream_turtle, write_export
from loaders.pipeline import check_paths, load_paths
from loaders.seed import PARTS, incomplete_seed, parse_parts, seed

out = Console(soft_wrap=True, emoji=False)
err = Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)

PathsArg = Annotated[
    list[Path],
    typer.Argument(
        help="Files (.yaml .yml .json .csv .obo .owl .rdf .ttl) or directories of them."
    ),
]


#: Problems of one kind (field and severity) printed before the rest are only counted.
SHOWN_PER_KIND = 20


def print_problems(problems: Sequence[Problem]) -> None:
    """One line per problem, at most ``SHOWN_PER_KIND`` of a kind; then a count of the rest."""
    shown: Counter[tuple[str, str]] = Counter()
    hidden: Counter[tuple[str, str]] = Counter()
    for problem in sorted(problems):
        kind = (problem.severity, problem.field)
        if shown[kind] >= SHOWN_PER_KIND:
            hidden[kind] += 1
            continue
        shown[kind] += 1
        suffix = " (warning)" if problem.severity == WARNING else ""
        err.print(f"{problem}{suffix}", markup=False)
    for (severity, field), n in sorted(hidden.items()):
        err.print(
            f"... and {n} more {severity}(s) in field {field or '(none)'!r} "
            f"like those above, not shown",
            markup=False,
        )


def fail(problems: Sequence[Problem], what: str) -> typer.Exit:
    print_problems(problems)
    n = len(errors(problems))
    err.print(Text.assemble((f"{n} error(s)", "red"), f"; {what}"))
    return typer.Exit(1)


def load(
    ctx: typer.Context,
    paths: PathsArg,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Overwrite nodes and relationships another module defines (each is listed).",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print what would be added, changed and left unchanged; write nothing.",
        ),
    ] = False,
) -> None:
    """Validate the files together and against the live graph, then write them.

    All or nothing: any error in any file prints one line per problem and writes nothing.
    Changing what another module defined is refused (naming it, its module and the fields)
    unless --replace. Loading the same files again writes nothing (MERGE on ids).
    """
    with store_from_context(ctx) as store:
        try:
            result = load_paths(store, paths, replace=replace, dry_run=dry_run)
        except ValidationFailed as exc:
            raise fail(exc.problems, "nothing was written") from None
        print_problems(result.warnings)
        if dry_run:
            for line in result.diff.lines():
                out.print(line, markup=False)
            if result.replaced and not replace:
                raise fail(
                    clobber_problems(result.batch, result.replaced),
                    "a load would be refused (--replace overwrites); dry run, nothing written",
                )
            out.print("dry run: nothing was written")
            return
        for change in result.replaced:
            out.print(
                f"replaced {change.what} (was module {show_owner(change.owner)}): "
                + "; ".join(change.field_lines()),
                markup=False,
            )
        out.print(
            f"loaded {result.stats.nodes} nodes and {result.stats.relationships} "
            f"relationships into {store.display_uri} in {result.stats.seconds:.1f} s",
            markup=False,
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
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite -o even when it holds something else.")
    ] = False,
) -> None:
    """Write the graph (or one disease's self-contained subgraph) as Turtle, JSON or CSV.

    The output appears only when complete; an existing file of another kind (generate notes,
    a curated module, a file kgsynth did not write) is kept unless --force.
    """
    if fmt not in ("ttl", "json", "csv"):
        raise typer.BadParameter(f"{fmt!r}; choose ttl, json or csv", param_hint="--format")
    sink = (
        output_dir(output, command="kg export", force=force)
        if fmt == "csv"
        else open_output(
            output, replaces={"export-json", "export-ttl"}, command="kg export", force=force
        )
    )
    with sink as target:  # the output is checked before the (long) graph read
        if fmt == "ttl" and disease is None and not isinstance(target, Path):
            with store_from_context(ctx) as store:  # page by page: memory stays flat
                nodes, rels = stream_turtle(store, target)
        else:
            with store_from_context(ctx) as store:
                batch = read_graph(store)
            if disease is not None:
                batch = disease_subgraph(batch, find_disease(batch, disease))
            if isinstance(target, Path):
                files = len(write_csv_dir(batch, target))
            else:
                write_export(batch, cast(Format, fmt), target)
            nodes, rels = batch.node_count(), batch.rel_count()
    out.print(
        f"wrote {nodes} nodes and {rels} relationships to "
        f"{output}" + (f" ({files} files)" if fmt == "csv" else ""),
        markup=False,
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
        problems: list[Problem] = []
        try:
            if paths:
                what = f"{len(paths)} file(s)"
                problems = check_paths(paths, None if standalone else store)[1]
            else:
                what = f"the graph at {store.display_uri}"
                unfinished = incomplete_seed(store)
                problems = [unfinished] if unfinished else []
                problems += validate_store(store)
        except ValidationFailed as exc:  # the live graph does not read as valid
            problems += exc.problems
    if errors(problems):
        raise fail(problems, f"{what} did not validate")
    print_problems(problems)
    warnings = len(problems)
    out.print(f"{what}: valid" + (f" ({warnings} warning(s))" if warnings else ""), markup=False)


def seed_cmd(
    ctx: typer.Context,
    only: Annotated[
        str | None,
        typer.Option(
            help=f"Comma-separated parts: {', '.join(PARTS)} (default: all, in that order)."
        ),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Overwrite nodes and relationships a non-seed module defines."
        ),
    ] = False,
) -> None:
    """Load the shipped content: ICD-10-CM, SYMP, DO associations, curated YAML. Idempotent.

    Only what is missing or different is written. Interrupted, it leaves the graph marked
    as an incomplete seed (`kg validate` says so); running it again completes it.
    """
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

        unfinished = incomplete_seed(store)
        if unfinished is not None:
            err.print(f"{unfinished.message}: completing it now", markup=False)
        try:
            built, warnings = seed(store, parts, progress, replace=replace, freeze=True)
        except ValidationFailed as exc:
            bar.stop()
            raise fail(exc.problems, "nothing was written") from None
        except KeyboardInterrupt:
            bar.stop()
            err.print(
                "interrupted: incomplete seed; run `kgsynth kg seed` again to complete it",
                markup=False,
            )
            raise typer.Exit(130) from None
        uri = store.display_uri
    print_problems(warnings)
    rows = [
        {
            "part": part.name,
            "nodes written": part.stats.nodes if part.stats else 0,
            "relationships written": part.stats.relationships if part.stats else 0,
            "seconds": round(part.stats.seconds, 1) if part.stats else 0.0,
            "notes": "; ".join(part.notes),
        }
        for part in built
    ]
    print_rows(rows, as_json=False, title=f"seeded {uri}")


def register(kg_app: typer.Typer) -> None:
    """Add the loader commands to the ``kg`` command group."""
    kg_app.command("load")(load)
    kg_app.command("export")(export)
    kg_app.command("validate")(validate)
    kg_app.command("seed")(seed_cmd)
