"""Exact quadrature vs Monte Carlo for P(best) and expected loss with 10 variants.

Times ``prob_best`` + ``expected_loss`` (median of 20 runs) and a 100,000-draw Monte
Carlo estimate, and prints each one's largest absolute error against an adaptive
high-precision reference (scipy ``quad_vec``, tolerance 1e-14). Compares with the
``bayesian_testing`` package too when it is importable.

Run from the repository root: ``PYTHONPATH=src python benchmarks/exact_prob_best.py``.
"""

import importlib.util
import statistics
import time
from collections.abc import Callable

import numpy as np
from scipy import integrate, special
from scipy.stats import beta as beta_distribution

from funnelsim.analysis.conjugate import (
    BetaPosterior,
    FloatArray,
    beta_posteriors,
    expected_loss,
    expected_loss_draws,
    prob_best,
    prob_best_draws,
)

VISITORS = np.array([8000, 12000, 30000, 50000, 70000, 9000, 11000, 40000, 25000, 60000])
CONVERSIONS = np.array([400, 610, 1530, 2480, 3550, 440, 560, 2040, 1260, 3010])
RUNS = 20
MC_DRAWS = 100_000
Estimate = tuple[FloatArray, FloatArray]


def reference(post: BetaPosterior) -> Estimate:
    """P(best) and expected loss by adaptive Gauss-Kronrod over all supports."""
    n = post.alpha.size
    levels = np.array([1e-14, 1e-9, 1e-5, 1e-3, 0.02, 0.1, 0.3, 0.5])
    levels = np.concatenate([levels, 1 - levels[-2::-1]])
    quantiles = beta_distribution.ppf(levels[None, :], post.alpha[:, None], post.beta[:, None])
    lo, hi = quantiles[:, 0].min(), quantiles[:, -1].max()
    points = np.unique(quantiles[(quantiles > lo) & (quantiles < hi)])

    def integrand(x: float) -> FloatArray:
        cdf = special.betainc(post.alpha, post.beta, x)
        pdf = beta_distribution.pdf(x, post.alpha, post.beta)
        density = np.array([pdf[i] * np.prod(np.delete(cdf, i)) for i in range(n)])
        return np.concatenate([density, x * density])

    values, _ = integrate.quad_vec(
        integrand, lo, hi, points=points, epsabs=1e-14, epsrel=1e-13, limit=20_000
    )
    return values[:n], values[n:].sum() - post.alpha / (post.alpha + post.beta)


def exact(post: BetaPosterior) -> Estimate:
    return prob_best(post), expected_loss(post)


def monte_carlo(post: BetaPosterior) -> Estimate:
    rng = np.random.default_rng(0)
    draws = rng.beta(post.alpha, post.beta, size=(MC_DRAWS, post.alpha.size))
    return prob_best_draws(draws), expected_loss_draws(draws)


def bayesian_testing_estimate(post: BetaPosterior) -> Estimate:
    """The same quantities from ``bayesian_testing`` (Monte Carlo, 100,000 draws)."""
    from bayesian_testing.experiments import BinaryDataTest

    test = BinaryDataTest()
    for k, (n, x) in enumerate(zip(VISITORS, CONVERSIONS, strict=True)):
        test.add_variant_data_agg(f"v{k}", int(n), int(x), a_prior=1, b_prior=1)
    rows = test.evaluate(sim_count=MC_DRAWS, seed=0)
    best = np.array([row["prob_being_best"] for row in rows])
    loss = np.array([row.get("expected_loss", np.nan) for row in rows])
    return best, loss


def median_ms(func: Callable[[BetaPosterior], Estimate], post: BetaPosterior) -> float:
    timings = []
    for _ in range(RUNS):
        start = time.perf_counter()
        func(post)
        timings.append(time.perf_counter() - start)
    return 1e3 * statistics.median(timings)


def report(name: str, estimate: Estimate, truth: Estimate, ms: float) -> None:
    best_error = np.max(np.abs(estimate[0] - truth[0]))
    loss_error = np.max(np.abs(estimate[1] - truth[1]))
    print(
        f"{name:<18} {ms:9.2f} ms   max |P(best) error| {best_error:.1e}   "
        f"max |expected loss error| {loss_error:.1e}"
    )


def main() -> None:
    post = beta_posteriors(VISITORS, CONVERSIONS)
    truth = reference(post)
    print(f"{post.alpha.size} variants, {VISITORS.sum():,} visitors; median of {RUNS} runs")
    exact_ms, mc_ms = median_ms(exact, post), median_ms(monte_carlo, post)
    report("exact quadrature", exact(post), truth, exact_ms)
    report(f"Monte Carlo {MC_DRAWS:,}", monte_carlo(post), truth, mc_ms)
    print(f"speed ratio (Monte Carlo / exact): {mc_ms / exact_ms:.1f}x")
    if importlib.util.find_spec("bayesian_testing") is None:
        print("bayesian_testing is not installed: comparison skipped")
        return
    bt_ms = median_ms(bayesian_testing_estimate, post)
    report("bayesian_testing", bayesian_testing_estimate(post), truth, bt_ms)
    print("(bayesian_testing reports expected loss only in recent versions; nan otherwise)")


if __name__ == "__main__":
    main()
