"""Errors a user can cause in the engine; the CLI prints them as one line."""

from __future__ import annotations

from kg.errors import KgError


class EngineError(KgError):
    """A bad recipe, unknown code, unreachable endpoint or bad model path."""
