"""The documentation site builds strictly, its API reference is current, compose is sound."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine.llm.factory import BackendSettings
from engine.service.app import ServiceConfig, create_app
from engine.service.reference import render

REPO = Path(__file__).resolve().parents[1]


def _nav_pages(nav: list[object]) -> list[str]:
    pages: list[str] = []
    for item in nav:
        for value in item.values() if isinstance(item, dict) else [item]:
            pages += _nav_pages(value) if isinstance(value, list) else [str(value)]
    return pages


@pytest.mark.timeout(600)
def test_mkdocs_builds_strictly_with_every_page(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    pages = _nav_pages(config["nav"])
    on_disk = {p.name for p in (REPO / "docs").glob("*.md")}
    assert set(pages) == on_disk, "every docs page is in the nav, and only those"
    for page in pages:
        built = site / ("index.html" if page == "index.md" else f"{page[:-3]}/index.html")
        assert built.is_file(), page


def test_the_api_reference_is_generated_from_the_current_schema() -> None:
    app = create_app(
        ServiceConfig(data_dir=Path("unused"), backend=BackendSettings(kind="template"))
    )
    schema = app.openapi()
    page = (REPO / "docs" / "api-reference.md").read_text(encoding="utf-8")
    assert page == render(schema), "docs/api-reference.md is stale: run scripts/api-reference"
    for path, methods in schema["paths"].items():
        for method in methods:
            assert f"### `{method.upper()} {path}`" in page


def test_compose_runs_neo4j_seed_api_and_vllm_on_loopback() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"neo4j", "seed", "api", "vllm"}
    assert services["seed"]["depends_on"]["neo4j"]["condition"] == "service_healthy"
    assert services["seed"]["restart"] == "no"
    assert services["api"]["depends_on"]["seed"]["condition"] == "service_completed_successfully"
    assert "healthcheck" in services["neo4j"] and "healthcheck" in services["api"]
    assert services["vllm"]["profiles"] == ["gpu"]
    assert services["vllm"]["environment"]["HF_HUB_OFFLINE"] == "1"
    assert any(v.endswith(":/models/model:ro") for v in services["vllm"]["volumes"])
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
    assert "KGSYNTH_API_TOKENS" in services["api"]["environment"]
    env_example = (REPO / ".env.example").read_text(encoding="utf-8")
    for key in ("NEO4J_PASSWORD", "KGSYNTH_API_TOKENS", "VLLM_MODEL_PATH"):
        assert f"{key}=" in env_example
    client = shutil.which("docker-compose")
    if client:  # where a compose client exists, it must accept the file too
        env = {**os.environ, "NEO4J_PASSWORD": "x" * 8, "KGSYNTH_API_TOKENS": "t"}
        checked = subprocess.run(
            [client, "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert checked.returncode == 0, checked.stderr
