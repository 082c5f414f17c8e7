"""The embedded store's server, shared by real processes joining and leaving in any order.

Each client is a separate Python process (tests/store_client.py). Its server's run files go
under the test's own TMPDIR, so the servers a test started are the redis-server processes
whose command line names that directory, counted from /proc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import KGSYNTH, kgsynth
from tests.store_client import Client


def servers(tmpdir: Path) -> list[int]:
    """Pids of the redis-server processes whose run files are under ``tmpdir``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and b"redis-server" in argv[0] and str(tmpdir).encode() in b" ".join(argv):
            found.append(int(entry.name))
    return found


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "run"
    path.mkdir()
    yield path
    for pid in servers(path):  # a failed test must not leave a server behind
        os.kill(pid, signal.SIGKILL)


def fresh_ids(db: Path, run_dir: Path) -> list[str]:
    """The Symptom ids a new process finds (with no server running: read from the file)."""
    reader = Client(db, run_dir)
    try:
        return reader.ids()
    finally:
        reader.close()


# Every order of two processes A and B joining (upper case) and leaving (lower case).
ORDERS = ["ABab", "ABba", "BAab", "BAba", "AaBb", "BbAa"]


@pytest.mark.parametrize("order", ORDERS)
def test_two_processes_join_and_leave_in_every_order(
    tmp_path: Path, run_dir: Path, order: str
) -> None:
    db = tmp_path / "graph.db"
    clients: dict[str, Client] = {}
    expected: list[str] = []
    for step in order:
        name = step.upper()
        if step.isupper():
            clients[name] = Client(db, run_dir)
            others = [c for n, c in clients.items() if n != name]
            node = f"KGS:symptom/{order}-{name}"
            clients[name].write(node)
            expected.append(node)
            # everyone open sees every write at once: one server, not one each
            for client in clients.values():
                assert client.ids() == sorted(expected)
            assert len(servers(run_dir)) == 1
            if others:
                others[0].write(f"{node}-seen-by-other")
                expected.append(f"{node}-seen-by-other")
                assert clients[name].ids() == sorted(expected)
        else:
            clients.pop(name).close()
            assert len(servers(run_dir)) == (1 if clients else 0)
    assert fresh_ids(db, run_dir) == sorted(expected)
    assert servers(run_dir) == []


def test_a_joiner_racing_the_last_leaver_keeps_its_server(tmp_path: Path, run_dir: Path) -> None:
    """A leaves while B joins, over and over: B always gets a working server, nothing is lost."""
    db = tmp_path / "graph.db"
    expected = []
    for i in range(8):
        leaver = Client(db, run_dir)
        leaver.write(f"KGS:symptom/leaver-{i}")
        expected.append(f"KGS:symptom/leaver-{i}")
        box: dict[str, Client] = {}

        def join(box: dict[str, Client] = box) -> None:
            box["c"] = Client(db, run_dir)

        joining = threading.Thread(target=join)
        joining.start()
        leaver.close()
        joining.join()
        joiner = box["c"]
        joiner.write(f"KGS:symptom/joiner-{i}")
        expected.append(f"KGS:symptom/joiner-{i}")
        assert joiner.ids() == sorted(expected)
        joiner.close()
        assert servers(run_dir) == []
    assert fresh_ids(db, run_dir) == sorted(expected)


def test_a_sigkilled_client_neither_keeps_the_server_nor_loses_data(
    tmp_path: Path, run_dir: Path
) -> None:
    db = tmp_path / "graph.db"
    a = Client(db, run_dir)
    a.write("KGS:symptom/a")
    b = Client(db, run_dir)
    a.kill()
    assert b.ids() == ["KGS:symptom/a"]
    b.write("KGS:symptom/b")
    b.close()  # the last live user: the dead one does not count
    assert servers(run_dir) == []
    assert fresh_ids(db, run_dir) == ["KGS:symptom/a", "KGS:symptom/b"]


def test_the_next_process_uses_the_server_a_sigkilled_last_client_left(
    tmp_path: Path, run_dir: Path
) -> None:
    db = tmp_path / "graph.db"
    a = Client(db, run_dir)
    a.write("KGS:symptom/a")
    orphaned = servers(run_dir)
    a.kill()
    assert servers(run_dir) == orphaned and len(orphaned) == 1
    b = Client(db, run_dir)
    assert servers(run_dir) == orphaned  # joined, not a second server on the same file
    assert b.ids() == ["KGS:symptom/a"]
    b.write("KGS:symptom/b")
    b.close()
    assert servers(run_dir) == []
    assert fresh_ids(db, run_dir) == ["KGS:symptom/a", "KGS:symptom/b"]


def test_a_sigkilled_server_is_replaced_and_saved_writes_survive(
    tmp_path: Path, run_dir: Path
) -> None:
    db = tmp_path / "graph.db"
    a = Client(db, run_dir)
    a.write("KGS:symptom/a")  # each write is saved before the write lock is let go
    (pid,) = servers(run_dir)
    os.kill(pid, signal.SIGKILL)
    b = Client(db, run_dir)
    assert b.ids() == ["KGS:symptom/a"]
    b.close()
    a.close()  # the last user of the new server
    assert servers(run_dir) == []


def test_a_second_writer_waits_for_the_first_and_names_it(tmp_path: Path, run_dir: Path) -> None:
    db = tmp_path / "graph.db"
    module = tmp_path / "m.yaml"
    module.write_text(
        "kgsynth_seed: 1\nmodule: waiting\nnodes:\n  Symptom:\n"
        '    - {id: "KGS:symptom/loaded", name: "loaded while another wrote"}\n',
        encoding="utf-8",
    )
    holder = Client(db, run_dir)
    assert holder.send("lock") == "locked"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KGSYNTH_", "NEO4J_"))}
    env |= {"KGSYNTH_CONFIG": "", "TMPDIR": str(run_dir)}
    load = subprocess.Popen(
        [str(KGSYNTH), "--uri", f"embedded:{db}", "kg", "load", str(module)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert load.stderr is not None
    waiting = load.stderr.readline()
    assert f"waiting for pid {holder.pid} (store_client.py {db})" in waiting
    assert f"to finish writing {db}" in waiting
    assert load.poll() is None  # still waiting: nothing written under the holder's lock
    assert holder.ids() == []
    assert holder.send("unlock") == "unlocked"
    out, err = load.communicate(timeout=300)
    assert load.returncode == 0, err
    assert "loaded 1 nodes" in out
    assert holder.ids() == ["KGS:symptom/loaded"]
    holder.close()
    assert fresh_ids(db, run_dir) == ["KGS:symptom/loaded"]


def test_a_server_that_does_not_answer_gets_a_busy_message(tmp_path: Path, run_dir: Path) -> None:
    db = tmp_path / "graph.db"
    a = Client(db, run_dir)
    a.write("KGS:symptom/a")
    (pid,) = servers(run_dir)
    os.kill(pid, signal.SIGSTOP)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KGSYNTH_", "NEO4J_"))}
        env |= {"KGSYNTH_CONFIG": "", "TMPDIR": str(run_dir), "KGSYNTH_GRAPH_URI": f"embedded:{db}"}
        r = kgsynth("kg", "stats", env=env)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert r.returncode == 2
    assert f"the embedded server for {db} (pid {pid}) is running but did not answer" in r.stderr
    assert "writable" not in r.stderr and "Traceback" not in r.stderr
    assert a.ids() == ["KGS:symptom/a"]  # it works again once the server answers
    a.close()
