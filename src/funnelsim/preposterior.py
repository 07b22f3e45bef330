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
  posterior comes from a multivariate normal prior fitted to the worlds, jointly
  over each arm's profit and what the test reads of it (conversions, or profit
  itself), so arms whose truths move together, as they do when variants share
  assumptions, are updated together, and a test that reads conversions learns
  about profit only as far as the two go together. The likelihood is normal on
  each arm's mean reading, with one visitor's spread evaluated at the prior
  mean. With normal priors and normal responses this is the exact Bayes rule of
  Test & Roll (see :mod:`funnelsim.analysis.testroll`); with Bernoulli
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
from funnelsim.intervals import Interval, mean_interval
from funnelsim.parallel import Progress, map_batches

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class WorldDraws(NamedTuple):
    """Drawn worlds (rows) of every arm (columns).

    Attributes:
        profit: Each arm's true mean profit per visitor.
        conversion: Each arm's true conversion probability, where the test reads
            conversions (None: conversions follow from profit, see
            :class:`BernoulliResponses`).
    """

    profit: FloatArray
    conversion: FloatArray | None = None


WorldSampler = Callable[[int, np.random.Generator], "FloatArray | WorldDraws"]
"""Draws ``n`` worlds: an array (n, arms) of each arm's true mean profit per visitor, or
:class:`WorldDraws` with their conversion probabilities as well."""
ROUNDING = 1e-12
"""Relative difference of expected profits below which two test lengths are equal."""
MIN_RESPONSE_SD = 1e-9
"""Floor of a visitor's reading spread (a conversion rate of 0 or 1 has none)."""
ArmRule = Callable[[IntArray, IntArray], int]
"""A decision rule on a finished test: visitors and conversions per arm -> arm shipped."""


class Responses(Protocol):
    """What the test reads of each visitor, around its arm's true mean on that scale."""

    reads_conversions: bool
    """Whether the test reads conversions (else profit)."""

    def observed(self, worlds: WorldDraws) -> FloatArray:
        """The true mean of what the test reads of one visitor, (worlds, arms)."""
        ...

    def response_sd(self, observed: FloatArray) -> FloatArray:
        """The standard deviation of one visitor's reading at each mean of ``observed``,
        in its shape."""
        ...

    def outcomes(
        self, observed: FloatArray, increments: IntArray, rng: np.random.Generator
    ) -> FloatArray:
        """What the test reads in each successive block of visitors, summed, shape
        (worlds, blocks, arms), for ``increments`` (blocks, arms) visitors."""
        ...


@dataclass(frozen=True)
class NormalResponses:
    """The test reads each visitor's profit: normal around its arm's mean with standard
    deviation ``sd`` (one value, or one per arm)."""

    sd: float | tuple[float, ...]
    reads_conversions = False

    def observed(self, worlds: WorldDraws) -> FloatArray:
        return worlds.profit

    def response_sd(self, observed: FloatArray) -> FloatArray:
        return np.broadcast_to(np.asarray(self.sd, dtype=float), observed.shape).copy()

    def outcomes(
        self, observed: FloatArray, increments: IntArray, rng: np.random.Generator
    ) -> FloatArray:
        noise = rng.standard_normal((observed.shape[0], *increments.shape))
        sd = self.response_sd(observed)[:, None, :]
        return np.asarray(increments * observed[:, None, :] + sd * np.sqrt(increments) * noise)


@dataclass(frozen=True)
class BernoulliResponses:
    """The test reads whether each visitor converts, at the world's conversion
    probability. Worlds without conversions have them from profit: profit per visitor /
    ``value_per_conversion`` (one value, or one per arm)."""

    value_per_conversion: float | tuple[float, ...] | None = None
    reads_conversions = True

    def observed(self, worlds: WorldDraws) -> FloatArray:
        if worlds.conversion is not None:
            rates = worlds.conversion
        elif self.value_per_conversion is None:
            raise ValueError("worlds without conversions need a value per conversion")
        else:
            rates = worlds.profit / np.asarray(self.value_per_conversion, dtype=float)
        if np.any((rates < 0) | (rates > 1)):
            raise ValueError("a world's conversion probability lies outside [0, 1]")
        return rates

    def response_sd(self, observed: FloatArray) -> FloatArray:
        return np.sqrt(observed * (1 - observed))

    def outcomes(
        self, observed: FloatArray, increments: IntArray, rng: np.random.Generator
    ) -> FloatArray:
        return rng.binomial(increments, observed[:, None, :]).astype(float)


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
        """Index of the profit-maximising length: the shortest among equals, equal meaning
        within rounding (arms of equal profit make every length equally good)."""
        profit = np.array([p.expected_profit.mean for p in self.curve])
        best = profit.max()
        return int(np.argmax(profit >= best - ROUNDING * max(abs(best), 1.0)))

    @property
    def uncertain(self) -> bool:
        """Whether some world's best arm is not the one shipped now (else no test pays)."""
        return self.evpi.mean > 0


class NormalPrior(NamedTuple):
    """The Bayes rule's prior, a multivariate normal fitted to the worlds.

    Attributes:
        profit_mean: Mean profit per visitor of each arm.
        observed_mean: Mean of what the test reads of one visitor, per arm.
        cross_cov: Covariance of profit (rows) with the reading (columns).
        observed_cov: Covariance of the readings.
        response_sd: Standard deviation of one visitor's reading at the prior mean.
    """

    profit_mean: FloatArray
    observed_mean: FloatArray
    cross_cov: FloatArray
    observed_cov: FloatArray
    response_sd: FloatArray


def _fit_prior(worlds: WorldDraws, responses: Responses) -> NormalPrior:
    observed = responses.observed(worlds)
    arms = observed.shape[1]
    joint = np.hstack([worlds.profit, observed])
    cov = np.cov(joint, rowvar=False).reshape(2 * arms, 2 * arms)
    if joint.shape[0] < 2 or not np.all(np.isfinite(cov)):
        cov = np.zeros((2 * arms, 2 * arms))
    mean = observed.mean(axis=0)
    sd = np.maximum(responses.response_sd(mean[None, :])[0], MIN_RESPONSE_SD)
    return NormalPrior(worlds.profit.mean(axis=0), mean, cov[:arms, arms:], cov[arms:, arms:], sd)


def posterior_means(prior: NormalPrior, visitors: IntArray, totals: FloatArray) -> FloatArray:
    """Posterior mean profit per visitor of each arm after a test of ``visitors`` (arms,)
    that read ``totals`` (worlds, arms): the normal update
    ``mu + C D (I + D S D)^-1 D (ybar - m)``, with ``C`` the cross-covariance of profit
    and reading, ``S`` the readings' covariance, ``m`` their mean and
    ``D = diag(sqrt(n) / s)`` (arms without visitors contribute nothing)."""
    root = np.sqrt(visitors) / prior.response_sd
    inner = np.eye(root.size) + np.outer(root, root) * prior.observed_cov
    gain = prior.cross_cov * root @ np.linalg.inv(inner)
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = totals - visitors * prior.observed_mean
        z = np.where(visitors > 0, shift / np.sqrt(visitors), 0.0)
    return prior.profit_mean + (z / prior.response_sd) @ gain.T


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
        responses: What the test reads of a visitor (conversions or profit).
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
    worlds = _draw(sample_worlds, simulations, world_seed)
    means = worlds.profit
    grid = _visitors_grid(visitors, means.shape[1], population)
    prior = _fit_prior(_draw(sample_worlds, simulations, prior_seed), responses)
    observed = responses.observed(worlds)
    increments = np.diff(grid, axis=0, prepend=0)
    read = responses.outcomes(observed, increments, np.random.default_rng(test_seed))
    totals = np.cumsum(read, axis=1)
    bayes = np.stack(
        [
            np.argmax(posterior_means(prior, grid[j], totals[:, j]), axis=1)
            for j in range(len(grid))
        ],
        axis=1,
    )
    rule_choices = None
    if rule is not None:
        if not responses.reads_conversions:
            raise ValueError("a decision rule on conversions needs Bernoulli responses")
        task = partial(_rule_batch, rule=rule, grid=grid)
        counts = list(totals[:rule_simulations].astype(np.int64))
        rule_choices = np.array(map_batches(task, counts, workers, dask, progress))
    best_prior = int(np.argmax(prior.profit_mean))
    rates = observed if responses.reads_conversions else None
    return _summarise(means, rates, grid, population, best_prior, bayes, rule_choices)


def _draw(sample_worlds: WorldSampler, n: int, seed: SeedSequence) -> WorldDraws:
    drawn = sample_worlds(n, np.random.default_rng(seed))
    worlds = drawn if isinstance(drawn, WorldDraws) else WorldDraws(drawn)
    profit = np.asarray(worlds.profit, dtype=float)
    shapes = {profit.shape} | (
        {np.shape(worlds.conversion)} if worlds.conversion is not None else set()
    )
    if profit.ndim != 2 or profit.shape[0] != n or len(shapes) != 1:
        raise ValueError(f"the world sampler must return ({n}, arms) values")
    conversion = None if worlds.conversion is None else np.asarray(worlds.conversion, float)
    return WorldDraws(profit, conversion)


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
