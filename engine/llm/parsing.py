"""Defensive parsing: chat-completion bodies, and JSON in model text that ignored the schema."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from engine.llm.base import (
    ContentFiltered,
    LLMRequest,
    LLMResponse,
    TransientError,
    Truncated,
    Usage,
)

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


class UnparseableOutput(TransientError):
    """The model's text holds no JSON matching the requested schema (another sample may)."""


def _clip(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def parse_chat_completion(body: bytes | str) -> LLMResponse:
    """The first choice of a ``/chat/completions`` body; malformed bodies are transient errors."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
        raise TransientError(f"malformed response (not JSON): {_clip(text)!r}") from None
    return completion_from_dict(data)


def completion_from_dict(data: Any) -> LLMResponse:
    """The first choice of a decoded chat completion (API response or batch output body)."""
    try:
        choice = data["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        clip = _clip(json.dumps(data))
        raise TransientError(f"malformed response (no choices[0].message): {clip!r}") from None
    if not isinstance(content, str):
        raise TransientError("response has no text content (refusal or tool call)")
    usage = data.get("usage")
    return LLMResponse(
        raw=content,
        usage=Usage.model_validate(usage) if isinstance(usage, dict) else None,
        finish_reason=choice.get("finish_reason"),
        response_id=data.get("id"),
        served_model=data.get("model"),
    )


def extract_json(text: str) -> Any:
    """The first JSON value in ``text``: inside a code fence, bare, or followed by prose."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        stripped = candidate.strip()
        for start, char in enumerate(stripped):
            if char not in "{[":
                continue
            try:
                value, _ = _DECODER.raw_decode(stripped, start)
            except json.JSONDecodeError:
                continue
            return value
    raise UnparseableOutput(f"no JSON found in model output: {_clip(text)!r}")


def parse_structured[T: BaseModel](text: str, model: type[T]) -> T:
    """``text`` as a ``model`` instance; a one-element array around the object is unwrapped."""
    value = extract_json(text)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0]
    try:
        return model.model_validate(value)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"])) or "value"
        raise UnparseableOutput(
            f"model output does not match {model.__name__}: {where}: {first['msg']}"
        ) from None


def check_response(request: LLMRequest, response: LLMResponse) -> Any:
    """Accept ``response`` for ``request``: its structured output as JSON (None for text).

    Every backend's answer (live, cached or ingested) passes here. An answer cut by the
    token limit or a content filter, or one that is not valid for ``request.output``,
    raises a ``TransientError`` kind: the runner retries it, then records it ``failed``.
    """
    if response.finish_reason == "length":
        raise Truncated(
            f"answer cut at the token limit ({request.params.max_tokens} max_tokens); "
            "raise --max-tokens"
        )
    if response.finish_reason == "content_filter":
        raise ContentFiltered("answer cut by the provider's content filter")
    if request.output is None:
        return None
    return parse_structured(response.raw, request.output).model_dump(mode="json")
