"""Both backends: parameters stay data, reads stay reads, writes are idempotent."""

from __future__ import annotations

import pytest

from kg.batch import GraphBatch
from kg.errors import QueryError, ReadOnlyError, ValidationFailed
from kg.model import Disease, Presents, Symptom
from kg.store import GraphStore
from kg.store.base import checked_label, checked_type, chunks, looks_like_write, node_merge_cypher
from kg.store.writer import read_graph, write_batch
from tests.fixture_graph import tiny_graph

INJECTIONS = [
    "O'Brien's \"disease\"",
    "x'}) DETACH DELETE n //",
    "a) MATCH (m) DETACH DELETE m; //",
    "}]->(x) CREATE (:Pwned) //",
    "line\nbreak\ttab\\backslash",
    "ünïcödé 痴呆 🧠 \u202e",
    "$rows {id: 'x'}",
    "' OR 1=1 --",
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_values_are_stored_and_returned_verbatim(store: GraphStore, value: str) -> None:
    batch = GraphBatch()
    batch.add_node(Disease(id="KGS:disease/inj", name=value, synonyms=[value, "plain"]))
    write_batch(store, batch)
    rows = store.read(
        "MATCH (d:Disease) WHERE d.name = $name RETURN d.name AS name, d.synonyms AS syn",
        {"name": value},
    )
    assert rows == [{"name": value, "syn": [value, "plain"]}]
    counts = store.read("MATCH (n) RETURN count(n) AS n")[0]["n"]
    assert counts == 2  # the disease and the schema-version node: nothing deleted or created
    assert store.read("MATCH (p:Disease) WHERE p.id = $v RETURN p.id AS id", {"v": value}) == []


#: strings that a hand-written Cypher literal would get wrong: quotes and backslashes in
#: every order, control characters, text that reads like an escape, multi-code-point emoji
HOSTILE = [
    *INJECTIONS,
    "'}) DETACH DELETE n //",
    "ends in a backslash \\",
    'a \\" b \\\\" c \\\\\\" d',
    "\\u0041 and \\n are six and two characters, not escapes",
    "control \x01\x07\x1b\x7f and \r\n\t\b\f",
    "emoji 🧑🏽‍⚕️🏳️‍🌈 and \U0001f9e0, CJK 認知症, RTL עברית",
    '{`id`: "x"} CYPHER rows=[] ',
    "",
]


def test_hostile_strings_round_trip_through_batched_writes(store: GraphStore) -> None:
    """Several ``$rows`` batches in one ``run_statements`` (the embedded store writes the
    next batch's parameter header while one runs): every value reads back as written."""
    rows = [
        {"id": f"KGS:disease/h{i:02d}", "name": value, "synonyms": [value, "plain", value[::-1]]}
        for i, value in enumerate(HOSTILE)
    ]
    statements = [(node_merge_cypher("Disease"), chunks(rows, 4))]
    store.run_statements(statements, atomic=True)
    got = store.read(
        "MATCH (d:Disease) RETURN d.id AS id, d.name AS name, d.synonyms AS synonyms ORDER BY id"
    )
    assert got == rows
    assert store.read("MATCH (n) RETURN count(n) AS n") == [{"n": len(HOSTILE) + 1}]
    for value in HOSTILE:  # and each one, as a parameter, finds exactly its node
        # (IN, not an equality on the indexed name: FalkorDB's index lookup misses "\x01")
        cypher = "MATCH (d:Disease) WHERE $v IN d.synonyms RETURN d.id AS id"
        found = store.read(cypher, {"v": value})
        assert [r["id"] for r in found] == [r["id"] for r in rows if value in r["synonyms"]]


def test_labels_and_types_only_from_the_allow_list() -> None:
    assert checked_label("Disease") == "Disease"
    assert checked_type("PRESENTS") == "PRESENTS"
    for bad in ["Disease) DETACH DELETE (n", "Pwned", "disease", "Disease`"]:
        with pytest.raises(QueryError, match="not allowed"):
            checked_label(bad)
        with pytest.raises(QueryError, match="not allowed"):
            checked_type(bad)


def test_read_refuses_writes_on_the_backend_itself(store: GraphStore) -> None:
    for stmt in [
        "CREATE (n:Disease {id: 'a:b', name: 'x'})",
        "MERGE (n:Disease {id: 'a:b'})",
        "MATCH (n) DETACH DELETE n",
        "MATCH (m:KgsynthMeta) SET m.x = 1",
    ]:
        with pytest.raises(ReadOnlyError, match="only read-only Cypher"):
            store.read(stmt)
    assert store.read("MATCH (d:Disease) RETURN count(d) AS n") == [{"n": 0}]
    assert store.schema_version() == 1


def test_write_guard_ignores_strings_and_comments() -> None:
    assert looks_like_write("MATCH (n) SET n.x = 1")
    assert looks_like_write("match (n) detach delete n")
    assert not looks_like_write("MATCH (d) WHERE d.name = 'CREATE me' RETURN d // DELETE")
    assert not looks_like_write("MATCH (d) RETURN d.created AS setting")


def test_write_twice_changes_nothing_and_reads_back_equal(store: GraphStore) -> None:
    batch = tiny_graph()
    first = write_batch(store, batch)
    assert (first.nodes, first.relationships) == (batch.node_count(), batch.rel_count())
    before = read_graph(store).canonical()
    write_batch(store, batch, batch_size=3)
    after = read_graph(store)
    assert after.canonical() == before == batch.canonical()


def test_rewrite_replaces_properties(store: GraphStore) -> None:
    batch = GraphBatch()
    batch.add_node(Disease(id="KGS:d/1", name="old", description="gone soon"))
    write_batch(store, batch)
    batch = GraphBatch()
    batch.add_node(Disease(id="KGS:d/1", name="new"))
    write_batch(store, batch)
    rows = store.read("MATCH (d:Disease {id: 'KGS:d/1'}) RETURN properties(d) AS p")
    assert rows[0]["p"]["name"] == "new" and "description" not in rows[0]["p"]


def test_dangling_relationship_writes_nothing(store: GraphStore) -> None:
    batch = GraphBatch()
    batch.add_node(Disease(id="KGS:d/1", name="one"))
    batch.add_rel(Presents(start="KGS:d/1", end="KGS:sym/missing", weight=0.5))
    with pytest.raises(ValidationFailed) as err:
        write_batch(store, batch)
    assert "ends at unknown Symptom 'KGS:sym/missing'" in str(err.value.problems[0])
    assert store.read("MATCH (d:Disease) RETURN count(d) AS n") == [{"n": 0}]


def test_relationship_endpoints_found_in_the_live_graph(store: GraphStore) -> None:
    first = GraphBatch()
    first.add_node(Disease(id="KGS:d/1", name="one"))
    first.add_node(Symptom(id="KGS:s/1", name="cough"))
    write_batch(store, first)
    second = GraphBatch()
    second.add_rel(Presents(start="KGS:d/1", end="KGS:s/1", weight=0.25))
    write_batch(store, second)
    rows = store.read("MATCH (:Disease)-[p:PRESENTS]->(:Symptom) RETURN p.weight AS w")
    assert rows == [{"w": 0.25}]


def test_clear_empties_and_keeps_schema(store: GraphStore) -> None:
    write_batch(store, tiny_graph())
    store.clear()
    assert store.read("MATCH (d:Disease) RETURN count(d) AS n") == [{"n": 0}]
    assert store.schema_version() == 1


def test_a_neo4j_load_is_one_transaction(neo4j_store: GraphStore) -> None:
    """A statement failing after others ran takes the earlier ones' writes back with it."""
    first = (
        "UNWIND $rows AS r CREATE (:Disease {id: r.id, name: r.name})",
        [
            [{"id": "KGS:d/1", "name": "one"}],
            [{"id": "KGS:d/2", "name": "two"}],
        ],
    )
    failing = (
        "UNWIND $rows AS r CREATE (:Symptom {id: r.id, name: 1 / r.zero})",
        [[{"id": "KGS:s/1", "zero": 0}]],
    )
    with pytest.raises(QueryError, match="Neo4j rejected the query"):
        neo4j_store.run_statements([first, failing], atomic=True)
    assert neo4j_store.read("MATCH (n) WHERE n.id STARTS WITH 'KGS:' RETURN count(n) AS n") == [
        {"n": 0}
    ]
