"""A user-supplied reference corpus: JSONL, one document per line, its text in one field.

Each line is a JSON object; ``field`` (default ``text``) holds the document's text and an
optional ``id`` names it (else ``FILE:LINE``). Blank lines are skipped. Anything else is one
clear error naming the file, line and field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from engine.errors import EngineError
from engine.jsonl import json_objects


class ReferenceDoc(BaseModel):
    """One protected text and the name a rejection reports for it."""

    model_config = ConfigDict(frozen=True)

    id: str
    text: str
    code: str | None = None


def _docs(path: Path, field: str, code_field: str | None) -> Iterator[ReferenceDoc]:
    with path.open("rb") as fh:
        for number, where, item in json_objects(
            fh,
            lambda n: f"--reference {path}, line {n}",
            f"a JSON object with a {field!r} field",
        ):
            text = item.get(field)
            if not isinstance(text, str):
                found = "missing" if text is None else f"a {type(text).__name__}"
                raise EngineError(
                    f"{where}: field {field!r} is {found}, expected the document's text as a "
                    "string (choose the field with --reference-field)"
                )
            name = item.get("id")
            doc_id = str(name) if name is not None else f"{path.name}:{number}"
            code = item.get(code_field) if code_field else None
            yield ReferenceDoc(id=doc_id, text=text, code=None if code is None else str(code))


def load_reference(
    path: Path, field: str = "text", code_field: str | None = None
) -> list[ReferenceDoc]:
    """Every document of the corpus at ``path`` (its ICD code from ``code_field`` when given);
    one clear error for a bad file or line."""
    try:
        docs = list(_docs(path, field, code_field))
    except OSError as err:
        raise EngineError(f"--reference {path}: {err.strerror or err}") from None
    if not docs:
        raise EngineError(f"--reference {path} holds no documents")
    return docs
