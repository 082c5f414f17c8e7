"""Headless Chromium (Debian's package) for tests that look at pages as people see them.

``scripts/ensure-chromium`` installs it (``make test`` runs it); ``KGSYNTH_CHROMIUM`` names
another binary. Without it a test skips, except under CI, where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI

#: what Chromium logs (``--enable-logging=stderr``) for a page's console messages
CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)")


def chromium() -> str:
    name = os.environ.get("KGSYNTH_CHROMIUM", "chromium")
    found = shutil.which(name) or (
        shutil.which("/usr/bin/chromium") if name == "chromium" else None
    )
    if found is None:
        if IN_CI:
            pytest.fail(f"headless Chromium ({name}) is missing; run scripts/ensure-chromium")
        pytest.skip(f"headless Chromium ({name}) is not installed (scripts/ensure-chromium)")
    return found


def browse(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Open ``page`` (a file) headless with ``args`` (``--dump-dom``, ``--screenshot=...``)."""
    profile = page.parent / ".chromium-profile"
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            *args,
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def console_messages(run: subprocess.CompletedProcess[str]) -> list[str]:
    """The page's console messages and uncaught errors from a ``--enable-logging=stderr`` run."""
    return CONSOLE.findall(run.stderr)
