"""AIMD concurrency: a semaphore whose limit halves on overload and grows by one on success.

As in TCP, one overload cuts the limit once per "epoch": a 429 for a request sent before
the last cut says nothing new about the current limit and is ignored, so a burst of 429s
from one window of requests halves the limit once, not once per 429.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from enum import Enum


class Outcome(Enum):
    OK = "ok"
    OVERLOAD = "overload"
    OTHER = "other"


class AimdLimiter:
    """``acquire`` a slot (returns a ticket), then ``release(ticket, outcome)``.

    The limit stays within ``[minimum, maximum]``; it grows by one after ``increase_every``
    successes (default: as many successes as the current limit, i.e. one per round trip).
    ``trace`` records ``(seconds since started, limit)`` at every change (``started`` is a
    ``time.monotonic()`` reading).
    """

    def __init__(
        self,
        maximum: int,
        *,
        minimum: int = 1,
        initial: int | None = None,
        increase_every: int | None = None,
    ) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"need 1 <= minimum ({minimum}) <= maximum ({maximum})")
        self.maximum, self.minimum = maximum, minimum
        self.limit = min(max(initial or maximum, minimum), maximum)
        self.increase_every = increase_every
        self.in_flight = 0
        self.peak_in_flight = 0
        self._epoch = 0
        self._successes = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.started = time.monotonic()
        self.trace: list[tuple[float, int]] = [(0.0, self.limit)]

    async def acquire(self) -> int:
        if self.in_flight < self.limit and not self._waiters:
            self._take()
        else:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(future)
            try:
                await future  # the slot is taken on our behalf before we are woken
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self.in_flight -= 1
                    self._wake()
                raise
        return self._epoch

    def release(self, ticket: int, outcome: Outcome) -> None:
        self.in_flight -= 1
        if outcome is Outcome.OVERLOAD:
            self._decrease(ticket)
        elif outcome is Outcome.OK:
            self._increase()
        self._wake()

    def _take(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _set(self, limit: int) -> None:
        self.limit = limit
        self.trace.append((time.monotonic() - self.started, limit))

    def _decrease(self, ticket: int) -> None:
        if ticket != self._epoch:
            return
        self._epoch += 1
        self._successes = 0
        if self.limit > self.minimum:
            self._set(max(self.minimum, self.limit // 2))

    def _increase(self) -> None:
        self._successes += 1
        if self._successes >= (self.increase_every or self.limit) and self.limit < self.maximum:
            self._successes = 0
            self._set(self.limit + 1)

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            future = self._waiters.popleft()
            if not future.done():
                self._take()
                future.set_result(None)
