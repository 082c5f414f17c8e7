"""The command line as a user meets it: --version, --help, limits, plain piped output, and
messages printed as written (no markup, no emoji codes, no traceback). Real processes."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from tests.cli import kgsynth

REPO = Path(__file__).resolve().parents[1]
QUERIES = sorted(p.stem for p in (REPO / "cypher" / "queries").glob("*.cypher"))
HELP = [
    [],
    ["kg"],
    ["kg", "query"],
    ["kg", "export"],
    ["kg", "validate"],
    ["kg", "load"],
    ["plan"],
    ["generate"],
]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KGSYNTH_", "NEO4J_"))}
    return env | extra


def graph_env(graph: Path) -> dict[str, str]:
    return clean_env(KGSYNTH_GRAPH_URI=f"embedded:{graph}", KGSYNTH_CONFIG="")


def test_version_is_the_package_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    out = kgsynth("--version", env=clean_env())
    assert out.returncode == 0
    assert out.stdout == f"kgsynth {project['version']}\n"


@pytest.mark.parametrize("command", HELP, ids=lambda c: " ".join(c) or "root")
def test_help_works_with_a_broken_config_file_and_shows_no_bool(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "kgsynth.toml").write_text('[graph\nuri = "embedded:/x.db"\n')
    out = kgsynth(*command, "--help", env=clean_env(), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Usage: kgsynth" in out.stdout
    assert "<bool>" not in out.stdout
    assert "--help" in out.stdout


def test_a_broken_config_file_is_named_with_its_line_when_the_graph_is_needed(
    tmp_path: Path,
) -> None:
    (tmp_path / "kgsynth.toml").write_text('[graph]\nuri = "embedded:/x.db"\nuser = \n')
    out = kgsynth("kg", "stats", env=clean_env(), cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith("error: kgsynth.toml: not valid TOML:")
    assert "line 3" in lines[0]
    listed = kgsynth("kg", "query", "--list", env=clean_env(), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr  # needs no graph, so no settings
    assert len(listed.stdout.splitlines()) == len(QUERIES) + 1


def test_flags_are_listed_without_a_value(tmp_path: Path) -> None:
    out = kgsynth("plan", "--help", env=clean_env(), cwd=tmp_path)
    line = next(x for x in out.stdout.splitlines() if "--by-prevalence " in x)
    assert "<" not in line.split("--by-prevalence", 1)[1].split("Draw", 1)[0]


@pytest.mark.parametrize(
    "command",
    [
        ["plan", "--recipe", "medsyn", "--icd", "G30.9"],
        ["generate", "--backend", "template", "--recipe", "medsyn", "--icd", "G30.9"],
    ],
    ids=["plan", "generate"],
)
def test_a_billion_records_are_refused_with_the_limit(
    graph: Path, tmp_path: Path, command: list[str]
) -> None:
    out_file = tmp_path / "x.jsonl"
    out = kgsynth(*command, "-n", "1000000000", "-o", str(out_file), env=graph_env(graph))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "10000000" in out.stderr.replace(",", "")
    assert not out_file.exists() and list(tmp_path.iterdir()) == []


def test_a_csv_error_prints_colons_as_written(tmp_path: Path) -> None:
    """``:ID:`` is an emoji code to rich; a message must show it as the two colons it is."""
    bad = tmp_path / "Disease.csv"
    bad.write_text("name,:LABEL\nx,Disease\n")
    env = clean_env(XDG_DATA_HOME=str(tmp_path / "data"))
    out = kgsynth("kg", "validate", "--standalone", str(bad), env=env, cwd=tmp_path)
    assert out.returncode == 1
    assert "Disease.csv:1: :ID:" in out.stderr
    assert "\N{SQUARED ID}" not in out.stderr and "Traceback" not in out.stderr


def test_markup_in_a_message_is_printed_as_written(tmp_path: Path) -> None:
    out = kgsynth("kg", "query", "[bold]x[/bold]:ID:", env=clean_env(), cwd=tmp_path)
    assert out.returncode == 2
    assert "'[bold]x[/bold]:ID:'" in out.stderr and "\N{SQUARED ID}" not in out.stderr


def test_piped_tables_are_tab_separated_and_never_wrapped(tmp_path: Path) -> None:
    out = kgsynth("kg", "query", "--list", env=clean_env(COLUMNS="40"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "name\tparams\tdescription"
    assert all(line.count("\t") == 2 for line in lines)
    assert sorted(line.split("\t")[0] for line in lines[1:]) == QUERIES
    assert not any(ch in out.stdout for ch in "│┃━─")
    assert max(len(line) for line in lines) > 80  # long descriptions stay on their line


def test_piped_stats_are_tab_separated(graph: Path, tmp_path: Path) -> None:
    out = kgsynth("kg", "stats", env=graph_env(graph), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "kind\tname\tcount"
    rows = [line.split("\t") for line in lines[1:]]
    assert {"node", "relationship"} == {kind for kind, _, _ in rows}
    assert all(count.isdigit() for _, _, count in rows)
    assert f"graph at embedded:{graph}" in out.stderr
