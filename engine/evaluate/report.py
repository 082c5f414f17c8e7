"""``report.html``: the metrics document as one self-contained page of tables and plots.

plotly.js is inlined once in ``<head>`` (no CDN: the page works offline); every figure is a
``Plotly.newPlot`` call on it. A plot is drawn only when its data exists; otherwise its section
says what is missing. Tables come from pandas. A small script first in ``<head>`` copies page
errors (``window.onerror``, rejected promises, ``console.error``) into ``#kgsynth-errors``,
which shows itself when it has any.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.evaluate.fidelity import F
from engine.evaluate.summary import rows, run_names
from kg.outfile import atomic_file

#: points per group in the 2-D projection (a fixed-seed sample beyond it)
PROJECTION_POINTS = 2000
#: run colours (the run, the --against run) and the graph / reference colour
COLOURS = ("#1f77b4", "#ff7f0e")
GRAPH = "#7f7f7f"
PLOT_CONFIG = {"displaylogo": False, "responsive": True}

ERROR_TRAP = """<script>
(function () {
  var seen = [];
  function note(message) {
    seen.push(String(message));
    var box = document.getElementById("kgsynth-errors");
    if (box) { box.textContent = seen.join("\\n"); box.hidden = false; }
  }
  window.addEventListener("error", function (e) { note("error: " + e.message); });
  window.addEventListener("unhandledrejection", function (e) { note("rejection: " + e.reason); });
  var original = console.error;
  console.error = function () {
    note("console.error: " + Array.prototype.join.call(arguments, " "));
    original.apply(console, arguments);
  };
  document.addEventListener("DOMContentLoaded", function () { if (seen.length) note(seen.pop()); });
})();
</script>"""

STYLE = """<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1320px; padding: 0 24px 48px; color: #222; }
h1 { margin: 24px 0 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #ddd; }
h3 { margin: 18px 0 4px; font-size: 1.05em; }
.meta { color: #555; margin: 0 0 12px; } .missing { color: #8a6d3b; background: #fcf8e3;
  padding: 8px 12px; border-left: 4px solid #f0ad4e; }
#kgsynth-errors { color: #a94442; background: #f2dede; padding: 8px; }
table.metrics { border-collapse: collapse; font-size: 0.92em; margin: 8px 0; }
table.metrics th, table.metrics td { border: 1px solid #ddd; padding: 3px 8px; }
table.metrics td { text-align: right; } table.metrics th { background: #f5f5f5; }
table.metrics tbody th { text-align: left; font-weight: normal; }
.plot { margin: 6px 0 12px; }
</style>"""


@dataclass(frozen=True)
class Projection:
    """2-D coordinates of embeddings, one group per set (a run, the reference), and the share
    of variance the two axes explain."""

    groups: dict[str, F]
    explained: tuple[float, float]


def project(named: Sequence[tuple[str, F]], seed: int = 0) -> Projection | None:
    """PCA to two dimensions of the pooled sets (each sampled to ``PROJECTION_POINTS`` rows
    with ``seed``); ``None`` below three rows in all."""
    from sklearn.decomposition import PCA

    from engine.evaluate.fidelity import sample_rows

    parts = [(name, sample_rows(x, PROJECTION_POINTS, seed)) for name, x in named if len(x)]
    pooled = np.vstack([x for _, x in parts]) if parts else np.zeros((0, 2))
    if len(pooled) < 3 or pooled.shape[1] < 2:
        return None
    pca = PCA(n_components=2, random_state=seed).fit(pooled)
    ratio = pca.explained_variance_ratio_
    return Projection(
        {name: pca.transform(x) for name, x in parts}, (float(ratio[0]), float(ratio[1]))
    )


def _get(doc: dict[str, Any] | None, *path: str) -> Any:
    cur: Any = doc
    for key in path:
        if not isinstance(cur, dict) or cur.get(key) is None:
            return None
        cur = cur[key]
    return cur


def _runs(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    runs = [doc] + ([doc["against"]] if doc.get("against") else [])
    return list(zip(run_names(doc), runs, strict=True))


def _shares(counts: dict[str, float]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


class Page:
    """Sections of the report; each figure becomes one plot div."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.plots = 0

    def heading(self, title: str, note: str = "") -> None:
        self.parts.append(f"<h2>{html.escape(title)}</h2>")
        if note:
            self.parts.append(f'<p class="meta">{html.escape(note)}</p>')

    def sub(self, title: str) -> None:
        self.parts.append(f"<h3>{html.escape(title)}</h3>")

    def missing(self, why: str) -> None:
        self.parts.append(f'<p class="missing">Not drawn: {html.escape(why)}</p>')

    def raw(self, text: str) -> None:
        self.parts.append(text)

    def figure(self, fig: Any, height: int, barmode: str = "group") -> None:
        self.plots += 1
        fig.update_layout(
            template="plotly_white",
            height=height,
            margin={"l": 60, "r": 30, "t": 100 if fig.layout.title.text else 60, "b": 60},
            legend={"orientation": "h", "y": -0.12 if height < 500 else -0.06},
            barmode=barmode,
        )
        self.parts.append(
            '<div class="plot">'
            + fig.to_html(
                full_html=False,
                include_plotlyjs=False,
                div_id=f"plot-{self.plots}",
                config=PLOT_CONFIG,
            )
            + "</div>"
        )


def _grid(count: int, cols: int) -> tuple[int, int]:
    cols = min(cols, count)
    return -(-count // cols), cols


def _persona(page: Page, doc: dict[str, Any]) -> None:
    page.heading(
        "Persona marginals: drawn vs the graph",
        "Share of records per value of each persona attribute, beside the graph's prevalence "
        "share for the code (restricted to the code's ages and sex).",
    )
    drawn = _drawn_vs_graph(page, _runs(doc), "persona_marginals", 0.16, sort=True)
    if not drawn:
        page.missing(
            "no persona tallies (the notes' specs carry no persona, or --no-alignment was given)."
        )


def _drawn_vs_graph(
    page: Page, runs: list[tuple[str, Any]], key: str, spacing: float, *, sort: bool
) -> bool:
    """Per code, one panel per entry of ``alignment.per_code[code][key]`` (sorted, or in
    first-seen order): each run's drawn shares beside the graph's; whether any was drawn."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    codes = sorted({c for _, run in runs for c in (_get(run, "alignment", "per_code") or {})})
    drawn = False
    for code in codes:
        panels: list[str] = []
        for _, run in runs:
            for name in _get(run, "alignment", "per_code", code, key) or {}:
                if name not in panels:
                    panels.append(name)
        if not panels:
            continue
        if sort:
            panels.sort()
        nrows, ncols = _grid(len(panels), 2)
        fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=panels, vertical_spacing=spacing)
        for i, panel in enumerate(panels):
            r, c = divmod(i, ncols)
            graph: dict[str, float] = {}
            for k, (name, run) in enumerate(runs):
                tally = _get(run, "alignment", "per_code", code, key, panel)
                if tally is None:
                    continue
                graph = graph or tally["graph"]
                shares = _shares(tally["drawn"])
                values = sorted(set(shares) | set(tally["graph"]))
                fig.add_trace(
                    go.Bar(
                        x=values,
                        y=[shares.get(v, 0.0) for v in values],
                        name=f"{name} (drawn)",
                        marker_color=COLOURS[k],
                        legendgroup=name,
                        showlegend=i == 0,
                    ),
                    row=r + 1,
                    col=c + 1,
                )
            values = sorted(graph)
            fig.add_trace(
                go.Bar(
                    x=values,
                    y=[graph[v] for v in values],
                    name="graph share",
                    marker_color=GRAPH,
                    legendgroup="graph",
                    showlegend=i == 0,
                ),
                row=r + 1,
                col=c + 1,
            )
        fig.update_yaxes(tickformat=".0%")
        fig.update_layout(title=code)
        page.figure(fig, 330 * nrows + 80)
        drawn = True
    return drawn


def _windows(page: Page, doc: dict[str, Any]) -> None:
    page.heading(
        "Symptom categories per time-to-diagnosis window",
        "Share of requested keywords per category in each window, beside the window's "
        "category shares in the graph.",
    )
    drawn = _drawn_vs_graph(page, _runs(doc), "window_categories", 0.2, sort=False)
    if not drawn:
        page.missing(
            "no window tallies (no note's spec has a time-to-diagnosis window with keywords, "
            "or --no-alignment was given)."
        )


def _ngrams(page: Page, doc: dict[str, Any]) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    threshold = _get(doc, "settings", "ngram")
    page.heading(
        "Longest shared n-gram per note",
        f"Notes by the length (tokens) of the longest passage they share with the corpus; "
        f"the dashed line is the plagiarism threshold ({threshold} tokens).",
    )
    runs = _runs(doc)
    corpora = [
        (key, title)
        for key, title in (("reference_ngrams", "vs reference"), ("example_ngrams", "vs examples"))
        if any(_get(run, "privacy", key) for _, run in runs)
    ]
    if not corpora:
        page.missing("no corpus to compare with: give --reference (the specs carried no examples).")
        return
    fig = make_subplots(rows=1, cols=len(corpora), subplot_titles=[t for _, t in corpora])
    for i, (key, _) in enumerate(corpora):
        for k, (name, run) in enumerate(runs):
            hist = _get(run, "privacy", key, "histogram")
            if not hist:
                continue
            fig.add_trace(
                go.Bar(
                    x=[int(n) for n in hist],
                    y=list(hist.values()),
                    name=name,
                    marker_color=COLOURS[k],
                    legendgroup=name,
                    showlegend=i == 0,
                ),
                row=1,
                col=i + 1,
            )
        fig.add_vline(x=threshold, line_dash="dash", line_color="#d62728", row=1, col=i + 1)
    fig.update_xaxes(title_text="longest shared n-gram (tokens)")
    fig.update_yaxes(title_text="notes", col=1)
    page.figure(fig, 420)


def _projection(page: Page, projection: Projection | None, reference: bool) -> None:
    import plotly.graph_objects as go

    page.heading(
        "Embeddings in two dimensions",
        "PCA of the note embeddings (the evaluation model), fitted on all sets together; "
        f"at most {PROJECTION_POINTS} points per set.",
    )
    if projection is None:
        page.missing("no embeddings (--no-embeddings) or fewer than three notes.")
        return
    if not reference:
        page.raw('<p class="meta">No --reference: the runs are shown without real notes.</p>')
    colours = {"reference": GRAPH}
    fig = go.Figure()
    for k, (name, xy) in enumerate(projection.groups.items()):
        fig.add_trace(
            go.Scatter(
                x=xy[:, 0],
                y=xy[:, 1],
                mode="markers",
                name=name,
                marker={
                    "color": colours.get(name, COLOURS[min(k, 1)]),
                    "size": 7,
                    "opacity": 0.7,
                },
            )
        )
    a, b = projection.explained
    fig.update_xaxes(title_text=f"PC1 ({a:.0%} of variance)")
    fig.update_yaxes(title_text=f"PC2 ({b:.0%} of variance)")
    page.figure(fig, 560)


DIVERSITY = (
    ("distinct_1", "distinct-1"),
    ("distinct_2", "distinct-2"),
    ("distinct_3", "distinct-3"),
    ("mattr", "MATTR"),
    ("self_bleu", "self-BLEU / 100"),
    ("embedding_dispersion", "embedding dispersion"),
)


def _figure_value(figures: dict[str, Any], key: str) -> float | None:
    v = figures.get(key)
    if key == "self_bleu":
        v = v.get("value") if isinstance(v, dict) else None
        return None if v is None else v / 100
    return v if isinstance(v, int | float) else None


def _diversity(page: Page, doc: dict[str, Any]) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    page.heading(
        "Diversity per code and per recipe",
        "distinct-n and MATTR: higher is more varied; self-BLEU: higher is more repetitive "
        "(fixed-size sample, see the table); embedding dispersion: mean cosine distance to the "
        "set's centroid.",
    )
    runs = _runs(doc)
    groups = [
        (f"{label} {key}", group)
        for label, group in (("code", "per_code"), ("recipe", "per_recipe"))
        for _, run in runs
        for key in _get(run, "diversity", group) or {}
    ]
    groups = list(dict.fromkeys(groups))
    if not groups:
        page.missing("the notes carry no spec (no code or recipe to group by).")
        return
    metrics = [
        (key, title)
        for key, title in DIVERSITY
        if any(
            _figure_value(_get(run, "diversity", group, g.split(" ", 1)[1]) or {}, key) is not None
            for g, group in groups
            for _, run in runs
        )
    ]
    nrows, ncols = _grid(len(metrics), 3)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[t for _, t in metrics])
    for i, (key, _) in enumerate(metrics):
        r, c = divmod(i, ncols)
        for k, (name, run) in enumerate(runs):
            xs, ys = [], []
            for g, group in groups:
                figures = _get(run, "diversity", group, g.split(" ", 1)[1])
                if figures is not None:
                    xs.append(g)
                    ys.append(_figure_value(figures, key))
            fig.add_trace(
                go.Bar(
                    x=xs,
                    y=ys,
                    name=name,
                    marker_color=COLOURS[k],
                    legendgroup=name,
                    showlegend=i == 0,
                ),
                row=r + 1,
                col=c + 1,
            )
    page.figure(fig, 320 * nrows + 80)


def _recall(page: Page, doc: dict[str, Any]) -> None:
    import plotly.graph_objects as go

    threshold = _get(doc, "settings", "min_symptom_recall")
    page.heading(
        "Symptom recall per note (MedSyn's filter)",
        "BERTScore-style recall of the requested symptoms in each note (docs/evaluation.md)"
        + (f"; the dashed line is --min-symptom-recall {threshold}." if threshold else "."),
    )
    runs = [(n, r) for n, r in _runs(doc) if _get(r, "symptom_recall", "per_note")]
    if not runs:
        page.missing(
            "no note requested symptoms (no keywords or symptoms in the specs), or "
            "--no-embeddings was given."
        )
        return
    fig = go.Figure()
    for k, (name, run) in enumerate(_runs(doc)):
        values = list((_get(run, "symptom_recall", "per_note") or {}).values())
        if values:
            fig.add_trace(
                go.Histogram(
                    x=values,
                    name=name,
                    marker_color=COLOURS[k],
                    opacity=0.75,
                    xbins={"start": 0, "end": 1.0001, "size": 0.05},
                )
            )
    if threshold:
        fig.add_vline(x=threshold, line_dash="dash", line_color="#d62728")
    fig.update_xaxes(title_text="symptom recall", range=[0, 1])
    fig.update_yaxes(title_text="notes")
    page.figure(fig, 400, barmode="overlay")


SIDE_BY_SIDE = (
    ("distinct-2", ("diversity", "overall", "distinct_2")),
    ("MATTR", ("diversity", "overall", "mattr")),
    ("self-BLEU / 100", ("diversity", "overall", "self_bleu", "value")),
    ("embedding dispersion", ("diversity", "overall", "embedding_dispersion")),
    ("near-duplicates within", ("privacy", "near_duplicates", "within_rate")),
    ("symptom recall (mean)", ("symptom_recall", "mean")),
    ("centroid cosine", ("fidelity", "overall", "centroid_cosine")),
    ("share under DCR threshold", ("privacy", "dcr", "share_under_threshold")),
    ("keyword realisation", ("annotations", "keyword_realisation_rate")),
    ("label agreement", ("annotations", "label_agreement")),
)


def _side_by_side(page: Page, doc: dict[str, Any]) -> None:
    import plotly.graph_objects as go

    page.heading(
        "The two runs side by side",
        "Headline figures on a 0-1 scale (self-BLEU divided by 100); the table above has them all.",
    )
    runs = _runs(doc)
    if len(runs) < 2:
        page.missing("no second run: give --against other-run.jsonl.")
        return
    labels = [
        label
        for label, path in SIDE_BY_SIDE
        if any(_get(run, *path) is not None for _, run in runs)
    ]
    fig = go.Figure()
    for k, (name, run) in enumerate(runs):
        values = []
        for label, path in SIDE_BY_SIDE:
            if label in labels:
                v = _get(run, *path)
                values.append(v / 100 if v is not None and "BLEU" in label else v)
        fig.add_trace(
            go.Bar(y=labels, x=values, name=name, orientation="h", marker_color=COLOURS[k])
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(range=[0, 1.05])
    page.figure(fig, 60 + 48 * len(labels))


def _headline(doc: dict[str, Any]) -> str:
    import pandas as pd

    runs = _runs(doc)
    data: dict[str, list[Any]] = {}
    index = []
    for label, get, size in rows(doc):
        values = [get(run) for _, run in runs]
        if all(v is None for v in values):
            continue
        index.append(label)
        for name, run in runs:
            data.setdefault(name, []).append(_fmt(get(run)))
            data.setdefault(f"{name}: sample", []).append(_fmt(size(run)))
    frame = pd.DataFrame(data, index=pd.Index(index, name="metric"))
    return frame.to_html(classes="metrics", border=0)


def _fmt(value: Any) -> str:
    return "–" if value is None else str(value)


def _tables(doc: dict[str, Any]) -> str:
    """Per-code fidelity and DCR (with its holdout baseline), one table each when present."""
    import pandas as pd

    out = []
    for name, run in _runs(doc):
        fid = _get(run, "fidelity", "per_code") or {}
        dcr = _get(run, "privacy", "dcr_per_code") or {}
        if fid:
            keys = ["n_synthetic", "n_reference", "mmd2", "p_value", "centroid_cosine"]
            frame = pd.DataFrame({c: {k: _fmt(fid[c][k]) for k in keys} for c in fid}).T
            out.append(f"<h3>Fidelity per code: {html.escape(name)}</h3>")
            out.append(frame.to_html(classes="metrics", border=0))
        if dcr:
            keys = [
                "reference_half",
                "holdout",
                "synthetic_median",
                "holdout_median",
                "threshold",
                "share_under_threshold",
                "holdout_share_under_threshold",
            ]
            frame = pd.DataFrame({c: {k: _fmt(dcr[c][k]) for k in keys} for c in dcr}).T
            out.append(f"<h3>DCR per code vs the real holdout: {html.escape(name)}</h3>")
            out.append(frame.to_html(classes="metrics", border=0))
    return "\n".join(out)


def render(doc: dict[str, Any], projection: Projection | None = None) -> str:
    """The whole page."""
    from plotly.offline import get_plotlyjs

    page = Page()
    names = run_names(doc)
    reference = _get(doc, "reference", "path")
    page.raw("<h1>kgsynth evaluate</h1>")
    page.raw(
        '<p class="meta">Notes: '
        + " against ".join(f"<b>{html.escape(n)}</b>" for n in names)
        + (f" · reference: {html.escape(Path(reference).name)}" if reference else "")
        + " · settings: "
        + html.escape(json.dumps(doc.get("settings"), ensure_ascii=False))
        + "</p>"
    )
    page.heading("Headline metrics", "Each figure with the sample it was computed on.")
    page.raw(_headline(doc))
    tables = _tables(doc)
    if tables:
        page.raw(tables)
    _side_by_side(page, doc)
    _persona(page, doc)
    _windows(page, doc)
    _ngrams(page, doc)
    _projection(page, projection, reference is not None)
    _diversity(page, doc)
    _recall(page, doc)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        + ERROR_TRAP
        + "\n<title>kgsynth evaluate: "
        + html.escape(" vs ".join(names))
        + "</title>\n"
        + STYLE
        + '\n<script type="text/javascript">'
        + get_plotlyjs()
        + "</script>\n</head>\n<body>\n"
        + '<pre id="kgsynth-errors" hidden></pre>\n'
        + "\n".join(page.parts)
        + "\n</body>\n</html>\n"
    )


def write_report(path: Path, doc: dict[str, Any], projection: Projection | None) -> Path:
    """Write the page to ``path`` atomically (a temporary file, then a rename)."""
    with atomic_file(path) as fh:
        fh.write(render(doc, projection))
    return path
