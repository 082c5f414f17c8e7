"""A local Hugging Face model through ``transformers``: batched ``generate()`` on one thread.

Loads local directories only (nothing is downloaded at run time); a LoRA adapter directory
(``adapter_config.json``) is merged into its local base model on load. Uses the tokenizer's
chat template when it has one, else a plain ``role: content`` transcript. Prompts are
left-padded and generated in batches of ``batch_size`` (the runner's concurrency keeps the
batcher fed). Sampling seeds apply per batch, not per record: for exactly reproducible
text use temperature 0 (greedy).

Structured output (a request with ``output``) is decoded under the model's JSON schema with
``lm-format-enforcer`` when it is installed (the ``transformers`` extra installs it): only
tokens that keep the text a valid prefix of a schema instance are allowed. Without it the
answer is free text that the runner validates and retries; ``describe()`` says which.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.llm.base import LLMRequest, LLMResponse, Messages, Usage
from engine.llm.batching import BatchedBackend, MicroBatcher


def pick_device(choice: str) -> str:
    """``auto`` -> cuda, then mps, then cpu; anything else as given."""
    import torch

    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


AllowedTokens = Callable[[int, Any], list[int]]


class JsonConstraint:
    """``prefix_allowed_tokens_fn`` for a JSON schema, through lm-format-enforcer.

    The tokenizer's vocabulary is analysed once (on first use); each batch gets a fresh
    enforcer for its schema.
    """

    def __init__(self, tokenizer: Any) -> None:
        import transformers
        import transformers.tokenization_utils as legacy

        # lm-format-enforcer 0.11.3 imports PreTrainedTokenizerBase from its pre-5.0 module
        # (fixed upstream in noamgat/lm-format-enforcer#175, not in a release yet)
        if not hasattr(legacy, "PreTrainedTokenizerBase"):
            legacy.PreTrainedTokenizerBase = transformers.PreTrainedTokenizerBase
        from lmformatenforcer import JsonSchemaParser
        from lmformatenforcer.integrations.transformers import (
            build_token_enforcer_tokenizer_data,
            build_transformers_prefix_allowed_tokens_fn,
        )

        self._parser = JsonSchemaParser
        self._build = build_transformers_prefix_allowed_tokens_fn
        self._data = build_token_enforcer_tokenizer_data(tokenizer)

    def allowed_tokens(self, schema: dict[str, Any]) -> AllowedTokens:
        fn: AllowedTokens = self._build(self._data, self._parser(schema))
        return fn


def adapter_base(path: Path) -> Path | None:
    """The local base model of a LoRA adapter directory (``adapter_config.json``), else None."""
    config = path / "adapter_config.json"
    if not config.is_file():
        return None
    try:
        base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError) as err:
        raise EngineError(f"{config}: not a readable adapter config ({_first_line(err)})") from None
    if not isinstance(base, str) or not base:
        raise EngineError(f"{config}: field base_model_name_or_path names no base model")
    found = (path / base).resolve() if not Path(base).is_absolute() else Path(base)
    if not found.is_dir():
        raise EngineError(
            f"{config}: field base_model_name_or_path: {base} is not a local directory; the "
            "transformers backend loads local models only (edit the field to the base's path)"
        )
    return found


def structured_mode() -> str:
    """How this backend honours a schema: constrained decoding, else validate-and-retry."""
    return "lm-format-enforcer" if find_spec("lmformatenforcer") else "validate-and-retry"


class TransformersBackend(BatchedBackend):
    """``model_path`` is a local directory holding a causal LM and its tokenizer, or a LoRA
    adapter (``adapter_config.json``, as ``kgsynth finetune generator`` writes) whose base
    model is a local directory: the adapter is merged into the base on load."""

    name = "transformers"

    def __init__(
        self, model_path: str, *, device: str = "auto", batch_size: int = 8, dtype: str = "auto"
    ) -> None:
        path = Path(model_path).expanduser()
        if not path.is_dir():
            raise EngineError(
                f"--model {model_path}: no such directory; the transformers backend loads local "
                "models only (fetch one first, e.g. `hf download ORG/NAME --local-dir DIR`)"
            )
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise EngineError(
                "the transformers backend needs torch and transformers: "
                "pip install 'kgsynth[transformers]'"
            ) from None
        self.model = model_path
        self.device = pick_device(device)
        self.adapter_base = adapter_base(path)
        base = self.adapter_base or path
        try:
            self.tokenizer: Any = AutoTokenizer.from_pretrained(
                path if (path / "tokenizer_config.json").is_file() else base,
                local_files_only=True,
            )
            torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
            lm: Any = AutoModelForCausalLM.from_pretrained(
                base, dtype=torch_dtype, local_files_only=True
            )
            if self.adapter_base is not None:
                from peft import PeftModel

                lm = PeftModel.from_pretrained(lm, path).merge_and_unload()
            self.lm = lm.to(self.device)
        except (OSError, ValueError, AttributeError, RuntimeError) as err:
            raise EngineError(f"cannot load a model from {path}: {_first_line(err)}") from None
        self.lm.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._torch = torch
        self._constraint: JsonConstraint | None = None
        self._batcher = MicroBatcher(self._generate_batch, batch_size)

    def constraint(self) -> JsonConstraint | None:
        """The JSON constraint (built on first structured request), None without the library."""
        if self._constraint is None and structured_mode() == "lm-format-enforcer":
            self._constraint = JsonConstraint(self.tokenizer)
        return self._constraint

    def prompt(self, messages: Messages) -> str:
        if self.tokenizer.chat_template:
            text: str = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return text
        turns = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n\n".join([*turns, "assistant:"])

    def _generate_batch(self, requests: list[LLMRequest]) -> list[LLMResponse]:
        torch, tok = self._torch, self.tokenizer
        params = requests[0].params
        encoded = tok(
            [self.prompt(r.messages) for r in requests],
            return_tensors="pt",
            padding=True,
            add_special_tokens=not tok.chat_template,
        ).to(self.device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "pad_token_id": tok.pad_token_id,
        }
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
            if requests[0].seed is not None:
                torch.manual_seed(requests[0].seed)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None)
        schema = requests[0].json_schema
        constraint = self.constraint() if schema is not None else None
        if schema is not None and constraint is not None:
            kwargs["prefix_allowed_tokens_fn"] = constraint.allowed_tokens(schema["schema"])
        with torch.inference_mode():
            output = self.lm.generate(**encoded, **kwargs)
        prompt_len = encoded["input_ids"].shape[1]
        prompt_tokens = encoded["attention_mask"].sum(dim=1).tolist()
        eos = tok.eos_token_id
        results = []
        for row, n_prompt in zip(output[:, prompt_len:].tolist(), prompt_tokens, strict=True):
            ended = eos is not None and eos in row
            n_new = row.index(eos) + 1 if ended else len(row)
            text = tok.decode(row[:n_new], skip_special_tokens=True)
            finish = "stop" if ended else "length"
            for stop in params.stop:
                if stop in text:
                    text, finish = text[: text.index(stop)], "stop"
            results.append(
                LLMResponse(
                    raw=text,
                    usage=Usage.counted(n_prompt, n_new),
                    finish_reason=finish,
                    served_model=self.model,
                )
            )
        return results

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            "device": self.device,
            "batch_size": self._batcher.max_batch,
            **({"adapter_base": str(self.adapter_base)} if self.adapter_base else {}),
            "dtype": str(self.lm.dtype),
            "structured_output": structured_mode(),
        }
