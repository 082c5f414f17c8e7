"""MedSyn's ICD prediction: a note -> ICD-10 code classifier, and what synthetic notes add.

Arms (each trained once per seed, evaluated on the real test split with hit@1/3/5):

- ``real``: the real training split;
- ``real+synthetic``: the real training split with rare codes upsampled by synthetic notes:
  a code with fewer than ``target`` real training notes gets synthetic notes of that code
  (drawn by the run's seed) until it has ``target`` or the synthetic notes run out;
- ``synthetic``: every synthetic note only.

``target`` defaults to the median number of real training notes per code (rounded up);
"rare" codes are the real codes below it (a code only in the real test split counts), and
the rare codes' hit@k is reported beside the overall figures (MedSyn's gain is on rare
codes). Codes are compared at the 3-character category
(``G30.9`` -> ``G30``) or as full codes (``--level``). Real notes are split by their own
``split`` field, else by a code-stratified hash; the real validation split drives early
stopping in every arm.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import EngineError
from engine.experiment.common import (
    Steps,
    finished,
    prepare,
    run_path,
    summarise,
    write_json,
    write_plot,
    write_table,
)
from engine.finetune.classifier import ClassifierConfig, train_classifier
from engine.finetune.data import Example, Fields, LabelledSet, label_names, read_labelled, split
from engine.finetune.metrics import classification, hits_at_k
from engine.provenance import sha256_hex

ARMS = ("real", "real+synthetic", "synthetic")
KS = (1, 3, 5)


class Level(StrEnum):
    category = "category"
    full = "full"


def code_at(code: str, level: Level) -> str:
    """``G30.9`` -> ``G30.9`` (full) or ``G30`` (category: the first 3 characters)."""
    clean = code.strip().upper()
    return clean.replace(".", "")[:3] if level is Level.category else clean


class IcdSettings(BaseModel):
    """Everything that decides the results (the classifier's seed is set per run)."""

    model_config = ConfigDict(extra="forbid")

    classifier: ClassifierConfig
    seeds: list[int]
    arms: list[str]
    level: Level = Level.category
    target: int | None = Field(default=None, ge=1)
    real_fields: Fields = Fields(label="icd_code")
    synthetic_fields: Fields = Fields(label="icd_code")
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 0


def keys() -> list[str]:
    """The table's metrics."""
    return [
        *(f"hit@{k}" for k in KS),
        "macro_f1",
        *(f"rare_hit@{k}" for k in KS),
    ]


def _at_level(data: LabelledSet, level: Level) -> LabelledSet:
    rows = tuple(Example(e.text, code_at(e.label, level), e.split, e.group) for e in data.examples)
    return LabelledSet(data.path, rows, data.file_sha256)


def upsample(
    real: list[Example], synthetic: list[Example], rare: set[str], target: int, seed: int
) -> list[Example]:
    """``real`` plus, for each ``rare`` code, synthetic rows of that code drawn without
    replacement by ``seed`` until the code has ``target`` rows (or the synthetic rows run
    out)."""
    counts = Counter(e.label for e in real)
    by_code: dict[str, list[Example]] = {}
    for e in synthetic:
        by_code.setdefault(e.label, []).append(e)
    rng = random.Random(seed)
    added: list[Example] = []
    for code in sorted(by_code):
        need = target - counts[code]
        if code in rare and need > 0:
            pool = list(by_code[code])
            rng.shuffle(pool)
            added += pool[:need]
    return real + added


def run_icd(
    real: Path,
    synthetic: Path | None,
    output: Path,
    settings: IcdSettings,
    force: bool = False,
    on_step: Callable[[int, int], None] | None = None,
    device: str | None = None,
) -> list[dict[str, Any]]:
    """Train and evaluate every arm for every seed; write the results directory; the table."""
    for arm in settings.arms:
        if arm not in ARMS:
            raise EngineError(f"--arms {arm}: unknown; choose from {', '.join(ARMS)}")
        if "synthetic" in arm and synthetic is None:
            raise EngineError(f"--arms {arm}: needs --synthetic")
    real_set = _at_level(read_labelled(real, settings.real_fields, "real-"), settings.level)
    syn_set = (
        _at_level(read_labelled(synthetic, settings.synthetic_fields, "synthetic-"), settings.level)
        if synthetic is not None
        else None
    )
    parts = split(real_set, settings.ratios, settings.split_seed)
    if not parts["test"]:
        raise EngineError(f"--real {real}: no test rows after splitting; add rows or --ratios")
    counts = Counter(e.label for e in parts["train"])
    target = settings.target or math.ceil(statistics.median(counts.values()))
    # rare: real codes (any split) with fewer than target training notes, none included
    rare = sorted(code for code in {e.label for e in real_set.examples} if counts[code] < target)
    syn_rows = list(syn_set.examples) if syn_set else []
    labels = label_names(real_set.examples, syn_rows)
    config: dict[str, Any] = {
        "experiment": "icd",
        "settings": settings.model_dump(mode="json"),
        "inputs": {
            "real": real_set.provenance(),
            **({"synthetic": syn_set.provenance()} if syn_set else {}),
        },
        "labels": labels,
        "rows": {name: len(rows) for name, rows in parts.items()},
        "target": target,
        "rare_codes": rare,
        "train_counts": dict(sorted(counts.items())),
    }
    # seeds and arms are left out: adding either to a finished experiment resumes it
    identity = settings.model_dump(mode="json", exclude={"seeds", "arms"})
    fingerprint = sha256_hex({**config, "settings": identity})
    config["fingerprint"] = fingerprint
    prepare(output, config, force)

    def train_rows(arm: str, seed: int) -> list[Example]:
        if arm == "real":
            return parts["train"]
        if arm == "synthetic":
            return syn_rows
        return upsample(parts["train"], syn_rows, set(rare), target, seed)

    batch, epochs = settings.classifier.batch_size, settings.classifier.epochs
    planned = {
        (a, s): math.ceil(len(train_rows(a, s)) / batch) * epochs
        for a in settings.arms
        for s in settings.seeds
    }
    steps = Steps(sum(planned.values()), on_step)
    test = parts["test"]
    truth = [labels.index(e.label) for e in test]
    rare_rows = [i for i, e in enumerate(test) if e.label in set(rare)]
    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in settings.arms}
    for arm in settings.arms:
        for seed in settings.seeds:
            done = finished(output, arm, seed, fingerprint)
            if done is None:
                rows = train_rows(arm, seed)
                cfg = settings.classifier.model_copy(update={"seed": seed})
                clf = train_classifier(
                    cfg, rows, labels, parts["validation"] or None, device,
                    steps.run(planned[arm, seed]),
                )  # fmt: skip
                scores = clf.predict_proba([e.text for e in test])
                overall = hits_at_k(scores, truth, KS)
                rare_hits = (
                    hits_at_k(scores[rare_rows], [truth[i] for i in rare_rows], KS)
                    if rare_rows
                    else dict.fromkeys(overall)
                )
                predicted = [labels[i] for i in scores.argmax(axis=1)]
                metrics = classification([e.label for e in test], predicted, labels)
                done = {
                    "arm": arm,
                    "seed": seed,
                    "fingerprint": fingerprint,
                    "train_rows": len(rows),
                    "train_codes": dict(sorted(Counter(e.label for e in rows).items())),
                    "summary": {
                        **overall,
                        "macro_f1": metrics["macro_f1"],
                        **{f"rare_{k}": v for k, v in rare_hits.items()},
                    },
                    "test": metrics,
                    "rare_test_rows": len(rare_rows),
                    "history": clf.history.as_dict(),
                }
                write_json(run_path(output, arm, seed), done)
            else:
                steps.skip(planned[arm, seed])
            runs[arm].append(done)
    table = summarise(runs, keys())
    title = f"ICD prediction ({settings.level.value} level): real test split"
    write_table(output, table, keys(), title)
    write_plot(output, table, keys(), title)
    return table
