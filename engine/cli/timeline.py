"""``kgsynth timeline FILE``: one longitudinal patient's visits, as planned or generated."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from engine.errors import EngineError
from engine.jsonl import json_objects
from engine.spec import GenerationSpec
from kg.cli import make_console

_out = make_console()


def patient_visits(path: Path, patient: str | None) -> list[GenerationSpec]:
    """The visits of ``patient`` (default: the file's first patient) in visit order, from a
    specs file (``plan``) or a records file (``generate``: each line's ``spec``)."""
    visits: dict[int, GenerationSpec] = {}
    try:
        with path.open("rb") as fh:
            for _, at, item in json_objects(fh, lambda n: f"{path}:{n}", "a spec or a record"):
                raw: Any = item.get("spec", item)
                if not isinstance(raw, dict) or not isinstance(raw.get("patient"), dict):
                    continue
                if patient is None:
                    patient = raw["patient"].get("patient_id")
                if raw["patient"].get("patient_id") != patient:
                    continue
                try:
                    spec = GenerationSpec.model_validate(raw)
                except ValueError as err:
                    raise EngineError(f"{at}: not a kgsynth spec ({err})") from None
                assert spec.patient is not None
                visits[spec.patient.visit_index] = spec
    except OSError as err:
        raise EngineError(f"{path}: {err.strerror}") from None
    if not visits:
        which = f"patient {patient}" if patient else "longitudinal patients (plan --patients)"
        raise EngineError(f"{path}: no records of {which}")
    return [visits[i] for i in sorted(visits)]


def _symptoms(spec: GenerationSpec, before: set[str]) -> str:
    """The visit's keywords; those its previous visit documented marked ``(ongoing)``."""
    return "; ".join(
        f"{k.text} (ongoing)" if k.symptom_id in before else k.text for k in spec.keywords
    )


def timeline(
    path: Annotated[Path, typer.Argument(help="Specs (plan) or records (generate) JSONL.")],
    patient: Annotated[
        str | None, typer.Option(help="Patient id (default: the file's first patient).")
    ] = None,
) -> None:
    """Print one longitudinal patient's timeline: visit, day, age, window and symptoms."""
    visits = patient_visits(path, patient)
    first = visits[0]
    assert first.patient is not None
    persona = first.persona
    who = ", ".join(persona.attributes.values()) if persona else ""
    age = f"age {persona.age_at_diagnosis} at diagnosis, " if persona else ""
    table = Table(
        title=f"{first.patient.patient_id}: {first.disease} ({age}{who}); "
        f"{len(visits)} of {first.patient.visits} visits",
        title_justify="left",
    )
    for column in ("visit", "day", "months to dx", "age", "window", "symptoms documented"):
        table.add_column(column, overflow="fold")
    previous: set[str] = set()
    for spec in visits:
        assert spec.patient is not None
        table.add_row(
            str(spec.patient.visit_index),
            str(spec.patient.day),
            f"{spec.visit_months:+.1f}" if spec.visit_months is not None else "",
            str(spec.persona.age) if spec.persona and spec.persona.age is not None else "",
            spec.window.name if spec.window else "",
            _symptoms(spec, previous),
        )
        previous = {k.symptom_id for k in spec.keywords}
    _out.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``timeline`` command to the root app."""
    app.command("timeline")(timeline)
