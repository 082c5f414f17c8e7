"""Writing an output (``-o``) without destroying what it points at.

- a new path or a regular file: written to a hidden temporary file beside it
  (``.NAME.tmp-PID``) and renamed into place, so readers never see half a file;
- a symlink: followed (the file it points to is replaced, the link stays);
- a FIFO or character device (``-o >(wc -c)``, ``/dev/stdout``): written directly;
  a socket or block device is refused;
- an existing file of another kind (``generate`` notes under ``plan``, a curated module
  under ``kg export``, anything kgsynth did not write) is refused unless ``force``.

The temporary file is removed on every way out that unwinds the stack: success, an error,
Ctrl-C, and SIGTERM / SIGHUP (``kgsynth``'s entry point turns them into
``KeyboardInterrupt``). Temporary files left by a killed (``-9``) process are removed by
the next write to the same output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TextIO

from kg.errors import KgError
from kg.process import pid_alive

#: What each kind of file is, as messages name it.
KINDS = {
    "notes": "`generate` notes",
    "specs": "`plan` specs",
    "batch": "OpenAI Batch requests",
    "export-json": "a `kg export` JSON graph",
    "export-ttl": "a `kg export` Turtle graph",
    "export-csv": "a `kg export` CSV directory",
    "seed": "a seed module (curated content)",
    "other": "content kgsynth did not write",
}
KGS_VOCAB = "https://w3id.org/kgsynth/"
_HEAD = 1 << 22  # the first line of a JSONL output is read up to 4 MiB


def sniff(path: Path) -> str | None:
    """The kind of output ``path`` (a regular file) holds, a key of :data:`KINDS`; None if empty."""
    if path.with_name(f"{path.stem}.manifest.json").is_file():
        return "notes"
    with path.open("rb") as fh:
        head = fh.readline(_HEAD)
        if not head.strip():
            rest = fh.read(1)
            if not head and not rest:
                return None
            return "other"
        if head.strip() == b"{":
            second = fh.readline(_HEAD)
            return _seed_kind(head + second + fh.read(4096))
        if head.lstrip().startswith((b"@prefix", b"PREFIX", b"@base", b"#")):
            return "export-ttl" if KGS_VOCAB.encode() in head + fh.read(1 << 16) else "other"
    return _record_kind(head)


def _record_kind(line: bytes) -> str:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "other"
    if not isinstance(record, dict):
        return "other"
    if {"custom_id", "method", "url", "body"} <= record.keys():
        return "batch"
    if {"record_id", "status", "fingerprint"} <= record.keys():
        return "notes"
    if {"record_id", "recipe", "template_hash", "kg_hash"} <= record.keys():
        return "specs"
    return "other"


def _seed_kind(head: bytes) -> str:
    text = head.decode("utf-8", "replace")
    if '"kgsynth_seed"' not in text:
        return "other"
    return "export-json" if '"module": "export"' in text else "seed"


def _csv_dir_kind(path: Path) -> str | None:
    """``export-csv`` for a directory of kgsynth CSV exports, None when empty, else ``other``."""
    entries = list(path.iterdir())
    if not entries:
        return None
    for entry in entries:
        if not entry.is_file() or entry.suffix != ".csv":
            return "other"
        with entry.open("rb") as fh:
            header = fh.readline(1 << 16)
        if b":ID(" not in header and b":START_ID(" not in header:
            return "other"
    return "export-csv"


def _refuse(path: Path, kind: str, command: str) -> KgError:
    return KgError(
        f"{path} holds {KINDS[kind]}; `{command}` will not overwrite it: "
        "choose another -o or pass --force"
    )


def _check_kind(
    path: Path, kind: str | None, replaces: Collection[str], command: str, force: bool
) -> None:
    if kind is not None and kind not in replaces and not force:
        raise _refuse(path, kind, command)


def _target(path: Path) -> tuple[Path, os.stat_result | None]:
    """The path to write (a symlink resolved) and its status, None when it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Path(os.path.realpath(path)), None  # new, or a dangling symlink: create its target
    except OSError as err:
        raise KgError(f"cannot write {path}: {err.strerror}") from None
    return (Path(os.path.realpath(path)) if stat.S_ISREG(st.st_mode) else path), st


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise KgError(f"cannot write {path}: {path.parent} is not a directory") from None
    except OSError as err:
        raise KgError(f"cannot create the directory {path.parent}: {err.strerror}") from None


def _remove_stale(target: Path) -> None:
    """Remove ``.NAME.tmp-PID`` leftovers of processes that no longer exist."""
    with contextlib.suppress(OSError):
        for entry in target.parent.glob(f".{target.name}.tmp-*"):
            pid = entry.name.rsplit("-", 1)[1]
            if pid.isdigit() and not pid_alive(int(pid)):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)


@contextlib.contextmanager
def open_output(
    path: Path, *, replaces: Collection[str], command: str, force: bool = False
) -> Iterator[TextIO]:
    """A text handle for ``path``; the file appears (atomically) only when the block succeeds.

    ``replaces``: the kinds (keys of :data:`KINDS`) this command may overwrite without
    ``force``; an empty file may always be overwritten.
    """
    target, st = _target(path)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise KgError(f"cannot write {path}: it is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode):
        if not (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)):
            raise KgError(f"cannot write {path}: not a file, pipe or character device")
        try:
            fh = open(path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        except OSError as err:
            raise KgError(f"cannot write {path}: {err.strerror}") from None
        with fh:
            yield fh
        return
    if st is not None:
        try:
            kind = sniff(target)
        except OSError as err:
            raise KgError(f"cannot read {path}: {err.strerror}") from None
        _check_kind(path, kind, replaces, command, force)
    _make_parent(target)
    _remove_stale(target)
    with atomic_file(target, stat.S_IMODE(st.st_mode) if st is not None else None) as out:
        yield out


@contextlib.contextmanager
def atomic_file(path: Path, permissions: int | None = None) -> Iterator[TextIO]:
    """A UTF-8 text handle on a temporary sibling that replaces ``path`` (a rename, after an
    fsync) only when the block succeeds: a kill or an error leaves ``path`` as it was.
    ``permissions``: the mode bits to give the file (default: 0o666 less the umask)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        except OSError as err:
            raise KgError(f"cannot write {path}: {err.strerror}") from None
        with open(fd, "w", encoding="utf-8", newline="\n") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if permissions is not None:
            os.chmod(tmp, permissions)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def output_dir(path: Path, *, command: str, force: bool = False) -> Iterator[Path]:
    """A fresh temporary directory to fill; it replaces ``path`` when the block succeeds.

    ``path`` must be new, an empty directory or a previous CSV export (else ``force``);
    an existing file is refused whatever ``force`` says.
    """
    target, st = _target(path)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise KgError(
            f"{path} is a file, and -f csv writes a directory of CSV files "
            "(one per label and relationship type): give a directory path"
        )
    if st is not None:
        target = Path(os.path.realpath(path))
        _check_kind(path, _csv_dir_kind(target), {"export-csv"}, command, force)
    _make_parent(target)
    _remove_stale(target)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
        except OSError as err:
            raise KgError(f"cannot write {path}: {err.strerror}") from None
        yield tmp
        if st is None:
            os.replace(tmp, target)
            return
        os.replace(target, old)  # a directory cannot be renamed over a non-empty one
        try:
            os.replace(tmp, target)
        except BaseException:
            os.replace(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
