"""Hostile and awkward input (issue 16 #7, #10): size limits on every input kind, a YAML
alias bomb, markup in messages, the curation guide's own example on its own, an
interrupted seed, and problem lists capped, through the real console script."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from kg.store import GraphStore
from loaders.files import read_paths
from loaders.pipeline import load_paths
from tests.cli import KGSYNTH, kgsynth, store_env

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "tests" / "loaders_fixtures" / "baseline.yaml"
CURATION = REPO / "docs" / "curation.md"


def run(store: GraphStore, *args: str, timeout: float = 300) -> CompletedProcess[str]:
    return kgsynth(
        "--graph",
        store.settings.graph,
        *args,
        env=store_env(store.settings),
        cwd=REPO,
        timeout=timeout,
    )


@pytest.mark.parametrize("suffix", [".yaml", ".json", ".csv", ".obo", ".owl", ".ttl"])
def test_files_above_the_limit_are_refused_with_the_limit_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    big = tmp_path / f"big{suffix}"
    big.write_bytes(b"# comment\n" * 210_000)  # 2,100,000 bytes = 2.0 MiB
    small = tmp_path / f"small{suffix}"
    small.write_bytes(b"# comment\n" * 50_000)  # 0.48 MiB: read, then judged on content
    monkeypatch.setenv("KGSYNTH_MAX_INPUT_MB", "1")
    _, problems = read_paths([big])
    assert [str(p) for p in problems] == [
        f"{big}: the file is 2.0 MiB, above the 1 MiB limit on input files "
        "(set KGSYNTH_MAX_INPUT_MB to raise it)"
    ]
    _, problems = read_paths([small])
    assert all("MiB limit" not in p.message for p in problems)
    monkeypatch.setenv("KGSYNTH_MAX_INPUT_MB", "lots")
    _, problems = read_paths([small])
    assert [str(p) for p in problems] == [
        "KGSYNTH_MAX_INPUT_MB: 'lots' is not a positive number of MiB"
    ]


def test_an_alias_bomb_is_one_clear_error(embedded_store: GraphStore) -> None:
    r = run(
        embedded_store, "kg", "validate", "--standalone", "tests/malformed/yaml_alias_bomb.yaml"
    )
    assert r.returncode == 1
    first, last = r.stderr.splitlines()
    assert re.fullmatch(
        r"tests/malformed/yaml_alias_bomb.yaml:3: YAML aliases expand to more than [0-9,]+ "
        r"values \(an alias bomb\?\); write the repeated values out or use fewer aliases",
        first,
    )
    assert last == "1 error(s); 1 file(s) did not validate"


def test_markup_and_emoji_codes_in_messages_are_printed_as_written(
    embedded_store: GraphStore, tmp_path: Path
) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text(
        "kgsynth_seed: 1\nmodule: m\nnodes:\n  Disease:\n    - {id: 'KGS:d', name: d}\n"
        "relationships:\n  PRESENTS:\n"
        "    - {start: 'KGS:d', end: 'KGS:[bold]x[/bold]:warning:', weight: 0.5}\n",
        encoding="utf-8",
    )
    r = run(embedded_store, "kg", "validate", "--standalone", str(bad))
    assert r.returncode == 1
    assert "PRESENTS ends at unknown Symptom 'KGS:[bold]x[/bold]:warning:'" in r.stderr
    assert "\u26a0" not in r.stderr  # :warning: not turned into an emoji


def test_the_curation_guide_example_validates_on_its_own(
    embedded_store: GraphStore, tmp_path: Path
) -> None:
    text = CURATION.read_text(encoding="utf-8")
    example = re.findall(r"```yaml\n(.*?)```", text, re.S)[0]
    assert "ICD10CM:G31.09" in example  # a catalogue code the module does not define
    path = tmp_path / "example-dementia.yaml"
    path.write_text(example, encoding="utf-8")
    r = run(embedded_store, "kg", "validate", "--standalone", str(path))
    assert r.returncode == 0, r.stderr
    assert "1 file(s): valid" in r.stdout
    # a code the catalogue does not hold is still an error on its own
    path.write_text(example.replace("ICD10CM:G31.09", "ICD10CM:G31.99"), encoding="utf-8")
    r = run(embedded_store, "kg", "validate", "--standalone", str(path))
    assert r.returncode == 1
    assert "CODED_AS ends at unknown IcdCode 'ICD10CM:G31.99'" in r.stderr


def test_an_interrupted_seed_is_reported_and_completed_by_seeding_again(
    store: GraphStore,
) -> None:
    # a `kg seed --only symp` stopped after its Symptom nodes, before the categories and
    # relationships: the state its marker and partial write leave behind
    store.apply_schema()
    store.write("MERGE (m:KgsynthMeta {id: 'seed'}) SET m.state = 'writing', m.parts = ['symp']")
    store.write("CREATE (:Symptom {id: 'SYMP:0000001', name: 'partial', module: 'symp'})")
    r = run(store, "kg", "validate")
    assert r.returncode == 1
    assert (
        "graph: incomplete seed: a `kg seed` of symp stopped before it finished writing; "
        "run `kgsynth kg seed` again" in r.stderr
    )
    r = run(store, "kg", "seed", "--only", "symp")
    assert r.returncode == 0, r.stderr
    assert "incomplete seed" in r.stderr  # said, then completed
    r = run(store, "kg", "validate")
    assert r.returncode == 0 and "incomplete seed" not in r.stderr, r.stderr
    rows = store.read("MATCH (m:KgsynthMeta {id: 'seed'}) RETURN m.state AS s")
    assert rows == [{"s": "complete"}]
    n = store.read("MATCH (s:Symptom) WHERE s.id STARTS WITH 'SYMP:' RETURN count(*) AS n")
    assert n[0]["n"] > 800  # the whole ontology, not the one partial node


def test_validate_caps_repeated_problems_with_counts(store: GraphStore) -> None:
    load_paths(store, [BASELINE])
    # 60 symptoms outside every category, and 45 diseases with an uncited prevalence,
    # written behind the loader's back
    store.write(
        "UNWIND range(1, 60) AS i CREATE (:Symptom {id: 'KGS:s/' + toString(i), name: 's'})"
    )
    store.write(
        "UNWIND range(1, 45) AS i "
        "CREATE (:Disease {id: 'KGS:d/' + toString(i), name: 'd', prevalence: 0.1})"
    )
    r = run(store, "kg", "validate")
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert len(lines) == 20 + 20 + 2 + 1  # 20 of each kind, two counts, the verdict
    assert lines[40:] == [
        "... and 25 more error(s) in field 'prevalence' like those above, not shown",
        "... and 40 more warning(s) in field 'id' like those above, not shown",
        f"45 error(s); the graph at {store.display_uri} did not validate",
    ]


def test_ctrl_c_mid_seed_is_said_and_left_marked_incomplete(store: GraphStore) -> None:
    """A real `kg seed` interrupted (SIGINT) once its marker says it is writing."""
    env = store_env(store.settings)
    proc = subprocess.Popen(
        [str(KGSYNTH), "--graph", store.settings.graph, "kg", "seed", "--only", "catalogue"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    marker = "MATCH (m:KgsynthMeta {id: 'seed'}) RETURN m.state AS s"
    while proc.poll() is None and store.read(marker) != [{"s": "writing"}]:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "interrupted: incomplete seed; run `kgsynth kg seed` again to complete it" in stderr
    assert "Traceback" not in stderr
    r = run(store, "kg", "validate")
    assert r.returncode == 1 and "incomplete seed: a `kg seed` of catalogue" in r.stderr
