"""``kgsynth serve`` over real HTTP: auth, validation, a job's life, restart mid-job, queries.

The server is the real console command (uvicorn) in a subprocess on the engine fixture
graph; generation goes to the local OpenAI-compatible test server.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import browse, console_messages
from tests.engine_graph import AD_SYMPTOMS, AD_WINDOWS
from tests.llm_server import ServerConfig, ThreadServer

pytestmark = pytest.mark.timeout(300)
REPO = Path(__file__).resolve().parents[1]
TOKEN = "test-token-5d1c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(graph: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli.main", "--uri", f"embedded:{graph}", *args]


class Service:
    """``kgsynth serve`` in a subprocess; ``url`` once /healthz answers."""

    def __init__(self, graph: Path, data: Path, llm: ThreadServer, *extra: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(graph.parent),
            "KGSYNTH_API_TOKENS": f"other-token,{TOKEN}",
            "OPENAI_API_KEY": "sk-test",
        }
        self.log = data.parent / f"serve-{self.port}.log"
        self.proc = subprocess.Popen(
            [
                *cli(graph, "serve", "--port", str(self.port), "--data-dir", str(data)),
                *("--model", "test-model", "--base-url", llm.url, *extra),
            ],
            cwd=REPO,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"serve did not answer: {self.log.read_text()}")

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, headers=kw.pop("headers", AUTH), timeout=30, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> httpx.Response:
        return httpx.post(
            self.url + path, json=body, headers=kw.pop("headers", AUTH), timeout=30, **kw
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)


@pytest.fixture(scope="module")
def llm() -> Iterator[ThreadServer]:
    with ThreadServer(ServerConfig(latency_s=0.02)) as srv:
        yield srv


@pytest.fixture(scope="module")
def service(
    graph: Path, llm: ThreadServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    svc = Service(graph, tmp_path_factory.mktemp("svc") / "data", llm)
    yield svc
    svc.stop()


def _wait(svc: Service, job_id: str, status: set[str], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = svc.get(f"/v1/generations/{job_id}").json()
        if job["status"] in status:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']}")


def _records(svc: Service, job_id: str) -> list[dict[str, Any]]:
    answer = svc.get(f"/v1/generations/{job_id}/records")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in answer.text.splitlines()]


def test_auth_is_required_on_v1_and_not_on_health(service: Service) -> None:
    assert httpx.get(service.url + "/healthz").status_code == 200
    body = {"icd": "G30.9", "n": 1}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        answer = service.post("/v1/generations", body, headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["www-authenticate"] == "Bearer"
    assert service.get("/v1/kg/queries", headers={}).status_code == 401
    ready = service.get("/readyz").json()
    assert ready == {"status": "ready", "graph": "ok", "llm": "ok"}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"icd": "G30.9", "n": 0}, "greater than or equal to 1"),
        ({"icd": "G30.9", "disease": "x", "n": 1}, "exactly one of icd or disease"),
        ({"n": 1}, "exactly one of icd or disease"),
        ({"icd": "G30.9", "n": 1, "model": "gpt"}, "Extra inputs are not permitted"),
        ({"icd": "G30.9", "n": 10_001}, "this server allows 10,000"),
    ],
)
def test_invalid_requests_are_422_with_the_reason(
    service: Service, body: dict[str, Any], says: str
) -> None:
    answer = service.post("/v1/generations", body)
    assert answer.status_code == 422
    assert says in json.dumps(answer.json())


def test_unknown_code_or_recipe_is_400_naming_it(service: Service) -> None:
    answer = service.post("/v1/generations", {"icd": "Z99.89", "n": 2})
    assert answer.status_code == 400
    assert "Z99.89" in answer.json()["detail"]
    answer = service.post("/v1/generations", {"icd": "G30.9", "n": 2, "recipe": "nope"})
    assert answer.status_code == 400
    assert "nope" in answer.json()["detail"]
    thin = service.post("/v1/generations", {"icd": "J11.1", "n": 2, "recipe": "medsyn"})
    assert thin.status_code == 400  # the fixture's influenza has 3 symptoms and no persona
    assert "J11.1" in thin.json()["detail"] and "allow-thin" in thin.json()["detail"]
    body = {"icd": "J11.1", "n": 2, "recipe": "medsyn", "allow_thin": True}
    assert service.post("/v1/generations", body).status_code == 202
    for bad in ("0" * 32, "..%2F..%2Fetc"):
        assert service.get(f"/v1/generations/{bad}").status_code == 404


def test_a_job_runs_to_completion_and_matches_the_cli(
    service: Service, graph: Path, llm: ThreadServer, tmp_path: Path
) -> None:
    started = service.post("/v1/generations", {"icd": "G30.9", "n": 6, "seed": 3})
    assert started.status_code == 202
    job = started.json()
    assert job["status"] in {"queued", "running"}
    assert job["progress"]["total"] == 6
    done = _wait(service, job["id"], {"complete", "failed"})
    assert done["status"] == "complete", done
    assert done["progress"] == {"total": 6, "ok": 6, "failed": 0, "rejected": 0}
    records = _records(service, job["id"])
    assert len(records) == 6
    assert all(r["status"] == "ok" and r["text"] for r in records)
    # the same request through the CLI plans the same records (ids come from the seed)
    out = tmp_path / "cli.jsonl"
    run = subprocess.run(
        [
            *cli(graph, "generate", "--recipe", "dualalign", "--icd", "G30.9", "-n", "6"),
            *("--seed", "3", "--model", "test-model", "--base-url", llm.url, "-o", str(out)),
        ],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(graph.parent), "OPENAI_API_KEY": "sk-test"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr
    from_cli = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["record_id"] for r in records} == {r["record_id"] for r in from_cli}
    assert "sk-test" not in json.dumps(records)


def test_a_patients_job_writes_each_patient_s_whole_history(service: Service) -> None:
    # the fixture's windows give no visits: one per window of positive weight
    visits = sum(1 for _, _, _, weight, _ in AD_WINDOWS.values() if weight > 0)
    started = service.post("/v1/generations", {"icd": "G30.9", "n": 2, "patients": True, "seed": 5})
    assert started.status_code == 202, started.text
    assert started.json()["progress"]["total"] == 2 * visits
    done = _wait(service, started.json()["id"], {"complete", "failed"})
    assert done["status"] == "complete", done
    records = _records(service, done["id"])
    by_patient: dict[str, list[int]] = {}
    for r in records:
        patient = r["spec"]["patient"]
        by_patient.setdefault(patient["patient_id"], []).append(patient["visit_index"])
    assert len(by_patient) == 2
    assert all(sorted(v) == list(range(visits)) for v in by_patient.values())


def test_named_queries_are_listed_and_run_read_only(service: Service) -> None:
    listed = service.get("/v1/kg/queries").json()
    by_name = {q["name"]: q for q in listed}
    assert by_name["icd_lookup"]["params"] == ["icd"]
    answer = service.post("/v1/kg/queries/icd_lookup", {"params": {"icd": "G30.9"}})
    assert answer.status_code == 200
    assert [r["code"] for r in answer.json()["rows"]] == ["G30.9"]
    assert service.post("/v1/kg/queries/nope", {"params": {}}).status_code == 404
    wrong = service.post("/v1/kg/queries/icd_lookup", {"params": {"code": "G30.9"}})
    assert wrong.status_code == 400
    assert "missing parameter(s) icd" in wrong.json()["detail"]
    before = service.post("/v1/kg/queries/graph_stats", {"params": {}}).json()["rows"]
    hostile = "G30.9'}) DETACH DELETE n //"
    answer = service.post("/v1/kg/queries/icd_lookup", {"params": {"icd": hostile}})
    assert answer.status_code == 200
    assert answer.json()["rows"] == []
    assert service.post("/v1/kg/queries/graph_stats", {"params": {}}).json()["rows"] == before


def test_disease_lookup_by_code_and_name(service: Service) -> None:
    by_code = service.get("/v1/kg/diseases", params={"icd": "G30.9"}).json()
    assert by_code["icd"]["code"] == "G30.9"
    assert by_code["symptoms"]
    by_name = service.get("/v1/kg/diseases", params={"name": by_code["disease"]}).json()
    assert by_name["disease_id"] == by_code["disease_id"]
    assert service.get("/v1/kg/diseases").status_code == 422
    assert service.get("/v1/kg/diseases", params={"icd": "Z99.89"}).status_code == 400


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("G30.9", {name: weight for name, _, weight, _, _ in AD_SYMPTOMS.values()}),
        # the fixture's mental-health symptoms: weight 0.3 + 0.08 i, those MDD presents
        ("F32.9", {"sad": 0.3, "anhedonia": 0.38, "guilt": 0.46, "fatigue": 0.54}),
    ],
)
def test_the_disease_card_opens_in_chromium(
    service: Service, code: str, expected: dict[str, float], tmp_path: Path
) -> None:
    answer = service.get("/v1/cards/disease", params={"icd": code})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "<script" not in answer.text  # server-rendered, nothing to run
    assert not re.search(r'(?:src|href)="(?:https?:)?//', answer.text)  # nothing fetched
    page = tmp_path / f"card-{code}.html"
    page.write_text(answer.text, encoding="utf-8")
    shot = tmp_path / f"card-{code}.png"
    run = browse(
        page,
        "--enable-logging=stderr",
        "--v=0",
        "--hide-scrollbars",
        "--window-size=1300,2400",
        f"--screenshot={shot}",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert console_messages(run) == []
    assert shot.stat().st_size > 20_000, "the screenshot is (nearly) blank"
    print(f"screenshot: {shot}")
    dom = browse(page, "--dump-dom").stdout
    for name, weight in expected.items():
        cell = rf"<td>{re.escape(name)}(?: <span[^>]*>[^<]*</span>)?</td>"
        row = cell + rf"\s*<td class=\"num\">{weight:.2f}</td>"
        assert re.search(row, dom), (name, weight)
    assert "KGS:source/engine-fixture" in dom
    assert dom.count("<details") == 3  # three planned records with their prompts
    assert "Not planned" not in dom


def test_a_killed_server_resumes_its_job_and_loses_nothing(graph: Path, tmp_path: Path) -> None:
    n = 40
    with ThreadServer(ServerConfig(latency_s=0.3)) as slow:
        first = Service(graph, tmp_path / "data", slow, "--jobs", "1")
        job = first.post("/v1/generations", {"icd": "G30.9", "n": n, "seed": 11}).json()
        deadline = time.monotonic() + 120
        while first.get(f"/v1/generations/{job['id']}").json()["progress"]["ok"] < 5:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        first.stop(signal.SIGKILL)
        on_disk = json.loads((tmp_path / "data" / "jobs" / job["id"] / "job.json").read_text())
        assert on_disk["status"] == "running"
        second = Service(graph, tmp_path / "data", slow, "--jobs", "1")
        try:
            done = _wait(second, job["id"], {"complete", "failed"})
            assert done["status"] == "complete", done
            records = _records(second, job["id"])
        finally:
            second.stop()
        ids = [r["record_id"] for r in records if r["status"] == "ok"]
        assert len(ids) == len(set(ids)) == n
        # requests paid for: every record once, plus at most the ones in flight at the kill
        assert n <= slow.stats()["arrivals"] <= n + 16


def test_serve_refuses_a_public_address_without_tokens(graph: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KGSYNTH_API_TOKENS"}
    refused = subprocess.run(
        cli(graph, "serve", "--host", "0.0.0.0", "--backend", "template"),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "KGSYNTH_API_TOKENS" in refused.stderr
    assert "Traceback" not in refused.stderr
