"""Export -> import into an empty store gives an identical graph, in every format, on
both backends; a disease's subgraph exports self-contained."""

from __future__ import annotations

from pathlib import Path

import pytest
from rdflib import Graph
from rdflib.compare import isomorphic

from kg.batch import GraphBatch
from kg.store import GraphStore
from kg.store.writer import read_graph
from kg.validate import check_graph
from loaders.export import Format, disease_subgraph, export_batch, find_disease, stream_turtle
from loaders.files import read_paths
from loaders.pipeline import load_paths

BASELINE = Path(__file__).parent / "loaders_fixtures" / "baseline.yaml"
FORMATS: tuple[Format, ...] = ("ttl", "json", "csv")


def empty(store: GraphStore) -> None:
    store.clear()
    assert read_graph(store).node_count() == 0


def target(tmp_path: Path, fmt: Format) -> Path:
    return tmp_path / ("export" if fmt == "csv" else f"export.{fmt}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_import_round_trips(store: GraphStore, tmp_path: Path, fmt: Format) -> None:
    load_paths(store, [BASELINE])
    original = read_graph(store)
    expected, _ = read_paths([BASELINE])
    assert original.canonical() == expected.canonical()
    out = target(tmp_path, fmt)
    export_batch(original, fmt, out)
    empty(store)
    result = load_paths(store, [out])
    assert result.warnings == []
    assert read_graph(store).canonical() == original.canonical()
    again = load_paths(store, [out])  # loading twice changes nothing, and writes nothing
    assert (again.stats.nodes, again.stats.relationships) == (0, 0)
    assert len(again.diff.of("unchanged")) == original.node_count() + original.rel_count()
    assert read_graph(store).canonical() == original.canonical()


@pytest.mark.parametrize("fmt", FORMATS)
def test_disease_subgraph_round_trips(store: GraphStore, tmp_path: Path, fmt: Format) -> None:
    load_paths(store, [BASELINE])
    whole = read_graph(store)
    sub = disease_subgraph(whole, find_disease(whole, "fixture alzheimer's disease"))
    assert check_graph(sub) == []  # self-contained and valid on its own
    assert "KGS:disease/fix-mci" not in sub.nodes["Disease"]
    assert set(sub.nodes["IcdCode"]) == {
        "ICD10CM:6",
        "ICD10CM:G30-G32",
        "ICD10CM:G30",
        "ICD10CM:G30.9",
    }
    assert {
        "KGS:stratum/age/65-74",
        "KGS:note/fix-1",
        "KGS:guideline/fix/cognitive",
        "KGS:source/fix-b",
    } <= {n.id for n in sub.iter_nodes()}
    out = target(tmp_path, fmt)
    export_batch(sub, fmt, out)
    empty(store)
    load_paths(store, [out])
    assert read_graph(store).canonical() == sub.canonical()


def test_unknown_disease_is_a_clear_error() -> None:
    from kg.errors import KgError

    with pytest.raises(KgError, match="no Disease 'nope'"):
        find_disease(GraphBatch(), "nope")


@pytest.mark.parametrize("page", [3, 10_000])
def test_streamed_turtle_of_the_store_round_trips(
    store: GraphStore, tmp_path: Path, page: int
) -> None:
    """``kg export -f ttl`` of the whole graph, read from the store page by page."""
    load_paths(store, [BASELINE])
    original = read_graph(store)
    out = tmp_path / "streamed.ttl"
    with out.open("w", encoding="utf-8") as fh:
        counts = stream_turtle(store, fh, page)
    assert counts == (original.node_count(), original.rel_count()) == (21, 25)
    # the same triples as the export of the batch read whole
    batch_ttl = tmp_path / "batch.ttl"
    export_batch(original, "ttl", batch_ttl)
    assert isomorphic(Graph().parse(out), Graph().parse(batch_ttl))
    empty(store)
    load_paths(store, [out])
    assert read_graph(store).canonical() == original.canonical()
