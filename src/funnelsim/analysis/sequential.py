"""Safe peeking: always-valid p-values and confidence sequences for a difference in means.

A team that looks at a test every day and stops at the first ``p < 0.05`` ships a false
winner far more often than 5% of the time (28 daily looks at an A/A test: about 27%).
The mixture sequential probability ratio test (mSPRT) of Johari et al. (2017), used by
Optimizely and Statsig, keeps its guarantee at every look: with the estimate
``d`` of the difference and its variance ``V`` at a look, and a normal mixing
distribution ``N(0, tau^2)`` over the true difference,

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 d^2 / (2 V (V + tau^2)))

is a likelihood ratio martingale under "no difference", so by Ville's inequality
``P(Lambda >= 1 / alpha at any look) <= alpha``. The always-valid p-value is the running
minimum of ``1 / Lambda``; inverting the test gives the normal-mixture confidence
sequence of Howard et al. (2021), ``d +- sqrt(V (V + tau^2) / tau^2 * (2 log(1 / alpha)
+ log(1 + tau^2 / V)))``, which covers the true difference at every look at once. With
the variance estimated from the data (as here, for conversion and revenue per visitor)
the guarantee is asymptotic (Waudby-Smith et al. 2023). ``tau^2`` only tunes where the
sequence is tightest: :func:`mixing_variance` puts that at the planned sample size.

Everything works on aggregates (per-look cumulative counts, sums and sums of squares)
and on arrays of any shape with the looks on the last axis, so thousands of simulated
tests are checked at once.

References:
    Johari, R., Koomen, P., Pekelis, L. & Walsh, D. (2017), "Peeking at A/B Tests: Why
    it matters, and what to do about it", KDD.
    Howard, S. R., Ramdas, A., McAuliffe, J. & Sekhon, J. (2021), "Time-uniform,
    nonparametric, nonasymptotic confidence sequences", Annals of Statistics 49(2)
    (normal mixture boundary and its tuning, eq. (14)).
    Waudby-Smith, I., Arbour, D., Sinha, R., Kennedy, E. H. & Ramdas, A. (2023),
    "Time-uniform central limit theory and asymptotic confidence sequences", Annals of
    Statistics (plug-in variance).
    Armitage, P., McPherson, C. K. & Rowe, B. C. (1969), "Repeated significance tests on
    accumulating data", JRSS A 132(2) (the cost of naive peeking).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from funnelsim.analysis.moments import Moments, covariances, means

FloatArray = npt.NDArray[np.float64]


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def mixing_ratio(alpha: float) -> float:
    """``tau^2 / V`` that makes the confidence sequence tightest where the variance is V.

    Howard et al. (2021) eq. (14): ``-2 log(alpha) + log(1 - 2 log(alpha))``.

    >>> round(mixing_ratio(0.05), 3)
    7.936
    """
    _check_alpha(alpha)
    log_term = -2 * np.log(alpha)
    return float(log_term + np.log(1 + log_term))


def mixing_variance(
    variance: npt.ArrayLike,
    visitors: npt.ArrayLike,
    planned_visitors: float,
    alpha: float,
) -> FloatArray:
    """Mixing variance ``tau^2`` tuned to the planned sample size.

    ``variance * visitors`` estimates the per-visitor variance of the difference, so
    ``variance * visitors / planned_visitors`` is the variance expected at the planned
    size, where the sequence is made tightest (:func:`mixing_ratio`).

    >>> float(mixing_variance(1e-4, 1000, 4000, 0.05).round(7))
    0.0001984
    """
    if not planned_visitors > 0:
        raise ValueError(f"planned_visitors must be positive, got {planned_visitors}")
    scale = np.asarray(variance, dtype=np.float64) * np.asarray(visitors, dtype=np.float64)
    return mixing_ratio(alpha) * scale / planned_visitors


def log_mixture_ratio(
    estimate: npt.ArrayLike, variance: npt.ArrayLike, tau_sq: npt.ArrayLike
) -> FloatArray:
    """``log Lambda`` of the normal-mixture SPRT; 0 (no evidence) where ``variance`` is 0.

    >>> float(log_mixture_ratio(0.0, 1.0, 1.0).round(4))
    -0.3466
    """
    d = np.asarray(estimate, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    t = np.asarray(tau_sq, dtype=np.float64)
    informative = (v > 0) & np.isfinite(v) & np.isfinite(d) & (t > 0)
    v_safe, t_safe = np.where(informative, v, 1.0), np.where(informative, t, 1.0)
    log_ratio = 0.5 * np.log(v_safe / (v_safe + t_safe)) + t_safe * d**2 / (
        2 * v_safe * (v_safe + t_safe)
    )
    return np.where(informative, log_ratio, 0.0)


def always_valid_p_values(
    estimate: npt.ArrayLike, variance: npt.ArrayLike, tau_sq: npt.ArrayLike
) -> FloatArray:
    """Always-valid p-values, looks on the last axis: running minimum of ``1 / Lambda``.

    ``P(p <= alpha at any look) <= alpha`` under no difference, however often one looks.

    >>> always_valid_p_values([0.0, 0.03, 0.01], [1e-4, 5e-5, 3e-5], 1e-4).round(4).tolist()
    [1.0, 0.0043, 0.0043]
    """
    p = np.minimum(1.0, np.exp(-log_mixture_ratio(estimate, variance, tau_sq)))
    return np.minimum.accumulate(p, axis=-1)


def confidence_sequence(
    estimate: npt.ArrayLike, variance: npt.ArrayLike, tau_sq: npt.ArrayLike, alpha: float
) -> tuple[FloatArray, FloatArray]:
    """Normal-mixture confidence sequence, looks on the last axis, intersected over looks.

    Covers the true difference at every look simultaneously with probability at least
    ``1 - alpha`` (asymptotically, with estimated variances). It excludes 0 exactly when
    the always-valid p-value is at most ``alpha``. Infinite where the variance is 0.

    >>> low, high = confidence_sequence([0.02], [1e-4], 8.254e-4, 0.05)
    >>> float(low[0].round(4)), float(high[0].round(4))
    (-0.0104, 0.0504)
    """
    _check_alpha(alpha)
    d = np.asarray(estimate, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    t = np.asarray(tau_sq, dtype=np.float64)
    informative = (v > 0) & np.isfinite(v) & np.isfinite(d) & (t > 0)
    v_safe, t_safe = np.where(informative, v, 1.0), np.where(informative, t, 1.0)
    radius_sq = (
        v_safe * (v_safe + t_safe) / t_safe * (2 * np.log(1 / alpha) + np.log1p(t_safe / v_safe))
    )
    radius = np.where(informative, np.sqrt(radius_sq), np.inf)
    low = np.maximum.accumulate(np.where(informative, d - radius, -np.inf), axis=-1)
    high = np.minimum.accumulate(np.where(informative, d + radius, np.inf), axis=-1)
    return low, high


def difference_in_means(
    count: npt.ArrayLike, mean: npt.ArrayLike, variance: npt.ArrayLike, control: int
) -> tuple[FloatArray, FloatArray]:
    """Each arm's mean minus the control's, and the variance of that estimate.

    Arms on the first axis of every argument (any trailing shape, e.g. looks); the
    per-visitor ``variance`` is the sample variance.

    >>> d, v = difference_in_means([100, 100], [0.1, 0.15], [0.09, 0.1275], control=0)
    >>> d.round(2).tolist(), v.round(6).tolist()
    ([0.0, 0.05], [0.0, 0.002175])
    """
    n = np.asarray(count, dtype=np.float64)
    m = np.asarray(mean, dtype=np.float64)
    s = np.asarray(variance, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        own = np.where(n > 0, s / n, np.inf)
    estimate = m - m[control]
    total = own + own[control]
    total[control] = 0.0
    return estimate, total


class SequentialLook(NamedTuple):
    """One variant against the control at one look.

    Attributes:
        look: Label of the look (a date or a look number).
        variant: Variant name.
        visitors: Visitors of the variant so far.
        control_visitors: Visitors of the control so far.
        difference: Variant mean minus control mean of the metric so far.
        low: Lower bound of the always-valid confidence sequence (intersected so far).
        high: Upper bound.
        p_value: Always-valid p-value (running minimum).
        significant: ``p_value <= alpha`` of the comparison (Bonferroni over variants).
    """

    look: str
    variant: str
    visitors: float
    control_visitors: float
    difference: float
    low: float
    high: float
    p_value: float
    significant: bool


class SequentialReadout(NamedTuple):
    """Look-by-look always-valid readout of one metric.

    Attributes:
        metric: The per-visitor column tested.
        control: Control arm.
        alpha: Family-wise error rate over all looks and variants.
        planned_visitors: Total visitors (control plus variant) where the sequences were
            tuned to be tightest.
        looks: One entry per look and non-control variant, looks in order.
        stop_look: First look where some variant differs significantly, or None.
        message: One sentence: stop (which variant, which direction) or keep going.
    """

    metric: str
    control: str
    alpha: float
    planned_visitors: float
    looks: tuple[SequentialLook, ...]
    stop_look: str | None
    message: str


def _look_arrays(
    looks: Sequence[Moments], column: str
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Counts, means and variances of ``column``, shape ``(arms, looks)``."""
    count = np.stack([m.count for m in looks], axis=-1)
    index = looks[0].column(column)
    mean = np.stack([means(m)[:, index] for m in looks], axis=-1)
    variance = np.stack([covariances(m)[:, index, index] for m in looks], axis=-1)
    return count, mean, np.nan_to_num(variance, nan=0.0)


def sequential_readout(
    looks: Sequence[Moments],
    labels: Sequence[str],
    column: str,
    control: str,
    alpha: float = 0.05,
    planned_visitors: float | None = None,
) -> SequentialReadout:
    """Always-valid readout of ``column`` per visitor at each look.

    Args:
        looks: Cumulative statistics at each look (everything seen so far), in order;
            every look has the same arms.
        labels: Label of each look (dates).
        column: Per-visitor metric column (``converted``, ``revenue``...).
        control: Control arm.
        alpha: Family-wise error over looks and variants: each of the ``k`` variants is
            tested at ``alpha / k`` (Bonferroni).
        planned_visitors: Control-plus-variant visitors the test was planned for; None
            takes the last look's (the readout of a finished test).

    >>> from funnelsim.analysis.moments import moments_from_values
    >>> rng = np.random.default_rng(1)
    >>> arms = np.repeat(["A", "B"], 4000)
    >>> y = rng.random(8000) < np.where(arms == "A", 0.10, 0.14)
    >>> looks = [moments_from_values(arms[:n], y[:n], ["converted"], ["A", "B"])
    ...          for n in (2000, 4000, 8000)]
    >>> result = sequential_readout(looks, ["1", "2", "3"], "converted", "A")
    >>> result.stop_look
    '3'
    """
    _check_alpha(alpha)
    if not looks or len(looks) != len(labels):
        raise ValueError("give one label per look and at least one look")
    arms = looks[0].arms
    ref = looks[0].arm(control)
    count, mean, variance = _look_arrays(looks, column)
    estimate, var = difference_in_means(count, mean, variance, ref)
    pair_visitors = count + count[ref]
    planned = float(pair_visitors[:, -1].max()) if planned_visitors is None else planned_visitors
    tau_sq = mixing_variance(var, pair_visitors, planned, alpha)
    level = alpha / (len(arms) - 1)
    p_values = always_valid_p_values(estimate, var, tau_sq)
    low, high = confidence_sequence(estimate, var, tau_sq, level)
    rows = tuple(
        SequentialLook(
            str(labels[t]),
            arms[i],
            float(count[i, t]),
            float(count[ref, t]),
            float(estimate[i, t]),
            float(low[i, t]),
            float(high[i, t]),
            float(p_values[i, t]),
            bool(p_values[i, t] <= level),
        )
        for t in range(len(looks))
        for i in range(len(arms))
        if i != ref
    )
    return SequentialReadout(column, control, alpha, planned, rows, *_stop(rows, column))


def _stop(rows: Sequence[SequentialLook], column: str) -> tuple[str | None, str]:
    first = next((row for row in rows if row.significant), None)
    if first is None:
        last = rows[-1]
        return None, (
            f"Keep going: no variant differs from the control on {column} at any look "
            f"(always-valid p = {min(r.p_value for r in rows if r.look == last.look):.3g} "
            f"at look {last.look})."
        )
    direction = "above" if first.difference > 0 else "below"
    return first.look, (
        f"Stop at look {first.look}: {first.variant} is {direction} the control on {column} "
        f"(difference {first.difference:+.4g}, always-valid interval [{first.low:+.4g}, "
        f"{first.high:+.4g}], p = {first.p_value:.3g})."
    )
