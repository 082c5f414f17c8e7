"""Classification metrics (scikit-learn): per-class P/R/F1, macro/micro F1, accuracy,
confusion matrix, and hit@k over ranked class scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)


def _r(value: Any) -> float:
    return round(float(value), 6)


def classification(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Metrics of ``y_pred`` against ``y_true`` over the class names ``labels`` (in order).

    ``binary_f1`` is the F1 of ``labels[1]`` when there are two classes (the positive class
    of the binary task). Classes with no true and no predicted example score 0.
    """
    names = list(labels)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=names, zero_division=0)
    out: dict[str, Any] = {
        "n": len(y_true),
        "accuracy": _r(accuracy_score(y_true, y_pred)),
        "macro_f1": _r(f1_score(y_true, y_pred, labels=names, average="macro", zero_division=0)),
        "micro_f1": _r(f1_score(y_true, y_pred, labels=names, average="micro", zero_division=0)),
        "weighted_f1": _r(
            f1_score(y_true, y_pred, labels=names, average="weighted", zero_division=0)
        ),
        "per_class": {
            name: {"precision": _r(p[i]), "recall": _r(r[i]), "f1": _r(f[i]), "support": int(s[i])}
            for i, name in enumerate(names)
        },
        "confusion_matrix": {
            "labels": names,
            "matrix": confusion_matrix(y_true, y_pred, labels=names).tolist(),
        },
    }
    if len(names) == 2:
        out["binary_f1"] = _r(f[1])
    return out


def hits_at_k(
    scores: NDArray[np.floating[Any]], y_true: Sequence[int], ks: Sequence[int] = (1, 3, 5)
) -> dict[str, float]:
    """Share of rows whose true class is among the ``k`` highest scores (ties: lower index
    first, as a stable sort of the negated scores gives)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    truth = np.asarray(y_true)[:, None]
    return {f"hit@{k}": _r(np.mean(np.any(order[:, :k] == truth, axis=1))) for k in ks}
