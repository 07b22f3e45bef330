"""Test & Roll: the profit-maximising two-arm A/B test in closed form.

A shop with a finite audience pays twice for a test: every test visitor who sees
the worse arm earns less, and shipping the wrong arm afterwards earns less for
everyone who comes later. Feit & Berman frame it as "test, then roll": show arm 1
to ``n_1`` and arm 2 to ``n_2`` visitors out of a population of ``N``, then roll
the arm with the higher posterior mean out to the remaining ``N - n_1 - n_2``.

The setting (normal priors, normal responses): arm ``j`` has an unknown mean
profit per visitor ``m_j ~ N(mu_j, sigma_j^2)``, independent across arms, and a
visitor's profit is normal around ``m_j`` with standard deviation ``s_j``. A
Bernoulli response with a normal prior on its rate fits the same formulas with
``s_j = sqrt(mu_j (1 - mu_j))`` (the normal approximation Feit & Berman use).

The formulas, derived here:

* Before the test, the posterior mean ``M_j`` that ``n_j`` responses will give is
  itself normal with mean ``mu_j`` and variance ``tau_j^2 = sigma_j^2 - (1 /
  sigma_j^2 + n_j / s_j^2)^-1 = n_j sigma_j^4 / (n_j sigma_j^2 + s_j^2)``: the
  prior variance splits into what the test will reveal and what stays unknown.
* ``M_1`` and ``M_2`` are independent, so a rollout visitor is worth
  ``E[max(M_1, M_2)] = mu_2 + d Phi(d / e) + e phi(d / e)`` with ``d = mu_1 - mu_2``
  and ``e^2 = tau_1^2 + tau_2^2`` (the mean of the larger of two normals).
* Expected profit: ``n_1 mu_1 + n_2 mu_2 + (N - n_1 - n_2) E[max(M_1, M_2)]``.
* Symmetric priors (``mu``, ``sigma``, ``s`` shared): the profit is ``N mu + (N - 2n)
  sigma^2 / sqrt(pi (sigma^2 + s^2 / n))``; setting its derivative in ``n`` to zero
  gives ``4 n^2 + 6 r n - r N = 0`` with ``r = s^2 / sigma^2``, so
  ``n* = sqrt(r N / 4 + (3 r / 4)^2) - 3 r / 4`` visitors per arm.
* Perfect information earns ``N E[max(m_1, m_2)]`` (the same mean of a maximum with
  ``tau_j = sigma_j``); shipping the better prior mean now earns ``N max(mu_1, mu_2)``.
  Their difference, the expected value of perfect information, is ``N sigma /
  sqrt(pi)`` for symmetric priors.

References:
    Feit, E. M. & Berman, R. (2019), "Test & Roll: Profit-Maximizing A/B Tests",
    Marketing Science 38(6), 1038-1058 (section 3: the normal-normal model, the
    symmetric optimum and the value of perfect information).
    Clark, C. E. (1961), "The greatest of a finite set of random variables",
    Operations Research 9(2), 145-162 (the mean of the larger of two normals).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from scipy import optimize, stats


class TwoArmPrior(NamedTuple):
    """Normal priors of two arms' mean profit per visitor, and the spread of responses.

    Attributes:
        mean: Prior means ``(mu_1, mu_2)`` of the mean profit per visitor.
        prior_sd: Prior standard deviations ``(sigma_1, sigma_2)``.
        response_sd: Standard deviations ``(s_1, s_2)`` of one visitor's profit.
    """

    mean: tuple[float, float]
    prior_sd: tuple[float, float]
    response_sd: tuple[float, float]

    @classmethod
    def symmetric(cls, mean: float, prior_sd: float, response_sd: float) -> TwoArmPrior:
        """Both arms with the same prior and response spread."""
        return cls((mean, mean), (prior_sd, prior_sd), (response_sd, response_sd))

    @property
    def is_symmetric(self) -> bool:
        """Whether both arms share mean, prior sd and response sd."""
        return all(pair[0] == pair[1] for pair in self)


class ExpectedProfit(NamedTuple):
    """Expected profit of a test of ``n_1`` and ``n_2`` visitors and its rollout.

    Attributes:
        test: Expected profit of the test's visitors.
        rollout: Expected profit of the rollout of the arm with the higher posterior mean.
    """

    test: float
    rollout: float

    @property
    def total(self) -> float:
        """Test and rollout together: what the whole population is expected to yield."""
        return self.test + self.rollout


def _check(population: float, prior: TwoArmPrior) -> None:
    if not population > 0:
        raise ValueError(f"population must be positive, got {population}")
    if min(prior.prior_sd) < 0 or min(prior.response_sd) <= 0:
        raise ValueError(
            "prior sds must be non-negative and response sds positive, "
            f"got {prior.prior_sd} and {prior.response_sd}"
        )


def posterior_mean_sd(visitors: float, prior_sd: float, response_sd: float) -> float:
    """Standard deviation, before the test, of an arm's posterior mean after ``visitors``
    responses: ``tau = sigma^2 sqrt(n / (n sigma^2 + s^2))`` (0 without visitors).

    >>> round(posterior_mean_sd(1e12, 0.03, 0.466), 6)  # a huge test reveals the prior sd
    0.03
    """
    if visitors <= 0 or prior_sd == 0:
        return 0.0
    return prior_sd**2 * math.sqrt(visitors / (visitors * prior_sd**2 + response_sd**2))


def expected_max_of_two_normals(mean_1: float, mean_2: float, sd_of_difference: float) -> float:
    """``E[max(X_1, X_2)]`` for independent normals with the given means, where
    ``sd_of_difference`` is the standard deviation of ``X_1 - X_2``.

    >>> round(expected_max_of_two_normals(0.0, 0.0, math.sqrt(2)), 6)  # 1 / sqrt(pi)
    0.56419
    """
    difference = mean_1 - mean_2
    if sd_of_difference == 0:
        return max(mean_1, mean_2)
    z = difference / sd_of_difference
    return float(mean_2 + difference * stats.norm.cdf(z) + sd_of_difference * stats.norm.pdf(z))


def expected_profit(
    visitors: tuple[float, float], population: float, prior: TwoArmPrior
) -> ExpectedProfit:
    """Expected profit of testing ``visitors = (n_1, n_2)`` and rolling out the arm with
    the higher posterior mean to the rest of ``population`` (see the module docstring).

    >>> prior = TwoArmPrior.symmetric(0.68, 0.03, 0.466)
    >>> round(expected_profit((2282, 2282), 100_000, prior).total)
    69536
    """
    _check(population, prior)
    n_1, n_2 = visitors
    if min(n_1, n_2) < 0 or n_1 + n_2 > population:
        raise ValueError(f"test visitors {visitors} must be >= 0 and fit in {population}")
    tau = [
        posterior_mean_sd(n, sigma, s)
        for n, sigma, s in zip(visitors, prior.prior_sd, prior.response_sd, strict=True)
    ]
    per_rollout_visitor = expected_max_of_two_normals(*prior.mean, math.hypot(*tau))
    test = n_1 * prior.mean[0] + n_2 * prior.mean[1]
    return ExpectedProfit(test, (population - n_1 - n_2) * per_rollout_visitor)


def symmetric_optimal_visitors(population: float, prior_sd: float, response_sd: float) -> float:
    """Feit & Berman's profit-maximising visitors per arm for symmetric priors:
    ``sqrt(r N / 4 + (3 r / 4)^2) - 3 r / 4`` with ``r = (s / sigma)^2`` (not rounded).

    >>> round(symmetric_optimal_visitors(100_000, 0.03, math.sqrt(0.68 * 0.32)))
    2284
    """
    if prior_sd == 0:
        return 0.0
    r = (response_sd / prior_sd) ** 2
    return math.sqrt(r * population / 4 + (3 * r / 4) ** 2) - 3 * r / 4


def optimal_visitors(population: float, prior: TwoArmPrior) -> tuple[float, float]:
    """Profit-maximising test visitors ``(n_1, n_2)`` (not rounded).

    Symmetric priors use the closed form of :func:`symmetric_optimal_visitors`; other
    priors maximise :func:`expected_profit` numerically (SLSQP over ``sqrt(n_j)``,
    where the profit is smooth, with ``n_1 + n_2 <= N``; the gain over shipping now is
    scaled by the EVPI), started from the closed form
    at the average spreads.
    """
    _check(population, prior)
    if prior.is_symmetric:
        n = symmetric_optimal_visitors(population, prior.prior_sd[0], prior.response_sd[0])
        return n, n
    start = symmetric_optimal_visitors(
        population, sum(prior.prior_sd) / 2, sum(prior.response_sd) / 2
    )

    baseline = no_test_profit(population, prior)
    scale = max(expected_value_of_perfect_information(population, prior), 1e-300)

    def loss(roots: tuple[float, float]) -> float:
        visitors = (roots[0] ** 2, roots[1] ** 2)
        return -(expected_profit(visitors, population, prior).total - baseline) / scale

    fit = optimize.minimize(
        loss,
        [math.sqrt(start)] * 2,
        method="SLSQP",
        bounds=[(0, math.sqrt(population))] * 2,
        constraints=[{"type": "ineq", "fun": lambda roots: population - roots @ roots}],
        options={"ftol": 1e-14, "maxiter": 500},
    )
    n_1, n_2 = (float(root) ** 2 for root in fit.x)
    return n_1, n_2


def perfect_information_profit(population: float, prior: TwoArmPrior) -> float:
    """Expected profit when every visitor gets the truly better arm: ``N E[max(m_1, m_2)]``."""
    _check(population, prior)
    return population * expected_max_of_two_normals(*prior.mean, math.hypot(*prior.prior_sd))


def no_test_profit(population: float, prior: TwoArmPrior) -> float:
    """Expected profit of shipping the arm with the better prior mean to everyone now."""
    _check(population, prior)
    return population * max(prior.mean)


def expected_value_of_perfect_information(population: float, prior: TwoArmPrior) -> float:
    """EVPI: perfect information's profit minus shipping now (``N sigma / sqrt(pi)`` for
    symmetric priors).

    >>> round(expected_value_of_perfect_information(1.0, TwoArmPrior.symmetric(0, 1, 1)), 6)
    0.56419
    """
    return perfect_information_profit(population, prior) - no_test_profit(population, prior)
