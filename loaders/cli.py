"""``kgsynth kg load / export / validate / seed``."""

from __future__ import annotations

import typer


def register(kg_app: typer.Typer) -> None:
    """Add the loader commands to the ``kg`` command group."""
