"""The funnel model's pooling prior, and what it implies before seeing data.

The funnel model (:mod:`funnelsim.analysis.models`) pools each stage's log-odds across
variants::

    logit p[v, s] = m[s] + tau[s] z[v, s],   z ~ Normal(0, 1)
    m[s] ~ Normal(0, STAGE_MEAN_SD),  log tau[s] ~ Normal(log POOLING_SD_MEDIAN, POOLING_SD_LOG_SD)

so the difference of two variants' log-odds at a stage (the log odds ratio) is
``d = tau (z1 - z2)``: symmetric around zero with ``E[d^2] = 2 E[tau^2]`` and
``E[d^4] = 12 E[tau^4]``, where ``E[tau^k] = exp(k mu + k^2 s^2 / 2)`` (lognormal
moments). :func:`prior_draws` simulates the prior predictive rates,
:func:`implied_changes` says how far the prior expects a variant to move a stage's
rate, and :func:`check_stages` reads each observed stage difference against the prior:
a difference the prior puts in its far tail (``P(|d| >= observed)`` below
:data:`DOUBT_PROBABILITY`) will be shrunk towards the control by the posterior, so the
readout says so (Gabry et al. 2019; Gelman et al. 2020, sections 2.4 and 6.2, on prior
predictive checks).

References:
    Gabry, J. et al. (2019), "Visualization in Bayesian workflow", JRSS A 182(2).
    Gelman, A. et al. (2020), "Bayesian Workflow", arXiv:2011.01808.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.special import expit, logit, ndtr

FloatArray = npt.NDArray[np.float64]

STAGE_MEAN_SD = 1.5
"""Prior sd of a stage's mean log-odds: rates between 5% and 95% are all plausible."""
POOLING_SD_MEDIAN = 0.2
"""Prior median of the between-variant sd of a stage's log-odds."""
POOLING_SD_LOG_SD = 0.5
"""Prior sd of the log of that scale: 95% of its mass between 0.075 and 0.53."""
DOUBT_PROBABILITY = 0.01
"""A stage difference the prior gives less than this probability of reaching is
flagged: the posterior pulls it towards the control's rate."""
HERMITE_NODES = 80
"""Gauss-Hermite nodes over the log pooling scale (exact to ~1e-12 on these integrands)."""


def tau_moment(k: int) -> float:
    """``E[tau^k]`` of the lognormal pooling scale."""
    mu, s = math.log(POOLING_SD_MEDIAN), POOLING_SD_LOG_SD
    return math.exp(k * mu + (k * s) ** 2 / 2)


def difference_moments() -> tuple[float, float]:
    """Analytic ``E[d^2]`` and ``E[d^4]`` of the log odds ratio ``d`` between two
    variants at one stage (``d = tau (z1 - z2)``, ``z1 - z2 ~ Normal(0, 2)``)."""
    return 2 * tau_moment(2), 12 * tau_moment(4)


def prior_draws(n_variants: int = 2, draws: int = 100_000, seed: int = 0) -> FloatArray:
    """Prior predictive log-odds of one stage, shape ``(draws, n_variants)``."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(0.0, STAGE_MEAN_SD, (draws, 1))
    scale = np.exp(rng.normal(math.log(POOLING_SD_MEDIAN), POOLING_SD_LOG_SD, (draws, 1)))
    return mean + scale * rng.standard_normal((draws, n_variants))


def tail_probability(difference: float) -> float:
    """``P(|d| >= difference)`` under the prior, by Gauss-Hermite quadrature over the log
    pooling scale: ``E[2 Phi(-difference / (sqrt(2) tau))]``."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(HERMITE_NODES)
    tau = np.exp(math.log(POOLING_SD_MEDIAN) + POOLING_SD_LOG_SD * nodes)
    tails = 2 * ndtr(-abs(difference) / (math.sqrt(2) * tau))
    return float(weights @ tails / math.sqrt(2 * math.pi))


class ImpliedChange(NamedTuple):
    """How far the prior expects a variant to move a stage's rate from ``base_rate``:
    quantiles of ``|p_variant / p_control - 1|``."""

    base_rate: float
    median: float
    q90: float
    q99: float


def implied_changes(
    base_rates: tuple[float, ...] = (0.1, 0.5, 0.9), draws: int = 100_000, seed: int = 0
) -> tuple[ImpliedChange, ...]:
    """The relative change in a stage's rate the prior expects between two variants,
    for a control at each of ``base_rates`` (prior predictive simulation)."""
    rng = np.random.default_rng(seed)
    scale = np.exp(rng.normal(math.log(POOLING_SD_MEDIAN), POOLING_SD_LOG_SD, draws))
    difference = scale * math.sqrt(2) * rng.standard_normal(draws)
    found = []
    for base in base_rates:
        change = np.abs(expit(logit(base) + difference) / base - 1)
        median, q90, q99 = np.quantile(change, [0.5, 0.9, 0.99])
        found.append(ImpliedChange(base, float(median), float(q90), float(q99)))
    return tuple(found)


class StageCheck(NamedTuple):
    """One variant's observed difference from the control at one stage, read against the
    pooling prior.

    Attributes:
        stage: Stage name.
        variant: Variant name.
        log_odds_ratio: Observed log odds ratio vs the control (0.5 added to each count).
        prior_probability: ``P(|d| >= |log_odds_ratio|)`` under the prior.
        doubted: ``prior_probability < DOUBT_PROBABILITY``: the prior finds a difference
            this large implausible, so the posterior shrinks it.
    """

    stage: str
    variant: str
    log_odds_ratio: float
    prior_probability: float
    doubted: bool


def check_stages(
    stages: tuple[str, ...],
    variants: tuple[str, ...],
    reached: npt.ArrayLike,
    continued: npt.ArrayLike,
    control: str,
) -> tuple[StageCheck, ...]:
    """Each variant's observed stage differences from the control against the prior
    (``reached`` and ``continued``: variants x stages).

    >>> found = check_stages(("pay",), ("a", "b"), [[1000], [1000]], [[500], [900]], "a")
    >>> found[0].doubted, round(found[0].log_odds_ratio, 2)
    (True, 2.19)
    """
    n = np.asarray(reached, dtype=np.float64)
    k = np.asarray(continued, dtype=np.float64)
    log_odds = np.log((k + 0.5) / (n - k + 0.5))
    ref = variants.index(control)
    found = []
    for v, variant in enumerate(variants):
        if v == ref:
            continue
        for s, stage in enumerate(stages):
            difference = float(log_odds[v, s] - log_odds[ref, s])
            probability = tail_probability(difference)
            found.append(
                StageCheck(stage, variant, difference, probability, probability < DOUBT_PROBABILITY)
            )
    return tuple(found)


def doubt_message(checks: tuple[StageCheck, ...]) -> str | None:
    """One sentence naming the stages whose difference the prior doubts, or None."""
    doubted = [c for c in checks if c.doubted]
    if not doubted:
        return None
    listed = ", ".join(
        f"{c.variant} at {c.stage} (log odds ratio {c.log_odds_ratio:+.2f}, prior "
        f"P = {c.prior_probability:.1e})"
        for c in doubted
    )
    return (
        f"Prior predictive check: the pooling prior finds these stage differences "
        f"implausible, so the model shrinks them towards the control: {listed}. "
        "Read the raw stage rates beside the model's."
    )
