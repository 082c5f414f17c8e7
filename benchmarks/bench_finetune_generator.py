"""Generator SFT throughput: kgsynth's LoRA loop against plain transformers + peft, same run.

A Llama-shaped model with random weights (no download) is LoRA-trained on synthetic
(prompt, note) examples of varied length, loss on the note only, two ways:

1. kgsynth (``engine.finetune.generator.fit``): best-fit packing into ``--max-length``
   sequences (position ids restart per example, no padding, no attention mask), fused AdamW
   on CUDA, one host sync per step;
2. plain: the usual transformers + peft loop, one example per row, micro-batches padded to
   their longest row with an attention mask, ``model(..., labels=...)``, torch AdamW.

Both use the same LoRA settings (r 16, all linear layers), dtype (bf16 on CUDA, fp32 on CPU)
and data. Throughput counts real tokens (prompt + note, no padding) per second, after
``--warmup`` steps. MFU = (6 N + 6 L d c) tokens/s / peak bf16 FLOP/s, N the parameters
outside the input embedding, L layers, d hidden size, c the mean example length (causal,
block-diagonal attention); peaks: H100/H200 989, A100 312, L40S 362 TFLOP/s.

On a GPU: the 1B and 8B (Llama-3.1-8B) shapes. Without one it says so and measures a small
CPU shape. Run: ``python benchmarks/bench_finetune_generator.py [--shapes 1b,8b]``. Ends
with ``BENCH <name> <value> <unit>`` lines.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.finetune.generator import SftConfig, fit, lora_model
from engine.finetune.sft_data import IGNORE, Example, build_sequences

SHAPES: dict[str, dict[str, Any]] = {
    "8b": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
    },
    "1b": {
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
    },
    "cpu": {
        "hidden_size": 128,
        "intermediate_size": 344,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 4096,
    },
}
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}


def examples(n: int, prompt: tuple[int, int], note: tuple[int, int], vocab: int) -> list[Example]:
    rng = random.Random(0)
    out = []
    for _ in range(n):
        p, t = rng.randint(*prompt), rng.randint(*note)
        ids = [rng.randrange(3, vocab) for _ in range(p + t)]
        out.append(Example(ids, [IGNORE] * p + ids[p:]))
    return out


def build(shape: str, device: str, dtype: torch.dtype) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**SHAPES[shape], max_position_embeddings=8192, pad_token_id=0)
    torch.manual_seed(0)
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(before)
    return model


def flops_per_token(model: Any, mean_len: float) -> float:
    cfg = model.config
    n = sum(p.numel() for p in model.parameters()) - cfg.vocab_size * cfg.hidden_size
    return 6 * n + 6 * cfg.num_hidden_layers * cfg.hidden_size * mean_len


def plain(model: Any, data: list[Example], cfg: SftConfig, steps: int, device: str) -> float:
    """The usual loop: padded rows + attention mask; tokens/s of real tokens over ``steps``."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate)
    rows_per_step = cfg.batch_size
    order = list(range(len(data)))
    random.Random(1).shuffle(order)
    model.train()
    tokens, started = 0, 0.0
    for step in range(steps + 1):
        if step == 1:  # the first step warms up kernels and the allocator
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            tokens, started = 0, time.perf_counter()
        batch = [data[order[(step * rows_per_step + i) % len(data)]] for i in range(rows_per_step)]
        n_loss = sum(sum(x != IGNORE for x in e.labels[1:]) for e in batch)
        for lo in range(0, len(batch), cfg.micro_batch_size):
            rows = batch[lo : lo + cfg.micro_batch_size]
            width = max(len(e.input_ids) for e in rows)
            ids = torch.tensor(
                [e.input_ids + [0] * (width - len(e.input_ids)) for e in rows], device=device
            )
            labels = torch.tensor(
                [e.labels + [IGNORE] * (width - len(e.labels)) for e in rows], device=device
            )
            mask = torch.tensor(
                [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in rows],
                device=device,
            )
            out = model(input_ids=ids, attention_mask=mask, labels=labels)
            share = sum(sum(x != IGNORE for x in e.labels[1:]) for e in rows) / n_loss
            (out.loss * share).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(out.loss.detach())  # the host waits for the step, as a logging loop would
        tokens += sum(len(e.input_ids) for e in batch)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return tokens / (time.perf_counter() - started)


def run_shape(shape: str, device: str, args: argparse.Namespace) -> dict[str, float]:
    from peft import LoraConfig, get_peft_model

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    gpu = device == "cuda"
    max_length = args.max_length or (2048 if gpu else 512)
    data = examples(
        args.examples or (256 if gpu else 64),
        (200, 600) if gpu else (20, 60),
        (100, 700) if gpu else (20, 120),
        SHAPES[shape]["vocab_size"],
    )
    mean_len = sum(len(e.input_ids) for e in data) / len(data)
    rows = args.batch or (16 if gpu else 4)
    cfg = SftConfig(
        base_model=Path("."),
        max_length=max_length,
        learning_rate=1e-4,
        batch_size=rows,
        micro_batch_size=args.micro or (2 if gpu else 4),
        max_steps=1,
        gradient_checkpointing=args.gradient_checkpointing,
        device=device,
    )
    base = build(shape, device, dtype)
    fpt = flops_per_token(base, mean_len)
    # plain transformers + peft: one example per row (batch = the same token budget per step)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(base, lora)
    if cfg.gradient_checkpointing:
        peft_model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
        peft_model.enable_input_require_grads()
    per_row = max(1, round(max_length / mean_len))
    plain_cfg = cfg.model_copy(
        update={"batch_size": rows * per_row, "micro_batch_size": cfg.micro_batch_size * per_row}
    )
    steps = args.steps or (4 if gpu else 3)
    plain_rate = plain(peft_model, data, plain_cfg, steps, device)
    base = peft_model.unload()
    del peft_model
    # kgsynth: packed sequences through the engine's own loop
    sequences = build_sequences(data, max_length, packing=True)
    model = lora_model(base, cfg)
    fit(model, sequences, cfg, device, 0)  # warm-up step
    if gpu:
        torch.cuda.synchronize()
    log, elapsed = fit(
        model, sequences, cfg.model_copy(update={"max_steps": args.steps}), device, 0
    )
    ours = log[-1].tokens / elapsed
    fill = sum(len(s.input_ids) for s in sequences) / (len(sequences) * max_length)
    result = {"ours": ours, "plain": plain_rate, "fill": fill, "fpt": fpt}
    del model, base
    if gpu:
        torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", help="comma-separated: 8b, 1b, cpu (default: by device)")
    parser.add_argument("--steps", type=int, default=None, help="measured steps (4, CPU 3)")
    parser.add_argument("--examples", type=int, default=None, help="default 256, CPU 64")
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None, help="packed sequences per step")
    parser.add_argument("--micro", type=int, default=None, help="rows per forward pass")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    if gpu:
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
        print(f"GPU: {name} (peak bf16 {peak or 'unknown'} TFLOP/s)")
    else:
        name, peak = "cpu", None
        print(
            f"no GPU available: measuring the small CPU shape ({torch.get_num_threads()} threads)"
        )
    shapes = (args.shapes or ("1b,8b" if gpu else "cpu")).split(",")
    bench: list[tuple[str, float, str]] = []
    head = ("shape", "kgsynth tok/s", "plain tok/s", "ratio", "fill", "MFU")
    print("{:<6} {:>14} {:>12} {:>6} {:>6} {:>6}".format(*head))
    for shape in shapes:
        r = run_shape(shape, device, args)
        mfu = r["ours"] * r["fpt"] / (peak * 1e12) if peak else None
        plain_mfu = r["plain"] * r["fpt"] / (peak * 1e12) if peak else None
        print(
            f"{shape:<6} {r['ours']:>14.0f} {r['plain']:>12.0f} {r['ours'] / r['plain']:>5.2f}x "
            f"{r['fill']:>6.3f} {f'{mfu:.3f}' if mfu is not None else 'n/a':>6}"
        )
        bench += [
            (f"sft_lora_{shape}_tokens_per_s", r["ours"], "tokens/s"),
            (f"sft_lora_{shape}_plain_tokens_per_s", r["plain"], "tokens/s"),
            (f"sft_lora_{shape}_speedup_vs_plain", r["ours"] / r["plain"], "x"),
            (f"sft_lora_{shape}_packing_fill", r["fill"], "fraction"),
        ]
        if mfu is not None and plain_mfu is not None:
            bench += [
                (f"sft_lora_{shape}_mfu", mfu, "fraction"),
                (f"sft_lora_{shape}_plain_mfu", plain_mfu, "fraction"),
            ]
    for label, value, unit in bench:
        print(f"BENCH {label} {value:.3f} {unit}")


if __name__ == "__main__":
    main()
