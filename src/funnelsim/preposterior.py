"""Is the test worth running, and for how long? Preposterior analysis by simulation.

A test is bought with traffic: while it runs, some visitors see worse arms, and
after it the shop ships whatever the test pointed to, right or wrong. Whether a
longer test pays depends on how unsure we are about the arms before it starts.
If we already knew which arm is best, every test visitor sent elsewhere would be
money lost; if we know nothing, a short test can save a wrong rollout.

This module answers by simulation, the way a decision analyst does a
*preposterior* analysis: draw a possible truth (a *world*: every arm's true mean
profit per visitor) from what we believe, simulate the test that world would
produce, apply the decision rule, and score what the whole population of ``N``
visitors then earns (the test's visitors plus the rollout of the shipped arm to
everyone else). Averaged over many worlds, that is the expected profit of the
test; done for several test lengths on the *same* worlds and the same visitors
(a longer test extends a shorter one), the curve against the length is smooth
and its maximum is the profit-maximising length.

Beside it stand three references: ship the arm with the best prior expectation
now (no test), perfect information (every visitor gets the truly best arm of its
world), and their difference, the expected value of perfect information (EVPI).
A test length's expected value of sample information (EVSI) is its expected
profit minus shipping now.

The decision rules:

* the Bayes rule: ship the arm with the highest posterior mean profit. The
  posterior comes from a multivariate normal prior fitted to the worlds (their
  mean and covariance, so arms whose truths move together, as they do when
  variants share assumptions, are updated together) and a normal likelihood of
  each arm's mean response, with each visitor's response spread evaluated at the
  prior mean. With normal priors and normal responses this is the exact Bayes
  rule of Test & Roll (see :mod:`funnelsim.analysis.testroll`); with Bernoulli
  responses it is its normal approximation.
* any other rule, given as a function of the test's visitors and conversions per
  arm (for instance the project's ship / stop / keep-testing rule), scored on the
  same simulated tests so its cost is visible.

The prior of the Bayes rule, and the arm shipped now, are fitted on a separate
draw of as many worlds: chosen and scored on the same draws, shipping now would
look better than it is (the winner of a noisy comparison is flattered by it).

The test's visitors are scored at their arm's true mean (the conditional
expectation of what they earn), which leaves the expected profit unchanged and
removes noise no decision can change.

References:
    Raiffa, H. & Schlaifer, R. (1961), Applied Statistical Decision Theory, Harvard
    (preposterior analysis, EVPI and EVSI).
    Feit, E. M. & Berman, R. (2019), "Test & Roll: Profit-Maximizing A/B Tests",
    Marketing Science 38(6) (profit over test and rollout of a finite population).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple, Protocol

import numpy as np
from numpy.random import SeedSequence
from numpy.typing import ArrayLike, NDArray

from funnelsim.analysis.conjugate import beta_posteriors
from funnelsim.analysis.decision import DEFAULT_RULE, DecisionRule, decide
from funnelsim.experiment import Interval, mean_interval
from funnelsim.parallel import Progress, map_batches

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

WorldSampler = Callable[[int, np.random.Generator], FloatArray]
"""Draws ``n`` worlds: an array (n, arms) of each arm's true mean profit per visitor."""
ArmRule = Callable[[IntArray, IntArray], int]
"""A decision rule on a finished test: visitors and conversions per arm -> arm shipped."""


class Responses(Protocol):
    """How one visitor's profit varies around its arm's true mean."""

    def response_sd(self, means: FloatArray) -> FloatArray:
        """The standard deviation of one visitor's profit at each mean of ``means``
        (worlds, arms), in its shape."""
        ...

    def conversion(self, means: FloatArray) -> FloatArray | None:
        """Conversion probability per world and arm, or None if responses are not
        conversions."""
        ...

    def outcomes(
        self, means: FloatArray, increments: IntArray, rng: np.random.Generator
    ) -> tuple[FloatArray, IntArray | None]:
        """Profit (and conversions, or None) of each successive block of test visitors,
        shape (worlds, blocks, arms), for ``increments`` (blocks, arms) visitors."""
        ...


@dataclass(frozen=True)
class NormalResponses:
    """Each visitor's profit is normal around its arm's mean with standard deviation ``sd``
    (one value, or one per arm)."""

    sd: float | tuple[float, ...]

    def response_sd(self, means: FloatArray) -> FloatArray:
        return np.broadcast_to(np.asarray(self.sd, dtype=float), means.shape).copy()

    def conversion(self, means: FloatArray) -> FloatArray | None:
        return None

    def outcomes(
        self, means: FloatArray, increments: IntArray, rng: np.random.Generator
    ) -> tuple[FloatArray, IntArray | None]:
        noise = rng.standard_normal((means.shape[0], *increments.shape))
        sd = self.response_sd(means)[:, None, :]
        profit = increments * means[:, None, :] + sd * np.sqrt(increments) * noise
        return profit, None


@dataclass(frozen=True)
class BernoulliResponses:
    """Each visitor converts or not; a conversion earns ``value_per_conversion`` (one
    value, or one per arm; known), so an arm's mean profit per visitor is its
    conversion probability times that value."""

    value_per_conversion: float | tuple[float, ...]

    def _values(self, arms: int) -> FloatArray:
        return np.broadcast_to(np.asarray(self.value_per_conversion, dtype=float), (arms,))

    def conversion(self, means: FloatArray) -> FloatArray:
        rates = means / self._values(means.shape[-1])
        if np.any((rates < 0) | (rates > 1)):
            raise ValueError("a world's conversion probability lies outside [0, 1]")
        return rates

    def response_sd(self, means: FloatArray) -> FloatArray:
        rates = self.conversion(means)
        return self._values(means.shape[-1]) * np.sqrt(rates * (1 - rates))

    def outcomes(
        self, means: FloatArray, increments: IntArray, rng: np.random.Generator
    ) -> tuple[FloatArray, IntArray | None]:
        rates = self.conversion(means)
        converted = rng.binomial(increments, rates[:, None, :])
        return converted * self._values(means.shape[-1]), converted


@dataclass(frozen=True)
class ShipOrKeep:
    """The project's ship / stop / keep-testing rule
    (:func:`funnelsim.analysis.decision.decide` on Beta posteriors of conversion) read
    once when the test ends: it ships the arm the rule ships; a stop, an undecided
    test or no test at all keeps the control."""

    rule: DecisionRule = DEFAULT_RULE
    prior: tuple[float, float] = (1.0, 1.0)
    control: int = 0

    def __call__(self, visitors: IntArray, conversions: IntArray) -> int:
        if visitors.sum() == 0:
            return self.control
        verdict = decide(
            beta_posteriors(visitors, conversions, *self.prior), self.control, self.rule
        )
        return self.control if verdict.action != "ship" or verdict.index is None else verdict.index


def _rule_batch(counts: list[IntArray], rule: ArmRule, grid: IntArray) -> list[list[int]]:
    """The pure task of the other rule: per simulated test, its choice at every length."""
    return [
        [rule(visitors, row) for visitors, row in zip(grid, test, strict=True)] for test in counts
    ]


class CurvePoint(NamedTuple):
    """One test length, scored on every simulated world (95% Monte Carlo t-intervals).

    Attributes:
        visitors: Test visitors per arm.
        expected_profit: Expected profit of the whole population (test and rollout)
            under the Bayes rule.
        evsi: Expected value of the test's information: ``expected_profit`` minus
            shipping now, paired on the same worlds.
        evsi_conversions: The same in conversions, or None if responses are not
            conversions.
        rule_profit: Expected profit when the other rule decides (on the first
            ``rule_simulations`` worlds), or None.
    """

    visitors: tuple[int, ...]
    expected_profit: Interval
    evsi: Interval
    evsi_conversions: Interval | None
    rule_profit: Interval | None


@dataclass(frozen=True)
class ProfitCurve:
    """A finished preposterior analysis (all intervals: 95% Monte Carlo t-intervals).

    Attributes:
        population: Visitors in all, test included.
        simulations: Simulated worlds (each with its own test).
        ship_now: Arm with the best prior expected profit, shipped without a test.
        ship_now_profit: Expected profit of shipping it to everyone.
        perfect_information_profit: Expected profit when everyone gets the truly best arm.
        evpi: Expected value of perfect information (in money), paired on the worlds.
        evpi_conversions: The same in conversions, or None.
        curve: One point per test length, in the order given.
        rule_simulations: Simulated tests the other rule read (0 without one).
    """

    population: int
    simulations: int
    ship_now: int
    ship_now_profit: Interval
    perfect_information_profit: Interval
    evpi: Interval
    evpi_conversions: Interval | None
    curve: tuple[CurvePoint, ...]
    rule_simulations: int

    @property
    def optimal(self) -> int:
        """Index of the profit-maximising length (the shortest among equals)."""
        return int(np.argmax([p.expected_profit.mean for p in self.curve]))

    @property
    def uncertain(self) -> bool:
        """Whether some world's best arm is not the one shipped now (else no test pays)."""
        return self.evpi.mean > 0


class NormalPrior(NamedTuple):
    """The Bayes rule's prior: mean and covariance of the arms' mean profit per visitor,
    and each arm's response standard deviation at the prior mean."""

    mean: FloatArray
    cov: FloatArray
    response_sd: FloatArray


def _fit_prior(worlds: FloatArray, responses: Responses) -> NormalPrior:
    mean = worlds.mean(axis=0)
    cov = np.cov(worlds, rowvar=False).reshape(mean.size, mean.size)
    if worlds.shape[0] < 2 or not np.all(np.isfinite(cov)):
        cov = np.zeros((mean.size, mean.size))
    sd = np.maximum(responses.response_sd(mean[None, :])[0], np.finfo(float).tiny)
    return NormalPrior(mean, cov, sd)


def posterior_means(prior: NormalPrior, visitors: IntArray, totals: FloatArray) -> FloatArray:
    """Posterior mean profit per visitor of each arm after a test of ``visitors`` (arms,)
    that earned ``totals`` (worlds, arms): the normal-normal update
    ``mu + S D (I + D S D)^-1 D (ybar - mu)`` with ``D = diag(sqrt(n) / s)`` (arms
    without visitors contribute nothing)."""
    root = np.sqrt(visitors) / prior.response_sd
    gain = prior.cov * root @ np.linalg.inv(np.eye(root.size) + np.outer(root, root) * prior.cov)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(visitors > 0, (totals - visitors * prior.mean) / np.sqrt(visitors), 0.0)
    return prior.mean + (z / prior.response_sd) @ gain.T


def _visitors_grid(visitors: ArrayLike, arms: int, population: int) -> IntArray:
    grid = np.asarray(visitors, dtype=np.int64)
    grid = np.repeat(grid[:, None], arms, axis=1) if grid.ndim == 1 else grid
    if grid.ndim != 2 or grid.shape[1] != arms or grid.shape[0] == 0:
        raise ValueError(f"visitors must have shape (lengths,) or (lengths, {arms})")
    if np.any(grid < 0) or np.any(np.diff(grid, axis=0) < 0):
        raise ValueError("test visitors must be non-negative and non-decreasing per arm")
    if grid[-1].sum() > population:
        raise ValueError(f"the longest test ({grid[-1].sum()}) exceeds the population")
    return grid


def _scores(means: FloatArray, grid: IntArray, choices: IntArray, population: int) -> FloatArray:
    """Profit per world and length: the test at the true means plus the rollout."""
    test = means @ grid.T
    rollout = (population - grid.sum(axis=1)) * np.take_along_axis(means, choices, axis=1)
    return np.asarray(test + rollout)


def profit_curve(
    sample_worlds: WorldSampler,
    responses: Responses,
    visitors: ArrayLike,
    population: int,
    simulations: int = 2000,
    seed: int | SeedSequence = 0,
    rule: ArmRule | None = None,
    rule_simulations: int | None = None,
    workers: int = 1,
    dask: Any = None,
    progress: Progress | None = None,
) -> ProfitCurve:
    """Expected profit of each test length, EVSI, EVPI and shipping now (see the module
    docstring).

    Args:
        sample_worlds: Draws the worlds (the prior; a single repeated world when
            nothing is uncertain).
        responses: How a visitor's profit varies around its arm's mean.
        visitors: Test visitors per arm for each length, shape (lengths,) for an equal
            split or (lengths, arms); non-decreasing, so longer tests extend shorter ones.
        population: Visitors in all, test included.
        simulations: Worlds drawn, each with its own simulated test.
        seed: Seed of the worlds and the tests (same seed, same curve).
        rule: Another decision rule scored beside the Bayes rule (needs conversions;
            picklable to run on several workers, such as :class:`ShipOrKeep`).
        rule_simulations: Simulated tests the other rule reads (the first ones; default
            all): it is far slower than the Bayes rule.
        workers, dask, progress: Where the other rule runs (see
            :func:`funnelsim.parallel.map_batches`); ``progress`` counts simulated tests.

    Example: two arms, nothing uncertain: any test costs, perfect information is worth 0.

    >>> curve = profit_curve(lambda n, rng: np.tile([0.10, 0.12], (n, 1)),
    ...                      BernoulliResponses(1.0), [0, 500, 1000], 10_000, 50)
    >>> [round(p.expected_profit.mean) for p in curve.curve], curve.evpi.mean, curve.optimal
    ([1200, 1190, 1180], 0.0, 0)
    """
    root = seed if isinstance(seed, SeedSequence) else SeedSequence(seed)
    world_seed, test_seed, prior_seed = root.spawn(3)
    means = _draw(sample_worlds, simulations, world_seed)
    grid = _visitors_grid(visitors, means.shape[1], population)
    prior = _fit_prior(_draw(sample_worlds, simulations, prior_seed), responses)
    increments = np.diff(grid, axis=0, prepend=0)
    profit, converted = responses.outcomes(means, increments, np.random.default_rng(test_seed))
    totals = np.cumsum(profit, axis=1)
    bayes = np.stack(
        [
            np.argmax(posterior_means(prior, grid[j], totals[:, j]), axis=1)
            for j in range(len(grid))
        ],
        axis=1,
    )
    rule_choices = None
    if rule is not None:
        if converted is None:
            raise ValueError("a decision rule on conversions needs Bernoulli responses")
        task = partial(_rule_batch, rule=rule, grid=grid)
        counts = list(np.cumsum(converted[:rule_simulations], axis=1))
        rule_choices = np.array(map_batches(task, counts, workers, dask, progress))
    best_prior = int(np.argmax(prior.mean))
    rates = responses.conversion(means)
    return _summarise(means, rates, grid, population, best_prior, bayes, rule_choices)


def _draw(sample_worlds: WorldSampler, n: int, seed: SeedSequence) -> FloatArray:
    worlds = np.asarray(sample_worlds(n, np.random.default_rng(seed)), dtype=float)
    if worlds.ndim != 2 or worlds.shape[0] != n:
        raise ValueError(f"the world sampler must return ({n}, arms) values")
    return worlds


def _summarise(
    means: FloatArray,
    rates: FloatArray | None,
    grid: IntArray,
    population: int,
    best_prior: int,
    bayes: IntArray,
    rule_choices: IntArray | None,
) -> ProfitCurve:
    best_truly = np.argmax(means, axis=1)[:, None]
    ship_now = population * means[:, best_prior]
    profit = _scores(means, grid, bayes, population)
    evsi = profit - ship_now[:, None]
    evsi_conversions = evpi_conversions = None
    if rates is not None:
        rates_now = population * rates[:, best_prior]
        evsi_conversions = _scores(rates, grid, bayes, population) - rates_now[:, None]
        perfect_rates = population * np.take_along_axis(rates, best_truly, axis=1)[:, 0]
        evpi_conversions = mean_interval(perfect_rates - rates_now)
    rule_profit = None
    if rule_choices is not None:
        rule_profit = _scores(means[: len(rule_choices)], grid, rule_choices, population)
    points = tuple(
        CurvePoint(
            tuple(int(n) for n in grid[j]),
            mean_interval(profit[:, j]),
            mean_interval(evsi[:, j]),
            None if evsi_conversions is None else mean_interval(evsi_conversions[:, j]),
            None if rule_profit is None else mean_interval(rule_profit[:, j]),
        )
        for j in range(len(grid))
    )
    perfect = population * means.max(axis=1)
    return ProfitCurve(
        population,
        means.shape[0],
        best_prior,
        mean_interval(ship_now),
        mean_interval(perfect),
        mean_interval(perfect - ship_now),
        evpi_conversions,
        points,
        0 if rule_choices is None else len(rule_choices),
    )
