"""A rich progress bar for a run: done/total, records per second, ETA, ok/failed/cached, limit."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
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


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- rec/s" if speed is None else f"{speed:,.1f} rec/s", style="cyan")


class RunProgress:
    """Context manager; ``advance`` after each record. Silent when ``enabled`` is false."""

    def __init__(self, total: int | None, *, enabled: bool, console: Console | None = None):
        self._progress = Progress(
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
        self._progress.update(self._task, total=total)

    def advance(self, *, ok: int, failed: int, cached: int, limit: int) -> None:
        stats = f"ok {ok} failed {failed} cached {cached} conc {limit}"
        self._progress.update(self._task, advance=1, stats=stats)

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
