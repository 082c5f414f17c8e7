"""vLLM's offline engine on the tiny random model (runs only where ``import vllm`` works)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vllm is not installed (optional extra: Linux + NVIDIA GPU)")

from engine.llm.vllm_backend import VLLMBackend
from tests.test_llm_transformers import build_model, run

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
