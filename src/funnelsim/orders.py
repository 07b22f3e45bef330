"""Simulated order logs: what the shop's database would hold after the scenario's A/B test.

``funnelsim run SCENARIO --orders FILE.csv`` writes one row per order (customer,
variant, date, amount) of the customers each arm of the first replication's simulated
test won, followed for some months after the test: the kind of file ``funnelsim analyze
--transactions`` reads, with the ground truth known. Each customer's first order falls
on the day they bought during the test (visitors arrive at a constant rate, so the day
is uniform over the test). Their life after it follows the scenario's lifetime model
(:mod:`funnelsim.clv`) with everything drawn, where ``run`` uses expectations: months
active (geometric, or shifted-beta-geometric across customers), repeat orders in each
active month (Poisson, or the fixed rate), each on a uniform day of its month and with
a value drawn from the customer's order-value distribution.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from typing import IO, NamedTuple

import numpy as np
from numpy.random import Generator
from numpy.typing import NDArray

from funnelsim.clv import customer_terms, lifetime_model, registration_share, simulate_lifetimes
from funnelsim.engine.draws import VisitorDraws, replication_seeds
from funnelsim.experiment.engines import (
    EngineName,
    choose_engine,
    compile_variants,
    simulate_variants,
)
from funnelsim.scenario.schema import Distribution, Scenario

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
START = date(2026, 1, 1)
"""Date of the simulated test's first day (fixed, so a seed gives the same file)."""
DAYS_PER_MONTH = 365.25 / 12.0


class OrderLog(NamedTuple):
    """Orders of the customers of a simulated A/B test, one entry per order.

    Attributes:
        customer: Customer identifier (``variant-number``).
        variant: The arm that won the customer.
        day: Day of the order, counted from the test's first day (0).
        amount: Order value.
        visitors: Visitors per arm of the simulated test, control first.
        customers: Customers per arm (visitors who bought during the test).
        last_day: Last day of the log (test days + months followed, minus one).
    """

    customer: list[str]
    variant: list[str]
    day: IntArray
    amount: FloatArray
    visitors: dict[str, int]
    customers: dict[str, int]
    last_day: int

    def describe(self) -> str:
        """The log in one phrase: orders, customers and days covered."""
        return (
            f"{len(self.customer):,} orders of {sum(self.customers.values()):,} customers "
            f"over {self.last_day + 1} days"
        )

    def write_csv(self, stream: IO[str]) -> None:
        """The log as CSV: ``customer,variant,date,amount`` (dates YYYY-MM-DD)."""
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(["customer", "variant", "date", "amount"])
        for customer, variant, day, amount in zip(
            self.customer, self.variant, self.day.tolist(), self.amount.tolist(), strict=True
        ):
            when = START + timedelta(days=day)
            writer.writerow([customer, variant, when.isoformat(), f"{amount:.2f}"])


def observed_months(first_day: IntArray, last_day: int) -> IntArray:
    """Whole months between each first order and the last day of the log.

    >>> observed_months(np.array([0, 20]), 6 + 365)
    array([12, 11])
    """
    return np.floor((last_day - first_day) / DAYS_PER_MONTH).astype(np.int64)


def simulate_order_log(
    scenario: Scenario, months: int = 12, engine: EngineName = "auto"
) -> OrderLog:
    """The order log of the first replication's simulated test, followed ``months``
    months after the test ends (same seed, same file)."""
    seed = replication_seeds(scenario.seed, 1)[0]
    funnels = compile_variants(scenario)
    traffic = scenario.traffic
    draws = VisitorDraws(seed, traffic.visitors_per_day, traffic.days)
    runs = simulate_variants(
        funnels, draws, choose_engine(funnels, engine), list(scenario.split_shares().values())
    )
    rng = draws.generator("order_log", 0)
    last_day = traffic.days - 1 + round(months * DAYS_PER_MONTH)
    names = scenario.variant_names
    columns: list[tuple[list[str], list[str], IntArray, FloatArray]] = []
    arms = zip(names, funnels, runs.outcomes, runs.test_conversions.tolist(), strict=True)
    for name, funnel, outcome, won in arms:
        buyers = outcome.reached[-1].astype(float)  # (segments, channels)
        if won == 0 or buyers.sum() == 0:
            continue
        cells = rng.multinomial(won, (buyers / buyers.sum()).ravel())
        columns.append(_arm_orders(name, funnel.scenario, cells, last_day, rng))
    customer = [c for part in columns for c in part[0]]
    variant = [v for part in columns for v in part[1]]
    day = np.concatenate([part[2] for part in columns] or [np.zeros(0, np.int64)])
    amount = np.concatenate([part[3] for part in columns] or [np.zeros(0)])
    by_date = np.argsort(day, kind="stable")  # a shop's log runs in date order
    return OrderLog(
        customer=[customer[i] for i in by_date],
        variant=[variant[i] for i in by_date],
        day=day[by_date],
        amount=amount[by_date],
        visitors=dict(zip(names, runs.test_visitors.tolist(), strict=True)),
        customers=dict(zip(names, runs.test_conversions.tolist(), strict=True)),
        last_day=last_day,
    )


def _arm_orders(
    name: str, variant: Scenario, cells: IntArray, last_day: int, rng: Generator
) -> tuple[list[str], list[str], IntArray, FloatArray]:
    """Orders of one arm's customers, ``cells[j]`` of them in (segment, channel) cell j."""
    segments, channels = list(variant.segments), list(variant.traffic.channels)
    registers = registration_share(variant)
    days, amounts, owners = [], [], []
    number = 0
    for j, count in enumerate(cells.tolist()):
        if count == 0:
            continue
        segment, channel = segments[j // len(channels)], channels[j % len(channels)]
        order_value = customer_terms(variant, segment, channel)[1]
        first = rng.integers(0, variant.traffic.days, count)
        registered = rng.random(count) < registers
        for flag in (False, True):
            who = np.flatnonzero(registered == flag)
            if who.size == 0:
                continue
            model = lifetime_model(variant, segment, channel, registered=bool(flag))
            window = observed_months(first[who], last_day)
            life = simulate_lifetimes(
                model._replace(horizon_months=int(window.max())), rng.random((who.size, 2))
            ).active_months
            repeat_days, repeat_owner = _repeat_orders(
                np.minimum(life, window),
                first[who],
                model.repeat_per_month,
                model.repeat_orders == "poisson",
                rng,
            )
            owner = np.concatenate([who, who[repeat_owner]]) + number
            days.append(np.concatenate([first[who], repeat_days]))
            amounts.append(_values(order_value, owner.size, rng))
            owners.append(owner)
        number += count
    owner = np.concatenate(owners)
    return (
        [f"{name}-{i + 1}" for i in owner.tolist()],
        [name] * owner.size,
        np.concatenate(days).astype(np.int64),
        np.concatenate(amounts),
    )


def _repeat_orders(
    active: IntArray, first: IntArray, rate: float, poisson: bool, rng: Generator
) -> tuple[IntArray, IntArray]:
    """Days and customer indices of repeat orders: in each of a customer's ``active``
    months after the first order, Poisson(rate) orders (or the fixed rate: its whole
    part, plus one more with the probability of its fraction), each on a uniform day of
    that month (month k: days ((k - 1) M, k M] after the first order, M days a month)."""
    customer = np.repeat(np.arange(active.size), active)
    month = np.concatenate([np.arange(1, m + 1) for m in active.tolist()] or [np.zeros(0)])
    if poisson:
        counts = rng.poisson(rate, customer.size)
    else:
        counts = int(rate) + (rng.random(customer.size) < rate - int(rate))
    customer, month = np.repeat(customer, counts), np.repeat(month, counts)
    offset = np.ceil((month - 1 + rng.random(customer.size)) * DAYS_PER_MONTH)
    return (first[customer] + np.maximum(offset, 1)).astype(np.int64), customer


def _values(dist: Distribution, count: int, rng: Generator) -> FloatArray:
    return np.asarray(dist.ppf(rng.random(count)), dtype=float)
