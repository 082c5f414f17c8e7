"""Read an input file as UTF-8 text, turning unreadable or binary input into problems."""

from __future__ import annotations

from pathlib import Path

from kg.batch import Location, Problem


def display_name(path: Path) -> str:
    """How a file is named in problems: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def read_text(path: Path) -> tuple[str | None, list[Problem]]:
    """The file's text (a UTF-8 BOM is dropped), or None and one problem saying why not."""
    name = display_name(path)
    try:
        data = path.read_bytes()
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
