"""A mean with the bounds of its interval, and the functions that make one.

:class:`Interval` is the one "mean with bounds" shape of the simulation results: a
t-interval over replications (:func:`mean_interval`, Monte Carlo uncertainty of a
model's mean) or a Wilson score interval of a proportion (:func:`wilson_interval`).
The posterior intervals of the analysis (:mod:`funnelsim.analysis.api`) say what
they are in their own type.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


class Interval(NamedTuple):
    """A mean with the bounds of its interval."""

    mean: float
    low: float
    high: float


def mean_interval(values: FloatArray, level: float = 0.95) -> Interval:
    """Mean of replication values with a t-interval for the mean (NaNs dropped)."""
    from scipy import special  # the t quantile; scipy.stats takes 1-2 s to import

    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    mean = float(finite.mean())
    if finite.size < 2:
        return Interval(mean, mean, mean)
    half = float(
        special.stdtrit(finite.size - 1, 0.5 + level / 2)
        * finite.std(ddof=1)
        / math.sqrt(finite.size)
    )
    return Interval(mean, mean - half, mean + half)


def relative_uplift(variant: FloatArray, control: FloatArray) -> FloatArray:
    """Per-replication relative change variant / control - 1 (NaN where control is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(control > 0, variant / control - 1.0, np.nan)


def wilson_interval(successes: int, trials: int, level: float = 0.95) -> Interval:
    """Proportion with its Wilson score interval.

    >>> [round(v, 4) for v in wilson_interval(50, 1000)]
    [0.05, 0.0381, 0.0653]

    References:
        Wilson, E. B. (1927), "Probable inference, the law of succession, and
        statistical inference", JASA 22(158).
    """
    from scipy import stats

    if trials == 0:
        return Interval(math.nan, math.nan, math.nan)
    z = float(stats.norm.isf((1 - level) / 2))
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials**2)) / (1 + z * z / trials)
    return Interval(p, centre - half, centre + half)
