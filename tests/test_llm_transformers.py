"""The transformers backend with a tiny random Llama built here (no downloads), real generate()."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ValidationError

from engine.errors import EngineError
from engine.llm.base import Backend, LLMRequest, LLMResponse, SamplingParams
from engine.llm.parsing import check_response
from engine.llm.transformers_backend import TransformersBackend
from engine.runner.records import GenerationJob
from engine.runner.run import RunConfig, Runner

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

VOCAB_TEXT = (
    "system user assistant : you write short clinical notes . patient reports memory loss "
    "confusion cough fever fatigue note for record number"
)
WORDS = [*VOCAB_TEXT.split(), *map(str, range(20))]
CHAT_TEMPLATE = (
    "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<s> assistant :{% endif %}"
)


def build_model(path: Path, chat_template: bool = True) -> Path:
    """A 2-layer random Llama and a WordLevel tokenizer, saved like a hub checkpoint."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(WORDS)))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("tiny-llama"))


def jobs(n: int) -> list[GenerationJob]:
    return [
        GenerationJob(
            record_id=f"t{i}",
            record_index=i,
            messages=[
                {"role": "system", "content": "you write short clinical notes ."},
                {
                    "role": "user",
                    "content": " ".join(
                        ["note for record number", str(i)] + ["cough fever"] * (i % 4)
                    ),
                },
            ],
        )
        for i in range(n)
    ]


def run(backend: Backend, out: Path, n: int) -> dict[str, dict[str, object]]:
    async def go() -> None:
        try:
            runner = Runner(
                backend,
                out,
                # a random model never says </s>: stop at its second word, not at max_tokens
                params=SamplingParams(temperature=0, max_tokens=6, stop=(" ",)),
                config=RunConfig(concurrency=8, progress=False),
            )
            summary = await runner.run(jobs(n))
            assert summary.ok == n and summary.failed == 0
        finally:
            await backend.aclose()

    asyncio.run(go())
    return {r["record_id"]: r for r in map(json.loads, out.read_text().splitlines())}


def test_batched_generation_through_the_runner(model_dir: Path, tmp_path: Path) -> None:
    backend = TransformersBackend(str(model_dir), device="auto", batch_size=4)
    assert backend.device in ("cpu", "cuda", "mps")
    assert backend.prompt([{"role": "user", "content": "cough"}]) == (
        "<s> user : cough </s> <s> assistant :"
    )
    records = run(backend, tmp_path / "notes.jsonl", 10)
    assert max(backend._batcher.batch_sizes) > 1  # requests really were batched
    for rec in records.values():
        assert rec["status"] == "ok" and rec["backend"] == "transformers"
        usage = rec["usage"]
        assert isinstance(usage, dict) and 0 < usage["completion_tokens"] <= 6
        assert usage["prompt_tokens"] > 10
        assert rec["finish_reason"] == "stop"

    # Left padding: a prompt's greedy continuation does not depend on its batch mates.
    alone = TransformersBackend(str(model_dir), device="cpu", batch_size=1)
    single = run(alone, tmp_path / "single.jsonl", 10)
    assert {k: v["text"] for k, v in single.items()} == {k: v["text"] for k, v in records.items()}


def test_plain_transcript_without_chat_template(tmp_path: Path) -> None:
    path = build_model(tmp_path / "plain", chat_template=False)
    backend = TransformersBackend(str(path), device="cpu", batch_size=2)
    prompt = backend.prompt([{"role": "system", "content": "a"}, {"role": "user", "content": "b"}])
    assert prompt == "system: a\n\nuser: b\n\nassistant:"
    records = run(backend, tmp_path / "notes.jsonl", 3)
    assert all(r["status"] == "ok" for r in records.values())


def test_bad_model_path_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="no such directory; the transformers backend loads"):
        TransformersBackend(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineError, match="cannot load a model from"):
        TransformersBackend(str(tmp_path / "empty"))


class Triage(BaseModel):
    label: Literal["memory", "cough"]
    urgent: bool


def build_json_model(path: Path) -> Path:
    """A 2-layer random Llama with a byte-level BPE tokenizer (it can spell any JSON)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(['{"label": "memory", "urgent": true}', VOCAB_TEXT] * 5, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_structured_output_is_decoded_under_the_schema(tmp_path: Path) -> None:
    backend = TransformersBackend(str(build_json_model(tmp_path / "bpe")), device="cpu")
    assert backend.describe()["structured_output"] == "lm-format-enforcer"
    params = SamplingParams(temperature=0, max_tokens=80)

    def ask(output: type[BaseModel] | None) -> list[tuple[LLMRequest, LLMResponse]]:
        requests = [
            LLMRequest(f"r{i}", [{"role": "user", "content": "cough " * i}], params, output=output)
            for i in range(4)
        ]

        async def go() -> list[LLMResponse]:
            return await asyncio.gather(*(backend.complete(r) for r in requests))

        return list(zip(requests, asyncio.run(go()), strict=True))

    try:
        for request, response in ask(Triage):
            found = Triage.model_validate(json.loads(response.raw))  # plain json, no repair
            assert response.finish_reason == "stop"
            assert check_response(request, response) == found.model_dump()
        for _, response in ask(None):  # the same random model, unconstrained: no JSON at all
            with pytest.raises((ValueError, ValidationError)):
                Triage.model_validate(json.loads(response.raw))
    finally:
        asyncio.run(backend.aclose())
