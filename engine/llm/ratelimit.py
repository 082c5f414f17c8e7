"""Pacing from the endpoint's rate-limit headers (``x-ratelimit-remaining-*``/``reset-*``).

OpenAI (and servers that copy it) say after every response how many requests and tokens
are left in the current window and when it resets. ``RateLimits`` keeps the latest figures,
counts down what the requests sent since then will use, and tells a request how long to
wait when its window is spent, instead of letting it run into a 429.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping

#: longest pause taken on the headers' word (a reset further away is re-read later)
MAX_PAUSE_S = 60.0
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_KINDS = ("requests", "tokens")


def parse_reset(value: str | None) -> float | None:
    """Seconds from OpenAI's reset format (``20ms``, ``1s``, ``6m0s``, ``1h2m3.5s``) or a
    plain number of seconds; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    parts = _PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


class RateLimits:
    """Remaining requests and tokens per window, as the last response's headers said."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        #: kind -> (remaining, monotonic time the window resets)
        self._windows: dict[str, tuple[float, float]] = {}

    def update(self, headers: Mapping[str, str]) -> None:
        """Take the figures of one response (headers without them change nothing)."""
        now = self._clock()
        for kind in _KINDS:
            remaining = headers.get(f"x-ratelimit-remaining-{kind}")
            reset = parse_reset(headers.get(f"x-ratelimit-reset-{kind}"))
            if remaining is None or reset is None:
                continue
            try:
                self._windows[kind] = (float(remaining), now + reset)
            except ValueError:
                continue

    def reserve(self, tokens: int) -> float:
        """Count one request of about ``tokens`` tokens, or say how many seconds it should
        wait first (a request that waits counts nothing: its window will have reset)."""
        now, wait = self._clock(), 0.0
        needs = {"requests": 1.0, "tokens": float(tokens)}
        for kind in _KINDS:
            window = self._windows.get(kind)
            if window is not None and window[1] <= now:
                del self._windows[kind]  # a new window: unknown until the next response
            elif window is not None and window[0] < needs[kind]:
                wait = max(wait, window[1] - now)
        if wait:
            return min(wait, MAX_PAUSE_S)
        for kind, (remaining, reset_at) in self._windows.items():
            self._windows[kind] = (remaining - needs[kind], reset_at)
        return 0.0
