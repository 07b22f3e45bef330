"""How a study runs, apart from what it computes: seed, engine, executor, progress.

Every study (``run``, ``sweep``, ``bench``, ``plan``, the order log) takes one
:class:`Execution` instead of the same five arguments. Results depend on the seed and
the engine only, never on ``workers`` or ``dask``.

>>> Execution(seed=7).seed_or(1), Execution().seed_or(1)
(7, 1)
>>> Execution(workers=3).processes
3
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

EngineName = Literal["auto", "simpy", "vectorized", "aggregate"]
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Execution:
    """Seed, engine and executor of a study.

    Attributes:
        seed: Overrides the scenario's seed (None: the scenario's own).
        engine: ``auto`` uses SimPy only where visitors share a resource (queues);
            ``aggregate`` draws counts directly (no queues; fastest for huge runs).
        workers: Local processes, or the workers of a Dask LocalCluster; None uses
            every CPU.
        dask: None (local), ``"local"`` (a LocalCluster), a scheduler address
            (``tcp://HOST:8786``) or a ``distributed.Client``.
        progress: Called with the number of work items finished since its last call.
    """

    seed: int | None = None
    engine: EngineName = "auto"
    workers: int | None = 1
    dask: Any = None
    progress: Progress | None = None

    @property
    def processes(self) -> int:
        """The number of local processes (or LocalCluster workers) to use."""
        return self.workers or os.cpu_count() or 1

    def seed_or(self, default: int) -> int:
        """The seed to use: this execution's, else ``default`` (the scenario's)."""
        return default if self.seed is None else self.seed

    def reporting(self, progress: Progress | None) -> Execution:
        """This execution with ``progress`` called as work finishes."""
        return replace(self, progress=progress)


SERIAL = Execution()
"""The default: the scenario's seed, the automatic engine, this process only."""
