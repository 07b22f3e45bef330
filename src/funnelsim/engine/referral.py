"""Advocacy: customers who just bought bring new visitors while the test runs.

A customer who likes the shop tells a friend; the friend arrives through the
``referral`` channel, may buy, and may tell someone in turn. While a buyer is
active they refer visitors as a Poisson process at
``value.referral.per_customer_per_month``; they stop when they churn (after an
exponential time with the hazard of their monthly churn: better retention keeps
advocates active longer, so it brings traffic) or when the test ends. The SimPy
engine feeds the referred visitors back into the funnel.

Referred visitors need cards like any visitor (see :mod:`funnelsim.engine.draws`):
they come from a pool of their own, a second population of visitors drawn from
the replication's seed with every visitor in the referral channel, used in order
of arrival. The pool is sized at twice the expected referrals of a branching
process in which every visitor buys, plus 100; referrals stop if it runs out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.random import Generator, SeedSequence
from numpy.typing import NDArray

from funnelsim import clv
from funnelsim.engine.draws import MINUTES_PER_DAY, STREAMS, SharedDraws, VisitorDraws
from funnelsim.engine.model import CompiledFunnel, VisitorPlan, compile_funnel, plan_visitors

MINUTES_PER_MONTH = 365.25 / 12.0 * MINUTES_PER_DAY
POOL_EXTRA = 100


@dataclass
class ReferralPool:
    """The referred visitors one SimPy run may draw on, and how fast buyers refer."""

    funnel: CompiledFunnel  # the variant with every visitor in the referral channel
    shared: SharedDraws
    plan: VisitorPlan
    rate_per_min: float
    hazard_per_min: NDArray[np.float64]  # (segments, channels): a buyer's churn hazard
    horizon_min: float
    rng: Generator
    arrived: int = 0

    @property
    def size(self) -> int:
        return self.shared.n_visitors

    def next_visitor(self) -> int | None:
        """Index (within the pool) of the next referred visitor, None when exhausted."""
        if self.arrived >= self.size:
            return None
        self.arrived += 1
        return self.arrived - 1

    def active_min(self, segment: int, channel: int) -> float:
        """Minutes a new customer of this cell stays active (exponential)."""
        hazard = float(self.hazard_per_min[segment, channel])
        return math.inf if hazard == 0.0 else float(self.rng.exponential(1.0 / hazard))

    def gap_min(self) -> float:
        """Minutes until an active customer's next referral."""
        return float(self.rng.exponential(1.0 / self.rate_per_min))


def _churn_hazards(funnel: CompiledFunnel) -> NDArray[np.float64]:
    """Per (segment, channel), -ln(1 - mean monthly churn) per minute."""
    scenario = funnel.scenario
    hazards = np.empty((len(funnel.segments), len(funnel.channels)))
    for (g, c), _ in np.ndenumerate(hazards):
        retention, _ = clv.customer_terms(scenario, funnel.segments[g], funnel.channels[c])
        churn = retention.churn_per_month
        if retention.churn == "sbg" and retention.sbg is not None:
            churn = retention.sbg.alpha / (retention.sbg.alpha + retention.sbg.beta)
        hazards[g, c] = -math.log1p(-churn) / MINUTES_PER_MONTH if churn < 1.0 else math.inf
    return hazards


def referral_pool(funnel: CompiledFunnel, shared: SharedDraws) -> ReferralPool | None:
    """The pool of referred visitors for one run, or None when nobody refers."""
    scenario = funnel.scenario
    referral = scenario.value.referral
    if referral.per_customer_per_month <= 0.0:
        return None
    channels = scenario.traffic.channels
    forced = scenario.with_overrides(
        {f"traffic.channels.{name}.share": float(name == referral.channel) for name in channels}
    )
    draws = shared.draws
    rate = referral.per_customer_per_month / MINUTES_PER_MONTH
    per_buyer = rate * draws.horizon_min
    expected = shared.n_visitors * (per_buyer / (1.0 - per_buyer) if per_buyer < 0.5 else 1.0)
    days = draws.horizon_min / MINUTES_PER_DAY
    key = (*draws.seed.spawn_key, STREAMS.index("referral"))
    pool_draws = VisitorDraws(
        SeedSequence(draws.seed.entropy, spawn_key=key),
        (2.0 * expected + POOL_EXTRA) / days,
        int(days),
    )
    pool_funnel = compile_funnel(forced)
    pool_shared = SharedDraws(pool_draws)
    return ReferralPool(
        funnel=pool_funnel,
        shared=pool_shared,
        plan=plan_visitors(pool_funnel, pool_shared),
        rate_per_min=rate,
        hazard_per_min=_churn_hazards(funnel),
        horizon_min=draws.horizon_min,
        rng=draws.generator("referral", 0),
    )
