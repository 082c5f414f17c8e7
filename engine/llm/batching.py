"""Micro-batching for local engines: concurrent ``complete`` calls become one batched call.

The runner keeps many requests in flight; the batcher gathers whatever is waiting (up to
``max_batch`` with the same sampling parameters) and hands it to a blocking ``generate``
function on one worker thread, so the event loop stays free while the model runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from engine.llm.base import Backend, LLMRequest, LLMResponse, TransientError

GenerateFn = Callable[[list[LLMRequest]], list[LLMResponse]]
_Item = tuple[LLMRequest, "asyncio.Future[LLMResponse]"]


def _same_kind(a: LLMRequest, b: LLMRequest) -> bool:
    return a.params == b.params and a.output is b.output


class MicroBatcher:
    """``await submit(request)``; batches run one at a time on a dedicated thread."""

    def __init__(self, generate: GenerateFn, max_batch: int, gather_s: float = 0.005) -> None:
        self._generate = generate
        self.max_batch = max_batch
        self._gather_s = gather_s
        self._queue: list[_Item] = []
        self._ready = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kgsynth-generate")
        self.batch_sizes: list[int] = []

    async def submit(self, request: LLMRequest) -> LLMResponse:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (another asyncio.run): start afresh
            self._loop, self._queue, self._ready, self._worker = loop, [], asyncio.Event(), None
        future: asyncio.Future[LLMResponse] = loop.create_future()
        self._queue.append((request, future))
        self._ready.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work())
        return await future

    def _take(self) -> list[_Item]:
        live = [item for item in self._queue if not item[1].done()]
        if not live:
            self._queue = []
            return []
        first = live[0][0]
        batch = [item for item in live if _same_kind(item[0], first)][: self.max_batch]
        taken = {id(item) for item in batch}
        self._queue = [item for item in live if id(item) not in taken]
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._ready.wait()
            if len(self._queue) < self.max_batch:
                await asyncio.sleep(self._gather_s)  # let concurrent callers join the batch
            batch = self._take()
            if not self._queue:
                self._ready.clear()
            if not batch:
                continue
            self.batch_sizes.append(len(batch))
            requests = [request for request, _ in batch]
            try:
                results = await loop.run_in_executor(self._executor, self._generate, requests)
            except Exception as err:  # one bad batch fails its requests, not the run
                for _, future in batch:
                    if not future.done():
                        future.set_exception(TransientError(f"local generation failed: {err}"))
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        self._executor.shutdown(wait=True)


class BatchedBackend(Backend):
    """A local engine: concurrent requests are micro-batched onto one worker thread."""

    local = True
    _batcher: MicroBatcher

    async def complete(self, request: LLMRequest) -> LLMResponse:
        return await self._batcher.submit(request)

    async def aclose(self) -> None:
        await self._batcher.aclose()
