"""Bayesian regression adjustment: CUPED as a PyMC model on the same aggregates.

The frequentist CUPED of :mod:`funnelsim.analysis.cuped` is the treatment coefficient of
the least-squares fit ``y ~ arm + x``. Its Bayesian counterpart fits the same linear
model with a normal likelihood::

    y_i ~ Normal(beta[arm_i] + theta^T x_i, sigma)
    beta[arm] ~ Normal(mean of y, 10 sd(y)),   theta_j ~ Normal(0, 10 sd(y) / sd(x_j))
    sigma ~ HalfNormal(2 sd(y))

whose likelihood depends on the data only through ``X^T X``, ``X^T y`` and ``y^T y``:
the per-arm counts, sums and cross-products of :class:`~funnelsim.analysis.moments.
Moments`, so it too runs on a database's aggregates. The adjusted mean of an arm is
``beta[arm] + theta^T mean(x)`` (at the covariates' grand mean); the posterior of the
difference and of the relative uplift against the control follow from the draws. With
weak priors and many visitors the posterior agrees with the frequentist estimate
(Bernstein-von Mises); the normal likelihood with one ``sigma`` for all arms is the
homoscedastic linear model, so its interval can differ from CUPED's per-arm variances
when the arms' spreads differ.

References:
    Deng, A., Xu, Y., Kohavi, R. & Walker, T. (2013), "Improving the Sensitivity of
    Online Controlled Experiments by Utilizing Pre-Experiment Data", WSDM.
    Gelman, A. et al. (2013), Bayesian Data Analysis, 3rd ed., ch. 14 (regression).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pymc as pm
import pytensor.tensor as pt

from funnelsim.analysis.models import DEFAULT_SETTINGS, Diagnostics, SamplerSettings, sample
from funnelsim.analysis.moments import Moments, covariances

FloatArray = npt.NDArray[np.float64]
PRIOR_SCALE = 10.0
"""Prior sd of the coefficients, in units of the metric's (and covariates') spread."""


class BayesianAdjustedEffect(NamedTuple):
    """Posterior of one variant's adjusted effect (mean, equal-tailed interval).

    Attributes:
        variant: Variant name.
        difference: ``(mean, low, high)`` of the adjusted absolute difference.
        uplift: ``(mean, low, high)`` of the adjusted relative uplift.
        difference_sd: Posterior sd of the difference.
    """

    variant: str
    difference: tuple[float, float, float]
    uplift: tuple[float, float, float]
    difference_sd: float


class BayesianCuped(NamedTuple):
    """Posterior readout of the regression-adjusted metric.

    Attributes:
        metric: The per-visitor metric column.
        covariates: The covariate columns.
        control: Control arm.
        level: Credible level of the intervals.
        effects: One entry per non-control arm.
        diagnostics: Sampler diagnostics.
    """

    metric: str
    covariates: tuple[str, ...]
    control: str
    level: float
    effects: tuple[BayesianAdjustedEffect, ...]
    diagnostics: Diagnostics


def _normal_equations(moments: Moments) -> tuple[FloatArray, FloatArray, float, float]:
    """``X^T X``, ``X^T y``, ``y^T y`` and ``n`` of the design [arm dummies, covariates]
    from per-arm statistics of ``(y, x...)``."""
    arms, k = len(moments.arms), len(moments.columns) - 1
    xtx = np.zeros((arms + k, arms + k))
    xty = np.zeros(arms + k)
    xtx[:arms, :arms] = np.diag(moments.count)
    xtx[:arms, arms:] = moments.sums[:, 1:]
    xtx[arms:, :arms] = moments.sums[:, 1:].T
    xtx[arms:, arms:] = moments.cross[:, 1:, 1:].sum(axis=0)
    xty[:arms] = moments.sums[:, 0]
    xty[arms:] = moments.cross[:, 1:, 0].sum(axis=0)
    return xtx, xty, float(moments.cross[:, 0, 0].sum()), float(moments.count.sum())


def adjusted_model(moments: Moments, control: str) -> pm.Model:
    """The model of the module docstring; ``moments`` holds the metric first, then the
    covariates. Deterministic: ``adjusted_mean[arm]``, ``difference[arm]`` (vs the
    control) and ``uplift[arm]``."""
    ref = moments.arm(control)
    xtx, xty, yty, n = _normal_equations(moments)
    total = moments.sums.sum(axis=0) / n
    spread = np.sqrt(np.maximum(np.nan_to_num(covariances(moments)).mean(axis=0).diagonal(), 1e-12))
    coords = {"arm": list(moments.arms), "covariate": list(moments.columns[1:])}
    with pm.Model(coords=coords) as model:
        beta = pm.Normal("beta", float(total[0]), PRIOR_SCALE * spread[0], dims="arm")
        theta = pm.Normal("theta", 0.0, PRIOR_SCALE * spread[0] / spread[1:], dims="covariate")
        sigma = pm.HalfNormal("sigma", 2 * spread[0])
        coefficients = pt.concatenate([beta, theta])
        residual_ss = (
            yty - 2 * pt.dot(coefficients, xty) + pt.dot(coefficients, pt.dot(xtx, coefficients))
        )
        pm.Potential("likelihood", -n * pt.log(sigma) - residual_ss / (2 * sigma**2))
        adjusted = pm.Deterministic("adjusted_mean", beta + pt.dot(theta, total[1:]), dims="arm")
        pm.Deterministic("difference", adjusted - adjusted[ref], dims="arm")
        pm.Deterministic("uplift", adjusted / adjusted[ref] - 1, dims="arm")
    return model


def _summary(draws: FloatArray, level: float) -> tuple[float, float, float]:
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(draws.mean()), float(low), float(high)


def bayesian_cuped(
    moments: Moments,
    metric: str,
    covariates: Sequence[str],
    control: str,
    settings: SamplerSettings = DEFAULT_SETTINGS,
    level: float = 0.95,
) -> BayesianCuped:
    """Fit :func:`adjusted_model` and summarise each variant's adjusted effect."""
    if not covariates:
        raise ValueError("give at least one covariate")
    selected = moments.select([metric, *covariates])
    fit = sample(adjusted_model(selected, control), settings)
    posterior = fit.idata["posterior"]
    difference = posterior["difference"].values.reshape(-1, len(selected.arms))
    uplift = posterior["uplift"].values.reshape(-1, len(selected.arms))
    ref = selected.arm(control)
    effects = tuple(
        BayesianAdjustedEffect(
            name,
            _summary(difference[:, a], level),
            _summary(uplift[:, a], level),
            float(difference[:, a].std()),
        )
        for a, name in enumerate(selected.arms)
        if a != ref
    )
    return BayesianCuped(metric, tuple(covariates), control, level, effects, fit.diagnostics)
