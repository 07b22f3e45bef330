"""Preposterior analysis by simulation against Test & Roll's closed form."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from funnelsim.analysis.testroll import (
    TwoArmPrior,
    expected_profit,
    expected_value_of_perfect_information,
    no_test_profit,
    optimal_visitors,
    symmetric_optimal_visitors,
)
from funnelsim.experiment import Interval
from funnelsim.preposterior import (
    BernoulliResponses,
    NormalPrior,
    NormalResponses,
    ProfitCurve,
    Responses,
    ShipOrKeep,
    WorldDraws,
    posterior_means,
    profit_curve,
)

N, MU, SIGMA = 100_000, 0.68, 0.03
S = math.sqrt(MU * (1 - MU))
GRID = [0, 250, 500, 1000, 1500, 2000, 2284, 3000, 4000, 6000, 8000, 12_000]


def normal_worlds(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(MU, SIGMA, (n, 2))


def within(value: float, interval: Interval) -> bool:
    """Inside the 95% Monte Carlo interval."""
    return interval.low <= value <= interval.high


def within_3_se(value: float, interval: Interval) -> bool:
    """Within 3 standard errors of the mean (a 95% interval is +-1.96 of them)."""
    return abs(value - interval.mean) <= 3 * (interval.high - interval.low) / (2 * 1.96)


@pytest.mark.parametrize("responses", [NormalResponses(S), BernoulliResponses(1.0)])
def test_simulated_optimum_agrees_with_the_closed_form(responses: Responses) -> None:
    """Feit & Berman's example by simulation (20,000 worlds): at the simulated optimum,
    the closed form's profit lies inside the simulation's 95% Monte Carlo interval, and
    the closed form's own optimum earns no more than that interval's half-width above
    it. Bernoulli responses with a normal prior on the rate: the closed form is the
    normal approximation the paper uses."""
    curve = profit_curve(normal_worlds, responses, GRID, N, 20_000, seed=1)
    prior = TwoArmPrior.symmetric(MU, SIGMA, S)
    found = curve.curve[curve.optimal]
    at_found = expected_profit(found.visitors, N, prior).total
    best = symmetric_optimal_visitors(N, SIGMA, S)
    half_width = found.expected_profit.high - found.expected_profit.mean
    assert within(at_found, found.expected_profit)
    assert expected_profit((best, best), N, prior).total - at_found < half_width
    assert 0 < found.visitors[0] < GRID[-1]


def test_evpi_by_simulation_matches_n_sigma_over_root_pi() -> None:
    curve = profit_curve(normal_worlds, NormalResponses(S), [0], N, 20_000, seed=2)
    assert within(N * SIGMA / math.sqrt(math.pi), curve.evpi)
    prior = TwoArmPrior.symmetric(MU, SIGMA, S)
    assert expected_value_of_perfect_information(N, prior) == pytest.approx(
        N * SIGMA / math.sqrt(math.pi)
    )


def test_evpi_of_three_arms() -> None:
    """K = 3 iid normal arms: EVPI = N sigma E[max of 3 standard normals] = N sigma 3 /
    (2 sqrt(pi)) (the mean of the largest of three standard normals)."""
    curve = profit_curve(
        lambda n, rng: rng.normal(MU, SIGMA, (n, 3)), NormalResponses(S), [0, 2000], N, 20_000, 3
    )
    assert within_3_se(N * SIGMA * 3 / (2 * math.sqrt(math.pi)), curve.evpi)
    assert curve.curve[1].evsi.low > 0


def test_no_uncertainty_means_no_test() -> None:
    """A single world: shipping its best arm now is optimal, EVPI is 0, every test costs
    exactly what its visitors on worse arms lose."""
    truth = np.array([0.10, 0.12, 0.11])
    curve = profit_curve(
        lambda n, rng: np.tile(truth, (n, 1)), BernoulliResponses(50.0), [0, 100, 1000], 10_000, 200
    )
    assert curve.optimal == 0 and curve.ship_now == 1
    assert curve.evpi == Interval(0.0, 0.0, 0.0) and not curve.uncertain
    cost = [(0.12 - 0.10 + 0.12 - 0.11) * n for n in (0, 100, 1000)]
    assert [p.evsi.mean for p in curve.curve] == pytest.approx([-c for c in cost])
    assert curve.curve[2].evsi_conversions == pytest.approx(Interval(-0.6, -0.6, -0.6))


def test_uncertain_levels_with_a_certain_effect_buy_nothing() -> None:
    """Worlds disagree about the level but not about the difference (arms move together,
    as variants sharing an uncertain assumption do): the correlated prior knows the
    best arm, so no test pays and EVPI is 0."""
    curve = profit_curve(
        lambda n, rng: rng.normal(0.5, 0.05, (n, 1)) + np.array([0.0, 0.01]),
        NormalResponses(0.5),
        [0, 500, 5000],
        10_000,
        500,
    )
    assert curve.evpi.mean == pytest.approx(0.0, abs=1e-9)
    assert curve.optimal == 0
    assert all(p.evsi.high < 0 for p in curve.curve[1:])


def test_ship_or_keep_rule_is_scored_beside_the_bayes_rule() -> None:
    """One world, 10% vs 12%: without a test the project's rule keeps the control (it
    has read nothing) while the Bayes rule ships the better prior; after 20,000 visitors
    per arm the rule ships the variant every time."""
    curve = profit_curve(
        lambda n, rng: np.tile([0.10, 0.12], (n, 1)),
        BernoulliResponses(1.0),
        [0, 20_000],
        100_000,
        100,
        rule=ShipOrKeep(),
    )
    no_test, long_test = curve.curve
    assert no_test.rule_profit == Interval(10_000.0, 10_000.0, 10_000.0)
    assert no_test.expected_profit.mean == pytest.approx(12_000.0)
    assert long_test.rule_profit == pytest.approx(long_test.expected_profit)


def test_same_seed_same_curve_and_workers_agree() -> None:
    def run(workers: int) -> ProfitCurve:
        return profit_curve(
            normal_worlds,
            BernoulliResponses(1.0),
            [0, 100, 400],
            10_000,
            60,
            7,
            ShipOrKeep(),
            workers=workers,
        )

    assert run(1) == run(1) == run(2)


def test_common_random_numbers_smooth_the_curve() -> None:
    """Every length reads the same worlds and visitors (a longer test extends a shorter
    one), so neighbouring lengths differ far less than the same lengths simulated
    independently (each with its own seed)."""
    grid = list(range(1000, 1100, 10))

    def profits(curves: list[ProfitCurve]) -> np.ndarray:
        return np.array([p.expected_profit.mean for c in curves for p in c.curve])

    common = profits([profit_curve(normal_worlds, NormalResponses(S), grid, N, 2000, seed=4)])
    apart = profits(
        [profit_curve(normal_worlds, NormalResponses(S), [n], N, 2000, seed=n) for n in grid]
    )
    assert np.sqrt(np.mean(np.diff(common) ** 2)) < np.sqrt(np.mean(np.diff(apart) ** 2)) / 4


def test_bad_input() -> None:
    def worlds(n: int, rng: np.random.Generator) -> np.ndarray:
        return np.tile([0.1, 0.2], (n, 1))

    with pytest.raises(ValueError, match="non-decreasing"):
        profit_curve(worlds, BernoulliResponses(1.0), [100, 50], 1000, 10)
    with pytest.raises(ValueError, match="exceeds the population"):
        profit_curve(worlds, BernoulliResponses(1.0), [600], 1000, 10)
    with pytest.raises(ValueError, match="outside"):
        profit_curve(worlds, BernoulliResponses(0.1), [10], 1000, 10)
    with pytest.raises(ValueError, match="Bernoulli"):
        profit_curve(worlds, NormalResponses(1.0), [10], 1000, 10, rule=ShipOrKeep())


def test_unequal_allocation_matches_the_asymmetric_closed_form() -> None:
    """Unequal priors and response spreads: at the closed form's unequal optimum, the
    simulated profit (worlds from the two normal priors, visitors split unequally) and
    its EVSI contain the closed form's values within 3 Monte Carlo standard errors."""
    prior = TwoArmPrior((0.10, 0.11), (0.01, 0.03), (0.25, 0.35))
    n_1, n_2 = (round(n) for n in optimal_visitors(50_000, prior))

    def worlds(n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(prior.mean, prior.prior_sd, (n, 2))

    curve = profit_curve(
        worlds, NormalResponses(prior.response_sd), [[0, 0], [n_1, n_2]], 50_000, 20_000, 5
    )
    closed = expected_profit((n_1, n_2), 50_000, prior).total
    assert n_2 > n_1 > 0
    assert within_3_se(closed, curve.curve[1].expected_profit)
    assert within_3_se(closed - no_test_profit(50_000, prior), curve.curve[1].evsi)


def test_posterior_means_are_the_normal_normal_update() -> None:
    """Independent arms: each posterior mean is the precision-weighted average
    (mu / sigma^2 + total / s^2) / (1 / sigma^2 + n / s^2); an arm without visitors keeps
    its prior mean. Correlated arms: an arm without visitors moves with the one observed,
    by cov / var times that arm's shift."""
    mean, sigma, s = np.array([0.1, 0.2, 0.3]), np.array([0.05, 0.02, 0.04]), (0.2, 0.4, 0.3)
    sd = NormalResponses(s).response_sd(np.zeros((1, 3)))[0]
    assert sd.tolist() == [0.2, 0.4, 0.3]
    visitors, totals = np.array([100, 400, 0]), np.array([[15.0, 70.0, 0.0]])
    prior = NormalPrior(mean, mean, np.diag(sigma**2), np.diag(sigma**2), sd)
    expected = (mean / sigma**2 + totals / sd**2) / (1 / sigma**2 + visitors / sd**2)
    assert posterior_means(prior, visitors, totals) == pytest.approx(expected)
    cov = np.array([[4.0, 2.0], [2.0, 4.0]]) * 1e-4
    together = NormalPrior(mean[:2], mean[:2], cov, cov, sd[:2])
    moved = posterior_means(together, np.array([100, 0]), np.array([[15.0, 0.0]]))[0]
    assert moved[1] - 0.2 == pytest.approx((moved[0] - 0.1) * 2.0 / 4.0)


def test_a_test_of_conversions_learns_nothing_about_order_value() -> None:
    """Both arms convert 10% for sure; only what a buyer spends is unsure (a
    conversion is worth N(50, 5) independently per arm). Perfect information is worth
    something, but a test reading conversions buys none of it: every EVSI is 0 within 3
    standard errors. If conversions carried the value (profit / a known 50 per
    conversion), the same worlds would make a test pay."""

    def spend_unsure(n: int, rng: np.random.Generator) -> WorldDraws:
        profit = 0.1 * rng.normal(50.0, 5.0, (n, 2))
        return WorldDraws(profit, np.full((n, 2), 0.1))

    curve = profit_curve(spend_unsure, BernoulliResponses(), [0, 2000, 20_000], 100_000, 4000)
    assert curve.evpi.low > 0
    assert all(within_3_se(0.0, p.evsi) for p in curve.curve)

    def spend_in_conversions(n: int, rng: np.random.Generator) -> np.ndarray:
        return spend_unsure(n, rng).profit

    learning = profit_curve(
        spend_in_conversions, BernoulliResponses(50.0), [0, 2000, 20_000], 100_000, 4000
    )
    assert learning.curve[2].evsi.low > 0


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_nobody_or_everybody_converts_without_numerical_warnings(rate: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        curve = profit_curve(
            lambda n, rng: np.full((n, 2), rate), BernoulliResponses(1.0), [0, 100], 1000, 20
        )
    assert curve.optimal == 0 and curve.evpi.mean == 0
