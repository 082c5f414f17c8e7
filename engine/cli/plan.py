"""``kgsynth plan``: generation specs (or ready-to-submit OpenAI Batch lines) from the graph."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from engine.cli.options import (
    AllowThinOpt,
    ByPrevalenceOpt,
    DiseaseOpt,
    ForceOpt,
    IcdOpt,
    MinWeightedOpt,
    NOpt,
    PatientsOpt,
    PopulationOpt,
    Weighting,
    WeightingOpt,
    plan_request,
)
from engine.errors import EngineError
from engine.plan import Planner, openai_batch_line, plan_lines, sampling_params
from engine.recipes import recipes
from engine.spec import GenerationSpec
from kg.cli import make_console, store_from_context
from kg.outfile import open_output

_err = make_console(stderr=True)
PROGRESS_FROM = 5_000


class Format(StrEnum):
    specs = "specs"
    openai_batch = "openai-batch"


def plan(
    ctx: typer.Context,
    recipe: Annotated[str, typer.Option("--recipe", "-r", help=f"One of: {', '.join(recipes())}.")],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="JSONL file (or a pipe) to write."),
    ],
    n: NOpt = None,
    patients: PatientsOpt = None,
    icd: IcdOpt = None,
    disease: DiseaseOpt = None,
    by_prevalence: ByPrevalenceOpt = False,
    code_weighting: WeightingOpt = Weighting.prevalence,
    population: PopulationOpt = None,
    seed: Annotated[int, typer.Option(min=0, help="Run seed.")] = 0,
    fmt: Annotated[
        Format, typer.Option("--format", help="specs or openai-batch lines.")
    ] = Format.specs,
    model: Annotated[str | None, typer.Option(help="Model name (openai-batch).")] = None,
    temperature: Annotated[
        float | None, typer.Option(help="LLM temperature (openai-batch; default: the recipe's).")
    ] = None,
    top_p: Annotated[
        float | None, typer.Option(help="LLM top_p (openai-batch; default 1).")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="LLM max_tokens (openai-batch; default: the recipe's).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Recipe parameter KEY=VALUE (repeatable; see docs/recipes.md)."),
    ] = None,
    start: Annotated[int, typer.Option(min=0, help="First record index to write.")] = 0,
    stop: Annotated[int | None, typer.Option(min=0, help="Stop before this record index.")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Processes that plan and render (forked; the output is identical)."
        ),
    ] = 1,
    force: ForceOpt = False,
    allow_thin: AllowThinOpt = False,
    min_weighted_symptoms: MinWeightedOpt = None,
) -> None:
    """Plan records: one JSON line per record, identical for identical inputs and seed."""
    request = plan_request(
        "plan",
        recipe=recipe,
        icd=icd,
        disease=disease,
        by_prevalence=by_prevalence,
        code_weighting=code_weighting,
        n=n,
        seed=seed,
        settings=set_,
        population=population,
        allow_thin=allow_thin,
        min_weighted_symptoms=min_weighted_symptoms,
        patients=patients,
    )
    if fmt is Format.openai_batch and not model:
        raise EngineError("--format openai-batch needs --model (the model the batch will run)")
    with store_from_context(ctx) as store:
        planner = Planner(store, request)
    params = sampling_params(planner.recipe.generation, temperature, top_p, max_tokens)
    output_model = planner.recipe.output_model
    shares = planner.code_probs.tolist() if planner.code_probs is not None else []
    for i, target in enumerate(planner.targets):
        code = target.icd.code if target.icd else "-"
        share = f"  p={shares[i]:.3f}" if shares else ""
        resolved = target.resolution
        how = f" {resolved.describe()}" if resolved and resolved.how != "exact" else ""
        _err.print(f"{code} -> {target.disease} ({target.disease_id}){how}{share}")
    for note in planner.notes:
        _err.print(Text.assemble(("note", "yellow"), f" {note}"))
    for how in planner.prevalence_notes:
        _err.print(f"  {how}")
    for note in planner.skipped:
        _err.print(Text.assemble(("skipped", "yellow"), f" {note}"))
    stop = planner.total if stop is None else stop
    total = max(stop - start, 0)
    columns = (TextColumn("planning"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with (
            open_output(output, replaces={"specs", "batch"}, command="plan", force=force) as fh,
            Progress(
                *columns, console=_err, transient=True, disable=total < PROGRESS_FROM
            ) as progress,
        ):
            task = progress.add_task("plan", total=total)
            if fmt is Format.specs:
                line: Callable[[GenerationSpec], str] = GenerationSpec.model_dump_json
            else:
                assert model is not None
                line = partial(openai_batch_line, model, params, output_model)
            for text, count in plan_lines(planner, line, start, stop, workers):
                fh.write(text)
                progress.advance(task, count)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: the temporary file is gone already
        done = "nothing written to" if output.is_file() or not output.exists() else "stopped"
        _err.print(Text.assemble(("interrupted", "yellow"), f": {done} {output}"))
        raise typer.Exit(130) from None
    _err.print(
        f"wrote {total} {'specs' if fmt is Format.specs else 'batch requests'} "
        f"({planner.recipe.name}, seed {seed}, kg {planner.kg_hash[:12]}) to {output}"
    )


def register(app: typer.Typer) -> None:
    """Add the ``plan`` command to the root app."""
    app.command("plan")(plan)
