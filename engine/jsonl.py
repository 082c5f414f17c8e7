"""JSON Lines input: one object a line, or one clear error naming the file and line."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from engine.errors import EngineError


def json_objects(
    lines: Iterable[bytes], where: Callable[[int], str], expected: str
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """``(line number, where(number), object)`` for each non-blank line; a line that is not
    UTF-8, not JSON or not an object is an error saying ``where`` and what was ``expected``."""
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        at = where(number)
        try:
            item = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise EngineError(f"{at}: not UTF-8 text ({err.reason})") from None
        except ValueError as err:
            raise EngineError(f"{at}: not JSON ({err})") from None
        if not isinstance(item, dict):
            raise EngineError(f"{at}: expected {expected}")
        yield number, at, item
