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
"""

from __future__ import annotations

import numpy as np
from numpy.random import PCG64, Generator, SeedSequence
from numpy.typing import NDArray

BLOCK_VISITORS = 1 << 16
STREAMS = (
    "count", "arrival", "channel", "segment", "payment", "contact", "order",
    "continue", "dwell", "service", "patience", "delay", "assign",
)
_STREAM_IDS = {name: i for i, name in enumerate(STREAMS)}
MINUTES_PER_DAY = 1440.0


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
        self.n_visitors = int(self._generator("count", 0).poisson(visitors_per_day * days))

    def _generator(self, stream: str, block: int) -> Generator:
        key = (*self.seed.spawn_key, _STREAM_IDS[stream], block)
        return Generator(PCG64(SeedSequence(self.seed.entropy, spawn_key=key)))

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
            parts.append(self._generator(stream, block).random(shape))
        offset = first * BLOCK_VISITORS
        return np.concatenate(parts)[start - offset : stop - offset]

    def arrival_times(self) -> NDArray[np.float64]:
        """Sorted arrival times in minutes since the start, one per visitor."""
        return np.sort(self.uniforms("arrival")) * self.horizon_min

    def blocks(self) -> list[tuple[int, int]]:
        """Visitor index ranges of the blocks, for engines that work block by block."""
        return [
            (start, min(start + BLOCK_VISITORS, self.n_visitors))
            for start in range(0, self.n_visitors, BLOCK_VISITORS)
        ]
