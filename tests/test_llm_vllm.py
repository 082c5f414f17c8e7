"""vLLM's offline engine on the tiny random model (runs only where ``import vllm`` works)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vllm is not installed (optional extra: Linux + NVIDIA GPU)")

import torch

from engine.llm.base import LLMRequest, LLMResponse, SamplingParams
from engine.llm.vllm_backend import VLLMBackend
from tests.test_llm_transformers import Triage, build_json_model, build_model, run

pytestmark = pytest.mark.timeout(900)


def test_offline_batched_generation_with_per_record_seeds(tmp_path: Path) -> None:
    path = build_model(tmp_path / "tiny-llama")
    backend = VLLMBackend(
        str(path),
        batch_size=4,
        engine_kwargs={
            "enforce_eager": True,
            "gpu_memory_utilization": 0.2,
            "max_model_len": 256,
            "dtype": "float32",
        },
    )
    records = run(backend, tmp_path / "notes.jsonl", 10)
    assert len(records) == 10
    for rec in records.values():
        assert rec["status"] == "ok" and rec["backend"] == "vllm"
        usage = rec["usage"]
        assert isinstance(usage, dict) and 0 < usage["completion_tokens"] <= 6


def test_close_frees_the_engine_and_its_gpu_memory(tmp_path: Path) -> None:
    """Two engines that each reserve 60% of the GPU fit one after the other only if the
    first one's memory really came back."""
    path = build_model(tmp_path / "tiny-llama")
    kwargs = {"enforce_eager": True, "gpu_memory_utilization": 0.6, "max_model_len": 256}
    free_before, _ = torch.cuda.mem_get_info()
    for _ in range(2):
        backend = VLLMBackend(str(path), batch_size=4, engine_kwargs=dict(kwargs))
        assert torch.cuda.mem_get_info()[0] < free_before * 0.5
        asyncio.run(backend.aclose())
        assert backend.llm is None
        assert torch.cuda.mem_get_info()[0] > free_before * 0.8


def test_structured_output_through_guided_decoding(tmp_path: Path) -> None:
    path = build_json_model(tmp_path / "bpe")
    kwargs = {"enforce_eager": True, "gpu_memory_utilization": 0.2, "max_model_len": 256}
    backend = VLLMBackend(str(path), batch_size=4, engine_kwargs=kwargs)
    params = SamplingParams(temperature=0, max_tokens=80)
    requests = [
        LLMRequest(f"r{i}", [{"role": "user", "content": "cough " * i}], params, output=Triage)
        for i in range(4)
    ]

    async def go() -> list[LLMResponse]:
        try:
            return await asyncio.gather(*(backend.complete(r) for r in requests))
        finally:
            await backend.aclose()

    for response in asyncio.run(go()):
        Triage.model_validate(json.loads(response.raw))  # plain json, no repair
