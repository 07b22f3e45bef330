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

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from funnelsim import friction
from funnelsim.engine.draws import SharedDraws, VisitorDraws
from funnelsim.engine.model import (
    CompiledFunnel,
    SplitTally,
    VariantRuns,
    assign_arms,
    order_values_for,
    outcome_from_cells,
    refuse_coupled_visitors,
    stage_values,
    visitor_cells,
)
from funnelsim.engine.outcomes import REASON_INDEX, REASONS, Outcome, Simulation
from funnelsim.friction import FRICTION_REASONS

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
RATE, RESPONSE = REASON_INDEX["rate"], REASON_INDEX["response"]


def _loss_reasons(funnel: CompiledFunnel, s: int, cell: IntArray, u: FloatArray) -> IntArray:
    """Why visitors with ``u >= friction x rate`` leave stage ``s``: the first nested
    friction threshold their uniform crossed, else the base rate."""
    thresholds = funnel.cell_thresholds[s]
    reason = np.full(u.size, RATE, np.int64)
    frictional = u >= thresholds[cell, -1]
    crossed = (u[frictional, None] >= thresholds[cell[frictional]]).sum(axis=1)
    reason[frictional] = len(FRICTION_REASONS) - crossed
    return reason


def _walk(funnel: CompiledFunnel, shared: SharedDraws) -> tuple[IntArray, IntArray, IntArray]:
    """Visitors reaching each stage (S + 1, cells), lost there by reason (S, R, cells),
    and the indices of the buyers, for one block."""
    n_s, n_r = len(funnel.stages), len(REASONS)
    cells = visitor_cells(funnel, shared).cell
    n_cells = funnel.cell_continue.shape[1]
    u = shared.derived(
        ("continue by stage",), lambda: np.ascontiguousarray(shared.uniforms("continue", n_s).T)
    )
    reached = np.empty((n_s + 1, n_cells), np.int64)
    lost = np.zeros((n_s, n_r, n_cells), np.int64)
    alive: IntArray | None = None  # None: everybody
    cell = cells
    for s, stage in enumerate(funnel.scenario.stages):
        us = u[s] if alive is None else u[s][alive]
        reached[s] = np.bincount(cell, minlength=n_cells)
        p = funnel.cell_continue[s][cell]
        leaves = us >= p
        reason = _loss_reasons(funnel, s, cell[leaves], us[leaves])
        lost[s] = np.bincount(reason * n_cells + cell[leaves], minlength=n_r * n_cells).reshape(
            n_r, n_cells
        )
        if stage.friction.response_decay:
            delay = stage_values(shared, "delay", stage.response_delay_min, s, n_s)
            response_min = (
                np.zeros(us.size) if delay is None else (delay if alive is None else delay[alive])
            )
            late = ~leaves & (us >= friction.response_continue(p, response_min, funnel.response))
            lost[s, RESPONSE] = np.bincount(cell[late], minlength=n_cells)
            leaves |= late
        stays = ~leaves
        alive = np.flatnonzero(stays) if alive is None else alive[stays]
        cell = cell[stays]
    reached[n_s] = np.bincount(cell, minlength=n_cells)
    return reached, lost, np.arange(shared.n_visitors) if alive is None else alive


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
