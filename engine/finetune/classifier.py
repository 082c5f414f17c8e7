"""Text classifier: ``AutoModelForSequenceClassification`` + LoRA (or full fine-tuning).

Binary and multi-class; class-weighted cross-entropy; early stopping on validation macro-F1
(the best epoch's weights are kept); bf16 autocast on a GPU, fp32 on CPU; every random
choice from ``seed``. Batches are length-grouped (texts of similar length padded together)
to spend less on padding. Backbones load from local paths only (``HF_HUB_OFFLINE=1``).

A saved classifier directory holds ``classifier.json`` (backbone path, label map, settings,
the training data's fingerprints, training history), ``tokenizer/`` and either ``adapter/``
(LoRA: the adapter and the classification head) or ``model/`` (full fine-tuning).
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from engine.errors import EngineError
from engine.finetune.data import Example, Splits, label_names
from engine.finetune.metrics import classification

CLASSIFIER_FILE = "classifier.json"
ADAPTER_DIR = "adapter"
MODEL_DIR = "model"
TOKENIZER_DIR = "tokenizer"
CLASSIFIER_VERSION = 1

#: the classification head's module names (BERT-likes, decoder-only models)
HEADS = ("classifier", "score")

#: backbones smaller than this are kept in memory between classifiers of one process
CACHE_PARAMETERS = 500_000_000

#: ``on_step(done, total)`` after every optimiser step
StepCallback = Callable[[int, int], None]


class ClassifierConfig(BaseModel):
    """How to train; everything that decides the weights (device excepted)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None  # local backbone directory; None: the packaged all-MiniLM-L6-v2
    method: Literal["lora", "full"] = "lora"
    lora_r: int = Field(default=8, ge=1)
    lora_alpha: int = Field(default=16, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | None = None  # None: peft's default for the architecture
    epochs: int = Field(default=3, ge=1)
    learning_rate: float = Field(default=2e-4, gt=0)
    batch_size: int = Field(default=32, ge=1)
    eval_batch_size: int = Field(default=64, ge=1)
    max_length: int = Field(default=128, ge=8)
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1)
    class_weights: bool = True
    patience: int = Field(default=2, ge=1)  # epochs without a better validation macro-F1
    gradient_checkpointing: bool = False
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 on a GPU, else fp32
    seed: int = 0


def default_backbone() -> Path:
    """The packaged all-MiniLM-L6-v2 (same lookup as the evaluate embedder)."""
    from engine.evaluate.embed import default_model_path

    return default_model_path()


def _seed_all(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def _device(requested: str | None) -> str:
    import torch

    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


#: backbones loaded in this process: (path, labels, bf16) -> (tokenizer, model); experiments
#: train many classifiers on one backbone and copy it instead of reading it again
_LOADED: dict[tuple[str, tuple[str, ...], bool], tuple[Any, Any]] = {}


def _fresh_backbone(path: Path, labels: Sequence[str], bf16: bool, seed: int) -> tuple[Any, Any]:
    """A copy of the backbone with a classification head initialised from ``seed``."""
    import torch

    key = (str(path), tuple(labels), bf16)
    if key in _LOADED:
        tokenizer, cached = _LOADED[key]
        model = copy.deepcopy(cached)
    else:
        _LOADED.clear()  # one backbone at a time, and only a small one (a copy is kept)
        tokenizer, model = _load_backbone(path, labels, bf16)
        if sum(p.numel() for p in model.parameters()) < CACHE_PARAMETERS:
            _LOADED[key] = (tokenizer, copy.deepcopy(model))
    _seed_all(seed)
    std = getattr(model.config, "initializer_range", 0.02)
    with torch.no_grad():
        for name, module in model.named_modules():
            head = name.split(".")[0] in HEADS
            if head and isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, std)
                if module.bias is not None:
                    module.bias.zero_()
    return tokenizer, model


def _load_backbone(path: Path, labels: Sequence[str], bf16: bool) -> tuple[Any, Any]:
    """Tokenizer and a sequence-classification model with ``len(labels)`` outputs."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()  # the "newly initialised head" report is expected
    if not path.is_dir():
        raise EngineError(f"--model {path}: not a directory holding a model (local paths only)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(path),
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
            dtype=torch.bfloat16 if bf16 else torch.float32,
            local_files_only=True,
        )
    except (OSError, ValueError) as err:
        raise EngineError(f"--model {path}: cannot load ({err})") from None
    if tokenizer.pad_token is None:  # decoder-only backbones (Llama): pad with EOS
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


@dataclass
class History:
    """Per-epoch training loss and validation figures; the epoch whose weights were kept."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    steps: int = 0
    examples_seen: int = 0
    train_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "steps": self.steps,
            "examples_seen": self.examples_seen,
            "train_seconds": round(self.train_seconds, 3),
        }


class Classifier:
    """A backbone with a classification head (LoRA-adapted or fully tuned) and its labels."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        labels: Sequence[str],
        config: ClassifierConfig,
        backbone: Path,
        device: str,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.config = config
        self.backbone = backbone
        self.device = device
        self.history = History()
        self.datasets: dict[str, Any] = {}

    @property
    def bf16(self) -> bool:
        return self.device.startswith("cuda") and self.config.precision != "fp32"

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        enc = self.tokenizer(
            list(texts), truncation=True, max_length=self.config.max_length, padding=False
        )
        return [list(ids) for ids in enc["input_ids"]]

    def _batch(self, ids: Sequence[list[int]]) -> dict[str, Any]:
        import torch

        width = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id
        right = self.tokenizer.padding_side != "left"
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):
            where = slice(0, len(row)) if right else slice(width - len(row), width)
            input_ids[i, where] = torch.tensor(row, dtype=torch.long)
            mask[i, where] = 1
        return {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}

    def _logits(self, batch: dict[str, Any]) -> Any:
        import torch

        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16):
            return self.model(**batch).logits.float()

    def predict_proba(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Class probabilities, one row per text (columns in ``labels`` order)."""
        import torch

        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        encoded = self._encode(texts)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = np.zeros((len(encoded), len(self.labels)), dtype=np.float32)
        self.model.eval()
        size = self.config.eval_batch_size
        with torch.inference_mode():
            for start in range(0, len(order), size):
                idx = order[start : start + size]
                logits = self._logits(self._batch([encoded[i] for i in idx]))
                out[idx] = torch.softmax(logits, dim=-1).cpu().numpy()
        return out

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def evaluate(self, examples: Sequence[Example]) -> dict[str, Any]:
        """``metrics.classification`` of this classifier's predictions on ``examples``."""
        predicted = self.predict([e.text for e in examples])
        return classification([e.label for e in examples], predicted, self.labels)

    def save(self, directory: Path, extra: dict[str, Any] | None = None) -> None:
        """Adapter (or model), tokenizer and ``classifier.json`` under ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # transformers' deprecation notes inside peft's save
            warnings.simplefilter("ignore", FutureWarning)
            self.model.save_pretrained(
                str(directory / (ADAPTER_DIR if self.config.method == "lora" else MODEL_DIR))
            )
        self.tokenizer.save_pretrained(str(directory / TOKENIZER_DIR))
        doc = {
            "kgsynth_classifier": CLASSIFIER_VERSION,
            "backbone": str(self.backbone),
            "labels": self.labels,
            "config": self.config.model_dump(mode="json"),
            "datasets": self.datasets,
            "history": self.history.as_dict(),
            **(extra or {}),
        }
        (directory / CLASSIFIER_FILE).write_text(
            json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )


def load_classifier(directory: Path, device: str | None = None) -> Classifier:
    """A classifier saved by ``Classifier.save``."""
    meta_path = directory / CLASSIFIER_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        config = ClassifierConfig.model_validate(meta["config"])
        labels, backbone = list(meta["labels"]), Path(meta["backbone"])
    except FileNotFoundError:
        raise EngineError(f"{directory}: not a kgsynth classifier (no {CLASSIFIER_FILE})") from None
    except (ValueError, KeyError) as err:
        raise EngineError(f"{meta_path}: not a kgsynth classifier file ({err})") from None
    dev = _device(device)
    bf16 = dev.startswith("cuda") and config.precision != "fp32"
    if config.method == "lora":
        from peft import PeftModel

        tokenizer, base = _load_backbone(backbone, labels, bf16)
        with warnings.catch_warnings():  # as in train_classifier
            warnings.simplefilter("ignore", FutureWarning)
            model = PeftModel.from_pretrained(base, str(directory / ADAPTER_DIR))
    else:
        tokenizer, model = _load_backbone(directory / MODEL_DIR, labels, bf16)
    model.to(dev)
    out = Classifier(model, tokenizer, labels, config, backbone, dev)
    out.datasets = meta.get("datasets", {})
    return out


def _class_weights(train: Sequence[Example], labels: Sequence[str]) -> list[float]:
    """``n / (k * n_c)`` for each class present in ``train`` (sklearn's "balanced"); 1 else."""
    counts = {name: 0 for name in labels}
    for e in train:
        counts[e.label] += 1
    present = [name for name in labels if counts[name]]
    return [len(train) / (len(present) * counts[name]) if counts[name] else 1.0 for name in labels]


def _length_grouped(lengths: Sequence[int], batch: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar-length rows: shuffle, sort within windows of 50 batches,
    cut into batches, shuffle the batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch] for i in range(0, len(chunk), batch)]
    rng.shuffle(batches)
    return batches


def train_classifier(
    config: ClassifierConfig,
    train: Sequence[Example],
    labels: Sequence[str],
    validation: Sequence[Example] | None = None,
    device: str | None = None,
    on_step: StepCallback | None = None,
) -> Classifier:
    """Fine-tune a backbone on ``train``; early stopping on ``validation`` when given."""
    import time

    import torch

    unknown = sorted({e.label for e in train} - set(labels))
    if unknown:
        raise EngineError(f"training labels not in the label map: {', '.join(unknown)}")
    if not train:
        raise EngineError("no training examples")
    dev = _device(device)
    bf16 = dev.startswith("cuda") and config.precision != "fp32"
    if config.precision == "bf16" and not dev.startswith("cuda"):
        raise EngineError("--precision bf16 needs a GPU; use fp32 (or auto) on CPU")
    backbone = Path(config.model) if config.model else default_backbone()
    tokenizer, model = _fresh_backbone(backbone, labels, bf16, config.seed)
    if config.method == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        lora = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.target_modules,
        )
        with warnings.catch_warnings():  # peft 0.21 reads a deprecated transformers property
            warnings.simplefilter("ignore", FutureWarning)
            model = get_peft_model(model, lora)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        if config.method == "lora":
            model.enable_input_require_grads()
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:  # fp32 master copies of what is trained, bf16 frozen weights
        p.data = p.data.float()
    model.to(dev)
    clf = Classifier(model, tokenizer, labels, config, backbone, dev)

    encoded = clf._encode([e.text for e in train])
    targets = [labels.index(e.label) for e in train]
    rng = random.Random(config.seed)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = steps_per_epoch * config.epochs
    optimiser = torch.optim.AdamW(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    warmup = int(total * config.warmup_ratio)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda s: (
            (s + 1) / (warmup + 1) if s < warmup else max(0.0, (total - s) / (total - warmup))
        ),
    )
    weights = torch.tensor(
        _class_weights(train, labels) if config.class_weights else [1.0] * len(labels),
        device=dev,
    )
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    best: tuple[float, dict[str, Any]] | None = None
    since_best, step = 0, 0
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        losses: list[float] = []
        for idx in _length_grouped([len(x) for x in encoded], config.batch_size, rng):
            batch = clf._batch([encoded[i] for i in idx])
            y = torch.tensor([targets[i] for i in idx], device=dev)
            loss = loss_fn(clf._logits(batch), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            step += 1
            clf.history.examples_seen += len(idx)
            if on_step:
                on_step(step, total)
        row = {"epoch": epoch, "train_loss": round(float(np.mean(losses)), 6)}
        if validation:
            metrics = clf.evaluate(validation)
            row["validation_macro_f1"] = metrics["macro_f1"]
            row["validation_accuracy"] = metrics["accuracy"]
            if best is None or metrics["macro_f1"] > best[0]:
                state = {
                    k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad
                }
                best, since_best, clf.history.best_epoch = (metrics["macro_f1"], state), 0, epoch
            else:
                since_best += 1
        clf.history.epochs.append(row)
        if best is not None and since_best >= config.patience and epoch < config.epochs:
            clf.history.stopped_early = True
            break
    clf.history.train_seconds = time.perf_counter() - started
    clf.history.steps = step
    if on_step:
        on_step(total, total)
    if best is not None:
        with torch.no_grad():
            params = dict(model.named_parameters())
            for name, value in best[1].items():
                params[name].copy_(value)
    else:
        clf.history.best_epoch = len(clf.history.epochs)
    model.eval()
    return clf


def check_output(output: Path, force: bool) -> None:
    """``output`` may be new, empty or an earlier classifier; anything else needs ``force``."""
    if not output.parent.is_dir():
        raise EngineError(f"-o {output}: the directory {output.parent} does not exist")
    if output.exists() and not output.is_dir():
        raise EngineError(f"-o {output} is a file; name a directory for the classifier")
    if (
        output.exists()
        and any(output.iterdir())
        and not (output / CLASSIFIER_FILE).is_file()
        and not force
    ):
        raise EngineError(
            f"-o {output} holds files that are not a kgsynth classifier; name a new directory, "
            "or pass --force to replace it"
        )


def majority(
    train: Sequence[Example], test: Sequence[Example], labels: Sequence[str]
) -> dict[str, Any]:
    """Metrics of always predicting ``train``'s most common label (ties: first in ``labels``)."""
    counts = {name: 0 for name in labels}
    for e in train:
        counts[e.label] += 1
    top = max(labels, key=lambda name: counts[name])
    return classification([e.label for e in test], [top] * len(test), labels)


@dataclass
class TrainResult:
    """What ``train_and_save`` wrote to ``metrics.json``."""

    metrics: dict[str, Any]

    def summary(self) -> str:
        parts = [f"trained on {self.metrics['rows']['train']} rows"]
        for name in ("validation", "test"):
            m = self.metrics.get(name)
            if m:
                parts.append(f"{name}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}")
        if self.metrics.get("majority_baseline"):
            parts.append(
                f"majority-class accuracy {self.metrics['majority_baseline']['accuracy']:.4f}"
            )
        return "; ".join(parts)


def train_and_save(
    config: ClassifierConfig,
    parts: Splits,
    output: Path,
    device: str | None = None,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train on ``parts.train`` (early stopping on validation), evaluate, write ``output``
    (built beside it and renamed into place): the classifier, ``metrics.json``, ``config.json``."""
    labels = label_names(parts.train, parts.validation, parts.test)
    clf = train_classifier(config, parts.train, labels, parts.validation or None, device, on_step)
    clf.datasets = parts.sources
    metrics: dict[str, Any] = {
        "labels": labels,
        "rows": {
            "train": len(parts.train),
            "validation": len(parts.validation),
            "test": len(parts.test),
        },
        "validation": clf.evaluate(parts.validation) if parts.validation else None,
        "test": clf.evaluate(parts.test) if parts.test else None,
        "majority_baseline": majority(parts.train, parts.test, labels) if parts.test else None,
        "history": clf.history.as_dict(),
        "device": clf.device,
        "precision": "bf16" if clf.bf16 else "fp32",
    }
    settings = {
        "config": config.model_dump(mode="json"),
        "backbone": str(clf.backbone),
        "datasets": parts.sources,
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        clf.save(tmp)
        _write_json(tmp / "metrics.json", metrics)
        _write_json(tmp / "config.json", settings)
        os.chmod(tmp, 0o755)
        if output.exists():
            shutil.rmtree(output)
        os.rename(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return TrainResult(metrics)


def _write_json(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
