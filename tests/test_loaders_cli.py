"""``kgsynth kg load / export / validate / seed`` through the real console script."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from kg.queries import get_query
from kg.store import GraphStore
from kg.store.writer import read_graph
from loaders.yaml_seed import seed_json
from tests.cli import kgsynth, store_env

REPO = Path(__file__).resolve().parents[1]
BASELINE = "tests/loaders_fixtures/baseline.yaml"


def run(store: GraphStore, *args: str, timeout: float = 300) -> CompletedProcess[str]:
    """``kgsynth ARGS`` against ``store`` (its graph name too: tests share one embedded file)."""
    return kgsynth(
        "--graph",
        store.settings.graph,
        *args,
        env=store_env(store.settings),
        cwd=REPO,
        timeout=timeout,
    )


def test_validate_load_export(store: GraphStore, tmp_path: Path) -> None:
    r = run(store, "kg", "validate", "--standalone", BASELINE)
    assert r.returncode == 0, r.stderr
    assert "1 file(s): valid" in r.stdout
    r = run(store, "kg", "load", BASELINE)
    assert r.returncode == 0, r.stderr
    assert "loaded 21 nodes and 25 relationships" in r.stdout
    r = run(store, "kg", "validate")
    assert r.returncode == 0 and ": valid" in r.stdout, r.stderr
    out = tmp_path / "graph.json"
    r = run(store, "kg", "export", "--format", "json", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text(encoding="utf-8") == seed_json(read_graph(store))
    r = run(
        store,
        "kg",
        "export",
        "--format",
        "csv",
        "-o",
        str(tmp_path / "csv"),
        "--disease",
        "KGS:disease/fix-ad",
    )
    assert r.returncode == 0, r.stderr
    with (tmp_path / "csv" / "Disease.csv").open(encoding="utf-8", newline="") as fh:
        assert [row[0] for row in csv.reader(fh)] == ["id:ID(Disease)", "KGS:disease/fix-ad"]
    r = run(store, "kg", "export", "--format", "ttl", "-o", str(tmp_path / "g.ttl"))
    assert r.returncode == 0 and "kgs:Disease" in (tmp_path / "g.ttl").read_text()


def test_load_errors_one_line_each_and_nothing_written(store: GraphStore) -> None:
    assert run(store, "kg", "load", BASELINE).returncode == 0
    before = seed_json(read_graph(store))
    r = run(
        store,
        "kg",
        "load",
        "tests/malformed/dangling_id.yaml",
        "tests/malformed/shares_sum_to_0.7.yaml",
    )
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[:2] == [
        "tests/malformed/dangling_id.yaml:6: end: PRESENTS ends at unknown Symptom "
        "'KGS:symptom/does-not-exist'",
        "tests/malformed/shares_sum_to_0.7.yaml:9: share: PREVALENCE shares of "
        "KGS:disease/fix-ad over sex sum to 0.7, not 1 (±0.01) across 2 strata",
    ]
    assert lines[2] == "2 error(s); nothing was written"
    assert "Traceback" not in r.stderr
    assert seed_json(read_graph(store)) == before


def test_validate_reports_problems_in_the_live_graph(store: GraphStore) -> None:
    assert run(store, "kg", "load", BASELINE).returncode == 0
    store.write(
        "MATCH (:Disease {id: 'KGS:disease/fix-ad'})-[p:PREVALENCE]->"
        "(:Stratum {id: 'KGS:stratum/age/75+'}) SET p.share = 0.2"
    )
    r = run(store, "kg", "validate")
    assert r.returncode == 1
    assert (
        "graph: share: PREVALENCE shares of KGS:disease/fix-ad over age_group sum to 0.606"
        in r.stderr
    )


def test_bad_arguments_are_one_clear_message(store: GraphStore) -> None:
    r = run(store, "kg", "seed", "--only", "catalogue,everything")
    assert r.returncode != 0 and "unknown part(s) everything" in r.stderr
    r = run(store, "kg", "export", "--format", "xml", "-o", "x")
    assert r.returncode != 0 and "choose ttl, json or csv" in r.stderr
    r = run(store, "kg", "load", "no/such/file.yaml")
    assert r.returncode == 1 and "no/such/file.yaml: no such file or directory" in r.stderr
    assert all("Traceback" not in x for x in (r.stderr, r.stdout))


@pytest.mark.slow
def test_seed_everything_twice(store: GraphStore) -> None:
    """`kg seed` on each backend: counts, hierarchy facts, the AD profile, idempotence."""
    r = run(store, "kg", "seed", timeout=600)
    assert r.returncode == 0, r.stderr
    kinds = {
        row["kind"]: row["n"]
        for row in store.read("MATCH (c:IcdCode) RETURN c.kind AS kind, count(*) AS n")
    }
    assert kinds == {"chapter": 22, "block": 297, "category": 1918, "code": 96268}
    billable = store.read("MATCH (c:IcdCode {billable: true}) RETURN count(*) AS n")[0]["n"]
    assert billable == 74719
    assert store.read("MATCH ()-[r:PARENT_OF]->() RETURN count(r) AS n")[0]["n"] == 98483
    ancestors = store.read(get_query("icd_ancestors").text, {"icd": "G30.9"})
    assert [(a["code"], a["kind"]) for a in ancestors] == [
        ("G30", "category"),
        ("G30-G32", "block"),
        ("6", "chapter"),
    ]
    symptoms = store.read("MATCH (s:Symptom) WHERE s.id STARTS WITH 'SYMP:' RETURN count(*) AS n")
    assert symptoms[0]["n"] == 894
    do = store.read(
        "MATCH (d:Disease)-[p:PRESENTS]->(:Symptom) WHERE d.id STARTS WITH 'DOID:' "
        "RETURN count(DISTINCT d) AS d, count(p) AS p"
    )[0]
    assert (do["d"], do["p"]) == (445, 1283)

    r = run(store, "kg", "query", "disease_profile", "--param", "icd=G30.9", "--json")
    assert r.returncode == 0, r.stderr
    profile = json.loads(r.stdout)
    assert any("alzheimer" in row["disease"].lower() for row in profile)
    assert len(profile) >= 20 and all(row["categories"] for row in profile)
    assert all(0 <= row["weight"] <= 1 and row["source"] for row in profile)
    disease = profile[0]["disease_id"]
    r = run(store, "kg", "query", "provenance", "--param", f"disease={disease}", "--json")
    assert r.returncode == 0 and json.loads(r.stdout), r.stderr

    stats = get_query("graph_stats").text
    before = sorted((x["kind"], x["name"], x["count"]) for x in store.read(stats))
    r = run(store, "kg", "seed", timeout=600)
    assert r.returncode == 0, r.stderr
    assert sorted((x["kind"], x["name"], x["count"]) for x in store.read(stats)) == before
