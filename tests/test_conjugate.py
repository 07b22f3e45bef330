"""Tests of the exact Beta-Binomial computations against independent references.

Deterministic quadrature results are compared with scipy's adaptive ``quad`` (and with
closed forms where they exist) to 1e-9, well inside the 1e-4 contract. Monte Carlo
results are compared with exact values within four Monte Carlo standard errors (fixed
seeds, so the tests are deterministic); calibration uses a binomial tolerance.
"""

import math
import time

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special
from scipy.optimize import brentq
from scipy.stats import beta as beta_distribution

from funnelsim.analysis.conjugate import (
    BetaPosterior,
    RevenueStats,
    beta_posteriors,
    credible_interval,
    expected_loss,
    expected_loss_draws,
    order_value_posterior,
    posterior_mean,
    prob_beats,
    prob_beats_draws,
    prob_best,
    prob_best_draws,
    prob_in_rope,
    revenue_per_visitor_draws,
    uplift_interval,
    uplift_interval_draws,
)

QUADRATURE_ATOL = 1e-9
REFERENCE_TAILS = np.array([1e-14, 1e-10, 1e-7, 1e-5, 1e-3, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4])
REFERENCE_LEVELS = np.concatenate([REFERENCE_TAILS, [0.5], 1 - REFERENCE_TAILS[::-1]])


def _quantiles(alpha: npt.ArrayLike, beta: npt.ArrayLike) -> np.ndarray:
    """REFERENCE_LEVELS quantiles, shape (variants, levels)."""
    return beta_distribution.ppf(
        REFERENCE_LEVELS[None, :], np.atleast_1d(alpha)[:, None], np.atleast_1d(beta)[:, None]
    )


def _breakpoints(candidates: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.unique(candidates[(candidates > lo) & (candidates < hi)])


def reference_prob_best_and_loss(post: BetaPosterior) -> tuple[np.ndarray, np.ndarray]:
    """P(best) and expected loss by adaptive Gauss-Kronrod (``quad_vec``) of the vector
    ``[f_i prod_{j != i} F_j, x f_i prod_{j != i} F_j]``, E[max] being the sum of the
    second half, over the union of the posteriors' supports (mass 1 - 2e-14 each)."""
    n = post.alpha.size
    quantiles = _quantiles(post.alpha, post.beta)
    lo, hi = quantiles[:, 0].min(), quantiles[:, -1].max()

    def integrand(x: float) -> np.ndarray:
        cdf = special.betainc(post.alpha, post.beta, x)
        pdf = beta_distribution.pdf(x, post.alpha, post.beta)
        density = np.array([pdf[i] * np.prod(np.delete(cdf, i)) for i in range(n)])
        return np.concatenate([density, x * density])

    values, _ = integrate.quad_vec(
        integrand,
        lo,
        hi,
        points=_breakpoints(quantiles.ravel(), lo, hi),
        epsabs=1e-14,
        epsrel=1e-13,
        limit=20_000,
    )
    return values[:n], values[n:].sum() - post.alpha / (post.alpha + post.beta)


def reference_prob_below(post: BetaPosterior, i: int, j: int, scale: float) -> float:
    """P(p_i < scale * p_j) = int f_j(x) F_i(scale x) dx by adaptive ``quad`` over
    posterior j's support, with breakpoints where either factor changes."""
    quantiles_j = _quantiles(post.alpha[j], post.beta[j]).ravel()
    steps_i = _quantiles(post.alpha[i], post.beta[i]).ravel() / scale
    lo, hi = quantiles_j[0], quantiles_j[-1]

    def integrand(x: float) -> float:
        cdf = special.betainc(post.alpha[i], post.beta[i], min(scale * x, 1.0))
        return beta_distribution.pdf(x, post.alpha[j], post.beta[j]) * cdf

    points = _breakpoints(np.concatenate([quantiles_j, steps_i]), lo, hi)
    value, _ = integrate.quad(integrand, lo, hi, points=points, limit=5000, epsabs=1e-14)
    return value


def miller_prob_b_beats_a(a_a: int, b_a: int, a_b: int, b_b: int) -> float:
    """Evan Miller's closed form of P(p_B > p_A) for integer alpha_B, in log space."""
    terms = [
        special.betaln(a_a + k, b_a + b_b)
        - math.log(b_b + k)
        - special.betaln(1 + k, b_b)
        - special.betaln(a_a, b_a)
        for k in range(a_b)
    ]
    return math.fsum(math.exp(t) for t in terms)


CASES = {
    "two variants": ([1000, 1000], [100, 120]),
    "zero conversions": ([1000, 1000, 50], [0, 0, 0]),
    "full conversion": ([1000, 1000, 10], [1000, 990, 10]),
    "unequal sizes": ([10, 100_000, 1000], [1, 10_000, 95]),
    "million visitors": ([10**6] * 3, [100_000, 100_400, 100_100]),
    "million visitors far apart": ([10**6, 10**6], [100_000, 500_000]),
    "million visitors no conversions": ([10**6, 10**6], [0, 3]),
    "empty variants": ([0, 0, 100], [0, 0, 50]),
    "mixed extremes": ([0, 10**6, 5, 10**6], [0, 999_999, 5, 10**6]),
    "ten variants": (
        [800, 1200, 3000, 5000, 7000, 900, 1100, 4000, 2500, 6000],
        [240, 380, 930, 1480, 2150, 250, 320, 1240, 760, 1790],
    ),
    "twenty variants": (
        [10_000 * (k + 1) for k in range(20)],
        [500 * (k + 1) + 7 * k for k in range(20)],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_prob_best_and_expected_loss_match_adaptive_quadrature(case: str) -> None:
    post = beta_posteriors(*CASES[case])
    want_best, want_loss = reference_prob_best_and_loss(post)
    np.testing.assert_allclose(prob_best(post), want_best, rtol=0, atol=QUADRATURE_ATOL)
    np.testing.assert_allclose(expected_loss(post), want_loss, rtol=0, atol=QUADRATURE_ATOL)


@pytest.mark.parametrize("case", CASES)
def test_prob_beats_matches_adaptive_quadrature(case: str) -> None:
    post = beta_posteriors(*CASES[case])
    got = prob_beats(post, reference=0)
    want = [0.5] + [reference_prob_below(post, 0, i, 1.0) for i in range(1, post.alpha.size)]
    np.testing.assert_allclose(got, want, rtol=0, atol=QUADRATURE_ATOL)


@pytest.mark.parametrize("case", ["two variants", "unequal sizes", "full conversion"])
def test_prob_in_rope_matches_adaptive_quadrature(case: str) -> None:
    post = beta_posteriors(*CASES[case])
    rope = 0.05
    got = prob_in_rope(post, reference=1, rope=rope)
    want = [
        reference_prob_below(post, i, 1, 1 + rope) - reference_prob_below(post, i, 1, 1 - rope)
        for i in range(post.alpha.size)
    ]
    want[1] = 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=QUADRATURE_ATOL)


@pytest.mark.parametrize(
    ("visitors", "conversions"),
    [((1000, 1000), (100, 120)), ((50, 4000), (0, 37)), ((300, 200), (300, 190))],
)
def test_two_variants_match_miller_and_stucchio_closed_forms(
    visitors: tuple[int, int], conversions: tuple[int, int]
) -> None:
    post = beta_posteriors(visitors, conversions)
    (a_a, a_b), (b_a, b_b) = post.alpha.astype(int), post.beta.astype(int)
    p_b_beats_a = miller_prob_b_beats_a(a_a, b_a, a_b, b_b)
    # Loss of shipping A = E[max(p_B - p_A, 0)]
    #   = E[p_B] P(Beta(a_B + 1, b_B) > p_A) - E[p_A] P(p_B > Beta(a_A + 1, b_A)).
    mean_a, mean_b = a_a / (a_a + b_a), a_b / (a_b + b_b)
    loss_a = mean_b * miller_prob_b_beats_a(a_a, b_a, a_b + 1, b_b) - mean_a * (
        miller_prob_b_beats_a(a_a + 1, b_a, a_b, b_b)
    )
    np.testing.assert_allclose(prob_beats(post, 0)[1], p_b_beats_a, rtol=0, atol=1e-10)
    np.testing.assert_allclose(prob_best(post)[1], p_b_beats_a, rtol=0, atol=1e-10)
    np.testing.assert_allclose(expected_loss(post)[0], loss_a, rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        expected_loss(post)[1], loss_a - (mean_b - mean_a), rtol=0, atol=1e-10
    )


@pytest.mark.parametrize(
    ("prior_alpha", "visitors"),
    [
        (0.5, [0, 3, 1000]),
        (0.05, [0, 0, 2]),
        (1.0, [10**6, 10**6 - 5, 10**6 + 5]),
        (0.2, [0, 10**6]),
    ],
)
def test_all_converting_variants_match_power_law_closed_forms(
    prior_alpha: float, visitors: list[int]
) -> None:
    """With prior_beta = 1 and every visitor converting, p_i ~ Beta(a_i, 1) has CDF x**a_i,
    so P(i best) = a_i / sum(a), E[max] = A / (A + 1) with A = sum(a),
    P(p_i > p_r) = a_i / (a_i + a_r) and, for k > 1, P(p_i < k p_r) =
    1 - k**-a_r a_i / (a_i + a_r), for k < 1, k**a_i a_r / (a_i + a_r). Densities with
    a < 1 are singular at 0, and the mass sits within 1e-6 of 1 for a million visitors."""
    post = beta_posteriors(visitors, visitors, prior_alpha=prior_alpha, prior_beta=1.0)
    a, total = post.alpha, post.alpha.sum()
    np.testing.assert_allclose(prob_best(post), a / total, rtol=0, atol=QUADRATURE_ATOL)
    want_loss = total / (total + 1) - a / (a + 1)
    np.testing.assert_allclose(expected_loss(post), want_loss, rtol=0, atol=QUADRATURE_ATOL)
    want_beats = a / (a + a[0])
    want_beats[0] = 0.5
    np.testing.assert_allclose(prob_beats(post, 0), want_beats, rtol=0, atol=QUADRATURE_ATOL)
    rope = 0.3
    share = a / (a + a[0])
    want_rope = 1 - (1 + rope) ** -a[0] * share - (1 - rope) ** a * (1 - share)
    want_rope[0] = 1.0
    got_rope = prob_in_rope(post, 0, rope)
    np.testing.assert_allclose(got_rope, want_rope, rtol=0, atol=QUADRATURE_ATOL)


@pytest.mark.parametrize(
    ("prior_beta", "visitors"),
    [(0.5, [0, 40]), (0.05, [0, 1]), (1.0, [10**6, 2 * 10**6]), (0.1, [7, 10**6])],
)
def test_non_converting_variants_match_mirrored_closed_forms(
    prior_beta: float, visitors: list[int]
) -> None:
    """With prior_alpha = 1 and no conversions, q = 1 - p ~ Beta(b, 1), so
    P(p_1 > p_0) = P(q_1 < q_0) = b_0 / (b_0 + b_1) and
    E[max p] = 1 - E[min q] = 1/(b_0+1) + 1/(b_1+1) - 1/(b_0+b_1+1)."""
    post = beta_posteriors(visitors, [0, 0], prior_alpha=1.0, prior_beta=prior_beta)
    b0, b1 = post.beta
    p1_beats_p0 = b0 / (b0 + b1)
    expected_max = 1 / (b0 + 1) + 1 / (b1 + 1) - 1 / (b0 + b1 + 1)
    np.testing.assert_allclose(prob_beats(post, 0), [0.5, p1_beats_p0], atol=QUADRATURE_ATOL)
    np.testing.assert_allclose(
        prob_best(post), [1 - p1_beats_p0, p1_beats_p0], rtol=0, atol=QUADRATURE_ATOL
    )
    want_loss = expected_max - 1 / (1 + post.beta)
    np.testing.assert_allclose(expected_loss(post), want_loss, rtol=0, atol=QUADRATURE_ATOL)


def test_single_variant_is_best_for_sure() -> None:
    post = beta_posteriors([100], [3])
    np.testing.assert_array_equal(prob_best(post), [1.0])
    np.testing.assert_allclose(expected_loss(post), [0.0], atol=1e-12)
    np.testing.assert_array_equal(prob_beats(post, 0), [0.5])


def test_identical_variants_split_probability_and_loss() -> None:
    post = beta_posteriors([5000, 5000], [400, 400])
    np.testing.assert_allclose(prob_best(post), [0.5, 0.5], rtol=0, atol=1e-12)
    np.testing.assert_allclose(prob_beats(post, 0), [0.5, 0.5], rtol=0, atol=1e-10)
    loss = expected_loss(post)
    assert loss[0] == loss[1] > 0


def test_zero_visitors_keeps_the_prior() -> None:
    post = beta_posteriors([0, 10], [0, 4], prior_alpha=2.0, prior_beta=3.0)
    np.testing.assert_array_equal(post.alpha, [2.0, 6.0])
    np.testing.assert_array_equal(post.beta, [3.0, 9.0])
    np.testing.assert_allclose(posterior_mean(post), [0.4, 0.4])


@pytest.mark.parametrize(
    ("visitors", "conversions", "match"),
    [
        ([10, 10], [3, 11], "exceed"),
        ([10, -1], [3, 0], "non-negative"),
        ([10, np.nan], [3, 0], "finite"),
        ([10, np.inf], [3, 0], "finite"),
        ([10, 10], [3], "same length"),
        ([], [], "non-empty"),
        ([[10]], [[3]], "one-dimensional"),
    ],
)
def test_beta_posteriors_rejects_invalid_counts(
    visitors: list[float], conversions: list[float], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        beta_posteriors(visitors, conversions)


@pytest.mark.parametrize("prior", [0.0, 0.049, -1.0, np.nan, np.inf])
def test_beta_posteriors_rejects_invalid_prior(prior: float) -> None:
    with pytest.raises(ValueError, match="prior_alpha"):
        beta_posteriors([10], [3], prior_alpha=prior)
    with pytest.raises(ValueError, match="prior_beta"):
        beta_posteriors([10], [3], prior_beta=prior)


def test_functions_reject_invalid_posterior_and_reference() -> None:
    post = beta_posteriors([10, 10], [3, 4])
    with pytest.raises(ValueError, match="at least"):
        prob_best(BetaPosterior(np.array([1.0, 0.0]), np.array([1.0, 1.0])))
    with pytest.raises(ValueError, match="equal shape"):
        expected_loss(BetaPosterior(np.array([1.0, 2.0]), np.array([1.0])))
    with pytest.raises(ValueError, match="reference"):
        prob_beats(post, reference=2)
    with pytest.raises(ValueError, match="level"):
        credible_interval(post, level=1.0)
    with pytest.raises(ValueError, match="rope"):
        prob_in_rope(post, reference=0, rope=0.0)


def test_credible_interval_is_calibrated_by_simulation() -> None:
    """Simulation-based calibration: true rates drawn from the prior are covered by the
    94% interval at 94% +- 3 binomial standard errors."""
    experiments, level = 2000, 0.94
    rng = np.random.default_rng(20240601)
    prior_alpha, prior_beta = 2.0, 8.0
    true_rates = rng.beta(prior_alpha, prior_beta, size=experiments)
    visitors = rng.integers(1, 500, size=experiments)
    conversions = rng.binomial(visitors, true_rates)
    post = beta_posteriors(visitors, conversions, prior_alpha, prior_beta)
    low, high = credible_interval(post, level)
    coverage = np.mean((low <= true_rates) & (true_rates <= high))
    assert abs(coverage - level) <= 3 * math.sqrt(level * (1 - level) / experiments)


def test_credible_interval_is_equal_tailed() -> None:
    post = beta_posteriors([1000, 0], [100, 0])
    low, high = credible_interval(post, 0.94)
    np.testing.assert_allclose(special.betainc(post.alpha, post.beta, low), 0.03)
    np.testing.assert_allclose(special.betainc(post.alpha, post.beta, high), 0.97)


def _ratio_quantile(post: BetaPosterior, i: int, ref: int, prob: float) -> float:
    """Exact quantile of p_i / p_ref from the quadrature CDF (bracket [0.5, 2] suits
    the moderately sized posteriors used here)."""
    return brentq(lambda k: reference_prob_below(post, i, ref, k) - prob, 0.5, 2.0, xtol=1e-9)


def test_uplift_interval_matches_exact_values_within_monte_carlo_error() -> None:
    post = beta_posteriors([2000, 2000, 500], [200, 240, 70])
    draws, level, ref = 200_000, 0.95, 0
    got = uplift_interval(post, reference=ref, level=level, draws=draws, seed=3)
    a_r, b_r = post.alpha[ref], post.beta[ref]
    inverse_mean = (a_r + b_r - 1) / (a_r - 1)  # E[1 / p_ref]
    inverse_square = inverse_mean * (a_r + b_r - 2) / (a_r - 2)  # E[1 / p_ref**2]
    mean = posterior_mean(post)
    square = mean * (post.alpha + 1) / (post.alpha + post.beta + 1)  # E[p_i**2]
    for i in (1, 2):
        want_mean = mean[i] * inverse_mean - 1
        sd = math.sqrt(square[i] * inverse_square - (mean[i] * inverse_mean) ** 2)
        assert abs(got.mean[i] - want_mean) <= 4 * sd / math.sqrt(draws)
        for prob, value in ((0.025, got.low[i]), (0.975, got.high[i])):
            quantile = _ratio_quantile(post, i, ref, prob)
            step = 1e-3 * quantile
            density = (
                reference_prob_below(post, i, ref, quantile + step)
                - reference_prob_below(post, i, ref, quantile - step)
            ) / (2 * step)
            standard_error = math.sqrt(prob * (1 - prob) / draws) / density
            assert abs(value - (quantile - 1)) <= 4 * standard_error
    assert got.mean[ref] == got.low[ref] == got.high[ref] == 0.0


def test_uplift_interval_is_reproducible() -> None:
    post = beta_posteriors([100, 100], [10, 12])
    first = uplift_interval(post, 0, draws=1000, seed=7)
    second = uplift_interval(post, 0, draws=1000, seed=7)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_draw_summaries_on_a_hand_computed_example() -> None:
    draws = [[1.0, 2.0, 0.0], [3.0, 3.0, 1.0], [2.0, 1.0, 2.0], [0.0, 5.0, 4.0]]
    np.testing.assert_allclose(prob_best_draws(draws), [0.25, 0.625, 0.125])
    np.testing.assert_allclose(prob_beats_draws(draws, 0), [0.5, 0.625, 0.375])
    np.testing.assert_allclose(expected_loss_draws(draws), [1.5, 0.25, 1.25])
    uplift = uplift_interval_draws([[1.0, 1.5], [2.0, 2.0], [0.0, 1.0]], reference=0)
    np.testing.assert_allclose(uplift.mean, [0.0, 0.5 / 3])


def test_draw_summaries_agree_with_exact_values_within_monte_carlo_error() -> None:
    post = beta_posteriors([1000, 1100, 900], [100, 118, 97])
    n = 100_000
    rng = np.random.default_rng(11)
    draws = rng.beta(post.alpha, post.beta, size=(n, 3))
    exact_best = prob_best(post)
    assert np.all(
        np.abs(prob_best_draws(draws) - exact_best)
        <= 4 * np.sqrt(exact_best * (1 - exact_best) / n)
    )
    exact_beats = prob_beats(post, 0)
    assert np.all(
        np.abs(prob_beats_draws(draws, 0) - exact_beats)
        <= 4 * np.sqrt(exact_beats * (1 - exact_beats) / n)
    )
    regret = draws.max(axis=1, keepdims=True) - draws
    assert np.all(
        np.abs(expected_loss_draws(draws) - expected_loss(post))
        <= 4 * regret.std(axis=0) / math.sqrt(n)
    )


def test_draw_summaries_reject_bad_draws() -> None:
    with pytest.raises(ValueError, match="2-D"):
        prob_best_draws([1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        expected_loss_draws([[1.0, np.nan]])


def test_order_value_posterior_uses_own_data_or_pooled_estimate() -> None:
    # Variant 0: orders 10, 10, 20 (sums 40, 600); variant 1: one order of 30;
    # variant 2: none. Pooled orders 10, 10, 20, 30: mean 17.5, sd sqrt(275 / 3).
    stats = RevenueStats([50, 40, 30], [3, 1, 0], [40.0, 30.0, 0.0], [600.0, 900.0, 0.0])
    mean, sd = order_value_posterior(stats)
    np.testing.assert_allclose(mean, [40 / 3, 17.5, 17.5])
    pooled_sd = math.sqrt(275 / 3)
    np.testing.assert_allclose(sd, [math.sqrt((600 - 1600 / 3) / 2 / 3), pooled_sd, pooled_sd])


def test_order_value_posterior_without_any_orders_is_zero_not_nan() -> None:
    mean, sd = order_value_posterior(RevenueStats([10, 0], [0, 0], [0.0, 0.0], [0.0, 0.0]))
    np.testing.assert_array_equal(mean, [0.0, 0.0])
    np.testing.assert_array_equal(sd, [0.0, 0.0])
    draws = revenue_per_visitor_draws(RevenueStats([10, 0], [0, 0], [0, 0], [0, 0]), draws=100)
    np.testing.assert_array_equal(draws, 0.0)
    np.testing.assert_allclose(prob_best_draws(draws), [0.5, 0.5])


@pytest.mark.parametrize(
    ("stats", "match"),
    [
        (RevenueStats([10], [0], [5.0], [25.0]), "without conversions"),
        (RevenueStats([10], [2], [10.0], [20.0]), "revenue_sum_sq"),
        (RevenueStats([10], [11], [10.0], [200.0]), "exceed"),
        (RevenueStats([10, 10], [2], [10.0], [200.0]), "same length"),
        (RevenueStats([10], [2], [-10.0], [200.0]), "non-negative"),
    ],
)
def test_revenue_stats_are_validated(stats: RevenueStats, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        order_value_posterior(stats)


def test_revenue_per_visitor_draws_have_the_exact_mean() -> None:
    """E[rpv] = E[p] E[mean order value] (independent), within 4 Monte Carlo errors."""
    stats = RevenueStats([4000, 3000], [400, 330], [20_000.0, 15_000.0], [1.2e6, 0.9e6])
    draws = 50_000
    rpv = revenue_per_visitor_draws(stats, draws=draws, seed=5)
    mean_order, _ = order_value_posterior(stats)
    want = posterior_mean(beta_posteriors(stats.visitors, stats.conversions)) * mean_order
    assert rpv.shape == (draws, 2)
    assert np.all(np.abs(rpv.mean(axis=0) - want) <= 4 * rpv.std(axis=0) / math.sqrt(draws))


def test_prob_best_is_fast_for_ten_variants() -> None:
    post = beta_posteriors(*CASES["ten variants"])
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        prob_best(post)
        expected_loss(post)
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.05


counts = st.integers(min_value=0, max_value=10**6).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(min_value=0, max_value=n))
)
priors = st.floats(min_value=0.05, max_value=10.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(counts, min_size=1, max_size=8), priors, priors)
def test_exact_outputs_are_coherent_for_random_inputs(
    data: list[tuple[int, int]], prior_alpha: float, prior_beta: float
) -> None:
    visitors, conversions = zip(*data, strict=True)
    post = beta_posteriors(visitors, conversions, prior_alpha, prior_beta)
    best, loss = prob_best(post), expected_loss(post)
    beats = prob_beats(post, 0)
    assert abs(best.sum() - 1) <= 1e-6
    for values in (best, loss, beats):
        assert np.all(np.isfinite(values))
    assert np.all((best >= 0) & (best <= 1) & (beats >= 0) & (beats <= 1))
    assert np.all(loss >= 0)
    if len(data) == 2:  # two variants: being best is beating the other one
        assert abs(best[1] - beats[1]) <= 1e-8


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=10**6),
    st.lists(st.floats(min_value=0, max_value=1), min_size=2, max_size=8),
)
def test_highest_mean_has_lowest_loss_for_equal_sizes(
    visitors: int, fractions: list[float]
) -> None:
    conversions = np.floor(np.array(fractions) * visitors)
    post = beta_posteriors([visitors] * len(fractions), conversions)
    loss = expected_loss(post)
    assert loss[np.argmax(posterior_mean(post))] == loss.min()
