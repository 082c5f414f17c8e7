"""Run the real ``kgsynth`` console script in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kg.settings import GraphSettings

KGSYNTH = Path(sys.executable).with_name("kgsynth")


def store_env(settings: GraphSettings, **extra: str) -> dict[str, str]:
    """An environment pointing the CLI at ``settings`` (password via NEO4J_PASSWORD only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KGSYNTH_", "NEO4J_"))}
    env["KGSYNTH_GRAPH_URI"] = settings.uri
    if settings.backend == "neo4j":
        env["NEO4J_USERNAME"] = settings.username
        if settings.password is not None:
            env["NEO4J_PASSWORD"] = settings.password.get_secret_value()
    env.update(extra)
    return env


def kgsynth(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``kgsynth ARGS`` and capture its output; never raises on a non-zero exit."""
    return subprocess.run(
        [str(KGSYNTH), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
