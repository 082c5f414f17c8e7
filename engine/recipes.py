"""Recipes: data (``engine/prompts/recipes.yaml``) plus a Jinja2 template each.

A template has two blocks: ``system`` (static instructions, identical for every record of
the recipe, so an inference server's prefix cache serves it) and ``user`` (the per-record
constraints). Templates are compiled once with ``StrictUndefined``: a missing variable is an
error, never an empty string. A template is versioned by the sha256 of its source.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from jinja2 import Environment, StrictUndefined, Template, TemplateError, meta
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.errors import EngineError
from engine.outputs import OUTPUTS
from engine.profile import DiseaseProfile
from engine.provenance import sha256_hex
from engine.samplers.medsyn import SymptomDraw
from engine.samplers.patients import DAYS_PER_MONTH
from engine.samplers.trajectory import WindowWeighting
from engine.spec import DrugRef, GenerationSpec, Persona, RiskFactorRef, StyleRef

Component = Literal["persona", "trajectory", "symptoms", "example", "sections"]
Messages = list[dict[str, str]]


class RecipeParams(BaseModel):
    """Sampling knobs of the recipes (each recipe uses those of its components)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scheme: str | None = None
    window_weights: WindowWeighting = "auto"
    keyword_multiplier: float = Field(5.0, gt=0)
    min_keywords: int = Field(0, ge=0)
    max_keywords: int = Field(30, ge=1)
    symptom_temperature: float = Field(1.0, gt=0)
    #: ``softmax`` (MedSyn: k of the symptoms) or ``frequency`` (each at its own rate)
    symptom_draw: SymptomDraw = "softmax"
    min_symptoms: int = Field(3, ge=1)
    max_symptoms: int = Field(6, ge=1)
    example_probability: float = Field(1.0, ge=0, le=1)
    open_age_span: int = Field(10, ge=1)


class Generation(BaseModel):
    """Default LLM sampling parameters of a recipe (the runtime may override them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(1.0, ge=0)
    max_tokens: int = Field(1024, ge=1)


class Recipe(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    title: str
    paper: str
    description: str
    template: str
    components: tuple[Component, ...]
    icd_prefix: str | None = None
    scheme_preference: tuple[str, ...] = ()
    params: RecipeParams
    generation: Generation
    #: a structured output from ``engine.outputs.OUTPUTS`` the answers must match
    output: str | None = None
    #: the kind of note written: the style guidelines (``note_type``) that apply to it
    note_type: str | None = None

    @field_validator("output")
    @classmethod
    def _known_output(cls, name: str | None) -> str | None:
        if name is not None and name not in OUTPUTS:
            raise ValueError(f"unknown output {name!r}; known: {', '.join(sorted(OUTPUTS))}")
        return name

    @property
    def output_model(self) -> type[BaseModel] | None:
        """The model every answer must be valid JSON for, or None for free text."""
        return None if self.output is None else OUTPUTS[self.output]

    def resolve_params(self, overrides: dict[str, Any] | None = None) -> RecipeParams:
        """The recipe's defaults with ``overrides`` applied; unknown names are errors."""
        data = {**self.params.model_dump(exclude_unset=True), **(overrides or {})}
        try:
            return RecipeParams.model_validate(data)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()
            )
            raise EngineError(
                f"recipe {self.name}: bad parameter(s): {problems} "
                f"(known: {', '.join(RecipeParams.model_fields)})"
            ) from None


PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"


@cache
def recipes() -> dict[str, Recipe]:
    """The registry, by recipe name."""
    raw = yaml.safe_load((PROMPTS_DIR / "recipes.yaml").read_text(encoding="utf-8"))
    return {name: Recipe.model_validate({"name": name, **data}) for name, data in raw.items()}


def get_recipe(name: str) -> Recipe:
    registry = recipes()
    if name not in registry:
        raise EngineError(f"unknown recipe {name!r}; available: {', '.join(sorted(registry))}")
    return registry[name]


class CompiledTemplate:
    """A recipe's template, compiled once, with its content hash and rendered system block."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.hash = hashlib.sha256(source.encode("utf-8")).hexdigest()
        env = Environment(
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        try:
            self.template: Template = env.from_string(source)
        except TemplateError as err:
            raise EngineError(f"template {name}: {err}") from None
        missing = {"system", "user"} - set(self.template.blocks)
        if missing:
            raise EngineError(f"template {name}: missing block(s) {', '.join(sorted(missing))}")
        # only the variables the template reads are computed per record (an unknown name
        # stays undefined, so StrictUndefined still names it)
        used = meta.find_undeclared_variables(env.parse(source))
        self.variables = tuple(v for v in TEMPLATE_VARIABLES if v in used)
        self._contexts = threading.local()
        self.system = self._block("system", {})

    def hash_with(self, style: tuple[StyleRef, ...]) -> str:
        """The hash of this template as rendered with ``style``: the file's hash alone
        without style guidelines, else the sha256 of it and their canonical JSON, so an
        edited guideline in the graph changes the template hash of every record."""
        if not style:
            return self.hash
        return sha256_hex({"template": self.hash, "style": [s.model_dump() for s in style]})

    def _block(self, block: str, context: dict[str, Any]) -> str:
        try:
            # one jinja Context per thread and block, its variables swapped per record: a
            # block reads them when it starts, and is rendered whole before the next record
            ctx = getattr(self._contexts, block, None)
            if ctx is None:
                ctx = self.template.new_context({}, shared=True)
                setattr(self._contexts, block, ctx)
            ctx.parent = context
            text = "".join(self.template.blocks[block](ctx))
        except TemplateError as err:
            raise EngineError(f"template {self.name}, block {block}: {err}") from None
        return text.strip()

    def messages(self, context: dict[str, Any]) -> Messages:
        """System message (static) first, then the per-record user message."""
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self._block("user", context)},
        ]


@cache
def compiled_template(recipe: str) -> CompiledTemplate:
    name = get_recipe(recipe).template
    try:
        source = (PROMPTS_DIR / name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EngineError(f"recipe {recipe}: template {name} not found in engine/prompts") from None
    return CompiledTemplate(name, source)


_LABELS = {"race_ethnicity": "Race/ethnicity", "age_group": "Age group"}
Lines = tuple[tuple[str, str], ...]
#: A run's personas share one attributes dict per drawn row and one factor tuple per set of
#: risk flags, so their template lines are cached by those objects' identity (each kept
#: alive beside its lines); a persona itself is cheap to render from them.
_attribute_cache: dict[tuple[int, bool], tuple[dict[str, str], Lines]] = {}
_condition_cache: dict[int, tuple[tuple[RiskFactorRef, ...], tuple[str, ...]]] = {}
_medication_cache: dict[int, tuple[tuple[DrugRef, ...], tuple[str, ...]]] = {}
_style_cache: dict[int, tuple[tuple[StyleRef, ...], tuple[str, ...]]] = {}
_CACHE_LIMIT = 100_000


def demographics(persona: Persona | None) -> Lines:
    """``(label, value)`` lines of a persona: age first, then every other attribute."""
    if persona is None:
        return ()
    aged = persona.age is not None
    key = (id(persona.attributes), aged)
    hit = _attribute_cache.get(key)
    if hit is not None and hit[0] is persona.attributes:
        rest = hit[1]
    else:
        if len(_attribute_cache) >= _CACHE_LIMIT:
            _attribute_cache.clear()
        rest = tuple(
            (_label(attr), value)
            for attr, value in persona.attributes.items()
            if not (aged and attr in ("age_group", "age"))
        )
        _attribute_cache[key] = (persona.attributes, rest)
    return (("Age", f"{persona.age} years"), *rest) if aged else rest


def conditions(persona: Persona | None) -> tuple[str, ...]:
    """The names of a persona's risk factors and known conditions."""
    if persona is None:
        return ()
    factors = persona.risk_factors
    hit = _condition_cache.get(id(factors))
    if hit is not None and hit[0] is factors:
        return hit[1]
    if len(_condition_cache) >= _CACHE_LIMIT:
        _condition_cache.clear()
    names = tuple(f.name for f in factors)
    _condition_cache[id(factors)] = (factors, names)
    return names


def medications(persona: Persona | None) -> tuple[str, ...]:
    """A persona's current medications, ``name (class)``; cached by the tuple's identity."""
    if persona is None or not persona.medications:
        return ()
    drugs = persona.medications
    hit = _medication_cache.get(id(drugs))
    if hit is not None and hit[0] is drugs:
        return hit[1]
    if len(_medication_cache) >= _CACHE_LIMIT:
        _medication_cache.clear()
    names = tuple(f"{d.name} ({d.drug_class})" if d.drug_class else d.name for d in drugs)
    _medication_cache[id(drugs)] = (drugs, names)
    return names


def style_refs(profile: DiseaseProfile, note_type: str | None) -> tuple[StyleRef, ...]:
    """The profile's style guidelines for ``note_type`` as spec parts (by ``order``, id)."""
    return tuple(
        StyleRef(
            id=g.id,
            title=g.title,
            text=g.text,
            min_words=g.min_words,
            max_words=g.max_words,
            sections=g.sections,
            voice=g.voice,
        )
        for g in profile.style_guidelines(note_type)
    )


def style_lines(style: tuple[StyleRef, ...]) -> tuple[str, ...]:
    """The lines a template renders for the style guidelines (cached by the tuple's
    identity: every record of a disease shares it)."""
    if not style:
        return ()
    hit = _style_cache.get(id(style))
    if hit is not None and hit[0] is style:
        return hit[1]
    if len(_style_cache) >= _CACHE_LIMIT:
        _style_cache.clear()
    lines: list[str] = []
    for s in style:
        lines += [f"Style guideline ({s.title}):", *s.text.strip().splitlines()]
        if s.min_words and s.max_words:
            lines.append(f"- Length: {s.min_words}-{s.max_words} words.")
        elif s.min_words or s.max_words:
            bound = "at least" if s.min_words else "at most"
            lines.append(f"- Length: {bound} {s.min_words or s.max_words} words.")
        if s.sections:
            lines.append(f"- Sections, in this order: {', '.join(s.sections)}.")
        if s.voice:
            lines.append(f"- Register: {s.voice}.")
    _style_cache[id(style)] = (style, tuple(lines))
    return _style_cache[id(style)][1]


def _ago(months: float) -> str:
    """A time span in words: ``12 days``, ``5 months``, ``2 years 3 months``."""
    days = round(months * DAYS_PER_MONTH)
    if days < 31:
        return f"{days} day{'s' if days != 1 else ''}"
    whole = round(months)
    years, rest = divmod(whole, 12)
    parts = [f"{years} year{'s' if years != 1 else ''}"] if years else []
    if rest or not years:
        parts.append(f"{rest} month{'s' if rest != 1 else ''}")
    return " ".join(parts)


def history_lines(spec: GenerationSpec) -> tuple[str, ...]:
    """One line per earlier visit of a longitudinal patient: when (before this visit), the
    age then and the symptoms that visit documented."""
    now = spec.visit_months or 0.0
    lines = []
    for past in spec.history:
        age = f" (age {past.age})" if past.age is not None else ""
        found = ", ".join(past.symptoms) if past.symptoms else "no symptom documented"
        lines.append(f"{_ago(now - past.visit_months)} earlier{age}: {found}")
    return tuple(lines)


@cache
def _label(attr: str) -> str:
    return _LABELS.get(attr, attr.replace("_", " ").capitalize())


_VARIABLES: dict[str, Callable[[GenerationSpec], Any]] = {
    "spec": lambda spec: spec,
    "disease": lambda spec: spec.disease,
    "icd_code": lambda spec: spec.icd_code,
    "icd_title": lambda spec: spec.icd_title,
    "demographics": lambda spec: demographics(spec.persona),
    "conditions": lambda spec: conditions(spec.persona),
    "medications": lambda spec: medications(spec.persona),
    "style": lambda spec: style_lines(spec.style),
    "window_phrase": lambda spec: spec.window.phrase if spec.window else None,
    "history": history_lines,
    "diagnosed": lambda spec: spec.window.diagnosed if spec.window else None,
    "keywords": lambda spec: [(k.text, k.category) for k in spec.keywords],
    "symptoms": lambda spec: [s.name for s in spec.symptoms],
    "sections": lambda spec: [(s.title, s.guidance) for s in spec.sections],
    "example": lambda spec: spec.examples[0].text if spec.examples else None,
}
#: The variables every template may use: plain strings and lists, plus ``spec`` itself.
TEMPLATE_VARIABLES = tuple(_VARIABLES)


def template_context(
    spec: GenerationSpec, names: Iterable[str] = TEMPLATE_VARIABLES
) -> dict[str, Any]:
    """The template variables ``names`` (default: all of them) of ``spec``."""
    return {name: _VARIABLES[name](spec) for name in names}


def render_messages(spec: GenerationSpec) -> Messages:
    """The chat messages for ``spec``: static system message first, per-record user last.

    Raises ``EngineError`` when the recipe's template changed since the spec was planned
    (its hash no longer matches) or a template variable is missing.
    """
    template = compiled_template(spec.recipe)
    if template.hash_with(spec.style) != spec.template_hash:
        raise EngineError(
            f"record {spec.record_id} was planned with template {spec.template_id} "
            f"sha256 {spec.template_hash[:12]}, but the template is now {template.hash[:12]}; "
            "plan again"
        )
    return template.messages(template_context(spec, template.variables))
