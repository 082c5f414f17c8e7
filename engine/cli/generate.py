"""``kgsynth generate``: plan (or read) specs, run them through an LLM backend, write JSONL.

Rerunning the same command resumes: records already ``ok`` are skipped, ``failed`` ones are
retried, and answers already paid for come from the request cache. One process writes an
output at a time, and an output holds the records of one run identity only.

The gate (``--gate``; privacy and leakage by default, ``all`` adds near-duplicates) checks
every answer before it is written: privacy (a shared n-gram with an example note or the
``--reference`` corpus), diagnosis leakage in pre-diagnosis windows, and near-duplicates of
notes already accepted; a rejected answer is
asked for again with a derived seed (``--regenerate`` times), then the record is written
``rejected`` with the reason and no text. See docs/gate.md.

Exit codes: 0 every record ok or rejected by the gate; 2 a usage or configuration error
(nothing generated, or the run was stopped by an error it names); 3 the run finished but
some records failed; 130 interrupted (rerun to resume).
"""

from __future__ import annotations

import asyncio
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

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
from engine.cli.options import (
    AllowThinOpt,
    ByPrevalenceOpt,
    DiseaseOpt,
    IcdOpt,
    MinWeightedOpt,
    PatientsOpt,
    PopulationOpt,
    Weighting,
    WeightingOpt,
    plan_request,
)
from engine.errors import EngineError
from engine.gate import CHECKS, Check, Gate, GateConfig
from engine.gate.build import Reference, gate_for, read_reference
from engine.llm.base import LLMRequest, SamplingParams
from engine.llm.factory import (
    DEFAULT_BATCH,
    ENV_API_KEY,
    BackendSettings,
    make_backend,
)
from engine.llm.pricing import PriceTable
from engine.plan import Planner, sampling_params
from engine.profile import DiseaseProfile
from engine.runner.cache import RequestCache
from engine.runner.lock import OutputLock
from engine.runner.output import OutputLog, check_output, default_cache_path, set_aside
from engine.runner.run import RunConfig, Runner, RunSummary
from engine.runner.sources import JobSource, from_planner, from_specs_file
from kg.cli import make_console, store_from_context

_err = make_console(stderr=True)  # no markup or emoji: messages carry paths and reasons


class Executor(StrEnum):
    local = "local"
    ray = "ray"


def _source(
    ctx: typer.Context,
    specs: Path | None,
    recipe: str | None,
    icd: str | None,
    disease: list[str] | None,
    by_prevalence: bool,
    code_weighting: Weighting,
    n: int | None,
    seed: int,
    settings: list[str] | None,
    allow_thin: bool = False,
    min_weighted_symptoms: int | None = None,
    population: str | None = None,
    patients: int | None = None,
) -> tuple[JobSource, list[DiseaseProfile], Planner | None]:
    """The jobs, the profiles they were planned from and the planner (none for a specs file)."""
    if specs is not None:
        if recipe or icd or disease or by_prevalence:
            raise EngineError(
                "--specs replaces planning: drop --recipe/--icd/--disease/"
                "--by-prevalence, or drop --specs"
            )
        return from_specs_file(specs), [], None
    if not recipe or (n is None and patients is None):
        raise EngineError(
            "say what to generate: --recipe R (--icd CODE | --disease NAME | "
            "--by-prevalence) -n N (or --patients P), or --specs specs.jsonl"
        )
    request = plan_request(
        "generate",
        recipe=recipe,
        icd=icd,
        disease=disease,
        by_prevalence=by_prevalence,
        code_weighting=code_weighting,
        n=n,
        seed=seed,
        settings=settings,
        allow_thin=allow_thin,
        min_weighted_symptoms=min_weighted_symptoms,
        population=population,
        patients=patients,
    )
    with store_from_context(ctx) as store:
        planner = Planner(store, request)
    return from_planner(planner), planner.profiles, planner


def _checks(value: str) -> tuple[Check, ...]:
    """``--gate``: ``all``, ``none`` or a comma-separated list of check names."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    if names == ["all"]:
        return CHECKS
    if names == ["none"]:
        return ()
    unknown = [n for n in names if n not in CHECKS]
    if unknown or not names:
        raise EngineError(
            f"--gate {value!r}: expected all, none or a comma-separated list of {', '.join(CHECKS)}"
        )
    return tuple(c for c in CHECKS if c in names)


def _gate_config(checks: str, ngram: int, near_duplicate: float, regenerate: int) -> GateConfig:
    return GateConfig(
        checks=_checks(checks), ngram=ngram, near_duplicate=near_duplicate, regenerate=regenerate
    )


def _on_ray(
    planner: Planner | None,
    settings: BackendSettings,
    target: Path,
    params: SamplingParams,
    config: RunConfig,
    gate: GateConfig,
    reference: Reference | None,
    workers: int,
    address: str | None,
    cache: bool,
) -> None:
    """``--executor ray``: shard the planned run over Ray workers, then merge into -o."""
    from engine.runner.ray_executor import run_on_ray

    if planner is None or settings.kind not in ("openai", "template"):
        raise EngineError(
            "--executor ray shards a planned run (--recipe ... -n N, not --specs) against an "
            "endpoint (--base-url/--model) or the template backend"
        )
    run = run_on_ray(
        planner,
        settings,
        target,
        params,
        config,
        gate if gate.checks else None,
        reference,
        workers=workers,
        address=address,
        cache=cache,
    )
    ok = sum(s.ok for s in run.shards)
    failed = sum(s.failed for s in run.shards)
    states = ", ".join(f"{v} {k}" for k, v in sorted(run.records.items()))
    _err.print(
        f"ray: {len(run.shards)} shard(s) wrote {ok} ok, {failed} failed; merged "
        f"{run.appended} line(s) into {target} ({states})"
    )
    if run.records.get("failed"):
        raise typer.Exit(EXIT_FAILED_RECORDS)


def _write_batch_file(
    source: JobSource, output: Path, batch_file: Path, model: str, params: SamplingParams
) -> None:
    from engine.llm.batch import write_batch_requests

    held = OutputLog(output).load().records
    done = {rid for rid, state in held.items() if state.status in ("ok", "rejected")}
    requests = (
        LLMRequest(
            request_id=job.record_id,
            messages=job.messages,
            params=params,
            seed=job.seed,
            output=source.output,
            spec=job.spec,
        )
        for job in source.jobs
        if job.record_id not in done
    )
    count = write_batch_requests(batch_file, model, requests)
    _err.print(
        f"wrote {count} batch request(s) to {batch_file} ({len(done)} already done in {output}).\n"
        f"Submit it (OpenAI: upload with purpose=batch, then POST /v1/batches with "
        f"endpoint /v1/chat/completions; or `vllm run-batch -i {batch_file} -o results.jsonl "
        f"--model {model}`), then ingest the results with the same command plus "
        f"--ingest results.jsonl",
    )


def _report(summary: RunSummary, backend_name: str) -> None:
    rate = (summary.ok + summary.failed) / summary.elapsed_s if summary.elapsed_s else 0.0
    usage = summary.usage
    cost = f"; est. cost ${summary.cost_usd:.4f}" if summary.cost_usd is not None else ""
    _err.print(
        f"{summary.status}: wrote {summary.ok} ok, {summary.failed} failed "
        f"({summary.cached} from cache, {summary.skipped} already done) in "
        f"{summary.elapsed_s:.1f} s ({rate:.1f} rec/s); tokens {usage.prompt_tokens} in / "
        f"{usage.completion_tokens} out{cost}\n"
        f"{summary.output}: {summary.file_ok} ok, {summary.file_failed} failed; "
        f"manifest {summary.manifest}",
    )
    if backend_name == "template":
        _err.print("template backend: rule-based notes, no LLM was used", style="yellow")
    if summary.failure_reasons:
        reasons = sorted(summary.failure_reasons.items(), key=lambda kv: -kv[1])
        lines = "".join(f"\n  {count} x {reason}" for reason, count in reasons[:3])
        _err.print(f"failures of this run:{lines}")
    if summary.gate is not None:
        g = summary.gate
        by_check = ", ".join(f"{k} {v}" for k, v in g.rejected.items() if v) or "none"
        _err.print(
            f"gate: {g.checked} answer(s) checked, rejected: {by_check}; {g.regenerated} "
            f"regenerated; {summary.rejected} record(s) rejected "
            f"({summary.file_rejected} in the file)"
        )
    if summary.file_failed:
        _err.print(
            f"{summary.file_failed} record(s) failed (see their reason field); "
            "rerun the same command to retry them",
            style="yellow",
        )
    if summary.status == "interrupted":
        _err.print("interrupted: rerun the same command to resume", style="yellow")


def generate(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", help="JSONL file to write/resume.")],
    recipe: Annotated[str | None, typer.Option("--recipe", "-r", help="Recipe to plan.")] = None,
    icd: IcdOpt = None,
    disease: DiseaseOpt = None,
    by_prevalence: ByPrevalenceOpt = False,
    code_weighting: WeightingOpt = Weighting.prevalence,
    population: PopulationOpt = None,
    specs: Annotated[
        Path | None, typer.Option(help="Read specs (or jobs) from this JSONL instead of planning.")
    ] = None,
    n: Annotated[
        int | None,
        typer.Option(
            "-n", "--n", min=1, help="Records per code/disease (the total for --by-prevalence)."
        ),
    ] = None,
    patients: PatientsOpt = None,
    seed: Annotated[int, typer.Option(min=0, help="Run seed.")] = 0,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Recipe parameter KEY=VALUE.")
    ] = None,
    allow_thin: AllowThinOpt = False,
    min_weighted_symptoms: MinWeightedOpt = None,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = ENV_API_KEY,
    temperature: Annotated[float | None, typer.Option(min=0, help="Default: the recipe's.")] = None,
    top_p: Annotated[
        float | None, typer.Option(min=0, max=1, help="Default: the recipe's, else 1.")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(min=1, help="Default: the recipe's.")] = None,
    concurrency: ConcurrencyOpt = None,
    max_attempts: Annotated[int, typer.Option(min=1, help="Attempts per record.")] = 5,
    timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds per request (remote backends).")
    ] = 120.0,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    prices: PricesOpt = None,
    batch_file: BatchFileOpt = None,
    ingest: IngestOpt = None,
    device: DeviceOpt = "auto",
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Local backends' batch size (default: transformers 8, vllm 256)."),
    ] = None,
    progress: ProgressOpt = None,
    gate: Annotated[
        str,
        typer.Option(
            "--gate",
            help="Checks before a record is kept: all, none, or a list of "
            "privacy,near-duplicate,leakage.",
        ),
    ] = "privacy,leakage",
    reference: Annotated[
        Path | None,
        typer.Option(
            help="JSONL corpus of real notes the privacy check protects (one per line, "
            "text in --reference-field, optional id).",
        ),
    ] = None,
    reference_field: Annotated[
        str, typer.Option(help="Field of --reference lines holding the text.")
    ] = "text",
    ngram: Annotated[
        int, typer.Option(min=1, help="privacy: shared passage length in tokens that rejects.")
    ] = 12,
    near_duplicate: Annotated[
        float,
        typer.Option(
            "--near-duplicate",
            min=0.01,
            max=1.0,
            help="near-duplicate: MinHash Jaccard with an accepted note that rejects.",
        ),
    ] = 0.8,
    regenerate: Annotated[
        int, typer.Option(min=0, help="New answers asked for after a rejection, per record.")
    ] = 3,
    executor: Annotated[
        Executor,
        typer.Option(help="local: this process; ray: shards over Ray workers (docs/scaling.md)."),
    ] = Executor.local,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster address (default: a local Ray with --ray-workers CPUs)."),
    ] = None,
    ray_workers: Annotated[
        int, typer.Option(min=1, help="Shards (and local Ray CPUs) for --executor ray.")
    ] = 2,
    force_new: Annotated[
        bool,
        typer.Option(
            "--force-new",
            help="Move an existing -o (and its manifest) aside to STEM.old-N and start afresh.",
        ),
    ] = False,
) -> None:
    """Generate notes: one JSONL record per spec, with provenance; rerun to resume.

    Exit status: 0 all records ok, 3 some records failed, 2 a usage or configuration
    error, 130 interrupted (rerun the same command to resume).
    """
    settings = backend_settings(backend, model, base_url, api_key_env, device, batch_size, ingest)
    target = check_output(output)
    with OutputLock(target) as lock:
        if lock.took_over:
            _err.print(
                f"took over the lock of pid {lock.took_over.get('pid')} "
                f"({lock.took_over.get('command')}), which no longer runs",
            )
        if force_new and (aside := set_aside(target)) is not None:
            _err.print(f"moved the previous output aside to {aside}")
        source, profiles, planner = _source(
            ctx,
            specs,
            recipe,
            icd,
            disease,
            by_prevalence,
            code_weighting,
            n,
            seed,
            set_,
            allow_thin,
            min_weighted_symptoms,
            population=population,
            patients=patients,
        )
        params = sampling_params(source.generation, temperature, top_p, max_tokens)
        if settings.kind == "batch" and settings.ingest is None:
            if not settings.model:
                raise EngineError("--backend batch needs --model (the model the batch will run)")
            _write_batch_file(
                source,
                target,
                batch_file or target.with_name(f"{target.stem}.batch.jsonl"),
                settings.model,
                params,
            )
            return
        local = settings.kind in DEFAULT_BATCH  # keep two batches queued for local engines
        default_concurrency = 2 * (batch_size or DEFAULT_BATCH[settings.kind]) if local else 16
        config = RunConfig(
            concurrency=concurrency or default_concurrency,
            max_attempts=max_attempts,
            timeout_s=timeout,
            progress=sys.stderr.isatty() if progress is None else progress,
            handle_signals=True,
        )
        gate_config = _gate_config(gate, ngram, near_duplicate, regenerate)
        if reference is not None and "privacy" not in gate_config.checks:
            raise EngineError("--reference is read by the privacy check: add it to --gate")
        corpus = read_reference(reference, reference_field) if reference is not None else None
        checker = gate_for(gate_config, profiles, corpus)
        setup_logging()
        if executor == Executor.ray:
            _on_ray(
                planner,
                settings,
                target,
                params,
                config,
                gate_config,
                corpus,
                ray_workers,
                ray_address,
                not no_cache,
            )
            return
        summary = asyncio.run(
            _run(settings, source, target, params, config, cache, no_cache, prices, checker)
        )
    _report(summary, settings.kind)
    if summary.status == "interrupted":
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary.file_failed:
        raise typer.Exit(EXIT_FAILED_RECORDS)


async def _run(
    settings: BackendSettings,
    source: JobSource,
    output: Path,
    params: SamplingParams,
    config: RunConfig,
    cache_path: Path | None,
    no_cache: bool,
    prices: Path | None,
    gate: Gate | None,
) -> RunSummary:
    backend = make_backend(settings)
    cache = (
        None
        if no_cache or not backend.cacheable
        else RequestCache(cache_path or default_cache_path(output))
    )
    try:
        runner = Runner(
            backend,
            output,
            params=params,
            config=config,
            cache=cache,
            prices=PriceTable.load(prices, discount=0.5 if settings.kind == "batch" else 1.0),
            response_model=source.output,
            source=source.identity,
            provenance=source.provenance,
            console=_err,
            gate=gate,
        )
        return await runner.run(source.jobs, total=source.total)
    finally:
        await backend.aclose()
        if cache is not None:
            cache.close()


def register(app: typer.Typer) -> None:
    """Add the ``generate`` command to the root app."""
    app.command("generate")(generate)
