"""Common random numbers: every random draw a visitor needs, fixed before any variant runs.

Think of a deck of cards dealt to each visitor on arrival: one card decides
whether they continue at each stage, one their order value, one their channel,
and so on. Every variant is played with the same deck, so two variants differ
only where the variant changes the funnel, and the uplift between them is
measured with far less noise than with independent runs.

Each stream of numbers (``continue``, ``order``, ...) comes from its own
``numpy.random.SeedSequence`` child keyed by (replication, stream, block of
visitors). A draw therefore depends only on the seed, the replication, the
visitor's index and the stream: not on the engine, the variant, the executor
or the order in which blocks are computed.

Because every variant reads the same cards, whatever is computed from them
under the same parameters (a visitor's segment under the same segment shares,
their order value under the same distribution) is the same for every variant
too: :class:`SharedDraws` computes each such array once per replication and
block, and every variant reuses it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import numpy as np
from numpy.random import PCG64, Generator, SeedSequence
from numpy.typing import NDArray

BLOCK_VISITORS = 1 << 16
STREAMS = (
    "count",
    "arrival",
    "channel",
    "segment",
    "payment",
    "contact",
    "order",
    "continue",
    "dwell",
    "service",
    "patience",
    "delay",
    "assign",
    # aggregate-only mode (engine/aggregate.py): counts drawn directly
    "cells",
    "thin",
    "revenue",
    "split",
    # lifetimes of customers by (segment, channel) cell, and the CLV readout's Monte Carlo
    "lifetime",
    "readout",
    # referred visitors (engine/referral.py): their own population, referral timing
    "referral",
    # simulated order logs (orders.py)
    "order_log",
    # enquiries answered by automatic templates (engine/service.py)
    "auto_reply",
    # the simulated test's visitors reaching the stage it is judged on (experiment.metric)
    "test_reach",
)
_STREAM_IDS = {name: i for i, name in enumerate(STREAMS)}
MINUTES_PER_DAY = 1440.0
T = TypeVar("T")


def replication_seeds(seed: int, replications: int) -> list[SeedSequence]:
    """One independent seed sequence per replication (``SeedSequence.spawn``)."""
    return SeedSequence(seed).spawn(replications)


class VisitorDraws:
    """The uniforms of one replication's visitors, by stream and visitor index.

    The number of visitors is Poisson(visitors_per_day x days); arrival times
    are the order statistics of uniforms over the horizon (a Poisson process).
    """

    def __init__(self, seed: SeedSequence, visitors_per_day: float, days: int) -> None:
        self.seed = seed
        self.horizon_min = days * MINUTES_PER_DAY
        self.n_visitors = int(self.generator("count", 0).poisson(visitors_per_day * days))

    def generator(self, stream: str, key: int) -> Generator:
        """The generator of ``stream`` for block (or, in aggregate mode, stage) ``key``."""
        spawn_key = (*self.seed.spawn_key, _STREAM_IDS[stream], key)
        return Generator(PCG64(SeedSequence(self.seed.entropy, spawn_key=spawn_key)))

    def uniforms(
        self, stream: str, start: int = 0, stop: int | None = None, width: int | None = None
    ) -> NDArray[np.float64]:
        """Uniforms in [0, 1) for visitors ``start:stop``; shape (n,) or (n, width)."""
        stop = self.n_visitors if stop is None else stop
        first, last = start // BLOCK_VISITORS, max(start, stop - 1) // BLOCK_VISITORS
        parts = []
        for block in range(first, last + 1):
            size = min(BLOCK_VISITORS, self.n_visitors - block * BLOCK_VISITORS)
            shape = (size,) if width is None else (size, width)
            parts.append(self.generator(stream, block).random(shape))
        offset = first * BLOCK_VISITORS
        whole = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return whole[start - offset : stop - offset]

    def arrival_times(self) -> NDArray[np.float64]:
        """Sorted arrival times in minutes since the start, one per visitor."""
        times = self.uniforms("arrival")
        times.sort()
        times *= self.horizon_min
        return times

    def blocks(self) -> list[tuple[int, int]]:
        """Visitor index ranges of the blocks, for engines that work block by block."""
        return [
            (start, min(start + BLOCK_VISITORS, self.n_visitors))
            for start in range(0, self.n_visitors, BLOCK_VISITORS)
        ]


class SharedDraws:
    """What every variant of one replication shares for visitors ``start:stop``.

    Uniforms are drawn once per stream; :meth:`derived` computes anything
    made from them (a categorical choice, a distribution's quantiles) once per
    key, so variants that agree on a parameter reuse the array. Keys must
    identify every input of the computation.

    >>> draws = VisitorDraws(replication_seeds(1, 1)[0], 100, 1)
    >>> shared = SharedDraws(draws)
    >>> shared.uniforms("order") is shared.uniforms("order")
    True
    """

    def __init__(self, draws: VisitorDraws, start: int = 0, stop: int | None = None) -> None:
        self.draws = draws
        self.start = start
        self.stop = draws.n_visitors if stop is None else stop
        self._memo: dict[Hashable, Any] = {}

    @property
    def n_visitors(self) -> int:
        return self.stop - self.start

    def uniforms(self, stream: str, width: int | None = None) -> NDArray[np.float64]:
        """The stream's uniforms for these visitors, drawn on first use."""
        return self.derived(
            ("uniforms", stream, width),
            lambda: self.draws.uniforms(stream, self.start, self.stop, width),
        )

    def derived(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, evaluated once per ``key`` (callers must not modify the result)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]  # type: ignore[no-any-return]
