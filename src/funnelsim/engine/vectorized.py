"""The NumPy engine: every visitor of a block at once, stage by stage.

Where no resource is shared, one visitor's fate does not depend on another's,
so the whole funnel is a few array operations per stage: compare each
visitor's uniform with their cell's threshold, count who leaves and why, and
carry only the survivors to the next stage (most visitors leave early, so the
later stages cost little). Visitors are processed in blocks (see
:mod:`funnelsim.engine.draws`), so memory stays flat however many visitors a
run has, and the numbers are the same draws the SimPy engine uses: on such
scenarios the two engines agree visitor by visitor.

:func:`simulate_variants` plays every variant on a block before moving to the
next, so what variants share (draws, segments, order values) is computed once.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from functools import partial
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from funnelsim import friction
from funnelsim.engine.draws import SharedDraws, VisitorDraws
from funnelsim.engine.model import (
    CompiledFunnel,
    SplitTally,
    VariantRuns,
    cells_key,
    assign_arms,
    order_values_for,
    outcome_from_cells,
    refuse_coupled_visitors,
    stage_values,
    visitor_cells,
)
from funnelsim.engine.outcomes import REASON_INDEX, REASONS, Outcome, Simulation

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
RATE, RESPONSE = REASON_INDEX["rate"], REASON_INDEX["response"]


def _stage_key(funnel: CompiledFunnel, s: int) -> Hashable:
    """What decides stage ``s`` for the visitors reaching it: its thresholds and rates by
    cell and, where answers go cold, the response delay and its coefficients."""
    stage = funnel.stage(s)
    decay = (stage.response_delay_min, funnel.response) if stage.friction.response_decay else None
    return funnel.cell_thresholds[s].tobytes(), funnel.cell_continue[s].tobytes(), decay


class _Survivors(NamedTuple):
    """Who of a block is still in the funnel after a stage, and whom that stage lost."""

    index: IntArray  # positions in the block
    cell: IntArray  # their cells
    reached: IntArray  # (cells,): how many reached the next stage
    lost: IntArray  # (reasons, cells): lost at this stage, by reason


def _walk(funnel: CompiledFunnel, shared: SharedDraws) -> tuple[IntArray, IntArray, IntArray]:
    """Visitors reaching each stage (S + 1, cells), lost there by reason (S, R, cells),
    and the indices of the buyers, for one block.

    Each stage's result is kept under the key of every stage up to it (see
    :func:`_stage_key`): variants that differ only at a later stage walk the
    earlier ones once per block, since common random numbers make their visitors
    and thresholds the same there.
    """
    n_s, n_cells = len(funnel.stages), funnel.cell_continue.shape[1]
    key: tuple[Hashable, ...] = ("walk", *cells_key(funnel))
    cells = visitor_cells(funnel, shared).cell
    everybody = _Survivors(
        np.arange(shared.n_visitors),
        cells,
        shared.derived(key, lambda: np.bincount(cells, minlength=n_cells)),
        np.zeros((len(REASONS), n_cells), np.int64),
    )
    walked = [everybody]
    for s in range(n_s):
        key = (*key, _stage_key(funnel, s))
        walked.append(shared.derived(key, partial(_stage, funnel, shared, s, walked[-1])))
    reached = np.stack([w.reached for w in walked])
    lost = np.stack([w.lost for w in walked[1:]])
    return reached, lost, walked[-1].index


def _stage(funnel: CompiledFunnel, shared: SharedDraws, s: int, before: _Survivors) -> _Survivors:
    """Play stage ``s`` for the visitors ``before`` who reached it."""
    n_s = len(funnel.stages)
    index, cell = before.index, before.cell
    u = shared.uniforms("continue", n_s)[:, s]
    us = u if index.size == u.size else u.take(index)
    p = funnel.cell_continue[s].take(cell)
    stays = us < p
    lost = np.zeros_like(before.lost)
    _friction_losses(funnel.cell_thresholds[s], us, cell, lost)
    stage = funnel.stage(s)
    if stage.friction.response_decay:
        delay = stage_values(shared, "delay", stage.response_delay_min, s, n_s)
        response_min = np.zeros(us.size) if delay is None else delay.take(index)
        late = stays & (us >= friction.response_continue(p, response_min, funnel.response))
        lost[RESPONSE] = np.bincount(cell.take(np.flatnonzero(late)), minlength=lost.shape[1])
        stays &= ~late
    kept = np.flatnonzero(stays)
    survivors = cell.take(kept)
    reached = np.bincount(survivors, minlength=lost.shape[1])
    lost[RATE] = before.reached - reached - lost.sum(axis=0)
    return _Survivors(index.take(kept), survivors, reached, lost)


def _friction_losses(thresholds: FloatArray, u: FloatArray, cell: IntArray, lost: IntArray) -> None:
    """Count into ``lost`` (reasons, cells) the visitors whose uniform crossed a friction
    threshold (cells, frictions), each under the first (largest) threshold it crossed.

    Only the frictions that lower some cell's threshold can stop anybody, so only
    they are compared."""
    previous = np.concatenate([np.ones((len(thresholds), 1)), thresholds[:, :-1]], axis=1)
    active = np.flatnonzero((thresholds != previous).any(axis=0))
    if active.size == 0:
        return
    frictional = np.flatnonzero(u >= thresholds[:, -1].take(cell))
    stopped = cell.take(frictional)
    n_cells = lost.shape[1]
    if active.size == 1:
        lost[active[0]] = np.bincount(stopped, minlength=n_cells)
        return
    uf = u.take(frictional)
    crossed = np.zeros(frictional.size, np.int64)
    for f in active[:-1]:
        crossed += uf >= thresholds[:, f].take(stopped)
    counts = np.bincount(crossed * n_cells + stopped, minlength=active.size * n_cells)
    lost[active[::-1]] = counts.reshape(active.size, n_cells)


def _simulate_block(
    funnel: CompiledFunnel, shared: SharedDraws
) -> tuple[Outcome, IntArray, FloatArray]:
    """Tally one variant on one block; also the buyers (indices) and their order values."""
    reached, lost, buyers = _walk(funnel, shared)
    cells = visitor_cells(funnel, shared)
    paid = order_values_for(
        funnel, shared.uniforms("order")[buyers], cells.segment[buyers], cells.channel[buyers]
    )
    n_sc = len(funnel.segments) * len(funnel.channels)
    segment_channel = cells.segment[buyers] * len(funnel.channels) + cells.channel[buyers]
    revenue = np.bincount(segment_channel, weights=paid, minlength=n_sc).astype(np.float64)
    revenue_sq = np.bincount(segment_channel, weights=paid**2, minlength=n_sc).astype(np.float64)
    return outcome_from_cells(funnel, reached, lost, revenue, revenue_sq), buyers, paid


def simulate(funnel: CompiledFunnel, draws: VisitorDraws) -> Simulation:
    """Simulate one variant on one replication's visitors, block by block."""
    refuse_coupled_visitors([funnel], "vectorized")
    outcome: Outcome | None = None
    converted = np.zeros(draws.n_visitors, bool)
    revenue = np.zeros(draws.n_visitors)
    for start, stop in draws.blocks() or [(0, 0)]:
        block, buyers, paid = _simulate_block(funnel, SharedDraws(draws, start, stop))
        outcome = block if outcome is None else outcome + block
        converted[start + buyers] = True
        revenue[start + buyers] = paid
    assert outcome is not None
    return Simulation(outcome, converted, revenue, "vectorized")


def simulate_variants(
    funnels: Sequence[CompiledFunnel], draws: VisitorDraws, shares: Sequence[float]
) -> VariantRuns:
    """Every variant on one replication's visitors, plus the A/B test split by ``shares``.

    Keeps no per-visitor array beyond the current block.
    """
    refuse_coupled_visitors(funnels, "vectorized")
    outcomes: list[Outcome | None] = [None] * len(funnels)
    tally = SplitTally(len(funnels))
    for start, stop in draws.blocks() or [(0, 0)]:
        shared = SharedDraws(draws, start, stop)
        arm = assign_arms(shared, shares)
        tally.add_visitors(arm)
        for v, funnel in enumerate(funnels):
            block, buyers, _ = _simulate_block(funnel, shared)
            previous = outcomes[v]
            outcomes[v] = block if previous is None else previous + block
            tally.add_buyers(arm, v, buyers)
    return tally.runs([o for o in outcomes if o is not None], "vectorized")
