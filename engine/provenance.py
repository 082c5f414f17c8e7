"""Fingerprints and cache keys: sha256 over canonical JSON of what determines the data.

The fingerprint covers the KG content hash, recipe, template hash, backend, model and
sampling parameters. It deliberately excludes concurrency, timeouts, retry settings,
endpoint URLs and API keys: they change how fast records arrive, not what they say.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from collections.abc import Mapping, Sequence
from typing import Any

FINGERPRINT_VERSION = 1


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no whitespace and non-ASCII kept: one text per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def fingerprint(
    *,
    kg_hash: str | None,
    recipe: str | None,
    template_hash: str | None,
    backend: str,
    model: str,
    params: Mapping[str, Any],
) -> str:
    """The record fingerprint: equal fingerprints mean records made the same way."""
    return sha256_hex(
        {
            "v": FINGERPRINT_VERSION,
            "kg_hash": kg_hash,
            "recipe": recipe,
            "template_hash": template_hash,
            "backend": backend,
            "model": model,
            "params": dict(params),
        }
    )


def request_key(
    backend: str,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
) -> str:
    """The request-cache key: model, messages and sampling parameters (seed included)."""
    return sha256_hex(
        {"backend": backend, "model": model, "messages": list(messages), "params": dict(params)}
    )


def versions(*packages: str) -> dict[str, str | None]:
    """Python, kgsynth and the named distributions' versions (None when not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("kgsynth", *packages):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out
