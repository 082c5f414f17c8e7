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


Getter = Callable[[dict[str, Any]], Any]


def _row(label: str, size: Getter, *path: str) -> tuple[str, Getter, Getter]:
    return label, lambda d: _get(d, *path), size


def _n(*path: str, unit: str = "notes") -> Getter:
    def size(d: dict[str, Any]) -> str | None:
        v = _get(d, *path)
        return None if v is None else f"{v} {unit}"

    return size


def _pair(*path: str, a: str, b: str, unit: str) -> Getter:
    def size(d: dict[str, Any]) -> str | None:
        x, y = _get(d, *path, a), _get(d, *path, b)
        return None if x is None or y is None else f"{x} vs {y} {unit}"

    return size


def rows(doc: dict[str, Any]) -> list[tuple[str, Getter, Getter]]:
    """(label, figure getter, sample-size getter) of each table row; the self-BLEU sample
    size and the n-gram threshold are named in the labels too."""
    bleu_n = _get(doc, "diversity", "overall", "self_bleu", "sample")
    ngram = _get(doc, "settings", "ngram")
    notes = _n("notes", "ok")
    specs = _n("alignment", "specs", unit="specs")
    ref_docs = _n("reference", "documents", unit="reference docs")
    return [
        _row("ok notes", notes, "notes", "ok"),
        _row(
            "distinct-1",
            _n("diversity", "overall", "tokens", unit="tokens"),
            "diversity",
            "overall",
            "distinct_1",
        ),
        _row("distinct-2", notes, "diversity", "overall", "distinct_2"),
        _row("distinct-3", notes, "diversity", "overall", "distinct_3"),
        _row("MATTR (window 50)", notes, "diversity", "overall", "mattr"),
        _row(
            f"self-BLEU (sample {bleu_n})",
            _n("diversity", "overall", "self_bleu", "sample"),
            "diversity",
            "overall",
            "self_bleu",
            "value",
        ),
        _row("embedding dispersion", notes, "diversity", "overall", "embedding_dispersion"),
        _row("symptom recall (mean)", _n("symptom_recall", "judged"), "symptom_recall", "mean"),
        _row(
            "notes >= --min-symptom-recall",
            _n("symptom_recall", "judged"),
            "symptom_recall",
            "passed",
        ),
        _row(
            "MMD² vs reference",
            _pair("fidelity", "overall", a="n_synthetic", b="n_reference", unit="notes"),
            "fidelity",
            "overall",
            "mmd2",
        ),
        _row(
            "MMD p-value",
            _n("fidelity", "overall", "permutations", unit="permutations"),
            "fidelity",
            "overall",
            "p_value",
        ),
        _row("centroid cosine", ref_docs, "fidelity", "overall", "centroid_cosine"),
        _row(
            "longest shared n-gram (reference)",
            ref_docs,
            "privacy",
            "reference_ngrams",
            "longest_max",
        ),
        _row(
            f"share >= {ngram}-gram (reference)",
            ref_docs,
            "privacy",
            "reference_ngrams",
            "share_at_threshold",
        ),
        _row(
            "longest shared n-gram (examples)",
            _n("privacy", "example_ngrams", "corpus", unit="examples"),
            "privacy",
            "example_ngrams",
            "longest_max",
        ),
        _row("near-duplicates within", notes, "privacy", "near_duplicates", "within_rate"),
        _row(
            "near-duplicates vs reference", ref_docs, "privacy", "near_duplicates", "reference_rate"
        ),
        _row(
            "DCR median (synthetic)",
            _n("privacy", "dcr", "reference_half", unit="reference docs (half A)"),
            "privacy",
            "dcr",
            "synthetic_median",
        ),
        _row(
            "DCR median (real holdout)",
            _n("privacy", "dcr", "holdout", unit="holdout docs (half B)"),
            "privacy",
            "dcr",
            "holdout_median",
        ),
        _row("share under DCR threshold", notes, "privacy", "dcr", "share_under_threshold"),
        ("persona TVD (mean)", _persona_tvd, specs),
        ("window category JS (mean)", _window_js, specs),
        _row("coherence violations", specs, "alignment", "violations"),
        _row(
            "keyword realisation",
            _n("annotations", "keywords", unit="keywords"),
            "annotations",
            "keyword_realisation_rate",
        ),
        _row(
            "label agreement",
            _n("annotations", "keywords", unit="keywords"),
            "annotations",
            "label_agreement",
        ),
    ]


def run_names(doc: dict[str, Any]) -> list[str]:
    """The column heading of the run and of the ``against`` run: file names, or whole paths
    when the names coincide."""
    runs = [doc] + ([doc["against"]] if doc.get("against") else [])
    names = [Path(run["notes"]["path"]).name for run in runs]
    if len(set(names)) < len(names):
        names = [run["notes"]["path"] for run in runs]
    return names


def table(doc: dict[str, Any]) -> Table:
    """The run, and the ``against`` run beside it when there is one."""
    runs = [doc] + ([doc["against"]] if doc.get("against") else [])
    t = Table(title="kgsynth evaluate")
    t.add_column("metric", no_wrap=True)
    for name in run_names(doc):
        t.add_column(name, justify="right")
    for label, get, _ in rows(doc):
        values = [get(run) for run in runs]
        if all(v is None for v in values):
            continue
        t.add_row(label, *("-" if v is None else str(v) for v in values))
    return t
