"""The summary table ``kgsynth evaluate`` prints: a row per headline figure, a column per run
(headed by the notes file name)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table


def _get(doc: dict[str, Any], *path: str) -> Any:
    cur: Any = doc
    for key in path:
        if not isinstance(cur, dict) or cur.get(key) is None:
            return None
        cur = cur[key]
    return cur


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _persona_tvd(doc: dict[str, Any]) -> float | None:
    codes = _get(doc, "alignment", "per_code") or {}
    return _mean([v for c in codes.values() for v in (c.get("persona TVD") or {}).values()])


def _window_js(doc: dict[str, Any]) -> float | None:
    codes = _get(doc, "alignment", "per_code") or {}
    return _mean([v for c in codes.values() for v in (c.get("window_category_js") or {}).values()])


def _row(label: str, *path: str) -> tuple[str, Callable[[dict[str, Any]], Any]]:
    return label, lambda d: _get(d, *path)


def rows(doc: dict[str, Any]) -> list[tuple[str, Callable[[dict[str, Any]], Any]]]:
    """(label, figure getter) of each table row; the sample sizes are named in the labels."""
    bleu_n = _get(doc, "diversity", "overall", "self_bleu", "sample")
    ngram = _get(doc, "settings", "ngram")
    return [
        _row("ok notes", "notes", "ok"),
        _row("distinct-1", "diversity", "overall", "distinct_1"),
        _row("distinct-2", "diversity", "overall", "distinct_2"),
        _row("distinct-3", "diversity", "overall", "distinct_3"),
        _row("MATTR (window 50)", "diversity", "overall", "mattr"),
        _row(f"self-BLEU (sample {bleu_n})", "diversity", "overall", "self_bleu", "value"),
        _row("embedding dispersion", "diversity", "overall", "embedding_dispersion"),
        _row("MMD² vs reference", "fidelity", "overall", "mmd2"),
        _row("MMD p-value", "fidelity", "overall", "p_value"),
        _row("centroid cosine", "fidelity", "overall", "centroid_cosine"),
        _row("longest shared n-gram (reference)", "privacy", "reference_ngrams", "longest_max"),
        _row(
            f"share >= {ngram}-gram (reference)",
            "privacy",
            "reference_ngrams",
            "share_at_threshold",
        ),
        _row("longest shared n-gram (examples)", "privacy", "example_ngrams", "longest_max"),
        _row("near-duplicates within", "privacy", "near_duplicates", "within_rate"),
        _row("near-duplicates vs reference", "privacy", "near_duplicates", "reference_rate"),
        _row("DCR median (synthetic)", "privacy", "dcr", "synthetic_median"),
        _row("DCR median (real holdout)", "privacy", "dcr", "holdout_median"),
        _row("share under DCR threshold", "privacy", "dcr", "share_under_threshold"),
        ("persona TVD (mean)", _persona_tvd),
        ("window category JS (mean)", _window_js),
        _row("coherence violations", "alignment", "violations"),
        _row("keyword realisation", "annotations", "keyword_realisation_rate"),
        _row("label agreement", "annotations", "label_agreement"),
    ]


def table(doc: dict[str, Any]) -> Table:
    """The run, and the ``against`` run beside it when there is one."""
    runs = [doc] + ([doc["against"]] if doc.get("against") else [])
    t = Table(title="kgsynth evaluate")
    t.add_column("metric", no_wrap=True)
    names = [Path(run["notes"]["path"]).name for run in runs]
    if len(set(names)) < len(names):
        names = [run["notes"]["path"] for run in runs]
    for name in names:
        t.add_column(name, justify="right")
    for label, get in rows(doc):
        values = [get(run) for run in runs]
        if all(v is None for v in values):
            continue
        t.add_row(label, *("-" if v is None else str(v) for v in values))
    return t
