"""Planning a test for profit: is it worth running, and for how long?

``funnelsim plan --objective decision`` asks how long a test must run before its
decision can be trusted. A team with finite traffic asks a different question:
every test visitor shown a worse variant costs money, and so does rolling out
the wrong variant afterwards. This module prices both for a scenario: it
draws worlds (each variant's true profit per visitor), simulates tests of
increasing length in each, rolls out what the Bayes rule would ship to the rest
of the population and averages the profit (see :mod:`funnelsim.preposterior`).

Profit per visitor is margin x revenue per visitor, or CLV per visitor when the
scenario judges its test on CLV (``experiment.metric``). The population is the
scenario's traffic over the planned test (``traffic.days``) and the
``experiment.rollout_days`` after it, unless given. Test visitors convert or not
(Bernoulli responses), at the funnel's conversion rate; a conversion is worth
its variant's profit per converting visitor.

The worlds are the very worlds ``funnelsim run`` reports its intervals over
(:func:`funnelsim.propagation.value_worlds`: the scenario's uncertain assumptions
drawn from its seed, every variant valued in each); each simulated test plays in
one of them, drawn at random. Without uncertain assumptions (or with
``experiment.assumptions: fixed``) the world is one: the engine's estimate of
every variant's rates. Then the best variant is known, no test can pay (the
profit-maximising length is 0 days and the expected value of perfect information
is 0), and the plan says so and why. Another sampler of worlds plugs in as the
``worlds`` argument of :func:`plan_profit`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from funnelsim import formatting as fmt
from funnelsim.execution import SERIAL, Execution
from funnelsim.experiment.readout import decision_rule
from funnelsim.files import atomic_writer, write_csv, write_png
from funnelsim.intervals import Interval
from funnelsim.numbers import finite_or_none
from funnelsim.preposterior import (
    BernoulliResponses,
    ProfitCurve,
    ShipOrKeep,
    WorldDraws,
    WorldSampler,
    profit_curve,
)
from funnelsim.propagation import value_worlds
from funnelsim.results import ValueOfInformation
from funnelsim.scenario.schema import Scenario
from funnelsim.sweeps import SweepError, variant_means
from funnelsim.tables import EMPTY, Cell, Column, Row, Table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from funnelsim.results import ExperimentResult
    from funnelsim.strategies import Truth
    from funnelsim.worlds import WorldValues

FloatArray = NDArray[np.float64]
NO_UNCERTAINTY = "no uncertainty in the assumptions: the test buys nothing"
FIXED = " (they are fixed: experiment.assumptions or --assumptions fixed)"
INTERVAL = "95% Monte Carlo t-interval over the simulated worlds and tests"
RULE_SIMULATIONS = 300
"""Simulated tests the ship / keep rule reads by default (it is far slower than Bayes)."""


def certainty_note(
    uncertain_assumptions: bool, curve: ProfitCurve, ship_now: str, fixed: bool = False
) -> str:
    """Why no test can pay, or "" when one can (some world's best arm differs).
    ``fixed``: the scenario has uncertain assumptions but they are fixed."""
    if curve.uncertain:
        return ""
    if not uncertain_assumptions:
        return NO_UNCERTAINTY + (FIXED if fixed else "")
    return f"{ship_now} is best in every simulated world: the test buys nothing"


def assumptions_fixed(scenario: Scenario) -> bool:
    """Whether ``scenario`` has uncertain assumptions that ``experiment.assumptions``
    fixes at their stated values."""
    return scenario.experiment.assumptions == "fixed" and bool(scenario.assumptions)


class ScenarioWorld(NamedTuple):
    """The engine's estimate of every variant's rates (control first).

    Attributes:
        names: Variant names.
        conversion: Conversion probability per visitor.
        profit_per_visitor: Margin x revenue per visitor, or CLV per visitor.
    """

    names: tuple[str, ...]
    conversion: FloatArray
    profit_per_visitor: FloatArray

    @property
    def value_per_conversion(self) -> FloatArray:
        """Profit per converting visitor (1 where nobody converts)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.conversion > 0, self.profit_per_visitor / self.conversion, 1.0)


def profit_metric(scenario: Scenario) -> str:
    """What a visitor's profit is: ``clv_per_visitor`` when the test is judged on CLV,
    else margin x ``revenue_per_visitor``."""
    return (
        "clv_per_visitor"
        if scenario.experiment.metric == "clv_per_visitor"
        else "revenue_per_visitor"
    )


def scenario_world(
    scenario: Scenario,
    replications: int = 20,
    execution: Execution = SERIAL,
) -> ScenarioWorld:
    """Every variant's conversion and profit per visitor, the mean of ``replications``
    engine runs (as ``funnelsim run`` reports them)."""
    metrics = list(dict.fromkeys(("conversion", profit_metric(scenario))))
    return world_of(scenario, variant_means(scenario, metrics, replications, execution))


def world_of(scenario: Scenario, means: Mapping[str, FloatArray]) -> ScenarioWorld:
    """The world of each variant's (control first) mean ``conversion`` and
    :func:`profit_metric` per visitor, as engine runs estimate them."""
    metric = profit_metric(scenario)
    margin = 1.0 if metric == "clv_per_visitor" else scenario.value.margin
    return ScenarioWorld(
        tuple(scenario.variant_names),
        np.asarray(means["conversion"], dtype=float),
        margin * np.asarray(means[metric], dtype=float),
    )


def fixed_world(world: ScenarioWorld) -> WorldSampler:
    """The sampler of a single, certain world: every draw is ``world``."""

    def sample(n: int, _rng: np.random.Generator) -> WorldDraws:
        return WorldDraws(
            np.tile(world.profit_per_visitor, (n, 1)), np.tile(world.conversion, (n, 1))
        )

    return sample


def assumption_sampler(
    scenario: Scenario, valued: WorldValues, metric: str | None = None
) -> WorldSampler:
    """The sampler of ``valued``'s worlds (``run``'s worlds of ``scenario``): each draw
    is one of them, uniformly at random, with every variant's conversion and profit per
    visitor there (margin x revenue, or CLV, as ``metric`` or :func:`profit_metric`
    says)."""
    metric = metric or profit_metric(scenario)
    margin = 1.0 if metric == "clv_per_visitor" else scenario.value.margin
    profit, conversion = margin * valued.metric(metric), valued.metric("conversion")

    def sample(n: int, rng: np.random.Generator) -> WorldDraws:
        rows = rng.integers(len(profit), size=n)
        return WorldDraws(profit[rows], conversion[rows])

    return sample


def population_of(scenario: Scenario, population: int | None = None) -> int:
    """Visitors in all, test included: ``population``, or the scenario's traffic over
    ``traffic.days`` and ``experiment.rollout_days``."""
    if population is not None:
        return population
    days = scenario.traffic.days + scenario.experiment.rollout_days
    return round(days * scenario.traffic.visitors_per_day)


class PowerBased(NamedTuple):
    """The two-proportion z-test's length for the most promising variant.

    Attributes:
        variant: The variant tested against the control (best prior profit).
        alpha: Significance level, Bonferroni-split over the comparisons.
        power: The z-test's power.
        days: Days of the scenario's traffic the test takes (inf if rates are equal).
    """

    variant: str
    alpha: float
    power: float
    days: float


def _day_visitors(days: Sequence[int], shares: FloatArray, per_day: float) -> NDArray[np.int64]:
    return np.floor(np.outer(days, shares) * per_day + 1e-6).astype(np.int64)


def value_of_information(
    scenario: Scenario,
    world: ScenarioWorld,
    worlds: WorldSampler | None = None,
    simulations: int = 200,
) -> ValueOfInformation:
    """What the planned test is worth against shipping the best prior variant now, and
    the profit-maximising length (Bayes rule, population as in :func:`plan_profit`)."""
    population = population_of(scenario)
    per_day = scenario.traffic.visitors_per_day
    planned = scenario.traffic.days
    shares = np.array(list(scenario.split_shares().values()))
    days = day_grid(planned + min(planned, scenario.experiment.rollout_days), 30, [planned])
    curve = profit_curve(
        worlds or fixed_world(world),
        BernoulliResponses(tuple(world.value_per_conversion)),
        _day_visitors(days, shares, per_day),
        population,
        simulations,
        scenario.seed,
    )
    ship_now = world.names[curve.ship_now]
    return ValueOfInformation(
        planned_days=planned,
        worth=curve.curve[days.index(planned)].evsi,
        ship_now=ship_now,
        population=population,
        simulations=simulations,
        best_days=days[curve.optimal],
        currency=scenario.currency,
        note=certainty_note(worlds is not None, curve, ship_now, assumptions_fixed(scenario)),
    )


def run_value_of_information(result: ExperimentResult) -> ValueOfInformation:
    """:func:`value_of_information` of a finished run: its engine estimates, and its
    worlds of the uncertain assumptions when it has them."""
    scenario = result.scenario
    metrics = ("conversion", profit_metric(scenario))
    world = world_of(
        scenario, {m: np.array([v.metrics[m].mean for v in result.variants]) for m in metrics}
    )
    valued = None if result.assumptions is None else result.assumptions.values
    worlds = None if valued is None else assumption_sampler(scenario, valued)
    return value_of_information(scenario, world, worlds)


def roll_for_bench(
    names: Sequence[str], truth: Truth, scenario: Scenario, seed: int
) -> tuple[int, int] | None:
    """``test_and_roll``'s test length (days) and the arm it ships without a test, when
    ``names`` include it (else None): the profit-maximising length over the bench's
    horizon (``truth.days`` of traffic), profit per visitor being margin x revenue per
    visitor. The team plans before it knows the truth: each simulated test plays in one
    of run's worlds of ``scenario``'s uncertain assumptions; without any, or when the
    bench judges a stage's reach, in the truth's world."""
    if "test_and_roll" not in names:
        return None
    revenue = "revenue_per_visitor"
    world = ScenarioWorld(
        truth.names, truth.conversion, scenario.value.margin * truth.revenue_per_visitor
    )
    valued = None
    if truth.metric == "conversion":
        valued = value_worlds(scenario, scenario.experiment.replications, seed)
    days = day_grid(truth.days, 30, [])
    curve = profit_curve(
        fixed_world(world) if valued is None else assumption_sampler(scenario, valued, revenue),
        BernoulliResponses(),
        _day_visitors(days, truth.shares, truth.visitors_per_day),
        math.floor(truth.days * truth.visitors_per_day),
        200,
        seed,
    )
    return days[curve.optimal], curve.ship_now


def power_based(
    world: ScenarioWorld, shares: FloatArray, visitors_per_day: float, alpha: float, power: float
) -> PowerBased:
    """The z-test's length for the control against the variant of highest profit per
    visitor (Bonferroni over ``len(shares) - 1`` comparisons)."""
    from funnelsim.planning import two_proportion_sample_size  # SciPy's stats: plan only

    best = 1 + int(np.argmax(world.profit_per_visitor[1:]))
    split_alpha = alpha / (len(world.names) - 1)
    ratio = float(shares[best] / shares[0])
    size = two_proportion_sample_size(
        float(world.conversion[0]), float(world.conversion[best]), split_alpha, power, ratio
    )
    days = max(size.control / shares[0], size.variant / shares[best]) / visitors_per_day
    return PowerBased(world.names[best], split_alpha, power, float(days))


def day_grid(max_days: int, lengths: int, include: Sequence[int]) -> list[int]:
    """0 and roughly geometric days up to ``max_days`` (``lengths`` in all, fewer if
    ``max_days`` is small), and ``include``.

    >>> day_grid(60, 8, [14])
    [0, 1, 2, 4, 8, 14, 15, 30, 60]
    """
    wanted = min(lengths, max_days + 1)
    days: set[int] = set()
    for points in range(max(lengths - 1, 1), 10 * lengths):
        days = {0, *(round(float(d)) for d in np.geomspace(1, max(max_days, 1), points))}
        if len(days) >= wanted:
            break
    return sorted(d for d in days | set(include) if 0 <= d <= max_days)


@dataclass(frozen=True)
class ProfitPlan:
    """A finished profit plan: the world, the curve in days, and the reference options."""

    scenario: str
    currency: str
    profit_measure: str
    world: ScenarioWorld
    uncertain_assumptions: bool
    assumption_worlds: int  # run's worlds the tests play in (0: one world, or a sampler)
    fixed_assumptions: bool  # uncertain assumptions that experiment.assumptions fixes
    visitors_per_day: float
    days: tuple[int, ...]
    curve: ProfitCurve
    planned_days: int
    power: PowerBased
    seed: int

    @property
    def optimal_days(self) -> int:
        """The profit-maximising test length."""
        return self.days[self.curve.optimal]

    @property
    def ship_now(self) -> str:
        """The variant with the best prior expected profit."""
        return self.world.names[self.curve.ship_now]

    def at(self, days: float) -> int | None:
        """Index of the curve point of ``days`` (rounded up), if it was read."""
        if not math.isfinite(days):
            return None
        return self.days.index(math.ceil(days)) if math.ceil(days) in self.days else None

    @property
    def planned_point(self) -> int | None:
        """Index of the planned test's curve point (None if it exceeds the population)."""
        return self.at(self.planned_days)

    @property
    def power_point(self) -> int | None:
        """Index of the power-based test's curve point, if it was read."""
        return self.at(self.power.days)

    @property
    def note(self) -> str:
        """Why no test can pay, or "" when one can."""
        return certainty_note(
            self.uncertain_assumptions, self.curve, self.ship_now, self.fixed_assumptions
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``plan.json`` document."""
        return profit_plan_dict(self)


def plan_profit(
    scenario: Scenario,
    population: int | None = None,
    variant: str | None = None,
    lengths: int = 30,
    max_days: int | None = None,
    simulations: int = 1000,
    rule_simulations: int = RULE_SIMULATIONS,
    alpha: float = 0.05,
    power: float = 0.95,
    truth_replications: int = 20,
    execution: Execution = SERIAL,
    worlds: WorldSampler | None = None,
) -> ProfitPlan:
    """The expected profit of tests of ``scenario`` of about ``lengths`` lengths up to
    ``max_days`` (default: twice the longer of the planned and the power-based test,
    within the population), with the planned (``traffic.days``) and the power-based
    lengths among them; each scored under the Bayes rule on ``simulations`` simulated
    tests and under the scenario's ship / stop / keep-testing rule on the first
    ``rule_simulations`` of them.

    ``variant`` plans the control against that variant only. Each simulated test plays
    in one of ``run``'s worlds of the scenario's uncertain assumptions (the same seed
    gives the same worlds); without any the world is the engine's single estimate.
    ``worlds`` replaces them by another sampler. ``execution`` gives seed, engine and
    executor; its ``progress`` counts engine replications and simulated tests read by the
    ship / keep rule (``truth_replications + rule_simulations``).
    """
    from funnelsim.planning import MAX_DAYS, pair_scenario

    if variant is not None:
        scenario = pair_scenario(scenario, variant)
    if len(scenario.variant_names) < 2:
        raise SweepError("a profit plan needs a control and at least one variant")
    seed = execution.seed_or(scenario.seed)
    world = scenario_world(scenario, truth_replications, execution)
    valued = None
    if worlds is None:
        valued = value_worlds(  # run's worlds: simulated ones as many as its replications
            scenario,
            scenario.experiment.replications,
            seed,
            execution.processes,
            execution.dask,
        )
        worlds = None if valued is None else assumption_sampler(scenario, valued)
    population = population_of(scenario, population)
    shares = np.array(list(scenario.split_shares().values()))
    per_day = scenario.traffic.visitors_per_day
    reference = power_based(world, shares, per_day, alpha, power)
    fits = math.floor(population / per_day)
    if max_days is None:
        longest = max(scenario.traffic.days, reference.days if math.isfinite(reference.days) else 0)
        max_days = math.ceil(2 * longest)
    max_days = min(max_days, fits, MAX_DAYS)
    if max_days < 1:
        raise SweepError(f"population {population:,} is less than a day of traffic")
    include = [scenario.traffic.days]
    if math.isfinite(reference.days):
        include.append(math.ceil(reference.days))
    days = day_grid(max_days, lengths, include)
    visitors = _day_visitors(days, shares, per_day)
    prior = (scenario.experiment.prior.alpha, scenario.experiment.prior.beta)
    curve = profit_curve(
        worlds or fixed_world(world),
        BernoulliResponses(tuple(world.value_per_conversion)),
        visitors,
        population,
        simulations,
        seed,
        ShipOrKeep(decision_rule(scenario), prior),
        rule_simulations,
        execution.processes,
        execution.dask,
        execution.progress,
    )
    measure = (
        "CLV per visitor"
        if profit_metric(scenario) == "clv_per_visitor"
        else "margin x revenue per visitor"
    )
    return ProfitPlan(
        scenario.name,
        scenario.currency,
        measure,
        world,
        worlds is not None,
        0 if valued is None else len(valued.worlds),
        assumptions_fixed(scenario),
        per_day,
        tuple(days),
        curve,
        scenario.traffic.days,
        reference,
        seed,
    )


# --------------------------------------------------------------------------- output


def _interval(value: Interval) -> dict[str, float | None]:
    return {k: finite_or_none(v) for k, v in value._asdict().items()}


def _visitors(plan: ProfitPlan, index: int) -> int | dict[str, int]:
    visitors = plan.curve.curve[index].visitors
    if len(set(visitors)) == 1:
        return visitors[0]
    return dict(zip(plan.world.names, visitors, strict=True))


def _option(plan: ProfitPlan, index: int) -> dict[str, Any]:
    point = plan.curve.curve[index]
    return {
        "days": plan.days[index],
        "visitors_per_arm": _visitors(plan, index),
        "expected_profit": _interval(point.expected_profit),
    }


def profit_plan_dict(plan: ProfitPlan) -> dict[str, Any]:
    """``plan.json`` for ``--objective profit`` (money in the scenario's currency)."""
    curve = plan.curve
    power = plan.power_point
    return {
        "objective": "profit",
        "scenario": plan.scenario,
        "currency": plan.currency,
        "profit": plan.profit_measure,
        "interval": INTERVAL,
        "population": curve.population,
        "simulations": curve.simulations,
        "seed": plan.seed,
        "uncertain_assumptions": plan.uncertain_assumptions,
        "assumption_worlds": plan.assumption_worlds,
        "optimal": _option(plan, curve.optimal),
        "evpi": curve.evpi.mean,
        "evpi_conversions": None if curve.evpi_conversions is None else curve.evpi_conversions.mean,
        "ship_now": {"variant": plan.ship_now, "expected_profit": _interval(curve.ship_now_profit)},
        "planned": None if plan.planned_point is None else _option(plan, plan.planned_point),
        "power_based": {
            "variant": plan.power.variant,
            "alpha": plan.power.alpha,
            "power": plan.power.power,
            "days": finite_or_none(plan.power.days),
            **(
                {}
                if power is None
                else {"expected_profit": _option(plan, power)["expected_profit"]}
            ),
        },
        "perfect_information": {"expected_profit": _interval(curve.perfect_information_profit)},
        "curve": [
            {
                **_option(plan, j),
                "evsi": point.evsi.mean,
                "evsi_conversions": None
                if point.evsi_conversions is None
                else point.evsi_conversions.mean,
                "rule_expected_profit": None
                if point.rule_profit is None
                else _interval(point.rule_profit),
            }
            for j, point in enumerate(curve.curve)
        ],
    }


def profit_plan_rows(plan: ProfitPlan) -> list[dict[str, Any]]:
    """One row per test length, for ``plan.csv``."""
    rows = []
    for days, point in zip(plan.days, plan.curve.curve, strict=True):
        row: dict[str, Any] = {"days": days}
        row.update(
            {f"visitors_{n}": v for n, v in zip(plan.world.names, point.visitors, strict=True)}
        )
        row.update({f"expected_profit_{k}": v for k, v in point.expected_profit._asdict().items()})
        row["evsi"] = point.evsi.mean
        if point.evsi_conversions is not None:
            row["evsi_conversions"] = point.evsi_conversions.mean
        if point.rule_profit is not None:
            row.update({f"rule_profit_{k}": v for k, v in point.rule_profit._asdict().items()})
        rows.append(row)
    return rows


def write_profit_plan(plan: ProfitPlan, out: Path) -> list[Path]:
    """Write ``plan.json``, ``plan.csv`` and ``plan.png`` under ``out``."""
    paths = [out / "plan.json", out / "plan.csv", out / "plan.png"]
    with atomic_writer(paths[0]) as stream:
        json.dump(profit_plan_dict(plan), stream, indent=2, allow_nan=False)
        stream.write("\n")
    write_csv(profit_plan_rows(plan), paths[1])
    write_png(profit_plan_figure(plan), paths[2])
    return paths


def _money(value: float, currency: str, digits: int = 0) -> str:
    """An amount in whole units of its currency, as every table shows money.

    >>> _money(-1234.5, "EUR"), _money(0.8149, "EUR", 2), _money(12, "CHF")
    ('-€1,234', '€0.81', '12 CHF')
    """
    return fmt.money(value, currency, digits)


def _with_interval(value: Interval, currency: str) -> str:
    """``mean [low, high]`` in money; the mean alone when the interval rounds to a point."""
    low, high = _money(value.low, currency), _money(value.high, currency)
    if low == high:
        return _money(value.mean, currency)
    return f"{_money(value.mean, currency)} [{low}, {high}]"


def profit_plan_summary(plan: ProfitPlan) -> list[str]:
    """Plain sentences: the world, the population, the best length and the references,
    each with what it leaves on the table against perfect information."""
    curve, c = plan.curve, plan.currency
    perfect = curve.perfect_information_profit.mean

    def option(label: str, index: int) -> str:
        point = curve.curve[index]
        left = perfect - point.expected_profit.mean
        return (
            f"{label}: {plan.days[index]} days ({_visitors_text(plan, index)}): "
            f"{_with_interval(point.expected_profit, c)}; leaves {_money(left, c)} on the table."
        )

    world = ", ".join(
        f"{n} {_money(v, c, 2)}"
        for n, v in zip(plan.world.names, plan.world.profit_per_visitor, strict=True)
    )
    lines = [
        f"Profit per visitor ({plan.profit_measure}, engine): {world}.",
        f"Population: {curve.population:,} visitors, test included "
        f"({curve.population / plan.visitors_per_day:,.0f} days of traffic). Expected "
        f"profit of each option with its 95% Monte Carlo interval over "
        f"{curve.simulations:,} simulated worlds and tests{_worlds_text(plan)}:",
    ]
    if plan.note:
        lines.append(f"Note: {plan.note}.")
    lines += [
        option("Profit-maximising test", curve.optimal),
        f"Ship {plan.ship_now} now (no test): {_with_interval(curve.ship_now_profit, c)}; "
        f"leaves {_money(perfect - curve.ship_now_profit.mean, c)} on the table.",
    ]
    if plan.planned_point is not None:
        lines.append(option("Planned test (traffic.days)", plan.planned_point))
    power = plan.power_point
    if power is not None:
        lines.append(
            option(
                f"Power-based test (z-test {plan.power.variant} vs {plan.world.names[0]}, "
                f"alpha {plan.power.alpha:.3g}, power {plan.power.power:.0%})",
                power,
            )
        )
    elif math.isfinite(plan.power.days):
        lines.append(f"Power-based test: {plan.power.days:,.1f} days, beyond the population.")
    else:
        lines.append("Power-based test: none (the conversion rates are equal).")
    conversions = curve.evpi_conversions
    in_conversions = "" if conversions is None else f" ({conversions.mean:,.1f} conversions)"
    lines.append(
        f"Perfect information: {_with_interval(curve.perfect_information_profit, c)}; "
        f"expected value of perfect information {_with_interval(curve.evpi, c)}{in_conversions}."
    )
    return lines


def _worlds_text(plan: ProfitPlan) -> str:
    """Where the simulated worlds come from, when they are run's worlds."""
    if not plan.assumption_worlds:
        return ""
    return (
        f" (each test in one of the {plan.assumption_worlds:,} worlds of the uncertain "
        "assumptions that funnelsim run reports over)"
    )


def _visitors_text(plan: ProfitPlan, index: int) -> str:
    visitors = _visitors(plan, index)
    if isinstance(visitors, int):
        return f"{visitors:,} per arm"
    return ", ".join(f"{n} {v:,}" for n, v in visitors.items())


def profit_plan_table(plan: ProfitPlan) -> Table:
    """The expected profit against the test's length, each with its 95% Monte Carlo
    interval below; the profit-maximising length highlighted, the planned one marked;
    the summary (:func:`profit_plan_summary`) as its notes."""
    c = plan.currency
    rows = []
    for j, (days, point) in enumerate(zip(plan.days, plan.curve.curve, strict=True)):
        conversions = point.evsi_conversions
        rows.append(
            Row(
                (
                    Cell(str(days), tone="pending" if j == plan.planned_point else ""),
                    Cell(_visitors_text(plan, j).removesuffix(" per arm")),
                    _money_cell(point.expected_profit, c),
                    Cell(_money(point.evsi.mean, c)),
                    EMPTY if conversions is None else Cell(fmt.decimal(conversions.mean)),
                    EMPTY if point.rule_profit is None else _money_cell(point.rule_profit, c),
                ),
                highlight=j == plan.curve.optimal,
            )
        )
    return Table(
        f"{plan.scenario}: expected profit of test and rollout to "
        f"{plan.curve.population:,} visitors",
        (
            Column("days", key=True),
            Column("visitors/arm"),
            Column("profit (Bayes rule)"),
            Column("EVSI"),
            Column("EVSI conv."),
            Column("profit (ship/keep rule)"),
        ),
        tuple(rows),
        caption=f"95% Monte Carlo intervals below, over {plan.curve.simulations:,} simulated "
        f"tests per length (ship/keep rule: the first {plan.curve.rule_simulations:,}); the "
        "profit-maximising length in bold, the planned length's days in colour.",
        notes=tuple(Cell(line) for line in profit_plan_summary(plan)),
    )


def _money_cell(value: Interval, currency: str) -> Cell:
    """An expected profit, its interval below (none when it rounds to a point)."""
    bounds = fmt.bounds(value.low, value.high, partial(_money, currency=currency))
    low, high = (_money(v, currency) for v in value[1:])
    return Cell(_money(value.mean, currency), "" if low == high else bounds)


def profit_plan_figure(plan: ProfitPlan) -> Figure:
    """Expected profit against days (Bayes rule and the ship / keep rule, with their
    intervals), shipping now and perfect information, and the three lengths marked."""
    from matplotlib import rc_context
    from matplotlib.ticker import FuncFormatter

    from funnelsim.plots import STYLE, new_figure, variant_color

    curve = plan.curve
    days = np.array(plan.days)
    bayes = np.array([tuple(p.expected_profit) for p in curve.curve])
    with rc_context(STYLE):
        figure = new_figure(8.0, 3.8)
        ax = figure.subplots()
        ax.plot(days, bayes[:, 0], color=variant_color(1), label="test, then ship the Bayes choice")
        ax.fill_between(days, bayes[:, 1], bayes[:, 2], color=variant_color(1), alpha=0.2, lw=0)
        if curve.curve[0].rule_profit is not None:
            rule = np.array([tuple(p.rule_profit or ()) for p in curve.curve])
            ax.plot(
                days,
                rule[:, 0],
                color=variant_color(2),
                ls="--",
                label="test, then the ship/keep rule",
            )
            ax.fill_between(days, rule[:, 1], rule[:, 2], color=variant_color(2), alpha=0.15, lw=0)
        ax.axhline(
            curve.ship_now_profit.mean,
            color=variant_color(0),
            lw=0.8,
            ls=":",
            label=f"ship {plan.ship_now} now",
        )
        ax.axhline(
            curve.perfect_information_profit.mean,
            color="#b22222",
            lw=0.8,
            ls=":",
            label="perfect information",
        )
        marks = {"best": plan.curve.optimal, "planned": plan.planned_point}
        marks["power"] = plan.power_point
        for height, (label, index) in enumerate(marks.items()):
            if index is None:
                continue
            at = plan.days[index]
            ax.axvline(at, color="#777777", lw=0.6)
            ax.text(
                at,
                0.02 + 0.06 * height,
                f" {label}: {at} d",
                fontsize=8,
                transform=ax.get_xaxis_transform(),
            )
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        ax.set_xlabel(f"test length (days at {plan.visitors_per_day:,.0f} visitors/day)")
        ax.set_ylabel(f"expected profit ({plan.currency})")
        title = (
            f"{plan.scenario}: profit over {curve.population:,} visitors "
            "(95% Monte Carlo intervals)"
        )
        if plan.note:
            title += f"\n{plan.note}"
        ax.set_title(title, loc="left", fontsize=9)
        ax.legend(fontsize=7.5, loc="best")
    return figure
