"""What a PyMC fit shows while it runs: "compiling" while it compiles, then a progress
bar of the draws done (warm-up included) with the time left, on stderr."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class SamplingProgress:
    """The display of one fit; every method is a no-op when it is disabled."""

    def __init__(self, progress: Any | None) -> None:
        self._progress = progress
        self._task: Any = None

    @property
    def enabled(self) -> bool:
        """True when something is displayed (callers may skip work that only feeds it)."""
        return self._progress is not None

    def compiling(self) -> None:
        """The model's log density and gradient are being compiled (or loaded)."""
        if self._progress is not None:
            self._task = self._progress.add_task("compiling the model", total=None)

    def sampling(self, chains: int, total: int) -> None:
        """Compiling is over: ``total`` draws of ``chains`` chains are to come."""
        if self._progress is None:
            return
        description = f"sampling {chains} chains"
        if self._task is None:
            self._task = self._progress.add_task(description, total=total)
        else:
            self._progress.reset(self._task, total=total, description=description)

    def advance(self, draws: int) -> None:
        """``draws`` more draws are done."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, draws)

    def done(self, draws: int) -> None:
        """``draws`` draws are done in all."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=draws)


@contextmanager
def sampling_progress(enabled: bool) -> Iterator[SamplingProgress]:
    """A rich progress display on stderr while the block runs (nothing when disabled)."""
    if not enabled:
        yield SamplingProgress(None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("draws"),
        TimeRemainingColumn(),
    )
    console = Console(file=sys.stderr, highlight=False)
    with Progress(*columns, console=console, transient=True) as progress:
        yield SamplingProgress(progress)
