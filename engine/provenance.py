"""Fingerprints, run identities and cache keys: sha256 over canonical JSON of what decides data.

The record fingerprint covers the KG content hash, recipe, template hash, backend, model and
sampling parameters; the run identity covers what decides a run's set of records (the plan
request and KG hash, or the specs file's digest), backend, model, sampling parameters and
structured-output schema. Both exclude concurrency, timeouts, retry settings, endpoint URLs
and API keys: they change how fast records arrive, not what they say.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict

FINGERPRINT_VERSION = 1
#: hex digits of an identity shown in messages
SHORT = 12


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


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flat(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


class RunIdentity(BaseModel):
    """What decides a run's records; an output file holds records of one identity only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: dict[str, Any]
    backend: str
    model: str
    params: dict[str, Any]
    structured_output: str | None = None

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the identity (computed once: the runner stamps it on every record)."""
        return sha256_hex({"v": FINGERPRINT_VERSION, **self.model_dump(mode="json")})

    def differences(self, other: RunIdentity) -> list[str]:
        """``field: theirs -> ours`` for each (dotted) field that differs from ``other``."""
        mine, theirs = _flat(self.model_dump(mode="json")), _flat(other.model_dump(mode="json"))
        return [
            f"{key}: {canonical_json(theirs.get(key))} -> {canonical_json(mine.get(key))}"
            for key in sorted(mine.keys() | theirs.keys())
            if mine.get(key) != theirs.get(key)
        ]


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
