"""vLLM's offline engine (``vllm.LLM``), when the optional ``vllm`` extra is installed.

Requests are micro-batched into ``LLM.chat`` calls with one ``SamplingParams`` per request,
so every record keeps its own seed; structured output uses vLLM's guided decoding on the
request's JSON schema. ``aclose`` unloads the engine and frees its GPU memory, as
distilabel's vLLM adapter does. For a shared server use ``vllm serve`` and the openai
backend instead. Not run in this project's CI (no GPU there).
"""

from __future__ import annotations

import contextlib
import gc
from typing import Any

from engine.errors import EngineError
from engine.llm.base import LLMRequest, LLMResponse, Usage
from engine.llm.batching import BatchedBackend, MicroBatcher


def _structured(schema: dict[str, Any]) -> dict[str, Any]:
    """Sampling kwargs for JSON-schema output across vLLM versions."""
    try:
        from vllm.sampling_params import StructuredOutputsParams

        return {"structured_outputs": StructuredOutputsParams(json=schema)}
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(json=schema)}


class VLLMBackend(BatchedBackend):
    """``model`` is a Hugging Face id or local path that vLLM can load."""

    name = "vllm"

    def __init__(
        self, model: str, *, batch_size: int = 256, engine_kwargs: dict[str, Any] | None = None
    ) -> None:
        try:
            import vllm
        except ImportError:
            raise EngineError(
                "the vllm backend needs vLLM (Linux + NVIDIA GPU): pip install 'kgsynth[vllm]'; "
                "or run `vllm serve MODEL` and use --backend openai --base-url http://HOST:8000/v1"
            ) from None
        self._vllm = vllm
        self.model = model
        self._engine_kwargs = dict(engine_kwargs or {})
        try:
            self.llm: Any = vllm.LLM(model=model, **self._engine_kwargs)
        except (OSError, ValueError, RuntimeError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise EngineError(f"vLLM cannot load {model!r}: {first}") from None
        self._batcher = MicroBatcher(self._generate_batch, batch_size)

    def _sampling(self, request: LLMRequest) -> Any:
        p = request.params
        schema = request.json_schema
        extra = _structured(schema["schema"]) if schema is not None else {}
        return self._vllm.SamplingParams(
            temperature=p.temperature,
            top_p=p.top_p,
            max_tokens=p.max_tokens,
            stop=list(p.stop) or None,
            seed=request.seed,
            **extra,
        )

    def _generate_batch(self, requests: list[LLMRequest]) -> list[LLMResponse]:
        outputs = self.llm.chat(
            [r.messages for r in requests],
            sampling_params=[self._sampling(r) for r in requests],
            use_tqdm=False,
        )
        results = []
        for out in outputs:
            completion = out.outputs[0]
            n_prompt = len(out.prompt_token_ids or [])
            n_new = len(completion.token_ids)
            results.append(
                LLMResponse(
                    raw=completion.text,
                    usage=Usage.counted(n_prompt, n_new),
                    finish_reason=completion.finish_reason,
                    served_model=self.model,
                )
            )
        return results

    async def aclose(self) -> None:
        """Stop the batcher, then shut the engine down and give its GPU memory back."""
        await super().aclose()
        llm, self.llm = self.llm, None
        if llm is None:
            return
        engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        shutdown = getattr(llm, "shutdown", None) or getattr(engine_core, "shutdown", None)
        if callable(shutdown):  # V1 engines run the model in their own process
            shutdown()
        del llm, engine_core, shutdown
        _free_gpu()

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            "batch_size": self._batcher.max_batch,
            "engine": self._engine_kwargs,
        }


def _free_gpu() -> None:
    """Tear down vLLM's distributed state and empty torch's CUDA cache."""
    import torch

    try:
        from vllm.distributed import cleanup_dist_env_and_memory
    except ImportError:  # older vLLM: the same steps by hand
        from vllm.distributed.parallel_state import (
            destroy_distributed_environment,
            destroy_model_parallel,
        )

        destroy_model_parallel()
        destroy_distributed_environment()
        with contextlib.suppress(AssertionError, RuntimeError, ValueError):
            torch.distributed.destroy_process_group()  # absent for a single GPU
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    else:
        cleanup_dist_env_and_memory()
