"""Ratio metrics with the delta method: average order value, orders per buyer, and any
per-visitor numerator over a per-visitor denominator.

Average order value is revenue per order, but the experiment randomises visitors, not
orders: a visitor's orders are correlated, so treating orders as independent gives
intervals that are too narrow. The delta method keeps the visitor as the unit. With
per-visitor numerator ``y`` and denominator ``z`` in an arm of ``n`` visitors, the
ratio ``R = mean(y) / mean(z)`` has variance

    Var(R) ~ (s_yy - 2 R s_yz + R^2 s_zz) / (n mean(z)^2)

from the sample variances and covariance, i.e. from the counts, sums and cross-products
of :class:`funnelsim.analysis.moments.Moments`. Differences and relative changes between
arms follow from independent arms. The Bayesian equivalent (:func:`ratio_posterior`)
draws each arm's two means from their large-sample posterior under a flat prior, the
bivariate normal with the sample covariance over ``n`` (Bernstein-von Mises), and reads
the ratio's credible interval and the probability that a variant's ratio beats the
control's from the draws. Because the
denominator is itself an outcome (a
variant can change how many visitors order), the readout compares each arm's
denominator per visitor with the control's: when it differs, the ratio compares
different populations of orders and must be read beside the per-visitor metrics.

References:
    Deng, A., Knoblich, U. & Lu, J. (2018), "Applying the Delta Method in Metric
    Analytics: A Practical Guide with Novel Ideas", KDD.
    Kohavi, R., Tang, D. & Xu, Y. (2020), Trustworthy Online Controlled Experiments,
    Cambridge University Press, ch. 18 (ratio metrics, unit of analysis).
    Gelman, A. et al. (2013), Bayesian Data Analysis, 3rd ed., section 4.2 (normal
    approximation to the posterior).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr, ndtri

from funnelsim.analysis.cuped import Estimate
from funnelsim.analysis.moments import Moments, covariances, means

FloatArray = npt.NDArray[np.float64]


class RatioEffect(NamedTuple):
    """One variant's ratio against the control's.

    Attributes:
        variant: Variant name.
        difference: Ratio of the variant minus ratio of the control.
        uplift: Relative difference of the ratios.
        denominator_change: Relative difference of the denominator per visitor.
        denominator_p_value: Two-sided z-test p-value of that difference.
        denominator_mismatch: ``denominator_p_value < alpha``: the ratios are computed on
            populations the variant itself changed.
    """

    variant: str
    difference: Estimate
    uplift: Estimate
    denominator_change: float
    denominator_p_value: float
    denominator_mismatch: bool


class RatioReadout(NamedTuple):
    """Delta-method readout of ``numerator / denominator``.

    Attributes:
        numerator: Per-visitor numerator column (revenue).
        denominator: Per-visitor denominator column (orders).
        control: Control arm.
        level: Confidence level of the normal-approximation intervals.
        arms: Arm names, in the order of ``ratios``.
        ratios: Each arm's ratio with its interval, in arm order.
        effects: One entry per non-control arm.
    """

    numerator: str
    denominator: str
    control: str
    level: float
    arms: tuple[str, ...]
    ratios: tuple[Estimate, ...]
    effects: tuple[RatioEffect, ...]


def ratio_variance(
    count: npt.ArrayLike,
    mean: npt.ArrayLike,
    covariance: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """Ratios ``mean[..., 0] / mean[..., 1]`` and their delta-method variances.

    ``covariance[..., i, j]`` is the sample covariance of numerator (0) and denominator
    (1) per visitor. NaN where the denominator's mean is 0.

    >>> r, v = ratio_variance([100], [[5.0, 2.0]], [[[4.0, 1.0], [1.0, 1.0]]])
    >>> r.tolist(), v.round(5).tolist()
    ([2.5], [0.01312])
    """
    n = np.asarray(count, dtype=np.float64)
    m = np.asarray(mean, dtype=np.float64)
    c = np.asarray(covariance, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = m[..., 0] / m[..., 1]
        spread = c[..., 0, 0] - 2 * ratio * c[..., 0, 1] + ratio**2 * c[..., 1, 1]
        return ratio, spread / (n * m[..., 1] ** 2)


def _normal(value: float, variance: float, z: float) -> Estimate:
    se = float(np.sqrt(variance))
    return Estimate(float(value), se, float(value - z * se), float(value + z * se))


def ratio_readout(
    moments: Moments,
    numerator: str,
    denominator: str,
    control: str,
    level: float = 0.95,
    alpha: float = 0.05,
) -> RatioReadout:
    """Delta-method readout of ``sum(numerator) / sum(denominator)`` per arm vs control.

    Args:
        moments: Per-arm statistics holding both columns.
        numerator: Per-visitor numerator (``revenue`` for average order value,
            ``orders`` for orders per buyer).
        denominator: Per-visitor denominator (``orders``; ``buyer``, a 0/1 flag).
        control: Control arm.
        level: Confidence level of the intervals.
        alpha: Level of the denominator mismatch test.

    >>> from funnelsim.analysis.moments import moments_from_values
    >>> rows = [[60.0, 1], [0.0, 0], [100.0, 2], [40.0, 1], [0.0, 0], [90.0, 1]]
    >>> m = moments_from_values(list("aaabbb"), rows, ["revenue", "orders"])
    >>> result = ratio_readout(m, "revenue", "orders", "a")
    >>> [round(r.value, 2) for r in result.ratios], round(result.effects[0].difference.value, 2)
    ([53.33, 65.0], 11.67)
    """
    if not 0 < level < 1 or not 0 < alpha < 1:
        raise ValueError("level and alpha must be in (0, 1)")
    selected = moments.select([numerator, denominator])
    ref = selected.arm(control)
    if np.any(selected.sums[:, 1] <= 0):
        raise ValueError(f"every arm needs a positive total of {denominator!r}")
    mean, cov = means(selected), covariances(selected)
    ratio, variance = ratio_variance(selected.count, mean, cov)
    z = float(ndtri(0.5 + level / 2))
    den_var = cov[:, 1, 1] / selected.count
    effects = []
    for arm, name in enumerate(selected.arms):
        if arm == ref:
            continue
        a, b = ratio[ref], ratio[arm]
        uplift_var = variance[arm] / a**2 + b**2 * variance[ref] / a**4
        den_gap = mean[arm, 1] - mean[ref, 1]
        den_se = np.sqrt(den_var[arm] + den_var[ref])
        p_value = float(2 * ndtr(-abs(den_gap) / den_se)) if den_se > 0 else 1.0
        effects.append(
            RatioEffect(
                name,
                _normal(b - a, variance[arm] + variance[ref], z),
                _normal(b / a - 1, uplift_var, z),
                float(den_gap / mean[ref, 1]),
                p_value,
                p_value < alpha,
            )
        )
    return RatioReadout(
        numerator,
        denominator,
        control,
        level,
        tuple(selected.arms),
        tuple(_normal(r, v, z) for r, v in zip(ratio, variance, strict=True)),
        tuple(effects),
    )


class RatioPosterior(NamedTuple):
    """Large-sample posterior of each arm's ratio (flat prior, Monte Carlo).

    Attributes:
        arms: Arm names.
        level: Credible level of the intervals.
        draws: Monte Carlo draws.
        ratios: Per arm ``(mean, low, high)`` of the ratio.
        uplifts: Per arm ``(mean, low, high)`` of the relative difference vs control.
        prob_beats_control: Per arm ``P(ratio > control's ratio)`` (0.5 for the control).
    """

    arms: tuple[str, ...]
    level: float
    draws: int
    ratios: tuple[tuple[float, float, float], ...]
    uplifts: tuple[tuple[float, float, float], ...]
    prob_beats_control: tuple[float, ...]


def ratio_posterior(
    moments: Moments,
    numerator: str,
    denominator: str,
    control: str,
    level: float = 0.95,
    draws: int = 20_000,
    seed: int = 0,
) -> RatioPosterior:
    """The Bayesian counterpart of :func:`ratio_readout` (see the module docstring).

    >>> from funnelsim.analysis.moments import moments_from_values
    >>> rng = np.random.default_rng(0)
    >>> orders = rng.poisson(0.5, 4000)
    >>> revenue = orders * rng.gamma(4.0, np.where(np.arange(4000) < 2000, 10.0, 11.0))
    >>> m = moments_from_values(np.repeat(["a", "b"], 2000), np.c_[revenue, orders], ["r", "o"])
    >>> posterior = ratio_posterior(m, "r", "o", "a")
    >>> posterior.prob_beats_control[1] > 0.9
    True
    """
    selected = moments.select([numerator, denominator])
    ref = selected.arm(control)
    mean, cov = means(selected), covariances(selected)
    rng = np.random.default_rng(seed)
    ratio_draws = np.empty((draws, len(selected.arms)))
    for arm in range(len(selected.arms)):
        pair = rng.multivariate_normal(mean[arm], cov[arm] / selected.count[arm], size=draws)
        ratio_draws[:, arm] = pair[:, 0] / pair[:, 1]
    uplift = ratio_draws / ratio_draws[:, [ref]] - 1
    tail = (1 - level) / 2

    def summary(values: FloatArray) -> tuple[float, float, float]:
        low, high = np.quantile(values, [tail, 1 - tail])
        return float(values.mean()), float(low), float(high)

    beats = (ratio_draws > ratio_draws[:, [ref]]).mean(axis=0)
    beats[ref] = 0.5
    return RatioPosterior(
        selected.arms,
        level,
        draws,
        tuple(summary(ratio_draws[:, a]) for a in range(len(selected.arms))),
        tuple(summary(uplift[:, a]) for a in range(len(selected.arms))),
        tuple(float(b) for b in beats),
    )
