"""Whether another process is still there (for locks and servers left by dead processes)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def pid_alive(pid: int, command: bytes | None = None) -> bool:
    """True while process ``pid`` exists (and, given ``command``, its command line holds it:
    a recycled pid running something else counts as gone; without /proc the pid is trusted)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if command is None:
        return True
    with contextlib.suppress(OSError):
        return command in Path(f"/proc/{pid}/cmdline").read_bytes()
    return True
