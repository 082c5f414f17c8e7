"""Classifier fine-tuning throughput on CPU: the packaged all-MiniLM-L6-v2 with LoRA.

``-n`` sentences of 4-60 words (two vocabularies, two labels), one epoch, batch 32, at most
128 tokens, LoRA r=8 on query/value plus the head, the same seed, in one process:

1. ``kgsynth``'s trainer (``engine.finetune.classifier.train_classifier``): length-grouped
   batches padded to their longest row, class-weighted loss, no per-step logging.
2. The plain way beside it: ``transformers.Trainer`` with the same peft model, the same
   hyper-parameters and ``DataCollatorWithPadding`` (batches in random order, padded to
   their longest row).

Both figures are training sentences per second over the training loop only (models are
loaded before the clock starts). Run: ``python benchmarks/bench_finetune.py [-n 1024]
[--threads 2]``. Ends with ``BENCH <name> <value> <unit>`` lines.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from engine.finetune.classifier import ClassifierConfig, default_backbone, train_classifier
from engine.finetune.data import Example

LABELS = ["daily", "memory"]
WORDS = {
    "memory": "forgetful confused misplaced repeating lost names dates keys wandering",
    "daily": "walked garden breakfast sunny painted fence neighbour music bicycle",
}


def sentences(n: int, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = LABELS[i % 2]
        words = [rng.choice(WORDS[label].split()) for _ in range(rng.randint(4, 60))]
        out.append(Example(" ".join(words), label))
    return out


def ours(data: list[Example], config: ClassifierConfig) -> float:
    default_backbone()
    clf = train_classifier(config, data, LABELS, device="cpu")
    return len(data) / clf.history.train_seconds


def plain_trainer(data: list[Example], config: ClassifierConfig) -> float:
    """transformers.Trainer + peft, as its documentation sets a classifier up."""
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    path = str(default_backbone())
    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(LABELS))
    model = get_peft_model(
        model,
        LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
        ),
    )
    rows = Dataset.from_dict(
        {"text": [e.text for e in data], "label": [LABELS.index(e.label) for e in data]}
    )

    def encode(batch: dict[str, Any]) -> Any:
        return tokenizer(batch["text"], truncation=True, max_length=config.max_length)

    disable_progress_bar()
    rows = rows.map(encode, batched=True, remove_columns=["text"])
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=config.batch_size,
            num_train_epochs=config.epochs,
            learning_rate=config.learning_rate,
            warmup_steps=int(math.ceil(len(data) / config.batch_size) * config.warmup_ratio),
            seed=config.seed,
            report_to=[],
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            use_cpu=True,
            dataloader_num_workers=0,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=rows,
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    return len(data) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1024, help="training sentences")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = sentences(args.n)
    config = ClassifierConfig(
        epochs=1, batch_size=32, max_length=128, learning_rate=2e-4, class_weights=True
    )
    print(f"{args.n} sentences, 1 epoch, batch 32, max 128 tokens, {args.threads} threads")
    fast = ours(data, config)
    print(f"kgsynth train_classifier: {fast:8.1f} sentences/s")
    plain = plain_trainer(data, config)
    print(f"transformers Trainer:     {plain:8.1f} sentences/s")
    print(f"ratio: {fast / plain:.2f}x")
    for name, value, unit in (
        ("finetune_classifier_cpu", fast, "sentences/s"),
        ("finetune_classifier_cpu_trainer", plain, "sentences/s"),
        ("finetune_classifier_cpu_speedup", fast / plain, "x"),
    ):
        print(f"BENCH {name} {value:.2f} {unit}")


if __name__ == "__main__":
    main()
