"""vLLM's offline engine (``vllm.LLM``), when the optional ``vllm`` extra is installed.

Requests are micro-batched into ``LLM.chat`` calls with one ``SamplingParams`` per request,
so every record keeps its own seed. For a shared server use ``vllm serve`` and the openai
backend instead.
"""

from __future__ import annotations

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
            self.llm = vllm.LLM(model=model, **self._engine_kwargs)
        except (OSError, ValueError, RuntimeError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise EngineError(f"vLLM cannot load {model!r}: {first}") from None
        self._batcher = MicroBatcher(self._generate_batch, batch_size)

    def _sampling(self, request: LLMRequest) -> Any:
        p = request.params
        extra = _structured(dict(request.json_schema["schema"])) if request.json_schema else {}
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

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            "batch_size": self._batcher.max_batch,
            "engine": self._engine_kwargs,
        }
