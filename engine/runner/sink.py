"""The record sink: output lines, cache answers and manifests written off the event loop.

One worker thread owns the output file and the request cache. The event loop only queues
work: ``write`` (a record and, for a fresh answer, its cache entry), ``lookup`` (awaitable
cache reads) and ``call`` (a manifest write). Writes are gathered on the loop and handed to
the worker once per loop iteration (one queue put and one thread wake-up for all the records
finished in it, not one per record); a ``lookup`` or ``call`` hands over what is gathered
first, so queue order is the order of the calls. The worker drains whatever has queued up and
handles it as one batch: the records between two calls have their cache answers committed
in one transaction and are then appended in one ``write``; calls run in queue order; the
lookups are answered in one query at the end. An answer is therefore always in the cache
before its record is in the output, and the manifest of a run precedes its records.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.errors import EngineError
from engine.llm.base import LLMResponse
from engine.runner.cache import CachedAnswer, RequestCache
from engine.runner.output import OutputLog
from engine.runner.records import NoteRecord


@dataclass(slots=True)
class _Write:
    record: NoteRecord
    answer: CachedAnswer | None


@dataclass(slots=True)
class _Lookup:
    keys: list[str]
    future: asyncio.Future[dict[str, LLMResponse]]


@dataclass(slots=True)
class _Call:
    fn: Callable[[], None]


_Item = list[_Write] | _Lookup | _Call | None  # None: finish and stop


class RecordSink:
    """Start with ``start()``; ``await aclose()`` writes everything queued and stops."""

    def __init__(self, output: OutputLog, cache: RequestCache | None) -> None:
        self.output = output
        self.cache = cache
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="kgsynth-sink", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._gathered: list[_Write] = []  # writes of this loop iteration, not yet queued

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread.start()

    def _check(self) -> None:
        if self._error is not None:
            raise EngineError(f"cannot write {self.output.path}: {self._error}") from self._error

    def write(self, record: NoteRecord, answer: CachedAnswer | None = None) -> None:
        self._check()
        self._gathered.append(_Write(record, answer))
        if len(self._gathered) == 1:
            if self._loop is None:
                self._hand_over()
            else:
                self._loop.call_soon(self._hand_over)

    def _hand_over(self) -> None:
        if self._gathered:
            self._queue.put(self._gathered)
            self._gathered = []

    def call(self, fn: Callable[[], None]) -> None:
        self._check()
        self._hand_over()
        self._queue.put(_Call(fn))

    async def lookup(self, keys: list[str]) -> dict[str, LLMResponse]:
        """The cached answers among ``keys`` (one query on the worker)."""
        self._check()
        assert self._loop is not None, "start() the sink first"
        future: asyncio.Future[dict[str, LLMResponse]] = self._loop.create_future()
        self._hand_over()
        self._queue.put(_Lookup(keys, future))
        return await future

    async def aclose(self) -> None:
        """Write what is queued, close the output, stop the worker; raise a write error."""
        if self._thread.is_alive():
            self._hand_over()
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
        self._check()

    # -- the worker ------------------------------------------------------------------------

    def _work(self) -> None:
        running = True
        while running:
            items = [self._queue.get()]
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            running = None not in items
            try:
                if self._error is None:
                    self._handle([item for item in items if item is not None])
                else:
                    self._fail([item for item in items if isinstance(item, _Lookup)])
            except BaseException as err:  # reported to the loop, never lost
                self._error = err
                self._fail([item for item in items if isinstance(item, _Lookup)])
        try:
            self.output.close()
        except OSError as err:
            self._error = self._error or err

    def _handle(self, items: list[list[_Write] | _Lookup | _Call]) -> None:
        writes: list[_Write] = []
        for item in items:  # calls in queue order: records queued before a call precede it
            if isinstance(item, list):
                writes += item
            elif isinstance(item, _Call):
                self._flush(writes)
                writes = []
                item.fn()
        self._flush(writes)
        lookups = [item for item in items if isinstance(item, _Lookup)]
        if lookups:
            found = self.cache.get_many([k for x in lookups for k in x.keys]) if self.cache else {}
            self._resolve(
                [(x.future, {k: found[k] for k in x.keys if k in found}) for x in lookups]
            )

    def _flush(self, writes: list[_Write]) -> None:
        if not writes:
            return
        answers = [w.answer for w in writes if w.answer is not None]
        if answers and self.cache is not None:
            self.cache.put_many(answers)
        self.output.write(
            b"".join(
                w.record.model_dump_json(exclude_none=True).encode("utf-8") + b"\n" for w in writes
            )
        )

    def _resolve(
        self,
        results: Sequence[
            tuple[asyncio.Future[dict[str, LLMResponse]], dict[str, LLMResponse] | BaseException]
        ],
    ) -> None:
        def settle() -> None:
            for future, value in results:
                if future.done():
                    continue
                if isinstance(value, BaseException):
                    future.set_exception(value)
                else:
                    future.set_result(value)

        assert self._loop is not None
        self._loop.call_soon_threadsafe(settle)

    def _fail(self, lookups: list[_Lookup]) -> None:
        error = EngineError(f"cannot use the request cache: {self._error}")
        self._resolve([(x.future, error) for x in lookups])
