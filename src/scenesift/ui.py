"""Terminal output shared by the CLI and long-running jobs: one console, rich progress bars."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def progress_bar(transient: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
    )


def tracker(description: str):
    """A ``track(items, total)`` callable for importers: a progress bar with ETA."""

    def track(items: Iterable[T], total: int) -> Iterator[T]:
        with progress_bar() as bar:
            task = bar.add_task(description, total=total)
            for item in items:
                yield item
                bar.advance(task)

    return track


@contextmanager
def steps(
    description: str, total: int, enabled: bool = True, transient: bool = False
) -> Iterator[Callable[[int], None]]:
    """A progress bar with ETA (or nothing when disabled) moved by ``advance(n)``."""
    if not enabled:
        yield lambda n: None
        return
    with progress_bar(transient) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
