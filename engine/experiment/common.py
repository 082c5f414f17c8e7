"""What the experiments share: the results directory, resumable runs, the table and the plot.

A results directory holds ``config.json`` (settings, inputs and their fingerprints, and the
experiment fingerprint), ``runs/ARM/seed-S/metrics.json`` (one per trained classifier),
``table.csv`` / ``table.json`` / ``table.md`` (mean and sample standard deviation over
seeds) and ``plot.html`` (plotly, plotly.js inlined: opens offline). A run whose
``metrics.json`` carries the experiment's fingerprint (inputs and settings, not the seeds or
arms) is not trained again, so an interrupted experiment resumes where it stopped and more
seeds or arms add to it; other settings or inputs need a new directory or ``--force``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.runner.output import write_manifest

CONFIG = "config.json"
RUNS = "runs"


def write_json(path: Path, doc: Any) -> None:
    """Write through a temporary file renamed into place (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(path, doc)


def prepare(output: Path, config: dict[str, Any], force: bool) -> None:
    """Make ``output`` the results directory of ``config`` (its ``fingerprint`` key decides):
    new, empty, or an earlier run of the same experiment (resumed); else ``force``."""
    if output.exists() and not output.is_dir():
        raise EngineError(f"-o {output} is a file; name a directory for the results")
    if not output.parent.is_dir():
        raise EngineError(f"-o {output}: the directory {output.parent} does not exist")
    earlier = output / CONFIG
    if output.exists() and any(output.iterdir()):
        same = False
        if earlier.is_file():
            try:
                same = (
                    json.loads(earlier.read_text(encoding="utf-8")).get("fingerprint")
                    == (config["fingerprint"])
                )
            except ValueError:
                same = False
        if not same and not force:
            what = "another experiment's results" if earlier.is_file() else "other files"
            raise EngineError(
                f"-o {output} holds {what} (other settings or inputs); name a new directory, "
                "or pass --force to replace it"
            )
        if not same:
            shutil.rmtree(output)
    output.mkdir(exist_ok=True)
    write_json(earlier, config)


def run_path(output: Path, arm: str, seed: int) -> Path:
    return output / RUNS / arm / f"seed-{seed}" / "metrics.json"


def finished(output: Path, arm: str, seed: int, fingerprint: str) -> dict[str, Any] | None:
    """The run's metrics when it finished under this experiment's fingerprint."""
    path = run_path(output, arm, seed)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("fingerprint") == fingerprint else None


@dataclass
class Steps:
    """One progress count over all runs: ``on_step(done, total)`` of the whole experiment."""

    total: int
    on_step: Callable[[int, int], None] | None
    done: int = 0

    def run(self, planned: int) -> Callable[[int, int], None]:
        """A per-run callback that advances the overall count by that run's steps."""
        start = self.done

        def step(done: int, total: int) -> None:
            self.done = start + round(planned * done / max(total, 1))
            if self.on_step:
                self.on_step(self.done, self.total)

        return step

    def skip(self, planned: int) -> None:
        self.done += planned
        if self.on_step:
            self.on_step(self.done, self.total)


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(runs: dict[str, list[dict[str, Any]]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """One row per arm: seeds, then ``KEY_mean`` / ``KEY_sd`` of each metric over its runs
    (runs where a metric is null, e.g. no rare code in the test split, are left out)."""
    rows = []
    for arm, docs in runs.items():
        row: dict[str, Any] = {"arm": arm, "seeds": len(docs)}
        for key in keys:
            values = [d["summary"][key] for d in docs if d["summary"].get(key) is not None]
            mean, sd = mean_sd(values) if values else (math.nan, math.nan)
            row[f"{key}_mean"] = None if math.isnan(mean) else round(mean, 6)
            row[f"{key}_sd"] = None if math.isnan(sd) else round(sd, 6)
        rows.append(row)
    return rows


def write_table(output: Path, rows: list[dict[str, Any]], keys: Sequence[str], title: str) -> None:
    """``table.csv``, ``table.json`` and ``table.md`` (mean ± sd) in ``output``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (output / "table.csv").write_text(buffer.getvalue(), encoding="utf-8")
    write_json(output / "table.json", {"title": title, "metrics": list(keys), "rows": rows})
    lines = [f"# {title}", "", "| arm | seeds | " + " | ".join(keys) + " |"]
    lines.append("|---|---:|" + "---:|" * len(keys))
    for row in rows:
        cells = [
            "n/a" if row[f"{k}_mean"] is None else f"{row[f'{k}_mean']:.4f} ± {row[f'{k}_sd']:.4f}"
            for k in keys
        ]
        lines.append(f"| {row['arm']} | {row['seeds']} | " + " | ".join(cells) + " |")
    (output / "table.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_plot(output: Path, rows: list[dict[str, Any]], keys: Sequence[str], title: str) -> None:
    """``plot.html``: grouped bars (one group per metric, one bar per arm) with ± sd."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for row in rows:
        fig.add_bar(
            name=row["arm"],
            x=list(keys),
            y=[row[f"{k}_mean"] for k in keys],
            error_y={"type": "data", "array": [row[f"{k}_sd"] for k in keys]},
        )
    fig.update_layout(
        title=title, barmode="group", yaxis={"range": [0, 1]}, template="plotly_white"
    )
    fig.write_html(output / "plot.html", include_plotlyjs=True, full_html=True)
