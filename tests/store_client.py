"""A process that uses an embedded store on command, for the multi-process store tests.

``python -m tests.store_client PATH`` opens ``embedded:PATH``, prints ``open`` and then
answers one line per command read from stdin:

- ``write ID``: writes a Symptom node ``ID`` (``ok``);
- ``ids``: the Symptom ids in the graph, as a JSON list;
- ``lock`` / ``unlock``: take / let go of the write lock (``locked`` / ``unlocked``);
- ``close``: closes the store (``closed``) and exits.

``Client`` drives one such process from a test.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

from kg.batch import GraphBatch
from kg.model import Symptom
from kg.settings import GraphSettings
from kg.store import open_store
from kg.store.writer import write_batch

REPO = Path(__file__).resolve().parents[1]


def serve(path: str) -> None:
    store = open_store(GraphSettings(uri=f"embedded:{path}"))
    locks = contextlib.ExitStack()
    print("open", flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "write":
            batch = GraphBatch()
            batch.add_node(Symptom(id=arg, name=f"written by {os.getpid()}"))
            write_batch(store, batch)
            print("ok", flush=True)
        elif cmd == "ids":
            rows = store.read("MATCH (s:Symptom) RETURN s.id AS id ORDER BY id")
            print(json.dumps([r["id"] for r in rows]), flush=True)
        elif cmd == "lock":
            locks.enter_context(store.write_lock())
            print("locked", flush=True)
        elif cmd == "unlock":
            locks.close()
            print("unlocked", flush=True)
        elif cmd == "close":
            locks.close()
            store.close()
            print("closed", flush=True)
            return


class Client:
    """One ``store_client`` process; ``tmpdir`` is where its server's run files go."""

    def __init__(self, db: Path, tmpdir: Path) -> None:
        env = dict(os.environ, TMPDIR=str(tmpdir), PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.store_client", str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        self.expect("open")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def expect(self, answer: str) -> None:
        got = self.answer()
        assert got == answer, f"expected {answer!r}, got {got!r}; stderr: {self._stderr()}"

    def answer(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"store client {self.pid} died: {self._stderr()}")
        return line.strip()

    def send(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.answer()

    def write(self, node_id: str) -> None:
        assert self.send(f"write {node_id}") == "ok"

    def ids(self) -> list[str]:
        ids: list[str] = json.loads(self.send("ids"))
        return ids

    def close(self) -> None:
        assert self.send("close") == "closed"
        self.proc.wait(timeout=60)
        assert self.proc.returncode == 0, self._stderr()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=60)

    def _stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(still running)"
        return self.proc.stderr.read()[-2000:]


if __name__ == "__main__":
    serve(sys.argv[1])
