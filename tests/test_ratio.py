"""Ratio metrics: delta-method intervals cover at their nominal rate; the denominator
mismatch is detected."""

import math

import numpy as np
import pytest
from scipy.stats import norm

from funnelsim.analysis.moments import Moments, moments_from_values
from funnelsim.analysis.ratio import ratio_posterior, ratio_readout

EXPERIMENTS, VISITORS, LEVEL = 2000, 1000, 0.95
MU, SIGMA = 3.5, 0.9  # log order value


def _binomial_tolerance(rate: float, trials: int) -> float:
    return 4 * math.sqrt(rate * (1 - rate) / trials)


def _order_moments(rng: np.random.Generator, order_rate: float, value_scale: float):
    """Per experiment: counts, sums and cross-products of (revenue, orders, buyer) per
    visitor, with Poisson orders and LogNormal order values."""
    orders = rng.poisson(order_rate, size=(EXPERIMENTS, VISITORS))
    values = rng.lognormal(MU, SIGMA, size=int(orders.sum())) * value_scale
    starts = np.concatenate([[0], np.cumsum(orders.ravel())[:-1]])
    padded = np.append(values, 0.0)
    revenue = np.where(orders.ravel() > 0, np.add.reduceat(padded, starts), 0.0)
    z = np.stack([revenue.reshape(orders.shape), orders, orders > 0], axis=-1).astype(float)
    return z.sum(axis=1), np.einsum("evi,evj->eij", z, z)


def _experiment(control, variant, e: int) -> Moments:
    return Moments(
        ("control", "b"),
        ("revenue", "orders", "buyer"),
        np.array([VISITORS, VISITORS], dtype=float),
        np.stack([control[0][e], variant[0][e]]),
        np.stack([control[1][e], variant[1][e]]),
    )


def test_delta_method_intervals_cover_at_their_nominal_rate() -> None:
    """B's orders are 10% larger and a third more frequent: true AOV difference
    0.1 E[value], true orders-per-buyer from the zero-truncated Poisson means."""
    rng = np.random.default_rng(2018)
    control = _order_moments(rng, 0.3, 1.0)
    variant = _order_moments(rng, 0.4, 1.1)
    mean_value = math.exp(MU + SIGMA**2 / 2)
    true_aov = 0.1 * mean_value

    def per_buyer(rate: float) -> float:
        return rate / (1 - math.exp(-rate))

    true_per_buyer = per_buyer(0.4) - per_buyer(0.3)
    aov_hits = buyer_hits = mismatches = 0
    for e in range(EXPERIMENTS):
        m = _experiment(control, variant, e)
        aov = ratio_readout(m, "revenue", "orders", "control", LEVEL).effects[0]
        opb = ratio_readout(m, "orders", "buyer", "control", LEVEL).effects[0]
        aov_hits += aov.difference.low <= true_aov <= aov.difference.high
        buyer_hits += opb.difference.low <= true_per_buyer <= opb.difference.high
        mismatches += aov.denominator_mismatch
    tolerance = _binomial_tolerance(LEVEL, EXPERIMENTS)
    assert aov_hits / EXPERIMENTS == pytest.approx(LEVEL, abs=tolerance)
    assert buyer_hits / EXPERIMENTS == pytest.approx(LEVEL, abs=tolerance)
    # Orders per visitor 0.3 vs 0.4 over 1,000 visitors each: a z of about 3.8.
    assert mismatches / EXPERIMENTS > 0.9


def test_relative_uplift_interval_covers_under_equal_ratios() -> None:
    rng = np.random.default_rng(5)
    control, variant = _order_moments(rng, 0.3, 1.0), _order_moments(rng, 0.3, 1.0)
    hits = mismatches = 0
    for e in range(EXPERIMENTS):
        effect = ratio_readout(_experiment(control, variant, e), "revenue", "orders", "control")
        hits += effect.effects[0].uplift.low <= 0 <= effect.effects[0].uplift.high
        mismatches += effect.effects[0].denominator_mismatch
    tolerance = _binomial_tolerance(LEVEL, EXPERIMENTS)
    assert hits / EXPERIMENTS == pytest.approx(LEVEL, abs=tolerance)
    assert mismatches / EXPERIMENTS == pytest.approx(0.05, abs=_binomial_tolerance(0.05, 2000))


def test_constant_denominator_gives_the_mean_per_visitor() -> None:
    y = np.array([1.0, 3.0, 2.0, 6.0])
    m = moments_from_values(list("aabb"), np.c_[y, np.ones(4)], ["revenue", "visitor"])
    result = ratio_readout(m, "revenue", "visitor", "a")
    assert [r.value for r in result.ratios] == [2.0, 4.0]
    assert result.ratios[0].se == pytest.approx(np.std([1.0, 3.0], ddof=1) / math.sqrt(2))


def test_an_arm_without_orders_is_refused() -> None:
    m = moments_from_values(list("aabb"), np.c_[[0.0, 0, 5, 6], [0.0, 0, 1, 1]], ["r", "o"])
    with pytest.raises(ValueError, match="positive total of 'o'"):
        ratio_readout(m, "r", "o", "a")


def test_bayesian_ratio_posterior_matches_the_delta_method() -> None:
    """Large samples: the posterior interval of the AOV equals the delta-method one within
    Monte Carlo error, and P(beats control) is the normal tail of the z statistic."""
    rng = np.random.default_rng(12)
    control, variant = _order_moments(rng, 0.3, 1.0), _order_moments(rng, 0.4, 1.1)
    m = _experiment(control, variant, 0)
    delta = ratio_readout(m, "revenue", "orders", "control")
    posterior = ratio_posterior(m, "revenue", "orders", "control", draws=200_000, seed=1)
    for found, expected in zip(posterior.ratios, delta.ratios, strict=True):
        assert found[1] == pytest.approx(expected.low, abs=0.02 * expected.se)
        assert found[2] == pytest.approx(expected.high, abs=0.02 * expected.se)
    z = delta.effects[0].difference.value / delta.effects[0].difference.se
    exact = float(norm.cdf(z))
    mc_se = math.sqrt(exact * (1 - exact) / 200_000)
    # Monte Carlo error, plus 0.01 for the ratio's curvature that the delta method drops.
    assert posterior.prob_beats_control[1] == pytest.approx(exact, abs=4 * mc_se + 0.01)
    assert posterior.prob_beats_control[0] == 0.5
