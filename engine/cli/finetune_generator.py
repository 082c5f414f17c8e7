"""``kgsynth finetune generator``: LoRA SFT of a local causal LM on generated notes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from engine.errors import EngineError, validation_detail
from engine.finetune.generator import MERGED_DIR, SftConfig, train_generator
from engine.finetune.sft_data import read_pairs
from kg.cli import make_console

_err = make_console(stderr=True)


def generator(
    notes: Annotated[Path, typer.Argument(help="`kgsynth generate` notes (JSONL).")],
    model: Annotated[Path, typer.Option("--model", help="Local base model directory.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory for the adapter and metrics.")
    ],
    specs: Annotated[
        Path | None,
        typer.Option(help="`kgsynth plan` file the notes came from (default: their own specs)."),
    ] = None,
    max_length: Annotated[int, typer.Option(help="Tokens per (packed) sequence.")] = 2048,
    epochs: Annotated[float, typer.Option(help="Passes over the data.")] = 3,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps.")] = None,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 2e-5,
    batch_size: Annotated[int, typer.Option(help="Sequences per optimizer step.")] = 64,
    micro_batch_size: Annotated[int, typer.Option(help="Sequences per forward pass.")] = 4,
    warmup_ratio: Annotated[float, typer.Option(help="Share of steps warming up.")] = 0.03,
    lora_r: Annotated[int, typer.Option(help="LoRA rank.")] = 16,
    lora_alpha: Annotated[int, typer.Option(help="LoRA alpha.")] = 32,
    lora_dropout: Annotated[float, typer.Option(help="LoRA dropout.")] = 0.05,
    target_modules: Annotated[
        str, typer.Option(help="all-linear, or comma-separated module names (q_proj,v_proj).")
    ] = "all-linear",
    packing: Annotated[
        bool, typer.Option("--packing/--no-packing", help="Pack notes into full sequences.")
    ] = True,
    gradient_checkpointing: Annotated[
        bool, typer.Option(help="Recompute activations: less memory, slower.")
    ] = False,
    seed: Annotated[int, typer.Option(min=0, help="Seed (LoRA init, order, dropout).")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, mps.")] = "auto",
    precision: Annotated[
        str, typer.Option(help="auto (bf16 on GPU, else fp32), bf16, fp32.")
    ] = "auto",
    merge: Annotated[
        bool, typer.Option(help=f"Also write OUTPUT/{MERGED_DIR}: a merged model for vLLM.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Replace a non-empty output directory.")] = False,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Default: when stderr is a terminal."),
    ] = None,
) -> None:
    """Fine-tune a generator (MedSyn's LoRA LLaMA) on (prompt, note) pairs; loss on notes only."""
    try:
        config = SftConfig(
            base_model=model,
            max_length=max_length,
            epochs=epochs,
            max_steps=max_steps,
            learning_rate=learning_rate,
            batch_size=batch_size,
            micro_batch_size=micro_batch_size,
            warmup_ratio=warmup_ratio,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=target_modules,
            packing=packing,
            gradient_checkpointing=gradient_checkpointing,
            seed=seed,
            device=device,
            precision=precision,  # type: ignore[arg-type]
        )
    except ValidationError as err:
        raise EngineError(f"--{validation_detail(err).replace('_', '-')}") from None
    data = read_pairs(notes, specs)
    _err.print(f"{len(data.pairs)} (prompt, note) pairs from {notes} ({data.not_ok} not ok)")
    show = sys.stderr.isatty() if progress is None else progress
    columns = (
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_err, transient=True, disable=not show) as bar:
        task = bar.add_task("train", total=None, loss=float("nan"))

        def on_step(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, loss=loss)

        metrics = train_generator(config, data, output, merge=merge, force=force, on_step=on_step)
    _err.print(
        f"trained {metrics.steps} steps on {metrics.examples} notes in {metrics.sequences} "
        f"sequences ({metrics.device}, {metrics.dtype}): loss {metrics.initial_loss:.4f} -> "
        f"{metrics.final_loss:.4f}, {metrics.tokens_per_s:.0f} tokens/s; wrote {output}"
        + (f" and {output / MERGED_DIR}" if merge else "")
    )
