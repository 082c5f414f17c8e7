"""Discrete distributions as cumulative tables, drawn for whole batches with ``searchsorted``."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from engine.errors import EngineError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def normalised(weights: ArrayLike, what: str) -> FloatArray:
    """``weights`` scaled to sum to 1; negative, non-finite or all-zero weights are errors."""
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise EngineError(
            f"{what}: weights must be non-negative and not all zero, got {w.tolist()}"
        )
    return w / w.sum()


def cumulative(probs: FloatArray) -> FloatArray:
    """Cumulative table of a probability vector (or of each row), last entry exactly 1."""
    cum = np.cumsum(probs, axis=-1)
    cum[..., -1] = 1.0
    return cum


def draw(cum: FloatArray, u: FloatArray) -> IntArray:
    """Index drawn from the cumulative table ``cum`` for each uniform in ``u``."""
    return np.searchsorted(cum, u, side="right").astype(np.int64)


def draw_rows(cum: FloatArray, rows: IntArray, u: FloatArray) -> IntArray:
    """Index drawn from row ``rows[i]`` of the 2-D cumulative table for each ``u[i]``.

    Rows are laid end to end with offsets (row r's values shifted by r), so one
    ``searchsorted`` serves every row.
    """
    n_rows, width = cum.shape
    flat = (cum + np.arange(n_rows)[:, None]).ravel()
    pos = np.searchsorted(flat, u + rows, side="right")
    return np.minimum(pos - rows * width, width - 1).astype(np.int64)


def gumbel(u: FloatArray) -> FloatArray:
    """Standard Gumbel noise from uniforms in [0, 1)."""
    tiny = np.finfo(np.float64).tiny
    return -np.log(-np.log(np.clip(u, tiny, 1.0 - 1e-16)))
