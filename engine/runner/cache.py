"""The request cache: SQLite (WAL), keyed by sha256 of backend, model, messages and params.

A rerun of the same command finds every answer it already paid for here. One process
writes (the runner's event loop); other processes may read or wait on the lock.
"""

from __future__ import annotations

import json
import sqlite3
import time
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


class RequestCache:
    """``get``/``put`` answers by request key; every ``put`` is committed at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as err:
            raise EngineError(
                f"cannot open the request cache {path}: {err}; pass --cache PATH or --no-cache"
            ) from None

    def get(self, key: str) -> LLMResponse | None:
        row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        usage = data.get("usage")
        return LLMResponse(
            raw=data["raw"],
            usage=Usage.model_validate(usage) if usage else None,
            finish_reason=data.get("finish_reason"),
            response_id=data.get("response_id"),
            served_model=data.get("served_model"),
        )

    def put(
        self, key: str, backend: str, model: str, record_id: str, response: LLMResponse
    ) -> None:
        data = {
            "raw": response.raw,
            "usage": response.usage.model_dump() if response.usage else None,
            "finish_reason": response.finish_reason,
            "response_id": response.response_id,
            "served_model": response.served_model,
        }
        self._db.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
            (key, backend, model, record_id, json.dumps(data, ensure_ascii=False), time.time()),
        )

    def close(self) -> None:
        self._db.close()
