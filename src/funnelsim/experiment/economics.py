"""Lifetime value and acquisition economics of one replication.

Customers won by each variant live out their lifetimes (:mod:`funnelsim.clv`) on
shared uniforms, so variants differ only where they win different customers; the
simulated test's readout of CLV per visitor comes from the customers each arm won.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from funnelsim import clv
from funnelsim.analysis import lifetime
from funnelsim.engine.draws import MINUTES_PER_DAY, VisitorDraws
from funnelsim.engine.outcomes import Outcome
from funnelsim.experiment.cohorts import VariantValue, cohort_values
from funnelsim.scenario.schema import Scenario

FloatArray = NDArray[np.float64]
# Uniforms per customer slot: the 3 of clv.customer_value, then for the simulated test
# a sample key (which customers an arm wins) and the first order's value.
LIFETIME_COLUMNS = 5


READOUT_DRAWS = 2000  # Monte Carlo sd of a P(beats control) at most 0.011


@dataclass(frozen=True)
class Economics:
    """Lifetime value and acquisition economics of one replication, per variant (rows)."""

    clv_per_visitor: FloatArray
    clv_per_customer: FloatArray
    cac: FloatArray
    ltv_to_cac: FloatArray
    payback_months: FloatArray
    channel_visitors: FloatArray  # (variants, channels)
    channel_spend: FloatArray  # (variants, channels): paid visits and nurture messages
    channel_service_cost: FloatArray  # (variants, channels): staff and automation, shared
    channel_customers: FloatArray  # (variants, channels)
    channel_clv: FloatArray  # (variants, channels): CLV of all the channel's customers
    channel_payback_months: FloatArray  # (variants, channels)
    leads: FloatArray  # NaN without a stage that captures leads
    lead_to_customer_days: FloatArray
    referrals_per_customer: FloatArray  # expected visitors referred over the horizon
    test_clv: lifetime.CLVReadout  # the simulated test's readout of CLV per visitor


def _lifetime_uniforms(outcomes: Sequence[Outcome], draws: VisitorDraws) -> list[FloatArray]:
    """Per (segment, channel) cell, one row of uniforms per customer slot, enough for the
    variant that wins the most customers there; every variant reads the same rows."""
    most = np.max([o.reached[-1].reshape(-1) for o in outcomes], axis=0)
    return [
        draws.generator("lifetime", j).random((int(n), LIFETIME_COLUMNS))
        for j, n in enumerate(most)
    ]


def _value_terms(scenario: Scenario) -> lifetime.ValueTerms:
    value, nurture = scenario.value, scenario.value.nurture
    cost = nurture.messages_per_month * nurture.cost_per_message if nurture else 0.0
    return lifetime.ValueTerms(
        value.margin,
        value.horizon_months,
        clv.monthly_discount_rate(value.discount_rate_annual),
        cost,
    )


FirstOrders = dict[tuple[int, object], FloatArray]
"""First-order values of every customer slot, by cell and order-value distribution: the
slots' uniforms through its quantile function, computed once per replication."""


def _slot_first_orders(
    scenario: Scenario, cell: int, uniforms: Sequence[FloatArray], known: FirstOrders
) -> FloatArray:
    """First-order values of all the slots of ``cell`` under ``scenario``'s order-value
    distribution there (from ``known`` when a variant with the same one drew them)."""
    segment, channel = divmod(cell, len(scenario.traffic.channels))
    _, order_value = clv.customer_terms(
        scenario, list(scenario.segments)[segment], list(scenario.traffic.channels)[channel]
    )
    key = (cell, order_value)
    if key not in known:
        known[key] = order_value.ppf(uniforms[cell][:, 4])
    return known[key]


def _smallest(keys: FloatArray, m: int) -> NDArray[np.int64]:
    """Indices of the ``m`` smallest keys, in increasing order of key (as
    ``np.argsort(keys)[:m]`` for distinct keys, in linear time plus m log m)."""
    if m <= 0:
        return np.zeros(0, np.int64)
    if m >= keys.size:
        return np.argsort(keys)
    chosen = np.argpartition(keys, m - 1)[:m]
    return chosen[np.argsort(keys[chosen])]


def _chosen_first_orders(
    scenario: Scenario,
    uniforms: Sequence[FloatArray],
    per_cell: NDArray[np.int64],
    chosen: NDArray[np.int64],
    known: FirstOrders,
) -> FloatArray:
    """First-order values of the ``chosen`` customers (indices into the customers of all
    cells, in cell order), each from their cell's order-value distribution."""
    ends = np.cumsum(per_cell)
    cell = np.searchsorted(ends, chosen, side="right")
    slot = chosen - (ends - per_cell)[cell]
    paid = np.empty(chosen.size)
    for j in np.unique(cell):
        here = cell == j
        paid[here] = _slot_first_orders(scenario, int(j), uniforms, known)[slot[here]]
    return paid


def _test_arm(
    outcome: Outcome,
    scenario: Scenario,
    value: clv.CustomerValue,
    uniforms: Sequence[FloatArray],
    arm: tuple[int, int],
    rng: np.random.Generator,
    known: FirstOrders,
) -> lifetime.ArmCustomers:
    """What the arm of the simulated test that shows ``scenario`` sees of the customers
    it won (``arm``: its visitors and conversions), followed over the horizon.

    Assignment is independent of everything else, so an arm's customers are a uniform
    random subset of its variant's customers (those with the smallest sample keys);
    their first orders are drawn from their cell's order-value distribution, and their
    repeat orders given their lifetimes (one Poisson draw for the arm's total).
    """
    per_cell = outcome.reached[-1].reshape(-1)
    keys = np.concatenate([u[:n, 3] for u, n in zip(uniforms, per_cell, strict=True)])
    chosen = _smallest(keys, arm[1])
    lives = value.lifetimes
    paid = _chosen_first_orders(scenario, uniforms, per_cell, chosen, known)
    return lifetime.ArmCustomers(
        visitors=arm[0],
        customers=int(chosen.size),
        revenue_sum=float(paid.sum()),
        revenue_sum_sq=float((paid**2).sum()),
        repeat_orders=float(
            rng.poisson(lives.order_variance[chosen].sum())
            + (lives.repeat_orders - lives.order_variance)[chosen].sum()
        ),
        active_months=float(lives.active_months[chosen].sum()),
        churned=int(lives.churned[chosen].sum()),
    )


def _per_visitor(total: float, outcome: Outcome) -> float:
    return total / outcome.visitors if outcome.visitors else 0.0


def _spend_by_channel(scenario: Scenario, outcome: Outcome) -> FloatArray:
    """Acquisition spend per channel: paid visits, plus messages to nurtured leads."""
    cost = np.array([c.cost_per_visit for c in scenario.traffic.channels.values()])
    spend = outcome.reached[0].sum(axis=0) * cost
    for s, stage in enumerate(scenario.stages):
        if stage.nurture is not None:
            n = stage.nurture
            messages = clv.lead_messages(n.ready_per_message, n.max_messages)
            spend = spend + outcome.reached[s].sum(axis=0) * messages * n.cost_per_message
    return np.asarray(spend, dtype=float)


def _service_cost_by_channel(scenario: Scenario, outcome: Outcome) -> FloatArray:
    """The service desks' cost (engine.service: staff on duty and automation) per channel,
    each desk's shared in proportion to the leads each channel brought to its first stage
    (to the channel's visitors when no lead came; evenly when nobody came)."""
    cost = np.zeros(len(scenario.traffic.channels))
    for name, figures in outcome.service.items():
        first = next(s for s, stage in enumerate(scenario.stages) if stage.resource == name)
        total = figures["staff_cost"] + figures["automation_cost"]
        cost += total * _shares(outcome.reached[first].sum(axis=0), outcome.reached[0].sum(axis=0))
    return cost


def _shares(*weights: FloatArray) -> FloatArray:
    """The first of ``weights`` with a positive sum, normalised; even shares if none."""
    for w in weights:
        if w.sum() > 0:
            return np.asarray(w / w.sum(), dtype=float)
    return np.full(len(weights[0]), 1.0 / len(weights[0]))


def _lead_quality(scenario: Scenario, outcome: Outcome) -> tuple[float, float]:
    """Leads won, and the expected days from lead to customer (NaN, NaN without a stage
    that captures leads).

    The days add, over the stages after the lead stage, the mean dwell, the expected
    time a nurtured lead takes to become sales-ready, the mean response delay, and the
    mean queue wait plus service time: means over everybody who got there, an
    approximation of the time of those who went on to buy.
    """
    lead_stage = next((s for s, st in enumerate(scenario.stages) if st.captures_lead), None)
    if lead_stage is None:
        return math.nan, math.nan
    waits = dict(zip(outcome.queues.names, outcome.queues.mean_wait_min.tolist(), strict=True))
    minutes, days = 0.0, 0.0
    for stage in scenario.stages[lead_stage + 1 :]:
        minutes += stage.dwell_min.mean_value
        if stage.response_delay_min is not None:
            minutes += stage.response_delay_min.mean_value
        if stage.resource is not None:
            service = scenario.resources[stage.resource].service_min.mean_value
            minutes += waits.get(stage.resource, 0.0) + service
        if stage.nurture is not None:
            n = stage.nurture
            days += clv.lead_days_to_ready(n.interval_days, n.ready_per_message, n.max_messages)
    return float(outcome.reached[lead_stage + 1].sum()), days + minutes / MINUTES_PER_DAY


def _customer_values(
    variants: Sequence[Scenario],
    outcomes: Sequence[Outcome],
    tests: Sequence[tuple[int, int]],
    draws: VisitorDraws,
    rng: np.random.Generator,
) -> tuple[list[lifetime.ArmCustomers], list[VariantValue]]:
    """Per variant, the simulated test's arm and the value of its customers, every
    customer slot's life drawn once per lifetime model and shared by the variants."""
    uniforms = _lifetime_uniforms(outcomes, draws)
    shared = clv.SharedLifetimes([u[:, :3] for u in uniforms])
    first_orders: FirstOrders = {}
    arms, values = [], []
    for scenario, outcome, arm in zip(variants, outcomes, tests, strict=True):
        value = clv.customer_value(scenario, outcome.reached[-1], outcome.revenue, shared)
        arms.append(_test_arm(outcome, scenario, value, uniforms, arm, rng, first_orders))
        referrals = float(value.lifetimes.referrals.sum())
        values.append(VariantValue(value.customers, value.clv, value.cumulative_margin, referrals))
        del value  # one variant's customers in memory at a time, beside the shared lives
    return arms, values


def lifetime_economics(
    variants: Sequence[Scenario],
    outcomes: Sequence[Outcome],
    draws: VisitorDraws,
    test_visitors: NDArray[np.int64],
    test_conversions: NDArray[np.int64],
    by_cohort: bool = False,
) -> tuple[Economics, FloatArray]:
    """Customers' simulated lifetimes, acquisition economics per variant and channel, and
    the simulated test's Bayesian readout of CLV per visitor, for one replication; with
    the posterior draws of that readout, ``(variants, draws)``, control first.

    ``by_cohort`` draws the customers' lives as counts per cell and month
    (:mod:`funnelsim.experiment.cohorts`, the aggregate engine's way) instead of one
    customer at a time; both agree in distribution.
    """
    rng = draws.generator("readout", 1)
    tests = [(int(n), int(k)) for n, k in zip(test_visitors, test_conversions, strict=True)]
    if by_cohort:
        arms, values = cohort_values(variants, outcomes, tests, draws.generator("lifetime", 0), rng)
    else:
        arms, values = _customer_values(variants, outcomes, tests, draws, rng)
    prior = variants[0].experiment.prior
    test_clv_draws = lifetime.clv_draws(
        arms,
        [_value_terms(v) for v in variants],
        draws.generator("readout", 0),
        READOUT_DRAWS,
        (prior.alpha, prior.beta),
    )
    rows: dict[str, list[object]] = {name: [] for name in Economics.__dataclass_fields__}
    for scenario, outcome, value in zip(variants, outcomes, values, strict=True):
        spend = _spend_by_channel(scenario, outcome)
        service_cost = _service_cost_by_channel(scenario, outcome)
        acquisition = spend + service_cost
        customers = value.customers.astype(float)
        cac = clv.ratio(float(acquisition.sum()), float(customers.sum()))
        per_customer = clv.ratio(float(value.clv.sum()), float(customers.sum()))
        with np.errstate(divide="ignore", invalid="ignore"):
            curves = value.cumulative_margin / customers[:, None]
            channel_cac = acquisition / customers
        leads, days = _lead_quality(scenario, outcome)
        rows["clv_per_visitor"].append(_per_visitor(float(value.clv.sum()), outcome))
        rows["clv_per_customer"].append(per_customer)
        rows["cac"].append(cac)
        rows["ltv_to_cac"].append(clv.ratio(per_customer, cac))
        rows["payback_months"].append(
            clv.payback_months(value.cumulative_margin.sum(axis=0) / max(customers.sum(), 1.0), cac)
        )
        rows["channel_visitors"].append(outcome.reached[0].sum(axis=0).astype(float))
        rows["channel_spend"].append(spend)
        rows["channel_service_cost"].append(service_cost)
        rows["channel_customers"].append(customers)
        rows["channel_clv"].append(value.clv)
        rows["channel_payback_months"].append(
            [clv.payback_months(curve, c) for curve, c in zip(curves, channel_cac, strict=True)]
        )
        rows["leads"].append(leads)
        rows["lead_to_customer_days"].append(days)
        rows["referrals_per_customer"].append(clv.ratio(value.referrals, float(customers.sum())))
    arrays = {k: np.array(v, dtype=float) for k, v in rows.items() if k != "test_clv"}
    return Economics(**arrays, test_clv=lifetime.summarise_draws(test_clv_draws, 0)), test_clv_draws
