"""The Sobol machinery (SALib) against functions whose indices are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from funnelsim.sobol import IndexEstimate, saltelli_points, sobol_indices

ISHIGAMI_FIRST = (0.3139, 0.4424, 0.0)
ISHIGAMI_TOTAL = (0.5576, 0.4424, 0.2437)


def ishigami(u: np.ndarray, a: float = 7.0, b: float = 0.1) -> np.ndarray:
    """Ishigami & Homma (1990) on inputs uniform over [-pi, pi]."""
    x = -math.pi + 2 * math.pi * u
    return np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0])


def inside(estimate: IndexEstimate, value: float) -> bool:
    return estimate.low <= value <= estimate.high


def test_ishigami_indices_lie_inside_their_bootstrap_intervals() -> None:
    indices = sobol_indices(["x1", "x2", "x3"], ishigami, base_samples=4096, seed=3)
    for estimate, value in zip(indices.first, ISHIGAMI_FIRST, strict=True):
        assert inside(estimate, value), (estimate, value)
    for estimate, value in zip(indices.total, ISHIGAMI_TOTAL, strict=True):
        assert inside(estimate, value), (estimate, value)
    assert indices.ranked() == ["x1", "x2", "x3"]
    assert indices.level == 0.95


def product_indices(means: np.ndarray, variances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form Sobol indices of Y = prod X_i for independent X_i:
    V_i = Var X_i prod_{j != i} mu_j^2, VT_i = Var X_i prod_{j != i} E[X_j^2]."""
    second = variances + means**2
    total_variance = np.prod(second) - np.prod(means**2)
    first = variances * np.prod(means**2) / means**2 / total_variance
    total = variances * np.prod(second) / second / total_variance
    return first, total


def test_product_of_independent_rates_matches_the_closed_form() -> None:
    low = np.array([0.4, 0.15, 0.5])
    high = np.array([0.8, 0.25, 0.6])
    first, total = product_indices((low + high) / 2, (high - low) ** 2 / 12)
    indices = sobol_indices(
        ["a", "b", "c"],
        lambda u: np.prod(low + (high - low) * u, axis=1),
        base_samples=4096,
        seed=5,
    )
    for estimate, value in zip(indices.first + indices.total, [*first, *total], strict=True):
        assert inside(estimate, value), (estimate, value)


def test_an_input_the_output_ignores_has_zero_total_index() -> None:
    indices = sobol_indices(["used", "ignored"], lambda u: u[:, 0] ** 2, 1024, seed=1)
    first, total = indices.of("ignored")
    assert inside(first, 0.0) and inside(total, 0.0) and abs(total.mean) < 1e-12
    assert inside(indices.of("used")[1], 1.0)


def test_a_constant_output_has_no_sensitivity() -> None:
    indices = sobol_indices(["a", "b"], lambda u: np.full(len(u), 0.3), 64, seed=1)
    nothing = (IndexEstimate(0, 0, 0),) * 2
    assert (indices.first, indices.total) == (nothing, nothing)
    assert indices.variance < 1e-30


def test_saltelli_points_are_seeded_and_need_a_power_of_two() -> None:
    points = saltelli_points(3, 64, seed=2)
    assert points.shape == (64 * 5, 3)
    np.testing.assert_array_equal(points, saltelli_points(3, 64, seed=2))
    with pytest.raises(ValueError, match="power of 2"):
        saltelli_points(3, 100, seed=2)
