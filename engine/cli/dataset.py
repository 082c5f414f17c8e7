"""``kgsynth dataset build``: generated notes + annotations -> a training dataset directory.

Exit codes: 0 built; 2 a usage or input error, named in one line (nothing written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.dataset.splits import SplitConfig, SplitMethod, parse_ratios
from kg.cli import make_console

dataset_app = typer.Typer(
    name="dataset", help="Build training datasets from annotated notes.", no_args_is_help=True
)
_err = make_console(stderr=True)


@dataset_app.command("build")
def build(
    notes: Annotated[
        Path, typer.Option(help="Notes JSONL written by `kgsynth generate` (ok notes only).")
    ],
    annotations: Annotated[
        Path, typer.Option(help="Annotations JSONL written by `kgsynth annotate`.")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Dataset directory to write (or replace).")
    ],
    ratios: Annotated[
        str, typer.Option(help="train/validation/test ratios, e.g. 80/10/10 or 0.8,0.1,0.1.")
    ] = "80/10/10",
    split_seed: Annotated[int, typer.Option(help="Seed of the record -> split hash.")] = 0,
    split_method: Annotated[
        SplitMethod,
        typer.Option(
            help="hash: a record keeps its split as the data grows; stratified: exact "
            "ratios within each ICD code."
        ),
    ] = SplitMethod.hash,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace -o even when it is not a kgsynth dataset."),
    ] = False,
) -> None:
    """Sentence rows (JSONL, Parquet, Hugging Face datasets), splits by record and a card."""
    from engine.dataset.build import build_dataset  # datasets/pyarrow: only when building

    split = SplitConfig(ratios=parse_ratios(ratios), seed=split_seed, method=split_method)
    summary = build_dataset(notes, annotations, output, split, force)
    per_split = ", ".join(
        f"{name} {c.notes} notes / {c.sentences} sentences" for name, c in summary.splits.items()
    )
    left_out = sum(summary.excluded.values())
    _err.print(
        f"{output}: {summary.notes_used} notes ({per_split}); {left_out} notes left out "
        f"({', '.join(f'{v} {k}' for k, v in summary.excluded.items()) or 'none'}); "
        f"card {output / 'README.md'}"
    )


def register(app: typer.Typer) -> None:
    """Add the ``dataset`` group (``dataset build``) to the root app."""
    app.add_typer(dataset_app, name="dataset")
