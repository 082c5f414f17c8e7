"""Retry delays: exponential backoff with full jitter, never shorter than ``Retry-After``."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int,
    *,
    base_s: float,
    cap_s: float,
    retry_after: float | None = None,
    max_retry_after_s: float = 300.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1).

    Full jitter (uniform on ``[0, min(cap, base * 2**(attempt-1))]``) spreads retries so a
    burst of failures does not come back as a burst; a server's ``Retry-After`` (capped at
    ``max_retry_after_s``) is a floor.
    """
    ceiling = min(cap_s, base_s * 2 ** (attempt - 1))
    delay = (rng or random).uniform(0.0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_retry_after_s))
    return delay
