"""Uncertain-quantity specs: their distributions, truncation, and quasi-random worlds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats

from conftest import SCENARIOS, run_in_new_process
from funnelsim.uncertainty import (
    UNBOUNDED,
    Assumption,
    Bounds,
    draw_values,
    is_uncertain,
    parse_uncertain,
    unit_points,
)

PROBABILITY = Bounds(0.0, 1.0)
U = np.linspace(0.001, 0.999, 999)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"uncertain": "uniform", "low": 0.02, "high": 0.06}, stats.uniform(0.02, 0.04)),
        ({"uncertain": "normal", "mean": 3.0, "sd": 0.5}, stats.norm(3.0, 0.5)),
        (
            {"uncertain": "triangular", "low": 1.0, "mode": 1.5, "high": 2.5},
            stats.triang(0.5 / 1.5, loc=1.0, scale=1.5),
        ),
    ],
)
def test_quantiles_are_scipy_quantiles(data: dict[str, object], expected: object) -> None:
    spec = parse_uncertain(data)
    np.testing.assert_allclose(spec.ppf(U), expected.ppf(U), rtol=1e-12)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("data", "bounds"),
    [
        ({"uncertain": "beta", "mean": 0.6, "sd": 0.05}, PROBABILITY),
        ({"uncertain": "beta", "mean": 0.01, "sd": 0.005}, PROBABILITY),
        ({"uncertain": "lognormal", "mean": 62.0, "sd": 8.0}, Bounds(0.0)),
        ({"uncertain": "normal", "mean": 0.95, "sd": 0.05}, PROBABILITY),
        ({"uncertain": "normal", "mean": 1.0, "sd": 0.3}, Bounds(0.0)),
        ({"uncertain": "triangular", "low": 1.0, "mode": 1.0, "high": 2.5}, UNBOUNDED),
    ],
)
def test_quantiles_written_without_scipy_stats_are_its_quantiles(
    data: dict[str, object], bounds: Bounds
) -> None:
    spec = parse_uncertain(data)
    expected = spec.distribution(bounds).ppf(U)
    np.testing.assert_allclose(spec.ppf(U, bounds), expected, rtol=1e-12)
    assert spec.support == Bounds(*spec.distribution().support())


@pytest.mark.parametrize(
    "data",
    [
        {"uncertain": "beta", "mean": 0.6, "sd": 0.05},
        {"uncertain": "lognormal", "mean": 62.0, "sd": 8.0},
    ],
)
def test_mean_and_sd_parameterisations_have_that_mean_and_sd(data: dict[str, float]) -> None:
    dist = parse_uncertain(data).distribution()
    assert dist.mean() == pytest.approx(data["mean"], rel=1e-12)
    assert dist.std() == pytest.approx(data["sd"], rel=1e-12)


def test_normal_is_truncated_to_the_fields_range() -> None:
    spec = parse_uncertain({"uncertain": "normal", "mean": 0.05, "sd": 0.05})
    values = spec.ppf(U, PROBABILITY)
    assert values.min() >= 0.0
    a = (0.0 - 0.05) / 0.05
    np.testing.assert_allclose(values, stats.truncnorm(a, 19.0, 0.05, 0.05).ppf(U), rtol=1e-9)
    assert spec.bounds_problem(PROBABILITY) is None


def test_central_values() -> None:
    assert parse_uncertain({"uncertain": "uniform", "low": 1, "high": 3}).central == 2.0
    assert (
        parse_uncertain({"uncertain": "triangular", "low": 1, "mode": 1.2, "high": 3}).central
        == 1.2
    )
    assert parse_uncertain({"uncertain": "beta", "mean": 0.3, "sd": 0.1}).central == 0.3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"uncertain": "uniform", "low": 2, "high": 1}, "high must be greater than low"),
        ({"uncertain": "beta", "mean": 0.5, "sd": 0.6}, "sd must be below"),
        ({"uncertain": "triangular", "low": 1, "mode": 4, "high": 3}, "low <= mode <= high"),
        ({"uncertain": "normal", "mean": 1, "sd": 0}, "greater than 0"),
        ({"uncertain": "gamma", "mean": 1, "sd": 1}, "does not match any of the expected tags"),
        ({"uncertain": "normal", "mean": 1, "sd": 1, "low": 0}, "Extra inputs"),
    ],
)
def test_bad_specs_are_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_uncertain(data)


def test_specs_that_reach_outside_the_valid_range_are_named() -> None:
    uniform = parse_uncertain({"uncertain": "uniform", "low": 0.5, "high": 1.5})
    assert "outside the valid range (between 0 and 1)" in str(uniform.bounds_problem(PROBABILITY))
    normal = parse_uncertain({"uncertain": "normal", "mean": 1.5, "sd": 0.1})
    assert "mean must be between 0 and 1" in str(normal.bounds_problem(PROBABILITY))
    lognormal = parse_uncertain({"uncertain": "lognormal", "mean": 2, "sd": 1})
    assert lognormal.bounds_problem(Bounds(0.0)) is None
    assert lognormal.bounds_problem(PROBABILITY) is not None


def test_is_uncertain_tells_uncertain_quantities_from_per_visitor_distributions() -> None:
    assert is_uncertain({"uncertain": "normal", "mean": 1, "sd": 1})
    assert not is_uncertain({"dist": "lognormal", "mean": 1, "sd": 1})
    assert not is_uncertain(0.4)


def test_halton_points_are_seeded_and_even() -> None:
    points = unit_points(1024, 3, seed=7)
    np.testing.assert_array_equal(points, unit_points(1024, 3, seed=7))
    assert not np.array_equal(points, unit_points(1024, 3, seed=8))
    assert points.min() >= 0.0 and points.max() < 1.0
    # Dimension j runs in base 2, 3, 5: its first base^m points hold one point in each
    # interval [k / base^m, (k + 1) / base^m), whatever the digit permutations.
    for column, intervals in zip(points.T, (2**10, 3**6, 5**4), strict=True):
        cells = (column[:intervals] * intervals).astype(int)
        np.testing.assert_array_equal(np.bincount(cells, minlength=intervals), 1)


def test_randomised_halton_points_are_uniform_over_seeds() -> None:
    """Every point of a randomised Halton set is uniform on the cube: over 400 seeds the
    mean of a coordinate is 1/2 within 4 standard errors of 400 uniforms, whatever the
    point (here the first, an unscrambled Halton sequence's 0, and the last)."""
    points = np.array([unit_points(16, 4, seed=s)[[0, -1]] for s in range(400)])
    se = math.sqrt(1 / 12 / 400)
    assert np.abs(points.mean(axis=0) - 0.5).max() < 4 * se


def test_world_values_follow_each_assumptions_distribution() -> None:
    assumptions = [
        Assumption("a", parse_uncertain({"uncertain": "beta", "mean": 0.6, "sd": 0.05})),
        Assumption(
            "b", parse_uncertain({"uncertain": "normal", "mean": 0.05, "sd": 0.05}), PROBABILITY
        ),
    ]
    values = draw_values(assumptions, 4096, seed=1)
    assert values.shape == (4096, 2)
    for j, assumption in enumerate(assumptions):
        dist = assumption.spec.distribution(assumption.bounds)
        # quasi-random points: far closer to the distribution than iid draws would be
        assert stats.kstest(values[:, j], dist.cdf).statistic < 1.0 / math.sqrt(4096)
        assert values[:, j].mean() == pytest.approx(dist.mean(), abs=dist.std() / 64)


def test_run_draws_its_worlds_without_scipy_stats() -> None:
    """``funnelsim run`` on checkout.yaml values 128 worlds of its 4 uncertain assumptions
    (Halton points, quantiles from scipy.special) and never imports scipy.stats, which
    costs about a second."""
    args = ["run", str(SCENARIOS / "checkout.yaml"), "--replications", "2", "--workers", "1"]
    out, loaded_scipy_stats = run_in_new_process(*args)
    assert "128 worlds of 4 uncertain assumptions" in out and not loaded_scipy_stats
