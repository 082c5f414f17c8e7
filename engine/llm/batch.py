"""Batch files: write OpenAI Batch API request JSONL, ingest the provider's output JSONL.

The request file is what ``POST /v1/batches`` takes (and what ``vllm run-batch -i`` reads):
one ``{"custom_id", "method", "url", "body"}`` line per record, ``custom_id`` being the
record id. The output of either (``{"custom_id", "response": {"status_code", "body"},
"error"}`` lines) is ingested by ``BatchBackend``, so the records, provenance, resume and
manifest are exactly those of a live run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from engine.errors import EngineError
from engine.llm.base import Backend, LLMError, LLMRequest, LLMResponse, PermanentError
from engine.llm.body import chat_body
from engine.llm.parsing import check_response, completion_from_dict
from kg.outfile import atomic_file

BATCH_URL = "/v1/chat/completions"


def batch_line(model: str, request: LLMRequest) -> str:
    """One request line (no newline): ``custom_id`` is the record id, the body ``chat_body``'s.

    Serialised with ``orjson`` (compact separators, UTF-8 kept as is; ~10x the standard
    library's encoder on these bodies, whose long system prompt dominates).
    """
    line = {
        "custom_id": request.request_id,
        "method": "POST",
        "url": BATCH_URL,
        "body": chat_body(model, request),
    }
    return orjson.dumps(line).decode()


def write_batch_requests(path: Path, model: str, requests: Iterable[LLMRequest]) -> int:
    """Write the request file atomically; returns the number of lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with atomic_file(path) as fh:
        for request in requests:
            fh.write(batch_line(model, request) + "\n")
            count += 1
    return count


def _outcome(item: dict[str, Any]) -> LLMResponse | LLMError:
    error = item.get("error")
    if error:
        detail = error.get("message", error) if isinstance(error, dict) else error
        return PermanentError(f"batch error: {detail}")
    response = item.get("response") or {}
    status = response.get("status_code", 200)
    body = response.get("body") or {}
    if status != 200:
        inner = body.get("error", body) if isinstance(body, dict) else body
        detail = inner.get("message", inner) if isinstance(inner, dict) else inner
        return PermanentError(f"batch request failed with HTTP {status}: {detail}")
    try:
        return completion_from_dict(body)
    except LLMError as err:
        return PermanentError(str(err))


def read_batch_output(path: Path) -> dict[str, LLMResponse | LLMError]:
    """Outcome per ``custom_id`` of a provider's (or ``vllm run-batch``'s) output file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise EngineError(f"--ingest {path}: {err.strerror or err}") from None
    out: dict[str, LLMResponse | LLMError] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            custom_id = item["custom_id"]
        except (ValueError, KeyError, TypeError):
            raise EngineError(
                f"{path}, line {number}: not a batch output line (needs JSON with custom_id)"
            ) from None
        out[str(custom_id)] = _outcome(item)
    return out


class BatchBackend(Backend):
    """Answers each request from an ingested batch output file, by record id."""

    name = "batch"
    cacheable = False
    local = True

    def __init__(self, model: str, output_file: Path) -> None:
        self.model = model
        self.output_file = output_file
        self.results = read_batch_output(output_file)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """The ingested answer; a bad one is permanent (asking again reads the same line)."""
        result = self.results.get(request.request_id)
        if result is None:
            raise PermanentError(f"no line for this record in {self.output_file.name}")
        if isinstance(result, LLMError):
            raise result
        try:
            check_response(request, result)
        except LLMError as err:
            raise PermanentError(str(err)) from None
        return result

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "ingested": self.output_file.name}
