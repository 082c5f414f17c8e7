"""The planner: resolve the request, read one profile per disease, emit ``GenerationSpec``s.

Record ``i`` of a run depends only on (graph content, recipe, parameters, run seed, i):
quotas lay records out code by code (records ``0..n-1`` for the first code, ...), and in
``by_prevalence`` mode record ``i`` draws its code from its own ``Stage.CODE`` stream. With
``patients``, ``n`` counts patients per code, each with the disease's ``V`` visits: the code's
records are patient-major (``patient * V + visit``), and a record depends on its patient's
whole history, a function of (run seed, patient index) (``engine.samplers.patients``). So any
slice of a run, in any batch size, reproduces exactly the same specs.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.errors import EngineError
from engine.llm.base import LLMRequest, SamplingParams
from engine.llm.batch import batch_line
from engine.population import Prevalence
from engine.profile import Catalogue, DiseaseProfile, Target, load_profile
from engine.recipes import (
    Generation,
    Recipe,
    RecipeParams,
    compiled_template,
    get_recipe,
    render_messages,
    style_refs,
)
from engine.samplers.medsyn import CodeWeighting, ExampleSampler, SymptomSampler, code_probabilities
from engine.samplers.mh import report_sections
from engine.samplers.patients import PatientSampler
from engine.samplers.persona import PersonaSampler
from engine.samplers.rng import Stage, record_seeds, stage_uniforms
from engine.samplers.tables import FloatArray, IntArray, cumulative, draw
from engine.samplers.trajectory import TrajectorySampler
from engine.spec import (
    GenerationSpec,
    Keyword,
    PastVisit,
    PatientVisit,
    assemble,
    patient_id,
    record_id,
)
from engine.thin import ThinPolicy, target_label, thin_reason
from kg.resolution import CodeResolution
from kg.store import GraphStore

DEFAULT_BATCH = 4096


class PlanRequest(BaseModel):
    """What to plan: a recipe, which codes/diseases, how many records, the run seed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    recipe: str
    icd: tuple[str, ...] = ()
    disease: tuple[str, ...] = ()
    by_prevalence: bool = False
    code_weighting: CodeWeighting = "prevalence"
    #: by_prevalence: the population (id, name or synonym) the figures are converted into
    population: str | None = None
    n: int = Field(
        gt=0,
        description="records per code/disease (patients with ``patients``); the total for "
        "by_prevalence",
    )
    #: longitudinal: ``n`` patients per code/disease, each a history of visits
    patients: bool = False
    seed: int = Field(ge=0)
    params: dict[str, Any] = Field(default_factory=dict)
    #: refuse thin profiles (engine.thin); None: no check. Never changes a record, so it is
    #: left out of dumps (the run identity)
    thin: ThinPolicy | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _one_mode(self) -> PlanRequest:
        modes = sum([bool(self.icd), bool(self.disease), self.by_prevalence])
        if modes != 1:
            raise ValueError("choose exactly one of icd, disease or by_prevalence")
        if self.population is not None and not self.by_prevalence:
            raise ValueError("a population is used only with by_prevalence")
        if self.patients and self.by_prevalence:
            raise ValueError("patients are planned per code or disease, not by_prevalence")
        return self


def _preferred(recipe: Recipe, profile: DiseaseProfile) -> str | None:
    """The first of the recipe's preferred category schemes the profile has frequencies for."""
    schemes = profile.schemes()
    return next((s for s in recipe.scheme_preference if s in schemes), None)


class CompiledRecipe:
    """A recipe's samplers compiled for one profile; turns record indices into specs."""

    def __init__(
        self,
        recipe: Recipe,
        params: RecipeParams,
        profile: DiseaseProfile,
        resolution: CodeResolution | None = None,
        patients: bool = False,
    ) -> None:
        self.recipe, self.profile, self.resolution = recipe, profile, resolution
        parts = set(recipe.components)
        code = profile.icd.code if profile.icd else None
        if recipe.icd_prefix and not (code or "").startswith(recipe.icd_prefix):
            raise EngineError(
                f"{recipe.name} is conditioned on ICD-10-CM {recipe.icd_prefix}-codes"
                f"; {profile.disease} is coded {code or 'with no code'}"
            )
        self.persona = PersonaSampler(profile, params.open_age_span) if "persona" in parts else None
        self.trajectory = (
            TrajectorySampler(
                profile,
                params.scheme or _preferred(recipe, profile),
                params.window_weights,
                params.keyword_multiplier,
                params.min_keywords,
                params.max_keywords,
            )
            if "trajectory" in parts
            else None
        )
        if patients and self.trajectory is None:
            raise EngineError(
                f"patients need a recipe with trajectory windows; {recipe.name} has none "
                "(use --recipe dualalign)"
            )
        self.patients = (
            PatientSampler(profile, self.trajectory)
            if patients and self.trajectory is not None
            else None
        )
        self.symptoms = (
            SymptomSampler(
                profile,
                params.symptom_temperature,
                params.min_symptoms,
                params.max_symptoms,
                params.symptom_draw,
            )
            if "symptoms" in parts
            else None
        )
        self.examples = (
            ExampleSampler(profile, params.example_probability) if "example" in parts else None
        )
        self.sections = report_sections(profile) if "sections" in parts else ()
        template = compiled_template(recipe.name)
        style = style_refs(profile, recipe.note_type) if "style" in template.variables else ()
        #: per window: whether its visits are at or after the diagnosis (medications)
        self._diagnosed = np.array(
            [w.diagnosed for w in self.trajectory.window_refs] if self.trajectory else [],
            dtype=bool,
        )
        #: every spec field, in order: the per-record ones are filled in by ``specs``
        self.fixed: dict[str, Any] = dict.fromkeys(GenerationSpec.model_fields) | {
            "recipe": recipe.name,
            "icd_code": code,
            "icd_title": profile.icd.title if profile.icd else None,
            "resolution": resolution,
            "history": (),
            "disease_id": profile.disease_id,
            "disease": profile.disease,
            "scheme": self.trajectory.scheme if self.trajectory else None,
            "sections": self.sections,
            "style": style,
            "template_id": template.name,
            "template_hash": template.hash_with(style),
            "kg_hash": profile.content_hash,
        }

    def specs(self, run_seed: int, indices: IntArray) -> list[GenerationSpec]:
        """The specs of records ``indices`` (any subset of the run, in any order)."""
        n = len(indices)
        none: list[Any] = [None] * n
        empty: list[Any] = [()] * n
        drawn = self.persona.sample(run_seed, indices) if self.persona else None
        windows, keywords, visits, visit_ages, diagnosed = none, empty, none, None, None
        if self.trajectory is not None:
            traj = self.trajectory.sample(run_seed, indices, drawn)
            windows = [self.trajectory.window_refs[w] for w in traj.windows.tolist()]
            keywords = traj.keywords
            visits = np.round(traj.visit_months, 1).tolist()
            visit_ages = traj.visit_ages
            diagnosed = self._diagnosed[traj.windows]
        personas = (
            self.persona.personas(drawn, visit_ages, diagnosed)
            if self.persona is not None and drawn is not None
            else none
        )
        symptoms = self.symptoms.sample(run_seed, indices, drawn).chosen if self.symptoms else empty
        examples = self.examples.sample(run_seed, indices) if self.examples else empty
        return self._assemble(
            run_seed,
            indices,
            {
                "persona": personas,
                "window": windows,
                "visit_months": visits,
                "keywords": keywords,
                "symptoms": symptoms,
                "examples": examples,
            },
        )

    def visit_specs(
        self, run_seed: int, indices: IntArray, patients: IntArray, visits: IntArray
    ) -> list[GenerationSpec]:
        """The specs of records ``indices``: visit ``visits[i]`` of patient ``patients[i]``."""
        assert self.patients is not None
        schedule, n = self.patients.schedule, len(indices)
        uniq, rows = np.unique(patients, return_inverse=True)
        drawn = self.persona.sample(run_seed, uniq) if self.persona else None
        history = self.patients.sample(run_seed, uniq, drawn)
        months = np.round(history.months, 1)
        ages = history.ages[rows, visits]
        personas: list[Any] = (
            self.persona.personas(drawn.take(rows), ages, self._diagnosed[schedule[visits]])
            if self.persona is not None and drawn is not None
            else [None] * n
        )
        pasts = _past_visits(history.keywords, months, history.ages, int(visits.max(initial=0)))
        days = history.days[rows, visits].tolist()
        pairs = list(zip(rows.tolist(), visits.tolist(), strict=True))
        name, count = self.recipe.name, self.patients.visits
        refs, empty = self.patients.window_refs, [()] * n
        ids = [patient_id(name, run_seed, p) for p in uniq.tolist()]
        return self._assemble(
            run_seed,
            indices,
            {
                "persona": personas,
                "patient": [
                    assemble(
                        PatientVisit,
                        {
                            "patient_id": ids[r],
                            "patient_index": p,
                            "visit_index": v,
                            "visits": count,
                            "day": d,
                        },
                    )
                    for (r, v), p, d in zip(pairs, patients.tolist(), days, strict=True)
                ],
                "history": [pasts[r][:v] for r, v in pairs],
                "window": [refs[w] for w in schedule[visits].tolist()],
                "visit_months": months[rows, visits].tolist(),
                "keywords": [history.keywords[v][r] for r, v in pairs],
                "symptoms": empty,
                "examples": empty,
            },
        )

    def _assemble(
        self, run_seed: int, indices: IntArray, fields: dict[str, list[Any]]
    ) -> list[GenerationSpec]:
        """One spec per record: the fixed fields, the record's identity and ``fields``."""
        name, fixed = self.recipe.name, self.fixed
        keys = list(fields)
        out = []
        for index, seed, *values in zip(
            indices.tolist(),
            record_seeds(run_seed, indices).tolist(),
            *fields.values(),
            strict=True,
        ):
            spec = fixed.copy()  # keeps the field order (assignments do not move keys)
            spec["run_seed"] = run_seed
            spec["record_index"] = index
            spec["record_id"] = record_id(name, run_seed, index)
            spec["record_seed"] = seed
            spec.update(zip(keys, values, strict=True))
            spec["keywords"] = tuple(spec["keywords"])
            spec["symptoms"] = tuple(spec["symptoms"])
            out.append(assemble(GenerationSpec, spec))
        return out


def _past_visits(
    keywords: list[list[list[Keyword]]], months: FloatArray, ages: IntArray, last: int
) -> list[tuple[PastVisit, ...]]:
    """Per patient: its visits ``0 .. last - 1`` as ``PastVisit``s (what each documented)."""
    out = []
    for r in range(len(months)):
        visits = []
        for j in range(last):
            kws = keywords[j][r]
            age = int(ages[r, j])
            visits.append(
                assemble(
                    PastVisit,
                    {
                        "visit_index": j,
                        "visit_months": float(months[r, j]),
                        "age": age if age >= 0 else None,
                        "symptom_ids": tuple(k.symptom_id for k in kws),
                        "symptoms": tuple(k.symptom for k in kws),
                    },
                )
            )
        out.append(tuple(visits))
    return out


class Planner:
    """Resolves a ``PlanRequest`` against the graph once, then plans any slice of the run."""

    def __init__(self, store: GraphStore, request: PlanRequest) -> None:
        self.request = request
        self.recipe = get_recipe(request.recipe)
        self.params = self.recipe.resolve_params(request.params)
        catalogue = Catalogue(store)
        skipped: list[str] = []
        prevalence = Prevalence(store) if request.by_prevalence else None
        if prevalence is not None:
            pool = catalogue.prevalence_pool(prevalence.figures)
            if self.recipe.icd_prefix:
                pool = [
                    (t, p)
                    for t, p in pool
                    if t.icd and t.icd.code.startswith(self.recipe.icd_prefix)
                ]
            targets = [t for t, _ in pool]
            freqs: list[float | None] = [p for _, p in pool]
        else:
            targets = (
                [catalogue.icd(c) for c in request.icd]
                if request.icd
                else [catalogue.disease(d) for d in request.disease]
            )
            freqs = []
        profiles: dict[str, DiseaseProfile] = {}  # one read per disease, whatever its codes
        self.compiled: list[CompiledRecipe] = []
        self.notes = [_alternatives_note(t) for t in targets if t.alternatives]
        thin: list[str] = []
        kept: list[tuple[Target, float | None]] = []
        for i, target in enumerate(targets):
            if target.disease_id not in profiles:
                profiles[target.disease_id] = load_profile(store, target)
            profile = profiles[target.disease_id].for_code(target.icd)
            try:
                compiled = CompiledRecipe(
                    self.recipe, self.params, profile, target.resolution, request.patients
                )
            except EngineError as err:
                if not request.by_prevalence:
                    raise
                skipped.append(f"{target.disease}: {err}")
                continue
            reason = thin_reason(profile, self.recipe, request.thin) if request.thin else ""
            if reason and request.by_prevalence:
                skipped.append(f"{target.disease}: {reason} (--allow-thin keeps it)")
                continue
            if reason:
                thin.append(f"{target_label(target)} {reason}")
            self.compiled.append(compiled)
            if request.by_prevalence:
                kept.append((target, freqs[i]))
        if thin:
            them = "it" if len(thin) == 1 else "them"
            raise EngineError(
                f"{'; '.join(thin)}; curate {them} (docs/curation.md#coverage) or pass --allow-thin"
            )
        if not self.compiled:
            detail = f" ({'; '.join(skipped[:5])})" if skipped else ""
            raise EngineError(
                f"no disease in the graph has a prevalence and the content recipe "
                f"{self.recipe.name} needs{detail}"
            )
        self.skipped = skipped
        #: how each drawn code's frequency was found (prevalence mode)
        self.prevalence_notes: list[str] = []
        self.code_probs = None
        if prevalence is not None:
            kept_freqs, self.prevalence_notes = prevalence.frequencies(kept, request.population)
            self.code_probs = code_probabilities(kept_freqs, request.code_weighting)
        #: records per compiled target (n, or n patients times the disease's visits)
        sizes = [
            request.n * (c.patients.visits if c.patients is not None else 1) for c in self.compiled
        ]
        self._offsets = np.cumsum([0, *sizes])
        self.total = request.n if request.by_prevalence else int(self._offsets[-1])

    @property
    def profiles(self) -> list[DiseaseProfile]:
        return [c.profile for c in self.compiled]

    @property
    def kg_hash(self) -> str:
        """One hash over the content hashes of every profile the run uses and, in prevalence
        mode, how each code's frequency was found (figures, population sizes)."""
        hashes = sorted({p.content_hash for p in self.profiles})
        joined = "\n".join([*hashes, *self.prevalence_notes])
        return hashlib.sha256(joined.encode("ascii")).hexdigest()

    @property
    def targets(self) -> list[Target]:
        return [
            Target(
                disease_id=c.profile.disease_id,
                disease=c.profile.disease,
                icd=c.profile.icd,
                resolution=c.resolution,
            )
            for c in self.compiled
        ]

    def target_of(self, indices: IntArray) -> IntArray:
        """The compiled target each record index belongs to."""
        if self.code_probs is None:
            return np.searchsorted(self._offsets, indices, side="right") - 1
        u = stage_uniforms(self.request.seed, indices, Stage.CODE, 1)[:, 0]
        return draw(cumulative(self.code_probs), u)

    def check_range(self, start: int, stop: int | None) -> int:
        """``stop`` (default: the end of the run), once ``start .. stop`` is known to be inside."""
        stop = self.total if stop is None else stop
        if not 0 <= start <= stop <= self.total:
            raise EngineError(f"record range {start}..{stop} is outside the run (0..{self.total})")
        return stop

    def iter_specs(
        self, start: int = 0, stop: int | None = None, batch_size: int = DEFAULT_BATCH
    ) -> Iterator[GenerationSpec]:
        """Specs for records ``start .. stop-1`` (default: the whole run), in index order."""
        stop = self.check_range(start, stop)
        for lo in range(start, stop, batch_size):
            indices = np.arange(lo, min(lo + batch_size, stop), dtype=np.int64)
            which = self.target_of(indices)
            batch: list[GenerationSpec | None] = [None] * len(indices)
            for t in np.unique(which):
                pos = np.flatnonzero(which == t)
                for p, spec in zip(pos, self._specs(int(t), indices[pos]), strict=True):
                    batch[p] = spec
            for item in batch:
                assert item is not None
                yield item

    def _specs(self, target: int, indices: IntArray) -> list[GenerationSpec]:
        """The specs of records ``indices``, all of compiled target ``target``."""
        compiled, seed = self.compiled[target], self.request.seed
        if compiled.patients is None:
            return compiled.specs(seed, indices)
        local = indices - self._offsets[target]
        visits = compiled.patients.visits
        return compiled.visit_specs(
            seed, indices, target * self.request.n + local // visits, local % visits
        )


def _alternatives_note(target: Target) -> str:
    """Which disease a code with several candidates went to, and how to choose another."""
    assert target.resolution is not None
    r = target.resolution
    return (
        f"{r.requested}: chose {target.disease} ({target.disease_id}), {r.describe()} (ranked "
        f"by distance, primary coding, most weighted symptoms, lowest code); also found: "
        f"{'; '.join(target.alternatives)}; pass --disease ID to plan for one of those"
    )


#: what a forked planning worker renders: set in the parent just before the fork
_WORK: tuple[Planner, Callable[[GenerationSpec], str]] | None = None


def _chunk_text(
    planner: Planner, line: Callable[[GenerationSpec], str], bounds: tuple[int, int]
) -> str:
    return "".join([line(spec) + "\n" for spec in planner.iter_specs(*bounds)])


def _worker_chunk(bounds: tuple[int, int]) -> str:
    assert _WORK is not None
    return _chunk_text(*_WORK, bounds)


def plan_lines(
    planner: Planner,
    line: Callable[[GenerationSpec], str],
    start: int = 0,
    stop: int | None = None,
    workers: int = 1,
) -> Iterator[tuple[str, int]]:
    """``(text, count)`` chunks: ``line(spec)`` plus a newline for each of ``count`` records,
    in index order, for records ``start .. stop-1``.

    ``workers > 1`` forks that many processes (POSIX ``fork``: they inherit the planner and
    never touch the graph), each planning and rendering whole chunks; a record depends only
    on its index, so the text is byte-identical to a single process's.
    """
    global _WORK
    stop = planner.check_range(start, stop)
    bounds = [(lo, min(lo + DEFAULT_BATCH, stop)) for lo in range(start, stop, DEFAULT_BATCH)]
    if workers <= 1 or len(bounds) <= 1:
        for lo, hi in bounds:
            yield _chunk_text(planner, line, (lo, hi)), hi - lo
        return
    _WORK = (planner, line)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for (lo, hi), text in zip(bounds, pool.imap(_worker_chunk, bounds), strict=True):
                yield text, hi - lo
    finally:
        _WORK = None


def sampling_params(
    generation: Generation | None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
) -> SamplingParams:
    """The recipe's sampling defaults with the given overrides; a bad value names its flag."""
    given = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}
    defaults = generation.model_dump() if generation is not None else {}
    try:
        return SamplingParams.model_validate(
            defaults | {k: v for k, v in given.items() if v is not None}
        )
    except ValidationError as err:
        first = err.errors()[0]
        flag = str(first["loc"][0]).replace("_", "-")
        raise EngineError(f"--{flag}: {first['msg']}") from None


def spec_request(
    spec: GenerationSpec, params: SamplingParams, output: type[BaseModel] | None = None
) -> LLMRequest:
    """The LLM request for ``spec``: its recipe's messages and the record's own seed."""
    return LLMRequest(
        request_id=spec.record_id,
        messages=render_messages(spec),
        params=params,
        seed=spec.record_seed,
        output=output,
        spec=spec,
    )


def openai_batch_line(
    model: str, params: SamplingParams, output: type[BaseModel] | None, spec: GenerationSpec
) -> str:
    """``plan --format openai-batch``'s line for ``spec`` (no newline)."""
    return batch_line(model, spec_request(spec, params, output))
