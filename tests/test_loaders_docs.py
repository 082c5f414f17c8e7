"""The examples in docs/curation.md load and validate (docs that cannot rot silently)."""

from __future__ import annotations

import re
from pathlib import Path

from kg.batch import Location, RawItem, parse_items
from kg.validate import check_graph
from loaders.csv_admin import read_csv
from loaders.yaml_seed import parse_yaml, seed_items

DOC = Path(__file__).resolve().parents[1] / "docs" / "curation.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_yaml_example_is_a_valid_module(tmp_path: Path) -> None:
    doc, problems = parse_yaml(blocks("yaml")[0], "curation.md")
    assert problems == []
    items, problems = seed_items(doc, "curation.md")
    assert problems == []
    code = {"id": "ICD10CM:G31.09", "code": "G31.09", "title": "Other frontotemporal dementia"}
    batch, problems = parse_items([*items, RawItem("node", "IcdCode", code, Location("x"))])
    assert problems == [] and check_graph(batch) == []

    for i, text in enumerate(blocks("csv")):  # the CSV rows match the YAML example's
        name = ("Symptom.csv", "PRESENTS.csv")[i]
        (tmp_path / name).write_text(text, encoding="utf-8")
        rows, problems = read_csv(tmp_path / name)
        assert problems == [] and rows
        more, problems = parse_items(rows)
        assert problems == []
        for rel in more.iter_rels():
            assert batch.rels[rel.type][(rel.type, rel.start, rel.end)] == rel
        for node in more.iter_nodes():
            assert node.id in batch.nodes[node.label]


def test_the_style_file_styles_every_label() -> None:
    from kg.model import LABELS, REL_TYPES

    grass = (DOC.parent / "neo4j-browser.grass").read_text(encoding="utf-8")
    assert {m for m in re.findall(r"^node\.(\w+) \{", grass, re.M)} == set(LABELS)
    assert {m for m in re.findall(r"^relationship\.(\w+) \{", grass, re.M)} == set(REL_TYPES)
