"""Safe peeking: the mSPRT keeps its false-positive rate under daily looks, naive peeking
does not; the confidence sequence agrees with the p-value and covers at every look."""

import math

import numpy as np
import pytest

from funnelsim.analysis.moments import moments_from_values
from funnelsim.analysis.sequential import (
    always_valid_p_values,
    confidence_sequence,
    difference_in_means,
    mixing_variance,
    sequential_readout,
)

TESTS, DAYS, DAILY, RATE, ALPHA = 4000, 28, 1000, 0.05, 0.05
Z_CRITICAL = 1.959963984540054  # two-sided 5% normal quantile


def _binomial_se(rate: float, trials: int) -> float:
    return math.sqrt(rate * (1 - rate) / trials)


def _cumulative_conversion(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Per arm, per test, per day: cumulative visitors, means and sample variances of the
    per-visitor conversion flag, for ``TESTS`` A/A tests."""
    daily = rng.binomial(DAILY, RATE, size=(2, TESTS, DAYS))
    n = np.cumsum(np.full((2, TESTS, DAYS), DAILY, dtype=np.float64), axis=-1)
    x = np.cumsum(daily, axis=-1).astype(np.float64)
    mean = x / n
    variance = (x - x**2 / n) / (n - 1)  # sum of y^2 = sum of y for a 0/1 flag
    return n, mean, variance


def _cumulative_revenue(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """The same for revenue per visitor: buyers spend LogNormal(3.5, 0.8) each."""
    buyers = rng.binomial(DAILY, RATE, size=(2, TESTS, DAYS))
    values = rng.lognormal(3.5, 0.8, size=int(buyers.sum()))
    starts = np.concatenate([[0], np.cumsum(buyers.ravel())[:-1]])
    padded = np.append(values, 0.0)  # reduceat needs a valid start for empty groups
    total = np.where(buyers.ravel() > 0, np.add.reduceat(padded, starts), 0.0)
    total_sq = np.where(buyers.ravel() > 0, np.add.reduceat(padded**2, starts), 0.0)
    n = np.cumsum(np.full(buyers.shape, DAILY, dtype=np.float64), axis=-1)
    s = np.cumsum(total.reshape(buyers.shape), axis=-1)
    q = np.cumsum(total_sq.reshape(buyers.shape), axis=-1)
    return n, s / n, (q - s**2 / n) / (n - 1)


def _false_positive_rates(n, mean, variance) -> tuple[float, float]:
    """Share of A/A tests declared different at some look: mSPRT vs naive z-test."""
    estimate, var = difference_in_means(n, mean, variance, control=0)
    estimate, var = estimate[1], var[1]
    visitors = n[0] + n[1]
    tau_sq = mixing_variance(var, visitors, planned_visitors=2 * DAILY * DAYS, alpha=ALPHA)
    always_valid = always_valid_p_values(estimate, var, tau_sq)[:, -1] <= ALPHA
    naive = (np.abs(estimate) / np.sqrt(var) > Z_CRITICAL).any(axis=-1)
    return float(always_valid.mean()), float(naive.mean())


@pytest.mark.parametrize("simulate", [_cumulative_conversion, _cumulative_revenue])
def test_daily_peeking_keeps_the_false_positive_rate_at_alpha(simulate) -> None:
    sequential, naive = _false_positive_rates(*simulate(np.random.default_rng(2017)))
    assert sequential <= ALPHA + 4 * _binomial_se(ALPHA, TESTS)
    # Armitage et al. (1969): 28 looks at the 5% level reject about 27% of null tests.
    assert naive >= 0.25 - 4 * _binomial_se(0.25, TESTS)


def test_confidence_sequence_covers_a_true_difference_at_every_look() -> None:
    """B converts at 5.5% vs 5%: the sequence holds the true 0.5 points at every look of
    at least 1 - alpha of the tests."""
    rng = np.random.default_rng(7)
    n = np.cumsum(np.full((2, TESTS, DAYS), DAILY, dtype=np.float64), axis=-1)
    rates = np.array([RATE, RATE + 0.005])[:, None, None]
    x = np.cumsum(rng.binomial(DAILY, rates, size=(2, TESTS, DAYS)), axis=-1)
    estimate, var = difference_in_means(n, x / n, (x - x**2 / n) / (n - 1), control=0)
    tau_sq = mixing_variance(var[1], n[0] + n[1], 2 * DAILY * DAYS, ALPHA)
    low, high = confidence_sequence(estimate[1], var[1], tau_sq, ALPHA)
    covered = ((low <= 0.005) & (high >= 0.005)).all(axis=-1)
    assert covered.mean() >= 1 - ALPHA - 4 * _binomial_se(ALPHA, TESTS)


def test_interval_excludes_zero_exactly_when_p_is_below_alpha() -> None:
    rng = np.random.default_rng(3)
    estimate = rng.normal(0, 0.01, size=(500, 10))
    var = np.full_like(estimate, 1e-5 * 4)
    tau = np.full_like(estimate, 2e-5)
    low, high = confidence_sequence(estimate, var, tau, ALPHA)
    p = always_valid_p_values(estimate, var, tau)
    np.testing.assert_array_equal((low > 0) | (high < 0), p <= ALPHA)


def test_readout_stops_on_a_real_difference_and_not_on_an_a_a_test() -> None:
    rng = np.random.default_rng(11)
    arms = np.tile(["control", "b"], 20_000)
    day = np.repeat(np.arange(10), 4000)
    rates = np.where(arms == "control", 0.10, 0.12)
    converted = (rng.random(arms.size) < rates).astype(float)
    looks = [
        moments_from_values(arms[day <= d], converted[day <= d], ["converted"]) for d in range(10)
    ]
    labels = [f"day {d + 1}" for d in range(10)]
    result = sequential_readout(looks, labels, "converted", "control")
    assert result.stop_look is not None
    assert result.message.startswith(f"Stop at look {result.stop_look}:")
    assert "b is above the control" in result.message
    same = rng.random(arms.size) < 0.10
    looks = [moments_from_values(arms[day <= d], same[day <= d], ["converted"]) for d in range(10)]
    result = sequential_readout(looks, labels, "converted", "control")
    assert result.stop_look is None
    assert result.message.startswith("Keep going")


def test_empty_arm_gives_no_evidence() -> None:
    estimate, var = difference_in_means([0, 100], [np.nan, 0.1], [0.0, 0.09], control=0)
    assert var[1] == np.inf
    assert always_valid_p_values(estimate[1:], var[1:], 1e-3).tolist() == [1.0]
