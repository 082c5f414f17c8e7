"""The one request builder: the JSON body of ``/chat/completions`` for an ``LLMRequest``.

Live calls, ``generate --backend batch`` files and ``plan --format openai-batch`` all send
this body, so the same spec gives byte-identical requests wherever it goes. The one field
that depends on the target is the output-token limit: ``max_completion_tokens`` (OpenAI's
name; its reasoning models reject ``max_tokens``) for OpenAI's API and for batch files
(the OpenAI Batch API and ``vllm run-batch`` both read it), ``max_tokens`` for any other
OpenAI-compatible server (Ollama and LM Studio read only that).
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from engine.llm.base import LLMRequest

OPENAI_URL = "https://api.openai.com/v1"
TokenField = Literal["max_completion_tokens", "max_tokens"]
#: what batch files send (OpenAI Batch API, ``vllm run-batch``)
BATCH_TOKEN_FIELD: TokenField = "max_completion_tokens"


def is_openai(base_url: str) -> bool:
    """Whether ``base_url`` is OpenAI's own API."""
    return urlsplit(base_url).hostname == urlsplit(OPENAI_URL).hostname


def token_field(base_url: str) -> TokenField:
    """``max_completion_tokens`` for OpenAI's own API, ``max_tokens`` for any other server."""
    return "max_completion_tokens" if is_openai(base_url) else "max_tokens"


def chat_body(
    model: str, request: LLMRequest, tokens: TokenField = BATCH_TOKEN_FIELD
) -> dict[str, Any]:
    """The request body; keys in a fixed order, optional ones only when set."""
    params = request.params
    body: dict[str, Any] = {
        "model": model,
        "messages": request.messages,
        "temperature": params.temperature,
        "top_p": params.top_p,
        tokens: params.max_tokens,
    }
    if params.stop:
        body["stop"] = list(params.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    schema = request.json_schema
    if schema is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    return body
