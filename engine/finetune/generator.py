"""Generator SFT: LoRA fine-tuning of a local causal LM on the engine's (prompt, note) pairs.

MedSyn's fine-tuned LLaMA, as one function. ``train_generator`` tokenizes the pairs (loss on
note tokens only; see ``engine.finetune.sft_data``), packs them, wraps the base model with a
``peft`` LoRA adapter and trains with AdamW (linear warm-up, cosine decay, gradient clipping
at 1.0). bf16 on CUDA, fp32 elsewhere. The output directory holds the adapter (loadable by
the transformers backend: ``--model OUT``), the tokenizer, ``sft_config.json`` (settings,
library versions, dataset fingerprints), ``metrics.json`` (the loss per step) and, with
``merge``, ``merged/``: the base with the adapter folded in, for vLLM.

``batch_size`` counts sequences per optimizer step (packed sequences when packing; each
holds several notes), split into micro-batches of ``micro_batch_size``. The loss of a step is
the mean over all its note tokens, whatever the micro-batching.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from engine.errors import EngineError
from engine.finetune.sft_data import IGNORE, PairSet, Sequence, build_sequences, tokenize_pair
from engine.llm.transformers_backend import pick_device

CONFIG_FILE = "sft_config.json"
METRICS_FILE = "metrics.json"
MERGED_DIR = "merged"
#: progress callback: (step, total steps, loss of the step)
OnStep = Callable[[int, int, float], None]


class SftConfig(BaseModel):
    """Generator SFT settings (the defaults are the MedSyn / DualAlign recipe: lr 2e-5, batch
    64, 3 epochs; LoRA r 16 on every linear layer)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_model: Path
    max_length: int = Field(default=2048, ge=8)
    epochs: float = Field(default=3, gt=0)
    max_steps: int | None = Field(default=None, ge=1, description="stop early (smoke runs)")
    learning_rate: float = Field(default=2e-5, gt=0)
    batch_size: int = Field(default=64, ge=1, description="sequences per optimizer step")
    micro_batch_size: int = Field(default=4, ge=1, description="sequences per forward pass")
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: str = "all-linear"
    packing: bool = True
    gradient_checkpointing: bool = False
    seed: int = Field(default=0, ge=0)
    device: str = "auto"
    precision: Literal["auto", "bf16", "fp32"] = "auto"


class StepLog(BaseModel):
    step: int
    epoch: float
    loss: float
    lr: float
    tokens: int


class SftMetrics(BaseModel):
    """What a run measured: the loss per step and the throughput."""

    steps: int
    examples: int
    truncated: int
    skipped_too_long: int
    sequences: int
    train_tokens: int
    loss_tokens: int
    initial_loss: float
    final_loss: float
    elapsed_s: float
    tokens_per_s: float
    device: str
    dtype: str
    log: list[StepLog]


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_base(config: SftConfig, device: str) -> tuple[Any, Any, Any]:
    """Tokenizer, model and torch dtype of the local base model; one clear error otherwise."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = config.base_model.expanduser().resolve()  # the adapter records it as its base
    if not path.is_dir():
        raise EngineError(
            f"--model {config.base_model}: no such directory; generator SFT trains local models "
            "only (fetch one first, e.g. `hf download ORG/NAME --local-dir DIR`)"
        )
    precision = config.precision
    if precision == "auto":
        precision = "bf16" if device.startswith("cuda") else "fp32"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    try:
        tokenizer: Any = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    except (OSError, ValueError, AttributeError, RuntimeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise EngineError(f"cannot load a causal LM from {path}: {first}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None:
        raise EngineError(f"{path}: the tokenizer has no EOS token; a note could never end")
    return tokenizer, model.to(device), dtype


def collate(rows: list[Sequence], pad_id: int, device: str) -> dict[str, Any]:
    """Right-pad ``rows`` to the longest; padding is its own segment (positions from 0), so
    no attention mask is needed and no real token attends to it."""
    import torch

    width = max(len(r.input_ids) for r in rows)
    ids, labels, positions = [], [], []
    for r in rows:
        pad = width - len(r.input_ids)
        ids.append(r.input_ids + [pad_id] * pad)
        labels.append(r.labels + [IGNORE] * pad)
        positions.append(r.position_ids + list(range(pad)))
    return {
        "input_ids": torch.tensor(ids, device=device),
        "labels": torch.tensor(labels, device=device),
        "position_ids": torch.tensor(positions, device=device),
    }


def lora_model(model: Any, config: SftConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    targets: str | list[str] = (
        config.target_modules
        if config.target_modules == "all-linear"
        else [t.strip() for t in config.target_modules.split(",") if t.strip()]
    )
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    try:
        with warnings.catch_warnings():  # peft 0.21 reads a deprecated transformers property
            warnings.simplefilter("ignore", FutureWarning)
            return get_peft_model(model, lora)
    except ValueError as err:
        raise EngineError(f"--target-modules {config.target_modules}: {err}") from None


def fit(
    model: Any,
    sequences: list[Sequence],
    config: SftConfig,
    device: str,
    pad_id: int,
    on_step: OnStep | None = None,
) -> tuple[list[StepLog], float]:
    """Train ``model`` (its trainable parameters) on ``sequences``; the step log and seconds.

    Each epoch visits the sequences in a fresh seeded order; ``batch_size`` sequences per
    step in micro-batches; the loss of a step is the mean over all its note tokens.
    """
    import torch

    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    rows = min(config.batch_size, len(sequences))  # never one sequence twice in a step
    per_epoch = math.ceil(len(sequences) / rows)
    total = config.max_steps or max(1, math.ceil(per_epoch * config.epochs))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params,
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        fused=device.startswith("cuda"),
    )
    warmup = int(config.warmup_ratio * total)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    gen = torch.Generator().manual_seed(config.seed)
    log: list[StepLog] = []
    order: list[int] = []
    tokens = 0
    model.train()
    started = time.perf_counter()
    for step in range(total):
        if not order:  # the next epoch's shuffled sequences (its last step may be smaller)
            order = torch.randperm(len(sequences), generator=gen).tolist()
        batch = [sequences[i] for i in order[:rows]]
        del order[:rows]
        n_loss = torch.tensor(sum(sum(x != IGNORE for x in r.labels[1:]) for r in batch))
        step_loss = torch.zeros((), device=device)
        for lo in range(0, len(batch), config.micro_batch_size):
            inputs = collate(batch[lo : lo + config.micro_batch_size], pad_id, device)
            out = model(**inputs, use_cache=False, num_items_in_batch=n_loss.to(device))
            out.loss.backward()
            step_loss += out.loss.detach()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += sum(len(r.input_ids) for r in batch)
        loss = float(step_loss)
        log.append(
            StepLog(
                step=step + 1,
                epoch=round((step + 1) / per_epoch, 4),
                loss=loss,
                lr=float(scheduler.get_last_lr()[0]),
                tokens=tokens,
            )
        )
        if on_step is not None:
            on_step(step + 1, total, loss)
    return log, time.perf_counter() - started


def check_output(output: Path, force: bool) -> None:
    """``output`` must be new or an empty directory (or ``force``)."""
    if output.exists():
        if not output.is_dir():
            raise EngineError(f"{output} is a file; -o names the directory to write the adapter to")
        if any(output.iterdir()) and not force:
            raise EngineError(
                f"{output} is not empty; `finetune generator` will not overwrite it: choose "
                "another -o or pass --force"
            )


def _fresh_dir(output: Path, force: bool) -> Path:
    """A temporary directory beside ``output`` to fill, then publish."""
    check_output(output, force)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def _publish(tmp: Path, output: Path) -> None:
    if output.exists():
        shutil.rmtree(output)
    os.replace(tmp, output)


def train_generator(
    config: SftConfig,
    data: PairSet,
    output: Path,
    *,
    merge: bool = False,
    force: bool = False,
    on_step: OnStep | None = None,
) -> SftMetrics:
    """Train, then write the output directory (it appears only when everything is written)."""

    check_output(output, force)  # before the heavy work; checked again when writing
    device = pick_device(config.device)
    seed_everything(config.seed)
    tokenizer, model, dtype = load_base(config, device)
    examples, truncated, skipped = [], 0, 0
    for pair in data.pairs:
        ex = tokenize_pair(tokenizer, pair, config.max_length)
        if ex is None:
            skipped += 1
            continue
        truncated += ex.truncated
        examples.append(ex)
    if not examples:
        raise EngineError(
            f"every prompt is longer than --max-length {config.max_length} tokens; raise it"
        )
    sequences = build_sequences(examples, config.max_length, config.packing)
    tmp = _fresh_dir(output, force)
    try:
        model = lora_model(model, config)
        log, elapsed = fit(model, sequences, config, device, tokenizer.pad_token_id, on_step)
        metrics = SftMetrics(
            steps=len(log),
            examples=len(examples),
            truncated=truncated,
            skipped_too_long=skipped,
            sequences=len(sequences),
            train_tokens=log[-1].tokens,
            loss_tokens=sum(sum(x != IGNORE for x in s.labels) for s in sequences),
            initial_loss=log[0].loss,
            final_loss=log[-1].loss,
            elapsed_s=round(elapsed, 3),
            tokens_per_s=round(log[-1].tokens / elapsed, 1) if elapsed > 0 else 0.0,
            device=device,
            dtype=str(dtype).removeprefix("torch."),
            log=log,
        )
        _save(model, tokenizer, config, data, metrics, tmp, merge)
        _publish(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return metrics


def _save(
    model: Any,
    tokenizer: Any,
    config: SftConfig,
    data: PairSet,
    metrics: SftMetrics,
    out: Path,
    merge: bool,
) -> None:
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    settings = {
        "config": config.model_dump(mode="json")
        | {"base_model": str(config.base_model.expanduser().resolve())},
        "data": data.fingerprint(),
        "versions": {p: version(p) for p in ("torch", "transformers", "peft")},
        "merged": merge,
    }
    (out / CONFIG_FILE).write_bytes(orjson.dumps(settings, option=orjson.OPT_INDENT_2))
    (out / METRICS_FILE).write_bytes(
        orjson.dumps(metrics.model_dump(mode="json"), option=orjson.OPT_INDENT_2)
    )
    if merge:
        merged = model.merge_and_unload()
        merged.save_pretrained(out / MERGED_DIR)
        tokenizer.save_pretrained(out / MERGED_DIR)
