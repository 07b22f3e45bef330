"""Visitors whose fate needs no clock: lost before their first timed stage.

Most visitors of a lead funnel leave at the landing page or at the lead magnet, long
before anybody waits for a rep. Whether they leave there, and why, depends on their own
draws only, so the SimPy engine decides them here with NumPy, exactly as its visitor
process would, and starts processes only for the visitors who reach a stage that takes
time (a dwell, a shared resource).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from funnelsim import friction
from funnelsim.engine.model import NO_LOSS, VisitorPlan
from funnelsim.engine.outcomes import REASON_INDEX
from funnelsim.friction import ResponseCoefficients

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
NOT_SETTLED = -1


def first_timed_stage(
    stage_resource: Sequence[int | None], dwell: Sequence[Sequence[float] | None]
) -> int:
    """The first stage that needs the clock (a resource or a dwell); the stage count if none."""
    for s, (resource, stay) in enumerate(zip(stage_resource, dwell, strict=True)):
        if resource is not None or stay is not None:
            return s
    return len(stage_resource)


def settled_losses(
    plan: VisitorPlan,
    delay: Sequence[FloatArray | None],
    decays: Sequence[bool],
    response: Sequence[ResponseCoefficients],
    timed: int,
) -> tuple[IntArray, IntArray]:
    """Per visitor, the stage before ``timed`` where they are lost and why (friction, then
    the base rate, then a late answer), or NOT_SETTLED for those who get further."""
    n = len(plan.u_continue)
    exit_stage = np.full(n, NOT_SETTLED, np.int64)
    reason = np.full(n, NO_LOSS, np.int64)
    alive = np.ones(n, bool)
    for s in range(timed):
        u, p = plan.u_continue[:, s], plan.p_continue[:, s]
        lost_to = np.where(plan.friction_loss[:, s] != NO_LOSS, plan.friction_loss[:, s], NO_LOSS)
        lost_to = np.where((lost_to == NO_LOSS) & (u >= p), REASON_INDEX["rate"], lost_to)
        if decays[s]:
            wait = delay[s] if delay[s] is not None else np.zeros(n)
            late = u >= friction.response_continue(p, wait, response[s])
            lost_to = np.where((lost_to == NO_LOSS) & late, REASON_INDEX["response"], lost_to)
        lost = alive & (lost_to != NO_LOSS)
        exit_stage[lost], reason[lost] = s, lost_to[lost]
        alive &= ~lost
    return exit_stage, reason
