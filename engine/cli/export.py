"""``kgsynth export fhir``: generated notes -> a FHIR R4 Bundle of DocumentReferences.

Only ``ok`` notes are exported (failed and gate-rejected notes never are). Exit codes: 0
written; 2 a usage or input error, named in one line (nothing written).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from engine.errors import EngineError
from kg.cli import make_console
from kg.outfile import atomic_file

export_app = typer.Typer(
    name="export", help="Export generated notes to other formats.", no_args_is_help=True
)
_err = make_console(stderr=True)


def _check_output(output: Path, force: bool) -> None:
    """A new file, or an earlier FHIR Bundle; anything else needs --force."""
    if not output.parent.is_dir():
        raise EngineError(f"-o {output}: the directory {output.parent} does not exist")
    if output.is_dir():
        raise EngineError(f"-o {output} is a directory; name a .json file")
    if not output.exists() or force:
        return
    try:
        with output.open("rb") as fh:
            head = json.loads(fh.read())
    except (OSError, ValueError):
        head = None
    if not (isinstance(head, dict) and head.get("resourceType") == "Bundle"):
        raise EngineError(
            f"-o {output} exists and is not a FHIR Bundle; name another file, or pass --force"
        )


@export_app.command("fhir")
def fhir(
    notes: Annotated[Path, typer.Argument(help="Notes JSONL written by `kgsynth generate`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Bundle JSON file to write.")],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite -o even when it is not a FHIR Bundle.")
    ] = False,
) -> None:
    """A FHIR R4 Bundle (collection) of DocumentReference resources, one per ok note, and
    one Patient per longitudinal patient (``--patients``)."""
    from engine.dataset.inputs import read_notes
    from engine.export.fhir import bundle  # fhir.resources: only when exporting

    _check_output(output, force)
    read = read_notes(notes)
    result = bundle(list(read.ok.values()))
    with atomic_file(output) as fh:
        fh.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    left_out = ", ".join(f"{v} {k}" for k, v in sorted(read.statuses.items()) if k != "ok")
    entries = result.get("entry", [])
    patients = sum(1 for e in entries if e["resource"]["resourceType"] == "Patient")
    _err.print(
        f"{output}: FHIR R4 Bundle of {len(read.ok)} DocumentReference(s)"
        + (f" and {patients} Patient(s)" if patients else "")
        + (f"; left out {left_out}" if left_out else "")
    )


def register(app: typer.Typer) -> None:
    """Add the ``export`` group (``export fhir``) to the root app."""
    app.add_typer(export_app, name="export")
