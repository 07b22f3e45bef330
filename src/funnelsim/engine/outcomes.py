"""The columnar result both engines return: counts and sums, never one object per visitor.

An :class:`Outcome` is the tally sheet of one simulated run of one variant:
how many visitors reached each stage (by segment and channel), how many were
lost there and why, what the buyers spent, and how the queues behaved. Blocks
of visitors simulated separately are added together with ``+``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from funnelsim.friction import FRICTION_REASONS

REASONS = (*FRICTION_REASONS, "rate", "response", "queue", "declined", "unanswered")
REASON_INDEX = {name: i for i, name in enumerate(REASONS)}
CONVERTED = -1
REPLIED = "replied"
"""The outcome of an event-log row that is the business's first answer to a lead, not a
stage entered (rows from the enquiry to the answer; see ``simpy_engine.EventLog``)."""

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class QueueStats:
    """Per resource: visitors who queued, were served or gave up, and their waits (minutes)."""

    names: tuple[str, ...]
    arrivals: IntArray
    served: IntArray
    abandoned: IntArray
    wait_sum: FloatArray
    wait_sq_sum: FloatArray
    wait_max: FloatArray
    busy_min: FloatArray

    @classmethod
    def empty(cls, names: tuple[str, ...]) -> QueueStats:
        n = len(names)
        zeros_i, zeros_f = np.zeros(n, np.int64), np.zeros(n)
        return cls(names, zeros_i, zeros_i, zeros_i, zeros_f, zeros_f, zeros_f, zeros_f)

    def __add__(self, other: QueueStats) -> QueueStats:
        return QueueStats(
            self.names,
            self.arrivals + other.arrivals,
            self.served + other.served,
            self.abandoned + other.abandoned,
            self.wait_sum + other.wait_sum,
            self.wait_sq_sum + other.wait_sq_sum,
            np.maximum(self.wait_max, other.wait_max),
            self.busy_min + other.busy_min,
        )

    @property
    def abandonment(self) -> FloatArray:
        """Share of queued visitors who gave up waiting."""
        return np.divide(
            self.abandoned, self.arrivals, out=np.zeros(len(self.names)), where=self.arrivals > 0
        )

    @property
    def mean_wait_min(self) -> FloatArray:
        """Mean wait of the visitors who were served."""
        return np.divide(
            self.wait_sum, self.served, out=np.zeros(len(self.names)), where=self.served > 0
        )


@dataclass(frozen=True)
class Outcome:
    """Counts of one run of one variant, by stage x segment x channel.

    ``reached[s]`` counts visitors who reached stage ``s``; ``reached[-1]``
    (one past the last stage) counts buyers. ``lost[s, r]`` counts visitors lost
    at stage ``s`` for reason ``REASONS[r]``.
    """

    stages: tuple[str, ...]
    segments: tuple[str, ...]
    channels: tuple[str, ...]
    reached: IntArray  # (stages + 1, segments, channels)
    lost: IntArray  # (stages, reasons, segments, channels)
    revenue: FloatArray  # (segments, channels): sum of first-order values
    revenue_sq: FloatArray  # (segments, channels): sum of squared order values
    queues: QueueStats = field(default_factory=lambda: QueueStats.empty(()))
    # per resource, the service figures of engine.service (SimPy only: its runs are
    # never split into blocks, so a sum keeps whichever side has them)
    service: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_visitors(
        cls,
        stages: tuple[str, ...],
        segments: tuple[str, ...],
        channels: tuple[str, ...],
        segment: NDArray[np.integer],
        channel: NDArray[np.integer],
        exit_stage: NDArray[np.integer],
        reason: NDArray[np.integer],
        order_value: FloatArray,
        queues: QueueStats | None = None,
    ) -> Outcome:
        """Tally per-visitor arrays: ``exit_stage`` is the stage where the visitor was
        lost (``len(stages)`` for buyers), ``order_value`` is 0 for non-buyers."""
        n_s, n_g, n_c, n_r = len(stages), len(segments), len(channels), len(REASONS)
        cell = segment.astype(np.int64) * n_c + channel
        exits = np.bincount(
            exit_stage.astype(np.int64) * n_g * n_c + cell, minlength=(n_s + 1) * n_g * n_c
        ).reshape(n_s + 1, n_g, n_c)
        reached = np.cumsum(exits[::-1], axis=0)[::-1]
        lost_at = exit_stage < n_s
        lost_index = (exit_stage[lost_at].astype(np.int64) * n_r + reason[lost_at]) * n_g * n_c
        lost = np.bincount(lost_index + cell[lost_at], minlength=n_s * n_r * n_g * n_c)
        revenue = np.bincount(cell, weights=order_value, minlength=n_g * n_c)
        revenue_sq = np.bincount(cell, weights=order_value**2, minlength=n_g * n_c)
        return cls(
            stages,
            segments,
            channels,
            reached,
            lost.reshape(n_s, n_r, n_g, n_c),
            revenue.reshape(n_g, n_c),
            revenue_sq.reshape(n_g, n_c),
            queues if queues is not None else QueueStats.empty(()),
        )

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(
            self.stages,
            self.segments,
            self.channels,
            self.reached + other.reached,
            self.lost + other.lost,
            self.revenue + other.revenue,
            self.revenue_sq + other.revenue_sq,
            self.queues + other.queues,
            self.service or other.service,
        )

    @property
    def visitors(self) -> int:
        return int(self.reached[0].sum())

    @property
    def buyers(self) -> int:
        return int(self.reached[-1].sum())

    @property
    def conversion(self) -> float:
        """Buyers per visitor (0 with no visitors)."""
        return self.buyers / self.visitors if self.visitors else 0.0

    @property
    def revenue_per_visitor(self) -> float:
        return float(self.revenue.sum()) / self.visitors if self.visitors else 0.0

    @property
    def bounce_rate(self) -> float:
        """Share of visitors lost at the first stage."""
        return 1.0 - float(self.reached[1].sum()) / self.visitors if self.visitors else 0.0

    def stage_rates(self) -> FloatArray:
        """Share of visitors reaching each stage who continue past it (NaN for a stage
        nobody reached: its rate is unknown, not zero)."""
        reached = self.reached.sum(axis=(1, 2)).astype(float)
        return np.divide(
            reached[1:],
            reached[:-1],
            out=np.full(len(self.stages), np.nan),
            where=reached[:-1] > 0,
        )

    def lost_by_reason(self) -> IntArray:
        """(stages, reasons) counts of lost visitors."""
        return self.lost.sum(axis=(2, 3))


@dataclass(frozen=True)
class Simulation:
    """An engine's answer: the tally, plus each visitor's purchase for the simulated A/B split."""

    outcome: Outcome
    converted: NDArray[np.bool_]
    revenue: FloatArray
    engine: str
