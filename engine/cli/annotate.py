"""``kgsynth annotate``: label every sentence of generated notes, then check the constraints.

``kgsynth annotate notes.jsonl -o annotations.jsonl`` labels with an LLM through the same
backends and runner as ``generate`` (chunk records, cache and manifest beside the output);
with no LLM configured (the template backend) the rule-based labeller stands in and every
line says ``annotator: rules``; ``--lexicon`` asks for the lexicon annotator alone. Rerunning
the same command resumes. Exit codes as ``generate``: 0 every note ok, 3 some failed, 2 a
usage or input error, 130 interrupted (rerun to resume).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.annotate.check import CheckCounts
from engine.annotate.llm import CHUNK_SENTENCES, chunk_job, output_model
from engine.annotate.notes import read_notes
from engine.annotate.output import (
    AnnotateSummary,
    AnnotationLog,
    chunks_path,
    write_run_manifest,
)
from engine.annotate.pipeline import (
    Labeller,
    Labelling,
    LlmRun,
    Prepared,
    annotate_lexicon,
    annotate_llm,
    chunk_plan,
    prepare,
)
from engine.annotate.scheme import LabelScheme
from engine.cli.backends import (
    EXIT_FAILED_RECORDS,
    EXIT_INTERRUPTED,
    ApiKeyEnvOpt,
    BackendOpt,
    BaseUrlOpt,
    BatchFileOpt,
    CacheOpt,
    ConcurrencyOpt,
    DeviceOpt,
    IngestOpt,
    ModelOpt,
    NoCacheOpt,
    PricesOpt,
    ProgressOpt,
    backend_settings,
    setup_logging,
)
from engine.errors import EngineError
from engine.llm.base import LLMRequest, SamplingParams
from engine.llm.batch import write_batch_requests
from engine.llm.factory import (
    DEFAULT_BATCH,
    ENV_API_KEY,
    BackendSettings,
    make_backend,
)
from engine.llm.pricing import PriceTable
from engine.llm.template import MODEL as TEMPLATE_MODEL
from engine.profile import DiseaseProfile
from engine.runner.cache import RequestCache
from engine.runner.lock import OutputLock
from engine.runner.output import check_output, default_cache_path, read_records, set_aside
from engine.runner.run import RunConfig
from kg.cli import make_console, store_from_context

_err = make_console(stderr=True)
LEXICON_BACKEND, LEXICON_MODEL = "lexicon", "keywords+ConText"


def _labeller(profile: DiseaseProfile, scheme: LabelScheme) -> Labeller:
    """The lexicon annotator of ``scheme`` (graph keywords and synonyms, ConText); imported
    when first needed (it loads spaCy and medspaCy's ConText)."""
    from engine.annotate.lexicon import LexiconAnnotator

    return LexiconAnnotator.from_profiles(profile, scheme.scheme)


def _prepared(
    ctx: typer.Context, notes_path: Path, scheme: str | None
) -> tuple[list[Prepared], str, int]:
    notes = read_notes(notes_path)
    with store_from_context(ctx) as store:
        items = prepare(notes, store, scheme)
    return items, notes.sha256, notes.not_ok


def _report(summary: AnnotateSummary, not_ok: int, manifest: Path) -> None:
    c: CheckCounts = summary.check
    run = summary.run
    calls = ""
    if run is not None:
        usage = run.usage
        calls = (
            f"; {run.ok + run.failed} chunk request(s) ({run.cached} from cache, {run.skipped} "
            f"already done), tokens {usage.prompt_tokens} in / {usage.completion_tokens} out"
        )
    _err.print(
        f"{'interrupted' if summary.interrupted else 'complete'}: annotated {summary.ok} ok, "
        f"{summary.failed} failed ({summary.skipped} already done, {not_ok} notes not ok in "
        f"the input) in {summary.elapsed_s:.1f} s, {summary.sentences} sentences{calls}\n"
        f"constraint check: {c.realised}/{c.requested} requested keywords realised "
        f"({c.realised_pct:.1f}%), {c.disagree} label disagreement(s) "
        f"({c.disagree_pct:.1f}% of realised); {c.review} note(s) marked for review\n"
        f"{summary.output}; manifest {manifest}"
    )
    if summary.annotator == "rules":
        _err.print("template backend: rule-based labels (annotator=rules), no LLM was used")
    if summary.failure_reasons:
        top = sorted(summary.failure_reasons.items(), key=lambda kv: -kv[1])[:3]
        _err.print("failures:" + "".join(f"\n  {n} x {reason}" for reason, n in top))
    if summary.pending:
        _err.print(f"{summary.pending} note(s) not finished: rerun the same command to resume")


def _write_batch(
    items: list[Prepared],
    target: Path,
    batch_file: Path,
    model: str,
    params: SamplingParams,
    size: int,
) -> None:

    done_chunks = read_records(chunks_path(target)) if chunks_path(target).exists() else {}
    plan = chunk_plan(items, size)
    out = output_model(item.scheme for item, _ in plan if item.scheme)
    jobs = (chunk_job(c, n) for n, c in enumerate(c for _, cs in plan for c in cs))
    requests = (
        LLMRequest(job.record_id, job.messages, params, job.seed, out)
        for job in jobs
        if getattr(done_chunks.get(job.record_id), "status", None) != "ok"
    )
    count = write_batch_requests(batch_file, model, requests)
    _err.print(
        f"wrote {count} batch request(s) to {batch_file}; submit it, then ingest the results "
        "with the same command plus --ingest results.jsonl"
    )


def annotate(
    ctx: typer.Context,
    notes: Annotated[Path, typer.Argument(help="Notes JSONL written by `kgsynth generate`.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Annotations JSONL to write/resume.")
    ],
    lexicon: Annotated[
        bool, typer.Option("--lexicon", help="The lexicon annotator alone (no LLM).")
    ] = False,
    scheme: Annotated[
        str | None, typer.Option(help="Category scheme (default: each note's spec's).")
    ] = None,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = ENV_API_KEY,
    temperature: Annotated[float, typer.Option(min=0)] = 0.0,
    top_p: Annotated[float, typer.Option(min=0, max=1)] = 1.0,
    max_tokens: Annotated[int, typer.Option(min=1, help="Per chunk answer.")] = 1024,
    chunk_sentences: Annotated[
        int, typer.Option(min=1, help="Sentences labelled per request.")
    ] = CHUNK_SENTENCES,
    cross_check: Annotated[
        bool,
        typer.Option(
            "--cross-check/--no-cross-check",
            help="Attach the lexicon's mentions to LLM-labelled sentences.",
        ),
    ] = True,
    concurrency: ConcurrencyOpt = None,
    max_attempts: Annotated[int, typer.Option(min=1, help="Attempts per chunk.")] = 5,
    timeout: Annotated[float, typer.Option(min=0.001, help="Seconds per request.")] = 120.0,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    prices: PricesOpt = None,
    batch_file: BatchFileOpt = None,
    ingest: IngestOpt = None,
    device: DeviceOpt = "auto",
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Local backends' batch size.")
    ] = None,
    progress: ProgressOpt = None,
    force_new: Annotated[
        bool,
        typer.Option(
            "--force-new",
            help="Move an existing -o (and its chunk records) aside and start afresh.",
        ),
    ] = False,
) -> None:
    """Label each sentence of generated notes (LLM, rules or lexicon) and check constraints.

    Exit status: 0 all notes ok, 3 some notes failed, 2 a usage or input error,
    130 interrupted (rerun the same command to resume).
    """
    settings: BackendSettings | None = None
    if not lexicon:
        settings = backend_settings(
            backend, model, base_url, api_key_env, device, batch_size, ingest
        )
    elif backend is not None or model is not None:
        raise EngineError("--lexicon uses no LLM: drop --backend/--model, or drop --lexicon")
    target = check_output(output)
    with OutputLock(target):
        if force_new:
            for path in (target, chunks_path(target)):
                if (aside := set_aside(path)) is not None:
                    _err.print(f"moved {path} aside to {aside}")
        items, notes_sha, not_ok = _prepared(ctx, notes, scheme)
        source = {"notes": str(notes), "notes_sha256": notes_sha}
        params = SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens)
        log = AnnotationLog(target).load()
        try:
            if settings is None or settings.kind == "template":
                how = (
                    Labelling("lexicon", LEXICON_BACKEND, LEXICON_MODEL)
                    if settings is None
                    else Labelling("rules", "template", TEMPLATE_MODEL)
                )
                summary = annotate_lexicon(items, log, how, _labeller)
            elif settings.kind == "batch" and settings.ingest is None:
                if not settings.model:
                    raise EngineError(
                        "--backend batch needs --model (the model the batch will run)"
                    )
                _write_batch(
                    items,
                    target,
                    batch_file or target.with_name(f"{target.stem}.batch.jsonl"),
                    settings.model,
                    params,
                    chunk_sentences,
                )
                return
            else:
                local = settings.kind in DEFAULT_BATCH
                default = 2 * (batch_size or DEFAULT_BATCH[settings.kind]) if local else 16
                config = RunConfig(
                    concurrency=concurrency or default,
                    max_attempts=max_attempts,
                    timeout_s=timeout,
                    progress=sys.stderr.isatty() if progress is None else progress,
                    handle_signals=True,
                )
                setup_logging()
                summary = asyncio.run(
                    _run_llm(
                        settings,
                        items,
                        log,
                        params,
                        config,
                        cache,
                        no_cache,
                        prices,
                        chunk_sentences,
                        cross_check,
                        source,
                    )
                )
        finally:
            log.close()
        manifest = write_run_manifest(target, summary, source)
    _report(summary, not_ok, manifest)
    if summary.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary.failed:
        raise typer.Exit(EXIT_FAILED_RECORDS)


async def _run_llm(
    settings: BackendSettings,
    items: list[Prepared],
    log: AnnotationLog,
    params: SamplingParams,
    config: RunConfig,
    cache_path: Path | None,
    no_cache: bool,
    prices: Path | None,
    chunk_sentences: int,
    cross_check: bool,
    provenance: dict[str, Any],
) -> AnnotateSummary:
    backend = make_backend(settings)
    cache = (
        None
        if no_cache or not backend.cacheable
        else RequestCache(cache_path or default_cache_path(log.path))
    )
    try:
        run = LlmRun(
            backend,
            params,
            config,
            cache=cache,
            prices=PriceTable.load(prices, discount=0.5 if settings.kind == "batch" else 1.0),
            chunk_sentences=chunk_sentences,
            provenance=provenance,
        )
        return await annotate_llm(items, log, run, cross_check=_labeller if cross_check else None)
    finally:
        await backend.aclose()
        if cache is not None:
            cache.close()


def register(app: typer.Typer) -> None:
    """Add the ``annotate`` command to the root app."""
    app.command("annotate")(annotate)
