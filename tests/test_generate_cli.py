"""``kgsynth generate`` in real processes: planner -> HTTP -> records; secrets; errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.provenance import fingerprint
from engine.runner import read_records
from tests.llm_server import ServerConfig, ThreadServer

pytestmark = pytest.mark.timeout(300)
REPO = Path(__file__).resolve().parents[1]
SENTINEL = "sk-kgsynth-SENTINEL-7f3a9c1e5b"


@pytest.fixture(scope="module")
def module_server() -> Iterator[ThreadServer]:
    with ThreadServer() as srv:
        yield srv


@pytest.fixture
def server(module_server: ThreadServer) -> ThreadServer:
    module_server.configure(ServerConfig())
    module_server.reset()
    return module_server


def kgsynth(
    graph: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(graph.parent)}
    return subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "--uri", f"embedded:{graph}", *args],
        cwd=REPO,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_generate_with_an_endpoint_resume_and_no_secret_anywhere(
    graph: Path, server: ThreadServer, tmp_path: Path
) -> None:
    out = tmp_path / "notes.jsonl"
    args = [
        "generate",
        "--recipe",
        "dualalign",
        "--icd",
        "G30.9",
        "-n",
        "8",
        "--seed",
        "3",
        "--model",
        "test-model",
        "--base-url",
        server.url,
        "-o",
        str(out),
    ]
    env = {"OPENAI_API_KEY": SENTINEL}
    first = kgsynth(graph, *args, env=env)
    assert first.returncode == 0, first.stderr
    assert "complete: wrote 8 ok, 0 failed" in first.stderr
    requests = server.requests()
    assert len(requests) == 8 and all(r["auth"] == f"Bearer {SENTINEL}" for r in requests)

    records = read_records(out)
    assert sorted(records) == [f"dualalign-3-{i:08d}" for i in range(8)]
    sent = {r["body"]["messages"][1]["content"]: r["body"] for r in requests}
    for rec in records.values():
        spec = rec.spec
        assert spec is not None
        assert rec.status == "ok" and rec.backend == "openai" and rec.seed == spec.record_seed
        assert rec.fingerprint == fingerprint(
            kg_hash=spec.kg_hash,
            recipe="dualalign",
            template_hash=spec.template_hash,
            backend="openai",
            model="test-model",
            params=rec.params,
        )
        assert rec.params["temperature"] == 0.9  # the recipe's default
        keywords = [k.text for k in spec.keywords]
        assert rec.text is not None and ", ".join(keywords) in rec.text  # the prompt carried them
        assert any(body["seed"] == rec.seed for body in sent.values())

    again = kgsynth(graph, *args, env=env)
    assert again.returncode == 0, again.stderr
    assert "wrote 0 ok, 0 failed (0 from cache, 8 already done)" in again.stderr
    assert len(server.requests()) == 8  # nothing asked twice

    fresh = tmp_path / "copy.jsonl"
    cached = kgsynth(
        graph, *args[:-1], str(fresh), "--cache", str(tmp_path / "notes.cache.sqlite"), env=env
    )
    assert cached.returncode == 0 and "(8 from cache" in cached.stderr
    assert len(server.requests()) == 8

    # A wrong key: one clear message, exit 2, and the key is still nowhere.
    server.configure(ServerConfig(require_key="the-right-key"))
    refused = kgsynth(graph, *args[:-1], str(tmp_path / "refused.jsonl"), env=env)
    assert refused.returncode == 2 and "refused the credentials (HTTP 401)" in refused.stderr
    assert "Traceback" not in refused.stderr

    texts = [p.read_bytes() for p in tmp_path.iterdir() if p.is_file()]
    texts += [(c.stdout + c.stderr).encode() for c in (first, again, cached, refused)]
    assert len(texts) > 6
    assert not any(SENTINEL.encode() in blob for blob in texts)
    assert not any(SENTINEL[8:].encode() in blob for blob in texts)  # not even a fragment


def test_template_backend_when_no_endpoint_is_configured(graph: Path, tmp_path: Path) -> None:
    out = tmp_path / "notes.jsonl"
    done = kgsynth(
        graph, "generate", "--recipe", "medsyn", "--icd", "G30.9", "-n", "3", "-o", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert "no LLM endpoint configured" in done.stderr and "template backend" in done.stderr
    records = read_records(out)
    assert len(records) == 3
    for rec in records.values():
        assert rec.backend == "template" and rec.model == "rule-based" and rec.status == "ok"
        assert rec.spec is not None
        assert all(s.name in (rec.text or "") for s in rec.spec.symptoms)
    manifest = json.loads((tmp_path / "notes.manifest.json").read_text())
    assert manifest["backend"]["backend"] == "template"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--backend", "openai", "--model", "m", "--base-url", "http://127.0.0.1:9/v1"],
            "cannot connect to http://127.0.0.1:9/v1",
        ),
        (
            ["--backend", "transformers", "--model", "/nonexistent/model"],
            "no such directory; the transformers backend loads local models only",
        ),
        (
            ["--backend", "openai", "--model", "m", "--base-url", "ftp://x"],
            "--base-url must be an http(s) URL",
        ),
        (["--backend", "openai"], "--backend openai needs --model"),
        (["--backend", "openai", "--model", "gpt-4o"], "set OPENAI_API_KEY"),
    ],
)
def test_user_errors_are_one_line(
    graph: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    done = kgsynth(
        graph,
        "generate",
        "--recipe",
        "dualalign",
        "--icd",
        "G30.9",
        "-n",
        "2",
        "-o",
        str(tmp_path / "n.jsonl"),
        *args,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_vllm_backend_without_vllm_says_how_to_get_it(graph: Path, tmp_path: Path) -> None:
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vllm is installed here; tests/test_llm_vllm.py covers it")
    done = kgsynth(
        graph,
        "generate",
        "--recipe",
        "dualalign",
        "--icd",
        "G30.9",
        "-n",
        "1",
        "--backend",
        "vllm",
        "--model",
        "m",
        "-o",
        str(tmp_path / "n.jsonl"),
    )
    assert done.returncode == 2 and "the vllm backend needs vLLM" in done.stderr
    assert "vllm serve MODEL" in done.stderr


def test_specs_file_problems_name_the_line(graph: Path, tmp_path: Path) -> None:
    specs = tmp_path / "specs.jsonl"
    job = {"record_id": "a", "record_index": 0, "messages": [{"role": "user", "content": "x"}]}
    specs.write_text(json.dumps(job) + "\n" + json.dumps({"record_id": "b"}) + "\n")
    done = kgsynth(graph, "generate", "--specs", str(specs), "-o", str(tmp_path / "n.jsonl"))
    assert done.returncode == 2
    assert f"{specs}, line 2: not a GenerationSpec or job" in done.stderr
