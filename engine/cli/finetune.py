"""``kgsynth finetune classifier|generator``: train a model from labelled data on disk.

Exit codes: 0 trained and written; 2 a usage or input error, named in one line (nothing
written). Heavy libraries (torch, transformers, peft) load only when a command runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from engine.cli.finetune_generator import generator
from engine.finetune.data import NEGATIVE, Task
from kg.cli import make_console

app = typer.Typer(
    name="finetune",
    help="Fine-tune classifiers (LoRA or full) and generators (LoRA SFT) on local backbones.",
    no_args_is_help=True,
)
_out = make_console()
_err = make_console(stderr=True)

ModelOpt = Annotated[
    Path | None,
    typer.Option(
        help="Local backbone directory (default: the packaged all-MiniLM-L6-v2); no hub downloads."
    ),
]


@contextmanager
def progress_bar(
    console: Console, show: bool, what: str = "training"
) -> Iterator[Callable[[int, int], None]]:
    """A rich bar on ``console``; yields ``on_step(done, total)``. Also used by experiments."""
    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not show) as bar:
        task = bar.add_task(what, total=None)

        def on_step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield on_step


@app.command("classifier")
def classifier(
    train: Annotated[
        Path,
        typer.Option(
            help="Training data: JSONL or CSV (text + label), or a `kgsynth dataset build` "
            "directory (its splits are used)."
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Classifier directory to write (or replace).")
    ],
    validation: Annotated[
        Path | None, typer.Option(help="Validation data (early stopping); default: a split.")
    ] = None,
    test: Annotated[Path | None, typer.Option(help="Test data; default: a split.")] = None,
    model: ModelOpt = None,
    task: Annotated[
        Task, typer.Option(help="binary: every label but --negative-label is 'symptom'.")
    ] = Task.multiclass,
    text_field: Annotated[str, typer.Option(help="Field (column) holding the text.")] = "text",
    label_field: Annotated[str, typer.Option(help="Field (column) holding the label.")] = "label",
    negative_label: Annotated[
        str, typer.Option(help="The negative class of --task binary.")
    ] = NEGATIVE,
    ratios: Annotated[
        str, typer.Option(help="train/validation/test split of rows without a 'split' field.")
    ] = "80/10/10",
    split_seed: Annotated[int, typer.Option(help="Seed of the row -> split hash.")] = 0,
    method: Annotated[str, typer.Option(help="lora or full fine-tuning.")] = "lora",
    epochs: Annotated[int, typer.Option(min=1)] = 3,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 2e-4,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    max_length: Annotated[int, typer.Option(min=8, help="Tokens per text (truncated).")] = 128,
    lora_r: Annotated[int, typer.Option(min=1)] = 8,
    lora_alpha: Annotated[int, typer.Option(min=1)] = 16,
    class_weights: Annotated[
        bool, typer.Option("--class-weights/--no-class-weights", help="Balanced class weights.")
    ] = True,
    patience: Annotated[
        int, typer.Option(min=1, help="Stop after this many epochs without a better val F1.")
    ] = 2,
    gradient_checkpointing: Annotated[
        bool, typer.Option("--gradient-checkpointing", help="Trade compute for memory.")
    ] = False,
    precision: Annotated[str, typer.Option(help="auto (bf16 on GPU), bf16 or fp32.")] = "auto",
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 (default: auto).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, shuffling, dropout.")] = 0,
    force: Annotated[
        bool, typer.Option("--force", help="Replace -o even when it is not a classifier.")
    ] = False,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Default: on a terminal.")
    ] = None,
) -> None:
    """Train a text classifier; writes the adapter, label map, metrics and data fingerprints."""
    from pydantic import ValidationError

    from engine.dataset.splits import parse_ratios
    from engine.errors import EngineError, validation_detail
    from engine.finetune.classifier import ClassifierConfig, check_output, train_and_save
    from engine.finetune.data import Fields, read_splits

    try:
        config = ClassifierConfig(
            model=str(model) if model else None,
            method=method,  # type: ignore[arg-type]
            epochs=epochs,
            learning_rate=learning_rate,
            batch_size=batch_size,
            max_length=max_length,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            class_weights=class_weights,
            patience=patience,
            gradient_checkpointing=gradient_checkpointing,
            precision=precision,  # type: ignore[arg-type]
            seed=seed,
        )
    except ValidationError as err:
        raise EngineError(f"--{validation_detail(err).replace('_', '-')}") from None
    check_output(output, force)
    fields = Fields(text_field, label_field, task, negative_label)
    parts = read_splits(train, validation, test, fields, parse_ratios(ratios), split_seed)
    show = sys.stderr.isatty() if progress is None else progress
    with progress_bar(_err, show) as on_step:
        result = train_and_save(config, parts, output, device, on_step)
    _out.print(result.summary())
    _err.print(f"wrote {output}")


app.command("generator")(generator)


def register(root: typer.Typer) -> None:
    """Add the ``finetune`` group to the root app."""
    root.add_typer(app, name="finetune")
