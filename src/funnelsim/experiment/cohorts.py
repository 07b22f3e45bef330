"""Lifetime economics by cohort: the aggregate engine's customers as counts, not lives.

A subscription box with a million customers does not need a million diaries to know
what its customers are worth: it needs, month by month, how many are still
subscribed. Customers leave independently of each other, so of the ``n`` still
active in one month the number still active in the next is Binomial(n, r_k), r_k
the chance that a customer active so far stays one more month (constant churn:
1 - churn; shifted-beta-geometric: S(k) / S(k - 1), which rises as the loyal remain,
see :func:`funnelsim.clv.monthly_retention`). A cohort's survivors are a chain of
binomials, one per month, however many customers it holds, and everything
:func:`funnelsim.clv.customer_value` sums over customers is a sum over months of
those counts:

* CLV: the first orders' margin plus, per month k, (monthly margin - nurture cost)
  x survivors_k x (1 + d)^-k (what happens within an active month enters through its
  expectation, as in :func:`funnelsim.clv.simulate_lifetimes`);
* active customer-months and referrals: the sum of the survivors;
* the simulated test's arm: a uniform random subset of the variant's customers, so
  how many of them lived exactly k months is multivariate hypergeometric over the
  cohorts' lifetime counts; their repeat orders are one Poisson draw (or fixed), and
  their first orders' sum has its closed form where one exists
  (:func:`funnelsim.engine.aggregate.value_sums`).

Cohorts are the customers of one (segment, channel) cell and one kind (guests,
registered at checkout). Only the first orders of the arm's customers are drawn one
by one, and only when their order values have no closed-form sum (log-normal,
uniform, empirical): everything else costs cells x months, not customers. Variants
whose customers of a cell live alike (same registered share and lifetime models)
share them: a variant with more customers there adds cohorts to those of the others,
as the aggregate engine shares order values (exact in distribution per variant; the
per-customer path pairs variants customer by customer instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from funnelsim import clv
from funnelsim.analysis.lifetime import ArmCustomers
from funnelsim.engine.aggregate import value_sums
from funnelsim.engine.outcomes import Outcome
from funnelsim.scenario.schema import Scenario

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
KINDS = 2  # guests, then customers registered at checkout
MAX_CUSTOMERS = 10**9 - 1
"""Customers of one variant the simulated test's arm is drawn from at most: NumPy's
multivariate hypergeometric draws lose precision beyond (``sum(colors) < 10**9``)."""


class VariantValue(NamedTuple):
    """What the economics keep of one variant's customers, per channel."""

    customers: IntArray
    clv: FloatArray
    cumulative_margin: FloatArray  # (channels, horizon + 1), summed over customers
    referrals: float


class CellKind(NamedTuple):
    """How one variant's customers of one cell live: the registered share and the
    lifetime models of guests and registered customers."""

    registers: float
    guest: clv.LifetimeModel
    member: clv.LifetimeModel


def cell_kinds(scenario: Scenario) -> list[CellKind]:
    """The :class:`CellKind` of every (segment, channel) cell, in cell order."""
    share = clv.registration_share(scenario)
    return [
        CellKind(
            share,
            clv.lifetime_model(scenario, segment, channel, registered=False),
            clv.lifetime_model(scenario, segment, channel, registered=True),
        )
        for segment in scenario.segments
        for channel in scenario.traffic.channels
    ]


def survivors(
    kinds: Sequence[Sequence[CellKind]], buyers: IntArray, months: int, rng: np.random.Generator
) -> IntArray:
    """(variants, cells, kinds, months + 1): customers of each variant, cell and kind
    still active k months after their first order, for ``buyers`` (variants, cells).

    In a cell, variants of the same :class:`CellKind` share their cohorts: the smallest
    count of customers is drawn first (how many register, then each kind's chain of
    binomials), a larger count adds a cohort of the customers beyond it.
    """
    starts: list[int] = []
    retention: list[FloatArray] = []
    receivers: list[tuple[int, list[int]]] = []
    for cell in range(buyers.shape[1]):
        groups: dict[CellKind, list[int]] = {}
        for v in np.flatnonzero(buyers[:, cell]):
            groups.setdefault(kinds[v][cell], []).append(int(v))
        for kind, members in groups.items():
            done = 0
            for count in np.unique(buyers[members, cell]):
                more = int(count) - done
                registered = int(rng.binomial(more, kind.registers))
                starts += [more - registered, registered]
                retention += [
                    clv.monthly_retention(kind.guest, months),
                    clv.monthly_retention(kind.member, months),
                ]
                receivers.append((cell, [v for v in members if buyers[v, cell] >= count]))
                done = int(count)
    chains = clv.survivor_counts(
        np.array(starts, np.int64), np.array(retention).reshape(len(starts), months), rng
    )
    counts = np.zeros((*buyers.shape, KINDS, months + 1), np.int64)
    for i, (cell, members) in enumerate(receivers):
        counts[members, cell] += chains[KINDS * i : KINDS * (i + 1)]
    return counts


def variant_value(
    scenario: Scenario, outcome: Outcome, kinds: Sequence[CellKind], counts: IntArray
) -> VariantValue:
    """One variant's customers, CLV and cumulative margin per channel and expected
    referrals, from its survivors ``counts`` (cells, kinds, months + 1)."""
    n_channels = len(scenario.traffic.channels)
    buyers, revenue = outcome.reached[-1].reshape(-1), outcome.revenue.reshape(-1)
    value = scenario.value.margin * outcome.revenue.sum(axis=0)
    cumulative = np.zeros((n_channels, scenario.value.horizon_months + 1))
    referrals = 0.0
    for cell in np.flatnonzero(buyers):
        channel, first_order = cell % n_channels, float(revenue[cell]) / float(buyers[cell])
        pair = (kinds[cell].guest, kinds[cell].member)
        for model, chain in zip(pair, counts[cell], strict=True):
            if chain[0] == 0:
                continue
            active = chain[1:]
            monthly = model.margin * model.order_value * model.repeat_per_month
            weights = clv.discounted_months(model, len(active))
            value[channel] += (monthly - model.nurture_cost_per_month) * float(active @ weights)
            cumulative[channel] += chain[0] * clv.cumulative_margin(model, first_order)
            referrals += model.referrals_per_month * float(active.sum())
    customers = outcome.reached[-1].sum(axis=0).astype(np.int64)
    return VariantValue(customers, value, cumulative, referrals)


def _lifetime_counts(counts: IntArray) -> IntArray:
    """Customers active exactly k months (the horizon's last month: at least k)."""
    exact = counts.copy()
    exact[..., :-1] -= counts[..., 1:]
    return exact


def arm_customers(
    scenario: Scenario,
    kinds: Sequence[CellKind],
    counts: IntArray,
    arm: tuple[int, int],
    rng: np.random.Generator,
) -> ArmCustomers:
    """What the simulated test's arm showing ``scenario`` sees of the customers it won
    (``arm``: its visitors and conversions), a uniform random subset of the variant's
    customers with survivors ``counts`` (cells, kinds, months + 1)."""
    lives = _lifetime_counts(counts)
    wins = min(arm[1], int(counts[..., 0].sum()))
    chosen = rng.multivariate_hypergeometric(lives.reshape(-1), wins).reshape(lives.shape)
    months_active = chosen @ np.arange(lives.shape[-1])  # (cells, kinds)
    models = [(kind.guest, kind.member) for kind in kinds]
    rates = np.array([[m.repeat_per_month for m in pair] for pair in models])
    poisson = np.array([[m.repeat_orders == "poisson" for m in pair] for pair in models])
    expected = rates * months_active
    sums = np.zeros(2)
    for cell, segment, channel in _cells(scenario):
        _, order_value = clv.customer_terms(scenario, segment, channel)
        sums += value_sums(order_value, int(chosen[cell].sum()), rng)
    return ArmCustomers(
        visitors=arm[0],
        customers=wins,
        revenue_sum=float(sums[0]),
        revenue_sum_sq=float(sums[1]),
        repeat_orders=float(rng.poisson(expected[poisson].sum()) + expected[~poisson].sum()),
        active_months=float(months_active.sum()),
        churned=int(chosen[..., : scenario.value.horizon_months].sum()),
    )


def _cells(scenario: Scenario) -> list[tuple[int, str, str]]:
    """Every cell's index, segment and channel, in cell order."""
    channels = list(scenario.traffic.channels)
    return [
        (g * len(channels) + c, segment, channel)
        for g, segment in enumerate(scenario.segments)
        for c, channel in enumerate(channels)
    ]


def cohort_values(
    variants: Sequence[Scenario],
    outcomes: Sequence[Outcome],
    arms: Sequence[tuple[int, int]],
    lifetime_rng: np.random.Generator,
    arm_rng: np.random.Generator,
) -> tuple[list[ArmCustomers], list[VariantValue]]:
    """Per variant, the simulated test's arm and the value of its customers, drawn by
    cohort (the aggregate engine's lifetime economics; see the module docstring)."""
    kinds = [cell_kinds(scenario) for scenario in variants]
    buyers = np.array([o.reached[-1].reshape(-1) for o in outcomes], np.int64)
    if buyers.sum(axis=1).max(initial=0) > MAX_CUSTOMERS:
        raise variants[0].error_at(
            ("traffic", "visitors_per_day"),
            f"a variant won {buyers.sum(axis=1).max():,} customers, more than the "
            f"{MAX_CUSTOMERS:,} the aggregate engine's simulated test can follow; "
            "lower traffic.visitors_per_day or days",
        )
    months = max(scenario.value.horizon_months for scenario in variants)
    counts = survivors(kinds, buyers, months, lifetime_rng)
    tests, values = [], []
    for v, (scenario, outcome) in enumerate(zip(variants, outcomes, strict=True)):
        tests.append(arm_customers(scenario, kinds[v], counts[v], arms[v], arm_rng))
        values.append(variant_value(scenario, outcome, kinds[v], counts[v]))
    return tests, values
