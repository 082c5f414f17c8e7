"""The seed file format in YAML and JSON: rows, their lines, and problems with the shape."""

from __future__ import annotations

import json
from pathlib import Path

from kg.batch import parse_items
from loaders.files import read_paths
from loaders.yaml_seed import read_seed, seed_json

FIXTURES = Path(__file__).parent / "loaders_fixtures"
BASELINE = FIXTURES / "baseline.yaml"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_rows_carry_their_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.yaml",
        """kgsynth_seed: 1
module: t
nodes:
  Symptom:
    - id: "X:1"
      name: one
    - {id: "X:2", name: two}
relationships:
  IS_A:
    - {start: "X:1", end: "X:2"}
""",
    )
    items, problems = read_seed(path)
    assert problems == []
    assert [(i.kind, i.name, i.location.line) for i in items] == [
        ("node", "Symptom", 5),
        ("node", "Symptom", 7),
        ("rel", "IS_A", 10),
    ]
    assert items[0].location.file.endswith("s.yaml")


def test_json_rows_carry_their_line_and_json_export_reads_back(tmp_path: Path) -> None:
    batch, problems = read_paths([BASELINE])
    assert problems == []
    text = seed_json(batch)
    assert json.loads(text)["kgsynth_seed"] == 1
    path = write(tmp_path, "export.json", text)
    items, problems = read_seed(path)
    assert problems == []
    lines = text.splitlines()
    for item in items:  # one row per line: the located line holds that row's id or start
        key = item.data.get("id") or item.data["start"]
        assert json.dumps(key) in lines[item.location.line - 1]  # type: ignore[operator]
    again, problems = parse_items(items)
    assert problems == [] and again.canonical() == batch.canonical()
    assert seed_json(again) == text  # stable bytes


def test_json_export_of_an_empty_graph_is_valid_json(tmp_path: Path) -> None:
    from kg.batch import GraphBatch

    doc = json.loads(seed_json(GraphBatch()))
    assert doc == {"kgsynth_seed": 1, "module": "export", "nodes": {}, "relationships": {}}


def test_shape_problems_name_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.yaml",
        """kgsynth_seed: 2
extra: 1
nodes:
  Patient:
    - {id: "X:1"}
  Symptom: {id: "X:2"}
relationships:
  IS_A:
    - just text
""",
    )
    items, problems = read_seed(path)
    assert items == []
    got = {(p.location.line, p.field): p.message for p in problems}
    assert "must be 1" in got[(1, "kgsynth_seed")]
    assert "a module name is required" in got[(1, "module")]
    assert "unknown top-level key" in got[(2, "extra")]
    assert "unknown label 'Patient'" in got[(4, "nodes.Patient")]
    assert "list of rows" in got[(6, "nodes.Symptom")]
    assert "each row must be a mapping" in got[(8, "relationships.IS_A")]


def test_yaml_dates_and_duplicate_keys_are_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "d.yaml",
        """kgsynth_seed: 1
module: t
nodes:
  Source:
    - id: "S:1"
      citation: first
      citation: second
      url: 2024-01-01
""",
    )
    items, problems = read_seed(path)
    assert [(p.location.line, p.field) for p in problems] == [(7, "citation")]
    assert "duplicate key (also on line 6)" in problems[0].message
    _, more = parse_items(items)
    assert more and more[0].field == "url" and more[0].location.line == 5


def test_dates_stay_dates_after_a_library_patches_pyyaml(tmp_path: Path) -> None:
    """lm-format-enforcer (the transformers backend's) makes PyYAML's SafeLoader read
    timestamps as text for the whole process; seed files must still see a date."""
    import lmformatenforcer  # noqa: F401  (its import patches yaml.SafeLoader)
    import yaml

    assert isinstance(yaml.safe_load("d: 2024-01-01")["d"], str)  # the patch is in force
    path = write(
        tmp_path,
        "d.yaml",
        'kgsynth_seed: 1\nmodule: t\nnodes:\n  Source:\n    - id: "S:1"\n'
        "      citation: first\n      url: 2024-01-01\n",
    )
    items, problems = read_seed(path)
    assert problems == []
    _, more = parse_items(items)
    assert [(p.field, p.location.line) for p in more] == [("url", 5)]  # the row's line
