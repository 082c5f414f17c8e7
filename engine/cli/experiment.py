"""``kgsynth experiment ablation|icd``: the papers' downstream experiments, one command each.

Exit codes: 0 written; 2 a usage or input error, named in one line. Results directories
resume: finished runs are not trained again (docs/finetuning.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from engine.finetune.data import NEGATIVE, Task
from kg.cli import make_console

if TYPE_CHECKING:
    from engine.finetune.classifier import ClassifierConfig

app = typer.Typer(
    name="experiment",
    help="DualAlign's training-data ablation and MedSyn's ICD prediction, with tables and plots.",
    no_args_is_help=True,
)
_out = make_console()
_err = make_console(stderr=True)

Opt = typer.Option
ModelOpt = Annotated[
    Path | None,
    Opt(help="Local backbone directory (default: the packaged all-MiniLM-L6-v2)."),
]
SeedsOpt = Annotated[str, Opt(help="Seeds, one run per arm and seed: e.g. 0,1,2.")]
ArmsOpt = Annotated[str | None, Opt(help="Comma-separated arms (default: all the inputs allow).")]
EpochsOpt = Annotated[int, Opt(min=1)]
LrOpt = Annotated[float, Opt(help="Peak learning rate (AdamW).")]
BatchOpt = Annotated[int, Opt(min=1)]
LengthOpt = Annotated[int, Opt(min=8, help="Tokens per text (truncated).")]
MethodOpt = Annotated[str, Opt(help="lora or full fine-tuning.")]
RatiosOpt = Annotated[str, Opt(help="train/validation/test split of real/gold rows.")]
DeviceOpt = Annotated[str | None, Opt(help="cpu, cuda, cuda:1 (default: auto).")]
ForceOpt = Annotated[bool, Opt("--force", help="Replace -o when it holds other results.")]
ProgressOpt = Annotated[
    bool | None, Opt("--progress/--no-progress", help="Default: on a terminal.")
]
OutputOpt = Annotated[Path, Opt("-o", "--output", help="Results directory (resumable).")]


def _seeds(text: str) -> list[int]:
    from engine.errors import EngineError

    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise EngineError(f"--seeds {text!r}: give integers separated by commas") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise EngineError(f"--seeds {text!r}: give one or more distinct integers")
    return seeds


def _config(**values: Any) -> ClassifierConfig:
    from pydantic import ValidationError

    from engine.errors import EngineError, validation_detail
    from engine.finetune.classifier import ClassifierConfig

    try:
        return ClassifierConfig(**values)
    except ValidationError as err:
        raise EngineError(f"--{validation_detail(err).replace('_', '-')}") from None


def _print(output: Path) -> None:
    """The markdown table on stdout (never cut to the terminal's width)."""
    _out.print((output / "table.md").read_text(encoding="utf-8").rstrip())
    _err.print(f"wrote {output}/table.csv, table.json, table.md, plot.html, runs/")


@app.command("ablation")
def ablation(
    gold: Annotated[Path, Opt(help="Gold labelled sentences: JSONL/CSV (text + label).")],
    output: OutputOpt,
    synthetic: Annotated[
        Path | None, Opt(help="Aligned synthetic sentences: JSONL/CSV or a kgsynth dataset.")
    ] = None,
    baseline: Annotated[
        Path | None, Opt(help="Unguided synthetic sentences: JSONL/CSV or a kgsynth dataset.")
    ] = None,
    model: ModelOpt = None,
    task: Annotated[
        Task, Opt(help="binary: every label but --negative-label is 'symptom'.")
    ] = Task.multiclass,
    negative_label: Annotated[str, Opt(help="The negative class of --task binary.")] = NEGATIVE,
    gold_text_field: Annotated[str, Opt(help="Gold text field (column).")] = "text",
    gold_label_field: Annotated[str, Opt(help="Gold label field (column).")] = "label",
    synthetic_text_field: Annotated[str, Opt(help="Synthetic text field.")] = "text",
    synthetic_label_field: Annotated[
        str, Opt(help="Synthetic label field (a kgsynth dataset always gives label_name).")
    ] = "label",
    seeds: SeedsOpt = "0,1,2",
    arms: ArmsOpt = None,
    ratios: RatiosOpt = "80/10/10",
    split_seed: Annotated[int, Opt(help="Seed of the gold row -> split hash.")] = 0,
    method: MethodOpt = "lora",
    epochs: EpochsOpt = 3,
    learning_rate: LrOpt = 2e-4,
    batch_size: BatchOpt = 32,
    max_length: LengthOpt = 128,
    save_models: Annotated[
        bool, Opt("--save-models", help="Keep each run's classifier in runs/ARM/seed-S/.")
    ] = False,
    device: DeviceOpt = None,
    force: ForceOpt = False,
    progress: ProgressOpt = None,
) -> None:
    """Gold only, unguided only, aligned only, gold + unguided, gold + aligned, over seeds."""
    from engine.cli.finetune import progress_bar
    from engine.dataset.splits import parse_ratios
    from engine.experiment.ablation import AblationSettings, default_arms, run_ablation
    from engine.finetune.data import Fields

    settings = AblationSettings(
        classifier=_config(
            model=str(model) if model else None,
            method=method,
            epochs=epochs,
            learning_rate=learning_rate,
            batch_size=batch_size,
            max_length=max_length,
        ),
        seeds=_seeds(seeds),
        arms=arms.split(",") if arms else default_arms(synthetic is not None, baseline is not None),
        gold_fields=Fields(gold_text_field, gold_label_field, task, negative_label),
        synthetic_fields=Fields(synthetic_text_field, synthetic_label_field, task, negative_label),
        ratios=parse_ratios(ratios),
        split_seed=split_seed,
        save_models=save_models,
    )
    show = sys.stderr.isatty() if progress is None else progress
    with progress_bar(_err, show, "ablation") as on_step:
        run_ablation(gold, synthetic, baseline, output, settings, force, on_step, device)
    _print(output)


@app.command("icd")
def icd(
    real: Annotated[Path, Opt(help="Real notes: JSONL/CSV with text and ICD code fields.")],
    output: OutputOpt,
    synthetic: Annotated[
        Path | None,
        Opt(help="Synthetic notes: `kgsynth generate` output, or JSONL/CSV (text + code)."),
    ] = None,
    model: ModelOpt = None,
    level: Annotated[str, Opt(help="category (3 characters, G30) or full (G30.9).")] = "category",
    text_field: Annotated[str, Opt(help="Text field of --real (and plain --synthetic).")] = "text",
    code_field: Annotated[
        str, Opt(help="ICD code field of --real (and plain --synthetic).")
    ] = "icd_code",
    target: Annotated[
        int | None,
        Opt(
            min=1,
            help="Upsample codes with fewer real training notes to this many "
            "(default: the median per code).",
        ),
    ] = None,
    seeds: SeedsOpt = "0,1,2",
    arms: ArmsOpt = None,
    ratios: RatiosOpt = "80/10/10",
    split_seed: Annotated[int, Opt(help="Seed of the real row -> split hash.")] = 0,
    method: MethodOpt = "lora",
    epochs: EpochsOpt = 3,
    learning_rate: LrOpt = 2e-4,
    batch_size: BatchOpt = 16,
    max_length: LengthOpt = 256,
    device: DeviceOpt = None,
    force: ForceOpt = False,
    progress: ProgressOpt = None,
) -> None:
    """Note -> ICD code with hit@1/3/5: real, real + synthetic upsampling of rare codes,
    synthetic only."""
    from engine.cli.finetune import progress_bar
    from engine.dataset.splits import parse_ratios
    from engine.errors import EngineError
    from engine.experiment.icd import ARMS, IcdSettings, Level, run_icd
    from engine.finetune.data import Fields

    if level not in {lv.value for lv in Level}:
        raise EngineError(f"--level {level!r}: choose category or full")
    default = list(ARMS) if synthetic is not None else ["real"]
    fields = Fields(text_field, code_field)
    settings = IcdSettings(
        classifier=_config(
            model=str(model) if model else None,
            method=method,
            epochs=epochs,
            learning_rate=learning_rate,
            batch_size=batch_size,
            max_length=max_length,
        ),
        seeds=_seeds(seeds),
        arms=arms.split(",") if arms else default,
        level=Level(level),
        target=target,
        real_fields=fields,
        synthetic_fields=fields,
        ratios=parse_ratios(ratios),
        split_seed=split_seed,
    )
    show = sys.stderr.isatty() if progress is None else progress
    with progress_bar(_err, show, "icd") as on_step:
        run_icd(real, synthetic, output, settings, force, on_step, device)
    _print(output)


def register(root: typer.Typer) -> None:
    """Add the ``experiment`` group to the root app."""
    root.add_typer(app, name="experiment")
