"""Decision strategies for A/B tests, and a bench that scores them on simulated ground truth.

Picture referees watching the same test. The first waits for the final
whistle and then checks significance once (fixed horizon). The second checks
the score every day and blows the whistle at the first significant look: the
classic mistake, which finds "winners" among identical arms far more often
than its alpha promises. The third also looks every day, but with an
always-valid test (mixture SPRT): it may stop at any look and still claims a
difference between identical arms at most alpha of the time (``sequential``). The
fourth stops as soon as the expected loss of shipping the leader is negligible
(Bayesian expected-loss stopping). The fifth does not split traffic evenly at
all: every day it sends each arm a share equal to the posterior probability that
the arm is best (Thompson sampling), never less than a minimum share, so fewer
visitors see bad arms. A sixth (test and roll) runs the test whose length
maximises the expected profit of test and rollout, possibly no test at all, and
ships the arm with the highest posterior mean.

Which guarantee each gives: ``fixed`` and ``sequential`` bound the false-positive
rate by alpha (``sequential`` under daily looks, asymptotically; ``fixed`` only if
nobody acts on earlier looks); ``peeking`` does not. ``bayes_stop``, ``thompson``
and ``test_and_roll`` bound no error rate: they control the expected loss (or
maximise the expected profit) of the shipped arm, and their false-positive rate is
whatever the bench measures (often far above 5%; see
:mod:`funnelsim.analysis.operating` to calibrate the loss threshold).

The bench plays each referee on many simulated tests whose truth is known,
because the funnel engine estimated every variant's per-visitor conversion and
revenue rate first. For speed a test is simulated on aggregated daily counts:
each day brings Poisson(visitors_per_day) visitors, the strategy's shares split
them among the arms (multinomial), and each arm's conversions are binomial with
the engine's per-visitor rate. That is exact where visitors are independent
(no shared resource); where arms share a queue the rates are those of the
full-traffic run and queue coupling between arms is ignored.

Scores, each with a 95% interval over replications:

* ``false_positive_rate`` on an A/A version of the scenario (every arm = control):
  how often the strategy claims a difference that is not there;
* ``prob_correct``: how often it ships the arm with the truly highest conversion
  (shipping the control counts when the control is truly best);
* ``days_to_decision`` and ``visitors_to_decision``;
* ``regret_conversions`` and ``regret_revenue``: expected conversions and revenue
  lost over the scenario's ``traffic.days`` against showing every visitor the best
  arm; before the decision the visitors split as the strategy allocates them,
  afterwards every visitor sees the shipped arm.

A researcher adds a strategy by subclassing :class:`Strategy` (two methods,
``allocate`` and ``decide``) in an importable module and passing
``--strategy module:Class`` to ``funnelsim bench``; the class must be
constructible without arguments.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np
from numpy.random import SeedSequence
from numpy.typing import NDArray
from scipy import stats

from funnelsim import formatting as fmt
from funnelsim.analysis.conjugate import (
    BetaPosterior,
    beta_posteriors,
    prob_best,
)
from funnelsim.analysis.decision import DEFAULT_RULE, DecisionRule, decide
from funnelsim.analysis.sequential import (
    difference_in_means,
    log_mixture_ratio,
    mixing_variance,
)
from funnelsim.errors import FunnelsimError
from funnelsim.execution import SERIAL, Execution
from funnelsim.experiment.readout import judged_stage
from funnelsim.files import atomic_writer, write_csv, write_png
from funnelsim.intervals import Interval, mean_interval, wilson_interval
from funnelsim.numbers import finite_or_none
from funnelsim.parallel import map_batches
from funnelsim.result_mixin import Result, flat_row
from funnelsim.scenario.schema import Scenario
from funnelsim.sweeps import variant_means
from funnelsim.tables import Cell, Column, Row, Table, label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BENCH_METRICS = (
    "false_positive_rate",
    "prob_correct",
    "days_to_decision",
    "visitors_to_decision",
    "regret_conversions",
    "regret_revenue",
)
TEST_SEED_KEY = 2**32 - 1
"""First spawn key of the simulated tests' seeds: a branch of ``SeedSequence(seed)`` that
no replication of the engine (keys 0, 1, 2, ...) uses."""


class StrategyError(FunnelsimError, ValueError):
    """A strategy a user named cannot be used (one line)."""


# --------------------------------------------------------------------------- the interface


class Look(NamedTuple):
    """What a strategy sees: the test so far, cumulative per arm (control at ``control``).

    Attributes:
        day: Days run so far (0 before the first day).
        days: The longest the test may run (the scenario's ``traffic.days``).
        control: Index of the control arm.
        visitors: Visitors per arm so far.
        conversions: Converting visitors per arm so far.
        shares: The designed traffic split (the scenario's ``experiment.split``).
    """

    day: int
    days: int
    control: int
    visitors: IntArray
    conversions: IntArray
    shares: FloatArray


class Decision(NamedTuple):
    """What a strategy concluded.

    Attributes:
        choice: Index of the arm to ship (the control: change nothing).
        claims_difference: The strategy declares that the arms differ; on an A/A test
            this is a false positive. For a significance test: a significant result in
            either direction; for the Bayesian strategies: shipping a non-control arm.
    """

    choice: int
    claims_difference: bool


class Strategy(ABC):
    """A decision strategy: how to split each day's traffic, and when to stop with what.

    The bench calls ``allocate`` before each day and ``decide`` after it (and once
    before the first day when ``decides_before_test`` is True). A strategy
    must not keep state between calls that changes its answers (the same instance
    plays many tests, possibly in several processes).

    Example: ship whichever arm leads after a week.

    >>> class Greedy(Strategy):
    ...     name = "greedy"
    ...     def decide(self, look):
    ...         if look.day < 7:
    ...             return None
    ...         best = int(np.argmax(look.conversions / np.maximum(look.visitors, 1)))
    ...         return Decision(best, best != look.control)
    >>> truth = Truth(("a", "b"), np.array([0.10, 0.12]), np.array([5.0, 6.0]),
    ...               np.array([0.5, 0.5]), visitors_per_day=1000, days=14)
    >>> score = run_bench(truth, [Greedy()], 50, Execution(seed=1)).scores[0]
    >>> score.metrics["days_to_decision"].mean, score.metrics["prob_correct"].mean
    (7.0, 1.0)
    """

    name = "strategy"
    decides_before_test = False
    """True if ``decide`` is also asked once before the first day (``look.day == 0``)."""

    def allocate(self, look: Look) -> FloatArray:
        """Traffic shares per arm for the next day (non-negative; normalised by the
        bench). Default: the designed split."""
        return look.shares

    @abstractmethod
    def decide(self, look: Look) -> Decision | None:
        """The decision after ``look.day`` days, or None to keep testing. A test still
        undecided after the last day ships the control with no claim."""


# --------------------------------------------------------------------------- built-ins


def z_statistics(visitors: IntArray, conversions: IntArray, control: int) -> FloatArray:
    """Pooled two-proportion z statistic of every arm against the control (0 for the
    control itself and wherever the pooled rate is 0 or 1).

    >>> z_statistics(np.array([1000, 1000]), np.array([100, 130]), 0).round(3)
    array([0.   , 2.103])

    References:
        Fleiss, Levin & Paik (2003), Statistical Methods for Rates and Proportions,
        3rd ed., section 2.3 (the two-sample test of proportions).
    """
    n, x = visitors.astype(float), conversions.astype(float)
    n0, x0 = n[control], x[control]
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (x + x0) / (n + n0)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n0))
        z = (x / n - x0 / n0) / se
    z = np.where(np.isfinite(z), z, 0.0)
    z[control] = 0.0
    return z


@lru_cache(maxsize=64)
def critical_z(alpha: float, comparisons: int) -> float:
    """Two-sided critical value of the z-test at ``alpha`` split over ``comparisons``
    (Bonferroni).

    >>> round(critical_z(0.05, 1), 4)
    1.96
    """
    return float(stats.norm.isf(alpha / (2 * comparisons)))


def significance_decision(look: Look, alpha: float) -> Decision:
    """Two-sided z-tests of each arm against the control at ``alpha`` (Bonferroni-split
    over the comparisons). Ships the best significantly better arm; a significant result
    either way claims a difference."""
    critical = critical_z(alpha, max(len(look.visitors) - 1, 1))
    z = z_statistics(look.visitors, look.conversions, look.control)
    if not np.any(np.abs(z) > critical):
        return Decision(look.control, False)
    better = np.flatnonzero(z > critical)
    if better.size == 0:
        return Decision(look.control, True)
    rates = look.conversions[better] / look.visitors[better]
    return Decision(int(better[np.argmax(rates)]), True)


class FixedHorizon(Strategy):
    """Frequentist test at a fixed horizon: one two-sided z-test after the last day."""

    name = "fixed"

    def __init__(self, alpha: float = 0.05) -> None:
        self.alpha = alpha

    def decide(self, look: Look) -> Decision | None:
        return significance_decision(look, self.alpha) if look.day >= look.days else None


class Peeking(Strategy):
    """The same z-test looked at every day, stopping at the first significant look.

    Repeated looks inflate the false-positive rate: about 14% with 5 and 25% with 20
    equally spaced looks at alpha = 0.05.

    References:
        Armitage, McPherson & Rowe (1969), "Repeated significance tests on accumulating
        data", Journal of the Royal Statistical Society A 132(2).
    """

    name = "peeking"

    def __init__(self, alpha: float = 0.05) -> None:
        self.alpha = alpha

    def decide(self, look: Look) -> Decision | None:
        decision = significance_decision(look, self.alpha)
        return decision if decision.claims_difference or look.day >= look.days else None


class SequentialTest(Strategy):
    """Look every day with the mixture SPRT of :mod:`funnelsim.analysis.sequential`;
    stop at the first look where some arm differs from the control (always-valid, at
    ``alpha`` Bonferroni-split over the comparisons).

    The mixing variance is tuned to the visitors expected by the last day (the traffic
    so far, extrapolated; no outcome enters it).

    References:
        Johari, R. et al. (2017), "Peeking at A/B Tests", KDD.
    """

    name = "sequential"

    def __init__(self, alpha: float = 0.05) -> None:
        self.alpha = alpha

    def decide(self, look: Look) -> Decision | None:
        if look.day == 0:
            return None
        n, x = look.visitors.astype(float), look.conversions.astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = x / n
            variance = np.where(n > 1, (x - x * rate) / (n - 1), 0.0)
        estimate, var = difference_in_means(n, rate, variance, look.control)
        pair = n + n[look.control]
        planned = float(pair.max()) * look.days / look.day
        tau_sq = mixing_variance(var, pair, planned, self.alpha)
        comparisons = max(len(n) - 1, 1)
        significant = log_mixture_ratio(estimate, var, tau_sq) >= math.log(comparisons / self.alpha)
        significant[look.control] = False
        if not significant.any():
            return Decision(look.control, False) if look.day >= look.days else None
        better = np.flatnonzero(significant & (estimate > 0))
        if better.size == 0:
            return Decision(look.control, True)
        return Decision(int(better[np.argmax(rate[better])]), True)


class BayesianStop(Strategy):
    """Look every day; stop when the analysis module's expected-loss rule decides."""

    name = "bayes_stop"

    def __init__(
        self, rule: DecisionRule = DEFAULT_RULE, prior_alpha: float = 1.0, prior_beta: float = 1.0
    ) -> None:
        self.rule, self.prior_alpha, self.prior_beta = rule, prior_alpha, prior_beta

    def decide(self, look: Look) -> Decision | None:
        post = beta_posteriors(look.visitors, look.conversions, self.prior_alpha, self.prior_beta)
        verdict = decide(post, look.control, self.rule)
        if verdict.action == "ship" and verdict.index is not None:
            return Decision(verdict.index, verdict.index != look.control)
        return Decision(look.control, False) if verdict.action == "stop" else None


@lru_cache(maxsize=256)
def _prob_best(alpha: tuple[float, ...], beta: tuple[float, ...]) -> FloatArray:
    return prob_best(BetaPosterior(np.array(alpha), np.array(beta)))


def posterior_prob_best(look: Look, prior_alpha: float, prior_beta: float) -> FloatArray:
    """P(each arm has the highest conversion rate) under Beta posteriors (cached per look)."""
    alpha = tuple((look.conversions + prior_alpha).tolist())
    beta = tuple((look.visitors - look.conversions + prior_beta).tolist())
    return _prob_best(alpha, beta)


class ThompsonSampling(Strategy):
    """A bandit: each day every arm gets a traffic share equal to its posterior
    probability of being best (what Thompson sampling assigns in expectation), never
    below ``min_share``; stops when an arm is best with ``stop_probability``.

    References:
        Thompson, W. R. (1933), Biometrika 25(3/4); Scott, S. L. (2015), "Multi-armed
        bandit experiments in the online service economy", Applied Stochastic Models in
        Business and Industry 31(1) (daily batches, stop at P(best) >= 0.95).
    """

    name = "thompson"

    def __init__(
        self,
        min_share: float = 0.1,
        stop_probability: float = 0.95,
        prior_alpha: float = 1.0,
        prior_beta: float = 1.0,
    ) -> None:
        if not 0 <= min_share < 1:
            raise StrategyError(f"thompson: min share must be in [0, 1), got {min_share}")
        self.min_share, self.stop_probability = min_share, stop_probability
        self.prior_alpha, self.prior_beta = prior_alpha, prior_beta

    def allocate(self, look: Look) -> FloatArray:
        arms = len(look.visitors)
        if self.min_share * arms > 1:
            raise StrategyError(f"thompson: min share {self.min_share} is more than 1/{arms} arms")
        if look.day == 0:
            return look.shares
        best = posterior_prob_best(look, self.prior_alpha, self.prior_beta)
        return self.min_share + (1 - self.min_share * arms) * best

    def decide(self, look: Look) -> Decision | None:
        best = posterior_prob_best(look, self.prior_alpha, self.prior_beta)
        arm = int(np.argmax(best))
        if best[arm] >= self.stop_probability:
            return Decision(arm, arm != look.control)
        return None


class TestAndRoll(Strategy):
    """A fixed test of the profit-maximising length, then the arm with the highest
    posterior mean conversion; with a length of 0 days, no test: ``ship_without_test``
    (the arm of best prior expected profit) is shipped at once.

    The length comes from the profit plan of the bench's truth
    (:func:`funnelsim.profit_planning.roll_for_bench`).

    References:
        Feit, E. M. & Berman, R. (2019), "Test & Roll: Profit-Maximizing A/B Tests",
        Marketing Science 38(6).
    """

    __test__ = False  # not a pytest class, whatever its name
    name = "test_and_roll"
    decides_before_test = True

    def __init__(
        self,
        days: int,
        ship_without_test: int,
        prior_alpha: float = 1.0,
        prior_beta: float = 1.0,
    ) -> None:
        self.days, self.ship_without_test = days, ship_without_test
        self.prior_alpha, self.prior_beta = prior_alpha, prior_beta

    def decide(self, look: Look) -> Decision | None:
        if look.day < self.days:
            return None
        if look.day == 0:
            return Decision(self.ship_without_test, self.ship_without_test != look.control)
        means = (look.conversions + self.prior_alpha) / (
            look.visitors + self.prior_alpha + self.prior_beta
        )
        best = int(np.argmax(means))
        return Decision(best, best != look.control)


BUILT_IN = {
    "fixed": FixedHorizon,
    "peeking": Peeking,
    "sequential": SequentialTest,
    "bayes_stop": BayesianStop,
    "thompson": ThompsonSampling,
    "test_and_roll": TestAndRoll,
}


def built_in_strategies(
    names: Sequence[str],
    alpha: float = 0.05,
    rule: DecisionRule = DEFAULT_RULE,
    prior: tuple[float, float] = (1, 1),
    min_share: float = 0.1,
    roll: tuple[int, int] | None = None,
) -> list[Strategy]:
    """The named built-in strategies, configured with the given settings (``roll``: the
    test length in days and the arm shipped without a test of ``test_and_roll``, from
    :func:`funnelsim.profit_planning.roll_for_bench`)."""
    check_built_in(names)
    made: list[Strategy] = []
    for name in names:
        if name == "fixed":
            made.append(FixedHorizon(alpha))
        elif name == "peeking":
            made.append(Peeking(alpha))
        elif name == "sequential":
            made.append(SequentialTest(alpha))
        elif name == "bayes_stop":
            made.append(BayesianStop(rule, *prior))
        elif name == "thompson":
            made.append(ThompsonSampling(min_share, prior_alpha=prior[0], prior_beta=prior[1]))
        elif roll is None:
            raise StrategyError("test_and_roll needs its test length (roll)")
        else:
            made.append(TestAndRoll(*roll, *prior))
    return made


def check_built_in(names: Sequence[str]) -> None:
    """StrategyError naming the first of ``names`` that is not a built-in strategy."""
    for name in names:
        if name not in BUILT_IN:
            raise StrategyError(
                f"unknown strategy {name!r} (built in: {', '.join(BUILT_IN)}; "
                "or a Strategy subclass of your own)",
                "strategies",
            )


def load_strategy(spec: str) -> Strategy:
    """Import ``module:Class`` (the current directory is searchable) and instantiate it."""
    module_name, colon, class_name = spec.partition(":")
    if not colon or not module_name or not class_name:
        raise StrategyError(f"strategy {spec!r}: expected module:Class", "strategy")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # any import failure of user code is a user error
        raise StrategyError(
            f"strategy {spec}: cannot import {module_name}: {error}", "strategy"
        ) from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise StrategyError(
            f"strategy {spec}: {class_name} is not a subclass of funnelsim.strategies.Strategy",
            "strategy",
        )
    try:
        strategy = cls()
    except Exception as error:
        raise StrategyError(
            f"strategy {spec}: cannot create it without arguments: {error}", "strategy"
        ) from None
    if strategy.name in BUILT_IN or strategy.name == Strategy.name:
        strategy.name = class_name
    return strategy


# --------------------------------------------------------------------------- simulated tests


TRUTH_METRICS = ("conversion", "revenue_per_visitor")


class Truth(NamedTuple):
    """The ground truth a simulated test runs on.

    Attributes:
        names: Arm names, control first.
        conversion: Per-visitor probability of the judged event for each arm: buying,
            or reaching the stage of ``metric``.
        revenue_per_visitor: Expected revenue per visitor of each arm.
        shares: The designed traffic split.
        visitors_per_day: Mean visitors per day (Poisson).
        days: Longest test, and the horizon of the regret.
        metric: The scenario's ``experiment.metric`` when it is ``reached:STAGE``, else
            ``conversion``.
    """

    names: tuple[str, ...]
    conversion: FloatArray
    revenue_per_visitor: FloatArray
    shares: FloatArray
    visitors_per_day: float
    days: int
    metric: str = "conversion"


class TrialOutcome(NamedTuple):
    """How one simulated test ended."""

    days: int
    visitors: int
    choice: int
    claims_difference: bool
    regret_conversions: float
    regret_revenue: float


def engine_truth(
    scenario: Scenario,
    replications: int = 20,
    execution: Execution = SERIAL,
) -> Truth:
    """Per-visitor rates of each variant estimated by the funnel engine (the mean over
    ``replications`` full-traffic runs, as ``funnelsim run`` would report them), with the
    scenario's split and traffic. A scenario judged on a stage's reach
    (``experiment.metric: reached:STAGE``) has that reach as its ``conversion``."""
    traffic = scenario.traffic
    judged = "conversion" if judged_stage(scenario) is None else scenario.experiment.metric
    metrics = list(dict.fromkeys((*TRUTH_METRICS, judged)))
    means = variant_means(scenario, metrics, replications, execution)
    return Truth(
        names=tuple(scenario.variant_names),
        conversion=means[judged],
        revenue_per_visitor=means["revenue_per_visitor"],
        shares=np.array(list(scenario.split_shares().values())),
        visitors_per_day=traffic.visitors_per_day,
        days=traffic.days,
        metric=judged,
    )


def a_a_truth(truth: Truth) -> Truth:
    """The A/A version: every arm has the control's rates."""
    arms = len(truth.names)
    return truth._replace(
        conversion=np.full(arms, truth.conversion[0]),
        revenue_per_visitor=np.full(arms, truth.revenue_per_visitor[0]),
    )


def _shares(strategy: Strategy, look: Look) -> FloatArray:
    shares = np.asarray(strategy.allocate(look), dtype=float)
    total = shares.sum() if shares.shape == look.shares.shape else math.nan
    if not (math.isfinite(total) and total > 0 and shares.min() >= 0):
        raise StrategyError(
            f"{strategy.name}: allocate must return {len(look.shares)} "
            f"non-negative shares, got {shares.tolist()}"
        )
    return shares / total


def run_trial(strategy: Strategy, truth: Truth, seed: SeedSequence) -> TrialOutcome:
    """Simulate one test day by day on aggregated counts (see the module docstring)."""
    rng = np.random.default_rng(seed)
    arms = len(truth.names)
    look = Look(0, truth.days, 0, np.zeros(arms, np.int64), np.zeros(arms, np.int64), truth.shares)
    conversion_gap = truth.conversion.max() - truth.conversion
    revenue_gap = truth.revenue_per_visitor.max() - truth.revenue_per_visitor
    regret = np.zeros(2)
    decision = strategy.decide(look) if strategy.decides_before_test else None
    last_day = truth.days if decision is None else 0
    for day in range(1, last_day + 1):
        split = rng.multinomial(rng.poisson(truth.visitors_per_day), _shares(strategy, look))
        converted = rng.binomial(split, truth.conversion)
        regret += split @ conversion_gap, split @ revenue_gap
        look = look._replace(
            day=day, visitors=look.visitors + split, conversions=look.conversions + converted
        )
        decision = strategy.decide(look)
        if decision is not None:
            break
    decision = decision or Decision(0, False)
    if not 0 <= decision.choice < arms:
        raise StrategyError(
            f"{strategy.name}: decide chose arm {decision.choice}, not one of 0..{arms - 1}"
        )
    after = (truth.days - look.day) * truth.visitors_per_day
    regret += after * conversion_gap[decision.choice], after * revenue_gap[decision.choice]
    return TrialOutcome(
        look.day,
        int(look.visitors.sum()),
        decision.choice,
        bool(decision.claims_difference),
        float(regret[0]),
        float(regret[1]),
    )


def run_trials(
    strategy: Strategy, truth: Truth, seeds: Sequence[SeedSequence]
) -> list[TrialOutcome]:
    """One strategy on a batch of simulated tests (one outcome per seed)."""
    return [run_trial(strategy, truth, seed) for seed in seeds]


def trial_seeds(seed: int, kind: int, replications: int) -> list[SeedSequence]:
    """Seeds of the simulated tests of one kind (0: A/A, 1: the scenario's arms); every
    strategy plays the same tests."""
    return SeedSequence(seed, spawn_key=(TEST_SEED_KEY, kind)).spawn(replications)


# --------------------------------------------------------------------------- the bench


@dataclass(frozen=True)
class StrategyScore:
    """One strategy's scores (:data:`BENCH_METRICS`), each a mean with its 95% interval."""

    name: str
    metrics: dict[str, Interval]


@dataclass(frozen=True, repr=False)
class BenchResult(Result):
    """A finished bench: the truth it ran on and each strategy's scores."""

    scenario: str
    currency: str
    truth: Truth
    true_best: str
    replications: int
    seed: int
    scores: tuple[StrategyScore, ...]

    frame_index: ClassVar[str | None] = "strategy"

    def headline(self) -> str:
        names = ", ".join(s.name for s in self.scores)
        return (
            f"{self.scenario!r}: {names}; {self.replications} simulated tests "
            f"each; truly best {self.true_best!r}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``bench.json`` document."""
        return bench_dict(self)

    def rows(self) -> list[dict[str, Any]]:
        """One row per strategy: the columns of ``bench.csv``."""
        return bench_rows(self)


def score(
    name: str, a_a: Sequence[TrialOutcome], a_b: Sequence[TrialOutcome], best: int
) -> StrategyScore:
    """Scores of one strategy from its A/A and A/B tests (``best``: truly best arm)."""

    def series(field: str) -> FloatArray:
        return np.array([getattr(t, field) for t in a_b], dtype=float)

    return StrategyScore(
        name,
        {
            "false_positive_rate": wilson_interval(sum(t.claims_difference for t in a_a), len(a_a)),
            "prob_correct": wilson_interval(sum(t.choice == best for t in a_b), len(a_b)),
            "days_to_decision": mean_interval(series("days")),
            "visitors_to_decision": mean_interval(series("visitors")),
            "regret_conversions": mean_interval(series("regret_conversions")),
            "regret_revenue": mean_interval(series("regret_revenue")),
        },
    )


def _trials_batch(
    items: list[tuple[int, int, SeedSequence]],
    strategies: tuple[Strategy, ...],
    truths: tuple[Truth, Truth],
) -> list[TrialOutcome]:
    """The pure task of a bench: (strategy, kind, seed) triples, one outcome each."""
    return [run_trial(strategies[s], truths[kind], seed) for s, kind, seed in items]


def run_bench(
    truth: Truth,
    strategies: Sequence[Strategy],
    replications: int,
    execution: Execution = SERIAL,
    scenario: str = "",
    currency: str = "USD",
) -> BenchResult:
    """Play every strategy on ``replications`` A/A and A/B tests and score them.

    ``execution`` gives the seed (0 when it has none) and the executor (see
    :func:`funnelsim.parallel.map_batches`); its ``progress`` is called with the number
    of tests finished (``2 x len(strategies) x replications`` in all). Identical results
    for the same seed whatever the executor.
    """
    names = [s.name for s in strategies]
    if len(set(names)) != len(names):
        raise StrategyError(f"strategy names must be unique, got {', '.join(names)}")
    seed = execution.seed_or(0)
    seeds = [trial_seeds(seed, kind, replications) for kind in (0, 1)]
    items = [
        (s, kind, seeds[kind][r])
        for s in range(len(strategies))
        for kind in (0, 1)
        for r in range(replications)
    ]
    task = partial(_trials_batch, strategies=tuple(strategies), truths=(a_a_truth(truth), truth))
    outcomes = map_batches(task, items, execution.processes, execution.dask, execution.progress)
    best = int(np.argmax(truth.conversion))
    scores = []
    for s, strategy in enumerate(strategies):
        first = 2 * s * replications
        a_a = outcomes[first : first + replications]
        a_b = outcomes[first + replications : first + 2 * replications]
        scores.append(score(strategy.name, a_a, a_b, best))
    return BenchResult(
        scenario, currency, truth, truth.names[best], replications, seed, tuple(scores)
    )


# --------------------------------------------------------------------------- output


def bench_dict(result: BenchResult) -> dict[str, Any]:
    """The ``bench.json`` document: ``strategies.<name>.<metric>`` as ``{mean, low, high}``."""
    truth = result.truth
    return {
        "scenario": result.scenario,
        "seed": result.seed,
        "replications": result.replications,
        "days": truth.days,
        "visitors_per_day": truth.visitors_per_day,
        "true_best": result.true_best,
        "truth": {
            name: {
                "conversion": float(truth.conversion[i]),
                "revenue_per_visitor": float(truth.revenue_per_visitor[i]),
                "share": float(truth.shares[i]),
            }
            for i, name in enumerate(truth.names)
        },
        "strategies": {
            s.name: {
                m: {k: finite_or_none(v) for k, v in s.metrics[m]._asdict().items()}
                for m in BENCH_METRICS
            }
            for s in result.scores
        },
    }


def bench_rows(result: BenchResult) -> list[dict[str, Any]]:
    """One row per strategy, ``<metric>_<mean|low|high>`` columns (``bench.csv``)."""
    return [
        flat_row({"strategy": name, **metrics})
        for name, metrics in bench_dict(result)["strategies"].items()
    ]


def write_bench(result: BenchResult, out: Path) -> list[Path]:
    """Write ``bench.json``, ``bench.csv`` and ``bench.png`` under ``out``."""
    paths = [out / "bench.json", out / "bench.csv", out / "bench.png"]
    with atomic_writer(paths[0]) as stream:
        json.dump(bench_dict(result), stream, indent=2, allow_nan=False)
        stream.write("\n")
    write_csv(bench_rows(result), paths[1])
    write_png(bench_figure(result), paths[2])
    return paths


BENCH_LABELS = {
    "false_positive_rate": "false-positive rate (A/A)",
    "prob_correct": "P(ships the truly best)",
    "days_to_decision": "days to decision",
    "visitors_to_decision": "visitors to decision",
    "regret_conversions": "regret: conversions lost",
    "regret_revenue": "regret: revenue lost",
}


def bench_figure(result: BenchResult) -> Figure:
    """One panel per score: a bar per strategy with its 95% interval."""
    from matplotlib import rc_context
    from matplotlib.ticker import PercentFormatter

    from funnelsim.plots import STYLE, error_extents, new_figure, variant_color

    names = [s.name for s in result.scores]
    y = np.arange(len(names))
    with rc_context(STYLE):
        figure = new_figure(11.0, 1.2 + 0.9 * len(names) * 2)
        axes = figure.subplots(2, 3).ravel()
        for ax, metric in zip(axes, BENCH_METRICS, strict=True):
            mean, low, high = (
                np.array([getattr(s.metrics[metric], f) for s in result.scores])
                for f in ("mean", "low", "high")
            )
            ax.barh(
                y,
                mean,
                xerr=error_extents(mean, low, high),
                capsize=3,
                color=[variant_color(i + 1) for i in range(len(names))],
                height=0.6,
            )
            ax.set_yticks(y, names)
            ax.invert_yaxis()
            ax.set_title(BENCH_LABELS[metric], loc="left")
            if metric in ("false_positive_rate", "prob_correct"):
                ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
            elif metric == "regret_revenue":
                ax.set_xlabel(result.currency)
        figure.suptitle(
            f"{result.scenario}: {result.replications} simulated tests per "
            f"strategy, {result.truth.days} days (95% intervals); truly best: "
            f"{result.true_best}",
            x=0.02,
            ha="left",
            fontsize=10,
        )
    return figure


def bench_table(result: BenchResult) -> Table:
    """One row per strategy, scores with their 95% intervals below (visitors to decision
    as the mean only; every interval is in the files)."""
    share = partial(fmt.percent, digits=1)
    shows: dict[str, Callable[[float], str]] = {
        "false_positive_rate": share,
        "prob_correct": share,
        "days_to_decision": fmt.decimal,
        "regret_conversions": fmt.decimal,
        "regret_revenue": partial(fmt.money, currency=result.currency, digits=0),
    }
    rows = []
    for s in result.scores:
        scores = [
            Cell(show(s.metrics[k].mean), fmt.bounds(s.metrics[k].low, s.metrics[k].high, show))
            for k, show in shows.items()
        ]
        visitors = Cell(fmt.count(s.metrics["visitors_to_decision"].mean))
        rows.append(Row((Cell(s.name), *scores[:3], visitors, *scores[3:])))
    return Table(
        f"Strategies on {result.scenario}: {result.replications} simulated tests each, "
        f"{result.truth.days} days; truly best: {result.true_best}",
        (
            label("strategy"),
            Column("false pos. (A/A)"),
            Column("P(best shipped)"),
            Column("days"),
            Column("visitors"),
            Column("conversions lost"),
            Column("revenue lost"),
        ),
        tuple(rows),
        caption="Mean over simulated tests with its 95% interval below.",
    )
