"""The planner and ``kgsynth plan``: quotas, reproducibility (batches, slices, processes,
backends), the OpenAI Batch format, and clear errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import EngineError
from engine.llm.base import SamplingParams
from engine.llm.batch import batch_line
from engine.plan import Planner, PlanRequest, sampling_params, spec_request
from engine.provenance import fingerprint
from engine.recipes import get_recipe
from engine.spec import GenerationSpec
from kg.model import Presents
from kg.store import GraphStore
from kg.store.falkor_store import FalkorStore
from kg.store.writer import write_batch
from tests.engine_graph import (
    AD,
    FLU,
    GAD,
    MDD,
    SRC,
    engine_graph,
    open_embedded,
    open_engine_store,
)
from tests.engine_stats import chi2_gof

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(graph: Path) -> Iterator[FalkorStore]:
    st = open_embedded(graph)
    yield st
    st.close()  # also stops the server the CLI subprocesses reconnected to


def lines(
    planner: Planner, start: int = 0, stop: int | None = None, batch_size: int = 4096
) -> list[str]:
    return [s.model_dump_json() for s in planner.iter_specs(start, stop, batch_size)]


def digest(items: list[str]) -> str:
    return hashlib.sha256("\n".join(items).encode()).hexdigest()


REQUESTS = [
    PlanRequest(recipe="dualalign", icd=("G30.9",), n=6000, seed=7),
    PlanRequest(recipe="medsyn", icd=("G30.1", "J11.1", "F32.9"), n=2000, seed=11),
    PlanRequest(recipe="mh_report", by_prevalence=True, n=6000, seed=5),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: r.recipe)
def test_specs_do_not_depend_on_batching_or_slicing(
    store: GraphStore, request_: PlanRequest
) -> None:
    planner = Planner(store, request_)
    full = lines(planner)
    assert full == lines(Planner(store, request_))
    assert full == lines(planner, batch_size=7)
    assert full[5000:] == lines(planner, 5000, None, batch_size=333)
    assert full[123:456] == lines(planner, 123, 456, batch_size=1)
    assert len({json.loads(x)["record_id"] for x in full}) == len(full)


def test_specs_are_identical_in_another_process(store: GraphStore, graph: Path) -> None:
    expected = digest(lines(Planner(store, REQUESTS[0]), 5000, 6000))
    script = (
        "import hashlib, sys\n"
        "from kg.settings import GraphSettings\n"
        "from kg.store import open_store\n"
        "from engine.plan import Planner, PlanRequest\n"
        f"store = open_store(GraphSettings(uri='embedded:{graph}'))\n"
        "p = Planner(store, PlanRequest.model_validate_json(sys.argv[1]))\n"
        "out = [s.model_dump_json() for s in p.iter_specs(5000, 6000, 97)]\n"
        "print(hashlib.sha256('\\n'.join(out).encode()).hexdigest())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, REQUESTS[0].model_dump_json()],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_specs_are_identical_on_both_backends(
    embedded_store: GraphStore, neo4j_store: GraphStore
) -> None:
    request = PlanRequest(recipe="dualalign", icd=("G30.9",), n=300, seed=2)
    for st in (embedded_store, neo4j_store):
        write_batch(st, engine_graph())
    assert lines(Planner(embedded_store, request)) == lines(Planner(neo4j_store, request))


def test_quotas_give_exactly_n_per_code(store: GraphStore) -> None:
    planner = Planner(
        store, PlanRequest(recipe="medsyn", icd=("G30.9", "G30.1", "J11.1"), n=5, seed=1)
    )
    specs = list(planner.iter_specs())
    assert [s.icd_code for s in specs] == ["G30.9"] * 5 + ["G30.1"] * 5 + ["J11.1"] * 5
    assert [s.record_index for s in specs] == list(range(15))
    assert specs[5].disease_id == AD and specs[10].disease_id == FLU
    by_name = Planner(
        store, PlanRequest(recipe="unguided", disease=("fixture influenza", MDD), n=3, seed=1)
    )
    assert [s.disease_id for s in by_name.iter_specs()] == [FLU] * 3 + [MDD] * 3


def test_by_prevalence_follows_the_graph(store: GraphStore) -> None:
    planner = Planner(store, PlanRequest(recipe="mh_report", by_prevalence=True, n=20_000, seed=4))
    counts = Counter(s.disease_id for s in planner.iter_specs())
    assert set(counts) == {MDD, GAD}  # only F-coded diseases qualify for mh_report
    assert chi2_gof([counts[MDD], counts[GAD]], [0.08 / 0.11, 0.03 / 0.11]) > 0.001
    uniform = Planner(
        store,
        PlanRequest(
            recipe="medsyn", by_prevalence=True, n=20_000, seed=4, code_weighting="uniform"
        ),
    )
    counts = Counter(s.disease_id for s in uniform.iter_specs())
    assert set(counts) == {AD, MDD, GAD}  # the influenza has no prevalence
    assert chi2_gof(list(counts.values()), [1 / 3] * 3) > 0.001


def test_a_spec_round_trips_through_json(store: GraphStore) -> None:
    # the planner assembles specs and personas without validating them (engine.spec.assemble):
    # each must equal, field for field and type for type, the copy pydantic validates
    for request in REQUESTS:
        for spec in Planner(store, request).iter_specs(0, 500):
            dumped = spec.model_dump_json()
            again = GenerationSpec.model_validate_json(dumped)
            assert again == spec
            assert again.persona == spec.persona
            assert again.model_dump_json() == dumped
            assert list(spec.__dict__) == list(GenerationSpec.model_fields)
            assert again.kg_hash and again.template_hash and again.record_seed >= 0


def test_a_graph_change_changes_the_specs_kg_hash(tmp_path: Path) -> None:
    st = open_engine_store(tmp_path / "graph.db")
    try:
        request = PlanRequest(recipe="medsyn", icd=("G30.9", "F32.9"), n=2, seed=1)
        before = Planner(st, request)
        from kg.batch import GraphBatch

        change = GraphBatch()
        change.add_rel(Presents(start=AD, end="KGS:sym/fx-mood", weight=0.35, source=SRC))
        write_batch(st, change)
        after = Planner(st, request)
    finally:
        st.close()
    old, new = list(before.iter_specs()), list(after.iter_specs())
    assert old[0].kg_hash != new[0].kg_hash and old[2].kg_hash == new[2].kg_hash
    assert before.kg_hash != after.kg_hash

    def fp(spec: GenerationSpec) -> str:
        return fingerprint(
            kg_hash=spec.kg_hash,
            recipe=spec.recipe,
            template_hash=spec.template_hash,
            backend="template",
            model="-",
            params={"temperature": 1.0},
        )

    assert fp(old[0]) != fp(new[0]) and fp(old[2]) == fp(new[2])


def test_bad_requests(store: GraphStore) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        PlanRequest(recipe="medsyn", n=1, seed=0)
    with pytest.raises(EngineError, match="outside the run"):
        list(
            Planner(store, PlanRequest(recipe="medsyn", icd=("G30.9",), n=5, seed=0)).iter_specs(
                0, 6
            )
        )
    with pytest.raises(EngineError, match="F-codes"):
        Planner(store, PlanRequest(recipe="mh_report", icd=("G30.9",), n=1, seed=0))


# ---- the command line ----------------------------------------------------------------


def kgsynth(graph: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "--uri", f"embedded:{graph}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_cli_plan_twice_gives_identical_files(graph: Path, tmp_path: Path) -> None:
    # the second run forks 3 workers over 3 chunks of 4096 records: the same bytes
    outs = []
    for name, workers in (("a.jsonl", "1"), ("b.jsonl", "3")):
        result = kgsynth(
            graph,
            "plan",
            "--recipe",
            "dualalign",
            "--icd",
            "G30.9",
            "-n",
            "10000",
            "--seed",
            "7",
            "--workers",
            workers,
            "-o",
            str(tmp_path / name),
        )
        assert result.returncode == 0, result.stderr
        assert "G30.9 -> Fixture Alzheimer disease" in result.stderr
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    rows = outs[0].decode().splitlines()
    assert len(rows) == 10000
    first = GenerationSpec.model_validate_json(rows[0])
    assert (first.recipe, first.icd_code, first.record_id) == (
        "dualalign",
        "G30.9",
        "dualalign-7-00000000",
    )


def test_cli_openai_batch_lines_have_the_batch_api_shape(graph: Path, tmp_path: Path) -> None:
    out = tmp_path / "batch.jsonl"
    result = kgsynth(
        graph,
        "plan",
        "--recipe",
        "medsyn",
        "--icd",
        "G30.9,F32.9",
        "-n",
        "50",
        "--seed",
        "3",
        "--format",
        "openai-batch",
        "--model",
        "gpt-4o-mini",
        "--max-tokens",
        "800",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    requests = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(requests) == 100
    assert len({r["custom_id"] for r in requests}) == 100
    for r in requests:
        assert set(r) == {"custom_id", "method", "url", "body"}
        assert isinstance(r["custom_id"], str) and r["custom_id"]
        assert (r["method"], r["url"]) == ("POST", "/v1/chat/completions")
        body = r["body"]
        fields = {"model", "messages", "temperature", "top_p", "max_completion_tokens", "seed"}
        assert set(body) == fields  # medsyn declares no structured output
        assert body["model"] == "gpt-4o-mini" and body["max_completion_tokens"] == 800
        assert (body["temperature"], body["top_p"]) == (1.0, 1.0)  # medsyn's, the default
        assert isinstance(body["seed"], int)
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        assert all(isinstance(m["content"], str) and m["content"] for m in body["messages"])
    assert len({r["body"]["messages"][0]["content"] for r in requests}) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recipe", "medsyn", "--icd", "Z99.9"], "unknown ICD-10-CM code 'Z99.9'"),
        (["--recipe", "medsyn", "--disease", "alzheimer"], "closest diseases"),
        (["--recipe", "medsyn"], "choose exactly one"),
        (["--recipe", "medsyn", "--icd", "G30.9", "--format", "openai-batch"], "needs --model"),
        (["--recipe", "medsyn", "--icd", "G30.9", "--set", "bogus=1"], "bogus"),
        (["--recipe", "dualalign", "--icd", "J11.1"], "no trajectory windows"),
    ],
)
def test_cli_errors_are_one_clear_line(
    graph: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "x.jsonl"
    result = kgsynth(graph, "plan", *args, "-n", "2", "-o", str(out))
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".x.jsonl.tmp-*"))


def test_batch_lines_carry_the_spec_verbatim(store: GraphStore) -> None:
    params = SamplingParams(temperature=0.5, top_p=0.9, max_tokens=512, stop=("END",))
    for request in REQUESTS:
        for spec in Planner(store, request).iter_specs(0, 30):
            odd = spec.model_copy(update={"disease": 'Démence « x » "quoted"\n\ttab \\ end'})
            for s in (spec, odd):
                line = batch_line("m-ü", spec_request(s, params))
                assert "\n" not in line and '"m-ü"' in line  # one line, UTF-8 kept as is
                item = json.loads(line)
                assert item["custom_id"] == s.record_id
                body = item["body"]
                assert body["seed"] == s.record_seed and body["stop"] == ["END"]
                assert (body["temperature"], body["top_p"], body["max_completion_tokens"]) == (
                    0.5,
                    0.9,
                    512,
                )
                system, user = body["messages"]
                assert (system["role"], user["role"]) == ("system", "user")
                assert s.disease in user["content"]  # the odd name arrives unchanged


def test_sampling_flags_override_the_recipe_and_name_the_flag() -> None:
    gen = get_recipe("dualalign").generation
    assert sampling_params(gen) == SamplingParams(temperature=0.9, top_p=1.0, max_tokens=1200)
    assert sampling_params(gen, top_p=0.5, max_tokens=7) == SamplingParams(
        temperature=0.9, top_p=0.5, max_tokens=7
    )
    assert sampling_params(None) == SamplingParams(temperature=0.7, max_tokens=1024)
    with pytest.raises(EngineError, match="--top-p"):
        sampling_params(gen, top_p=1.5)
