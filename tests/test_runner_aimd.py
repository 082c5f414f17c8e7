"""AIMD limiter and backoff: the control laws, exactly."""

from __future__ import annotations

import asyncio
import random

import pytest

from engine.runner.aimd import AimdLimiter, Outcome
from engine.runner.backoff import backoff_delay


def test_halves_once_per_epoch_and_respects_the_minimum() -> None:
    async def go() -> None:
        lim = AimdLimiter(32, minimum=3)
        tickets = [await lim.acquire() for _ in range(32)]
        assert lim.in_flight == 32 and lim.peak_in_flight == 32
        for t in tickets[:10]:  # a burst of 429s from one window: one cut
            lim.release(t, Outcome.OVERLOAD)
        assert lim.limit == 16
        for t in tickets[10:]:
            lim.release(t, Outcome.OTHER)
        t = await lim.acquire()  # sent after the cut: its 429 cuts again
        lim.release(t, Outcome.OVERLOAD)
        assert lim.limit == 8
        for _ in range(3):
            t = await lim.acquire()
            lim.release(t, Outcome.OVERLOAD)
        assert lim.limit == 3  # 8 -> 4 -> 3 (minimum), stays
        assert [limit for _, limit in lim.trace] == [32, 16, 8, 4, 3]

    asyncio.run(go())


def test_grows_by_one_per_n_successes_up_to_the_maximum() -> None:
    async def go() -> None:
        lim = AimdLimiter(6, initial=2, increase_every=3)
        for _ in range(3 * 4 + 10):
            lim.release(await lim.acquire(), Outcome.OK)
        assert lim.limit == 6
        lim2 = AimdLimiter(10, initial=4)  # default: +1 per `limit` successes
        for _ in range(4):
            lim2.release(await lim2.acquire(), Outcome.OK)
        assert lim2.limit == 5
        lim2.release(await lim2.acquire(), Outcome.OTHER)  # errors neither cut nor grow
        assert lim2.limit == 5

    asyncio.run(go())


def test_waiters_are_served_in_order_and_never_exceed_the_limit() -> None:
    async def go() -> None:
        lim = AimdLimiter(4)
        peak, active, order = 0, 0, []

        async def worker(i: int) -> None:
            nonlocal peak, active
            ticket = await lim.acquire()
            active += 1
            peak = max(peak, active)
            order.append(i)
            await asyncio.sleep(0.001)
            active -= 1
            lim.release(ticket, Outcome.OVERLOAD if i == 5 else Outcome.OK)

        await asyncio.gather(*(worker(i) for i in range(40)))
        assert peak <= 4 and lim.in_flight == 0
        assert order[:4] == [0, 1, 2, 3]

    asyncio.run(go())


def test_cancelled_waiter_gives_its_slot_back() -> None:
    async def go() -> None:
        lim = AimdLimiter(1)
        held = await lim.acquire()
        waiter = asyncio.create_task(lim.acquire())
        await asyncio.sleep(0)
        lim.release(held, Outcome.OK)  # the slot is handed to the waiter ...
        waiter.cancel()  # ... which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert lim.in_flight == 0
        lim.release(await asyncio.wait_for(lim.acquire(), 1), Outcome.OK)

    asyncio.run(go())


def test_backoff_is_full_jitter_capped_and_floored_by_retry_after() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(3, base_s=1, cap_s=60, rng=rng) for _ in range(2000)]
    assert 0 <= min(delays) < 0.1 and 3.9 < max(delays) <= 4.0
    assert max(backoff_delay(20, base_s=1, cap_s=5, rng=rng) for _ in range(200)) <= 5
    assert backoff_delay(1, base_s=0.1, cap_s=1, retry_after=2.5, rng=rng) == 2.5
    assert backoff_delay(1, base_s=0.1, cap_s=1, retry_after=900, max_retry_after_s=30) == 30
