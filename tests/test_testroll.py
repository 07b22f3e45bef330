"""Test & Roll in closed form: Feit & Berman's example, the optimum, EVPI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from funnelsim.analysis.testroll import (
    TwoArmPrior,
    expected_max_of_two_normals,
    expected_profit,
    expected_value_of_perfect_information,
    no_test_profit,
    optimal_visitors,
    perfect_information_profit,
    posterior_mean_sd,
    symmetric_optimal_visitors,
)

N, MU, SIGMA = 100_000, 0.68, 0.03
S_EXACT = math.sqrt(MU * (1 - MU))  # 0.46648..., shown rounded as 0.466 on the website


def test_feit_berman_website_example() -> None:
    """N = 100,000, mu = 0.68, sigma = 0.03, s = 0.466: about 2,284 per arm. The figure
    comes from s = sqrt(0.68 x 0.32) (the Bernoulli response sd at the prior mean); with
    s rounded to 0.466 the optimum moves by 2 visitors."""
    assert round(symmetric_optimal_visitors(N, SIGMA, S_EXACT)) == 2284
    assert symmetric_optimal_visitors(N, SIGMA, 0.466) == pytest.approx(2284, abs=3)


def test_symmetric_profit_is_the_paper_formula() -> None:
    """N mu + (N - 2n) sigma^2 / sqrt(pi (sigma^2 + s^2 / n)), written out independently."""
    prior = TwoArmPrior.symmetric(MU, SIGMA, S_EXACT)
    for n in (1, 100, 2284, 20_000):
        paper = N * MU + (N - 2 * n) * SIGMA**2 / math.sqrt(math.pi * (SIGMA**2 + S_EXACT**2 / n))
        assert expected_profit((n, n), N, prior).total == pytest.approx(paper, rel=1e-12)
    assert expected_profit((0, 0), N, prior).total == pytest.approx(N * MU)


def test_closed_form_optimum_maximises_the_profit() -> None:
    prior = TwoArmPrior.symmetric(MU, SIGMA, S_EXACT)
    best = symmetric_optimal_visitors(N, SIGMA, S_EXACT)
    at_best = expected_profit((best, best), N, prior).total
    for other in (best - 50, best - 1, best + 1, best + 50, best * 2, best / 2):
        assert expected_profit((other, other), N, prior).total < at_best


def test_expected_max_matches_numerical_integration() -> None:
    """Clark's formula against quadrature: E[max(X, Y)] = int x f_X(x) F_Y(x) dx +
    int y f_Y(y) F_X(y) dy for independent X and Y."""
    m1, m2, s1, s2 = 0.3, -0.2, 0.7, 1.1

    def larger_is(m: float, s: float, m_other: float, s_other: float) -> float:
        def integrand(x: float) -> float:
            return float(x * stats.norm.pdf(x, m, s) * stats.norm.cdf(x, m_other, s_other))

        return integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-12)[0]

    quadrature = larger_is(m1, s1, m2, s2) + larger_is(m2, s2, m1, s1)
    assert expected_max_of_two_normals(m1, m2, math.hypot(s1, s2)) == pytest.approx(
        quadrature, abs=1e-9
    )


def test_posterior_mean_sd_is_the_variance_split() -> None:
    """Var(prior) = Var(posterior mean) + E[posterior variance] (normal-normal)."""
    sigma, s, n = 0.05, 0.4, 300
    posterior_var = 1 / (1 / sigma**2 + n / s**2)
    assert posterior_mean_sd(n, sigma, s) ** 2 + posterior_var == pytest.approx(sigma**2)
    assert posterior_mean_sd(0, sigma, s) == 0


def test_numerical_optimum_agrees_with_the_closed_form() -> None:
    """The asymmetric path, given priors that differ by a hair, finds the closed form."""
    prior = TwoArmPrior((MU, MU + 1e-12), (SIGMA, SIGMA), (S_EXACT, S_EXACT))
    n_1, n_2 = optimal_visitors(N, prior)
    assert n_1 == pytest.approx(2284, abs=1) and n_2 == pytest.approx(2284, abs=1)


def test_asymmetric_optimum_is_a_maximum() -> None:
    """Unequal priors: the arm we are less sure of gets more visitors, and no nearby
    allocation earns more."""
    prior = TwoArmPrior((0.10, 0.11), (0.01, 0.03), (0.3, 0.3))
    n_1, n_2 = optimal_visitors(50_000, prior)
    assert n_2 > n_1
    best = expected_profit((n_1, n_2), 50_000, prior).total
    for d_1, d_2 in ((-20, 0), (20, 0), (0, -20), (0, 20), (20, 20), (-20, -20)):
        moved = (max(n_1 + d_1, 0), max(n_2 + d_2, 0))
        assert expected_profit(moved, 50_000, prior).total <= best + 1e-9


def test_evpi_closed_form() -> None:
    """EVPI = N sigma / sqrt(pi) for symmetric priors; perfect information minus no test."""
    prior = TwoArmPrior.symmetric(MU, SIGMA, S_EXACT)
    assert expected_value_of_perfect_information(N, prior) == pytest.approx(
        N * SIGMA / math.sqrt(math.pi), rel=1e-12
    )
    assert no_test_profit(N, prior) == pytest.approx(N * MU)
    assert perfect_information_profit(N, prior) > expected_profit((2284, 2284), N, prior).total


def test_evpi_matches_simulation() -> None:
    """E[N max(m_1, m_2)] - N mu by simulation (200,000 draws) within 4 standard errors."""
    rng = np.random.default_rng(3)
    gains = N * (rng.normal(MU, SIGMA, (200_000, 2)).max(axis=1) - MU)
    se = gains.std(ddof=1) / math.sqrt(gains.size)
    prior = TwoArmPrior.symmetric(MU, SIGMA, S_EXACT)
    assert abs(gains.mean() - expected_value_of_perfect_information(N, prior)) < 4 * se


def test_no_uncertainty_no_test() -> None:
    prior = TwoArmPrior((0.10, 0.12), (0.0, 0.0), (0.3, 0.3))
    assert symmetric_optimal_visitors(N, 0.0, 0.3) == 0
    assert expected_value_of_perfect_information(N, prior) == 0
    assert expected_profit((100, 100), N, prior).total < no_test_profit(N, prior)


def test_bad_arguments() -> None:
    prior = TwoArmPrior.symmetric(MU, SIGMA, S_EXACT)
    with pytest.raises(ValueError, match="population"):
        expected_profit((1, 1), 0, prior)
    with pytest.raises(ValueError, match="fit in"):
        expected_profit((60_000, 60_000), N, prior)
    with pytest.raises(ValueError, match="response sds positive"):
        optimal_visitors(N, TwoArmPrior.symmetric(MU, SIGMA, 0.0))
