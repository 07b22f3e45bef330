"""Variance reduction with pre-experiment covariates (CUPED, regression adjustment).

A visitor's spend in the weeks before the test predicts much of their spend during it.
Subtracting that predictable part, ``y - theta^T (x - mean x)``, leaves the treatment
effect unchanged (randomisation makes ``x`` independent of the arm) and removes a share
``R^2`` of the variance: with one covariate of correlation ``rho`` the interval narrows by
``sqrt(1 - rho^2)``, as if the test had run ``1 / (1 - rho^2)`` times longer.

``theta`` is the within-arm pooled regression of the metric on the covariates, so the
adjusted difference equals the treatment coefficient of the ordinary least squares fit
``y ~ arm + x`` (ANCOVA). Everything is computed from per-arm counts, sums and
cross-products (:class:`funnelsim.analysis.moments.Moments`), so it runs on a database's
aggregates. Conversion (a 0/1 column) and revenue per visitor are handled alike.

References:
    Deng, A., Xu, Y., Kohavi, R. & Walker, T. (2013), "Improving the Sensitivity of
    Online Controlled Experiments by Utilizing Pre-Experiment Data", WSDM.
    Lin, W. (2013), "Agnostic notes on regression adjustments to experimental data",
    Annals of Applied Statistics 7(1) (regression adjustment is valid under
    randomisation whatever the model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri

from funnelsim.analysis.moments import Moments, covariances, means

FloatArray = npt.NDArray[np.float64]


class Estimate(NamedTuple):
    """A normal-approximation estimate with its standard error and confidence interval."""

    value: float
    se: float
    low: float
    high: float


class AdjustedEffect(NamedTuple):
    """One variant against the control, with and without the covariate adjustment.

    Attributes:
        variant: Variant name.
        difference: Adjusted absolute difference of the metric per visitor.
        uplift: Adjusted relative difference (delta method).
        unadjusted_difference: Plain difference of means.
        unadjusted_uplift: Plain relative difference.
        variance_reduction: ``1 - Var(adjusted) / Var(unadjusted)`` of the difference.
    """

    variant: str
    difference: Estimate
    uplift: Estimate
    unadjusted_difference: Estimate
    unadjusted_uplift: Estimate
    variance_reduction: float


class CupedReadout(NamedTuple):
    """Regression-adjusted readout of one metric.

    Attributes:
        metric: The per-visitor metric column.
        covariates: The pre-experiment covariate columns.
        control: Control arm.
        level: Confidence level of the intervals (normal approximation).
        theta: Pooled within-arm regression coefficients of the metric on the covariates.
        adjusted_means: Adjusted mean of the metric per arm.
        effects: One entry per non-control arm.
    """

    metric: str
    covariates: tuple[str, ...]
    control: str
    level: float
    theta: tuple[float, ...]
    adjusted_means: tuple[float, ...]
    effects: tuple[AdjustedEffect, ...]


def pooled_coefficients(moments: Moments) -> FloatArray:
    """Regression of column 0 on the other columns, from within-arm pooled covariances.

    >>> from funnelsim.analysis.moments import moments_from_values
    >>> x = np.array([0.0, 1.0, 2.0, 0.0, 1.0, 2.0])
    >>> m = moments_from_values(list("aaabbb"), np.c_[2 * x + [0, 0, 0, 5, 5, 5], x], ["y", "x"])
    >>> pooled_coefficients(m).tolist()
    [2.0]
    """
    weights = np.maximum(moments.count - 1, 0)
    if weights.sum() <= 0:
        raise ValueError("the covariate adjustment needs arms with at least two visitors")
    cov = covariances(moments)
    pooled = np.einsum("a,aij->ij", weights, np.nan_to_num(cov)) / weights.sum()
    xx, xy = pooled[1:, 1:], pooled[1:, 0]
    try:
        return np.linalg.solve(xx, xy)
    except np.linalg.LinAlgError as error:
        raise ValueError("the covariates are constant or collinear: no adjustment") from error


def _residual_variance(cov: FloatArray, theta: FloatArray) -> FloatArray:
    """Per-arm variance of ``y - theta^T x`` from each arm's covariance matrix."""
    coefficients = np.concatenate([[1.0], -theta])
    return np.einsum("i,aij,j->a", coefficients, cov, coefficients)


def _interval(value: float, variance: float, level: float) -> Estimate:
    se = float(np.sqrt(variance))
    z = float(ndtri(0.5 + level / 2))
    return Estimate(value, se, value - z * se, value + z * se)


def _effect(
    mean: FloatArray, variance: FloatArray, ref: int, arm: int, level: float
) -> tuple[Estimate, Estimate]:
    """Absolute and relative difference of arm vs ref (arm means and their variances)."""
    a, b = mean[ref], mean[arm]
    difference = _interval(b - a, variance[arm] + variance[ref], level)
    ratio_variance = variance[arm] / a**2 + b**2 * variance[ref] / a**4
    return difference, _interval(b / a - 1, ratio_variance, level)


def cuped(
    moments: Moments,
    metric: str,
    covariates: Sequence[str],
    control: str,
    level: float = 0.95,
) -> CupedReadout:
    """Regression-adjusted (CUPED) differences of ``metric`` per visitor vs the control.

    Args:
        moments: Per-arm statistics holding ``metric`` and every covariate.
        metric: Per-visitor metric column (revenue, a 0/1 conversion flag...).
        covariates: Pre-experiment columns (measured before assignment).
        control: Control arm.
        level: Confidence level of the normal-approximation intervals.

    >>> from funnelsim.analysis.moments import moments_from_values
    >>> rng = np.random.default_rng(0)
    >>> pre = rng.gamma(2.0, 10.0, 20000)
    >>> arm = np.repeat(["A", "B"], 10000)
    >>> spend = 0.8 * pre + rng.normal(0, 8, 20000) + np.where(arm == "B", 1.0, 0.0)
    >>> m = moments_from_values(arm, np.c_[spend, pre], ["revenue", "pre_revenue"])
    >>> effect = cuped(m, "revenue", ["pre_revenue"], "A").effects[0]
    >>> round(effect.variance_reduction, 2)  # R^2 = 0.8^2 * 200 / (0.8^2 * 200 + 64) = 2/3
    0.67
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if not covariates:
        raise ValueError("give at least one covariate")
    selected = moments.select([metric, *covariates])
    ref = selected.arm(control)
    if np.any(selected.count < 2):
        raise ValueError("every arm needs at least two visitors for the covariate adjustment")
    theta = pooled_coefficients(selected)
    mean, cov = means(selected), covariances(selected)
    grand = selected.sums[:, 1:].sum(axis=0) / selected.count.sum()
    adjusted = mean[:, 0] - (mean[:, 1:] - grand) @ theta
    adjusted_var = _residual_variance(cov, theta) / selected.count
    plain_var = cov[:, 0, 0] / selected.count
    effects = []
    for arm, name in enumerate(selected.arms):
        if arm == ref:
            continue
        difference, uplift = _effect(adjusted, adjusted_var, ref, arm, level)
        plain_difference, plain_uplift = _effect(mean[:, 0], plain_var, ref, arm, level)
        reduction = 1 - difference.se**2 / plain_difference.se**2
        effects.append(
            AdjustedEffect(name, difference, uplift, plain_difference, plain_uplift, reduction)
        )
    return CupedReadout(
        metric,
        tuple(covariates),
        control,
        level,
        tuple(float(t) for t in theta),
        tuple(float(v) for v in adjusted),
        tuple(effects),
    )
