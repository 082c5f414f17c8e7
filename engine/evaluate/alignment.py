"""Alignment to the graph: the audit's figures for the notes' specs, plus what needs the text.

The audit (``engine.audit.specs``) checks each note's spec against the graph and tallies
persona attributes and per-window keyword categories; its figures (TVD) and violation counts
are taken as they are. From the same tallies this adds a chi-square test of each persona
attribute against the graph's shares and the Jensen-Shannon divergence (base 2) of each
window's keyword categories against the window's category shares. With annotations: the
keyword realisation rate and the label agreement of the constraint check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from math import log2
from typing import Any

from engine.annotate.model import AnnotatedNote
from engine.audit.alignment import Tally, expected_attributes
from engine.audit.specs import SpecAuditor
from engine.spec import GenerationSpec
from kg.store import GraphStore


def _normalise(counts: Mapping[str, float], keys: Iterable[str]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: (counts.get(k, 0) / total if total > 0 else 0.0) for k in keys}


def js_divergence(observed: Mapping[str, float], expected: Mapping[str, float]) -> float:
    """Jensen-Shannon divergence (bits, 0..1) of two distributions given as counts."""
    keys = sorted(set(observed) | set(expected))
    p, q = _normalise(observed, keys), _normalise(expected, keys)
    m = {k: (p[k] + q[k]) / 2 for k in keys}

    def kl(a: dict[str, float]) -> float:
        return sum(a[k] * log2(a[k] / m[k]) for k in keys if a[k] > 0)

    return 0.5 * kl(p) + 0.5 * kl(q)


def chi_square(observed: Mapping[str, float], expected: Mapping[str, float]) -> dict[str, Any]:
    """Pearson's chi-square of observed counts against expected shares (scaled to the counts);
    categories with no expected share are reported, not tested."""
    from scipy.stats import chi2

    n = sum(observed.values())
    total = sum(expected.values())
    keys = [k for k, v in expected.items() if v > 0]
    stat = sum(
        (observed.get(k, 0) - n * expected[k] / total) ** 2 / (n * expected[k] / total)
        for k in keys
    )
    df = len(keys) - 1
    unexpected = sorted(k for k in observed if k not in keys and observed[k] > 0)
    return {
        "statistic": round(stat, 4),
        "df": df,
        "p_value": round(float(chi2.sf(stat, df)), 4) if df > 0 else None,
        "unexpected": unexpected,
    }


def _shares(counts: Mapping[str, float]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: round(v / total, 6) for k, v in sorted(counts.items())} if total > 0 else {}


def _tally_figures(tally: Tally) -> dict[str, Any]:
    expected = expected_attributes(tally.profile)
    out: dict[str, Any] = {}
    if tally.attributes and tally.records:
        out["persona_chi_square"] = {
            a: chi_square(counts, expected.get(a, {}))
            for a, counts in sorted(tally.attributes.items())
            if expected.get(a)
        }
        out["persona_marginals"] = {
            a: {"drawn": dict(sorted(counts.items())), "graph": _shares(expected.get(a, {}))}
            for a, counts in sorted(tally.attributes.items())
        }
    windows: dict[str, float] = {}
    categories: dict[str, Any] = {}
    for info in tally.profile.windows:
        t = tally.windows.get(info.id)
        if t is None:
            continue
        observed = [
            o for o in info.observations if o.kind == "SymptomCategory" and o.scheme == tally.scheme
        ]
        shares = {o.target_id: float(o.frequency) for o in observed}
        if shares and t.categories:
            windows[info.name] = round(js_divergence(t.categories, shares), 4)
            names = {o.target_id: o.name for o in observed}
            categories[info.name] = {
                "drawn": {names.get(k, k): v for k, v in sorted(t.categories.items())},
                "graph": {names[k]: v for k, v in _shares(shares).items()},
            }
    if windows:
        out["window_category_js"] = windows
        out["window_categories"] = categories
    return out


def alignment(store: GraphStore, specs: Sequence[GenerationSpec]) -> dict[str, Any]:
    """Audit figures and violations of the specs, with chi-square and JS per code."""
    auditor = SpecAuditor(store)
    for spec in specs:
        auditor.check(spec.model_dump(mode="json"))
    report = auditor.report()
    per_code: dict[str, Any] = {}
    for (_, _code), rules in sorted(
        auditor.rules.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")
    ):
        label = f"{rules.profile.icd.code if rules.profile.icd else '-'} {rules.profile.disease}"
        per_code[label] = {**report.figures.get(label, {}), **_tally_figures(rules.tally)}
    return {
        "specs": report.checked,
        "violations": len(report.violations),
        "violations_by_rule": report.counts(),
        "per_code": per_code,
    }


def annotation_agreement(notes: Sequence[AnnotatedNote]) -> dict[str, Any]:
    """Requested keywords realised in a sentence, and realised ones whose label agrees."""
    realisations = [r for n in notes for r in n.realisations]
    realised = [r for r in realisations if r.sentence is not None]
    judged = [r for r in realised if r.label_agrees is not None]
    return {
        "annotated_notes": len(notes),
        "keywords": len(realisations),
        "keyword_realisation_rate": round(len(realised) / len(realisations), 4)
        if realisations
        else None,
        "label_agreement": round(sum(bool(r.label_agrees) for r in judged) / len(judged), 4)
        if judged
        else None,
    }
