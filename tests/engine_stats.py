"""Small statistics helpers for the engine's statistical tests (no scipy dependency)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def chi2_sf(x: float, dof: int) -> float:
    """Survival function of the chi-square distribution: Q(dof/2, x/2)."""
    if x <= 0:
        return 1.0
    a, y = dof / 2.0, x / 2.0
    log_front = -y + a * math.log(y) - math.lgamma(a)
    if y < a + 1:  # series for the lower regularized gamma P
        term = total = 1.0 / a
        n = a
        while term > total * 1e-15:
            n += 1
            term *= y / n
            total += term
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300  # continued fraction for Q (modified Lentz)
    b = y + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return math.exp(log_front) * h


def chi2_gof(observed: Sequence[float], expected_probs: Sequence[float]) -> float:
    """p-value of Pearson's goodness-of-fit test (cells with zero expectation must be empty)."""
    total = sum(observed)
    stat, cells = 0.0, 0
    for obs, p in zip(observed, expected_probs, strict=True):
        if p == 0:
            assert obs == 0, "an impossible cell was observed"
            continue
        expected = total * p
        stat += (obs - expected) ** 2 / expected
        cells += 1
    return chi2_sf(stat, cells - 1)


def chi2_independence(table: Sequence[Sequence[float]]) -> float:
    """p-value of Pearson's test of independence for a contingency table."""
    rows = [sum(r) for r in table]
    cols = [sum(c) for c in zip(*table, strict=True)]
    total = sum(rows)
    stat = sum(
        (table[i][j] - rows[i] * cols[j] / total) ** 2 / (rows[i] * cols[j] / total)
        for i in range(len(rows))
        for j in range(len(cols))
    )
    return chi2_sf(stat, (len(rows) - 1) * (len(cols) - 1))


def within_se(successes: int, n: int, p: float, k: float = 3.0) -> bool:
    """True when the observed rate lies within ``k`` standard errors of ``p``."""
    se = math.sqrt(p * (1 - p) / n)
    return abs(successes / n - p) <= k * se + 1e-12
