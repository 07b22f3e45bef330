"""PyMC models of an experiment: the funnel stage by stage, and revenue per visitor.

The conjugate readout answers *whether* a variant converts better. Picture the public
marketing funnel test: about 3,000 visitors per arm, five payment steps, and arm ``b``
converting 20% against 23% for ``a``. The funnel model says *where*: ``b`` loses a third
of its visitors at step 2, which ``a`` passes entirely, and two thirds at step 4, where
``a`` loses 3%, and makes part of it up at steps 3 and 5. The revenue model asks what a
visitor is worth: the chance of buying times what a buyer spends.

**Funnel model.** Of the ``n[v, s]`` visitors of variant ``v`` who reached stage ``s``,
``k[v, s]`` continue (the last stage's continuers are the conversions)::

    k[v, s] ~ Binomial(n[v, s], p[v, s])
    logit p[v, s] ~ Normal(m[s], tau[s])        partial pooling across variants
    m[s] ~ Normal(0, 1.5),  tau[s] ~ LogNormal(log 0.2, 0.5)

so each stage's rates are shrunk towards each other as far as the data allow. The
pooling scale ``tau`` has a median of 0.2 on the log-odds scale (most product changes
move a stage's odds by well under 50%) and stays away from zero; what it implies, and
which observed differences it doubts, is :mod:`funnelsim.analysis.pooling_prior`. Both
``m`` (in closed form) and ``tau`` (numerically, on a fine grid over its prior) are
integrated out, so NUTS samples only the log-odds, one per variant and stage: no pooling
scale, hence no funnel geometry between a scale and what it scales. The log-odds are
sampled whitened: ``logit[:, s] = mode[:, s] + L[s] z[:, s]``, where ``mode`` is the
posterior mode of stage ``s`` and ``L[s] L[s]'`` the inverse curvature there (a Laplace
approximation, found before sampling). The transform is linear, so the posterior is the
same; it only turns stages of very different precision (a step every visitor passes
beside one that loses a third) into draws of similar scale and little correlation. On
the public marketing funnel (step 1 at 100%) NUTS needs about 9 gradient evaluations per
draw instead of 176-246 with the pooling scale sampled (``benchmarks/analysis.py``).
Derived: ``conversion[v] = prod_s p[v, s]`` and ``stage_difference[v, s] = p[v, s] -
p[control, s]``, the posterior of which stage a variant changed.

**Revenue model.** Zero-inflated per visitor: a visitor converts with probability
``q[v] ~ Beta(1, 1)`` (the conjugate readout's prior, so both agree on conversion) and
then spends an order value drawn from a LogNormal or a Gamma distribution. Revenue per
visitor is ``q[v]`` times the mean order value. Both likelihoods are evaluated from
per-variant sufficient statistics (order count, sums of values, of squares, of logs), so
the cost does not grow with the number of visitors.

Every fit returns ArviZ ``InferenceData`` and :class:`Diagnostics` (r_hat, bulk and
tail ESS, divergences) with a ``reliable`` verdict.

References:
    Gelman, A. et al. (2013), Bayesian Data Analysis, 3rd ed., ch. 5 (hierarchical
    models) and 11.4-11.5 (r_hat, effective sample size).
    Betancourt, M. & Girolami, M. (2015), "Hamiltonian Monte Carlo for Hierarchical
    Models", in Current Trends in Bayesian Methodology (centred vs non-centred).
    Vehtari, A. et al. (2021), "Rank-normalization, folding, and localization: an
    improved R-hat", Bayesian Analysis 16(2) (the 1.01 and ESS 400 thresholds).
    Chung, Y. et al. (2013), "A nondegenerate penalized likelihood estimator for
    variance parameters in multilevel models", Psychometrika 78 (scale priors away
    from zero).
    Trefethen, L. N. & Weideman, J. A. C. (2014), "The exponentially convergent
    trapezoidal rule", SIAM Review 56(3) (the grid over the pooling scale).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, NamedTuple

import arviz as az
import numpy as np
import numpy.typing as npt
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pytensor.tensor.variable import TensorVariable

from funnelsim.analysis.data import ExperimentData, OrderStats
from funnelsim.analysis.pooling_prior import POOLING_SD_LOG_SD, POOLING_SD_MEDIAN, STAGE_MEAN_SD
from funnelsim.analysis.sampling_progress import SamplingProgress, sampling_progress
from funnelsim.errors import ArgumentError
from funnelsim.numbers import finite_or_none

FloatArray = npt.NDArray[np.float64]
SamplerName = Literal["auto", "pymc", "nutpie"]
OrderValueFamily = Literal["auto", "lognormal", "gamma"]

POOLING_GRID_STEP = 0.2
"""Step, in prior sds, of the grid over which the pooling scale is integrated out."""
ORDER_VALUE_LOG_SD = 1.0
"""Prior sd of the log mean order value around the pooled mean (a factor of e)."""
MIN_LOG_ORDER_SD = 0.01
"""Order values varying by less than 1% (e.g. one fixed price) count as varying by 1%."""

R_HAT_MAX = 1.01
ESS_MIN = 400.0


class SamplerSettings(NamedTuple):
    """How to run NUTS.

    Attributes:
        sampler: ``"nutpie"``, ``"pymc"`` or ``"auto"`` (nutpie when installed: it is the
            faster of the two here, see ``benchmarks/analysis.py``).
        draws: Kept draws per chain.
        tune: Warm-up draws per chain.
        chains: Independent chains (r_hat needs at least two).
        seed: Random seed; the same seed gives the same draws.
        target_accept: NUTS target acceptance rate; 0.95 (not the usual 0.8) because
            funnels with stages every visitor passes have sharply curved posteriors.
        cores: Parallel chains (PyMC processes, nutpie threads); None lets the sampler
            choose.
        progress: Show "compiling", then the draws done and the time left (on stderr).
    """

    sampler: SamplerName = "auto"
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    seed: int = 0
    target_accept: float = 0.95
    cores: int | None = None
    progress: bool = False


DEFAULT_SETTINGS = SamplerSettings()


class Diagnostics(NamedTuple):
    """Convergence diagnostics of a fit, over every sampled and derived quantity.

    Attributes:
        sampler: The sampler that ran (``"nutpie"`` or ``"pymc"``).
        chains: Chains run.
        draws: Kept draws per chain.
        seconds: Wall time of compiling and sampling.
        r_hat_max: Largest rank-normalised split r_hat (quantities constant across all
            draws, such as the control's difference from itself, are skipped).
        ess_bulk_min: Smallest bulk effective sample size.
        ess_tail_min: Smallest tail effective sample size.
        divergences: Divergent transitions after warm-up.
        reliable: True when r_hat <= 1.01, both ESS >= 400 and there is no divergence.
        problems: One readable sentence per failed check.
    """

    sampler: str
    chains: int
    draws: int
    seconds: float
    r_hat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    reliable: bool
    problems: tuple[str, ...]


class ModelFit(NamedTuple):
    """A fitted model: posterior draws and their diagnostics.

    Attributes:
        idata: ArviZ InferenceData (posterior, sample_stats, observed_data), labelled by
            ``variant`` and ``stage``.
        diagnostics: Convergence diagnostics of ``idata``.
    """

    idata: az.InferenceData
    diagnostics: Diagnostics


class FunnelCounts(NamedTuple):
    """The funnel as stage transitions: of ``reached[v, s]``, ``continued[v, s]`` go on.

    Attributes:
        stages: Transition names: each intermediate stage, then the conversion metric
            unless the last stage already is the conversion (same counts).
        reached: Visitors reaching each transition, shape ``(variants, stages)``.
        continued: Visitors passing it.
    """

    stages: tuple[str, ...]
    reached: FloatArray
    continued: FloatArray


# --------------------------------------------------------------------------- funnel


def funnel_counts(data: ExperimentData) -> FunnelCounts:
    """Stage transitions of an experiment: visitors -> stage 1 -> ... -> conversion.

    Example:
        >>> from funnelsim.analysis.data import experiment_from_counts
        >>> data = experiment_from_counts(["A", "B"], [100, 100], [10, 12], ["cart"],
        ...                               [[40], [45]])
        >>> counts = funnel_counts(data)
        >>> counts.stages, counts.continued.tolist()
        (('cart', 'conversions'), [[40.0, 10.0], [45.0, 12.0]])
    """
    reached = np.column_stack([data.visitors, data.stage_counts])
    continued = np.column_stack([data.stage_counts, data.conversions])
    stages = (*data.stages, data.metric)
    if data.stages and np.array_equal(data.stage_counts[:, -1], data.conversions):
        reached, continued, stages = reached[:, :-1], continued[:, :-1], stages[:-1]
    return FunnelCounts(stages, reached, continued)


def _log_sd_nodes() -> tuple[FloatArray, FloatArray]:
    """Nodes of the pooling scale's log and their log weights (prior density times the
    step): a uniform grid from 8 prior sds below to 12 above its median (prior mass
    outside ~1e-15). The trapezoidal rule converges exponentially on such smooth,
    decaying integrands: 101 nodes match adaptive quadrature to ~1e-10 in log density
    for 2 to 20 variants, at a quarter of the cost of 401."""
    z = np.arange(-8.0, 12.0 + POOLING_GRID_STEP / 2, POOLING_GRID_STEP)
    log_sd = math.log(POOLING_SD_MEDIAN) + POOLING_SD_LOG_SD * z
    log_weight = -0.5 * z**2 - 0.5 * math.log(2 * math.pi) + math.log(POOLING_GRID_STEP)
    return log_sd, log_weight


def _pooling_terms(logit: Any, n_variants: int) -> tuple[Any, FloatArray]:
    """Per grid node and stage, log weight plus ``log N(logit[:, s]; 0, sd**2 I + S**2 J)``
    without its last, data-free terms; returns (that, 1 / sd**2) with nodes on axis 0.

    ``J`` is all ones (the stage mean ``m ~ Normal(0, S)`` integrated out); inverse and
    determinant follow from the Sherman-Morrison formula.
    """
    log_sd, log_weight = _log_sd_nodes()
    variance = np.exp(2 * log_sd)[:, None]
    total = variance + n_variants * STAGE_MEAN_SD**2
    squares, sums = (logit**2).sum(axis=0), logit.sum(axis=0)
    quadratic = (squares - STAGE_MEAN_SD**2 * sums**2 / total) / variance
    constant = log_weight[:, None] - 0.5 * (
        (n_variants - 1) * np.log(variance) + np.log(total) + n_variants * math.log(2 * math.pi)
    )
    return constant - 0.5 * quadratic, total


def pooled_log_prior(logit: TensorVariable, n_variants: int) -> TensorVariable:
    """Log prior density of each stage's log-odds (``logit``: variants x stages) with the
    stage mean and the pooling scale integrated out (the scale over ``_log_sd_nodes``)."""
    terms, _ = _pooling_terms(logit, n_variants)
    return pt.logsumexp(terms, axis=0)


def _stage_log_posterior(
    logit: FloatArray, reached: FloatArray, continued: FloatArray
) -> tuple[float, FloatArray, FloatArray]:
    """Log posterior density of one stage's log-odds (one per variant) up to a constant,
    with its gradient and Hessian (NumPy, for the mode and curvature of the posterior)."""
    n_variants = logit.size
    terms, total = _pooling_terms(logit[:, None], n_variants)
    terms, total = terms[:, 0], total[:, 0]
    variance = np.exp(2 * _log_sd_nodes()[0])
    weight = np.exp(terms - terms.max())
    weight /= weight.sum()
    # d terms_j / d logit = -(logit - S**2 sum(logit) / total_j) / variance_j
    slope = -(logit[None, :] - STAGE_MEAN_SD**2 * logit.sum() / total[:, None]) / variance[:, None]
    mean_slope = weight @ slope
    curvature = (
        -(np.eye(n_variants)[None] - (STAGE_MEAN_SD**2 / total)[:, None, None])
        / variance[:, None, None]
    )
    spread = (weight[:, None] * slope).T @ slope - np.outer(mean_slope, mean_slope)
    prior_hessian = np.tensordot(weight, curvature, axes=1) + spread
    rate = 1.0 / (1.0 + np.exp(-logit))
    value = (
        terms.max()
        + math.log(np.exp(terms - terms.max()).sum())
        - (continued * np.logaddexp(0.0, -logit)).sum()
        - ((reached - continued) * np.logaddexp(0.0, logit)).sum()
    )
    gradient = mean_slope + continued - reached * rate
    hessian = prior_hessian - np.diag(reached * rate * (1.0 - rate))
    return float(value), gradient, hessian


def _laplace_whitening(reached: FloatArray, continued: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per stage, the posterior mode of the log-odds and a Cholesky factor of the inverse
    curvature there (the Laplace approximation's covariance)."""
    from scipy.optimize import minimize

    n_variants, n_stages = reached.shape
    mode = np.empty((n_variants, n_stages))
    factor = np.empty((n_stages, n_variants, n_variants))
    for s in range(n_stages):
        start = np.log((continued[:, s] + 0.5) / (reached[:, s] - continued[:, s] + 0.5))

        def negative(x: FloatArray, s: int = s) -> tuple[float, FloatArray]:
            value, gradient, _ = _stage_log_posterior(x, reached[:, s], continued[:, s])
            return -value, -gradient

        def hessian(x: FloatArray, s: int = s) -> FloatArray:
            return -_stage_log_posterior(x, reached[:, s], continued[:, s])[2]

        found = minimize(negative, start, jac=True, hess=hessian, method="trust-exact")
        mode[:, s] = found.x
        precision = hessian(found.x)
        eigenvalues, vectors = np.linalg.eigh((precision + precision.T) / 2)
        covariance = (vectors / np.maximum(eigenvalues, 1e-8)) @ vectors.T
        factor[s] = np.linalg.cholesky(covariance)
    return mode, factor


def funnel_model(data: ExperimentData, control: str) -> pm.Model:
    """PyMC funnel model with stage rates partially pooled across variants.

    Variables (dims in brackets): ``stage_logit_z[variant, stage]`` (the sampled,
    whitened log-odds), ``stage_rate[variant, stage]``, ``conversion[variant]`` (end to
    end) and ``stage_difference[variant, stage]`` (rate minus the control's rate).

    Example:
        >>> from funnelsim.analysis.data import experiment_from_counts
        >>> data = experiment_from_counts(["A", "B"], [1000, 1000], [100, 120])
        >>> sorted(funnel_model(data, "A").named_vars_to_dims["stage_rate"])
        ['stage', 'variant']
    """
    counts = funnel_counts(data)
    ref = data.variants.index(control)
    mode, factor = _laplace_whitening(counts.reached, counts.continued)
    coords = {"variant": list(data.variants), "stage": list(counts.stages)}
    with pm.Model(coords=coords) as model:
        z = pm.Flat("stage_logit_z", dims=("variant", "stage"))
        logit = mode + (factor * z.T[:, None, :]).sum(axis=-1).T
        pm.Potential("stage_pooling", pooled_log_prior(logit, len(data.variants)).sum())
        rate = pm.Deterministic("stage_rate", pm.math.invlogit(logit), dims=("variant", "stage"))
        pm.Binomial(
            "continued",
            n=counts.reached,
            p=rate,
            observed=counts.continued,
            dims=("variant", "stage"),
        )
        pm.Deterministic("conversion", rate.prod(axis=1), dims="variant")
        pm.Deterministic("stage_difference", rate - rate[ref], dims=("variant", "stage"))
    return model


# --------------------------------------------------------------------------- revenue


def order_value_family(orders: OrderStats, family: OrderValueFamily) -> str:
    """The order value distribution to fit: LogNormal needs per-order log statistics.

    ``"auto"`` picks LogNormal when the data have them (per-visitor rows), else Gamma,
    whose sum over orders is again Gamma, so revenue totals alone suffice.
    """
    has_logs = orders.log_total is not None
    if family == "lognormal" and not has_logs:
        raise ValueError(
            "a LogNormal order value needs per-visitor revenue rows; "
            "aggregated revenue totals support the Gamma order value only"
        )
    if family == "auto":
        return "lognormal" if has_logs else "gamma"
    return family


def _lognormal_order_value(orders: OrderStats) -> TensorVariable:
    """Mean order value under LogNormal(mu[v], sigma[v]) orders, from log statistics.

    With ``k`` orders, mean log ``L / k`` and sum of squared log deviations ``SS``:
    ``L / k ~ Normal(mu, sigma / sqrt(k))`` and ``SS / sigma**2 ~ ChiSquared(k - 1)``
    are independent and together carry the whole likelihood (normal sample theory).
    """
    assert orders.log_total is not None and orders.log_total_sq is not None
    k = orders.orders
    one, two = np.flatnonzero(k >= 1), np.flatnonzero(k >= 2)
    log_total, log_total_sq = orders.log_total, orders.log_total_sq
    centre = log_total.sum() / max(k.sum(), 1.0)
    mu = pm.Normal("log_order_mu", centre, ORDER_VALUE_LOG_SD, dims="variant")
    sigma = pm.HalfNormal("log_order_sigma", 1.0, dims="variant")
    pm.Normal(
        "log_order_mean", mu[one], sigma[one] / np.sqrt(k[one]), observed=log_total[one] / k[one]
    )
    squares = log_total_sq[two] - log_total[two] ** 2 / k[two]
    squares = np.maximum(squares, (k[two] - 1) * MIN_LOG_ORDER_SD**2)
    pm.Gamma(
        "log_order_squares", alpha=(k[two] - 1) / 2, beta=0.5 / sigma[two] ** 2, observed=squares
    )
    return pm.Deterministic("order_value", pt.exp(mu + sigma**2 / 2), dims="variant")


def _gamma_order_value(orders: OrderStats) -> TensorVariable:
    """Mean order value under Gamma(shape[v], mean[v]) orders.

    From per-visitor rows the exact likelihood needs only ``k``, the sum and the sum of
    logs; from totals alone, the sum of ``k`` Gamma orders is ``Gamma(k shape, rate)``,
    and the shape (the spread of order values) comes from its prior (median 1, i.e. a
    coefficient of variation of 1).
    """
    k, total = orders.orders, orders.total
    one = np.flatnonzero(k >= 1)
    centre = math.log(total.sum() / k.sum()) if k.sum() > 0 and total.sum() > 0 else 0.0
    shape = pm.LogNormal("order_shape", 0.0, 1.0, dims="variant")
    mean = pm.LogNormal("order_value", centre, ORDER_VALUE_LOG_SD, dims="variant")
    rate = shape / mean
    if orders.log_total is None:
        pm.Gamma("order_total", alpha=k[one] * shape[one], beta=rate[one], observed=total[one])
    else:
        a, b = shape[one], rate[one]
        pm.Potential(
            "order_likelihood",
            (
                k[one] * (a * pt.log(b) - pt.gammaln(a))
                + (a - 1) * orders.log_total[one]
                - b * total[one]
            ).sum(),
        )
    return mean


def revenue_model(
    data: ExperimentData, control: str, order_value: OrderValueFamily = "auto"
) -> pm.Model:
    """PyMC zero-inflated revenue model: conversion times order value, per visitor.

    Variables: ``conversion[variant]``, ``order_value[variant]`` (mean order value),
    ``revenue_per_visitor[variant]`` and ``revenue_uplift[variant]`` (relative to the
    control).

    Example:
        >>> from funnelsim.analysis.data import experiment_from_counts
        >>> data = experiment_from_counts(["A", "B"], [1000, 1000], [100, 120],
        ...                               revenue=[5000.0, 6600.0])
        >>> "revenue_per_visitor" in revenue_model(data, "A").named_vars
        True
    """
    if data.orders is None:
        raise ValueError("the revenue model needs a revenue column")
    family = order_value_family(data.orders, order_value)
    ref = data.variants.index(control)
    with pm.Model(coords={"variant": list(data.variants)}) as model:
        rate = pm.Beta("conversion", 1.0, 1.0, dims="variant")
        pm.Binomial("converted", n=data.visitors, p=rate, observed=data.conversions, dims="variant")
        mean = (
            _lognormal_order_value(data.orders)
            if family == "lognormal"
            else _gamma_order_value(data.orders)
        )
        rpv = pm.Deterministic("revenue_per_visitor", rate * mean, dims="variant")
        pm.Deterministic("revenue_uplift", rpv / rpv[ref] - 1, dims="variant")
    return model


# --------------------------------------------------------------------------- sampling


def resolve_sampler(name: SamplerName) -> str:
    """The sampler ``name`` stands for; ``"auto"`` is nutpie when it is installed."""
    if name == "auto":
        return "nutpie" if importlib.util.find_spec("nutpie") is not None else "pymc"
    if name == "nutpie" and importlib.util.find_spec("nutpie") is None:
        raise ArgumentError("sampler 'nutpie' is not installed (pip install nutpie)", "sampler")
    return name


@contextmanager
def _quiet_loggers() -> Iterator[None]:
    """Silence PyMC's informational log lines (sampler choice, timing): a fit shows its
    own progress."""
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def sample(model: pm.Model, settings: SamplerSettings = DEFAULT_SETTINGS) -> ModelFit:
    """Run NUTS on ``model`` and diagnose the draws.

    PyTensor caches compiled code in its compile directory (see
    :mod:`funnelsim.compile_cache`), so a later fit of the same model, also in a new
    process, loads it. With ``settings.progress``, stderr shows "compiling the model"
    while it compiles, then the draws done and the time left.
    """
    _check_settings(settings)
    sampler = resolve_sampler(settings.sampler)
    start = time.perf_counter()
    with sampling_progress(settings.progress) as display, _quiet_loggers():
        if sampler == "nutpie":
            idata = _sample_nutpie(model, settings, display)
        else:
            idata = _sample_pymc(model, settings, display)
    seconds = time.perf_counter() - start
    return ModelFit(idata, diagnose(idata, sampler, seconds))


PROGRESS_POLL_S = 1.0
"""Seconds between two looks at nutpie's draws for the progress bar."""


def _sample_nutpie(
    model: pm.Model, settings: SamplerSettings, display: SamplingProgress
) -> az.InferenceData:
    """nutpie: compile (Numba; see :mod:`funnelsim.analysis.nutpie_model`), then sample in
    the background, polling for progress."""
    import nutpie
    from pymc.backends.arviz import (
        coords_and_dims_for_inferencedata,
        dict_to_dataset,
        find_observations,
    )

    from funnelsim.analysis.nutpie_model import compile_model

    display.compiling()
    compiled = compile_model(model)
    total = settings.chains * (settings.tune + settings.draws)
    display.sampling(settings.chains, total)
    running = nutpie.sample(
        compiled,
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        seed=settings.seed,
        target_accept=settings.target_accept,
        progress_bar=False,
        blocking=False,
        **({} if settings.cores is None else {"cores": settings.cores}),
    )
    try:
        while True:
            try:
                idata = running.wait(timeout=PROGRESS_POLL_S if display.enabled else None)
                break
            except TimeoutError:
                display.done(_draws_done(running.inspect()))
    except BaseException:
        running.cancel()
        raise
    display.done(total)
    coords, dims = coords_and_dims_for_inferencedata(model)
    observed = dict_to_dataset(
        find_observations(model), library=pm, coords=coords, dims=dims, default_dims=[]
    )
    idata.add_groups({"observed_data": observed}, coords=coords, dims=dims)
    return idata


def _draws_done(idata: az.InferenceData) -> int:
    """Draws (warm-up included) in a partial nutpie trace; chains are padded with NaN."""
    done = 0
    for group in ("warmup_sample_stats", "sample_stats"):
        if group in idata.groups():
            done += int(np.isfinite(idata[group]["step_size"].values).sum())
    return done


def _sample_pymc(
    model: pm.Model, settings: SamplerSettings, display: SamplingProgress
) -> az.InferenceData:
    """PyMC's NUTS: compiles (C) before the first draw; each draw calls back."""
    display.compiling()
    started = False

    def count(**_: object) -> None:
        nonlocal started
        if not started:
            started = True
            display.sampling(settings.chains, settings.chains * (settings.tune + settings.draws))
        display.advance(1)

    return pm.sample(
        model=model,
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        random_seed=settings.seed,
        target_accept=settings.target_accept,
        progressbar=False,
        compute_convergence_checks=False,
        callback=count if display.enabled else None,
        **({} if settings.cores is None else {"cores": settings.cores}),
    )


def nutpie_hint(sampler: SamplerName) -> str | None:
    """One line for the user when ``sampler`` falls back to PyMC's slower NUTS because
    nutpie is not installed; None otherwise."""
    if sampler == "auto" and resolve_sampler("auto") != "nutpie":
        return (
            "nutpie is not installed: fitting with PyMC's NUTS, several times slower "
            "(pip install nutpie)"
        )
    return None


def diagnostics_dict(found: Diagnostics) -> dict[str, object]:
    """The ``diagnostics`` block of a ``results.json`` (no NaN: null instead)."""
    return {
        "reliable": found.reliable,
        "method": "NUTS",
        "sampler": found.sampler,
        "chains": found.chains,
        "draws": found.draws,
        "seconds": finite_or_none(found.seconds),
        "r_hat_max": finite_or_none(found.r_hat_max),
        "ess_bulk_min": finite_or_none(found.ess_bulk_min),
        "ess_tail_min": finite_or_none(found.ess_tail_min),
        "divergences": found.divergences,
        "problems": list(found.problems),
    }


def _check_settings(settings: SamplerSettings) -> None:
    if settings.sampler not in ("auto", "pymc", "nutpie"):
        raise ValueError(f"sampler must be auto, pymc or nutpie, got {settings.sampler!r}")
    if settings.draws < 1 or settings.tune < 0 or settings.chains < 1:
        raise ValueError("draws and chains must be positive and tune non-negative")
    if not 0 < settings.target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {settings.target_accept}")


def _extreme(
    values: xr.Dataset, posterior: xr.Dataset, worst: Literal["max", "min"]
) -> float | None:
    """Max or min of an ArviZ statistic over the posterior quantities that vary (a constant,
    such as the control's difference from itself, has no r_hat or ESS); None if none do.
    A NaN statistic of a varying quantity is returned as NaN, so it fails the checks."""
    found = []
    for name, statistic in values.data_vars.items():
        draws = posterior[name].values
        varies = draws.max(axis=(0, 1)) > draws.min(axis=(0, 1))
        found.append(np.ravel(np.asarray(statistic.values)[varies]))
    flat = np.concatenate(found) if found else np.array([])
    if flat.size == 0:
        return None
    if np.isnan(flat).any():
        return math.nan
    return float(flat.max() if worst == "max" else flat.min())


class VariableDiagnostics(NamedTuple):
    """Convergence of one sampled variable, over its elements that vary across draws.

    Attributes:
        name: Variable name in the posterior.
        elements: Elements that vary (constants, such as the control's difference from
            itself, have no r_hat or ESS and are left out).
        r_hat_max: Largest rank-normalised split r_hat of those elements.
        ess_bulk_min: Smallest bulk effective sample size.
        ess_tail_min: Smallest tail effective sample size.
    """

    name: str
    elements: int
    r_hat_max: float
    ess_bulk_min: float
    ess_tail_min: float

    @property
    def reliable(self) -> bool:
        """r_hat and both ESS within the limits of :func:`diagnose`."""
        return self.r_hat_max <= R_HAT_MAX and min(self.ess_bulk_min, self.ess_tail_min) >= ESS_MIN


def varying_variables(idata: az.InferenceData) -> list[str]:
    """The posterior variables every element of which varies across draws: what the
    sampler explored (a variable with a constant element, such as an uplift whose control
    entry is zero, or a constant, has no trace to check)."""
    posterior = idata["posterior"]
    names = []
    for name, values in posterior.data_vars.items():
        draws = values.values
        if np.all(draws.max(axis=(0, 1)) > draws.min(axis=(0, 1))):
            names.append(str(name))
    return names


def variable_diagnostics(
    idata: az.InferenceData, var_names: Sequence[str]
) -> tuple[VariableDiagnostics, ...]:
    """One summary per sampled variable of ``var_names`` that varies: its worst r_hat and
    ESS over its elements (what a report lists, rather than one row per element)."""
    posterior = idata["posterior"]
    names = list(var_names)
    with np.errstate(invalid="ignore", divide="ignore"):
        r_hat = az.rhat(idata, var_names=names)
        bulk = az.ess(idata, var_names=names, method="bulk")
        tail = az.ess(idata, var_names=names, method="tail")
    found = []
    for name in names:
        draws = posterior[name].values
        varies = np.atleast_1d(draws.max(axis=(0, 1)) > draws.min(axis=(0, 1)))
        if not varies.any():
            continue
        worst = [
            np.atleast_1d(np.asarray(stat[name].values))[varies] for stat in (r_hat, bulk, tail)
        ]
        found.append(
            VariableDiagnostics(
                name,
                int(varies.sum()),
                float(np.max(worst[0])),
                float(np.min(worst[1])),
                float(np.min(worst[2])),
            )
        )
    return tuple(found)


def diagnose(idata: az.InferenceData, sampler: str, seconds: float) -> Diagnostics:
    """Diagnostics of every posterior quantity, and whether the draws can be trusted.

    Quantities constant across all draws are skipped; a posterior of constants only has
    r_hat 1 and an ESS equal to the number of draws.
    """
    posterior = idata["posterior"]
    chains, draws = (int(posterior.sizes[d]) for d in ("chain", "draw"))
    with np.errstate(invalid="ignore", divide="ignore"):
        r_hat = _extreme(az.rhat(idata), posterior, "max")
        ess_bulk = _extreme(az.ess(idata, method="bulk"), posterior, "min")
        ess_tail = _extreme(az.ess(idata, method="tail"), posterior, "min")
    r_hat = 1.0 if r_hat is None else r_hat
    ess_bulk = float(chains * draws) if ess_bulk is None else ess_bulk
    ess_tail = float(chains * draws) if ess_tail is None else ess_tail
    divergences = int(idata["sample_stats"]["diverging"].sum())
    problems = []
    if not r_hat <= R_HAT_MAX:
        problems.append(f"r_hat {r_hat:.3f} > {R_HAT_MAX} (chains disagree)")
    if not (ess_bulk >= ESS_MIN and ess_tail >= ESS_MIN):
        problems.append(
            f"effective sample size {min(ess_bulk, ess_tail):.0f} < {ESS_MIN:.0f} (draw more)"
        )
    if divergences:
        problems.append(f"{divergences} divergent transitions (posterior may be biased)")
    return Diagnostics(
        sampler,
        chains,
        draws,
        seconds,
        r_hat,
        ess_bulk,
        ess_tail,
        divergences,
        not problems,
        tuple(problems),
    )
