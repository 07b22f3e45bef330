"""The NumPy engine: every visitor of a block at once, stage by stage.

Where no resource is shared, one visitor's fate does not depend on another's,
so the whole funnel is a few array operations per stage: compare each
visitor's uniform with its thresholds, keep those who continue. Visitors are
processed in blocks (see :mod:`funnelsim.engine.draws`), so memory stays flat
however many visitors a run has, and the numbers are the same draws the SimPy
engine uses: on such scenarios the two engines agree visitor by visitor.
"""

from __future__ import annotations

import numpy as np

from funnelsim.engine.draws import VisitorDraws
from funnelsim.engine.model import (
    NO_LOSS,
    CompiledFunnel,
    VisitorPlan,
    decide_after_service,
    plan_visitors,
    stage_draws,
)
from funnelsim.engine.outcomes import Outcome, Simulation


def _walk_block(
    funnel: CompiledFunnel, draws: VisitorDraws, plan: VisitorPlan, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exit stage and loss reason of each visitor of a block."""
    n_s = len(funnel.stages)
    exit_stage = np.full(stop - start, n_s, np.int64)
    reason = np.full(stop - start, NO_LOSS, np.int8)
    alive = np.ones(stop - start, bool)
    needs_delay = any(st.friction.response_decay for st in funnel.scenario.stages)
    u_delay = draws.uniforms("delay", start, stop, n_s) if needs_delay else None
    for s, stage in enumerate(funnel.scenario.stages):
        response_min = None
        if stage.friction.response_decay and u_delay is not None:
            delay = stage_draws(stage.response_delay_min, u_delay[:, s])
            response_min = delay if delay is not None else np.zeros(stop - start)
        loss = plan.friction_loss[:, s]
        after = decide_after_service(
            plan.u_continue[:, s], plan.p_continue[:, s], response_min, funnel.response)
        loss = np.where(loss == NO_LOSS, after, loss)
        newly_lost = alive & (loss != NO_LOSS)
        exit_stage[newly_lost] = s
        reason[newly_lost] = loss[newly_lost]
        alive &= ~newly_lost
    return exit_stage, reason


def simulate(funnel: CompiledFunnel, draws: VisitorDraws) -> Simulation:
    """Simulate one variant on one replication's visitors, block by block."""
    if funnel.has_shared_resources:
        raise ValueError("the vectorized engine cannot simulate shared resources; use simpy")
    outcome: Outcome | None = None
    converted, revenue = [], []
    for start, stop in draws.blocks() or [(0, 0)]:
        plan = plan_visitors(funnel, draws, start, stop)
        exit_stage, reason = _walk_block(funnel, draws, plan, start, stop)
        bought = exit_stage == len(funnel.stages)
        paid = np.where(bought, plan.order_value, 0.0)
        block = Outcome.from_visitors(
            funnel.stages, funnel.segments, funnel.channels,
            plan.segment, plan.channel, exit_stage, reason, paid)
        outcome = block if outcome is None else outcome + block
        converted.append(bought)
        revenue.append(paid)
    assert outcome is not None
    return Simulation(outcome, np.concatenate(converted), np.concatenate(revenue), "vectorized")
