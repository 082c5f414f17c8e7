"""Generator SFT with a tiny random Llama built here: real plan -> notes -> LoRA -> generate."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import EngineError
from engine.finetune.generator import SftConfig, train_generator
from engine.finetune.sft_data import (
    IGNORE,
    Example,
    Pair,
    build_sequences,
    pack,
    read_pairs,
    tokenize_pair,
    transcript,
)
from engine.llm.template import TemplateBackend
from engine.llm.transformers_backend import TransformersBackend
from engine.plan import Planner, PlanRequest, sampling_params
from engine.recipes import render_messages
from engine.runner.run import RunConfig, Runner
from engine.runner.sources import job_from_spec
from engine.spec import GenerationSpec
from tests.engine_graph import open_embedded

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

pytestmark = pytest.mark.timeout(600)
REPO = Path(__file__).resolve().parents[1]
CHAT_TEMPLATE = (
    "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<s> assistant :{% endif %}"
)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Two shared cores: torch's spinning worker threads only slow a tiny model down."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def engine_files(graph: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """specs.jsonl planned from the fixture graph and notes.jsonl from the template backend."""
    out = tmp_path_factory.mktemp("sft-data")
    store = open_embedded(graph)
    try:
        planner = Planner(store, PlanRequest(recipe="medsyn", icd=("G30.9",), n=8, seed=3))
    finally:
        store.close()
    specs = list(planner.iter_specs())
    (out / "specs.jsonl").write_text("".join(s.model_dump_json() + "\n" for s in specs))

    async def go() -> None:
        runner = Runner(
            TemplateBackend(),
            out / "notes.jsonl",
            params=sampling_params(planner.recipe.generation),
            config=RunConfig(progress=False),
        )
        jobs = [job_from_spec(s) for s in specs]
        assert (await runner.run(jobs, total=len(jobs))).ok == len(specs)

    asyncio.run(go())
    return out


def kgsynth(graph: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``kgsynth ARGS`` in a subprocess on the fixture graph (one torch thread)."""
    env = {**os.environ, "HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "--uri", f"embedded:{graph}", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def word_tokenizer(words: list[str], chat_template: bool) -> object:
    """A whitespace WordLevel tokenizer over ``words`` (ids by hand: specials first)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<s>", "</s>", "<unk>", *words])}
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
    return tok


def build_model(path: Path, texts: list[str]) -> Path:
    """A 2-layer random Llama and a byte-level BPE tokenizer trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(texts, trainer)
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
        max_position_embeddings=2048,
        initializer_range=0.3,  # logits wide enough for the frozen head to express a fit
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def base_model(engine_files: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = read_pairs(engine_files / "notes.jsonl", engine_files / "specs.jsonl")
    texts = [p.note for p in data.pairs] + [m["content"] for p in data.pairs for m in p.messages]
    return build_model(tmp_path_factory.mktemp("tiny-llama") / "base", texts)


def small_config(base: Path, **extra: object) -> SftConfig:
    settings: dict[str, object] = {
        "base_model": base,
        "max_length": 1024,
        "learning_rate": 3e-2,
        "batch_size": 2,
        "micro_batch_size": 1,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "max_steps": 10,
        "device": "cpu",
    }
    return SftConfig.model_validate(settings | extra)


def test_pairs_join_notes_and_specs_by_record_id(engine_files: Path) -> None:
    notes, specs = engine_files / "notes.jsonl", engine_files / "specs.jsonl"
    data = read_pairs(notes, specs)
    records = [json.loads(line) for line in notes.read_text().splitlines()]
    assert len(data.pairs) == len(records) == 8 and data.not_ok == 0
    by_id = {r["record_id"]: r for r in records}
    for pair in data.pairs:
        record = by_id[pair.record_id]
        assert pair.note == record["text"]
        expected = render_messages(GenerationSpec.model_validate(record["spec"]))
        assert pair.messages == [dict(m) for m in expected]
    # the notes' own specs give the same pairs; the fingerprint digests the files' bytes
    assert read_pairs(notes).pairs == data.pairs
    files = data.fingerprint()["files"]
    assert files[str(notes)] == hashlib.sha256(notes.read_bytes()).hexdigest()
    assert files[str(specs)] == hashlib.sha256(specs.read_bytes()).hexdigest()


def test_openai_batch_lines_give_the_same_prompts(engine_files: Path, tmp_path: Path) -> None:
    data = read_pairs(engine_files / "notes.jsonl", engine_files / "specs.jsonl")
    batch = tmp_path / "batch.jsonl"
    batch.write_text(
        "".join(
            json.dumps({"custom_id": p.record_id, "body": {"model": "m", "messages": p.messages}})
            + "\n"
            for p in reversed(data.pairs)
        )
    )
    assert read_pairs(engine_files / "notes.jsonl", batch).pairs == data.pairs


def test_bad_input_names_file_line_and_field(engine_files: Path, tmp_path: Path) -> None:
    lines = (engine_files / "notes.jsonl").read_text().splitlines(keepends=True)
    bad = tmp_path / "notes.jsonl"
    bad.write_text(lines[0] + '{"record_id": "x", "status": "ok"}\n')
    with pytest.raises(EngineError, match=r"notes.jsonl, line 2: not a kgsynth note record \("):
        read_pairs(bad)
    bad.write_text(lines[0] + "{oops\n" + lines[1])
    with pytest.raises(EngineError, match=r"notes.jsonl, line 2: not valid JSON"):
        read_pairs(bad)
    bad.write_text("".join(lines[:3]) + lines[3][:40])  # a cut-off last line is dropped
    assert len(read_pairs(bad).pairs) == 3
    specs = tmp_path / "specs.jsonl"
    specs.write_text((engine_files / "specs.jsonl").read_text().splitlines(keepends=True)[0])
    first = json.loads(lines[0])["record_id"]
    second = json.loads(lines[1])["record_id"]
    with pytest.raises(EngineError, match=rf"line 2: record_id {second} has no spec in"):
        read_pairs(engine_files / "notes.jsonl", specs)
    assert first != second
    specs.write_text('{"custom_id": "a", "body": {"messages": [{"role": "user"}]}}\n')
    with pytest.raises(EngineError, match=r"specs.jsonl, line 1: field body.messages"):
        read_pairs(engine_files / "notes.jsonl", specs)


def test_labels_are_masked_on_prompt_tokens_by_hand() -> None:
    words = ["user:", "assistant:", "user", "assistant", ":", "cough", "fever", "memory", "loss"]
    v = {w: i + 4 for i, w in enumerate(words)}  # after <pad> <s> </s> <unk>
    pair = Pair("r0", [{"role": "user", "content": "cough fever"}], "memory loss")
    # no chat template: "user: cough fever\n\nassistant:" then " memory loss" and EOS (id 2)
    plain = tokenize_pair(word_tokenizer(words, chat_template=False), pair, 64)
    assert plain == Example(
        [v["user:"], v["cough"], v["fever"], v["assistant:"], v["memory"], v["loss"], 2],
        [IGNORE] * 4 + [v["memory"], v["loss"], 2],
    )
    # chat template: "<s> user : cough fever </s> <s> assistant :" + " memory loss </s> "
    chat = tokenize_pair(word_tokenizer(words, chat_template=True), pair, 64)
    prompt = [1, v["user"], v[":"], v["cough"], v["fever"], 2, 1, v["assistant"], v[":"]]
    assert chat == Example(
        [*prompt, v["memory"], v["loss"], 2], [IGNORE] * 9 + [v["memory"], v["loss"], 2]
    )
    # too long: the note is cut at the end; no room for a note token at all: skipped
    assert tokenize_pair(word_tokenizer(words, chat_template=True), pair, 10) == Example(
        [*prompt, v["memory"]], [IGNORE] * 9 + [v["memory"]], truncated=True
    )
    assert tokenize_pair(word_tokenizer(words, chat_template=True), pair, 9) is None


def test_sft_prompts_are_what_the_backend_sends(base_model: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    messages = [{"role": "system", "content": "a b"}, {"role": "user", "content": "c"}]
    backend = TransformersBackend(str(base_model), device="cpu")
    tok = AutoTokenizer.from_pretrained(base_model)
    ex = tokenize_pair(tok, Pair("r", messages, "note"), 512)
    assert ex is not None
    n_prompt = ex.labels.count(IGNORE)
    assert (
        ex.input_ids[:n_prompt]
        == tok(backend.prompt(messages), add_special_tokens=False)["input_ids"]
    )
    tok.chat_template = None
    backend.tokenizer.chat_template = None
    assert transcript(messages) == backend.prompt(messages)
    asyncio.run(backend.aclose())


def test_packing_counts_by_hand() -> None:
    # best fit decreasing into 8 tokens: 5 -> A (3 left), 4 -> B (4), 3 -> A (0), 3 -> B (1),
    # 2 -> C (6), 2 -> C (4), 1 -> B (0): three sequences (and ceil(20 / 8) = 3 is the least)
    lengths = [5, 4, 3, 3, 2, 2, 1]
    assert pack(lengths, 8) == [[0, 2], [1, 3, 6], [4, 5]]
    examples = [Example(list(range(10, 10 + n)), [IGNORE] + [7] * (n - 1)) for n in lengths]
    seqs = build_sequences(examples, 8, packing=True)
    assert [s.examples for s in seqs] == [2, 3, 2]
    assert seqs[1].position_ids == [0, 1, 2, 3, 0, 1, 2, 0]
    assert seqs[1].input_ids == [10, 11, 12, 13, 10, 11, 12, 10]
    assert seqs[1].labels == [IGNORE, 7, 7, 7, IGNORE, 7, 7, IGNORE]
    assert len(build_sequences(examples, 8, packing=False)) == 7
    with pytest.raises(ValueError, match="longer than max_length"):
        pack([9], 8)


def test_packed_rows_attend_within_their_example_only(base_model: Path) -> None:
    """A packed row (positions restarting, no mask) gives each example its own logits."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_model).eval()
    a, b = [5, 9, 14, 3, 7], [8, 4, 11]
    with torch.no_grad():
        packed = model(
            input_ids=torch.tensor([a + b]),
            position_ids=torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2]]),
            use_cache=False,
        ).logits[0]
        alone_a = model(input_ids=torch.tensor([a]), use_cache=False).logits[0]
        alone_b = model(input_ids=torch.tensor([b]), use_cache=False).logits[0]
        naive = model(input_ids=torch.tensor([a + b]), use_cache=False).logits[0]
    assert torch.allclose(packed[:5], alone_a, atol=1e-5)
    assert torch.allclose(packed[5:], alone_b, atol=1e-5)
    assert not torch.allclose(naive[5:], alone_b, atol=1e-3)  # plain concatenation leaks


def test_first_step_loss_is_the_note_token_mean_however_batched(
    engine_files: Path, base_model: Path, tmp_path: Path
) -> None:
    """LoRA starts as the identity (B = 0), so step 1's loss is the base model's mean
    cross-entropy over every note token, computed here example by example, unpacked."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = read_pairs(engine_files / "notes.jsonl")
    tok = AutoTokenizer.from_pretrained(base_model)
    model = AutoModelForCausalLM.from_pretrained(base_model).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for pair in data.pairs:
            ex = tokenize_pair(tok, pair, 1024)
            assert ex is not None
            logits = model(input_ids=torch.tensor([ex.input_ids])).logits[0, :-1]
            target = torch.tensor(ex.labels[1:])
            keep = target != IGNORE
            ce = torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum")
            total, count = total + float(ce), count + int(keep.sum())
    expected = total / count
    for i, micro in enumerate((1, 4)):
        config = small_config(base_model, batch_size=8, micro_batch_size=micro, max_steps=1)
        metrics = train_generator(config, data, tmp_path / f"run{i}")
        assert metrics.loss_tokens == count and metrics.sequences < 8
        assert metrics.initial_loss == pytest.approx(expected, rel=1e-4)


def test_lora_sft_lowers_the_loss_and_saves_everything(
    engine_files: Path, base_model: Path, tmp_path: Path
) -> None:
    data = read_pairs(engine_files / "notes.jsonl", engine_files / "specs.jsonl")
    out = tmp_path / "sft"
    metrics = train_generator(small_config(base_model), data, out, merge=True)
    losses = [s.loss for s in metrics.log]
    assert len(losses) == 10 and metrics.final_loss < 0.8 * metrics.initial_loss, losses
    assert metrics.examples == 8 and metrics.sequences < 8  # several notes per sequence
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json"):
        assert (out / name).is_file(), name
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(base_model.resolve())
    saved = json.loads((out / "sft_config.json").read_text())
    assert saved["data"] == data.fingerprint() and saved["config"]["learning_rate"] == 3e-2
    assert json.loads((out / "metrics.json").read_text())["log"][-1]["loss"] == losses[-1]
    assert not list(tmp_path.glob(".sft.tmp-*"))

    # the adapter in the backend and the merged model give the same next-token logits
    from transformers import AutoModelForCausalLM

    backend = TransformersBackend(str(out), device="cpu")
    merged = AutoModelForCausalLM.from_pretrained(out / "merged").eval()
    base = AutoModelForCausalLM.from_pretrained(base_model).eval()
    ids = torch.tensor([[5, 9, 14, 3, 7]])
    with torch.no_grad():
        got = backend.lm(input_ids=ids).logits
        assert torch.allclose(got, merged(input_ids=ids).logits, atol=1e-4)
        assert not torch.allclose(got, base(input_ids=ids).logits, atol=1e-3)
    assert backend.describe()["adapter_base"] == str(base_model.resolve())
    asyncio.run(backend.aclose())

    with pytest.raises(EngineError, match="is not empty; `finetune generator` will not"):
        train_generator(small_config(base_model), data, out)


def test_adapter_generates_what_it_learned_through_kgsynth_generate(
    engine_files: Path, base_model: Path, graph: Path, tmp_path: Path
) -> None:
    """Engine notes rewritten to one short note: the adapter learns it, `generate` writes it."""
    target = "no acute distress ."
    notes = tmp_path / "notes.jsonl"
    lines = (engine_files / "notes.jsonl").read_text().splitlines()
    notes.write_text("".join(json.dumps(json.loads(x) | {"text": target}) + "\n" for x in lines))
    adapter = tmp_path / "adapter"
    specs = str(engine_files / "specs.jsonl")
    args = ["--specs", specs, "--model", str(base_model), "-o", str(adapter), "--device", "cpu"]
    args += ["--learning-rate", "3e-2", "--batch-size", "2", "--micro-batch-size", "1"]
    args += ["--max-length", "1024", "--max-steps", "15", "--lora-r", "8", "--lora-alpha", "16"]
    done = kgsynth(
        graph, tmp_path, "finetune", "generator", str(notes), *args, "--lora-dropout", "0"
    )
    assert done.returncode == 0, done.stderr
    assert "trained 15 steps on 8 notes" in done.stderr
    out = tmp_path / "generated.jsonl"
    args = ["--specs", specs, "--backend", "transformers", "--model", str(adapter)]
    args += ["--device", "cpu", "--temperature", "0", "--max-tokens", "12", "--gate", "none"]
    done = kgsynth(graph, tmp_path, "generate", *args, "--no-progress", "-o", str(out))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 8
    for r in records:
        assert r["status"] == "ok" and r["backend"] == "transformers", r
        assert r["text"].strip() == target and r["finish_reason"] == "stop"
    manifest = json.loads(out.with_name("generated.manifest.json").read_text())
    assert manifest["backend"]["adapter_base"] == str(base_model.resolve())


def test_finetune_generator_input_errors_are_one_line(
    engine_files: Path, base_model: Path, graph: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "notes.jsonl"
    bad.write_text('{"record_id": "x", "status": "ok"}\n')
    args = ["--model", str(base_model), "-o", str(tmp_path / "out")]
    done = kgsynth(graph, tmp_path, "finetune", "generator", str(bad), *args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{bad}, line 1: not a kgsynth note record (" in done.stderr
    notes = str(engine_files / "notes.jsonl")
    done = kgsynth(graph, tmp_path, "finetune", "generator", notes, *args, "--learning-rate", "0")
    assert done.returncode == 2 and "--learning-rate: Input should be greater than 0" in done.stderr
    done = kgsynth(
        graph, tmp_path, "finetune", "generator", notes, "--model", str(tmp_path), "-o", "o"
    )
    assert done.returncode == 2 and "cannot load a causal LM from" in done.stderr
    assert not (tmp_path / "out").exists()


def test_adapter_with_a_missing_base_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "/nowhere/base"})
    )
    with pytest.raises(EngineError, match="field base_model_name_or_path: /nowhere/base is not"):
        TransformersBackend(str(tmp_path), device="cpu")
