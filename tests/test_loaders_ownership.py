"""A load never silently changes what another module defined (issue 16 #3), on both backends.

The clobbering module is the reported one: ``Disease: [{id: ..., name: "Not Alzheimer"}]``
loaded over a curated disease would wipe its prevalence, synonyms and source.
"""

from __future__ import annotations

from pathlib import Path
from subprocess import CompletedProcess

from kg.store import GraphStore
from kg.store.writer import read_graph
from loaders.yaml_seed import seed_json
from tests.cli import kgsynth, store_env

REPO = Path(__file__).resolve().parents[1]
BASELINE = "tests/loaders_fixtures/baseline.yaml"
AD = "KGS:disease/fix-ad"

CLOBBER = """kgsynth_seed: 1
module: clobber
nodes:
  Source:
    - {id: "KGS:source/fix-b", citation: "Fixture source B", year: 2023}
  Disease:
    - {id: "KGS:disease/fix-ad", name: "Not Alzheimer"}
    - {id: "KGS:disease/new", name: "A new disease"}
relationships:
  PRESENTS:
    - {start: "KGS:disease/fix-ad", end: "KGS:symptom/low-mood", weight: 0.25,
       source: "KGS:source/fix-b"}
"""


def run(store: GraphStore, *args: str) -> CompletedProcess[str]:
    return kgsynth("--graph", store.settings.graph, *args, env=store_env(store.settings), cwd=REPO)


def disease(store: GraphStore) -> dict[str, object]:
    rows = store.read("MATCH (d:Disease {id: $id}) RETURN properties(d) AS p", {"id": AD})
    return dict(rows[0]["p"])


def module_file(tmp_path: Path, text: str = CLOBBER) -> str:
    path = tmp_path / "clobber.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_clobbering_module_is_refused_with_the_owner_named(
    store: GraphStore, tmp_path: Path
) -> None:
    assert run(store, "kg", "load", BASELINE).returncode == 0
    before = seed_json(read_graph(store))
    r = run(store, "kg", "load", module_file(tmp_path))
    assert r.returncode == 1, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 3, r.stderr
    assert lines[0].endswith(
        "clobber.yaml:7: name, prevalence, remarks, source, synonyms: would change Disease "
        "KGS:disease/fix-ad, defined by module 'loader-fixture' (name: \"Fixture Alzheimer's "
        'disease" -> "Not Alzheimer"; prevalence: 0.109 -> (absent); remarks: "line one\\nline '
        'two" -> (absent); source: "KGS:source/fix-a" -> (absent); synonyms: ["fixture AD", '
        '"senile; dementia", "back\\\\slash"] -> []); nothing is changed without --replace'
    ), lines[0]
    assert "defined by module 'loader-fixture'" in lines[0]
    assert "clobber.yaml:11: weight: would change PRESENTS KGS:disease/fix-ad -> " in lines[1]
    assert "weight: 0.2 -> 0.25" in lines[1]
    assert lines[2] == "2 error(s); nothing was written"
    assert seed_json(read_graph(store)) == before  # nothing written, not even the new disease
    assert disease(store)["module"] == "loader-fixture"


def test_dry_run_prints_the_exact_diff_and_writes_nothing(
    store: GraphStore, tmp_path: Path
) -> None:
    assert run(store, "kg", "load", BASELINE).returncode == 0
    before = seed_json(read_graph(store))
    r = run(store, "kg", "load", "--dry-run", "--replace", module_file(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "~ Disease KGS:disease/fix-ad (module 'loader-fixture')",
        '    name: "Fixture Alzheimer\'s disease" -> "Not Alzheimer"',
        "    prevalence: 0.109 -> (absent)",
        '    remarks: "line one\\nline two" -> (absent)',
        '    source: "KGS:source/fix-a" -> (absent)',
        '    synonyms: ["fixture AD", "senile; dementia", "back\\\\slash"] -> []',
        "+ Disease KGS:disease/new",
        "= Source KGS:source/fix-b (module 'loader-fixture')",
        "~ PRESENTS KGS:disease/fix-ad -> KGS:symptom/low-mood (module 'loader-fixture')",
        "    weight: 0.2 -> 0.25",
        "1 added, 2 changed, 1 unchanged",
        "dry run: nothing was written",
    ]
    assert seed_json(read_graph(store)) == before
    # without --replace the dry run shows the same diff and says the load would be refused
    r = run(store, "kg", "load", "--dry-run", module_file(tmp_path))
    assert r.returncode == 1
    assert "1 added, 2 changed, 1 unchanged" in r.stdout
    assert "defined by module 'loader-fixture'" in r.stderr
    assert seed_json(read_graph(store)) == before


def test_replace_overwrites_and_says_what_it_replaced(store: GraphStore, tmp_path: Path) -> None:
    assert run(store, "kg", "load", BASELINE).returncode == 0
    r = run(store, "kg", "load", "--replace", module_file(tmp_path))
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith(
        "replaced Disease KGS:disease/fix-ad (was module 'loader-fixture'): "
        'name: "Fixture Alzheimer\'s disease" -> "Not Alzheimer"; prevalence: 0.109 -> '
        "(absent)"
    )
    assert out[1] == (
        "replaced PRESENTS KGS:disease/fix-ad -> KGS:symptom/low-mood "
        "(was module 'loader-fixture'): weight: 0.2 -> 0.25"
    )
    assert out[2].startswith("loaded 2 nodes and 1 relationships")  # new + replaced disease
    assert disease(store) == {"id": AD, "name": "Not Alzheimer", "synonyms": [], "xrefs": [],
                              "module": "clobber"}  # fmt: skip
    weight = store.read(
        "MATCH (:Disease {id: $id})-[p:PRESENTS]->(:Symptom {id: 'KGS:symptom/low-mood'}) "
        "RETURN p.weight AS w, p.module AS m",
        {"id": AD},
    )
    assert weight == [{"w": 0.25, "m": "clobber"}]
    # the unchanged Source keeps its owner
    src = store.read("MATCH (s:Source {id: 'KGS:source/fix-b'}) RETURN s.module AS m")
    assert src == [{"m": "loader-fixture"}]


def test_a_module_may_change_what_it_defines_and_reloading_writes_nothing(
    store: GraphStore, tmp_path: Path
) -> None:
    assert run(store, "kg", "load", BASELINE).returncode == 0
    r = run(store, "kg", "load", BASELINE)
    assert r.returncode == 0 and "loaded 0 nodes and 0 relationships" in r.stdout, r.stdout
    edited = (
        (REPO / BASELINE)
        .read_text(encoding="utf-8")
        .replace("prevalence: 0.109", "prevalence: 0.2")
    )
    path = tmp_path / "baseline.yaml"  # same module name: the owner edits its own content
    path.write_text(edited, encoding="utf-8")
    r = run(store, "kg", "load", str(path))
    assert r.returncode == 0, r.stderr
    assert "loaded 1 nodes and 0 relationships" in r.stdout
    assert disease(store)["prevalence"] == 0.2
