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
next, so what variants share is computed once per block: the draws, the visitors'
cells and every stage up to the first one where the variants differ (a variant
that changes the checkout walks the landing, product and cart pages of the
control's visitors, which common random numbers make its own).

The cost per visitor is set by the stages everybody reaches. They use no
Python per visitor, no boolean-mask indexing (``np.flatnonzero`` then ``take``
compacts several times faster than a random mask), no copy of the uniforms, and
count by ``np.bincount`` over cells; uniforms a variant cannot use are not
drawn. ``benchmarks/engines.py --only bound`` compares the engine with the rate
at which NumPy draws the uniforms it needs.
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
    StagePlan,
    VariantRuns,
    cells_key,
    count_below,
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


class _Preferences(NamedTuple):
    """Whether any variant's thresholds depend on the preferred payment method, contact
    option: if none does, a preference cannot change anybody's path."""

    payment: bool
    contact: bool


def _preferences_that_matter(funnels: Sequence[CompiledFunnel]) -> _Preferences:
    """Which preferences some stage of some variant treats differently by option."""

    def varies(factor: FloatArray, axis: int) -> bool:
        return bool((factor != factor.take([0], axis=axis)).any())

    return _Preferences(
        any(varies(f.friction.payment, 3) for f in funnels),
        any(varies(f.friction.contact, 4) for f in funnels),
    )


class _Plan(NamedTuple):
    """What a simulation prepares once per funnel, and reuses for every block."""

    funnel: CompiledFunnel
    stages: tuple[StagePlan, ...]
    preferences: _Preferences


def _plans(funnels: Sequence[CompiledFunnel]) -> list[_Plan]:
    preferences = _preferences_that_matter(funnels)
    return [_Plan(f, f.stage_plans, preferences) for f in funnels]


class _Survivors(NamedTuple):
    """Who of a block is still in the funnel after a stage, and whom that stage lost."""

    index: IntArray  # positions in the block
    cell: IntArray  # their cells
    reached: IntArray  # (cells,): how many reached the next stage
    lost: IntArray  # (reasons, cells): lost at this stage, by reason


def _walk(
    plan: _Plan, shared: SharedDraws
) -> tuple[IntArray, IntArray, _Survivors, tuple[Hashable, ...]]:
    """Visitors reaching each stage (S + 1, cells), lost there by reason (S, R, cells),
    the buyers (their positions in the block and cells), and the key of what decided
    them, for one block.

    Each stage's result is kept under the key of every stage up to it: variants that
    differ only at a later stage walk the earlier ones once per block, since common
    random numbers make their visitors and thresholds the same there.
    """
    n_cells = plan.funnel.cell_continue.shape[1]
    cells_decided_by, cells = _cell_index(plan.funnel, shared, plan.preferences)
    # the stages' uniforms are drawn as one row per visitor: their number decides them too
    key: tuple[Hashable, ...] = ("walk", len(plan.stages), *cells_decided_by)
    everybody = shared.derived(
        key,
        lambda: _Survivors(
            np.arange(shared.n_visitors),
            cells,
            np.bincount(cells, minlength=n_cells),
            np.zeros((len(REASONS), n_cells), np.int64),
        ),
    )
    walked = [everybody]
    for s, stage in enumerate(plan.stages):
        key = (*key, stage.key)
        walked.append(shared.derived(key, partial(_stage, plan, shared, s, walked[-1])))
    reached = np.stack([w.reached for w in walked])
    lost = np.stack([w.lost for w in walked[1:]])
    return reached, lost, walked[-1], key


def _cell_index(
    funnel: CompiledFunnel, shared: SharedDraws, preferences: _Preferences
) -> tuple[tuple[Hashable, ...], IntArray]:
    """Each visitor's cell (see :func:`~funnelsim.engine.model.visitor_cells`), and the
    key of what decides it.

    A preference that does not matter (see :class:`_Preferences`) is not drawn: every
    visitor is counted under its first option, and the outcome, which sums over
    preferences, is the same. Nor is a segment or channel split with one member.
    """
    key = ("cells", funnel.cell_shape, *cells_key(funnel), *preferences)
    if (funnel.payment_cdf != funnel.payment_cdf[0]).any() or (
        funnel.contact_cdf != funnel.contact_cdf[0]
    ).any():  # preferences by segment
        return key, visitor_cells(funnel, shared).cell
    _, n_c, n_p, n_k = funnel.cell_shape
    splits = [
        ("segment", funnel.segment_cdf, n_c * n_p * n_k),
        ("channel", funnel.channel_cdf, n_p * n_k),
        ("payment", funnel.payment_cdf[0] if preferences.payment else [], n_k),
        ("contact", funnel.contact_cdf[0] if preferences.contact else [], 1),
    ]
    small = np.min_scalar_type(funnel.cell_continue.shape[1] - 1)  # one byte for 256 cells

    def index() -> IntArray:
        cell = np.zeros(shared.n_visitors, small)
        for stream, cdf, stride in splits:
            u = shared.uniforms(stream) if len(cdf) > 1 else None
            for edge in cdf[:-1]:  # the last edge is 1.0: no uniform reaches it
                cell += (u >= edge) * small.type(stride)
        return cell.astype(np.int64)

    return key, shared.derived(key, index)


def _stage(plan: _Plan, shared: SharedDraws, s: int, before: _Survivors) -> _Survivors:
    """Play stage ``s`` for the visitors ``before`` who reached it."""
    funnel = plan.funnel
    n_s = len(funnel.stages)
    index, cell = before.index, before.cell
    u = shared.uniforms("continue", n_s)[:, s]  # a strided view: no copy
    everybody = index.size == u.size
    us = u if everybody else u.take(index)
    p = funnel.cell_continue[s].take(cell)
    stays = us < p
    lost = np.zeros_like(before.lost)
    _friction_losses(plan.stages[s], us, cell, lost)
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
    return _Survivors(kept if everybody else index.take(kept), survivors, reached, lost)


def _friction_losses(stage: StagePlan, u: FloatArray, cell: IntArray, lost: IntArray) -> None:
    """Count into ``lost`` (reasons, cells) the visitors whose uniform crossed an active
    friction threshold, each under the first (largest) threshold it crossed."""
    active, thresholds = stage.active, stage.thresholds
    if active.size == 0:
        return
    frictional = np.flatnonzero(u >= thresholds[:, -1].take(cell))
    stopped = cell.take(frictional)
    n_cells = lost.shape[1]
    if active.size == 1:
        lost[active[0]] = np.bincount(stopped, minlength=n_cells)
        return
    uf = u.take(frictional)
    crossed = np.zeros(frictional.size, np.int64)  # of the active frictions but the last
    for f in active[:-1]:
        crossed += uf >= thresholds[:, f].take(stopped)
    counts = np.bincount(crossed * n_cells + stopped, minlength=active.size * n_cells)
    lost[active[::-1]] = counts.reshape(active.size, n_cells)


def _simulate_block(plan: _Plan, shared: SharedDraws) -> tuple[Outcome, IntArray, FloatArray]:
    """Tally one variant on one block; also the buyers (indices) and their order values
    (computed once for variants with the same buyers and order-value distributions)."""
    funnel = plan.funnel
    reached, lost, buyers, walk_key = _walk(plan, shared)
    _, n_c, n_p, n_k = funnel.cell_shape
    segment = buyers.cell // (n_c * n_p * n_k)
    channel = buyers.cell // (n_p * n_k) % n_c
    paid = shared.derived(
        ("paid", *walk_key, funnel.order_value_dists),
        lambda: order_values_for(
            funnel, shared.uniforms("order").take(buyers.index), segment, channel
        ),
    )
    n_sc = len(funnel.segments) * n_c
    segment_channel = segment * n_c + channel
    revenue = np.bincount(segment_channel, weights=paid, minlength=n_sc).astype(np.float64)
    revenue_sq = np.bincount(segment_channel, weights=paid**2, minlength=n_sc).astype(np.float64)
    return outcome_from_cells(funnel, reached, lost, revenue, revenue_sq), buyers.index, paid


def simulate(funnel: CompiledFunnel, draws: VisitorDraws) -> Simulation:
    """Simulate one variant on one replication's visitors, block by block."""
    refuse_coupled_visitors([funnel], "vectorized")
    outcome: Outcome | None = None
    converted = np.zeros(draws.n_visitors, bool)
    revenue = np.zeros(draws.n_visitors)
    [plan] = _plans([funnel])
    for start, stop in draws.blocks() or [(0, 0)]:
        block, buyers, paid = _simulate_block(plan, SharedDraws(draws, start, stop))
        outcome = block if outcome is None else outcome + block
        converted[start + buyers] = True
        revenue[start + buyers] = paid
    assert outcome is not None
    return Simulation(outcome, converted, revenue, "vectorized")


def simulate_variants(
    funnels: Sequence[CompiledFunnel], draws: VisitorDraws, shares: Sequence[float]
) -> VariantRuns:
    """Every variant on one replication's visitors, plus the A/B test split by ``shares``.

    Keeps no per-visitor array beyond the current block; the test arm (see
    :func:`~funnelsim.engine.model.assign_arms`) is looked up for the buyers only.
    """
    refuse_coupled_visitors(funnels, "vectorized")
    outcomes: list[Outcome | None] = [None] * len(funnels)
    tally = SplitTally(len(funnels))
    edges = np.cumsum(shares)[:-1]
    plans = _plans(funnels)
    for start, stop in draws.blocks() or [(0, 0)]:
        shared = SharedDraws(draws, start, stop)
        assign = shared.uniforms("assign")
        tally.add_arm_sizes(
            np.diff([0, *(np.count_nonzero(assign < e) for e in edges), assign.size])
        )
        for v, plan in enumerate(plans):
            block, buyers, _ = _simulate_block(plan, shared)
            previous = outcomes[v]
            outcomes[v] = block if previous is None else previous + block
            tally.add_buyer_arms(count_below(edges, assign.take(buyers)), v)
    return tally.runs([o for o in outcomes if o is not None], "vectorized")
