"""``kgsynth evaluate NOTES``: diversity, fidelity, privacy and alignment -> metrics.json.

Exit codes: 0 written; 2 a usage or input error, named in one line (nothing written).
Heavy libraries load only when the command runs (docs/evaluation.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.errors import EngineError
from engine.runner.output import write_manifest
from kg.cli import make_console, store_from_context

_out = make_console()
_err = make_console(stderr=True)


def evaluate(
    ctx: typer.Context,
    notes: Annotated[Path, typer.Argument(help="Notes JSONL written by `kgsynth generate`.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Report directory (metrics.json is replaced).")
    ],
    reference: Annotated[
        Path | None,
        typer.Option(help="JSONL of real notes: fidelity, DCR and shared passages against it."),
    ] = None,
    reference_field: Annotated[
        str, typer.Option(help="Field of --reference lines holding the text.")
    ] = "text",
    reference_code_field: Annotated[
        str, typer.Option(help="Field of --reference lines holding the ICD code (optional).")
    ] = "icd_code",
    annotations: Annotated[
        Path | None,
        typer.Option(help="Annotations JSONL (`kgsynth annotate`): keyword realisation."),
    ] = None,
    against: Annotated[
        Path | None, typer.Option(help="A second notes JSONL evaluated the same way, beside it.")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            help="Local sentence-transformers model directory (default: packaged all-MiniLM-L6-v2)."
        ),
    ] = None,
    alignment: Annotated[
        bool,
        typer.Option(
            "--alignment/--no-alignment",
            help="Audit the notes' specs against the graph (needs the graph).",
        ),
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed of every sample and permutation.")] = 0,
    self_bleu_sample: Annotated[
        int, typer.Option(min=2, help="Notes in the self-BLEU sample.")
    ] = 100,
    ngram: Annotated[
        int, typer.Option(min=1, help="Shared passage length (tokens) counted as plagiarism.")
    ] = 12,
    near_duplicate: Annotated[
        float, typer.Option(min=0.01, max=1.0, help="MinHash Jaccard of a near-duplicate.")
    ] = 0.8,
    permutations: Annotated[int, typer.Option(min=1, help="Permutations of the MMD test.")] = 200,
    max_embed: Annotated[int, typer.Option(min=2, help="Notes per side in the MMD sample.")] = 2000,
    min_symptom_recall: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Keep notes whose recall of the requested symptoms is at least this: "
            "OUTPUT/filtered.jsonl (MedSyn's filter).",
        ),
    ] = None,
    embeddings: Annotated[
        bool,
        typer.Option(
            "--embeddings/--no-embeddings",
            help="Embed the notes: dispersion, symptom recall, projection; fidelity and DCR "
            "with --reference.",
        ),
    ] = True,
) -> None:
    """Evaluate a synthetic note set: writes OUTPUT/metrics.json and OUTPUT/report.html and
    prints a summary table."""
    from engine.evaluate.evaluate import Inputs, Settings, Shared
    from engine.evaluate.evaluate import evaluate as run
    from engine.evaluate.inputs import read_annotations, read_notes, write_filtered
    from engine.evaluate.recall import passing
    from engine.evaluate.report import project, write_report
    from engine.evaluate.summary import run_names, table
    from engine.gate.reference import load_reference

    settings = Settings(
        seed=seed,
        self_bleu_sample=self_bleu_sample,
        ngram=ngram,
        near_duplicate=near_duplicate,
        permutations=permutations,
        max_embed=max_embed,
        min_symptom_recall=min_symptom_recall,
        embeddings=embeddings,
        model=model,
    )
    if min_symptom_recall is not None and not embeddings:
        raise EngineError("--min-symptom-recall needs the embeddings; drop --no-embeddings")
    ref = load_reference(reference, reference_field, reference_code_field) if reference else None
    ann = read_annotations(annotations) if annotations else None
    store = (lambda: store_from_context(ctx)) if alignment else None
    runs = []
    for path, anns in [(notes, ann), *([(against, None)] if against else [])]:
        found, not_ok = read_notes(path)
        runs.append(Inputs(path, found, not_ok, ref, reference, anns, store))
    shared = Shared()
    docs = [run(inp, settings, shared) for inp in runs]
    doc = docs[0]
    doc["against"] = docs[1] if len(docs) > 1 else None
    output.mkdir(parents=True, exist_ok=True)
    target = output / "metrics.json"
    write_manifest(target, doc)  # JSON written atomically
    named = list(zip(run_names(doc), shared.synthetic, strict=False))
    if shared.reference is not None:
        named.append(("reference", shared.reference))
    report = write_report(output / "report.html", doc, project(named, seed))
    _out.print(table(doc))
    if min_symptom_recall is not None:
        recall = doc["symptom_recall"]
        kept = write_filtered(notes, passing(recall), output / "filtered.jsonl")
        _err.print(
            f"symptom recall >= {min_symptom_recall}: kept {kept} of {recall['judged']} "
            f"judged notes ({recall['unjudged']} requested no symptom, not kept) -> "
            f"{output / 'filtered.jsonl'}"
        )
    _err.print(f"wrote {target}")
    _out.print(f"report: {report}")


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to the root app."""
    app.command("evaluate")(evaluate)
