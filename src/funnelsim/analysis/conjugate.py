"""Exact Beta-Binomial posteriors for conversion A/B tests on aggregated counts.

Each variant's conversion rate gets an independent ``Beta(prior_alpha + conversions,
prior_beta + visitors - conversions)`` posterior. Probability to be best, probability
to beat a reference and expected loss are one-dimensional integrals over these
posteriors, evaluated deterministically with composite Gauss-Legendre quadrature whose
panel edges sit at every posterior's quantiles, so narrow (millions of visitors) and
wide (no data) posteriors are both resolved. Relative uplift intervals and the revenue
per visitor helpers use seeded Monte Carlo draws.
"""

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy.stats import beta as beta_distribution

FloatArray = npt.NDArray[np.float64]

# Quantile levels whose positions become panel edges: the tails go out to 1e-12 so the
# mass outside the finely resolved region is negligible, the middle is split into panels
# at most about one posterior standard deviation wide.
_TAIL_LEVELS = np.array([1e-12, 1e-9, 1e-6, 1e-4, 2e-3, 0.02, 0.08, 0.2, 0.35])
_KNOT_LEVELS = np.concatenate([_TAIL_LEVELS, [0.5], 1 - _TAIL_LEVELS[::-1]])
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(6)


class BetaPosterior(NamedTuple):
    """Independent Beta posteriors of the conversion rate, one per variant.

    Attributes:
        alpha: Prior alpha plus conversions, shape ``(n_variants,)``.
        beta: Prior beta plus visitors who did not convert, shape ``(n_variants,)``.
    """

    alpha: FloatArray
    beta: FloatArray


class CredibleInterval(NamedTuple):
    """Equal-tailed posterior interval of the conversion rate, per variant.

    Attributes:
        low: Lower bound (the ``(1 - level) / 2`` posterior quantile).
        high: Upper bound (the ``(1 + level) / 2`` posterior quantile).
    """

    low: FloatArray
    high: FloatArray


class UpliftInterval(NamedTuple):
    """Posterior summary of the relative uplift ``x_i / x_reference - 1``, per variant.

    Attributes:
        mean: Posterior mean of the relative uplift.
        low: Lower bound of the equal-tailed credible interval.
        high: Upper bound of the equal-tailed credible interval.
    """

    mean: FloatArray
    low: FloatArray
    high: FloatArray


class RevenueStats(NamedTuple):
    """Aggregated revenue statistics, one entry per variant.

    Attributes:
        visitors: Number of visitors.
        conversions: Number of visitors who placed an order (converters).
        revenue_sum: Sum of the converters' order values.
        revenue_sum_sq: Sum of the squared order values of the converters.
    """

    visitors: npt.ArrayLike
    conversions: npt.ArrayLike
    revenue_sum: npt.ArrayLike
    revenue_sum_sq: npt.ArrayLike


def _as_vector(name: str, values: npt.ArrayLike) -> FloatArray:
    """Return ``values`` as a finite, non-negative, non-empty 1-D float array."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty one-dimensional sequence")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name} must be finite and non-negative, got {array.tolist()}")
    return array


def _check_positive(name: str, value: float) -> None:
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and positive, got {value}")


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def _check_posterior(post: BetaPosterior) -> None:
    alpha, beta = np.asarray(post.alpha), np.asarray(post.beta)
    if alpha.ndim != 1 or alpha.size == 0 or alpha.shape != beta.shape:
        raise ValueError("posterior alpha and beta must be non-empty 1-D arrays of equal shape")
    if not (np.all(np.isfinite(alpha)) and np.all(np.isfinite(beta))):
        raise ValueError("posterior alpha and beta must be finite")
    if np.any(alpha <= 0) or np.any(beta <= 0):
        raise ValueError("posterior alpha and beta must be positive")


def _check_reference(reference: int, n_variants: int) -> None:
    if not 0 <= reference < n_variants:
        raise ValueError(f"reference must be in [0, {n_variants}), got {reference}")


def _check_draws(draws: npt.ArrayLike) -> FloatArray:
    array = np.asarray(draws, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError("draws must be a non-empty 2-D array of shape (draws, n_variants)")
    if not np.all(np.isfinite(array)):
        raise ValueError("draws must be finite")
    return array


def beta_posteriors(
    visitors: npt.ArrayLike,
    conversions: npt.ArrayLike,
    prior_alpha: float = 1.0,
    prior_beta: float = 1.0,
) -> BetaPosterior:
    """Beta posteriors of the conversion rates from visitor and conversion counts.

    A variant with zero visitors keeps the prior as its posterior.

    Args:
        visitors: Visitors per variant.
        conversions: Converting visitors per variant, at most ``visitors``.
        prior_alpha: Alpha of the shared Beta prior (1 with ``prior_beta=1`` is uniform).
        prior_beta: Beta of the shared Beta prior.

    Returns:
        The posterior ``Beta(prior_alpha + conversions, prior_beta + visitors - conversions)``.

    Example:
        >>> beta_posteriors([1000, 1000], [100, 120])
        BetaPosterior(alpha=array([101., 121.]), beta=array([901., 881.]))

    References:
        Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., section 2.4
        (conjugate Beta prior for a binomial proportion).
    """
    n = _as_vector("visitors", visitors)
    x = _as_vector("conversions", conversions)
    if n.shape != x.shape:
        raise ValueError("visitors and conversions must have the same length")
    if np.any(x > n):
        raise ValueError("conversions must not exceed visitors")
    _check_positive("prior_alpha", prior_alpha)
    _check_positive("prior_beta", prior_beta)
    return BetaPosterior(alpha=prior_alpha + x, beta=prior_beta + (n - x))


def posterior_mean(post: BetaPosterior) -> FloatArray:
    """Posterior mean ``alpha / (alpha + beta)`` of each conversion rate.

    Example:
        >>> posterior_mean(beta_posteriors([8], [2]))
        array([0.3])

    References:
        Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., section 2.4.
    """
    _check_posterior(post)
    return post.alpha / (post.alpha + post.beta)


def _knots(alpha: FloatArray, beta: FloatArray) -> FloatArray:
    """Positions of ``_KNOT_LEVELS`` quantiles of every posterior, flattened."""
    return special.betaincinv(alpha[:, None], beta[:, None], _KNOT_LEVELS).ravel()


def _gauss_legendre(knots: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Composite Gauss-Legendre nodes and weights on [0, 1] with panel edges at knots."""
    edges = np.unique(np.concatenate(([0.0, 1.0], np.clip(knots, 0.0, 1.0))))
    half = np.diff(edges) / 2
    mid = edges[:-1] + half
    nodes = (mid[:, None] + half[:, None] * _GL_NODES).ravel()
    weights = (half[:, None] * _GL_WEIGHTS).ravel()
    return nodes, weights


def _best_integrand(post: BetaPosterior) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Nodes x, weights w and ``h[k, i] = f_i(x_k) * prod_{j != i} F_j(x_k)``."""
    x, w = _gauss_legendre(_knots(post.alpha, post.beta))
    pdf = beta_distribution.pdf(x[:, None], post.alpha, post.beta)
    cdf = special.betainc(post.alpha, post.beta, x[:, None])
    ones = np.ones((x.size, 1))
    before = np.cumprod(np.hstack([ones, cdf[:, :-1]]), axis=1)
    after = np.cumprod(np.hstack([ones, cdf[:, :0:-1]]), axis=1)[:, ::-1]
    return x, w, pdf * before * after


def prob_best(post: BetaPosterior) -> FloatArray:
    """Probability that each variant has the highest conversion rate.

    ``P(i best) = integral of f_i(x) * prod_{j != i} F_j(x) dx``, evaluated with
    composite 6-point Gauss-Legendre quadrature on panels bounded by every posterior's
    quantiles (from 1e-12 to 1 - 1e-12); absolute error is below 1e-9 in practice and the
    result is renormalised to sum to exactly one. Deterministic; 3-11 ms for 10 variants.

    Example:
        >>> prob_best(beta_posteriors([1000, 1000], [100, 120])).round(4)
        array([0.0768, 0.9232])

    References:
        Miller, E. (2015), "Formulas for Bayesian A/B Testing",
        https://www.evanmiller.org/bayesian-ab-testing.html (the integral);
        Davis & Rabinowitz (1984), Methods of Numerical Integration (Gauss-Legendre).
    """
    _check_posterior(post)
    _, w, h = _best_integrand(post)
    mass = w @ h
    return mass / mass.sum()


def expected_loss(post: BetaPosterior) -> FloatArray:
    """Expected loss ``E[max_j p_j - p_i]`` of shipping each variant, in rate units.

    ``E[max_j p_j]`` is the integral of ``x`` against the density of the maximum,
    ``sum_i f_i(x) prod_{j != i} F_j(x)`` (equivalently ``integral of 1 - prod_j F_j``),
    computed with the quadrature of :func:`prob_best`; ``E[p_i] = alpha_i / (alpha_i +
    beta_i)`` is exact. A loss of 0.001 means 0.1 percentage points of conversion.

    Example:
        >>> expected_loss(beta_posteriors([1000, 1000], [100, 120])).round(5)
        array([0.02044, 0.00048])

    References:
        Stucchio, C. (2015), "Bayesian A/B Testing at VWO", VWO whitepaper
        (expected loss as the stopping criterion).
    """
    _check_posterior(post)
    x, w, h = _best_integrand(post)
    expected_max = (w * x) @ h.sum(axis=1)
    return np.maximum(expected_max - posterior_mean(post), 0.0)


def _prob_below_scaled(post: BetaPosterior, i: int, j: int, scale: float) -> float:
    """``P(p_i < scale * p_j) = integral of f_j(x) F_i(scale x) dx`` by quadrature."""
    a, b = post.alpha, post.beta
    knots_j = _knots(a[[j]], b[[j]])
    knots_i = _knots(a[[i]], b[[i]]) / scale
    x, w = _gauss_legendre(np.concatenate([knots_j, knots_i]))
    integrand = beta_distribution.pdf(x, a[j], b[j]) * special.betainc(
        a[i], b[i], np.minimum(scale * x, 1.0)
    )
    return float(np.clip(w @ integrand, 0.0, 1.0))


def prob_beats(post: BetaPosterior, reference: int) -> FloatArray:
    """Probability that each variant's rate exceeds the reference's, ``P(p_i > p_ref)``.

    Computed as ``integral of f_i(x) F_ref(x) dx`` with the quadrature of
    :func:`prob_best`. The reference's own entry is 0.5 by convention (a variant is
    as likely to be above as below an independent copy of itself).

    Example:
        >>> prob_beats(beta_posteriors([1000, 1000], [100, 120]), reference=0).round(4)
        array([0.5   , 0.9232])

    References:
        Miller, E. (2015), "Formulas for Bayesian A/B Testing",
        https://www.evanmiller.org/bayesian-ab-testing.html.
    """
    _check_posterior(post)
    n = post.alpha.size
    _check_reference(reference, n)
    return np.array(
        [0.5 if i == reference else _prob_below_scaled(post, reference, i, 1.0) for i in range(n)]
    )


def prob_in_rope(post: BetaPosterior, reference: int, rope: float) -> FloatArray:
    """Probability that the relative uplift over the reference lies within ``(-rope, rope)``.

    ``P((1 - rope) p_ref < p_i < (1 + rope) p_ref)``, by the same quadrature as
    :func:`prob_beats`. The reference's own entry is 1 (its uplift is exactly zero).

    Example:
        >>> post = beta_posteriors([10**7, 10**7], [10**6, 10**6])
        >>> prob_in_rope(post, reference=0, rope=0.01).round(4)
        array([1., 1.])

    References:
        Kruschke, J. K. (2018), "Rejecting or accepting parameter values in Bayesian
        estimation", Advances in Methods and Practices in Psychological Science 1(2).
    """
    _check_posterior(post)
    n = post.alpha.size
    _check_reference(reference, n)
    if not 0 < rope < 1:
        raise ValueError(f"rope must be in (0, 1), got {rope}")
    inside = [
        _prob_below_scaled(post, i, reference, 1 + rope)
        - _prob_below_scaled(post, i, reference, 1 - rope)
        for i in range(n)
    ]
    probs = np.clip(np.array(inside), 0.0, 1.0)
    probs[reference] = 1.0
    return probs


def credible_interval(post: BetaPosterior, level: float = 0.94) -> CredibleInterval:
    """Equal-tailed credible interval of each conversion rate from the Beta quantiles.

    Example:
        >>> low, high = credible_interval(beta_posteriors([1000], [100]))
        >>> float(low[0].round(4)), float(high[0].round(4))
        (0.0836, 0.1193)

    References:
        Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., section 2.3
        (posterior intervals).
    """
    _check_posterior(post)
    _check_level(level)
    tail = (1 - level) / 2
    return CredibleInterval(
        low=beta_distribution.ppf(tail, post.alpha, post.beta),
        high=beta_distribution.ppf(1 - tail, post.alpha, post.beta),
    )


def uplift_interval_draws(
    draws: npt.ArrayLike, reference: int, level: float = 0.95
) -> UpliftInterval:
    """Relative uplift ``x_i / x_ref - 1`` summarised from joint posterior draws.

    Draws where the reference is not positive are counted as zero uplift (they only
    occur for degenerate inputs such as no revenue at all). The reference's own entry
    is 0.

    Example:
        >>> uplift_interval_draws([[1.0, 1.5], [2.0, 2.0], [1.0, 0.5]], reference=0).mean
        array([0., 0.])

    References:
        Hyndman, R. J. & Fan, Y. (1996), "Sample quantiles in statistical packages",
        The American Statistician 50(4) (the quantile estimator of ``numpy.quantile``).
    """
    values = _check_draws(draws)
    _check_reference(reference, values.shape[1])
    _check_level(level)
    ref = values[:, [reference]]
    uplift = np.divide(values - ref, ref, out=np.zeros_like(values), where=ref > 0)
    tail = (1 - level) / 2
    low, high = np.quantile(uplift, [tail, 1 - tail], axis=0)
    return UpliftInterval(mean=uplift.mean(axis=0), low=low, high=high)


def uplift_interval(
    post: BetaPosterior,
    reference: int,
    level: float = 0.95,
    draws: int = 200_000,
    seed: int = 0,
) -> UpliftInterval:
    """Posterior mean and equal-tailed interval of the relative uplift ``p_i / p_ref - 1``.

    Monte Carlo with ``draws`` seeded joint draws (reproducible for a given seed). The
    interval's tail probabilities carry a Monte Carlo standard error of
    ``sqrt(t (1 - t) / draws)`` (3.5e-4 for ``t = 0.025`` and the default 200,000 draws)
    and the mean one of ``sd(uplift) / sqrt(draws)``. When the reference has
    ``alpha <= 1`` (no conversions under a uniform prior) the uplift's posterior mean
    does not exist; the reported mean is then finite but not meaningful, use the interval.

    Example:
        >>> post = beta_posteriors([1000, 1000], [100, 120])
        >>> uplift_interval(post, reference=0).mean.round(2)
        array([0.  , 0.21])

    References:
        Robert, C. P. & Casella, G. (2004), Monte Carlo Statistical Methods, 2nd ed.,
        chapter 3 (Monte Carlo integration and its error).
    """
    _check_posterior(post)
    _check_reference(reference, post.alpha.size)
    if draws < 1:
        raise ValueError(f"draws must be positive, got {draws}")
    rng = np.random.default_rng(seed)
    rates = rng.beta(post.alpha, post.beta, size=(draws, post.alpha.size))
    return uplift_interval_draws(rates, reference, level)


def _revenue_arrays(stats: RevenueStats) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Validated conversions, revenue sums and sums of squared order values."""
    n = _as_vector("visitors", stats.visitors)
    x = _as_vector("conversions", stats.conversions)
    total = _as_vector("revenue_sum", stats.revenue_sum)
    total_sq = _as_vector("revenue_sum_sq", stats.revenue_sum_sq)
    if not n.shape == x.shape == total.shape == total_sq.shape:
        raise ValueError("all RevenueStats fields must have the same length")
    if np.any(x > n):
        raise ValueError("conversions must not exceed visitors")
    if np.any((x == 0) & ((total > 0) | (total_sq > 0))):
        raise ValueError("revenue must be zero for variants without conversions")
    # Cauchy-Schwarz: sum of squares >= sum**2 / count, up to rounding.
    if np.any(total_sq < total * _mean(x, total) * (1 - 1e-9)):
        raise ValueError("revenue_sum_sq is smaller than revenue_sum**2 / conversions")
    return x, total, total_sq


def _mean(count: FloatArray, total: FloatArray) -> FloatArray:
    """Mean ``total / count``, zero where ``count`` is zero."""
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def _sample_variance(count: FloatArray, total: FloatArray, total_sq: FloatArray) -> FloatArray:
    """Unbiased variance from sums; zero where fewer than two observations."""
    centered = total_sq - total * _mean(count, total)
    variance = np.divide(centered, count - 1, out=np.zeros_like(total), where=count > 1)
    return np.maximum(variance, 0.0)


def order_value_posterior(stats: RevenueStats) -> tuple[FloatArray, FloatArray]:
    """Approximate normal posterior (mean, sd) of each variant's mean order value.

    Normal approximation ``N(mean, sd / sqrt(converters))`` from the converters' own
    sums (central limit theorem): order values are skewed and heavy tailed, so a
    conjugate normal likelihood would be no more exact, and the flat-prior Student-t
    posterior has no mean with two converters. Variants with fewer than two converters
    cannot estimate their spread: they use the pooled mean order value across variants
    with the pooled per-order standard deviation (the standard error of one order), so
    their uncertainty stays realistic. With no converters anywhere the mean is 0 with
    zero spread; never NaN.

    Example:
        >>> s = RevenueStats([100, 100], [3, 0], [30.0, 0.0], [302.0, 0.0])
        >>> mean, sd = order_value_posterior(s)
        >>> mean, sd.round(4)
        (array([10., 10.]), array([0.5774, 1.    ]))

    References:
        Deng, A., Knoblich, U. & Lu, J. (2018), "Applying the Delta Method in Metric
        Analytics", KDD (normal approximations for per-visitor means).
    """
    x, total, total_sq = _revenue_arrays(stats)
    pooled = [np.atleast_1d(values.sum()) for values in (x, total, total_sq)]
    pooled_mean = _mean(pooled[0], pooled[1])
    pooled_var = _sample_variance(*pooled)
    own = x >= 2
    mean = np.where(own, _mean(x, total), pooled_mean)
    variance = np.where(own, _sample_variance(x, total, total_sq), pooled_var)
    return mean, np.sqrt(variance / np.maximum(x, 1.0))


def revenue_per_visitor_draws(
    stats: RevenueStats,
    prior_alpha: float = 1.0,
    prior_beta: float = 1.0,
    draws: int = 20_000,
    seed: int = 0,
) -> FloatArray:
    """Posterior draws of revenue per visitor, shape ``(draws, n_variants)``.

    Each draw is a conversion rate from the Beta posterior of :func:`beta_posteriors`
    times an independent mean order value from :func:`order_value_posterior`, truncated
    at zero because order values are non-negative.

    Example:
        >>> s = RevenueStats([1000, 1000], [100, 120], [5000.0, 6000.0], [3e5, 3.6e5])
        >>> revenue_per_visitor_draws(s, draws=100_000).mean(axis=0).round(1)
        array([5., 6.])

    References:
        Stucchio, C. (2015), "Bayesian A/B Testing at VWO", VWO whitepaper
        (revenue as conversion rate times order value).
    """
    post = beta_posteriors(stats.visitors, stats.conversions, prior_alpha, prior_beta)
    mean, sd = order_value_posterior(stats)
    if draws < 1:
        raise ValueError(f"draws must be positive, got {draws}")
    rng = np.random.default_rng(seed)
    shape = (draws, mean.size)
    rates = rng.beta(post.alpha, post.beta, size=shape)
    order_values = np.maximum(rng.normal(mean, sd, size=shape), 0.0)
    return rates * order_values


def prob_best_draws(draws: npt.ArrayLike) -> FloatArray:
    """Monte Carlo probability that each column is the largest, ties split evenly.

    Standard error ``sqrt(p (1 - p) / n_draws)``.

    Example:
        >>> prob_best_draws([[1.0, 2.0], [3.0, 3.0], [2.0, 1.0], [0.0, 5.0]])
        array([0.375, 0.625])

    References:
        Scott, S. L. (2015), "Multi-armed bandit experiments in the online service
        economy", Applied Stochastic Models in Business and Industry 31(1).
    """
    values = _check_draws(draws)
    winners = values == values.max(axis=1, keepdims=True)
    return (winners / winners.sum(axis=1, keepdims=True)).mean(axis=0)


def prob_beats_draws(draws: npt.ArrayLike, reference: int) -> FloatArray:
    """Monte Carlo ``P(x_i > x_ref)`` per column, ties counted as one half.

    The reference's own entry is therefore exactly 0.5.

    Example:
        >>> prob_beats_draws([[1.0, 2.0], [3.0, 3.0], [2.0, 1.0], [0.0, 5.0]], reference=0)
        array([0.5  , 0.625])

    References:
        Scott, S. L. (2015), "Multi-armed bandit experiments in the online service
        economy", Applied Stochastic Models in Business and Industry 31(1).
    """
    values = _check_draws(draws)
    _check_reference(reference, values.shape[1])
    ref = values[:, [reference]]
    return (values > ref).mean(axis=0) + 0.5 * (values == ref).mean(axis=0)


def expected_loss_draws(draws: npt.ArrayLike) -> FloatArray:
    """Monte Carlo expected loss ``E[max_j x_j - x_i]`` per column, in the draws' units.

    Example:
        >>> expected_loss_draws([[1.0, 2.0], [3.0, 3.0], [2.0, 1.0], [0.0, 5.0]])
        array([1.5 , 0.25])

    References:
        Stucchio, C. (2015), "Bayesian A/B Testing at VWO", VWO whitepaper.
    """
    values = _check_draws(draws)
    return (values.max(axis=1, keepdims=True) - values).mean(axis=0)
