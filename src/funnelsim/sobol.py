"""Variance-based global sensitivity (Sobol indices), computed by SALib.

A model's output Y depends on uncertain inputs X_1..X_k. Sobol's first-order
index S_i = Var(E[Y | X_i]) / Var(Y) is the share of Y's variance that X_i
explains alone; the total index ST_i = E[Var(Y | X_~i)] / Var(Y) adds every
interaction X_i takes part in. An input with ST_i = 0 does not matter at all.

Inputs are sampled on the unit cube by Saltelli's scheme (SALib's scrambled
Sobol sample: ``base_samples x (k + 2)`` points, no second-order terms) and
mapped to values through each input's inverse CDF (see
:mod:`funnelsim.uncertainty`); the indices and their bootstrap intervals are
SALib's ``sobol.analyze``.

References:
    Saltelli, A. et al. (2010), Variance based sensitivity analysis of model
    output. Design and estimator for the total sensitivity index, Computer
    Physics Communications 181(2), 259-270.
    Herman, J. & Usher, W. (2017), SALib: An open-source Python library for
    sensitivity analysis, Journal of Open Source Software 2(9), 97.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
RESOLUTION = 1e-12  # indices whose whole interval lies within this of 0 are exactly 0


class IndexEstimate(NamedTuple):
    """A Sobol index with the bounds of its bootstrap interval."""

    mean: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class SobolIndices:
    """First-order and total indices of each input, with bootstrap intervals at ``level``."""

    names: tuple[str, ...]
    first: tuple[IndexEstimate, ...]
    total: tuple[IndexEstimate, ...]
    level: float
    variance: float  # of the output over the sample

    def ranked(self) -> list[str]:
        """Input names, the largest total index first."""
        order = sorted(range(len(self.names)), key=lambda i: -self.total[i].mean)
        return [self.names[i] for i in order]

    def of(self, name: str) -> tuple[IndexEstimate, IndexEstimate]:
        """(first, total) of input ``name``."""
        i = self.names.index(name)
        return self.first[i], self.total[i]


def _problem(dimensions: int) -> dict[str, Any]:
    return {
        "num_vars": dimensions,
        "names": [f"x{i}" for i in range(dimensions)],
        "bounds": [[0.0, 1.0]] * dimensions,
    }


def saltelli_points(dimensions: int, base_samples: int, seed: int) -> FloatArray:
    """``base_samples x (dimensions + 2)`` points of the unit cube in Saltelli's layout
    (SALib's scrambled Sobol sample, first and total indices only).
    ``base_samples`` must be a power of 2."""
    from SALib.sample import sobol as sobol_sample

    if base_samples < 2 or base_samples & (base_samples - 1):
        raise ValueError(f"base_samples must be a power of 2, got {base_samples}")
    points = sobol_sample.sample(
        _problem(dimensions), base_samples, calc_second_order=False, scramble=True, seed=seed
    )
    return np.asarray(points, dtype=float)


def _zero(level: float, names: Sequence[str], variance: float) -> SobolIndices:
    """The indices of an output that does not vary: no input explains anything."""
    nothing = tuple(IndexEstimate(0.0, 0.0, 0.0) for _ in names)
    return SobolIndices(tuple(names), nothing, nothing, level, variance)


def _estimate(mean: float, half_width: float) -> IndexEstimate:
    """An index and its interval; one within floating-point resolution of 0 (an input
    the output does not depend on, up to rounding) is exactly 0."""
    if abs(mean) + abs(half_width) < RESOLUTION:
        return IndexEstimate(0.0, 0.0, 0.0)
    return IndexEstimate(mean, mean - half_width, mean + half_width)


def analyze(
    names: Sequence[str],
    outputs: FloatArray,
    seed: int,
    level: float = DEFAULT_LEVEL,
    resamples: int = DEFAULT_RESAMPLES,
) -> SobolIndices:
    """Sobol indices of ``outputs`` evaluated at :func:`saltelli_points` (SALib's
    ``sobol.analyze``; intervals from ``resamples`` bootstrap resamples at ``level``)."""
    from SALib.analyze import sobol as sobol_analyze

    outputs = np.asarray(outputs, dtype=float)
    if not np.isfinite(outputs).all():
        raise ValueError("every model output must be finite to compute Sobol indices")
    variance = float(outputs.var())
    scale = max(float(np.abs(outputs).max()), 1e-300)
    if variance <= (1e-12 * scale) ** 2:
        return _zero(level, names, variance)
    result = sobol_analyze.analyze(
        _problem(len(names)),
        outputs,
        calc_second_order=False,
        num_resamples=resamples,
        conf_level=level,
        seed=seed,
        print_to_console=False,
    )

    def estimates(key: str) -> tuple[IndexEstimate, ...]:
        return tuple(
            _estimate(float(m), float(c))
            for m, c in zip(result[key], result[f"{key}_conf"], strict=True)
        )

    return SobolIndices(tuple(names), estimates("S1"), estimates("ST"), level, variance)


def sobol_indices(
    names: Sequence[str],
    evaluate: Callable[[FloatArray], FloatArray],
    base_samples: int,
    seed: int,
    level: float = DEFAULT_LEVEL,
    resamples: int = DEFAULT_RESAMPLES,
) -> SobolIndices:
    """Sobol indices of ``evaluate`` (unit-cube points ``(n, k)`` to outputs ``(n,)``)
    over ``len(names)`` independent inputs, each uniform on [0, 1] before ``evaluate``
    maps it to its value.

    >>> def additive(u): return u[:, 0] + 2 * u[:, 1]
    >>> indices = sobol_indices(["a", "b"], additive, base_samples=1024, seed=1)
    >>> [round(i.mean, 1) for i in indices.first]  # variance shares 1 : 4
    [0.2, 0.8]
    """
    points = saltelli_points(len(names), base_samples, seed)
    return analyze(names, evaluate(points), seed, level, resamples)
