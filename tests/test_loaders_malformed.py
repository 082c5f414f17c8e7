"""The malformed-input corpus (tests/malformed/): each file fails with its expected message
and location, and the graph stays byte-for-byte the same (JSON export before == after)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kg.errors import ValidationFailed
from kg.store import GraphStore
from kg.store.writer import read_graph
from loaders.pipeline import load_paths
from loaders.textfile import display_name
from loaders.yaml_seed import seed_json

HERE = Path(__file__).parent
CORPUS = HERE / "malformed"
BASELINE = HERE / "loaders_fixtures" / "baseline.yaml"

#: file -> (expected message substring, expected line; None for a file-level problem)
EXPECTED: dict[str, tuple[str, int | None]] = {
    "bad_encoding_latin1.yaml": ("not UTF-8 text (byte 0xe9", 5),
    "utf16_bom.json": ("not UTF-8 text (byte 0xff at offset 0)", 1),
    "binary_nul_byte.csv": ("binary data (NUL byte)", 3),
    "empty.yaml": ("the file is empty", 1),
    "yaml_syntax_error.yaml": ("not valid YAML", 7),
    "json_trailing_comma.json": ("not valid JSON: Expecting value", 4),
    "json_top_level_list.json": ("a seed file is a mapping", 1),
    "missing_version.yaml": ("kgsynth_seed: must be 1", 1),
    "duplicate_yaml_key.yaml": ("name: duplicate key (also on line 6)", 7),
    "unknown_label.yaml": ("unknown label 'Patient'", 4),
    "unknown_relationship_type.yaml": ("unknown relationship type 'CAUSES'", 4),
    "unknown_rdf_label.ttl": ("unknown label 'Patient'", 3),
    "unknown_field.yaml": ("colour: unknown field for Symptom", 5),
    "missing_required_field.yaml": ("name: required field missing for Disease", 5),
    "not_a_curie.yaml": ("is not a CURIE-style id", 5),
    "dangling_id.yaml": ("PRESENTS ends at unknown Symptom 'KGS:symptom/does-not-exist'", 6),
    "wrong_end_labels.yaml": ("IS_A cannot join 'KGS:symptom/memory' to 'KGS:disease/fix-ad'", 5),
    "probability_above_one.yaml": ("weight: Input should be less than or equal to 1", 5),
    "probability_negative.csv": ("frequency: Input should be greater than or equal to 0", 2),
    "shares_sum_to_0.7.yaml": ("over sex sum to 0.7, not 1", 9),
    "category_frequencies_0.8.yaml": ("over the 'fix' categories sum to 0.8", 5),
    "overlapping_windows.yaml": (
        "overlap: KGS:window/fix-ad/near [-12, 0) and KGS:window/fix-ad/mid [-3, 6)",
        5,
    ),
    "window_end_before_start.yaml": ("start_months (12.0) must be below end_months", 5),
    "cyclic_is_a.yaml": (
        "IS_A cycle: KGS:symptom/forgetful -> KGS:symptom/memory -> KGS:symptom/forgetful",
        5,
    ),
    "cyclic_parent_of.csv": ("PARENT_OF cycle: ICD10CM:6 -> ICD10CM:G30-G32", 2),
    "duplicate_conflicting_ids.yaml": (
        "Symptom KGS:symptom/apathy is defined twice with different properties",
        6,
    ),
    "invalid_icd_code.yaml": ("'G3' is not a valid ICD-10-CM code", 5),
    "icd_id_mismatch.csv": ("id must be 'ICD10CM:G30.9'", 2),
    "number_without_source.yaml": ("prevalence has no source", 5),
    "unknown_source.yaml": ("cites 'KGS:source/not-there', which is not a Source node", 5),
    "risk_stratum_not_a_stratum.yaml": ("stratum 'KGS:risk/htn' is not a Stratum node", 5),
    "csv_missing_id_column.csv": ("missing column: a node file needs an ':ID' column", 1),
    "csv_missing_end_column.csv": ("missing column :END_ID", 1),
    "csv_bad_typed_value.csv": ("year: 'twenty-twenty' is not a valid int", 2),
    "csv_ragged_row.csv": ("the row has 1 fields, the header 3", 3),
    "csv_unsupported_type.csv": ("unsupported type 'datetime'", 1),
    "truncated.owl": ("not valid RDF (xml)", 8),
    "truncated.ttl": ("not valid RDF (turtle): newline found in string literal", 5),
    "broken_stanzas.obo": ("broken stanza header '[Term'", 8),
    "obo_unterminated_def.obo": ("unterminated quoted text", 6),
    "obo_term_without_id.obo": ("a [Term] stanza without id", 3),
    "unsupported_suffix.txt": ("unsupported file type '.txt'", None),
    "yaml_alias_bomb.yaml": ("YAML aliases expand to more than 10,", 3),
    "clobbers_another_module.yaml": (
        "would change Disease KGS:disease/fix-ad, defined by module 'loader-fixture' (name: "
        '"Fixture Alzheimer\'s disease" -> "Not Alzheimer"; prevalence: 0.109 -> (absent)',
        5,
    ),
}


def test_the_corpus_and_the_table_agree() -> None:
    on_disk = {p.name for p in CORPUS.iterdir() if p.suffix != ".md"}
    assert on_disk == set(EXPECTED)
    assert len(EXPECTED) >= 25


def snapshot(store: GraphStore) -> str:
    return seed_json(read_graph(store))


@pytest.fixture
def seeded(store: GraphStore) -> tuple[GraphStore, str]:
    load_paths(store, [BASELINE])
    return store, snapshot(store)


def expect_failure(store: GraphStore, paths: list[Path], before: str) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        load_paths(store, paths)
    assert snapshot(store) == before
    return [str(p) for p in info.value.problems if p.severity == "error"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_input_is_reported_and_changes_nothing(
    seeded: tuple[GraphStore, str], name: str
) -> None:
    store, before = seeded
    substring, line = EXPECTED[name]
    problems = expect_failure(store, [CORPUS / name], before)
    where = display_name(CORPUS / name) + (f":{line}: " if line else ": ")
    matching = [p for p in problems if substring in p]
    assert matching, f"{substring!r} not in {problems}"
    assert any(where in p for p in matching), f"{where!r} not in {matching}"


def test_one_bad_file_among_good_ones_writes_nothing(
    seeded: tuple[GraphStore, str], tmp_path: Path
) -> None:
    store, before = seeded
    good = tmp_path / "good.yaml"
    good.write_text(
        "kgsynth_seed: 1\nmodule: ok\nnodes:\n  Drug:\n"
        '    - {id: "KGS:drug/new", name: "new drug"}\n',
        encoding="utf-8",
    )
    problems = expect_failure(store, [good, CORPUS / "dangling_id.yaml"], before)
    assert len(problems) == 1


def test_fifty_megabytes_of_junk(seeded: tuple[GraphStore, str], tmp_path: Path) -> None:
    store, before = seeded
    junk = tmp_path / "junk.yaml"
    with junk.open("wb") as fh:
        for _ in range(50):
            fh.write(os.urandom(1 << 20))
    assert junk.stat().st_size == 50 << 20
    problems = expect_failure(store, [junk], before)
    assert len(problems) == 1 and "not UTF-8 text" in problems[0]
