"""Per-arm sufficient statistics of per-visitor values: counts, sums and cross-products.

Every frequentist readout in this package (sequential tests, CUPED, ratio metrics,
guardrails) needs only, per arm, the number of visitors ``n``, the sums ``S = sum z``
and the cross-products ``Q = sum z z^T`` of a few per-visitor columns ``z`` (the metric,
its numerator and denominator, pre-experiment covariates). A database computes them in
one ``GROUP BY`` (:mod:`funnelsim.analysis.sources`), so the rows never enter Python, as
tea-tasting does; this module turns them into means and covariances.

References:
    Chan, T. F., Golub, G. H. & LeVeque, R. J. (1983), "Algorithms for computing the
    sample variance", The American Statistician 37(3) (variance from sums and sums of
    squares, and its rounding error).
    Kuznetsov, E. (2024), tea-tasting, https://tea-tasting.e10v.me (aggregated
    statistics computed in the database).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class Moments(NamedTuple):
    """Counts, sums and cross-products of per-visitor columns, one entry per arm.

    Attributes:
        arms: Arm (variant) names.
        columns: Names of the per-visitor columns.
        count: Visitors per arm, shape ``(arms,)``.
        sums: ``sum z`` per arm, shape ``(arms, columns)``.
        cross: ``sum z z^T`` per arm, shape ``(arms, columns, columns)``.
    """

    arms: tuple[str, ...]
    columns: tuple[str, ...]
    count: FloatArray
    sums: FloatArray
    cross: FloatArray

    def column(self, name: str) -> int:
        """Position of column ``name``; ValueError naming the known columns otherwise."""
        if name not in self.columns:
            raise ValueError(f"no column {name!r}; known: {', '.join(self.columns)}")
        return self.columns.index(name)

    def arm(self, name: str) -> int:
        """Position of arm ``name``; ValueError naming the known arms otherwise."""
        if name not in self.arms:
            raise ValueError(f"no arm {name!r}; known: {', '.join(self.arms)}")
        return self.arms.index(name)

    def select(self, columns: Sequence[str]) -> Moments:
        """The statistics of ``columns`` only, in that order."""
        index = [self.column(name) for name in columns]
        return Moments(
            self.arms,
            tuple(columns),
            self.count,
            self.sums[:, index],
            self.cross[:, index][:, :, index],
        )


def moments_from_values(
    arm_of_row: Sequence[str] | npt.ArrayLike,
    values: npt.ArrayLike,
    columns: Sequence[str],
    arms: Sequence[str] | None = None,
) -> Moments:
    """The :class:`Moments` of in-memory rows (tests, simulations, small files).

    Args:
        arm_of_row: Arm name of each row.
        values: Per-visitor values, shape ``(rows, columns)`` (a 1-D array is one column).
        columns: Column names.
        arms: Arm order; None takes the order of first appearance.

    >>> m = moments_from_values(["a", "b", "a"], [1.0, 2.0, 3.0], ["y"])
    >>> m.count.tolist(), m.sums.ravel().tolist(), m.cross.ravel().tolist()
    ([2.0, 1.0], [4.0, 2.0], [10.0, 4.0])
    """
    labels = np.asarray(arm_of_row).astype(str)
    matrix = np.asarray(values, dtype=np.float64)
    matrix = matrix[:, None] if matrix.ndim == 1 else matrix
    if matrix.shape != (labels.size, len(columns)):
        raise ValueError(f"values must have shape ({labels.size}, {len(columns)})")
    order = tuple(dict.fromkeys(labels.tolist())) if arms is None else tuple(arms)
    rows = [matrix[labels == name] for name in order]
    return Moments(
        order,
        tuple(columns),
        np.array([r.shape[0] for r in rows], dtype=np.float64),
        np.array([r.sum(axis=0) for r in rows]),
        np.array([r.T @ r for r in rows]),
    )


def means(moments: Moments) -> FloatArray:
    """Per-arm means of each column, shape ``(arms, columns)``; NaN for an empty arm."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return moments.sums / moments.count[:, None]


def covariances(moments: Moments) -> FloatArray:
    """Per-arm sample covariance matrices (``n - 1`` denominator), ``(arms, cols, cols)``.

    NaN for an arm with fewer than two visitors.

    >>> m = moments_from_values(["a"] * 3, [[1.0, 2.0], [2.0, 4.0], [3.0, 7.0]], ["x", "y"])
    >>> covariances(m)[0].round(4).tolist()
    [[1.0, 2.5], [2.5, 6.3333]]
    """
    n = moments.count[:, None, None]
    mean = means(moments)
    centred = moments.cross - n * mean[:, :, None] * mean[:, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1, centred / (n - 1), np.nan)
