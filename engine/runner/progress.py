"""A rich progress bar for a run: done/total, records per second, ETA, ok/failed/cached, limit.

``advance`` only stores the run's counts; the bar reads them when it redraws (four times a
second, on rich's refresh thread), so a record costs no ``Progress.update`` and a disabled
bar costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

#: records done, ok, failed, cached, concurrency limit
_Counts = tuple[int, int, int, int, int]


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- rec/s" if speed is None else f"{speed:,.1f} rec/s", style="cyan")


class _PullingProgress(Progress):
    """A ``Progress`` that brings its task up to date with the run before each redraw."""

    def __init__(
        self, before_redraw: Callable[[], None], *columns: ProgressColumn, **kwargs: Any
    ) -> None:
        self._before_redraw = before_redraw
        super().__init__(*columns, **kwargs)

    def get_renderables(self) -> Iterable[RenderableType]:
        self._before_redraw()
        return super().get_renderables()


class RunProgress:
    """Context manager; ``advance`` after each record. Silent when ``enabled`` is false."""

    def __init__(self, total: int | None, *, enabled: bool, console: Console | None = None):
        self._enabled = enabled
        # written only by the event loop (one tuple, replaced whole), read by the redraw
        self._counts: _Counts = (0, 0, 0, 0, 0)
        self._shown = self._counts
        self._progress = _PullingProgress(
            self.sync,
            TextColumn("[bold]generate"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[stats]}"),
            console=console or Console(stderr=True, markup=False, emoji=False, highlight=False),
            disable=not enabled,
            refresh_per_second=4,
            speed_estimate_period=10,
        )
        self._task = self._progress.add_task("generate", total=total, stats="")

    def set_total(self, total: int) -> None:
        if self._enabled:
            self._progress.update(self._task, total=total)

    def advance(self, *, ok: int, failed: int, cached: int, limit: int) -> None:
        if self._enabled:
            self._counts = (self._counts[0] + 1, ok, failed, cached, limit)

    def sync(self) -> None:
        """Hand the latest counts to the bar (called before each redraw)."""
        counts = self._counts
        if counts == self._shown:
            return
        self._shown = counts
        done, ok, failed, cached, limit = counts
        stats = f"ok {ok} failed {failed} cached {cached} conc {limit}"
        self._progress.update(self._task, completed=done, stats=stats)

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()
