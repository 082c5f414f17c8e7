"""CSV in the neo4j-admin header convention: header forms, typed values, arrays, rows."""

from __future__ import annotations

from pathlib import Path

from kg.batch import parse_items
from loaders.csv_admin import read_csv, split_array, write_csv_dir
from loaders.files import read_paths

BASELINE = Path(__file__).parent / "loaders_fixtures" / "baseline.yaml"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_node_file_with_group_label_and_typed_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "anything.csv",
        'id:ID(Source),citation,year:int,url\nS:1,"A, with comma",2024,https://x\n\nS:2,B,,\n',
    )
    items, problems = read_csv(path)
    assert problems == []
    assert [(i.name, i.data, i.location.line) for i in items] == [
        ("Source", {"id": "S:1", "citation": "A, with comma", "year": 2024, "url": "https://x"}, 2),
        ("Source", {"id": "S:2", "citation": "B"}, 4),
    ]


def test_label_from_column_or_file_name_and_arrays(tmp_path: Path) -> None:
    mixed = write(
        tmp_path,
        "mixed.csv",
        "id:ID,:LABEL,name,synonyms:string[],billable:boolean,weight:float\n"
        "X:1,Symptom,one,a;b\\;c;d\\\\e,,\n"
        "X:2,Drug,two,,,\n",
    )
    named = write(tmp_path, "Symptom.csv", "id:ID,name\nX:3,three\n")
    items, problems = read_csv(mixed)
    more, problems2 = read_csv(named)
    assert problems == problems2 == []
    assert [(i.name, i.data.get("synonyms")) for i in items + more] == [
        ("Symptom", ["a", "b;c", "d\\e"]),
        ("Drug", None),
        ("Symptom", None),
    ]


def test_relationship_files_and_mixed_nodes_and_relationships(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "all.csv",
        "id:ID,:LABEL,name,:START_ID,:END_ID,:TYPE,weight:float,source\n"
        "X:1,Disease,d,,,,,\n"
        "X:2,Symptom,s,,,,,\n"
        ",,,X:1,X:2,PRESENTS,0.5,S:1\n",
    )
    typed = write(
        tmp_path, "PRESENTS.csv", ":START_ID(Disease),:END_ID(Symptom),weight:float\nX:1,X:2,0.25\n"
    )
    items, problems = read_csv(path)
    assert problems == []
    assert [(i.kind, i.name) for i in items] == [
        ("node", "Disease"),
        ("node", "Symptom"),
        ("rel", "PRESENTS"),
    ]
    assert items[2].data == {"start": "X:1", "end": "X:2", "weight": 0.5, "source": "S:1"}
    rel, problems = read_csv(typed)
    assert problems == [] and rel[0].data["weight"] == 0.25


def test_group_label_must_fit_the_relationship_type(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "r.csv",
        ":START_ID(Symptom),:END_ID(Symptom),:TYPE,weight:float\nX:1,X:2,PRESENTS,0.5\n",
    )
    _, problems = read_csv(path)
    assert [(p.location.line, p.field) for p in problems] == [(2, "start")]
    assert "PRESENTS cannot start at a Symptom" in problems[0].message


def test_header_and_row_problems_name_the_line(tmp_path: Path) -> None:
    bad_header = write(tmp_path, "h.csv", "name,when:datetime\nx,y\n")
    _, problems = read_csv(bad_header)
    messages = [p.message for p in problems]
    assert any("unsupported type 'datetime'" in m for m in messages)
    assert any("missing column" in m for m in messages)
    rows = write(
        tmp_path,
        "Source.csv",
        "id:ID,citation,year:int,:IGNORE\nS:1,ok,twenty,\nS:2,short\n,no id,2020,\n",
    )
    _, problems = read_csv(rows)
    assert [(p.location.line, p.field) for p in problems] == [(2, "year"), (3, ""), (4, ":ID")]


def test_quoted_newlines_keep_row_numbers_of_the_record_start(tmp_path: Path) -> None:
    path = write(tmp_path, "Source.csv", 'id:ID,citation\nS:1,"two\nlines"\nS:2,x\n')
    items, problems = read_csv(path)
    assert problems == []
    assert [i.location.line for i in items] == [2, 4]


def test_split_array_escapes() -> None:
    assert split_array("a;b") == ["a", "b"]
    assert split_array("a\\;b;\\\\") == ["a;b", "\\"]
    assert split_array("") == [""]


def test_export_directory_reads_back_identically(tmp_path: Path) -> None:
    batch, problems = read_paths([BASELINE])
    assert problems == []
    files = write_csv_dir(batch, tmp_path / "out")
    assert (tmp_path / "out" / "Disease.csv").read_text().startswith("id:ID(Disease),:LABEL,")
    assert any(f.name == "OBSERVES.TrajectoryWindow-SymptomCategory.csv" for f in files)
    items = []
    for f in files:
        more, problems = read_csv(f)
        assert problems == []
        items += more
    again, problems = parse_items(items)
    assert problems == [] and again.canonical() == batch.canonical()
