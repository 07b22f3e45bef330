"""Planning a test: how long must it run before its decision can be trusted?

Before a growth team spends a month of traffic on a test it wants to know the
answer to a pilot's question before take-off: is the runway long enough? The
funnel engine knows (in the model) how much better the variant converts; the
question is how often a test of a given length, read with the project's
Bayesian decision rule, would actually reach the right decision.

:func:`plan_test` answers by simulation. It estimates the control's and the
variant's per-visitor conversion rates with the engine, then simulates the
test many times day by day on aggregated counts (Poisson visitors per day,
split between the two arms, binomial conversions; see
:mod:`funnelsim.strategies`) and reads every simulated test at increasing
lengths with the rule of :func:`funnelsim.analysis.decision.readout`. Every
length reads the same simulated visitors, so the curve is smooth. The result
is the probability of a correct decision (ship the truly better arm; when the
true uplift lies inside the region of practical equivalence, any decision)
against the test's length (the test's *assurance*: O'Hagan, Stevens & Campbell
2005, "Assurance in clinical trial design", Pharmaceutical Statistics 4(3)), and
the shortest length from which it stays at or above the target.

Beside it stands the textbook answer: the visitors a two-sided two-proportion
z-test needs for power equal to the target at the given alpha; and, so that the two
carry comparable risks, the Bayesian rule's operating characteristics at the length it
needs: how often it ships a variant identical to the control there, one worse than the
control by twice the ROPE, and one better by the true uplift (simulated experiments, see
:mod:`funnelsim.analysis.operating`), against the z-test's alpha.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.random import SeedSequence
from numpy.typing import NDArray
from scipy import stats

from funnelsim import formatting as fmt
from funnelsim.analysis.decision import DecisionRule
from funnelsim.analysis.operating import (
    OperatingCharacteristics,
    RiskRequest,
    calibrate_loss_threshold,
    operating_characteristics,
    operating_dict,
    risk_rates,
)
from funnelsim.analysis.two_arm import (
    KEEP_TESTING,
    SHIP_CONTROL,
    SHIP_VARIANT,
    STOP,
    two_arm_decisions,
)
from funnelsim.execution import SERIAL, Execution
from funnelsim.experiment.readout import decision_rule
from funnelsim.files import write_csv, write_png
from funnelsim.intervals import Interval, wilson_interval
from funnelsim.numbers import finite_or_none
from funnelsim.parallel import map_batches
from funnelsim.result_mixin import Result
from funnelsim.scenario.schema import Scenario
from funnelsim.strategies import (
    Truth,
    engine_truth,
    trial_seeds,
)
from funnelsim.sweeps import SweepError, only_variants
from funnelsim.tables import Cell, Column, Row, Table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

IntArray = NDArray[np.int64]
OUTCOMES = ("keep_testing", "ship_control", "ship_variant", "stop")
PLAN_KIND = 2
"""Seed branch of the plan's simulated tests (0 and 1 are the bench's A/A and A/B)."""
MAX_DAYS = 3650


class SampleSize(NamedTuple):
    """Visitors per arm a two-sided two-proportion z-test needs (not rounded)."""

    control: float
    variant: float


def two_proportion_sample_size(
    p_control: float,
    p_variant: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    *,
    one_sided: bool = False,
) -> SampleSize:
    """Visitors per arm for a two-sided (or ``one_sided``) pooled z-test of two
    proportions to reach ``power`` at ``alpha``; ``ratio`` is variant visitors / control
    visitors. Infinite when the rates are equal.

    ``n_c = (z_{1-a/2} sqrt(pbar qbar (1 + 1/r)) + z_{power} sqrt(p_c q_c + p_v q_v / r))^2
    / (p_v - p_c)^2``, ``pbar = (p_c + r p_v) / (1 + r)``, without continuity correction.

    >>> [round(n) for n in two_proportion_sample_size(0.10, 0.12)]
    [3841, 3841]

    One-sided, ``z_{1-a}`` replaces ``z_{1-a/2}``: the test that ships the variant under
    A/A with probability ``alpha``.

    References:
        Fleiss, Levin & Paik (2003), Statistical Methods for Rates and Proportions,
        3rd ed., section 4.2 (unequal sample sizes in section 4.4).
    """
    delta = p_variant - p_control
    if delta == 0:
        return SampleSize(math.inf, math.inf)
    pooled = (p_control + ratio * p_variant) / (1 + ratio)
    z_alpha = float(stats.norm.isf(alpha if one_sided else alpha / 2))
    z_power = float(stats.norm.ppf(power))
    root = z_alpha * math.sqrt(pooled * (1 - pooled) * (1 + 1 / ratio)) + z_power * math.sqrt(
        p_control * (1 - p_control) + p_variant * (1 - p_variant) / ratio
    )
    n_control = float(root**2 / delta**2)
    return SampleSize(n_control, ratio * n_control)


class PlanPoint(NamedTuple):
    """The simulated tests read after ``days`` days.

    Attributes:
        days: Test length.
        visitors: Expected visitors in the test (both arms).
        prob_correct: Share of tests reaching the correct decision, with its Wilson
            95% interval.
        prob_decided: Share of tests that ship an arm or stop (not "keep testing").
        prob_ship_variant: Share that ship the variant.
        prob_ship_control: Share that keep the control (shipping it).
        prob_stop: Share that stop for lack of a practical difference.
        loss_threshold: The rule's loss threshold at this length (relative to the
            control's rate; calibrated to the plan's false-ship target when it has one).
    """

    days: int
    visitors: float
    prob_correct: Interval
    prob_decided: float
    prob_ship_variant: float
    prob_ship_control: float
    prob_stop: float
    loss_threshold: float


@dataclass(frozen=True, repr=False)
class PlanResult(Result):
    """A finished plan: the truth, the curve, and the lengths needed."""

    scenario: str
    control: str
    variant: str
    truth: Truth
    target_probability: float
    simulations: int
    seed: int
    curve: tuple[PlanPoint, ...]
    days_needed: int | None
    alpha: float
    frequentist: SampleSize
    risks: OperatingCharacteristics | None = None
    false_ship_target: float | None = None

    @property
    def uplift(self) -> float:
        """True relative uplift of the variant's conversion over the control's."""
        return float(self.truth.conversion[1] / self.truth.conversion[0] - 1)

    @property
    def frequentist_days(self) -> float:
        """Days of the scenario's traffic the frequentist sample size takes."""
        shares = self.truth.shares
        need = max(self.frequentist.control / shares[0], self.frequentist.variant / shares[1])
        return float(need / self.truth.visitors_per_day)

    def headline(self) -> str:
        needed = "beyond the lengths read" if self.days_needed is None else self.days_needed
        return (
            f"{self.scenario!r}: {self.variant} vs {self.control}, uplift {self.uplift:+.1%}; "
            f"days to P(correct) {self.target_probability:.0%}: {needed}; "
            f"z-test {self.frequentist_days:,.1f} days"
        )

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain data: settings, the answers and one row per test length."""
        return {
            "scenario": self.scenario,
            "control": self.control,
            "variant": self.variant,
            "uplift": self.uplift,
            "target_probability": self.target_probability,
            "simulations": self.simulations,
            "seed": self.seed,
            "alpha": self.alpha,
            "false_ship_target": self.false_ship_target,
            "z_test": "one-sided" if self.false_ship_target is not None else "two-sided",
            "days_needed": self.days_needed,
            "frequentist_days": finite_or_none(self.frequentist_days),
            "curve": plan_rows(self),
            "operating_characteristics": None if self.risks is None else operating_dict(self.risks),
        }

    def rows(self) -> list[dict[str, Any]]:
        """One row per test length: the columns of ``plan.csv``."""
        return plan_rows(self)


def simulate_paths(truth: Truth, days: int, seed: SeedSequence) -> tuple[IntArray, IntArray]:
    """Cumulative visitors and conversions per arm after each day, shape (days, arms)."""
    rng = np.random.default_rng(seed)
    visitors = rng.multinomial(rng.poisson(truth.visitors_per_day, days), truth.shares)
    conversions = rng.binomial(visitors, truth.conversion)
    return np.cumsum(visitors, axis=0), np.cumsum(conversions, axis=0)


def read_paths(
    truth: Truth,
    lengths: Sequence[int],
    rules: Sequence[DecisionRule],
    prior: tuple[float, float],
    seeds: Sequence[SeedSequence],
) -> IntArray:
    """Simulated tests (one per seed) read after each length with that length's rule, as
    indices into :data:`OUTCOMES`: shape ``(tests, lengths)``."""
    paths = [simulate_paths(truth, max(lengths), seed) for seed in seeds]
    at = np.asarray(lengths) - 1
    visitors = np.stack([path[0][at] for path in paths])  # (tests, lengths, arms)
    conversions = np.stack([path[1][at] for path in paths])
    codes = [
        two_arm_decisions(visitors[:, j], conversions[:, j], rule, prior)
        for j, rule in enumerate(rules)
    ]
    return np.stack(codes, axis=1)


def _paths_batch(
    seeds: list[SeedSequence],
    truth: Truth,
    lengths: tuple[int, ...],
    rules: tuple[DecisionRule, ...],
    prior: tuple[float, float],
) -> list[IntArray]:
    """The pure task of a plan: a batch of simulated tests, each read at every length."""
    return list(read_paths(truth, lengths, rules, prior, seeds))


def _correct(codes: IntArray, truth: Truth, rope: float) -> NDArray[np.bool_]:
    uplift = truth.conversion[1] / truth.conversion[0] - 1
    if abs(uplift) < rope:
        return np.asarray(codes != KEEP_TESTING, dtype=np.bool_)
    return np.asarray(codes == (SHIP_VARIANT if uplift > 0 else SHIP_CONTROL), dtype=np.bool_)


def _point(
    days: int, codes: IntArray, correct: NDArray[np.bool_], truth: Truth, rule: DecisionRule
) -> PlanPoint:
    share = [float(np.mean(codes == k)) for k in range(len(OUTCOMES))]
    return PlanPoint(
        days,
        days * truth.visitors_per_day,
        wilson_interval(int(correct.sum()), correct.size),
        1 - share[KEEP_TESTING],
        share[SHIP_VARIANT],
        share[SHIP_CONTROL],
        share[STOP],
        rule.loss_threshold,
    )


def _length_grid(max_days: int, count: int) -> list[int]:
    return sorted({round(d) for d in np.linspace(1, max_days, min(count, max_days))})


def first_sustained(probabilities: NDArray[np.float64], target: float) -> int | None:
    """Index of the first length from which the curve stays at or above ``target``.

    >>> first_sustained(np.array([0.5, 0.96, 0.94, 0.97, 0.99]), 0.95)
    3
    """
    below = np.flatnonzero(probabilities < target)
    if below.size == 0:
        return 0
    return None if below[-1] == probabilities.size - 1 else int(below[-1]) + 1


def _read_all(
    truth: Truth,
    lengths: list[int],
    rules: list[DecisionRule],
    prior: tuple[float, float],
    seeds: list[SeedSequence],
    execution: Execution,
) -> IntArray:
    task = partial(
        _paths_batch, truth=truth, lengths=tuple(lengths), rules=tuple(rules), prior=prior
    )
    return np.array(
        map_batches(task, seeds, execution.processes, execution.dask, execution.progress)
    )


def _visitors_per_arm(truth: Truth, days: int) -> int:
    """Mean visitors per arm after ``days`` (what ``analyze`` calibrates at)."""
    return round(days * truth.visitors_per_day / truth.shares.size)


def rules_by_length(
    rule: DecisionRule,
    truth: Truth,
    lengths: Sequence[int],
    target: float | None,
    simulations: int,
    seed: int,
) -> list[DecisionRule]:
    """The rule ``analyze`` would apply after each length: its loss threshold calibrated
    to ``P(ship | A/A) <= target`` at that length's visitors per arm and the control's
    true rate, on ``8 * simulations`` A/A experiments (as ``analyze --risks``); the
    rule as given when ``target`` is None or the rate leaves (0, 1)."""
    baseline = float(truth.conversion[0])
    if target is None or not 0 < baseline < 1:
        return [rule] * len(lengths)
    return [
        calibrate_loss_threshold(
            rule,
            baseline=baseline,
            visitors_per_arm=max(_visitors_per_arm(truth, days), 1),
            target=target,
            replications=8 * simulations,
            seed=seed,
        )
        for days in lengths
    ]


def pair_scenario(scenario: Scenario, variant: str) -> Scenario:
    """``scenario`` with only its control and ``variant`` (SweepError if that is no test)."""
    if variant == scenario.control:
        raise SweepError(
            f"variant {variant} is the control; name a variant to test against it", "variant"
        )
    return only_variants(scenario, [scenario.control, variant])


def plan_test(
    scenario: Scenario,
    variant: str,
    target_probability: float = 0.95,
    simulations: int = 400,
    max_days: int | None = None,
    lengths: int = 30,
    alpha: float = 0.05,
    truth_replications: int = 20,
    execution: Execution = SERIAL,
    false_ship_target: float | None = 0.05,
) -> PlanResult:
    """How long a test of ``variant`` against the control needs (see the module docstring).

    With a ``false_ship_target`` (the default 5%), the rule read at each length has its
    loss threshold calibrated to that A/A false-ship rate there (as ``analyze`` does by
    default) and the z-test beside it is one-sided at ``alpha = false_ship_target``, so
    both ship an identical variant equally often; with None, the rule as the scenario
    gives it and a two-sided z-test at ``alpha``.

    The test reads the scenario's traffic split between the two arms. ``max_days``
    defaults to twice the frequentist test's length (at least the scenario's days).
    ``lengths`` lengths from 1 to ``max_days`` are read, then every day between the last
    one short of the target and the next (from which the curve stays at the target).
    ``execution`` gives seed, engine and executor; its ``progress`` is called with the
    engine replications and simulated tests finished (``truth_replications +
    simulations``).
    """
    if not 0 < target_probability < 1:
        raise SweepError(f"target probability must be between 0 and 1, got {target_probability}")
    pair = pair_scenario(scenario, variant)
    control = pair.control
    seed = execution.seed_or(pair.seed)
    truth = engine_truth(pair, truth_replications, execution)
    ratio = float(truth.shares[1] / truth.shares[0])
    if false_ship_target is not None:
        alpha = false_ship_target
    frequentist = two_proportion_sample_size(
        float(truth.conversion[0]),
        float(truth.conversion[1]),
        alpha,
        target_probability,
        ratio,
        one_sided=false_ship_target is not None,
    )
    plan = PlanResult(
        pair.name,
        control,
        variant,
        truth,
        target_probability,
        simulations,
        seed,
        (),
        None,
        alpha,
        frequentist,
        false_ship_target=false_ship_target,
    )
    if max_days is None:
        guess = 2 * plan.frequentist_days if math.isfinite(plan.frequentist_days) else 0
        max_days = min(MAX_DAYS, max(truth.days, math.ceil(guess)))
    rule = decision_rule(pair)
    prior = (pair.experiment.prior.alpha, pair.experiment.prior.beta)
    seeds = trial_seeds(seed, PLAN_KIND, simulations)

    def rules_for(lengths: list[int]) -> list[DecisionRule]:
        return rules_by_length(rule, truth, lengths, false_ship_target, simulations, seed)

    grid = _length_grid(max_days, lengths)
    rules = rules_for(grid)
    codes = _read_all(truth, grid, rules, prior, seeds, execution)
    correct = _correct(codes, truth, rule.rope)
    reached = first_sustained(correct.mean(axis=0), target_probability)
    if reached and grid[reached] - grid[reached - 1] > 1:
        extra = list(range(grid[reached - 1] + 1, grid[reached]))
        extra_rules = rules_for(extra)
        more = _read_all(truth, extra, extra_rules, prior, seeds, execution.reporting(None))
        order = np.argsort(grid + extra)
        grid = sorted(grid + extra)
        rules = [(rules + extra_rules)[k] for k in order]
        codes = np.hstack([codes, more])[:, order]
        correct = _correct(codes, truth, rule.rope)
        reached = first_sustained(correct.mean(axis=0), target_probability)
    curve = tuple(
        _point(d, codes[:, j], correct[:, j], truth, rules[j]) for j, d in enumerate(grid)
    )
    if reached is None:
        return dataclasses.replace(plan, curve=curve)
    needed = grid[reached]
    risks = _risks_at(plan, needed, rules[reached], prior)
    return dataclasses.replace(plan, curve=curve, days_needed=needed, risks=risks)


def _risks_at(
    plan: PlanResult, days: int, rule: DecisionRule, prior: tuple[float, float]
) -> OperatingCharacteristics | None:
    """The rule's operating characteristics after ``days`` of the plan's traffic, the
    better variant better by the true uplift (5% for equal arms); None when the rates
    leave (0, 1)."""
    baseline = float(plan.truth.conversion[0])
    effect = abs(plan.uplift) or RiskRequest().effect
    if not (baseline > 0 and baseline * (1 + effect) < 1):
        return None
    found = operating_characteristics(
        rule,
        baseline=baseline,
        visitors_per_arm=_visitors_per_arm(plan.truth, days),
        effect=effect,
        replications=plan.simulations,
        seed=plan.seed,
        prior=prior,
    )
    return found._replace(target=plan.false_ship_target)


# --------------------------------------------------------------------------- output


def plan_rows(plan: PlanResult) -> list[dict[str, Any]]:
    """One row per test length, for ``plan.csv``."""
    return [
        {
            "days": p.days,
            "visitors": p.visitors,
            "prob_correct": p.prob_correct.mean,
            "prob_correct_low": p.prob_correct.low,
            "prob_correct_high": p.prob_correct.high,
            "prob_decided": p.prob_decided,
            "prob_ship_variant": p.prob_ship_variant,
            "prob_ship_control": p.prob_ship_control,
            "prob_stop": p.prob_stop,
            "loss_threshold": p.loss_threshold,
        }
        for p in plan.curve
    ]


def write_plan(plan: PlanResult, out: Path) -> list[Path]:
    """Write ``plan.csv`` and ``plan.png`` under ``out``."""
    paths = [out / "plan.csv", out / "plan.png"]
    write_csv(plan_rows(plan), paths[0])
    write_png(plan_figure(plan), paths[1])
    return paths


def _judged_verb(metric: str) -> str:
    """``converts``, or ``reaches STAGE`` for a test judged on a stage's reach."""
    return metric.replace("reached:", "reaches ") if metric.startswith("reached:") else "converts"


def plan_summary(plan: PlanResult) -> list[str]:
    """Plain sentences: the truth, the simulated answer and the frequentist one."""
    truth = plan.truth
    lines = [
        f"Truth (engine): {plan.control} {_judged_verb(truth.metric)} "
        f"{truth.conversion[0]:.3%}, {plan.variant} "
        f"{truth.conversion[1]:.3%} (uplift {plan.uplift:+.1%}); "
        f"{truth.visitors_per_day:,.0f} visitors/day split "
        f"{truth.shares[0]:.0%}/{truth.shares[1]:.0%}.",
    ]
    if plan.days_needed is None:
        last = plan.curve[-1]
        lines.append(
            f"{_rule_name(plan)}: P(correct decision) stays below "
            f"{plan.target_probability:.0%} up to "
            f"{last.days} days ({last.prob_correct.mean:.0%} there); raise --max-days."
        )
    else:
        lines.append(
            f"{_rule_name(plan)}: {plan.days_needed} days "
            f"(~{plan.days_needed * truth.visitors_per_day:,.0f} visitors) reach a "
            f"correct decision with probability >= {plan.target_probability:.0%}."
        )
    lines.append(_z_test_line(plan))
    if plan.risks is not None:
        lines.append(_risk_sentence(plan, plan.risks))
    return lines


def _rule_name(plan: PlanResult) -> str:
    if plan.false_ship_target is None:
        return "Bayesian rule (uncalibrated)"
    return (
        f"Bayesian rule (loss threshold calibrated at each length to P(ship | A/A) <= "
        f"{plan.false_ship_target:.0%}, as `funnelsim analyze` does)"
    )


def _z_test_line(plan: PlanResult) -> str:
    freq = plan.frequentist
    if not math.isfinite(freq.control):
        return "Frequentist z-test: no difference to detect (equal rates)."
    kind = (
        f"two-sided, alpha {plan.alpha:g}"
        if plan.false_ship_target is None
        else f"one-sided, alpha {plan.alpha:g}: the same P(ship | A/A)"
    )
    return (
        f"Frequentist z-test ({kind}, power {plan.target_probability:.0%}): "
        f"{math.ceil(freq.control):,} + {math.ceil(freq.variant):,} visitors, "
        f"{plan.frequentist_days:,.1f} days."
    )


def _risk_sentence(plan: PlanResult, risks: OperatingCharacteristics) -> str:
    said = (
        f"Risks of the Bayesian rule at {plan.days_needed} days ({risks.visitors_per_arm:,} "
        f"visitors per arm, loss threshold {risks.rule.loss_threshold:.2%} of the control's "
        f"rate), simulated: {risk_rates(risks)}"
    )
    if plan.false_ship_target is None:
        return (
            f"{said} (the z-test's alpha: {plan.alpha:.0%}). This plan reads the "
            "uncalibrated rule; `funnelsim analyze` calibrates its threshold to "
            "P(ship | A/A) <= 5% by default (plan: --false-ship-target 0.05)."
        )
    return f"{said}: both rules carry the same false-ship risk, so their lengths compare."


def plan_table(plan: PlanResult) -> Table:
    """The decision probabilities against the test's length; the length the plan needs
    is highlighted."""
    share = partial(fmt.percent, digits=1)
    rows = tuple(
        Row(
            (
                Cell(str(p.days)),
                Cell(fmt.count(p.visitors)),
                Cell(share(p.prob_correct.mean), fmt.bounds(*p.prob_correct[1:], share)),
                Cell(share(p.prob_decided)),
                Cell(share(p.prob_ship_variant)),
                Cell(share(p.prob_ship_control)),
                Cell(share(p.prob_stop)),
            ),
            highlight=p.days == plan.days_needed,
        )
        for p in plan.curve
    )
    return Table(
        f"{plan.variant} vs {plan.control}: {plan.simulations} simulated tests "
        "read at each length (Bayesian rule of the analysis module)",
        (
            Column("days", key=True),
            Column("visitors"),
            Column("P(correct)"),
            Column("P(decided)"),
            Column(f"ship {plan.variant}"),
            Column("keep control"),
            Column("no difference"),
        ),
        rows,
        caption="P(correct): share of simulated tests reaching the right decision, with its "
        "95% interval below (Wilson).",
    )


def plan_figure(plan: PlanResult) -> Figure:
    """P(correct decision) and P(decided) against days, with the target and both answers."""
    from matplotlib import rc_context
    from matplotlib.ticker import PercentFormatter

    from funnelsim.plots import STYLE, new_figure, variant_color

    days = np.array([p.days for p in plan.curve])
    correct = np.array([tuple(p.prob_correct) for p in plan.curve])
    with rc_context(STYLE):
        figure = new_figure(8.0, 3.6)
        ax = figure.subplots()
        ax.plot(days, correct[:, 0], color=variant_color(1), label="P(correct decision)")
        ax.fill_between(
            days, correct[:, 1], correct[:, 2], color=variant_color(1), alpha=0.2, linewidth=0
        )
        ax.plot(
            days,
            [p.prob_decided for p in plan.curve],
            color=variant_color(0),
            linestyle="--",
            linewidth=1,
            label="P(decided: ship or stop)",
        )
        ax.axhline(
            plan.target_probability,
            color="#b22222",
            linewidth=0.8,
            linestyle=":",
            label=f"target {plan.target_probability:.0%}",
        )
        if plan.days_needed is not None:
            ax.axvline(plan.days_needed, color=variant_color(1), linewidth=0.8)
            ax.text(plan.days_needed, 0.02, f" Bayesian: {plan.days_needed} d", fontsize=8)
        if math.isfinite(plan.frequentist_days) and plan.frequentist_days <= days.max():
            ax.axvline(plan.frequentist_days, color=variant_color(2), linewidth=0.8)
            ax.text(
                plan.frequentist_days,
                0.10,
                f" z-test: {plan.frequentist_days:.1f} d",
                fontsize=8,
                color=variant_color(2),
            )
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(f"test length (days at {plan.truth.visitors_per_day:,.0f} visitors/day)")
        ax.set_title(
            f"{plan.scenario}: {plan.variant} vs {plan.control} "
            f"(true uplift {plan.uplift:+.1%}; {plan.simulations} simulated tests)",
            loc="left",
        )
        ax.legend(fontsize=7.5, loc="center right")
    return figure
