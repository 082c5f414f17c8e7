"""Errors a user can cause in the engine; the CLI prints them as one line."""

from __future__ import annotations

from pydantic import ValidationError

from kg.errors import KgError


class EngineError(KgError):
    """A bad recipe, unknown code, unreachable endpoint or bad model path."""


def validation_detail(err: ValueError) -> str:
    """``field: message`` of a line's first validation error (or the JSON error's text)."""
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        return f"{'.'.join(map(str, first['loc'])) or 'line'}: {first['msg']}"
    return str(err)
