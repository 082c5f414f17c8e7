"""The disease card: a disease's profile as the engine reads it, as one server-rendered page.

Persona shares, windows (densities, category shares), symptoms with frequencies, core
criteria, risks and drugs, each figure with its source and measured/estimate status; the
sources behind them; the graph audit's findings about the disease; a few planned records
with their rendered prompts. No script and nothing fetched: the page stands alone.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import jinja2

from engine.audit.findings import Finding
from engine.audit.graph import audit_graph
from engine.errors import EngineError
from engine.plan import Planner, PlanRequest
from engine.profile import DiseaseProfile, StratumShare
from engine.recipes import recipes, render_messages
from kg.queries import get_query
from kg.store.base import GraphStore

#: planned records shown on a card
SAMPLES = 3
_env = jinja2.Environment(
    loader=jinja2.FunctionLoader(
        lambda name: files("engine.service").joinpath("templates", name).read_text("utf-8")
    ),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass
class Evidence:
    """Source and status of one curated figure, by (relationship type, start id, end id)."""

    rows: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)

    def of(self, rel: str, start: str, end: str) -> dict[str, Any]:
        return self.rows.get((rel, start, end), {})


class AuditCache:
    """The graph audit, run once per process on first use (it reads the whole graph)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._findings: list[Finding] | None = None

    def findings(self, store: GraphStore) -> list[Finding]:
        with self._lock:
            if self._findings is None:
                self._findings = audit_graph(store).findings
            return self._findings


def _evidence(store: GraphStore, profile: DiseaseProfile) -> Evidence:
    rows = store.read(get_query("disease_figures").text, {"disease": profile.disease_id})
    return Evidence({(r["rel"], r["start"], r["end"]): r for r in rows})


def _value_order(stratum: StratumShare) -> tuple[int, str]:
    """Age groups by their first age (5-17 before 18-34), other values alphabetically."""
    digits = re.match(r"\d+", stratum.value)
    return (int(digits.group()) if digits else -1, stratum.value)


def default_recipe(profile: DiseaseProfile) -> str:
    """dualalign for a disease with trajectory windows, mh_report for F-codes, else medsyn."""
    if profile.windows:
        return "dualalign"
    code = profile.icd.code if profile.icd else ""
    return "mh_report" if code.startswith("F") else "medsyn"


def _samples(
    store: GraphStore, profile: DiseaseProfile, recipe: str
) -> tuple[list[dict[str, Any]], str | None]:
    """A few planned records with their prompts, or why none could be planned."""
    if profile.icd is None:
        return [], "the disease has no ICD-10-CM code to plan for"
    try:
        request = PlanRequest(recipe=recipe, icd=(profile.icd.code,), n=SAMPLES, seed=0)
        specs = list(Planner(store, request).iter_specs())
        return [
            {"spec": s.model_dump(mode="json"), "messages": render_messages(s)} for s in specs
        ], None
    except EngineError as err:
        return [], str(err)


def render_card(
    store: GraphStore, profile: DiseaseProfile, audit: AuditCache, recipe: str | None = None
) -> str:
    """The card's HTML for ``profile``."""
    recipe = recipe or default_recipe(profile)
    if recipe not in recipes():
        raise EngineError(f"unknown recipe {recipe!r}; choose from {', '.join(recipes())}")
    evidence = _evidence(store, profile)
    sources = store.read(get_query("provenance").text, {"disease": profile.disease_id})
    ids = {profile.disease_id, *(w.id for w in profile.windows)}
    findings = [f for f in audit.findings(store) if any(i in f.subject for i in ids)]
    samples, refused = _samples(store, profile, recipe)
    by_attribute: dict[str, list[Any]] = {}
    for s in sorted(profile.strata, key=lambda s: (s.attribute, *_value_order(s))):
        by_attribute.setdefault(s.attribute, []).append(s)
    names = {s.id: s.name for s in profile.symptoms}
    return _env.get_template("card.html").render(
        p=profile,
        ev=evidence,
        strata=by_attribute,
        symptoms=sorted(profile.symptoms, key=lambda s: -(s.frequency or 0.0)),
        core=[(g.name, [names.get(i, i) for i in g.symptom_ids]) for g in profile.core],
        sources=sources,
        findings=findings,
        recipe=recipe,
        samples=samples,
        refused=refused,
    )
