"""The request cache: SQLite (WAL), keyed by sha256 of backend, model, messages and params.

A rerun of the same command finds every answer it already paid for here. One thread of
one process writes (the run's record sink, in batches); other processes may read or wait
on the lock.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError
from engine.llm.base import LLMResponse, Usage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    record_id TEXT,
    response TEXT NOT NULL,
    created REAL NOT NULL
)
"""
#: keys per ``SELECT ... IN (...)`` (SQLite's default variable limit is 32766)
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """An answer to store: its request key, who made it, and the response."""

    key: str
    backend: str
    model: str
    record_id: str
    response: LLMResponse


def _decode(text: str) -> LLMResponse:
    data = json.loads(text)
    usage = data.get("usage")
    return LLMResponse(
        raw=data["raw"],
        usage=Usage.model_validate(usage) if usage else None,
        finish_reason=data.get("finish_reason"),
        response_id=data.get("response_id"),
        served_model=data.get("served_model"),
    )


def _encode(response: LLMResponse) -> str:
    data = {
        "raw": response.raw,
        "usage": response.usage.model_dump() if response.usage else None,
        "finish_reason": response.finish_reason,
        "response_id": response.response_id,
        "served_model": response.served_model,
    }
    return json.dumps(data, ensure_ascii=False)


class RequestCache:
    """Answers by request key. Used from one thread at a time (not necessarily its opener's)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, isolation_level=None, timeout=30, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as err:
            raise EngineError(
                f"cannot open the request cache {path}: {err}; pass --cache PATH or --no-cache"
            ) from None

    def get_many(self, keys: Sequence[str]) -> dict[str, LLMResponse]:
        out: dict[str, LLMResponse] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, response FROM responses WHERE key IN ({marks})", chunk
            )
            out.update((key, _decode(text)) for key, text in rows)
        return out

    def put_many(self, answers: Iterable[CachedAnswer]) -> None:
        """Store ``answers`` in one committed transaction."""
        now = time.time()
        rows = [(a.key, a.backend, a.model, a.record_id, _encode(a.response), now) for a in answers]
        if not rows:
            return
        with self._db:  # BEGIN ... COMMIT (ROLLBACK on error)
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)", rows)

    def close(self) -> None:
        self._db.close()
