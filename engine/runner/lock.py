"""One writer per output: an exclusive ``flock`` on ``STEM.lock`` beside it.

The lock file names its holder (pid, host, command, start time) so a second writer can
say who holds it. The kernel drops the lock when its holder dies, however it dies, so a
lock file left by a killed process is simply taken over (and reported). Re-entrant within
a process: the CLI takes it before planning, the runner again around the run.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from engine.errors import EngineError
from kg.redact import display_url

#: held locks of this process: lock path -> (fd, depth)
_HELD: dict[Path, list[int]] = {}


class OutputLocked(EngineError):
    """Another live process is writing the same output."""


def lock_path(output: Path) -> Path:
    """``notes.jsonl`` -> ``notes.lock``, beside it."""
    return output.with_name(f"{output.stem}.lock")


def _command() -> str:
    """This process's command line, URLs without credentials (``--base-url`` may hold some)."""
    args = (display_url(a) if "://" in a else a for a in sys.argv[1:])
    return " ".join(["kgsynth", *args])[:500]


def _holder(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "a process that left no details"
    return (
        f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}: "
        f"{holder.get('command')}"
    )


class OutputLock:
    """``with OutputLock(output):`` - refuse at once if another process writes ``output``."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.path = lock_path(output).absolute()
        #: the holder a stale lock file named, when this lock took it over
        self.took_over: dict[str, Any] | None = None

    def acquire(self) -> None:
        held = _HELD.get(self.path)
        if held is not None:
            held[1] += 1
            return
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise EngineError(f"cannot create the lock {self.path}: {err.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
                os.close(fd)
                raise OutputLocked(
                    f"{self.output} is being written by another kgsynth ({_describe(holder)}); "
                    f"wait for it to finish or stop it (lock {self.path})"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # its holder removed it as we opened it: take the new one
        previous = _holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        if previous:
            self.took_over = previous
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": _command(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        _HELD[self.path] = [fd, 1]

    def release(self) -> None:
        held = _HELD.get(self.path)
        if held is None:
            return
        held[1] -= 1
        if held[1]:
            return
        del _HELD[self.path]
        try:
            self.path.unlink(missing_ok=True)  # unlink before unlocking: no one locks a ghost
        finally:
            os.close(held[0])

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
