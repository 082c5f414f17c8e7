"""``report.html`` from a real run (template notes through the real CLI), opened in headless
Chromium: no page errors, every plot drawn as SVG, a screenshot written beside the report.

Chromium is Debian's package (``scripts/ensure-chromium``; ``KGSYNTH_CHROMIUM`` names another
binary). Without it these tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine.evaluate.report import render
from tests.browser import browse
from tests.test_dataset_inputs import generate, kgsynth, write_jsonl

pytestmark = pytest.mark.timeout(900)

PLOT_SECTIONS = (
    "The two runs side by side",
    "Persona marginals: drawn vs the graph",
    "Symptom categories per time-to-diagnosis window",
    "Longest shared n-gram per note",
    "Embeddings in two dimensions",
    "Diversity per code and per recipe",
    "Symptom recall per note (MedSyn's filter)",
)


@pytest.fixture(scope="module")
def report(graph: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report of dualalign notes (annotated) against unguided ones, with a reference of
    medsyn notes: every section has its data."""
    tmp = tmp_path_factory.mktemp("report")
    common = ("--icd", "G30.9", "-n", "8", "--seed", "3")
    aligned = generate(graph, tmp / "aligned.jsonl", "--recipe", "dualalign", *common)
    baseline = generate(graph, tmp / "unguided.jsonl", "--recipe", "unguided", *common)
    real = generate(graph, tmp / "medsyn.jsonl", "--recipe", "medsyn", "--icd", "G30.9", "-n", "8")
    annotations = tmp / "annotations.jsonl"
    done = kgsynth(
        "--uri", f"embedded:{graph}", "annotate", str(aligned), "--backend", "template",
        "-o", str(annotations),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    reference = write_jsonl(
        tmp / "reference.jsonl",
        [
            json.dumps({"text": json.loads(line)["text"], "icd_code": "G30.9"})
            for line in real.read_text().splitlines()
        ],
    )
    out = tmp / "eval"
    done = kgsynth(
        "--uri", f"embedded:{graph}", "evaluate", str(aligned), "--reference", str(reference),
        "--annotations", str(annotations), "--against", str(baseline), "--permutations", "20",
        "--min-symptom-recall", "0.5", "-o", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"report: {out / 'report.html'}" in done.stdout
    return out / "report.html"


PLOT_DIV = re.compile(r'<div id="([^"]+)" class="plotly-graph-div[^"]*"')
ERRORS = re.compile(r'<pre id="kgsynth-errors"[^>]*>(.*?)</pre>', re.S)


def _drawn(dom: str) -> dict[str, bool]:
    """Plot div id -> whether an ``svg.main-svg`` follows it before the next plot div."""
    found = list(PLOT_DIV.finditer(dom))
    ends = [m.start() for m in found[1:]] + [len(dom)]
    return {
        m.group(1): 'class="main-svg"' in dom[m.end() : end]
        for m, end in zip(found, ends, strict=True)
    }


def _errors(dom: str) -> str:
    box = ERRORS.search(dom)
    assert box is not None, "the error box is missing"
    return box.group(1)


def test_report_is_self_contained_with_one_plotly_copy(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert len(re.findall(r"\* plotly\.js v\d", page)) == 1  # the library's banner, once
    assert not re.search(r"<script[^>]*\bsrc=", page)  # nothing fetched: works offline
    for title in PLOT_SECTIONS:
        assert f"<h2>{title}</h2>".replace("'", "&#x27;") in page
    assert "Not drawn:" not in page  # every section had its data
    metrics = json.loads((report.parent / "metrics.json").read_text())
    assert metrics["symptom_recall"]["judged"] == 8
    assert metrics["against"]["symptom_recall"]["judged"] == 0  # unguided asks for nothing


def test_report_opens_in_headless_chromium_with_every_plot_drawn(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    expected = page.count("Plotly.newPlot(")
    assert expected >= len(PLOT_SECTIONS)
    done = browse(report, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _errors(done.stdout) == ""
    drawn = _drawn(done.stdout)
    assert len(drawn) == expected
    assert all(drawn.values()), [p for p, ok in drawn.items() if not ok]

    shot = report.with_name("report.png")
    done = browse(report, "--window-size=1400,3000", f"--screenshot={shot}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_a_page_error_shows_in_the_error_box(report: Path) -> None:
    """The trap works: the same page with a failing script reports it."""
    broken = report.with_name("broken.html")
    page = report.read_text(encoding="utf-8")
    broken.write_text(page.replace("</body>", "<script>undefinedCall();</script></body>"))
    done = browse(broken, "--dump-dom")
    assert "undefinedCall" in _errors(done.stdout)


def test_missing_data_is_named_instead_of_drawn(report: Path) -> None:
    metrics = json.loads((report.parent / "metrics.json").read_text())
    alone = {**metrics, "against": None, "alignment": None, "annotations": None}
    page = render(alone, None)
    assert "Not drawn: no second run: give --against other-run.jsonl." in page
    assert "Not drawn: no persona tallies" in page
    assert "Not drawn: no embeddings" in page
    assert page.count("Plotly.newPlot(") == 3  # n-grams, diversity, symptom recall
