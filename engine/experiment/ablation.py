"""DualAlign's ablation: which training data gives the better sentence classifier?

Arms (each trained once per seed, evaluated on the gold test split):

- ``gold``: the gold training split only;
- ``unguided`` / ``aligned``: every row of the baseline / aligned synthetic set only;
- ``gold+unguided`` / ``gold+aligned``: the gold training split plus that synthetic set.

Gold rows are split by their own ``split`` field, else by a label-stratified hash; the gold
validation split drives early stopping in every arm; synthetic rows are training data only
(every split of a kgsynth dataset). The label space is the union of all inputs' labels, so
every arm's classifier has the same classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

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
from engine.finetune.classifier import ClassifierConfig, majority, train_classifier
from engine.finetune.data import Example, Fields, LabelledSet, label_names, read_labelled, split
from engine.provenance import sha256_hex

ARMS = ("gold", "unguided", "aligned", "gold+unguided", "gold+aligned")


class AblationSettings(BaseModel):
    """Everything that decides the results (the classifier's seed is set per run)."""

    model_config = ConfigDict(extra="forbid")

    classifier: ClassifierConfig
    seeds: list[int]
    arms: list[str]
    gold_fields: Fields
    synthetic_fields: Fields
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 0
    save_models: bool = False


def keys(binary: bool) -> list[str]:
    """The table's metrics."""
    return ["accuracy", "macro_f1", "micro_f1", *(["binary_f1"] if binary else [])]


def _arms(requested: list[str], synthetic: bool, baseline: bool) -> list[str]:
    unknown = [a for a in requested if a not in ARMS]
    if unknown:
        raise EngineError(f"--arms {','.join(unknown)}: unknown; choose from {', '.join(ARMS)}")
    needs = {"aligned": ("--synthetic", synthetic), "unguided": ("--baseline", baseline)}
    for arm in requested:
        for part in arm.split("+"):
            if part in needs and not needs[part][1]:
                raise EngineError(f"--arms {arm}: needs {needs[part][0]}")
    return requested


def default_arms(synthetic: bool, baseline: bool) -> list[str]:
    """The arms the given inputs allow, in the table's order."""
    have = {"gold": True, "unguided": baseline, "aligned": synthetic}
    return [a for a in ARMS if all(have[p] for p in a.split("+"))]


def run_ablation(
    gold: Path,
    synthetic: Path | None,
    baseline: Path | None,
    output: Path,
    settings: AblationSettings,
    force: bool = False,
    on_step: Callable[[int, int], None] | None = None,
    device: str | None = None,
) -> list[dict[str, Any]]:
    """Train and evaluate every arm for every seed; write the results directory; the table."""
    arms = _arms(settings.arms, synthetic is not None, baseline is not None)
    gold_set = read_labelled(gold, settings.gold_fields, "gold-")
    sources: dict[str, LabelledSet] = {"gold": gold_set}
    if synthetic is not None:
        sources["aligned"] = read_labelled(synthetic, settings.synthetic_fields, "synthetic-")
    if baseline is not None:
        sources["unguided"] = read_labelled(baseline, settings.synthetic_fields, "synthetic-")
    parts = split(gold_set, settings.ratios, settings.split_seed)
    if not parts["test"]:
        raise EngineError(f"--gold {gold}: no test rows after splitting; add rows or --ratios")
    train_of: dict[str, list[Example]] = {
        "gold": parts["train"],
        **{name: list(s.examples) for name, s in sources.items() if name != "gold"},
    }
    labels = label_names(*(s.examples for s in sources.values()))
    config: dict[str, Any] = {
        "experiment": "ablation",
        "settings": settings.model_dump(mode="json"),
        "inputs": {name: s.provenance() for name, s in sources.items()},
        "labels": labels,
        "rows": {name: len(rows) for name, rows in parts.items()},
    }
    # seeds and arms are left out: adding either to a finished experiment resumes it
    identity = settings.model_dump(mode="json", exclude={"seeds", "arms", "save_models"})
    fingerprint = sha256_hex({**config, "settings": identity})
    config["fingerprint"] = fingerprint
    prepare(output, config, force)

    def train_rows(arm: str) -> list[Example]:
        return [e for part in arm.split("+") for e in train_of[part]]

    batch, epochs = settings.classifier.batch_size, settings.classifier.epochs
    planned = {a: math.ceil(len(train_rows(a)) / batch) * epochs for a in arms}
    steps = Steps(sum(planned.values()) * len(settings.seeds), on_step)
    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in arms}
    for arm in arms:
        rows = train_rows(arm)
        for seed in settings.seeds:
            done = finished(output, arm, seed, fingerprint)
            if done is None:
                cfg = settings.classifier.model_copy(update={"seed": seed})
                clf = train_classifier(
                    cfg, rows, labels, parts["validation"] or None, device, steps.run(planned[arm])
                )
                test = clf.evaluate(parts["test"])
                done = {
                    "arm": arm,
                    "seed": seed,
                    "fingerprint": fingerprint,
                    "train_rows": len(rows),
                    "summary": {k: test.get(k) for k in keys(len(labels) == 2)},
                    "test": test,
                    "validation": clf.evaluate(parts["validation"])
                    if parts["validation"]
                    else None,
                    "majority_baseline": majority(rows, parts["test"], labels),
                    "history": clf.history.as_dict(),
                }
                if settings.save_models:
                    clf.datasets = {p: sources[p].provenance() for p in arm.split("+")}
                    clf.save(run_path(output, arm, seed).parent / "classifier")
                write_json(run_path(output, arm, seed), done)
            else:
                steps.skip(planned[arm])
            runs[arm].append(done)
    table = summarise(runs, keys(len(labels) == 2))
    title = f"Ablation ({'binary' if len(labels) == 2 else 'multi-class'}): gold test split"
    write_table(output, table, keys(len(labels) == 2), title)
    write_plot(output, table, keys(len(labels) == 2), title)
    return table
