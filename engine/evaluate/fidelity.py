"""Semantic fidelity: how close synthetic notes lie to real ones in embedding space.

MMD² (biased V-statistic) with an RBF kernel ``exp(-||x - y||² / (2 σ²))``, σ the median
pairwise distance of the pooled sample (median heuristic); its p-value from a permutation test
(labels shuffled with a fixed seed). Centroid cosine: the cosine of the two mean embeddings.
Dispersion: the mean cosine distance of a set's embeddings to their own centroid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

F = NDArray[np.floating[Any]]


def _sq_dists(z: F) -> F:
    sq = np.einsum("ij,ij->i", z, z)
    d = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)
    np.maximum(d, 0.0, out=d)
    return d


def median_bandwidth(z: F) -> float:
    """σ = the median distance over distinct pairs of rows (1 when all rows coincide)."""
    d = _sq_dists(z.astype(np.float64))
    off = d[np.triu_indices(len(z), k=1)]
    sigma = float(np.median(np.sqrt(off))) if len(off) else 0.0
    return sigma if sigma > 0 else 1.0


def _mmd2(k: F, row_sums: F, labels: NDArray[np.bool_]) -> NDArray[np.float64]:
    """MMD² for each column of ``labels`` (True: synthetic), from one product ``K @ labels``."""
    a = labels.astype(np.float64)
    b = 1.0 - a
    ka = k @ a  # K a; K b = row sums - K a
    na, nb = a.sum(axis=0), b.sum(axis=0)
    aka = np.einsum("ij,ij->j", a, ka)
    akb = np.einsum("ij,ij->j", a, row_sums[:, None] - ka)
    bkb = np.einsum("ij,ij->j", b, row_sums[:, None] - ka)
    return np.asarray(aka / na**2 + bkb / nb**2 - 2.0 * akb / (na * nb))


def mmd(x: F, y: F, *, permutations: int = 200, seed: int = 0) -> dict[str, Any]:
    """MMD² between the rows of ``x`` and ``y``, its bandwidth and permutation p-value
    (permutations scored 64 at a time, each a column of one matrix product)."""
    z = np.vstack([x, y]).astype(np.float64)
    sigma = median_bandwidth(z)
    k = np.exp(-_sq_dists(z) / (2.0 * sigma**2))
    row_sums = k.sum(axis=1)
    labels = np.zeros(len(z), dtype=bool)
    labels[: len(x)] = True
    observed = float(_mmd2(k, row_sums, labels[:, None])[0])
    rng = np.random.default_rng(seed)
    floor = observed - 1e-12  # ties count as at least as large
    at_least = 0
    for start in range(0, permutations, 64):
        batch = [rng.permutation(labels) for _ in range(min(64, permutations - start))]
        at_least += int(np.count_nonzero(_mmd2(k, row_sums, np.stack(batch, axis=1)) >= floor))
    return {
        "mmd2": round(observed, 6),
        "p_value": round((1 + at_least) / (1 + permutations), 4),
        "bandwidth": round(sigma, 6),
        "permutations": permutations,
        "seed": seed,
        "n_synthetic": len(x),
        "n_reference": len(y),
    }


def centroid_cosine(x: F, y: F) -> float:
    """Cosine similarity of the two sets' mean embeddings."""
    a, b = x.mean(axis=0), y.mean(axis=0)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / denom if denom > 0 else 0.0


def dispersion(x: F) -> float:
    """Mean cosine distance of (normalised) rows to their centroid."""
    c = x.mean(axis=0)
    norm = float(np.linalg.norm(c))
    if norm == 0 or not len(x):
        return 0.0
    rows = x / np.linalg.norm(x, axis=1, keepdims=True)
    return float(np.mean(1.0 - rows @ (c / norm)))


def sample_rows(x: F, size: int, seed: int) -> F:
    """At most ``size`` rows of ``x``, drawn without replacement with a fixed seed."""
    if len(x) <= size:
        return x
    idx = np.sort(np.random.default_rng(seed).choice(len(x), size, replace=False))
    return x[idx]
