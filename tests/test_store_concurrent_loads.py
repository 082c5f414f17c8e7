"""Three `kgsynth kg load` processes started together, round after round: no write is lost.

Each round loads three different modules at the same moment, into a graph that then holds
every earlier round too. After each round a fresh connection must find every node and
relationship ever loaded. On the embedded store no process holds the file between rounds,
so each round also races three processes starting (and stopping) the one server.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from kg.store import GraphStore, open_store
from tests.cli import KGSYNTH, store_env

MODULES = 3
SYMPTOMS = 4


def write_module(path: Path, rnd: int, k: int) -> tuple[set[str], set[tuple[str, str]]]:
    """A module of one category and its symptoms; returns the ids and IN_CATEGORY pairs."""
    category = f"KGS:category/conc/r{rnd}-m{k}"
    symptoms = [f"KGS:symptom/conc/r{rnd}-m{k}-{j}" for j in range(SYMPTOMS)]
    lines = [
        "kgsynth_seed: 1",
        f"module: concurrent-r{rnd}-m{k}",
        "nodes:",
        "  SymptomCategory:",
        f'    - {{id: "{category}", name: "category r{rnd} m{k}", scheme: conc}}',
        "  Symptom:",
        *(f'    - {{id: "{s}", name: "symptom {s[-8:]}"}}' for s in symptoms),
        "relationships:",
        "  IN_CATEGORY:",
        *(f'    - {{start: "{s}", end: "{category}"}}' for s in symptoms),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {category, *symptoms}, {(s, category) for s in symptoms}


def graph_content(store: GraphStore) -> tuple[set[str], set[tuple[str, str]]]:
    ids = {r["id"] for r in store.read("MATCH (n) WHERE n.id STARTS WITH 'KGS:' RETURN n.id AS id")}
    rels = {
        (r["s"], r["c"])
        for r in store.read(
            "MATCH (s:Symptom)-[:IN_CATEGORY]->(c:SymptomCategory) RETURN s.id AS s, c.id AS c"
        )
    }
    return ids, rels


def test_concurrent_loads_lose_no_write(store: GraphStore, tmp_path: Path) -> None:
    settings = store.settings
    rounds = 20 if store.backend == "embedded" else 5
    env = store_env(settings, KGSYNTH_CONFIG="", TMPDIR=str(tmp_path))
    if store.backend == "embedded":
        store.close()
    want_ids: set[str] = set()
    want_rels: set[tuple[str, str]] = set()
    for rnd in range(rounds):
        procs = []
        for k in range(MODULES):
            path = tmp_path / f"r{rnd}-m{k}.yaml"
            ids, rels = write_module(path, rnd, k)
            want_ids |= ids
            want_rels |= rels
            procs.append(
                subprocess.Popen(
                    [str(KGSYNTH), "kg", "load", str(path)],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, f"round {rnd}: {err}"
            assert f"loaded {SYMPTOMS + 1} nodes and {SYMPTOMS} relationships" in out
        with open_store(settings) as check:
            ids, rels = graph_content(check)
        assert ids == want_ids, f"round {rnd}: lost {sorted(want_ids - ids)}"
        assert rels == want_rels, f"round {rnd}: lost {sorted(want_rels - rels)}"
