"""Read an input file as UTF-8 text, turning unreadable, binary or oversized input into problems.

Every loader reads its files here (YAML, JSON, CSV, OBO, OWL/RDF, Turtle), so every input
is refused above ``max_input_bytes()``: ``DEFAULT_MAX_INPUT_MB`` MiB, or the
``KGSYNTH_MAX_INPUT_MB`` environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path

from kg.batch import Location, Problem


def display_name(path: Path) -> str:
    """How a file is named in problems: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


DEFAULT_MAX_INPUT_MB = 256
MAX_INPUT_ENV = "KGSYNTH_MAX_INPUT_MB"


def max_input_bytes() -> tuple[int, list[Problem]]:
    """The size limit on input files, and a problem if the environment sets a bad one."""
    raw = os.environ.get(MAX_INPUT_ENV)
    if raw is None:
        return DEFAULT_MAX_INPUT_MB << 20, []
    try:
        mb = float(raw)
        if mb <= 0:
            raise ValueError
    except ValueError:
        return DEFAULT_MAX_INPUT_MB << 20, [
            Problem(Location(MAX_INPUT_ENV), "", f"{raw!r} is not a positive number of MiB")
        ]
    return int(mb * (1 << 20)), []


def read_text(path: Path) -> tuple[str | None, list[Problem]]:
    """The file's text (a UTF-8 BOM is dropped), or None and one problem saying why not."""
    name = display_name(path)
    limit, problems = max_input_bytes()
    if problems:
        return None, problems
    try:
        size = path.stat().st_size
        if size > limit:
            return None, [
                Problem(
                    Location(name),
                    "",
                    f"the file is {size / (1 << 20):,.1f} MiB, above the {limit / (1 << 20):g} "
                    f"MiB limit on input files (set {MAX_INPUT_ENV} to raise it)",
                )
            ]
        with path.open("rb") as fh:
            data = fh.read(limit + 1)  # a file that grew since stat() still stops at the limit
        if len(data) > limit:
            return None, [
                Problem(
                    Location(name),
                    "",
                    f"the file is above the {limit / (1 << 20):g} MiB limit on input files "
                    f"(set {MAX_INPUT_ENV} to raise it)",
                )
            ]
    except OSError as err:
        return None, [Problem(Location(name), "", f"cannot read the file: {err.strerror or err}")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        return None, [
            Problem(
                Location(name, line),
                "",
                f"not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); "
                "save the file as UTF-8",
            )
        ]
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        return None, [Problem(Location(name, line), "", "binary data (NUL byte); not a text file")]
    return text, []
