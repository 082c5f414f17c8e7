"""ICD-10-CM code spelling: one normaliser for user input, ontology cross-references and files."""

from __future__ import annotations

import re

_PREFIXES = ("ICD10CM:", "ICD-10-CM:")
_CODE = re.compile(r"^([A-Z][0-9A-Z]{2})\.?([0-9A-Z]{0,4})$")


def normalise_code(text: str) -> str:
    """``g309``, ``ICD10CM:G30.9``, `` G30.9 `` -> ``G30.9``; ``G30.-`` -> ``G30``.

    Block ranges (``A00-A09``) and strings that are not code-shaped come back upper-cased
    and stripped but otherwise unchanged, for the caller's validation to reject.
    """
    code = text.strip().upper()
    for prefix in _PREFIXES:
        code = code.removeprefix(prefix)
    code = code.rstrip("-").rstrip(".")
    if "-" in code:
        return code
    match = _CODE.match(code)
    if match is None:
        return code
    return match.group(1) + (f".{match.group(2)}" if match.group(2) else "")
